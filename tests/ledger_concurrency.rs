//! The ledger's schema is versioned, created and upgraded safely when
//! several hosts start at once (issue 14, item 6), upgraded in place from
//! ledgers older dmig-hosts made, and refused when it is newer than the
//! host.

use std::sync::Barrier;

use dmig_tests::{Kind, Run, TestDir, dmig, guests, on_every_database, runner_probe_db};

const DMIG: &str = env!("CARGO_BIN_EXE_dmig-host-under-test");

/// The ledger version this dmig-host writes.
const VERSION: i64 = 5;

on_every_database!(
    issue_14_hosts_started_together_on_a_fresh_database_all_succeed,
    issue_14_a_ledger_without_versions_is_upgraded_in_place,
    issue_14_a_ledger_newer_than_the_host_is_refused,
);

fn apply(dir: &TestDir, url: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "run",
        guests::RUNNER_PROBE,
        "-D",
        url,
        "--arg",
        "mode=contend",
        "--arg",
        "order=1",
    ];
    args.extend_from_slice(extra);
    dmig(DMIG, dir.path(), &args)
}

/// Three hosts started together on a database with no ledger: before
/// versioning, two of three failed on PostgreSQL (exit 3, `duplicate key
/// value violates unique constraint "pg_type_typname_nsp_index"` from
/// concurrent `CREATE TABLE IF NOT EXISTS`). Now one creates the ledger and
/// applies the migration; the others wait their turn and find it done.
fn issue_14_hosts_started_together_on_a_fresh_database_all_succeed(kind: Kind) {
    const HOSTS: usize = 3;
    const TRIES: usize = 5;
    for attempt in 0..TRIES {
        let dir = TestDir::new("concurrent-ledger");
        let Some((test_db, mut db)) =
            runner_probe_db(kind, &dir, &format!("concurrent_{attempt}"), 1, 0)
        else {
            return;
        };
        let url = test_db.url().to_owned();
        let start = Barrier::new(HOSTS);
        let runs: Vec<Run> = std::thread::scope(|s| {
            let hosts: Vec<_> = (0..HOSTS)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        apply(&dir, &url, &[])
                    })
                })
                .collect();
            hosts.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for run in runs {
            run.expect_code(0);
        }
        let versions = db.rows::<(i64,)>("SELECT version FROM dmig_schema ORDER BY version");
        assert_eq!(
            versions,
            (1..=VERSION).map(|v| (v,)).collect::<Vec<_>>(),
            "try {attempt}"
        );
        // Applied once, by one run.
        assert_eq!(db.scalar::<i64>("SELECT done FROM probe_items"), 1);
        assert_eq!(db.scalar::<i64>("SELECT count(*) FROM dmig_runs"), 1);
    }
}

/// A rolling deploy: a new host upgrades the ledger while an older host's
/// step is open. The older host holds `dmig_locks` (its step's fence) and
/// then reads `dmig_runs`, which the upgrade has altered and holds, while
/// the upgrade waits for `dmig_locks`: a deadlock, whose victim PostgreSQL
/// picks. The upgrade used to fail with exit 3 when it was the victim; now
/// it rolls back, waits, and upgrades once the older step has committed.
#[test]
fn postgres_issue_14_a_ledger_upgrade_survives_a_deadlock_with_an_older_host() {
    let dir = TestDir::new("upgrade-deadlock");
    let Some((test_db, mut db)) = runner_probe_db(Kind::Postgres, &dir, "upgrade_deadlock", 1, 0)
    else {
        return;
    };
    let url = test_db.url().to_owned();
    db.exec(&old_ledger(Kind::Postgres, true));
    let mut older_host = test_db.open();
    // The older host's step: it holds its lock row. Its own deadlock check
    // comes late, so the upgrade is the one that finds the deadlock.
    older_host.exec(
        "BEGIN;
         SET LOCAL deadlock_timeout = '30s';
         INSERT INTO dmig_locks (migration, holder, host, pid, acquired_at, expires_at)
             VALUES ('old-one', 'older', 'elsewhere', 1, '2026-01-01T00:00:00.000Z',
                     '2099-01-01T00:00:00.000Z')",
    );
    std::thread::scope(|scope| {
        let upgrade = scope.spawn(|| apply(&dir, &url, &[]));
        // The upgrade has altered dmig_runs and waits for dmig_locks.
        let mut watcher = test_db.open();
        let since = std::time::Instant::now();
        while watcher.scalar::<i64>(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'dmig_locks'::regclass",
        ) == 0
        {
            assert!(
                since.elapsed() < std::time::Duration::from_secs(60),
                "the upgrade never waited for dmig_locks"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // The older host's step goes on to dmig_runs: the deadlock. The upgrade
        // is rolled back, so this read goes through, and the step commits.
        older_host.scalar::<i64>("SELECT count(*) FROM dmig_runs");
        older_host.exec("COMMIT");
        let run = upgrade.join().unwrap().expect_code(0);
        assert!(
            run.stderr.contains("deadlock detected") && run.stderr.contains("trying again"),
            "{}",
            run.stderr
        );
    });
    let versions = db.rows::<(i64,)>("SELECT version FROM dmig_schema ORDER BY version");
    let expected: Vec<(i64,)> = (1..=VERSION).map(|v| (v,)).collect();
    assert_eq!(versions, expected);
}

/// The ledger tables as dmig-host made them before ledger versions (and
/// before `signer` when `signer` is false).
fn old_ledger(kind: Kind, signer: bool) -> String {
    let (key, id, big) = match kind {
        Kind::Sqlite => ("TEXT", "INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER"),
        Kind::Postgres => (
            "TEXT",
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            "BIGINT",
        ),
        Kind::Mysql => (
            "VARCHAR(255)",
            "BIGINT AUTO_INCREMENT PRIMARY KEY",
            "BIGINT",
        ),
    };
    let signer = if signer { "signer TEXT," } else { "" };
    format!(
        "CREATE TABLE dmig_migrations (name {key} PRIMARY KEY NOT NULL, sha256 TEXT NOT NULL,
             description TEXT NOT NULL, state TEXT NOT NULL, first_applied_at TEXT,
             last_finished_at TEXT);
         CREATE TABLE dmig_runs (id {id}, migration {key} NOT NULL, direction TEXT NOT NULL,
             status TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
             steps {big} NOT NULL DEFAULT 0, rows_processed {big} NOT NULL DEFAULT 0,
             last_cursor TEXT, error TEXT, host_version TEXT NOT NULL, sha256 TEXT NOT NULL,
             {signer} FOREIGN KEY (migration) REFERENCES dmig_migrations (name));
         CREATE TABLE dmig_locks (migration {key} PRIMARY KEY NOT NULL, holder TEXT NOT NULL,
             run_id {big}, host TEXT NOT NULL, pid {big} NOT NULL, acquired_at TEXT NOT NULL,
             expires_at TEXT NOT NULL);
         INSERT INTO dmig_migrations VALUES ('old-one', 'abc', 'an old migration', 'applied',
             '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z');
         INSERT INTO dmig_runs (migration, direction, status, started_at, finished_at, steps,
             rows_processed, host_version, sha256) VALUES ('old-one', 'up', 'succeeded',
             '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z', 2, 20, '0.0.9', 'abc')"
    )
}

fn issue_14_a_ledger_without_versions_is_upgraded_in_place(kind: Kind) {
    for signer in [false, true] {
        let dir = TestDir::new("old-ledger");
        let Some((test_db, mut db)) =
            runner_probe_db(kind, &dir, &format!("old_ledger_{signer}"), 1, 0)
        else {
            return;
        };
        let url = test_db.url().to_owned();
        db.exec(&old_ledger(kind, signer));
        // Reading an old ledger upgrades nothing.
        let history = dmig(DMIG, dir.path(), &["history", "-D", &url, "--json"]).expect_code(0);
        assert!(
            history.stdout.contains(r#""retries": 0"#),
            "{}",
            history.stdout
        );
        assert!(db.ledger_tables().iter().all(|t| t != "dmig_schema"));

        apply(&dir, &url, &[]).expect_code(0);
        // Every version recorded: each change was made where it was missing.
        let versions = db.rows::<(i64,)>("SELECT version FROM dmig_schema ORDER BY version");
        let expected: Vec<(i64,)> = (1..=VERSION).map(|v| (v,)).collect();
        assert_eq!(versions, expected, "signer: {signer}");
        let runs = db.rows::<(String, i64, Option<String>, Option<String>)>(
            "SELECT migration, retries, note, signer FROM dmig_runs ORDER BY id",
        );
        assert_eq!(
            runs,
            [
                ("old-one".into(), 0, None, None),
                ("runner-probe".into(), 0, None, None)
            ]
        );
        // And the next host finds it current.
        apply(&dir, &url, &["--force"]).expect_code(0);
        assert_eq!(
            db.scalar::<i64>("SELECT count(*) FROM dmig_schema"),
            expected.len() as i64
        );
    }
}

fn issue_14_a_ledger_newer_than_the_host_is_refused(kind: Kind) {
    let dir = TestDir::new("new-ledger");
    let Some((test_db, mut db)) = runner_probe_db(kind, &dir, "new_ledger", 1, 0) else {
        return;
    };
    let url = test_db.url().to_owned();
    apply(&dir, &url, &[]).expect_code(0);
    db.exec(&format!(
        "INSERT INTO dmig_schema (version, applied_at, host_version) \
         VALUES ({}, '2030-01-01T00:00:00.000Z', '9.9.9')",
        VERSION + 1
    ));
    let before = db.user_data();
    let runs = db.scalar::<i64>("SELECT count(*) FROM dmig_runs");
    let refused = apply(&dir, &url, &["--force"]).expect_code(21);
    assert!(
        refused.stderr.contains(&format!(
            "the dmig ledger in this database has schema version {} (upgraded by dmig-host 9.9.9), newer than version {VERSION}",
            VERSION + 1
        )),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("nothing was written"),
        "{}",
        refused.stderr
    );
    assert_eq!(db.user_data(), before);
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM dmig_runs"), runs);
    // Reading still works.
    dmig(DMIG, dir.path(), &["status", "-D", &url]).expect_code(0);
}
