//! One connection to the target database, behind a driver-neutral API.
//!
//! Everything dmig sends to the database (guest statements and ledger writes)
//! goes through [`Connection`], so transactions are owned in one place and the
//! rest of the host never names a driver. The dialect is picked from the URL
//! scheme; per-dialect code lives in one submodule each and only where the
//! databases really differ (connecting, binding parameters, decoding result
//! values). docs/VALUES.md describes the value mapping guests rely on.

pub mod backoff;
mod mysql;
mod postgres;
mod sqlite;
mod value;

mod cancel;
pub(crate) use cancel::{CANCEL_GRACE, Canceller};

use std::fmt;

use futures_util::TryStreamExt;
use sqlx::{Column, Executor, Row, Statement};

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
    /// MySQL's and MariaDB's own error number (1205, 1213, …): their
    /// SQLSTATE is often the generic `HY000`, and their message is in the
    /// server's language (`lc_messages`). Host-side only; guests see `code`.
    pub number: Option<u16>,
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

impl DbError {
    /// Whether this error came from contention with other sessions rather
    /// than from the statement itself, so the same transaction run again
    /// later can succeed: a deadlock, a serialization failure, or a lock that
    /// could not be had in time.
    ///
    /// * PostgreSQL (SQLSTATE): `40P01` deadlock_detected, `40001`
    ///   serialization_failure, `55P03` lock_not_available (`lock_timeout`,
    ///   `NOWAIT`).
    /// * MySQL/MariaDB: `40001` is the SQLSTATE of error 1213 (deadlock, the
    ///   transaction was rolled back). Error 1205 (lock wait timeout) and
    ///   MariaDB's error 1020 ("Record has changed since last read", its
    ///   serialization failure under `innodb_snapshot_isolation`: a row the
    ///   transaction read was changed by another since) have the generic
    ///   SQLSTATE `HY000`, so they are told by their error number, which does
    ///   not depend on the server's language as their message does. Every
    ///   error from the server has one (see `From<sqlx::Error>`).
    /// * SQLite (extended result code): `SQLITE_BUSY` (5) and
    ///   `SQLITE_LOCKED` (6) with any extended code (261, 517, 262, …):
    ///   another connection held the lock past the busy timeout.
    ///
    /// Codes dmig makes itself (`dmig:…`) are never transient.
    pub fn is_transient(&self, dialect: Dialect) -> bool {
        let Some(code) = self.code.as_deref() else {
            return false;
        };
        match dialect {
            Dialect::Postgres => matches!(code, "40P01" | "40001" | "55P03"),
            Dialect::Mysql => code == "40001" || matches!(self.number, Some(1205 | 1020)),
            Dialect::Sqlite => code
                .parse::<i64>()
                .is_ok_and(|code| matches!(code & 0xff, 5 | 6)),
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) => DbError {
                number: db
                    .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .map(sqlx::mysql::MySqlDatabaseError::number),
                code: db.code().map(|c| c.into_owned()),
                message: db.message().to_owned(),
            },
            other => DbError {
                number: None,
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
/// The error code of a result column whose type dmig cannot read (or a value
/// that does not fit the WIT value it maps to).
pub const UNSUPPORTED_TYPE_CODE: &str = "dmig:unsupported-type";

/// The error for column `column` of type `type_name`, which dmig cannot read;
/// `cast` is how to cast it to text in this dialect, for the hint.
fn unsupported_type(column: &str, type_name: &str, cast: &str) -> DbError {
    DbError {
        number: None,
        code: Some(UNSUPPORTED_TYPE_CODE.into()),
        message: format!(
            "column {column} has type {type_name}, which dmig cannot read; \
             cast it in the query, e.g. {cast}"
        ),
    }
}

/// The error for column `column` holding the result of a function that
/// returns nothing (PostgreSQL's `void`): there is no value to cast, so the
/// hint is to run the call as a statement, or to cast the call itself.
fn void_result(column: &str) -> DbError {
    DbError {
        number: None,
        code: Some(UNSUPPORTED_TYPE_CODE.into()),
        message: format!(
            "column {column} has type VOID: the function called returns nothing, so there is \
             no value to read; run the statement with execute (which reads no rows), or cast \
             the call to text in the query, e.g. SELECT {column}(...)::text AS {column}"
        ),
    }
}

fn limit_error(message: String) -> DbError {
    DbError {
        number: None,
        code: Some(LIMIT_CODE.into()),
        message,
    }
}

/// The rows one query has returned so far, held within its [`ResultLimits`].
pub(super) struct Collector {
    limits: ResultLimits,
    pub(super) rows: Vec<Vec<Value>>,
    bytes: usize,
}

impl Collector {
    pub(super) fn new(limits: ResultLimits) -> Self {
        Collector {
            limits,
            rows: Vec::new(),
            bytes: 0,
        }
    }

    /// Fails with [`LIMIT_CODE`] when another row would be one too many
    /// (checked before the row is decoded).
    pub(super) fn room(&self) -> Result<(), DbError> {
        if self.rows.len() == self.limits.max_rows {
            return Err(limit_error(format!(
                "the query returned more than {} rows (the per-call limit); fetch fewer rows per step",
                self.limits.max_rows
            )));
        }
        Ok(())
    }

    /// Keeps a decoded row, or fails with [`LIMIT_CODE`] when the rows so
    /// far exceed the byte limit.
    pub(super) fn push(&mut self, values: Vec<Value>) -> Result<(), DbError> {
        self.bytes = self
            .bytes
            .saturating_add(values.iter().map(Value::size).sum());
        if self.bytes > self.limits.max_bytes {
            return Err(limit_error(format!(
                "the query returned more than {} bytes (the per-call limit); fetch fewer or smaller rows per step",
                self.limits.max_bytes
            )));
        }
        self.rows.push(values);
        Ok(())
    }
}

/// Runs `query` (whose text is `sql`) and reads its rows, decoding each with
/// `decode`, failing with [`LIMIT_CODE`] as soon as the result exceeds
/// `limits`. Rows are streamed, so an oversized result is never held whole.
/// Binds `params` in order, as the natural Rust type of each value: the
/// binding SQLite and MySQL share (PostgreSQL types its parameters itself,
/// see `postgres.rs`).
fn bind_natural<'q, DB>(
    mut query: sqlx::query::Query<'q, DB, DB::Arguments>,
    params: &[Value],
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    DB: sqlx::Database,
    for<'a> bool: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> f64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Vec<u8>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    for param in params {
        query = match param {
            Value::Null => query.bind(None::<String>),
            Value::Boolean(b) => query.bind(*b),
            Value::Int(i) => query.bind(*i),
            Value::Float(f) => query.bind(*f),
            Value::Text(s) => query.bind(s.clone()),
            Value::Blob(b) => query.bind(b.clone()),
        };
    }
    query
}

/// Decodes every column of `row` by the driver's `decode_value` (which sees
/// the column name for its errors, and decides what is NULL: sqlx calls
/// MySQL's zero dates NULL, which they are not).
fn decode_row<R, F>(row: &R, decode_value: &F) -> Result<Vec<Value>, DbError>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    F: for<'r> Fn(&str, <R::Database as sqlx::Database>::ValueRef<'r>) -> Result<Value, DbError>,
{
    row.columns()
        .iter()
        .map(|column| {
            let raw = row.try_get_raw(column.ordinal())?;
            decode_value(column.name(), raw)
        })
        .collect()
}

async fn fetch_limited<'q, DB, F>(
    conn: &mut DB::Connection,
    sql: &str,
    query: sqlx::query::Query<'q, DB, DB::Arguments>,
    limits: ResultLimits,
    decode_value: F,
) -> Result<Rows, DbError>
where
    DB: sqlx::Database,
    F: for<'r> Fn(&str, <DB as sqlx::Database>::ValueRef<'r>) -> Result<Value, DbError>,
    usize: sqlx::ColumnIndex<DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut stream = query.fetch(&mut *conn);
    let mut columns = None;
    let mut rows = Collector::new(limits);
    while let Some(row) = stream.try_next().await? {
        rows.room()?;
        columns.get_or_insert_with(|| row.columns().iter().map(|c| c.name().to_owned()).collect());
        rows.push(decode_row(&row, &decode_value)?)?;
    }
    drop(stream);
    let rows = rows.rows;
    let columns = match columns {
        Some(columns) => columns,
        // No row to read names from: ask the (cached) prepared statement.
        None => conn
            .prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(
                sql.to_owned(),
            )))
            .await?
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect(),
    };
    Ok(Rows { columns, rows })
}

/// How much longer than the step timeout the server's own statement timeout
/// is: it is only a backstop for a host that died mid-statement, never what
/// ends a step (the host cancels the statement itself at the deadline).
const SERVER_TIMEOUT_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

/// A statement's text and where its parameters are: `?` markers (what the
/// host writes, and what MySQL and SQLite bind), or the numbered spots of a
/// statement the SQL gate rendered for PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub struct Sql<'a> {
    pub(crate) text: &'a str,
    pub(crate) spots: Option<&'a [crate::sql::placeholders::Spot]>,
}

impl<'a> From<&'a str> for Sql<'a> {
    fn from(text: &'a str) -> Self {
        Sql { text, spots: None }
    }
}

impl<'a> From<&'a String> for Sql<'a> {
    fn from(text: &'a String) -> Self {
        Sql { text, spots: None }
    }
}

impl<'a> From<&'a crate::sql::Admitted> for Sql<'a> {
    fn from(admitted: &'a crate::sql::Admitted) -> Self {
        Sql {
            text: &admitted.text,
            spots: match &admitted.placeholders {
                crate::sql::Placeholders::Positional => None,
                crate::sql::Placeholders::Numbered(spots) => Some(spots),
            },
        }
    }
}

/// A single connection to the target database. dmig uses exactly one per run,
/// so the transaction a step runs in is unambiguous.
pub struct Connection {
    inner: Inner,
    /// How the server reads SQL text on this connection (fixed at connect;
    /// the statements that could change it are refused to guests).
    syntax: crate::sql::Syntax,
    /// Stops a statement on this connection from outside it (see `cancel`).
    canceller: Canceller,
}

enum Inner {
    Sqlite(sqlite::SqliteSession),
    Postgres(postgres::PgSession),
    Mysql(sqlx::MySqlConnection),
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("dialect", &self.dialect())
            .finish()
    }
}

impl Connection {
    /// Connects to `url` (`sqlite://`, `postgres://`, `postgresql://`,
    /// `mysql://` or `mariadb://`). A `sqlite://` file is created if it does
    /// not exist.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedDatabase`] for an unknown scheme,
    /// [`Error::Connect`] when the database cannot be reached.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(url, true).await
    }

    /// Like [`Connection::connect`], but never creates a database: for
    /// read-only commands such as `status`.
    pub async fn connect_existing(url: &str) -> Result<Self> {
        Self::open(url, false).await
    }

    async fn open(url: &str, create: bool) -> Result<Self> {
        let state = std::sync::Arc::<cancel::CallState>::default();
        let (inner, target) = match Dialect::from_url(url)? {
            Dialect::Sqlite => {
                let opened = sqlite::connect(url, create, std::sync::Arc::clone(&state))?;
                (
                    Inner::Sqlite(opened.session),
                    cancel::Target::Sqlite(opened.interrupt),
                )
            }
            // Server databases exist already: `create` only matters for SQLite.
            Dialect::Postgres => {
                let (session, target) = postgres::connect(url).await?;
                (Inner::Postgres(session), target)
            }
            Dialect::Mysql => {
                let (conn, target) = mysql::connect(url).await?;
                (Inner::Mysql(conn), target)
            }
        };
        let canceller = Canceller { target, state };
        let dialect = match inner {
            Inner::Sqlite(..) => Dialect::Sqlite,
            Inner::Postgres(_) => Dialect::Postgres,
            Inner::Mysql(_) => Dialect::Mysql,
        };
        let mut conn = Connection {
            inner,
            syntax: crate::sql::Syntax::of(dialect),
            canceller,
        };
        conn.syntax = conn.read_syntax().await.map_err(|source| Error::Connect {
            url: redact(url),
            source: Box::new(source),
        })?;
        Ok(conn)
    }

    /// Learns (MySQL) or fixes (PostgreSQL) the session's lexical settings
    /// the SQL gate renders for: MySQL's `NO_BACKSLASH_ESCAPES` SQL mode, and
    /// PostgreSQL's `standard_conforming_strings`, which the deparser's
    /// string literals assume.
    async fn read_syntax(&mut self) -> Result<crate::sql::Syntax, DbError> {
        let mut syntax = crate::sql::Syntax::of(self.dialect());
        match self.dialect() {
            Dialect::Sqlite => {}
            Dialect::Postgres => {
                self.execute("SET standard_conforming_strings = on", &[])
                    .await?;
            }
            Dialect::Mysql => {
                let mode = self.query("SELECT @@SESSION.sql_mode AS m", &[]).await?;
                let mode = mode
                    .rows
                    .first()
                    .and_then(|r| r.first())
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                syntax.backslash_escapes = !mode.split(',').any(|m| m == "NO_BACKSLASH_ESCAPES");
            }
        }
        Ok(syntax)
    }

    /// How the server reads SQL text on this connection.
    pub fn syntax(&self) -> crate::sql::Syntax {
        self.syntax
    }

    /// PostgreSQL: what the SQL gate needs from the server's catalog to tell
    /// a column from a function call (see [`crate::sql::catalog`]), read
    /// now, inside whatever transaction is open. Empty on other databases.
    pub async fn gate_catalog(&mut self) -> Result<crate::sql::Catalog, DbError> {
        if self.dialect() != Dialect::Postgres {
            return Ok(crate::sql::Catalog::default());
        }
        let rows = self.query(crate::sql::catalog::POSTGRES_QUERY, &[]).await?;
        let text = |row: &[Value], i: usize| row.get(i).and_then(Value::as_str).map(str::to_owned);
        Ok(crate::sql::Catalog::from_rows(rows.rows.iter().filter_map(
            |row| Some((text(row, 0)?, text(row, 1), text(row, 2), text(row, 3))),
        )))
    }

    /// The kind of database this connection talks to.
    pub fn dialect(&self) -> Dialect {
        match self.inner {
            Inner::Sqlite(_) => Dialect::Sqlite,
            Inner::Postgres(_) => Dialect::Postgres,
            Inner::Mysql(_) => Dialect::Mysql,
        }
    }

    /// What stops a statement running on this connection: its deadline
    /// (SQLite stops itself; see `sqlite`), `pg_cancel_backend` or
    /// `KILL QUERY` (see `cancel`).
    pub(crate) fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }

    /// Whether this connection was given up after a statement on it did not
    /// stop when cancelled. Every call on it then fails at once.
    pub fn is_abandoned(&self) -> bool {
        self.canceller.is_abandoned()
    }

    fn usable(&self) -> Result<(), DbError> {
        if self.canceller.is_abandoned() {
            return Err(cancel::abandoned_error());
        }
        Ok(())
    }

    /// Checks that the server still answers on this connection.
    pub async fn ping(&mut self) -> Result<(), DbError> {
        use sqlx::Connection as _;
        self.usable()?;
        match &mut self.inner {
            // A local file: nothing to reach.
            Inner::Sqlite(_) => {}
            Inner::Postgres(c) => c.connection().ping().await?,
            Inner::Mysql(c) => c.ping().await?,
        }
        Ok(())
    }

    /// Makes the connection usable again after a guest call was cut short
    /// (its future dropped: a step aborted by a signal or a lost lock), within
    /// `grace`: the statement the call may have left running is cancelled,
    /// and what it left unread on the connection is drained (with sqlx, the
    /// first call after a dropped one may only return the dropped
    /// statement's own outcome). If that does not work out in time, the
    /// connection is given up.
    ///
    /// # Errors
    ///
    /// When the connection was given up.
    pub async fn settle(&mut self, grace: std::time::Duration) -> Result<(), DbError> {
        self.usable()?;
        let canceller = self.canceller();
        if !canceller.in_call() {
            return Ok(());
        }
        let give_up = tokio::time::Instant::now() + grace;
        canceller.cancel_left_over(grace).await;
        let drained = tokio::time::timeout_at(give_up, async {
            for _ in 0..3 {
                if self.ping().await.is_ok() {
                    return true;
                }
            }
            false
        })
        .await;
        if drained == Ok(true) {
            canceller.end_call();
            return Ok(());
        }
        canceller
            .give_up("the connection could not be made usable after an aborted call")
            .await;
        Err(cancel::abandoned_error())
    }

    /// Rolls the open transaction back after a failed or aborted step (see
    /// [`Connection::settle`]), never waiting longer than about twice
    /// `grace`. A rollback that fails or does not come back in time costs the
    /// connection: using it again could commit what the step left (MySQL's
    /// `BEGIN` commits an open transaction), and ending its session makes
    /// the server roll the step back.
    ///
    /// # Errors
    ///
    /// When the connection was given up.
    pub async fn rollback_within(&mut self, grace: std::time::Duration) -> Result<(), DbError> {
        self.settle(grace).await?;
        match tokio::time::timeout(grace, self.rollback()).await {
            Ok(Ok(())) => Ok(()),
            // SQLite rolls a transaction back by itself when a write in it is
            // interrupted (or fails for want of disk or memory).
            Ok(Err(_)) if matches!(&self.inner, Inner::Sqlite(c) if !c.in_transaction()) => Ok(()),
            Ok(Err(e)) => {
                let why = format!("rolling back the step failed ({e})");
                self.canceller.give_up(&why).await;
                Err(e)
            }
            Err(_) => {
                self.canceller
                    .give_up("rolling back the step did not come back in time")
                    .await;
                Err(cancel::abandoned_error())
            }
        }
    }

    /// Opens a transaction. dmig never nests them. The same `BEGIN`,
    /// `COMMIT` and `ROLLBACK` work on all three databases.
    ///
    /// On SQLite the transaction is `IMMEDIATE`: it takes the write lock up
    /// front (waiting for it, within the busy timeout) instead of reading
    /// first and upgrading later. dmig's transactions always write, and an
    /// upgrade that meets another connection's pending write fails at once
    /// with "database is locked" (SQLite's deadlock rule), which would fail a
    /// step merely because a second host looked at the lock.
    pub async fn begin(&mut self) -> Result<(), DbError> {
        match self.dialect() {
            Dialect::Sqlite => self.raw("BEGIN IMMEDIATE").await,
            Dialect::Postgres | Dialect::Mysql => self.raw("BEGIN").await,
        }
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
        self.usable()?;
        match &mut self.inner {
            Inner::Sqlite(c) => c.raw(sql)?,
            Inner::Postgres(c) => sqlx::raw_sql(sql).execute(c.connection()).await.map(drop)?,
            Inner::Mysql(c) => sqlx::raw_sql(sql).execute(c).await.map(drop)?,
        }
        Ok(())
    }

    /// Runs a statement with `?` placeholders and returns every row.
    pub async fn query<'s>(
        &mut self,
        sql: impl Into<Sql<'s>>,
        params: &[Value],
    ) -> Result<Rows, DbError> {
        self.query_limited(sql, params, ResultLimits::NONE).await
    }

    /// Like [`Connection::query`], but stops reading and fails with
    /// [`LIMIT_CODE`] as soon as the result exceeds `limits`.
    pub async fn query_limited<'s>(
        &mut self,
        sql: impl Into<Sql<'s>>,
        params: &[Value],
        limits: ResultLimits,
    ) -> Result<Rows, DbError> {
        let sql = sql.into();
        self.usable()?;
        match &mut self.inner {
            Inner::Sqlite(c) => c.query(sql.text, params, limits),
            Inner::Postgres(c) => c.query(sql, params, limits).await,
            Inner::Mysql(c) => mysql::query(c, sql.text, params, limits).await,
        }
    }

    /// Runs a statement with `?` placeholders; returns the rows affected.
    pub async fn execute<'s>(
        &mut self,
        sql: impl Into<Sql<'s>>,
        params: &[Value],
    ) -> Result<u64, DbError> {
        let sql = sql.into();
        self.usable()?;
        match &mut self.inner {
            Inner::Sqlite(c) => Ok(c.execute(sql.text, params)?.0),
            Inner::Postgres(c) => c.execute(sql, params).await,
            Inner::Mysql(c) => Ok(mysql::execute(c, sql.text, params).await?.0),
        }
    }

    /// Runs one statement per parameter set. Stops at the first error, and
    /// starts nothing more once the call is being cancelled (its step ran
    /// out of time). SQLite runs every set in one call on the database's
    /// handle with one prepared statement; PostgreSQL sends up to 1,000 sets
    /// per round trip (`PREPARE`, one `EXECUTE` per set with the values as
    /// escape-string literals, `DEALLOCATE`, in one message); MySQL/MariaDB
    /// run one prepared statement (sqlx caches it) per set.
    pub async fn execute_many<'s>(
        &mut self,
        sql: impl Into<Sql<'s>>,
        param_sets: &[Vec<Value>],
    ) -> Result<u64, DbError> {
        let sql = sql.into();
        self.usable()?;
        let canceller = self.canceller.clone();
        let cancelled = move || canceller.is_cancelled();
        match &mut self.inner {
            Inner::Sqlite(c) => return c.execute_many(sql.text, param_sets),
            Inner::Postgres(c) => return c.execute_many(sql, param_sets, &cancelled).await,
            Inner::Mysql(_) => {}
        }
        let mut affected = 0;
        for params in param_sets {
            if self.canceller.is_cancelled() {
                return Err(cancel::cancelled_error());
            }
            affected += self.execute(sql, params).await?;
        }
        Ok(affected)
    }

    /// Makes the server cancel any single statement that runs much longer
    /// than a step may (`step_timeout` plus [`SERVER_TIMEOUT_MARGIN`]):
    /// PostgreSQL's `statement_timeout`, MariaDB's `max_statement_time`,
    /// MySQL's `max_execution_time` (which MySQL applies to SELECT only).
    ///
    /// This is a backstop for a host that died in the middle of a
    /// statement, nothing more: the host itself cancels a statement at the
    /// step's deadline (see `cancel`), and a guest able to change the
    /// setting gains nothing. SQLite has none.
    pub async fn set_statement_timeout(
        &mut self,
        step_timeout: std::time::Duration,
    ) -> Result<(), DbError> {
        // PostgreSQL takes at most i32::MAX milliseconds.
        let ms = step_timeout
            .saturating_add(SERVER_TIMEOUT_MARGIN)
            .as_millis()
            .clamp(1, i32::MAX.unsigned_abs().into());
        let sql = match self.dialect() {
            Dialect::Sqlite => return Ok(()),
            Dialect::Postgres => format!("SET statement_timeout = {ms}"),
            Dialect::Mysql => {
                let version = self.query("SELECT VERSION() AS v", &[]).await?;
                let mariadb = version
                    .rows
                    .first()
                    .and_then(|r| r.first())
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.contains("MariaDB"));
                if mariadb {
                    format!("SET SESSION max_statement_time = {}", ms as f64 / 1000.0)
                } else {
                    format!("SET SESSION max_execution_time = {ms}")
                }
            }
        };
        self.execute(&sql, &[]).await.map(drop)
    }

    /// Every user table (not dmig's, not the database's own) with its row
    /// count, by name. For dry-run reports.
    pub async fn table_row_counts(&mut self) -> Result<Vec<(String, i64)>, DbError> {
        let list = match self.dialect() {
            Dialect::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'dmig\\_%' ESCAPE '\\' ORDER BY name"
            }
            Dialect::Postgres => {
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() \
                 AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'dmig\\_%' ORDER BY table_name"
            }
            // MySQL has no schemas within a database: its "schema" is the database.
            Dialect::Mysql => {
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() \
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
    ///
    /// PostgreSQL has no "last insert id": there the statement runs with
    /// `RETURNING id` appended, so the table must have an `id` column and the
    /// statement must not have a `RETURNING` clause of its own. (The ledger's
    /// insert into `dmig_runs` is the one caller.)
    pub async fn execute_returning_id(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<(u64, i64), DbError> {
        self.usable()?;
        match &mut self.inner {
            Inner::Sqlite(c) => c.execute(sql, params),
            Inner::Postgres(c) => c.execute_returning_id(sql, params).await,
            Inner::Mysql(c) => mysql::execute(c, sql, params).await,
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

/// Helpers for the tests that run against real servers.
#[cfg(test)]
mod testing {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::Connection;

    pub(super) const POSTGRES: &str = "DMIG_TEST_POSTGRES_URL";
    pub(super) const MYSQL: &str = "DMIG_TEST_MYSQL_URL";

    /// The server URL in `var`, or None (saying the test is skipped).
    pub(super) fn url(var: &str) -> Option<String> {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                println!("skipped: {var} is not set");
                None
            }
        }
    }

    /// A new connection to the server in `var`, if it is set.
    pub(super) async fn connect(var: &str) -> Option<Connection> {
        let url = url(var)?;
        Some(
            Connection::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("connect to {var}: {e}")),
        )
    }

    /// A table name no other test (in this or another test process) uses.
    pub(super) fn table(prefix: &str) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!(
            "t_{prefix}_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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

    use testing::{MYSQL, POSTGRES};

    /// Runs `test` on a connection to each server whose URL is set.
    async fn on_servers<F>(test: F)
    where
        F: AsyncFn(&mut Connection, Dialect),
    {
        for var in [POSTGRES, MYSQL] {
            if let Some(mut conn) = testing::connect(var).await {
                let dialect = conn.dialect();
                test(&mut conn, dialect).await;
            }
        }
    }

    /// An auto-numbered `id` column, per dialect.
    fn id_column(dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            Dialect::Mysql => "id BIGINT AUTO_INCREMENT PRIMARY KEY",
            Dialect::Sqlite => "id INTEGER PRIMARY KEY AUTOINCREMENT",
        }
    }

    async fn create(conn: &mut Connection, prefix: &str, columns: &str) -> String {
        let table = testing::table(prefix);
        conn.execute(&format!("CREATE TABLE {table} ({columns})"), &[])
            .await
            .unwrap();
        table
    }

    async fn drop_table(conn: &mut Connection, table: &str) {
        conn.execute(&format!("DROP TABLE {table}"), &[])
            .await
            .unwrap();
    }

    async fn count(conn: &mut Connection, table: &str) -> i64 {
        let rows = conn
            .query(&format!("SELECT count(*) AS n FROM {table}"), &[])
            .await
            .unwrap();
        rows.rows[0][0].as_i64().unwrap()
    }

    #[tokio::test]
    async fn connects_and_names_its_dialect() {
        if let Some(conn) = testing::connect(POSTGRES).await {
            assert_eq!(conn.dialect(), Dialect::Postgres);
            assert!(matches!(
                conn.canceller().target,
                cancel::Target::Postgres(_)
            ));
        }
        if let Some(url) = testing::url(MYSQL) {
            let conn = Connection::connect(&url).await.unwrap();
            assert_eq!(conn.dialect(), Dialect::Mysql);
            assert!(matches!(conn.canceller().target, cancel::Target::Mysql(_)));
            let mariadb = url.replacen("mysql://", "mariadb://", 1);
            let conn = Connection::connect_existing(&mariadb).await.unwrap();
            assert_eq!(conn.dialect(), Dialect::Mysql);
        }
    }

    #[tokio::test]
    async fn connection_failures_name_the_redacted_url() {
        for url in [
            "postgres://me:secret@127.0.0.1:1/app",
            "mysql://me:secret@127.0.0.1:1/app",
        ] {
            match Connection::connect(url).await {
                Err(Error::Connect { url, .. }) => {
                    assert!(url.contains("me:***@") && !url.contains("secret"), "{url}");
                }
                other => panic!("expected a connect error, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn rollback_leaves_nothing_and_commit_keeps() {
        on_servers(async |conn, _| {
            let table = create(conn, "tx", "n INT").await;
            let insert = format!("INSERT INTO {table} (n) VALUES (?)");
            conn.begin().await.unwrap();
            conn.execute(&insert, &[Value::Int(1)]).await.unwrap();
            conn.rollback().await.unwrap();
            assert_eq!(count(conn, &table).await, 0);
            conn.begin().await.unwrap();
            conn.execute(&insert, &[Value::Int(2)]).await.unwrap();
            conn.commit().await.unwrap();
            assert_eq!(count(conn, &table).await, 1);
            drop_table(conn, &table).await;
        })
        .await;
    }

    #[tokio::test]
    async fn execute_many_counts_rows() {
        on_servers(async |conn, _| {
            let table = create(conn, "many", "n INT, t VARCHAR(20)").await;
            let sets = (1..=4)
                .map(|n| vec![Value::Int(n), Value::Text(format!("row {n}"))])
                .collect::<Vec<_>>();
            let inserted = conn
                .execute_many(&format!("INSERT INTO {table} (n, t) VALUES (?, ?)"), &sets)
                .await
                .unwrap();
            assert_eq!(inserted, 4);
            let updated = conn
                .execute_many(
                    &format!("UPDATE {table} SET t = ? WHERE n <= ?"),
                    &[
                        vec!["x".into(), Value::Int(2)],
                        vec!["y".into(), Value::Int(1)],
                    ],
                )
                .await
                .unwrap();
            assert_eq!(updated, 3);
            drop_table(conn, &table).await;
        })
        .await;
    }

    #[tokio::test]
    async fn null_parameters_into_int_and_text_columns() {
        on_servers(async |conn, _| {
            let table = create(conn, "nulls", "n INT, t TEXT").await;
            conn.execute(
                &format!("INSERT INTO {table} (n, t) VALUES (?, ?)"),
                &[Value::Null, Value::Null],
            )
            .await
            .unwrap();
            // The same statement with values, then NULL again: each kind of
            // parameter gets the prepared statement that fits it.
            for params in [
                vec![Value::Int(7), "seven".into()],
                vec![Value::Null, "no number".into()],
                vec![Value::Int(8), Value::Null],
            ] {
                conn.execute(
                    &format!("INSERT INTO {table} (n, t) VALUES (?, ?)"),
                    &params,
                )
                .await
                .unwrap();
            }
            let rows = conn
                .query(
                    &format!("SELECT n, t FROM {table} WHERE n IS NULL AND t IS NULL"),
                    &[],
                )
                .await
                .unwrap();
            assert_eq!(rows.rows, vec![vec![Value::Null, Value::Null]]);
            let rows = conn
                .query(
                    &format!("SELECT count(*) FROM {table} WHERE n IS NULL OR t IS NULL"),
                    &[],
                )
                .await
                .unwrap();
            assert_eq!(rows.rows[0][0], Value::Int(3));
            drop_table(conn, &table).await;
        })
        .await;
    }

    #[tokio::test]
    async fn placeholders_in_string_literals_are_text() {
        on_servers(async |conn, _| {
            let rows = conn
                .query(
                    "SELECT '?' AS q, 'it''s ?' AS r, ? AS p, ? AS s",
                    &[Value::Int(5), "five".into()],
                )
                .await
                .unwrap();
            assert_eq!(rows.columns, ["q", "r", "p", "s"]);
            assert_eq!(
                rows.rows,
                vec![vec![
                    "?".into(),
                    "it's ?".into(),
                    Value::Int(5),
                    "five".into()
                ]]
            );
        })
        .await;
    }

    #[tokio::test]
    async fn results_are_capped() {
        on_servers(async |conn, _| {
            let table = create(conn, "caps", "n INT, t VARCHAR(100)").await;
            let sets = (0..5)
                .map(|n| vec![Value::Int(n), "0123456789".into()])
                .collect::<Vec<_>>();
            conn.execute_many(&format!("INSERT INTO {table} (n, t) VALUES (?, ?)"), &sets)
                .await
                .unwrap();
            let select = format!("SELECT n, t FROM {table} ORDER BY n");
            let fits = ResultLimits {
                max_rows: 5,
                max_bytes: 90,
            };
            assert_eq!(
                conn.query_limited(&select, &[], fits)
                    .await
                    .unwrap()
                    .rows
                    .len(),
                5
            );
            let few_rows = ResultLimits {
                max_rows: 4,
                ..fits
            };
            let error = conn
                .query_limited(&select, &[], few_rows)
                .await
                .unwrap_err();
            assert_eq!(error.code.as_deref(), Some(LIMIT_CODE));
            assert!(error.message.contains("more than 4 rows"), "{error}");
            let few_bytes = ResultLimits {
                max_bytes: 89,
                ..fits
            };
            let error = conn
                .query_limited(&select, &[], few_bytes)
                .await
                .unwrap_err();
            assert_eq!(error.code.as_deref(), Some(LIMIT_CODE));
            assert!(error.message.contains("more than 89 bytes"), "{error}");
            // The connection is still usable after an abandoned result.
            assert_eq!(count(conn, &table).await, 5);
            drop_table(conn, &table).await;
        })
        .await;
    }

    #[tokio::test]
    async fn empty_results_still_name_their_columns() {
        on_servers(async |conn, _| {
            let table = create(conn, "empty", "a INT, b TEXT").await;
            let rows = conn
                .query(
                    &format!("SELECT a, b AS bee FROM {table} WHERE a = ?"),
                    &[Value::Int(1)],
                )
                .await
                .unwrap();
            assert_eq!(rows.columns, ["a", "bee"]);
            assert!(rows.rows.is_empty());
            drop_table(conn, &table).await;
        })
        .await;
    }

    #[tokio::test]
    async fn execute_returning_id_gives_the_new_id() {
        on_servers(async |conn, dialect| {
            let table = create(conn, "ids", &format!("{}, t TEXT", id_column(dialect))).await;
            let insert = format!("INSERT INTO {table} (t) VALUES (?)");
            assert_eq!(
                conn.execute_returning_id(&insert, &["a".into()])
                    .await
                    .unwrap(),
                (1, 1)
            );
            let with_semicolon = format!("{insert};");
            assert_eq!(
                conn.execute_returning_id(&with_semicolon, &["b".into()])
                    .await
                    .unwrap(),
                (1, 2)
            );
            // Plain execute does not touch the statement.
            assert_eq!(conn.execute(&insert, &["c".into()]).await.unwrap(), 1);
            assert_eq!(count(conn, &table).await, 3);
            drop_table(conn, &table).await;
        })
        .await;
    }

    #[tokio::test]
    async fn table_row_counts_lists_user_tables() {
        on_servers(async |conn, _| {
            let table = create(conn, "counted", "n INT").await;
            conn.execute_many(
                &format!("INSERT INTO {table} (n) VALUES (?)"),
                &[vec![Value::Int(1)], vec![Value::Int(2)]],
            )
            .await
            .unwrap();
            let counts = conn.table_row_counts().await.unwrap();
            assert!(counts.contains(&(table.clone(), 2)), "{counts:?}");
            assert!(counts.iter().all(|(name, _)| !name.starts_with("dmig_")));
            drop_table(conn, &table).await;
        })
        .await;
    }

    /// A connection of each kind: in-memory SQLite and each server whose
    /// URL is set.
    /// One connection per database, and a guard that keeps the tests that
    /// cancel and give up statements from running at once: under load their
    /// side connections' cancels and session ends raced each other's
    /// timing-sensitive expectations (seen on MariaDB).
    async fn every_kind() -> (tokio::sync::MutexGuard<'static, ()>, Vec<Connection>) {
        static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let guard = SERIAL.lock().await;
        let mut conns = vec![Connection::connect("sqlite::memory:").await.unwrap()];
        for var in [POSTGRES, MYSQL] {
            conns.extend(testing::connect(var).await);
        }
        (guard, conns)
    }

    /// A statement that runs for `secs` seconds (SQLite: far longer).
    fn sleep_sql(dialect: Dialect, secs: f64) -> String {
        match dialect {
            Dialect::Postgres => format!("SELECT pg_sleep({secs})"),
            Dialect::Mysql => format!("SELECT SLEEP({secs})"),
            Dialect::Sqlite => "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) \
                 SELECT count(*) FROM r"
                .into(),
        }
    }

    /// Whether the server still has the session `canceller` targets.
    async fn session_alive(canceller: &Canceller) -> bool {
        let (url, sql) = match &canceller.target {
            cancel::Target::Sqlite(_) => return true,
            cancel::Target::Postgres(t) => (
                testing::url(POSTGRES).unwrap(),
                format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = {}",
                    t.pid
                ),
            ),
            cancel::Target::Mysql(t) => (
                testing::url(MYSQL).unwrap(),
                format!(
                    "SELECT count(*) FROM information_schema.processlist WHERE id = {}",
                    t.id
                ),
            ),
        };
        let mut other = Connection::connect(&url).await.unwrap();
        let rows = other.query(&sql, &[]).await.unwrap();
        rows.rows[0][0].as_i64() == Some(1)
    }

    /// Runs `sql` on `conn` (`sets`: through `execute_many` with that many
    /// empty parameter sets), checks it still runs after 300 ms, then stops
    /// it with `grace`. Returns its result, or None if it was given up.
    async fn run_then_stop(
        conn: &mut Connection,
        sql: &str,
        sets: Option<usize>,
        grace: Duration,
    ) -> Option<Result<u64, DbError>> {
        let canceller = conn.canceller();
        canceller.begin_call();
        let call = async {
            match sets {
                Some(n) => conn.execute_many(sql, &vec![Vec::new(); n]).await,
                None => conn.execute(sql, &[]).await,
            }
        };
        tokio::pin!(call);
        let early = tokio::time::timeout(Duration::from_millis(300), call.as_mut()).await;
        assert!(early.is_err(), "{sql}: the statement runs");
        canceller.stop(call.as_mut(), grace).await
    }

    #[tokio::test]
    async fn a_running_statement_is_cancelled_from_outside() {
        let (_serial, conns) = every_kind().await;
        for mut conn in conns {
            let dialect = conn.dialect();
            // SQLite runs a call on the caller's thread and stops it itself
            // (see `sqlite`'s tests); a timer beside it never fires.
            if dialect == Dialect::Sqlite {
                continue;
            }
            let started = std::time::Instant::now();
            let stopped =
                run_then_stop(&mut conn, &sleep_sql(dialect, 30.0), None, CANCEL_GRACE).await;
            assert!(
                stopped.is_some(),
                "{dialect}: the statement stopped in time"
            );
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{dialect}: {:?}",
                started.elapsed()
            );
            assert!(!conn.is_abandoned());
            // The connection goes on, and no cancel is left over to hit the
            // next statement.
            let rows = conn.query("SELECT 1 AS one", &[]).await.unwrap();
            assert_eq!(rows.rows, vec![vec![Value::Int(1)]], "{dialect}");
        }
    }

    /// PostgreSQL's `execute_many` sends values as literals: they must stay
    /// values whatever the session's settings (a guest once turned
    /// `standard_conforming_strings` off through `pg_settings`, and a
    /// backslash then ended the literal early).
    #[tokio::test]
    async fn execute_many_values_stay_values_whatever_the_session_says() {
        let (_serial, conns) = every_kind().await;
        for mut conn in conns {
            if conn.dialect() != Dialect::Postgres {
                continue;
            }
            conn.execute("CREATE TEMP TABLE lit (k int8, v text, b bytea)", &[])
                .await
                .unwrap();
            let payload = r"'); CREATE TEMP TABLE pwned (x int); --";
            for (scs, k) in [("off", 0), ("on", 10)] {
                conn.execute(&format!("SET standard_conforming_strings = {scs}"), &[])
                    .await
                    .unwrap();
                let sets: Vec<Vec<Value>> = (1..=3)
                    .map(|i| {
                        vec![
                            Value::Int(k + i),
                            Value::Text(payload.into()),
                            Value::Blob(vec![b'\\', 0, b'\'']),
                        ]
                    })
                    .collect();
                let n = conn
                    .execute_many("INSERT INTO lit (k, v, b) VALUES (?, ?, ?)", &sets)
                    .await
                    .unwrap();
                assert_eq!(n, 3);
            }
            let rows = conn
                .query("SELECT v, b FROM lit ORDER BY k", &[])
                .await
                .unwrap();
            assert_eq!(rows.rows.len(), 6);
            for row in &rows.rows {
                assert_eq!(row[0], Value::Text(payload.into()));
                assert_eq!(row[1], Value::Blob(vec![b'\\', 0, b'\'']));
            }
            let pwned = conn
                .query("SELECT count(*) FROM pg_class WHERE relname = 'pwned'", &[])
                .await
                .unwrap();
            assert_eq!(pwned.rows[0][0], Value::Int(0));
        }
    }

    #[tokio::test]
    async fn a_cancelled_execute_many_starts_no_further_statement() {
        let (_serial, conns) = every_kind().await;
        for mut conn in conns {
            let dialect = conn.dialect();
            if dialect == Dialect::Sqlite {
                continue;
            }
            let started = std::time::Instant::now();
            let stopped =
                run_then_stop(&mut conn, &sleep_sql(dialect, 0.2), Some(100), CANCEL_GRACE).await;
            assert!(stopped.expect("returned in time").is_err(), "{dialect}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{dialect}: {:?}",
                started.elapsed()
            );
            assert!(!conn.is_abandoned());
        }
    }

    #[tokio::test]
    async fn a_connection_whose_statement_does_not_stop_is_given_up() {
        let (_serial, conns) = every_kind().await;
        for mut conn in conns {
            let dialect = conn.dialect();
            if dialect == Dialect::Sqlite {
                continue;
            }
            let canceller = conn.canceller();
            let started = std::time::Instant::now();
            // No grace at all: given up at once.
            let stopped =
                run_then_stop(&mut conn, &sleep_sql(dialect, 30.0), None, Duration::ZERO).await;
            assert!(stopped.is_none(), "{dialect}");
            assert!(started.elapsed() < Duration::from_secs(2), "{dialect}");
            assert!(conn.is_abandoned());
            let error = conn.query("SELECT 1", &[]).await.unwrap_err();
            assert!(error.message.contains("given up"), "{error}");
            // Its session was ended on the server.
            let mut alive = true;
            for _ in 0..50 {
                alive = session_alive(&canceller).await;
                if !alive {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(!alive, "{dialect}: the given-up session ended");
        }
    }

    #[tokio::test]
    async fn the_server_timeout_is_a_backstop_past_the_step_timeout() {
        for var in [POSTGRES, MYSQL] {
            let Some(mut conn) = testing::connect(var).await else {
                continue;
            };
            conn.set_statement_timeout(Duration::from_secs(3))
                .await
                .unwrap();
            let version = conn.query("SELECT VERSION() AS v", &[]).await.unwrap();
            let mariadb = version.rows[0][0].as_str().unwrap().contains("MariaDB");
            let sql = match conn.dialect() {
                Dialect::Postgres => "SELECT current_setting('statement_timeout') AS t",
                // Seconds on MariaDB, milliseconds on MySQL.
                _ if mariadb => "SELECT CAST(@@max_statement_time AS CHAR) AS t",
                _ => "SELECT CAST(@@max_execution_time AS CHAR) AS t",
            };
            let rows = conn.query(sql, &[]).await.unwrap();
            let value = rows.rows[0][0].as_str().unwrap().to_owned();
            assert!(
                ["13s", "13.000000", "13000"].contains(&value.as_str()),
                "{var}: {value}"
            );
        }
    }
}
