"""Signed in, a person's sandbox (and so their runs and snapshots) and their track progress are
theirs in every browser; visitors who are not signed in keep one sandbox per browser."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from playground import sandbox as sandboxes
from playground.models import Sandbox, StepProgress
from tests.web import api, post

pytestmark = pytest.mark.django_db(transaction=True)

RUN = {"variant": "keyset", "params": {"page": 2, "rows": 1000}}
JSON = {"HTTP_ACCEPT": "application/json"}
PASSWORD = "a long enough password"


@pytest.fixture(autouse=True)
def _drop(drop_sandboxes) -> None:
    return None


@pytest.fixture
def ada():
    return get_user_model().objects.create_user("ada", password=PASSWORD)


def browser_of(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def run(client: Client) -> int:
    response = api(client, "/api/recipes/keyset-pagination/run", RUN)
    assert response.status_code == 200, response.content
    return response.json()["run_id"]


def history_ids(client: Client) -> list[int]:
    return [r["id"] for r in client.get("/history", **JSON).json()["runs"]]


def onboarding_done(client: Client) -> list[int]:
    return client.get("/tracks/onboarding/", **JSON).json()["progress"]["done"]


def test_two_browsers_of_one_person_share_the_sandbox_runs_snapshots_and_progress(ada):
    work, laptop = browser_of(ada), browser_of(ada)
    first = run(work)
    assert history_ids(laptop) == [first]
    second = run(laptop)
    assert Sandbox.objects.get().owner == ada  # one sandbox, the person's
    assert history_ids(work) == [second, first]
    snapshot = post(laptop, f"/runs/{first}/snapshot", {}, Accept="application/json")
    assert snapshot.status_code in (200, 201)
    assert api(work, "/api/tracks/onboarding/1/run", {"guess": 2}).status_code == 200
    assert onboarding_done(laptop) == [1]


def test_someone_else_sees_none_of_it(ada):
    first = run(browser_of(ada))
    bob = browser_of(get_user_model().objects.create_user("bob", password=PASSWORD))
    assert history_ids(bob) == []
    assert bob.get(f"/runs/{first}/", **JSON).status_code == 404
    run(bob)
    assert {box.owner.username for box in Sandbox.objects.select_related("owner")} == {"ada", "bob"}


def test_visitors_not_signed_in_keep_one_sandbox_per_browser():
    one, other = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    run(one), run(other)
    assert Sandbox.objects.count() == 2 and not Sandbox.objects.filter(owner__isnull=False).exists()
    assert len(history_ids(one)) == 1


def test_what_a_browser_did_before_signing_in_becomes_the_persons(ada):
    browser = Client(enforce_csrf_checks=True)
    before = run(browser)
    assert api(browser, "/api/tracks/onboarding/1/run", {"guess": 2}).status_code == 200
    browser.get("/accounts/login/")
    assert post(browser, "/accounts/login/", {"username": "ada", "password": PASSWORD}).status_code == 302
    assert Sandbox.objects.get().owner == ada
    elsewhere = browser_of(ada)
    ran_here = history_ids(browser)
    assert len(ran_here) == 2 and ran_here[-1] == before  # the recipe run, then the track step's
    assert history_ids(elsewhere) == ran_here
    assert onboarding_done(elsewhere) == [1]
    assert set(StepProgress.objects.values_list("learner", flat=True)) == {f"user:{ada.pk}"}


def test_a_person_who_has_a_sandbox_gets_it_back_when_signing_in_elsewhere(ada):
    mine = run(browser_of(ada))
    browser = Client(enforce_csrf_checks=True)
    run(browser)  # a sandbox of this browser's own, before signing in
    browser.get("/accounts/login/")
    post(browser, "/accounts/login/", {"username": "ada", "password": PASSWORD})
    assert history_ids(browser) == [mine]


def test_when_the_persons_sandbox_is_reaped_every_browser_moves_to_the_new_one(ada):
    work, laptop = browser_of(ada), browser_of(ada)
    run(work)
    sandboxes.drop(Sandbox.objects.get())
    fresh = run(laptop)
    again = run(work)  # its session named the dropped sandbox: it finds the person's new one
    assert Sandbox.objects.count() == 1
    assert history_ids(work) == [again, fresh] == history_ids(laptop)


def test_a_person_keeps_one_sandbox_per_version_in_every_browser(ada):
    """Their latest sandbox of 16 does not stand in for their sandbox of 18, nor the reverse."""
    work, laptop = browser_of(ada), browser_of(ada)
    on_18 = run(work)
    response = api(work, "/api/recipes/keyset-pagination/run", {**RUN, "pg": 16})
    assert response.status_code == 200, response.content
    on_16 = response.json()
    assert on_16["server_version"].startswith("16.")
    boxes = dict(Sandbox.objects.filter(owner=ada).values_list("server", "role"))
    assert len(boxes) == 2  # the later one, on 16, is their most recently used

    again = api(laptop, "/api/recipes/keyset-pagination/run", RUN).json()
    assert again["server_version"].startswith("18.")
    assert sorted(history_ids(laptop)) == sorted([on_18, on_16["run_id"], again["run_id"]])
    assert Sandbox.objects.filter(owner=ada).count() == 2  # no third sandbox was made
