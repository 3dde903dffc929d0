"""The playground's own knobs: one reader for `settings.PLAYGROUND`.

Every knob, its default and the environment variable that sets it are documented where the dict
is built, in `playground/settings.py`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


def setting(key: str) -> Any:
    """The value of `settings.PLAYGROUND[key]`; a KeyError names a knob that does not exist.

    Read on every call, never cached at import, so that a test overriding `settings.PLAYGROUND`
    (or a different settings module) is seen by the code under it at once.
    """
    return settings.PLAYGROUND[key]
