//! Faults on the database servers: unreachable at start, a statement that
//! would run forever, a connection killed in the middle of a step.

use std::process::Command;

use dmig_tests::{
    Db, Kind, TestDb, TestDir, counters_db, dmig, guests, next_event, on_every_database, spawn_json,
};

const DMIG: &str = env!("CARGO_BIN_EXE_dmig-host-under-test");

#[test]
fn an_unreachable_server_is_a_clear_error_with_nothing_written() {
    let dir = TestDir::new("unreachable");
    for url in [
        "postgres://postgres@127.0.0.1:1/test",
        "mysql://root@127.0.0.1:1/test",
    ] {
        let out = dmig(DMIG, dir.path(), &["run", guests::COUNTER, "-D", url]).expect_code(3);
        assert!(
            out.stderr
                .starts_with(&format!("error: cannot connect to {url}: ")),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains("check the URL, and that the server is running"),
            "{}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1);
    }
}

/// The hostile guest's tables on a server database, set to `attack`.
fn hostile_db(
    kind: Kind,
    dir: &TestDir,
    test: &str,
    attack: &str,
    arg: &str,
) -> Option<(TestDb, Db)> {
    let test_db = TestDb::new(kind, dir, test)?;
    let mut db = test_db.open();
    db.exec(
        "CREATE TABLE progress (step BIGINT NOT NULL, note VARCHAR(100) NOT NULL);
         CREATE TABLE imported (line VARCHAR(1000) NOT NULL);
         CREATE TABLE attack (name VARCHAR(100) NOT NULL, arg VARCHAR(1000))",
    );
    db.exec_one(&format!(
        "INSERT INTO attack (name, arg) VALUES ('{attack}', '{}')",
        arg.replace('\'', "''")
    ));
    Some((test_db, db))
}

fn a_statement_running_forever_is_cancelled_at_the_deadline(kind: Kind) {
    let dir = TestDir::new("forever");
    let forever = match kind {
        // A pure function: sleeping functions are refused to guests.
        Kind::Postgres => "SELECT count(*) FROM generate_series(1, 100000000000)",
        _ => {
            "SELECT count(*) FROM information_schema.columns a, information_schema.columns b, information_schema.columns c, information_schema.columns d"
        }
    };
    let Some((test_db, mut db)) = hostile_db(kind, &dir, "forever", "statement", forever) else {
        return;
    };
    let out = dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            guests::HOSTILE,
            "-D",
            test_db.url(),
            "--step-timeout",
            "1s",
        ],
    )
    .expect_code(5);
    assert!(
        out.stderr.contains(
            "(run 1, cursor 1): step exceeded 1 s (the time ran out inside a database call)"
        ),
        "{}",
        out.stderr
    );
    let progress: Vec<(i64,)> = db.rows("SELECT step FROM progress");
    assert_eq!(progress, [(1,)], "the timed-out step rolled back");
    assert_eq!(
        db.scalar::<String>("SELECT status FROM dmig_runs"),
        "failed"
    );
}

#[test]
fn postgres_statement_timeout() {
    a_statement_running_forever_is_cancelled_at_the_deadline(Kind::Postgres);
}

#[test]
fn mysql_statement_timeout() {
    a_statement_running_forever_is_cancelled_at_the_deadline(Kind::Mysql);
}

fn a_killed_connection_fails_the_step_and_the_next_run_resumes(kind: Kind) {
    let dir = TestDir::new("killed");
    let Some((test_db, mut db)) = counters_db(kind, &dir, "killed", 1000) else {
        return;
    };

    // Each step sleeps 3 s after its writes: time to kill its connection.
    let (mut host, mut events) = spawn_json(
        DMIG,
        &dir,
        &[
            "run",
            guests::COUNTER,
            "-D",
            test_db.url(),
            "--arg",
            "batch_size=100",
            "--arg",
            "sleep_ms=3000",
        ],
    );
    next_event(&mut events, "step").expect("the host ended before its first step");
    // Kill every other session on the test database but the lock's: the
    // run's connection. (Losing the lock connection is its own failure,
    // exit 9: see tests/runs.rs.)
    let others: Vec<(i64,)> = match kind {
        Kind::Postgres => db.rows(
            "SELECT CAST(pid AS BIGINT) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)",
        ),
        _ => db.rows(
            "SELECT CAST(id AS SIGNED) FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID() \
             AND id <> COALESCE(IS_USED_LOCK(CONCAT('dmig:', LEFT(SHA2(CONCAT(DATABASE(), '/counter'), 256), 40))), 0)",
        ),
    };
    assert!(!others.is_empty(), "the run's sessions are visible");
    for (id,) in others {
        match kind {
            Kind::Postgres => db.exec(&format!("SELECT pg_terminate_backend({id})")),
            _ => db.exec(&format!("KILL {id}")),
        }
    }
    let status = host.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    // One step committed; the one in flight rolled back and the run was
    // recorded as failed over a new connection.
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM counter_batches"), 1);
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM counters WHERE n = 1"),
        100
    );
    let run = db.rows::<(String, String)>("SELECT status, last_cursor FROM dmig_runs")[0].clone();
    assert_eq!(run, ("failed".to_owned(), "100".to_owned()));

    let resumed = dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            guests::COUNTER,
            "-D",
            test_db.url(),
            "--arg",
            "batch_size=100",
        ],
    )
    .expect_code(0);
    assert!(
        resumed.stdout.contains("resumed from cursor 100"),
        "{}",
        resumed.stdout
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM counters WHERE n <> 1"),
        0
    );
}

#[test]
fn postgres_killed_connection() {
    a_killed_connection_fails_the_step_and_the_next_run_resumes(Kind::Postgres);
}

#[test]
fn mysql_killed_connection() {
    a_killed_connection_fails_the_step_and_the_next_run_resumes(Kind::Mysql);
}

on_every_database!(
    a_step_runs_at_the_documented_isolation_level,
    no_row_lock_outlives_its_step
);

/// READ COMMITTED on PostgreSQL, REPEATABLE READ on MySQL/MariaDB (their
/// defaults, which dmig leaves alone); SQLite transactions are serializable.
fn a_step_runs_at_the_documented_isolation_level(kind: Kind) {
    let dir = TestDir::new("isolation");
    let (query, expected) = match kind {
        Kind::Postgres => (
            "SELECT current_setting('transaction_isolation')",
            "read committed",
        ),
        Kind::Mysql => ("SHOW VARIABLES LIKE '%tx_isolation'", "REPEATABLE-READ"),
        // No isolation setting to read: a write lock is held from BEGIN
        // IMMEDIATE, so nothing else writes during a step.
        Kind::Sqlite => ("SELECT 'serializable'", "serializable"),
    };
    let Some((test_db, mut db)) = hostile_db(kind, &dir, "isolation", "query", query) else {
        return;
    };
    dmig(
        DMIG,
        dir.path(),
        &["run", guests::HOSTILE, "-D", test_db.url()],
    )
    .expect_code(1);
    let error: String = db.scalar("SELECT error FROM dmig_runs");
    assert_eq!(
        error,
        format!("query returned: Some(Value::Text(\"{expected}\"))")
    );
}

/// Between steps the run holds no row locks: another session updates rows
/// the last step wrote, at once.
fn no_row_lock_outlives_its_step(kind: Kind) {
    let dir = TestDir::new("row-locks");
    let Some((test_db, mut db)) = counters_db(kind, &dir, "row_locks", 1000) else {
        return;
    };
    match kind {
        Kind::Postgres => db.exec("SET lock_timeout = '500ms'"),
        Kind::Mysql => db.exec("SET SESSION innodb_lock_wait_timeout = 1"),
        Kind::Sqlite => {}
    }
    let (mut host, mut events) = spawn_json(
        DMIG,
        &dir,
        &[
            "run",
            guests::COUNTER,
            "-D",
            test_db.url(),
            "--arg",
            "batch_size=100",
            "--pause",
            "60s",
        ],
    );
    next_event(&mut events, "step").expect("the host ended before its first step");
    // The first step wrote rows 1..=100 and committed; the run now pauses.
    db.exec("UPDATE counters SET n = n + 10 WHERE id = 50");
    db.exec("UPDATE counter_batches SET last_id = last_id WHERE first_id = 1");
    assert_eq!(db.scalar::<i64>("SELECT n FROM counters WHERE id = 50"), 11);
    let status = Command::new("kill")
        .args(["-INT", &host.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        host.wait().unwrap().code(),
        Some(7),
        "interrupted during the pause"
    );
}
