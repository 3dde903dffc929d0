from __future__ import annotations

import json
import uuid
from typing import Any

from django.conf import settings
from django.db import connection, models
from django.utils import timezone


class Sandbox(models.Model):
    """A private schema and login role in the sandbox database, owned by one browser session (or,
    signed in, by one person)."""

    role = models.CharField(max_length=63, unique=True)
    """Name of both the login role and its schema."""
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(db_index=True)
    client = models.CharField(max_length=64, blank=True, default="", db_index=True)
    """The address (IPv6: its /64) of the client it was made for; empty when made outside a request."""
    uses = models.PositiveIntegerField(default=1)
    """Runs it served: the longer it may stay idle before it is reaped."""
    server = models.CharField(max_length=63, blank=True, default="", db_index=True)
    """The sandbox server it lives on (playground.sandbox.servers); empty for `main`."""
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    """The signed-in person it was made for, who gets it back in any browser; None when made for
    a visitor who was not signed in."""

    class Meta:
        verbose_name_plural = "sandboxes"

    def __str__(self) -> str:
        return self.role


class Runs(models.Manager):
    """`Run.objects`, with a cheaper way to store the run a request just made."""

    def keep(
        self,
        *,
        sandbox_id: int,
        recipe: str,
        variant: str,
        params: dict[str, Any],
        ok: bool,
        query_count: int,
        elapsed_ms: float,
        db_ms: float,
        rows_read: int | None,
        result: str,
        sweep: uuid.UUID | None,
    ) -> int:
        """Store one run and return its id. `result` is already JSON text (the run encoded it
        to measure its size).

        One INSERT written out, where `create()` built a model instance, compiled the statement
        and encoded the result again: on every run, about as long as the INSERT itself.
        """
        table = connection.ops.quote_name(self.model._meta.db_table)
        row = [sandbox_id, recipe, variant, json.dumps(params), ok, query_count, elapsed_ms, db_ms]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (sandbox_id, recipe, variant, params, ok, query_count, elapsed_ms, "
                "db_ms, rows_read, result, sweep, created_at) "
                "VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s::jsonb, %s, %s) RETURNING id",
                [*row, rows_read, result, sweep, timezone.now()],
            )
            return cursor.fetchone()[0]


class Run(models.Model):
    """One run of a recipe in a sandbox, kept for the session's history."""

    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="runs")
    recipe = models.CharField(max_length=64)
    variant = models.CharField(max_length=64)
    params = models.JSONField()
    ok = models.BooleanField()
    query_count = models.PositiveIntegerField()
    elapsed_ms = models.FloatField()
    db_ms = models.FloatField()
    rows_read = models.BigIntegerField(null=True)
    """Rows the plan's scans read, when the run had a plan."""
    result = models.JSONField(default=dict)
    """The RunResult as JSON, with long statement lists and row lists cut short."""
    sweep = models.UUIDField(null=True, db_index=True)
    """Set on the runs of one sweep, which its chart is drawn from."""
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = Runs()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.recipe}/{self.variant}"


class RunAllowance(models.Model):
    """Token bucket of one session's runs, shared by every worker through the app database."""

    key = models.CharField(max_length=64, primary_key=True)
    tokens = models.FloatField()
    """Runs the session may start right now (refilled at the configured rate, up to the burst)."""
    allowed = models.BooleanField()
    """Whether the last request was let through."""
    updated_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.tokens:.1f}"


class StepProgress(models.Model):
    """Where one person stands on one step of a track: kept in the app database, so that any worker
    of any instance sees the same progress (the session holds only the learner key)."""

    learner = models.CharField(max_length=64)
    """A random key kept in the Django session."""
    track = models.CharField(max_length=100)
    step = models.PositiveSmallIntegerField()
    """1 for a track's first step."""
    done = models.BooleanField(default=False)
    """A question answered, or a challenge passed, on some attempt."""
    first_right = models.BooleanField(null=True)
    """Whether the first prediction of a question step was right (None for a challenge)."""
    attempts = models.PositiveIntegerField(default=0)
    outcome = models.JSONField(default=dict)
    """The latest answer or verdict, as JSON."""
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    """The latest attempt's run, while its sandbox lives."""
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["learner", "track", "step"], name="one_progress_row_per_step")
        ]

    def __str__(self) -> str:
        return f"{self.learner[:8]} {self.track} #{self.step}"


class Room(models.Model):
    """A workshop: a trainer's host page, a join code, and the step every participant is sent to.

    Kept in the app database (not in a worker) so that any instance serves the host and the
    participants alike.
    """

    name = models.CharField(max_length=100)
    host_token = models.CharField(max_length=64, unique=True)
    """The secret in the host page's link: whoever holds it runs the room (random, 256 bits)."""
    code = models.CharField(max_length=16, unique=True)
    """What participants type to join: short enough to read off a projector."""
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    """Who made it, when signing in is on: only they may open the host page."""
    track = models.CharField(max_length=100, blank=True, default="")
    """The track it follows, or empty for a free list of recipes."""
    recipes = models.JSONField(default=list)
    """Slugs of the recipes a trainer may push (a track room: the track's)."""
    step = models.JSONField(default=dict)
    """The pushed step: `{"track", "number"}` or `{"recipe", "query"}`; empty before the first push."""
    step_version = models.PositiveIntegerField(default=0)
    """Counts the pushes: a participant's page moves when it sees a newer one."""
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    version = models.PositiveSmallIntegerField(null=True, blank=True)
    """The PostgreSQL major version its participants run on and its sandboxes are prepared on;
    None (rooms made before there was a choice): the default version."""
    prepare_wanted = models.PositiveIntegerField(default=0)
    """Sandboxes the trainer asked to have seeded before the session (the prepared ones are rows
    of `PreparedSandbox`)."""
    prepare_error = models.TextField(blank=True, default="")
    """Why preparing stopped early, if it did."""
    prepare_seed = models.JSONField(default=dict)
    """What a prepared sandbox runs once to seed its dataset: `{"recipe", "variant", "params"}`,
    kept so that any instance can take up a preparation another one left."""
    prepare_worker = models.CharField(max_length=32, blank=True, default="")
    """Which thread (a random id) is preparing now; empty when none is."""
    prepare_beat = models.DateTimeField(null=True, blank=True)
    """When that thread last said it lives: long silent, it died with its process."""

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Member(models.Model):
    """A participant of a room: a display name and the browser session that joined with it."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="members")
    name = models.CharField(max_length=40)
    """As typed: always escaped when shown."""
    session_key = models.CharField(max_length=40)
    """The participant's Django session: the host page reads their sandbox and progress from it."""
    step_version = models.PositiveIntegerField(default=0)
    """The last pushed step the participant opened."""
    step_label = models.CharField(max_length=200, blank=True, default="")
    joined_at = models.DateTimeField(auto_now_add=True)
    seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["joined_at"]

    def __str__(self) -> str:
        return self.name


class PreparedSandbox(models.Model):
    """A sandbox seeded for a room before anyone joined: the next member to join without a sandbox
    of their own takes it, so their first run costs what a second run costs."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="prepared")
    role = models.CharField(max_length=63, unique=True)
    """The sandbox's role (see `Sandbox.role`)."""
    member = models.OneToOneField(Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    """Who took it; None while it waits."""
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.role


class Snapshot(models.Model):
    """A stored run, compare or sweep frozen as it was, behind an unguessable link anyone may open
    read-only.

    The result is copied: the runs themselves go when their sandbox is reaped, the snapshot stays.
    """

    KINDS = [("run", "run"), ("compare", "compare"), ("sweep", "sweep")]

    token = models.CharField(max_length=64, unique=True)
    """The secret in the link (random, 256 bits)."""
    kind = models.CharField(max_length=8, choices=KINDS, default="run")
    recipe = models.CharField(max_length=64)
    result = models.JSONField()
    """As it was when frozen: a run's stored RunResult JSON; for a compare `{"runs": [...]}`, one
    per variant; for a sweep its drawn lines, labels and what was left out (see `web.snapshots`)."""
    ran_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.recipe} {self.token[:6]}"


class OperatorAction(models.Model):
    """Something a staff member did to the instance from the operator's pages, kept for the record:
    who (the account, and its name as it was), what, to which object, and when."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150)
    """The account's name at the time: kept when the account is deleted or renamed."""
    action = models.CharField(max_length=40)
    """What was done: "drop sandbox", "reap now", "close room"."""
    target = models.CharField(max_length=200, blank=True, default="")
    """What it was done to (a sandbox role, a room), empty for the whole instance."""
    detail = models.JSONField(default=dict, blank=True)
    """What came of it (sandboxes dropped, say)."""
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.username}: {self.action} {self.target}".strip()


class MinuteTally(models.Model):
    """Refusals counted per minute, for the operator's status page: one row per minute, bumped
    with a single upsert, so that counting costs one statement on an answer that is a refusal."""

    minute = models.DateTimeField(primary_key=True)
    """The minute's start (UTC)."""
    too_many = models.PositiveIntegerField(default=0)
    """429 answers: a run allowance spent, a client holding its share of sandboxes, join guesses."""
    unavailable = models.PositiveIntegerField(default=0)
    """503 answers: every sandbox taken, every run slot busy, a database not answering."""

    def __str__(self) -> str:
        return f"{self.minute:%H:%M} 429×{self.too_many} 503×{self.unavailable}"
