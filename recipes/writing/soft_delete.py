"""Soft delete: stamp deleted_at instead of removing the row.

Reach for it when deleting must be undoable or auditable: accounts, invoices, anything with a
legal or business history. The row stays, so every read has to leave it out again; forget the
filter once and deleted rows come back in a report. A plain unique constraint still counts the
dead rows, so a deleted account's email blocks a new sign-up until the constraint covers live rows
only. Putting the filter in one place (a session hook) beats remembering it in every query.
"""

from __future__ import annotations

from sqlalchemy import event, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import with_loader_criteria

from recipes import params
from recipes.base import Recipe, Rows
from recipes.datasets import ACCOUNTS, Account
from recipes.learning import Challenge, Check, Question
from recipes.notes import plan_of

LISTED = 20
"""Accounts a list variant shows, in email order."""

recipe = Recipe(
    slug="soft-delete",
    title="Soft delete: deleted_at instead of DELETE",
    section="Writing",
    summary=__doc__,
    params=(
        params.rows(
            10_000,
            min=100,
            max=200_000,
            label="Accounts",
            help="One in ten is soft-deleted in the seed; changing it re-seeds the table.",
        ),
        params.email("account1@example.com", help="The account to delete, restore or sign up again with."),
    ),
    docs=(
        ("PostgreSQL: partial indexes", "https://www.postgresql.org/docs/current/indexes-partial.html"),
        (
            "SQLAlchemy: adding global WHERE criteria",
            "https://docs.sqlalchemy.org/en/20/orm/session_events.html#adding-global-where-on-criteria",
        ),
    ),
)


@recipe.setup
def prepare(setup, p):
    """Keep whatever was soft-deleted or restored; undo sign-ups and the partial-unique-index swap."""
    setup.dataset(ACCOUNTS, rows=p.rows)
    conn = setup.conn
    signed_up = conn.execute(text("DELETE FROM accounts WHERE id > :rows"), {"rows": p.rows}).rowcount
    if signed_up:
        setup.log.append(f"removed {signed_up} sign-up(s) left by an earlier run")
    if conn.execute(text("SELECT to_regclass('ux_accounts_email_live') IS NOT NULL")).scalar():
        with setup.step("dropped the partial unique index"):
            conn.execute(text("DROP INDEX ux_accounts_email_live"))
    # pg_constraint holds every sandbox's constraints: look at this sandbox's table only.
    held = (
        "SELECT count(*) FROM pg_constraint "
        "WHERE conrelid = 'accounts'::regclass AND conname = 'accounts_email_key'"
    )
    if not conn.execute(text(held)).scalar():
        with setup.step("put back the full UNIQUE (email) constraint"):
            conn.execute(text("ALTER TABLE accounts ADD CONSTRAINT accounts_email_key UNIQUE (email)"))
            conn.execute(text("ANALYZE accounts"))


@recipe.helper
def accounts_with(run, email):
    """The table's state for one email afterwards: every row carrying it, dead or alive."""
    with run.session() as session:
        rows = session.scalars(run.main(select(Account).where(Account.email == email).order_by(Account.id)))
        return Rows.of(rows, "id", "email", "name", "deleted_at")


@recipe.helper
def soft_delete_account(session, email):
    """UPDATE … SET deleted_at = now() for the live account with this email (the soft-delete variant's)."""
    return session.execute(
        update(Account)
        .where(Account.email == email, Account.deleted_at.is_(None))
        .values(deleted_at=func.now())
    ).rowcount


@recipe.helper
def live_only(session):
    """Add `deleted_at IS NULL` to every SELECT of Account this session runs (opt out per query)."""

    @event.listens_for(session, "do_orm_execute")
    def _only_live(state):
        if state.is_select and not state.execution_options.get("include_deleted", False):
            state.statement = state.statement.options(
                with_loader_criteria(Account, Account.deleted_at.is_(None), include_aliases=True)
            )

    return session


@recipe.variant
def soft_delete(run, p):
    """soft-delete: stamp deleted_at; the row stays in the table"""
    with run.session() as session:
        deleted = session.execute(
            update(Account)
            .where(Account.email == p.email, Account.deleted_at.is_(None))
            .values(deleted_at=func.now())
        )
        run.metric("rows_changed", deleted.rowcount)
        session.commit()
    return accounts_with(run, p.email)


@recipe.variant
def restore(run, p):
    """restore: set deleted_at back to NULL (the undo a real DELETE cannot offer)"""
    with run.session() as session:
        restored = session.execute(
            update(Account)
            .where(Account.email == p.email, Account.deleted_at.is_not(None))
            .values(deleted_at=None)
        )
        run.metric("rows_changed", restored.rowcount)
        session.commit()
    return accounts_with(run, p.email)


@recipe.variant
def list_live(run, p):
    """list-live: WHERE deleted_at IS NULL, written by hand"""
    with run.session() as session:
        query = select(Account).where(Account.deleted_at.is_(None)).order_by(Account.email).limit(LISTED)
        accounts = session.scalars(run.main(query)).all()
        run.metric("deleted_rows_listed", sum(a.deleted_at is not None for a in accounts))
        return Rows.of(accounts, "id", "email", "name", "deleted_at")


@recipe.variant
def list_forgot_filter(run, p):
    """list-forgot-filter: the same list without the filter (the trap: deleted rows are back)"""
    with run.session() as session:
        accounts = session.scalars(run.main(select(Account).order_by(Account.email).limit(LISTED))).all()
        run.metric("deleted_rows_listed", sum(a.deleted_at is not None for a in accounts))
        return Rows.of(accounts, "id", "email", "name", "deleted_at")


@recipe.variant(
    fails="the full UNIQUE (email) constraint still counts the soft-deleted row",
    fails_with="accounts_email_key",
)
def re_register(run, p):
    """re-register: delete the account, then sign up again with its email (the trap)"""
    with run.session() as session:
        soft_delete_account(session, p.email)
        session.commit()
        session.add(Account(email=p.email, name="Signed up again"))
        try:
            session.commit()
        except IntegrityError as exc:  # the full UNIQUE (email) constraint still counts the deleted row
            session.rollback()
            run.fail(exc)
    return accounts_with(run, p.email)


@recipe.variant
def partial_unique_index(run, p):
    """partial-unique-index: unique only WHERE deleted_at IS NULL, then sign up again"""
    with run.session() as session:
        session.execute(text("ALTER TABLE accounts DROP CONSTRAINT accounts_email_key"))
        session.execute(
            text("CREATE UNIQUE INDEX ux_accounts_email_live ON accounts (email) WHERE deleted_at IS NULL")
        )
        soft_delete_account(session, p.email)
        session.add(Account(email=p.email, name="Signed up again"))
        session.commit()
    return accounts_with(run, p.email)


@recipe.variant
def central_filter(run, p):
    """central-filter: one session hook adds the filter; the query below does not mention it"""
    with live_only(run.session()) as session:
        accounts = session.scalars(run.main(select(Account).order_by(Account.email).limit(LISTED))).all()
        run.metric("deleted_rows_listed", sum(a.deleted_at is not None for a in accounts))
        return Rows.of(accounts, "id", "email", "name", "deleted_at")


@recipe.notes
def notes(result):
    m, lines = result.metrics, []
    rows = result.rows.data if result.rows else []
    if "deleted_rows_listed" in m:
        lines.append(f"{m['deleted_rows_listed']} of the {len(rows)} accounts listed are soft-deleted.")
    main = next((s for s in result.statements if s.main), None)
    if result.variant == "central-filter" and main is not None and "deleted_at IS NULL" in main.sql:
        lines.append(
            "The SQL sent carries `deleted_at IS NULL` although the query never wrote it: the hook added it."
        )
    if "rows_changed" in m:
        lines.append(
            f"{m['rows_changed']} row(s) changed; the table still holds {len(rows)} row(s) for this email."
        )
    if result.variant in ("re-register", "partial-unique-index"):
        live = sum(1 for r in rows if r[3] is None)
        verdict = "was refused" if not result.ok else "went through"
        lines.append(f"The sign-up {verdict}: {len(rows)} row(s) carry the email now, {live} of them live.")
    summary = plan_of(result)
    if summary is not None and summary.key_scan is not None:
        lines.append(f"Plan: {summary.key_scan.label}, {summary.rows_read:,} rows read.")
    return lines


# --- questions and challenges ---
recipe.learn(
    Question(
        "dead-listed",
        "The list forgot its deleted_at filter. How many soft-deleted accounts will show among the first "
        f"{LISTED} of {{rows:,}}?",
        answer="metric:deleted_rows_listed",
        variant="list-forgot-filter",
    ),
    Challenge(
        "sign-up-again",
        "Soft-delete {email}, sign up again with it, and end with both rows: the deleted one and the new one",
        checks=(Check("errors", at_most=0), Check("rows_returned", equals=2)),
    ),
    Challenge(
        "no-dead-listed",
        f"List {LISTED} accounts with no soft-deleted one among them",
        checks=(Check("metric:deleted_rows_listed", equals=0),),
    ),
)
