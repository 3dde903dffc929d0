"""Frozen snapshots of a stored run: made by the run's session only, read by anyone with the link."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

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
