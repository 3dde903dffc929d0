"""The SQL gate (docs/security.md, "SQL a person types"), line by line, against a real sandbox.

Every refused submission starts with a CREATE TABLE: the table not existing afterwards proves
that nothing of a refused submission reached the server. Every allowed one runs as the sandbox
role through the runner, and the sandbox is still usable and unchanged in its limits afterwards.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from playground import sandbox as sandboxes
from playground.running import runner
from recipes import scratchpad
from recipes.results import RunResult
from recipes.sql import Limits, SqlRefused, check

pytestmark = pytest.mark.django_db(transaction=True)

MARKER = "CREATE TABLE marker (i int); "


def run_sql(engine: Engine, sql: str) -> RunResult:
    return runner.run(recipe=scratchpad.recipe, variant="sql", params={"sql": sql}, engine=engine)


def results(result: RunResult) -> list[dict]:
    return result.metrics.get("results", [])


def exists(engine: Engine, table: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}).scalar()


def setting_of(engine: Engine, name: str) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT current_setting(:n)"), {"n": name}).scalar()


REFUSED = [
    # settings: the role's limits are startup options; a session could still change them
    ("SET statement_timeout = 0", "SET / RESET is not allowed"),
    ("SET LOCAL work_mem = '1GB'", "SET / RESET is not allowed"),
    ("RESET ALL", "SET / RESET is not allowed"),
    ("SELECT set_config('statement_timeout', '0', false)", "set_config() is not allowed"),
    ("SELECT pg_catalog.set_config('work_mem', '1GB', false)", "set_config() is not allowed"),
    ("SELECT U&\"\\0073et_config\"('work_mem', '1GB', false)", "set_config() is not allowed"),
    ("-- a comment first\nSET work_mem = '1GB'", "SET / RESET is not allowed"),
    ("SELECT 1 /* ; */; SET work_mem = '1GB'", "Statement 3 refused: SET / RESET"),
    ("/* SELECT 1; */ SET work_mem = '1GB'", "Statement 2 refused: SET / RESET"),
    ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "SET / RESET is not allowed"),
    ("SET ROLE NONE", "SET / RESET is not allowed"),
    ("SET SESSION AUTHORIZATION DEFAULT", "SET / RESET is not allowed"),
    (
        "WITH s AS (SELECT set_config('work_mem', '1GB', false)) SELECT * FROM s",
        "set_config() is not allowed",
    ),
    # a catalog view anyone may update: an UPDATE of pg_settings is set_config in disguise
    (
        "UPDATE pg_settings SET setting = '0' WHERE name = 'statement_timeout'",
        "pg_settings is in the catalogs",
    ),
    ("UPDATE pg_catalog.pg_settings SET setting = '1GB' WHERE name = 'work_mem'", "read-only here"),
    (
        "WITH x AS (UPDATE pg_settings SET setting = '0' RETURNING 1) SELECT 1",
        "pg_settings is in the catalogs",
    ),
    ("EXPLAIN ANALYZE UPDATE pg_settings SET setting = '0'", "pg_settings is in the catalogs"),
    ("DELETE FROM information_schema.sql_features", "information_schema.sql_features is in the catalogs"),
    ("TRUNCATE marker, pg_class", "pg_class is in the catalogs"),
    ("INSERT INTO pg_catalog.pg_description VALUES (1, 1, 0, 'x')", "pg_catalog.pg_description is in the"),
    ("MERGE INTO pg_settings USING marker ON true WHEN MATCHED THEN DO NOTHING", "pg_settings is in the"),
    # dollar quoting: a quoted body is a string, and what follows it is read as the server reads it
    ("SELECT $$;$$; SET work_mem = '1GB'", "Statement 3 refused: SET / RESET"),
    ("SELECT $a$ $$; $a$ AS x; DO $b$ BEGIN END $b$", "Statement 3 refused: A DO block"),
    ("SELECT 1 AS $$x$$", "Syntax error"),
    # roles, the server, the database
    ("ALTER ROLE CURRENT_USER SET statement_timeout = 0", "ALTER ROLE … SET is not allowed"),
    ("ALTER ROLE CURRENT_USER CONNECTION LIMIT -1", "ALTER ROLE is not allowed"),
    ("ALTER SYSTEM SET work_mem = '1GB'", "ALTER SYSTEM is not allowed"),
    ("ALTER DATABASE postgres SET work_mem = '1GB'", "ALTER DATABASE … SET is not allowed"),
    ("ALTER DATABASE postgres CONNECTION LIMIT 1", "ALTER DATABASE is not allowed"),
    ("ALTER DATABASE postgres RENAME TO other", "not a database"),
    ("ALTER SYSTEM RESET ALL", "ALTER SYSTEM is not allowed"),
    ("ALTER ROLE someone RENAME TO other", "not a role"),
    ("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC", "ALTER DEFAULT PRIVILEGES is not allowed"),
    ("CREATE DATABASE other", "CREATE DATABASE is not allowed"),
    ("DROP DATABASE postgres", "DROP DATABASE is not allowed"),
    ("DROP ROLE intruder", "DROP ROLE is not allowed"),
    ("CREATE ROLE intruder", "CREATE ROLE is not allowed"),
    ("CREATE SCHEMA elsewhere", "CREATE SCHEMA is not allowed"),
    ("DROP SCHEMA public", "not a schema"),
    ("GRANT SELECT ON marker TO PUBLIC", "GRANT / REVOKE is not allowed"),
    # code the parser cannot see into
    ("DO $$ BEGIN PERFORM pg_sleep(60); END $$", "A DO block is not allowed"),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "CREATE FUNCTION"),
    ("CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'", "CREATE FUNCTION / PROCEDURE"),
    ("CREATE EXTENSION dblink", "CREATE EXTENSION / LANGUAGE is not allowed"),
    ("CREATE LANGUAGE plperl", "CREATE EXTENSION / LANGUAGE is not allowed"),
    (
        "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$",
        "CREATE FUNCTION",
    ),
    ("CREATE TRUSTED LANGUAGE plperl", "CREATE EXTENSION / LANGUAGE is not allowed"),
    ("CREATE AGGREGATE a (int) (sfunc = int4pl, stype = int)", "CREATE AGGREGATE / OPERATOR / TYPE"),
    ("CREATE TYPE pair AS (a int, b int)", "CREATE TYPE is not allowed"),
    ("CREATE CAST (text AS int) WITH INOUT", "CREATE CAST is not allowed"),
    ("CREATE DOMAIN positive AS int CHECK (VALUE > 0)", "CREATE DOMAIN is not allowed"),
    ("CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()", "CREATE EVENT TRIGGER"),
    ("CREATE RULE r AS ON INSERT TO marker DO INSTEAD NOTHING", "CREATE RULE is not allowed"),
    ("CREATE VIEW v AS SELECT set_config('work_mem', '1GB', false)", "set_config() is not allowed"),
    ("CREATE TABLE d (v text DEFAULT set_config('work_mem', '1GB', false))", "set_config() is not allowed"),
    ("CALL p()", "CALL is not allowed"),
    ("SELECT * FROM ts_stat('SELECT to_tsvector(set_config(''work_mem'', ''1GB'', false))')", "ts_stat()"),
    ("SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')", "ts_rewrite() is not"),
    ("SELECT query_to_xml('SET work_mem = ''1GB''', true, false, '')", "query_to_xml()"),
    ("CREATE TRIGGER t BEFORE INSERT ON marker EXECUTE FUNCTION f()", "CREATE TRIGGER"),
    # files, programs, other databases
    ("COPY marker TO PROGRAM 'id'", "COPY is not allowed"),
    ("COPY marker FROM '/etc/passwd'", "COPY is not allowed"),
    ("SELECT pg_read_file('/etc/passwd')", "pg_read_file() is not allowed"),
    ("SELECT * FROM pg_ls_dir('.')", "pg_ls_dir() is not allowed"),
    ("SELECT lo_import('/etc/passwd')", "lo_import() is not allowed"),
    ("SELECT dblink_connect('dbname=postgres')", "dblink_connect() is not allowed"),
    ("COPY (SELECT 1) TO STDOUT", "COPY is not allowed"),
    ("COPY marker FROM STDIN", "COPY is not allowed"),
    ("SELECT pg_read_binary_file('/etc/passwd')", "pg_read_binary_file() is not allowed"),
    ("SELECT pg_stat_file('postgresql.conf')", "pg_stat_file() is not allowed"),
    ("SELECT * FROM pg_ls_waldir()", "pg_ls_waldir() is not allowed"),
    ("SELECT lo_export(1, '/tmp/x')", "lo_export() is not allowed"),
    ("SELECT pg_file_write('x', 'y', false)", "pg_file_write() is not allowed"),
    ("SELECT pg_current_logfile()", "pg_current_logfile() is not allowed"),
    # the server's and other sessions' resources
    ("LISTEN channel", "LISTEN is not allowed"),
    ("UNLISTEN *", "UNLISTEN is not allowed"),
    ("NOTIFY channel", "NOTIFY is not allowed"),
    ("SELECT pg_notify('channel', 'x')", "pg_notify() is not allowed"),
    ("LOCK marker", "LOCK is not allowed"),
    ("LOCK TABLE marker IN ACCESS EXCLUSIVE MODE NOWAIT", "LOCK is not allowed"),
    ("SELECT pg_advisory_xact_lock(1)", "pg_advisory_xact_lock() is not allowed"),
    ("SELECT pg_try_advisory_lock(1)", "pg_try_advisory_lock() is not allowed"),
    ("SELECT pg_advisory_lock(1)", "pg_advisory_lock() is not allowed"),
    ("SELECT pg_terminate_backend(pg_backend_pid())", "pg_terminate_backend() is not allowed"),
    ("SELECT pg_cancel_backend(1)", "pg_cancel_backend() is not allowed"),
    ("SELECT pg_reload_conf()", "pg_reload_conf() is not allowed"),
    ("SELECT pg_catalog.pg_reload_conf()", "pg_reload_conf() is not allowed"),
    ("SELECT pg_rotate_logfile()", "pg_rotate_logfile() is not allowed"),
    ("SELECT pg_switch_wal()", "pg_switch_wal() is not allowed"),
    ("SELECT pg_create_restore_point('x')", "pg_create_restore_point() is not allowed"),
    ("SELECT pg_backup_start('x')", "pg_backup_start() is not allowed"),
    ("SELECT pg_promote()", "pg_promote() is not allowed"),
    ("SELECT pg_stat_reset()", "pg_stat_reset() is not allowed"),
    ("SELECT pg_log_backend_memory_contexts(1)", "pg_log_backend_memory_contexts() is not allowed"),
    ("SELECT pg_logical_emit_message(true, 'x', 'y')", "pg_logical_emit_message() is not allowed"),
    ("SELECT pg_replication_origin_create('x')", "pg_replication_origin_create() is not allowed"),
    ("SELECT pg_import_system_collations('pg_catalog')", "pg_import_system_collations() is not"),
    ("SELECT * FROM marker WHERE pg_terminate_backend(1)", "pg_terminate_backend() is not allowed"),
    ("PREPARE p AS SELECT 1", "PREPARE is not allowed"),
    ("EXECUTE p", "EXECUTE is not allowed"),
    ("DEALLOCATE ALL", "DEALLOCATE is not allowed"),
    ("DISCARD ALL", "DISCARD is not allowed"),
    ("DECLARE c CURSOR FOR SELECT 1", "DECLARE CURSOR is not allowed"),
    ("CHECKPOINT", "CHECKPOINT is not allowed"),
    ("VACUUM marker", "VACUUM is not allowed"),
    # transaction control belongs to the runner
    ("BEGIN", "Transaction control"),
    ("COMMIT", "Transaction control"),
    ("SAVEPOINT s", "Transaction control"),
    ("ROLLBACK", "Transaction control"),
    ("START TRANSACTION READ WRITE", "Transaction control"),
    ("RELEASE SAVEPOINT s", "Transaction control"),
    ("ROLLBACK TO SAVEPOINT s", "Transaction control"),
    ("PREPARE TRANSACTION 'x'", "Transaction control"),
    ("COMMIT PREPARED 'x'", "Transaction control"),
    ("ABORT", "Transaction control"),
    ("END", "Transaction control"),
    # time
    ("SELECT pg_sleep(600)", "pg_sleep() takes a constant of at most 5 seconds"),
    ("SELECT pg_sleep(i) FROM generate_series(1, 3) i", "pg_sleep() takes a constant"),
    ("SELECT pg_sleep_for('1 hour')", "pg_sleep_for() is not allowed"),
    ("EXPLAIN ANALYZE SELECT pg_sleep(600)", "pg_sleep() takes a constant"),
    ("SELECT pg_sleep(5.5)", "pg_sleep() takes a constant of at most 5 seconds"),
    ("SELECT pg_sleep('600')", "pg_sleep() takes a constant"),
    ("SELECT pg_sleep(1 + 599)", "pg_sleep() takes a constant"),
    ('SELECT U&"pg_sl\\0065ep"(600)', "pg_sleep() takes a constant"),
    ("SELECT pg_sleep_until(now() + interval '1 hour')", "pg_sleep_until() is not allowed"),
    # other schemas, however the name is written
    ("SELECT * FROM other_schema.t", "other_schema.t names another schema"),
    ('SELECT * FROM "other_schema"."t"', "other_schema.t names another schema"),
    ("SELECT * FROM db.other_schema.t", "names another schema"),
    ("WITH x AS (DELETE FROM other_schema.t RETURNING *) SELECT * FROM x", "another schema"),
    ("EXPLAIN ANALYZE DELETE FROM other_schema.t", "other_schema.t names another schema"),
    (
        "EXPLAIN (ANALYZE, BUFFERS) INSERT INTO other_schema.t VALUES (1)",
        "other_schema.t names another schema",
    ),
    ("EXPLAIN ANALYZE WITH x AS (DELETE FROM other_schema.t RETURNING 1) SELECT 1", "another schema"),
    ("EXPLAIN ANALYZE SELECT set_config('work_mem', '1GB', false)", "set_config() is not allowed"),
    ("EXPLAIN ANALYZE CREATE TABLE other_schema.t AS SELECT 1", "other_schema.t names another schema"),
    ("WITH x AS (INSERT INTO other_schema.t VALUES (1) RETURNING 1) SELECT 1", "another schema"),
    ("WITH x AS (UPDATE other_schema.t SET i = 1 RETURNING 1) SELECT 1", "another schema"),
    ("MERGE INTO other_schema.t USING marker ON true WHEN MATCHED THEN DELETE", "another schema"),
    ('SELECT * FROM U&"other\\005fschema".t', "other_schema.t names another schema"),
    ("SELECT * FROM U&\"!006fther_schema\" UESCAPE '!'.t", "other_schema.t names another schema"),
    ("SELECT (SELECT count(*) FROM other_schema.t)", "other_schema.t names another schema"),
    ("CREATE TABLE other_schema.t (i int)", "other_schema.t names another schema"),
    ("SELECT other_schema.f()", "other_schema.f() names another schema"),
    ("DROP TABLE marker, other_schema.t", "other_schema.t names another schema"),
    ("DROP INDEX other_schema.i", "other_schema.i names another schema"),
    ("COMMENT ON TABLE other_schema.t IS 'x'", "other_schema.t names another schema"),
    ("CREATE STATISTICS other_schema.s ON i, i FROM marker", "other_schema.s names another schema"),
    ("CREATE TEMP TABLE t (i int)", "temporary tables are not allowed"),
    # the role catalogs: every sandbox's role and settings
    ("SELECT rolname, rolconfig FROM pg_roles", "pg_roles lists the roles of every sandbox"),
    ("SELECT * FROM pg_catalog.pg_db_role_setting", "pg_db_role_setting lists the roles"),
    ("WITH r AS (SELECT * FROM pg_user) SELECT 1", "pg_user lists the roles"),
    ('SELECT * FROM U&"\\0070g_roles"', "pg_roles lists the roles"),
    ("SELECT * FROM pg_authid", "pg_authid lists the roles"),
    ("SELECT (SELECT rolconfig FROM pg_roles LIMIT 1)", "pg_roles lists the roles"),
    ("SELECT * FROM pg_shadow", "pg_shadow lists the roles"),
    # nonsense and size
    ("SELEC 1", "Syntax error"),
]


@pytest.fixture
def bystander(make_sandbox) -> Engine:
    """Another sandbox, with a row of its own: no case may touch it."""
    engine = sandboxes.engine_for(make_sandbox())
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')"))
    return engine


def untouched(engine: Engine) -> bool:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT v FROM kept")).all()
    return row == [("still here",)] and setting_of(engine, "work_mem") == "8MB"


@pytest.mark.parametrize(("statement", "message"), REFUSED)
def test_refused_statements_never_reach_the_server(engine, bystander, statement, message):
    result = run_sql(engine, MARKER + statement)
    assert not result.ok
    assert message in result.error
    assert [s for s in result.statements if s.kind == "query"] == []
    assert not exists(engine, "marker")
    # the sandbox is still usable, its limits unchanged, and the other one untouched
    assert run_sql(engine, "SELECT 1 AS one").rows.data == [[1]]
    assert setting_of(engine, "work_mem") == "8MB"
    assert setting_of(engine, "statement_timeout") != "0"
    assert untouched(bystander)


# Allowed by the gate, stopped by the server's privileges: the catalogs that show the server's
# configuration, and every way of changing a catalog table or another sandbox's objects.
STOPPED = [
    ("SELECT * FROM pg_file_settings", "permission denied for view pg_file_settings"),
    ("SELECT * FROM pg_hba_file_rules", "permission denied for view pg_hba_file_rules"),
    ("ALTER TABLE pg_class ADD COLUMN x int", "must be owner of table pg_class"),
    ("DROP TABLE pg_class", "must be owner of table pg_class"),
    ("CREATE INDEX ON pg_class (relname)", "must be owner of table pg_class"),
    ("SELECT * FROM kept", 'relation "kept" does not exist'),
    ("CREATE TABLE mine (i int); ALTER TABLE mine OWNER TO postgres", "must be able to SET ROLE"),
    ("SELECT current_setting('data_directory')", "permission denied"),
]


@pytest.mark.parametrize(("statement", "message"), STOPPED)
def test_what_the_gate_lets_through_the_server_still_refuses(engine, bystander, statement, message):
    result = run_sql(engine, statement)
    assert not result.ok and message in result.error, result.error
    assert run_sql(engine, "SELECT 1 AS one").rows.data == [[1]]
    assert untouched(bystander)


def test_length_and_statement_count_are_capped(engine):
    with pytest.raises(SqlRefused, match="at most 20000"):
        check("SELECT 1;" * 3000, Limits(schema="s"))
    with pytest.raises(SqlRefused, match="at most 20"):
        check("SELECT 1;" * 21, Limits(schema="s"))
    with pytest.raises(SqlRefused, match="no statement"):
        check(" -- only a comment", Limits(schema="s"))
    result = run_sql(engine, MARKER + "SELECT 1;" * 20)
    assert "at most 20" in result.error and not exists(engine, "marker")


def test_what_is_hidden_in_comments_and_strings_is_not_run(engine):
    result = run_sql(
        engine,
        "SELECT 1 AS a /* ; SET work_mem = '1GB' */; "
        "SELECT $q$; SET work_mem = '1GB'; $q$ AS b -- ; RESET ALL\n; "
        "SELECT 'x; SET work_mem = ''1GB''' AS c",
    )
    assert result.ok, result.error
    assert [r["kind"] for r in results(result)] == ["SELECT", "SELECT", "SELECT"]
    assert results(result)[1]["rows"] == [["; SET work_mem = '1GB'; "]]
    assert setting_of(engine, "work_mem") == "8MB"


def test_allowed_statements_run_in_the_sandbox_with_a_plan(engine):
    result = run_sql(
        engine,
        "CREATE TABLE t (id int PRIMARY KEY, v text); "
        "INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 500) i; "
        "CREATE INDEX t_v ON t (v); ANALYZE t; "
        "UPDATE t SET v = v || '%' WHERE id < 10; "
        "WITH gone AS (DELETE FROM t WHERE id > 490 RETURNING id) SELECT count(*) FROM gone; "
        "EXPLAIN ANALYZE DELETE FROM t WHERE id = 1; "
        "SELECT pg_sleep(0.01); "
        "SELECT id, v FROM t WHERE v LIKE 'v1%' ORDER BY id",
    )
    assert result.ok, result.error
    kinds = [r["kind"] for r in results(result)]
    assert kinds == ["CREATE TABLE", "INSERT", "CREATE INDEX", "ANALYZE", "UPDATE"] + [
        "SELECT",
        "EXPLAIN",
        "SELECT",
        "SELECT",
    ]
    assert results(result)[1]["rowcount"] == 500
    assert results(result)[5]["rows"] == [[10]]
    last = results(result)[-1]
    assert last["rows"][:2] == [[10, "v10"], [11, "v11"]]  # id 1 went with EXPLAIN ANALYZE
    assert result.rows.data[:2] == [[10, "v10"], [11, "v11"]]
    assert run_sql(engine, "SELECT v FROM t WHERE id = 2").rows.data == [["v2%"]]
    # EXPLAIN ANALYZE of a write executes it: the row is gone
    assert run_sql(engine, "SELECT count(*) FROM t WHERE id = 1").rows.data == [[0]]
    # the plan is that of the last SELECT, taken as for any recipe run
    assert result.plan is not None and "t" in result.plan.text
    explains = [s.sql for s in result.statements if s.kind == "explain"]
    assert len(explains) == 2  # the runner's JSON and text forms; the one typed is a query
    assert all(e.endswith("ORDER BY id") for e in explains)
    typed = [s.sql for s in result.statements if s.kind == "query"]
    assert "EXPLAIN ANALYZE DELETE FROM t WHERE id = 1" in typed


def test_a_failing_statement_stops_the_rest_and_keeps_what_ran(engine):
    result = run_sql(engine, "CREATE TABLE a (i int); SELECT * FROM missing; CREATE TABLE b (i int)")
    assert not result.ok and "Statement 2 failed" in result.error and "missing" in result.error
    assert len(results(result)) == 2
    assert exists(engine, "a") and not exists(engine, "b")


@pytest.mark.parametrize(
    "statement",
    [
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r",
        "SELECT count(*) FROM generate_series(1, 100000000000)",
        "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b",
        "SELECT pg_sleep(4)",  # within the gate's limit, beyond the statement timeout
        "SELECT pg_sleep(1) FROM generate_series(1, 100)",  # a constant, once a row
        "SELECT string_agg(md5(i::text), '') FROM generate_series(1, 100000000) i",
    ],
)
def test_runaway_work_is_stopped_by_a_limit(settings, make_sandbox, bystander, statement):
    settings.PLAYGROUND = {**settings.PLAYGROUND, "STATEMENT_TIMEOUT_MS": 1000}
    engine = sandboxes.engine_for(make_sandbox())
    result = run_sql(engine, statement)
    assert not result.ok
    assert "statement timeout" in result.error or "temp_file_limit" in result.error
    assert run_sql(engine, "SELECT 2 AS two").rows.data == [[2]]
    assert untouched(bystander)


def test_other_sandboxes_stay_out_of_reach(make_sandbox):
    mine, other = make_sandbox(), make_sandbox()
    theirs = sandboxes.engine_for(other)
    with theirs.begin() as conn:
        conn.execute(text("CREATE TABLE secret (v text); INSERT INTO secret VALUES ('hidden')"))
    engine = sandboxes.engine_for(mine)
    with theirs.connect() as busy:  # their connection stays open, its last query naming a secret
        busy.execute(text("SELECT 'open' || 'sesame' FROM secret"))
        activity = run_sql(
            engine,
            f"SELECT query FROM pg_stat_activity WHERE usename = '{other.role}'; "
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%open'' || ''sesame%'; "
            "SELECT count(*) FROM pg_stat_get_activity(NULL) WHERE query LIKE '%open'' || ''sesame%'; "
            f"SELECT count(*) FROM pg_settings WHERE setting LIKE '%{other.role}%'",
        )
    assert activity.ok, activity.error
    seen, by_view, by_function, settings = (r["rows"] for r in results(activity))
    assert seen and all(row == ["<insufficient privilege>"] for row in seen)  # listed, not readable
    assert by_view == by_function == settings == [[0]]
    # a qualified name is refused before it is sent; an unqualified one is not found
    assert "names another schema" in run_sql(engine, f"SELECT * FROM {other.role}.secret").error
    assert "does not exist" in run_sql(engine, "SELECT * FROM secret").error
    # the shared catalogs show no data of theirs: statistics and query text are filtered
    seen = run_sql(
        engine,
        f"SELECT count(*) FROM pg_stats WHERE schemaname = '{other.role}'; "
        f"SELECT count(*) FROM pg_stat_activity "
        f"WHERE usename = '{other.role}' AND query NOT LIKE '<insufficient privilege>'",
    )
    assert seen.ok, seen.error
    assert [r["rows"] for r in results(seen)] == [[[0]], [[0]]]
    # and nothing of theirs changed
    with theirs.connect() as conn:
        assert conn.execute(text("SELECT v FROM secret")).scalar() == "hidden"


def test_inlined_values_stay_values(engine):
    hostile = "x'; SET work_mem = '1GB'; --"
    sql = scratchpad.inline(
        "SELECT %(a)s AS a, %(b)s AS b, %(c)s AS c, %(d)s AS d WHERE 'p%%' LIKE 'p%%'",
        {"a": hostile, "b": 7, "c": None, "d": True},
    )
    assert [s.kind for s in check(sql, Limits(schema="s"))] == ["SELECT"]
    result = run_sql(engine, sql)
    assert result.ok, result.error
    assert result.rows.data == [[hostile, 7, None, True]]
    assert scratchpad.inline("INSERT INTO t VALUES (%(a)s)", [{"a": 1}, {"a": 2}]) is None


def test_a_huge_value_is_cut_in_what_is_kept(engine):
    result = run_sql(engine, "SELECT repeat('x', 5000000) AS big, decode(repeat('ab', 30000), 'hex') AS raw")
    assert result.ok, result.error
    ((big, raw),) = results(result)[0]["rows"]
    assert big.startswith("x" * scratchpad.CELL_KEPT) and big.endswith("[4,990,000 characters left out]")
    assert len(result.rows.data[0][0]) < scratchpad.CELL_KEPT + 100
    assert raw == "ab" * scratchpad.CELL_KEPT  # hex of the first CELL_KEPT bytes of 30,000


def test_a_huge_result_streams_past_and_is_counted_up_to_a_cap(engine):
    result = run_sql(engine, "SELECT i FROM generate_series(1, 150000) i; SELECT 1 AS after")
    assert result.ok, result.error
    huge, after = results(result)
    assert len(huge["rows"]) == scratchpad.ROWS_KEPT and huge["rows"][:2] == [[1], [2]]
    assert huge["rowcount"] == scratchpad.ROWS_COUNTED and huge["more"]
    assert after["rows"] == [[1]] and not after["more"]
    assert result.plan is not None  # the last SELECT's plan, as always


def test_a_submission_stops_starting_statements_past_its_deadline(settings, make_sandbox):
    settings.PLAYGROUND = {**settings.PLAYGROUND, "STATEMENT_TIMEOUT_MS": 1000}
    engine = sandboxes.engine_for(make_sandbox())
    assert scratchpad.deadline_seconds_for_url(engine.url) == 3  # three statement timeouts
    result = run_sql(engine, "SELECT pg_sleep(0.9);" * 5)
    assert not result.ok
    assert result.error.endswith("Out of time: statements 5 to 5 did not run.")
    assert len(results(result)) == 4
    assert run_sql(engine, "SELECT 3 AS three").rows.data == [[3]]


def test_the_statement_list_shows_exactly_what_was_typed(engine):
    typed = "SELECT 'a%' AS one, 'b%%' AS two, '%s' AS three"
    result = run_sql(engine, f"CREATE TABLE pct AS SELECT 'x%' AS v; {typed}")
    assert result.ok, result.error
    assert result.rows.data == [["a%", "b%%", "%s"]]
    sent = [s.sql for s in result.statements if s.kind == "query"]
    assert sent == ["CREATE TABLE pct AS SELECT 'x%' AS v", typed]
    # the plan is taken of the text as typed, and "edit as SQL" gives it back unchanged
    assert result.plan is not None and result.plan.json
    main = next(s for s in result.statements if s.main)
    assert scratchpad.inline(main.sql, main.parameters) == typed


def test_an_explain_typed_by_the_person_is_one_of_their_statements(engine):
    result = run_sql(engine, "EXPLAIN SELECT 1; EXPLAIN ANALYZE SELECT 2")
    assert result.ok, result.error
    assert [s.kind for s in result.statements if s.kind != "transaction"] == ["query", "query"]
    assert result.query_count == 2 and result.plan is None
    assert "Result" in results(result)[1]["rows"][0][0]


@pytest.mark.parametrize("count", [scratchpad.ROWS_KEPT - 1, scratchpad.ROWS_KEPT, scratchpad.ROWS_KEPT + 1])
def test_a_result_near_the_rows_kept_is_counted_exactly(engine, count):
    result = run_sql(engine, f"SELECT i FROM generate_series(1, {count}) i")
    assert result.ok, result.error
    (shown,) = results(result)
    assert len(shown["rows"]) == min(count, scratchpad.ROWS_KEPT)
    assert shown["rowcount"] == count and not shown["more"]
