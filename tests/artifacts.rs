//! Vetted artifacts (issue 7): the embedded manifest, capability enforcement
//! on every database, inspect, signatures (flipped byte, wrong key, untrusted
//! key, stripped signature, renamed artifact), undeclared artifacts, pack,
//! and running a directory.

use std::path::{Path, PathBuf};

use dmig_tests::{Db, Kind, TestDb, TestDir, dmig, guests, on_every_database};
use serde_json::Value as Json;

const DMIG: &str = env!("CARGO_BIN_EXE_dmig-host-under-test");

// Exit codes (README, "Exit codes").
const CAPABILITY: i32 = 8;
const BAD_MANIFEST: i32 = 16;
const UNSIGNED: i32 = 17;
const BAD_SIGNATURE: i32 = 18;
const UNTRUSTED: i32 = 19;

/// A database with `users` (declared readable), `notes` (declared writable)
/// and `secrets` (not declared), for the `capabilities` guest.
fn capabilities_db(kind: Kind, dir: &TestDir, test: &str) -> Option<(TestDb, Db)> {
    let test_db = TestDb::new(kind, dir, test)?;
    let mut db = test_db.open();
    db.exec(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL);
         CREATE TABLE notes (step BIGINT NOT NULL);
         CREATE TABLE secrets (id BIGINT PRIMARY KEY, token VARCHAR(100) NOT NULL);
         INSERT INTO users (id, name) VALUES (1, 'ada');
         INSERT INTO secrets (id, token) VALUES (1, 'hunter2')",
    );
    Some((test_db, db))
}

/// Runs the `capabilities` guest sending `sql` in its second step; returns
/// the exit code, stderr, and the database (kept until the caller is done).
fn send(kind: Kind, test: &str, sql: &str) -> Option<(i32, String, (TestDb, Db))> {
    let dir = TestDir::new(test);
    let (test_db, mut db) = capabilities_db(kind, &dir, test)?;
    let arg = format!("sql={sql}");
    let run = dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            guests::CAPABILITIES,
            "-D",
            test_db.url(),
            "--arg",
            &arg,
        ],
    );
    // The second step (and with it the refused statement) was rolled back.
    let notes: Vec<(i64,)> = db.rows("SELECT step FROM notes ORDER BY step");
    if run.code == 0 {
        assert_eq!(notes, [(1,), (2,)]);
    } else {
        assert_eq!(notes, [(1,)], "{}", run.stderr);
        let (status, error): (String, String) = db
            .rows::<(String, Option<String>)>(
                "SELECT status, error FROM dmig_runs ORDER BY id DESC LIMIT 1",
            )
            .into_iter()
            .map(|(s, e)| (s, e.unwrap_or_default()))
            .next()
            .unwrap();
        assert_eq!(status, "failed");
        assert!(
            run.stderr.contains(&error),
            "the ledger records the cause: {error} / {}",
            run.stderr
        );
    }
    Some((run.code, run.stderr, (test_db, db)))
}

#[track_caller]
fn refused(kind: Kind, test: &str, sql: &str, expected: &str) {
    let Some((code, stderr, _)) = send(kind, test, sql) else {
        return;
    };
    assert_eq!(code, CAPABILITY, "{sql}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(expected), "{sql}: {stderr}");
    assert!(
        stderr.contains("migration capabilities failed during up step 2"),
        "{stderr}"
    );
}

fn declared_statements_run(kind: Kind) {
    if let Some((code, stderr, (_test_db, mut db))) = send(
        kind,
        "declared",
        "UPDATE notes SET step = step WHERE step IN (SELECT id FROM users)",
    ) {
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(
            db.scalar::<String>("SELECT state FROM dmig_migrations"),
            "applied"
        );
    }
}

fn reading_an_undeclared_table_is_refused(kind: Kind) {
    refused(
        kind,
        "undeclared-read",
        "SELECT token FROM secrets",
        "statement `SELECT token FROM secrets` reads table secrets, which the artifact does not declare",
    );
}

fn writing_a_read_only_table_is_refused(kind: Kind) {
    refused(
        kind,
        "read-only-write",
        "UPDATE users SET name = 'mallory'",
        "writes table users, which the artifact does not declare in writes",
    );
}

fn ddl_without_the_capability_is_refused(kind: Kind) {
    refused(
        kind,
        "ddl",
        "DROP TABLE notes",
        "is DDL (DROP), which the artifact does not declare",
    );
}

fn an_unparseable_statement_is_refused(kind: Kind) {
    refused(
        kind,
        "unparseable",
        "SELEKT everything FROM everywhere",
        "is refused: the database's grammar does not accept it",
    );
}

fn the_ledger_is_refused(kind: Kind) {
    refused(
        kind,
        "ledger",
        "DELETE FROM dmig_runs",
        "touches dmig_runs; the dmig_ ledger tables belong to the host",
    );
}

fn a_subquery_cannot_smuggle_a_read(kind: Kind) {
    refused(
        kind,
        "subquery",
        "INSERT INTO notes (step) SELECT id FROM secrets",
        "reads table secrets",
    );
}

on_every_database!(
    declared_statements_run,
    reading_an_undeclared_table_is_refused,
    writing_a_read_only_table_is_refused,
    ddl_without_the_capability_is_refused,
    an_unparseable_statement_is_refused,
    the_ledger_is_refused,
    a_subquery_cannot_smuggle_a_read,
);

/// A copy of `artifact` in `dir` under `name`.
fn copy(dir: &TestDir, artifact: &str, name: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::copy(artifact, &path).unwrap();
    path
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Two key pairs, `alice` and `bob`, and a trust directory holding only
/// alice's public key.
struct Keys {
    alice: PathBuf,
    bob: PathBuf,
    trusted: PathBuf,
    alice_id: String,
    bob_id: String,
}

fn keys(dir: &TestDir) -> Keys {
    let keys = dir.path().join("keys");
    let id = |name: &str| {
        let out = dmig(
            DMIG,
            dir.path(),
            &["keygen", "--name", name, "--dir", s(&keys)],
        )
        .expect_code(0);
        let start = out.stdout.find("key id ").unwrap() + "key id ".len();
        out.stdout[start..start + 16].to_owned()
    };
    let (alice_id, bob_id) = (id("alice"), id("bob"));
    let trusted = dir.path().join("trusted");
    std::fs::create_dir(&trusted).unwrap();
    std::fs::copy(keys.join("alice.pub"), trusted.join("alice.pub")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys.join("alice.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "private keys are private");
    }
    Keys {
        alice: keys.join("alice.key"),
        bob: keys.join("bob.key"),
        trusted,
        alice_id,
        bob_id,
    }
}

/// A counters database and a signed copy of the counter guest.
fn signed_setup(test: &str) -> (TestDir, Keys, PathBuf, String) {
    let dir = TestDir::new(test);
    let keys = keys(&dir);
    let wasm = copy(&dir, guests::COUNTER, "counter.wasm");
    let out = dmig(
        DMIG,
        dir.path(),
        &["sign", s(&wasm), "--key", s(&keys.alice)],
    )
    .expect_code(0);
    assert!(out.stdout.contains(&keys.alice_id), "{}", out.stdout);
    let url = dir.sqlite_url("app.db");
    (dir, keys, wasm, url)
}

/// Runs `artifact` requiring alice's signature; asserts the database was not
/// even created when the run is refused.
fn run_trusted(dir: &TestDir, keys: &Keys, artifact: &Path, url: &str, code: i32) -> String {
    let run = dmig(
        DMIG,
        dir.path(),
        &[
            "run",
            s(artifact),
            "-D",
            url,
            "--trusted-keys",
            s(&keys.trusted),
        ],
    )
    .expect_code(code);
    if code != 0 {
        assert!(
            !dir.path().join("app.db").exists(),
            "a refused artifact must not touch the database"
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    }
    run.stderr
}

fn counters(url: &str) -> Db {
    let mut db = Db::open(url);
    db.exec(
        "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0);
         CREATE TABLE counter_batches (first_id BIGINT NOT NULL, last_id BIGINT NOT NULL);
         INSERT INTO counters (id) VALUES (1), (2), (3)",
    );
    db
}

#[test]
fn a_signed_artifact_runs_and_its_signer_is_recorded() {
    let (dir, keys, wasm, url) = signed_setup("signed");
    dmig(
        DMIG,
        dir.path(),
        &["verify", s(&wasm), "--trusted-keys", s(&keys.trusted)],
    )
    .expect_code(0);
    let mut db = counters(&url);
    run_trusted(&dir, &keys, &wasm, &url, 0);
    assert_eq!(
        db.scalar::<String>("SELECT signer FROM dmig_runs"),
        keys.alice_id
    );
    let history = dmig(DMIG, dir.path(), &["history", "-D", &url, "--json"]).expect_code(0);
    let runs: Json = serde_json::from_str(&history.stdout).unwrap();
    assert_eq!(runs[0]["signer"], keys.alice_id.as_str());
}

#[test]
fn a_flipped_byte_is_refused() {
    let (dir, keys, wasm, url) = signed_setup("flipped");
    let mut bytes = std::fs::read(&wasm).unwrap();
    // One letter of the embedded manifest's description: still a valid
    // component with a valid manifest, but not the bytes that were signed.
    let at = bytes
        .windows(6)
        .position(|w| w == b"Adds 1")
        .expect("the manifest is embedded");
    bytes[at] = b'a';
    std::fs::write(&wasm, &bytes).unwrap();
    let stderr = run_trusted(&dir, &keys, &wasm, &url, BAD_SIGNATURE);
    assert!(
        stderr.contains("the artifact changed after it was signed"),
        "{stderr}"
    );
    // A flip deep in the code, too.
    let mut bytes = std::fs::read(guests::COUNTER).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&wasm, &bytes).unwrap();
    run_trusted(&dir, &keys, &wasm, &url, BAD_SIGNATURE);
}

#[test]
fn a_signature_by_the_wrong_key_is_refused() {
    let (dir, keys, wasm, url) = signed_setup("wrong-key");
    // Bob signs, but his signature claims to be alice's.
    std::fs::remove_file(format!("{}.sig", s(&wasm))).unwrap();
    dmig(DMIG, dir.path(), &["sign", s(&wasm), "--key", s(&keys.bob)]).expect_code(0);
    let sig = PathBuf::from(format!("{}.sig", s(&wasm)));
    let forged = std::fs::read_to_string(&sig)
        .unwrap()
        .replace(&keys.bob_id, &keys.alice_id);
    std::fs::write(&sig, forged).unwrap();
    let stderr = run_trusted(&dir, &keys, &wasm, &url, BAD_SIGNATURE);
    assert!(
        stderr.contains(&format!(
            "the signature by trusted key {} does not match",
            keys.alice_id
        )),
        "{stderr}"
    );
}

#[test]
fn a_signature_by_an_untrusted_key_is_refused() {
    let (dir, keys, wasm, url) = signed_setup("untrusted");
    std::fs::remove_file(format!("{}.sig", s(&wasm))).unwrap();
    dmig(DMIG, dir.path(), &["sign", s(&wasm), "--key", s(&keys.bob)]).expect_code(0);
    let stderr = run_trusted(&dir, &keys, &wasm, &url, UNTRUSTED);
    assert!(
        stderr.contains(&format!("signed only by untrusted keys {}", keys.bob_id)),
        "{stderr}"
    );
}

#[test]
fn a_stripped_signature_is_refused() {
    let (dir, keys, wasm, url) = signed_setup("stripped");
    let sig = PathBuf::from(format!("{}.sig", s(&wasm)));
    // Signatures removed from the file...
    let mut file: Json = serde_json::from_str(&std::fs::read_to_string(&sig).unwrap()).unwrap();
    file["signatures"] = serde_json::json!([]);
    std::fs::write(&sig, file.to_string()).unwrap();
    let stderr = run_trusted(&dir, &keys, &wasm, &url, UNSIGNED);
    assert!(stderr.contains("is not signed"), "{stderr}");
    // ...and the file itself removed.
    std::fs::remove_file(&sig).unwrap();
    run_trusted(&dir, &keys, &wasm, &url, UNSIGNED);
}

#[test]
fn a_renamed_artifact_keeps_its_signature_only_with_its_signature_file() {
    let (dir, keys, wasm, url) = signed_setup("renamed");
    let renamed = dir.path().join("20261123_counter.wasm");
    std::fs::rename(&wasm, &renamed).unwrap();
    // Renamed without its .sig: unsigned.
    run_trusted(&dir, &keys, &renamed, &url, UNSIGNED);
    // The signature binds the bytes and the manifest, not the file name.
    std::fs::rename(format!("{}.sig", s(&wasm)), format!("{}.sig", s(&renamed))).unwrap();
    counters(&url);
    run_trusted(&dir, &keys, &renamed, &url, 0);
}

#[test]
fn signing_changed_bytes_over_an_old_signature_file_is_refused() {
    let (dir, keys, wasm, _) = signed_setup("resign");
    let mut bytes = std::fs::read(&wasm).unwrap();
    let at = bytes.windows(6).position(|w| w == b"Adds 1").unwrap();
    bytes[at] = b'a';
    std::fs::write(&wasm, &bytes).unwrap();
    let out = dmig(
        DMIG,
        dir.path(),
        &["sign", s(&wasm), "--key", s(&keys.alice)],
    )
    .expect_code(BAD_SIGNATURE);
    assert!(
        out.stderr.contains("holds signatures of other bytes"),
        "{}",
        out.stderr
    );
    // Bad key material is a usage error naming the file.
    let not_a_key = dir.write("garbage.key", b"not a key");
    let out = dmig(
        DMIG,
        dir.path(),
        &["sign", s(&wasm), "--key", s(&not_a_key)],
    )
    .expect_code(2);
    assert!(out.stderr.contains("garbage.key"), "{}", out.stderr);
    let empty = dir.path().join("empty-trust");
    std::fs::create_dir(&empty).unwrap();
    let out = dmig(
        DMIG,
        dir.path(),
        &["verify", s(&wasm), "--trusted-keys", s(&empty)],
    )
    .expect_code(2);
    assert!(out.stderr.contains("holds no .pub files"), "{}", out.stderr);
    // keygen never overwrites.
    let out = dmig(
        DMIG,
        dir.path(),
        &[
            "keygen",
            "--name",
            "alice",
            "--dir",
            s(&dir.path().join("keys")),
        ],
    )
    .expect_code(2);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
}

#[test]
fn inspect_shows_identity_capabilities_interfaces_and_signatures() {
    let (dir, keys, wasm, _) = signed_setup("inspect");
    let caps = copy(&dir, guests::CAPABILITIES, "capabilities.wasm");
    let out = dmig(DMIG, dir.path(), &["inspect", s(&caps), "--json"]).expect_code(0);
    let report: Json = serde_json::from_str(&out.stdout).unwrap();
    let manifest = &report["manifest"];
    assert_eq!(manifest["name"], "capabilities");
    assert_eq!(manifest["version"], "2.1.0");
    assert_eq!(manifest["wit"], "0.2.0");
    assert_eq!(
        manifest["capabilities"]["reads"],
        serde_json::json!(["users"])
    );
    assert_eq!(
        manifest["capabilities"]["writes"],
        serde_json::json!(["notes"])
    );
    assert_eq!(manifest["capabilities"]["ddl"], false);
    assert_eq!(report["wit_version"], "0.2.0");
    assert_eq!(report["world"], "dmig:migration/data-migration@0.2.0");
    assert_eq!(
        report["exports"],
        serde_json::json!(["dmig:migration/migration@0.2.0"])
    );
    let imports: Vec<&str> = report["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert!(imports.contains(&"dmig:migration/db@0.2.0"), "{imports:?}");
    assert!(
        report["wasi_imports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i.as_str().unwrap().starts_with("wasi:")),
    );
    let bytes = std::fs::read(&caps).unwrap();
    assert_eq!(report["size"], bytes.len() as u64);
    assert_eq!(report["signatures"], serde_json::json!([]));

    let out = dmig(
        DMIG,
        dir.path(),
        &["inspect", s(&wasm), "--trusted-keys", s(&keys.trusted)],
    )
    .expect_code(0);
    for line in [
        "name          counter",
        "  writes      counters, counter_batches",
        "  raw SQL     no",
        "world         dmig:migration/data-migration@0.2.0",
        "signatures    1 in",
    ] {
        assert!(out.stdout.contains(line), "{line}\n{}", out.stdout);
    }
    assert!(
        out.stdout
            .contains(&format!("key {}  signed ", keys.alice_id)),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("verified by a trusted key"),
        "{}",
        out.stdout
    );
}

#[test]
fn undeclared_artifacts_are_refused_unless_allowed_and_pack_declares_them() {
    let dir = TestDir::new("undeclared");
    let url = dir.sqlite_url("app.db");
    let legacy = copy(&dir, guests::LEGACY_V0_1_0, "legacy.wasm");
    let out = dmig(DMIG, dir.path(), &["run", s(&legacy), "-D", &url]).expect_code(BAD_MANIFEST);
    assert!(
        out.stderr.contains("declares no manifest"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--allow-undeclared"), "{}", out.stderr);
    assert!(!dir.path().join("app.db").exists());
    let inspected = dmig(DMIG, dir.path(), &["inspect", s(&legacy)]).expect_code(0);
    assert!(
        inspected.stdout.contains("manifest      NONE"),
        "{}",
        inspected.stdout
    );

    // pack adds a manifest; raw SQL is shown loudly.
    let manifest = dir.write(
        "manifest.json",
        br#"{"format":1,"name":"legacy-v0-1-0","version":"1.0.0","description":"Built against dmig:migration@0.1.0","reversible":true,"wit":"0.1.0","capabilities":{"reads":[],"writes":["legacy_log"],"ddl":false,"raw_sql":true}}"#,
    );
    let packed = dir.path().join("packed.wasm");
    dmig(
        DMIG,
        dir.path(),
        &[
            "pack",
            s(&legacy),
            "--manifest",
            s(&manifest),
            "-o",
            s(&packed),
        ],
    )
    .expect_code(0);
    let inspected = dmig(DMIG, dir.path(), &["inspect", s(&packed)]).expect_code(0);
    assert!(
        inspected
            .stdout
            .contains("raw SQL     YES: statements dmig-host cannot parse run UNCHECKED"),
        "{}",
        inspected.stdout
    );
    let mut db = Db::open(&url);
    db.exec("CREATE TABLE legacy_log (step INTEGER NOT NULL)");
    dmig(DMIG, dir.path(), &["run", s(&packed), "-D", &url]).expect_code(0);
    assert_eq!(db.scalar::<i64>("SELECT count(*) FROM legacy_log"), 3);
    // Packing twice is refused; a manifest that lies about the WIT version
    // is refused at load.
    dmig(
        DMIG,
        dir.path(),
        &[
            "pack",
            s(&packed),
            "--manifest",
            s(&manifest),
            "-o",
            s(&dir.path().join("twice.wasm")),
        ],
    )
    .expect_code(BAD_MANIFEST);
    let lying_text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace(r#""wit":"0.1.0""#, r#""wit":"0.2.0""#);
    let lying = dir.write("lying.json", lying_text.as_bytes());
    let wrong = dir.path().join("wrong.wasm");
    dmig(
        DMIG,
        dir.path(),
        &["pack", s(&legacy), "--manifest", s(&lying), "-o", s(&wrong)],
    )
    .expect_code(0);
    let out = dmig(DMIG, dir.path(), &["run", s(&wrong), "-D", &url, "--force"])
        .expect_code(BAD_MANIFEST);
    assert!(
        out.stderr.contains("says it was built against WIT 0.2.0"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_directory_runs_in_name_order_and_stops_at_the_first_failure() {
    let dir = TestDir::new("directory");
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::copy(
        guests::COUNTER,
        migrations.join("20261101000000_counter.wasm"),
    )
    .unwrap();
    std::fs::copy(
        guests::FAIL_THIRD_STEP,
        migrations.join("20261102000000_fail.wasm"),
    )
    .unwrap();
    std::fs::copy(
        guests::CAPABILITIES,
        migrations.join("20261103000000_capabilities.wasm"),
    )
    .unwrap();
    std::fs::write(migrations.join("README.md"), "not an artifact").unwrap();
    let url = dir.sqlite_url("app.db");
    let mut db = counters(&url);
    db.exec(
        "CREATE TABLE items (id BIGINT PRIMARY KEY, done BIGINT NOT NULL DEFAULT 0);
         INSERT INTO items (id) VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10),
           (11), (12), (13), (14), (15), (16), (17), (18), (19), (20), (21), (22), (23), (24),
           (25), (26), (27), (28), (29), (30)",
    );

    let status = |db_url: &str| -> Json {
        let out = dmig(
            DMIG,
            dir.path(),
            &["status", "-D", db_url, "--dir", s(&migrations), "--json"],
        )
        .expect_code(0);
        serde_json::from_str(&out.stdout).unwrap()
    };
    let before = status(&url);
    let states: Vec<&str> = before["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["pending", "pending", "pending"]);

    let out = dmig(DMIG, dir.path(), &["run", s(&migrations), "-D", &url]).expect_code(1);
    assert!(out.stdout.contains("applied counter"), "{}", out.stdout);
    assert!(
        out.stderr.contains("migration fail-third-step failed"),
        "{}",
        out.stderr
    );
    let names: Vec<(String, String)> =
        db.rows("SELECT name, state FROM dmig_migrations ORDER BY name");
    assert_eq!(
        names,
        [
            ("counter".to_owned(), "applied".to_owned()),
            ("fail-third-step".to_owned(), "failed".to_owned()),
        ],
        "the artifact after the failure did not run"
    );
    let after = status(&url);
    let states: Vec<&str> = after["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["applied", "unfinished", "pending"]);

    // The human form names what is pending.
    let human = dmig(
        DMIG,
        dir.path(),
        &["status", "-D", &url, "--dir", s(&migrations)],
    )
    .expect_code(0);
    assert!(
        human.stdout.contains("2 of 3 artifacts pending"),
        "{}",
        human.stdout
    );

    // down takes one artifact; an empty directory is a usage error.
    let out = dmig(DMIG, dir.path(), &["down", s(&migrations), "-D", &url]).expect_code(2);
    assert!(out.stderr.contains("is a directory"), "{}", out.stderr);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = dmig(DMIG, dir.path(), &["run", s(&empty), "-D", &url]).expect_code(2);
    assert!(
        out.stderr.contains("holds no .wasm artifacts"),
        "{}",
        out.stderr
    );
}
