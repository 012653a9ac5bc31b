//! The trunk, end to end: the example migration through the real
//! `dmig-host` binary against a fresh SQLite database per test, the ledger,
//! reruns, `down`, a failing step, and every kind of bad artifact.

use dmig_tests::{Db, Kind, Run, TestDb, TestDir, dmig, dmig_with_env, guests, on_every_database};

const DMIG: &str = env!("CARGO_BIN_EXE_dmig-host-under-test");

/// Names with known slugs, repeated so several users share a name.
const NAMES: &[(&str, &str)] = &[
    ("Ada Lovelace", "ada-lovelace"),
    ("  Grace   HOPPER!! ", "grace-hopper"),
    ("Émile Zola", "emile-zola"),
    ("!!!", "user"),
    ("O'Brien & Sons", "o-brien-sons"),
    ("user 42", "user-42"),
];

const USERS: i64 = 2_000;

/// Every 7th user already has a hand-set slug the migration must not touch.
fn preslugged(id: i64) -> bool {
    id % 7 == 0
}

fn expected_slug(id: i64) -> String {
    if preslugged(id) {
        format!("hand-set-{id}")
    } else {
        format!("{}-{id}", NAMES[(id as usize) % NAMES.len()].1)
    }
}

/// A fresh database of `kind` holding `USERS` users, some with slugs already;
/// `None` when that database is not configured (the test is skipped).
fn users_db(kind: Kind, dir: &TestDir, test: &str) -> Option<(TestDb, Db)> {
    let test_db = TestDb::new(kind, dir, test)?;
    let mut db = test_db.open();
    db.exec(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL, slug VARCHAR(300))",
    );
    let mut sql = String::from("INSERT INTO users (id, name, slug) VALUES ");
    for id in 1..=USERS {
        let name = NAMES[(id as usize) % NAMES.len()].0.replace('\'', "''");
        let slug = if preslugged(id) {
            format!("'hand-set-{id}'")
        } else {
            "NULL".into()
        };
        sql.push_str(&format!(
            "{}({id}, '{name}', {slug})",
            if id == 1 { "" } else { ", " }
        ));
    }
    db.exec(&sql);
    Some((test_db, db))
}

on_every_database!(
    example_backfills_every_user_and_records_the_run,
    second_run_is_a_noop_and_force_runs_again,
    down_reverts_exactly_what_up_did,
    a_failing_third_step_leaves_the_database_at_the_end_of_step_two,
);

fn run(dir: &TestDir, args: &[&str]) -> Run {
    dmig(DMIG, dir.path(), args)
}

fn sha256_of(path: &str) -> String {
    dmig_host::Artifact::load(path).unwrap().sha256().to_owned()
}

type RunRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    Option<String>,
    Option<String>,
    String,
    String,
);
type MigrationRow = (String, String, String, Option<String>, Option<String>);
const RUNS: &str = "SELECT id, migration, direction, status, finished_at, steps, rows_processed, last_cursor, error, host_version, sha256 FROM dmig_runs ORDER BY id";

fn example_backfills_every_user_and_records_the_run(kind: Kind) {
    let dir = TestDir::new("backfill");
    let Some((test_db, mut db)) = users_db(kind, &dir, "backfill") else {
        return;
    };
    let url = test_db.url().to_owned();
    let slugged_before: i64 = db.scalar("SELECT count(*) FROM users WHERE slug IS NOT NULL");
    let to_slug = USERS - slugged_before;

    let out = run(
        &dir,
        &["run", guests::BACKFILL_USER_SLUGS, "--database", &url],
    )
    .expect_code(0);
    assert!(
        out.stdout.contains(&format!(
            "applied backfill-user-slugs: 4 steps, {to_slug} rows"
        )),
        "{}",
        out.stdout
    );

    let users: Vec<(i64, Option<String>)> = db.rows("SELECT id, slug FROM users ORDER BY id");
    assert_eq!(users.len() as i64, USERS);
    for (id, slug) in users {
        assert_eq!(
            slug.as_deref(),
            Some(expected_slug(id).as_str()),
            "user {id}"
        );
    }
    let distinct: i64 = db.scalar("SELECT count(DISTINCT slug) FROM users");
    assert_eq!(distinct, USERS, "slugs are unique even for equal names");

    // The ledger: one migration row, one run row, both complete.
    let migrations: Vec<MigrationRow> = db.rows(
        "SELECT name, sha256, state, first_applied_at, last_finished_at FROM dmig_migrations",
    );
    let sha = sha256_of(guests::BACKFILL_USER_SLUGS);
    assert_eq!(migrations.len(), 1);
    let (name, recorded_sha, state, first, last) = &migrations[0];
    assert_eq!(
        (name.as_str(), recorded_sha, state.as_str()),
        ("backfill-user-slugs", &sha, "applied")
    );
    assert!(first.is_some() && first == last, "{first:?} {last:?}");

    let runs: Vec<RunRow> = db.rows(RUNS);
    assert_eq!(runs.len(), 1);
    let (id, migration, direction, status, finished, steps, rows, cursor, error, version, run_sha) =
        runs[0].clone();
    assert_eq!(id, 1);
    assert_eq!(
        (migration.as_str(), direction.as_str(), status.as_str()),
        ("backfill-user-slugs", "up", "succeeded")
    );
    assert!(finished.is_some());
    // 1,715 users to slug in batches of 500: 500, 500, 500, 215.
    assert_eq!((steps, rows), (4, to_slug));
    assert_eq!((cursor, error), (None, None));
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert_eq!(run_sha, sha);

    // status shows it applied, in a table and as JSON.
    let status = run(&dir, &["status", "--database", &url]).expect_code(0);
    assert!(
        status.stdout.contains("backfill-user-slugs"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("applied"), "{}", status.stdout);
    let json = run(&dir, &["status", "--database", &url, "--json"]).expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json[0]["name"], "backfill-user-slugs");
    assert_eq!(json[0]["state"], "applied");
    assert_eq!(json[0]["last_run"]["rows_processed"], to_slug);
    assert_eq!(json[0]["last_run"]["status"], "succeeded");
}

fn second_run_is_a_noop_and_force_runs_again(kind: Kind) {
    let dir = TestDir::new("rerun");
    let Some((test_db, mut db)) = users_db(kind, &dir, "rerun") else {
        return;
    };
    let url = test_db.url().to_owned();
    run(&dir, &["run", guests::BACKFILL_USER_SLUGS, "-D", &url]).expect_code(0);
    let after_first = db.user_data();

    let again = run(&dir, &["run", guests::BACKFILL_USER_SLUGS, "-D", &url]).expect_code(0);
    assert!(
        again.stdout.contains("already applied; nothing to do"),
        "{}",
        again.stdout
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM dmig_runs"),
        1,
        "a no-op records no run"
    );
    assert_eq!(db.user_data(), after_first);

    let forced = run(
        &dir,
        &["run", guests::BACKFILL_USER_SLUGS, "-D", &url, "--force"],
    )
    .expect_code(0);
    assert!(
        forced
            .stdout
            .contains("applied backfill-user-slugs: 1 step, 0 rows"),
        "{}",
        forced.stdout
    );
    let runs: Vec<(i64, String, i64)> =
        db.rows("SELECT id, status, rows_processed FROM dmig_runs ORDER BY id");
    assert_eq!(
        runs,
        vec![
            (1, "succeeded".into(), USERS - USERS / 7),
            (2, "succeeded".into(), 0)
        ]
    );
    assert_eq!(db.user_data(), after_first);
}

fn down_reverts_exactly_what_up_did(kind: Kind) {
    let dir = TestDir::new("down");
    let Some((test_db, mut db)) = users_db(kind, &dir, "down") else {
        return;
    };
    let url = test_db.url().to_owned();
    let original = db.user_data();
    run(&dir, &["run", guests::BACKFILL_USER_SLUGS, "-D", &url]).expect_code(0);
    assert_ne!(db.user_data(), original);

    let out = run(&dir, &["down", guests::BACKFILL_USER_SLUGS, "-D", &url]).expect_code(0);
    assert!(
        out.stdout.contains("reverted backfill-user-slugs"),
        "{}",
        out.stdout
    );
    assert_eq!(
        db.user_data(),
        original,
        "hand-set slugs stay, the rest are NULL again"
    );
    let state: String = db.scalar("SELECT state FROM dmig_migrations");
    assert_eq!(state, "reverted");
    let last = db.rows::<(String, String)>(
        "SELECT direction, status FROM dmig_runs ORDER BY id DESC LIMIT 1",
    )[0]
    .clone();
    assert_eq!(last, ("down".into(), "succeeded".into()));

    // Reverted twice is refused: there is nothing to revert.
    let again = run(&dir, &["down", guests::BACKFILL_USER_SLUGS, "-D", &url]).expect_code(4);
    assert!(
        again.stderr.contains("has not been applied"),
        "{}",
        again.stderr
    );

    // And it can be applied again afterwards.
    run(&dir, &["run", guests::BACKFILL_USER_SLUGS, "-D", &url]).expect_code(0);
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM users WHERE slug IS NULL"),
        0
    );
}

#[test]
fn down_is_refused_for_an_irreversible_or_unapplied_migration() {
    let dir = TestDir::new("down-refused");
    let (test_db, mut db) = users_db(Kind::Sqlite, &dir, "sqlite").unwrap();
    let url = test_db.url().to_owned();
    let original = db.user_data();

    let out = run(&dir, &["down", guests::FAIL_THIRD_STEP, "-D", &url]).expect_code(4);
    assert!(
        out.stderr.contains("fail-third-step is not reversible"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);

    let out = run(&dir, &["down", guests::BACKFILL_USER_SLUGS, "-D", &url]).expect_code(4);
    assert!(
        out.stderr
            .contains("backfill-user-slugs has not been applied"),
        "{}",
        out.stderr
    );
    assert_eq!(db.user_data(), original);
}

fn a_failing_third_step_leaves_the_database_at_the_end_of_step_two(kind: Kind) {
    let dir = TestDir::new("fail-third");
    let Some(test_db) = TestDb::new(kind, &dir, "fail_third") else {
        return;
    };
    let url = test_db.url().to_owned();
    let mut db = test_db.open();
    db.exec("CREATE TABLE items (id BIGINT PRIMARY KEY, done INTEGER NOT NULL DEFAULT 0)");
    let values: Vec<String> = (1..=100).map(|i| format!("({i})")).collect();
    db.exec(&format!(
        "INSERT INTO items (id) VALUES {}",
        values.join(", ")
    ));

    let out = run(&dir, &["run", guests::FAIL_THIRD_STEP, "-D", &url]).expect_code(1);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    assert!(
        out.stderr.contains(
            "migration fail-third-step failed during up step 3 (run 1, cursor 2): refusing batch 3: simulated failure"
        ),
        "{}",
        out.stderr
    );

    // Steps one and two (ids 1..=20) committed; step three's writes rolled back.
    let done: Vec<(i64,)> = db.rows("SELECT id FROM items WHERE done = 1 ORDER BY id");
    assert_eq!(done, (1..=20).map(|i| (i,)).collect::<Vec<_>>());

    let runs: Vec<RunRow> = db.rows(RUNS);
    assert_eq!(runs.len(), 1);
    let (_, _, direction, status, finished, steps, rows, cursor, error, _, _) = runs[0].clone();
    assert_eq!((direction.as_str(), status.as_str()), ("up", "failed"));
    assert!(finished.is_some());
    assert_eq!((steps, rows, cursor.as_deref()), (2, 20, Some("2")));
    assert_eq!(
        error.as_deref(),
        Some("refusing batch 3: simulated failure")
    );
    assert_eq!(
        db.scalar::<String>("SELECT state FROM dmig_migrations"),
        "failed"
    );

    // The next run resumes from the committed cursor (and fails the same way).
    let again = run(&dir, &["run", guests::FAIL_THIRD_STEP, "-D", &url]).expect_code(1);
    assert!(
        again.stderr.contains("step 1 (run 2, cursor 2)"),
        "{}",
        again.stderr
    );
    let second: (i64, i64, Option<String>) = db.rows::<(i64, i64, Option<String>)>(
        "SELECT steps, rows_processed, last_cursor FROM dmig_runs WHERE id = 2",
    )[0]
    .clone();
    assert_eq!(second, (0, 0, Some("2".into())));
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM items WHERE done = 1"),
        20
    );
}

#[test]
fn typed_row_access_and_its_errors_cross_the_boundary() {
    let dir = TestDir::new("row-access");
    let url = dir.sqlite_url("app.db");
    let out = run(&dir, &["run", guests::ROW_ACCESS, "-D", &url]).expect_code(1);
    let mut db = Db::open(&url);
    let error: String = db.scalar("SELECT error FROM dmig_runs");
    let columns = "(columns: id, name, absent, bytes, ratio, flag, big)";
    let expected = [
        "column id holds an integer, which cannot be read as String".to_owned(),
        format!("no column \"nope\" in the result {columns}"),
        "column absent holds NULL, which cannot be read as i64".to_owned(),
        format!("no column #9 in the result {columns}"),
        "column big holds an integer, which cannot be read as i32".to_owned(),
        "database error 1: no such table: no_such_table".to_owned(),
    ]
    .join(" | ");
    assert_eq!(error, expected, "stderr: {}", out.stderr);
}

/// Each kind of bad artifact: its exit code, its message, and a database left
/// exactly as it was (not even the ledger tables created).
#[test]
fn bad_artifacts_are_refused_with_distinct_codes_and_the_database_untouched() {
    let dir = TestDir::new("bad-artifacts");
    let (test_db, mut db) = users_db(Kind::Sqlite, &dir, "sqlite").unwrap();
    let url = test_db.url().to_owned();
    let db_file = dir.path().join("app.db");
    let original_bytes = std::fs::read(&db_file).unwrap();
    let original = db.user_data();

    let example = std::fs::read(guests::BACKFILL_USER_SLUGS).unwrap();
    let text = dir.write("notes.wasm", b"this is not webassembly\n");
    let truncated = dir.write("truncated.wasm", &example[..example.len() / 2]);
    let header_only = dir.write("header-only.wasm", &example[..6]);
    let core = dir.write("core.wasm", b"\0asm\x01\0\0\0");
    let missing = dir.path().join("missing.wasm");

    let cases: [(&str, i32, &str); 6] = [
        (missing.to_str().unwrap(), 10, "cannot read artifact"),
        (text.to_str().unwrap(), 11, "is not a WebAssembly file"),
        (
            truncated.to_str().unwrap(),
            12,
            "is truncated or invalid WebAssembly",
        ),
        (
            header_only.to_str().unwrap(),
            12,
            "is truncated or invalid WebAssembly",
        ),
        (
            core.to_str().unwrap(),
            13,
            "is a core WebAssembly module, not a component",
        ),
        (
            guests::NOT_A_MIGRATION,
            14,
            "is a component but not a dmig migration: it does not export dmig:migration/migration@0.2.0",
        ),
    ];
    for (artifact, code, message) in cases {
        for command in ["run", "down"] {
            let out = run(&dir, &[command, artifact, "-D", &url]).expect_code(code);
            assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
            assert!(
                out.stderr.contains(message),
                "{command} {artifact}: {}",
                out.stderr
            );
            assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
            assert!(out.stdout.is_empty());
        }
    }
    assert_eq!(db.ledger_tables(), Vec::<String>::new());
    assert_eq!(db.user_data(), original);
    drop(db);
    assert_eq!(
        std::fs::read(&db_file).unwrap(),
        original_bytes,
        "database file byte-for-byte unchanged"
    );

    // A bad artifact does not even create a database that did not exist.
    let fresh = dir.path().join("never.db");
    let fresh_url = format!("sqlite://{}", fresh.display());
    run(&dir, &["run", text.to_str().unwrap(), "-D", &fresh_url]).expect_code(11);
    assert!(!fresh.exists());
}

#[test]
fn database_url_comes_from_the_flag_the_environment_or_dotenv() {
    let dir = TestDir::new("url");
    let (test_db, mut db) = users_db(Kind::Sqlite, &dir, "sqlite").unwrap();
    let url = test_db.url().to_owned();

    let out = run(&dir, &["run", guests::BACKFILL_USER_SLUGS]).expect_code(2);
    assert!(
        out.stderr.contains("--database URL") && out.stderr.contains("DATABASE_URL"),
        "{}",
        out.stderr
    );

    let out =
        dmig_with_env(DMIG, dir.path(), &["status"], &[("DATABASE_URL", &url)]).expect_code(0);
    assert!(
        out.stdout.contains("no migrations recorded"),
        "{}",
        out.stdout
    );
    assert_eq!(
        db.ledger_tables(),
        Vec::<String>::new(),
        "status creates nothing"
    );

    dir.write(".env", format!("DATABASE_URL={url}\n").as_bytes());
    run(&dir, &["run", guests::BACKFILL_USER_SLUGS]).expect_code(0);
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM users WHERE slug IS NULL"),
        0
    );
}

#[test]
fn sqlite_database_is_created_if_missing_and_bad_urls_are_clear() {
    let dir = TestDir::new("urls");
    let url = dir.sqlite_url("new.db");
    // The migration fails (no users table) but the file and ledger now exist.
    let out = run(&dir, &["run", guests::BACKFILL_USER_SLUGS, "-D", &url]).expect_code(1);
    assert!(
        out.stderr.contains("no such table: users"),
        "{}",
        out.stderr
    );
    assert!(dir.path().join("new.db").exists());

    let out = run(&dir, &["status", "-D", "oracle://db/app"]).expect_code(2);
    assert!(
        out.stderr.contains("unsupported database URL"),
        "{}",
        out.stderr
    );

    let unreachable = format!("sqlite://{}/no/such/dir/app.db", dir.path().display());
    let out = run(
        &dir,
        &["run", guests::BACKFILL_USER_SLUGS, "-D", &unreachable],
    )
    .expect_code(3);
    assert!(out.stderr.contains("cannot connect to"), "{}", out.stderr);
}

#[test]
fn a_changed_artifact_is_refused_unless_allowed() {
    let dir = TestDir::new("changed");
    let (test_db, mut db) = users_db(Kind::Sqlite, &dir, "sqlite").unwrap();
    let url = test_db.url().to_owned();
    run(&dir, &["run", guests::BACKFILL_USER_SLUGS, "-D", &url]).expect_code(0);
    let mut bytes = std::fs::read(guests::BACKFILL_USER_SLUGS).unwrap();
    // A custom section appended: still a valid component, different bytes.
    bytes.extend_from_slice(&[0x00, 0x04, 0x03, b'x', b'y', b'z']);
    let changed = dir.write("changed.wasm", &bytes);
    let changed = changed.to_str().unwrap();

    let out = run(&dir, &["run", changed, "-D", &url, "--force"]).expect_code(4);
    assert!(
        out.stderr.contains(&sha256_of(guests::BACKFILL_USER_SLUGS)),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&sha256_of(changed)), "{}", out.stderr);
    assert!(out.stderr.contains("--allow-changed"), "{}", out.stderr);
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM dmig_runs"), 1);

    run(
        &dir,
        &["run", changed, "-D", &url, "--force", "--allow-changed"],
    )
    .expect_code(0);
    assert_eq!(
        db.scalar::<String>("SELECT sha256 FROM dmig_migrations"),
        sha256_of(changed)
    );
}

#[test]
fn every_guest_is_covered_by_a_test() {
    // A new guest under tests/guests or examples must get a test.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let source: String = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "rs") && p.file_name().unwrap() != "build.rs"
        })
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for guest in guests::ALL {
        let constant = format!("guests::{}", guest.to_uppercase().replace('-', "_"));
        assert!(source.contains(&constant), "no test uses {constant}");
    }
}
