//! Why the benchmark stopped.

use std::path::PathBuf;

/// A failure that makes the numbers meaningless: the benchmark stops and
/// says which step failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Database {
        what: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("{what} ({}): {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} exited with {status}: {stderr}")]
    Child {
        what: String,
        status: String,
        stderr: String,
    },
    #[error(
        "{what} left a wrong result: {rows} rows, {missing} without a slug, {wrong} with a wrong slug (first: {example})"
    )]
    WrongResult {
        what: String,
        rows: u64,
        missing: u64,
        wrong: u64,
        example: String,
    },
    #[error("{0}")]
    Missing(String),
}

impl BenchError {
    /// The process exit code for this failure: 2 bad options or a program
    /// not built, 3 a database that cannot be reached or used, 4 a file
    /// that cannot be written or read, 5 a measured program that failed,
    /// 6 a wrong result.
    pub fn exit_code(&self) -> u8 {
        match self {
            BenchError::Missing(_) => 2,
            BenchError::Database { .. } => 3,
            BenchError::Io { .. } => 4,
            BenchError::Child { .. } => 5,
            BenchError::WrongResult { .. } => 6,
        }
    }
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// Adds what was being done to a database error.
pub trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|source| BenchError::Database {
            what: what.into(),
            source,
        })
    }
}
