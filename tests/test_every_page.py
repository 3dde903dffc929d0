"""Every URL pattern rendered as a page, as an htmx partial and as JSON, for a session with history.

A template error anywhere shows up here as a 500, whichever rendering it hides in. The session
holds plain runs, a compare and a sweep, so the history and diff pages have something to show.
"""

from __future__ import annotations

import secrets

import pytest
from django.test import Client
from django.urls import URLPattern, get_resolver
from django.utils import timezone

from playground import sandbox as sandboxes
from playground.models import Run, Sandbox, Snapshot
from playground.running import rooms

pytestmark = pytest.mark.django_db(transaction=True)

RENDERINGS = {
    "page": {},
    "htmx": {"HTTP_HX_REQUEST": "true"},
    "json": {"HTTP_ACCEPT": "application/json"},
}
SMALL = {"rows": "1000", "index": "composite"}
JSON_BODIES = {
    "api-run": {"variant": "keyset", "params": {"page": 2, "rows": 1000}},
    "api-predict": {"question": "rows-read", "guess": 40, "params": {"page": 2, "rows": 1000}},
    "api-challenge": {"challenge": "page-5000", "params": {"rows": 110_000}},
    "api-track-step": {"guess": 2},
}
"""Bodies of the JSON API's POSTs."""


def url_names() -> set[str]:
    return {p.name for p in get_resolver().url_patterns if isinstance(p, URLPattern) and p.name}


@pytest.fixture
def client() -> Client:
    """A session with two runs, a compare and a finished sweep of keyset pagination."""
    client = Client()
    for index in ("none", "composite"):
        client.post("/recipes/keyset-pagination/run", {"variant": "keyset", **SMALL, "index": index})
    client.post("/recipes/exists-count/compare", {"variant": "exists", "rows": "1000"})
    client.post(
        "/recipes/keyset-pagination/sweep",
        {
            "variant": "keyset",
            **SMALL,
            "sweep_param": "page",
            "sweep_from": "1",
            "sweep_to": "30",
            "sweep_points": "2",
            "sweep_y": "rows_read",
        },
    )
    client.post("/sql/run", {"sql": "SELECT 1 AS one"})  # the last run: a scratchpad one
    assert Run.objects.count() >= 7
    yield client
    for box in Sandbox.objects.all():
        sandboxes.drop(box)


def requests(runs: list[int]) -> list[tuple[str, str, str, dict]]:
    """(url name, method, path, data) for every pattern, filled in from the session's runs."""
    run_form = {"variant": "keyset", **SMALL, "page": "3"}
    room = rooms.create("every page", track="onboarding")
    rooms.push(room, {"track": "onboarding", "number": 1})
    host = f"/rooms/host/{room.host_token}/"
    stored = Run.objects.filter(pk__in=runs).first()
    frozen = Snapshot.objects.create(
        token=secrets.token_urlsafe(32),
        recipe="keyset-pagination" if stored is None else stored.recipe,
        result={} if stored is None else stored.result,
        ran_at=timezone.now(),
    )
    sweep = {**run_form, "sweep_param": "page", "sweep_from": "1", "sweep_to": "20", "sweep_points": "2"}
    compared = Run.objects.filter(pk__in=runs, recipe="exists-count")
    swept = Run.objects.filter(pk__in=runs).exclude(sweep=None).first()
    frozen_compare = Snapshot.objects.create(
        token=secrets.token_urlsafe(32),
        kind="compare",
        recipe="exists-count",
        result={"runs": [r.result for r in compared]},
        ran_at=timezone.now(),
    )
    frozen_sweep = Snapshot.objects.create(
        token=secrets.token_urlsafe(32),
        kind="sweep",
        recipe="keyset-pagination",
        result={
            "param": "page",
            "y": "rows_read",
            "x_label": "page",
            "y_label": "rows read",
            "measured": "one run per point",
            "lines": {"keyset-pagination · keyset": [[1, 20], [30, 20]]},
            "failed": [],
        },
        ran_at=timezone.now(),
    )
    return [
        ("shelf", "get", "/", {}),
        ("recipe", "get", "/recipes/keyset-pagination/?page=4", {}),
        ("recipe", "get", "/recipes/keyset-pagination/?projector=1", {}),
        ("recipe-run", "post", "/recipes/keyset-pagination/run", run_form),
        (
            "recipe-compare",
            "post",
            "/recipes/offset-pagination/compare",
            {"variant": "offset", "rows": "1000"},
        ),
        ("recipe-sweep", "post", "/recipes/keyset-pagination/sweep", {**sweep, "sweep_y": "query_count"}),
        (
            "recipe-versions",
            "post",
            "/recipes/offset-pagination/versions",
            {"variant": "offset", "rows": "1000"},
        ),
        ("tracks", "get", "/tracks/", {}),
        ("track", "get", "/tracks/onboarding/", {}),
        ("track-step", "get", "/tracks/onboarding/1/", {}),
        ("track-step", "get", "/tracks/onboarding/1/?projector=1", {}),
        ("track-step-run", "post", "/tracks/onboarding/1/run", {"rows": "5", "guess-stamped": "1"}),
        ("api-tracks", "get", "/api/tracks", {}),
        ("api-track-step", "post", "/api/tracks/onboarding/1/run", {}),
        ("room-new", "get", "/rooms/new", {}),
        ("room-new", "post", "/rooms/new", {"name": "a room", "recipes": ["keyset-pagination"]}),
        ("room-host", "get", host, {}),
        ("room-push", "post", host + "push", {"number": "2"}),
        ("room-join", "get", f"/rooms/join?code={room.code}", {}),
        ("room-join", "post", "/rooms/join", {"code": room.code, "name": "<b>Ada</b>"}),
        ("room", "get", f"/rooms/{room.code}/", {}),
        ("room-go", "get", f"/rooms/{room.code}/go", {}),
        ("room-host", "get", host + "?projector=1", {}),
        ("room-prepare", "post", host + "prepare", {"count": "0"}),  # refused: no thread left running
        ("room-reset", "post", host + "reset", {}),
        ("sql", "get", "/sql/?sql=SELECT+2", {}),
        ("sql-run", "post", "/sql/run", {"sql": "CREATE TABLE IF NOT EXISTS n (i int); SELECT * FROM n"}),
        ("history", "get", "/history", {}),
        ("run", "get", f"/runs/{runs[-1]}/", {}),
        ("run-diff", "get", f"/runs/diff?a={runs[0]}&b={runs[1]}", {}),
        ("run-export", "get", f"/runs/{runs[0]}/export", {}),
        ("run-plan", "get", f"/runs/{runs[0]}/plan.json", {}),
        ("runs-export", "get", f"/runs/export?ids={runs[0]},{runs[1]}", {}),
        ("run-snapshot", "post", f"/runs/{runs[0]}/snapshot", {}),
        ("snapshot", "get", f"/snapshots/{frozen.token}/", {}),
        ("snapshot", "get", f"/snapshots/{frozen_compare.token}/", {}),
        ("snapshot", "get", f"/snapshots/{frozen_sweep.token}/", {}),
        ("compare-snapshot", "post", "/runs/snapshot", {"ids": ",".join(str(r.pk) for r in compared)}),
        (
            "sweep-snapshot",
            "post",
            "/recipes/keyset-pagination/sweep/snapshot",
            {"sweep_id": str(swept.sweep) if swept else "", "sweep_param": "page", "sweep_y": "rows_read"},
        ),
        ("track-export", "get", "/tracks/onboarding/export", {}),
        ("api-recipes", "get", "/api/recipes", {}),
        ("api-run", "post", "/api/recipes/keyset-pagination/run", {}),
        (
            "recipe-predict",
            "post",
            "/recipes/keyset-pagination/predict",
            {**run_form, "question": "sort", "guess-sort": "no"},
        ),
        (
            "recipe-challenge",
            "post",
            "/recipes/keyset-pagination/challenge",
            {**run_form, "challenge": "page-5000", "rows": "110000"},
        ),
        ("api-predict", "post", "/api/recipes/keyset-pagination/predict", {}),
        ("api-challenge", "post", "/api/recipes/keyset-pagination/challenge", {}),
        ("sandbox-reset", "post", "/sandbox/reset", {}),
        ("healthz", "get", "/healthz", {}),
        ("login", "get", "/accounts/login/", {}),
        ("logout", "post", "/accounts/logout/", {}),
        ("oidc_authentication_init", "get", "/oidc/authenticate/?next=/tracks/", {}),
        ("oidc_authentication_callback", "get", "/oidc/callback/", {}),  # no code: refused
        ("operator-status", "get", "/operator/", {}),  # staff only: this session is sent to sign in
        ("operator-reap", "post", "/operator/reap", {}),
        # Last: closing drops the sandboxes of the room's members, this session's too (its runs go).
        ("room-close", "post", host + "close", {}),
    ]


def configure_oidc(settings) -> None:
    """Signing in with a provider on, its endpoints given (no discovery: nothing is asked of it)."""
    settings.OIDC_ISSUER = "https://sso.example.com/realms/company"
    settings.OIDC_RP_CLIENT_ID = "playground"
    settings.OIDC_RP_CLIENT_SECRET = "secret"
    for name in ("AUTHORIZATION", "TOKEN", "USER", "JWKS"):
        setattr(settings, f"OIDC_OP_{name}_ENDPOINT", f"https://sso.example.com/{name.lower()}")


@pytest.mark.parametrize("rendering", list(RENDERINGS))
def test_every_url_renders_in_every_way_it_offers(client, rendering, settings):
    configure_oidc(settings)
    headers = RENDERINGS[rendering]
    failures = []
    runs = list(Run.objects.order_by("pk").values_list("pk", flat=True))
    for name, method, path, data in requests(runs):
        if name in JSON_BODIES:
            response = client.post(path, JSON_BODIES[name], content_type="application/json", **headers)
        else:
            response = getattr(client, method)(path, data, **headers)
        if response.status_code >= 500 or response.status_code == 404:
            failures.append(f"{name} {path}: {response.status_code} {response.content[:200]!r}")
            continue
        kind = response.get("Content-Type", "")
        offers_json = name.startswith("api") or name in (
            "run",
            "history",
            "run-diff",
            "recipe-run",
            "recipe-predict",
            "recipe-challenge",
            "tracks",
            "track",
            "track-step",
            "track-step-run",
            "run-export",
            "run-plan",
            "runs-export",
            "track-export",
            "room-host",
            "room-join",
            "snapshot",
            "room",
            "sql",
            "sql-run",
        )
        if rendering == "json" and offers_json and "application/json" not in kind:
            failures.append(f"{name}: asked for JSON, got {kind}")
        whole_page = (
            rendering == "page" and "text/html" in kind and method == "get" and response.status_code == 200
        )
        if whole_page and b"</html>" not in response.content:
            failures.append(f"{name}: not a whole page")
    assert not failures, "\n".join(failures)


def test_every_url_pattern_is_in_the_list():
    listed = {name for name, *_ in requests([1, 2])}
    assert url_names() <= listed, f"add these to requests(): {url_names() - listed}"
