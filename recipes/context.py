"""What a variant and a setup function receive: a handle on the sandbox and a notebook."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from recipes.datasets.seeding import INDEX_NAMES, Dataset
from recipes.workers import Worker, at_once

MAIN_OPTION = "playground_main"
KIND_OPTION = "playground_kind"
"""An execution option naming the kind the capture records for a statement, where its text
would mislead: an EXPLAIN a person typed is one of their statements, not the runner's plan."""
S = TypeVar("S", bound=Executable)
T = TypeVar("T")


class Run:
    """Handed to a variant. Every statement sent through `engine` is captured."""

    def __init__(
        self,
        engine: Engine,
        prepared: dict[str, Any] | None = None,
        instrument: Callable[[Engine], Engine] | None = None,
        recorder: Callable[..., None] | None = None,
        statements: list[Any] | None = None,
    ):
        self.engine = engine
        self.prepared = prepared or {}
        """Values the recipe's setup computed for this run (e.g. a keyset cursor)."""
        self.metrics: dict[str, Any] = {}
        self._instrument = instrument
        """Attaches statement capture to engines the variant creates."""
        self._engines: list[Engine] = []
        self._recorder = recorder
        """Adds a statement SQLAlchemy never saw (psycopg COPY) to the capture."""
        self.statements: list[Any] = statements if statements is not None else []
        """The statements captured so far in this run, in order (read them; never change them)."""
        self.error: BaseException | None = None
        """Set by `fail`: the run is reported as failed, while the variant still returns rows."""

    def session(self) -> Session:
        """A new ORM session on the sandbox; use it as a context manager."""
        return Session(self.engine)

    def connect(self) -> Connection:
        return self.engine.connect()

    def engine_with(self, **options: Any) -> Engine:
        """A second engine on the sandbox, logging in as the same role, with its own pool options.

        `options` go to `create_engine` (pool_size, max_overflow, poolclass…). Its statements are
        captured like the main engine's, and it is disposed when the run ends.
        """
        connect_args = {"prepare_threshold": None, **options.pop("connect_args", {})}
        engine = create_engine(self.engine.url, connect_args=connect_args, **options)
        if self._instrument is not None:
            self._instrument(engine)
        self._engines.append(engine)
        return engine

    def close(self) -> None:
        """Dispose the engines made with `engine_with`, closing their connections."""
        while self._engines:
            self._engines.pop().dispose()

    def record(
        self,
        sql: str,
        parameters: Any = None,
        *,
        duration_ms: float,
        rowcount: int | None,
        kind: str = "copy",
    ) -> None:
        """Put a statement sent straight through the driver (COPY) into the statement list."""
        if self._recorder is not None:
            self._recorder(sql, parameters, duration_ms=duration_ms, rowcount=rowcount, kind=kind)

    def fail(self, error: BaseException) -> None:
        """Report the run as failed with `error`, yet show what the variant returns (a table's state)."""
        self.error = error

    def main(self, stmt: S) -> S:
        """Mark `stmt` as the query this recipe is about: its plan is the one EXPLAINed."""
        return stmt.execution_options(**{MAIN_OPTION: True})

    def metric(self, name: str, value: Any) -> None:
        """Record a figure of the recipe's own (shown beside the standard ones)."""
        self.metrics[name] = value

    def at_once(
        self,
        n: int,
        work: Callable[[int, Callable[[], None]], T],
        *,
        at_most: int | None = None,
        timeout: float = 10.0,
    ) -> list[Worker[T]]:
        """Run `work(number, line_up)` in `n` threads that start together at `line_up()`.

        Each worker's result or error and its timings come back in order; its statements are
        captured with the run's. See `recipes.workers.at_once` for waves and the line-up rules.
        """
        return at_once(n, work, at_most=at_most, timeout=timeout)


class Setup:
    """Handed to a recipe's setup function. Nothing done here is captured as the run's work."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.log: list[str] = []
        self.prepared: dict[str, Any] = {}
        """Handed to the variant as `run.prepared`."""
        self._unanalyzed: list[str] = []
        """Tables seeded or re-indexed here whose statistics are still to be gathered."""
        self._indexes_found: dict[str, set[str]] = {}
        """Index names the last `dataset` check read, by dataset, for the `indexes` call after it."""

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.log.append(f"{what} ({(time.perf_counter() - started) * 1000:.0f} ms)")

    def dataset(self, dataset: Dataset, **size: int) -> None:
        """Create and seed `dataset` at `size` unless it is already there at that size."""
        current, indexes = dataset.check(self.conn, size)
        if current:
            self._indexes_found[dataset.name] = indexes
            return
        self._indexes_found.pop(dataset.name, None)
        with self.step(f"seeded {dataset.name} ({_describe(size)})"):
            dataset.build(self.conn, size, analyze=False)
        self._stale(*(model.__tablename__ for model in dataset.models))

    def indexes(self, dataset: Dataset, wanted: set[str]) -> None:
        """Make the dataset's optional indexes exactly `wanted` (others dropped), then ANALYZE.

        One ANALYZE covers the tables just seeded as well: gathering their statistics before the
        indexes exist would only be repeated here (an expression index has statistics of its own).
        Called right after `dataset(dataset, …)` found the dataset current, it takes the index
        names that check read in the same round trip; a setup that changes the dataset's indexes
        itself between the two calls must not rely on that (none does).
        """
        present = self._indexes_found.pop(dataset.name, None)
        if present is None:  # not checked just before, or seeded since: ask
            present = {
                name
                for (name,) in self.conn.execute(text(INDEX_NAMES.format(table=":t")), {"t": dataset.table})
            }
        changed = False
        for name in sorted(set(dataset.indexes) & present - wanted):
            with self.step(f"dropped index {name}"):
                self.conn.execute(text(f'DROP INDEX "{name}"'))
            changed = True
        for name in sorted(wanted - present):
            with self.step(f"created index {name}"):
                self.conn.execute(text(dataset.indexes[name]))
            changed = True
        if changed:
            self._stale(dataset.table)
        self.analyze()

    def analyze(self) -> None:
        """Gather statistics of the tables seeded or re-indexed since the last call (one ANALYZE)."""
        if not self._unanalyzed:
            return
        tables, self._unanalyzed = self._unanalyzed, []
        with self.step(f"ANALYZE {', '.join(tables)}"):
            self.conn.execute(text("ANALYZE " + ", ".join(f'"{t}"' for t in tables)))

    def _stale(self, *tables: str) -> None:
        self._unanalyzed += [t for t in tables if t not in self._unanalyzed]


def _describe(size: dict[str, int]) -> str:
    return ", ".join(f"{k}={v:,}" for k, v in size.items())
