"""The operator's view: Django's admin and the status page, for staff only, and every action staff
take there carried out for real and logged (who, what, when)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from sqlalchemy import text

from playground import sandbox as sandboxes
from playground.models import MinuteTally, OperatorAction, Room, Run, Sandbox
from playground.ops import tally
from playground.running import rooms
from tests.web import api, post

pytestmark = pytest.mark.django_db(transaction=True)

RUN = {"variant": "keyset", "params": {"page": 2, "rows": 1000}}


@pytest.fixture
def operator():
    return get_user_model().objects.create_superuser("olga", password="a long enough password")


@pytest.fixture
def staff(operator, client) -> Client:
    client.force_login(operator)
    return client


@pytest.fixture
def visitor(client) -> Client:
    """Signed in, but not staff."""
    client.force_login(get_user_model().objects.create_user("vic", password="another long password"))
    return client


def role_exists(role: str) -> bool:
    with sandboxes.admin_engine().connect() as conn:
        return (
            conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first() is not None
        )


@pytest.fixture
def history(drop_sandboxes) -> Sandbox:
    """A visitor's sandbox with one run in it, a room, and an earlier operator action."""
    visitor = Client()
    assert api(visitor, "/api/recipes/keyset-pagination/run", RUN).status_code == 200
    rooms.create("Tuesday workshop", track="onboarding")
    return Sandbox.objects.get()


ADMIN_PAGES = [
    ("/admin/", ["Operator actions", "Status: sandboxes"]),
    ("/admin/playground/sandbox/", ["sbxt_", "MB", "Runs kept"]),
    ("/admin/playground/room/", ["Tuesday workshop"]),
    ("/admin/playground/run/", ["keyset-pagination"]),
    ("/admin/playground/operatoraction/", ["0 operator actions"]),
    ("/operator/", ["Live sandboxes", "of 200", "Reap now", "Minute by minute"]),
]


@pytest.mark.parametrize(("path", "shown"), ADMIN_PAGES)
def test_every_operator_page_renders_for_staff(staff, history, path, shown):
    response = staff.get(path)
    assert response.status_code == 200, response.content[:300]
    html = response.content.decode()
    assert "</html>" in html
    for words in shown:
        assert words in html, (path, words)


def test_a_sandbox_and_a_room_open_read_only_for_staff(staff, history):
    room = Room.objects.get()
    for path in (
        f"/admin/playground/sandbox/{history.pk}/change/",
        f"/admin/playground/room/{room.pk}/change/",
    ):
        response = staff.get(path)
        assert response.status_code == 200
        assert room.host_token not in response.content.decode()  # the host's secret is not shown


@pytest.mark.parametrize("path", ["/admin/", "/admin/playground/sandbox/", "/operator/"])
def test_anyone_but_staff_is_sent_to_sign_in(client, visitor, path):
    for who in (Client(), visitor):
        response = who.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_a_script_without_staff_rights_gets_401_or_403(visitor):
    assert Client().get("/operator/", HTTP_ACCEPT="application/json").status_code == 401
    assert visitor.get("/operator/", HTTP_ACCEPT="application/json").status_code == 403


def test_reap_now_is_refused_to_non_staff_and_does_nothing(visitor, make_sandbox):
    box = make_sandbox()
    Sandbox.objects.filter(pk=box.pk).update(last_used_at=timezone.now() - timedelta(days=2))
    response = post(visitor, "/operator/reap", {})
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert Sandbox.objects.filter(pk=box.pk).exists() and role_exists(box.role)
    assert not OperatorAction.objects.exists()


def test_dropping_a_sandbox_from_the_admin_drops_it_and_logs_who(staff, operator, history):
    role = history.role
    response = post(
        staff,
        "/admin/playground/sandbox/",
        {"action": "drop_sandboxes", "_selected_action": [history.pk]},
    )
    assert response.status_code == 302
    assert not Sandbox.objects.filter(role=role).exists() and not role_exists(role)
    assert not Run.objects.exists()  # its runs went with it
    logged = OperatorAction.objects.get()
    assert (logged.user, logged.username, logged.action, logged.target) == (
        operator,
        "olga",
        "drop sandbox",
        role,
    )
    assert logged.detail["runs"] == 1
    assert timezone.now() - logged.at < timedelta(minutes=1)
    page = staff.get("/admin/playground/operatoraction/").content.decode()
    assert "drop sandbox" in page and role in page and "olga" in page


def test_closing_a_room_from_the_admin_closes_it_and_logs_it(staff, history):
    room = Room.objects.get()
    response = post(
        staff, "/admin/playground/room/", {"action": "close_rooms", "_selected_action": [room.pk]}
    )
    assert response.status_code == 302
    room.refresh_from_db()
    assert room.expires_at <= timezone.now()
    assert rooms.find(room.code) is None  # the join code no longer works
    logged = OperatorAction.objects.get()
    assert logged.action == "close room" and room.code in logged.target and logged.username == "olga"


def test_reap_now_drops_the_idle_sandboxes_and_logs_them(staff, make_sandbox):
    idle, busy = make_sandbox(), make_sandbox()
    Sandbox.objects.filter(pk=idle.pk).update(last_used_at=timezone.now() - timedelta(days=2))
    response = post(staff, "/operator/reap", {})
    assert response.status_code == 302 and response["Location"] == "/operator/"
    assert not role_exists(idle.role) and role_exists(busy.role)
    logged = OperatorAction.objects.get()
    assert logged.action == "reap now" and logged.detail["dropped"] == [idle.role]
    page = staff.get("/operator/").content.decode()
    assert "1 idle sandbox(es) dropped" in page


def test_the_delete_action_is_not_offered_for_rows_the_site_keeps(staff, history):
    for model in ("sandbox", "room"):
        assert "delete_selected" not in staff.get(f"/admin/playground/{model}/").content.decode()
    assert staff.get("/admin/playground/sandbox/add/").status_code == 403


def total(status: dict, figure: str) -> int:
    """A figure over the status page's whole window (a minute may turn during a test)."""
    return sum(minute[figure] for minute in status["minutes"])


def test_status_counts_sandboxes_runs_and_refusals(staff, settings, history):
    staff_json = {"HTTP_ACCEPT": "application/json"}
    before = staff.get("/operator/", **staff_json).json()
    assert before["sandboxes"] == {"live": 1, "cap": settings.PLAYGROUND["MAX_SANDBOXES"]}
    assert before["sandbox_database_bytes"] > 1_000_000
    assert 0 < before["connections"]["in_use"] <= before["connections"]["server_max"]
    assert total(before, "runs") == 1
    # A full instance refuses a new visitor (503); a spent run allowance refuses a run (429).
    limits = {**settings.PLAYGROUND, "RUN_BURST": 1, "RUNS_PER_MINUTE": 1}
    settings.PLAYGROUND = {**limits, "MAX_SANDBOXES": 1}
    assert api(Client(), "/api/recipes/keyset-pagination/run", RUN).status_code == 503
    settings.PLAYGROUND = {**limits, "MAX_SANDBOXES": 2}
    spender = Client()
    assert api(spender, "/api/recipes/keyset-pagination/run", RUN).status_code == 200
    assert api(spender, "/api/recipes/keyset-pagination/run", RUN).status_code == 429
    after = staff.get("/operator/", **staff_json).json()
    assert (total(after, "too_many"), total(after, "unavailable"), total(after, "runs")) == (1, 1, 2)
    assert after["per_minute"]["runs"] >= 0 and MinuteTally.objects.count() in (1, 2)  # a minute may turn


def test_refusal_counts_older_than_a_day_are_forgotten():
    old = MinuteTally.objects.create(minute=tally.this_minute() - timedelta(days=2), too_many=3)
    tally.count(429)
    assert tally.forget_old() == 1
    assert not MinuteTally.objects.filter(pk=old.pk).exists()
    assert MinuteTally.objects.get().too_many == 1
