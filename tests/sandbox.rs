//! The hostile-guest suite: each test runs one attack from the `hostile`
//! guest in its second step and checks the exit code, the cause recorded in
//! the ledger, that the database is exactly as the first (committed) step
//! left it, and that the database and host are still usable afterwards.
mod sql_differential;

use std::path::Path;
use std::time::Duration;

/// Issue 13's trust-boundary suite: every way a statement can reach past the
/// manifest, on every database it concerns.
mod trust_boundary;

use dmig_host::sandbox::ComponentCache;
use dmig_host::{Artifact, Direction, RunOptions, Runner, SandboxBuilder};
use dmig_tests::{Db, Kind, Run, TestDb, TestDir, dmig, dmig_timed, guests};

const DMIG: &str = env!("CARGO_BIN_EXE_dmig-host-under-test");

/// A database with the tables the hostile guest uses, set to `attack`.
fn hostile_db(dir: &TestDir, attack: &str, arg: &str) -> (String, Db) {
    let url = dir.sqlite_url("app.db");
    let mut db = Db::open(&url);
    db.exec(
        "CREATE TABLE progress (step INTEGER NOT NULL, note TEXT NOT NULL);
         CREATE TABLE imported (line TEXT NOT NULL);
         CREATE TABLE attack (name TEXT NOT NULL, arg TEXT)",
    );
    db.exec_one(&format!(
        "INSERT INTO attack (name, arg) VALUES ('{attack}', '{}')",
        arg.replace('\'', "''")
    ));
    (url, db)
}

/// Runs `attack` through the CLI with `flags` and checks everything every
/// attack must leave behind. Returns the recorded cause and the run.
fn attack(test: &str, attack: &str, arg: &str, flags: &[&str], code: i32) -> (String, Run) {
    attack_then(test, attack, arg, flags, code, true)
}

/// [`attack`], optionally without the follow-up run that shows the database
/// still usable (for loops over many cases of one kind).
fn attack_then(
    test: &str,
    attack: &str,
    arg: &str,
    flags: &[&str],
    code: i32,
    follow_up: bool,
) -> (String, Run) {
    let dir = TestDir::new(test);
    let (url, mut db) = hostile_db(&dir, attack, arg);
    let mut args = vec!["run", guests::HOSTILE, "-D", &url, "-v"];
    args.extend_from_slice(flags);
    let run = dmig(DMIG, dir.path(), &args).expect_code(code);
    assert_contained(&mut db, &run);
    let cause: String = db.scalar("SELECT error FROM dmig_runs");
    assert!(
        run.stderr.contains(&format!("(run 1, cursor 1): {cause}")),
        "the operator sees the recorded cause: {}",
        run.stderr
    );
    if !follow_up {
        return (cause, run);
    }
    // The same database takes the next run at once: no lock or open
    // transaction was left behind.
    db.exec("UPDATE attack SET name = 'statement', arg = 'SELECT 1'");
    let next = dmig(DMIG, dir.path(), &["run", guests::HOSTILE, "-D", &url]).expect_code(1);
    assert!(
        next.stderr.contains("statement ran: SELECT 1"),
        "{}",
        next.stderr
    );
    (cause, run)
}

/// The database is exactly as step 1 committed it, and the run is recorded
/// as failed at that step.
fn assert_contained(db: &mut Db, run: &Run) {
    let progress: Vec<(i64, String)> = db.rows("SELECT step, note FROM progress ORDER BY rowid");
    assert_eq!(
        progress,
        vec![(1, "committed".to_owned())],
        "{}",
        run.stderr
    );
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM imported"), 0);
    let recorded = db
        .rows::<(String, i64, Option<String>)>("SELECT status, steps, last_cursor FROM dmig_runs")
        [0]
    .clone();
    assert_eq!(recorded, ("failed".to_owned(), 1, Some("1".to_owned())));
    assert_eq!(
        db.scalar::<String>("SELECT state FROM dmig_migrations"),
        "failed"
    );
}

#[test]
fn infinite_loop_is_stopped_at_the_step_timeout() {
    let (cause, _) = attack("loop", "infinite-loop", "", &["--step-timeout", "300ms"], 5);
    assert_eq!(cause, "step exceeded 0.3 s (guest code was still running)");
}

#[test]
fn endless_host_calls_are_stopped_at_the_step_timeout() {
    let (cause, _) = attack(
        "call-loop",
        "host-call-loop",
        "",
        &["--step-timeout", "300ms"],
        5,
    );
    assert!(cause.starts_with("step exceeded 0.3 s ("), "{cause}");
}

#[test]
fn a_query_running_forever_inside_the_database_is_interrupted() {
    let cte =
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r";
    let (cause, _) = attack(
        "forever-cte",
        "statement",
        cte,
        &["--step-timeout", "500ms"],
        5,
    );
    assert_eq!(
        cause,
        "step exceeded 0.5 s (the time ran out inside a database call)"
    );
}

#[test]
fn fuel_gives_a_deterministic_budget() {
    let (cause, _) = attack("fuel", "infinite-loop", "", &["--fuel", "5000000"], 5);
    assert_eq!(cause, "guest ran out of fuel (budget 5000000 per step)");
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let (cause, _) = attack(
        "memory-bomb",
        "memory-bomb",
        "",
        &["--max-memory", "64MiB"],
        5,
    );
    assert_eq!(cause, "guest exceeded its 64 MiB memory limit");
}

#[test]
fn memory_bomb_hits_the_default_limit() {
    let (cause, _) = attack("memory-default", "memory-bomb", "", &[], 5);
    assert_eq!(cause, "guest exceeded its 256 MiB memory limit");
}

#[test]
fn unbounded_recursion_overflows_the_stack_cleanly() {
    let (cause, _) = attack("recursion", "recursion", "", &[], 5);
    assert_eq!(
        cause,
        "guest accessed memory out of bounds: its stack most likely overflowed (unbounded recursion?), or unsafe code went wrong"
    );
}

#[test]
fn a_panic_after_writes_rolls_the_step_back_and_reports_where() {
    let (cause, run) = attack("panic", "panic", "", &[], 5);
    let pattern = "guest panicked at tests/guests/hostile/src/lib.rs:";
    assert!(cause.starts_with(pattern), "{cause}");
    assert!(
        cause.ends_with(": index out of bounds: the len is 3 but the index is 5"),
        "{cause}"
    );
    // What the guest printed before panicking reaches the host's log.
    assert!(
        run.stderr.contains("about to index 5 of 3"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_abort_without_a_message_is_named_as_such() {
    let (cause, _) = attack("abort", "abort", "", &[], 5);
    assert_eq!(
        cause,
        "guest trapped: wasm `unreachable` executed (an abort)"
    );
}

#[test]
fn guest_output_is_bounded() {
    let (cause, run) = attack("flood", "print-flood", "", &[], 1);
    assert_eq!(cause, "printed 200000 lines");
    assert!(
        run.stderr
            .contains("more bytes of guest output were dropped"),
        "{}",
        &run.stderr[..200]
    );
    assert!(
        run.stderr.len() < 1024 * 1024,
        "host log is bounded: {} bytes",
        run.stderr.len()
    );
}

#[test]
fn a_huge_result_is_cut_off_at_the_row_limit() {
    let (cause, _) = attack("huge-result", "huge-result", "", &[], 1);
    assert_eq!(
        cause,
        "database error dmig:limit: the query returned more than 100000 rows (the per-call limit); fetch fewer rows per step"
    );
}

#[test]
fn a_huge_result_is_cut_off_at_the_byte_limit() {
    let (cause, _) = attack(
        "huge-bytes",
        "huge-result-bytes",
        "",
        &["--max-result-bytes", "8MiB"],
        1,
    );
    assert_eq!(
        cause,
        "database error dmig:limit: the query returned more than 8388608 bytes (the per-call limit); fetch fewer or smaller rows per step"
    );
}

#[test]
fn huge_sql_text_is_refused() {
    let (cause, _) = attack("huge-sql", "huge-sql", "", &[], 1);
    assert!(
        cause.starts_with("database error dmig:limit: the SQL text is 20971")
            && cause.ends_with("bytes, over the per-call limit of 1048576 bytes"),
        "{cause}"
    );
}

#[test]
fn huge_parameter_lists_are_refused() {
    let (cause, _) = attack("huge-params", "huge-params", "", &[], 1);
    assert_eq!(
        cause,
        "database error dmig:limit: the call passes 200000 parameter values, over the per-call limit of 100000; send smaller batches"
    );
}

#[test]
fn reading_etc_passwd_fails() {
    let (cause, _) = attack("passwd", "read-file", "/etc/passwd", &[], 1);
    assert!(cause.starts_with("read /etc/passwd: "), "{cause}");
}

#[test]
fn listing_the_root_fails() {
    let (cause, _) = attack("list-root", "list-dir", "/", &[], 1);
    assert!(cause.starts_with("list /: "), "{cause}");
}

#[test]
fn writing_a_file_fails() {
    let (cause, _) = attack("write", "write-file", "/tmp/dmig-pwned", &[], 1);
    assert!(cause.starts_with("write /tmp/dmig-pwned: "), "{cause}");
    assert!(!Path::new("/tmp/dmig-pwned").exists());
}

#[test]
fn opening_a_tcp_connection_fails() {
    // PostgreSQL listens here on a dev machine or CI; the guest must not reach it.
    let (cause, _) = attack("tcp", "tcp", "127.0.0.1:5432", &[], 1);
    assert!(cause.starts_with("connect 127.0.0.1:5432: "), "{cause}");
}

#[test]
fn no_environment_arguments_or_stdin() {
    let dir = TestDir::new("ambient");
    let (url, _db) = hostile_db(&dir, "ambient", "");
    let run = dmig_tests::dmig_with_env(
        DMIG,
        dir.path(),
        &["run", guests::HOSTILE, "-D", &url],
        &[("SECRET_TOKEN", "hunter2")],
    )
    .expect_code(1);
    assert!(
        run.stderr
            .contains("env vars: 0, args: 0, stdin: 0 bytes (ok)"),
        "{}",
        run.stderr
    );
}

#[test]
fn statements_that_escape_the_step_are_refused_by_name() {
    let cases = [
        ("BEGIN", "BEGIN", "the host owns each step's transaction"),
        ("COMMIT", "COMMIT", "the host owns each step's transaction"),
        (
            "END TRANSACTION",
            "END TRANSACTION",
            "the host owns each step's transaction",
        ),
        (
            "ROLLBACK",
            "ROLLBACK",
            "the host owns each step's transaction",
        ),
        (
            "SAVEPOINT sp",
            "SAVEPOINT sp",
            "the host owns each step's transaction",
        ),
        (
            "RELEASE sp",
            "RELEASE sp",
            "the host owns each step's transaction",
        ),
        (
            "ATTACH DATABASE ':memory:' AS other",
            "ATTACH DATABASE",
            "which databases the connection can reach",
        ),
        (
            "DETACH other",
            "DETACH other",
            "which databases the connection can reach",
        ),
        (
            "PRAGMA foreign_keys = OFF",
            "PRAGMA foreign_keys",
            "pragmas change connection or database settings",
        ),
        (
            "pragma journal_mode=wal",
            "PRAGMA journal_mode",
            "pragmas change connection or database settings",
        ),
        ("VACUUM", "VACUUM", "rewrite or maintain whole tables"),
        (
            "SET SESSION sql_mode = ''",
            "SET SESSION",
            "the connection's session state",
        ),
        (
            "LOCK TABLE progress",
            "LOCK TABLE",
            "explicit locks outlive the statement",
        ),
        (
            "SELECT 1; COMMIT",
            "SELECT 1 …; …",
            "one call runs exactly one statement",
        ),
        (
            "/* look away */ commit",
            "COMMIT",
            "the host owns each step's transaction",
        ),
    ];
    for (i, (sql, statement, reason)) in cases.into_iter().enumerate() {
        // A refusal traps (exit 8): the guest cannot swallow it and go on.
        let (cause, _) = attack_then("refused", "statement", sql, &[], 8, i == 0);
        assert!(cause.starts_with("statement `"), "{sql}: {cause}");
        let kind = statement.split_whitespace().next().unwrap_or_default();
        assert!(
            cause.contains(&format!("{kind} statements are refused because"))
                || statement.ends_with("…; …"),
            "{sql}: {cause}"
        );
        assert!(cause.contains(reason), "{sql}: {cause}");
    }
}

#[test]
fn a_granted_input_is_readable_read_only_and_alone() {
    let dir = TestDir::new("input");
    let (url, mut db) = hostile_db(&dir, "input", "data.csv");
    let data = dir.write("data.csv", b"id,name\n1,ada\n2,grace\n");
    dir.write("secret.txt", b"not granted");
    let grant = format!("data.csv={}", data.display());
    let run = dmig(
        DMIG,
        dir.path(),
        &["run", guests::HOSTILE, "-D", &url, "--input", &grant],
    )
    .expect_code(1);
    assert_contained(&mut db, &run);
    let cause: String = db.scalar("SELECT error FROM dmig_runs");
    assert_eq!(
        cause,
        "imported 3 lines; inputs visible: [\"data.csv\"]; write allowed: false; escape allowed: false"
    );
    assert_eq!(std::fs::read(&data).unwrap(), b"id,name\n1,ada\n2,grace\n");

    // Without the grant, the guest is told how to get it.
    let (cause, _) = attack("input-missing", "input", "data.csv", &[], 1);
    assert!(
        cause.starts_with("cannot read input data.csv: ")
            && cause.ends_with("(grant it with dmig-host run --input data.csv=PATH)"),
        "{cause}"
    );
}

#[test]
fn bad_grants_are_usage_errors_that_touch_nothing() {
    let dir = TestDir::new("bad-grant");
    let (url, mut db) = hostile_db(&dir, "ambient", "");
    let before = db.user_data();
    for (grant, message) in [
        ("data.csv", "expected NAME=PATH"),
        ("data.csv=/no/such/file", "cannot grant input data.csv"),
        ("../x=/etc/hostname", "must be a plain file name"),
        (
            &format!("d={}", dir.path().display()),
            "it is not a regular file",
        ),
    ] {
        let run = dmig(
            DMIG,
            dir.path(),
            &["run", guests::HOSTILE, "-D", &url, "--input", grant],
        )
        .expect_code(2);
        assert!(run.stderr.contains(message), "{grant}: {}", run.stderr);
    }
    assert_eq!(db.user_data(), before);
    assert!(db.ledger_tables().is_empty());
}

/// Resident memory of this process, from /proc.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// One host process goes through a series of attacks, each contained, and
/// then runs a well-behaved migration; its memory does not grow with them.
#[test]
fn one_host_survives_every_trap_and_runs_the_next_migration() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let runner = Runner::new(
        SandboxBuilder::new()
            .step_timeout(Duration::from_millis(500))
            .max_memory(64 * 1024 * 1024)
            .build()
            .unwrap(),
    );
    let hostile = Artifact::load(guests::HOSTILE).unwrap();
    let options = RunOptions::default();
    let mut baseline = None;
    for round in 0..3 {
        for name in [
            "infinite-loop",
            "memory-bomb",
            "recursion",
            "panic",
            "huge-result",
        ] {
            let dir = TestDir::new("in-process");
            let (url, mut db) = hostile_db(&dir, name, "");
            let error = rt
                .block_on(runner.run(&hostile, &url, Direction::Up, &options))
                .unwrap_err();
            assert!(
                matches!(error, dmig_host::Error::MigrationFailed { .. }),
                "{name}: {error}"
            );
            let progress: Vec<(i64,)> = db.rows("SELECT step FROM progress");
            assert_eq!(progress, vec![(1,)], "{name}");
        }
        // Memory after the first round is the baseline: later rounds of the
        // same attacks must not add to it.
        let rss = rss_bytes();
        let base = *baseline.get_or_insert(rss);
        assert!(
            rss < base + 64 * 1024 * 1024,
            "round {round}: rss {rss} grew from {base}"
        );
    }

    let dir = TestDir::new("after-attacks");
    let url = dir.sqlite_url("app.db");
    let mut db = Db::open(&url);
    db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, slug TEXT); INSERT INTO users (id, name) VALUES (1, 'Ada'), (2, 'Grace');");
    let example = Artifact::load(guests::BACKFILL_USER_SLUGS).unwrap();
    let outcome = rt
        .block_on(runner.run(&example, &url, Direction::Up, &options))
        .unwrap();
    assert_eq!(outcome.rows, 2);
    let slugs: Vec<(String,)> = db.rows("SELECT slug FROM users ORDER BY id");
    assert_eq!(slugs, vec![("ada-1".to_owned(),), ("grace-2".to_owned(),)]);
}

/// `dangerous_disable_limits` (for the benchmark's limits-off runs) really
/// lifts what the same builder enforces otherwise.
#[test]
fn disabled_limits_let_through_what_the_limits_stop() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hostile = Artifact::load(guests::HOSTILE).unwrap();
    let options = RunOptions::default();
    let mut builder = SandboxBuilder::new();
    builder
        .compile_cache(Some(ComponentCache::new(dmig_tests::test_cache_dir())))
        .max_memory(64 * 1024);

    // Limited: the guest cannot even get its initial memory.
    let dir = TestDir::new("limited");
    let (url, _db) = hostile_db(&dir, "huge-sql", "");
    let limited = Runner::new(builder.build().unwrap());
    let error = rt
        .block_on(limited.run(&hostile, &url, Direction::Up, &options))
        .unwrap_err();
    assert!(
        error.to_string().contains("memory limit"),
        "the 64 KiB limit stops instantiation: {error}"
    );

    // Unlimited: it instantiates, and its 2 MiB statement (over the 1 MiB
    // per-call cap) runs, so the migration completes.
    builder.dangerous_disable_limits();
    let dir = TestDir::new("unlimited");
    let (url, mut db) = hostile_db(&dir, "huge-sql", "");
    let unlimited = Runner::new(builder.build().unwrap());
    let outcome = rt
        .block_on(unlimited.run(&hostile, &url, Direction::Up, &options))
        .unwrap();
    assert_eq!(outcome.steps, 2);
    let progress: Vec<(i64,)> = db.rows("SELECT step FROM progress ORDER BY step");
    assert_eq!(progress, vec![(1,), (2,)]);
}

#[test]
fn compiled_components_are_cached_and_a_tampered_entry_is_recompiled() {
    let dir = TestDir::new("cache");
    let (url, _db) = hostile_db(&dir, "statement", "SELECT 1");
    let cache = dir.path().join("cache");
    let cache_env = [("DMIG_CACHE_DIR", cache.to_str().unwrap())];
    let run = |extra: &[&str]| {
        let mut args = vec!["run", guests::HOSTILE, "-D", &url, "-vv", "--force"];
        args.extend_from_slice(extra);
        dmig_tests::dmig_with_env(DMIG, dir.path(), &args, &cache_env).expect_code(1)
    };
    let first = run(&[]);
    assert!(
        first.stderr.contains("cached the compiled component"),
        "{}",
        first.stderr
    );
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        entries.len(),
        2,
        "the compiled code and its digest: {entries:?}"
    );

    let second = run(&[]);
    assert!(
        second
            .stderr
            .contains("loaded compiled component from cache"),
        "{}",
        second.stderr
    );

    // Flip one byte of the compiled code: it must be recompiled, not loaded.
    let entry = entries
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap();
    let mut bytes = std::fs::read(entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(entry, &bytes).unwrap();
    let tampered = run(&[]);
    assert!(
        tampered
            .stderr
            .contains("compiled component failed validation; recompiling it"),
        "{}",
        tampered.stderr
    );
    assert!(
        tampered.stderr.contains("statement ran: SELECT 1"),
        "{}",
        tampered.stderr
    );
    let again = run(&[]);
    assert!(
        again
            .stderr
            .contains("loaded compiled component from cache"),
        "rewritten: {}",
        again.stderr
    );

    std::fs::remove_dir_all(&cache).unwrap();
    let uncached = run(&["--no-cache"]);
    assert!(
        !uncached.stderr.contains("cached the compiled component"),
        "{}",
        uncached.stderr
    );
    assert!(!cache.exists());
}

// The step timeout is the host's: a statement still running in the database
// at the deadline is cancelled by the host itself, whatever the session's own
// statement timeout says, and the process exits within the limit plus about
// a second. The `sql-probe-raw` guest commits one row to `notes` in step 1,
// then in step 2 writes another and sends the statements it is given.

dmig_tests::on_every_database!(
    a_statement_past_the_deadline_is_cancelled_by_the_host,
    execute_many_stops_at_the_deadline,
);

/// The step timeout of these tests, and the bound the whole rest of the run
/// (from step 1's report to the process's exit) must keep. The requirement is
/// the limit plus one second; the extra second is slack for a loaded machine.
/// Unbounded, these runs take 20 s or more; the server's own statement
/// timeout (a backstop) would fire only after 13 s.
const LIMIT: Duration = Duration::from_secs(3);
const BOUND: Duration = Duration::from_secs(5);

/// A database with the tables `sql-probe-raw` uses.
fn probe_db(kind: Kind, dir: &TestDir, test: &str) -> Option<(TestDb, Db)> {
    let test_db = TestDb::new(kind, dir, test)?;
    let mut db = test_db.open();
    db.exec(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(200) NOT NULL);
         CREATE TABLE notes (step BIGINT NOT NULL)",
    );
    Some((test_db, db))
}

/// Runs `sql-probe-raw` with `args` and `--step-timeout 3s`; checks that it
/// failed as a timeout inside a database call within [`BOUND`] of step 2's
/// start, that step 2 rolled back, that the run is recorded failed with a
/// one-line cause, that nothing of the statement still runs in the server,
/// and that the next run resumes at once.
fn assert_cancelled_in_time(kind: Kind, test: &str, args: &[&str]) {
    let dir = TestDir::new(test);
    let Some((test_db, mut db)) = probe_db(kind, &dir, test) else {
        return;
    };
    let mut run = vec![
        "run",
        guests::SQL_PROBE_RAW,
        "-D",
        test_db.url(),
        "--step-timeout",
        "3s",
    ];
    run.extend_from_slice(args);
    let timed = dmig_timed(DMIG, dir.path(), &run, 1, |_| {});
    let since = timed.since_step.expect("step 1 committed");
    println!("{kind:?} {test}: step 2 to exit took {since:?}");
    assert_eq!(timed.code, 5, "{}", timed.stderr);
    assert!(
        since < BOUND,
        "{kind:?}: the run ended {since:?} after step 2 began; the limit is {LIMIT:?}\n{}",
        timed.stderr
    );
    let cause = "step exceeded 3 s (the time ran out inside a database call)";
    assert!(timed.stderr.contains(cause), "{}", timed.stderr);
    let notes: Vec<(i64,)> = db.rows("SELECT step FROM notes ORDER BY step");
    assert_eq!(notes, [(1,)], "step 2 rolled back");
    let recorded = db.rows::<(String, String)>("SELECT status, error FROM dmig_runs")[0].clone();
    assert_eq!(recorded, ("failed".to_owned(), cause.to_owned()));
    // Nothing of the step still runs on the server.
    let running: i64 = match kind {
        Kind::Sqlite => 0,
        Kind::Postgres => db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND state = 'active' AND query ILIKE '%sleep%'",
        ),
        Kind::Mysql => db.scalar(
            "SELECT count(*) FROM information_schema.processlist WHERE db = DATABASE() \
             AND id <> CONNECTION_ID() AND info LIKE '%SLEEP%'",
        ),
    };
    assert_eq!(running, 0, "the step's statement is not left running");
    // The database and the lock are free: the next run resumes at once.
    let next = dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            guests::SQL_PROBE_RAW,
            "-D",
            test_db.url(),
            "--lock-timeout",
            "0s",
            "--arg",
            "sql=SELECT 1",
        ],
    )
    .expect_code(1);
    assert!(
        next.stderr
            .contains("every statement ran: sql returned 1 row(s)"),
        "{}",
        next.stderr
    );
}

/// PostgreSQL: the guest turns its session's `statement_timeout` off first,
/// which must change nothing. MySQL/MariaDB: the session's
/// `max_statement_time` is only a backstop 10 s past the step timeout.
/// SQLite: a recursive CTE that never ends.
fn a_statement_past_the_deadline_is_cancelled_by_the_host(kind: Kind) {
    let args: &[&str] = match kind {
        Kind::Postgres => &[
            "--arg",
            "sql=SELECT set_config('statement_timeout', '0', false)",
            "--arg",
            "sql2=SELECT pg_sleep(20)::text",
        ],
        Kind::Mysql => &["--arg", "sql=SELECT SLEEP(20)"],
        Kind::Sqlite => &[
            "--arg",
            "sql=WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r",
        ],
    };
    assert_cancelled_in_time(kind, "cancel-statement", args);
}

/// `execute_many` of a one-second statement with 100 empty parameter sets:
/// each statement ends well within the server's own timeout, and the loop
/// must start no further statement after the deadline.
fn execute_many_stops_at_the_deadline(kind: Kind) {
    let sql = match kind {
        Kind::Postgres => "sql=SELECT pg_sleep(1)",
        Kind::Mysql => "sql=SELECT SLEEP(1)",
        Kind::Sqlite => {
            "sql=WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 3000000) SELECT count(*) FROM r"
        }
    };
    assert_cancelled_in_time(
        kind,
        "cancel-many",
        &["--arg", "call=many", "--arg", "sets=100", "--arg", sql],
    );
}
