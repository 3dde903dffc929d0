"""Helpers for tests that talk HTTP to the site as a browser or a script would, CSRF enforced."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client


def token(client: Client) -> str:
    """The CSRF token of the client's session, fetched with a first GET when it has none yet."""
    if "csrftoken" not in client.cookies:
        assert client.get("/api/recipes").status_code == 200
    return client.cookies["csrftoken"].value


def post(client: Client, path: str, data: dict[str, Any], **headers: str):
    """A form post, as the page sends it."""
    return client.post(path, data, headers={"X-CSRFToken": token(client), **headers})


def api(client: Client, path: str, body: Any):
    """A JSON post, as a script sends it."""
    return client.post(
        path, json.dumps(body), content_type="application/json", headers={"X-CSRFToken": token(client)}
    )
