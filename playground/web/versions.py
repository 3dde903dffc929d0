"""Which PostgreSQL a request asks for: the `pg` field of a form, a link or a JSON body.

Absent means the default version (`main`'s), so every client written before there was a choice
keeps getting what it got.
"""

from __future__ import annotations

from typing import Any

from playground import sandbox
from recipes.validation import InvalidParams

FIELD = "pg"


def asked_version(data: Any) -> int | None:
    """The major version `data[FIELD]` asks for, None when it asks for none, or `InvalidParams`
    (400, on the field) for one no sandbox server has."""
    raw = data.get(FIELD) if hasattr(data, "get") else None
    if raw is None or raw == "":
        return None
    offered = sandbox.versions()
    text = str(raw).strip()
    if isinstance(raw, bool) or not text.isdigit() or int(text) not in offered:
        choices = " and ".join(str(v) for v in offered)
        raise InvalidParams(
            {FIELD: [f"PostgreSQL {text[:20]!r} is not offered here; pick {choices}."]}, values={FIELD: raw}
        )
    return int(text)


def shown_version(version: int | None) -> dict[str, int]:
    """The form's value for the version a run used."""
    return {FIELD: version or sandbox.default_version()}


def major_of(server_version: str) -> int | None:
    """The major version of a run's `server_version` ("16.14" → 16), None when it is not known
    (a run stored before runs said where they ran, or one that never reached a server)."""
    major = (server_version or "").split(".")[0]
    return int(major) if major.isdigit() else None


def link_version(server_version: str) -> dict[str, int]:
    """The `pg` of a link that opens a run again on the version it ran on: empty when that is
    not known or the site offers one version only (its form has no choice to pre-select)."""
    major = major_of(server_version)
    return {FIELD: major} if major is not None and len(sandbox.versions()) > 1 else {}
