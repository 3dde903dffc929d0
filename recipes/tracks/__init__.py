"""Tracks: ordered steps across recipes, each a recipe with preset parameters, a few lines of
guidance, and a question or a challenge. One TOML file per track (docs/tracks.md).

The shipped tracks live beside this module; a team adds its own by dropping a file into the folder
the `TRACKS_DIR` setting names. `load(folder)` reads every `*.toml` there and returns the tracks
that are sound and, for the others, each problem with the line of the file it is on, which the
system check `playground.T001` reports before the site starts. Nothing here knows about Django.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from recipes.tracks.model import Problem, Step, Track
from recipes.tracks.reader import Reader

__all__ = ["SHIPPED", "Problem", "Step", "Track", "load", "read"]

SHIPPED = Path(__file__).parent
"""The tracks that come with the playground: the default of the TRACKS_DIR setting."""


def load(folder: Path) -> tuple[dict[str, Track], list[Problem]]:
    """Every sound track in `folder` by slug, in file-name order, and the problems of the others."""
    tracks: dict[str, Track] = {}
    problems: list[Problem] = []
    if not folder.is_dir():
        return {}, [Problem(folder, None, "the tracks folder does not exist")]
    for path in sorted(folder.glob("*.toml")):
        track, found = read(path)
        problems += found
        if track is not None:
            tracks[track.slug] = track
    return tracks, problems


def read(path: Path) -> tuple[Track | None, list[Problem]]:
    """One track file: the track, or None and every problem found in it, each with its line."""
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        return None, [Problem(path, int(found.group(1)) if found else None, f"not valid TOML: {exc}")]
    reader = Reader(path, text)
    track = reader.track(data)
    return (track if not reader.problems else None), reader.problems
