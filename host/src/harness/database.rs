//! Throwaway databases for tests: a SQLite file in a temporary directory, or
//! a fresh database on a server, dropped when the test ends. Fixtures go in
//! with [`TestDatabase::execute_script`]; assertions read with
//! [`TestDatabase::rows`] and friends.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlparser::tokenizer::{Token, Tokenizer};

use super::{HarnessError, Result, runtime};
use crate::db::{Connection, Dialect, Rows, Value};

/// One database for one test. Dropping it deletes it (the SQLite file's
/// directory, or the server database) unless it was opened with
/// [`TestDatabase::existing`].
pub struct TestDatabase {
    url: String,
    dialect: Dialect,
    conn: Mutex<Option<Connection>>,
    /// The server URL and the name of the database to drop.
    server: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("url", &crate::db::redact(&self.url))
            .finish()
    }
}

impl TestDatabase {
    /// A new, empty SQLite database in a temporary directory.
    ///
    /// # Errors
    ///
    /// The directory or the database cannot be created.
    pub fn sqlite() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("dmig-harness-").tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let conn = runtime().block_on(Connection::connect(&url))?;
        Ok(TestDatabase {
            url,
            dialect: Dialect::Sqlite,
            conn: Mutex::new(Some(conn)),
            server: None,
            _dir: Some(dir),
        })
    }

    /// A new, empty database created on the server at `server_url` (a
    /// `postgres://` or `mysql://` URL naming any database the user can
    /// connect to), dropped again when this value is dropped. MySQL databases
    /// are created with `CHARACTER SET utf8mb4` and the server's default
    /// collation for it.
    ///
    /// # Errors
    ///
    /// The server cannot be reached, or the user may not create databases.
    pub fn fresh_on(server_url: &str) -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dialect = Dialect::from_url(server_url)?;
        let name = format!(
            "dmig_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_micros() % 1_000_000
        );
        let create = match dialect {
            Dialect::Mysql => format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"),
            _ => format!("CREATE DATABASE {name}"),
        };
        runtime().block_on(async {
            let mut server = Connection::connect(server_url).await?;
            server
                .execute(&create, &[])
                .await
                .map_err(|source| HarnessError::Sql {
                    sql: create.clone(),
                    source,
                })?;
            Ok::<_, HarnessError>(())
        })?;
        let url = replace_database(server_url, &name);
        let conn = runtime().block_on(Connection::connect(&url))?;
        Ok(TestDatabase {
            url,
            dialect,
            conn: Mutex::new(Some(conn)),
            server: Some((server_url.to_owned(), name)),
            _dir: None,
        })
    }

    /// A fresh database on the server named by environment variable `var`
    /// (see [`TestDatabase::fresh_on`]), or `None`, printing that the test is
    /// skipped, when the variable is not set.
    ///
    /// # Errors
    ///
    /// As [`TestDatabase::fresh_on`].
    pub fn from_env(var: &str) -> Result<Option<Self>> {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => Self::fresh_on(&url).map(Some),
            _ => {
                println!("skipped: {var} is not set");
                Ok(None)
            }
        }
    }

    /// The database at `url` as it is, kept when this value is dropped: for
    /// running a test against a copy of real data.
    ///
    /// # Errors
    ///
    /// The database cannot be reached.
    pub fn existing(url: &str) -> Result<Self> {
        let conn = runtime().block_on(Connection::connect(url))?;
        Ok(TestDatabase {
            url: url.to_owned(),
            dialect: conn.dialect(),
            conn: Mutex::new(Some(conn)),
            server: None,
            _dir: None,
        })
    }

    /// The URL the migration runs against.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which kind of database this is, for fixtures whose DDL differs.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The column type of an auto-incrementing integer primary key in this
    /// dialect, for fixtures: `INTEGER PRIMARY KEY` (SQLite), `BIGSERIAL
    /// PRIMARY KEY` (PostgreSQL), `BIGINT AUTO_INCREMENT PRIMARY KEY`
    /// (MySQL).
    pub fn auto_id(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "INTEGER PRIMARY KEY",
            Dialect::Postgres => "BIGSERIAL PRIMARY KEY",
            Dialect::Mysql => "BIGINT AUTO_INCREMENT PRIMARY KEY",
        }
    }

    fn with_conn<T>(
        &self,
        f: impl AsyncFnOnce(&mut Connection) -> std::result::Result<T, crate::db::DbError>,
        sql: &str,
    ) -> Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let conn = guard
            .as_mut()
            .expect("the connection lives as long as the database");
        runtime()
            .block_on(f(conn))
            .map_err(|source| HarnessError::Sql {
                sql: sql.to_owned(),
                source,
            })
    }

    /// Runs one statement with `?` placeholders; returns the rows affected.
    ///
    /// # Errors
    ///
    /// [`HarnessError::Sql`] naming the statement.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        self.with_conn(async |c| c.execute(sql, params).await, sql)
    }

    /// Runs every statement of `script` in order (fixtures: `CREATE TABLE`,
    /// `INSERT`, ...). Statements are split at `;` outside literals, quoted
    /// names and comments, as this database's SQL reads them.
    ///
    /// # Errors
    ///
    /// [`HarnessError::Sql`] naming the first statement that failed.
    pub fn execute_script(&self, script: &str) -> Result<()> {
        for statement in split_statements(self.dialect, script) {
            self.execute(&statement, &[])?;
        }
        Ok(())
    }

    /// Runs a query with `?` placeholders and returns its rows.
    ///
    /// # Errors
    ///
    /// [`HarnessError::Sql`] naming the statement.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Rows> {
        self.with_conn(async |c| c.query(sql, params).await, sql)
    }

    /// Every row of `sql`, decoded as `T` (a tuple of [`FromValue`] types).
    ///
    /// # Errors
    ///
    /// The query fails, or a value does not decode ([`HarnessError::Decode`]
    /// naming the column and the value).
    pub fn rows<T: FromRow>(&self, sql: &str) -> Result<Vec<T>> {
        let rows = self.query(sql, &[])?;
        rows.rows
            .iter()
            .map(|row| {
                T::from_row(&rows.columns, row).map_err(|reason| HarnessError::Decode {
                    sql: sql.to_owned(),
                    reason,
                })
            })
            .collect()
    }

    /// The first column of every row of `sql`.
    ///
    /// # Errors
    ///
    /// As [`TestDatabase::rows`].
    pub fn column<T: FromValue>(&self, sql: &str) -> Result<Vec<T>> {
        Ok(self.rows::<(T,)>(sql)?.into_iter().map(|(v,)| v).collect())
    }

    /// The one value of a query returning one row of one column (a count).
    ///
    /// # Errors
    ///
    /// As [`TestDatabase::rows`], or [`HarnessError::Decode`] when the query
    /// does not return exactly one row.
    pub fn scalar<T: FromValue>(&self, sql: &str) -> Result<T> {
        let mut values = self.column::<T>(sql)?;
        if values.len() != 1 {
            return Err(HarnessError::Decode {
                sql: sql.to_owned(),
                reason: format!("expected one row, got {}", values.len()),
            });
        }
        Ok(values.remove(0))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Close ours before dropping the database.
        let conn = self
            .conn
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(conn);
        if let Some((server, name)) = &self.server {
            let sql = match self.dialect {
                Dialect::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                _ => format!("DROP DATABASE IF EXISTS {name}"),
            };
            let dropped = runtime().block_on(async {
                let mut conn = Connection::connect(server)
                    .await
                    .map_err(|e| e.to_string())?;
                conn.execute(&sql, &[]).await.map_err(|e| e.to_string())
            });
            if let Err(e) = dropped {
                eprintln!("warning: could not drop test database {name}: {e}");
            }
        }
    }
}

/// `url` with its database path replaced by `name`, keeping any query.
fn replace_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    format!("{scheme}://{authority}/{name}{query}")
}

/// `script` cut into statements at the `;` tokens of `dialect`'s SQL, each
/// exactly as written, blank ones left out.
pub(crate) fn split_statements(dialect: Dialect, script: &str) -> Vec<String> {
    use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect, SQLiteDialect};
    let tokens = match dialect {
        Dialect::Sqlite => Tokenizer::new(&SQLiteDialect {}, script).tokenize_with_location(),
        Dialect::Postgres => Tokenizer::new(&PostgreSqlDialect {}, script).tokenize_with_location(),
        Dialect::Mysql => Tokenizer::new(&MySqlDialect {}, script).tokenize_with_location(),
    };
    let Ok(tokens) = tokens else {
        // Leave it to the database to say what is wrong with it.
        return vec![script.trim().to_owned()];
    };
    let offsets = line_offsets(script);
    let mut statements = Vec::new();
    let mut start = 0;
    for token in tokens {
        if token.token == Token::SemiColon {
            let loc = token.span.start;
            let at = byte_offset(script, &offsets, loc.line, loc.column);
            statements.push(script[start..at].to_owned());
            start = at + 1;
        }
    }
    statements.push(script[start..].to_owned());
    statements
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn line_offsets(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// The byte offset of 1-based `line` and character `column`.
fn byte_offset(text: &str, offsets: &[usize], line: u64, column: u64) -> usize {
    let line_start = offsets[(line.max(1) - 1) as usize];
    text[line_start..]
        .char_indices()
        .nth((column.max(1) - 1) as usize)
        .map_or(text.len(), |(i, _)| line_start + i)
}

/// A Rust value a test reads out of a result cell.
pub trait FromValue: Sized {
    /// Converts `value`, or says why it cannot.
    fn from_value(value: &Value) -> std::result::Result<Self, String>;
}

fn mismatch(value: &Value, wanted: &str) -> String {
    format!("{value:?} cannot be read as {wanted}")
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Int(v) => Ok(*v),
            Value::Boolean(b) => Ok(i64::from(*b)),
            // Decimal sums (PostgreSQL's sum of bigint) arrive as text.
            Value::Text(t) => t.parse().map_err(|_| mismatch(value, "i64")),
            _ => Err(mismatch(value, "i64")),
        }
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Float(v) => Ok(*v),
            Value::Int(v) => Ok(*v as f64),
            Value::Text(t) => t.parse().map_err(|_| mismatch(value, "f64")),
            _ => Err(mismatch(value, "f64")),
        }
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Boolean(b) => Ok(*b),
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            _ => Err(mismatch(value, "bool")),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Text(t) => Ok(t.clone()),
            _ => Err(mismatch(value, "String")),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(t) => Ok(t.as_bytes().to_vec()),
            _ => Err(mismatch(value, "Vec<u8>")),
        }
    }
}

impl FromValue for Value {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        Ok(value.clone())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// A row a test reads: a tuple of [`FromValue`] types, one per column.
pub trait FromRow: Sized {
    /// Converts one row, or says which column failed and why.
    fn from_row(columns: &[String], row: &[Value]) -> std::result::Result<Self, String>;
}

macro_rules! tuple_from_row {
    ($($n:literal => $t:ident),+) => {
        impl<$($t: FromValue),+> FromRow for ($($t,)+) {
            fn from_row(columns: &[String], row: &[Value]) -> std::result::Result<Self, String> {
                let expected = [$($n),+].len();
                if row.len() != expected {
                    return Err(format!("expected {expected} columns, got {} ({})", row.len(), columns.join(", ")));
                }
                Ok(($(
                    $t::from_value(&row[$n]).map_err(|e| format!("column {}: {e}", columns[$n]))?,
                )+))
            }
        }
    };
}

tuple_from_row!(0 => A);
tuple_from_row!(0 => A, 1 => B);
tuple_from_row!(0 => A, 1 => B, 2 => C);
tuple_from_row!(0 => A, 1 => B, 2 => C, 3 => D);
tuple_from_row!(0 => A, 1 => B, 2 => C, 3 => D, 4 => E);
tuple_from_row!(0 => A, 1 => B, 2 => C, 3 => D, 4 => E, 5 => F);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_at_semicolons_outside_literals_and_comments() {
        let script = "CREATE TABLE t (a TEXT);\n-- a; comment\nINSERT INTO t VALUES ('x;y'), ('é;');\n\n  /* ; */ INSERT INTO t VALUES ('z');  ";
        assert_eq!(
            split_statements(Dialect::Sqlite, script),
            [
                "CREATE TABLE t (a TEXT)",
                "-- a; comment\nINSERT INTO t VALUES ('x;y'), ('é;')",
                "/* ; */ INSERT INTO t VALUES ('z')",
            ]
        );
        assert_eq!(
            split_statements(Dialect::Postgres, "SELECT $$a;b$$; SELECT 1;"),
            ["SELECT $$a;b$$", "SELECT 1"]
        );
    }

    #[test]
    fn server_urls_get_the_new_database() {
        assert_eq!(
            replace_database("postgres://u:p@h:5432/test?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(replace_database("mysql://root@h", "x"), "mysql://root@h/x");
    }
}
