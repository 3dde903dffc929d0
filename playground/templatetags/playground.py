"""SQL formatting (sqlparse), highlighting (Pygments) and plan reading for templates."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import sqlparse
from django import template
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PostgresLexer, PythonLexer

from recipes.figures import DEFINITIONS
from recipes.plan import PlanSummary
from recipes.results import HIGHLIGHT_START, HIGHLIGHT_STOP, jsonable
from recipes.scratchpad import SLUG as SCRATCHPAD
from recipes.scratchpad import inline

register = template.Library()
_FORMATTER = HtmlFormatter(nowrap=True)
_HIGHLIGHTED = re.compile(f"{HIGHLIGHT_START}([^{HIGHLIGHT_START}{HIGHLIGHT_STOP}]*){HIGHLIGHT_STOP}")


@register.filter
def sql(statement: str) -> str:
    """Reindented, keyword-uppercased, highlighted SQL (Pygments escapes the text)."""
    formatted = sqlparse.format(statement, reindent=True, keyword_case="upper")
    return mark_safe(highlight(formatted, PostgresLexer(), _FORMATTER))


@register.filter
def cell(value: Any) -> Any:
    """A result cell: text is escaped, then only the recipe's highlight markers become <mark>.

    Whatever the data or the search text holds (tags, scripts, entities) is shown as text; a
    stray or unpaired marker is dropped.
    """
    if not isinstance(value, str):
        return value
    escaped = _HIGHLIGHTED.sub(r"<mark>\1</mark>", str(conditional_escape(value)))
    return mark_safe(escaped.replace(HIGHLIGHT_START, "").replace(HIGHLIGHT_STOP, ""))


@register.filter
def unwrap(text: str) -> str:
    """Join the hard-wrapped lines of a docstring's paragraphs; blank lines still separate them."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


@register.filter
def python(source: str) -> str:
    return mark_safe(highlight(source, PythonLexer(), _FORMATTER))


@register.filter
def params_json(parameters: Any) -> str:
    if parameters in (None, {}, []):
        return ""
    text = json.dumps(jsonable(parameters), default=str)
    return text if len(text) <= 600 else text[:600] + " …"


@register.simple_tag
def pygments_css() -> str:
    return mark_safe(_css())


@cache
def _css() -> str:
    return HtmlFormatter(style="friendly").get_style_defs(".hl")


@register.filter
def plan_summary(plan) -> PlanSummary | None:
    return plan.summary if plan is not None else None


@register.filter
def percent(value: float) -> str:
    return f"{value * 100:.0f}%"


@register.filter
def number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@register.simple_tag
def figure_definitions() -> dict[str, str]:
    """One line per headline figure, from the module that derives the figures."""
    return DEFINITIONS


@register.filter
def work_label(rows):
    from playground.web.charts import work_label as label

    return label(rows)


@register.filter
def timeline_lanes(timeline):
    from playground.web.charts import timeline_lanes as lanes

    return lanes(timeline)


@register.filter
def call_bars(per_call):
    from playground.web.charts import call_bars as bars

    return bars(per_call)


@register.filter
def statement_stats(value):
    """Groups of same-shape statements and the headline counts (see recipes.stats), of a list of
    statements or of a RunResult (then counting the queries its list leaves out)."""
    from recipes.stats import statement_stats as compute

    if hasattr(value, "statements"):
        return compute(value.statements, omitted=value.queries_omitted)
    return compute(value)


@register.simple_tag
def share_url(slug: str, variant: str, params: dict, ran_on: str = "") -> str:
    """The recipe page with its form pre-filled with these parameters and, given the
    `server_version` a run `ran_on`, that version picked."""
    from urllib.parse import urlencode

    from django.urls import reverse

    from playground.web.versions import link_version

    version = link_version(ran_on)
    if slug == SCRATCHPAD:  # SQL typed in the scratchpad opens there again
        return f"{reverse('sql')}?{urlencode({'sql': params.get('sql', ''), **version})}"
    return f"{reverse('recipe', args=[slug])}?{urlencode({'variant': variant, **params, **version})}"


@register.simple_tag
def edit_sql_url(statement: Any, run_id: int | None = None) -> str:
    """The scratchpad with `statement` in the editor, its values inlined; "" for an executemany.

    `run_id`, the run it came from, lets the scratchpad offer the diff of the two runs."""
    from urllib.parse import urlencode

    from django.urls import reverse

    sql = inline(statement.sql, statement.parameters)
    if sql is None or statement.parameters_omitted:
        return ""
    query = {"sql": sql, **({"from": run_id} if run_id else {})}
    return f"{reverse('sql')}?{urlencode(query)}"
