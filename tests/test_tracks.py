"""Track files: the shipped ones read cleanly, and a bad one is refused with the line it goes wrong on."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from playground.checks import track_files
from playground.conf import setting
from recipes import tracks
from recipes.learning import Challenge, Question
from recipes.tracks.locate import line_of

pytestmark = pytest.mark.django_db

GOOD = '''title = "Two steps"
summary = "A small track."
minutes = 5

[[steps]]
recipe = "eager-loading"
params = { authors = 30 }
guidance = "Guess first."
question = "lazy-queries"

[[steps]]
title = "Own challenge"
recipe = "exists-count"
guidance = """
Line one.
Line two.
"""

[steps.params]
rows = 2000

[steps.challenge]
goal = "Count with one row fetched"
checks = [{ figure = "rows_fetched", at_most = 1 }, { figure = "queries", equals = 1 }]
'''


def write(tmp_path: Path, text: str, name: str = "team-track.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str, name: str = "team-track.toml") -> list[tuple[int | None, str]]:
    track, problems = tracks.read(write(tmp_path, text, name))
    assert track is None
    return [(p.line, p.message) for p in problems]


def test_the_shipped_tracks_read_without_a_problem():
    found, problems = tracks.load(tracks.SHIPPED)
    assert [str(p) for p in problems] == []
    assert set(found) == {
        "n-plus-one-and-pagination",
        "writing-without-losing-data",
        "indexes-that-get-used",
        "onboarding",
    }
    assert found["n-plus-one-and-pagination"].title == "N+1 and pagination in 30 minutes"
    for track in found.values():
        assert len(track.steps) >= 4
        for step in track.steps:
            assert 2 <= len(step.guidance.splitlines()) <= 4, (track.slug, step.number)
    sections = {step.recipe.section for step in found["onboarding"].steps}
    assert sections == {"Modelling", "Reading", "Writing", "Performance"}


def test_the_setting_names_the_shipped_folder_by_default():
    assert Path(setting("TRACKS_DIR")).resolve() == tracks.SHIPPED.resolve()


def test_a_good_file_gives_steps_with_their_question_or_challenge(tmp_path):
    track, problems = tracks.read(write(tmp_path, GOOD))
    assert problems == []
    assert track.slug == "team-track" and track.minutes == 5
    first, second = track.steps
    assert first.title == "Kill N+1 with eager loading"  # no title: the recipe's
    assert first.variant == "lazy"  # the question is about lazy loading
    assert first.params == {"authors": 30}
    assert isinstance(first.teaching, Question) and first.teaching.slug == "lazy-queries"
    assert isinstance(second.teaching, Challenge)
    assert [c.figure for c in second.teaching.checks] == ["rows_fetched", "queries"]
    assert second.guidance == "Line one.\nLine two."
    assert second.params == {"rows": 2000}


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (('recipe = "exists-count"', 'recipe = "exists"'), 13, "unknown recipe 'exists'"),
        (("params = { authors = 30 }", "params = { authors = 0 }"), 7, "params.authors: Ensure this value"),
        (("params = { authors = 30 }", "params = { writers = 3 }"), 7, "params: unknown parameter 'writers'"),
        (("rows = 2000", "rows = 5"), 20, "params.rows: Ensure this value is greater than or equal to 1000"),
        (('question = "lazy-queries"', 'question = "lazy"'), 9, "eager-loading has no question 'lazy'"),
        (
            ('question = "lazy-queries"', 'question = "lazy-queries"\nchallenge = "two-queries"'),
            5,
            "exactly one",
        ),
        (('figure = "rows_fetched"', 'figure = "rows_fecthed"'), 24, "unknown figure 'rows_fecthed'"),
        (("at_most = 1 }, {", "at_most = 1, at_least = 0 }, {"), 24, "set exactly one"),
        (("minutes = 5", 'minutes = "soon"'), 3, "minutes must be a whole number"),
        (('summary = "A small track."', 'summary = "A small track."\nlevel = 3'), 3, "unknown key 'level'"),
        (('guidance = "Guess first."', 'guidance = ""'), 8, "guidance must be non-empty text"),
        (
            ("params = { authors = 30 }", 'variant = "joinedload"'),
            7,
            "the question is about lazy, not joinedload",
        ),
    ],
)
def test_a_bad_file_is_refused_with_the_line_it_goes_wrong_on(tmp_path, change, line, message):
    old, new = change
    assert old in GOOD
    found = problems_of(tmp_path, GOOD.replace(old, new, 1))
    assert any(at == line and message in text for at, text in found), found


def test_a_syntax_error_is_refused_with_the_line_tomllib_gives(tmp_path):
    found = problems_of(tmp_path, GOOD.replace('guidance = "Guess first."', "guidance = Guess first."))
    assert len(found) == 1
    assert found[0][0] == 8 and "not valid TOML" in found[0][1]


def test_a_file_name_that_is_not_a_slug_is_refused(tmp_path):
    found = problems_of(tmp_path, GOOD, name="My Track.toml")
    assert found == [
        (None, "the file name 'My Track.toml' must be a slug: lowercase letters, digits, dashes")
    ]


def test_the_system_check_names_the_file_and_the_line(tmp_path):
    write(tmp_path, GOOD, "good.toml")
    write(tmp_path, GOOD.replace('recipe = "eager-loading"', 'recipe = "eager"'), "broken.toml")
    with override_settings(PLAYGROUND={**settings.PLAYGROUND, "TRACKS_DIR": tmp_path}):
        errors = track_files()
    assert [(e.id, e.obj, e.msg.split(":")[0]) for e in errors] == [
        ("playground.T001", str(tmp_path / "broken.toml"), "line 6")
    ]
    assert "unknown recipe 'eager'" in errors[0].msg
    assert tracks.load(tmp_path)[0].keys() == {"good"}


def test_the_locator_finds_keys_in_tables_inline_tables_and_sub_tables():
    text = GOOD
    assert line_of(text, ("minutes",)) == 3
    assert line_of(text, ("steps", 0)) == 5
    assert line_of(text, ("steps", 0, "params", "authors")) == 7
    assert line_of(text, ("steps", 1, "params", "rows")) == 20
    assert line_of(text, ("steps", 1, "challenge")) == 22
    assert line_of(text, ("steps", 1, "nothing")) == 11  # not found: the step's own line
    assert line_of(text, ("steps", 5)) == 5  # no such step: the first one
