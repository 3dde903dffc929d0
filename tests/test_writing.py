"""The Writing shelf: what its four recipes claim, measured from the tables afterwards."""

from __future__ import annotations

import json

import pytest
from django.template.loader import render_to_string
from django.test import Client
from django.utils.html import escape
from sqlalchemy import text

import recipes
from playground import sandbox as sandboxes
from playground.models import Sandbox
from playground.web.forms import RunForm
from recipes.results import RunResult

pytestmark = pytest.mark.django_db(transaction=True)


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def failed_with(result: RunResult, phrase: str) -> None:
    assert result.ok is False, "expected the variant to fail"
    assert phrase in (result.error or ""), result.error


# --- upsert -----------------------------------------------------------------------------------
def test_upsert_twice_with_one_email_leaves_one_row_and_reports_the_update(engine, run_recipe):
    email = "twice@example.com"
    first = run_recipe(engine, "upsert", "on-conflict", email=email, name="First")
    second = run_recipe(engine, "upsert", "on-conflict", email=email, name="Second")
    assert first.ok and second.ok, (first.error, second.error)
    assert first.metrics["outcome"] == "inserted"
    assert second.metrics["outcome"] == "updated"
    assert scalar(engine, "SELECT count(*) FROM users WHERE email = :e", e=email) == 1
    assert scalar(engine, "SELECT name FROM users WHERE email = :e", e=email) == "Second"
    # The upsert itself is the EXPLAINed statement, replayed in a rolled-back transaction.
    assert second.plan is not None and second.plan.json, second.plan
    assert second.plan.json[0]["Plan"]["Conflict Arbiter Indexes"] == ["users_email_key"]
    assert scalar(engine, "SELECT name FROM users WHERE email = :e", e=email) == "Second"


def test_upsert_do_nothing_returns_no_row_for_an_existing_key(engine, run_recipe):
    email = "nothing@example.com"
    run_recipe(engine, "upsert", "on-conflict", email=email, name="Kept")
    result = run_recipe(engine, "upsert", "on-conflict", email=email, name="Ignored", action="do-nothing")
    assert result.ok, result.error
    assert result.metrics["outcome"] == "nothing returned"
    assert scalar(engine, "SELECT name FROM users WHERE email = :e", e=email) == "Kept"


def no_broken_grammar(notes: list[str]) -> None:
    for line in notes:
        assert "(s)" not in line and " 1 rows" not in line and " 1 errors" not in line, line
        assert "was nothing returned" not in line, line


@pytest.mark.parametrize(
    ("action", "taken", "outcome", "first_note"),
    [
        (
            "do-update",
            False,
            "inserted",
            "{email} was not taken yet: the upsert inserted a new row, id {id}.",
        ),
        (
            "do-update",
            True,
            "updated",
            "{email} was already taken: the same statement updated that row, id {id}, instead of "
            "inserting; RETURNING gave it back with name = 'Second'.",
        ),
        (
            "do-nothing",
            False,
            "inserted",
            "{email} was not taken yet: the upsert inserted a new row, id {id} (DO NOTHING acts only "
            "on a key that exists).",
        ),
        (
            "do-nothing",
            True,
            "nothing returned",
            "{email} was already taken: DO NOTHING left row {id} as it was, and RETURNING gave back no "
            "row at all; the row shown was read by a SELECT of its own.",
        ),
    ],
    ids=["update-new", "update-taken", "nothing-new", "nothing-taken"],
)
def test_upsert_notes_read_right_for_every_action_and_outcome(
    engine, run_recipe, action, taken, outcome, first_note
):
    email = f"{action}-{taken}@example.com"
    if taken:
        run_recipe(engine, "upsert", "on-conflict", email=email, name="First")
    result = run_recipe(engine, "upsert", "on-conflict", email=email, name="Second", action=action)
    assert result.ok, result.error
    assert result.metrics["outcome"] == outcome
    user_id = scalar(engine, "SELECT id FROM users WHERE email = :e", e=email)
    assert result.notes[0] == first_note.format(email=email, id=user_id)
    assert result.notes[1] == "2 statements sent in all: 1 INSERT … ON CONFLICT, 1 SELECT."
    no_broken_grammar(result.notes)


@pytest.mark.parametrize(
    ("variant", "workers", "action"),
    [
        ("select-then-insert", 2, "do-update"),
        ("on-conflict-race", 1, "do-update"),
        ("on-conflict-race", 3, "do-nothing"),
    ],
)
def test_race_notes_count_in_words_that_agree(engine, run_recipe, variant, workers, action):
    result = run_recipe(engine, "upsert", variant, email="agree@example.com", workers=workers, action=action)
    assert result.ok, result.error
    no_broken_grammar(result.notes)
    first = result.notes[0]
    assert first.startswith(f"{workers} worker{'s' if workers > 1 else ''}")
    assert first.endswith("the email now has 1 row.")
    if workers == 1:
        assert first.startswith("1 worker: 0 errors, 1 insert, 0 updates;"), first
    if action == "do-nothing":
        assert f"{workers - 1} with nothing returned (DO NOTHING)" in first, first
    if variant == "select-then-insert" and result.metrics["errors"] == 1:
        assert result.notes[1] == (
            "1 worker inserted the row; 1 other had also seen no row, inserted anyway and was stopped "
            "only by the unique index."
        )


def test_upsert_on_a_non_unique_column_is_postgres_error_not_a_500():
    client = Client(enforce_csrf_checks=True)
    try:
        assert client.get("/api/recipes").status_code == 200
        response = client.post(
            "/api/recipes/upsert/run",
            data=json.dumps({"variant": "on-conflict", "params": {"conflict_target": "name"}}),
            content_type="application/json",
            headers={"X-CSRFToken": client.cookies["csrftoken"].value},
        )
        assert response.status_code == 200
        body = response.json()
        assert body["ok"] is False
        assert "InvalidColumnReference" in body["error"]
        assert "ON CONFLICT" in body["error"]
        assert any("refused" in line for line in body["notes"])
    finally:
        for box in Sandbox.objects.all():
            sandboxes.drop(box)


@pytest.mark.parametrize("variant", ["select-then-insert", "on-conflict-race"])
def test_the_race_with_eight_workers(engine, run_recipe, variant):
    email = "race@example.com"
    result = run_recipe(engine, "upsert", variant, email=email, workers=8)
    assert result.ok, result.error
    rows = scalar(engine, "SELECT count(*) FROM users WHERE email = :e", e=email)
    assert result.metrics["rows_with_email"] == rows == 1
    outcomes = [row[1] for row in result.rows.data]
    assert len(outcomes) == 8
    assert result.metrics["errors"] == outcomes.count("error")
    # Every worker's statements were captured, though they ran on other threads.
    inserts = [s for s in result.statements if s.sql.startswith("INSERT INTO users")]
    assert len(inserts) >= result.metrics["at_once"]
    if variant == "on-conflict-race":
        assert result.metrics["errors"] == 0
        assert outcomes.count("inserted") == 1
    else:
        assert result.metrics["errors"] >= 1
        assert all("UniqueViolation" in row[2] for row in result.rows.data if row[1] == "error")
    assert scalar(engine, "SELECT count(*) FROM pg_stat_activity WHERE usename = current_user") <= 3


# --- soft delete ------------------------------------------------------------------------------
def test_a_deleted_email_blocks_sign_up_until_uniqueness_covers_live_rows_only(engine, run_recipe):
    email = "account3@example.com"
    trap = run_recipe(engine, "soft-delete", "re-register", email=email)
    failed_with(trap, "accounts_email_key")
    assert trap.rows is not None and trap.rows.total == 1  # the table state is shown despite the failure
    assert scalar(engine, "SELECT count(*) FROM accounts WHERE email = :e", e=email) == 1

    fixed = run_recipe(engine, "soft-delete", "partial-unique-index", email=email)
    assert fixed.ok, fixed.error
    live = scalar(engine, "SELECT count(*) FROM accounts WHERE email = :e AND deleted_at IS NULL", e=email)
    dead = scalar(
        engine, "SELECT count(*) FROM accounts WHERE email = :e AND deleted_at IS NOT NULL", e=email
    )
    assert (live, dead) == (1, 1)

    # The next run starts from the documented state again: the trap is still there to run.
    again = run_recipe(engine, "soft-delete", "re-register", email=email)
    failed_with(again, "accounts_email_key")
    assert any("sign-up" in line for line in again.setup)


def test_the_full_unique_is_put_back_even_when_another_sandbox_holds_one(make_sandbox, run_recipe):
    """Catalogs are shared by every sandbox: the check must look at this sandbox's table only."""
    email = "account3@example.com"
    other, mine = (sandboxes.engine_for(make_sandbox()) for _ in range(2))
    run_recipe(other, "soft-delete", "list-live")  # the other sandbox keeps its full UNIQUE
    assert run_recipe(mine, "soft-delete", "partial-unique-index", email=email).ok
    again = run_recipe(mine, "soft-delete", "re-register", email=email)
    failed_with(again, "accounts_email_key")
    assert any("put back the full UNIQUE" in line for line in again.setup)


def test_forgotten_filter_shows_deleted_rows_and_the_central_filter_adds_it(engine, run_recipe):
    forgot = run_recipe(engine, "soft-delete", "list-forgot-filter")
    live = run_recipe(engine, "soft-delete", "list-live")
    central = run_recipe(engine, "soft-delete", "central-filter")
    assert forgot.metrics["deleted_rows_listed"] > 0
    assert live.metrics["deleted_rows_listed"] == central.metrics["deleted_rows_listed"] == 0
    assert [r[0] for r in central.rows.data] == [r[0] for r in live.rows.data]

    main = next(s for s in central.statements if s.main)
    assert "deleted_at IS NULL" in main.sql
    assert "deleted_at" not in central.params  # the filter came from the hook, not from a parameter


def test_soft_delete_and_restore_change_only_deleted_at(engine, run_recipe):
    email = "account5@example.com"
    deleted = run_recipe(engine, "soft-delete", "soft-delete", email=email)
    assert deleted.ok and deleted.metrics["rows_changed"] == 1
    assert scalar(engine, "SELECT deleted_at IS NOT NULL FROM accounts WHERE email = :e", e=email)
    restored = run_recipe(engine, "soft-delete", "restore", email=email)
    assert restored.ok and restored.metrics["rows_changed"] == 1
    assert scalar(engine, "SELECT deleted_at IS NULL FROM accounts WHERE email = :e", e=email)


# --- unit of work -----------------------------------------------------------------------------
def shop_state(engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM line_items), "
                "(SELECT on_hand FROM inventory WHERE sku = 'SKU-1')"
            )
        ).one()


@pytest.mark.parametrize("step", ["1", "2", "3"])
def test_one_transaction_failure_leaves_all_three_tables_as_before(engine, run_recipe, step):
    run_recipe(engine, "unit-of-work", "one-transaction", fail_at_step="none")  # seed and warm up
    before = shop_state(engine)
    result = run_recipe(engine, "unit-of-work", "one-transaction", fail_at_step=step)
    failed_with(result, "violates check constraint")
    assert shop_state(engine) == before
    markers = [s.sql for s in result.statements if s.kind == "transaction"]
    assert "ROLLBACK" in markers and "COMMIT" not in markers
    assert result.metrics["consistent"] is True


def test_commit_each_step_failure_at_step_3_leaves_steps_1_and_2(engine, run_recipe):
    run_recipe(engine, "unit-of-work", "commit-each-step", fail_at_step="none")
    orders, lines, on_hand = shop_state(engine)
    result = run_recipe(engine, "unit-of-work", "commit-each-step", fail_at_step="3")
    failed_with(result, "inventory_on_hand_not_negative")
    assert shop_state(engine) == (orders + 1, lines + 1, on_hand)
    assert result.metrics["steps_applied"] == "1, 2"
    assert result.metrics["consistent"] is False
    assert any("Half-done" in line for line in result.notes)
    markers = [s.sql for s in result.statements if s.kind == "transaction"]
    assert markers.count("COMMIT") == 2 and "ROLLBACK" in markers and "BEGIN" in markers


def test_unit_of_work_without_failure_applies_all_three_steps(engine, run_recipe):
    run_recipe(engine, "unit-of-work", "try-rollback", fail_at_step="none")
    orders, lines, on_hand = shop_state(engine)
    result = run_recipe(engine, "unit-of-work", "try-rollback", fail_at_step="none", quantity=3)
    assert result.ok, result.error
    assert shop_state(engine) == (orders + 1, lines + 1, on_hand - 3)


# --- bulk insert ------------------------------------------------------------------------------
PATHS = ["add-loop", "add-all", "executemany", "values", "returning", "copy"]


@pytest.mark.parametrize("path", PATHS)
def test_bulk_insert_puts_exactly_rows_rows_in_the_table(engine, run_recipe, path):
    rows, batch = 2_500, 1_000
    result = run_recipe(engine, "bulk-insert", path, rows=rows, batch_size=batch)
    assert result.ok, result.error
    assert scalar(engine, "SELECT count(*) FROM bulk_items") == rows == result.metrics["rows_in_table"]
    defaulted = scalar(engine, "SELECT count(source) FROM bulk_items")
    assert result.metrics["python_default_applied"] == defaulted
    carrying = [s for s in result.statements if s.sql.startswith(("INSERT", "COPY"))]
    assert result.metrics["driver_calls"] == len(carrying)
    assert sum(s.rowcount for s in carrying) == rows
    assert result.metrics["rows_per_s"] > 0


def test_executemany_statement_count_is_what_the_capture_saw(engine, run_recipe):
    rows = 3_000
    result = run_recipe(engine, "bulk-insert", "executemany", rows=rows)
    assert result.ok, result.error
    inserts = [s for s in result.statements if s.sql.startswith("INSERT INTO bulk_items")]
    assert result.metrics["driver_calls"] == len(inserts)
    assert sum(s.batches for s in inserts) == rows  # every parameter set accounted for
    assert all(len(s.parameters) + s.parameters_omitted == s.batches for s in inserts)


# Driver calls, parameter sets, and the statements Postgres executed (counted from xmin/cmin).
SHAPES = {
    "add-loop": (3, 2_500, 3),
    "executemany": (1, 2_500, 2_500),
    "values": (3, 3, 3),
    "returning": (3, 2_500, 3),
    "copy": (1, 0, 1),
}


@pytest.mark.parametrize(("path", "shape"), SHAPES.items(), ids=SHAPES)
def test_bulk_insert_tells_calls_from_parameter_sets_from_statements_executed(
    engine, run_recipe, path, shape
):
    rows, batch = 2_500, 1_000
    result = run_recipe(engine, "bulk-insert", path, rows=rows, batch_size=batch)
    assert result.ok, result.error
    m = result.metrics
    assert (m["driver_calls"], m["parameter_sets"], m["statements_executed"]) == shape
    # What the capture says Postgres was asked to run is what the rows say it ran.
    carrying = [s for s in result.statements if s.sql.startswith(("INSERT", "COPY"))]
    assert sum(s.executions for s in carrying) == m["executions_sent"] == m["statements_executed"]
    most = 1 if path == "executemany" else rows if path == "copy" else batch
    assert m["rows_per_statement_max"] == most
    first = result.notes[0]
    assert f"Postgres executed {m['statements_executed']:,} statement" in first, first
    assert (
        "1 driver call " in first if m["driver_calls"] == 1 else f"{m['driver_calls']} driver calls" in first
    )
    assert "(s)" not in " ".join(result.notes)


def test_bulk_insert_title_promises_no_single_statement():
    recipe = recipes.get("bulk-insert")
    assert "one statement" not in recipe.title and recipe.summary.splitlines()[0].rstrip(".") == recipe.title


def test_executemany_note_says_each_parameter_set_was_an_insert(engine, run_recipe):
    result = run_recipe(engine, "bulk-insert", "executemany", rows=500)
    assert result.ok, result.error
    assert result.notes[1] == (
        "1 executemany call handed psycopg 500 parameter sets, and each became an INSERT of its own "
        "on the server."
    )


def test_the_page_shows_executions_beside_parameter_sets(engine, run_recipe):
    recipe = recipes.get("bulk-insert")
    for variant, label in (
        ("executemany", "800 parameter sets, 800 executions"),
        ("returning", "800 parameter sets in one statement"),
    ):
        result = run_recipe(engine, "bulk-insert", variant, rows=800, batch_size=1_000)
        html = render_to_string(
            "recipe.html#results",
            {"recipe": recipe, "form": RunForm(recipe), "result": result, "problem": None},
        )
        assert label in html
        assert escape(result.notes[0]) in html


def test_batched_inserts_count_rows_per_statement_and_keep_the_capture_small(engine, run_recipe):
    rows, batch = 2_500, 1_000
    result = run_recipe(engine, "bulk-insert", "returning", rows=rows, batch_size=batch)
    assert result.ok, result.error
    inserts = [s for s in result.statements if s.sql.startswith("INSERT INTO bulk_items")]
    assert [s.batches for s in inserts] == [s.rowcount for s in inserts]
    assert sum(s.batches for s in inserts) == rows
    assert max(s.batches for s in inserts) <= batch
    assert all(s.parameters_omitted > 0 and len(s.sql) < 4000 for s in inserts)
    assert all("characters left out" in s.sql for s in inserts)
    assert all(s.sql.endswith("RETURNING bulk_items.id") for s in inserts)
    assert result.metrics["ids_returned"] == rows


def test_copy_is_recorded_and_skips_the_python_default(engine, run_recipe):
    result = run_recipe(engine, "bulk-insert", "copy", rows=1_000)
    assert result.ok, result.error
    copies = [s for s in result.statements if s.kind == "copy"]
    assert len(copies) == 1 and copies[0].rowcount == 1_000
    assert result.query_count >= 2  # the COPY counts as a statement the variant sent
    assert result.metrics["python_default_applied"] == scalar(engine, "SELECT count(source) FROM bulk_items")


# --- reset ------------------------------------------------------------------------------------
def test_reset_restores_every_writing_dataset(sandbox, engine, run_recipe):
    run_recipe(engine, "soft-delete", "partial-unique-index", email="account7@example.com")
    run_recipe(engine, "unit-of-work", "commit-each-step", fail_at_step="3")
    sandboxes.reset(sandbox)
    engine = sandboxes.engine_for(sandbox)
    trap = run_recipe(engine, "soft-delete", "re-register", email="account7@example.com")
    failed_with(trap, "accounts_email_key")
    assert any("seeded accounts" in line for line in trap.setup)
    fresh = run_recipe(engine, "unit-of-work", "one-transaction", fail_at_step="none")
    assert fresh.ok and fresh.rows.data[0][1] == 3  # three seeded orders before the run


# --- pages ------------------------------------------------------------------------------------
@pytest.mark.parametrize("slug", ["upsert", "soft-delete", "unit-of-work", "bulk-insert"])
def test_recipe_page_lists_every_variant(client, slug):
    # bulk-insert has a variant named "values": a template must not reach it through `variants.values`.
    response = client.get(f"/recipes/{slug}/")
    assert response.status_code == 200
    html = response.content.decode()
    for variant in recipes.get(slug).variants.values():
        assert f'value="{variant.slug}"' in html, variant.slug
