//! MySQL and MariaDB.
//!
//! Parameters are sent with their natural types and `?` placeholders as
//! written. Result values come in MySQL's binary protocol; dates and times
//! are decoded here rather than through chrono so zero dates and TIME values
//! beyond 24 hours come back as the server printed them.

use std::str::FromStr;

use sqlx::mysql::{MySqlConnectOptions, MySqlValueRef};
use sqlx::{ConnectOptions, MySql, MySqlConnection, Type, TypeInfo, ValueRef};

use super::value::{Clock, Date, date_time_text};
use super::{
    DbError, ResultLimits, Rows, UNSUPPORTED_TYPE_CODE, Value, bind_natural, fetch_limited, redact,
    unsupported_type,
};
use crate::error::{Error, Result};

/// Connects to a `mysql://` or `mariadb://` URL.
///
/// sqlx's defaults stay: the session's `time_zone` is `+00:00`, which is what
/// makes TIMESTAMP values (stored in UTC) come back, and go in, as UTC. They
/// come back without a zone suffix, as DATETIME values do: neither MySQL nor
/// MariaDB reads a `Z` back.
///
/// Also learns the connection's id, for `KILL QUERY` (see `cancel`).
pub(super) async fn connect(url: &str) -> Result<(MySqlConnection, super::cancel::Target)> {
    let connect_error = |source: sqlx::Error| Error::Connect {
        url: redact(url),
        source: Box::new(source),
    };
    // sqlx only knows the mysql scheme; MariaDB speaks the same protocol.
    let url = match url.strip_prefix("mariadb:") {
        Some(rest) => format!("mysql:{rest}"),
        None => url.to_owned(),
    };
    let options = MySqlConnectOptions::from_str(&url).map_err(connect_error)?;
    let mut conn = options.connect().await.map_err(connect_error)?;
    let target = super::cancel::Target::mysql(options, &mut conn)
        .await
        .map_err(connect_error)?;
    Ok((conn, target))
}

pub(super) async fn query(
    conn: &mut MySqlConnection,
    sql: &str,
    params: &[Value],
    limits: ResultLimits,
) -> Result<Rows, DbError> {
    let query = bind_natural::<MySql>(sqlx::query(sqlx::AssertSqlSafe(sql)), params);
    fetch_limited(conn, sql, query, limits, decode_value).await
}

/// Returns (rows affected, `LAST_INSERT_ID()`).
pub(super) async fn execute(
    conn: &mut MySqlConnection,
    sql: &str,
    params: &[Value],
) -> Result<(u64, i64), DbError> {
    let done = bind_natural::<MySql>(sqlx::query(sqlx::AssertSqlSafe(sql)), params)
        .execute(conn)
        .await?;
    let id = i64::try_from(done.last_insert_id()).map_err(|_| DbError {
        number: None,
        code: Some(UNSUPPORTED_TYPE_CODE.into()),
        message: format!(
            "the inserted id {} is larger than a 64-bit signed integer",
            done.last_insert_id()
        ),
    })?;
    Ok((done.rows_affected(), id))
}

/// One value, by its column's type (sqlx's name for it). NULL of any type is
/// NULL; a zero date (`0000-00-00`), which sqlx reports as NULL, is not: it
/// is a value its column stores, and reading it as NULL would write NULL back.
fn decode_value(column: &str, raw: MySqlValueRef<'_>) -> Result<Value, DbError> {
    let type_info = raw.type_info().into_owned();
    let name = type_info.name();
    let temporal = matches!(name, "DATE" | "DATETIME" | "TIMESTAMP");
    if raw.is_null() && !(temporal && decode::<&[u8]>(raw.clone()).is_ok()) {
        return Ok(Value::Null);
    }
    let malformed = |error| malformed(column, name, error);
    let value = match name {
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "BOOLEAN" | "YEAR" => {
            Value::Int(decode::<i64>(raw).map_err(malformed)?)
        }
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
        | "BIGINT UNSIGNED" => {
            let n = decode::<u64>(raw).map_err(malformed)?;
            Value::Int(i64::try_from(n).map_err(|_| too_large(column, name, n))?)
        }
        "FLOAT" | "DOUBLE" => Value::Float(decode::<f64>(raw).map_err(malformed)?),
        // DECIMAL travels as its exact decimal text.
        "DECIMAL" | "JSON" => Value::Text(decode::<String>(raw).map_err(malformed)?),
        "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET"
        | "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
            // The column flags sqlx names by can call a text column with a
            // `_bin` collation BINARY; the collation is what tells bytes
            // from text.
            if <str as Type<MySql>>::compatible(&type_info) {
                Value::Text(decode::<String>(raw).map_err(malformed)?)
            } else {
                Value::Blob(decode::<Vec<u8>>(raw).map_err(malformed)?)
            }
        }
        "DATE" | "DATETIME" | "TIMESTAMP" => {
            let bytes = decode::<&[u8]>(raw).map_err(malformed)?;
            let (date, time) = binary_date_time(bytes).ok_or_else(|| {
                malformed(format!("unexpected {}-byte value", bytes.len()).into())
            })?;
            let time = (name != "DATE").then_some(time);
            // No zone suffix, TIMESTAMP included: the session's zone is UTC
            // (see `connect`), and MariaDB rejects a `Z` in a date-time, so
            // the value must go back into its column as it came out.
            Value::Text(date_time_text(date, time, false))
        }
        "TIME" => {
            let bytes = decode::<&[u8]>(raw).map_err(malformed)?;
            let clock = binary_time(bytes).ok_or_else(|| {
                malformed(format!("unexpected {}-byte value", bytes.len()).into())
            })?;
            Value::Text(clock.text())
        }
        _ => {
            return Err(unsupported_type(
                column,
                name,
                &format!("CAST({column} AS CHAR)"),
            ));
        }
    };
    Ok(value)
}

/// Decodes without sqlx's type check: the match in [`decode_value`] is the
/// check, and it accepts combinations sqlx would refuse (BOOLEAN as i64).
fn decode<'r, T: sqlx::Decode<'r, MySql>>(
    raw: MySqlValueRef<'r>,
) -> std::result::Result<T, sqlx::error::BoxDynError> {
    T::decode(raw)
}

fn malformed(column: &str, type_name: &str, error: sqlx::error::BoxDynError) -> DbError {
    DbError {
        number: None,
        code: None,
        message: format!("column {column} ({type_name}): cannot decode the value: {error}"),
    }
}

fn too_large(column: &str, type_name: &str, n: u64) -> DbError {
    DbError {
        number: None,
        code: Some(UNSUPPORTED_TYPE_CODE.into()),
        message: format!(
            "column {column} ({type_name}) holds {n}, which is larger than a 64-bit signed \
             integer; cast it in the query, e.g. CAST({column} AS CHAR)"
        ),
    }
}

/// A DATE, DATETIME or TIMESTAMP in the binary protocol: a length byte (0,
/// 4, 7 or 11), then year (2 bytes LE), month, day, hour, minute, second and
/// microseconds (4 bytes LE), trailing zero parts omitted. Length 0 is the
/// zero date `0000-00-00`, which MySQL allows and chrono could not hold.
fn binary_date_time(bytes: &[u8]) -> Option<(Date, Clock)> {
    let body = length_prefixed(bytes, &[0, 4, 7, 11])?;
    let byte = |i: usize| u32::from(body.get(i).copied().unwrap_or(0));
    let date = Date {
        year: i64::from(byte(0) | byte(1) << 8),
        month: byte(2),
        day: byte(3),
        bc: false,
    };
    let time = Clock {
        negative: false,
        hours: u64::from(byte(4)),
        minutes: byte(5),
        seconds: byte(6),
        micros: byte(7) | byte(8) << 8 | byte(9) << 16 | byte(10) << 24,
    };
    Some((date, time))
}

/// A TIME in the binary protocol: a length byte (0, 8 or 12), then a sign
/// byte, days (4 bytes LE), hour, minute, second and microseconds (4 bytes
/// LE). TIME is a duration (-838:59:59 to 838:59:59): days fold into hours.
fn binary_time(bytes: &[u8]) -> Option<Clock> {
    let body = length_prefixed(bytes, &[0, 8, 12])?;
    let byte = |i: usize| u32::from(body.get(i).copied().unwrap_or(0));
    let days = byte(1) | byte(2) << 8 | byte(3) << 16 | byte(4) << 24;
    Some(Clock {
        negative: byte(0) == 1,
        hours: u64::from(days) * 24 + u64::from(byte(5)),
        minutes: byte(6),
        seconds: byte(7),
        micros: byte(8) | byte(9) << 8 | byte(10) << 16 | byte(11) << 24,
    })
}

/// The body after the length byte, if the length is one of `allowed` and
/// matches the bytes that follow.
fn length_prefixed<'b>(bytes: &'b [u8], allowed: &[usize]) -> Option<&'b [u8]> {
    let (&length, body) = bytes.split_first()?;
    (allowed.contains(&usize::from(length)) && body.len() == usize::from(length)).then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::{self, MYSQL};

    fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    /// A lock wait timeout is told by its error number, not its message,
    /// which is in the server's language: here Spanish (`lc_messages`).
    #[tokio::test]
    async fn a_lock_wait_timeout_in_another_language_is_transient() {
        let Some(mut holder) = testing::connect(MYSQL).await else {
            return;
        };
        let mut waiter = testing::connect(MYSQL).await.unwrap();
        let table = testing::table("my_lang");
        holder
            .execute(
                &format!("CREATE TABLE {table} (k INT PRIMARY KEY, v INT)"),
                &[],
            )
            .await
            .unwrap();
        holder
            .execute(&format!("INSERT INTO {table} VALUES (1, 1)"), &[])
            .await
            .unwrap();
        holder.begin().await.unwrap();
        holder
            .execute(&format!("UPDATE {table} SET v = 2 WHERE k = 1"), &[])
            .await
            .unwrap();
        waiter
            .execute("SET SESSION lc_messages = 'es_ES'", &[])
            .await
            .unwrap();
        waiter
            .execute("SET SESSION innodb_lock_wait_timeout = 1", &[])
            .await
            .unwrap();
        waiter.begin().await.unwrap();
        let error = waiter
            .execute(&format!("UPDATE {table} SET v = 3 WHERE k = 1"), &[])
            .await
            .unwrap_err();
        waiter.rollback().await.unwrap();
        holder.rollback().await.unwrap();
        holder
            .execute(&format!("DROP TABLE {table}"), &[])
            .await
            .unwrap();
        assert_eq!(error.number, Some(1205), "{error}");
        assert!(
            !error.message.starts_with("Lock wait timeout"),
            "the server answered in English: {error}"
        );
        assert!(error.is_transient(crate::db::Dialect::Mysql), "{error}");
    }

    #[tokio::test]
    async fn round_trips_every_supported_type() {
        let Some(mut conn) = testing::connect(MYSQL).await else {
            return;
        };
        let table = testing::table("my_types");
        conn.execute(
            &format!(
                "CREATE TABLE {table} (k INT, ti TINYINT, si SMALLINT, mi MEDIUMINT, i INT, \
                 bi BIGINT, ub BIGINT UNSIGNED, bo BOOLEAN, f FLOAT, d DOUBLE, dec_ DECIMAL(30, 9), \
                 c CHAR(5), vc VARCHAR(50), vb VARCHAR(20) COLLATE utf8mb4_bin, tt TINYTEXT, \
                 t TEXT, mt MEDIUMTEXT, lt LONGTEXT, e ENUM('happy', 'sad'), st SET('x', 'y'), \
                 bn BINARY(3), vbn VARBINARY(10), bl BLOB, lb LONGBLOB, dt DATE, tm TIME, \
                 tm6 TIME(6), dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP NULL, \
                 ts6 TIMESTAMP(6) NULL, j JSON) CHARACTER SET utf8mb4"
            ),
            &[],
        )
        .await
        .unwrap();
        conn.execute(
            &format!(
                "INSERT INTO {table} VALUES \
                 (1, 127, 32767, 8388607, 2147483647, 9223372036854775807, 9223372036854775807, \
                  TRUE, 1.5, 0.1, 12345678901234567890.123456789, 'ab', 'it''s \"q\" ✓ ünï ?', \
                  'Bin', 'tt', 't', 'mt', 'lt', 'happy', 'x,y', X'00FF41', X'00FF', X'00FF', \
                  X'', '2026-11-22', '10:30:00', '-838:59:59.5', '2026-11-22 10:30:00', \
                  '2026-11-22 10:30:00.000001', '2026-11-22 10:30:00', '2026-11-22 10:30:00.25', \
                  '{{\"a\": [1, 2]}}'), \
                 (2, -128, -32768, -8388608, -2147483648, -9223372036854775808, 0, FALSE, -0.25, \
                  1e300, -0.001, '', '', '', '', '', '', '', 'sad', '', X'000000', X'', X'', \
                  X'00', '1999-12-31', '00:00:00', '100:00:00', '1999-12-31 23:59:59', \
                  '1999-12-31 23:59:59.5', '1999-12-31 23:59:59', '1999-12-31 23:59:59.5', '[]'), \
                 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
                  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
                  NULL, NULL, NULL, NULL, NULL)"
            ),
            &[],
        )
        .await
        .unwrap();
        let rows = conn
            .query(&format!("SELECT * FROM {table} ORDER BY k"), &[])
            .await
            .unwrap();
        let first = vec![
            Value::Int(1),
            Value::Int(127),
            Value::Int(32767),
            Value::Int(8_388_607),
            Value::Int(2_147_483_647),
            Value::Int(i64::MAX),
            Value::Int(i64::MAX),
            Value::Int(1),
            Value::Float(1.5),
            Value::Float(0.1),
            text("12345678901234567890.123456789"),
            text("ab"),
            text("it's \"q\" ✓ ünï ?"),
            text("Bin"),
            text("tt"),
            text("t"),
            text("mt"),
            text("lt"),
            text("happy"),
            text("x,y"),
            Value::Blob(vec![0x00, 0xff, 0x41]),
            Value::Blob(vec![0x00, 0xff]),
            Value::Blob(vec![0x00, 0xff]),
            Value::Blob(vec![]),
            text("2026-11-22"),
            text("10:30:00"),
            text("-838:59:59.5"),
            text("2026-11-22T10:30:00"),
            text("2026-11-22T10:30:00.000001"),
            text("2026-11-22T10:30:00"),
            text("2026-11-22T10:30:00.25"),
            text(r#"{"a": [1, 2]}"#),
        ];
        assert_eq!(rows.rows[0], first);
        let second = vec![
            Value::Int(2),
            Value::Int(-128),
            Value::Int(-32768),
            Value::Int(-8_388_608),
            Value::Int(-2_147_483_648),
            Value::Int(i64::MIN),
            Value::Int(0),
            Value::Int(0),
            Value::Float(-0.25),
            Value::Float(1e300),
            text("-0.001000000"),
            text(""),
            text(""),
            text(""),
            text(""),
            text(""),
            text(""),
            text(""),
            text("sad"),
            text(""),
            Value::Blob(vec![0, 0, 0]),
            Value::Blob(vec![]),
            Value::Blob(vec![]),
            Value::Blob(vec![0]),
            text("1999-12-31"),
            text("00:00:00"),
            text("100:00:00"),
            text("1999-12-31T23:59:59"),
            text("1999-12-31T23:59:59.5"),
            text("1999-12-31T23:59:59"),
            text("1999-12-31T23:59:59.5"),
            text("[]"),
        ];
        assert_eq!(rows.rows[1], second);
        let mut nulls = vec![Value::Null; first.len()];
        nulls[0] = Value::Int(3);
        assert_eq!(rows.rows[2], nulls);
        // Values read back work as parameters.
        let found = conn
            .query(
                &format!(
                    "SELECT k FROM {table} WHERE dec_ = ? AND dtm6 = ? AND ts6 = ? AND dt = ? \
                     AND bn = ? AND vc = ? AND bo = ?"
                ),
                &[
                    first[10].clone(),
                    first[28].clone(),
                    first[30].clone(),
                    first[24].clone(),
                    first[20].clone(),
                    first[12].clone(),
                    Value::Boolean(true),
                ],
            )
            .await
            .unwrap();
        assert_eq!(found.rows, vec![vec![Value::Int(1)]]);
        conn.execute(&format!("DROP TABLE {table}"), &[])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn timestamps_are_read_in_utc() {
        let Some(mut conn) = testing::connect(MYSQL).await else {
            return;
        };
        let table = testing::table("my_tz");
        conn.execute(
            &format!("CREATE TABLE {table} (ts TIMESTAMP NULL, dt DATETIME)"),
            &[],
        )
        .await
        .unwrap();
        conn.execute("SET time_zone = '+02:00'", &[]).await.unwrap();
        conn.execute(
            &format!("INSERT INTO {table} VALUES (?, ?)"),
            &["2026-11-22 10:30:00".into(), "2026-11-22 10:30:00".into()],
        )
        .await
        .unwrap();
        conn.execute("SET time_zone = '+00:00'", &[]).await.unwrap();
        let rows = conn
            .query(&format!("SELECT ts, dt FROM {table}"), &[])
            .await
            .unwrap();
        assert_eq!(
            rows.rows,
            vec![vec![
                text("2026-11-22T08:30:00"),
                text("2026-11-22T10:30:00")
            ]]
        );
        conn.execute(&format!("DROP TABLE {table}"), &[])
            .await
            .unwrap();
    }

    /// Issue 14, item 5: MariaDB refused the `Z` dmig used to put on
    /// TIMESTAMP values ("Incorrect datetime value"), so a value read could
    /// not be written back into its own column.
    #[tokio::test]
    async fn timestamps_read_go_back_into_their_column() {
        let Some(mut conn) = testing::connect(MYSQL).await else {
            return;
        };
        let table = testing::table("my_ts_back");
        conn.execute(
            &format!("CREATE TABLE {table} (k INT, ts TIMESTAMP(6) NULL, dt DATETIME(6))"),
            &[],
        )
        .await
        .unwrap();
        conn.execute(
            &format!(
                "INSERT INTO {table} VALUES (1, '2038-01-19 03:14:07.999999', \
                 '9999-12-31 23:59:59.999999'), (2, '0000-00-00 00:00:00', '0000-00-00 00:00:00')"
            ),
            &[],
        )
        .await
        .unwrap();
        let read = conn
            .query(&format!("SELECT k, ts, dt FROM {table} ORDER BY k"), &[])
            .await
            .unwrap();
        for row in &read.rows {
            let k = row[0].as_i64().unwrap() + 10;
            conn.execute(
                &format!("INSERT INTO {table} VALUES (?, ?, ?)"),
                &[Value::Int(k), row[1].clone(), row[2].clone()],
            )
            .await
            .unwrap();
        }
        let differing = conn
            .query(
                &format!(
                    "SELECT a.k FROM {table} a JOIN {table} b ON b.k = a.k + 10 \
                     WHERE NOT (a.ts <=> b.ts) OR NOT (a.dt <=> b.dt)"
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(differing.rows, Vec::<Vec<Value>>::new());
        assert_eq!(read.rows[0][1], text("2038-01-19T03:14:07.999999"));
        assert_eq!(read.rows[1][1], text("0000-00-00T00:00:00"));
        conn.execute(&format!("DROP TABLE {table}"), &[])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn values_and_types_dmig_cannot_read_are_clear_errors() {
        let Some(mut conn) = testing::connect(MYSQL).await else {
            return;
        };
        let table = testing::table("my_unsupported");
        conn.execute(
            &format!("CREATE TABLE {table} (flags BIT(8), big BIGINT UNSIGNED)"),
            &[],
        )
        .await
        .unwrap();
        conn.execute(
            &format!("INSERT INTO {table} VALUES (b'101', 18446744073709551615)"),
            &[],
        )
        .await
        .unwrap();
        let error = conn
            .query(&format!("SELECT flags FROM {table}"), &[])
            .await
            .unwrap_err();
        assert_eq!(error.code.as_deref(), Some(UNSUPPORTED_TYPE_CODE));
        assert_eq!(
            error.message,
            "column flags has type BIT, which dmig cannot read; cast it in the query, \
             e.g. CAST(flags AS CHAR)"
        );
        let error = conn
            .query(&format!("SELECT big FROM {table}"), &[])
            .await
            .unwrap_err();
        assert_eq!(error.code.as_deref(), Some(UNSUPPORTED_TYPE_CODE));
        assert!(error.message.contains("18446744073709551615"), "{error}");
        let rows = conn
            .query(
                &format!("SELECT CAST(big AS CHAR) AS big, flags + 0 AS n FROM {table}"),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            rows.rows,
            vec![vec![text("18446744073709551615"), Value::Int(5)]]
        );
        conn.execute(&format!("DROP TABLE {table}"), &[])
            .await
            .unwrap();
    }

    #[test]
    fn binary_temporal_forms() {
        let zero = binary_date_time(&[0]).unwrap();
        assert_eq!(date_time_text(zero.0, None, false), "0000-00-00");
        assert_eq!(
            date_time_text(zero.0, Some(zero.1), false),
            "0000-00-00T00:00:00"
        );
        assert!(binary_date_time(&[]).is_none());
        assert!(binary_date_time(&[4, 1, 2]).is_none());
        assert!(binary_time(&[2, 1, 2]).is_none());
        let time = binary_time(&[8, 1, 1, 0, 0, 0, 2, 3, 4]).unwrap();
        assert_eq!(time.text(), "-26:03:04");
    }
}
