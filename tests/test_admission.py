"""Who gets a sandbox on a shared instance: the cap under concurrency, each address's share,
the address behind a proxy, idle time scaled by use, and Retry-After on every 429 and 503."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.utils import timezone

from playground import sandbox as sandboxes
from playground.models import Sandbox
from playground.web.access import client_address

pytestmark = pytest.mark.django_db(transaction=True)

SMALL = {"variant": "offset", "params": {"rows": 1000}}


@pytest.fixture(autouse=True)
def _drop_sandboxes() -> Any:
    yield
    for box in Sandbox.objects.all():
        sandboxes.drop(box)


def configure(settings, **knobs: Any) -> None:
    settings.PLAYGROUND = {**settings.PLAYGROUND, **knobs}


def provision_at_once(n: int, client: str) -> tuple[list[Sandbox], list[Exception]]:
    """`n` threads provisioning together (released by one barrier), each on its own connection."""
    made, refused = [], []
    barrier = threading.Barrier(n)

    def provision() -> None:
        from django.db import connection

        try:
            barrier.wait()
            made.append(sandboxes.provision(client=client))
        except sandboxes.SandboxLimitError as exc:
            refused.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=provision) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return made, refused


def fresh_client(address: str, **environ: str) -> Client:
    """A client with no cookies (a new session every time), as a hostile script would be."""
    return Client(enforce_csrf_checks=True, REMOTE_ADDR=address, **environ)


def api_run(client: Client, **headers: str):
    if "csrftoken" not in client.cookies:
        client.get("/api/recipes")
    return client.post(
        "/api/recipes/offset-pagination/run",
        data=json.dumps(SMALL),
        content_type="application/json",
        headers={"X-CSRFToken": client.cookies["csrftoken"].value, **headers},
    )


# --- the instance's cap and each address's share, under concurrency -------------------------
def test_concurrent_provisions_never_overshoot_the_instance_cap(settings):
    configure(settings, MAX_SANDBOXES=5, SANDBOXES_PER_CLIENT=0)
    made, refused = provision_at_once(16, client="")
    assert len(made) == 5 and Sandbox.objects.count() == 5
    assert len(refused) == 11
    assert all(exc.status == 503 and exc.retry_after and exc.retry_after > 0 for exc in refused)
    assert all(str(exc).startswith("This playground is full") for exc in refused)


def test_concurrent_provisions_from_one_address_stop_at_its_share(settings):
    configure(settings, MAX_SANDBOXES=50, SANDBOXES_PER_CLIENT=3)
    made, refused = provision_at_once(12, client="198.51.100.7")
    assert len(made) == 3 and len(refused) == 9
    assert {type(exc) for exc in refused} == {sandboxes.SandboxesPerClientError}
    assert all(exc.status == 429 for exc in refused)
    # Another address is not held back by the first one's share.
    assert sandboxes.provision(client="198.51.100.8").client == "198.51.100.8"


def test_a_cookieless_client_is_refused_after_its_share_and_others_are_not(settings):
    configure(settings, SANDBOXES_PER_CLIENT=2, SANDBOX_IDLE_SECONDS_PER_USE=900, REAP_EVERY_SECONDS=60)
    statuses = [api_run(fresh_client("203.0.113.9")).status_code for _ in range(2)]
    assert statuses == [200, 200]
    refused = api_run(fresh_client("203.0.113.9"))
    assert refused.status_code == 429
    assert refused.json()["error"].startswith("Too many sandboxes for one address")
    # The earliest of its sandboxes is due after 15 minutes (one use), reaped within a minute.
    assert 900 <= int(refused["Retry-After"]) <= 900 + 60 + 5
    assert Sandbox.objects.filter(client="203.0.113.9").count() == 2
    assert api_run(fresh_client("203.0.113.10")).status_code == 200


# --- the client's address -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("198.51.100.9", "", ["127.0.0.1"], "198.51.100.9"),
        # Only a trusted proxy is believed: anyone else's header is ignored.
        ("198.51.100.9", "203.0.113.5", ["127.0.0.1"], "198.51.100.9"),
        ("127.0.0.1", "203.0.113.5", ["127.0.0.1"], "203.0.113.5"),
        # What a client writes into the header itself lies left of what the proxy appended.
        ("127.0.0.1", "6.6.6.6, 203.0.113.5", ["127.0.0.1"], "203.0.113.5"),
        # Two proxies in a row, given as a network.
        ("10.1.2.3", "6.6.6.6, 203.0.113.5, 10.9.9.9", ["10.0.0.0/8"], "203.0.113.5"),
        ("10.1.2.3", "garbage, 203.0.113.5", ["10.0.0.0/8"], "203.0.113.5"),
        ("10.1.2.3", "203.0.113.5", ["*"], "203.0.113.5"),
    ],
)
def test_the_forwarded_address_is_believed_only_from_trusted_proxies(
    settings, peer, forwarded, trusted, expected
):
    configure(settings, TRUSTED_PROXIES=trusted)
    environ = {"REMOTE_ADDR": peer, **({"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {})}
    assert client_address(RequestFactory().get("/", **environ)) == expected


def test_an_ipv6_client_counts_as_its_64_network():
    key = sandboxes.client_key("2001:db8:1:2:3:4:5:6")
    assert key == sandboxes.client_key("2001:db8:1:2::99") == "2001:db8:1:2::/64"
    assert key != sandboxes.client_key("2001:db8:1:3::1")
    assert sandboxes.client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert sandboxes.client_key("192.0.2.1") == "192.0.2.1"


def test_a_sandbox_records_the_address_behind_a_trusted_proxy_only(settings):
    configure(settings, TRUSTED_PROXIES=["127.0.0.1"])
    behind = fresh_client("127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.77")
    forging = fresh_client("198.51.100.20", HTTP_X_FORWARDED_FOR="203.0.113.77")
    assert api_run(behind).status_code == 200
    assert api_run(forging).status_code == 200
    assert sorted(Sandbox.objects.values_list("client", flat=True)) == ["198.51.100.20", "203.0.113.77"]


# --- idle time scaled by use ----------------------------------------------------------------
def test_a_sandbox_used_once_is_reaped_long_before_a_busy_one(settings, make_sandbox):
    configure(settings, SANDBOX_IDLE_SECONDS_PER_USE=600, SANDBOX_IDLE_SECONDS=3600)
    once, busy = make_sandbox(), make_sandbox()
    for _ in range(9):
        sandboxes.claim(busy.role)  # nine more runs
    assert Sandbox.objects.get(pk=busy.pk).uses == 10
    twenty_minutes_ago = timezone.now() - timedelta(minutes=20)
    Sandbox.objects.filter(pk__in=[once.pk, busy.pk]).update(last_used_at=twenty_minutes_ago)

    assert sandboxes.reap() == [once.role]  # 1 use: 10 min allowed; 10 uses: 100 min, capped at 60
    assert Sandbox.objects.filter(pk=busy.pk).exists()

    Sandbox.objects.filter(pk=busy.pk).update(last_used_at=timezone.now() - timedelta(minutes=61))
    assert sandboxes.reap() == [busy.role]


# --- Retry-After on every 429 and 503 -------------------------------------------------------
def form_run(client: Client):
    if "csrftoken" not in client.cookies:
        client.get("/api/recipes")
    return client.post(
        "/recipes/offset-pagination/run",
        data=SMALL["params"],
        headers={"X-CSRFToken": client.cookies["csrftoken"].value, "HX-Request": "true"},
    )


def assert_retry_after(response, status: int) -> int:
    assert response.status_code == status, response.content[:300]
    assert response.has_header("Retry-After"), (status, response.content[:300])
    seconds = int(response["Retry-After"])
    assert seconds > 0
    return seconds


def test_every_429_and_503_says_when_to_retry(settings):
    # The instance is full: 503, for a script and for the page alike.
    configure(settings, MAX_SANDBOXES=1, SANDBOXES_PER_CLIENT=0)
    assert api_run(fresh_client("192.0.2.1")).status_code == 200
    assert_retry_after(api_run(fresh_client("192.0.2.2")), 503)
    assert_retry_after(form_run(fresh_client("192.0.2.2")), 503)

    # One address holds its share: 429.
    configure(settings, MAX_SANDBOXES=10, SANDBOXES_PER_CLIENT=1)
    assert_retry_after(api_run(fresh_client("192.0.2.1")), 429)
    assert_retry_after(form_run(fresh_client("192.0.2.1")), 429)

    # One session ran too often: 429.
    configure(settings, SANDBOXES_PER_CLIENT=0, RUN_BURST=1, RUNS_PER_MINUTE=1)
    hammer = fresh_client("192.0.2.3")
    assert api_run(hammer).status_code == 200
    assert_retry_after(api_run(hammer), 429)
    assert_retry_after(form_run(hammer), 429)

    # Every run slot of this process is taken: 503.
    configure(settings, RUN_BURST=30, RUNS_PER_PROCESS=1, RUN_SLOT_WAIT_SECONDS=0.2)
    with sandboxes.run_slot():
        assert_retry_after(api_run(fresh_client("192.0.2.4")), 503)
        assert_retry_after(form_run(fresh_client("192.0.2.4")), 503)

    # The sandbox database does not answer: 503, and the health probe says so too.
    configure(settings, SANDBOX_DATABASE_URL="postgresql://nobody@127.0.0.1:1/nowhere")
    assert_retry_after(api_run(fresh_client("192.0.2.5")), 503)
    assert_retry_after(Client().get("/healthz"), 503)
