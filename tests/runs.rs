//! Runs that survive anything: exactly-once resume after SIGKILL, the lock,
//! progress and JSON events, arguments and pacing, graceful stops, dry runs,
//! verify, history, and components built against the older WIT version.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use dmig_tests::{
    Db, Kind, TestDb, TestDir, counters_db, dmig, dmig_timed, guests, next_event,
    on_every_database, spawn_json,
};
use serde_json::Value as Json;

const DMIG: &str = env!("CARGO_BIN_EXE_dmig-host-under-test");

/// [`counters_db`] on SQLite, for the tests that do not vary by database.
fn sqlite_counters(dir: &TestDir, n: i64) -> (TestDb, Db) {
    counters_db(Kind::Sqlite, dir, "sqlite", n).unwrap()
}

on_every_database!(
    exactly_once_under_repeated_sigkill,
    a_second_host_waits_for_the_lock_then_names_the_holder,
    dry_run_reports_and_leaves_the_database_byte_for_byte,
    verify_failure_rolls_back_the_last_step,
    a_killed_lock_connection_stops_the_run_at_once,
    a_lock_taken_over_fences_the_next_step,
    a_second_signal_cancels_the_running_statement,
);

// A raw-SQL artifact may signal backends on PostgreSQL (pg_terminate_backend
// is refused only to artifacts without raw SQL); on MySQL/MariaDB `KILL` is
// refused by name in every mode, so there the guest cannot try.
#[test]
fn postgres_a_guest_that_kills_the_lock_connection_is_stopped() {
    a_guest_that_kills_the_lock_connection_is_stopped(Kind::Postgres);
}

#[test]
fn mysql_a_guest_that_kills_the_lock_connection_is_stopped() {
    a_guest_that_kills_the_lock_connection_is_stopped(Kind::Mysql);
}

/// Starts `dmig-host` with JSON events on a pipe.
fn spawn(dir: &TestDir, args: &[&str]) -> (Child, BufReader<ChildStdout>) {
    spawn_json(DMIG, dir, args)
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Counters are 1 exactly for ids up to the recorded cursor, 0 after it.
fn assert_prefix_done(db: &mut Db, cursor: i64) {
    let wrong: i64 = db.scalar(&format!(
        "SELECT count(*) FROM counters WHERE (id <= {cursor} AND n <> 1) OR (id > {cursor} AND n <> 0)"
    ));
    assert_eq!(
        wrong, 0,
        "counters must be exactly the committed prefix up to {cursor}"
    );
}

/// A tiny deterministic generator, so failures replay.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

fn exactly_once_under_repeated_sigkill(kind: Kind) {
    let dir = TestDir::new("sigkill");
    let Some((test_db, mut db)) = counters_db(kind, &dir, "sigkill", 50_000) else {
        return;
    };
    let url = test_db.url().to_owned();
    let mut rng = Lcg(0x5eed_d319);
    let run = [
        "run",
        guests::COUNTER,
        "-D",
        &url,
        "--arg",
        "batch_size=250",
    ];
    let (mut kills, mut started) = (0, 0);
    while kills < 20 {
        let (mut child, mut events) = spawn(&dir, &run);
        let began = next_event(&mut events, "started");
        started += usize::from(began.is_some());
        // Kill after a seeded number of committed steps, then after a seeded
        // spin so the kill lands at varied points inside the next step.
        let steps = rng.next(6);
        for _ in 0..steps {
            if next_event(&mut events, "step").is_none() {
                break;
            }
        }
        for _ in 0..rng.next(2_000_000) {
            std::hint::black_box(());
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    let done = dmig(DMIG, dir.path(), &run).expect_code(0);
    assert!(
        done.stdout.contains("resumed from cursor"),
        "{}",
        done.stdout
    );

    let wrong: i64 = db.scalar("SELECT count(*) FROM counters WHERE n <> 1");
    assert_eq!(wrong, 0, "every counter is exactly 1 after {kills} kills");
    // Every batch was committed exactly once.
    let batches: i64 = db.scalar("SELECT count(*) FROM counter_batches");
    let distinct: i64 = db.scalar("SELECT count(DISTINCT last_id) FROM counter_batches");
    assert_eq!((batches, distinct), (200, 200));
    // The ledger shows every attempt that got as far as starting a run: each
    // killed one failed (its host gone), the last one succeeded.
    let runs: Vec<(String, Option<String>)> =
        db.rows("SELECT status, error FROM dmig_runs ORDER BY id");
    assert_eq!(runs.len(), started + 1);
    let (last, killed) = runs.split_last().unwrap();
    assert_eq!(last.0, "succeeded");
    for (status, error) in killed {
        assert_eq!(status, "failed");
        assert!(
            error
                .as_deref()
                .unwrap()
                .contains("stopped without recording an outcome"),
            "{error:?}"
        );
    }
}

fn a_second_host_waits_for_the_lock_then_names_the_holder(kind: Kind) {
    let dir = TestDir::new("lock");
    let Some((test_db, mut db)) = counters_db(kind, &dir, "lock", 50_000) else {
        return;
    };
    let url = test_db.url().to_owned();
    let (mut holder, mut events) = spawn(
        &dir,
        &[
            "run",
            guests::COUNTER,
            "-D",
            &url,
            "--arg",
            "batch_size=100",
            "--arg",
            "sleep_ms=20",
        ],
    );
    let started = next_event(&mut events, "started").expect("the first host starts");
    let run_id = started["run_id"].as_i64().unwrap();

    let blocked = dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            guests::COUNTER,
            "-D",
            &url,
            "--lock-timeout",
            "300ms",
        ],
    )
    .expect_code(6);
    let host = gethostname();
    let expected = format!(
        "error: migration counter is locked by run {run_id} on {host} (pid {})",
        holder.id()
    );
    assert!(blocked.stderr.starts_with(&expected), "{}", blocked.stderr);
    assert!(
        blocked.stderr.contains("gave up after 300ms"),
        "{}",
        blocked.stderr
    );
    assert_eq!(blocked.stderr.lines().count(), 1);

    // The holder dies; the next host takes its lock over at once and resumes.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let resumed = dmig(
        DMIG,
        dir.path(),
        &["run", guests::COUNTER, "-D", &url, "--lock-timeout", "0s"],
    )
    .expect_code(0);
    assert!(
        resumed.stdout.contains("resumed from cursor"),
        "{}",
        resumed.stdout
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM counters WHERE n <> 1"),
        0
    );
    let first: (String, String) = db.rows::<(String, String)>(&format!(
        "SELECT status, error FROM dmig_runs WHERE id = {run_id}"
    ))[0]
        .clone();
    assert_eq!(first.0, "failed");
    assert!(
        first.1.contains(&format!("pid {}", holder.id())),
        "{}",
        first.1
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM dmig_locks"),
        0,
        "released at the end"
    );
}

#[test]
fn a_foreign_hosts_lease_blocks_until_it_expires() {
    let dir = TestDir::new("lease");
    let (test_db, mut db) = sqlite_counters(&dir, 100);
    let url = test_db.url().to_owned();
    // Create the ledger, then plant a lock held by a live-looking host
    // elsewhere.
    dmig(
        DMIG,
        dir.path(),
        &["run", guests::COUNTER, "-D", &url, "--dry-run"],
    )
    .expect_code(0);
    dmig(
        DMIG,
        dir.path(),
        &["run", guests::COUNTER, "-D", &url, "--max-steps", "0"],
    )
    .expect_code(7);
    db.exec(
        "INSERT INTO dmig_locks (migration, holder, run_id, host, pid, acquired_at, expires_at)
         VALUES ('counter', 'elsewhere:1:x', 1, 'db-worker-7', 1, '2026-01-01T00:00:00.000Z', '2999-01-01T00:00:00.000Z')",
    );
    let blocked = dmig(
        DMIG,
        dir.path(),
        &["run", guests::COUNTER, "-D", &url, "--lock-timeout", "0s"],
    )
    .expect_code(6);
    assert!(
        blocked
            .stderr
            .contains("locked by run 1 on db-worker-7 (pid 1) since 2026-01-01T00:00:00.000Z"),
        "{}",
        blocked.stderr
    );

    // Its lease runs out: the next host takes over and records the
    // abandoned run.
    db.exec("UPDATE dmig_locks SET expires_at = '2000-01-01T00:00:00.000Z'");
    let resumed = dmig(
        DMIG,
        dir.path(),
        &["run", guests::COUNTER, "-D", &url, "--lock-timeout", "0s"],
    )
    .expect_code(0);
    assert!(
        resumed
            .stderr
            .contains("took over the lock of a host that is gone host=db-worker-7 pid=1"),
        "{}",
        resumed.stderr
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM counters WHERE n <> 1"),
        0
    );
}

/// Running an applied migration again is answered from a read of the
/// ledger: it neither waits for the lock nor writes anything. Anything that
/// would run (`--force`) still takes the lock.
#[test]
fn an_applied_migration_reruns_without_the_lock() {
    let dir = TestDir::new("applied-no-lock");
    let (test_db, mut db) = sqlite_counters(&dir, 100);
    let url = test_db.url().to_owned();
    dmig(DMIG, dir.path(), &["run", guests::COUNTER, "-D", &url]).expect_code(0);
    db.exec(
        "INSERT INTO dmig_locks (migration, holder, run_id, host, pid, acquired_at, expires_at)
         VALUES ('counter', 'elsewhere:1:x', 1, 'db-worker-7', 1, '2026-01-01T00:00:00.000Z', '2999-01-01T00:00:00.000Z')",
    );
    let runs = db.scalar::<i64>("SELECT count(*) FROM dmig_runs");
    let again = dmig(
        DMIG,
        dir.path(),
        &["run", guests::COUNTER, "-D", &url, "--lock-timeout", "0s"],
    )
    .expect_code(0);
    assert!(again.stdout.contains("already applied"), "{}", again.stdout);
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM dmig_runs"), runs);
    assert_eq!(
        db.scalar::<String>("SELECT holder FROM dmig_locks"),
        "elsewhere:1:x"
    );
    dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            guests::COUNTER,
            "-D",
            &url,
            "--force",
            "--lock-timeout",
            "0s",
        ],
    )
    .expect_code(6);
}

fn gethostname() -> String {
    let out = Command::new("hostname").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn sigint_and_sigterm_stop_after_the_current_step_and_resume() {
    for name in ["INT", "TERM"] {
        let dir = TestDir::new(&format!("sig{name}"));
        let (test_db, mut db) = sqlite_counters(&dir, 5_000);
        let url = test_db.url().to_owned();
        let run = [
            "run",
            guests::COUNTER,
            "-D",
            &url,
            "--arg",
            "batch_size=100",
            "--arg",
            "sleep_ms=30",
        ];
        let (mut child, mut events) = spawn(&dir, &run);
        next_event(&mut events, "step").expect("a first step");
        signal(&child, name);
        let interrupted = next_event(&mut events, "interrupted").expect("an interrupted event");
        assert_eq!(child.wait().unwrap().code(), Some(7), "SIG{name}");

        let cursor: i64 = interrupted["cursor"].as_str().unwrap().parse().unwrap();
        let steps = interrupted["steps"].as_u64().unwrap();
        assert!(steps >= 1);
        assert_prefix_done(&mut db, cursor);
        let recorded: (String, String, i64) = db
            .rows::<(String, String, i64)>("SELECT status, last_cursor, steps FROM dmig_runs")[0]
            .clone();
        assert_eq!(
            recorded,
            ("interrupted".to_owned(), cursor.to_string(), steps as i64)
        );
        assert_eq!(
            db.scalar::<String>("SELECT state FROM dmig_migrations"),
            "interrupted"
        );

        let resumed = dmig(DMIG, dir.path(), &run[..6]).expect_code(0);
        assert!(
            resumed
                .stdout
                .contains(&format!("resumed from cursor {cursor}")),
            "{}",
            resumed.stdout
        );
        assert_eq!(
            db.scalar::<i64>("SELECT count(*) FROM counters WHERE n <> 1"),
            0
        );
    }
}

#[test]
fn a_second_signal_rolls_the_current_step_back_at_once() {
    let dir = TestDir::new("double-signal");
    let (test_db, mut db) = sqlite_counters(&dir, 5_000);
    // Each step sleeps 30 s after writing: only a rollback ends it quickly.
    let mut child = Command::new(DMIG)
        .args([
            "run",
            guests::COUNTER,
            "-D",
            test_db.url(),
            "--output",
            "json",
        ])
        .args([
            "--arg",
            "batch_size=100",
            "--arg",
            "sleep_ms=30000",
            "--max-steps",
            "1",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut events = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    next_event(&mut events, "started").unwrap();
    // Signals of one kind can merge while pending: send the second only once
    // the host has acted on the first.
    signal(&child, "INT");
    let mut line = String::new();
    while !line.contains("stopping after the current step") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the host ended early"
        );
    }
    signal(&child, "INT");
    let interrupted = next_event(&mut events, "interrupted").expect("an interrupted event");
    assert_eq!(child.wait().unwrap().code(), Some(7));
    assert_eq!(interrupted["steps"], 0);
    assert_prefix_done(&mut db, 0);
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM counter_batches"), 0);
    assert_eq!(
        db.scalar::<String>("SELECT status FROM dmig_runs"),
        "interrupted"
    );
}

#[test]
fn max_steps_runs_a_bounded_slice_and_pause_paces_it() {
    let dir = TestDir::new("max-steps");
    let (test_db, mut db) = sqlite_counters(&dir, 1_000);
    let url = test_db.url().to_owned();
    let slice = [
        "run",
        guests::COUNTER,
        "-D",
        &url,
        "--arg",
        "batch_size=100",
        "--max-steps",
        "3",
        "--pause",
        "5ms",
    ];
    let out = dmig(DMIG, dir.path(), &slice).expect_code(7);
    assert!(
        out.stderr.contains("migration counter was interrupted after 3 steps of this run (run 1, cursor 300); run it again to resume"),
        "{}",
        out.stderr
    );
    assert_prefix_done(&mut db, 300);
    dmig(DMIG, dir.path(), &slice).expect_code(7);
    assert_prefix_done(&mut db, 600);
    let rest = dmig(DMIG, dir.path(), &slice[..6]).expect_code(0);
    assert!(
        rest.stdout.contains("resumed from cursor 600"),
        "{}",
        rest.stdout
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM counters WHERE n <> 1"),
        0
    );
    let statuses: Vec<(String,)> = db.rows("SELECT status FROM dmig_runs ORDER BY id");
    assert_eq!(
        statuses,
        [
            ("interrupted".into(),),
            ("interrupted".into(),),
            ("succeeded".into(),)
        ]
    );
}

#[test]
fn restart_starts_over_instead_of_resuming() {
    let dir = TestDir::new("restart");
    let (test_db, mut db) = sqlite_counters(&dir, 1_000);
    let url = test_db.url().to_owned();
    let run = [
        "run",
        guests::COUNTER,
        "-D",
        &url,
        "--arg",
        "batch_size=100",
    ];
    dmig(
        DMIG,
        dir.path(),
        &[&run[..], &["--max-steps", "2"]].concat(),
    )
    .expect_code(7);
    dmig(DMIG, dir.path(), &[&run[..], &["--restart"]].concat()).expect_code(1);
    // From the start again, the first 200 counters reach 2: verify says so.
    let error: String = db.scalar("SELECT error FROM dmig_runs WHERE id = 2");
    assert_eq!(error, "verify failed: 200 counters are not exactly 1");
}

fn verify_failure_rolls_back_the_last_step(kind: Kind) {
    let dir = TestDir::new("verify");
    let Some((test_db, mut db)) = counters_db(kind, &dir, "verify", 1_000) else {
        return;
    };
    let url = test_db.url().to_owned();
    db.exec("UPDATE counters SET n = 7 WHERE id = 5");
    let out = dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            guests::COUNTER,
            "-D",
            &url,
            "--arg",
            "batch_size=100",
        ],
    )
    .expect_code(1);
    assert!(
        out.stderr
            .contains("step 11 (run 1, cursor 1000): verify failed: 1 counters are not exactly 1"),
        "{}",
        out.stderr
    );
    // Ten batches committed; the eleventh step (empty, then verify) rolled back.
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM counter_batches"), 10);
    let run: (String, i64, String) = db
        .rows::<(String, i64, String)>("SELECT status, steps, last_cursor FROM dmig_runs")[0]
        .clone();
    assert_eq!(run, ("failed".to_owned(), 10, "1000".to_owned()));
}

fn dry_run_reports_and_leaves_the_database_byte_for_byte(kind: Kind) {
    let dir = TestDir::new("dry-run");
    let Some((test_db, db)) = counters_db(kind, &dir, "dry_run", 1_000) else {
        return;
    };
    let url = test_db.url().to_owned();
    drop(db);
    let before = test_db.dump();

    let out = dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            guests::COUNTER,
            "-D",
            &url,
            "--arg",
            "batch_size=100",
            "--dry-run",
        ],
    )
    .expect_code(0);
    assert!(
        out.stdout
            .starts_with("dry run (up) of counter: 11 steps, 1000 rows in "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("everything was rolled back"),
        "{}",
        out.stdout
    );
    let table_row = |table: &str| {
        out.stdout
            .lines()
            .find(|l| l.contains(table))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        table_row("counter_batches").contains("+10"),
        "{}",
        out.stdout
    );
    assert!(table_row("counters ").contains("+0"), "{}", out.stdout);
    test_db.assert_unchanged(&before);

    let (mut child, mut events) = spawn(&dir, &["run", guests::COUNTER, "-D", &url, "--dry-run"]);
    let report = next_event(&mut events, "dry_run").expect("a dry_run event");
    assert!(child.wait().unwrap().success());
    assert_eq!(report["outcome"]["steps"], 3);
    let changes = report["changes"].as_array().unwrap();
    let batches = changes
        .iter()
        .find(|c| c["table"] == "counter_batches")
        .unwrap();
    assert_eq!(
        (batches["before"].as_i64(), batches["after"].as_i64()),
        (Some(0), Some(2))
    );
    test_db.assert_unchanged(&before);

    // A failing dry run rolls back too, and records nothing.
    let mut db = test_db.open();
    db.exec("UPDATE counters SET n = 7 WHERE id = 5");
    drop(db);
    let before = test_db.dump();
    let failed = dmig(
        DMIG,
        dir.path(),
        &["run", guests::COUNTER, "-D", &url, "--dry-run"],
    )
    .expect_code(1);
    assert!(
        failed
            .stderr
            .contains("(dry run, cursor 1000): verify failed"),
        "{}",
        failed.stderr
    );
    test_db.assert_unchanged(&before);
}

#[test]
fn json_events_carry_logs_progress_and_the_outcome() {
    let dir = TestDir::new("events");
    let url = dir.sqlite_url("app.db");
    let mut db = Db::open(&url);
    db.exec(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, slug TEXT);
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 1200)
         INSERT INTO users (id, name) SELECT i, 'User ' || i FROM s;",
    );
    let out = dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            guests::BACKFILL_USER_SLUGS,
            "-D",
            &url,
            "--output",
            "json",
            "--arg",
            "batch_size=400",
        ],
    )
    .expect_code(0);
    let events: Vec<Json> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["started", "log", "step", "step", "step", "step", "finished"]
    );
    assert_eq!(events[0]["migration"], "backfill-user-slugs");
    assert_eq!(events[0]["run_id"], 1);
    assert_eq!(events[1]["level"], "info");
    assert_eq!(
        events[1]["message"],
        "1200 users have no slug; batches of 400"
    );
    assert_eq!(events[2]["expected_rows"], 1200);
    assert_eq!(events[2]["rows"], 400);
    assert_eq!(events[5]["rows_total"], 1200);
    assert_eq!(events[6]["outcome"]["kind"], "completed");
    assert_eq!(events[6]["outcome"]["rows"], 1200);

    // A bad argument fails the run with a message naming it; a malformed
    // --arg is a usage error.
    let bad = dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            guests::BACKFILL_USER_SLUGS,
            "-D",
            &url,
            "--force",
            "--arg",
            "batch_size=lots",
        ],
    )
    .expect_code(1);
    assert!(
        bad.stderr.contains("argument batch_size=lots is invalid"),
        "{}",
        bad.stderr
    );
    let usage = dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            guests::BACKFILL_USER_SLUGS,
            "-D",
            &url,
            "--arg",
            "batch_size",
        ],
    )
    .expect_code(2);
    assert!(
        usage.stderr.contains("expected KEY=VALUE"),
        "{}",
        usage.stderr
    );
}

#[test]
fn history_lists_every_run() {
    let dir = TestDir::new("history");
    let (test_db, _db) = sqlite_counters(&dir, 300);
    let url = test_db.url().to_owned();
    dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            guests::COUNTER,
            "-D",
            &url,
            "--arg",
            "batch_size=100",
            "--max-steps",
            "1",
        ],
    )
    .expect_code(7);
    dmig(DMIG, dir.path(), &["run", guests::COUNTER, "-D", &url]).expect_code(0);
    let table = dmig(DMIG, dir.path(), &["history", "-D", &url]).expect_code(0);
    assert!(
        table.stdout.contains("interrupted") && table.stdout.contains("succeeded"),
        "{}",
        table.stdout
    );
    let json = dmig(DMIG, dir.path(), &["history", "-D", &url, "--json"]).expect_code(0);
    let runs: Json = serde_json::from_str(&json.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0]["id"].as_i64(), runs[0]["status"].as_str()),
        (Some(2), Some("succeeded"))
    );
    assert_eq!(
        (runs[1]["status"].as_str(), runs[1]["steps"].as_i64()),
        (Some("interrupted"), Some(1))
    );
    assert!(runs[0]["duration_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(runs[0]["rows_processed"], 200);

    let empty = dmig(
        DMIG,
        dir.path(),
        &["history", "-D", &dir.sqlite_url("other.db")],
    )
    .expect_code(3);
    assert!(empty.stderr.contains("cannot connect"), "{}", empty.stderr);
}

#[test]
fn components_built_against_wit_v0_1_0_still_run() {
    let dir = TestDir::new("legacy");
    let url = dir.sqlite_url("app.db");
    let mut db = Db::open(&url);
    db.exec("CREATE TABLE legacy_log (step INTEGER NOT NULL)");
    let out = dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            guests::LEGACY_V0_1_0,
            "-D",
            &url,
            "--allow-undeclared",
        ],
    )
    .expect_code(0);
    assert!(
        out.stdout
            .contains("applied legacy-v0-1-0: 3 steps, 3 rows"),
        "{}",
        out.stdout
    );
    let steps: Vec<(i64,)> = db.rows("SELECT step FROM legacy_log ORDER BY step");
    assert_eq!(steps, [(1,), (2,), (3,)]);
    dmig(
        DMIG,
        dir.path(),
        &[
            "down",
            guests::LEGACY_V0_1_0,
            "-D",
            &url,
            "--allow-undeclared",
        ],
    )
    .expect_code(0);
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM legacy_log"), 0);
}

#[test]
fn a_terminal_gets_a_progress_bar_with_rate_and_eta() {
    let dir = TestDir::new("tty");
    let (test_db, _db) = sqlite_counters(&dir, 2_000);
    let url = test_db.url().to_owned();
    let transcript = dir.path().join("tty.out");
    // `script` (util-linux) runs the host on a pseudo-terminal.
    let command = format!(
        "{DMIG} run {} -D {url} --arg batch_size=100 --pause 20ms",
        guests::COUNTER
    );
    let status = Command::new("script")
        .args(["-q", "-e", "-c", &command])
        .arg(&transcript)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("running script(1) from util-linux");
    assert!(status.success());
    let screen = String::from_utf8_lossy(&std::fs::read(&transcript).unwrap()).replace('\r', "\n");
    let bar = screen
        .lines()
        .find(|l| {
            l.contains("counter up [")
                && l.contains("/2,000 rows")
                && l.contains("rows/s")
                && l.contains("ETA")
        })
        .unwrap_or_else(|| panic!("no progress bar line in:\n{screen}"));
    assert!(bar.contains("step "), "{bar}");
    assert!(
        screen.contains("applied counter: 21 steps, 2000 rows"),
        "{screen}"
    );
}

// The lock connection is the host's: if it is lost, the run stops at once
// (exit 9) and never commits a further step; if another host took the lock
// over, the next step's commit is fenced off.

/// The message every lock-loss cause ends with.
const LOCK_LOST_ADVICE: &str =
    "the run stopped so that no second host could run alongside it; run again to resume";

/// Ends the session holding migration `name`'s advisory lock, from the test's
/// own connection; returns how many sessions it ended.
fn kill_lock_holder(db: &mut Db, kind: Kind, name: &str) -> usize {
    match kind {
        Kind::Sqlite => 0,
        Kind::Postgres => db
            .rows::<(bool,)>(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .len(),
        Kind::Mysql => {
            let holder: Option<i64> = db.scalar(&format!(
                "SELECT CAST(IS_USED_LOCK(CONCAT('dmig:', LEFT(SHA2(CONCAT(DATABASE(), '/{name}'), 256), 40))) AS SIGNED)"
            ));
            holder.map_or(0, |id| {
                db.exec(&format!("KILL {id}"));
                1
            })
        }
    }
}

/// The run recorded for a lost lock: failed, with a one-line cause that
/// starts with `how` and ends with the advice.
fn assert_lock_lost(db: &mut Db, how: &str, stderr: &str) {
    let (status, error) =
        db.rows::<(String, String)>("SELECT status, error FROM dmig_runs ORDER BY id")[0].clone();
    assert_eq!(status, "failed");
    assert!(
        error.starts_with(how) && error.ends_with(LOCK_LOST_ADVICE) && !error.contains('\n'),
        "{error}"
    );
    assert!(
        stderr.contains(&error),
        "the operator sees the cause: {stderr}"
    );
}

/// The step running when the lock connection is killed (from outside) rolls
/// back and the run stops within about a second, not at the end of the
/// step; the next run resumes.
fn a_killed_lock_connection_stops_the_run_at_once(kind: Kind) {
    if kind == Kind::Sqlite {
        return; // SQLite's lock is a lease row: no connection to lose.
    }
    let dir = TestDir::new("lock-killed");
    let Some((test_db, mut db)) = counters_db(kind, &dir, "lock_killed", 1000) else {
        return;
    };
    // Each step sleeps 5 s after its writes: the kill lands inside step 2.
    let args = [
        "run",
        guests::COUNTER,
        "-D",
        test_db.url(),
        "--arg",
        "batch_size=100",
        "--arg",
        "sleep_ms=5000",
    ];
    let mut killed = 0;
    let run = dmig_timed(DMIG, dir.path(), &args, 1, |_| {
        killed = kill_lock_holder(&mut db, kind, "counter");
    });
    assert_eq!(killed, 1, "the lock's session was found");
    let since = run.since_step.expect("step 1 committed");
    println!("{kind:?}: the run ended {since:?} after its lock connection was killed");
    assert_eq!(run.code, 9, "{}", run.stderr);
    assert!(since < Duration::from_secs(3), "{since:?}: {}", run.stderr);
    assert_lock_lost(
        &mut db,
        "the lock connection was closed by the server (",
        &run.stderr,
    );
    // Step 2 wrote, then rolled back.
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM counter_batches"), 1);
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM counters WHERE n = 1"),
        100
    );
    let resumed = dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            guests::COUNTER,
            "-D",
            test_db.url(),
            "--lock-timeout",
            "0s",
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

/// The attack of issue 13: a migration ends every other session of its
/// database, the host's lock connection among them, so a second host could
/// take the lock while the first runs on. The step must not commit, and the
/// run stops with the lock named as the cause.
fn a_guest_that_kills_the_lock_connection_is_stopped(kind: Kind) {
    let (statements, call): (&[&str], &str) = match kind {
        Kind::Sqlite => unreachable!("SQLite has no lock connection"),
        // Every other backend of this database (the lock connection among
        // them), found through functions rather than pg_stat_activity, which
        // the probe does not declare.
        Kind::Postgres => (
            &["sql=WITH b AS (SELECT pg_stat_get_backend_idset() AS id) \
                 SELECT count(pg_terminate_backend(pg_stat_get_backend_pid(id)))::text FROM b \
                 WHERE pg_stat_get_backend_dbid(id) = (SELECT pg_stat_get_backend_dbid(id) FROM b \
                 WHERE pg_stat_get_backend_pid(id) = pg_backend_pid()) \
                 AND pg_stat_get_backend_pid(id) <> pg_backend_pid()"],
            "query",
        ),
        Kind::Mysql => (&["sql=KILL CONNECTION 1"], "execute"),
    };
    let dir = TestDir::new("lock-guest");
    let Some(test_db) = TestDb::new(kind, &dir, "lock_guest") else {
        return;
    };
    let mut db = test_db.open();
    db.exec(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(200) NOT NULL);
         CREATE TABLE notes (step BIGINT NOT NULL)",
    );
    // The test's own session must not be among those the guest ends.
    drop(db);
    let call = format!("call={call}");
    let mut args = vec![
        "run",
        guests::SQL_PROBE_RAW,
        "-D",
        test_db.url(),
        "--arg",
        &call,
    ];
    for statement in statements {
        args.extend(["--arg", statement]);
    }
    let out = dmig(DMIG, dir.path(), &args);
    let mut db = test_db.open();
    if kind == Kind::Mysql {
        assert_eq!(out.code, 8, "{}", out.stderr);
        assert!(
            out.stderr.contains("KILL statements are refused"),
            "{}",
            out.stderr
        );
    } else {
        assert_eq!(out.code, 9, "{}", out.stderr);
        assert_lock_lost(
            &mut db,
            "the lock connection was closed by the server (",
            &out.stderr,
        );
    }
    let notes: Vec<(i64,)> = db.rows("SELECT step FROM notes ORDER BY step");
    assert_eq!(notes, [(1,)], "step 2 did not commit");
}

/// Another host took the lock over between two steps (SQLite: its lease
/// expired; the servers: its advisory lock was free and its holder record
/// replaced) while this host's lock connection lives on: the next step's
/// commit finds the lock record no longer its own and rolls back.
fn a_lock_taken_over_fences_the_next_step(kind: Kind) {
    let dir = TestDir::new("lock-fence");
    let Some((test_db, mut db)) = counters_db(kind, &dir, "lock_fence", 1000) else {
        return;
    };
    let args = [
        "run",
        guests::COUNTER,
        "-D",
        test_db.url(),
        "--arg",
        "batch_size=100",
        "--pause",
        "2s",
    ];
    let run = dmig_timed(DMIG, dir.path(), &args, 1, |_| {
        db.exec("UPDATE dmig_locks SET holder = 'another-host:4242:x', host = 'another-host', pid = 4242");
    });
    assert_eq!(run.code, 9, "{}", run.stderr);
    assert_lock_lost(
        &mut db,
        "the lock was taken over by another host (the lock record no longer names this host)",
        &run.stderr,
    );
    // Step 2 ran but did not commit.
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM counter_batches"), 1);
    let steps: i64 = db.scalar("SELECT steps FROM dmig_runs");
    assert_eq!(steps, 1);
    // The pretend host goes away; the next run resumes.
    db.exec("DELETE FROM dmig_locks");
    let resumed = dmig(
        DMIG,
        dir.path(),
        &["run", guests::COUNTER, "-D", test_db.url()],
    )
    .expect_code(0);
    assert!(
        resumed.stdout.contains("resumed from cursor 100"),
        "{}",
        resumed.stdout
    );
}

/// A second signal rolls the step back at once even while the step waits on
/// a statement in the database: the host cancels the statement rather than
/// wait for it.
fn a_second_signal_cancels_the_running_statement(kind: Kind) {
    let dir = TestDir::new("signal-statement");
    let Some(test_db) = TestDb::new(kind, &dir, "signal_statement") else {
        return;
    };
    let mut db = test_db.open();
    db.exec(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(200) NOT NULL);
         CREATE TABLE notes (step BIGINT NOT NULL)",
    );
    let statement = match kind {
        Kind::Postgres => "sql=SELECT pg_sleep(20)::text",
        Kind::Mysql => "sql=SELECT SLEEP(20)",
        Kind::Sqlite => {
            "sql=WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"
        }
    };
    let args = [
        "run",
        guests::SQL_PROBE_RAW,
        "-D",
        test_db.url(),
        "--arg",
        statement,
    ];
    let run = dmig_timed(DMIG, dir.path(), &args, 1, |pid| {
        // Into the statement, then two signals of different kinds (two of
        // one kind may merge while pending).
        std::thread::sleep(Duration::from_millis(500));
        let child = pid.to_string();
        for name in ["-INT", "-TERM"] {
            assert!(
                Command::new("kill")
                    .args([name, &child])
                    .status()
                    .unwrap()
                    .success()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let since = run.since_step.expect("step 1 committed");
    println!(
        "{kind:?}: the run ended {since:?} after the second signal (and 300 ms of the test's own wait)"
    );
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(since < Duration::from_secs(2), "{since:?}: {}", run.stderr);
    let notes: Vec<(i64,)> = db.rows("SELECT step FROM notes ORDER BY step");
    assert_eq!(notes, [(1,)], "step 2 rolled back");
    assert_eq!(
        db.scalar::<String>("SELECT status FROM dmig_runs"),
        "interrupted"
    );
}
