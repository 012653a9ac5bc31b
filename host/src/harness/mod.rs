//! A test harness for migration authors (cargo feature `harness`): in an
//! ordinary `cargo test`, build the migration's `.wasm`, create a throwaway
//! database with fixtures, run `up` and `down` through the real host and
//! sandbox, and assert on the rows, the guest's logs and the ledger's run
//! record.
//!
//! ```no_run
//! use dmig_host::harness::{TestDatabase, TestMigration};
//!
//! #[test]
//! fn backfills_every_slug() -> Result<(), Box<dyn std::error::Error>> {
//!     let migration = TestMigration::build(env!("CARGO_MANIFEST_DIR"))?;
//!     let db = TestDatabase::sqlite()?;
//!     db.execute_script("CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT, slug TEXT);
//!                        INSERT INTO users (id, name) VALUES (1, 'Ada'), (2, 'Ada')")?;
//!     let run = migration.up(&db)?;
//!     assert_eq!(run.outcome.rows, 2);
//!     assert_eq!(db.column::<String>("SELECT slug FROM users ORDER BY id")?, ["ada-1", "ada-2"]);
//!     migration.down(&db)?;
//!     Ok(())
//! }
//! ```
//!
//! * [`guest`]: building the crate under test for `wasm32-wasip2`, once per
//!   test process.
//! * [`database`]: throwaway SQLite files and server databases, fixtures and
//!   reads.
//! * [`run`]: running the migration and what a run reports.
//!
//! [`test_on_every_database!`](crate::test_on_every_database) runs one test
//! on SQLite, and on PostgreSQL and MySQL/MariaDB when
//! `DMIG_TEST_POSTGRES_URL` / `DMIG_TEST_MYSQL_URL` name a server.

pub mod database;
pub mod guest;
pub mod run;

use std::path::PathBuf;
use std::sync::OnceLock;

pub use database::TestDatabase;
pub use guest::build_guest;
pub use run::{Log, Run, RunBuilder, TestMigration};

/// Everything the harness can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// Building the guest for `wasm32-wasip2` failed.
    #[error("building the migration in {} for wasm32-wasip2 failed: {reason}", dir.display())]
    Build { dir: PathBuf, reason: String },
    /// A statement of the test's own (fixtures, assertions) failed.
    #[error("test SQL failed: {source}: {sql}")]
    Sql {
        sql: String,
        #[source]
        source: crate::db::DbError,
    },
    /// A value read by the test is not of the type asked for.
    #[error("{sql}: {reason}")]
    Decode { sql: String, reason: String },
    /// The run failed (the error is the host's, as an operator would see it).
    /// `logs` holds what the guest logged before it failed.
    #[error("{error}")]
    Run {
        #[source]
        error: Box<crate::Error>,
        logs: Vec<Log>,
        /// The ledger's record of the failed run, when there is one.
        record: Option<Box<crate::ledger::RunRecord>>,
    },
    /// Setting up the host (sandbox, artifact, connection) failed.
    #[error(transparent)]
    Host(Box<crate::Error>),
    /// A temporary file or directory could not be made.
    #[error("cannot create a temporary database file: {0}")]
    Io(#[from] std::io::Error),
}

impl From<crate::Error> for HarnessError {
    fn from(error: crate::Error) -> Self {
        HarnessError::Host(Box::new(error))
    }
}

/// Shorthand for the harness's results.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

/// The async runtime every harness call blocks on; tests run on many
/// threads, and one shared runtime serves them all.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("starting the harness's async runtime")
    })
}

/// Defines one `#[test]` per database for each listed function taking a
/// [`TestDatabase`](crate::harness::TestDatabase): `sqlite::name` always,
/// `postgres::name` and `mysql::name` on a fresh database on the server that
/// `DMIG_TEST_POSTGRES_URL` / `DMIG_TEST_MYSQL_URL` name (without the
/// variable, the test prints that it was skipped and passes).
///
/// ```ignore
/// fn backfills(db: TestDatabase) { /* ... */ }
/// dmig_host::test_on_every_database!(backfills);
/// ```
#[macro_export]
macro_rules! test_on_every_database {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $test() {
                super::$test($crate::harness::TestDatabase::sqlite().expect("creating a SQLite test database"))
            } )*
        }
        mod postgres {
            $( #[test] fn $test() {
                if let Some(db) = $crate::harness::TestDatabase::from_env("DMIG_TEST_POSTGRES_URL")
                    .expect("creating a PostgreSQL test database") { super::$test(db) }
            } )*
        }
        mod mysql {
            $( #[test] fn $test() {
                if let Some(db) = $crate::harness::TestDatabase::from_env("DMIG_TEST_MYSQL_URL")
                    .expect("creating a MySQL test database") { super::$test(db) }
            } )*
        }
    };
}
