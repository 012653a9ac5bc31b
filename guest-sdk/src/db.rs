//! The database, through the host: every call runs inside the transaction of
//! the current step.
//!
//! Write parameters as `?` placeholders; the host translates them for the
//! target database.

use crate::__private::dmig::migration::db as host;
use crate::error::Result;
use crate::rows::Rows;
use crate::value::{Dialect, Value};

/// Which database this run targets, for SQL that must differ between them.
pub fn dialect() -> Dialect {
    host::current_dialect()
}

/// `name` quoted as an identifier for this run's dialect: `"profileId"` on
/// PostgreSQL and SQLite, `` `profileId` `` on MySQL/MariaDB, an embedded
/// quote character doubled. For names that are case-sensitive, reserved
/// words or hold other characters:
///
/// ```no_run
/// # use dmig_guest::{db, Result};
/// # fn f() -> Result<()> {
/// let column = db::quote_identifier("profileId")?;
/// db::query(&format!("SELECT {column} FROM profiles WHERE {column} > ?"), &[7.into()])?;
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// An empty name, or one containing NUL (see [`Dialect::quote_identifier`]).
pub fn quote_identifier(name: &str) -> Result<String> {
    dialect().quote_identifier(name)
}

/// Runs a statement that returns rows and returns all of them. Keep the result
/// to one batch (`LIMIT`, keyset pagination).
pub fn query(sql: &str, params: &[Value]) -> Result<Rows> {
    let rows = host::query(sql, params)?;
    Ok(Rows::new(rows.columns, rows.rows))
}

/// Runs a statement that returns no rows; returns the number of rows affected.
pub fn execute(sql: &str, params: &[Value]) -> Result<u64> {
    Ok(host::execute(sql, params)?)
}

/// Runs one statement once per parameter set, prepared once. Returns the
/// total number of rows affected. For writing a batch back by key, or
/// inserting one, [`update_many`] and [`insert_many`] are faster still: one
/// statement for the whole batch.
pub fn execute_many(sql: &str, param_sets: &[Vec<Value>]) -> Result<u64> {
    if param_sets.is_empty() {
        return Ok(0);
    }
    Ok(host::execute_many(sql, param_sets)?)
}

pub use crate::bulk::{insert_many, update_many};

/// Builds one parameter set per item with `params_of` and runs `sql` once per
/// set, prepared once: [`execute_many`] from rows (or any items). Returns the
/// total number of rows affected.
///
/// ```no_run
/// # use dmig_guest::{db, params, Result};
/// # fn f(batch: &dmig_guest::Rows) -> Result<u64> {
/// db::execute_many_with("UPDATE users SET slug = ? WHERE id = ?", batch, |row| {
///     Ok(params![row.get::<String>("name")?.to_lowercase(), row.get::<i64>("id")?])
/// })
/// # }
/// ```
///
/// # Errors
///
/// The first error `params_of` returns (nothing is executed then), or the
/// database's error.
pub fn execute_many_with<I, F>(sql: &str, items: I, mut params_of: F) -> Result<u64>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Result<Vec<Value>>,
{
    let sets = items
        .into_iter()
        .map(&mut params_of)
        .collect::<Result<Vec<_>>>()?;
    execute_many(sql, &sets)
}

/// `n` comma-separated `?` placeholders, for `IN (…)` lists built per batch.
///
/// ```
/// assert_eq!(dmig_guest::db::placeholders(3), "?, ?, ?");
/// ```
pub fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}
