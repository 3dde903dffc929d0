"""A run, a comparison, or a plan, written to take away: Markdown for a pull request or a chat, and
the JSON plan viewers such as explain.dalibo.com read.

Everything comes from the RunResult, the same figures the page shows: the statements as sent with
their parameters (one of each shape, with how many times it was sent), the headline figures, the
notes and the plan in Postgres' own text format.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import sqlparse

import recipes
from recipes.measures import shown
from recipes.results import RunResult
from recipes.stats import statement_stats

MAX_GROUPS = 40
"""Statement groups written out in full; a longer run says how many more there were."""


def _fence(text: str, lang: str = "") -> str:
    """A fenced block that the text itself cannot close."""
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def _cell(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, list | dict) else shown(value)
    return text.replace("|", "\\|").replace("\n", " ")


def declared_order(result: RunResult) -> dict[str, Any]:
    """The run's parameters in the order its recipe declares them (stored JSON loses the order)."""
    recipe = recipes.get(result.recipe)
    names = [p.name for p in recipe.params] if recipe else []
    ranked = sorted(result.params, key=lambda k: names.index(k) if k in names else len(names))
    return {k: result.params[k] for k in ranked}


def params_line(params: Mapping[str, Any]) -> str:
    return ", ".join(f"`{k} = {json.dumps(v, default=str)}`" for k, v in params.items()) or "none"


def figures_table(result: RunResult) -> str:
    f = result.figures
    rows = [
        ("queries", f.queries),
        ("wall time (ms)", round(f.wall_ms, 2)),
        ("database time, summed (ms)", round(f.db_ms, 2)),
        ("rows fetched, whole run", f.rows_fetched),
    ]
    if f.plan is not None:
        rows += [
            ("rows read, main query", f.rows_read),
            ("buffers hit + read, main query", f"{f.buffers_hit:,} + {f.buffers_read:,}"),
            ("execution time of the main query (ms)", round(f.plan.execution_ms, 3)),
        ]
    if f.rows_returned is not None:
        rows.append(("rows returned", f.rows_returned))
    rows += [(k, v) for k, v in result.metrics.items() if k != "timeline"]
    return "\n".join(["| figure | value |", "|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in rows)])


def statements_md(result: RunResult) -> str:
    stats = statement_stats(result.statements)
    lines = [f"{stats.headline}, in the order they were sent:", ""]
    for group in stats.groups[:MAX_GROUPS]:
        s = group.first
        if s.kind == "transaction":
            lines.append(f"{group.number}. `{s.sql}`")
            continue
        facts = [s.kind, f"{s.duration_ms or 0:.2f} ms"]
        if s.rowcount is not None:
            facts.append(f"{s.rowcount:,} rows")
        if s.main:
            facts.append("**the query** (EXPLAINed below)")
        if group.size > 1:
            facts.append(f"sent {group.size} times, {group.duration_ms:.2f} ms in all")
        lines += [f"{group.number}. {' · '.join(facts)}", "", _indent(_fence(_sql(s.sql), "sql"))]
        if s.parameters not in (None, {}, []):
            first = "first " if group.size > 1 else ""
            lines += ["", f"   {first}parameters: `{_short(json.dumps(s.parameters, default=str))}`"]
        lines.append("")
    if len(stats.groups) > MAX_GROUPS:
        lines.append(f"… and {len(stats.groups) - MAX_GROUPS} more groups of statements.")
    return "\n".join(lines).rstrip()


def run_md(result: RunResult, *, title: str, link: str = "", level: int = 2) -> str:
    """One run: parameters, figures, notes, statements and plan, under a heading of `level`."""
    h = "#" * level
    parts = [f"{h} {title} · {result.variant}", "", f"Parameters: {params_line(declared_order(result))}"]
    if link:
        parts += ["", f"Run it again: <{link}>"]
    if not result.ok:
        parts += ["", f"**The variant failed:** `{result.error}`"]
    parts += ["", figures_table(result)]
    if result.notes:
        parts += ["", *(f"- {n}" for n in result.notes)]
    parts += ["", f"{h}# Statements", "", statements_md(result)]
    if result.plan is not None:
        parts += ["", f"{h}# Plan", "", _fence(result.plan.text)]
    return "\n".join(parts).rstrip() + "\n"


def compare_md(results: Iterable[RunResult], *, title: str, links: Mapping[int, str] | None = None) -> str:
    """Several runs: a table of their figures side by side, then each run in full (under its
    recipe's title)."""
    results = list(results)
    head = "| variant | ok | queries | rows fetched | rows read | wall ms | database ms |"
    table = [head, "|---|---|---|---|---|---|---|"]
    for r in results:
        f = r.figures
        cells = (
            r.variant,
            "yes" if r.ok else "failed",
            f.queries,
            f.rows_fetched,
            f.rows_read,
            r.elapsed_ms,
            r.db_ms,
        )
        table.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    parts = [f"# {title}", "", *table, ""]
    for r in results:
        link = (links or {}).get(r.run_id or 0, "")
        recipe = recipes.get(r.recipe)
        parts.append(run_md(r, title=recipe.title if recipe else r.recipe, link=link, level=2))
    return "\n".join(parts).rstrip() + "\n"


def answer_md(answer: Mapping[str, Any]) -> str:
    """A checked guess (an `Answer` as JSON): the question, the guess beside the truth, and why."""
    off_by = f", {answer['off_by']}" if answer.get("off_by") else ""
    verdict = "right" if answer["right"] else f"not this time{off_by}"
    said = f"Guess: {shown(answer['guess'])} · the run: {shown(answer['truth'])} · {verdict}"
    return "\n".join([f"**Question:** {answer['asked']}", "", said, *(f"- {w}" for w in answer["why"])])


def verdict_md(verdict: Mapping[str, Any]) -> str:
    """A challenge tried (a `Verdict` as JSON): the goal, then each check passed or failed."""
    state = "passed" if verdict["passed"] else "not passed yet"
    checks = [
        f"- {'passed' if c['passed'] else 'failed'}: {c['check']} ({c['detail']})" for c in verdict["checks"]
    ]
    return "\n".join([f"**Challenge:** {verdict['goal']}: {state}", "", *checks])


def plan_for_viewers(result: RunResult, *, title: str) -> dict[str, str]:
    """The plan as explain.dalibo.com's form and API take it: the raw EXPLAIN (FORMAT JSON) output,
    the query text, and a title. Other viewers (PEV2, pgMustard) read the same `plan` text."""
    if result.plan is None or not result.plan.json:
        raise ValueError("this run has no plan")
    main = next((s for s in result.statements if s.main), None)
    query = main.sql if main is not None else ""
    if main is not None and main.parameters not in (None, {}, []):
        query += f"\n-- parameters: {json.dumps(main.parameters, default=str)}"
    return {"title": title, "plan": json.dumps(result.plan.json, indent=2), "query": query}


def _sql(text: str) -> str:
    return sqlparse.format(text, reindent=True, keyword_case="upper")


def _indent(text: str) -> str:
    return "\n".join(f"   {line}" if line else line for line in text.splitlines())


def _short(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit] + " …"
