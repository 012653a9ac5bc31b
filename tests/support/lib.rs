//! Shared test support: the guest artifacts, a fresh directory and database
//! per test, a way to run the real `dmig-host` command line, and direct
//! database access that does not go through dmig's own code.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::Value as Json;
use sqlx::any::AnyRow;
use sqlx::{Connection, FromRow, Row};

/// Paths of the guest components, built once per test build by `build.rs`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// A fresh temporary directory for one test, holding its database and any
/// files it writes. Removed when dropped.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    /// A new empty directory, named after the test for easier debugging.
    pub fn new(test: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("dmig-{test}-"))
            .tempdir()
            .expect("creating a temporary directory");
        TestDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A `sqlite://` URL for a database file `name` in this directory.
    pub fn sqlite_url(&self, name: &str) -> String {
        format!("sqlite://{}", self.dir.path().join(name).display())
    }

    /// Writes `bytes` to `name` in this directory and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).expect("writing a test file");
        path
    }
}

/// The outcome of one `dmig-host` invocation.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with the full output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// The compile cache the tests' hosts share (not the user's own).
pub fn test_cache_dir() -> PathBuf {
    std::env::temp_dir().join("dmig-test-compile-cache")
}

/// Runs the `dmig-host` binary at `bin` with `args`, in `cwd`, with no
/// DATABASE_URL or RUST_LOG inherited from the test's environment.
pub fn dmig(bin: &str, cwd: &Path, args: &[&str]) -> Run {
    dmig_with_env(bin, cwd, args, &[])
}

/// Like [`dmig`], with extra environment variables.
pub fn dmig_with_env(bin: &str, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env("DMIG_CACHE_DIR", test_cache_dir())
        .envs(env.iter().copied())
        .output()
        .expect("running dmig-host");
    Run {
        code: output
            .status
            .code()
            .expect("dmig-host was killed by a signal"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A `dmig-host` run with JSON events on stdout, timed from one of its steps.
#[derive(Debug)]
pub struct TimedRun {
    pub code: i32,
    pub stderr: String,
    /// Every JSON event, in order.
    pub events: Vec<Json>,
    /// From the moment the awaited step was reported (and the callback
    /// returned) until the process exited; `None` if that step never came.
    pub since_step: Option<std::time::Duration>,
}

/// Runs `dmig-host` with `--output json`; when it reports committed step
/// `step`, calls `at_step` with the process id (to act while the next step
/// runs), and times the rest of the run from there.
pub fn dmig_timed(
    bin: &str,
    cwd: &Path,
    args: &[&str],
    step: u64,
    at_step: impl FnOnce(u32),
) -> TimedRun {
    let mut child = Command::new(bin)
        .args(args)
        .args(["--output", "json"])
        .current_dir(cwd)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env("DMIG_CACHE_DIR", test_cache_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting dmig-host");
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    let mut at_step = Some(at_step);
    let mut since = None;
    let mut events = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let event: Json = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if event["event"] == "step"
            && event["step"] == step
            && let Some(act) = at_step.take()
        {
            act(child.id());
            since = Some(std::time::Instant::now());
        }
        events.push(event);
    }
    let status = child.wait().unwrap();
    TimedRun {
        code: status.code().expect("dmig-host was killed by a signal"),
        since_step: since.map(|t| t.elapsed()),
        stderr: stderr.join().unwrap(),
        events,
    }
}

/// The kinds of database the behaviour tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
    Mysql,
}

impl Kind {
    /// The environment variable naming the server to test against.
    pub fn env_var(self) -> Option<&'static str> {
        match self {
            Kind::Sqlite => None,
            Kind::Postgres => Some("DMIG_TEST_POSTGRES_URL"),
            Kind::Mysql => Some("DMIG_TEST_MYSQL_URL"),
        }
    }
}

/// Instantiates each listed test function (taking a [`Kind`]) once per
/// server database, for what SQLite does not have (row locks, concurrent
/// writers): `servers::postgres::name`, `servers::mysql::name`.
#[macro_export]
macro_rules! on_servers {
    ($($test:ident),* $(,)?) => {
        mod servers {
            mod postgres { $( #[test] fn $test() { super::super::$test($crate::Kind::Postgres) } )* }
            mod mysql { $( #[test] fn $test() { super::super::$test($crate::Kind::Mysql) } )* }
        }
    };
}

/// Instantiates each listed test function (taking a [`Kind`]) once per
/// database: `sqlite::name`, `postgres::name`, `mysql::name`.
#[macro_export]
macro_rules! on_every_database {
    ($($test:ident),* $(,)?) => {
        mod sqlite { $( #[test] fn $test() { super::$test($crate::Kind::Sqlite) } )* }
        mod postgres { $( #[test] fn $test() { super::$test($crate::Kind::Postgres) } )* }
        mod mysql { $( #[test] fn $test() { super::$test($crate::Kind::Mysql) } )* }
    };
}

/// A fresh, empty database for one test: a file in the test's directory, or
/// a database created on the server and dropped afterwards.
pub struct TestDb {
    pub kind: Kind,
    url: String,
    /// The server URL and the database name to drop.
    server: Option<(String, String)>,
    file: Option<PathBuf>,
}

impl TestDb {
    /// A new database of `kind` for `test`, or `None` (printing that the test
    /// was skipped) when the server's URL variable is not set.
    pub fn new(kind: Kind, dir: &TestDir, test: &str) -> Option<TestDb> {
        let Some(var) = kind.env_var() else {
            let file = dir.path().join("app.db");
            return Some(TestDb {
                kind,
                url: format!("sqlite://{}", file.display()),
                server: None,
                file: Some(file),
            });
        };
        let Ok(server) = std::env::var(var) else {
            println!("skipped: {var} is not set");
            return None;
        };
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slug: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(30)
            .collect();
        let name = format!("dmig_{slug}_{}_{n}", std::process::id());
        let create = match kind {
            Kind::Postgres => format!("CREATE DATABASE {name}"),
            _ => format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
        };
        Db::open(&server).exec(&create);
        let (base, _) = server
            .rsplit_once('/')
            .expect("a server URL with a database path");
        Some(TestDb {
            kind,
            url: format!("{base}/{name}"),
            server: Some((server, name)),
            file: None,
        })
    }

    /// The URL to pass to dmig-host.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Direct access to this database.
    pub fn open(&self) -> Db {
        Db::open(&self.url)
    }

    /// Panics unless the database is exactly as `before` (from [`TestDb::dump`]),
    /// naming the first differing line rather than printing a wall of bytes.
    #[track_caller]
    pub fn assert_unchanged(&self, before: &[u8]) {
        let after = self.dump();
        if after != before {
            let (a, b) = (
                String::from_utf8_lossy(before),
                String::from_utf8_lossy(&after),
            );
            let first = a.lines().zip(b.lines()).position(|(x, y)| x != y);
            let line = |t: &str| {
                first
                    .and_then(|i| t.lines().nth(i))
                    .unwrap_or("<end>")
                    .to_owned()
            };
            panic!(
                "database changed: {} bytes before, {} after; first difference at line {first:?}:\n- {}\n+ {}",
                before.len(),
                after.len(),
                line(&a),
                line(&b)
            );
        }
    }

    /// A complete dump of the database (schema and data), to compare before
    /// and after: the file's bytes for SQLite, pg_dump or mysqldump output
    /// for the servers.
    pub fn dump(&self) -> Vec<u8> {
        if let Some(file) = &self.file {
            return std::fs::read(file).expect("reading the database file");
        }
        let (program, args): (&str, Vec<String>) = match self.kind {
            Kind::Postgres => ("pg_dump", vec!["--no-owner".into(), self.url.clone()]),
            _ => {
                let rest = self.url.split_once("://").unwrap().1;
                let (auth, db) = rest.split_once('/').unwrap();
                let (user, host) = auth.split_once('@').unwrap_or(("root", auth));
                let (host, port) = host.split_once(':').unwrap_or((host, "3306"));
                let mut args = vec![
                    "--skip-dump-date".to_owned(),
                    "--skip-comments".to_owned(),
                    format!("--host={host}"),
                    format!("--port={port}"),
                ];
                match user.split_once(':') {
                    Some((user, password)) => {
                        args.push(format!("--user={user}"));
                        args.push(format!("--password={password}"));
                    }
                    None => args.push(format!("--user={user}")),
                }
                args.push(db.to_owned());
                ("mysqldump", args)
            }
        };
        let out = Command::new(program)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // pg_dump writes a random key into `\restrict` / `\unrestrict` lines
        // of every dump; they say nothing about the data.
        let text = String::from_utf8(out.stdout).expect("dumps are text");
        text.lines()
            .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((server, name)) = &self.server {
            let drop = match self.kind {
                Kind::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                _ => format!("DROP DATABASE IF EXISTS {name}"),
            };
            Db::open(server).exec(&drop);
        }
    }
}

/// Direct access to a test database through sqlx's `Any` driver,
/// independent of dmig.
pub struct Db {
    conn: sqlx::AnyConnection,
    kind: Kind,
    runtime: tokio::runtime::Runtime,
}

impl Db {
    /// Opens the database at `url` (a SQLite file is created if needed).
    pub fn open(url: &str) -> Self {
        sqlx::any::install_default_drivers();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (kind, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            (Kind::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if url.starts_with("postgres") {
            (Kind::Postgres, url.to_owned())
        } else {
            (Kind::Mysql, url.to_owned())
        };
        let conn = runtime
            .block_on(sqlx::AnyConnection::connect(&url))
            .unwrap_or_else(|e| panic!("opening the test database {url}: {e}"));
        Db {
            conn,
            kind,
            runtime,
        }
    }

    /// Runs SQL statements separated by `;` (none of which may contain `;`).
    pub fn exec(&mut self, sql: &str) {
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let statement = sqlx::AssertSqlSafe(statement.to_owned());
            self.runtime
                .block_on(sqlx::raw_sql(statement).execute(&mut self.conn))
                .unwrap_or_else(|e| panic!("executing test SQL failed: {e}: {sql}"));
        }
    }

    /// Runs exactly one statement, which may contain `;` in its literals.
    pub fn exec_one(&mut self, statement: &str) {
        let sql = sqlx::AssertSqlSafe(statement.to_owned());
        self.runtime
            .block_on(sqlx::raw_sql(sql).execute(&mut self.conn))
            .unwrap_or_else(|e| panic!("executing test SQL failed: {e}: {statement}"));
    }

    /// Runs a query and decodes every row as `T` (a tuple, usually).
    pub fn rows<T>(&mut self, sql: &str) -> Vec<T>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        self.runtime
            .block_on(sqlx::query_as::<_, T>(sql).fetch_all(&mut self.conn))
            .unwrap_or_else(|e| panic!("test query failed: {e}"))
    }

    /// The single value of a one-row, one-column query.
    pub fn scalar<T>(&mut self, sql: &str) -> T
    where
        (T,): for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let mut rows = self.rows::<(T,)>(sql);
        assert_eq!(rows.len(), 1, "expected one row from {sql}");
        rows.remove(0).0
    }

    fn tables(&mut self, dmig: bool) -> Vec<String> {
        // `!` as the LIKE escape: MySQL reads a backslash in a literal as an
        // escape of its own.
        let filter = if dmig {
            "LIKE 'dmig!_%' ESCAPE '!'"
        } else {
            "NOT LIKE 'dmig!_%' ESCAPE '!'"
        };
        let sql = match self.kind {
            Kind::Sqlite => format!(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name {filter} ORDER BY name"
            ),
            Kind::Postgres => format!(
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name {filter} ORDER BY table_name"
            ),
            Kind::Mysql => format!(
                "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name {filter} ORDER BY table_name"
            ),
        };
        self.rows::<(String,)>(&sql)
            .into_iter()
            .map(|(t,)| t)
            .collect()
    }

    /// Every row of every user table (not dmig's), as text, in a stable
    /// order: a "database unchanged" fingerprint.
    pub fn user_data(&mut self) -> Vec<String> {
        let mut dump = Vec::new();
        for table in self.tables(false) {
            let sql = sqlx::AssertSqlSafe(format!("SELECT * FROM {table} ORDER BY 1"));
            let rows = self
                .runtime
                .block_on(sqlx::query(sql).fetch_all(&mut self.conn))
                .unwrap_or_else(|e| panic!("reading {table}: {e}"));
            for row in rows {
                let cells: Vec<String> = (0..row.columns().len()).map(|i| cell(&row, i)).collect();
                dump.push(format!("{table} {}", cells.join("|")));
            }
        }
        dump
    }

    /// Names of the dmig ledger tables present.
    pub fn ledger_tables(&mut self) -> Vec<String> {
        self.tables(true)
    }
}

/// One cell as text, whatever its type.
fn cell(row: &AnyRow, i: usize) -> String {
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return format!("{v:?}");
    }
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return format!("{v:?}");
    }
    if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
        return format!("{v:?}");
    }
    if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
        return format!("{v:?}");
    }
    if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
        return format!("{v:?}");
    }
    panic!("column {i} has a type the test support cannot read")
}

/// A fresh database of `kind` for the `runner-probe` guest: `probe_items`
/// rows 1..=`items` (not done) and `probe_queue` rows 1..=`queued`; `None`
/// when that database is not configured (the test is skipped).
pub fn runner_probe_db(
    kind: Kind,
    dir: &TestDir,
    test: &str,
    items: i64,
    queued: i64,
) -> Option<(TestDb, Db)> {
    let test_db = TestDb::new(kind, dir, test)?;
    let mut db = test_db.open();
    db.exec(
        "CREATE TABLE probe_items (id BIGINT PRIMARY KEY, done BIGINT NOT NULL DEFAULT 0);
         CREATE TABLE probe_queue (id BIGINT PRIMARY KEY)",
    );
    for id in 1..=items {
        db.exec(&format!("INSERT INTO probe_items (id) VALUES ({id})"));
    }
    for id in 1..=queued {
        db.exec(&format!("INSERT INTO probe_queue (id) VALUES ({id})"));
    }
    Some((test_db, db))
}

/// A fresh database of `kind` with `n` counters at 0 and an empty batch
/// log; `None` when that database is not configured (the test is skipped).
pub fn counters_db(kind: Kind, dir: &TestDir, test: &str, n: i64) -> Option<(TestDb, Db)> {
    let test_db = TestDb::new(kind, dir, test)?;
    let mut db = test_db.open();
    db.exec(
        "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0);
         CREATE TABLE counter_batches (first_id BIGINT NOT NULL, last_id BIGINT NOT NULL)",
    );
    let ids: Vec<i64> = (1..=n).collect();
    for chunk in ids.chunks(5_000) {
        let values: Vec<String> = chunk.iter().map(|i| format!("({i})")).collect();
        db.exec(&format!(
            "INSERT INTO counters (id) VALUES {}",
            values.join(", ")
        ));
    }
    Some((test_db, db))
}

/// Starts `dmig-host` with JSON events on a pipe.
pub fn spawn_json(bin: &str, dir: &TestDir, args: &[&str]) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(bin)
        .args(args)
        .args(["--output", "json"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env("DMIG_CACHE_DIR", test_cache_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting dmig-host");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (child, stdout)
}

/// Reads events until one named `name` arrives; `None` at end of output.
pub fn next_event(events: &mut BufReader<ChildStdout>, name: &str) -> Option<Json> {
    let mut line = String::new();
    loop {
        line.clear();
        if events.read_line(&mut line).unwrap() == 0 {
            return None;
        }
        let event: Json = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if event["event"] == name {
            return Some(event);
        }
    }
}
