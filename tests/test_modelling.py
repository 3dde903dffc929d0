"""The Modelling shelf: which writes maintain updated_at, and what a key type costs, measured."""

from __future__ import annotations

import pytest

from recipes.modelling.uuid_keys import make_uuid7

pytestmark = pytest.mark.django_db(transaction=True)


def changed(result) -> list[bool]:
    assert result.ok, result.error
    return [row[-1] for row in result.rows.data]


@pytest.mark.parametrize(
    ("variant", "bumps"),
    [
        ("orm-update", True),
        ("bulk-update", True),
        ("bulk-update-by-pk", True),
        ("raw-update", False),
        ("trigger", True),
    ],
)
def test_which_write_paths_bump_updated_at(engine, run_recipe, variant, bumps):
    result = run_recipe(engine, "timestamp-mixin", variant, rows=4)
    assert changed(result) == [bumps] * 4
    for _id, _created, before, after, moved in result.rows.data:
        assert (after > before) is moved  # ISO strings of one time zone sort as times
    assert result.metrics["updated_at_bumped"] == (4 if bumps else 0)


def test_bulk_update_statement_sets_updated_at_itself(engine, run_recipe):
    result = run_recipe(engine, "timestamp-mixin", "bulk-update", rows=3)
    (update,) = [s for s in result.statements if s.kind == "query" and s.sql.startswith("UPDATE")]
    assert "updated_at=now()" in update.sql.replace(" ", "")
    raw = run_recipe(engine, "timestamp-mixin", "raw-update", rows=3)
    (update,) = [s for s in raw.statements if s.kind == "query" and s.sql.startswith("UPDATE")]
    assert "updated_at" not in update.sql


def test_one_transaction_gives_every_row_the_same_now(engine, run_recipe):
    result = run_recipe(engine, "timestamp-mixin", "orm-update", rows=6)
    assert result.metrics["updated_at_bumped"] == 6
    assert result.metrics["distinct_new_updated_at"] == 1
    assert len({row[3] for row in result.rows.data}) == 1


def test_insert_fills_both_timestamps_from_the_server(engine, run_recipe):
    result = run_recipe(engine, "timestamp-mixin", "insert", rows=3)
    assert result.ok, result.error
    for _id, created, before, after, _moved in result.rows.data:
        assert before is None and created == after


def test_uuid4_index_is_not_smaller_than_bigint(engine, run_recipe):
    sizes = {
        variant: run_recipe(engine, "uuid-keys", variant, rows=20_000).metrics
        for variant in ("bigint-identity", "uuid4", "uuid7", "uuid-text")
    }
    assert sizes["uuid4"]["pk_index_kb"] > sizes["bigint-identity"]["pk_index_kb"]
    assert sizes["uuid7"]["pk_index_kb"] <= sizes["uuid4"]["pk_index_kb"]
    assert sizes["uuid-text"]["index_bytes_per_key"] > sizes["uuid4"]["index_bytes_per_key"]
    assert sizes["uuid-text"]["table_kb"] > sizes["uuid4"]["table_kb"]


def test_time_ordered_keys_sort_by_insertion_and_random_ones_do_not(engine, run_recipe):
    ordered = run_recipe(engine, "uuid-keys", "uuid7", rows=5_000)
    shuffled = run_recipe(engine, "uuid-keys", "uuid4", rows=5_000)
    first = [row[0] for row in ordered.rows.data]
    assert first == sorted(first)
    assert [row[0] for row in shuffled.rows.data] != sorted(row[0] for row in shuffled.rows.data)


def test_python_keys_use_the_models_default(engine, run_recipe):
    result = run_recipe(engine, "uuid-keys", "uuid7", rows=2_000, generated="python")
    assert result.ok, result.error
    (insert,) = [s for s in result.statements if s.kind == "query" and s.sql.startswith("INSERT")]
    assert insert.batches == 2_000 or "VALUES" in insert.sql
    first = [row[0] for row in result.rows.data]
    assert first == sorted(first)


def test_uuid7_helper_is_version_7_and_time_ordered():
    keys = [make_uuid7() for _ in range(2000)]
    assert {k.version for k in keys} == {7}
    assert {k.variant for k in keys} == {"specified in RFC 4122"}
    millis = [k.int >> 80 for k in keys]
    assert millis == sorted(millis)  # the timestamp prefix never goes back
    assert sum(a > b for a, b in zip(keys, keys[1:], strict=False)) <= len(keys) // 100


def test_leaf_count_leaves_out_the_metapage_and_the_root(engine, run_recipe):
    # 10,000 bigint keys fit under one root page: the index is the metapage, the root and the leaves.
    for rows in (1_000, 10_000):
        m = run_recipe(engine, "uuid-keys", "bigint-identity", rows=rows).metrics
        assert m["index_levels"] == 2
        assert m["index_leaf_pages"] == m["index_pages"] - 2
        expected = 100 * rows * m["index_entry_bytes"] / (m["index_leaf_pages"] * (8192 - 24 - 16))
        assert m["leaf_fill_pct_est"] == round(expected, 1)
    assert m["leaf_fill_pct_est"] >= 85  # appended keys fill each leaf before the next one starts


def test_random_placement_is_said_only_of_random_keys(engine, run_recipe):
    in_order = run_recipe(engine, "uuid-keys", "bigint-identity", rows=1_000)
    assert in_order.metrics["key_order_correlation"] >= 0.99
    assert not [line for line in in_order.notes if "random" in line], in_order.notes
    assert any("ascending order" in line for line in in_order.notes), in_order.notes
    shuffled = run_recipe(engine, "uuid-keys", "uuid4", rows=10_000)
    assert abs(shuffled.metrics["key_order_correlation"]) < 0.3
    assert any(line.startswith("Keys arrived in random order") for line in shuffled.notes), shuffled.notes
    leaves = [line for line in shuffled.notes if "pages are leaves" in line]
    assert leaves and f"{shuffled.metrics['index_leaf_pages']:,} of the index's" in leaves[0]


def test_bare_mapped_int_key_is_a_serial_int4_beside_bigint_identity(make_sandbox, run_recipe):
    from playground import sandbox as sandboxes

    # Two sandboxes hold the same tables: the catalog lookup must see only the run's own schema.
    for sandbox in (make_sandbox(), make_sandbox()):
        result = run_recipe(sandboxes.engine_for(sandbox), "uuid-keys", "mapped-int", rows=1_000)
        assert result.ok, result.error
        by_table = {row[0]: row for row in result.rows.data}
        assert sorted(by_table) == ["keys_bigint", "keys_int"]
        _, ddl, key_type, default, largest, index_kb = by_table["keys_int"]
        assert (ddl, key_type, largest) == ("id SERIAL NOT NULL", "integer", 2**31 - 1)
        assert default.startswith("nextval(")
        _, ddl, key_type, default, largest, big_kb = by_table["keys_bigint"]
        assert (ddl, key_type, largest) == ("id BIGINT GENERATED BY DEFAULT AS IDENTITY", "bigint", 2**63 - 1)
        assert index_kb == big_kb  # a 4-byte key is padded to 8 in the index: nothing saved
        sent = [s.sql for s in result.statements if s.sql.strip().startswith("CREATE TABLE keys_int")]
        assert sent and "id SERIAL NOT NULL" in sent[0]
        assert result.metrics["key_type"] == "integer"
        assert any('keys_int.id: "id SERIAL NOT NULL"' in line and "integer" in line for line in result.notes)


def test_the_leaf_counting_explains_keep_their_place_in_the_statement_list(engine, run_recipe):
    from recipes.stats import statement_stats

    result = run_recipe(engine, "uuid-keys", "bigint-identity", rows=1_000)
    stats = statement_stats(result.statements)
    sent = [g.first.sql for g in stats.groups if g.first.kind == "explain"]
    assert sent and all("FROM keys_bigint WHERE id" in sql for sql in sent)
    assert len(stats.explains) == 2  # the runner's own, JSON and text, after the run
    assert all("ORDER BY keys_bigint.id" in s.sql for s in stats.explains)
