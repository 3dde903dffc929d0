"""The SQL scratchpad of a session: its sandbox's tables, and SQL run through the one runner."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import text

from playground import sandbox
from playground.models import Sandbox
from playground.running import joined, limits, service
from playground.running.learn import Attempt
from playground.running.service import session_key
from recipes import scratchpad
from recipes.base import Recipe
from recipes.learning import Challenge
from recipes.results import RunResult
from recipes.sql import Limits, SqlRefused, check
from recipes.validation import InvalidParams

# Catalogs are shared by every sandbox: each query names this sandbox's schema, and no other.
_COLUMNS = """
SELECT c.relname, c.relkind, c.reltuples::bigint, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'v', 'm')
ORDER BY c.relname, a.attnum
"""
_INDEXES = """
SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = :schema ORDER BY indexname
"""
_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view"}


@dataclass(frozen=True)
class Table:
    """A table or view of the sandbox, as its catalog describes it."""

    name: str
    """Its name in the sandbox's schema."""
    kind: str
    """"table", "view" or "materialized view"."""
    estimated_rows: int
    """The planner's estimate (`reltuples`; -1 before the first ANALYZE)."""
    columns: list[tuple[str, str]] = field(default_factory=list)
    """(name, type) in column order."""
    indexes: list[tuple[str, str]] = field(default_factory=list)
    """(name, definition)."""

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "estimated_rows": self.estimated_rows,
            "columns": [{"name": n, "type": t} for n, t in self.columns],
            "indexes": [{"name": n, "definition": d} for n, d in self.indexes],
        }


def tables(session, version: int | None = None) -> list[Table]:
    """The tables and views of this session's sandbox of `version`; none before its first run."""
    role = session.get(session_key(version))
    box = Sandbox.objects.filter(role=role).first() if role else None
    if box is None:
        return []
    found: dict[str, Table] = {}
    server = sandbox.named(box.server)
    with sandbox.reaching(server), sandbox.admin_engine(server).connect() as conn:
        for name, kind, estimate, column, type_ in conn.execute(text(_COLUMNS), {"schema": role}):
            table = found.setdefault(name, Table(name, _KINDS[kind], int(estimate)))
            table.columns.append((column, type_))
        for table_name, index, definition in conn.execute(text(_INDEXES), {"schema": role}):
            if table_name in found:
                found[table_name].indexes.append((index, definition))
    return list(found.values())


def run_sql(session, sql: str, version: int | None = None) -> RunResult:
    """Check `sql`, pay one run of the allowance, and run it in this session's sandbox of
    `version` (default: `main`'s).

    Refused SQL raises InvalidParams (400, `{"errors": {"sql": [...]}}`) before any run is paid
    or any statement sent.
    """
    chosen = scratchpad.recipe.validate({"sql": sql, "variant": "sql"})
    _gate(session, chosen.params["sql"], version)
    limits.spend_runs(session)
    return service.run_recipe(session, scratchpad.recipe, "sql", dict(chosen.params), version=version)


def attempt_sql(session, data: Recipe, challenge: Challenge, params: dict, sql: str) -> Attempt:
    """A challenge answered with SQL: run on the data `data`'s setup seeds with the step's
    `params` (and the challenge's), checked like any attempt on the run's figures. Refused SQL
    raises InvalidParams, as in `run_sql`, before anything is paid or sent."""
    recipe = scratchpad.on_data_of(data, challenge.reference)
    chosen = recipe.validate({**params, **challenge.params, "sql": sql, "variant": "sql"})
    _gate(session, chosen.params["sql"])
    limits.spend_runs(session)
    result = service.run_recipe(session, recipe, "sql", dict(chosen.params))
    return Attempt(result, {}, challenge.evaluate(result, {}))


def _gate(session, sql: str, version: int | None = None) -> None:
    """Refuse `sql` before anything is paid or sent, checked against the session's sandbox.

    The run checks it again against the sandbox it really runs in (the scratchpad's variant), so
    a session that has a sandbox is checked against its name without claiming it here: the run
    claims it a moment later, and a sandbox reaped meanwhile is replaced there and checked there.
    """
    version = version if version is not None else joined.version(session)  # as the run will
    role = session.get(session_key(version)) or service.sandbox_for(session, version).role
    try:
        check(sql, Limits(schema=role, max_length=scratchpad.MAX_LENGTH))
    except SqlRefused as exc:
        raise InvalidParams({"sql": [str(exc)]}, values={"sql": sql}) from None
