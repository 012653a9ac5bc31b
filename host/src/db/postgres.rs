//! PostgreSQL.
//!
//! Two things differ from the other databases. Placeholders: guests write
//! `?`, PostgreSQL wants `$1`, `$2`, ... (see [`super::placeholders`]).
//! Text parameters: a guest passes dates, JSON, UUIDs and decimals as text and
//! expects the server to read them the way it reads a quoted literal, from
//! context (JDBC's `stringtype=unspecified`). sqlx sends every parameter in
//! binary format, though, and the server decodes binary by the parameter's
//! inferred type: a text timestamp bound to a `timestamptz` parameter is an
//! error, or worse, eight bytes of text read as a timestamp. So text
//! parameters are sent with an unspecified type (OID 0), and where the server
//! infers a type whose binary form is not plain text, the placeholder is
//! rewritten to `$n::text::that_type`, making the server parse the text
//! exactly as it would a literal. See [`PgSession::statement`].

use std::collections::HashMap;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgConnectOptions, PgTypeInfo, PgTypeKind, PgValueFormat,
    PgValueRef,
};
use sqlx::{
    ConnectOptions, Either, Encode, Executor, PgConnection, Postgres, Statement, Type, TypeInfo,
    ValueRef,
};

use super::value::{Clock, Date, date_time_text};
use super::{
    DbError, ResultLimits, Rows, Sql, Value, fetch_limited, redact, unsupported_type, void_result,
};
use crate::error::{Error, Result};
use crate::sql::placeholders;

/// How many rewritten statements [`PgSession`] remembers; past this it
/// forgets them all (they are cheap to redo, and migrations reuse a few).
const REWRITE_CACHE_CAPACITY: usize = 256;

/// A connection plus what dmig learned about the statements it ran on it.
pub(super) struct PgSession {
    conn: PgConnection,
    /// Statement with typed placeholders -> the same with the casts its text
    /// parameters need. Valid as long as the schema the statement names does
    /// not change types, the same assumption sqlx's statement cache makes.
    rewrites: HashMap<String, String>,
    /// How many batches [`PgSession::execute_many`] has sent: each prepares
    /// its statement under a new name.
    batches: u64,
    /// A batch failed, so its prepared statement may outlive it (`PREPARE`
    /// is not undone by a rollback): the next batch deallocates leftovers.
    leftovers: bool,
}

/// The most parameter sets one [`PgSession::execute_many`] round trip sends.
const MANY_ROWS_PER_TRIP: usize = 1_000;

/// The most bytes of SQL text one [`PgSession::execute_many`] round trip
/// sends (more than this goes in further round trips).
const MANY_BYTES_PER_TRIP: usize = 1 << 20;

/// The names [`PgSession::execute_many`] prepares its statements under.
const MANY_PREFIX: &str = "dmig_many_";

/// Connects, and learns what identifies the session for a cancel.
pub(super) async fn connect(url: &str) -> Result<(PgSession, super::cancel::Target)> {
    let connect_error = |source: sqlx::Error| Error::Connect {
        url: redact(url),
        source: Box::new(source),
    };
    let options = url.parse::<PgConnectOptions>().map_err(connect_error)?;
    let mut conn = options.connect().await.map_err(connect_error)?;
    let target = super::cancel::Target::postgres(options, &mut conn)
        .await
        .map_err(connect_error)?;
    let session = PgSession {
        conn,
        rewrites: HashMap::new(),
        batches: 0,
        leftovers: false,
    };
    Ok((session, target))
}

/// A text (or NULL) parameter of unspecified type: OID 0 in the Parse
/// message lets the server infer its type from context.
struct Untyped(String);

impl Type<Postgres> for Untyped {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(0))
    }
}

impl Encode<'_, Postgres> for Untyped {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        // The binary form of the text types is the UTF-8 text itself;
        // [`PgSession::statement`] makes sure the server reads it as text.
        buf.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

fn bind<'q>(
    mut query: sqlx::query::Query<'q, Postgres, PgArguments>,
    params: &[Value],
) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    for param in params {
        query = match param {
            Value::Null => query.bind(None::<Untyped>),
            Value::Boolean(b) => query.bind(*b),
            Value::Int(i) => query.bind(*i),
            Value::Float(f) => query.bind(*f),
            Value::Text(s) => query.bind(Untyped(s.clone())),
            Value::Blob(b) => query.bind(b.clone()),
        };
    }
    query
}

/// The cast written after a placeholder for `param`'s kind. sqlx caches
/// prepared statements by their text alone, so a placeholder's type must
/// show in the text: the same statement run once with an integer and once
/// with a text parameter must not share one prepared statement.
fn kind_cast(param: &Value) -> &'static str {
    match param {
        Value::Boolean(_) => "::bool",
        Value::Int(_) => "::int8",
        Value::Float(_) => "::float8",
        Value::Blob(_) => "::bytea",
        Value::Text(_) | Value::Null => "",
    }
}

/// Whether `PREPARE` takes `sql`: the statements it can prepare, as the
/// SQL gate's deparser (and the host's own code) writes them.
fn preparable(sql: &str) -> bool {
    let first = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default();
    [
        "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "WITH",
    ]
    .iter()
    .any(|k| first.eq_ignore_ascii_case(k))
}

/// Whether two parameter sets bind the same kinds of values (NULL counts
/// as a kind), so [`PgSession::statement`] writes one statement for both.
fn same_kinds(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| std::mem::discriminant(x) == std::mem::discriminant(y))
}

/// [`push_literal`] into a string of its own.
#[cfg(test)]
fn literal(value: &Value) -> String {
    let mut out = String::new();
    push_literal(&mut out, value);
    out
}

/// Appends `value` to `out` as a literal in an `EXECUTE` list: a quoted
/// literal of unknown type, which the server reads as the prepared
/// parameter's type, or `NULL`. Written as an escape string, `E'…'` with `\`
/// and `'` doubled, which the server reads the same whatever
/// `standard_conforming_strings` says (a plain `'…'` would depend on a
/// setting the session holds).
fn push_literal(out: &mut String, value: &Value) {
    use std::fmt::Write as _;
    fn quoted(out: &mut String, text: &str) {
        out.reserve(text.len() + 3);
        out.push_str("E'");
        for c in text.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("''"),
                c => out.push(c),
            }
        }
        out.push('\'');
    }
    match value {
        Value::Null => out.push_str("NULL"),
        Value::Boolean(b) => quoted(out, if *b { "true" } else { "false" }),
        // Digits and a sign need no escaping.
        Value::Int(i) => {
            let _ = write!(out, "E'{i}'");
        }
        Value::Float(f) if f.is_nan() => quoted(out, "NaN"),
        Value::Float(f) if f.is_infinite() => {
            quoted(out, if *f > 0.0 { "Infinity" } else { "-Infinity" });
        }
        // The shortest text that reads back as exactly this float.
        Value::Float(f) => {
            let _ = write!(out, "E'{f:e}'");
        }
        Value::Text(t) => quoted(out, t),
        Value::Blob(b) => {
            out.push_str("E'\\\\x");
            out.push_str(&hex::encode(b));
            out.push('\'');
        }
    }
}

/// Whether the server reads a parameter of type `ty` in binary format as
/// plain UTF-8 text, so an [`Untyped`] value can go as it is.
fn reads_plain_text(ty: &PgTypeInfo) -> bool {
    // sqlx calls bpchar, the type of CHAR(n), "CHAR".
    matches!(ty.name(), "TEXT" | "VARCHAR" | "CHAR" | "NAME" | "UNKNOWN")
}

impl PgSession {
    /// The connection itself, for statements without parameters.
    pub(super) fn connection(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    pub(super) async fn query(
        &mut self,
        sql: Sql<'_>,
        params: &[Value],
        limits: ResultLimits,
    ) -> Result<Rows, DbError> {
        let sql = self.statement(sql, params).await?;
        let query = bind(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), params);
        fetch_limited(&mut self.conn, &sql, query, limits, decode_value).await
    }

    pub(super) async fn execute(&mut self, sql: Sql<'_>, params: &[Value]) -> Result<u64, DbError> {
        let sql = self.statement(sql, params).await?;
        let done = bind(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), params)
            .execute(&mut self.conn)
            .await?;
        Ok(done.rows_affected())
    }

    /// Runs `sql` once per parameter set in one round trip per
    /// [`MANY_ROWS_PER_TRIP`] sets: one simple-query message holding
    /// `PREPARE dmig_many_n AS <sql>; EXECUTE dmig_many_n(<literals>); …;
    /// DEALLOCATE dmig_many_n`.
    ///
    /// What runs is what a per-set `execute` runs: the statement is the one
    /// [`PgSession::statement`] writes for the set's kinds of parameters
    /// (`$n::int8`, `$n::text::timestamptz`, …), and `PREPARE` infers the
    /// types of its parameters exactly as the extended protocol's `Parse`
    /// does; each parameter goes as a quoted literal of unknown type, which
    /// the server reads as that parameter's type, as it reads the binary
    /// value `execute` would bind (floats in their shortest exact form,
    /// blobs as `\x…` hex). Sets whose kinds differ are prepared
    /// separately, in order. A statement `PREPARE` cannot take, or text
    /// holding NUL (which PostgreSQL refuses, and which a simple query
    /// cannot carry), runs one set at a time instead.
    pub(super) async fn execute_many(
        &mut self,
        sql: Sql<'_>,
        param_sets: &[Vec<Value>],
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<u64, DbError> {
        let batchable = param_sets.len() > 1
            && preparable(sql.text)
            && param_sets
                .iter()
                .flatten()
                .all(|v| !matches!(v, Value::Text(t) if t.contains('\0')));
        let mut affected = 0;
        if !batchable {
            for params in param_sets {
                if cancelled() {
                    return Err(super::cancel::cancelled_error());
                }
                affected += self.execute(sql, params).await?;
            }
            return Ok(affected);
        }
        let mut start = 0;
        while start < param_sets.len() {
            if cancelled() {
                return Err(super::cancel::cancelled_error());
            }
            let statement = self.statement(sql, &param_sets[start]).await?;
            self.batches += 1;
            let name = format!("{MANY_PREFIX}{}", self.batches);
            let mut trip = String::new();
            if self.leftovers {
                for leftover in self.leftover_statements().await? {
                    trip.push_str(&format!("DEALLOCATE {leftover};\n"));
                }
                self.leftovers = false;
            }
            trip.push_str(&format!("PREPARE {name} AS {statement};\n"));
            let mut end = start;
            while end < param_sets.len()
                && end - start < MANY_ROWS_PER_TRIP
                && trip.len() < MANY_BYTES_PER_TRIP
            {
                // The next set must have the same kinds of parameters.
                if end > start && !same_kinds(&param_sets[start], &param_sets[end]) {
                    break;
                }
                trip.push_str("EXECUTE ");
                trip.push_str(&name);
                for (i, value) in param_sets[end].iter().enumerate() {
                    trip.push_str(if i == 0 { "(" } else { ", " });
                    push_literal(&mut trip, value);
                }
                trip.push_str(if param_sets[end].is_empty() {
                    ";\n"
                } else {
                    ");\n"
                });
                end += 1;
            }
            trip.push_str(&format!("DEALLOCATE {name}"));
            match sqlx::raw_sql(sqlx::AssertSqlSafe(trip))
                .execute(&mut self.conn)
                .await
            {
                Ok(done) => affected += done.rows_affected(),
                Err(e) => {
                    self.leftovers = true;
                    return Err(e.into());
                }
            }
            start = end;
        }
        Ok(affected)
    }

    /// Statements an earlier failed batch may have left prepared.
    async fn leftover_statements(&mut self) -> Result<Vec<String>, DbError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM pg_prepared_statements WHERE starts_with(name, $1)",
        )
        .bind(MANY_PREFIX)
        .fetch_all(&mut self.conn)
        .await?;
        // Only names this session wrote: the prefix and digits.
        Ok(names
            .into_iter()
            .filter(|n| {
                n.strip_prefix(MANY_PREFIX)
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect())
    }

    /// PostgreSQL has no "last insert id": runs `sql` with `RETURNING id`
    /// appended and reads the id of the last row it inserted.
    pub(super) async fn execute_returning_id(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<(u64, i64), DbError> {
        // On a line of its own, in case the statement ends in a `--` comment.
        let returning = format!("{}\nRETURNING id", sql.trim_end().trim_end_matches(';'));
        let rows = self
            .query(returning.as_str().into(), params, super::ResultLimits::NONE)
            .await?;
        let id = match rows.rows.last() {
            None => 0,
            Some(row) => row.first().and_then(Value::as_i64).ok_or_else(|| DbError {
                number: None,
                code: None,
                message: "the inserted row's id column is not an integer".into(),
            })?,
        };
        Ok((rows.rows.len() as u64, id))
    }

    /// `sql` as it must be sent for `params`: placeholders numbered, typed
    /// by the kind of each parameter, and text parameters cast to the type
    /// the server infers for them where that type is not a text type.
    async fn statement(&mut self, sql: Sql<'_>, params: &[Value]) -> Result<String, DbError> {
        let found;
        let spots = match sql.spots {
            Some(spots) => spots,
            None => {
                found = placeholders::find(sql.text);
                &found
            }
        };
        let sql = sql.text;
        let needed = spots.iter().map(|(_, i)| i + 1).max().unwrap_or(0);
        if needed != params.len() {
            return Err(DbError {
                number: None,
                code: None,
                message: format!(
                    "the statement has {needed} `?` placeholder(s) but {} parameter(s) were given",
                    params.len()
                ),
            });
        }
        let typed = placeholders::substitute(sql, spots, |i| {
            format!("${}{}", i + 1, kind_cast(&params[i]))
        });
        if !params.iter().any(|p| matches!(p, Value::Text(_))) {
            // NULL has no bytes to misread: its inferred type is all it needs.
            return Ok(typed);
        }
        if let Some(rewritten) = self.rewrites.get(&typed) {
            return Ok(rewritten.clone());
        }
        // Prepare (sqlx caches it) to learn the types the server infers.
        let inferred: Vec<PgTypeInfo> = {
            let statement = self
                .conn
                .prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(
                    typed.clone(),
                )))
                .await?;
            match statement.parameters() {
                Some(Either::Left(types)) => types.to_vec(),
                _ => Vec::new(),
            }
        };
        // Every untyped placeholder (NULL too, so the rewrite depends on the
        // statement alone) whose type does not read text gets a cast.
        let mut casts = vec![String::new(); params.len()];
        for (i, ty) in inferred.iter().enumerate() {
            if kind_cast(&params[i]).is_empty() && !reads_plain_text(ty) {
                casts[i] = format!("::text::{}", self.type_name(ty).await?);
            }
        }
        let rewritten = placeholders::substitute(sql, spots, |i| {
            format!("${}{}{}", i + 1, kind_cast(&params[i]), casts[i])
        });
        if self.rewrites.len() >= REWRITE_CACHE_CAPACITY {
            self.rewrites.clear();
        }
        self.rewrites.insert(typed, rewritten.clone());
        Ok(rewritten)
    }

    /// How to write `ty` in SQL: the server's own spelling, schema-qualified
    /// and quoted as needed (user-defined enums and domains included).
    async fn type_name(&mut self, ty: &PgTypeInfo) -> Result<String, DbError> {
        let oid = ty.oid().ok_or_else(|| DbError {
            number: None,
            code: None,
            message: format!("the server did not say which type {} is", ty.name()),
        })?;
        let name: String = sqlx::query_scalar("SELECT format_type($1, NULL)")
            .bind(oid)
            .fetch_one(&mut self.conn)
            .await?;
        Ok(name)
    }
}

/// One value (NULL of any type is NULL), by its column's type. Results come
/// in binary format;
/// the types sqlx would need optional features for (dates, numeric, uuid,
/// json) are decoded here from their documented binary forms.
fn decode_value(column: &str, raw: PgValueRef<'_>) -> Result<Value, DbError> {
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let ty = raw.type_info().into_owned();
    let name = ty.name();
    let malformed = |error: BoxDynError| DbError {
        number: None,
        code: None,
        message: format!("column {column} ({name}): cannot decode the value: {error}"),
    };
    if raw.format() == PgValueFormat::Text {
        // Only the simple-query protocol answers in text, and dmig does not
        // use it for results; should it ever, the server's text is the value.
        return Ok(Value::Text(raw.as_str().map_err(malformed)?.to_owned()));
    }
    let is_enum = matches!(ty.kind(), PgTypeKind::Enum(_));
    let value = match name {
        "INT2" => Value::Int(decode::<i16>(raw).map_err(malformed)?.into()),
        "INT4" => Value::Int(decode::<i32>(raw).map_err(malformed)?.into()),
        "INT8" => Value::Int(decode::<i64>(raw).map_err(malformed)?),
        "FLOAT4" => Value::Float(decode::<f32>(raw).map_err(malformed)?.into()),
        "FLOAT8" => Value::Float(decode::<f64>(raw).map_err(malformed)?),
        "BOOL" => Value::Boolean(decode::<bool>(raw).map_err(malformed)?),
        "BYTEA" => Value::Blob(decode::<Vec<u8>>(raw).map_err(malformed)?),
        // The binary form of these (and of an enum: its label) is the text.
        "TEXT" | "VARCHAR" | "CHAR" | "NAME" | "JSON" => {
            Value::Text(decode::<String>(raw).map_err(malformed)?)
        }
        _ if is_enum || name.eq_ignore_ascii_case("citext") => {
            Value::Text(decode::<String>(raw).map_err(malformed)?)
        }
        _ => {
            let bytes = raw.as_bytes().map_err(malformed)?;
            let text = match name {
                "NUMERIC" => numeric_text(bytes),
                "JSONB" => jsonb_text(bytes),
                "UUID" => uuid_text(bytes),
                "DATE" => date_text(bytes),
                "TIME" => time_text(bytes),
                "TIMESTAMP" => timestamp_text(bytes, false),
                "TIMESTAMPTZ" => timestamp_text(bytes, true),
                "VOID" => return Err(void_result(column)),
                _ => return Err(unsupported_type(column, name, &format!("{column}::text"))),
            };
            Value::Text(text.ok_or_else(|| malformed("malformed binary value".into()))?)
        }
    };
    Ok(value)
}

/// Decodes without sqlx's type check: the match in [`decode_value`] is the
/// check, and it also covers types sqlx does not know statically (enums).
fn decode<'r, T: sqlx::Decode<'r, Postgres>>(raw: PgValueRef<'r>) -> Result<T, BoxDynError> {
    T::decode(raw)
}

fn be_i16(bytes: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn be_i32(bytes: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(bytes.try_into().ok()?))
}

fn be_i64(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.try_into().ok()?))
}

/// NUMERIC's binary form: digit count, weight (of the first digit, in base
/// 10000 groups), sign, display scale, then the base-10000 digits. Written
/// out exactly, with as many fraction digits as the display scale says,
/// which is what the server itself prints.
fn numeric_text(bytes: &[u8]) -> Option<String> {
    let ndigits = usize::try_from(be_i16(bytes, 0)?).ok()?;
    let weight = i64::from(be_i16(bytes, 2)?);
    let sign = be_i16(bytes, 4)? as u16;
    let scale = usize::try_from(be_i16(bytes, 6)?).ok()?;
    let digits = (0..ndigits)
        .map(|i| be_i16(bytes, 8 + 2 * i))
        .collect::<Option<Vec<_>>>()?;
    let mut out = String::new();
    match sign {
        0x0000 => {}
        0x4000 => out.push('-'),
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => return None,
    }
    let digit = |group: i64| {
        usize::try_from(group)
            .ok()
            .and_then(|g| digits.get(g))
            .copied()
            .unwrap_or(0)
    };
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit(0).to_string());
        for group in 1..=weight {
            out.push_str(&format!("{:04}", digit(group)));
        }
    }
    if scale > 0 {
        let mut fraction = String::with_capacity(scale + 4);
        let mut group = weight + 1;
        while fraction.len() < scale {
            fraction.push_str(&format!("{:04}", digit(group)));
            group += 1;
        }
        fraction.truncate(scale);
        out.push('.');
        out.push_str(&fraction);
    }
    Some(out)
}

/// JSONB's binary form is a version byte (1) and the JSON text.
fn jsonb_text(bytes: &[u8]) -> Option<String> {
    match bytes.split_first()? {
        (1, json) => String::from_utf8(json.to_vec()).ok(),
        _ => None,
    }
}

/// Lowercase and hyphenated, as the server prints it.
fn uuid_text(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 {
        return None;
    }
    let hex = hex::encode(bytes);
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// DATE: days since 2000-01-01; the extremes mean ±infinity.
fn date_text(bytes: &[u8]) -> Option<String> {
    Some(match be_i32(bytes)? {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        days => date_time_text(civil_date(i64::from(days) + PG_EPOCH_DAYS), None, false),
    })
}

/// TIME: microseconds since midnight (up to and including 24:00:00).
fn time_text(bytes: &[u8]) -> Option<String> {
    Some(clock(be_i64(bytes)?).text())
}

/// TIMESTAMP(TZ): microseconds since 2000-01-01 00:00 (UTC, for timestamptz,
/// which the server always sends in UTC whatever the session's zone is);
/// the extremes mean ±infinity.
fn timestamp_text(bytes: &[u8], utc: bool) -> Option<String> {
    Some(match be_i64(bytes)? {
        i64::MAX => "infinity".into(),
        i64::MIN => "-infinity".into(),
        micros => {
            let days = micros.div_euclid(MICROS_PER_DAY);
            let time = clock(micros.rem_euclid(MICROS_PER_DAY));
            date_time_text(civil_date(days + PG_EPOCH_DAYS), Some(time), utc)
        }
    })
}

fn clock(micros: i64) -> Clock {
    let seconds = micros.div_euclid(1_000_000);
    // All casts below are of values already reduced to small ranges.
    Clock {
        negative: false,
        hours: (seconds / 3600) as u64,
        minutes: (seconds / 60 % 60) as u32,
        seconds: (seconds % 60) as u32,
        micros: micros.rem_euclid(1_000_000) as u32,
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), exact over PostgreSQL's whole range.
fn civil_date(days: i64) -> Date {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Astronomical year 0 is 1 BC.
    Date {
        year: if year <= 0 { 1 - year } else { year },
        month,
        day,
        bc: year <= 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_many_literals_read_back_as_the_value() {
        assert_eq!(literal(&Value::Null), "NULL");
        assert_eq!(
            literal(&Value::Int(-9_223_372_036_854_775_808)),
            "E'-9223372036854775808'"
        );
        assert_eq!(literal(&Value::Boolean(true)), "E'true'");
        assert_eq!(literal(&Value::Float(0.1)), "E'1e-1'");
        assert_eq!(literal(&Value::Float(-0.0)), "E'-0e0'");
        assert_eq!(literal(&Value::Float(f64::NAN)), "E'NaN'");
        assert_eq!(literal(&Value::Float(f64::NEG_INFINITY)), "E'-Infinity'");
        // An escape string: read the same whatever standard_conforming_strings
        // says, so a guest that turned it off cannot end the literal early.
        assert_eq!(
            literal(&Value::Text(r"it's \' $1 ;".into())),
            r"E'it''s \\'' $1 ;'"
        );
        assert_eq!(literal(&Value::Blob(vec![0, 0xff])), r"E'\\x00ff'");
        for f in [f64::MIN_POSITIVE, 5e-324, f64::MAX, 1.0 / 3.0] {
            let text = literal(&Value::Float(f));
            let digits = text.trim_start_matches('E').trim_matches('\'');
            assert_eq!(digits.parse::<f64>().unwrap().to_bits(), f.to_bits());
        }
    }

    #[test]
    fn only_preparable_statements_are_batched() {
        assert!(preparable("UPDATE users SET slug = $1 WHERE id = $2::int8"));
        assert!(preparable(
            "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x"
        ));
        assert!(preparable("insert into t values ($1)"));
        assert!(!preparable("CALL p($1)"));
        assert!(!preparable("DO $$ BEGIN END $$"));
        assert!(!preparable("CREATE TABLE t (a int)"));
        assert!(same_kinds(
            &[Value::Int(1), Value::Text("a".into())],
            &[Value::Int(2), Value::Text("b".into())]
        ));
        assert!(!same_kinds(
            &[Value::Int(1), Value::Text("a".into())],
            &[Value::Int(2), Value::Null]
        ));
    }

    fn numeric(ndigits: i16, weight: i16, sign: u16, scale: i16, digits: &[i16]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in [ndigits, weight, sign as i16, scale]
            .into_iter()
            .chain(digits.iter().copied())
        {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out
    }

    #[test]
    fn numeric_text_is_exact() {
        let big = numeric(
            8,
            4,
            0,
            9,
            &[1234, 5678, 9012, 3456, 7890, 1234, 5678, 9000],
        );
        assert_eq!(
            numeric_text(&big).unwrap(),
            "12345678901234567890.123456789"
        );
        assert_eq!(numeric_text(&numeric(1, -1, 0, 3, &[10])).unwrap(), "0.001");
        assert_eq!(
            numeric_text(&numeric(1, -2, 0x4000, 5, &[1000])).unwrap(),
            "-0.00001"
        );
        assert_eq!(numeric_text(&numeric(0, 0, 0, 2, &[])).unwrap(), "0.00");
        assert_eq!(numeric_text(&numeric(1, 1, 0, 0, &[7])).unwrap(), "70000");
        assert_eq!(numeric_text(&numeric(0, 0, 0xC000, 0, &[])).unwrap(), "NaN");
        assert!(numeric_text(&[0, 1]).is_none());
    }

    #[test]
    fn civil_dates() {
        let d = civil_date(PG_EPOCH_DAYS);
        assert_eq!((d.year, d.month, d.day), (2000, 1, 1));
        let d = civil_date(0);
        assert_eq!((d.year, d.month, d.day), (1970, 1, 1));
        let d = civil_date(-719_528);
        assert_eq!((d.year, d.month, d.day, d.bc), (1, 1, 1, true));
        let d = civil_date(20_779);
        assert_eq!((d.year, d.month, d.day), (2026, 11, 22));
    }

    #[test]
    fn timestamps_and_infinities() {
        let micros = (20_779 - PG_EPOCH_DAYS) * MICROS_PER_DAY + 37_800_000_000 + 120_000;
        assert_eq!(
            timestamp_text(&micros.to_be_bytes(), true).unwrap(),
            "2026-11-22T10:30:00.12Z"
        );
        assert_eq!(
            timestamp_text(&i64::MAX.to_be_bytes(), false).unwrap(),
            "infinity"
        );
        assert_eq!(date_text(&i32::MIN.to_be_bytes()).unwrap(), "-infinity");
        assert_eq!(
            time_text(&MICROS_PER_DAY.to_be_bytes()).unwrap(),
            "24:00:00"
        );
    }

    use crate::db::testing::{self, POSTGRES};
    use crate::db::{Connection, UNSUPPORTED_TYPE_CODE};

    fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    #[tokio::test]
    async fn round_trips_every_supported_type() {
        let Some(mut conn) = testing::connect(POSTGRES).await else {
            return;
        };
        // timestamptz must come back in UTC whatever the session's zone.
        conn.execute("SET TIME ZONE 'America/New_York'", &[])
            .await
            .unwrap();
        let table = testing::table("pg_types");
        let mood = format!("{table}_mood");
        conn.execute(&format!("CREATE TYPE {mood} AS ENUM ('happy', 'sad')"), &[])
            .await
            .unwrap();
        conn.execute(
            &format!(
                "CREATE TABLE {table} (k INT, i2 SMALLINT, i4 INTEGER, i8 BIGINT, f4 REAL, \
                 f8 DOUBLE PRECISION, num NUMERIC, b BOOLEAN, t TEXT, vc VARCHAR(20), bp CHAR(3), \
                 nm NAME, by BYTEA, d DATE, tm TIME, ts TIMESTAMP, tz TIMESTAMPTZ, j JSON, \
                 jb JSONB, u UUID, e {mood})"
            ),
            &[],
        )
        .await
        .unwrap();
        conn.execute(
            &format!(
                "INSERT INTO {table} VALUES \
                 (1, 32767, 2147483647, 9223372036854775807, 1.5, 0.1, \
                  12345678901234567890.123456789, true, 'it''s \"q\" ✓ ünï ?', 'v', 'ab', 'nm', \
                  '\\x00ff41', '2026-11-22', '10:30:00', '2026-11-22 10:30:00', \
                  '2026-11-22 10:30:00+02', '{{\"b\": [1, 2],  \"a\": null}}', '{{\"b\": 1, \"a\": \"x\"}}', \
                  'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'happy'), \
                 (2, -32768, -2147483648, -9223372036854775808, -0.25, 1e300, -0.001, false, '', \
                  '', '', '', '', '1999-12-31', '23:59:59.123456', '2026-11-22 10:30:00.5', \
                  '2026-11-22 10:30:00.000001+00', '[]', '[]', \
                  '00000000-0000-0000-0000-000000000000', 'sad'), \
                 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
                  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
            ),
            &[],
        )
        .await
        .unwrap();
        let rows = conn
            .query(&format!("SELECT * FROM {table} ORDER BY k"), &[])
            .await
            .unwrap();
        let expected_first = vec![
            Value::Int(1),
            Value::Int(32767),
            Value::Int(2_147_483_647),
            Value::Int(i64::MAX),
            Value::Float(1.5),
            Value::Float(0.1),
            text("12345678901234567890.123456789"),
            Value::Boolean(true),
            text("it's \"q\" ✓ ünï ?"),
            text("v"),
            text("ab "),
            text("nm"),
            Value::Blob(vec![0x00, 0xff, 0x41]),
            text("2026-11-22"),
            text("10:30:00"),
            text("2026-11-22T10:30:00"),
            text("2026-11-22T08:30:00Z"),
            text(r#"{"b": [1, 2],  "a": null}"#),
            text(r#"{"a": "x", "b": 1}"#),
            text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            text("happy"),
        ];
        assert_eq!(rows.rows[0], expected_first);
        let expected_second = vec![
            Value::Int(2),
            Value::Int(-32768),
            Value::Int(-2_147_483_648),
            Value::Int(i64::MIN),
            Value::Float(-0.25),
            Value::Float(1e300),
            text("-0.001"),
            Value::Boolean(false),
            text(""),
            text(""),
            text("   "),
            text(""),
            Value::Blob(vec![]),
            text("1999-12-31"),
            text("23:59:59.123456"),
            text("2026-11-22T10:30:00.5"),
            text("2026-11-22T10:30:00.000001Z"),
            text("[]"),
            text("[]"),
            text("00000000-0000-0000-0000-000000000000"),
            text("sad"),
        ];
        assert_eq!(rows.rows[1], expected_second);
        let mut nulls = vec![Value::Null; 21];
        nulls[0] = Value::Int(3);
        assert_eq!(rows.rows[2], nulls);
        // Reading a value back as a parameter finds the same row.
        let found = conn
            .query(
                &format!(
                    "SELECT k FROM {table} WHERE num = ? AND tz = ? AND ts = ? AND d = ? \
                     AND tm = ? AND u = ? AND jb = ? AND e = ? AND by = ?"
                ),
                &[
                    expected_first[6].clone(),
                    expected_first[16].clone(),
                    expected_first[15].clone(),
                    expected_first[13].clone(),
                    expected_first[14].clone(),
                    expected_first[19].clone(),
                    expected_first[18].clone(),
                    expected_first[20].clone(),
                    expected_first[12].clone(),
                ],
            )
            .await
            .unwrap();
        assert_eq!(found.rows, vec![vec![Value::Int(1)]]);
        conn.execute(&format!("DROP TABLE {table}"), &[])
            .await
            .unwrap();
        conn.execute(&format!("DROP TYPE {mood}"), &[])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn numeric_edge_values_are_exact() {
        let Some(mut conn) = testing::connect(POSTGRES).await else {
            return;
        };
        for literal in [
            "0",
            "0.00",
            "(-0.5)",
            "1e-20",
            "100000000",
            "99999999999999999999999999.99",
            "123.4500",
            "'NaN'",
            "'Infinity'",
            "(-12345678901234567890.000000000000000000001)",
        ] {
            let rows = conn
                .query(
                    &format!("SELECT {literal}::numeric AS n, {literal}::numeric::text AS t"),
                    &[],
                )
                .await
                .unwrap();
            assert_eq!(rows.rows[0][0], rows.rows[0][1], "{literal}");
        }
    }

    #[tokio::test]
    async fn unsupported_types_name_the_column_and_a_cast() {
        let Some(mut conn) = testing::connect(POSTGRES).await else {
            return;
        };
        let error = conn
            .query("SELECT 1 AS n, ARRAY['a', 'b']::text[] AS tags", &[])
            .await
            .unwrap_err();
        assert_eq!(error.code.as_deref(), Some(UNSUPPORTED_TYPE_CODE));
        assert_eq!(
            error.message,
            "column tags has type TEXT[], which dmig cannot read; cast it in the query, e.g. tags::text"
        );
        let error = conn
            .query("SELECT interval '1 day' AS span", &[])
            .await
            .unwrap_err();
        assert!(
            error.message.starts_with("column span has type INTERVAL"),
            "{error}"
        );
        // The cast works, and NULLs of unsupported types are still NULL.
        let rows = conn
            .query(
                "SELECT ARRAY['a']::text[]::text AS tags, NULL::int[] AS none",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.rows, vec![vec![text("{a}"), Value::Null]]);
    }

    /// Issue 14, item 9: the hint for a `void` result was `pg_sleep::text`,
    /// which names no column; the hint's forms run.
    #[tokio::test]
    async fn a_void_result_hints_at_sql_that_runs() {
        let Some(mut conn) = testing::connect(POSTGRES).await else {
            return;
        };
        let error = conn.query("SELECT pg_sleep(0)", &[]).await.unwrap_err();
        assert_eq!(error.code.as_deref(), Some(UNSUPPORTED_TYPE_CODE));
        assert_eq!(
            error.message,
            "column pg_sleep has type VOID: the function called returns nothing, so there is \
             no value to read; run the statement with execute (which reads no rows), or cast \
             the call to text in the query, e.g. SELECT pg_sleep(...)::text AS pg_sleep"
        );
        conn.execute("SELECT pg_sleep(0)", &[]).await.unwrap();
        let rows = conn
            .query("SELECT pg_sleep(0)::text AS pg_sleep", &[])
            .await
            .unwrap();
        assert_eq!(rows.columns, ["pg_sleep"]);
        assert_eq!(rows.rows, vec![vec![text("")]]);
    }

    #[tokio::test]
    async fn text_parameters_take_the_type_the_server_infers() {
        let Some(mut conn) = testing::connect(POSTGRES).await else {
            return;
        };
        let table = testing::table("pg_params");
        let mood = format!("{table}_mood");
        conn.execute(&format!("CREATE TYPE {mood} AS ENUM ('happy', 'sad')"), &[])
            .await
            .unwrap();
        conn.execute(
            &format!(
                "CREATE TABLE {table} (created_at TIMESTAMPTZ, d DATE, doc JSONB, u UUID, \
                 n NUMERIC, e {mood}, i INT, t TEXT, tags TEXT[])"
            ),
            &[],
        )
        .await
        .unwrap();
        let insert = format!(
            "INSERT INTO {table} (created_at, d, doc, u, n, e, i, t, tags) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let params: Vec<Value> = [
            "2026-11-22T10:30:00Z",
            "2026-11-22",
            r#"{"a": 1, "k": [true]}"#,
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "12345678901234567890.123456789",
            "happy",
            "42",
            "plain ' text ?",
            "{x,y}",
        ]
        .into_iter()
        .map(Value::from)
        .collect();
        assert_eq!(conn.execute(&insert, &params).await.unwrap(), 1);
        // Again (from the rewrite cache), and with NULL of every type.
        assert_eq!(conn.execute(&insert, &params).await.unwrap(), 1);
        assert_eq!(
            conn.execute(&insert, &vec![Value::Null; 9]).await.unwrap(),
            1
        );
        let rows = conn
            .query(
                &format!(
                    "SELECT created_at, d, doc, u, n, e, i, t, tags::text FROM {table} \
                     WHERE created_at < ? AND d = ? AND doc @> ? AND jsonb_exists(doc, ?) \
                     AND u = ? AND n = ? AND e = ? AND t = ?"
                ),
                &[
                    "2026-11-23T00:00:00+01:00".into(),
                    "2026-11-22".into(),
                    r#"{"a": 1}"#.into(),
                    "k".into(),
                    "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11".into(),
                    "12345678901234567890.123456789".into(),
                    "happy".into(),
                    "plain ' text ?".into(),
                ],
            )
            .await
            .unwrap();
        assert_eq!(rows.rows.len(), 2);
        assert_eq!(
            rows.rows[0],
            vec![
                text("2026-11-22T10:30:00Z"),
                text("2026-11-22"),
                text(r#"{"a": 1, "k": [true]}"#),
                text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                text("12345678901234567890.123456789"),
                text("happy"),
                Value::Int(42),
                text("plain ' text ?"),
                text("{x,y}"),
            ]
        );
        conn.execute(&format!("DROP TABLE {table}"), &[])
            .await
            .unwrap();
        conn.execute(&format!("DROP TYPE {mood}"), &[])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn text_is_parsed_by_the_server_never_misread_as_binary() {
        let Some(mut conn) = testing::connect(POSTGRES).await else {
            return;
        };
        // Eight bytes of text would pass for a binary timestamptz (and
        // sixteen for a uuid) if sent as they are; the server must reject
        // them as it would the same literal.
        for (sql, param) in [
            ("SELECT now() > ? AS later", "2020-01-"),
            ("SELECT gen_random_uuid() = ? AS same", "0123456789abcdef"),
        ] {
            let error = conn.query(sql, &[param.into()]).await.unwrap_err();
            assert!(error.message.contains("invalid input syntax"), "{error}");
        }
    }

    #[tokio::test]
    async fn one_statement_with_parameters_of_changing_kinds() {
        let Some(mut conn) = testing::connect(POSTGRES).await else {
            return;
        };
        let table = testing::table("pg_kinds");
        conn.execute(&format!("CREATE TABLE {table} (n NUMERIC, t TEXT)"), &[])
            .await
            .unwrap();
        let insert = format!("INSERT INTO {table} (n, t) VALUES (?, ?)");
        for params in [
            vec![Value::Int(5), "a".into()],
            vec!["6.5".into(), Value::Int(6)],
            vec![Value::Float(7.25), Value::Null],
            vec![Value::Null, Value::Boolean(true)],
            vec!["8".into(), "b".into()],
        ] {
            conn.execute(&insert, &params).await.unwrap();
        }
        let rows = conn
            .query(&format!("SELECT n, t FROM {table}"), &[])
            .await
            .unwrap();
        assert_eq!(
            rows.rows,
            vec![
                vec![text("5"), text("a")],
                vec![text("6.5"), text("6")],
                vec![text("7.25"), Value::Null],
                vec![Value::Null, text("true")],
                vec![text("8"), text("b")],
            ]
        );
        conn.execute(&format!("DROP TABLE {table}"), &[])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn placeholder_count_must_match() {
        let Some(mut conn) = testing::connect(POSTGRES).await else {
            return;
        };
        let error = conn.query("SELECT ?, '?'", &[]).await.unwrap_err();
        assert!(
            error
                .message
                .contains("1 `?` placeholder(s) but 0 parameter(s)"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn connects_with_either_scheme() {
        let Some(url) = testing::url(POSTGRES) else {
            return;
        };
        let other = url.replacen("postgres://", "postgresql://", 1);
        let mut conn = Connection::connect(&other).await.unwrap();
        let rows = conn.query("SELECT ? AS x", &["hi".into()]).await.unwrap();
        assert_eq!(rows.rows, vec![vec![text("hi")]]);
    }
}
