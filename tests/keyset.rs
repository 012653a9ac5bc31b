//! Keyset batches never skip a row (issue 14, item 1): composite keys, quoted
//! identifiers, a key that is not unique or NULL detected, resumed composite
//! cursors, row locks, and the read-modify-write race they prevent. Every
//! test runs the `keyset` guest through the real `dmig-host` command line.

use std::io::{BufRead, BufReader};
use std::process::ChildStdout;
use std::time::{Duration, Instant};

use dmig_tests::{Kind, TestDb, TestDir, dmig, guests, on_every_database, on_servers, spawn_json};
use serde_json::Value as Json;
use sqlx::Connection;

const DMIG: &str = env!("CARGO_BIN_EXE_dmig-host-under-test");

on_every_database!(
    issue_14_teams_with_a_composite_key_copies_all_ten_rows,
    issue_14_a_key_that_is_not_unique_fails_instead_of_skipping,
    issue_14_a_null_key_fails_instead_of_skipping,
    issue_14_quoted_case_sensitive_names_work,
    issue_14_a_composite_cursor_resumes_exactly,
    issue_14_every_lock_runs,
    issue_14_a_locking_read_needs_the_table_written,
);

// Row locks and concurrent sessions: SQLite has neither (a step holds the
// database's write lock), so these run on the servers.
on_servers!(
    issue_14_read_modify_write_keeps_a_concurrent_write,
    issue_14_skip_locked_and_nowait_around_a_held_row,
);

/// PostgreSQL sorts, then locks: while a locked batch waits for a row whose
/// key the application changes, the row comes back with its new key in its
/// old place. A cursor taken from it would skip every row in between (the
/// first version of `Keyset` copied 2 of 10 rows here and exited 0).
#[test]
fn postgres_issue_14_a_key_changed_under_a_locked_read_skips_nothing() {
    let dir = TestDir::new("keyset-moved-key");
    let Some(db) = setup(Kind::Postgres, &dir, "keyset_moved_key") else {
        return;
    };
    let mut app = App::open(&db);
    app.exec("BEGIN");
    app.exec("UPDATE teams SET created_at = created_at + interval '1 day' WHERE id = 2");
    let (mut child, events) = spawn_json(
        DMIG,
        &dir,
        &[
            "run",
            guests::KEYSET,
            "-D",
            db.url(),
            "--arg",
            "mode=copy",
            "--arg",
            "source=teams",
            "--arg",
            "dest=teams_copy",
            "--arg",
            "key=created_at,id",
            "--arg",
            "lock=for_update",
            "--arg",
            "batch_size=2",
        ],
    );
    let mut watcher = App::open(&db);
    let deadline = Instant::now() + Duration::from_secs(50);
    while watcher.count(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock' AND query LIKE 'SELECT%FOR UPDATE%'",
    ) == 0
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it waited for the row"
        );
        assert!(
            Instant::now() < deadline,
            "the batch never waited for the row"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    app.exec("COMMIT");
    let status = child.wait().unwrap();
    let events = read_events(events);
    assert_eq!(status.code(), Some(0), "{events:?}");
    assert_eq!(ids(&db, "teams_copy"), (1..=10).collect::<Vec<i64>>());
}

/// A database for `test` with the tables the guest uses; `None` when the
/// server is not configured (skipped).
fn setup(kind: Kind, dir: &TestDir, test: &str) -> Option<TestDb> {
    let db = TestDb::new(kind, dir, test)?;
    let (time, quote) = match kind {
        Kind::Sqlite => ("TEXT", '"'),
        Kind::Postgres => ("TIMESTAMP", '"'),
        Kind::Mysql => ("DATETIME", '`'),
    };
    let q = |name: &str| format!("{quote}{name}{quote}");
    let mut conn = db.open();
    conn.exec(&format!(
        "CREATE TABLE teams (id BIGINT PRIMARY KEY, created_at {time} NOT NULL);
         CREATE TABLE teams_copy (id BIGINT PRIMARY KEY, created_at {time} NOT NULL);
         CREATE TABLE archive (id BIGINT PRIMARY KEY, created_at {time} NOT NULL);
         CREATE TABLE tags (label VARCHAR(100) NOT NULL, id BIGINT NOT NULL, PRIMARY KEY (label, id));
         CREATE TABLE tags_copy (label VARCHAR(100) NOT NULL, id BIGINT NOT NULL, PRIMARY KEY (label, id));
         CREATE TABLE {} ({} BIGINT PRIMARY KEY, {} VARCHAR(100) NOT NULL);
         CREATE TABLE profiles_copy ({} BIGINT PRIMARY KEY, {} VARCHAR(100) NOT NULL);
         CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL);
         CREATE TABLE rmw_gate (id BIGINT PRIMARY KEY, passes BIGINT NOT NULL);
         INSERT INTO rmw_gate VALUES (1, 0);
         INSERT INTO accounts VALUES (1, 100), (2, 200), (3, 300)",
        q("Profiles"),
        q("profileId"),
        q("displayName"),
        q("profileId"),
        q("displayName"),
    ));
    // The issue's input: created_at repeats at positions 3-4 and 7-9.
    let hours = [1, 2, 3, 3, 5, 6, 7, 7, 7, 10];
    let rows: Vec<String> = hours
        .iter()
        .enumerate()
        .map(|(i, h)| format!("({}, '2026-01-01 {h:02}:00:00')", i + 1))
        .collect();
    conn.exec(&format!("INSERT INTO teams VALUES {}", rows.join(", ")));
    conn.exec(&format!("INSERT INTO archive VALUES {}", rows.join(", ")));
    Some(db)
}

/// Runs `dmig-host run <keyset guest> -D <db> --output json` with `--arg`s
/// and extra flags; returns the exit code and the JSON events.
fn run(db: &TestDb, dir: &TestDir, args: &[&str], flags: &[&str]) -> (i32, Vec<Json>, String) {
    let mut argv = vec!["run", guests::KEYSET, "-D", db.url(), "--output", "json"];
    for arg in args {
        argv.extend(["--arg", arg]);
    }
    argv.extend(flags);
    let run = dmig(DMIG, dir.path(), &argv);
    let events = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (run.code, events, run.stderr)
}

/// The rest of a spawned run's JSON events.
fn read_events(events: BufReader<ChildStdout>) -> Vec<Json> {
    events
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

fn event<'a>(events: &'a [Json], name: &str) -> &'a Json {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
}

fn ids(db: &TestDb, table: &str) -> Vec<i64> {
    db.open()
        .rows::<(i64,)>(&format!("SELECT id FROM {table} ORDER BY id"))
        .into_iter()
        .map(|(i,)| i)
        .collect()
}

fn issue_14_teams_with_a_composite_key_copies_all_ten_rows(kind: Kind) {
    let dir = TestDir::new("keyset-composite");
    let Some(db) = setup(kind, &dir, "keyset_composite") else {
        return;
    };
    let (code, events, stderr) = run(
        &db,
        &dir,
        &[
            "source=teams",
            "dest=teams_copy",
            "key=created_at,id",
            "batch_size=3",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr} {events:?}");
    let finished = &event(&events, "finished")["outcome"];
    assert_eq!(finished["rows"], 10, "{finished}");
    assert_eq!(event(&events, "step")["expected_rows"], 10);
    assert_eq!(ids(&db, "teams_copy"), (1..=10).collect::<Vec<_>>());
}

fn issue_14_a_key_that_is_not_unique_fails_instead_of_skipping(kind: Kind) {
    let dir = TestDir::new("keyset-not-unique");
    let Some(db) = setup(kind, &dir, "keyset_not_unique") else {
        return;
    };
    // The issue's run: today it exits 0 having copied 7 of the 10 rows.
    let (code, events, stderr) = run(
        &db,
        &dir,
        &[
            "source=teams",
            "dest=teams_copy",
            "key=created_at",
            "text_key=true",
            "batch_size=3",
        ],
        &[],
    );
    assert_eq!(code, 1, "{stderr} {events:?}");
    let error = event(&events, "failed")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("keyset key (created_at) of teams is not unique")
            && error.contains("Keyset::new(\"teams\", [\"created_at\", \"id\"])"),
        "{error}"
    );
    assert!(
        ids(&db, "teams_copy").is_empty(),
        "the failed step rolled back"
    );
    // Equal keys inside one batch are found too, whatever the batch size.
    let (code, events, _) = run(
        &db,
        &dir,
        &[
            "source=teams",
            "dest=teams_copy",
            "key=created_at",
            "text_key=true",
            "batch_size=100",
        ],
        &["--restart"],
    );
    assert_eq!(code, 1, "{events:?}");
    assert!(ids(&db, "teams_copy").is_empty());
}

fn issue_14_a_null_key_fails_instead_of_skipping(kind: Kind) {
    let dir = TestDir::new("keyset-null");
    let Some(db) = setup(kind, &dir, "keyset_null") else {
        return;
    };
    // tags has a NOT NULL key; make one that allows NULL for this case.
    let mut conn = db.open();
    conn.exec(
        "DROP TABLE tags;
         CREATE TABLE tags (label VARCHAR(100), id BIGINT NOT NULL);
         INSERT INTO tags VALUES ('a', 1), (NULL, 2), ('c', 3)",
    );
    let (code, events, stderr) = run(
        &db,
        &dir,
        &[
            "source=tags",
            "dest=tags_copy",
            "key=label,id",
            "batch_size=2",
        ],
        &[],
    );
    assert_eq!(code, 1, "{stderr} {events:?}");
    let error = event(&events, "failed")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("keyset key (label, id) of tags is NULL in a row"),
        "{error}"
    );
    assert!(ids(&db, "tags_copy").is_empty());
}

fn issue_14_quoted_case_sensitive_names_work(kind: Kind) {
    let dir = TestDir::new("keyset-quoted");
    let Some(db) = setup(kind, &dir, "keyset_quoted") else {
        return;
    };
    let quote = if kind == Kind::Mysql { '`' } else { '"' };
    let mut conn = db.open();
    conn.exec(&format!(
        "INSERT INTO {quote}Profiles{quote} VALUES (3, 'c'), (1, 'a'), (2, 'b'), (5, 'e'), (4, 'd')"
    ));
    // Written with double quotes, as the issue did, and with backticks: both
    // work on every database.
    for (n, key) in ["key=\"profileId\"", "key=`profileId`"].iter().enumerate() {
        let (code, events, stderr) = run(
            &db,
            &dir,
            &[
                "source=\"Profiles\"",
                "dest=profiles_copy",
                key,
                "batch_size=2",
            ],
            if n == 0 { &[] } else { &["--force"] },
        );
        assert_eq!(code, 0, "{key}: {stderr} {events:?}");
        assert_eq!(event(&events, "finished")["outcome"]["rows"], 5);
        let copied: Vec<(i64, String)> = conn.rows(&format!(
            "SELECT {quote}profileId{quote}, {quote}displayName{quote} FROM profiles_copy ORDER BY 1"
        ));
        assert_eq!(copied.len(), 5, "{copied:?}");
        assert_eq!(copied[4], (5, "e".to_owned()));
        conn.exec("DELETE FROM profiles_copy");
    }
}

fn issue_14_a_composite_cursor_resumes_exactly(kind: Kind) {
    let dir = TestDir::new("keyset-resume");
    let Some(db) = setup(kind, &dir, "keyset_resume") else {
        return;
    };
    // Labels with the characters a cursor must carry: commas, quotes,
    // brackets, backslashes, a newline; two rows share each label.
    let labels = ["a,b", "q\"uote", "[x]", "back\\slash", "new\nline", "it''s"];
    let mut conn = db.open();
    for (i, label) in labels.iter().enumerate() {
        let literal = if kind == Kind::Mysql {
            label.replace('\\', "\\\\")
        } else {
            (*label).to_owned()
        };
        let id = i as i64 * 2;
        conn.exec_one(&format!(
            "INSERT INTO tags VALUES ('{literal}', {id}), ('{literal}', {})",
            id + 1
        ));
    }
    let args = [
        "source=tags",
        "dest=tags_copy",
        "key=label,id",
        "batch_size=2",
    ];
    let (code, events, stderr) = run(&db, &dir, &args, &["--max-steps", "3"]);
    assert_eq!(code, 7, "{stderr} {events:?}");
    let cursor = event(&events, "interrupted")["cursor"]
        .as_str()
        .expect("a cursor")
        .to_owned();
    assert!(cursor.starts_with('[') && cursor.ends_with(']'), "{cursor}");
    assert_eq!(ids(&db, "tags_copy").len(), 6);
    let (code, events, stderr) = run(&db, &dir, &args, &[]);
    assert_eq!(code, 0, "{stderr} {events:?}");
    assert_eq!(
        event(&events, "started")["resumed_from"].as_str(),
        Some(cursor.as_str())
    );
    let copied: Vec<(String, i64)> = conn.rows("SELECT label, id FROM tags_copy ORDER BY id");
    let source: Vec<(String, i64)> = conn.rows("SELECT label, id FROM tags ORDER BY id");
    assert_eq!(copied, source);
    assert_eq!(copied[9].0, "new\nline");
}

fn issue_14_every_lock_runs(kind: Kind) {
    let dir = TestDir::new("keyset-locks");
    let Some(db) = setup(kind, &dir, "keyset_locks") else {
        return;
    };
    let locks = [
        "none",
        "for_share",
        "for_update",
        "for_update_nowait",
        "for_update_skip_locked",
    ];
    for (n, lock) in locks.iter().enumerate() {
        let lock_arg = format!("lock={lock}");
        let (code, events, stderr) = run(
            &db,
            &dir,
            &["mode=rmw", &lock_arg, "batch_size=2"],
            if n == 0 { &[] } else { &["--force"] },
        );
        let balances: Vec<(i64,)> = db.open().rows("SELECT balance FROM accounts ORDER BY id");
        if kind == Kind::Mysql && *lock == "for_share" {
            // MariaDB's LOCK IN SHARE MODE does not pass the host's SQL
            // policy: a clear error, nothing written.
            assert_eq!(code, 1, "{stderr} {events:?}");
            let error = event(&events, "failed")["error"].as_str().unwrap();
            assert!(
                error.contains("Lock::ForShare is not available on MySQL/MariaDB"),
                "{error}"
            );
            assert_eq!(balances, [(110,), (210,), (310,)]);
            db.open().exec("UPDATE accounts SET balance = balance + 10");
            continue;
        }
        assert_eq!(code, 0, "{lock}: {stderr} {events:?}");
        let added = 10 * (n as i64 + 1);
        assert_eq!(
            balances,
            [(100 + added,), (200 + added,), (300 + added,)],
            "{lock}"
        );
    }
}

fn issue_14_a_locking_read_needs_the_table_written(kind: Kind) {
    let dir = TestDir::new("keyset-lock-read-only");
    let Some(db) = setup(kind, &dir, "keyset_lock_read_only") else {
        return;
    };
    // `archive` is declared read, not written.
    let args = [
        "source=archive",
        "dest=teams_copy",
        "key=id",
        "lock=for_update",
    ];
    let (code, events, stderr) = run(&db, &dir, &args, &[]);
    if kind == Kind::Sqlite {
        // No row locks on SQLite: the clause is left out, and the read is
        // a read.
        assert_eq!(code, 0, "{stderr} {events:?}");
        assert_eq!(ids(&db, "teams_copy").len(), 10);
        return;
    }
    // Refused by the host's SQL policy (exit 8), which names the table and
    // the fix.
    assert_eq!(code, 8, "{stderr} {events:?}");
    let error = event(&events, "failed")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("writes table archive, which the artifact does not declare in writes"),
        "{error}"
    );
    assert!(ids(&db, "teams_copy").is_empty());
}

/// A second connection, as the application: statements that may fail.
struct App {
    conn: sqlx::AnyConnection,
    runtime: tokio::runtime::Runtime,
}

impl App {
    fn open(db: &TestDb) -> App {
        sqlx::any::install_default_drivers();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conn = runtime
            .block_on(sqlx::AnyConnection::connect(db.url()))
            .unwrap();
        App { conn, runtime }
    }

    fn try_exec(&mut self, sql: &str) -> Result<(), String> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        self.runtime
            .block_on(sqlx::raw_sql(sql).execute(&mut self.conn))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[track_caller]
    fn exec(&mut self, sql: &str) {
        self.try_exec(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn try_count(&mut self, sql: &str) -> Result<i64, String> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        self.runtime
            .block_on(sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut self.conn))
            .map_err(|e| e.to_string())
    }

    fn count(&mut self, sql: &str) -> i64 {
        self.try_count(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// What the sessions on the server are doing, for a failure message.
    fn sessions(&mut self, kind: Kind) -> String {
        let sql = match kind {
            Kind::Postgres => {
                "SELECT concat_ws(' | ', datname, state, wait_event_type, wait_event, query) FROM pg_stat_activity"
            }
            _ => {
                "SELECT CAST(concat_ws(' | ', DB, COMMAND, STATE, INFO) AS CHAR) FROM information_schema.PROCESSLIST"
            }
        };
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        self.runtime
            .block_on(sqlx::query_scalar::<_, Option<String>>(sql).fetch_all(&mut self.conn))
            .map(|rows| rows.into_iter().flatten().collect::<Vec<_>>().join("\n"))
            .unwrap_or_else(|e| e.to_string())
    }

    /// Whether a session of this test's database waits for the gate's row
    /// lock.
    fn someone_waits_for_a_lock(&mut self, kind: Kind) -> bool {
        self.count(match kind {
            Kind::Postgres => {
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock' \
                 AND query LIKE 'UPDATE rmw_gate%'"
            }
            _ => {
                // The statement runs (waits) in the guest's session.
                "SELECT count(*) FROM information_schema.PROCESSLIST \
                 WHERE DB = DATABASE() AND INFO LIKE 'UPDATE rmw_gate%'"
            }
        }) > 0
    }

    /// Waits for locks a short while only, so a blocked statement fails.
    fn short_lock_wait(&mut self, kind: Kind) {
        self.exec(match kind {
            Kind::Postgres => "SET lock_timeout = '300ms'",
            _ => "SET SESSION innodb_lock_wait_timeout = 1",
        });
    }
}

/// What the application's concurrent write met, the final balance, and how
/// many times the step was retried.
#[derive(Debug, PartialEq)]
struct Race {
    code: i32,
    app_write_blocked: bool,
    balance: i64,
    retries: usize,
}

/// The guest reads account 1 (balance 100) and stops before writing (the
/// test holds `rmw_gate`'s row lock, and waits until the guest waits for
/// it); the application adds 50 meanwhile under READ COMMITTED (PostgreSQL)
/// or REPEATABLE READ (MariaDB's default); then the guest writes what it
/// computed from its read, 110.
///
/// The gate is a row the test locks (`FOR UPDATE`) but never changes: a
/// change would itself be a conflict for a server that checks the rows a
/// transaction read (MariaDB's `innodb_snapshot_isolation`).
fn race(kind: Kind, test: &str, lock: &str, write: &str) -> Option<Race> {
    let dir = TestDir::new(test);
    let db = setup(kind, &dir, test)?;
    let mut gate = App::open(&db);
    gate.exec("BEGIN");
    gate.exec("SELECT passes FROM rmw_gate WHERE id = 1 FOR UPDATE");
    let lock_arg = format!("lock={lock}");
    let write_arg = format!("write={write}");
    let (mut child, events) = spawn_json(
        DMIG,
        &dir,
        &[
            "run",
            guests::KEYSET,
            "-D",
            db.url(),
            "--arg",
            "mode=rmw",
            "--arg",
            "gate=true",
            "--arg",
            &lock_arg,
            "--arg",
            &write_arg,
        ],
    );
    // The guest waits for the gate once it has read: its batch is read, and
    // (with a lock) locked.
    let mut app = App::open(&db);
    let deadline = Instant::now() + Duration::from_secs(50);
    while !app.someone_waits_for_a_lock(kind) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the run ended before reaching the gate: {status}, {:?}",
                read_events(events)
            );
        }
        assert!(
            Instant::now() < deadline,
            "{test}: the guest never reached the gate: {}",
            app.sessions(kind)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    app.short_lock_wait(kind);
    let first = app.try_exec("UPDATE accounts SET balance = balance + 50 WHERE id = 1");
    gate.exec("COMMIT");
    let status = child.wait().unwrap();
    let events = read_events(events);
    if let Err(error) = &first {
        assert!(
            error.to_lowercase().contains("lock"),
            "the application's write failed otherwise: {error}"
        );
    }
    if first.is_err() {
        // Blocked by the step's lock until it committed; now it goes through.
        app.exec("UPDATE accounts SET balance = balance + 50 WHERE id = 1");
    }
    let balance = db
        .open()
        .scalar::<i64>("SELECT balance FROM accounts WHERE id = 1");
    // Every event, in the failure message of an unexpected race.
    println!("{test}: {events:?}");
    Some(Race {
        code: status.code().unwrap(),
        app_write_blocked: first.is_err(),
        balance,
        retries: events.iter().filter(|e| e["event"] == "retry").count(),
    })
}

/// Whether the server fails a transaction that writes a row changed since
/// the transaction's snapshot (MariaDB's `innodb_snapshot_isolation`, off by
/// default before 11.6), instead of letting it overwrite the change.
fn checks_snapshot_writes(kind: Kind, db: &TestDb) -> bool {
    if kind != Kind::Mysql {
        return false;
    }
    // MySQL and MariaDB before 10.6.18 have no such variable: they never do.
    App::open(db)
        .try_count("SELECT CAST(@@innodb_snapshot_isolation AS SIGNED)")
        .is_ok_and(|on| on == 1)
}

fn issue_14_read_modify_write_keeps_a_concurrent_write(kind: Kind) {
    // The hazard: a plain read, then a blind write, overwrites the
    // application's +50 and reports success. A server that checks writes
    // against the snapshot fails the step instead (error 1020, retried),
    // and the retry reads the new balance.
    let Some(naive) = race(kind, "rmw-naive", "none", "naive") else {
        return;
    };
    let dir = TestDir::new("rmw-server");
    let snapshot = checks_snapshot_writes(kind, &TestDb::new(kind, &dir, "rmw_server").unwrap());
    let (balance, retries) = if snapshot { (160, 1) } else { (110, 0) };
    assert_eq!(
        naive,
        Race {
            code: 0,
            app_write_blocked: false,
            balance,
            retries,
        },
        "the naive pattern loses the concurrent write (snapshot checks: {snapshot})"
    );
    // Safe: the batch is read FOR UPDATE; the application waits for the step
    // and its +50 lands on the step's result.
    let locked = race(kind, "rmw-locked", "for_update", "naive").unwrap();
    assert_eq!(
        locked,
        Race {
            code: 0,
            app_write_blocked: true,
            balance: 160,
            retries: 0,
        }
    );
    // Safe too: no lock, but the write re-checks the value read; the step
    // fails and rolls back instead of overwriting (or, where the server
    // checks the snapshot, is retried and re-reads, as above).
    let checked = race(kind, "rmw-checked", "none", "checked").unwrap();
    let expected = if snapshot {
        Race {
            code: 0,
            app_write_blocked: false,
            balance: 160,
            retries: 1,
        }
    } else {
        Race {
            code: 1,
            app_write_blocked: false,
            balance: 150,
            retries: 0,
        }
    };
    assert_eq!(checked, expected);
}

fn issue_14_skip_locked_and_nowait_around_a_held_row(kind: Kind) {
    let dir = TestDir::new("keyset-skip-locked");
    let Some(db) = setup(kind, &dir, "keyset_skip_locked") else {
        return;
    };
    let mut holder = App::open(&db);
    holder.exec("BEGIN");
    holder.exec("UPDATE accounts SET balance = balance + 1 WHERE id = 2");
    let balances = || -> Vec<(i64,)> { db.open().rows("SELECT balance FROM accounts ORDER BY id") };

    // NOWAIT: the step fails at once and changes nothing.
    let (code, events, stderr) = run(
        &db,
        &dir,
        &["mode=rmw", "lock=for_update_nowait", "batch_size=2"],
        &[],
    );
    assert_eq!(code, 1, "{stderr} {events:?}");
    assert_eq!(balances(), [(100,), (200,), (300,)]);
    // NOWAIT's failure is transient: the step was retried before the run
    // gave up.
    assert_eq!(
        events.iter().filter(|e| e["event"] == "retry").count(),
        5,
        "{events:?}"
    );

    // A locking batch locks (and with NOWAIT fails on) only the rows it
    // keeps: batches of one, and the held row 2 is not row 1's concern. It
    // used to be, as the row after the batch that a plain read looks at.
    let (code, events, stderr) = run(
        &db,
        &dir,
        &["mode=rmw", "lock=for_update_nowait", "batch_size=1"],
        &["--restart", "--retries", "0"],
    );
    assert_eq!(code, 1, "{stderr} {events:?}");
    assert!(stderr.contains("step 2"), "{stderr}");
    assert_eq!(balances(), [(110,), (200,), (300,)]);

    // SKIP LOCKED: rows 1 and 3 are processed, row 2 is left out, and the
    // run says so.
    let (code, events, stderr) = run(
        &db,
        &dir,
        &["mode=rmw", "lock=for_update_skip_locked", "batch_size=2"],
        &["--restart"],
    );
    assert_eq!(code, 0, "{stderr} {events:?}");
    let warnings: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "log" && e["level"] == "warn")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w
                .starts_with("1 rows of accounts were locked by other transactions and skipped")),
        "{warnings:?}"
    );
    holder.exec("COMMIT");
    assert_eq!(balances(), [(120,), (201,), (310,)]);
}
