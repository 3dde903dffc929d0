"""A run's links open it again on the version it ran on: the share link under a result, "run
again" in Your runs, the export's link, the stored run reopened, and the scratchpad's SQL."""

from __future__ import annotations

import html
import re

import pytest

from playground.models import Run
from tests.web import post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drop_sandboxes")]

RUN = {"variant": "offset", "rows": "1000", "page": "7"}


def checked_version(page: bytes) -> list[str]:
    """The values of the `pg` radio buttons the page shows checked."""
    tags = re.findall(r'<input[^>]*name="pg"[^>]*>', page.decode())
    return [re.search(r'value="(\d+)"', tag).group(1) for tag in tags if "checked" in tag]


def hrefs(page: bytes, pattern: str) -> list[str]:
    """The links of `page` whose href matches `pattern`, unescaped."""
    return [html.unescape(h) for h in re.findall(r'href="([^"]+)"', page.decode()) if re.search(pattern, h)]


def test_the_share_link_of_a_run_on_16_opens_the_form_on_16(client):
    ran = post(client, "/recipes/offset-pagination/run", {**RUN, "pg": "16"}, HX_Request="true")
    assert ran.status_code == 200 and b"Ran on PostgreSQL 16." in ran.content
    share = html.unescape(re.search(rb'id="share-link" href="([^"]+)"', ran.content).group(1).decode())
    assert "pg=16" in share and "page=7" in share
    opened = client.get(share)
    assert opened.status_code == 200
    assert checked_version(opened.content) == ["16"] and 'value="7"' in opened.content.decode()
    on_18 = post(client, "/recipes/offset-pagination/run", RUN, HX_Request="true")
    assert b'id="share-link" href="/recipes/offset-pagination/?variant=offset&amp;' in on_18.content
    assert b"pg=18" in on_18.content and b"pg=16" not in on_18.content


def test_run_again_in_your_runs_reopens_each_run_on_its_version(client):
    post(client, "/recipes/offset-pagination/run", {**RUN, "pg": "16"})
    post(client, "/recipes/offset-pagination/run", {**RUN, "page": "3"})
    page = client.get("/history")
    assert page.status_code == 200
    newest, oldest = hrefs(page.content, r"^/recipes/offset-pagination/\?")
    assert "page=3" in newest and "pg=18" in newest
    assert "page=7" in oldest and "pg=16" in oldest
    assert checked_version(client.get(oldest).content) == ["16"]
    assert checked_version(client.get(newest).content) == ["18"]
    on_16 = Run.objects.order_by("created_at").first()
    assert checked_version(client.get(f"/runs/{on_16.pk}/").content) == ["16"]  # reopened as stored
    export = client.get(f"/runs/{on_16.pk}/export", headers={"Accept": "application/json"})
    assert "pg=16" in export.json()["markdown"], export.json()


def test_sql_from_the_scratchpad_on_16_reopens_there_on_16(client):
    ran = post(client, "/sql/run", {"sql": "SELECT 1 AS one", "pg": "16"})
    assert ran.status_code == 200 and b"Ran on PostgreSQL 16." in ran.content
    (again,) = hrefs(client.get("/history").content, r"^/sql/\?")
    assert "pg=16" in again
    assert checked_version(client.get(again).content) == ["16"]
