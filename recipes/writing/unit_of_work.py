"""One transaction per unit of work: writes that belong together commit together.

Reach for it whenever two or more writes only make sense as a whole: an order and its lines and
the stock they take, a debit and its credit. Inside one transaction Postgres applies all of them
or none; `with session.begin():` commits when the block ends and rolls back when it raises.
Committing after each write instead means a failure half-way leaves the first writes behind for
good: an order with no lines, or lines whose stock was never taken.
"""

from __future__ import annotations

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from recipes.base import Param, Recipe, Rows
from recipes.datasets import SHOP, LineItem, Order, StockItem
from recipes.learning import Challenge, Check, Question

SKU = "SKU-1"
PRICE = 1250
"""Cents per unit."""
STOCK = 1_000
OUT_OF_STOCK = 1_000_000
"""An order for more units than any shelf holds: step 3 then breaks the on_hand >= 0 check."""

recipe = Recipe(
    slug="unit-of-work",
    title="One transaction per unit of work",
    section="Writing",
    summary=__doc__,
    variant_alias="mode",
    params=(
        Param(
            "fail_at_step",
            "choice",
            "3",
            label="Fail at step",
            choices=("none", "1", "2", "3"),
            help="1 = the order (negative total), 2 = its line (quantity 0), 3 = the stock (goes below 0). "
            "Each breaks a CHECK constraint, so the error is Postgres' own.",
        ),
        Param("quantity", "int", 2, label="Quantity", min=1, max=10),
    ),
    docs=(
        ("PostgreSQL: transactions", "https://www.postgresql.org/docs/current/tutorial-transactions.html"),
        (
            "SQLAlchemy: managing transactions",
            "https://docs.sqlalchemy.org/en/20/orm/session_transaction.html",
        ),
    ),
)


@recipe.helper
def counts(conn):
    """How many orders and line items there are, and how much stock SKU-1 has left."""
    orders, lines, on_hand = conn.execute(
        select(
            select(func.count()).select_from(Order).scalar_subquery(),
            select(func.count()).select_from(LineItem).scalar_subquery(),
            select(StockItem.on_hand).where(StockItem.sku == SKU).scalar_subquery(),
        )
    ).one()
    return {"orders": orders, "line_items": lines, "on_hand": on_hand}


@recipe.setup
def prepare(setup, p):
    setup.dataset(SHOP, stock=STOCK)
    restocked = setup.conn.execute(
        text("UPDATE inventory SET on_hand = :stock WHERE on_hand < :stock / 10"), {"stock": STOCK}
    ).rowcount
    if restocked:
        setup.log.append(f"restocked {restocked} product(s) to {STOCK:,}")
    setup.prepared["before"] = counts(setup.conn)


@recipe.helper
def order_values(p):
    """Total and quantity of the order; the step picked to fail gets a value its CHECK rejects."""
    qty = {"2": 0, "3": OUT_OF_STOCK}.get(p.fail_at_step, p.quantity)
    total = -1 if p.fail_at_step == "1" else qty * PRICE
    return total, qty


@recipe.helper
def step_1_order(session, p):
    """Step 1: the order row, flushed so that step 2 can point at its id."""
    order = Order(customer="playground", total=order_values(p)[0])
    session.add(order)
    session.flush()
    return order


@recipe.helper
def step_2_line(session, order, p):
    """Step 2: the order's line item."""
    session.add(LineItem(order_id=order.id, sku=SKU, qty=order_values(p)[1]))
    session.flush()


@recipe.helper
def step_3_stock(session, p):
    """Step 3: take the units from stock."""
    qty = order_values(p)[1]
    session.execute(update(StockItem).where(StockItem.sku == SKU).values(on_hand=StockItem.on_hand - qty))


@recipe.helper
def tables_after(run, p):
    """The three tables now against before the run, and how many orders in the table lack their lines."""
    before = run.prepared["before"]
    with run.connect() as conn:
        after = counts(conn)
        half_done = conn.scalar(run.main(select(func.count()).select_from(Order).where(~Order.lines.any())))
    applied = [
        step
        for step, done in (
            (1, after["orders"] > before["orders"]),
            (2, after["line_items"] > before["line_items"]),
            (3, after["on_hand"] < before["on_hand"]),
        )
        if done
    ]
    run.metric("steps_applied", ", ".join(map(str, applied)) or "none")
    run.metric("consistent", len(applied) in (0, 3))
    run.metric("orders_without_lines", half_done)
    rows = [(name, before[key], after[key], after[key] - before[key]) for key, name in LABELS.items()]
    return Rows(("table", "before", "after", "change"), rows)


STEP_3_FAILS = "with the default fail_at_step=3, taking the stock breaks its on_hand >= 0 CHECK"
"""Why every mode ends in an error with its defaults: the failure is what the modes differ in."""

LABELS = {
    "orders": "orders (rows)",
    "line_items": "line_items (rows)",
    "on_hand": f"inventory ({SKU} on hand)",
}


@recipe.variant(fails=STEP_3_FAILS, fails_with="violates check constraint")
def commit_each_step(run, p):
    """commit-each-step: commit() after every write (the trap)"""
    with run.session() as session:
        try:
            order = step_1_order(session, p)
            session.commit()
            step_2_line(session, order, p)
            session.commit()
            step_3_stock(session, p)
            session.commit()
        except IntegrityError as exc:
            run.fail(exc)
    return tables_after(run, p)


@recipe.variant(fails=STEP_3_FAILS, fails_with="violates check constraint")
def try_rollback(run, p):
    """try-rollback: one commit at the end, rollback() in the except branch"""
    with run.session() as session:
        try:
            order = step_1_order(session, p)
            step_2_line(session, order, p)
            step_3_stock(session, p)
            session.commit()
        except IntegrityError as exc:
            session.rollback()  # leave the tables exactly as they were
            run.fail(exc)
    return tables_after(run, p)


@recipe.variant(fails=STEP_3_FAILS, fails_with="violates check constraint")
def one_transaction(run, p):
    """one-transaction: with session.begin(), commit or rollback happens at the block's end"""
    try:
        with run.session() as session, session.begin():
            order = step_1_order(session, p)
            step_2_line(session, order, p)
            step_3_stock(session, p)
    except IntegrityError as exc:
        run.fail(exc)
    return tables_after(run, p)


@recipe.notes
def notes(result):
    m = result.metrics
    if "steps_applied" not in m:
        return []
    markers = [s.sql for s in result.statements if s.kind == "transaction"]
    lines = [
        f"Steps applied to the tables: {m['steps_applied']}. "
        f"The statement list holds {markers.count('BEGIN')} BEGIN, {markers.count('COMMIT')} COMMIT and "
        f"{markers.count('ROLLBACK')} ROLLBACK."
    ]
    if not m["consistent"]:
        missing = [s for s in "123" if s not in m["steps_applied"].split(", ")]
        lines.append(
            f"Half-done order: step(s) {m['steps_applied']} stayed committed, step(s) {', '.join(missing)} "
            f"never happened. {m['orders_without_lines']} order(s) in the table have no line items."
        )
    elif not result.ok:
        lines.append("The failure left all three tables exactly as they were before the run.")
    return lines


# --- questions and challenges ---
recipe.learn(
    Question(
        "steps-kept",
        "Step {fail_at_step} fails. Which steps will stay applied after {variant}?",
        answer="metric:steps_applied",
        choices=("none", "1", "1, 2", "1, 2, 3"),
    ),
    Challenge(
        "all-or-nothing",
        "Let step {fail_at_step} fail and leave all three tables as they were",
        checks=(Check("metric:consistent", equals=True), Check("metric:steps_applied", equals="none")),
        params={"fail_at_step": "3"},
    ),
)
