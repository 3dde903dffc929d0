"""A warm run's setup asks whether its dataset is current, and which optional indexes it has, in
one statement, and still finds out when the person dropped the registry, the tables or an index."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

import recipes
from playground.running import runner
from recipes.base import Params
from tests.conftest import ROWS


def sent_during_setup(monkeypatch, engine, slug: str) -> list[str]:
    """The statements psycopg's cursors send while `slug`'s setup prepares the sandbox."""
    sent: list[str] = []
    original = psycopg.Cursor.execute

    def counted(cursor, query, *args, **kwargs):
        sent.append(query if isinstance(query, str) else query.as_string(cursor.connection))
        return original(cursor, query, *args, **kwargs)

    recipe = recipes.get(slug)
    monkeypatch.setattr(psycopg.Cursor, "execute", counted)
    params = Params({**recipe.defaults(), "rows": ROWS})  # as `run_recipe` sizes it
    setup = runner.prepare(recipe, params, engine)
    monkeypatch.undo()
    assert setup.log == []  # warm: nothing seeded, nothing re-indexed
    return sent


def test_a_warm_setup_checks_its_dataset_and_indexes_in_one_statement(monkeypatch, engine, run_recipe):
    assert run_recipe(engine, "keyset-pagination", "keyset").ok  # seeds
    sent = sent_during_setup(monkeypatch, engine, "keyset-pagination")
    assert len(sent) == 1, sent  # the check (DISCARD ALL on return goes without a cursor)
    assert "_datasets" in sent[0] and "pg_index" in sent[0], sent


def test_an_index_dropped_outside_the_run_is_made_again(engine, run_recipe):
    first = run_recipe(engine, "keyset-pagination", "keyset", index="created_at")
    assert first.ok, first.error
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_documents_created_at"))
    again = run_recipe(engine, "keyset-pagination", "keyset", index="created_at")
    assert again.ok, again.error
    assert "created index ix_documents_created_at" in " ".join(again.setup), again.setup
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('ix_documents_created_at') IS NOT NULL")).scalar()


def test_an_index_made_outside_the_run_is_dropped_when_not_wanted(engine, run_recipe):
    assert run_recipe(engine, "keyset-pagination", "keyset", index="none").ok
    with engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_documents_created_at ON documents (created_at)"))
    again = run_recipe(engine, "keyset-pagination", "keyset", index="none")
    assert again.ok, again.error
    assert "dropped index ix_documents_created_at" in " ".join(again.setup), again.setup


@pytest.mark.parametrize(
    "drop", ["DROP TABLE _datasets", "DROP TABLE documents CASCADE"], ids=["registry", "table"]
)
def test_a_dropped_registry_or_table_is_made_again_and_the_dataset_reseeded(engine, run_recipe, drop):
    first = run_recipe(engine, "keyset-pagination", "keyset")
    assert first.ok, first.error
    with engine.begin() as conn:
        conn.execute(text(drop))
    again = run_recipe(engine, "keyset-pagination", "keyset")
    assert again.ok, again.error
    assert any(step.startswith("seeded ") for step in again.setup), again.setup
    assert again.rows.data == first.rows.data
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM _datasets")).scalar() >= 1


def test_a_warm_setup_sends_its_check_outside_any_transaction(engine, run_recipe, tmp_path):
    """What goes on the wire, as libpq's own trace of the pooled connection shows it: the check,
    no BEGIN before it and no COMMIT after it, then the reset as the connection goes back."""
    assert run_recipe(engine, "keyset-pagination", "keyset").ok  # seeds
    with engine.connect() as conn:  # the pool's one connection, which the setup takes next
        dbapi = conn.connection.dbapi_connection
    wire = tmp_path / "wire.log"
    with wire.open("w") as out:
        dbapi.pgconn.trace(out.fileno())
        try:
            recipe = recipes.get("keyset-pagination")
            setup = runner.prepare(recipe, Params({**recipe.defaults(), "rows": ROWS}), engine)
        finally:
            dbapi.pgconn.untrace()
    assert setup.log == []
    sent = [line for line in wire.read_text().splitlines() if "\tF\t" in line and "\tQuery\t" in line]
    assert len(sent) == 2, sent
    assert "_datasets" in sent[0] and sent[1].endswith('"DISCARD ALL"'), sent
