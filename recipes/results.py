"""What a run produces. Plain values, JSON-ready through `to_json()`."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import uuid
from dataclasses import dataclass, field, fields, is_dataclass, replace
from functools import cached_property
from typing import Any, Literal

from recipes.figures import Figures, figures_of, rows_fetched
from recipes.plan import PlanSummary, summarize

StatementKind = Literal["query", "transaction", "explain", "copy"]
_IN_LIST = re.compile(r"IN \((?:%\(\w+\)s(?:::\w+)?(?:, )?)+\)")


@dataclass(frozen=True)
class Statement:
    """One thing sent to Postgres while the variant ran, in order."""

    sql: str
    parameters: Any
    """Bound values as the driver received them (a dict, or a list of them for executemany)."""
    duration_ms: float | None
    """Client-side time around the driver call; None for implicit transaction markers."""
    rowcount: int | None
    kind: StatementKind = "query"
    batches: int = 1
    """Parameter sets sent in one driver call (executemany), 1 otherwise."""
    main: bool = False
    """The statement the recipe marked as "the query": the one that was EXPLAINed."""
    cache: str | None = None
    """SQLAlchemy's compiled cache for this statement: "cached since …", "generated in …"."""
    parameters_omitted: int = 0
    """Parameter sets (or, for one big set, values) left out of `parameters` to keep a large
    run's capture small; the SQL text of such a statement may be shortened too."""

    @property
    def executions(self) -> int:
        """Times Postgres ran this statement: once per parameter set of a plain executemany (the
        driver sends each set as an execution of its own), once otherwise. A batch that SQLAlchemy's
        insertmanyvalues folded into one multi-row INSERT arrives as one set of values: once."""
        return self.batches if isinstance(self.parameters, list) else 1

    @property
    def shape(self) -> str:
        """The SQL with expanded IN lists folded, so chunks of one query count as one shape."""
        return _IN_LIST.sub("IN (…)", self.sql)


@dataclass(frozen=True)
class TableRows:
    """Rows shown to the person: the first few, JSON-safe, with the real total."""

    columns: list[str]
    data: list[list[Any]]
    total: int
    truncated: bool


@dataclass(frozen=True)
class Plan:
    json: list[dict[str, Any]]
    """EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) as Postgres returned it."""
    text: str
    """The same statement's plan in Postgres' text format."""

    @cached_property
    def summary(self) -> PlanSummary | None:
        """The plan read once (nodes, rows read, buffers); None when EXPLAIN failed."""
        return summarize(self.json) if self.json else None


@dataclass(frozen=True)
class RunResult:
    """Everything measured in one run of one variant."""

    recipe: str
    variant: str
    params: dict[str, Any]
    ok: bool
    error: str | None
    rows: TableRows | None
    statements: list[Statement]
    query_count: int
    """Statements the variant itself sent: EXPLAIN and transaction markers excluded."""
    plan: Plan | None
    elapsed_ms: float
    """Wall time of the variant, from first to last line."""
    db_ms: float
    """Sum of the variant's statement durations as seen by the client."""
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    setup: list[str] = field(default_factory=list)
    """What was done to prepare the sandbox before the run (seeding, indexes), with timings."""
    queries_omitted: int = 0
    """Statements the variant sent (queries, COPY) left out of `statements` to keep a long run's
    result small (see `trimmed`); `query_count`, `db_ms` and the figures still count them."""
    fetched_omitted: int = 0
    """Rows fetched by the statements left out, so that `figures.rows_fetched` stays whole."""
    server: str = ""
    """The sandbox server that ran it (its name in the settings; "" when run outside a sandbox)."""
    server_version: str = ""
    """That server's PostgreSQL version, as it reports it ("18.4")."""
    run_id: int | None = None
    """The id of the stored run in the session's history (None for a run kept nowhere): its
    exports are at /runs/<id>/export and /runs/<id>/plan.json."""

    @cached_property
    def figures(self) -> Figures:
        """The headline figures, derived once (see recipes.figures)."""
        return figures_of(self)

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-ready data, built once (the view and the run history both need it).

        Treat it as read-only: copy it before changing anything.
        """
        built = self.__dict__.get("_json")
        if built is None:
            built = jsonable(self)
            f = self.figures
            built["figures"] = {
                "rows_fetched": f.rows_fetched,
                "rows_read": f.rows_read,
                "buffers_hit": f.buffers_hit,
                "buffers_read": f.buffers_read,
            }
            object.__setattr__(self, "_json", built)
        return built

    def json_text(self) -> str:
        """`to_json()` as JSON text, encoded once: a run is measured for the response's trim and
        again for storage's, and stored as this very text."""
        text = self.__dict__.get("_json_text")
        if text is None:
            text = _encoded(self.to_json())
            object.__setattr__(self, "_json_text", text)
        return text

    def _json_size(self) -> int:
        """Bytes of `to_json()` as JSON (see `json_text`)."""
        return len(self.json_text())

    def trimmed(self, max_statements: int, max_bytes: int) -> RunResult:
        """This result with at most `max_statements` statements in about `max_bytes` of JSON (more
        only when the main statement and its two EXPLAINs, always kept whole, take more).

        The first statements are kept, in order, and always the main one (the last marked: the
        one EXPLAINed) and the EXPLAINs; the rest are counted (`queries_omitted`,
        `fetched_omitted`) and a note says so. Figures, notes, rows and plan stay whole. Returns
        the result itself when it is small enough already.
        """
        if len(self.statements) <= max_statements and self._json_size() <= max_bytes:
            return self
        mains = [i for i, s in enumerate(self.statements) if s.main]
        always = [
            s.kind == "explain" or (i == mains[-1] if mains else False) for i, s in enumerate(self.statements)
        ]
        room = max_bytes - _size({**self.to_json(), "statements": []})
        room -= sum(_size(jsonable(s)) for s, kept in zip(self.statements, always, strict=True) if kept)
        head = max(0, max_statements - sum(always))
        keep = list(always)
        for i, s in enumerate(self.statements):
            if always[i]:
                continue
            room -= _size(jsonable(s))
            if head <= 0 or room < 0:
                break  # a contiguous head: what is left out is the end of the run
            keep[i], head = True, head - 1
        kept = [s for s, k in zip(self.statements, keep, strict=True) if k]
        left = [s for s, k in zip(self.statements, keep, strict=True) if not k]
        omitted = self.queries_omitted + sum(1 for s in left if s.kind in ("query", "copy"))
        note = (
            f"{TRIMMED_NOTE} {self.query_count - omitted:,} of the {self.query_count:,} queries the variant "
            f"sent, the first ones; the {omitted:,} left out are counted in every figure."
        )
        return replace(
            self,
            statements=kept,
            notes=[*(n for n in self.notes if not n.startswith(TRIMMED_NOTE)), note],
            queries_omitted=omitted,
            fetched_omitted=self.fetched_omitted + rows_fetched(left),
        )


TRIMMED_NOTE = "The statement list shows"


def _size(data: Any) -> int:
    """Bytes of `data` as JSON, as it is sent and stored."""
    return len(_encoded(data))


def _encoded(data: Any) -> str:
    return json.dumps(data, default=str)


def stored_as(result: RunResult, run_id: int) -> RunResult:
    """`result` with the id it was stored under; the JSON already built is kept, with the id added."""
    kept = replace(result, run_id=run_id)
    built = result.__dict__.get("_json")
    if built is not None:
        object.__setattr__(kept, "_json", {**built, "run_id": run_id})
    return kept


_PLAIN = frozenset({str, int, float, bool, type(None)})
"""Types JSON takes as they are: by far the most values of a result (a plan is made of them)."""


def jsonable(value: Any) -> Any:
    """Turn driver values (datetimes, UUIDs, decimals, bytes) into JSON-friendly ones."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal | dt.timedelta):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


def result_from_json(data: dict[str, Any]) -> RunResult:
    """Rebuild a RunResult from `RunResult.to_json()` output (stored run history)."""
    fields = {f for f in RunResult.__dataclass_fields__}
    values = {k: v for k, v in data.items() if k in fields}
    statement_fields = set(Statement.__dataclass_fields__)
    values["statements"] = [
        Statement(**{k: v for k, v in s.items() if k in statement_fields}) for s in data.get("statements", [])
    ]
    values["rows"] = TableRows(**data["rows"]) if data.get("rows") else None
    values["plan"] = Plan(**data["plan"]) if data.get("plan") else None
    return RunResult(**values)


HIGHLIGHT_START = "\ue000"
HIGHLIGHT_STOP = "\ue001"
"""Private-use characters a recipe wraps around highlighted words in a text cell (ts_headline's
StartSel/StopSel). They never occur in real text; the web layer escapes the cell and turns only
these pairs into <mark> elements, so no HTML from the data or the query ever reaches the page."""
