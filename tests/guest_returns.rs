//! Issue 14, item 8: the ledger survives whatever a guest returns. The
//! `hostile-returns` guest hands the host forged error and log text, huge
//! errors and cursors, counts past the ledger's, and a `describe()` that
//! disagrees with its manifest; every run must end recorded (never
//! `running`), the ledger must stay readable by `status` and `history`, and
//! the operator's terminal must show no line the host did not write.

use std::path::PathBuf;

use dmig_tests::{Kind, TestDb, TestDir, dmig, guests, on_every_database};
use serde_json::Value as Json;

const DMIG: &str = env!("CARGO_BIN_EXE_dmig-host-under-test");

on_every_database!(
    issue_14_a_forged_error_stays_on_one_line,
    issue_14_a_huge_error_is_stored_cut_with_a_marker,
    issue_14_guest_logs_and_output_cannot_forge_lines,
    issue_14_a_count_past_the_ledger_fails_the_step,
    issue_14_a_running_total_past_the_ledger_fails_the_step,
    issue_14_a_cursor_is_stored_whole_or_the_step_fails,
);

/// What the guest's manifest says; `describe()` agrees unless told not to.
const MANIFEST: &str = r#"{"format":2,"name":"hostile-returns","version":"0.1.0","description":"Returns what it is told to","reversible":false,"wit":"0.2.0","capabilities":{"reads":[],"writes":[],"ddl":false,"raw_sql":false}}"#;

/// The guest with its manifest packed in (`dmig-host pack`).
fn packed(dir: &TestDir) -> String {
    let manifest = dir.write("manifest.json", MANIFEST.as_bytes());
    let out: PathBuf = dir.path().join("hostile-returns.wasm");
    dmig(
        DMIG,
        dir.path(),
        &[
            "pack",
            guests::HOSTILE_RETURNS,
            "--manifest",
            manifest.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    )
    .expect_code(0);
    out.to_str().unwrap().to_owned()
}

/// A fresh database and the packed guest; `None` when the database is not
/// configured.
fn setup(kind: Kind, test: &str) -> Option<(TestDir, TestDb, String)> {
    let dir = TestDir::new(test);
    let db = TestDb::new(kind, &dir, test)?;
    let artifact = packed(&dir);
    Some((dir, db, artifact))
}

/// Runs the guest with `behaviour`, and `extra` arguments.
fn run(
    dir: &TestDir,
    db: &TestDb,
    artifact: &str,
    behaviour: &str,
    extra: &[&str],
) -> dmig_tests::Run {
    let arg = format!("behaviour={behaviour}");
    let mut args = vec!["run", artifact, "-D", db.url(), "--arg", &arg];
    args.extend_from_slice(extra);
    dmig(DMIG, dir.path(), &args)
}

/// Panics if `text` holds anything that could forge or hide a line on a
/// terminal: a raw line break inside a line, a carriage return, an escape,
/// NUL, a Unicode line separator or a bidi override, or a line the guest
/// wrote as if it were the host's.
#[track_caller]
fn assert_no_forged_lines(text: &str) {
    for bad in [
        '\r', '\u{1b}', '\0', '\u{2028}', '\u{2029}', '\u{202e}', '\u{9b}',
    ] {
        assert!(
            !text.contains(bad),
            "{bad:?} reached the terminal: {text:?}"
        );
    }
    for line in text.lines() {
        assert!(
            !line.starts_with("error: forged")
                && (!line.starts_with("applied hostile-returns")
                    || line.starts_with("applied hostile-returns: ")),
            "a forged line reached the terminal: {text:?}"
        );
    }
}

/// The one run's status, error, rows and cursor, read directly.
fn the_run(db: &TestDb) -> (String, Option<String>, i64, Option<String>) {
    let mut rows = db
        .open()
        .rows::<(String, Option<String>, i64, Option<String>)>(
            "SELECT status, error, rows_processed, last_cursor FROM dmig_runs",
        );
    assert_eq!(rows.len(), 1, "one run recorded");
    rows.remove(0)
}

/// `status` and `history` read the ledger back, as JSON, and agree that the
/// run failed.
#[track_caller]
fn assert_ledger_readable(dir: &TestDir, db: &TestDb) {
    let status = dmig(DMIG, dir.path(), &["status", "-D", db.url(), "--json"]).expect_code(0);
    let status: Json = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status[0]["state"], "failed", "{status}");
    let history = dmig(DMIG, dir.path(), &["history", "-D", db.url(), "--json"]).expect_code(0);
    let history: Json = serde_json::from_str(&history.stdout).unwrap();
    assert_eq!(history[0]["status"], "failed", "{history}");
    // And in human form, without a forged line.
    let human = dmig(DMIG, dir.path(), &["history", "-D", db.url()]).expect_code(0);
    assert_no_forged_lines(&human.stdout);
}

fn issue_14_a_forged_error_stays_on_one_line(kind: Kind) {
    let Some((dir, db, artifact)) = setup(kind, "forged-error") else {
        return;
    };
    let failed = run(&dir, &db, &artifact, "error-forge", &[]).expect_code(1);
    assert_no_forged_lines(&failed.stderr);
    assert_eq!(failed.stderr.lines().count(), 1, "{}", failed.stderr);
    assert!(
        failed
            .stderr
            .contains(r"boom\nerror: forged line\r\u{1b}[2K"),
        "{}",
        failed.stderr
    );
    // Stored on one line too (PostgreSQL refuses NUL in text, which used to
    // leave the run `running`).
    let (status, error, ..) = the_run(&db);
    assert_eq!(status, "failed");
    let error = error.unwrap();
    assert!(error.contains(r"forged\u{0}nul\u{202e}rtl"), "{error}");
    assert_no_forged_lines(&error);
    assert_ledger_readable(&dir, &db);

    // With --output json, the event carries the same escaped text.
    let json = run(&dir, &db, &artifact, "error-forge", &["--output", "json"]).expect_code(1);
    let failed: Json = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).unwrap())
        .find(|e| e["event"] == "failed")
        .expect("a failed event");
    assert_no_forged_lines(failed["error"].as_str().unwrap());
}

fn issue_14_a_huge_error_is_stored_cut_with_a_marker(kind: Kind) {
    let Some((dir, db, artifact)) = setup(kind, "huge-error") else {
        return;
    };
    let failed = run(&dir, &db, &artifact, "error-huge", &[]).expect_code(1);
    assert_eq!(failed.stderr.lines().count(), 1);
    assert!(
        failed.stderr.len() < 10_000,
        "{} bytes",
        failed.stderr.len()
    );
    // MySQL's TEXT holds 65,535 bytes: the whole error used to fail the
    // ledger write there and leave the run `running`.
    let (status, error, ..) = the_run(&db);
    assert_eq!(status, "failed");
    let error = error.unwrap();
    assert!(error.len() <= 16 * 1024, "{} bytes stored", error.len());
    assert!(error.contains("ééé"), "{error}");
    let dropped: usize = error
        .rsplit("… [truncated ")
        .next()
        .and_then(|t| t.strip_suffix(" bytes]"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no truncation marker at the end of {error}"));
    assert!(dropped > 150_000, "{dropped}");
    assert_ledger_readable(&dir, &db);
}

fn issue_14_guest_logs_and_output_cannot_forge_lines(kind: Kind) {
    let Some((dir, db, artifact)) = setup(kind, "forged-logs") else {
        return;
    };
    // -v shows the guest's info lines (its printed output) too.
    let done = run(&dir, &db, &artifact, "log-forge", &["-v"]).expect_code(0);
    assert_no_forged_lines(&done.stderr);
    assert!(
        done.stderr.contains(r"boom\nerror: forged line"),
        "{}",
        done.stderr
    );
    // Printed to stdout and stderr: both reach the log, escaped.
    assert!(
        done.stderr.matches(r"\u{2028}forged").count() >= 3,
        "{}",
        done.stderr
    );
    assert_no_forged_lines(&done.stdout);

    let json = run(
        &dir,
        &db,
        &artifact,
        "log-forge",
        &["--output", "json", "--force"],
    )
    .expect_code(0);
    let log = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).unwrap())
        .find(|e| e["event"] == "log")
        .expect("a log event");
    assert_no_forged_lines(log["message"].as_str().unwrap());
}

fn issue_14_a_count_past_the_ledger_fails_the_step(kind: Kind) {
    let Some((dir, db, artifact)) = setup(kind, "count-max") else {
        return;
    };
    // u64::MAX used to be stored as i64::MAX without a word, and the run
    // went on (--max-steps bounds it on such a host).
    let failed = run(&dir, &db, &artifact, "processed-max", &["--max-steps", "3"]).expect_code(1);
    assert!(
        failed.stderr.contains("processed = 18446744073709551615"),
        "{}",
        failed.stderr
    );
    let (status, _, rows, cursor) = the_run(&db);
    assert_eq!((status.as_str(), rows, cursor), ("failed", 0, None));
    assert_ledger_readable(&dir, &db);
}

fn issue_14_a_running_total_past_the_ledger_fails_the_step(kind: Kind) {
    let Some((dir, db, artifact)) = setup(kind, "count-overflow") else {
        return;
    };
    // Step 1 commits i64::MAX rows; step 2's one more row would overflow the
    // counter (SQLite used to turn it into a float, which no reader of the
    // ledger could read back).
    let failed = run(&dir, &db, &artifact, "processed-overflow", &[]).expect_code(1);
    assert!(
        failed.stderr.contains("past 9223372036854775807"),
        "{}",
        failed.stderr
    );
    let (status, _, rows, cursor) = the_run(&db);
    assert_eq!(
        (status.as_str(), rows, cursor.as_deref()),
        ("failed", i64::MAX, Some("1"))
    );
    assert_ledger_readable(&dir, &db);

    // A dry run adds up the same way, without a ledger write to catch it.
    let dry = run(
        &dir,
        &db,
        &artifact,
        "processed-overflow",
        &["--dry-run", "--restart"],
    );
    dry.expect_code(1);
}

fn issue_14_a_cursor_is_stored_whole_or_the_step_fails(kind: Kind) {
    for (behaviour, says) in [
        ("cursor-huge", "a cursor of 100000 bytes"),
        ("cursor-nul", "a cursor with a NUL character at byte 1"),
    ] {
        let Some((dir, db, artifact)) = setup(kind, behaviour) else {
            return;
        };
        let failed = run(&dir, &db, &artifact, behaviour, &["--max-steps", "2"]).expect_code(1);
        assert!(
            failed.stderr.contains(says),
            "{behaviour}: {}",
            failed.stderr
        );
        assert_no_forged_lines(&failed.stderr);
        let (status, _, rows, cursor) = the_run(&db);
        assert_eq!((status.as_str(), rows, cursor), ("failed", 0, None));
        assert_ledger_readable(&dir, &db);
    }
    // Any other text (a text key may hold a tab, or right-to-left marks) is
    // stored whole and shown escaped.
    let Some((dir, db, artifact)) = setup(kind, "cursor-control") else {
        return;
    };
    let stopped = run(
        &dir,
        &db,
        &artifact,
        "cursor-control",
        &["--max-steps", "1"],
    )
    .expect_code(7);
    assert_no_forged_lines(&stopped.stderr);
    assert!(!stopped.stderr.contains('\u{1b}'), "{}", stopped.stderr);
    let (status, _, _, cursor) = the_run(&db);
    assert_eq!(
        (status.as_str(), cursor.as_deref()),
        ("interrupted", Some("1\n\u{1b}[2Kapplied"))
    );
}

/// `describe()` must agree with the manifest in every field it has; the
/// artifact is refused before the database is touched.
#[test]
fn issue_14_describe_disagreeing_with_the_manifest_is_refused() {
    let dir = TestDir::new("describe");
    let db = TestDb::new(Kind::Sqlite, &dir, "describe").unwrap();
    let artifact = packed(&dir);
    for (behaviour, field) in [
        ("describe-description", "description"),
        ("describe-name", "name"),
        ("describe-reversible", "reversible"),
    ] {
        let refused = run(&dir, &db, &artifact, behaviour, &[]).expect_code(16);
        assert!(
            refused
                .stderr
                .contains(&format!("inconsistent: its manifest's {field} is")),
            "{behaviour}: {}",
            refused.stderr
        );
        assert_eq!(refused.stderr.lines().count(), 1);
    }
    assert!(db.open().ledger_tables().is_empty(), "nothing was written");
    // A name with a line break is refused even without a manifest.
    let undeclared = run(
        &dir,
        &db,
        guests::HOSTILE_RETURNS,
        "describe-forge",
        &["--allow-undeclared"],
    )
    .expect_code(1);
    assert!(
        undeclared.stderr.contains("describe() returned the name"),
        "{}",
        undeclared.stderr
    );
    assert_no_forged_lines(&undeclared.stderr);
    assert!(db.open().ledger_tables().is_empty(), "nothing was written");
}
