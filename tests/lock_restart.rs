//! Issue 14, items 7 and 9: a host restarted with the same host name and pid
//! (a container's PID 1, restarted) takes its lock back at once instead of
//! waiting out the lease, a live holder that merely shares this host's name
//! and pid is still respected, and a lock error never names the waiting host
//! itself as the holder.
//!
//! The restart is simulated exactly: `dmig-host` runs under `sh -c 'read;
//! exec …'`, so the test knows the pid the host will have before it starts,
//! and plants a lock row as an earlier process with that same host name and
//! pid would have left it.

use std::io::Write;
use std::process::{Command, Stdio};

use dmig_tests::{Kind, TestDb, TestDir, counters_db, dmig, guests, on_every_database};

const DMIG: &str = env!("CARGO_BIN_EXE_dmig-host-under-test");

on_every_database!(issue_14_a_restarted_host_takes_its_lock_back);

#[test]
fn postgres_issue_14_a_lock_error_never_names_the_waiting_host() {
    issue_14_a_lock_error_never_names_the_waiting_host(Kind::Postgres);
}

#[test]
fn mysql_issue_14_a_lock_error_never_names_the_waiting_host() {
    issue_14_a_lock_error_never_names_the_waiting_host(Kind::Mysql);
}

fn hostname() -> String {
    let out = Command::new("hostname").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The identity an earlier process of this host, now gone, recorded: the
/// same kernel and PID namespace as this test (and so as the host it
/// starts), but another process id and start time, and the liveness file
/// `alive` (or none).
fn earlier_identity(alive: Option<&str>) -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let ns = ns.to_str().unwrap();
    let ns = &ns["pid:[".len()..ns.len() - 1];
    format!(
        "id={} boot={} pidns={ns} start=1 alive={}",
        "0123456789abcdef".repeat(2),
        boot.trim(),
        alive.unwrap_or("-")
    )
}

/// A migration's ledger with run 1 left `running`, as a host killed in the
/// middle of it leaves it.
fn killed_mid_run(kind: Kind, dir: &TestDir, test: &str) -> Option<TestDb> {
    let (test_db, mut db) = counters_db(kind, dir, test, 100)?;
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
            "batch_size=10",
            "--max-steps",
            "1",
        ],
    )
    .expect_code(7);
    db.exec(
        "UPDATE dmig_runs SET status = 'running', finished_at = NULL;
         UPDATE dmig_migrations SET state = 'running'",
    );
    Some(test_db)
}

/// Starts `dmig-host run counter` under a shell that waits for a line on
/// stdin before it becomes `dmig-host` (keeping its pid); returns the child
/// and that pid.
fn held_at_the_door(dir: &TestDir, url: &str) -> (std::process::Child, u32) {
    let child = Command::new("sh")
        .args(["-c", r#"read go; exec "$0" "$@""#, DMIG])
        .args(["run", guests::COUNTER, "-D", url, "--lock-timeout", "0s"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env("DMIG_CACHE_DIR", dmig_tests::test_cache_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (child, pid)
}

/// Lets the held host start and waits for it.
fn open_the_door(mut child: std::process::Child) -> dmig_tests::Run {
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    dmig_tests::Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn plant_lock(db: &TestDb, pid: u32, identity: &str) {
    db.open().exec_one(&format!(
        "INSERT INTO dmig_locks (migration, holder, run_id, host, pid, acquired_at, expires_at, instance)
         VALUES ('counter', 'earlier', 1, '{}', {pid}, '2026-01-01T00:00:00.000Z', '2999-01-01T00:00:00.000Z', '{identity}')",
        hostname()
    ));
}

/// The killed host's lock row names this host and the very pid the
/// restarted host gets. SQLite used to wait out the lease (exit 6, naming
/// the waiting host itself); now the restart is recognised at once. On
/// PostgreSQL and MySQL the server's lock died with the killed host's
/// connection, and the restart goes through as well.
fn issue_14_a_restarted_host_takes_its_lock_back(kind: Kind) {
    let dir = TestDir::new("restart");
    let Some(test_db) = killed_mid_run(kind, &dir, "restart") else {
        return;
    };
    // The killed host's liveness file, unlocked now that it is dead.
    let alive = ".app.db.0011223344556677.dmig-alive";
    let alive_path = dir.path().join(alive);
    std::fs::write(&alive_path, b"").unwrap();
    let (child, pid) = held_at_the_door(&dir, test_db.url());
    plant_lock(&test_db, pid, &earlier_identity(Some(alive)));
    let restarted = open_the_door(child).expect_code(0);
    assert!(
        restarted.stdout.contains("resumed from cursor 10"),
        "{}",
        restarted.stdout
    );
    let mut db = test_db.open();
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM counters WHERE n <> 1"),
        0
    );
    let first: String = db.scalar("SELECT error FROM dmig_runs WHERE id = 1");
    assert!(
        first.contains(&format!("pid {pid} on {}", hostname())),
        "{first}"
    );
    assert!(
        first.contains("stopped without recording an outcome"),
        "{first}"
    );
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM dmig_locks"), 0);
    if kind == Kind::Sqlite {
        assert!(
            restarted
                .stderr
                .contains("took over the lock of a host that is gone"),
            "{}",
            restarted.stderr
        );
        assert!(
            !alive_path.exists(),
            "the dead holder's liveness file is removed"
        );
    }
}

/// Two containers sharing the SQLite file through a volume, with the same
/// host name, each with its host as PID 1: the other one's host is alive (its
/// liveness file is locked), so the lock is respected, and the error says
/// the holder is another process, not this one.
#[test]
fn issue_14_a_live_holder_with_this_hosts_name_and_pid_is_respected() {
    let dir = TestDir::new("twin");
    let test_db = killed_mid_run(Kind::Sqlite, &dir, "twin").unwrap();
    let alive = ".app.db.8899aabbccddeeff.dmig-alive";
    let file = std::fs::File::create(dir.path().join(alive)).unwrap();
    file.try_lock().unwrap();
    // Another kernel namespace: only the liveness file can tell.
    let identity = earlier_identity(Some(alive)).replace("pidns=", "pidns=1");
    let (child, pid) = held_at_the_door(&dir, test_db.url());
    plant_lock(&test_db, pid, &identity);
    let blocked = open_the_door(child).expect_code(6);
    let host = hostname();
    assert!(
        !blocked.stderr.contains(&format!("on {host} (pid {pid})")),
        "{}",
        blocked.stderr
    );
    assert!(
        blocked
            .stderr
            .contains(&format!("on {host} in another container or PID namespace")),
        "{}",
        blocked.stderr
    );
    // The twin stops: its lock goes with it.
    drop(file);
    let (child, pid) = held_at_the_door(&dir, test_db.url());
    test_db
        .open()
        .exec(&format!("UPDATE dmig_locks SET pid = {pid}"));
    open_the_door(child).expect_code(0);
}

/// On PostgreSQL and MySQL, while another session holds the server's lock,
/// a leftover row from a dead process with this host's name and the waiting
/// host's own pid used to be named as the holder.
fn issue_14_a_lock_error_never_names_the_waiting_host(kind: Kind) {
    let dir = TestDir::new("not-me");
    let Some(test_db) = killed_mid_run(kind, &dir, "not-me") else {
        return;
    };
    let mut holder = test_db.open();
    holder.exec(match kind {
        Kind::Postgres => {
            "SELECT pg_advisory_lock(hashtextextended('dmig:' || left(encode(sha256('counter'::bytea), 'hex'), 40), 0))"
        }
        _ => "SELECT GET_LOCK(CONCAT('dmig:', LEFT(SHA2(CONCAT(DATABASE(), '/counter'), 256), 40)), 0)",
    });
    let (child, pid) = held_at_the_door(&dir, test_db.url());
    plant_lock(&test_db, pid, &earlier_identity(None));
    let blocked = open_the_door(child).expect_code(6);
    assert!(
        !blocked
            .stderr
            .contains(&format!("on {} (pid {pid})", hostname())),
        "{}",
        blocked.stderr
    );
    assert!(
        blocked
            .stderr
            .contains("locked by a run starting on an unknown host"),
        "{}",
        blocked.stderr
    );
    drop(holder);
}
