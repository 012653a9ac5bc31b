//! The SQL gate against the live servers (issue 13, point 5).
//!
//! A corpus of tricky statements goes through the gate under a manifest
//! that reads `users` and writes `notes` (no raw SQL), and each statement
//! it admits runs, exactly as the gate rendered it (`Admitted.text`), as a
//! database role that holds only the privileges that manifest implies:
//! SELECT on `users`; SELECT, INSERT, UPDATE, DELETE on `notes`; nothing on
//! `secrets`, the `dmig_` tables or the `other` schema. On PostgreSQL that
//! is a NOLOGIN role taken with `SET LOCAL ROLE` in a transaction that is
//! rolled back; on MariaDB a user of its own, connected as that user, once
//! with the server's default SQL mode and once with `NO_BACKSLASH_ESCAPES`.
//!
//! The server is the judge of what a statement touches. An admitted
//! statement fails the test when the server denies it a privilege (it
//! reached past the manifest), when it changes the session (search path,
//! role, timeouts, SQL mode, advisory locks) or ends the transaction, or
//! when it runs past the statement timeout. In the other direction, the
//! ordinary statements a migration sends must be admitted and run, and the
//! statements the issue names must be refused. Every failure names the
//! statement, the gate's rendering and the server's answer.
//!
//! Each test creates its own database, role or user and drops them after.
//! It needs DMIG_TEST_POSTGRES_URL / DMIG_TEST_MYSQL_URL (a superuser); it
//! is skipped without them and fails when they name an unreachable server.

use std::time::Duration;

use dmig_host::db::{Connection, DbError, Value};
use dmig_host::manifest::Capabilities;
use dmig_host::sql::{Admitted, Catalog, Dialect, Gate, Placeholders, Syntax};
use dmig_tests::{Db, Kind, TestDb, TestDir};

/// What a statement must do on one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Ordinary migration SQL: admitted, and runs without error.
    Runs,
    /// The gate refuses it.
    Refused,
    /// The gate decides; if it admits the statement, the server must not
    /// find it outside the manifest.
    Any,
}
use Expect::{Any, Refused, Runs};

struct Case {
    sql: String,
    postgres: Expect,
    mysql: Expect,
    /// How many `?` parameters it takes (bound as NULL).
    params: usize,
}

fn case(sql: impl Into<String>, postgres: Expect, mysql: Expect) -> Case {
    Case {
        sql: sql.into(),
        postgres,
        mysql,
        params: 0,
    }
}

fn both(sql: impl Into<String>, expect: Expect) -> Case {
    case(sql, expect, expect)
}

impl Case {
    fn params(mut self, n: usize) -> Case {
        self.params = n;
        self
    }
}

/// The corpus. `{db}` stands for the test's database (MariaDB's schema).
#[rustfmt::skip]
fn corpus() -> Vec<Case> {
    let mut cases = vec![
        // -- Ordinary migration SQL: admitted and run on both.
        both("SELECT id, name FROM users WHERE id > 0 ORDER BY id LIMIT 10", Runs),
        both("SELECT count(*) FROM users", Runs),
        both("SELECT max(id), min(id) FROM users", Runs),
        both("INSERT INTO notes (step, body) VALUES (1, 'hello')", Runs),
        both("INSERT INTO notes (step, body, user_id) SELECT 1, name, id FROM users", Runs),
        both("UPDATE notes SET body = 'x' WHERE step = 1", Runs),
        both("UPDATE notes SET body = upper(body)", Runs),
        both("UPDATE notes SET step = step + 1 WHERE body IS NOT NULL", Runs),
        both("DELETE FROM notes WHERE step > 100", Runs),
        both("DELETE FROM notes", Runs),
        both("SELECT u.id, n.body FROM users u JOIN notes n ON n.user_id = u.id", Runs),
        both("SELECT u.id, n.body FROM users AS u LEFT JOIN notes AS n ON n.user_id = u.id", Runs),
        both("SELECT * FROM users WHERE id IN (SELECT user_id FROM notes)", Runs),
        both("SELECT CASE WHEN id > 1 THEN 'a' ELSE 'b' END FROM users", Runs),
        both("SELECT coalesce(name, '') FROM users", Runs),
        both("SELECT name FROM users WHERE name LIKE 'a%'", Runs),
        both("SELECT step, count(*) FROM notes GROUP BY step HAVING count(*) > 1", Runs),
        both("SELECT id FROM users UNION SELECT step FROM notes", Runs),
        both("SELECT EXISTS (SELECT 1 FROM notes WHERE step = 1)", Runs),
        both("SELECT 1 + 1", Runs),
        both("SELECT 1;", Runs),
        both("SELECT CURRENT_TIMESTAMP", Runs),
        both("SELECT length(name) FROM users WHERE id = 1 -- trailing comment", Runs),
        both("SELECT /* inline */ id FROM users", Runs),
        both("INSERT INTO notes (step, body) VALUES (1, 'it''s -- not a comment')", Runs),
        both("INSERT INTO notes (step, body) VALUES (1, '/* not a comment */')", Runs),
        both("INSERT INTO notes (step, body) VALUES (1, 'semi;colon # hash')", Runs),
        both("SELECT id FROM notes FOR UPDATE", Runs),
        both("SELECT n.* FROM notes AS n", Runs),
        both("SELECT DISTINCT step FROM notes ORDER BY step DESC", Runs),
        both("SELECT 'é', '😀'", Runs),
        both("SELECT 2 * 3, 7 / 2, 5 - 1, 1 <> 2, 1 >= 0", Runs),
        both("WITH recent AS (SELECT id FROM users WHERE id < 10) SELECT * FROM recent", Runs),
        both(
            "WITH RECURSIVE r (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
            Runs,
        ),
        // A CTE named like a table, used only as the CTE.
        both("WITH secrets AS (SELECT 1 AS s) SELECT s FROM secrets", Runs),
        both(
            "WITH RECURSIVE secrets (s) AS (SELECT 1 UNION ALL SELECT s + 1 FROM secrets WHERE s < 3) SELECT s FROM secrets",
            Runs,
        ),
        both("SELECT id FROM users WHERE id = ?", Runs).params(1),
        both("INSERT INTO notes (step, body) VALUES (?, ?)", Runs).params(2),
        both("UPDATE notes SET body = ? WHERE id = ?", Runs).params(2),
        both(format!("SELECT 1{}", "+1".repeat(500)), Runs),
        // Names that are not tables.
        both("SELECT id AS secrets FROM users", Runs),
        both("SELECT secrets.id FROM users AS secrets", Runs),
        both("SELECT dmig.id FROM users AS dmig", Runs),
        // -- Ordinary on one database.
        case("SELECT id::text FROM users", Runs, Any),
        case("SELECT \"name\" FROM \"users\"", Runs, Any),
        case("TABLE users", Runs, Any),
        case("INSERT INTO notes (step, body) VALUES (1, 'x') RETURNING id", Runs, Any),
        case("INSERT INTO notes (step, body) VALUES (1, 'x') ON CONFLICT DO NOTHING", Runs, Any),
        case(
            "INSERT INTO notes (id, step, body) OVERRIDING SYSTEM VALUE VALUES (1000, 1, 'x')",
            Runs,
            Any,
        ),
        case("UPDATE notes SET step = 2 FROM users WHERE users.id = notes.user_id", Runs, Any),
        case("DELETE FROM notes USING users WHERE users.id = notes.user_id", Runs, Any),
        case("WITH x AS (UPDATE notes SET step = 2 RETURNING *) SELECT count(*) FROM x", Runs, Any),
        case("WITH notes AS (SELECT 1 AS step) UPDATE notes SET step = 2", Runs, Any),
        case(
            "MERGE INTO notes n USING users u ON n.user_id = u.id WHEN NOT MATCHED THEN INSERT (step, body) VALUES (1, u.name)",
            Runs,
            Any,
        ),
        case("SELECT E'tab\\there', $$dollar$$, $q$ it's $q$, U&'\\0041'", Runs, Any),
        case("SELECT 'a\\', 'b'", Runs, Any),
        case("SELECT * FROM generate_series(1, 3)", Runs, Any),
        case("SELECT json_build_object('a', 1)::text", Runs, Any),
        case("SELECT name FROM users WHERE name = 'x' COLLATE \"C\"", Runs, Any),
        case("SELECT current_setting('search_path')", Runs, Any),
        case("EXPLAIN SELECT * FROM users", Runs, Any),
        case("SHOW search_path", Runs, Any),
        case("SELECT B'0101'::text, X'1F'::text", Runs, Any),
        case("SELECT '{\"a\": 1}'::jsonb ->> 'a'", Runs, Any),
        case("SELECT id FROM users ORDER BY name DESC NULLS LAST", Runs, Any),
        case("SELECT id FROM users WHERE id = ANY (ARRAY[1, 2])", Runs, Any),
        case("SELECT 1 OPERATOR(pg_catalog.+) 2, 1::numeric(10, 2)", Runs, Any),
        case("SELECT users::text FROM users", Runs, Any),
        // `(x).f` is a call of f(x) when x has no field f, and `x` may be a
        // column as well as the row: refused when f is also a function
        // (`name` is), admitted otherwise.
        case("SELECT (users).name FROM users", Refused, Any),
        case("SELECT (users).id FROM users", Runs, Any),
        case("SELECT count(*) FILTER (WHERE id > 1) FROM users", Runs, Any),
        case("SELECT row_number() OVER (ORDER BY id) FROM users", Runs, Any),
        case("SELECT id FROM users ORDER BY id FETCH FIRST 1 ROW ONLY", Runs, Any),
        case("SELECT * FROM unnest(ARRAY[1, 2]) AS t (x)", Runs, Any),
        case("SELECT * FROM (VALUES (1), (2)) AS v (x)", Runs, Any),
        case("INSERT INTO notes (step) SELECT x FROM generate_series(1, 3) AS x", Runs, Any),
        case("INSERT INTO notes DEFAULT VALUES", Runs, Any),
        case("UPDATE notes SET body = DEFAULT", Runs, Any),
        case("UPDATE notes n SET body = u.name FROM users u WHERE u.id = n.user_id RETURNING n.id", Runs, Any),
        case("DELETE FROM notes WHERE id IN (SELECT id FROM notes ORDER BY id LIMIT 1)", Runs, Any),
        case("SELECT id FROM notes FOR UPDATE SKIP LOCKED", Runs, Any),
        case("SELECT id FROM notes FOR NO KEY UPDATE", Runs, Any),
        case("SELECT id FROM notes FOR SHARE", Runs, Any),
        case("SELECT id FROM notes FOR KEY SHARE", Runs, Any),
        case("SELECT 'users'::regclass::text", Runs, Any),
        case("SELECT `name` FROM `users`", Any, Runs),
        case(
            "INSERT INTO notes (id, step) VALUES (1, 1) ON DUPLICATE KEY UPDATE step = step + 1",
            Any,
            Runs,
        ),
        case("SELECT CAST(id AS CHAR) FROM users", Any, Runs),
        case("SELECT JSON_OBJECT('a', 1)", Any, Runs),
        case("SHOW VARIABLES LIKE 'sql_mode'", Any, Runs),
        case("SELECT 1 FROM DUAL", Any, Runs),
        case("SELECT id FROM users LIMIT 1, 1", Any, Runs),
        case("SELECT 1 <=> 1, 5 % 3, 2 ^ 3", Any, Runs),
        case("SELECT 1 # a comment\n", Any, Runs),
        case("SELECT 1 -- , (SELECT s FROM secrets LIMIT 1)", Runs, Runs),
        case("SELECT 1 --\t, (SELECT s FROM secrets LIMIT 1)\n", Runs, Runs),
        case("SELECT 'a\\0b', 'c\\Zd', 'e\\%f', 'g\\_h'", Runs, Any),
        // -- The issue's examples.
        case("SELECT 1 /*M! , (SELECT s FROM secrets LIMIT 1) */", Runs, Refused),
        case(
            "UPDATE notes /*M! JOIN secrets */ SET notes.step = 1 /*M! , secrets.s = 'x' */",
            Any,
            Refused,
        ),
        both("/*M! COMMIT */", Refused),
        case("SELECT 1 /*M! ; COMMIT */", Runs, Refused),
        case(
            "UPDATE notes /*M! JOIN dmig_migrations */ SET notes.step = 1 /*M! , dmig_migrations.checksum = 'x' */",
            Any,
            Refused,
        ),
        both("SELECT query_to_xml('select * from secrets', true, true, '')::text", Refused),
        both("SELECT pg_read_file('/etc/hostname')", Refused),
        // PostgreSQL's functional notation: a field that is not a column is
        // a call of the function of that name.
        case("SELECT ('/etc/hostname'::text).pg_read_file", Refused, Any),
        case("SELECT u.record_send::text FROM users u", Refused, Any),
        case("SELECT u.id, u.name, users.name FROM users u, users", Runs, Runs),
        both("SELECT pg_ls_dir('/')", Refused),
        both("SELECT lo_import('/etc/hostname')", Refused),
        both("SELECT lo_export(1, '/tmp/dmig_sql_differential')", Refused),
        both("SELECT set_config('search_path', 'other', true)", Refused),
        both("SELECT set_config('statement_timeout', '0', false)", Refused),
        both(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()",
            Refused,
        ),
        both("SELECT pg_sleep(20)::text", Refused),
        both("SELECT LOAD_FILE('/etc/hostname')", Refused),
        both("SELECT 1 INTO OUTFILE '/tmp/dmig_sql_differential'", Refused),
        both("SELECT name FROM users INTO DUMPFILE '/tmp/dmig_sql_differential'", Refused),
        both(format!("SELECT 1{}", "+1".repeat(20_000)), Refused),
        both(
            "SELECT (WITH secrets AS (SELECT 1 AS s) SELECT s FROM secrets), (SELECT s FROM secrets LIMIT 1)",
            Refused,
        ),
        both("WITH secrets AS (SELECT s FROM secrets) SELECT * FROM secrets", Refused),
        // -- Executable and versioned comments.
        case("SELECT 1 /*! , (SELECT s FROM secrets LIMIT 1) */", Runs, Refused),
        case("SELECT 1 /*!50000 , (SELECT s FROM secrets LIMIT 1) */", Runs, Refused),
        case("SELECT 1 /*M!100000 , (SELECT s FROM secrets LIMIT 1) */", Runs, Refused),
        case("SELECT 1 /*!99999 , 2 */", Runs, Refused),
        both("/*!COMMIT*/", Refused),
        // -- Comment syntaxes that differ between the databases.
        case("SELECT 1 #, (SELECT s FROM secrets LIMIT 1)\n", Refused, Runs),
        both("SELECT 1 #\n, (SELECT s FROM secrets LIMIT 1)", Refused),
        case("SELECT 1 --1, (SELECT s FROM secrets LIMIT 1)\n", Runs, Refused),
        case("SELECT 1 --\r, (SELECT s FROM secrets LIMIT 1)\n", Refused, Runs),
        case("SELECT 1 /* /* */ , (SELECT s FROM secrets LIMIT 1) */", Runs, Refused),
        case("SELECT 1 /* /* */ , (SELECT s FROM secrets LIMIT 1) -- */", Runs, Refused),
        both("SELECT 1 /* */ */ , 2", Any),
        // -- String literal rules.
        both("SELECT 'a\\' , (SELECT s FROM secrets LIMIT 1) , 'b'", Refused),
        case("SELECT 'x\\' , (SELECT s FROM secrets LIMIT 1) -- '", Refused, Any),
        both("SELECT \"a\\\"b\", (SELECT s FROM secrets LIMIT 1)", Refused),
        both("SELECT 'a\\\\', (SELECT s FROM secrets LIMIT 1)", Refused),
        case("SELECT E'\\'' , (SELECT s FROM secrets LIMIT 1) -- '", Refused, Any),
        both("SELECT E'\\\\' , (SELECT s FROM secrets LIMIT 1)", Refused),
        case("SELECT U&'\\0027' , (SELECT s FROM secrets LIMIT 1)", Refused, Refused),
        case("SELECT $$ ' $$ , (SELECT s FROM secrets LIMIT 1)", Refused, Any),
        case("SELECT $a$ ' $a$ , (SELECT s FROM secrets LIMIT 1) -- '", Refused, Any),
        case("SELECT $$ , (SELECT s FROM secrets LIMIT 1) $$", Runs, Any),
        case("SELECT $a$ $$ , (SELECT s FROM secrets) $$ $a$", Runs, Any),
        both("SELECT 'a\0b'", Refused),
        case("SELECT B'\\0 ||--'", Refused, Any),
        // -- Identifier quoting and case folding.
        case("SELECT * FROM U&\"\\0073ecrets\"", Refused, Any),
        case("SELECT * FROM \"secrets\"", Refused, Any),
        case("SELECT * FROM `secrets`", Any, Refused),
        both("SELECT * FROM [secrets]", Any),
        both("SELECT * FROM SECRETS", Refused),
        case("SELECT * FROM USERS", Runs, Refused),
        case("SELECT * FROM \"Users\"", Refused, Any),
        case("SELECT * FROM `Users`", Any, Refused),
        // -- Schema resolution: a qualified name is never the declared one.
        both("SELECT * FROM public.users", Refused),
        both("SELECT * FROM {db}.users", Refused),
        both("SELECT * FROM {db}.secrets", Refused),
        both("INSERT INTO other.notes (step) VALUES (1)", Refused),
        both("SELECT * FROM pg_catalog.pg_class", Refused),
        both("SELECT * FROM pg_class", Refused),
        both("SELECT * FROM information_schema.tables", Refused),
        both("SELECT * FROM mysql.user", Refused),
        // -- Session state, search path, transaction control.
        both("SET search_path = other", Refused),
        both("SET LOCAL search_path TO other", Refused),
        both("RESET search_path", Refused),
        both("SELECT set_config('search_path', 'other', false)", Refused),
        both("SET ROLE postgres", Refused),
        both("RESET ROLE", Refused),
        both("SET SESSION AUTHORIZATION postgres", Refused),
        both("SELECT set_config('role', 'postgres', true)", Refused),
        both("SET sql_mode = ''", Refused),
        both("SET @@session.sql_mode = 'NO_BACKSLASH_ESCAPES'", Refused),
        both("SET NAMES latin1", Refused),
        both("SET autocommit = 1", Refused),
        both("COMMIT", Refused),
        both("ROLLBACK", Refused),
        both("BEGIN", Refused),
        both("START TRANSACTION", Refused),
        both("SAVEPOINT a", Refused),
        both("RELEASE SAVEPOINT a", Refused),
        both("END", Refused),
        both("XA START 'x'", Refused),
        both("SELECT 1; COMMIT", Refused),
        // -- TABLE, and the ledger in every spelling.
        both("TABLE secrets", Refused),
        both("TABLE dmig_runs", Refused),
        both("SELECT * FROM users WHERE EXISTS (TABLE secrets)", Refused),
        both("SELECT * FROM dmig_runs", Refused),
        both("DELETE FROM dmig_migrations", Refused),
        both("UPDATE dmig_locks SET holder = 'x'", Refused),
        both("INSERT INTO notes (body) SELECT error FROM dmig_runs", Refused),
        both("SELECT * FROM DMIG_RUNS", Refused),
        both("SELECT * FROM \"DMIG_Runs\"", Refused),
        both("SELECT * FROM `dmig_runs`", Refused),
        // -- Writes outside the manifest.
        both("UPDATE notes, secrets SET notes.step = 1", Refused),
        both("DELETE notes FROM notes JOIN secrets ON TRUE", Refused),
        both("DELETE FROM notes USING notes JOIN secrets ON TRUE", Refused),
        both("UPDATE notes SET step = (SELECT count(*) FROM secrets)", Refused),
        both("INSERT INTO notes (body) SELECT s FROM secrets", Refused),
        both("UPDATE users SET name = 'x'", Refused),
        both("DELETE FROM users", Refused),
        both("INSERT INTO users (id) VALUES (99)", Refused),
        both("SELECT * FROM users FOR UPDATE", Refused),
        both("TRUNCATE notes", Refused),
        both("DROP TABLE secrets", Refused),
        both("CREATE TABLE x (id int)", Refused),
        both("ALTER TABLE notes ADD COLUMN z int", Refused),
        both("CREATE TEMPORARY TABLE t (x int)", Refused),
        both("SELECT * INTO TEMP t FROM users", Refused),
        both("CREATE TABLE notes2 AS SELECT * FROM secrets", Refused),
        both("CREATE VIEW v AS SELECT * FROM secrets", Refused),
        both("GRANT SELECT ON secrets TO PUBLIC", Refused),
        both("WITH secrets AS (SELECT 1 AS s) UPDATE secrets SET s = 'x'", Refused),
        both("WITH x AS (DELETE FROM secrets RETURNING *) SELECT * FROM x", Refused),
        // -- Reads outside the manifest.
        both("SELECT * FROM users NATURAL JOIN secrets", Refused),
        both("SELECT * FROM users, secrets", Refused),
        both("SELECT * FROM users CROSS JOIN secrets", Refused),
        both("SELECT * FROM users JOIN secrets ON TRUE", Refused),
        both("SELECT * FROM users STRAIGHT_JOIN secrets", Refused),
        both("SELECT * FROM (users, secrets)", Refused),
        both("SELECT * FROM users JOIN (secrets) ON TRUE", Refused),
        both("SELECT * FROM { oj users LEFT OUTER JOIN secrets ON TRUE }", Refused),
        both("SELECT (SELECT s FROM secrets LIMIT 1)", Refused),
        both("SELECT * FROM users WHERE name IN (SELECT s FROM secrets)", Refused),
        both("SELECT * FROM users WHERE EXISTS (SELECT 1 FROM secrets)", Refused),
        both("SELECT * FROM (SELECT * FROM secrets) AS x", Refused),
        both("SELECT id FROM users UNION SELECT id FROM secrets", Refused),
        both("SELECT id FROM users UNION ALL TABLE secrets", Refused),
        both("SELECT * FROM users u, LATERAL (SELECT s FROM secrets) x", Refused),
        both("SELECT ARRAY(SELECT s FROM secrets)", Refused),
        both("SELECT row_to_json(x) FROM secrets x", Refused),
        both("SELECT * FROM users WHERE name = ANY (SELECT s FROM secrets)", Refused),
        both("VALUES ((SELECT s FROM secrets LIMIT 1))", Refused),
        both("SELECT xmlelement(name x, (SELECT s FROM secrets LIMIT 1))", Refused),
        both("MERGE INTO notes USING secrets ON TRUE WHEN MATCHED THEN DO NOTHING", Refused),
        both("EXPLAIN SELECT * FROM secrets", Refused),
        both("EXPLAIN ANALYZE SELECT * FROM secrets", Refused),
        both("WITH x AS (SELECT * FROM secrets) SELECT * FROM x", Refused),
        both("WITH a AS (SELECT s FROM secrets), secrets AS (SELECT 1 AS s) SELECT * FROM a", Refused),
        both("WITH secrets AS (SELECT 1 AS s) SELECT * FROM public.secrets", Refused),
        both("WITH users AS (SELECT s AS name FROM secrets) SELECT name FROM users", Refused),
        // Locks are writes: PostgreSQL wants UPDATE for any locking clause.
        both("SELECT id FROM users FOR SHARE", Refused),
        both("SELECT id FROM users FOR KEY SHARE", Refused),
        both("SELECT id FROM users LOCK IN SHARE MODE", Refused),
        both("SELECT * FROM notes WHERE user_id IN (SELECT id FROM users FOR SHARE)", Refused),
        // The other places a table can stand.
        both("SELECT * FROM users WHERE (id, name) IN (SELECT id, s FROM secrets)", Refused),
        both("INSERT INTO notes SET body = (SELECT s FROM secrets LIMIT 1)", Refused),
        both("INSERT INTO notes (body) VALUES ((SELECT s FROM secrets LIMIT 1))", Refused),
        both("INSERT INTO notes (id, body) VALUES (1, 'x') ON DUPLICATE KEY UPDATE body = (SELECT s FROM secrets LIMIT 1)", Refused),
        both("INSERT INTO notes (id, body) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET body = (SELECT s FROM secrets LIMIT 1)", Refused),
        both("INSERT INTO notes (body) SELECT s FROM secrets ON DUPLICATE KEY UPDATE body = 'x'", Refused),
        both("REPLACE INTO notes (body) SELECT s FROM secrets", Refused),
        both("UPDATE notes SET body = 'x' WHERE id IN (SELECT id FROM secrets)", Refused),
        both("UPDATE notes SET (step, body) = (SELECT 1, s FROM secrets LIMIT 1)", Refused),
        both("UPDATE notes JOIN secrets ON TRUE SET notes.body = secrets.s", Refused),
        both("UPDATE notes n, (SELECT s FROM secrets) x SET n.body = x.s", Refused),
        both("DELETE FROM notes WHERE body IN (SELECT s FROM secrets)", Refused),
        both("DELETE n FROM notes n JOIN secrets s ON TRUE", Refused),
        both("DELETE FROM notes WHERE body IN (SELECT s FROM secrets) RETURNING *", Refused),
        both("SELECT * FROM users ORDER BY (SELECT s FROM secrets LIMIT 1)", Refused),
        both("SELECT id FROM users GROUP BY id HAVING (SELECT count(*) FROM secrets) > 0", Refused),
        both("SELECT CASE WHEN EXISTS (SELECT 1 FROM secrets) THEN 1 END", Refused),
        both("SELECT * FROM users EXCEPT SELECT id, s FROM secrets", Refused),
        both("SELECT id FROM users INTERSECT SELECT id FROM secrets", Refused),
        both("(SELECT s FROM secrets)", Refused),
        both("SELECT id FROM users WHERE id = 1 UNION (SELECT id FROM secrets)", Refused),
        both("WITH x AS (SELECT * FROM secrets) SELECT * FROM users", Refused),
        both("SELECT * FROM users NATURAL LEFT JOIN secrets", Refused),
        both("SELECT * FROM users LEFT JOIN secrets USING (id)", Refused),
        both("SELECT STRAIGHT_JOIN * FROM users, secrets", Refused),
        both("SELECT SQL_CALC_FOUND_ROWS s FROM secrets", Refused),
        both("SELECT * FROM users USE INDEX (PRIMARY) JOIN secrets ON TRUE", Refused),
        both("SELECT * FROM secrets FOR SYSTEM_TIME ALL", Refused),
        both("SELECT * FROM users, JSON_TABLE((SELECT s FROM secrets LIMIT 1), '$' COLUMNS (a INT PATH '$')) AS j", Refused),
        both("SELECT * FROM xmltable('/a' PASSING (SELECT s::xml FROM secrets LIMIT 1) COLUMNS x int PATH 'x')", Refused),
        both("SELECT * FROM users u JOIN LATERAL (SELECT * FROM secrets) x ON TRUE", Refused),
        both("SELECT count(*) OVER (ORDER BY (SELECT s FROM secrets LIMIT 1)) FROM users", Refused),
        both("SELECT * FROM users WHERE EXISTS (SELECT FROM secrets)", Refused),
        both("SELECT * FROM users NATURAL FULL JOIN secrets", Refused),
        both("SELECT * FROM \"public\".\"secrets\"", Refused),
        both("SELECT * FROM pg_temp.secrets", Refused),
        both("SELECT * FROM test.public.secrets", Refused),
        both("SELECT * FROM `{db}`.`secrets`", Refused),
        both("SELECT * FROM ONLY secrets", Refused),
        both("SELECT * FROM secrets *", Refused),
        both("SELECT * FROM seq_1_to_3", Refused),
        both("SELECT * FROM information_schema.processlist", Refused),
        both("SELECT * FROM performance_schema.threads", Refused),
        both("SELECT {fn NOW()}, {d '2020-01-01'}", Any),
        both("SELECT NEXT VALUE FOR notes_seq", Refused),
        both("SELECT 1 -- x\n UNION SELECT id FROM secrets", Refused),
        // sqlparser used to stop at a top-level END and drop the rest.
        both("SELECT s END FROM secrets", Refused),
        both("INSERT INTO notes (body) SELECT s END FROM secrets", Refused),
        both("SELECT name FROM users END", Any),
        // SHOWs sqlparser does not know parse as `SHOW name`.
        both("SHOW INDEX FROM secrets", Refused),
        both("SHOW KEYS IN secrets", Refused),
        both("SHOW GRANTS FOR root", Refused),
        both("SHOW COLUMNS FROM secrets", Refused),
        both("SHOW CREATE TABLE secrets", Refused),
        // -- Functions.
        both("SELECT my_function()", Refused),
        both("SELECT pg_catalog.pg_read_file('/etc/hostname')", Refused),
        both("SELECT \"pg_read_file\"('/etc/hostname')", Refused),
        both("SELECT PG_SLEEP(1)", Refused),
        both("SELECT dblink('x', 'y')", Refused),
        both("SELECT pg_advisory_lock(1)", Refused),
        both("SELECT pg_try_advisory_xact_lock(1)", Refused),
        both("SELECT GET_LOCK('dmig', 1)", Refused),
        both("SELECT SLEEP(1)", Refused),
        both("SELECT BENCHMARK(1000, 1)", Refused),
        both("SELECT nextval('notes_id_seq')", Refused),
        both("SELECT currval('notes_id_seq')", Refused),
        both("SELECT setval('notes_id_seq', 1)", Refused),
        both("SELECT * FROM pg_ls_dir('/')", Refused),
        both("SELECT * FROM ROWS FROM (pg_ls_dir('/'))", Refused),
        both("CALL my_proc()", Refused),
        both("DO $$ BEGIN PERFORM pg_sleep(1); END $$", Refused),
        both("SELECT pg_notify('ch', 'x')", Refused),
        both("SELECT pg_cancel_backend(pg_backend_pid())", Refused),
        both("SELECT pg_stat_file('/etc/hostname')", Refused),
        both("SELECT txid_current()", Any),
        both("SELECT version()", Any),
        // -- Statements refused by kind.
        both("COPY secrets TO STDOUT", Refused),
        both("COPY (SELECT 1) TO '/tmp/dmig_sql_differential'", Refused),
        both("LOCK TABLE notes", Refused),
        both("LOCK TABLES notes WRITE", Refused),
        both("UNLOCK TABLES", Refused),
        both("PREPARE p AS SELECT 1", Refused),
        both("PREPARE p FROM 'SELECT 1'", Refused),
        both("EXECUTE p", Refused),
        both("DEALLOCATE p", Refused),
        both("DECLARE c CURSOR FOR SELECT * FROM secrets", Refused),
        both("NOTIFY ch", Refused),
        both("LISTEN ch", Refused),
        both("LOAD DATA INFILE '/etc/hostname' INTO TABLE notes", Refused),
        both("HANDLER secrets OPEN", Refused),
        both("DO (SELECT s FROM secrets LIMIT 1)", Refused),
        both("KILL QUERY 1", Refused),
        both("VACUUM notes", Refused),
        both("ANALYZE notes", Refused),
        both("CHECKPOINT", Refused),
        both("DISCARD ALL", Refused),
        both("USE mysql", Refused),
        both("FLUSH TABLES", Refused),
        // -- One statement, not none.
        both("SELECT 1; SELECT 2", Refused),
        both("", Refused),
        both("  \n\t", Refused),
        both("/* */", Refused),
        both("-- only a comment", Refused),
        both(";", Refused),
        // -- Operators and placeholders.
        both("SELECT '{\"a\": 1}'::jsonb ? 'a'", Any),
        both("SELECT 1 WHERE '{\"a\": 1}'::jsonb ?| ARRAY['a']", Any),
        both("SELECT $1", Refused),
        case("SELECT :x", Refused, Any),
        both("SELECT 'a' || 'b', 1::int4", Any),
        case("SELECT 1::numeric(1+1)", Refused, Any),
        case("SELECT 1 OPERATOR(a.b.+) 2", Refused, Any),
        both(format!("SELECT 1 {}1", "+-".repeat(2_049)), Refused),
        both(format!("SELECT 1 {}", "/**/".repeat(5_000)), Any),
    ];
    cases.sort_by_key(|c| c.sql.len() > 2_000);
    cases
}

/// The manifest every statement is judged against.
fn manifest(raw_sql: bool) -> Capabilities {
    Capabilities {
        reads: vec!["users".into()],
        writes: vec!["notes".into()],
        raw_sql,
        ..Capabilities::default()
    }
}

/// What the corpus found on one database.
#[derive(Default)]
struct Report {
    violations: Vec<String>,
    admitted: usize,
    refused: usize,
    ran: usize,
    errors: usize,
}

impl Report {
    fn fail(&mut self, what: String) {
        self.violations.push(what);
    }

    fn finish(self, database: &str, cases: usize) {
        println!(
            "{database}: {cases} statements, {} admitted ({} ran, {} server errors), {} refused",
            self.admitted, self.ran, self.errors, self.refused
        );
        assert!(
            self.violations.is_empty(),
            "{database}: {} of {cases} statements broke the gate's promise:\n\n{}",
            self.violations.len(),
            self.violations.join("\n\n")
        );
    }
}

/// How a statement went on the server.
enum Ran {
    Ok,
    Failed(DbError),
    /// It ran, and the session or transaction is not what it was.
    Changed {
        before: String,
        after: String,
    },
}

/// Checks one case on one database: the gate's verdict, and for an
/// admitted statement what `run` reports.
async fn check<F, Fut>(
    report: &mut Report,
    database: &str,
    (syntax, catalog): (Syntax, &Catalog),
    case: &Case,
    sql: &str,
    expect: Expect,
    run: F,
) where
    F: FnOnce(Admitted, Vec<Value>) -> Fut,
    Fut: std::future::Future<Output = Result<Ran, DbError>>,
{
    let shown = |s: &str| format!("{:?}", s.chars().take(300).collect::<String>());
    let gate = Gate::new(syntax, Some(&manifest(false)))
        .expect("the manifest parses")
        .with_catalog(catalog.clone());
    // The ledger is refused in every mode: under raw SQL too, nothing that
    // runs names it.
    if let Ok(admitted) = Gate::new(syntax, Some(&manifest(true)))
        .expect("the manifest parses")
        .with_catalog(catalog.clone())
        .admit(sql)
        && admitted.text.to_ascii_lowercase().contains("dmig_")
    {
        report.fail(format!(
            "{database}: {} was admitted under raw SQL as {}, which names the ledger",
            shown(sql),
            shown(&admitted.text)
        ));
    }
    let admitted = match gate.admit(sql) {
        Err(refusal) => {
            report.refused += 1;
            if expect == Runs {
                report.fail(format!(
                    "{database}: ordinary SQL {} was refused: {refusal}",
                    shown(sql)
                ));
            }
            return;
        }
        Ok(admitted) => admitted,
    };
    report.admitted += 1;
    let text = admitted.text.clone();
    if expect == Refused {
        report.fail(format!(
            "{database}: {} must be refused, and was admitted as {}",
            shown(sql),
            shown(&text)
        ));
    }
    let params = match &admitted.placeholders {
        Placeholders::Numbered(spots) => spots.iter().map(|(_, i)| i + 1).max().unwrap_or(0),
        Placeholders::Positional => case.params,
    };
    let ran = match run(admitted, vec![Value::Null; params]).await {
        Ok(ran) => ran,
        Err(e) => {
            report.fail(format!(
                "{database}: the test could not run {}: {e}",
                shown(&text)
            ));
            return;
        }
    };
    match ran {
        Ran::Ok => {
            report.ran += 1;
        }
        Ran::Changed { before, after } => {
            report.ran += 1;
            report.fail(format!(
                "{database}: {} was admitted as {} and changed the session or ended the transaction:\n  before: {before}\n  after:  {after}",
                shown(sql),
                shown(&text)
            ));
        }
        Ran::Failed(error) => {
            report.errors += 1;
            println!(
                "{database}: {} ran as {} and failed: {error}",
                shown(sql),
                shown(&text)
            );
            let outside = outside_the_manifest(&error);
            if let Some(why) = outside {
                report.fail(format!(
                    "{database}: {} was admitted as {}, and the server {why}: {error}",
                    shown(sql),
                    shown(&text)
                ));
            } else if expect == Runs {
                report.fail(format!(
                    "{database}: ordinary SQL {} (sent as {}) failed: {error}",
                    shown(sql),
                    shown(&text)
                ));
            }
        }
    }
}

/// Whether a server error says the statement reached past the manifest
/// (and how), or ran too long.
fn outside_the_manifest(error: &DbError) -> Option<&'static str> {
    let message = error.message.to_ascii_lowercase();
    match error.code.as_deref() {
        // PostgreSQL: insufficient_privilege, query_canceled (the timeout).
        Some("42501") => return Some("denied it a privilege the manifest does not imply"),
        Some("57014") => return Some("stopped it at the statement timeout"),
        _ => {}
    }
    if message.contains("denied") || message.contains("not owner of thread") {
        Some("denied it a privilege the manifest does not imply")
    } else if message.contains("max_statement_time") || message.contains("interrupted") {
        Some("stopped it at the statement timeout")
    } else {
        None
    }
}

/// The runtime the tests drive the host's connections on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A name no other run of this test on the same server uses.
fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}_{}_{n}", std::process::id())
}

/// Runs `sql` (test setup, no `?`) on `conn` and fails the test on error.
async fn setup(conn: &mut Connection, sql: &str) {
    conn.execute(&sql.to_owned(), &[])
        .await
        .unwrap_or_else(|e| panic!("test setup failed: {e}: {sql}"));
}

/// The session and transaction state a statement must leave as it found it.
async fn state(conn: &mut Connection, sql: &str) -> Result<String, DbError> {
    Ok(format!(
        "{:?}",
        conn.query(&sql.to_owned(), &[]).await?.rows
    ))
}

/// A server-wide role or user, dropped when the test ends (after its
/// database, which holds its grants).
struct Principal {
    server: String,
    drop: String,
}

impl Drop for Principal {
    fn drop(&mut self) {
        Db::open(&self.server).exec(&self.drop);
    }
}

const POSTGRES_STATE: &str = "SELECT current_user::text, session_user::text, \
     current_setting('search_path'), current_setting('statement_timeout'), \
     current_setting('lock_timeout'), current_setting('idle_in_transaction_session_timeout'), \
     current_setting('transaction_isolation'), current_setting('transaction_read_only'), \
     current_setting('standard_conforming_strings'), current_setting('TimeZone'), \
     txid_current()::text, \
     (SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory')::text";

#[test]
fn admitted_statements_stay_within_the_manifest_on_postgres() {
    let Some(var) = Kind::Postgres.env_var() else {
        unreachable!()
    };
    let Ok(server) = std::env::var(var) else {
        println!("skipped: {var} is not set");
        return;
    };
    let role = unique("sqldiff");
    Db::open(&server).exec(&format!("CREATE ROLE {role} NOLOGIN"));
    let _role = Principal {
        server: server.clone(),
        drop: format!("DROP ROLE IF EXISTS {role}"),
    };
    let dir = TestDir::new("sql_differential_postgres");
    let db = TestDb::new(Kind::Postgres, &dir, "sql_differential").expect("the URL is set");
    let cases = corpus();
    let runtime = runtime();
    runtime.block_on(async {
        let mut conn = Connection::connect(db.url())
            .await
            .expect("connecting to the test database");
        for sql in [
            "CREATE TABLE users (id integer PRIMARY KEY, name text)",
            "CREATE TABLE notes (id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, step integer, body text, user_id integer)",
            "CREATE TABLE secrets (id integer, s text)",
            "CREATE TABLE dmig_runs (id integer, error text)",
            "CREATE TABLE dmig_migrations (name text, checksum text)",
            "CREATE TABLE dmig_locks (holder text)",
            "CREATE SCHEMA other",
            "CREATE TABLE other.notes (id integer, step integer, body text)",
            "INSERT INTO users VALUES (1, 'ada'), (2, 'bob')",
            "INSERT INTO notes (step, body, user_id) VALUES (1, 'first', 1), (1, 'second', 2)",
            "INSERT INTO secrets VALUES (1, 'TOPSECRET')",
            "INSERT INTO dmig_runs VALUES (1, NULL)",
            "INSERT INTO dmig_migrations VALUES ('m1', 'abc')",
            &format!("REVOKE ALL ON DATABASE {} FROM PUBLIC", db_name(db.url())),
            &format!("GRANT CONNECT ON DATABASE {} TO {role}", db_name(db.url())),
            &format!("GRANT SELECT ON users TO {role}"),
            &format!("GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO {role}"),
        ] {
            setup(&mut conn, sql).await;
        }
        conn.set_statement_timeout(Duration::from_secs(5))
            .await
            .expect("setting the statement timeout");
        let syntax = conn.syntax();
        assert_eq!(syntax.dialect, Dialect::Postgres);
        let catalog = conn
            .gate_catalog()
            .await
            .expect("reading the catalog the gate needs");
        let mut report = Report::default();
        for case in &cases {
            let conn = &mut conn;
            let role = &role;
            check(
                &mut report,
                "PostgreSQL",
                (syntax, &catalog),
                case,
                &case.sql,
                case.postgres,
                |admitted, params| async move {
                    conn.begin().await?;
                    setup(conn, &format!("SET LOCAL ROLE {role}")).await;
                    let before = state(conn, POSTGRES_STATE).await?;
                    let ran = match conn.query(&admitted, &params).await {
                        Ok(_) => {
                            let after = state(conn, POSTGRES_STATE)
                                .await
                                .unwrap_or_else(|e| format!("cannot be read: {e}"));
                            if after == before {
                                Ran::Ok
                            } else {
                                Ran::Changed { before, after }
                            }
                        }
                        Err(e) => Ran::Failed(e),
                    };
                    conn.rollback().await?;
                    Ok(ran)
                },
            )
            .await;
        }
        // Nothing the role did outlived its transactions.
        let secrets = conn
            .query(&"SELECT s FROM secrets".to_owned(), &[])
            .await
            .expect("reading secrets");
        assert_eq!(secrets.rows, vec![vec![Value::Text("TOPSECRET".into())]]);
        report.finish("PostgreSQL", cases.len());
    });
}

/// The database name at the end of a server URL.
fn db_name(url: &str) -> &str {
    url.rsplit_once('/').map_or(url, |(_, name)| name)
}

const MYSQL_STATE: &str = "SELECT CURRENT_USER(), DATABASE(), @@session.sql_mode, \
     @@in_transaction, @@autocommit, @@session.max_statement_time, @@session.time_zone, \
     @@session.tx_isolation, @@session.character_set_client, CONNECTION_ID(), \
     IS_USED_LOCK('dmig')";

#[test]
fn admitted_statements_stay_within_the_manifest_on_mariadb() {
    let Some(var) = Kind::Mysql.env_var() else {
        unreachable!()
    };
    let Ok(server) = std::env::var(var) else {
        println!("skipped: {var} is not set");
        return;
    };
    let user = unique("sqldiff");
    let password = unique("pw");
    Db::open(&server).exec(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
    ));
    let _user = Principal {
        server: server.clone(),
        drop: format!("DROP USER IF EXISTS '{user}'@'%'"),
    };
    let dir = TestDir::new("sql_differential_mariadb");
    let db = TestDb::new(Kind::Mysql, &dir, "sql_differential").expect("the URL is set");
    let name = db_name(db.url()).to_owned();
    let mut admin = db.open();
    for sql in [
        "CREATE TABLE users (id INT PRIMARY KEY, name TEXT)".to_owned(),
        "CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, step INT, body TEXT, user_id INT)"
            .to_owned(),
        "CREATE TABLE secrets (id INT, s TEXT)".to_owned(),
        "CREATE TABLE dmig_runs (id INT, error TEXT)".to_owned(),
        "CREATE TABLE dmig_migrations (name TEXT, checksum TEXT)".to_owned(),
        "CREATE TABLE dmig_locks (holder TEXT)".to_owned(),
        "INSERT INTO users VALUES (1, 'ada'), (2, 'bob')".to_owned(),
        "INSERT INTO notes (step, body, user_id) VALUES (1, 'first', 1), (1, 'second', 2)"
            .to_owned(),
        "INSERT INTO secrets VALUES (1, 'TOPSECRET')".to_owned(),
        "INSERT INTO dmig_runs VALUES (1, NULL)".to_owned(),
        "INSERT INTO dmig_migrations VALUES ('m1', 'abc')".to_owned(),
        format!("GRANT SELECT ON `{name}`.`users` TO '{user}'@'%'"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON `{name}`.`notes` TO '{user}'@'%'"),
    ] {
        admin.exec_one(&sql);
    }
    // The same server, as the user.
    let (scheme, rest) = server.split_once("://").expect("a server URL");
    let host = rest
        .rsplit_once('@')
        .map_or(rest, |(_, host)| host)
        .split('/')
        .next()
        .unwrap_or_default();
    let url = format!("{scheme}://{user}:{password}@{host}/{name}");
    let cases = corpus();
    let runtime = runtime();
    runtime.block_on(async {
        for backslash_escapes in [true, false] {
            let mut conn = Connection::connect(&url)
                .await
                .expect("connecting as the test's user");
            conn.set_statement_timeout(Duration::from_secs(5))
                .await
                .expect("setting the statement timeout");
            assert_eq!(conn.syntax().dialect, Dialect::Mysql);
            assert!(
                conn.syntax().backslash_escapes,
                "the server's default SQL mode has backslash escapes"
            );
            if !backslash_escapes {
                setup(
                    &mut conn,
                    "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')",
                )
                .await;
            }
            let syntax = Syntax {
                dialect: Dialect::Mysql,
                backslash_escapes,
            };
            let database = if backslash_escapes {
                "MariaDB"
            } else {
                "MariaDB (NO_BACKSLASH_ESCAPES)"
            };
            let mut report = Report::default();
            for case in &cases {
                let sql = case.sql.replace("{db}", &name);
                let conn = &mut conn;
                check(
                    &mut report,
                    database,
                    (syntax, &Catalog::default()),
                    case,
                    &sql,
                    case.mysql,
                    |admitted, params| async move {
                        conn.begin().await?;
                        let before = state(conn, MYSQL_STATE).await?;
                        let ran = match conn.query(&admitted, &params).await {
                            Ok(_) => Ran::Ok,
                            Err(e) => Ran::Failed(e),
                        };
                        let after = state(conn, MYSQL_STATE)
                            .await
                            .unwrap_or_else(|e| format!("cannot be read: {e}"));
                        conn.rollback().await?;
                        // An error does not excuse a change (a statement can
                        // commit implicitly and then fail).
                        Ok(if after == before {
                            ran
                        } else {
                            Ran::Changed { before, after }
                        })
                    },
                )
                .await;
            }
            report.finish(database, cases.len());
        }
    });
    let secrets: Vec<(String,)> = admin.rows("SELECT s FROM secrets");
    assert_eq!(secrets, [("TOPSECRET".to_owned(),)]);
}
