//! Keyset batches: the one way a step should walk a table.
//!
//! A [`Keyset`] reads the rows of one table in order of a unique key, one
//! batch per step, starting after the key the cursor names:
//!
//! ```sql
//! SELECT <columns> FROM <table> WHERE <key> > ? [AND (<filter>)] ORDER BY <key> LIMIT ?
//! ```
//!
//! The batch's last key is the next cursor, so each step reads exactly the
//! rows after the previous one, whatever the steps before wrote, and a resumed
//! run continues exactly where the last committed step ended. Unlike
//! `OFFSET`, the cost of a batch does not grow with how far the run has got.

use crate::db;
use crate::error::{Error, Result};
use crate::migration::Step;
use crate::rows::Rows;
use crate::value::Value;

/// The type of a keyset's key column, which decides how a cursor is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// An integer key (`id BIGINT`): the cursor is its decimal text.
    Integer,
    /// A text key (a code, a UUID as text): the cursor is the key itself.
    /// Text compares by the column's collation, which differs between
    /// databases; prefer integer keys when there is a choice.
    Text,
}

/// Reads a table in keyset batches. Build it with [`Keyset::new`], then call
/// [`Keyset::fetch`] once per step.
///
/// ```no_run
/// use dmig_guest::{Keyset, Result, Step, db, params};
///
/// fn up(cursor: Option<&str>) -> Result<Step> {
///     let batch = Keyset::new("users", "id")
///         .columns("id, email")
///         .filter("email IS NOT NULL", params![])
///         .batch_size(500)
///         .fetch(cursor)?;
///     db::execute_many_with("UPDATE users SET email = ? WHERE id = ?", batch.rows(), |row| {
///         Ok(params![row.get::<String>("email")?.to_lowercase(), row.get::<i64>("id")?])
///     })?;
///     batch.step()
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Keyset {
    table: String,
    key: String,
    key_type: KeyType,
    columns: String,
    filter: Option<(String, Vec<Value>)>,
    size: u64,
}

impl Keyset {
    /// Batches of `table` ordered by its unique, non-null column `key`
    /// (integer unless [`Keyset::text_key`] says otherwise), every column,
    /// 500 rows at a time.
    pub fn new(table: impl Into<String>, key: impl Into<String>) -> Self {
        let key = key.into();
        Keyset {
            table: table.into(),
            columns: "*".to_owned(),
            key,
            key_type: KeyType::Integer,
            filter: None,
            size: 500,
        }
    }

    /// Selects these columns (SQL, e.g. `"id, name, slug"`). The key column
    /// must be among them.
    pub fn columns(mut self, columns: impl Into<String>) -> Self {
        self.columns = columns.into();
        self
    }

    /// Keeps only rows matching `condition` (SQL with `?` placeholders, bound
    /// to `params`), e.g. `"slug IS NULL"`. When the step's own writes make a
    /// row stop matching, the keyset still moves on past it: the filter only
    /// narrows what each batch reads.
    pub fn filter(mut self, condition: impl Into<String>, params: Vec<Value>) -> Self {
        self.filter = Some((condition.into(), params));
        self
    }

    /// Reads the key as text rather than as an integer.
    pub fn text_key(mut self) -> Self {
        self.key_type = KeyType::Text;
        self
    }

    /// Rows per batch (at least 1; 0 is read as 1).
    pub fn batch_size(mut self, size: u64) -> Self {
        self.size = size.max(1);
        self
    }

    /// The SQL one batch runs, for logs and tests.
    pub fn sql(&self, first: bool) -> String {
        let mut conditions = Vec::new();
        if !first {
            conditions.push(format!("{} > ?", self.key));
        }
        if let Some((condition, _)) = &self.filter {
            conditions.push(format!("({condition})"));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        format!(
            "SELECT {} FROM {}{filter} ORDER BY {} LIMIT ?",
            self.columns, self.table, self.key
        )
    }

    /// How many rows match the filter in the whole table: the total for
    /// [`progress::set_total`](crate::progress::set_total), counted in the
    /// first step.
    pub fn count(&self) -> Result<u64> {
        let (sql, params) = match &self.filter {
            Some((condition, params)) => (
                format!("SELECT count(*) AS n FROM {} WHERE {condition}", self.table),
                params.clone(),
            ),
            None => (format!("SELECT count(*) AS n FROM {}", self.table), vec![]),
        };
        let rows = db::query(&sql, &params)?;
        rows.get(0)
            .ok_or_else(|| {
                Error::msg(format!(
                    "counting the rows of {} returned nothing",
                    self.table
                ))
            })?
            .get("n")
    }

    /// Reads the batch after `cursor` (`None`: the first batch).
    ///
    /// # Errors
    ///
    /// A cursor that is not a key of this keyset's type (naming the cursor,
    /// the table and the key), or the database's error.
    pub fn fetch(&self, cursor: Option<&str>) -> Result<Batch> {
        let mut params = Vec::new();
        if let Some(cursor) = cursor {
            params.push(self.parse_cursor(cursor)?);
        }
        if let Some((_, filter_params)) = &self.filter {
            params.extend(filter_params.iter().cloned());
        }
        params.push(Value::Int(i64::try_from(self.size).unwrap_or(i64::MAX)));
        let rows = db::query(&self.sql(cursor.is_none()), &params)?;
        Ok(Batch {
            rows,
            key: self.key.clone(),
            key_type: self.key_type,
            size: self.size,
        })
    }

    fn parse_cursor(&self, cursor: &str) -> Result<Value> {
        match self.key_type {
            KeyType::Text => Ok(Value::Text(cursor.to_owned())),
            KeyType::Integer => cursor.parse().map(Value::Int).map_err(|_| {
                Error::msg(format!(
                    "cursor {cursor:?} is not an integer key of {}.{} (was it written by another version of this migration? run with --restart to start over)",
                    self.table, self.key
                ))
            }),
        }
    }
}

/// One batch a [`Keyset`] read, and the step that follows from it.
#[derive(Debug, Clone)]
pub struct Batch {
    rows: Rows,
    key: String,
    key_type: KeyType,
    size: u64,
}

impl Batch {
    /// The rows of this batch, in key order.
    pub fn rows(&self) -> &Rows {
        &self.rows
    }

    /// Whether this is the last batch: it came back short of the batch size,
    /// so nothing follows it.
    pub fn is_last(&self) -> bool {
        (self.rows.len() as u64) < self.size
    }

    /// The key of the last row: where the next batch starts.
    ///
    /// # Errors
    ///
    /// The key column is missing from the selected columns, or is NULL.
    pub fn last_key(&self) -> Result<Option<String>> {
        let Some(last) = self.rows.last() else {
            return Ok(None);
        };
        Ok(Some(match self.key_type {
            KeyType::Integer => last.get::<i64>(self.key.as_str())?.to_string(),
            KeyType::Text => last.get::<String>(self.key.as_str())?,
        }))
    }

    /// The keys of this batch's rows, in order, as parameters: for acting on
    /// exactly these rows with `WHERE key IN (…)` (see
    /// [`db::placeholders`](crate::db::placeholders)).
    ///
    /// # Errors
    ///
    /// The key column is missing from the selected columns, or is NULL.
    pub fn keys(&self) -> Result<Vec<Value>> {
        let key = self.key.as_str();
        self.rows
            .iter()
            .map(|row| {
                Ok(match self.key_type {
                    KeyType::Integer => Value::Int(row.get(key)?),
                    KeyType::Text => Value::Text(row.get(key)?),
                })
            })
            .collect()
    }

    /// The step for this batch, counting every row read as processed.
    pub fn step(&self) -> Result<Step> {
        self.step_with(self.rows.len() as u64)
    }

    /// The step for this batch with `processed` rows (when the step acted on
    /// fewer rows than it read): [`Step::done`] after the last batch,
    /// otherwise [`Step::next`] from the last key.
    pub fn step_with(&self, processed: u64) -> Result<Step> {
        match self.last_key()? {
            Some(key) if !self.is_last() => Ok(Step::next(key, processed)),
            _ => Ok(Step::done(processed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_of_first_and_later_batches() {
        let keyset = Keyset::new("users", "id")
            .columns("id, name")
            .filter("slug IS NULL", vec![])
            .batch_size(0);
        assert_eq!(keyset.size, 1);
        assert_eq!(
            keyset.sql(true),
            "SELECT id, name FROM users WHERE (slug IS NULL) ORDER BY id LIMIT ?"
        );
        assert_eq!(
            keyset.sql(false),
            "SELECT id, name FROM users WHERE id > ? AND (slug IS NULL) ORDER BY id LIMIT ?"
        );
        assert_eq!(
            Keyset::new("t", "k").sql(true),
            "SELECT * FROM t ORDER BY k LIMIT ?"
        );
    }

    #[test]
    fn a_bad_cursor_names_the_key() {
        let error = Keyset::new("users", "id").parse_cursor("abc").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cursor \"abc\" is not an integer key of users.id"),
            "{error}"
        );
        assert_eq!(
            Keyset::new("t", "code")
                .text_key()
                .parse_cursor("x")
                .unwrap(),
            Value::Text("x".into())
        );
    }

    fn batch(ids: &[i64], size: u64) -> Batch {
        Batch {
            rows: Rows::new(
                vec!["id".into()],
                ids.iter().map(|&i| vec![Value::Int(i)]).collect(),
            ),
            key: "id".into(),
            key_type: KeyType::Integer,
            size,
        }
    }

    #[test]
    fn a_full_batch_continues_and_a_short_one_ends() {
        assert_eq!(batch(&[1, 2], 2).step().unwrap(), Step::next("2", 2));
        assert_eq!(batch(&[7], 2).step().unwrap(), Step::done(1));
        assert_eq!(batch(&[], 2).step().unwrap(), Step::done(0));
        assert_eq!(batch(&[3, 4], 2).step_with(1).unwrap(), Step::next("4", 1));
    }

    #[test]
    fn keys_are_the_rows_keys_as_parameters() {
        assert_eq!(
            batch(&[3, 5], 2).keys().unwrap(),
            [Value::Int(3), Value::Int(5)]
        );
        assert!(batch(&[], 2).keys().unwrap().is_empty());
        let mut missing = batch(&[1], 2);
        missing.key = "code".into();
        assert!(missing.keys().is_err());
    }
}
