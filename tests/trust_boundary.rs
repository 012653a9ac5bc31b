//! The trust boundary of issue 13, tried as a hostile author would: a
//! migration whose manifest declares only that it reads `users` and writes
//! `notes` (the `sql-probe` guest, and `sql-probe-raw`, which also declares
//! raw SQL) sends one statement after another that touches something else,
//! and each must be stopped.
//!
//! [`CASES`] is the whole suite, one row per attack: the databases it
//! concerns, the guest, the statements, the call, and the outcome the issue
//! asks for (exit 8, refused; exit 5, a limit), plus a control group of
//! ordinary statements that must keep running (exit 1 with the probe's
//! "every statement ran"). Every (case, database) pair is its own test,
//! `trust_boundary::<case>::<database>`.
//!
//! Each test creates `users`, `notes` and `secrets` (holding [`SECRET`]), on
//! PostgreSQL a second schema `other` with its own `notes` and `users` (the
//! latter holding [`SECRET`]), and on PostgreSQL
//! and MySQL tables `Users`/`Notes` that differ from `users`/`notes` only in
//! case (the server keeps them apart) and a sequence; it runs the case through
//! the `dmig-host` command line and then checks everything at once, so one
//! failure names every broken promise:
//!
//! - the exit code (and, for a time limit, that the process ended within the
//!   limit plus one second of the time a quick run takes);
//! - `notes` holds exactly the row step 1 committed, and nothing else the
//!   test created changed (`secrets`, the case variants, `other.notes`, the
//!   sequence);
//! - neither [`SECRET`] nor a server file's contents reached the operator's
//!   output or the ledger, and no server file was created;
//! - the run is recorded `failed` with a one-line cause, the same the
//!   operator sees on stderr;
//! - the ledger is exactly what a control run that fails the same step leaves;
//! - the database still answers the test's own connection, and a second
//!   `dmig-host run` of a harmless statement behaves as it should.
//!
//! Statements may name `{canary}` (a file on the database server's machine
//! holding a random text that must never come back), `{out}` (a path that
//! must not exist after the run) and `{db}` (the test database's name).

use std::collections::HashMap;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dmig_tests::{Db, Kind, TestDb, TestDir, guests, test_cache_dir};
use sqlx::Row;
use sqlx::any::AnyRow;

const DMIG: &str = env!("CARGO_BIN_EXE_dmig-host-under-test");

/// What `secrets.s` (and the case-variant `Users.name`) holds. It must never
/// reach the operator's output or the ledger.
const SECRET: &str = "dmig-secret-4c1e-b07a";

/// How long one `dmig-host` invocation may take before the test kills it
/// (for a case with a time limit: that limit plus [`LIMIT_WATCHDOG`]).
const WATCHDOG: Duration = Duration::from_secs(120);
const LIMIT_WATCHDOG: Duration = Duration::from_secs(20);

/// Statements longer than this go to the guest as a granted input file, not
/// as a command-line argument (Linux caps one argument at 128 KiB).
const ARGUMENT_MAX: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------

/// The guest a case runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Guest {
    /// `sql-probe`: reads `users`, writes `notes`.
    Probe,
    /// `sql-probe-raw`: the same, plus `.raw_sql()`.
    Raw,
}

impl Guest {
    fn artifact(self) -> &'static str {
        match self {
            Guest::Probe => guests::SQL_PROBE,
            Guest::Raw => guests::SQL_PROBE_RAW,
        }
    }
}

/// How the probe sends each statement.
#[derive(Debug, Clone, Copy)]
enum Call {
    Query,
    Execute,
    /// `execute`, then the step reports success (`--arg finish=done`), so
    /// only the host's checks at commit can fail it.
    ExecuteAndFinish,
    /// `execute_many` with this many empty parameter sets.
    Many(u32),
}

/// The outcome a case must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Exit 8: the statement is refused before it reaches the database.
    Refused,
    /// Exit 5: a sandbox limit (here: the step's time limit) stopped it.
    Limit,
    /// Exit 1 with "every statement ran": an ordinary statement inside the
    /// manifest, which must keep working (the control group).
    Runs,
}

impl Expect {
    fn code(self) -> i32 {
        match self {
            Expect::Refused => 8,
            Expect::Limit => 5,
            Expect::Runs => 1,
        }
    }
}

/// One statement: literal text, or built (too long to write out).
#[derive(Clone, Copy)]
enum Sql {
    Text(&'static str),
    Built(fn() -> String),
}

/// One row of the table.
#[derive(Clone, Copy)]
struct Case {
    guest: Guest,
    /// `--arg sql=…`, `sql2`, `sql3`, in order.
    sql: [Option<Sql>; 3],
    call: Call,
    expect: Expect,
    /// `--step-timeout`, when the case needs one.
    step_timeout: Option<&'static str>,
    /// The probe goes on to the next statement after a database error (a
    /// guest may swallow the errors it gets).
    keep_going: bool,
}

/// A statement the probe sends with `query`, to be refused.
const fn q(sql: &'static str) -> Case {
    Case {
        guest: Guest::Probe,
        sql: [Some(Sql::Text(sql)), None, None],
        call: Call::Query,
        expect: Expect::Refused,
        step_timeout: None,
        keep_going: false,
    }
}

/// A statement built at run time, sent with `query`, to be refused.
const fn built(sql: fn() -> String) -> Case {
    Case {
        sql: [Some(Sql::Built(sql)), None, None],
        ..q("")
    }
}

impl Case {
    /// Sends the statements with `execute`.
    const fn exec(self) -> Case {
        Case {
            call: Call::Execute,
            ..self
        }
    }

    /// Sends the statements with `execute`, then reports the step done.
    const fn exec_and_finish(self) -> Case {
        Case {
            call: Call::ExecuteAndFinish,
            ..self
        }
    }

    /// Sends the statements with `execute_many` and `sets` empty sets.
    const fn many(self, sets: u32) -> Case {
        Case {
            call: Call::Many(sets),
            ..self
        }
    }

    /// Adds a statement sent after the previous one(s).
    const fn then(mut self, sql: &'static str) -> Case {
        let mut i = 0;
        while i < self.sql.len() {
            if self.sql[i].is_none() {
                self.sql[i] = Some(Sql::Text(sql));
                return self;
            }
            i += 1;
        }
        panic!("a case has at most three statements")
    }

    /// Runs in `sql-probe-raw`.
    const fn raw(self) -> Case {
        Case {
            guest: Guest::Raw,
            ..self
        }
    }

    /// Runs with `--step-timeout`.
    const fn timeout(self, step_timeout: &'static str) -> Case {
        Case {
            step_timeout: Some(step_timeout),
            ..self
        }
    }

    /// Must be stopped by the step's time limit (exit 5) within `step_timeout`.
    const fn limit(self, step_timeout: &'static str) -> Case {
        Case {
            expect: Expect::Limit,
            step_timeout: Some(step_timeout),
            ..self
        }
    }

    /// Goes on after a database error (`--arg errors=continue`).
    const fn keep_going(self) -> Case {
        Case {
            keep_going: true,
            ..self
        }
    }

    /// A control: must run (exit 1, "every statement ran").
    const fn runs(self) -> Case {
        Case {
            expect: Expect::Runs,
            ..self
        }
    }
}

/// Declares the table of cases, [`CASES`], and one `#[test]` per case and
/// database it concerns: `<case>::sqlite`, `<case>::postgres`, `<case>::mysql`.
macro_rules! cases {
    ($( $(#[doc = $doc:literal])* $name:ident: [$($db:ident),+] => $case:expr; )*) => {
        /// Every case: its name, the databases it concerns, what it does.
        const CASES: &[(&str, &[Kind], Case)] = &[
            $( (stringify!($name), &[$(kind!($db)),+], $case), )*
        ];
        $(
            $(#[doc = $doc])*
            mod $name {
                $(
                    #[test]
                    fn $db() {
                        super::run_case(stringify!($name), kind!($db));
                    }
                )+
            }
        )*
    };
}

macro_rules! kind {
    (sqlite) => {
        dmig_tests::Kind::Sqlite
    };
    (postgres) => {
        dmig_tests::Kind::Postgres
    };
    (mysql) => {
        dmig_tests::Kind::Mysql
    };
}

fn plus_chain() -> String {
    // 900 KB, under the 1 MiB cap: `SELECT 1+1+…+1`.
    format!("SELECT {}1", "1+".repeat(450_000))
}

fn deep_parentheses() -> String {
    let depth = 400_000;
    format!("SELECT {}1{}", "(".repeat(depth), ")".repeat(depth))
}

fn or_chain() -> String {
    format!(
        "SELECT id FROM users WHERE {}id = 1",
        "id = 0 OR ".repeat(95_000)
    )
}

fn unary_chain() -> String {
    format!("SELECT {}1", "- ".repeat(450_000))
}

fn subquery_nest() -> String {
    let depth = 50_000;
    format!("SELECT {}1{}", "(SELECT ".repeat(depth), ")".repeat(depth))
}

cases! {
    // -- 1. Executable and versioned comments (MariaDB runs them; a gate that
    //       reads them as comments does not see what they do).

    /// Issue 13, verbatim: got the secret back.
    mariadb_comment_reads_a_table: [mysql] =>
        q("SELECT 1 /*M! , (SELECT s FROM secrets LIMIT 1) */");
    mariadb_comment_reads_a_table_first: [mysql] =>
        q("SELECT /*M! (SELECT s FROM secrets LIMIT 1), */ 1");
    mysql_comment_reads_a_table: [mysql] =>
        q("SELECT /*! (SELECT s FROM secrets LIMIT 1), */ 1");
    mysql_versioned_comment_reads_a_table: [mysql] =>
        q("SELECT /*!50000 (SELECT s FROM secrets LIMIT 1), */ 1");
    mariadb_versioned_comment_reads_a_table: [mysql] =>
        q("SELECT /*M!100000 (SELECT s FROM secrets LIMIT 1), */ 1");
    /// Issue 13, verbatim: rewrote `secrets`.
    mariadb_comment_joins_and_writes_a_table: [mysql] =>
        q("UPDATE notes /*M! JOIN secrets */ SET notes.step = 1 /*M! , secrets.s = 'x' */").exec();
    /// The same, then committed mid-step so the damage would stay.
    mariadb_comment_writes_a_table_and_commits: [mysql] =>
        q("UPDATE notes /*M! JOIN secrets */ SET notes.step = 1 /*M! , secrets.s = 'x' */")
            .then("/*M! COMMIT */")
            .exec();
    mariadb_comment_commits_mid_step: [mysql] => q("/*M! COMMIT */").exec();
    mariadb_comment_commits_after_a_select: [mysql] => q("SELECT 1 /*M! ; COMMIT */");
    mysql_comment_commits_mid_step: [mysql] => q("/*!COMMIT*/").exec();
    mysql_versioned_comment_commits_mid_step: [mysql] => q("/*!50000 COMMIT */").exec();
    mariadb_versioned_comment_commits_mid_step: [mysql] => q("/*M!100000 COMMIT */").exec();
    /// Issue 13: rewrote `dmig_migrations` (committed, so it would stay).
    mariadb_versioned_comment_writes_the_ledger: [mysql] =>
        q("UPDATE notes /*M!100000 , dmig_migrations */ SET notes.step = 1 /*M!100000 , dmig_migrations.sha256 = 'pwned' */")
            .then("/*M!100000 COMMIT */")
            .exec();
    mysql_versioned_comment_writes_the_ledger: [mysql] =>
        q("UPDATE notes /*!50000 , dmig_runs */ SET notes.step = 1 /*!50000 , dmig_runs.host_version = 'pwned' */")
            .then("/*!50000 COMMIT */")
            .exec();
    mariadb_comment_writes_a_server_file: [mysql] =>
        q("SELECT 'pwned' /*M! INTO OUTFILE '{out}' */");
    mariadb_comment_reads_a_server_file: [mysql] =>
        q("SELECT /*M! CONVERT(LOAD_FILE('{canary}') USING utf8mb4), */ 1");
    mariadb_comment_changes_the_session: [mysql] =>
        q("/*M! SET SESSION max_statement_time = 0 */").exec();
    mariadb_comment_hides_a_statement_prefix: [mysql] =>
        q("/*M! SET STATEMENT max_statement_time = 0 FOR */ SELECT 1");

    // -- 1. Comment syntaxes per database.

    hash_comment_ends_at_the_line: [mysql] =>
        q("SELECT 1 # '\n, (SELECT s FROM secrets LIMIT 1) AS leak -- '");
    double_dash_without_a_space_is_no_comment: [mysql] =>
        q("SELECT 2 --1, (SELECT s FROM secrets LIMIT 1) AS leak");
    /// A no-break space is whitespace to Rust, a letter to MySQL: `--` then
    /// U+00A0 is two minus signs and a column named U+00A0.
    double_dash_and_a_no_break_space_is_no_comment: [mysql] =>
        q("SELECT 2 --\u{a0}, (SELECT s FROM secrets LIMIT 1) AS leak\nFROM (SELECT 1 AS `\u{a0}`) AS t");
    double_dash_comment_ends_at_a_carriage_return: [postgres] =>
        q("SELECT 1 -- x\r, (SELECT s FROM secrets LIMIT 1) AS leak");
    nested_comment_ends_at_its_own_end: [postgres] =>
        q("SELECT 1 /* /* */ */ , (SELECT s FROM secrets LIMIT 1) AS leak");
    unnested_comment_ends_at_the_first_end: [sqlite, mysql] =>
        q("SELECT 1 /* /* */ , (SELECT s FROM secrets LIMIT 1) AS leak -- */");

    // -- 1. String literal rules.

    /// MySQL: `\'` does not end the string, so the second quote does, and
    /// the subquery is code.
    backslash_escapes_a_quote: [mysql] =>
        q(r"SELECT 'a\' , ' , (SELECT s FROM secrets LIMIT 1) AS leak -- '");
    backslash_escapes_a_double_quote: [mysql] =>
        q(r#"SELECT "a\" , " , (SELECT s FROM secrets LIMIT 1) AS leak -- ""#);
    backslash_escapes_in_a_national_string: [mysql] =>
        q(r"SELECT N'a\' , ' , (SELECT s FROM secrets LIMIT 1) AS leak -- '");
    backslash_escapes_after_an_introducer: [mysql] =>
        q(r"SELECT _utf8mb4'a\' , ' , (SELECT s FROM secrets LIMIT 1) AS leak -- '");
    /// SQLite and PostgreSQL: a backslash is an ordinary character.
    backslash_is_no_escape: [sqlite, postgres] =>
        q(r"SELECT 'a\' , (SELECT s FROM secrets LIMIT 1) AS leak -- '");
    escape_string_escapes_a_quote: [postgres] =>
        q(r"SELECT E'a\' , ' , (SELECT s FROM secrets LIMIT 1) AS leak -- '");
    lowercase_escape_string_escapes_a_quote: [postgres] =>
        q(r"SELECT e'a\' , ' , (SELECT s FROM secrets LIMIT 1) AS leak -- '");
    unicode_string_then_a_read: [postgres] =>
        q(r"SELECT U&'\005c' , (SELECT s FROM secrets LIMIT 1) AS leak");
    unicode_identifier_spells_a_table: [postgres] =>
        q(r#"SELECT s FROM U&"\0073ecrets""#);
    unicode_identifier_with_uescape_spells_a_table: [postgres] =>
        q(r#"SELECT s FROM U&"!0073ecrets" UESCAPE '!'"#);
    dollar_quote_hides_a_quote: [postgres] =>
        q("SELECT $a$ ' $a$ , (SELECT s FROM secrets LIMIT 1) AS leak -- '");
    anonymous_dollar_quote_hides_a_quote: [postgres] =>
        q("SELECT $$ ' $$ , (SELECT s FROM secrets LIMIT 1) AS leak -- '");
    dollar_quote_tags_are_case_sensitive: [postgres] =>
        q("SELECT $a$ $A$ ' $a$ , (SELECT s FROM secrets LIMIT 1) AS leak -- '");
    dollar_inside_an_identifier_is_no_quote: [postgres] =>
        q("SELECT 1 AS a$x$ , (SELECT s FROM secrets LIMIT 1) AS leak -- $x$");

    // -- 1. Identifier quoting, case folding, `TABLE name`, schemas.

    /// PostgreSQL keeps `"Users"` apart from `users`: another table.
    quoted_case_variant_is_another_table: [postgres] => q(r#"SELECT name FROM "Users""#);
    quoted_case_variant_is_another_table_to_write: [postgres] =>
        q(r#"INSERT INTO "Notes" (step) VALUES (9)"#).exec();
    /// MySQL on Linux keeps `Users` apart from `users`: another table.
    case_variant_is_another_table: [mysql] => q("SELECT name FROM Users");
    backticked_case_variant_is_another_table_to_write: [mysql] =>
        q("INSERT INTO `Notes` (step) VALUES (9)").exec();
    double_quoted_table: [sqlite, postgres] => q(r#"SELECT s FROM "secrets""#);
    uppercase_table: [sqlite, postgres, mysql] => q("SELECT s FROM SECRETS");
    quoted_capitalized_table: [postgres] => q(r#"SELECT s FROM "Secrets""#);
    quoted_uppercase_table: [postgres] => q(r#"SELECT s FROM "SECRETS""#);
    backticked_table: [sqlite, mysql] => q("SELECT s FROM `secrets`");
    bracketed_table: [sqlite] => q("SELECT s FROM [secrets]");
    /// SQLite reads a string where a table name belongs as the name.
    string_as_a_table_name: [sqlite] => q("SELECT s FROM 'secrets'");
    table_short_form: [postgres, mysql] => q("TABLE secrets");
    table_short_form_in_a_union: [postgres] => q("TABLE secrets UNION ALL SELECT name FROM users");
    table_short_form_in_a_subquery: [postgres] => q("SELECT (TABLE secrets LIMIT 1)");
    schema_qualified_table_postgres: [postgres] => q("SELECT s FROM public.secrets");
    schema_qualified_table_mysql: [mysql] => q("SELECT s FROM {db}.secrets");
    schema_qualified_table_sqlite: [sqlite] => q("SELECT s FROM main.secrets");
    other_schema_write: [postgres] => q("INSERT INTO other.notes (step) VALUES (9)").exec();

    // -- 1. CTE scoping.

    /// The CTE covers only its own subquery; the second one reads the table.
    cte_in_a_subquery_does_not_cover_its_sibling: [sqlite, postgres, mysql] =>
        q("SELECT (WITH secrets AS (SELECT 1 AS s) SELECT s FROM secrets), (SELECT s FROM secrets LIMIT 1) FROM users");
    cte_in_a_subquery_does_not_cover_its_sibling_first: [sqlite, postgres, mysql] =>
        q("SELECT (SELECT s FROM secrets LIMIT 1), (WITH secrets AS (SELECT 1 AS s) SELECT s FROM secrets) FROM users");
    cte_in_a_union_branch_does_not_cover_the_other: [sqlite, postgres, mysql] =>
        q("SELECT s FROM secrets UNION ALL SELECT * FROM (WITH secrets AS (SELECT 'x' AS s) SELECT s FROM secrets) AS t");
    /// A non-recursive CTE's body names the real table (SQLite refuses to
    /// run this; see the report).
    non_recursive_cte_reads_the_table_it_shadows: [postgres, mysql] =>
        q("WITH secrets AS (SELECT s FROM secrets) SELECT * FROM secrets");
    /// An earlier CTE cannot see a later one: `a` reads the real table
    /// (SQLite resolves it to the later CTE, so only the servers).
    cte_before_its_namesake_reads_the_table: [postgres, mysql] =>
        q("WITH a AS (SELECT s FROM secrets), secrets AS (SELECT 'x' AS s) SELECT * FROM a");

    // -- 2. PostgreSQL functions.

    /// Issue 13, verbatim: read an undeclared table.
    query_to_xml_reads_a_table: [postgres] =>
        q("SELECT query_to_xml('select * from secrets', true, true, '')::text");
    table_to_xml_reads_a_table: [postgres] =>
        q("SELECT table_to_xml('secrets', true, true, '')::text");
    ts_stat_runs_a_query: [postgres] =>
        q("SELECT (ts_stat('SELECT to_tsvector(''simple'', s) FROM secrets')).word");
    /// Issue 13, verbatim.
    pg_read_file_reads_a_server_file: [postgres] => q("SELECT pg_read_file('/etc/hostname')");
    pg_read_file_reads_the_canary: [postgres] => q("SELECT pg_read_file('{canary}')");
    pg_read_binary_file_reads_the_canary: [postgres] =>
        q("SELECT convert_from(pg_read_binary_file('{canary}'), 'UTF8')");
    pg_stat_file_reads_server_metadata: [postgres] => q("SELECT pg_stat_file('{canary}')::text");
    /// Issue 13, verbatim.
    pg_ls_dir_lists_a_server_directory: [postgres] => q("SELECT pg_ls_dir('/')");
    pg_ls_dir_as_a_table: [postgres] => q("SELECT * FROM pg_ls_dir('/')");
    lo_import_reads_a_server_file: [postgres] =>
        q("SELECT lo_import('{canary}', 4242)::text")
            .then("SELECT convert_from(lo_get(4242), 'UTF8')");
    lo_export_writes_a_server_file: [postgres] =>
        q("SELECT lo_from_bytea(4243, 'pwned'::bytea)::text")
            .then("SELECT lo_export(4243, '{out}')::text");
    /// Functional notation: PostgreSQL reads a field that is not a column
    /// as a call of the function of that name, with no call in the tree.
    functional_notation_reads_the_canary: [postgres] =>
        q("SELECT ('{canary}'::text).pg_read_file");
    functional_notation_on_a_row_calls_an_undeclared_function: [postgres] =>
        q("SELECT u.secret_of FROM users u");
    functional_notation_without_an_alias: [postgres] => q("SELECT users.secret_of FROM users");
    /// `step` is a column of notes but not of users: on `u` it is a call
    /// of the function step(users).
    functional_notation_named_like_another_tables_column: [postgres] =>
        q("SELECT u.step FROM users u JOIN notes n ON true");
    /// An alias's column list renames `step`: on `x` it is a call.
    functional_notation_through_an_alias_column_list: [postgres] =>
        q("SELECT x.step::text FROM notes AS x(a)");
    functional_notation_on_a_subquery: [postgres] =>
        q("SELECT (s.u).secret_of FROM (SELECT u FROM users u) s");
    do_block_runs_code: [postgres] => q("DO $$BEGIN PERFORM pg_sleep(0); END$$").exec();
    prepare_runs_a_named_statement: [postgres] =>
        q("PREPARE p AS SELECT s FROM secrets").then("EXECUTE p").exec();
    copy_writes_a_server_file: [postgres] => q("COPY (SELECT 1) TO '{out}'").exec();
    copy_runs_a_server_program: [postgres] => q("COPY (SELECT 1) TO PROGRAM 'touch {out}'").exec();
    /// Issue 13: redirected an unqualified write to another schema.
    set_config_search_path_redirects_a_write: [postgres] =>
        q("SELECT set_config('search_path', 'other', true)")
            .then("INSERT INTO notes (step) VALUES (7)")
            .exec();
    /// The same path change makes `users` mean `other.users`.
    set_config_search_path_redirects_a_read: [postgres] =>
        q("SELECT set_config('search_path', 'other', true)")
            .then("SELECT name FROM users ORDER BY id");
    qualified_set_config_redirects_a_write: [postgres] =>
        q("SELECT pg_catalog.set_config('search_path', 'other', true)")
            .then("INSERT INTO notes (step) VALUES (7)")
            .exec();
    quoted_set_config_redirects_a_write: [postgres] =>
        q(r#"SELECT "set_config"('search_path', 'other', true)"#)
            .then("INSERT INTO notes (step) VALUES (7)")
            .exec();
    /// Issue 15's attack: `pg_settings` writes through `set_config`, so an
    /// UPDATE of it turned `standard_conforming_strings` off, on which the
    /// host's literals relied (and the gate's renderings still do). Refused
    /// in every mode, as `SET` is.
    pg_settings_update_changes_a_session_setting: [postgres] =>
        q("UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'")
            .raw()
            .exec();
    pg_settings_qualified_update: [postgres] =>
        q("UPDATE pg_catalog.pg_settings SET setting = '0' WHERE name = 'statement_timeout'")
            .raw()
            .exec();
    /// Issue 13: the time limit depended on a setting the guest can change.
    set_config_lifts_the_statement_timeout: [postgres] =>
        q("SELECT set_config('statement_timeout', '0', false)")
            .then("SELECT pg_sleep(20)::text")
            .timeout("3s");
    /// Issue 13: killed the host's lock connection.
    pg_terminate_backend_over_the_database: [postgres] =>
        q("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()");
    pg_terminate_backend_without_naming_a_table: [postgres] =>
        q("WITH b AS (SELECT pg_stat_get_backend_idset() AS id) \
           SELECT count(pg_terminate_backend(pg_stat_get_backend_pid(id)))::text FROM b \
           WHERE pg_stat_get_backend_dbid(id) = (SELECT pg_stat_get_backend_dbid(id) FROM b WHERE pg_stat_get_backend_pid(id) = pg_backend_pid()) \
           AND pg_stat_get_backend_pid(id) <> pg_backend_pid()");
    pg_cancel_backend_signals_a_backend: [postgres] =>
        q("SELECT pg_cancel_backend(pg_backend_pid() + 100000)::text");
    pg_reload_conf_signals_the_server: [postgres] => q("SELECT pg_reload_conf()::text");
    pg_sleep_sleeps: [postgres] => q("SELECT pg_sleep(0.1)::text");
    pg_sleep_for_sleeps: [postgres] => q("SELECT pg_sleep_for('100 milliseconds')::text");
    pg_advisory_lock_takes_a_session_lock: [postgres] => q("SELECT pg_advisory_lock(4242)::text");
    pg_advisory_xact_lock_takes_a_lock: [postgres] => q("SELECT pg_try_advisory_xact_lock(4242)::text");
    pg_advisory_unlock_all_releases_locks: [postgres] => q("SELECT pg_advisory_unlock_all()::text");
    dblink_reaches_another_database: [postgres] =>
        q("SELECT dblink_exec('dbname=postgres', 'SELECT 1')");
    pg_notify_signals_other_sessions: [postgres] => q("SELECT pg_notify('dmig', 'hello')::text");
    nextval_advances_an_undeclared_sequence: [postgres] => q("SELECT nextval('secrets_seq')::text");
    setval_sets_an_undeclared_sequence: [postgres] => q("SELECT setval('secrets_seq', 1000)::text");

    // -- 2. MySQL functions and statements.

    /// Issue 13: read a server file.
    load_file_reads_a_server_file: [mysql] => q("SELECT LOAD_FILE('/etc/hostname')");
    load_file_reads_the_canary: [mysql] =>
        q("SELECT CONVERT(LOAD_FILE('{canary}') USING utf8mb4)");
    /// Issue 13: wrote a server file.
    into_outfile_writes_a_server_file: [mysql] => q("SELECT 'pwned' INTO OUTFILE '{out}'");
    into_dumpfile_writes_a_server_file: [mysql] => q("SELECT 'pwned' INTO DUMPFILE '{out}'");
    trailing_into_outfile_writes_a_server_file: [mysql] =>
        q("SELECT name FROM users LIMIT 1 INTO OUTFILE '{out}'");
    load_data_reads_a_server_file: [mysql] =>
        q("LOAD DATA INFILE '{canary}' INTO TABLE notes").exec();
    sleep_sleeps: [mysql] => q("SELECT SLEEP(0.1)");
    do_sleep_sleeps: [mysql] => q("DO SLEEP(0.1)").exec();
    get_lock_takes_a_session_lock: [mysql] => q("SELECT GET_LOCK('dmig-hostile', 0)");
    release_all_locks_releases_locks: [mysql] => q("SELECT RELEASE_ALL_LOCKS()");
    benchmark_burns_server_time: [mysql] => q("SELECT BENCHMARK(1000, MD5('x'))");
    nextval_advances_an_undeclared_mariadb_sequence: [mysql] => q("SELECT NEXTVAL(secrets_seq)");
    prepare_runs_dynamic_sql: [mysql] => q("PREPARE p FROM 'SELECT s FROM secrets'").exec();
    handler_reads_a_table: [mysql] => q("HANDLER secrets OPEN").exec();
    kill_signals_a_connection: [mysql] => q("KILL QUERY 999999").exec();
    checksum_reads_a_table: [mysql] => q("CHECKSUM TABLE secrets");

    // -- 2. Session state.

    set_search_path: [postgres] => q("SET search_path = other").exec();
    set_local_statement_timeout: [postgres] => q("SET LOCAL statement_timeout = 0").exec();
    set_config_session_setting: [postgres] =>
        q("SELECT set_config('statement_timeout', '0', false)");
    set_role: [postgres] => q("SET ROLE postgres").exec();
    reset_all: [postgres] => q("RESET ALL").exec();
    discard_all: [postgres] => q("DISCARD ALL").exec();
    set_session_variable: [mysql] => q("SET SESSION max_statement_time = 0").exec();
    set_at_at_session_variable: [mysql] => q("SET @@session.max_statement_time = 0").exec();
    set_at_at_variable: [mysql] => q("SET @@max_statement_time = 0").exec();
    set_at_at_local_variable: [mysql] => q("SET @@local.max_statement_time = 0").exec();
    set_user_variable: [mysql] => q("SET @leak = 1").exec();
    set_statement_for: [mysql] => q("SET STATEMENT max_statement_time = 0 FOR SELECT 1");
    /// Turns backslashes into ordinary characters for one statement, so the
    /// rest reads as code the gate took for a string.
    set_statement_changes_string_rules: [mysql] =>
        q(r"SET STATEMENT sql_mode = 'NO_BACKSLASH_ESCAPES' FOR SELECT 'a\' , (SELECT s FROM secrets LIMIT 1) AS leak -- '");
    set_names_changes_the_character_set: [mysql] => q("SET NAMES gbk").exec();
    set_transaction_isolation: [mysql] =>
        q("SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED").exec();
    /// A user variable outlives the step on the connection (see the report).
    user_variable_assignment: [mysql] => q("SELECT @leak := (SELECT name FROM users LIMIT 1)");
    select_into_a_user_variable: [mysql] => q("SELECT name INTO @leak FROM users LIMIT 1");
    use_another_database: [mysql] => q("USE mysql").exec();
    commit_mid_step: [sqlite, postgres, mysql] => q("COMMIT").exec();
    lock_table_postgres: [postgres] => q("LOCK TABLE secrets IN ACCESS EXCLUSIVE MODE").exec();
    /// MySQL's LOCK TABLES also commits the step's transaction.
    lock_tables_mysql: [mysql] => q("LOCK TABLES secrets READ").exec();
    vacuum_into_writes_a_file: [sqlite] => q("VACUUM INTO '{out}'").exec();
    pragma_changes_a_setting: [sqlite] => q("PRAGMA foreign_keys = OFF").exec();
    attach_creates_a_file: [sqlite] => q("ATTACH DATABASE '{out}' AS other").exec();
    load_extension_loads_code: [sqlite] => q("SELECT load_extension('{out}')");

    // -- The ledger, every way it can be named, every mode.

    ledger: [sqlite, postgres, mysql] => q("SELECT * FROM dmig_runs");
    ledger_uppercase: [sqlite, postgres, mysql] => q("SELECT * FROM DMIG_RUNS");
    ledger_mixed_case: [sqlite, postgres, mysql] => q("SELECT * FROM Dmig_Migrations");
    ledger_double_quoted: [sqlite, postgres] => q(r#"SELECT * FROM "dmig_runs""#);
    ledger_backticked: [sqlite, mysql] => q("SELECT * FROM `dmig_runs`");
    ledger_bracketed: [sqlite] => q("SELECT * FROM [dmig_runs]");
    ledger_string_as_a_table_name: [sqlite] => q("SELECT * FROM 'dmig_runs'");
    ledger_schema_qualified_postgres: [postgres] => q("SELECT * FROM public.dmig_runs");
    ledger_schema_qualified_quoted_postgres: [postgres] => q(r#"SELECT * FROM "public"."dmig_runs""#);
    ledger_schema_qualified_mysql: [mysql] => q("SELECT * FROM `{db}`.`dmig_runs`");
    ledger_schema_qualified_sqlite: [sqlite] => q("SELECT * FROM main.dmig_runs");
    ledger_unicode_escape: [postgres] => q(r#"SELECT * FROM U&"dmig\005fruns""#);
    ledger_table_short_form: [postgres] => q("TABLE dmig_runs");
    ledger_in_a_cte: [sqlite, postgres, mysql] =>
        q("WITH r AS (SELECT * FROM dmig_runs) SELECT count(*) FROM r");
    ledger_in_a_cte_named_after_it: [postgres, mysql] =>
        q("WITH dmig_runs AS (SELECT * FROM dmig_runs) SELECT count(*) FROM dmig_runs");
    ledger_in_a_subquery: [sqlite, postgres, mysql] =>
        q("SELECT (SELECT count(*) FROM dmig_migrations)");
    ledger_in_a_function_argument: [postgres] =>
        q("SELECT query_to_xml('select * from dmig_runs', true, true, '')::text");
    ledger_update: [sqlite, postgres, mysql] =>
        q("UPDATE dmig_migrations SET description = 'pwned'").exec();
    ledger_delete: [sqlite, postgres, mysql] => q("DELETE FROM dmig_locks").exec();
    ledger_insert: [sqlite, postgres, mysql] =>
        q("INSERT INTO dmig_locks (migration, holder, host, pid, acquired_at, expires_at) VALUES ('x', 'x', 'x', 1, 'x', 'x')").exec();
    ledger_multi_table_update: [mysql] =>
        q("UPDATE notes, dmig_runs SET notes.step = 1, dmig_runs.status = 'succeeded'").exec();
    /// The ledger is refused with raw SQL declared too.
    raw_ledger: [sqlite, postgres, mysql] => q("SELECT * FROM dmig_runs").raw();
    raw_ledger_update: [sqlite, postgres, mysql] =>
        q("UPDATE dmig_migrations SET description = 'pwned'").raw().exec();
    /// Issue 13: with raw SQL, an unparseable statement that writes the ledger
    /// was passed through.
    raw_unparseable_ledger_insert: [postgres] =>
        q("INSERT INTO dmig_runs (id, migration, direction, status, started_at, host_version, sha256) \
           OVERRIDING SYSTEM VALUE VALUES (99, 'sql-probe-raw', 'up', 'succeeded', 'x', 'x', 'x')")
            .raw()
            .exec();
    raw_unicode_escape_ledger_update: [postgres] =>
        q(r#"UPDATE U&"dmig\005fmigrations" SET description = 'pwned'"#).raw().exec();
    raw_unicode_escape_ledger_read: [postgres] => q(r#"SELECT * FROM U&"dmig\005fruns""#).raw();
    raw_ledger_table_short_form: [postgres] => q("TABLE dmig_runs").raw();
    raw_ledger_in_a_function_argument: [postgres] =>
        q("SELECT query_to_xml('select * from dmig_runs', true, true, '')::text").raw();
    /// Dynamic SQL that never spells the ledger's name: no reading of the
    /// text can see it, so the host guards the ledger by its contents.
    raw_dynamic_sql_writes_the_ledger_without_naming_it: [postgres] =>
        q("DO $$ BEGIN EXECUTE 'UPDATE ' || 'dm' || 'ig_migrations SET sha256 = ''pwned'''; END $$")
            .raw()
            .exec_and_finish();
    raw_unparseable_ledger_update_sqlite: [sqlite] =>
        q("UPDATE dmig_migrations INDEXED BY sqlite_autoindex_dmig_migrations_1 SET description = 'pwned'")
            .raw()
            .exec();
    raw_unparseable_ledger_update_mysql: [mysql] =>
        q("UPDATE LOW_PRIORITY IGNORE dmig_migrations SET description = 'pwned'").raw().exec();
    raw_unparseable_ledger_delete_mysql: [mysql] =>
        q("DELETE QUICK IGNORE FROM dmig_locks").raw().exec();
    raw_unparseable_ledger_handler_mysql: [mysql] => q("HANDLER dmig_runs OPEN").raw().exec();
    raw_mariadb_comment_writes_the_ledger: [mysql] =>
        q("UPDATE notes /*M! , dmig_migrations */ SET notes.step = 1 /*M! , dmig_migrations.description = 'pwned' */")
            .raw()
            .exec();

    // -- 3. The time limit is the host's (raw SQL: the functions run).

    /// Issue 13: recorded as a timeout, but the process waited the full 20 s.
    raw_set_config_then_sleep_past_the_limit: [postgres] =>
        q("SELECT set_config('statement_timeout', '0', false)")
            .then("SELECT pg_sleep(20)::text")
            .raw()
            .limit("3s");
    /// Issue 13: `execute_many` of a sleep with many empty sets was unbounded.
    raw_sleep_in_execute_many: [postgres] => q("SELECT pg_sleep(1)").raw().many(1000).limit("3s");
    raw_mysql_sleep_in_execute_many: [mysql] => q("SELECT SLEEP(1)").raw().many(1000).limit("3s");
    /// Plain SQL inside the manifest, each run shorter than the server's
    /// statement timeout, many times over in one call.
    slow_query_in_execute_many: [sqlite, postgres, mysql] =>
        q("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 1000) \
           SELECT count(*) FROM r a, r b WHERE a.i + b.i > 0")
            .many(1000)
            .limit("2s");

    // -- 4. No statement under the caps crashes the host.

    /// Issue 13: killed the host (stack overflow) and left the run `running`.
    long_plus_chain: [sqlite, postgres, mysql] => built(plus_chain);
    deep_parentheses: [sqlite, postgres, mysql] => built(deep_parentheses);
    long_or_chain: [sqlite, postgres, mysql] => built(or_chain);
    long_unary_chain: [sqlite, postgres, mysql] => built(unary_chain);
    deep_subqueries: [sqlite, postgres, mysql] => built(subquery_nest);

    // -- Found by the attack review of the rebuilt gate (branch `attack`).

    /// EXPLAIN ANALYZE runs the statement it explains, and EXECUTE inside it
    /// is not refused by name: it runs a statement sqlx prepared on the
    /// host's own connection (`sqlx_s_14` is the host's
    /// `UPDATE dmig_migrations SET sha256 = $1, description = $2, state = $3
    /// WHERE name = $4`), so the ledger is rewritten without naming it.
    explain_analyze_execute_runs_a_host_ledger_statement: [postgres] =>
        q("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE sqlx_s_14('pwned', 'pwned', 'applied', 'sql-probe')");
    /// The host's `SELECT … FROM dmig_runs WHERE migration = $1 …`
    /// (`sqlx_s_13`) copied into a temporary table named like a declared one,
    /// which the next statement reads: the ledger, read without raw SQL.
    explain_analyze_create_table_as_execute_reads_the_ledger: [postgres] =>
        q("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) CREATE TEMP TABLE users AS EXECUTE sqlx_s_13('sql-probe')")
            .then("SELECT sha256 FROM users");
    /// The host's `DELETE FROM dmig_locks WHERE migration = $1`: drops the
    /// run's own lock row mid-run.
    explain_analyze_execute_deletes_the_host_lock: [postgres] =>
        q("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE sqlx_s_10('sql-probe')");
    raw_explain_analyze_execute_runs_a_host_ledger_statement: [postgres] =>
        q("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE sqlx_s_14('pwned', 'pwned', 'applied', 'sql-probe-raw')").raw();
    /// EXPLAIN ANALYZE CREATE TABLE AS creates the table: DDL without
    /// `.ddl()`, and a temporary `users` shadows the real one for the rest
    /// of the connection (session state), so the second statement reads the
    /// fake table.
    explain_analyze_create_temp_table_shadows_a_table: [postgres] =>
        q("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) CREATE TEMP TABLE users AS SELECT 1::bigint AS id, 'fake' AS name")
            .then("SELECT name FROM users");
    /// FOR SHARE / FOR KEY SHARE take row locks on a table declared only as
    /// read (other sessions' UPDATE/DELETE of those rows block until the
    /// step ends); MySQL's FOR SHARE already counts as a write.
    select_for_share_locks_a_read_only_table: [postgres] => q("SELECT id FROM users FOR SHARE");
    select_for_key_share_locks_a_read_only_table: [postgres] => q("SELECT id FROM users FOR KEY SHARE");
    /// Column notation `x.f` calls `f(x)` with no FuncCall node in the tree:
    /// an undeclared function runs.
    /// Raw SQL: the ledger rule reads the text for `dmig_`, but dynamic SQL
    /// builds the name at run time.
    raw_do_block_concatenates_the_ledger_name: [postgres] =>
        q("DO $$BEGIN EXECUTE 'UPDATE dm' || 'ig_migrations SET description = ''pwned'''; END$$")
            .raw()
            .exec_and_finish();
    /// A documented limit of raw SQL: dynamic SQL can *read* the ledger
    /// without naming it (no reading of the text can see that); it cannot
    /// change it (the digest above), and this checks the ledger is intact.
    raw_query_to_xml_concatenates_the_ledger_name: [postgres] =>
        q("SELECT query_to_xml('select * from dm' || 'ig_runs', true, true, '')::text").raw().runs();
    /// Raw SQL: a DO block runs the statement kinds refused by name in every
    /// mode (here SET, redirecting the next write to `other.notes`).
    /// A documented limit of raw SQL: dynamic SQL runs what it builds,
    /// transaction-local settings included; the step still rolls back whole
    /// (the suite checks that nothing stayed).
    raw_do_block_runs_a_refused_statement: [postgres] =>
        q("DO $$BEGIN EXECUTE 'SET LOCAL search_path = other'; END$$")
            .then("INSERT INTO notes (step) VALUES (7)")
            .raw()
            .exec()
            .runs();

    /// MySQL's multi-table DELETE names aliases, not tables: `notes` here is
    /// `users`, declared read-only, and its row is deleted.
    delete_target_alias_writes_a_read_only_table: [mysql] =>
        q("DELETE notes FROM users AS notes WHERE notes.id = 2").exec();
    delete_using_alias_writes_a_read_only_table: [mysql] =>
        q("DELETE FROM notes USING users AS notes WHERE notes.id = 2").exec();
    /// The gate lets every CTE of a WITH RECURSIVE see every other one.
    /// MySQL 8 does not ("a CTE can refer to CTEs defined earlier in the same
    /// WITH clause, but not those defined later"), so there `secrets` in
    /// `a` is the table; MariaDB (this suite's server) and the other
    /// databases resolve it to the later CTE. Refusing is right on both.
    recursive_cte_before_its_namesake_reads_the_table_on_mysql_8: [mysql] =>
        q("WITH RECURSIVE a AS (SELECT s FROM secrets), secrets AS (SELECT 'x' AS s) SELECT * FROM a");
    /// Every SHOW sqlparser does not know is read as a SHOW of nothing and
    /// admitted: other sessions' transactions and statements, grants, an
    /// undeclared table's indexes and statistics.
    show_engine_status_reads_other_sessions: [mysql] => q("SHOW ENGINE INNODB STATUS");
    show_index_reads_an_undeclared_table: [mysql] => q("SHOW INDEX FROM secrets");
    show_table_status_reads_every_table: [mysql] => q("SHOW TABLE STATUS");
    show_grants: [mysql] => q("SHOW GRANTS");
    /// LAST_INSERT_ID(expr) sets the connection's last insert id, session
    /// state that outlives the step; it is on the pure list.
    last_insert_id_sets_session_state: [mysql] => q("SELECT LAST_INSERT_ID(42)");
    /// Raw SQL: CREATE PROCEDURE commits the step's transaction implicitly
    /// (so step 2's row stays), and its one-statement body runs dynamic SQL
    /// that names the ledger only by concatenation; CALL then rewrites the
    /// ledger outside any transaction.
    raw_procedure_commits_and_reaches_the_ledger: [mysql] =>
        q("CREATE PROCEDURE probe_leak() EXECUTE IMMEDIATE CONCAT('UPDATE dm', 'ig_migrations SET description = ''pwned''')")
            .then("CALL probe_leak()")
            .raw()
            .exec();
    raw_implicit_commit_ends_the_transaction: [mysql] =>
        q("CREATE PROCEDURE probe_commit() SELECT 1").raw().exec();

    /// SQLite's OR ROLLBACK conflict clause rolls back the host's step
    /// transaction on a constraint failure; the guest sees an ordinary
    /// database error, and whatever it sends next runs in autocommit.
    insert_or_rollback_ends_the_transaction: [sqlite] =>
        q("INSERT OR ROLLBACK INTO notes (step) VALUES (NULL)").exec();
    /// The same, then a write that the step's rollback no longer undoes.
    insert_or_rollback_then_a_write_that_stays: [sqlite] =>
        q("INSERT OR ROLLBACK INTO notes (step) VALUES (NULL)")
            .then("INSERT INTO notes (step) VALUES (9)")
            .exec()
            .keep_going();
    update_or_rollback_ends_the_transaction: [sqlite] =>
        q("UPDATE OR ROLLBACK notes SET step = NULL").exec();

    // -- The control group: inside the manifest, these keep running.

    control_select: [sqlite, postgres, mysql] => q("SELECT id, name FROM users").runs();
    control_insert: [sqlite, postgres, mysql] => q("INSERT INTO notes (step) VALUES (3)").exec().runs();
    control_insert_many: [sqlite, postgres, mysql] =>
        q("INSERT INTO notes (step) VALUES (4)").many(3).runs();
    control_update_and_delete: [sqlite, postgres, mysql] =>
        q("UPDATE notes SET step = step + 1 WHERE step > 100")
            .then("DELETE FROM notes WHERE step > 100")
            .exec()
            .runs();
    control_cte: [sqlite, postgres, mysql] =>
        q("WITH recent AS (SELECT id FROM users WHERE id > 0) SELECT count(*) FROM recent").runs();
    /// The CTE shadows `secrets` for the whole statement: no real table read.
    control_cte_named_like_a_table: [sqlite, postgres, mysql] =>
        q("WITH secrets AS (SELECT 1 AS s) SELECT (SELECT s FROM secrets) FROM users").runs();
    control_string_functions: [sqlite, postgres, mysql] =>
        q("SELECT upper(name), lower(name), length(name), substr(name, 1, 2), replace(name, 'a', 'b'), trim(name) FROM users").runs();
    control_coalesce: [sqlite, postgres, mysql] =>
        q("SELECT coalesce(NULL, name), nullif(id, 0) FROM users").runs();
    control_aggregates: [sqlite, postgres, mysql] =>
        q("SELECT count(*), min(id), max(id), sum(id) FROM users").runs();
    control_window_function: [sqlite, postgres, mysql] =>
        q("SELECT id, row_number() OVER (ORDER BY id) FROM users").runs();
    control_cast: [sqlite, postgres, mysql] => q("SELECT CAST(id AS DECIMAL(10, 2)) FROM users").runs();
    control_comments: [sqlite, postgres, mysql] =>
        q("SELECT id /* the key */ FROM users -- and a note").runs();
    control_string_with_keywords: [sqlite, postgres, mysql] =>
        q("SELECT 'COMMIT; DROP TABLE secrets' FROM users").runs();
    control_json_sqlite: [sqlite] =>
        q("SELECT json_object('id', id, 'name', name), json_extract('{\"a\": 1}', '$.a') FROM users").runs();
    control_json_postgres: [postgres] =>
        q("SELECT json_build_object('id', id, 'name', name)::text, '{\"a\": 1}'::jsonb ->> 'a' FROM users").runs();
    control_json_mysql: [mysql] =>
        q("SELECT JSON_OBJECT('id', id, 'name', name), JSON_EXTRACT('{\"a\": 1}', '$.a') FROM users").runs();
    /// `name` is also a function (name(text)): a column all the same.
    /// `step` is a function and a column of notes: a column.
    control_column_named_like_a_function_postgres: [postgres] =>
        q("SELECT n.step, s.step FROM notes n, (SELECT step FROM notes) s").runs();
    control_qualified_columns_postgres: [postgres] =>
        q("SELECT u.id, u.name, users.name FROM users u, users").runs();
    control_cast_postgres: [postgres] => q("SELECT id::text, now()::date::text FROM users").runs();
    control_dates: [sqlite, postgres, mysql] => q("SELECT CURRENT_DATE, CURRENT_TIMESTAMP").runs();
}

// ---------------------------------------------------------------------------
// Running one case
// ---------------------------------------------------------------------------

/// Runs case `name` on `kind` and checks everything it must leave behind.
fn run_case(name: &str, kind: Kind) {
    let (_, kinds, case) = CASES
        .iter()
        .find(|(n, ..)| *n == name)
        .unwrap_or_else(|| panic!("no case {name}"));
    assert!(kinds.contains(&kind), "{name} does not concern {kind:?}");
    let dir = TestDir::new(name);
    let Some(test_db) = TestDb::new(kind, &dir, name) else {
        return;
    };
    let mut db = test_db.open();
    setup(&mut db, kind);
    let files = ServerFiles::new(name, kind);
    let statements: Vec<String> = case
        .sql
        .iter()
        .flatten()
        .map(|sql| {
            let text = match sql {
                Sql::Text(text) => (*text).to_owned(),
                Sql::Built(build) => build(),
            };
            text.replace("{canary}", &files.canary.display().to_string())
                .replace("{out}", &files.out.display().to_string())
                .replace("{db}", database_name(&test_db))
        })
        .collect();
    let before = Protected::read(&mut db, kind);
    let control = control_ledger(kind, case.guest);

    let run = run_host(&dir, &test_db, case, &statements);
    let mut problems = Vec::new();
    let mut check = |what: &str, f: &mut dyn FnMut() -> Result<(), String>| match catch_unwind(
        AssertUnwindSafe(&mut *f),
    ) {
        Ok(Ok(())) => {}
        Ok(Err(problem)) => problems.push(format!("{what}: {problem}")),
        Err(panic) => problems.push(format!("{what}: {}", panic_text(&panic))),
    };

    check("exit code", &mut || run.check_code(case.expect.code()));
    if case.expect == Expect::Runs {
        check("the statements ran", &mut || {
            expect(
                run.stderr.contains("every statement ran: "),
                "stderr does not say every statement ran",
            )
        });
    }
    check("notes holds exactly the row of step 1", &mut || {
        let notes: Vec<(i64,)> = db.rows("SELECT step FROM notes ORDER BY step");
        same(&notes[..], &[(1,)][..])
    });
    check("nothing else the test made changed", &mut || {
        same(&Protected::read(&mut db, kind), &before)
    });
    check("no secret reached the output", &mut || {
        expect(
            !run.stdout.contains(SECRET) && !run.stderr.contains(SECRET),
            "the secret appears in the output",
        )
    });
    check("no server file was read", &mut || {
        let canary = &files.canary_text;
        expect(
            !run.stdout.contains(canary.as_str()) && !run.stderr.contains(canary.as_str()),
            "the canary file's contents appear in the output",
        )
    });
    check("no server file was created", &mut || {
        expect(
            !files.out.exists(),
            &format!("{} exists", files.out.display()),
        )
    });
    check(
        "the run is recorded failed with a one-line cause",
        &mut || {
            let runs: Vec<(String, Option<String>)> =
                db.rows("SELECT status, error FROM dmig_runs");
            let [(status, error)] = runs.as_slice() else {
                return Err(format!("expected one run, found {runs:?}"));
            };
            let error = error.as_deref().unwrap_or("");
            expect(status == "failed", &format!("status {status}"))?;
            expect(!error.is_empty(), "no cause recorded")?;
            expect(
                !error.contains(['\n', '\r']),
                &format!("the cause spans lines: {error:?}"),
            )?;
            expect(
                !error.contains(SECRET) && !error.contains(files.canary_text.as_str()),
                "the cause holds the secret or the canary",
            )?;
            expect(
                run.stderr.contains(&format!("(run 1, cursor 1): {error}")),
                &format!("stderr does not show the recorded cause {error:?}"),
            )
        },
    );
    check("the ledger is what a failed step leaves", &mut || {
        same(&Ledger::read(&mut db), &control)
    });
    check("the database answers its own connection", &mut || {
        same(&db.scalar::<i64>("SELECT count(*) FROM users"), &2)
    });
    let next = run_host(
        &dir,
        &test_db,
        &benign(case.guest),
        &["SELECT 1".to_owned()],
    );
    check("a second run behaves as it should", &mut || {
        next.check_code(1)?;
        expect(
            next.stderr
                .contains("every statement ran: sql returned 1 row(s)"),
            &format!("the second run's stderr: {}", tail(&next.stderr)),
        )
    });
    if let Some(limit) = case.step_timeout.filter(|_| case.expect == Expect::Limit) {
        check(
            "the process ends within the limit plus one second",
            &mut || {
                let limit = seconds(limit);
                // The second run pays the same start-up, ledger and first-step
                // costs and stops at once: what is left is the step's own time.
                let bound = Duration::from_secs_f64(limit + 1.0) + next.elapsed;
                expect(
                    run.elapsed <= bound,
                    &format!("took {:.1?}, over {bound:.1?}", run.elapsed),
                )
            },
        );
    }
    check("notes still holds only the row of step 1", &mut || {
        let notes: Vec<(i64,)> = db.rows("SELECT step FROM notes ORDER BY step");
        same(&notes[..], &[(1,)][..])
    });

    if !problems.is_empty() {
        panic!(
            "{name} on {kind:?}: {} problem(s):\n- {}\n{}",
            problems.len(),
            problems.join("\n- "),
            run.describe()
        );
    }
}

/// A harmless statement in the same guest, for the second run.
fn benign(guest: Guest) -> Case {
    Case {
        guest,
        ..q("SELECT 1").runs()
    }
}

fn expect(ok: bool, problem: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(problem.to_owned()) }
}

fn same<T: PartialEq + std::fmt::Debug + ?Sized>(found: &T, expected: &T) -> Result<(), String> {
    expect(
        found == expected,
        &format!("found {found:?}, expected {expected:?}"),
    )
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".to_owned())
}

fn seconds(text: &str) -> f64 {
    let (number, unit) = text.split_at(text.find(|c: char| c.is_alphabetic()).unwrap());
    let n: f64 = number.parse().unwrap();
    match unit {
        "ms" => n / 1000.0,
        "s" => n,
        other => panic!("unit {other}"),
    }
}

fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(2000);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    &text[start..]
}

fn database_name(test_db: &TestDb) -> &str {
    test_db.url().rsplit('/').next().unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The database each test starts from
// ---------------------------------------------------------------------------

fn setup(db: &mut Db, kind: Kind) {
    db.exec(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL);
         INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'grace');
         CREATE TABLE notes (step BIGINT NOT NULL);
         CREATE TABLE secrets (s VARCHAR(200) NOT NULL)",
    );
    db.exec(&format!("INSERT INTO secrets (s) VALUES ('{SECRET}')"));
    match kind {
        Kind::Sqlite => {}
        Kind::Postgres => {
            db.exec(&format!(
                r#"CREATE SCHEMA other;
                   CREATE TABLE other.notes (step BIGINT NOT NULL);
                   CREATE TABLE other.users (id BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL);
                   INSERT INTO other.users (id, name) VALUES (1, '{SECRET}');
                   CREATE TABLE "Users" (id BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL);
                   INSERT INTO "Users" (id, name) VALUES (1, '{SECRET}');
                   CREATE TABLE "Notes" (step BIGINT NOT NULL);
                   CREATE SEQUENCE secrets_seq;
                   CREATE FUNCTION secret_of(users) RETURNS text LANGUAGE sql
                       AS 'SELECT s FROM secrets LIMIT 1';
                   CREATE FUNCTION step(users) RETURNS text LANGUAGE sql
                       AS 'SELECT s FROM secrets LIMIT 1';
                   CREATE FUNCTION step(notes) RETURNS text LANGUAGE sql
                       AS 'SELECT s FROM secrets LIMIT 1'"#
            ));
        }
        Kind::Mysql => {
            let folding: i64 = db.scalar("SELECT CAST(@@lower_case_table_names AS SIGNED)");
            assert_eq!(
                folding, 0,
                "these tests need a MySQL/MariaDB server that keeps table names' case (lower_case_table_names = 0, the Linux default)"
            );
            db.exec(&format!(
                "CREATE TABLE Users (id BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL);
                 INSERT INTO Users (id, name) VALUES (1, '{SECRET}');
                 CREATE TABLE Notes (step BIGINT NOT NULL);
                 CREATE SEQUENCE secrets_seq NOCACHE"
            ));
        }
    }
}

/// Everything the test created that no case may change (`notes` is checked
/// on its own).
#[derive(Debug, PartialEq)]
struct Protected(Vec<String>);

impl Protected {
    fn read(db: &mut Db, kind: Kind) -> Protected {
        let mut seen = Vec::new();
        let mut column = |db: &mut Db, what: &str, sql: &str| {
            for (v,) in db.rows::<(String,)>(sql) {
                seen.push(format!("{what}: {v}"));
            }
        };
        column(db, "secrets", "SELECT s FROM secrets ORDER BY s");
        column(db, "users", "SELECT name FROM users ORDER BY id");
        match kind {
            Kind::Sqlite => {}
            Kind::Postgres => {
                column(db, "Users", r#"SELECT name FROM "Users" ORDER BY id"#);
                column(
                    db,
                    "Notes",
                    r#"SELECT CAST(step AS TEXT) FROM "Notes" ORDER BY step"#,
                );
                column(
                    db,
                    "other.users",
                    "SELECT name FROM other.users ORDER BY id",
                );
                column(
                    db,
                    "other.notes",
                    "SELECT CAST(step AS TEXT) FROM other.notes ORDER BY step",
                );
                column(
                    db,
                    "secrets_seq",
                    "SELECT CAST(last_value AS TEXT) || ' ' || CAST(is_called AS TEXT) FROM secrets_seq",
                );
            }
            Kind::Mysql => {
                column(db, "Users", "SELECT name FROM Users ORDER BY id");
                column(
                    db,
                    "Notes",
                    "SELECT CAST(step AS CHAR) FROM Notes ORDER BY step",
                );
                column(
                    db,
                    "secrets_seq",
                    "SELECT CAST(next_not_cached_value AS CHAR) FROM secrets_seq",
                );
            }
        }
        Protected(seen)
    }
}

/// The ledger with what differs from run to run (times, the cause's text)
/// reduced to whether it is set.
#[derive(Debug, PartialEq, Clone)]
struct Ledger(Vec<Vec<String>>);

impl Ledger {
    fn read(db: &mut Db) -> Ledger {
        let mut rows = Vec::new();
        let mut table = |sql: &str, reduce: &[usize]| {
            for Cells(mut cells) in db.rows::<Cells>(sql) {
                for &i in reduce {
                    cells[i] = if cells[i] == "NULL" { "NULL" } else { "set" }.to_owned();
                }
                rows.push(cells);
            }
        };
        table(
            "SELECT 'migration', name, sha256, description, state, first_applied_at, last_finished_at FROM dmig_migrations ORDER BY name",
            &[5, 6],
        );
        table(
            "SELECT 'run', id, migration, direction, status, started_at, finished_at, steps, rows_processed, last_cursor, error, host_version, sha256, signer FROM dmig_runs ORDER BY id",
            &[5, 6, 10],
        );
        table(
            "SELECT 'lock', migration, run_id FROM dmig_locks ORDER BY migration",
            &[],
        );
        Ledger(rows)
    }
}

/// One row as text, whatever its column types.
struct Cells(Vec<String>);

impl<'r> sqlx::FromRow<'r, AnyRow> for Cells {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let cell = |i: usize| -> String {
            if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                return v.map_or("NULL".into(), |v| v.to_string());
            }
            if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                return v.unwrap_or_else(|| "NULL".into());
            }
            if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
                return v.map_or("NULL".into(), |v| v.to_string());
            }
            if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
                return v.map_or("NULL".into(), |v| String::from_utf8_lossy(&v).into_owned());
            }
            panic!("column {i} has a type this test cannot read")
        };
        Ok(Cells((0..row.columns().len()).map(cell).collect()))
    }
}

/// The ledger a run of `guest` leaves when its second step fails, on a fresh
/// database of `kind`: computed once per process.
fn control_ledger(kind: Kind, guest: Guest) -> Ledger {
    static CONTROLS: Mutex<Option<HashMap<(u8, Guest), Ledger>>> = Mutex::new(None);
    let key = (kind as u8, guest);
    let mut controls = CONTROLS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(ledger) = controls.get_or_insert_with(HashMap::new).get(&key) {
        return ledger.clone();
    }
    let dir = TestDir::new("control");
    let test_db = TestDb::new(kind, &dir, "control").expect("the case's own database exists");
    let mut db = test_db.open();
    setup(&mut db, kind);
    let run = run_host(&dir, &test_db, &benign(guest), &["SELECT 1".to_owned()]);
    run.check_code(1)
        .unwrap_or_else(|e| panic!("the control run: {e}\n{}", run.describe()));
    let ledger = Ledger::read(&mut db);
    controls
        .get_or_insert_with(HashMap::new)
        .insert(key, ledger.clone());
    ledger
}

/// A file on the database server's machine (this one) the guest must not
/// read, and a path it must not create. Both are removed when dropped.
struct ServerFiles {
    canary: PathBuf,
    canary_text: String,
    out: PathBuf,
}

impl ServerFiles {
    fn new(case: &str, kind: Kind) -> ServerFiles {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let stem =
            format!("dmig-hostile-{}-{n}-{kind:?}-{case}", std::process::id()).to_ascii_lowercase();
        let canary = std::env::temp_dir().join(format!("{stem}.canary"));
        let canary_text = format!("canary-{}-{n}-{nanos:09}", std::process::id());
        std::fs::write(&canary, &canary_text).unwrap();
        // The database servers run as their own users: let them read it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let out = std::env::temp_dir().join(format!("{stem}.out"));
        assert!(!out.exists(), "{} exists before the test", out.display());
        ServerFiles {
            canary,
            canary_text,
            out,
        }
    }
}

impl Drop for ServerFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.canary);
        let _ = std::fs::remove_file(&self.out);
    }
}

// ---------------------------------------------------------------------------
// The host
// ---------------------------------------------------------------------------

/// The outcome of one `dmig-host run`.
struct HostRun {
    /// `None` when it was killed by a signal (or by the watchdog).
    code: Option<i32>,
    signal: Option<i32>,
    /// Killed by the watchdog after this long.
    timed_out: Option<Duration>,
    elapsed: Duration,
    stdout: String,
    stderr: String,
}

impl HostRun {
    fn check_code(&self, code: i32) -> Result<(), String> {
        if let Some(after) = self.timed_out {
            return Err(format!(
                "dmig-host still ran after {after:?} and was killed: {}",
                last_error(&self.stderr)
            ));
        }
        match (self.code, self.signal) {
            (Some(c), _) if c == code => Ok(()),
            (Some(c), _) => Err(format!(
                "expected exit code {code}, got {c}: {}",
                last_error(&self.stderr)
            )),
            (None, signal) => Err(format!(
                "expected exit code {code}, but dmig-host died of signal {signal:?}: {}",
                last_error(&self.stderr)
            )),
        }
    }

    fn describe(&self) -> String {
        format!(
            "exit {:?} (signal {:?}) after {:.1?}\nstdout: {}\nstderr: {}",
            self.code,
            self.signal,
            self.elapsed,
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

/// The last line of stderr that is an error, or its last line.
fn last_error(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .or_else(|| stderr.lines().last())
        .unwrap_or("<no stderr>")
}

/// Runs `case`'s guest on `test_db` with `statements`, under a watchdog.
fn run_host(dir: &TestDir, test_db: &TestDb, case: &Case, statements: &[String]) -> HostRun {
    let mut args: Vec<String> = vec![
        "run".into(),
        case.guest.artifact().into(),
        "-D".into(),
        test_db.url().into(),
    ];
    let call = match case.call {
        Call::Query => "query".to_owned(),
        Call::Execute => "execute".to_owned(),
        Call::ExecuteAndFinish => {
            args.extend(["--arg".into(), "finish=done".into()]);
            "execute".to_owned()
        }
        Call::Many(sets) => {
            args.extend(["--arg".into(), format!("sets={sets}")]);
            "many".to_owned()
        }
    };
    args.extend(["--arg".into(), format!("call={call}")]);
    if case.keep_going {
        args.extend(["--arg".into(), "errors=continue".into()]);
    }
    if let Some(timeout) = case.step_timeout {
        args.extend(["--step-timeout".into(), timeout.into()]);
    }
    let names = ["sql", "sql2", "sql3"];
    let as_files = statements
        .iter()
        .any(|s| s.len() > ARGUMENT_MAX || s.contains('\0'));
    if as_files {
        args.extend(["--arg".into(), "from=input".into()]);
    }
    for (name, sql) in names.iter().zip(statements) {
        if as_files {
            let path = dir.write(&format!("{name}.sql"), sql.as_bytes());
            args.extend(["--input".into(), format!("{name}={}", path.display())]);
        } else {
            args.extend(["--arg".into(), format!("{name}={sql}")]);
        }
    }
    let watchdog = match case.step_timeout {
        Some(limit) => Duration::from_secs_f64(seconds(limit)) + LIMIT_WATCHDOG,
        None => WATCHDOG,
    };
    spawn_watched(dir.path(), &args, watchdog)
}

fn spawn_watched(cwd: &Path, args: &[String], watchdog: Duration) -> HostRun {
    let start = Instant::now();
    let mut child = Command::new(DMIG)
        .args(args)
        .current_dir(cwd)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env("DMIG_CACHE_DIR", test_cache_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting dmig-host");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let mut timed_out = None;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for dmig-host") {
            break status;
        }
        if start.elapsed() > watchdog {
            timed_out = Some(watchdog);
            let _ = child.kill();
            break child.wait().expect("waiting for dmig-host");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    #[cfg(unix)]
    let signal = std::os::unix::process::ExitStatusExt::signal(&status);
    #[cfg(not(unix))]
    let signal = None;
    HostRun {
        code: status.code(),
        signal,
        timed_out,
        elapsed,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

// ---------------------------------------------------------------------------
// The table itself
// ---------------------------------------------------------------------------

/// The table is well formed: statements within the caps, names unique.
#[test]
fn the_table_of_cases_is_well_formed() {
    let mut names = std::collections::HashSet::new();
    for (name, kinds, case) in CASES {
        assert!(names.insert(*name), "{name} appears twice");
        assert!(!kinds.is_empty(), "{name} concerns no database");
        assert!(case.sql[0].is_some(), "{name} sends nothing");
        for sql in case.sql.iter().flatten() {
            let text = match sql {
                Sql::Text(text) => (*text).to_owned(),
                Sql::Built(build) => build(),
            };
            assert!(
                text.len() < 1024 * 1024 - 1024,
                "{name}: {} bytes is not under the 1 MiB cap",
                text.len()
            );
        }
        if case.expect == Expect::Limit {
            assert!(
                case.step_timeout.is_some(),
                "{name}: a limit needs a timeout"
            );
        }
    }
}
