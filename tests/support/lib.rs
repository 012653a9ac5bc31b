//! Shared test support: the guest artifacts, a fresh directory and database
//! per test, a way to run the real `dmig-host` command line, and direct
//! database access that does not go through dmig's own code.

use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, FromRow, SqliteConnection};

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

/// Direct access to a test database through sqlx, independent of dmig.
pub struct Db {
    conn: SqliteConnection,
    runtime: tokio::runtime::Runtime,
}

impl Db {
    /// Opens (creating if needed) the SQLite database at `url`.
    pub fn open(url: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("a sqlite URL");
        let conn = runtime
            .block_on(SqliteConnection::connect_with(
                &options.create_if_missing(true),
            ))
            .expect("opening the test database");
        Db { conn, runtime }
    }

    /// Runs SQL statements (may be several, separated by `;`).
    pub fn exec(&mut self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        self.runtime
            .block_on(sqlx::raw_sql(sql).execute(&mut self.conn))
            .unwrap_or_else(|e| panic!("executing test SQL failed: {e}"));
    }

    /// Runs a query and decodes every row as `T` (a tuple, usually).
    pub fn rows<T>(&mut self, sql: &str) -> Vec<T>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        self.runtime
            .block_on(sqlx::query_as::<_, T>(sql).fetch_all(&mut self.conn))
            .unwrap_or_else(|e| panic!("test query failed: {e}"))
    }

    /// The single value of a one-row, one-column query.
    pub fn scalar<T>(&mut self, sql: &str) -> T
    where
        (T,): for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let mut rows = self.rows::<(T,)>(sql);
        assert_eq!(rows.len(), 1, "expected one row from {sql}");
        rows.remove(0).0
    }

    /// Every row of every user table (not dmig's) as text, in a stable
    /// order: a cheap "database unchanged" fingerprint.
    pub fn user_data(&mut self) -> Vec<String> {
        let tables: Vec<(String,)> = self.rows(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'dmig_%' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        );
        let mut dump = Vec::new();
        for (table,) in tables {
            let columns: Vec<(String,)> = self.rows(&format!(
                "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
            ));
            let row = columns
                .iter()
                .map(|(c,)| format!("quote(\"{c}\")"))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            let rows: Vec<(String,)> =
                self.rows(&format!("SELECT {row} FROM \"{table}\" ORDER BY rowid"));
            dump.extend(rows.into_iter().map(|(r,)| format!("{table} {r}")));
        }
        dump
    }

    /// Names of the dmig ledger tables present.
    pub fn ledger_tables(&mut self) -> Vec<String> {
        self.rows::<(String,)>(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'dmig_%' ORDER BY name",
        )
        .into_iter()
        .map(|(n,)| n)
        .collect()
    }
}
