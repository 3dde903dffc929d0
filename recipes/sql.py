"""The gate in front of SQL a person types: parsed by PostgreSQL's own parser, never sent unchecked.

The sandbox role's privileges already keep it in its schema (no other schema, no files, no
programs, no roles). What free SQL adds is ways to change the session (SET, set_config), to spend
the server (pg_sleep, advisory locks, LISTEN), to reach around the parser (functions that run a
query given as a string) or to break the runner (transaction control). `check` parses the whole
submission with libpg_query (through pglast) and allows only the statement kinds listed below;
docs/security.md is the model, tests/test_sql_gate.py tests every line of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pglast import ast, parse_sql
from pglast.parser import ParseError

from recipes.sql_names import STATEMENT_NAMES

# Statement kinds a submission may contain, each with the name shown to the person.
ALLOWED: dict[type, str] = {
    ast.SelectStmt: "SELECT",
    ast.InsertStmt: "INSERT",
    ast.UpdateStmt: "UPDATE",
    ast.DeleteStmt: "DELETE",
    ast.MergeStmt: "MERGE",
    ast.ExplainStmt: "EXPLAIN",
    ast.CreateStmt: "CREATE TABLE",
    ast.CreateTableAsStmt: "CREATE TABLE AS",
    ast.IndexStmt: "CREATE INDEX",
    ast.ViewStmt: "CREATE VIEW",
    ast.DropStmt: "DROP",
    ast.AlterTableStmt: "ALTER TABLE",
    ast.RenameStmt: "ALTER … RENAME",
    ast.TruncateStmt: "TRUNCATE",
    ast.VacuumStmt: "ANALYZE",
    ast.CreateStatsStmt: "CREATE STATISTICS",
    ast.RefreshMatViewStmt: "REFRESH MATERIALIZED VIEW",
    ast.CommentStmt: "COMMENT",
    ast.VariableShowStmt: "SHOW",
}

# What DROP, ALTER and RENAME may name: the objects a sandbox owns in its schema.
OWN_OBJECTS = {
    "OBJECT_TABLE",
    "OBJECT_INDEX",
    "OBJECT_VIEW",
    "OBJECT_MATVIEW",
    "OBJECT_SEQUENCE",
    "OBJECT_COLUMN",
    "OBJECT_TABCONSTRAINT",
    "OBJECT_STATISTIC_EXT",
}

# Schemas a name may be qualified with besides the sandbox's own: the catalogs, which a
# sandbox can read (filtered by its privileges) and never write.
READABLE_SCHEMAS = {"pg_catalog", "information_schema"}

# Catalogs that list every role with its settings: a sandbox has no business with other roles.
REFUSED_RELATIONS = {
    "pg_roles",
    "pg_user",
    "pg_group",
    "pg_shadow",
    "pg_authid",
    "pg_auth_members",
    "pg_db_role_setting",
}

# Functions refused wherever they appear, by exact name or by prefix (after unqualifying).
REFUSED_FUNCTIONS = {
    "set_config": "changes a setting of the session",
    "pg_sleep_for": "sleeps; use pg_sleep(seconds) with a constant",
    "pg_sleep_until": "sleeps; use pg_sleep(seconds) with a constant",
    "pg_notify": "sends a notification",
    "query_to_xml": "runs a query given as text, around the parser",
    "query_to_xml_and_xmlschema": "runs a query given as text, around the parser",
    "query_to_xmlschema": "runs a query given as text, around the parser",
    "cursor_to_xml": "reads a cursor",
    "cursor_to_xmlschema": "reads a cursor",
    "pg_reload_conf": "administers the server",
    "pg_rotate_logfile": "administers the server",
    "pg_current_logfile": "administers the server",
    "pg_stat_file": "reads the server's files",
    "pg_import_system_collations": "administers the server",
    "ts_stat": "runs a query given as text, around the parser",
}
REFUSED_PREFIXES = {
    "pg_read_": "reads the server's files",
    "pg_ls_": "lists the server's files",
    "pg_file_": "writes the server's files",
    "lo_": "moves large objects to and from the server's files",
    "dblink": "connects to another database",
    "pg_terminate_backend": "ends another connection",
    "pg_cancel_backend": "cancels another connection's query",
    "pg_advisory": "takes an advisory lock the application's own locks share",
    "pg_try_advisory": "takes an advisory lock the application's own locks share",
    "pg_switch_": "administers the server",
    "pg_create_": "administers the server",
    "pg_drop_": "administers the server",
    "pg_backup_": "administers the server",
    "pg_start_backup": "administers the server",
    "pg_stop_backup": "administers the server",
    "pg_logical_": "administers replication",
    "pg_replication_": "administers replication",
    "pg_promote": "administers the server",
    "pg_log_backend": "administers the server",
    "pg_stat_reset": "administers the server",
    "pg_wal_": "administers the server",
}


CHECKS_KEPT = 64
"""Accepted submissions whose check is remembered (a few MB at most: 20,000 characters each)."""


class SqlRefused(ValueError):
    """The submission was refused before anything was sent; the message says why."""


@dataclass(frozen=True)
class Checked:
    """One statement of a submission that passed the gate."""

    sql: str
    """Its text exactly as typed (comments inside it kept), without the separating semicolon."""
    kind: str
    """What it is, e.g. "SELECT", "CREATE INDEX", "EXPLAIN"."""
    reads_only: bool
    """A SELECT (or EXPLAIN of one) without a data-modifying CTE or SELECT INTO."""


@dataclass(frozen=True)
class Limits:
    """What a submission may be, besides its statement kinds."""

    schema: str
    """The sandbox's own schema: the only one a name may be qualified with, catalogs apart."""
    max_length: int = 20_000
    """Characters of text, at most."""
    max_statements: int = 20
    """Statements per submission, at most."""
    max_sleep_seconds: float = 5.0
    """The longest constant pg_sleep allowed (the statement timeout stops the rest)."""


def check(text: str, limits: Limits) -> list[Checked]:
    """Parse `text` and return its statements, or raise SqlRefused naming the first problem.

    The answer depends on the text and the limits alone, so the last few accepted ones are kept:
    a submission is checked before its run is paid for and again inside the run, against the
    sandbox it really runs in, and a person often sends the same text again.
    """
    return list(_check(text, limits))


@lru_cache(maxsize=CHECKS_KEPT)
def _check(text: str, limits: Limits) -> tuple[Checked, ...]:
    if len(text) > limits.max_length:
        raise SqlRefused(f"The SQL is {len(text)} characters long; at most {limits.max_length}.")
    try:
        parsed = parse_sql(text)
    except ParseError as exc:
        raise SqlRefused(f"Syntax error: {exc.args[0]}") from exc
    except RecursionError:  # nesting deeper than the parser's tree can be read back
        raise SqlRefused("The SQL is nested too deeply to be checked.") from None
    encoded = text.encode()
    statements = []
    for number, raw in enumerate(parsed, start=1):
        end = raw.stmt_location + raw.stmt_len if raw.stmt_len else len(encoded)
        sql = encoded[raw.stmt_location : end].decode().strip()
        try:
            kind = _check_statement(raw.stmt, limits)
        except SqlRefused as exc:
            raise SqlRefused(f"Statement {number} refused: {exc}") from None
        statements.append(Checked(sql=sql, kind=kind, reads_only=_reads_only(raw.stmt)))
    if not statements:
        raise SqlRefused("There is no statement to run.")
    if len(statements) > limits.max_statements:
        raise SqlRefused(f"{len(statements)} statements in one submission; at most {limits.max_statements}.")
    return tuple(statements)


def _check_statement(stmt: Any, limits: Limits) -> str:
    kind = ALLOWED.get(type(stmt))
    if kind is None:
        raise SqlRefused(f"{_describe(stmt)} is not allowed here. {_ALLOWED_TEXT}")
    if isinstance(stmt, ast.ExplainStmt):
        _check_statement(stmt.query, limits)
    if isinstance(stmt, ast.VacuumStmt) and stmt.is_vacuumcmd:
        raise SqlRefused("VACUUM is not allowed here; ANALYZE is.")
    if isinstance(stmt, ast.DropStmt | ast.RenameStmt | ast.CommentStmt | ast.AlterTableStmt):
        objtype = stmt.removeType if isinstance(stmt, ast.DropStmt) else _objtype(stmt)
        if objtype.name not in OWN_OBJECTS:
            what = objtype.name.removeprefix("OBJECT_").lower()
            raise SqlRefused(f"only tables, indexes, views and sequences here, not a {what}.")
    for names in _object_names(stmt):
        if len(names) > 1 and names[-2] not in READABLE_SCHEMAS | {limits.schema}:
            raise SqlRefused(f"{'.'.join(names)} names another schema; this sandbox works in its own.")
    for node in _walk(stmt):
        _check_node(node, limits)
    return kind


def _object_names(stmt: Any) -> Iterator[list[str]]:
    """Names a statement gives as lists of strings rather than as relations (DROP, COMMENT ON,
    CREATE STATISTICS): the part before the last is the schema. Columns and constraints, whose
    names start with their table, are left to the server's privileges."""
    if isinstance(stmt, ast.DropStmt):
        objects = stmt.objects or ()
    elif isinstance(stmt, ast.CommentStmt) and stmt.objtype.name in ("OBJECT_COLUMN", "OBJECT_TABCONSTRAINT"):
        objects = ()
    elif isinstance(stmt, ast.CommentStmt):
        objects = (stmt.object,)
    elif isinstance(stmt, ast.CreateStatsStmt):
        objects = (stmt.defnames or (),)
    else:
        objects = ()
    for parts in objects:
        if isinstance(parts, tuple | list):
            yield [p.sval for p in parts if isinstance(p, ast.String)]


def _objtype(stmt: Any) -> Any:
    return stmt.renameType if isinstance(stmt, ast.RenameStmt) else stmt.objtype


def _check_node(node: Any, limits: Limits) -> None:
    if isinstance(node, ast.RangeVar):
        if node.catalogname or (
            node.schemaname and node.schemaname != limits.schema and node.schemaname not in READABLE_SCHEMAS
        ):
            raise SqlRefused(f"{_qualified(node)} names another schema; this sandbox works in its own.")
        if node.relname in REFUSED_RELATIONS and node.schemaname in (None, "pg_catalog"):
            raise SqlRefused(f"{node.relname} lists the roles of every sandbox; it is not readable here.")
        if node.relpersistence == "t":
            raise SqlRefused("temporary tables are not allowed; create a table in the sandbox.")
    elif isinstance(node, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt | ast.MergeStmt):
        _check_written(node.relation)
    elif isinstance(node, ast.TruncateStmt):
        for relation in node.relations or ():
            _check_written(relation)
    elif isinstance(node, ast.FuncCall):
        _check_function(node, limits)
    elif isinstance(node, ast.CommonTableExpr | ast.SubLink | ast.RangeSubselect):
        inner = getattr(node, "ctequery", None) or getattr(node, "subselect", None)
        if inner is not None and type(inner) not in ALLOWED:
            raise SqlRefused(f"{_describe(inner)} inside a query is not allowed.")


def _check_written(relation: Any) -> None:
    """The catalogs are read-only here, and an unqualified `pg_` name resolves to them first:
    writing to one is refused before the server's privileges are asked, because one of them is
    writable by anyone (an UPDATE of `pg_settings` is a `set_config` in disguise)."""
    if relation.schemaname in READABLE_SCHEMAS or (
        not relation.schemaname and relation.relname.startswith("pg_")
    ):
        raise SqlRefused(f"{_qualified(relation)} is in the catalogs, which are read-only here.")


def _check_function(call: Any, limits: Limits) -> None:
    names = [n.sval for n in call.funcname]
    name = names[-1].lower()
    if len(names) > 1 and names[0] not in READABLE_SCHEMAS | {limits.schema}:
        raise SqlRefused(f"{'.'.join(names)}() names another schema.")
    reason = REFUSED_FUNCTIONS.get(name) or next(
        (why for prefix, why in REFUSED_PREFIXES.items() if name.startswith(prefix)), None
    )
    if name == "ts_rewrite" and len(call.args or ()) == 2:  # its second form runs a query given as text
        reason = REFUSED_FUNCTIONS["query_to_xml"]
    if reason is not None:
        raise SqlRefused(f"{name}() is not allowed here: it {reason}.")
    if name == "pg_sleep":
        seconds = _constant(call.args[0]) if call.args and len(call.args) == 1 else None
        if not isinstance(seconds, int | float) or seconds > limits.max_sleep_seconds:
            raise SqlRefused(
                f"pg_sleep() takes a constant of at most {limits.max_sleep_seconds:g} seconds here."
            )


def _constant(node: Any) -> Any:
    if isinstance(node, ast.A_Const) and not node.isnull:
        value = node.val
        return getattr(value, "ival", None) if isinstance(value, ast.Integer) else _float(value)
    return None


def _float(value: Any) -> float | None:
    try:
        return float(value.fval)
    except (AttributeError, TypeError, ValueError):
        return None


def _reads_only(stmt: Any) -> bool:
    if isinstance(stmt, ast.ExplainStmt):
        analyze = any(getattr(o, "defname", "") == "analyze" for o in stmt.options or ())
        return _reads_only(stmt.query) or not analyze
    if not isinstance(stmt, ast.SelectStmt) or stmt.intoClause is not None:
        return False
    return not any(
        isinstance(n, ast.CommonTableExpr)
        and not isinstance(n.ctequery, ast.SelectStmt)
        or isinstance(n, ast.SelectStmt)
        and n.lockingClause
        for n in _walk(stmt)
    )


def _walk(node: Any) -> Iterator[Any]:
    """Every AST node under `node` (itself included), depth first."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, tuple | list):
            stack.extend(current)
        elif isinstance(current, ast.Node):
            yield current
            stack.extend(getattr(current, slot) for slot in current.__slots__)


def _qualified(node: Any) -> str:
    return ".".join(p for p in (node.catalogname, node.schemaname, node.relname) if p)


def _describe(stmt: Any) -> str:
    name = type(stmt).__name__
    return STATEMENT_NAMES.get(name, name.removesuffix("Stmt"))


_ALLOWED_TEXT = "Allowed: " + ", ".join(dict.fromkeys(ALLOWED.values())) + "."
