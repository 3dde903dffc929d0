"""Upsert: insert the row, or update it when its key is already taken, in one statement.

Reach for it when syncing data from another system, when a webhook may arrive twice, for
counters and per-key settings. Looking first and inserting second leaves a gap: two requests
both see nothing, both insert, and one of them hits the unique constraint (or, without one, the
table gets the row twice). INSERT … ON CONFLICT closes the gap, because Postgres decides between
insert and update itself, holding the unique index's lock. It only works against a unique index
or constraint on the conflict columns; name any other column and Postgres refuses the statement.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import delete, func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.pool import NullPool

from recipes import params
from recipes.base import Param, Recipe, Rows
from recipes.datasets import USERS, User
from recipes.learning import Challenge, Check, Question
from recipes.notes import plan_of, plural

SEEDED_USERS = 500
"""A size exists-count never asks for, so the two recipes never share (and re-seed) one table."""
WAIT_S = 10
"""How long a worker waits for the others to line up before giving up."""

recipe = Recipe(
    slug="upsert",
    title="Upsert: INSERT … ON CONFLICT",
    section="Writing",
    summary=__doc__,
    params=(
        params.email("sam@example.com", help="The unique key."),
        Param(
            "name",
            "str",
            "Sam",
            label="Name",
            help="Written on insert; copied over on update.",
            max_length=120,
        ),
        Param(
            "conflict_target",
            "choice",
            "email",
            label="Conflict target",
            choices=("email", "name"),
            help="The column in ON CONFLICT (…). users.name has no unique index.",
        ),
        Param("action", "choice", "do-update", label="On conflict", choices=("do-update", "do-nothing")),
        params.workers(
            8,
            max=16,
            label="Workers (race variants)",
            help="Concurrent sign-ups of the same email, each on its own connection.",
        ),
    ),
    docs=(
        (
            "PostgreSQL: INSERT … ON CONFLICT",
            "https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT",
        ),
        (
            "SQLAlchemy: INSERT…ON CONFLICT (Upsert)",
            "https://docs.sqlalchemy.org/en/20/dialects/postgresql.html#insert-on-conflict-upsert",
        ),
    ),
)


@recipe.setup
def prepare(setup, p):
    setup.dataset(USERS, rows=SEEDED_USERS, match=0)


@recipe.helper
def upsert_statement(p):
    """INSERT … ON CONFLICT (target) DO UPDATE or DO NOTHING, returning the row it wrote."""
    stmt = insert(User).values(email=p.email, name=p.name, role="member", active=True)
    target = {"email": User.email, "name": User.name}[p.conflict_target]
    if p.action == "do-update":
        stmt = stmt.on_conflict_do_update(index_elements=[target], set_={"name": stmt.excluded.name})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=[target])
    # A row version just inserted has xmax = 0; one rewritten by the update carries our transaction id.
    return stmt.returning(User.id, User.email, User.name, literal_column("xmax = 0").label("inserted"))


@recipe.helper
def look_then_insert(conn, p, line_up):
    """One worker of the naive way: SELECT the email, INSERT it when nothing came back."""
    found = conn.scalar(select(User.id).where(User.email == p.email))
    line_up()  # every worker has looked before any writes: the gap at its widest
    if found is None:
        conn.execute(insert(User).values(email=p.email, name=p.name, role="member", active=True))
        conn.commit()
        return "inserted"
    conn.execute(update(User).where(User.id == found).values(name=p.name))
    conn.commit()
    return "updated"


@recipe.helper
def upsert_once(conn, p, line_up):
    """One worker of the upsert way: a single INSERT … ON CONFLICT."""
    line_up()
    row = conn.execute(upsert_statement(p)).first()
    conn.commit()
    return outcome_of(row)


@recipe.helper
def outcome_of(returned):
    """What RETURNING said: DO NOTHING returns no row at all for a key that already exists."""
    if returned is None:
        return "nothing returned"
    return "inserted" if returned.inserted else "updated"


@recipe.helper
def race(run, p, worker):
    """Start p.workers workers on the same email, each on a connection of its own, and collect outcomes."""
    at_most = min(p.workers, connections_left(run))
    engine = run.engine_with(poolclass=NullPool)  # one connection per worker, closed when it is done

    def sign_up(number, line_up):
        with engine.connect() as conn:
            return worker(conn, p, line_up)

    workers = run.at_once(p.workers, sign_up, at_most=at_most, timeout=WAIT_S)
    run.metric("workers", p.workers)
    run.metric("at_once", at_most)
    return [
        (w.number, w.value if w.ok else "error", short_error(w.error) if w.error else "", w.ms)
        for w in workers
    ]


@recipe.helper
def connections_left(run):
    """The sandbox role's CONNECTION LIMIT minus the connections it holds right now."""
    with run.connect() as conn:
        limit, open_now = conn.execute(
            text(
                "SELECT rolconnlimit, (SELECT count(*) FROM pg_stat_activity WHERE usename = current_user) "
                "FROM pg_roles WHERE rolname = current_user"
            )
        ).one()
    return 16 if limit < 0 else max(1, limit - open_now)


@recipe.helper
def race_report(run, p, outcomes):
    """Count the errors the workers hit and the rows the email has now."""
    with run.connect() as conn:
        rows = conn.scalar(run.main(select(func.count()).select_from(User).where(User.email == p.email)))
    run.metric("errors", sum(1 for o in outcomes if o[1] == "error"))
    run.metric("rows_with_email", rows)
    return Rows(("worker", "outcome", "error", "ms"), outcomes)


@recipe.helper
def short_error(exc):
    """The error's class and first line, e.g. 'UniqueViolation: duplicate key value …'."""
    orig = getattr(exc, "orig", None) or exc
    message = str(orig).strip().splitlines() or ["gave up waiting for the other workers"]
    return f"{type(orig).__name__}: {message[0]}"


@recipe.variant
def select_then_insert(run, p):
    """SELECT, then INSERT if missing: the race (all workers on one email that is not there yet)"""
    with run.connect() as conn:
        conn.execute(delete(User).where(User.email == p.email))  # start from "no such user"
        conn.commit()
    return race_report(run, p, race(run, p, look_then_insert))


@recipe.variant
def on_conflict(run, p):
    """INSERT … ON CONFLICT … RETURNING: one statement, and it tells inserted from updated"""
    with run.session() as session:
        returned = session.execute(run.main(upsert_statement(p))).first()
        session.commit()
        outcome = outcome_of(returned)
        user = session.scalars(select(User).where(User.email == p.email)).one()
    run.metric("outcome", outcome)
    return Rows(("id", "email", "name", "outcome"), [(user.id, user.email, user.name, outcome)])


@recipe.variant
def on_conflict_race(run, p):
    """INSERT … ON CONFLICT under the same race: all workers at once on one new email"""
    with run.connect() as conn:
        conn.execute(delete(User).where(User.email == p.email))  # start from "no such user"
        conn.commit()
    return race_report(run, p, race(run, p, upsert_once))


@recipe.notes
def notes(result):
    lines = race_lines(result) if "errors" in result.metrics else upsert_lines(result)
    if result.error and "ON CONFLICT" in result.error:
        lines.append(
            f"ON CONFLICT ({result.params['conflict_target']}) was refused: no unique index or constraint "
            "covers that column, so Postgres cannot tell what a conflict is."
        )
    summary = plan_of(result)
    if summary is not None:
        insert_node = result.plan.json[0]["Plan"]
        arbiters = insert_node.get("Conflict Arbiter Indexes")
        if arbiters:
            conflicting = int(insert_node.get("Conflicting Tuples", 0))
            lines.append(
                f"In the EXPLAIN replay (rolled back) the arbiter was {', '.join(arbiters)}: "
                f"{plural(conflicting, 'conflicting row')}, "
                f"{plural(int(insert_node.get('Tuples Inserted', 0)), 'row')} inserted"
                + (
                    ": the replay ran after the upsert had committed, so it met the row just inserted."
                    if conflicting and result.metrics.get("outcome") == "inserted"
                    else "."
                )
            )
    return lines


OUTCOMES = {
    ("do-update", "inserted"): "{email} was not taken yet: the upsert inserted a new row, id {id}.",
    ("do-update", "updated"): (
        "{email} was already taken: the same statement updated that row, id {id}, instead of inserting; "
        "RETURNING gave it back with name = {name!r}."
    ),
    ("do-nothing", "inserted"): (
        "{email} was not taken yet: the upsert inserted a new row, id {id} (DO NOTHING acts only on a "
        "key that exists)."
    ),
    ("do-nothing", "nothing returned"): (
        "{email} was already taken: DO NOTHING left row {id} as it was, and RETURNING gave back no row "
        "at all; the row shown was read by a SELECT of its own."
    ),
}


def upsert_lines(result) -> list[str]:
    """What the one upsert did, and what was sent to find out."""
    outcome = result.metrics.get("outcome")
    if not result.ok or outcome is None:
        return []
    user_id, email, name, _ = result.rows.data[0]
    template = OUTCOMES.get((result.params["action"], outcome), "{email}: the upsert reported {outcome}.")
    verbs = Counter(statement_verb(s.sql) for s in result.statements if s.kind == "query")
    sent = ", ".join(f"{count} {verb}" for verb, count in verbs.items())
    return [
        template.format(email=email, id=user_id, name=name, outcome=outcome),
        f"{plural(result.query_count, 'statement')} sent in all: {sent}.",
    ]


def statement_verb(sql: str) -> str:
    """'INSERT … ON CONFLICT', 'SELECT', 'DELETE': what a statement is, for counting."""
    verb = sql.split(None, 1)[0].upper() if sql.strip() else "?"
    return f"{verb} … ON CONFLICT" if verb == "INSERT" and "ON CONFLICT" in sql else verb


def race_lines(result) -> list[str]:
    """How the workers' attempts ended, and how many rows the email has now."""
    m = result.metrics
    rows = result.rows.data if result.rows else []
    outcomes = Counter(row[1] for row in rows)
    together = f" {m['at_once']} at a time" if m["at_once"] < m["workers"] else " all at once"
    if m["workers"] == 1:
        together = ""
    ended = [
        plural(m["errors"], "error"),
        plural(outcomes["inserted"], "insert"),
        plural(outcomes["updated"], "update"),
    ]
    if outcomes["nothing returned"]:
        ended.append(f"{outcomes['nothing returned']} with nothing returned (DO NOTHING)")
    lines = [
        f"{plural(m['workers'], 'worker')}{together}: {', '.join(ended)}; "
        f"the email now has {plural(m['rows_with_email'], 'row')}."
    ]
    refused = sum(1 for row in rows if row[2].startswith("UniqueViolation"))
    if refused and result.variant == "select-then-insert":
        won = outcomes["inserted"]
        lines.append(
            f"{plural(won, 'worker')} inserted the row; {plural(refused, 'other')} had also seen no row, "
            f"inserted anyway and {'was' if refused == 1 else 'were'} stopped only by the unique index."
        )
    return lines


# --- questions and challenges ---
recipe.learn(
    Question(
        "race-errors",
        "{workers} workers look for the same new email, then insert it. How many will end in an error?",
        answer="errors",
        variant="select-then-insert",
        why=lambda r: (
            f"{r.metrics['at_once']} worker(s) ran at once and all saw no row; one insert won and "
            f"{r.metrics['errors']} hit the unique index."
        ),
    ),
    Question(
        "conflict-target",
        "Will INSERT … ON CONFLICT ({conflict_target}) fail?",
        answer="failed",
        choices=("yes", "no"),
        variant="on-conflict",
    ),
    Challenge(
        "race-no-errors",
        "Survive the {workers}-worker race with 0 errors and exactly one row for the email",
        checks=(Check("errors", at_most=0), Check("metric:rows_with_email", equals=1)),
        params={"workers": 8},
    ),
)
