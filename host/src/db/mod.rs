//! One connection to the target database, behind a driver-neutral API.
//!
//! Everything dmig sends to the database (guest statements and ledger writes)
//! goes through [`Connection`], so transactions are owned in one place and the
//! rest of the host never names a driver. The dialect is picked from the URL
//! scheme; per-dialect code lives in one submodule each and only where the
//! databases really differ (connecting, decoding result values).

mod sqlite;
mod value;

use std::fmt;

pub use value::{Rows, Value};

use crate::error::{Error, Result};

/// The kinds of database dmig talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    Mysql,
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
        })
    }
}

impl Dialect {
    /// The dialect a database URL names, by its scheme.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedDatabase`] for any other scheme.
    pub fn from_url(url: &str) -> Result<Self> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Dialect::Sqlite),
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            "mysql" | "mariadb" => Ok(Dialect::Mysql),
            _ => Err(Error::UnsupportedDatabase {
                url: redact(url),
                reason: "use a sqlite://, postgres:// or mysql:// URL".into(),
            }),
        }
    }
}

/// An error from one statement, as the guest and the ledger see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    /// The database's own error code, when it has one.
    pub code: Option<String>,
    /// The database's message.
    pub message: String,
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} (code {code})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DbError {}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) => DbError {
                code: db.code().map(|c| c.into_owned()),
                message: db.message().to_owned(),
            },
            other => DbError {
                code: None,
                message: other.to_string(),
            },
        }
    }
}

/// Caps on what one query may return, so a guest cannot make the host hold
/// an unbounded result in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultLimits {
    /// Most rows one query may return.
    pub max_rows: usize,
    /// Most bytes (text and blob lengths, 8 per number) one query may return.
    pub max_bytes: usize,
}

impl ResultLimits {
    /// No caps: for the host's own ledger queries.
    pub const NONE: ResultLimits = ResultLimits {
        max_rows: usize::MAX,
        max_bytes: usize::MAX,
    };
}

/// The error code of a call refused because it exceeded a sandbox limit.
pub const LIMIT_CODE: &str = "dmig:limit";
/// The error code of a statement refused by the sandbox's SQL policy.
pub const REFUSED_CODE: &str = "dmig:refused";

/// Interrupts the statement running on a connection, from another task.
///
/// Holds the raw SQLite handle: valid only while its [`Connection`] lives,
/// which is why it is only handed out for the duration of one call.
#[derive(Clone, Copy)]
pub(crate) struct Interrupter(std::ptr::NonNull<libsqlite3_sys::sqlite3>);

// SAFETY: sqlite3_interrupt is documented as safe to call from any thread
// while the connection is open; that is the only use of the pointer.
unsafe impl Send for Interrupter {}
unsafe impl Sync for Interrupter {}

impl Interrupter {
    /// Makes the running statement (if any) fail with SQLITE_INTERRUPT.
    pub(crate) fn interrupt(self) {
        // SAFETY: see the type's invariant; the connection is alive.
        unsafe { libsqlite3_sys::sqlite3_interrupt(self.0.as_ptr()) }
    }
}

/// A single connection to the target database. dmig uses exactly one per run,
/// so the transaction a step runs in is unambiguous.
pub struct Connection {
    inner: Inner,
}

enum Inner {
    Sqlite(sqlx::SqliteConnection, Interrupter),
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("dialect", &self.dialect())
            .finish()
    }
}

impl Connection {
    /// Connects to `url`. A `sqlite://` file is created if it does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedDatabase`] for an unknown scheme or a dialect not
    /// supported yet, [`Error::Connect`] when the database cannot be reached.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(url, true).await
    }

    /// Like [`Connection::connect`], but never creates a database: for
    /// read-only commands such as `status`.
    pub async fn connect_existing(url: &str) -> Result<Self> {
        Self::open(url, false).await
    }

    async fn open(url: &str, create: bool) -> Result<Self> {
        let inner = match Dialect::from_url(url)? {
            Dialect::Sqlite => {
                let mut conn = sqlite::connect(url, create).await?;
                let handle =
                    sqlite::raw_handle(&mut conn)
                        .await
                        .map_err(|source| Error::Connect {
                            url: redact(url),
                            source,
                        })?;
                Inner::Sqlite(conn, Interrupter(handle))
            }
            dialect @ (Dialect::Postgres | Dialect::Mysql) => {
                return Err(Error::UnsupportedDatabase {
                    url: redact(url),
                    reason: format!(
                        "{dialect} support is not available in this version of dmig-host yet; use a sqlite:// URL"
                    ),
                });
            }
        };
        Ok(Connection { inner })
    }

    /// The kind of database this connection talks to.
    pub fn dialect(&self) -> Dialect {
        match self.inner {
            Inner::Sqlite(..) => Dialect::Sqlite,
        }
    }

    /// A way to interrupt a statement running on this connection, where the
    /// database has one.
    pub(crate) fn interrupter(&self) -> Option<Interrupter> {
        match self.inner {
            Inner::Sqlite(_, interrupter) => Some(interrupter),
        }
    }

    /// Opens a transaction. dmig never nests them.
    pub async fn begin(&mut self) -> Result<(), DbError> {
        self.raw("BEGIN").await
    }

    /// Commits the open transaction.
    pub async fn commit(&mut self) -> Result<(), DbError> {
        self.raw("COMMIT").await
    }

    /// Rolls the open transaction back.
    pub async fn rollback(&mut self) -> Result<(), DbError> {
        self.raw("ROLLBACK").await
    }

    async fn raw(&mut self, sql: &'static str) -> Result<(), DbError> {
        match &mut self.inner {
            Inner::Sqlite(c, _) => sqlx::raw_sql(sql).execute(c).await.map(drop)?,
        }
        Ok(())
    }

    /// Runs a statement with `?` placeholders and returns every row.
    pub async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        self.query_limited(sql, params, ResultLimits::NONE).await
    }

    /// Like [`Connection::query`], but stops reading and fails with
    /// [`LIMIT_CODE`] as soon as the result exceeds `limits`.
    pub async fn query_limited(
        &mut self,
        sql: &str,
        params: &[Value],
        limits: ResultLimits,
    ) -> Result<Rows, DbError> {
        match &mut self.inner {
            Inner::Sqlite(c, _) => sqlite::query(c, sql, params, limits).await,
        }
    }

    /// Runs a statement with `?` placeholders; returns the rows affected.
    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        Ok(self.execute_returning_id(sql, params).await?.0)
    }

    /// Runs one statement per parameter set, prepared once (sqlx caches the
    /// prepared statement on the connection). Stops at the first error.
    pub async fn execute_many(
        &mut self,
        sql: &str,
        param_sets: &[Vec<Value>],
    ) -> Result<u64, DbError> {
        let mut affected = 0;
        for params in param_sets {
            affected += self.execute(sql, params).await?;
        }
        Ok(affected)
    }

    /// Every user table (not dmig's, not the database's own) with its row
    /// count, by name. For dry-run reports.
    pub async fn table_row_counts(&mut self) -> Result<Vec<(String, i64)>, DbError> {
        let list = match self.dialect() {
            Dialect::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'dmig\\_%' ESCAPE '\\' ORDER BY name"
            }
            Dialect::Postgres | Dialect::Mysql => {
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() \
                 AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'dmig\\_%' ORDER BY table_name"
            }
        };
        let tables = self.query(list, &[]).await?;
        let mut counts = Vec::with_capacity(tables.rows.len());
        for row in &tables.rows {
            let Some(table) = row.first().and_then(Value::as_str) else {
                continue;
            };
            let quoted = quote_identifier(self.dialect(), table);
            let count = self
                .query(&format!("SELECT count(*) FROM {quoted}"), &[])
                .await?;
            let n = count
                .rows
                .first()
                .and_then(|r| r.first())
                .and_then(Value::as_i64)
                .unwrap_or(0);
            counts.push((table.to_owned(), n));
        }
        Ok(counts)
    }

    /// Runs an `INSERT` and returns (rows affected, id of the inserted row).
    pub async fn execute_returning_id(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<(u64, i64), DbError> {
        match &mut self.inner {
            Inner::Sqlite(c, _) => sqlite::execute(c, sql, params).await,
        }
    }
}

/// `name` quoted as an identifier for `dialect`.
pub fn quote_identifier(dialect: Dialect, name: &str) -> String {
    match dialect {
        Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
        Dialect::Sqlite | Dialect::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// `url` with any password replaced, fit for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://me:secret@db:5432/app"),
            "postgres://me:***@db:5432/app"
        );
        assert_eq!(redact("postgres://me@db/app"), "postgres://me@db/app");
        assert_eq!(redact("sqlite://data.db"), "sqlite://data.db");
    }

    #[test]
    fn dialect_from_scheme() {
        assert_eq!(Dialect::from_url("sqlite://x.db").unwrap(), Dialect::Sqlite);
        assert_eq!(
            Dialect::from_url("sqlite::memory:").unwrap(),
            Dialect::Sqlite
        );
        assert_eq!(
            Dialect::from_url("postgresql://h/d").unwrap(),
            Dialect::Postgres
        );
        assert_eq!(Dialect::from_url("mariadb://h/d").unwrap(), Dialect::Mysql);
        assert!(matches!(
            Dialect::from_url("oracle://h/d"),
            Err(Error::UnsupportedDatabase { .. })
        ));
    }
}
