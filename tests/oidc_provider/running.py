"""Start the test identity provider in a subprocess, and walk its sign-in as a browser would."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "recipe-playground"
CLIENT_SECRET = "a-test-client-secret-of-some-length"
PASSWORD = "a provider password"
PEOPLE = [
    {"username": "ada", "email": "ada@example.com", "groups": ["engineering"]},
    {"username": "bob", "email": "bob@contractor.example.net", "groups": ["playground-users"]},
    {"username": "eve", "email": "eve@elsewhere.example.org", "groups": []},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Provider:
    url: str

    @property
    def issuer(self) -> str:
        return f"{self.url}/o"

    def sign_in(self, authorize_url: str, username: str) -> str:
        """Follow the provider's pages from its authorize URL, signing in as `username`, up to the
        redirect back to the client; return that redirect's URL."""
        browser = requests.Session()
        page = browser.get(authorize_url, timeout=30)  # redirected to the provider's sign-in page
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        answer = browser.post(
            page.url,
            data={
                "csrfmiddlewaretoken": token,
                "username": username,
                "password": PASSWORD,
                "next": _next(page.url),
            },
            headers={"Referer": page.url},
            allow_redirects=False,
            timeout=30,
        )
        while answer.is_redirect:
            target = urljoin(answer.url, answer.headers["Location"])
            if not target.startswith(self.url):
                return target
            answer = browser.get(target, allow_redirects=False, timeout=30)
        raise AssertionError(
            f"the provider did not send the person back: {answer.status_code} {answer.text[:300]}"
        )


def _next(url: str) -> str:
    return parse_qs(urlsplit(url).query).get("next", [""])[0]


@contextmanager
def running(tmp: Path) -> Iterator[Provider]:
    """The provider, serving until the block ends."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
        "PROVIDER_DB": str(tmp / "provider.sqlite3"),
        "PROVIDER_PEOPLE": json.dumps([{**p, "password": PASSWORD} for p in PEOPLE]),
        "PROVIDER_CLIENT_ID": CLIENT_ID,
        "PROVIDER_CLIENT_SECRET": CLIENT_SECRET,
    }
    log = (tmp / "provider.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.oidc_provider.serve", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    provider = Provider(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(provider.issuer + "/.well-known/openid-configuration", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the test identity provider did not start: {(tmp / 'provider.log').read_text()}"
                )
            time.sleep(0.2)
        yield provider
    finally:
        process.terminate()
        process.wait(10)
        log.close()
