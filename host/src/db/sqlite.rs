//! SQLite: the embedded default.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteValueRef};
use sqlx::{ConnectOptions, Sqlite, SqliteConnection, TypeInfo, ValueRef};

use super::{DbError, ResultLimits, Rows, Value, bind_natural, fetch_limited, redact};
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

/// The raw handle, for the interrupt (see `super::cancel`).
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
    let query = bind_natural::<Sqlite>(sqlx::query(sqlx::AssertSqlSafe(sql)), params);
    fetch_limited(conn, sql, query, limits, decode_value).await
}

pub(super) async fn execute(
    conn: &mut SqliteConnection,
    sql: &str,
    params: &[Value],
) -> Result<(u64, i64), DbError> {
    let query = bind_natural::<Sqlite>(sqlx::query(sqlx::AssertSqlSafe(sql)), params);
    let done = query.execute(conn).await?;
    Ok((done.rows_affected(), done.last_insert_rowid()))
}

/// Decodes by each value's storage class, which in SQLite belongs to the value,
/// not the column.
fn decode_value(_column: &str, raw: SqliteValueRef<'_>) -> Result<Value, DbError> {
    fn decode<'r, T: sqlx::Decode<'r, Sqlite>>(raw: SqliteValueRef<'r>) -> Result<T, DbError> {
        T::decode(raw).map_err(|e| sqlx::Error::Decode(e).into())
    }
    Ok(match raw.type_info().name() {
        "INTEGER" | "BOOLEAN" => Value::Int(decode(raw)?),
        "REAL" => Value::Float(decode(raw)?),
        "BLOB" => Value::Blob(decode(raw)?),
        _ => Value::Text(decode(raw)?),
    })
}
