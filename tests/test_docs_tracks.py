"""docs/tracks.md stays true: its example file reads as a track, and its figure table is complete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recipes import tracks
from recipes.learning import Challenge, Question
from recipes.measures import FIGURES

DOC = (Path(__file__).resolve().parent.parent / "docs" / "tracks.md").read_text(encoding="utf-8")

pytestmark = pytest.mark.django_db


def test_the_whole_file_in_the_docs_reads_as_a_track(tmp_path):
    example = re.search(r"## A whole file.*?```toml\n(.*?)```", DOC, re.S).group(1)
    path = tmp_path / "our-first-hour.toml"
    path.write_text(example, encoding="utf-8")
    track, problems = tracks.read(path)
    assert problems == []
    assert [s.title for s in track.steps] == [
        "Count the lazy loads",
        "Two queries, whatever the page size",
        "What does the count cost?",
    ]
    assert isinstance(track.steps[1].teaching, Challenge)
    own = track.steps[2].teaching
    assert isinstance(own, Question) and own.answer == "rows_read" and own.close == 0.1


def test_the_figure_table_lists_every_figure():
    table = DOC.split("## Figures", 1)[1].split("\n\n", 2)[1]
    documented = set(re.findall(r"^\| `([a-z_:<>]+)` \|", table, re.M))
    assert documented == set(FIGURES) | {"metric:<name>"}
