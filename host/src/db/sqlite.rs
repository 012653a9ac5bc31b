//! SQLite: the embedded default.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteValueRef};
use sqlx::{ConnectOptions, Sqlite, SqliteConnection, TypeInfo, ValueRef};

use super::{
    DbError, ResultLimits, Rows, UNSUPPORTED_TYPE_CODE, Value, bind_natural, fetch_limited, redact,
};
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
///
/// # Errors
///
/// [`UNSUPPORTED_TYPE_CODE`] for TEXT that is not valid UTF-8 (SQLite stores
/// whatever bytes it is given): as a blob it would go back as a BLOB, a
/// different value, so the guest is told to read it as one explicitly.
fn decode_value(column: &str, raw: SqliteValueRef<'_>) -> Result<Value, DbError> {
    fn decode<'r, T: sqlx::Decode<'r, Sqlite>>(raw: SqliteValueRef<'r>) -> Result<T, DbError> {
        T::decode(raw).map_err(|e| sqlx::Error::Decode(e).into())
    }
    if raw.is_null() {
        return Ok(Value::Null);
    }
    Ok(match raw.type_info().name() {
        "INTEGER" | "BOOLEAN" => Value::Int(decode(raw)?),
        "REAL" => Value::Float(decode(raw)?),
        "BLOB" => Value::Blob(decode(raw)?),
        _ => {
            let bytes: Vec<u8> = decode(raw)?;
            Value::Text(String::from_utf8(bytes).map_err(|_| not_utf8(column))?)
        }
    })
}

fn not_utf8(column: &str) -> DbError {
    DbError {
        code: Some(UNSUPPORTED_TYPE_CODE.into()),
        message: format!(
            "column {column} holds TEXT that is not valid UTF-8, which dmig cannot read; \
             cast it in the query, e.g. CAST({column} AS BLOB)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::db::{Connection, UNSUPPORTED_TYPE_CODE, Value};

    #[tokio::test]
    async fn every_storage_class_goes_back_as_it_came() {
        let mut conn = Connection::connect("sqlite::memory:").await.unwrap();
        conn.execute("CREATE TABLE t (k INTEGER, v)", &[])
            .await
            .unwrap();
        conn.execute(
            "INSERT INTO t VALUES (1, 9223372036854775807), (2, -0.0), (3, 9e999), \
             (4, CAST(X'610062' AS TEXT)), (5, X'00'), (6, NULL), (7, '42')",
            &[],
        )
        .await
        .unwrap();
        let rows = conn
            .query("SELECT k, v FROM t ORDER BY k", &[])
            .await
            .unwrap();
        for row in &rows.rows {
            conn.execute(
                "INSERT INTO t VALUES (?, ?)",
                &[Value::Int(row[0].as_i64().unwrap() + 10), row[1].clone()],
            )
            .await
            .unwrap();
        }
        let differing = conn
            .query(
                "SELECT a.k FROM t a JOIN t b ON b.k = a.k + 10 WHERE a.k < 10 AND \
                 (a.v IS NOT b.v OR typeof(a.v) <> typeof(b.v) \
                  OR CAST(a.v AS BLOB) IS NOT CAST(b.v AS BLOB))",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(differing.rows, Vec::<Vec<Value>>::new());
        assert_eq!(rows.rows[3][1], Value::Text("a\0b".into()));
    }

    #[tokio::test]
    async fn text_that_is_not_utf8_names_a_cast() {
        let mut conn = Connection::connect("sqlite::memory:").await.unwrap();
        let error = conn
            .query("SELECT CAST(X'FF00' AS TEXT) AS v", &[])
            .await
            .unwrap_err();
        assert_eq!(error.code.as_deref(), Some(UNSUPPORTED_TYPE_CODE));
        assert_eq!(
            error.message,
            "column v holds TEXT that is not valid UTF-8, which dmig cannot read; \
             cast it in the query, e.g. CAST(v AS BLOB)"
        );
        let rows = conn
            .query("SELECT CAST(CAST(X'FF00' AS TEXT) AS BLOB) AS v", &[])
            .await
            .unwrap();
        assert_eq!(rows.rows, vec![vec![Value::Blob(vec![0xff, 0])]]);
    }
}
