"""Runs on PostgreSQL 16 and 18 side by side: what a newer planner does differently, read from
the runs themselves, and a variant that needs a newer server refused on the older one."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from playground import sandbox as sandboxes
from playground.models import Run
from playground.running import runner
from recipes.plan import summarize
from tests.test_runner import VARIANTS
from tests.web import api, post

pytestmark = pytest.mark.django_db(transaction=True)

FEW_OWNERS = {"variant": "owner-created", "query": "one-instant", "rows": "20000", "owners": "50"}
"""The column-order lesson turned around: (owner_id, created_at) for a query on created_at alone."""


def compare_versions(client, slug: str, data: dict, **headers: str):
    return post(client, f"/recipes/{slug}/versions", data, **headers)


def test_18_skip_scans_the_index_16_cannot_use(client, drop_sandboxes):
    response = compare_versions(client, "indexes", FEW_OWNERS, Accept="application/json")
    assert response.status_code == 200, response.content
    body = response.json()
    old, new = body["runs"]
    assert [old["server_version"][:3], new["server_version"][:3]] == ["16.", "18."]
    assert old["ok"] and new["ok"] and old["rows"]["data"] == new["rows"]["data"]  # same answer
    on_16, on_18 = (summarize(run["plan"]["json"]) for run in (old, new))
    # 16 cannot search the index without its leading column: it reads the table.
    assert on_16.key_scan.node_type == "Seq Scan" and not any(n.index for n in on_16.nodes)
    # 18 skips through it, one search per distinct owner_id (and one more to find the end).
    used = [n for n in on_18.nodes if n.index == "ix_documents_owner_created"]
    assert used and used[0].index_searches >= 50
    assert on_18.rows_read < on_16.rows_read
    assert any(line.startswith("Plan nodes gone: Seq Scan") for line in body["changes"]), body["changes"]
    assert Run.objects.count() == 2  # both kept, warm-ups not


def test_the_compare_versions_page_shows_both_plans_and_what_changed(client, drop_sandboxes):
    page = compare_versions(client, "indexes", FEW_OWNERS)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="versions"' in html and 'id="version-changes"' in html
    assert html.count('<table class="plan">') == 2
    assert "<h2>PostgreSQL 16." in html and "<h2>PostgreSQL 18." in html
    assert "ix_documents_owner_created" in html
    a, b = Run.objects.order_by("created_at").values_list("pk", flat=True)
    assert f"/runs/diff?a={a}&amp;b={b}" in html


def test_uuid7_is_refused_on_16_before_anything_runs(client, drop_sandboxes):
    refused = compare_versions(
        client, "uuid-keys", {"variant": "uuid7", "rows": "1000"}, Accept="application/json"
    )
    assert refused.status_code == 400
    assert "needs PostgreSQL 18" in refused.json()["errors"]["variant"][0]
    page = compare_versions(client, "uuid-keys", {"variant": "uuid7", "rows": "1000"})
    assert page.status_code == 400 and "needs PostgreSQL 18" in page.content.decode()
    assert not Run.objects.exists()
    direct = api(
        client, "/api/recipes/uuid-keys/run", {"variant": "uuid7", "params": {"rows": 1000}, "pg": 16}
    )
    assert direct.status_code == 400 and not Run.objects.exists()


@pytest.fixture(scope="module")
def sandbox_on_16(django_db_blocker):
    """One sandbox on the PostgreSQL 16 server for every variant below (tables seeded once)."""
    with django_db_blocker.unblock():
        box = sandboxes.provision(version=16)
        with sandboxes.engine_for(box).connect() as conn:
            assert conn.execute(text("SHOW server_version_num")).scalar_one().startswith("16")
        yield box
        sandboxes.drop(box)


@pytest.mark.parametrize(("recipe", "variant"), VARIANTS, ids=[f"{r.slug}:{v.slug}" for r, v in VARIANTS])
def test_every_variant_runs_on_16_or_says_it_needs_newer(sandbox_on_16, recipe, variant):
    """What the every-variant test of test_runner.py holds on 18, on 16: each variant runs as
    declared there, unless it declares the newer version it needs."""
    assert sandboxes.named(sandbox_on_16.server).version == 16
    if variant.needs_version is not None and variant.needs_version > 16:
        assert variant.refusal_on(16)
        return
    params = {"rows": 1000} if "rows" in recipe.defaults() else {}
    result = runner.run(
        recipe=recipe, variant=variant.slug, params=params, engine=sandboxes.engine_for(sandbox_on_16)
    )
    if variant.fails_on_purpose:
        assert result.ok is False and variant.fails_with in (result.error or "")
    else:
        assert result.ok, result.error
    if variant.main:
        assert result.plan is not None and "Execution Time" in result.plan.json[0]
