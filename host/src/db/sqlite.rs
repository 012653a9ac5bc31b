//! SQLite: the embedded default.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqliteRow};
use sqlx::{
    Column, ConnectOptions, Executor, Row, Sqlite, SqliteConnection, Statement, TypeInfo, ValueRef,
};

use futures_util::TryStreamExt;

use super::{DbError, LIMIT_CODE, ResultLimits, Rows, Value, redact};
use crate::error::{Error, Result};

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn connect(url: &str, create: bool) -> Result<SqliteConnection> {
    let connect_error = |source| Error::Connect {
        url: redact(url),
        source,
    };
    // Journal mode and other persistent settings are left as the database has
    // them: dmig must not change a user's database behind their back.
    SqliteConnectOptions::from_str(url)
        .map_err(connect_error)?
        .create_if_missing(create)
        .busy_timeout(BUSY_TIMEOUT)
        .connect()
        .await
        .map_err(connect_error)
}

fn bind<'q>(
    mut query: sqlx::query::Query<'q, Sqlite, SqliteArguments>,
    params: &[Value],
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments> {
    for param in params {
        query = match param {
            Value::Null => query.bind(None::<i64>),
            Value::Boolean(b) => query.bind(*b),
            Value::Int(i) => query.bind(*i),
            Value::Float(f) => query.bind(*f),
            Value::Text(s) => query.bind(s.clone()),
            Value::Blob(b) => query.bind(b.clone()),
        };
    }
    query
}

/// The raw handle, for [`super::Interrupter`].
pub(super) async fn raw_handle(
    conn: &mut SqliteConnection,
) -> Result<std::ptr::NonNull<libsqlite3_sys::sqlite3>, sqlx::Error> {
    Ok(conn.lock_handle().await?.as_raw_handle())
}

pub(super) async fn query(
    conn: &mut SqliteConnection,
    sql: &str,
    params: &[Value],
    limits: ResultLimits,
) -> Result<Rows, DbError> {
    let query = bind(sqlx::query(sqlx::AssertSqlSafe(sql)), params);
    let mut stream = query.fetch(&mut *conn);
    let mut columns = None;
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    while let Some(row) = stream.try_next().await? {
        if rows.len() == limits.max_rows {
            return Err(limit_error(format!(
                "the query returned more than {} rows (the per-call limit); fetch fewer rows per step",
                limits.max_rows
            )));
        }
        columns.get_or_insert_with(|| row.columns().iter().map(|c| c.name().to_owned()).collect());
        let values = decode_row(&row)?;
        bytes = bytes.saturating_add(values.iter().map(Value::size).sum());
        if bytes > limits.max_bytes {
            return Err(limit_error(format!(
                "the query returned more than {} bytes (the per-call limit); fetch fewer or smaller rows per step",
                limits.max_bytes
            )));
        }
        rows.push(values);
    }
    drop(stream);
    let columns = match columns {
        Some(columns) => columns,
        // No row to read names from: ask the (cached) prepared statement.
        None => conn
            .prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(sql)))
            .await?
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect(),
    };
    Ok(Rows { columns, rows })
}

pub(super) async fn execute(
    conn: &mut SqliteConnection,
    sql: &str,
    params: &[Value],
) -> Result<(u64, i64), DbError> {
    let query = bind(sqlx::query(sqlx::AssertSqlSafe(sql)), params);
    let done = query.execute(conn).await?;
    Ok((done.rows_affected(), done.last_insert_rowid()))
}

/// Decodes by each value's storage class, which in SQLite belongs to the value,
/// not the column.
fn decode_row(row: &SqliteRow) -> Result<Vec<Value>, DbError> {
    (0..row.columns().len())
        .map(|i| {
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                return Ok(Value::Null);
            }
            let value = match raw.type_info().name() {
                "INTEGER" | "BOOLEAN" => Value::Int(row.try_get_unchecked(i)?),
                "REAL" => Value::Float(row.try_get_unchecked(i)?),
                "BLOB" => Value::Blob(row.try_get_unchecked(i)?),
                _ => Value::Text(row.try_get_unchecked(i)?),
            };
            Ok(value)
        })
        .collect()
}

fn limit_error(message: String) -> DbError {
    DbError {
        code: Some(LIMIT_CODE.into()),
        message,
    }
}
