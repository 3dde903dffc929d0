"""One shared instance, many people: every run ends by its deadline, a run whose client left stops,
a run's memory and result stay bounded, and heavy runs take turns while light ones stay quick."""

from __future__ import annotations

import json
import re
import shutil
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.test import Client
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

import recipes
from playground import sandbox as sandboxes
from playground.models import Run, Sandbox
from playground.running import apart, service
from playground.running.deadline import CLIENT_GONE, RunStopped, Watch, socket_closed
from playground.running.service import SESSION_KEY
from playground.sandbox import engines
from recipes.validation import InvalidParams
from tests import test_deploy as deploy
from tests.conftest import connect_kwargs
from tests.probes import activity, probe, recipe_of, sandboxed_session, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def session(transactional_db):
    yield from sandboxed_session()


@pytest.fixture
def sessions(transactional_db):
    """Four sessions, each of which gets a sandbox of its own on its first run."""
    made = [sandboxed_session() for _ in range(4)]
    yield [next(m) for m in made]
    for m in made:
        next(m, None)


def knobs(settings, **values) -> None:
    settings.PLAYGROUND = {**settings.PLAYGROUND, **values}


def role_of(session) -> str:
    return session[SESSION_KEY]


def stubborn_loop(pause_sql: str):
    """A variant sending short statements for ever, carrying on after every database error: what
    a cancel alone does not stop."""

    def loop(run, p):
        with run.connect() as conn:
            while True:
                try:
                    conn.execute(text(pause_sql))
                except SQLAlchemyError:
                    conn.rollback()

    return recipe_of(loop)


# --- the deadline ---------------------------------------------------------------------------
def test_the_deadline_stops_a_loop_of_short_statements(settings, session):
    knobs(settings, RUN_DEADLINE_SECONDS=1)
    started = time.monotonic()
    result = service.run_recipe(session, stubborn_loop("SELECT pg_sleep(0.005)"), "probe", {})
    took = time.monotonic() - started
    assert 1 <= took < 2.5, took
    assert not result.ok
    assert result.error.startswith("The run was stopped at its deadline: one run may take at most 1 s")
    assert 20 < result.query_count < 1000  # it did run, then sent nothing more
    assert not activity(role_of(session), "SELECT pg_sleep%")
    again = service.run_recipe(session, probe("SELECT 42 AS answer"), "probe", {})
    assert again.ok and again.rows.data == [[42]]


def test_the_deadline_cancels_a_long_statement_on_the_server(settings, session):
    knobs(settings, RUN_DEADLINE_SECONDS=1)
    # The role's own statement timeout is lifted: only the deadline can end this one.
    slow = probe("SET statement_timeout = '60s'", "SELECT pg_sleep(30)")
    started = time.monotonic()
    result = service.run_recipe(session, slow, "probe", {})
    assert time.monotonic() - started < 3
    assert not result.ok
    assert result.error.startswith("The run was stopped at its deadline")
    assert result.plan is None
    assert not activity(role_of(session), "SELECT pg_sleep%")  # cancelled there, not abandoned
    stored = Run.objects.get(sandbox__role=role_of(session))
    assert stored.ok is False and stored.result["error"].startswith("The run was stopped at its deadline")


def test_the_deadline_stops_worker_threads_too(settings, session):
    knobs(settings, RUN_DEADLINE_SECONDS=1)

    def crowd(run, p):
        def work(number, line_up):
            line_up()
            with run.connect() as conn:
                conn.execute(text("SET statement_timeout = '60s'"))
                conn.execute(text("SELECT pg_sleep(30)"))

        run.at_once(3, work)

    started = time.monotonic()
    result = service.run_recipe(session, recipe_of(crowd), "probe", {})
    assert time.monotonic() - started < 3
    assert result.error.startswith("The run was stopped at its deadline")
    assert not activity(role_of(session), "SELECT pg_sleep%")


def test_a_run_may_send_only_so_many_statements(settings, session):
    knobs(settings, MAX_STATEMENTS_PER_RUN=50)
    result = service.run_recipe(session, stubborn_loop("SELECT 1"), "probe", {})
    assert not result.ok
    assert result.error.startswith("The run was stopped when it went to send more than 50 statements")
    assert result.query_count <= 50


# --- a client that went away ----------------------------------------------------------------
def test_a_closed_socket_is_seen_without_reading_what_is_pending():
    server, client = socket.socketpair()
    try:
        assert not socket_closed(server)
        client.sendall(b"GET /next HTTP/1.1\r\n")  # a pipelined request: still there
        assert not socket_closed(server)
        assert server.recv(100) == b"GET /next HTTP/1.1\r\n"
        client.close()
        assert socket_closed(server)
    finally:
        server.close()
    assert socket_closed(server)


def test_a_run_whose_client_left_stops(settings, session):
    knobs(settings, RUN_DEADLINE_SECONDS=30)
    server, client = socket.socketpair()
    outcome = {}

    def run():
        recipe = stubborn_loop("SELECT pg_sleep(0.02)")
        gone = lambda: socket_closed(server)  # noqa: E731
        try:
            outcome["result"] = service.run_recipe(session, recipe, "probe", {}, client_gone=gone)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_for(lambda: activity(role_of(session), "SELECT pg_sleep%") if SESSION_KEY in session else [], 10)
        client.close()
        left = time.monotonic()
        thread.join(10)
        assert time.monotonic() - left < 1.5
    finally:
        server.close()
    result = outcome["result"]
    assert result.error == CLIENT_GONE
    assert not activity(role_of(session), "SELECT pg_sleep%")


def test_a_watch_keeps_the_first_reason_it_stopped_for():
    with Watch(5, client_gone=lambda: True) as watch:
        wait_for(lambda: watch.reason is not None, timeout=2)
        watch.stop("another reason")
        with pytest.raises(RunStopped, match="went away"):
            watch.check()
    assert watch.reason == CLIENT_GONE


# --- what a run may cost --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("variant", "params", "field", "phrase"),
    [
        ("add-loop", {"rows": 200_000}, "rows", "add-loop may insert at most 50,000 rows in one run"),
        ("add-all", {"rows": 60_000}, "rows", "holds every object it adds"),
        ("values", {"rows": 60_000}, "rows", "compiles a new statement for every batch"),
        ("executemany", {"rows": 200_000}, "rows", "at most 100,000 rows"),
        ("add-loop", {"rows": 50_000, "batch_size": 10}, "batch_size", "is 5,000 INSERTs"),
    ],
)
def test_bulk_insert_refuses_runs_a_shared_worker_cannot_afford(variant, params, field, phrase):
    recipe = recipes.get("bulk-insert")
    with pytest.raises(InvalidParams) as refused:
        recipe.validate({"variant": variant, **params})
    assert phrase in refused.value.errors[field][0]


def test_copy_takes_the_whole_range_and_counts_as_heavy():
    recipe = recipes.get("bulk-insert")
    chosen = recipe.validate({"variant": "copy", "rows": 200_000})
    assert service.is_heavy(recipe.cost_of(chosen.variant, chosen.params))
    assert not service.is_heavy(recipe.cost_of("add-loop", {}))  # the defaults are light
    assert service.is_heavy(recipe.cost_of("add-loop", {"rows": 50_000, "batch_size": 25}))


def test_declared_costs_match_what_the_run_sent(engine, run_recipe):
    recipe = recipes.get("bulk-insert")
    for variant in recipe.variants:
        result = run_recipe(engine, "bulk-insert", variant, rows=2_500, batch_size=1_000)
        assert result.metrics["driver_calls"] == recipe.cost_of(variant, {"rows": 2_500}).statements
    eager = recipes.get("eager-loading")
    result = run_recipe(engine, "eager-loading", "lazy", authors=30, books_per_author=2)
    assert result.query_count == eager.cost_of("lazy", {"authors": 30, "books_per_author": 2}).statements


# --- heavy runs take turns ------------------------------------------------------------------
HEAVY = ("bulk-insert", "add-loop", {"rows": 25_000, "batch_size": 100})
LIGHT = ("offset-pagination", "offset", {"rows": 1_000})


def test_heavy_runs_take_turns_while_light_runs_stay_quick(settings, sessions):
    knobs(
        settings,
        RUNS_PER_PROCESS=3,
        HEAVY_RUNS_PER_PROCESS=1,
        HEAVY_RUNS_AT_ONCE=1,
        HEAVY_SLOT_WAIT_SECONDS=60,
    )
    *heavy_sessions, light_session = sessions
    slug, variant, params = LIGHT
    service.run_recipe(light_session, recipes.get(slug), variant, params)  # seeded before the crowd
    for s in heavy_sessions:
        service.run_recipe(s, recipes.get(HEAVY[0]), HEAVY[1], {"rows": 100})
    roles = [role_of(s) for s in heavy_sessions]
    heavy_results = []

    def heavy(s):
        try:
            heavy_results.append(service.run_recipe(s, recipes.get(HEAVY[0]), HEAVY[1], HEAVY[2]))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=heavy, args=(s,)) for s in heavy_sessions]
    for t in threads:
        t.start()
    inserting = "INSERT INTO bulk_items%"
    wait_for(lambda: any(activity(r, inserting) for r in roles), timeout=20, interval=0.01)
    light = []
    at_once = 0
    for _ in range(5):
        started = time.monotonic()
        result = service.run_recipe(light_session, recipes.get(slug), variant, params)
        light.append(time.monotonic() - started)
        assert result.ok, result.error
        at_once = max(at_once, sum(1 for r in roles if activity(r, inserting)))
    still_in_flight = sum(t.is_alive() for t in threads)
    for t in threads:
        t.join(120)
    assert max(light) < 1.5, light
    assert still_in_flight >= 2, "the heavy runs ended before the light ones were measured"
    assert at_once <= 1
    assert len(heavy_results) == 3 and all(r.ok for r in heavy_results)


def heavy_backends(role: str) -> list[str]:
    """application_name of the role's backends sending the heavy run's INSERTs."""
    with sandboxes.admin_engine().connect() as conn:
        found = conn.execute(
            text(
                "SELECT application_name FROM pg_stat_activity WHERE usename = :r "
                "AND query LIKE 'INSERT INTO bulk_items%'"
            ),
            {"r": role},
        )
        return [name for (name,) in found]


def test_a_heavy_run_runs_in_a_process_of_its_own_with_the_same_limits(settings, session):
    service.run_recipe(session, recipes.get(HEAVY[0]), HEAVY[1], {"rows": 100})
    seen: list[str] = []
    done = []

    def heavy():
        try:
            done.append(service.run_recipe(session, recipes.get(HEAVY[0]), HEAVY[1], HEAVY[2]))
        finally:
            connections.close_all()

    thread = threading.Thread(target=heavy)
    thread.start()
    while thread.is_alive():
        seen += heavy_backends(role_of(session))
        time.sleep(0.02)
    assert done[0].ok, done[0].error
    assert done[0].metrics["rows_in_table"] == HEAVY[2]["rows"] and done[0].plan is not None
    assert set(seen) == {apart.APPLICATION_NAME}

    knobs(settings, RUN_DEADLINE_SECONDS=1)
    started = time.monotonic()
    stopped = service.run_recipe(session, recipes.get(HEAVY[0]), HEAVY[1], {"rows": 50_000, "batch_size": 25})
    assert time.monotonic() - started < 4
    assert stopped.error.startswith("The run was stopped at its deadline")
    assert not heavy_backends(role_of(session))


def test_a_heavy_run_that_cannot_get_its_turn_is_a_clear_503(settings, transactional_db):
    knobs(settings, HEAVY_SLOT_WAIT_SECONDS=0.2)
    client = Client(enforce_csrf_checks=True)
    client.get("/api/recipes")
    try:
        with sandboxes.run_slot(heavy=True):  # another thread's heavy run in progress
            busy = client.post(
                "/api/recipes/bulk-insert/run",
                data=json.dumps({"variant": "copy", "params": {"rows": 100_000}}),
                content_type="application/json",
                headers={"X-CSRFToken": client.cookies["csrftoken"].value},
            )
            light = client.post(
                "/api/recipes/bulk-insert/run",
                data=json.dumps({"variant": "copy", "params": {"rows": 1_000}}),
                content_type="application/json",
                headers={"X-CSRFToken": client.cookies["csrftoken"].value},
            )
        assert busy.status_code == 503
        assert busy.json()["error"].startswith("Another heavy run")
        assert busy["Retry-After"]
        assert light.status_code == 200, light.content
    finally:
        for box in Sandbox.objects.all():
            sandboxes.drop(box)


def test_heavy_runs_of_other_processes_count_too(settings, transactional_db):
    """Another instance's heavy run holds the sandbox server's only heavy turn: this process's
    heavy run is refused, its light runs are not."""
    knobs(settings, HEAVY_RUNS_AT_ONCE=1, HEAVY_SLOT_WAIT_SECONDS=0.3)
    client = Client(enforce_csrf_checks=True)
    client.get("/api/recipes")

    def post(params):
        return client.post(
            "/api/recipes/bulk-insert/run",
            data=json.dumps({"variant": "copy", "params": params}),
            content_type="application/json",
            headers={"X-CSRFToken": client.cookies["csrftoken"].value},
        )

    url = sandboxes.admin_url()
    other = psycopg.connect(**connect_kwargs(url), autocommit=True)
    try:
        other.execute("SELECT pg_advisory_lock(%s, 0)", [engines.HEAVY_LOCK])
        started = time.monotonic()
        busy = post({"rows": 100_000})
        assert busy.status_code == 503 and busy.json()["error"].startswith("Another heavy run")
        assert time.monotonic() - started < 2
        assert post({"rows": 1_000}).status_code == 200
        other.execute("SELECT pg_advisory_unlock(%s, 0)", [engines.HEAVY_LOCK])
        assert post({"rows": 100_000}).status_code == 200
    finally:
        other.close()
        for box in Sandbox.objects.all():
            sandboxes.drop(box)


def test_a_server_wide_turn_bounds_heavy_runs_even_with_room_in_the_process(settings, sessions):
    knobs(
        settings,
        RUNS_PER_PROCESS=3,
        HEAVY_RUNS_PER_PROCESS=2,
        HEAVY_RUNS_AT_ONCE=1,
        HEAVY_SLOT_WAIT_SECONDS=30,
    )
    pair = sessions[:2]
    for s in pair:
        service.run_recipe(s, recipes.get(HEAVY[0]), HEAVY[1], {"rows": 100})
    roles = [role_of(s) for s in pair]
    done = []

    def heavy(s):
        try:
            done.append(service.run_recipe(s, recipes.get(HEAVY[0]), HEAVY[1], HEAVY[2]))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=heavy, args=(s,)) for s in pair]
    for t in threads:
        t.start()
    at_once = 0
    while any(t.is_alive() for t in threads):
        at_once = max(at_once, sum(1 for r in roles if activity(r, "INSERT INTO bulk_items%")))
        time.sleep(0.02)
    assert len(done) == 2 and all(r.ok for r in done)
    assert at_once == 1


# --- what a result keeps --------------------------------------------------------------------
def many_selects(n: int):
    def chatty(run, p):
        with run.connect() as conn:
            for i in range(n):
                conn.execute(text(f"SELECT {i} AS n, repeat('x', 200) AS pad"))

    return recipe_of(chatty)


def test_a_long_run_lists_its_first_statements_and_counts_the_rest(settings, session):
    knobs(settings, STATEMENTS_SHOWN=100, STORED_STATEMENTS=40, STORED_RESULT_MAX_KB=16)
    result = service.run_recipe(session, many_selects(700), "probe", {})
    assert result.ok, result.error
    assert result.query_count == 700
    assert len(result.statements) == 100 and result.queries_omitted == 601  # and a BEGIN
    assert result.figures.rows_fetched == 700  # the left-out ones still count
    assert [s.sql for s in result.statements[1:4]] == [
        f"SELECT {i} AS n, repeat('x', 200) AS pad" for i in range(3)
    ]
    assert any(n.startswith("The statement list shows 99 of the 700 queries") for n in result.notes)
    data = result.to_json()
    assert data["queries_omitted"] == 601 and data["figures"]["rows_fetched"] == 700

    stored = Run.objects.get(sandbox__role=role_of(session)).result
    assert len(json.dumps(stored)) <= 16 * 1024
    assert len(stored["statements"]) <= 40
    assert stored["query_count"] == 700
    assert stored["queries_omitted"] == 700 - sum(1 for s in stored["statements"] if s["kind"] == "query")
    assert stored["figures"]["rows_fetched"] == 700


def test_a_stored_run_keeps_to_its_byte_budget_when_statements_are_big(settings, session):
    """selectinload marks every IN-list load as main (they inherit the option): each is kept whole
    by the capture, 500 keys and all. Only the last one is the statement EXPLAINed."""
    knobs(settings, STORED_RESULT_MAX_KB=100)
    params = {"authors": 2000, "books_per_author": 1}
    result = service.run_recipe(session, recipes.get("eager-loading"), "selectinload", params)
    assert result.ok, result.error
    assert sum(1 for s in result.statements if s.main) > 2
    stored = Run.objects.get(sandbox__role=role_of(session)).result
    assert len(json.dumps(stored)) <= 100 * 1024 < len(json.dumps(result.to_json()))
    kinds = [s["kind"] for s in stored["statements"]]
    assert kinds.count("explain") == 2
    explained = stored["statements"][kinds.index("explain")]["sql"]
    last_main = [s for s in result.statements if s.main][-1]
    assert explained.endswith(last_main.sql) and any(s["sql"] == last_main.sql for s in stored["statements"])
    assert stored["queries_omitted"] > 0 and stored["figures"]["rows_fetched"] == result.figures.rows_fetched


def test_the_page_says_how_many_statements_it_does_not_list(settings, transactional_db):
    knobs(settings, STATEMENTS_SHOWN=100)
    client = Client()
    page = client.post(
        "/recipes/eager-loading/run",
        {"variant": "lazy", "authors": 300, "books_per_author": 1, "direction": "authors-books", "limit": 0},
        headers={"HX-Request": "true"},
    )
    try:
        assert page.status_code == 200
        html = page.content.decode()
        # 100 statements listed: the first ones, the main query, its EXPLAINs, BEGIN and COMMIT.
        left_out = int(re.search(r"301 queries \((\d+) not listed\)", html).group(1))
        assert 200 <= left_out <= 205
        assert f"… and {left_out} more queries, not listed" in html
        stored = Run.objects.get()
        detail = client.get(f"/runs/{stored.pk}/").content.decode()
        assert "301 queries (" in detail and "not listed" in detail
    finally:
        for box in Sandbox.objects.all():
            sandboxes.drop(box)


# --- under gunicorn ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def static_files():
    folder = Path(tempfile.mkdtemp(prefix="playground-static-"))
    env = deploy.production_env(
        SECRET_KEY="build", DATABASE_URL="postgres://b@localhost/b", STATIC_ROOT=str(folder)
    )
    done = deploy.manage("collectstatic", "--noinput", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def gunicorn(static_files, **env):
    """The site through bin/entrypoint on the test databases, one worker of two threads."""
    site = deploy.Site(
        deploy.production_env(
            **deploy.session_databases_env(),
            PORT=str(deploy.free_port()),
            WEB_CONCURRENCY="1",
            GUNICORN_THREADS="2",
            STATIC_ROOT=str(static_files),
            **env,
        )
    )
    try:
        site.wait_ready()
        site.request("GET", "/api/recipes")
        yield site
    finally:
        site.stop()
        for box in Sandbox.objects.all():
            sandboxes.drop(box)


def api_run(site, slug: str, variant: str, params: dict) -> bytes:
    """The raw HTTP request of a JSON run, as the site's client would send it."""
    body = json.dumps({"variant": variant, "params": params}).encode()
    cookies = "; ".join(f"{k}={v}" for k, v in site.cookies.items())
    head = (
        f"POST /api/recipes/{slug}/run HTTP/1.1\r\nHost: {deploy.HOST}\r\nX-Forwarded-Proto: https\r\n"
        f"Content-Type: application/json\r\nAccept: application/json\r\nCookie: {cookies}\r\n"
        f"X-CSRFToken: {site.cookies['csrftoken']}\r\nOrigin: https://{deploy.HOST}\r\n"
        f"Referer: https://{deploy.HOST}/\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@pytest.mark.slow
def test_under_gunicorn_a_run_stops_soon_after_its_client_hangs_up(static_files):
    with gunicorn(static_files) as site:
        warm = site.request(
            "POST",
            "/api/recipes/bulk-insert/run",
            json.dumps({"variant": "add-loop", "params": {"rows": 100}}),
            **{"Content-Type": "application/json", "X-CSRFToken": site.cookies["csrftoken"]},
            **{"Origin": f"https://{deploy.HOST}", "Referer": f"https://{deploy.HOST}/"},
        )
        assert warm[0].status == 200, warm[1][:500]
        client = socket.create_connection(("127.0.0.1", site.port))
        client.sendall(api_run(site, "bulk-insert", "add-loop", {"rows": 50_000, "batch_size": 25}))
        time.sleep(2)  # it is building objects, or sending INSERTs
        client.close()
        stored = wait_for(lambda: Run.objects.filter(params__rows=50_000).exists(), timeout=30)
        run = Run.objects.get(params__rows=50_000)
    assert run.result["error"] == CLIENT_GONE
    assert stored < 1.5, stored  # the whole run takes about 5 s
    assert run.query_count < 2_000  # stopped at the next statement, if it got to any


@pytest.mark.slow
def test_under_gunicorn_a_worker_left_big_by_a_request_is_replaced(static_files):
    with gunicorn(static_files, GUNICORN_MAX_WORKER_MB="1") as site:
        statuses = [site.request("GET", "/healthz", https=False)[0].status for _ in range(4)]
        log = site.output()
    assert statuses == [200] * 4
    assert "above GUNICORN_MAX_WORKER_MB=1" in log
    assert log.count("Booting worker") >= 3


def test_gunicorn_replaces_workers_after_a_bounded_number_of_requests():
    values: dict = {}
    conf = Path(deploy.ROOT) / "gunicorn.conf.py"
    exec(compile(conf.read_text(), str(conf), "exec"), values)  # noqa: S102
    assert 0 < values["max_requests"] <= 5_000
    assert 0 < values["max_requests_jitter"] < values["max_requests"]
    assert values["max_worker_mb"] >= 150  # above an idle worker after 1,000 runs (about 90 MB)
    assert values["timeout"] > django_settings.PLAYGROUND["RUN_DEADLINE_SECONDS"] * 2
