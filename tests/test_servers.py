"""Sandboxes on several servers: the embedded PostgreSQL 16 beside 18, spreading new sandboxes
over the servers of a version, one sandbox per version for a session, reaping on every server."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from sqlalchemy import text

import recipes
from playground import sandbox as sandboxes
from playground.models import Run, Sandbox
from playground.running import service
from playground.sandbox import servers
from tests.web import api, post, token

pytestmark = pytest.mark.django_db(transaction=True)


def major_of(box: Sandbox) -> int:
    """The major version of the server the sandbox's own role logs in to."""
    with sandboxes.engine_for(box).connect() as conn:
        return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000


def test_the_embedded_setup_offers_16_and_18(client):
    listing = client.get("/api/recipes").json()
    assert (listing["versions"], listing["default_version"]) == ([16, 18], 18)
    uuid_keys = next(r for r in listing["recipes"] if r["slug"] == "uuid-keys")
    assert {v["slug"]: v["needs_version"] for v in uuid_keys["variants"]}["uuid7"] == 18
    assert sandboxes.versions() == [16, 18]
    assert sandboxes.default_version() == 18
    assert [s.name for s in servers.configured()] == ["main", "pg16"]


def test_a_sandbox_of_each_version_lives_on_a_server_of_that_version(make_sandbox):
    old, new = sandboxes.provision(version=16), make_sandbox()
    try:
        assert (old.server, major_of(old)) == ("pg16", 16)
        assert (new.server, major_of(new)) == ("main", 18)
        # A role exists on its own server only: the 18 server has never heard of the 16 sandbox.
        with sandboxes.admin_engine().connect() as conn:
            assert (
                conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": old.role}).first()
                is None
            )
    finally:
        sandboxes.drop(old)


def test_a_new_sandbox_goes_to_the_least_loaded_server_of_its_version(settings, drop_sandboxes):
    # A second 18 server: the same database under another name is enough to watch the spread.
    twin = {"name": "twin", "version": 18, "url": sandboxes.admin_url().render_as_string(hide_password=False)}
    settings.PLAYGROUND = {
        **settings.PLAYGROUND,
        "SANDBOX_SERVERS": [*settings.PLAYGROUND["SANDBOX_SERVERS"], twin],
    }
    made = [sandboxes.provision() for _ in range(4)]
    assert sorted(box.server for box in made) == ["main", "main", "twin", "twin"]
    assert {major_of(box) for box in made} == {18}
    Sandbox.objects.filter(pk__in=[b.pk for b in made if b.server == "main"]).delete()  # main empties
    assert sandboxes.provision().server == "main"
    for box in made:  # rows deleted above still have their roles
        sandboxes.drop(box)


def test_least_loaded_counts_unnamed_rows_as_main_and_refuses_an_unknown_version():
    assert servers.least_loaded(18, {"": 3}).name == "main"
    assert servers.least_loaded(16, {"": 3, "pg16": 1}).name == "pg16"
    with pytest.raises(servers.UnknownServer):
        servers.least_loaded(15, {})


def test_a_session_holds_one_sandbox_per_version_and_sees_both_histories(client, drop_sandboxes):
    on_18 = api(client, "/api/recipes/offset-pagination/run", {"variant": "offset", "params": {"rows": 1000}})
    on_16 = api(
        client,
        "/api/recipes/offset-pagination/run",
        {"variant": "offset", "params": {"rows": 1000}, "pg": 16},
    )
    assert on_18.status_code == on_16.status_code == 200, on_16.content
    a, b = on_18.json(), on_16.json()
    assert (a["server"], a["server_version"].split(".")[0]) == ("main", "18")
    assert (b["server"], b["server_version"].split(".")[0]) == ("pg16", "16")
    roles = client.session[service.SESSION_KEY], client.session[service.session_key(16)]
    assert roles[0] != roles[1]
    assert {r.sandbox.role for r in Run.objects.select_related("sandbox")} == set(roles)
    again = api(
        client,
        "/api/recipes/offset-pagination/run",
        {"variant": "offset", "params": {"rows": 1000}, "pg": "16"},
    )
    assert again.json()["server"] == "pg16" and client.session[service.session_key(16)] == roles[1]
    history = client.get("/history", headers={"Accept": "application/json"}).json()["runs"]
    assert [run["server"] for run in history] == ["pg16", "pg16", "main"]  # newest first
    page = client.get("/history")
    assert page.content.count(b"<td>pg16</td>") == 2 and page.content.count(b"<td>main</td>") == 1


def test_a_version_no_server_has_is_refused_on_the_field(client):
    for asked in (15, "x", True, "17"):
        response = api(client, "/api/recipes/offset-pagination/run", {"variant": "offset", "pg": asked})
        assert response.status_code == 400, asked
        assert "16 and 18" in response.json()["errors"]["pg"][0]
    page = post(client, "/recipes/offset-pagination/run", {"variant": "offset", "pg": "99"})
    assert page.status_code == 400 and b"is not offered here" in page.content
    assert not Sandbox.objects.exists()  # nothing was made for a refused run


def test_the_page_offers_the_versions_and_says_which_ran(client, drop_sandboxes):
    page = client.get("/recipes/offset-pagination/")
    assert b'name="pg" value="16"' in page.content and b'name="pg" value="18"' in page.content
    ran = post(client, "/recipes/offset-pagination/run", {"variant": "offset", "rows": "1000", "pg": "16"})
    assert ran.status_code == 200
    assert b'id="ran-on">Ran on PostgreSQL 16.' in ran.content
    checked = [tag for tag in re.findall(rb'<input[^>]*name="pg"[^>]*>', ran.content) if b"checked" in tag]
    assert len(checked) == 1 and b'value="16"' in checked[0]  # the form keeps the version asked for


def test_a_variant_needing_18_is_refused_on_16_and_runs_on_18(client, drop_sandboxes):
    body = {"variant": "uuid7", "params": {"rows": 1000}}
    refused = api(client, "/api/recipes/uuid-keys/run", {**body, "pg": 16})
    assert refused.status_code == 400
    assert "needs PostgreSQL 18" in refused.json()["errors"]["variant"][0]
    assert not Run.objects.exists() and not Sandbox.objects.exists()  # refused before a sandbox is made
    ran = api(client, "/api/recipes/uuid-keys/run", body)
    assert ran.status_code == 200 and ran.json()["ok"], ran.json().get("error")
    page = client.get("/recipes/uuid-keys/")
    assert b"needs PostgreSQL 18" in page.content  # shown beside the variant before anyone runs it


def test_compare_on_16_leaves_out_the_variant_it_cannot_run(client, drop_sandboxes):
    response = post(
        client, "/recipes/uuid-keys/compare", {"rows": "1000", "pg": "16"}, Accept="application/json"
    )
    assert response.status_code == 200, response.content
    runs = response.json()["runs"]
    assert [r["variant"] for r in runs] == [v for v in recipes.get("uuid-keys").variants if v != "uuid7"]
    assert {r["server"] for r in runs} == {"pg16"}
    page = post(client, "/recipes/uuid-keys/compare", {"rows": "1000", "pg": "16"})
    assert b"All variants, same parameters, on PostgreSQL 16." in page.content


def test_the_reaper_drops_idle_sandboxes_on_every_server(drop_sandboxes):
    boxes = [sandboxes.provision(version=16), sandboxes.provision(version=18)]
    Sandbox.objects.update(last_used_at=timezone.now() - timedelta(days=2))
    assert sorted(sandboxes.reap_once().dropped) == sorted(b.role for b in boxes)
    for box in boxes:
        with sandboxes.admin_engine(sandboxes.named(box.server)).connect() as conn:
            assert (
                conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": box.role}).first()
                is None
            )


def test_the_scratchpad_runs_on_the_version_asked_for(client, drop_sandboxes):
    sql = "CREATE TABLE t (i int); SELECT current_setting('server_version_num')::int / 10000 AS major"
    ran = client.post(
        "/sql/run",
        json.dumps({"sql": sql, "pg": 16}),
        content_type="application/json",
        headers={"X-CSRFToken": token(client), "Accept": "application/json"},
    )
    assert ran.status_code == 200, ran.content
    assert ran.json()["server"] == "pg16" and ran.json()["rows"]["data"] == [[16]]
    on_18 = post(
        client, "/sql/run", {"sql": "SELECT current_setting('server_version_num')::int / 10000 AS major"}
    )
    assert on_18.status_code == 200 and b'id="ran-on">Ran on PostgreSQL 18.' in on_18.content
    # Each version's sandbox has its own tables: t was made on 16 only.
    listed = {
        pg: [
            t["name"]
            for t in client.get(f"/sql/?pg={pg}", headers={"Accept": "application/json"}).json()["tables"]
        ]
        for pg in (16, 18)
    }
    assert listed == {16: ["t"], 18: []}
    page = client.get("/sql/?pg=16")
    assert b'name="pg" value="16" checked' in page.content


def test_a_sandbox_on_a_server_taken_off_the_list_is_replaced_and_forgotten(client, settings, drop_sandboxes):
    listed = settings.PLAYGROUND["SANDBOX_SERVERS"]
    twin = {"name": "twin", "version": 18, "url": sandboxes.admin_url().render_as_string(hide_password=False)}
    settings.PLAYGROUND = {**settings.PLAYGROUND, "SANDBOX_SERVERS": [*listed, twin]}
    first = api(client, "/api/recipes/offset-pagination/run", {"variant": "offset"})
    assert first.json()["server"] == "main"
    retired = sandboxes.provision()
    assert retired.server == "twin"
    session = client.session
    session[service.SESSION_KEY] = retired.role
    session.save()
    settings.PLAYGROUND = {**settings.PLAYGROUND, "SANDBOX_SERVERS": listed}  # twin is retired
    again = api(client, "/api/recipes/offset-pagination/run", {"variant": "offset"})
    assert again.status_code == 200 and again.json()["server"] == "main"
    assert client.session[service.SESSION_KEY] != retired.role
    Sandbox.objects.filter(server="twin").update(last_used_at=timezone.now() - timedelta(days=2))
    assert retired.role in sandboxes.reap_once().dropped
    assert not Sandbox.objects.filter(server="twin").exists()
    settings.PLAYGROUND = {**settings.PLAYGROUND, "SANDBOX_SERVERS": [*listed, twin]}
    sandboxes.drop(retired)  # its role on the (shared) database


def test_a_server_listed_under_the_wrong_version_is_reported(settings, caplog):
    url = sandboxes.admin_url().update_query_dict({"application_name": "misdeclared"})
    wrong = {"name": "wrong", "version": 16, "url": url.render_as_string(hide_password=False)}
    settings.PLAYGROUND = {**settings.PLAYGROUND, "SANDBOX_SERVERS": [wrong]}
    try:
        with caplog.at_level("ERROR", logger="playground.sandbox.engines"):
            sandboxes.admin_engine(sandboxes.named("wrong"))
        assert "sandbox server wrong is PostgreSQL 18 but is listed as 16" in caplog.text
    finally:
        sandboxes.forget_admin_engine(sandboxes.admin_url(sandboxes.named("wrong")))


def test_a_sweep_runs_on_the_version_asked_for_and_leaves_out_what_it_cannot_run(client, drop_sandboxes):
    form = {
        "rows": "1000",
        "sweep_param": "rows",
        "sweep_from": "1000",
        "sweep_to": "2000",
        "sweep_points": "2",
    }
    response = post(client, "/recipes/uuid-keys/sweep", {**form, "pg": "16"}, Accept="application/json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"] and body["series"]
    assert not any("uuid7" in s["label"] for s in body["series"])
    assert any("uuid7" in line and "needs PostgreSQL 18" in line for line in body["refused"])
    assert set(Run.objects.values_list("sandbox__server", flat=True)) == {"pg16"}
