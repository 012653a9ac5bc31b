//! Keyset batches: the one way a step should walk a table.
//!
//! A [`Keyset`] reads the rows of one table in order of a unique key, one
//! batch per step, starting after the key the cursor names:
//!
//! ```sql
//! SELECT <columns> FROM <table> WHERE <key> > ? [AND (<filter>)] ORDER BY <key> LIMIT ?
//! ```
//!
//! The key may span several columns (a tie-breaker: `["created_at", "id"]`),
//! compared as a row value, `(created_at, id) > (?, ?)`, on PostgreSQL and
//! SQLite, and as `created_at >= ? AND (created_at > ? OR (created_at = ? AND
//! id > ?))` on MySQL/MariaDB (whose optimizer uses an index for that form
//! but not always for the row value), ordered by every key column.
//!
//! The batch's last key is the next cursor, so each step reads exactly the
//! rows after the previous one, whatever the steps before wrote, and a resumed
//! run continues exactly where the last committed step ended. Unlike
//! `OFFSET`, the cost of a batch does not grow with how far the run has got.
//!
//! Nothing is taken on trust: each batch reads one row more than it keeps (a
//! batch that locks its rows counts the rows with its last key instead, so
//! as to lock nothing it does not keep), and a key that is not unique (two rows with equal keys, which a batch boundary
//! between them would lose), or NULL, fails the step with an error that says
//! how to fix the key.

use crate::cursor::{self, KeyType};
use crate::db;
use crate::error::{Error, Result};
use crate::ident::Ident;
use crate::log;
use crate::migration::Step;
use crate::rows::{Row, Rows};
use crate::value::{Dialect, Value};

/// PostgreSQL, locked batches: how many times a batch is read again while
/// other transactions keep changing its rows' keys (see [`Keyset::fetch`]).
const MAX_LOCKED_REREADS: usize = 5;

/// A row lock a [`Keyset`] takes on the rows of each batch, held until the
/// step commits: for the read-modify-write pattern, so that no other
/// transaction can change a row between the step reading it and writing it.
///
/// | | PostgreSQL | MySQL / MariaDB | SQLite |
/// | --- | --- | --- | --- |
/// | `ForShare` | `FOR SHARE` | not available (an error) | nothing |
/// | `ForUpdate` | `FOR UPDATE` | `FOR UPDATE` | nothing |
/// | `ForUpdateNoWait` | `FOR UPDATE NOWAIT` | `FOR UPDATE NOWAIT` | nothing |
/// | `ForUpdateSkipLocked` | `FOR UPDATE SKIP LOCKED` | `FOR UPDATE SKIP LOCKED` | nothing |
///
/// On MySQL/MariaDB, `ForShare` fails the step: MariaDB's only form, `LOCK
/// IN SHARE MODE`, is not parsed by the host's SQL policy (MySQL 8's `FOR
/// SHARE` is a syntax error on MariaDB).
///
/// SQLite has no row locks and needs none: a step holds the whole database's
/// write lock from its first statement (`BEGIN IMMEDIATE`), so no other
/// connection writes between the step's read and its write. The clause is
/// left out there, and the same migration runs on all three.
///
/// The host's SQL policy counts a locking read as a write of the table it
/// locks, so the table must be declared with
/// [`Manifest::writes`](crate::Manifest::writes); otherwise the host refuses
/// the statement (exit code 8), naming the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Lock {
    /// No lock (the default): a plain read. Another transaction may change a
    /// row after the step read it; write with a condition that re-checks what
    /// was read (`UPDATE … WHERE id = ? AND balance = ?`) or take a lock.
    #[default]
    None,
    /// A shared lock: others can read and share-lock the rows but not change
    /// them until the step commits.
    ForShare,
    /// An exclusive lock: others wait to change or lock the rows until the
    /// step commits. The lock to use for read-modify-write.
    ForUpdate,
    /// As `ForUpdate`, but the step fails at once (and rolls back) when
    /// another transaction holds one of the rows, instead of waiting.
    ForUpdateNoWait,
    /// As `ForUpdate`, but rows another transaction holds are left out of the
    /// batch instead of waited for. The cursor moves past them, so they are
    /// not processed by this run: [`Batch::skipped`] counts them and the step
    /// logs a warning; a later run (`dmig-host run --force`) picks them up if
    /// the filter still selects them. For work queues that tolerate that.
    ForUpdateSkipLocked,
}

impl Lock {
    /// Fails for a lock `dialect` cannot take through dmig: on MySQL/MariaDB,
    /// [`Lock::ForShare`], whose only form MariaDB accepts (`LOCK IN SHARE
    /// MODE`) the host's SQL policy does not parse yet.
    ///
    /// # Errors
    ///
    /// A message naming the lock and what to use instead.
    pub fn check(self, dialect: Dialect) -> Result<()> {
        if dialect == Dialect::Mysql && self == Lock::ForShare {
            return Err(Error::msg(
                "Lock::ForShare is not available on MySQL/MariaDB: dmig's SQL policy does not parse LOCK IN SHARE MODE (and MariaDB has no FOR SHARE); use Lock::ForUpdate",
            ));
        }
        Ok(())
    }

    /// The clause appended to a batch's `SELECT` on `dialect` (empty for
    /// [`Lock::None`], and on SQLite).
    pub fn clause(self, dialect: Dialect) -> &'static str {
        match (dialect, self) {
            (_, Lock::None) | (Dialect::Sqlite, _) => "",
            (Dialect::Postgres, Lock::ForShare) => " FOR SHARE",
            (Dialect::Mysql, Lock::ForShare) => " LOCK IN SHARE MODE",
            (_, Lock::ForUpdate) => " FOR UPDATE",
            (_, Lock::ForUpdateNoWait) => " FOR UPDATE NOWAIT",
            (_, Lock::ForUpdateSkipLocked) => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// The columns of a keyset's key: one name (`"id"`), or several in order
/// (`["created_at", "id"]`, `&["created_at", "id"][..]`, a `Vec`).
pub trait KeyColumns {
    /// The column names, as written.
    fn into_columns(self) -> Vec<String>;
}

impl KeyColumns for &str {
    fn into_columns(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}

impl KeyColumns for String {
    fn into_columns(self) -> Vec<String> {
        vec![self]
    }
}

impl<const N: usize> KeyColumns for [&str; N] {
    fn into_columns(self) -> Vec<String> {
        self.iter().map(|c| (*c).to_owned()).collect()
    }
}

impl KeyColumns for &[&str] {
    fn into_columns(self) -> Vec<String> {
        self.iter().map(|c| (*c).to_owned()).collect()
    }
}

impl<const N: usize> KeyColumns for &[&str; N] {
    fn into_columns(self) -> Vec<String> {
        self.iter().map(|c| (*c).to_owned()).collect()
    }
}

impl KeyColumns for Vec<String> {
    fn into_columns(self) -> Vec<String> {
        self
    }
}

impl KeyColumns for Vec<&str> {
    fn into_columns(self) -> Vec<String> {
        self.into_iter().map(str::to_owned).collect()
    }
}

/// Reads a table in keyset batches. Build it with [`Keyset::new`], then call
/// [`Keyset::fetch`] once per step.
///
/// ```no_run
/// use dmig_guest::{Keyset, Lock, Result, Step, db, params};
///
/// fn up(cursor: Option<&str>) -> Result<Step> {
///     let batch = Keyset::new("users", "id")
///         .columns("id, email")
///         .filter("email IS NOT NULL", params![])
///         .lock(Lock::ForUpdate)
///         .batch_size(500)
///         .fetch(cursor)?;
///     db::execute_many_with("UPDATE users SET email = ? WHERE id = ?", batch.rows(), |row| {
///         Ok(params![row.get::<String>("email")?.to_lowercase(), row.get::<i64>("id")?])
///     })?;
///     batch.step()
/// }
/// ```
///
/// Names are SQL identifiers: plain (`users`, `public.users`, folded by the
/// database as usual) or quoted (`"profileId"`, `` `profileId` ``), which the
/// keyset quotes again for the dialect it runs on, so `"profileId"` works on
/// MySQL too. A key column is found in the result under its unquoted name.
#[derive(Debug, Clone)]
pub struct Keyset {
    table: String,
    keys: Vec<String>,
    key_type: KeyType,
    columns: String,
    filter: Option<(String, Vec<Value>)>,
    size: u64,
    lock: Lock,
}

/// A keyset's names, read and checked.
struct Names {
    table: Ident,
    keys: Vec<Ident>,
}

impl Keyset {
    /// Batches of `table` ordered by `key`, one column (`"id"`) or several
    /// (`["created_at", "id"]`, the last one a tie-breaker that makes the key
    /// unique), every column, 500 rows at a time, without row locks. The key
    /// must be unique and NOT NULL: both are checked as batches are read.
    ///
    /// A one-column key is an integer unless [`Keyset::text_key`] says
    /// otherwise; the columns of a composite key may be integers or values
    /// the database returns as text (text, dates, times, timestamps, UUIDs),
    /// each bound back exactly as it was read.
    pub fn new(table: impl Into<String>, key: impl KeyColumns) -> Self {
        Keyset {
            table: table.into(),
            keys: key.into_columns(),
            key_type: KeyType::Integer,
            columns: "*".to_owned(),
            filter: None,
            size: 500,
            lock: Lock::None,
        }
    }

    /// Selects these columns (SQL, e.g. `"id, name, slug"`). The key columns
    /// must be among them. This text is sent as written, unlike the table
    /// and key names: quote a case-sensitive name for the dialect yourself
    /// ([`db::quote_identifier`](crate::db::quote_identifier)).
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

    /// Reads a one-column key as text (text, a date or a timestamp) rather
    /// than as an integer. A composite key's cursor records each value's kind,
    /// so this does not matter for it.
    pub fn text_key(mut self) -> Self {
        self.key_type = KeyType::Text;
        self
    }

    /// Rows per batch (at least 1; 0 is read as 1).
    pub fn batch_size(mut self, size: u64) -> Self {
        self.size = size.max(1);
        self
    }

    /// Locks each batch's rows until the step commits (see [`Lock`]). The
    /// table must then be declared with [`Manifest::writes`](crate::Manifest::writes).
    pub fn lock(mut self, lock: Lock) -> Self {
        self.lock = lock;
        self
    }

    fn names(&self) -> Result<Names> {
        let context = |e: String| Error::msg(format!("Keyset on {}: {e}", self.table));
        let table = Ident::parse(&self.table).map_err(context)?;
        if self.keys.is_empty() {
            return Err(context(
                "the key has no columns: name one unique column, e.g. Keyset::new(table, \"id\")"
                    .into(),
            ));
        }
        let keys = self
            .keys
            .iter()
            .map(|key| {
                let ident = Ident::parse(key).map_err(context)?;
                if ident.len() > 1 {
                    return Err(context(format!(
                        "key column {key:?} is qualified: name the column alone"
                    )));
                }
                Ok(ident)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Names { table, keys })
    }

    /// The key as an operator reads it: `users.id`, `teams (created_at, id)`.
    fn describe_key(&self) -> String {
        match self.keys.as_slice() {
            [one] => format!("{}.{one}", self.table),
            keys => format!("{} ({})", self.table, keys.join(", ")),
        }
    }

    /// The SQL one batch runs on `dialect` (`first`: the batch without a
    /// cursor), for logs and tests. It ends in `LIMIT ?`, bound to the batch
    /// size plus one (the row after the batch, read to check the key; the
    /// batch size alone for a locking read, which must not lock a row it does
    /// not keep), and then the lock clause.
    ///
    /// # Errors
    ///
    /// A table or key name that is not an SQL identifier (see [`Keyset`]).
    pub fn sql(&self, dialect: Dialect, first: bool) -> Result<String> {
        let names = self.names()?;
        let mut conditions = Vec::new();
        if !first {
            conditions.push(after(dialect, &names.keys).0);
        }
        if let Some((condition, _)) = &self.filter {
            conditions.push(format!("({condition})"));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        Ok(format!(
            "SELECT {} FROM {}{filter} ORDER BY {} LIMIT ?{}",
            self.columns,
            names.table.sql(dialect),
            key_list(dialect, &names.keys),
            self.lock.clause(dialect),
        ))
    }

    fn filter_sql(&self, prefix: &str) -> (String, Vec<Value>) {
        match &self.filter {
            Some((condition, params)) => (format!(" {prefix} ({condition})"), params.clone()),
            None => (String::new(), vec![]),
        }
    }

    /// How many rows match the filter in the whole table: the total for
    /// [`progress::set_total`](crate::progress::set_total), counted in the
    /// first step.
    pub fn count(&self) -> Result<u64> {
        let table = self.names()?.table.sql(db::dialect());
        let (filter, params) = self.filter_sql("WHERE");
        let rows = db::query(
            &format!("SELECT count(*) AS n FROM {table}{filter}"),
            &params,
        )?;
        rows.get(0)
            .ok_or_else(|| {
                Error::msg(format!(
                    "counting the rows of {} returned nothing",
                    self.table
                ))
            })?
            .get("n")
    }

    /// Reads the batch after `cursor` (`None`: the first batch), locking its
    /// rows as [`Keyset::lock`] says.
    ///
    /// The first batch also checks that no row matching the filter has a
    /// NULL key column (one query, `… WHERE k1 IS NULL OR k2 IS NULL …
    /// LIMIT 1`: an index lookup for an indexed one-column key, a scan at
    /// worst for a composite one): such a row would never be read.
    ///
    /// # Errors
    ///
    /// - a table or key name that is not an SQL identifier;
    /// - a cursor that is not a key of this keyset (naming the cursor, the
    ///   table and the key);
    /// - a key column missing from [`Keyset::columns`], or holding a value
    ///   that cannot be a key (NULL, a float, a blob, a boolean; text for an
    ///   integer key);
    /// - [`Error::KeyNotUnique`] when two rows read have equal keys, and
    ///   [`Error::NullKey`] for a NULL key;
    /// - [`Lock::ForShare`] on MySQL/MariaDB (see [`Lock`]);
    /// - the database's error.
    pub fn fetch(&self, cursor: Option<&str>) -> Result<Batch> {
        let dialect = db::dialect();
        let names = self.names()?;
        self.lock.check(dialect)?;
        let mut params = Vec::new();
        if let Some(cursor) = cursor {
            let values = cursor::decode(cursor, names.keys.len(), self.key_type).map_err(|e| {
                Error::msg(format!(
                    "cursor {cursor:?} is not a key of {}: {e} (was it written by another version of this migration? run with --restart to start over)",
                    self.describe_key()
                ))
            })?;
            params.extend(
                after(dialect, &names.keys)
                    .1
                    .iter()
                    .map(|&i| values[i].clone()),
            );
        } else {
            self.check_no_null_keys(dialect, &names)?;
        }
        let (_, filter_params) = self.filter_sql("");
        params.extend(filter_params);
        // A plain read takes one row more than it keeps, to compare the
        // batch's last key with the next. A locking read must not lock (or,
        // with NOWAIT, fail on) a row it does not keep, so it reads the batch
        // alone and a full batch's last key is counted instead.
        let lookahead = self.lookahead(dialect);
        params.push(Value::Int(
            i64::try_from(self.size.saturating_add(u64::from(lookahead))).unwrap_or(i64::MAX),
        ));
        let sql = self.sql(dialect, cursor.is_none())?;
        let mut rows = db::query(&sql, &params)?;
        let key_names: Vec<String> = names.keys.iter().map(|k| k.name().to_owned()).collect();
        let keys_of = |rows: &crate::rows::Rows| {
            rows.iter()
                .map(|row| self.key_values(&row, &key_names))
                .collect::<Result<Vec<_>>>()
        };
        let mut key_values = keys_of(&rows)?;
        // PostgreSQL sorts, then locks: a row whose key another transaction
        // changed while this read waited for its lock comes back with its
        // new key in its old place, and a cursor taken from it would skip
        // rows. Read again, holding the rows now, until two reads agree.
        if dialect == Dialect::Postgres && self.lock != Lock::None {
            let mut stable = false;
            for _ in 0..MAX_LOCKED_REREADS {
                let again = db::query(&sql, &params)?;
                let again_keys = keys_of(&again)?;
                rows = again;
                if again_keys == key_values {
                    stable = true;
                    break;
                }
                key_values = again_keys;
            }
            if !stable {
                return Err(Error::msg(format!(
                    "the keys of {} kept changing while the batch locked its rows ({MAX_LOCKED_REREADS} reads disagreed); run the migration again",
                    self.describe_key()
                )));
            }
        }
        for pair in key_values.windows(2) {
            if pair[0] == pair[1] {
                return Err(self.not_unique(&pair[0]));
            }
        }
        let kept = usize::try_from(self.size).unwrap_or(usize::MAX);
        if key_values.len() > kept {
            // A full batch: its last key is the next cursor. A row after it
            // with a key the database finds equal (text under a
            // case-insensitive or PAD SPACE collation) would be skipped.
            let last = &key_values[kept - 1];
            if last.iter().any(|v| matches!(v, Value::Text(_))) {
                self.check_unique(dialect, &names, last)?;
            }
            rows.truncate(kept);
        } else if !lookahead && key_values.len() == kept {
            // A full locked batch: no row after it was read.
            self.check_unique(dialect, &names, &key_values[kept - 1])?;
        }
        let skipped = if self.lock == Lock::ForUpdateSkipLocked && dialect != Dialect::Sqlite {
            self.count_skipped(
                dialect,
                &names,
                cursor,
                &key_values[..rows.len()],
                rows.len(),
            )?
        } else {
            0
        };
        key_values.truncate(rows.len());
        Ok(Batch {
            rows,
            key_values,
            size: self.size,
            skipped,
        })
    }

    /// Whether a batch reads the row after it (see [`Keyset::fetch`]):
    /// unless it locks its rows (SQLite takes no row locks).
    fn lookahead(&self, dialect: Dialect) -> bool {
        self.lock == Lock::None || dialect == Dialect::Sqlite
    }

    /// The key values of `row`, checked to be usable as a key.
    fn key_values(&self, row: &Row<'_>, keys: &[String]) -> Result<Vec<Value>> {
        keys.iter()
            .map(|key| {
                let value = row.value(key.as_str()).ok_or_else(|| {
                    Error::msg(format!(
                        "key column {key} of {} is not in the batch's columns ({}): add it to Keyset::columns",
                        self.table,
                        row_columns(row)
                    ))
                })?;
                match value {
                    Value::Null => Err(Error::NullKey {
                        table: self.table.clone(),
                        key: key.clone(),
                    }),
                    Value::Int(_) if self.keys.len() > 1 || self.key_type == KeyType::Integer => {
                        Ok(value.clone())
                    }
                    Value::Text(_) if self.keys.len() > 1 || self.key_type == KeyType::Text => {
                        Ok(value.clone())
                    }
                    Value::Text(_) => Err(Error::msg(format!(
                        "key {} holds text, not an integer: call Keyset::text_key() for a text, date or time key",
                        self.describe_key()
                    ))),
                    Value::Int(_) => Err(Error::msg(format!(
                        "key {} holds an integer, not text: leave out Keyset::text_key() for an integer key",
                        self.describe_key()
                    ))),
                    other => Err(Error::msg(format!(
                        "key column {key} of {} holds {}, which cannot be a keyset key: use an integer, text, date or time column",
                        self.table,
                        other.kind()
                    ))),
                }
            })
            .collect()
    }

    fn not_unique(&self, values: &[Value]) -> Error {
        Error::KeyNotUnique {
            table: self.table.clone(),
            key: self.keys.clone(),
            value: cursor::encode(values),
        }
    }

    /// Fails when a row matching the filter has a NULL key column.
    fn check_no_null_keys(&self, dialect: Dialect, names: &Names) -> Result<()> {
        let nulls: Vec<String> = names
            .keys
            .iter()
            .map(|k| format!("{} IS NULL", k.sql(dialect)))
            .collect();
        let (filter, params) = self.filter_sql("AND");
        let sql = format!(
            "SELECT 1 AS null_key FROM {} WHERE ({}){filter} LIMIT 1",
            names.table.sql(dialect),
            nulls.join(" OR ")
        );
        if db::query(&sql, &params)?.is_empty() {
            return Ok(());
        }
        Err(Error::NullKey {
            table: self.table.clone(),
            key: match self.keys.as_slice() {
                [one] => one.clone(),
                keys => format!("({})", keys.join(", ")),
            },
        })
    }

    /// Fails when more than one row matching the filter has key `last`, as
    /// the database compares them.
    fn check_unique(&self, dialect: Dialect, names: &Names, last: &[Value]) -> Result<()> {
        let equal: Vec<String> = names
            .keys
            .iter()
            .map(|k| format!("{} = ?", k.sql(dialect)))
            .collect();
        let (filter, filter_params) = self.filter_sql("AND");
        let mut params = last.to_vec();
        params.extend(filter_params);
        let sql = format!(
            "SELECT count(*) AS n FROM {} WHERE {}{filter}",
            names.table.sql(dialect),
            equal.join(" AND ")
        );
        let rows = db::query(&sql, &params)?;
        let n: i64 = rows.get(0).map_or(Ok(0), |r| r.get("n"))?;
        if n > 1 {
            return Err(self.not_unique(last));
        }
        Ok(())
    }

    /// How many rows between the cursor and the batch's last key (or the
    /// end, for a last batch) a `SKIP LOCKED` read left out; logs a warning
    /// when there are any.
    fn count_skipped(
        &self,
        dialect: Dialect,
        names: &Names,
        cursor: Option<&str>,
        kept: &[Vec<Value>],
        read: usize,
    ) -> Result<u64> {
        let (after_sql, order) = after(dialect, &names.keys);
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        if let Some(cursor) = cursor {
            let values =
                cursor::decode(cursor, names.keys.len(), self.key_type).map_err(Error::msg)?;
            conditions.push(after_sql.clone());
            params.extend(order.iter().map(|&i| values[i].clone()));
        }
        let full = (read as u64) >= self.size;
        if let (true, Some(last)) = (full, kept.last()) {
            conditions.push(format!("NOT ({after_sql})"));
            params.extend(order.iter().map(|&i| last[i].clone()));
        }
        if let Some((condition, filter_params)) = &self.filter {
            conditions.push(format!("({condition})"));
            params.extend(filter_params.iter().cloned());
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT count(*) AS n FROM {}{filter}",
            names.table.sql(dialect)
        );
        let rows = db::query(&sql, &params)?;
        let n: i64 = rows.get(0).map_or(Ok(0), |r| r.get("n"))?;
        let skipped = u64::try_from(n).unwrap_or(0).saturating_sub(read as u64);
        if skipped > 0 {
            log::warn(format!(
                "{skipped} rows of {} were locked by other transactions and skipped (Lock::ForUpdateSkipLocked); this run will not process them: run the migration again afterwards (dmig-host run --force) if its filter still selects them",
                self.table
            ));
        }
        Ok(skipped)
    }
}

/// `k1, k2, …` for `ORDER BY`.
fn key_list(dialect: Dialect, keys: &[Ident]) -> String {
    keys.iter()
        .map(|k| k.sql(dialect))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The condition "the key is after the cursor", and for each of its `?` the
/// index of the cursor value it binds.
fn after(dialect: Dialect, keys: &[Ident]) -> (String, Vec<usize>) {
    let cols: Vec<String> = keys.iter().map(|k| k.sql(dialect)).collect();
    match (cols.as_slice(), dialect) {
        ([one], _) => (format!("{one} > ?"), vec![0]),
        (_, Dialect::Postgres | Dialect::Sqlite) => (
            format!(
                "({}) > ({})",
                cols.join(", "),
                vec!["?"; cols.len()].join(", ")
            ),
            (0..cols.len()).collect(),
        ),
        (_, Dialect::Mysql) => {
            // k1 >= ? AND (k1 > ? OR (k1 = ? AND k2 > ?) OR …): the leading
            // range on k1 lets the optimizer use an index on the key.
            let mut order = vec![0];
            let mut alternatives = Vec::new();
            for i in 0..cols.len() {
                let mut terms: Vec<String> = (0..i).map(|j| format!("{} = ?", cols[j])).collect();
                order.extend(0..i);
                terms.push(format!("{} > ?", cols[i]));
                order.push(i);
                alternatives.push(if terms.len() == 1 {
                    terms.remove(0)
                } else {
                    format!("({})", terms.join(" AND "))
                });
            }
            (
                format!("{} >= ? AND ({})", cols[0], alternatives.join(" OR ")),
                order,
            )
        }
    }
}

fn row_columns(row: &Row<'_>) -> String {
    row.columns().join(", ")
}

/// One batch a [`Keyset`] read, and the step that follows from it.
#[derive(Debug, Clone)]
pub struct Batch {
    rows: Rows,
    key_values: Vec<Vec<Value>>,
    size: u64,
    skipped: u64,
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

    /// Rows a [`Lock::ForUpdateSkipLocked`] read left out of this batch
    /// because other transactions held them (0 with any other lock).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The cursor of the last row, where the next batch starts: for a
    /// one-column key the key as text (`"4711"`), for a composite key a JSON
    /// array of its values (`["2026-11-22T10:30:00",17]`).
    ///
    /// # Errors
    ///
    /// None since the keys are checked when the batch is read; the `Result`
    /// is kept for compatibility.
    pub fn last_key(&self) -> Result<Option<String>> {
        Ok(self.key_values.last().map(|v| cursor::encode(v)))
    }

    /// The keys of this batch's rows, in order, as parameters: for acting on
    /// exactly these rows with `WHERE key IN (…)` (see
    /// [`db::placeholders`](crate::db::placeholders)). For a composite key,
    /// each row's values one after the other (`a1, b1, a2, b2, …`), for
    /// `WHERE (a, b) IN ((?, ?), (?, ?), …)`.
    ///
    /// # Errors
    ///
    /// None since the keys are checked when the batch is read; the `Result`
    /// is kept for compatibility.
    pub fn keys(&self) -> Result<Vec<Value>> {
        Ok(self.key_values.iter().flatten().cloned().collect())
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
            keyset.sql(Dialect::Sqlite, true).unwrap(),
            "SELECT id, name FROM users WHERE (slug IS NULL) ORDER BY id LIMIT ?"
        );
        assert_eq!(
            keyset.sql(Dialect::Postgres, false).unwrap(),
            "SELECT id, name FROM users WHERE id > ? AND (slug IS NULL) ORDER BY id LIMIT ?"
        );
        assert_eq!(
            Keyset::new("t", "k").sql(Dialect::Mysql, true).unwrap(),
            "SELECT * FROM t ORDER BY k LIMIT ?"
        );
    }

    #[test]
    fn composite_keys_compare_as_row_values_or_expanded_on_mysql() {
        let keyset = Keyset::new("teams", ["created_at", "id"]);
        assert_eq!(
            keyset.sql(Dialect::Postgres, false).unwrap(),
            "SELECT * FROM teams WHERE (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?"
        );
        assert_eq!(
            keyset.sql(Dialect::Mysql, false).unwrap(),
            "SELECT * FROM teams WHERE created_at >= ? AND (created_at > ? OR (created_at = ? AND id > ?)) ORDER BY created_at, id LIMIT ?"
        );
        let names = keyset.names().unwrap();
        assert_eq!(after(Dialect::Mysql, &names.keys).1, [0, 0, 0, 1]);
        let three = Keyset::new("t", vec!["a", "b", "c"]).names().unwrap();
        let (sql, order) = after(Dialect::Mysql, &three.keys);
        assert_eq!(
            sql,
            "a >= ? AND (a > ? OR (a = ? AND b > ?) OR (a = ? AND b = ? AND c > ?))"
        );
        assert_eq!(order, [0, 0, 0, 1, 0, 1, 2]);
        assert_eq!(after(Dialect::Sqlite, &three.keys).1, [0, 1, 2]);
    }

    #[test]
    fn quoted_names_are_quoted_for_the_dialect() {
        let keyset = Keyset::new("\"Profiles\"", "\"profileId\"").text_key();
        assert_eq!(
            keyset.sql(Dialect::Mysql, false).unwrap(),
            "SELECT * FROM `Profiles` WHERE `profileId` > ? ORDER BY `profileId` LIMIT ?"
        );
        assert_eq!(
            keyset.sql(Dialect::Postgres, false).unwrap(),
            "SELECT * FROM \"Profiles\" WHERE \"profileId\" > ? ORDER BY \"profileId\" LIMIT ?"
        );
        let error = Keyset::new("users", "id; DROP TABLE users")
            .sql(Dialect::Sqlite, true)
            .unwrap_err();
        assert!(
            error.to_string().starts_with(
                "Keyset on users: name \"id; DROP TABLE users\" is not a plain identifier"
            ),
            "{error}"
        );
        assert!(Keyset::new("t", "s.id").sql(Dialect::Sqlite, true).is_err());
        assert!(
            Keyset::new("t", Vec::<String>::new())
                .sql(Dialect::Sqlite, true)
                .is_err()
        );
    }

    #[test]
    fn locks_per_dialect() {
        let keyset = Keyset::new("jobs", "id").lock(Lock::ForUpdateSkipLocked);
        assert_eq!(
            keyset.sql(Dialect::Postgres, true).unwrap(),
            "SELECT * FROM jobs ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED"
        );
        assert_eq!(
            keyset.sql(Dialect::Sqlite, true).unwrap(),
            "SELECT * FROM jobs ORDER BY id LIMIT ?"
        );
        assert_eq!(Lock::ForShare.clause(Dialect::Mysql), " LOCK IN SHARE MODE");
        assert_eq!(Lock::ForShare.clause(Dialect::Postgres), " FOR SHARE");
        assert_eq!(
            Lock::ForUpdateNoWait.clause(Dialect::Mysql),
            " FOR UPDATE NOWAIT"
        );
        assert_eq!(Lock::ForUpdate.clause(Dialect::Sqlite), "");
        assert!(Lock::ForShare.check(Dialect::Mysql).is_err());
        assert!(Lock::ForShare.check(Dialect::Postgres).is_ok());
        assert!(Lock::ForUpdateSkipLocked.check(Dialect::Mysql).is_ok());
        assert_eq!(Lock::None.clause(Dialect::Postgres), "");
    }

    #[test]
    fn key_values_are_checked() {
        let rows = Rows::new(
            vec!["id".into(), "code".into()],
            vec![
                vec![Value::Int(1), Value::Text("a".into())],
                vec![Value::Null, Value::Float(1.0)],
            ],
        );
        let int = Keyset::new("t", "id");
        assert_eq!(
            int.key_values(&rows.get(0).unwrap(), &["id".into()])
                .unwrap(),
            [Value::Int(1)]
        );
        assert_eq!(
            int.key_values(&rows.get(1).unwrap(), &["id".into()])
                .unwrap_err(),
            Error::NullKey {
                table: "t".into(),
                key: "id".into()
            }
        );
        let error = int
            .key_values(&rows.get(0).unwrap(), &["code".into()])
            .unwrap_err();
        assert!(
            error.to_string().contains("call Keyset::text_key()"),
            "{error}"
        );
        let error = int
            .key_values(&rows.get(0).unwrap(), &["nope".into()])
            .unwrap_err();
        assert!(
            error.to_string().contains("add it to Keyset::columns"),
            "{error}"
        );
        let both = Keyset::new("t", ["code", "id"]);
        let error = both
            .key_values(&rows.get(1).unwrap(), &["code".into()])
            .unwrap_err();
        assert!(error.to_string().contains("holds a float"), "{error}");
    }

    fn batch(ids: &[i64], size: u64) -> Batch {
        Batch {
            rows: Rows::new(
                vec!["id".into()],
                ids.iter().map(|&i| vec![Value::Int(i)]).collect(),
            ),
            key_values: ids.iter().map(|&i| vec![Value::Int(i)]).collect(),
            size,
            skipped: 0,
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
        let composite = Batch {
            rows: Rows::default(),
            key_values: vec![
                vec![Value::Text("x".into()), Value::Int(1)],
                vec![Value::Text("y".into()), Value::Int(2)],
            ],
            size: 5,
            skipped: 0,
        };
        assert_eq!(composite.keys().unwrap().len(), 4);
        assert_eq!(composite.last_key().unwrap().as_deref(), Some(r#"["y",2]"#));
    }
}
