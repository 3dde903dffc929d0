"""Progress through tracks: which steps a person has done, kept in the app database.

The session holds only a random learner key; the steps live in `StepProgress` rows, so every
worker of every instance (no sticky sessions) sees the same progress. A question step is done
once a guess was checked against a run (right or not: the first guess is what is scored); a
challenge step once a run passed it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from playground.models import StepProgress
from recipes.learning import Answer, Verdict
from recipes.results import RunResult, jsonable
from recipes.tracks import Step, Track

LEARNER_KEY = "learner"


def learner(session, *, create: bool = False) -> str | None:
    """This session's learner key (made on first use when `create`)."""
    key = session.get(LEARNER_KEY)
    if key is None and create:
        key = session[LEARNER_KEY] = uuid.uuid4().hex
    return key


@dataclass(frozen=True)
class Progress:
    """Where one person stands on one track."""

    track: Track
    rows: dict[int, StepProgress]
    """Step number → its progress row, for the steps tried at least once."""

    @property
    def done(self) -> list[int]:
        return sorted(n for n, row in self.rows.items() if row.done)

    @property
    def total(self) -> int:
        return len(self.track.steps)

    @property
    def done_count(self) -> int:
        return len(self.done)

    @property
    def percent(self) -> int:
        return round(100 * self.done_count / self.total) if self.total else 0

    @property
    def next_step(self) -> int | None:
        """The first step not done yet: where "resume" goes. None once every step is done."""
        return next((s.number for s in self.track.steps if s.number not in self.done), None)

    @property
    def finished(self) -> bool:
        return self.next_step is None

    @property
    def started(self) -> bool:
        return bool(self.rows)

    @property
    def predictions(self) -> int:
        """Question steps guessed at least once."""
        return sum(1 for row in self.rows.values() if row.first_right is not None)

    @property
    def right(self) -> int:
        """Question steps whose first guess was right."""
        return sum(1 for row in self.rows.values() if row.first_right)

    def state(self, step: Step) -> StepProgress | None:
        return self.rows.get(step.number)

    def to_json(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "steps": self.total,
            "next": self.next_step,
            "finished": self.finished,
            "predictions": self.predictions,
            "right": self.right,
        }


def progress(session, track: Track) -> Progress:
    return progress_of(session, [track])[0]


def progress_of(session, tracks: Iterable[Track]) -> list[Progress]:
    """The progress on each of `tracks`, read in one query."""
    tracks = list(tracks)
    key = learner(session)
    rows = (
        StepProgress.objects.filter(learner=key, track__in=[t.slug for t in tracks]).defer("outcome")
        if key
        else []
    )
    by_track: dict[str, dict[int, StepProgress]] = {t.slug: {} for t in tracks}
    for row in rows:
        if row.step <= len(next(t for t in tracks if t.slug == row.track).steps):
            by_track[row.track][row.step] = row
    return [Progress(t, by_track[t.slug]) for t in tracks]


def record(
    session,
    track: Track,
    step: Step,
    result: RunResult,
    *,
    answer: Answer | None = None,
    verdict: Verdict | None = None,
) -> StepProgress:
    """Note an attempt at `step`: its outcome, whether the step is now done, the first guess's score."""
    key = learner(session, create=True)
    with transaction.atomic():
        row, _ = StepProgress.objects.select_for_update().get_or_create(
            learner=key, track=track.slug, step=step.number
        )
        row.attempts += 1
        if answer is not None:
            row.first_right = answer.right if row.first_right is None else row.first_right
            row.done = True
        if verdict is not None:
            row.done = row.done or verdict.passed
        row.outcome = jsonable({"answer": answer, "verdict": verdict, "run_id": result.run_id})
        row.run_id = result.run_id  # the run was stored in this request: it exists
        row.save()
    return row


def outcomes(session, track: Track) -> dict[int, StepProgress]:
    """The progress rows of `track` with their outcomes and runs, for an export."""
    key = learner(session)
    if key is None:
        return {}
    rows = StepProgress.objects.filter(learner=key, track=track.slug).select_related("run")
    return {row.step: row for row in rows}
