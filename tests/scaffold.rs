//! `dmig-host new` and the template: rendered both ways (dmig-host always,
//! cargo-generate where installed, and always under scripts/test.sh), built
//! for wasm32-wasip2 offline, run through the harness and by its own `cargo
//! test`; and every bad input refused with its exit code, leaving nothing
//! behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use dmig_host::harness::{TestDatabase, TestMigration};
use dmig_tests::{TestDir, dmig};

const DMIG: &str = env!("CARGO_BIN_EXE_dmig-host-under-test");

/// The rendered crate's name. It must differ from every guest's: the build
/// shares the guests' target directory, where a second `backfill_user_slugs`
/// would overwrite the example's component.
const NAME: &str = "fill_normalized_emails";

/// The checkout, canonical: `dmig-host new` names it that way.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .canonicalize()
        .unwrap()
}

/// The workspace's target directory: this test runs from `<target>/debug/deps`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// The command that runs `generate` with cargo-generate: the one
/// DMIG_TEST_CARGO_GENERATE names (`cargo`, or a `cargo-generate` binary),
/// else `cargo` where `cargo generate` works, else none.
fn cargo_generate() -> Option<PathBuf> {
    if let Some(named) = std::env::var_os("DMIG_TEST_CARGO_GENERATE") {
        let named = PathBuf::from(named);
        let works = Command::new(&named)
            .args(["generate", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            works,
            "DMIG_TEST_CARGO_GENERATE={} does not run `generate --version`; install cargo-generate (scripts/setup.sh with DMIG_NEED_CARGO_GENERATE=1)",
            named.display()
        );
        return Some(named);
    }
    Command::new("cargo")
        .args(["generate", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
        .then(|| PathBuf::from("cargo"))
}

/// Every file under `dir` (relative) with its text, sorted.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if path.is_dir() {
                if name != "target" && name != ".git" {
                    dirs.push(path);
                }
            } else if name != "Cargo.lock" {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Builds a rendered crate for wasm32-wasip2, offline, sharing the guests'
/// target directory (so the SDK and wit-bindgen are not compiled again), with
/// the workspace's lock file so the versions are the ones tested here.
fn build(crate_dir: &Path) -> PathBuf {
    std::fs::copy(repo().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let target = target_dir().join("guests");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(crate_dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--offline",
        ])
        .arg("--target-dir")
        .arg(&target);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "building the rendered crate failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm = target.join("wasm32-wasip2/release/fill_normalized_emails.wasm");
    assert!(wasm.exists(), "{} was not built", wasm.display());
    wasm
}

/// The template's own scenario, through the harness.
fn runs(wasm: &Path) {
    let db = TestDatabase::sqlite().unwrap();
    db.execute_script(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL, email_normalized VARCHAR(255));
         INSERT INTO users (id, email) VALUES (1, ' Ada@Example.COM'), (2, 'x@Y.org')",
    )
    .unwrap();
    let migration = TestMigration::from_wasm(wasm);
    let run = migration.up(&db).unwrap();
    assert_eq!(run.outcome.migration, NAME);
    assert_eq!(run.outcome.rows, 2);
    assert_eq!(
        db.column::<String>("SELECT email_normalized FROM users ORDER BY id")
            .unwrap(),
        ["ada@example.com", "x@y.org"]
    );
    migration.down(&db).unwrap();
}

#[test]
fn new_renders_a_crate_that_builds_and_runs_and_matches_cargo_generate() {
    let dir = TestDir::new("new");
    let root = dir.path().join("db/data_migrations");
    let repo = repo();
    // No --dmig-path: the binary depends the crate on its own checkout.
    let out = dmig(
        DMIG,
        dir.path(),
        &["new", NAME, "--dir", root.to_str().unwrap()],
    )
    .expect_code(0);
    for line in [
        format!(
            "  dmig-guest = {{ path = {:?} }}\n",
            repo.join("guest-sdk").display().to_string()
        ),
        format!(
            "  dmig-host = {{ path = {:?}, features = [\"harness\"] }}\n",
            repo.join("host").display().to_string()
        ),
    ] {
        assert!(out.stdout.contains(&line), "{line} in {}", out.stdout);
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1);
    let created = &entries[0];
    let name = created.file_name().unwrap().to_str().unwrap();
    let (stamp, rest) = name.split_once('_').unwrap();
    assert_eq!(rest, NAME);
    assert!(
        stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()),
        "{name}"
    );
    assert!(
        out.stdout.contains(&created.display().to_string()),
        "{}",
        out.stdout
    );
    let rendered = files(created);
    let names: Vec<&str> = rendered.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            ".gitignore",
            "Cargo.toml",
            "README.md",
            "src/lib.rs",
            "tests/migration.rs"
        ]
    );
    assert!(rendered.iter().all(|(_, text)| !text.contains("{{")));

    let wasm = build(created);
    runs(&wasm);

    // cargo-generate renders the same crate. `scripts/test.sh` (so CI)
    // names it in DMIG_TEST_CARGO_GENERATE and it must run; elsewhere it runs
    // where `cargo generate` is installed.
    if let Some(cargo_generate) = cargo_generate() {
        let other = dir.path().join("cargo-generate");
        std::fs::create_dir(&other).unwrap();
        let guest = format!(
            "dmig_guest={{ path = {:?} }}",
            repo.join("guest-sdk").display().to_string()
        );
        let host = format!(
            "dmig_host={{ path = {:?}, features = [\"harness\"] }}",
            repo.join("host").display().to_string()
        );
        let out = Command::new(&cargo_generate)
            .args(["generate", "--path"])
            .arg(repo.join("templates/migration"))
            .args(["--name", NAME, "--silent", "--vcs", "none", "--destination"])
            .arg(&other)
            .args(["--define", &guest, "--define", &host])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo generate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let generated = other.join(NAME);
        assert_eq!(files(&generated), rendered);
        runs(&build(&generated));
    } else {
        println!(
            "skipped the cargo-generate half: cargo-generate is not installed (scripts/test.sh installs it)"
        );
    }

    // The crate's own `cargo test`, as its author runs it: the harness builds
    // the component and runs it on every database this suite has. It shares
    // this workspace's target directory (free while tests run) and lock
    // file, so only what the crate's own feature set changes is compiled
    // again (a few minutes, the first time).
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(created)
        .args(["test", "--offline", "--target-dir"])
        .arg(target_dir())
        // The harness prints why it skips a database; show it, to check.
        .args(["--", "--nocapture"])
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_PRIMARY_PACKAGE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the rendered crate's tests failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for db in ["sqlite", "postgres", "mysql"] {
        let test = format!("{db}::fills_missing_values_in_batches_and_reverts ... ok");
        assert!(stdout.contains(&test), "{test} in:\n{stdout}");
    }
    // A server this suite has must not be skipped by the crate's tests.
    for var in ["DMIG_TEST_POSTGRES_URL", "DMIG_TEST_MYSQL_URL"] {
        let skipped = format!("skipped: {var} is not set");
        assert_eq!(
            stdout.contains(&skipped),
            std::env::var_os(var).is_none(),
            "{var}: {stdout}"
        );
    }
}

#[test]
fn new_refuses_bad_input_and_leaves_nothing_behind() {
    let dir = TestDir::new("new-bad");
    let root = dir.path().join("migrations");
    let root_arg = root.to_str().unwrap();

    let out = dmig(DMIG, dir.path(), &["new", "Bad Name", "--dir", root_arg]).expect_code(2);
    assert!(
        out.stderr.starts_with(
            "error: invalid migration name \"Bad Name\": it must start with a lowercase letter"
        ),
        "{}",
        out.stderr
    );
    assert!(!root.exists());

    let out = dmig(
        DMIG,
        dir.path(),
        &["new", "ok", "--dir", root_arg, "--define", "nope=1"],
    )
    .expect_code(2);
    assert!(
        out.stderr.contains("unknown template placeholder nope in --define (the template declares: dmig_guest, dmig_host)"),
        "{}",
        out.stderr
    );
    assert!(!root.exists());

    // A directory for this name at every second around now: it exists.
    let now = chrono::Utc::now();
    for offset in -2..30 {
        let stamp = (now + chrono::Duration::seconds(offset)).format("%Y%m%d%H%M%S");
        std::fs::create_dir_all(root.join(format!("{stamp}_taken"))).unwrap();
    }
    let out = dmig(DMIG, dir.path(), &["new", "taken", "--dir", root_arg]).expect_code(4);
    assert!(
        out.stderr
            .contains("already exists; dmig-host new never overwrites"),
        "{}",
        out.stderr
    );

    // A --dir that cannot be created (under a regular file).
    let file = dir.write("a-file", b"x");
    let under = file.join("sub");
    let out = dmig(
        DMIG,
        dir.path(),
        &["new", "ok", "--dir", under.to_str().unwrap()],
    )
    .expect_code(15);
    assert!(
        out.stderr.starts_with("error: cannot write"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn new_says_where_the_sdk_comes_from_and_can_take_the_released_crates() {
    let dir = TestDir::new("new-released");
    let root = dir.path().join("m");
    let root_arg = root.to_str().unwrap();

    let out = dmig(
        DMIG,
        dir.path(),
        &["new", "fix-v2_users", "--dir", root_arg, "--released"],
    )
    .expect_code(0);
    assert!(
        out.stdout.contains("  dmig-guest = \"0.1\"\n")
            && out
                .stdout
                .contains("  dmig-host = { version = \"0.1\", features = [\"harness\"] }\n"),
        "{}",
        out.stdout
    );
    let created = std::fs::read_dir(&root)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let manifest = std::fs::read_to_string(created.join("Cargo.toml")).unwrap();
    // cargo-generate's rule: a name mixing - and _ becomes kebab case.
    assert!(manifest.contains("name = \"fix-v2-users\""), "{manifest}");

    let out = dmig(
        DMIG,
        dir.path(),
        &[
            "new",
            "other",
            "--dir",
            root_arg,
            "--released",
            "--dmig-path",
            "/src/dmig",
        ],
    )
    .expect_code(2);
    assert!(out.stderr.contains("--released"), "{}", out.stderr);
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
}
