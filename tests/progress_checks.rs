//! What the runner checks between steps, rebuilt from failures users of
//! other migration runners reported (issue 14): a run that ends short of
//! its declared total says so (item 2); a migration whose cursor does not
//! advance is stopped, while one that drains a queue from the same cursor
//! runs to the end (item 3); counts are printed in the singular when they
//! are 1 (item 9).

use dmig_tests::{Kind, Run, TestDir, dmig, guests, on_every_database, runner_probe_db};
use serde_json::Value as Json;

const DMIG: &str = env!("CARGO_BIN_EXE_dmig-host-under-test");

on_every_database!(
    issue_14_a_run_short_of_its_declared_total_says_so,
    issue_14_a_cursor_that_does_not_advance_stops_the_run,
    issue_14_a_queue_drained_from_one_cursor_runs_to_the_end,
    issue_14_one_step_is_counted_in_the_singular,
);

fn events(stdout: &str) -> Vec<Json> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Runs `dmig-host run <runner-probe> -D url` with `extra` arguments.
fn run_probe(dir: &TestDir, url: &str, extra: &[&str]) -> Run {
    let mut args = vec!["run", guests::RUNNER_PROBE, "-D", url];
    args.extend_from_slice(extra);
    dmig(DMIG, dir.path(), &args)
}

fn issue_14_a_run_short_of_its_declared_total_says_so(kind: Kind) {
    let dir = TestDir::new("short-total");
    let Some((test_db, mut db)) = runner_probe_db(kind, &dir, "short_total", 10, 0) else {
        return;
    };
    let url = test_db.url().to_owned();
    // Declares 15 rows, processes the 10 there are: succeeds, and says so.
    let out = run_probe(
        &dir,
        &url,
        &[
            "--arg",
            "mode=declare",
            "--arg",
            "declare=15",
            "--output",
            "json",
        ],
    )
    .expect_code(0);
    let events = events(&out.stdout);
    let warnings: Vec<&Json> = events.iter().filter(|e| e["event"] == "warning").collect();
    assert_eq!(warnings.len(), 1, "{}", out.stdout);
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(
        message
            .contains("the run ended short: it processed 10 rows of the 15 it declared (5 fewer)"),
        "{message}"
    );
    let finished = events.iter().find(|e| e["event"] == "finished").unwrap();
    assert_eq!(finished["outcome"]["note"], message);
    assert_eq!(finished["outcome"]["rows"], 10);
    // In the ledger, and in status and history.
    let note: String = db.scalar("SELECT note FROM dmig_runs WHERE id = 1");
    assert_eq!(note, message);
    let status = dmig(DMIG, dir.path(), &["status", "-D", &url]).expect_code(0);
    assert!(
        status.stdout.contains("note: the run ended short"),
        "{}",
        status.stdout
    );
    let history = dmig(DMIG, dir.path(), &["history", "-D", &url, "--json"]).expect_code(0);
    let runs: Json = serde_json::from_str(&history.stdout).unwrap();
    assert_eq!(runs[0]["note"], message);

    // Human output: a warning on stderr, exit 0.
    let human = run_probe(
        &dir,
        &url,
        &["--force", "--arg", "mode=declare", "--arg", "declare=15"],
    )
    .expect_code(0);
    assert!(
        human.stderr.contains("warning: the run ended short"),
        "{}",
        human.stderr
    );

    // Past the total is noted too; the exact total is not.
    let over = run_probe(
        &dir,
        &url,
        &[
            "--force",
            "--arg",
            "mode=declare",
            "--arg",
            "declare=8",
            "--output",
            "json",
        ],
    )
    .expect_code(0);
    assert!(
        over.stdout
            .contains("processed 10 rows, 2 more than the 8 it declared"),
        "{}",
        over.stdout
    );
    let exact = run_probe(
        &dir,
        &url,
        &[
            "--force",
            "--arg",
            "mode=declare",
            "--arg",
            "declare=10",
            "--output",
            "json",
        ],
    )
    .expect_code(0);
    assert!(
        !exact.stdout.contains(r#""event":"warning""#),
        "{}",
        exact.stdout
    );
    let notes = db.rows::<(i64, Option<String>)>("SELECT id, note FROM dmig_runs ORDER BY id");
    assert_eq!(notes.len(), 4);
    assert!(notes[3].1.is_none(), "{notes:?}");
}

fn issue_14_a_cursor_that_does_not_advance_stops_the_run(kind: Kind) {
    let dir = TestDir::new("stall");
    let Some((test_db, mut db)) = runner_probe_db(kind, &dir, "stall", 12, 0) else {
        return;
    };
    let url = test_db.url().to_owned();
    let before = db.user_data();
    // --max-steps bounds the run if the check fails to fire.
    let out = run_probe(&dir, &url, &["--arg", "mode=stall", "--max-steps", "50"]).expect_code(20);
    assert!(
        out.stderr.contains(
            r#"steps 2 to 4 each returned the cursor they were given ("pending") and changed no rows, 3 times in a row: the migration does not advance"#
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--max-stalled-steps 0"),
        "{}",
        out.stderr
    );
    assert_eq!(db.user_data(), before);
    let (status, steps): (String, i64) = db
        .rows::<(String, i64)>("SELECT status, steps FROM dmig_runs")
        .remove(0);
    assert_eq!((status.as_str(), steps), ("failed", 4));
    let error: String = db.scalar("SELECT error FROM dmig_runs");
    assert!(error.contains("the migration does not advance"), "{error}");

    // A larger limit lets more steps go by; with the check off, only
    // --max-steps ends it.
    let five = run_probe(
        &dir,
        &url,
        &[
            "--restart",
            "--arg",
            "mode=stall",
            "--max-stalled-steps",
            "5",
            "--max-steps",
            "50",
        ],
    )
    .expect_code(20);
    assert!(five.stderr.contains("steps 2 to 6 each"), "{}", five.stderr);
    run_probe(
        &dir,
        &url,
        &[
            "--restart",
            "--arg",
            "mode=stall",
            "--max-stalled-steps",
            "0",
            "--max-steps",
            "10",
        ],
    )
    .expect_code(7);

    // A dry run stops the same way.
    let dry = run_probe(
        &dir,
        &url,
        &[
            "--restart",
            "--arg",
            "mode=stall",
            "--dry-run",
            "--max-steps",
            "50",
        ],
    )
    .expect_code(20);
    assert!(
        dry.stderr.contains("the migration does not advance"),
        "{}",
        dry.stderr
    );
}

fn issue_14_a_queue_drained_from_one_cursor_runs_to_the_end(kind: Kind) {
    let dir = TestDir::new("drain");
    let Some((test_db, mut db)) = runner_probe_db(kind, &dir, "drain", 0, 20) else {
        return;
    };
    let url = test_db.url().to_owned();
    let out = run_probe(&dir, &url, &["--arg", "mode=drain", "--output", "json"]).expect_code(0);
    let left: i64 = db.scalar("SELECT count(*) FROM probe_queue");
    assert_eq!(left, 0);
    // 20 rows, 3 a step: 7 steps that delete, then one that finds none.
    let steps = events(&out.stdout)
        .iter()
        .filter(|e| e["event"] == "step")
        .count();
    assert_eq!(steps, 8, "{}", out.stdout);
    let (status, steps): (String, i64) = db
        .rows::<(String, i64)>("SELECT status, steps FROM dmig_runs")
        .remove(0);
    assert_eq!((status.as_str(), steps), ("succeeded", 8));
}

fn issue_14_one_step_is_counted_in_the_singular(kind: Kind) {
    let dir = TestDir::new("singular");
    let Some((test_db, _db)) = runner_probe_db(kind, &dir, "singular", 1, 0) else {
        return;
    };
    let url = test_db.url().to_owned();
    let out = run_probe(&dir, &url, &["--arg", "mode=contend", "--arg", "order=1"]).expect_code(0);
    assert!(
        out.stdout
            .contains("applied runner-probe: 1 step, 1 row in "),
        "{}",
        out.stdout
    );
    let out = run_probe(
        &dir,
        &url,
        &[
            "--force",
            "--arg",
            "mode=contend",
            "--arg",
            "order=1,1",
            "--arg",
            "steps=2",
        ],
    )
    .expect_code(0);
    assert!(
        out.stdout
            .contains("applied runner-probe: 2 steps, 4 rows in "),
        "{}",
        out.stdout
    );
    let out = run_probe(
        &dir,
        &url,
        &[
            "--force",
            "--arg",
            "mode=contend",
            "--arg",
            "order=1",
            "--arg",
            "steps=3",
            "--max-steps",
            "1",
        ],
    )
    .expect_code(7);
    assert!(
        out.stderr
            .contains("was interrupted after 1 step of this run"),
        "{}",
        out.stderr
    );
}
