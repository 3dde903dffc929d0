"""Frozen snapshots of a stored run, a compare and a sweep: made by their session only, read by
anyone with the link."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.test import Client

import recipes
from playground import sandbox as sandboxes
from playground.models import Run, Sandbox, Snapshot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _drop_sandboxes(transactional_db) -> Iterator[None]:
    yield
    for box in Sandbox.objects.all():
        sandboxes.drop(box)


def test_a_snapshot_shows_the_run_as_it_was_after_its_sandbox_is_gone():
    owner = Client()
    owner.post("/recipes/keyset-pagination/run", {"variant": "keyset", "rows": "1000", "page": "3"})
    run = Run.objects.get()
    reopened = owner.get(f"/runs/{run.pk}/").content.decode()
    assert f'action="/runs/{run.pk}/snapshot"' in reopened
    stranger = Client()
    assert stranger.post(f"/runs/{run.pk}/snapshot").status_code == 404  # not their run
    made = owner.post(f"/runs/{run.pk}/snapshot")
    assert made.status_code == 302 and not Snapshot.objects.exclude(pk=Snapshot.objects.get().pk).exists()
    link = made["Location"]
    assert link.startswith("/snapshots/") and len(link.split("/")[2]) >= 43
    for box in Sandbox.objects.all():  # the run goes with its sandbox; the snapshot stays
        sandboxes.drop(box)
    assert not Run.objects.exists()
    page = stranger.get(link).content.decode()
    assert 'id="frozen-note"' in page and "read-only" in page and 'id="query-count"' in page
    assert "/runs/" not in page  # no link into the owner's history
    as_json = stranger.get(link, HTTP_ACCEPT="application/json").json()
    assert as_json["recipe"] == "keyset-pagination" and as_json["params"]["page"] == 3
    assert stranger.get("/snapshots/" + "x" * 43 + "/").status_code == 404
    api = owner.post("/recipes/keyset-pagination/run", {"variant": "keyset", "rows": "1000"})
    assert api.status_code == 200
    frozen = owner.post(f"/runs/{Run.objects.get().pk}/snapshot", HTTP_ACCEPT="application/json")
    assert frozen.status_code == 201 and frozen.json()["url"].startswith("http://testserver/snapshots/")


def hidden_fields(page: str, form_id: str) -> dict[str, str]:
    """The hidden inputs of the freeze form whose button has `form_id`."""
    form = page[: page.index(f'id="{form_id}"')].rsplit("<form", 1)[1]
    return dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', form))


def test_a_frozen_compare_shows_every_variant_as_it_was():
    owner, stranger = Client(), Client()
    page = owner.post("/recipes/exists-count/compare", {"variant": "exists", "rows": "1000"}).content.decode()
    fields = hidden_fields(page, "freeze-compare")
    ids = fields["ids"].split(",")
    assert len(ids) == len(recipes.get("exists-count").variants) >= 2
    assert stranger.post("/runs/snapshot", fields).status_code == 404  # not their runs
    assert owner.post("/runs/snapshot", {"ids": "1,x"}).status_code == 400
    made = owner.post("/runs/snapshot", fields)
    assert made.status_code == 302 and Snapshot.objects.get().kind == "compare"
    figures = {r.variant: r.query_count for r in Run.objects.all()}
    for box in Sandbox.objects.all():
        sandboxes.drop(box)
    shown = stranger.get(made["Location"]).content.decode()
    assert 'id="frozen-note"' in shown and "A compare from" in shown and 'id="comparison"' in shown
    assert "/runs/" not in shown and 'id="freeze-compare"' not in shown
    as_json = stranger.get(made["Location"], HTTP_ACCEPT="application/json").json()
    assert as_json["kind"] == "compare"
    assert {r["variant"]: r["query_count"] for r in as_json["runs"]} == figures


def test_a_frozen_sweep_shows_its_chart_as_it_was():
    owner, stranger = Client(), Client()
    sweep = {
        "variant": "keyset",
        "rows": "1000",
        "sweep_param": "page",
        "sweep_from": "1",
        "sweep_to": "30",
        "sweep_points": "2",
        "sweep_y": "rows_read",
    }
    page = owner.post("/recipes/keyset-pagination/sweep", sweep).content.decode()
    fields = hidden_fields(page, "freeze-sweep")
    assert fields["sweep_param"] == "page" and fields["sweep_y"] == "rows_read"
    url = "/recipes/keyset-pagination/sweep/snapshot"
    assert stranger.post(url, fields).status_code == 404  # not their sweep
    assert owner.post(url, {**fields, "sweep_y": "nonsense"}).status_code == 400
    made = owner.post(url, fields)
    assert made.status_code == 302
    for box in Sandbox.objects.all():
        sandboxes.drop(box)
    shown = stranger.get(made["Location"]).content.decode()
    assert "A sweep from" in shown and 'id="sweep-table"' in shown and "keyset-pagination · keyset" in shown
    assert 'hx-post="/recipes/keyset-pagination/sweep"' not in shown and 'id="freeze-sweep"' not in shown
    lines = stranger.get(made["Location"], HTTP_ACCEPT="application/json").json()["lines"]
    assert [x for x, _ in lines["keyset-pagination · keyset"]] == [1, 30]
