"""What a request asks of the playground, independent of how it is rendered."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from django.contrib.auth import SESSION_KEY as USER_KEY

import recipes
from playground import sandbox
from playground.conf import setting
from playground.models import Run, Sandbox
from playground.running import apart, joined, limits, runner, sweeps
from playground.running.deadline import Watch
from playground.running.sweeps import SweepSpec, sweep_lines
from playground.sandbox.engines import SANDBOX_MAX_OVERFLOW
from recipes.base import Cost, Recipe
from recipes.results import RunResult, result_from_json, stored_as
from recipes.validation import InvalidParams

SESSION_KEY = "sandbox"
"""Where a session keeps the role of its sandbox of the default version (`session_key`)."""


def session_key(version: int | None = None) -> str:
    """The session key of its sandbox of `version`: a session has one sandbox per version."""
    if version is None or version == sandbox.default_version():
        return SESSION_KEY
    return f"{SESSION_KEY}_pg{version}"


def session_roles(session) -> list[str]:
    """The roles of every sandbox this session holds, one per version."""
    return [role for v in sandbox.versions() if (role := session.get(session_key(v)))]


def sandbox_for(session, version: int | None = None) -> Sandbox:
    """This session's sandbox of `version` (default: `main`'s), marked as in use, created on
    first use on the least-loaded server of that version; signed in, the person's (see `people`:
    it follows them from browser to browser).

    A sandbox a reaper dropped meanwhile is never used: claiming it finds no row (the reaper
    held it locked while dropping), so the person's latest other one is tried, then a new one
    is made, theirs when signed in.
    """
    key = session_key(version)
    role = session.get(key)
    found = sandbox.claim(role) if role else None
    if found is not None and not sandbox.is_configured(found.server):  # its server was retired
        found = None
    person = session.get(USER_KEY)
    if found is None and person is not None:  # reaped: the person's other one of this version
        servers = sandbox.names_of(version or sandbox.default_version())
        theirs = Sandbox.objects.filter(owner_id=person, server__in=servers).order_by("-last_used_at")
        latest = theirs.values_list("role", flat=True).first()
        found = sandbox.claim(latest) if latest else None
    if found is None:
        found = sandbox.provision(version=version)
        if person is not None:
            Sandbox.objects.filter(pk=found.pk).update(owner_id=person)
    if found.role != role:
        session[key] = found.role
    return found


def run_recipe(
    session,
    recipe: Recipe,
    variant: str,
    params: dict[str, Any],
    *,
    sweep: uuid.UUID | None = None,
    keep: bool = True,
    client_gone: Callable[[], bool] | None = None,
    version: int | None = None,
) -> RunResult:
    """Run in this session's sandbox of `version` (default: `main`'s) and keep the run in the
    session's history (unless `keep` is False: a warm-up).

    The run is bounded: a deadline, a statement count, and `client_gone` (a check that the
    request's client left, see `deadline.client_of`). A heavy one waits its turn among the few,
    and runs in a process of its own (`playground.running.apart`).
    """
    box, (result,) = _runs(
        session, recipe, variant, params, repeats=1, client_gone=client_gone, version=version
    )
    return _keep(box, recipe, variant, result, sweep) if keep else result


def run_point(
    session,
    recipe: Recipe,
    variant: str,
    params: dict[str, Any],
    *,
    sweep: uuid.UUID,
    y: str,
    client_gone: Callable[[], bool] | None = None,
    version: int | None = None,
) -> RunResult:
    """One point of a sweep's line, kept in the history: for a time, the middle of
    `sweeps.REPEATS` runs by that time; for a count, which is the same on every run, one run."""
    repeats = sweeps.REPEATS if y in sweeps.TIMES else 1
    box, results = _runs(
        session, recipe, variant, params, repeats=repeats, client_gone=client_gone, version=version
    )
    ordered = sorted(results, key=lambda r: figure(r, y) or 0.0)
    failed = [r for r in results if not r.ok]
    result = failed[0] if failed else ordered[len(ordered) // 2]
    return _keep(box, recipe, variant, result, sweep)


def figure(result: RunResult, name: str) -> float | None:
    """One of `SWEEP_FIGURES` of a run, as its stored `Run` holds it."""
    return result.figures.rows_read if name == "rows_read" else getattr(result, name)


def _runs(
    session,
    recipe: Recipe,
    variant: str,
    params: dict[str, Any],
    *,
    repeats: int,
    client_gone: Callable[[], bool] | None,
    version: int | None = None,
) -> tuple[Sandbox, list[RunResult]]:
    """`repeats` runs back to back in one run slot (a heavy one if the declared cost says so),
    stopping at the first that fails; each run has its own deadline. Each result is cut to what a
    page shows (`RunResult.trimmed`) and says which server ran it. A run asking for no version
    gets its room's, in a room made for one (`joined`), else the default."""
    version = version if version is not None else joined.version(session)
    needs_version(recipe, variant, version or sandbox.default_version())  # before a sandbox is made
    box = sandbox_for(session, version)
    server = sandbox.named(box.server)
    with sandbox.reaching(server):
        sandbox.check_quota(box)
        heavy = is_heavy(recipe.cost_of(variant, params))
        results: list[RunResult] = []
        with sandbox.run_slot(heavy=heavy, server=server):
            while len(results) < repeats and (not results or results[-1].ok):
                results.append(_one(box, recipe, variant, params, heavy=heavy, client_gone=client_gone))
    shown = (setting("STATEMENTS_SHOWN"), setting("RESULT_MAX_KB") * 1024)
    ran_on = {"server": server.name, "server_version": server_version(server)}
    return box, [
        replace(r if r.ok else replace(r, error=limits.explain_error(r.error)), **ran_on).trimmed(*shown)
        for r in results
    ]


def needs_version(recipe: Recipe, variant: str, major: int) -> None:
    """Refuse a variant the server's version cannot run (`Variant.needs_version`), before anything
    is sent: a 400 on the variant, saying which version it needs."""
    found = recipe.variants.get(variant)
    reason = found.refusal_on(major) if found else None
    if reason:
        raise InvalidParams({"variant": [reason]}, values={"variant": variant})


def server_version(server: sandbox.Server) -> str:
    """The full version the server reports ("18.4"), read by its admin engine's first connection."""
    info = sandbox.admin_engine(server).dialect.server_version_info or (server.version,)
    return ".".join(str(part) for part in info)


def _one(
    box: Sandbox,
    recipe: Recipe,
    variant: str,
    params: dict[str, Any],
    *,
    heavy: bool,
    client_gone: Callable[[], bool] | None,
) -> RunResult:
    """One run, bounded by a deadline, a statement count and its client: a heavy one in a
    process of its own, a light one here."""
    if heavy and recipes.get(recipe.slug) is recipe:  # the child finds it by its slug
        return _run_apart(box, recipe, variant, params, client_gone)
    watch = Watch(
        setting("RUN_DEADLINE_SECONDS"),
        client_gone=client_gone,
        max_statements=setting("MAX_STATEMENTS_PER_RUN"),
    )
    return runner.run(
        recipe=recipe,
        variant=variant,
        params=params,
        engine=sandbox.engine_for(box),
        max_rows=setting("MAX_ROWS_SHOWN"),
        watch=watch,
    )


def _keep(
    box: Sandbox, recipe: Recipe, variant: str, result: RunResult, sweep: uuid.UUID | None
) -> RunResult:
    """Store the run in the session's history, its result cut to what storage keeps (as the JSON
    text that measuring it for the cut encoded)."""
    kept = result.trimmed(setting("STORED_STATEMENTS"), setting("STORED_RESULT_MAX_KB") * 1024)
    run_id = Run.objects.keep(
        sandbox_id=box.pk,
        recipe=recipe.slug,
        variant=variant,
        params=result.params,
        ok=result.ok,
        query_count=result.query_count,
        elapsed_ms=result.elapsed_ms,
        db_ms=result.db_ms,
        rows_read=result.figures.rows_read,
        result=kept.json_text(),
        sweep=sweep,
    )
    return stored_as(result, run_id)


def _run_apart(
    box: Sandbox, recipe: Recipe, variant: str, params: dict[str, Any], client_gone: Callable[[], bool] | None
) -> RunResult:
    """A heavy run in a process of its own (see `playground.running.apart`), the same limits."""
    job = apart.Job(
        recipe=recipe.slug,
        variant=variant,
        params=params,
        url=sandbox.engine_for(box).url.render_as_string(hide_password=False),
        pool_size=setting("SANDBOX_POOL_SIZE"),
        max_overflow=SANDBOX_MAX_OVERFLOW,
        max_rows=setting("MAX_ROWS_SHOWN"),
        deadline=setting("RUN_DEADLINE_SECONDS"),
        max_statements=setting("MAX_STATEMENTS_PER_RUN"),
        shown=(setting("STATEMENTS_SHOWN"), setting("RESULT_MAX_KB") * 1024),
    )
    return result_from_json(apart.run_apart(job, client_gone=client_gone))


def is_heavy(cost: Cost) -> bool:
    """Whether a run of this declared cost is one of the heavy ones, which take turns."""
    return cost.statements > setting("HEAVY_RUN_STATEMENTS") or cost.rows > setting("HEAVY_RUN_ROWS")


def sweep_step(
    session,
    recipe: Recipe,
    params: Mapping[str, Any],
    spec: SweepSpec,
    sweep: uuid.UUID,
    step: int,
    *,
    client_gone: Callable[[], bool] | None = None,
    version: int | None = None,
) -> list[str]:
    """Run every line at the sweep's `step`-th value on `version` (none asked: the room's, as for
    a run); return messages for points refused (a variant the version cannot run among them)."""
    version = version if version is not None else joined.version(session)
    x = spec.values[step]
    refused = []
    for line_recipe, variant in sweep_lines(recipe, spec):
        shared = {k: v for k, v in params.items() if k in line_recipe.defaults()}
        try:
            chosen = line_recipe.validate({**shared, spec.param: x, "variant": variant})
        except InvalidParams as exc:
            label = line_recipe.param(spec.param).label or spec.param
            problems = " ".join(m for messages in exc.errors.values() for m in messages)
            refused.append(f"{line_recipe.title} · {variant} at {label} = {x:,}: {problems}")
            continue
        if reason := line_recipe.variants[chosen.variant].refusal_on(version or sandbox.default_version()):
            refused.append(f"{line_recipe.title} · {variant}: {reason}")
            continue
        run_point(
            session,
            line_recipe,
            chosen.variant,
            dict(chosen.params),
            sweep=sweep,
            y=spec.y,
            client_gone=client_gone,
            version=version,
        )
    return refused


@dataclass(frozen=True)
class SweepPoints:
    """What a sweep has drawn so far."""

    lines: dict[str, list[tuple[float, float]]]
    """"recipe · variant" → (x, y) points, in the order they ran."""
    failed: list[str]
    """Points left out because their run failed when it was not meant to (a timeout, say)."""


def sweep_points(session, sweep: uuid.UUID, param: str, y: str) -> SweepPoints:
    """The sweep's runs so far as (x, y) points, one list per recipe and variant.

    A run that failed on purpose (raiseload…) is drawn like any other; one that failed otherwise
    is left out of its line, since its figures measure the failure, and listed instead.
    """
    runs = Run.objects.filter(sandbox__role__in=session_roles(session), sweep=sweep).defer("result")
    lines: dict[str, list[tuple[float, float]]] = {}
    failed = []
    for r in runs.order_by("created_at"):
        if param not in r.params:
            continue
        line, x, value = f"{r.recipe} · {r.variant}", r.params[param], getattr(r, y)
        if not r.ok and not _fails_on_purpose(r.recipe, r.variant):
            failed.append(f"{line} at {param} = {x:,} failed: {_error_of(r)}")
        elif value is not None:
            lines.setdefault(line, []).append((x, value))
    return SweepPoints(lines=lines, failed=failed)


def _error_of(run: Run) -> str:
    return Run.objects.filter(pk=run.pk).values_list("result__error", flat=True).first() or "no message"


def _fails_on_purpose(slug: str, variant: str) -> bool:
    recipe = recipes.get(slug)
    found = recipe.variants.get(variant) if recipe else None
    return bool(found and found.fails_on_purpose)


def history(session, limit: int = 20) -> list[Run]:
    """This session's latest runs (on every version), newest first."""
    roles = session_roles(session)
    if not roles:
        return []
    return list(Run.objects.filter(sandbox__role__in=roles).select_related("sandbox").defer("result")[:limit])


def stored_run(session, run_id: int) -> Run | None:
    """One of this session's runs (never another session's)."""
    roles = session_roles(session)
    if not roles:
        return None
    return Run.objects.filter(sandbox__role__in=roles, pk=run_id).select_related("sandbox").first()


def reset_sandbox(session) -> bool:
    """Empty this session's sandboxes (one per version); False when it has none yet."""
    boxes = list(Sandbox.objects.filter(role__in=session_roles(session)))
    for box in boxes:
        sandbox.reset(box)
        sandbox.touch(box)
    return bool(boxes)
