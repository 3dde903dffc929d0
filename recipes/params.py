"""Parameters several recipes declare, defined once: each factory takes only what differs.

The names (`rows`, `page`, `size`, `workers`, `email`) are part of the HTTP interface, so a
recipe that asks for "the table size" gets the same key, kind and wording as every other one.
"""

from __future__ import annotations

from recipes.base import Param, Params


def rows(
    default: int,
    *,
    min: int,
    max: int,
    help: str = "",
    table: str = "",
    label: str = "Table rows",
    sweepable: bool = True,
) -> Param:
    """`rows`: how many rows a table holds or a run writes.

    Give `table` for a seeded table (the help then says that changing it re-seeds the table), or
    `help` for anything else.
    """
    if table:
        help = help or f"Rows in {table}; changing it re-seeds the table."
    return Param("rows", "int", default, label=label, min=min, max=max, sweepable=sweepable, help=help)


def page(*, label: str, help: str) -> Param:
    """`page`: how deep a pagination recipe reads, the x axis of the site's headline sweep."""
    return Param("page", "int", 1, label=label, min=1, max=50_000, sweepable=True, help=help)


def last_page(p: Params) -> int:
    """The table's last page for the chosen `rows` and page `size`: where a sweep of `page` ends."""
    return max(1, -(-p.rows // p.size))  # a last page that is not full still counts


PAGE_SIZE = Param("size", "int", 20, label="Page size", min=1, max=100)
"""`size`: rows per page, shared so that a sweep draws offset and keyset over the same pages."""


def workers(default: int, *, max: int, label: str = "Workers", help: str = "") -> Param:
    """`workers`: threads that run at the same moment (see `Run.at_once`)."""
    return Param("workers", "int", default, label=label, min=1, max=max, sweepable=True, help=help)


def email(default: str, *, label: str = "Email", help: str = "", max_length: int = 120) -> Param:
    """`email`: an address to look up or write; always sent as a bound parameter."""
    return Param("email", "str", default, label=label, help=help, max_length=max_length)
