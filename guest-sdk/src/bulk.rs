//! Writing a whole batch in one statement: the bulk path.
//!
//! A data migration usually computes new values in the guest and writes them
//! back by key. [`db::execute_many`](crate::db::execute_many) sends one
//! statement per row; [`update_many`] and [`insert_many`] write the whole
//! batch in the fastest form each database has: on the servers one
//! statement for the batch (or a few, for batches larger than a statement
//! may be), which the database plans and runs as one:
//!
//! | | [`update_many`] | [`insert_many`] |
//! | --- | --- | --- |
//! | PostgreSQL | `UPDATE t AS t SET c = v.c FROM (VALUES (…typed row…), (?, ?), …) AS v (k, c) WHERE t.k = v.k` | `INSERT INTO t (c, …) VALUES (?, …), …` |
//! | SQLite | `UPDATE t SET c = ? WHERE k = ?`, prepared once and run for every row in one `execute-many` call | `INSERT INTO t (c, …) VALUES (?, …), …` |
//! | MySQL / MariaDB | `UPDATE t SET c = CASE WHEN k = ? THEN ? WHEN k = ? THEN ? … ELSE c END WHERE (k = ?) OR (k = ?) …` | the same |
//!
//! SQLite runs in the host's process, so a batch saves no round trip there,
//! and its `UPDATE … FROM (VALUES …)` first copies the batch into a
//! temporary b-tree and then writes through a second one: measured on the
//! benchmark's backfill, the prepared one-row `UPDATE` run per row took 18%
//! less time (docs/PERFORMANCE.md).
//!
//! On PostgreSQL the first row of the `VALUES` list is
//! `((SELECT k FROM t LIMIT 0), (SELECT c FROM t LIMIT 0))`: a row of NULLs
//! with the table's own column types, so every parameter takes its column's
//! type (a date sent as text is read as a date) and the NULL row matches
//! nothing.
//!
//! The statements are SQL like any other: the host's SQL policy checks them
//! as it checks every statement (the table must be declared with
//! [`Manifest::writes`](crate::Manifest::writes)).

use std::collections::HashMap;

use crate::batch::KeyColumns;
use crate::db;
use crate::error::{Error, Result};
use crate::ident::Ident;
use crate::value::{Dialect, Value};

/// The most parameters one bulk statement binds: below every database's own
/// limit (SQLite's default 32,766; PostgreSQL's and MySQL's 65,535).
pub const MAX_PARAMS: usize = 32_000;

/// The most rows one bulk statement writes, whatever the number of columns.
pub const MAX_ROWS: usize = 10_000;

/// The most rows one [`update_many`] statement writes on MySQL/MariaDB.
pub const MAX_MYSQL_UPDATE_ROWS: usize = 1_000;

/// The most operators, keywords and placeholders one bulk statement holds,
/// well within the 10,000 the host's SQL gate analyses per statement.
pub const MAX_TOKENS: usize = 8_000;

/// Updates rows of `table` by `key` (one column, `"id"`, or several,
/// `["tenant", "id"]`), setting `columns` from `rows`: each row is the key's
/// values, in the key's order, then the new values of `columns`, in order.
/// One statement per [`MAX_ROWS`] rows ([`MAX_MYSQL_UPDATE_ROWS`] on
/// MySQL/MariaDB) and per [`MAX_PARAMS`] parameters, all in the step's
/// transaction. Returns the rows affected, as the database
/// counts them (MySQL/MariaDB count only rows whose values changed).
///
/// ```no_run
/// # use dmig_guest::{db, params, Result, Rows};
/// # fn f(batch: &Rows) -> Result<u64> {
/// let updates = batch
///     .iter()
///     .map(|user| Ok(params![user.get::<i64>("id")?, user.get::<String>("name")?.to_lowercase()]))
///     .collect::<Result<Vec<_>>>()?;
/// db::update_many("users", "id", &["slug"], &updates)
/// # }
/// ```
///
/// Each value lands as it would through a one-row `UPDATE`: on PostgreSQL
/// numbers and booleans go as text that the column's own type reads (so a
/// `VALUES` list never converts a column's values to one common type, such
/// as a float8 that would round a large integer), as do dates, times, JSON
/// and decimals; on MySQL/MariaDB a column whose values are all integers or
/// all floats is cast to that, and one that mixes kinds goes as text. A blob
/// goes to a PostgreSQL text column, and a float to a PostgreSQL integer
/// column, only through a one-row statement (here both fail). Names
/// are SQL identifiers, plain or quoted (see [`Keyset`](crate::Keyset)).
///
/// # Errors
///
/// - a name that is not an SQL identifier, no key or no column;
/// - a row with the wrong number of values (naming the row);
/// - two rows with the same key (the database would apply one of them and
///   drop the other without a word): one key, one row. Keys are compared as
///   values, numbers by value whatever their kind (`1`, `1.0` and `"1"` are
///   one key); two texts the database's collation finds equal (`abc` and
///   `ABC` under a case-insensitive one) are not caught here;
/// - the database's error, as for any statement.
pub fn update_many(
    table: &str,
    key: impl KeyColumns,
    columns: &[&str],
    rows: &[Vec<Value>],
) -> Result<u64> {
    let keys = key.into_columns();
    let shape = Shape::new(table, &keys, columns)?;
    shape.check_rows(rows, true)?;
    let dialect = db::dialect();
    if dialect == Dialect::Sqlite {
        // One prepared statement run per row (see the module's notes):
        // each row's values, then its key.
        let sql = shape.update_sql(dialect, 1, None);
        let keys = shape.keys.len();
        let mut affected = 0;
        for chunk in rows.chunks((MAX_PARAMS / shape.width()).max(1)) {
            let sets: Vec<Vec<Value>> = chunk
                .iter()
                .map(|row| row[keys..].iter().chain(&row[..keys]).cloned().collect())
                .collect();
            affected += db::execute_many(&sql, &sets)?;
        }
        return Ok(affected);
    }
    let rows = shape.normalize(dialect, rows);
    let mut affected = 0;
    for chunk in rows.chunks(shape.rows_per_statement(dialect, true)) {
        let sql = shape.update_sql(dialect, chunk.len(), Some(chunk));
        affected += db::execute(&sql, &shape.update_params(dialect, chunk))?;
    }
    Ok(affected)
}

/// Inserts `rows` into `columns` of `table`, each row the values of
/// `columns` in order: `INSERT INTO table (columns) VALUES (…), (…), …`, one
/// statement per [`MAX_ROWS`] rows (and per [`MAX_PARAMS`] parameters).
/// Returns the rows inserted.
///
/// ```no_run
/// # use dmig_guest::{db, params, Result};
/// # fn f() -> Result<u64> {
/// db::insert_many("archive", &["id", "name"], &[params![1, "Ada"], params![2, "Grace"]])
/// # }
/// ```
///
/// # Errors
///
/// A name that is not an SQL identifier, no column, a row with the wrong
/// number of values, or the database's error.
pub fn insert_many(table: &str, columns: &[&str], rows: &[Vec<Value>]) -> Result<u64> {
    let shape = Shape::new(table, &[], columns)?;
    shape.check_rows(rows, false)?;
    let dialect = db::dialect();
    let mut affected = 0;
    for chunk in rows.chunks(shape.rows_per_statement(dialect, false)) {
        let sql = shape.insert_sql(dialect, chunk.len());
        let params: Vec<Value> = chunk.iter().flatten().cloned().collect();
        affected += db::execute(&sql, &params)?;
    }
    Ok(affected)
}

/// The SQL [`update_many`] sends on `dialect` for `rows` rows, for logs,
/// reviews and tests. On SQLite that is the one-row statement it runs for
/// every row, whatever `rows` is.
///
/// # Errors
///
/// As [`update_many`], for the names.
pub fn update_sql(
    dialect: Dialect,
    table: &str,
    key: impl KeyColumns,
    columns: &[&str],
    rows: usize,
) -> Result<String> {
    let keys = key.into_columns();
    Ok(Shape::new(table, &keys, columns)?.update_sql(dialect, rows, None))
}

/// The SQL [`insert_many`] sends on `dialect` for `rows` rows.
///
/// # Errors
///
/// As [`insert_many`], for the names.
pub fn insert_sql(dialect: Dialect, table: &str, columns: &[&str], rows: usize) -> Result<String> {
    Ok(Shape::new(table, &[], columns)?.insert_sql(dialect, rows))
}

/// A bulk write's names, read and checked.
struct Shape {
    table_text: String,
    table: Ident,
    keys: Vec<Ident>,
    columns: Vec<Ident>,
}

impl Shape {
    fn new(table: &str, keys: &[String], columns: &[&str]) -> Result<Shape> {
        let context = |e: String| Error::msg(format!("bulk write to {table}: {e}"));
        let parsed = Ident::parse(table).map_err(context)?;
        let column = |name: &str| {
            let ident = Ident::parse(name).map_err(context)?;
            if ident.len() > 1 {
                return Err(context(format!(
                    "column {name:?} is qualified: name the column alone"
                )));
            }
            Ok(ident)
        };
        if columns.is_empty() {
            return Err(context("no columns to write: name at least one".into()));
        }
        Ok(Shape {
            table_text: table.to_owned(),
            table: parsed,
            keys: keys.iter().map(|k| column(k)).collect::<Result<_>>()?,
            columns: columns.iter().map(|c| column(c)).collect::<Result<_>>()?,
        })
    }

    fn width(&self) -> usize {
        self.keys.len() + self.columns.len()
    }

    /// Rows per statement: within [`MAX_PARAMS`] and [`MAX_ROWS`]; on
    /// MySQL/MariaDB within [`MAX_MYSQL_UPDATE_ROWS`] for an update, whose
    /// `CASE` each row searches arm by arm.
    fn rows_per_statement(&self, dialect: Dialect, update: bool) -> usize {
        let (keys, columns) = (self.keys.len(), self.columns.len());
        let (params_per_row, tokens_per_row, most) = if update && dialect == Dialect::Mysql {
            (
                self.width() * columns + keys,
                // Per column: WHEN, THEN, CAST, AS, SIGNED and per key
                // column `= ?` and AND; the WHERE: per key `= ?`, AND, OR.
                columns * (5 + 3 * keys) + 3 * keys + 1,
                MAX_MYSQL_UPDATE_ROWS,
            )
        } else {
            (self.width(), 2 * self.width(), MAX_ROWS)
        };
        (MAX_PARAMS / params_per_row)
            .min(MAX_TOKENS / tokens_per_row)
            .clamp(1, most)
    }

    /// The values as [`update_many`] sends them on `dialect` (see its
    /// documentation): on PostgreSQL numbers and booleans as text; on
    /// MySQL/MariaDB, in a value column that mixes kinds, numbers as text.
    fn normalize<'r>(
        &self,
        dialect: Dialect,
        rows: &'r [Vec<Value>],
    ) -> std::borrow::Cow<'r, [Vec<Value>]> {
        let keys = self.keys.len();
        let as_text: Vec<bool> = match dialect {
            Dialect::Sqlite => return std::borrow::Cow::Borrowed(rows),
            Dialect::Postgres => vec![true; self.width()],
            Dialect::Mysql => {
                let mut mixed = vec![false; self.width()];
                for (column, slot) in mixed.iter_mut().enumerate().skip(keys) {
                    let mut kinds = rows.iter().filter_map(|row| match &row[column] {
                        Value::Null => None,
                        Value::Int(_) | Value::Boolean(_) => Some(0),
                        Value::Float(_) => Some(1),
                        Value::Text(_) | Value::Blob(_) => Some(2),
                    });
                    if let Some(first) = kinds.next() {
                        *slot = kinds.any(|k| k != first);
                    }
                }
                if !mixed.contains(&true) {
                    return std::borrow::Cow::Borrowed(rows);
                }
                mixed
            }
        };
        std::borrow::Cow::Owned(
            rows.iter()
                .map(|row| {
                    row.iter()
                        .zip(&as_text)
                        .map(|(value, &text)| {
                            if text {
                                number_as_text(value)
                            } else {
                                value.clone()
                            }
                        })
                        .collect()
                })
                .collect(),
        )
    }

    /// Every row has the right width, and (`by_key`) the key is there and
    /// no two rows share one.
    fn check_rows(&self, rows: &[Vec<Value>], by_key: bool) -> Result<()> {
        if by_key && self.keys.is_empty() {
            return Err(Error::msg(format!(
                "bulk update of {}: the key has no columns: name the unique column(s) rows are found by, e.g. \"id\"",
                self.table_text
            )));
        }
        let width = self.width();
        let mut seen = HashMap::with_capacity(if by_key { rows.len() } else { 0 });
        for (i, row) in rows.iter().enumerate() {
            if row.len() != width {
                return Err(Error::msg(format!(
                    "bulk write to {}: row {i} has {} value{}, but {width} are needed ({})",
                    self.table_text,
                    row.len(),
                    if row.len() == 1 { "" } else { "s" },
                    self.keys
                        .iter()
                        .chain(&self.columns)
                        .map(Ident::name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if by_key {
                let key = &row[..self.keys.len()];
                let identity: Vec<String> = key.iter().map(key_identity).collect();
                if let Some(earlier) = seen.insert(identity, i) {
                    return Err(Error::msg(format!(
                        "bulk update of {}: rows {earlier} and {i} both have the key {}; give each key one row (the database would apply one of them and drop the other)",
                        self.table_text,
                        render_key(key),
                    )));
                }
            }
        }
        Ok(())
    }

    /// The update for `rows` rows; `values`, when given, are those rows (on
    /// MySQL/MariaDB an integer's `THEN` is written `CAST(? AS SIGNED)`).
    fn update_sql(&self, dialect: Dialect, rows: usize, values: Option<&[Vec<Value>]>) -> String {
        let table = self.table.sql(dialect);
        let key_names: Vec<String> = self.keys.iter().map(|k| k.sql(dialect)).collect();
        let column_names: Vec<String> = self.columns.iter().map(|c| c.sql(dialect)).collect();
        let all: Vec<&String> = key_names.iter().chain(&column_names).collect();
        let row = format!("({})", vec!["?"; all.len()].join(", "));
        match dialect {
            Dialect::Postgres => {
                let typed: Vec<String> = all
                    .iter()
                    .map(|c| format!("(SELECT {c} FROM {table} LIMIT 0)"))
                    .collect();
                let mut values = vec![format!("({})", typed.join(", "))];
                values.extend(std::iter::repeat_n(row, rows));
                let set: Vec<String> = column_names
                    .iter()
                    .map(|c| format!("{c} = v.{c}"))
                    .collect();
                let on: Vec<String> = key_names.iter().map(|k| format!("t.{k} = v.{k}")).collect();
                format!(
                    "UPDATE {table} AS t SET {} FROM (VALUES {}) AS v ({}) WHERE {}",
                    set.join(", "),
                    values.join(", "),
                    all.iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    on.join(" AND ")
                )
            }
            // The values, then the key (see `update_many`).
            Dialect::Sqlite => {
                let set: Vec<String> = column_names.iter().map(|c| format!("{c} = ?")).collect();
                let on: Vec<String> = key_names.iter().map(|k| format!("{k} = ?")).collect();
                format!(
                    "UPDATE {table} SET {} WHERE {}",
                    set.join(", "),
                    on.join(" AND ")
                )
            }
            Dialect::Mysql => {
                // No derived table: MariaDB types a derived table's columns
                // from its parameters as text of bounded length (a 300 KB
                // value was cut short). In a CASE each parameter keeps the
                // length it is bound with.
                let matches = |tail: &str| -> Vec<String> {
                    (0..rows)
                        .map(|_| {
                            let on: Vec<String> =
                                key_names.iter().map(|k| format!("{k} = ?")).collect();
                            format!("{}{tail}", on.join(" AND "))
                        })
                        .collect()
                };
                let then = |row: usize, column: usize| {
                    mysql_then(
                        values
                            .and_then(|v| v.get(row))
                            .and_then(|r| r.get(key_names.len() + column)),
                    )
                };
                let set: Vec<String> = column_names
                    .iter()
                    .enumerate()
                    .map(|(column, c)| {
                        let arms: Vec<String> = matches("")
                            .into_iter()
                            .enumerate()
                            .map(|(row, arm)| format!("WHEN {arm} THEN {}", then(row, column)))
                            .collect();
                        format!("{c} = CASE {} ELSE {c} END", arms.join(" "))
                    })
                    .collect();
                let rows_matched: Vec<String> =
                    matches("").into_iter().map(|m| format!("({m})")).collect();
                format!(
                    "UPDATE {table} SET {} WHERE {}",
                    set.join(", "),
                    rows_matched.join(" OR ")
                )
            }
        }
    }

    /// The parameters [`Shape::update_sql`] binds for `rows`, in order.
    fn update_params(&self, dialect: Dialect, rows: &[Vec<Value>]) -> Vec<Value> {
        if dialect != Dialect::Mysql {
            return rows.iter().flatten().cloned().collect();
        }
        let keys = self.keys.len();
        let mut params =
            Vec::with_capacity(rows.len() * (self.width() * self.columns.len() + keys));
        for column in 0..self.columns.len() {
            for row in rows {
                params.extend(row[..keys].iter().cloned());
                // A NULL is written in the SQL (see `mysql_then`).
                if !row[keys + column].is_null() {
                    params.push(row[keys + column].clone());
                }
            }
        }
        for row in rows {
            params.extend(row[..keys].iter().cloned());
        }
        params
    }

    fn insert_sql(&self, dialect: Dialect, rows: usize) -> String {
        let columns: Vec<String> = self.columns.iter().map(|c| c.sql(dialect)).collect();
        let row = format!("({})", vec!["?"; columns.len()].join(", "));
        format!(
            "INSERT INTO {} ({}) VALUES {}",
            self.table.sql(dialect),
            columns.join(", "),
            vec![row; rows].join(", ")
        )
    }
}

/// How a MySQL/MariaDB bulk update's `CASE` arm gives `value`. MariaDB
/// types a `CASE` by its arms when it prepares the statement, before any
/// parameter is bound, and a bare `?` counts as text there: one text arm
/// makes the whole `CASE` text, and a `YEAR` column reads the text '0' as
/// 2000 where it reads the integer 0 as 0000. So numbers are cast to what
/// they are bound as, and NULL is written as `NULL`, which types nothing.
fn mysql_then(value: Option<&Value>) -> &'static str {
    match value {
        Some(Value::Null) => "NULL",
        Some(Value::Int(_) | Value::Boolean(_)) => "CAST(? AS SIGNED)",
        Some(Value::Float(_)) => "CAST(? AS DOUBLE)",
        Some(Value::Text(_) | Value::Blob(_)) | None => "?",
    }
}

/// A number or boolean as the text its column's type reads back exactly
/// (anything else as it is).
fn number_as_text(value: &Value) -> Value {
    match value {
        Value::Int(i) => Value::Text(i.to_string()),
        Value::Boolean(b) => Value::Text(b.to_string()),
        Value::Float(f) if f.is_nan() => Value::Text("NaN".into()),
        Value::Float(f) if f.is_infinite() => {
            Value::Text(if *f > 0.0 { "Infinity" } else { "-Infinity" }.into())
        }
        // The shortest text that reads back as exactly this float.
        Value::Float(f) => Value::Text(format!("{f:e}")),
        other => other.clone(),
    }
}

/// A key value as the duplicate check compares it: numbers (and text that
/// reads as one) by value, whatever their kind.
fn key_identity(value: &Value) -> String {
    let number = |f: f64| {
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            format!("n{}", f as i64)
        } else {
            format!("f{}", f.to_bits())
        }
    };
    match value {
        Value::Int(i) => format!("n{i}"),
        Value::Boolean(b) => format!("n{}", i64::from(*b)),
        Value::Float(f) => number(*f),
        Value::Text(t) => match (t.trim().parse::<i64>(), t.trim().parse::<f64>()) {
            (Ok(i), _) => format!("n{i}"),
            (_, Ok(f)) if f.is_finite() => number(f),
            _ => format!("t{t}"),
        },
        Value::Blob(b) => format!(
            "b{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
        Value::Null => "null".into(),
    }
}

/// A key as an operator reads it in a message.
fn render_key(key: &[Value]) -> String {
    let shown: Vec<String> = key
        .iter()
        .map(|v| match v {
            Value::Null => "NULL".to_owned(),
            Value::Boolean(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Text(s) => format!("{s:?}"),
            Value::Blob(b) => format!("a blob of {} bytes", b.len()),
        })
        .collect();
    match shown.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_statements_per_dialect() {
        assert_eq!(
            update_sql(Dialect::Postgres, "users", "id", &["slug"], 2).unwrap(),
            "UPDATE users AS t SET slug = v.slug FROM (VALUES ((SELECT id FROM users LIMIT 0), \
             (SELECT slug FROM users LIMIT 0)), (?, ?), (?, ?)) AS v (id, slug) WHERE t.id = v.id"
        );
        assert_eq!(
            update_sql(Dialect::Sqlite, "users", "id", &["slug"], 2).unwrap(),
            "UPDATE users SET slug = ? WHERE id = ?"
        );
        assert_eq!(
            update_sql(
                Dialect::Sqlite,
                "\"Teams\"",
                ["tenant", "id"],
                &["a", "b"],
                9
            )
            .unwrap(),
            "UPDATE \"Teams\" SET a = ?, b = ? WHERE tenant = ? AND id = ?"
        );
        assert_eq!(
            update_sql(Dialect::Mysql, "users", "id", &["slug"], 2).unwrap(),
            "UPDATE users SET slug = CASE WHEN id = ? THEN ? WHEN id = ? THEN ? ELSE slug END \
             WHERE (id = ?) OR (id = ?)"
        );
        assert_eq!(
            update_sql(
                Dialect::Mysql,
                "\"Teams\"",
                ["tenant", "\"teamId\""],
                &["a", "b"],
                1
            )
            .unwrap(),
            "UPDATE `Teams` SET a = CASE WHEN tenant = ? AND `teamId` = ? THEN ? ELSE a END, \
             b = CASE WHEN tenant = ? AND `teamId` = ? THEN ? ELSE b END \
             WHERE (tenant = ? AND `teamId` = ?)"
        );
        let ids = Shape::new("users", &["id".to_owned()], &["n"]).unwrap();
        assert_eq!(
            ids.update_sql(
                Dialect::Mysql,
                4,
                Some(&[
                    vec![Value::Int(1), Value::Int(0)],
                    vec![Value::Int(2), Value::Text("0".into())],
                    vec![Value::Int(3), Value::Null],
                    vec![Value::Int(4), Value::Float(0.5)],
                ])
            ),
            "UPDATE users SET n = CASE WHEN id = ? THEN CAST(? AS SIGNED) WHEN id = ? THEN ? \
             WHEN id = ? THEN NULL WHEN id = ? THEN CAST(? AS DOUBLE) ELSE n END \
             WHERE (id = ?) OR (id = ?) OR (id = ?) OR (id = ?)"
        );
        assert!(
            ids.update_params(
                Dialect::Mysql,
                &[
                    vec![Value::Int(3), Value::Null],
                    vec![Value::Int(4), Value::Int(7)]
                ]
            ) == [3, 4, 7, 3, 4].map(Value::Int)
        );
        let shape = Shape::new("t", &["k1".to_owned(), "k2".to_owned()], &["a", "b"]).unwrap();
        let row = |n: i64| {
            vec![
                Value::Int(n),
                Value::Int(-n),
                Value::Int(10 * n),
                Value::Int(100 * n),
            ]
        };
        let ints = |v: Vec<Value>| -> Vec<i64> {
            v.into_iter()
                .map(|v| match v {
                    Value::Int(i) => i,
                    _ => unreachable!(),
                })
                .collect()
        };
        assert_eq!(
            ints(shape.update_params(Dialect::Mysql, &[row(1), row(2)])),
            [1, -1, 10, 2, -2, 20, 1, -1, 100, 2, -2, 200, 1, -1, 2, -2]
        );
        assert_eq!(
            ints(shape.update_params(Dialect::Postgres, &[row(1)])),
            [1, -1, 10, 100]
        );
    }

    #[test]
    fn insert_statements() {
        assert_eq!(
            insert_sql(Dialect::Sqlite, "archive", &["id", "name"], 3).unwrap(),
            "INSERT INTO archive (id, name) VALUES (?, ?), (?, ?), (?, ?)"
        );
    }

    #[test]
    fn rows_are_checked() {
        let shape = Shape::new("users", &["id".to_owned()], &["slug"]).unwrap();
        let good = vec![
            vec![Value::Int(1), Value::Text("a".into())],
            vec![Value::Int(2), Value::Text("b".into())],
        ];
        shape.check_rows(&good, true).unwrap();
        let short = vec![vec![Value::Int(1)]];
        assert_eq!(
            shape.check_rows(&short, true).unwrap_err().to_string(),
            "bulk write to users: row 0 has 1 value, but 2 are needed (id, slug)"
        );
        let twice = vec![
            vec![Value::Int(7), Value::Text("a".into())],
            vec![Value::Int(7), Value::Text("b".into())],
        ];
        assert_eq!(
            shape.check_rows(&twice, true).unwrap_err().to_string(),
            "bulk update of users: rows 0 and 1 both have the key 7; give each key one row \
             (the database would apply one of them and drop the other)"
        );
        assert!(Shape::new("users", &[], &[]).is_err());
        assert!(Shape::new("users", &["a.b".to_owned()], &["c"]).is_err());
        assert_eq!(shape.rows_per_statement(Dialect::Sqlite, true), 2_000);
        assert_eq!(shape.rows_per_statement(Dialect::Mysql, true), 8_000 / 12);
        assert_eq!(shape.rows_per_statement(Dialect::Mysql, false), 2_000);
        let same = vec![
            vec![Value::Int(1), Value::Text("a".into())],
            vec![Value::Text(" 1".into()), Value::Text("b".into())],
        ];
        assert!(shape.check_rows(&same, true).is_err());
        let same = vec![
            vec![Value::Float(2.0), Value::Text("a".into())],
            vec![Value::Int(2), Value::Text("b".into())],
        ];
        assert!(shape.check_rows(&same, true).is_err());
        // PostgreSQL: numbers go as text; MySQL: only a column that mixes kinds.
        let rows = vec![
            vec![Value::Int(1), Value::Int(9_007_199_254_740_993)],
            vec![Value::Int(2), Value::Float(1.5)],
        ];
        let ids = Shape::new("t", &["k".to_owned()], &["n"]).unwrap();
        let text = |s: &str| Value::Text(s.into());
        assert!(
            ids.normalize(Dialect::Postgres, &rows).into_owned()
                == [
                    vec![text("1"), text("9007199254740993")],
                    vec![text("2"), text("1.5e0")]
                ]
        );
        assert!(
            ids.normalize(Dialect::Mysql, &rows).into_owned()
                == [
                    vec![Value::Int(1), text("9007199254740993")],
                    vec![Value::Int(2), text("1.5e0")]
                ]
        );
        let ints = vec![
            vec![Value::Int(1), Value::Int(0)],
            vec![Value::Int(2), Value::Null],
        ];
        assert!(ids.normalize(Dialect::Mysql, &ints).into_owned() == ints);
        assert!(ids.normalize(Dialect::Sqlite, &rows).into_owned() == rows);
        let wide: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
        let wide: Vec<&str> = wide.iter().map(String::as_str).collect();
        assert_eq!(
            Shape::new("t", &["id".to_owned()], &wide)
                .unwrap()
                .rows_per_statement(Dialect::Postgres, true),
            8_000 / 22
        );
    }
}
