//! SQLite: the embedded default.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, SqliteConnection};

use super::{Collector, DbError, ResultLimits, Rows, UNSUPPORTED_TYPE_CODE, Value, redact};
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

// Statements run on the connection's own handle through rusqlite, one call
// per `query`, `execute` or whole `execute_many`, on tokio's blocking pool:
// sqlx runs each SQLite statement on its worker thread, one hop there and
// back per statement (and per row read), which cost more than the statement
// itself. `lock_handle` keeps that worker off the handle meanwhile.
// Connecting and transactions (`BEGIN`, `COMMIT`) stay with sqlx. The call
// stays a future that yields, so the step's deadline can fire and interrupt
// the statement (`sqlite3_interrupt`, see `super::cancel`).
//
// The rusqlite connection on the handle lives as long as the session and
// keeps the statements it prepared ([`STATEMENT_CACHE`] of them, by text):
// a migration sends the same few statements batch after batch, so each is
// parsed once (on the benchmark this was within the machine's noise; the
// host's per-step cost is elsewhere, see docs/PERFORMANCE.md).

/// Prepared statements a session keeps, by SQL text.
const STATEMENT_CACHE: usize = 32;

/// A SQLite connection: sqlx's, and rusqlite's on the same handle.
pub(super) struct SqliteSession {
    /// rusqlite's view of the handle with its prepared statements; taken
    /// while a call uses it. Declared first so it drops (finalizing its
    /// statements) before `conn` closes the handle.
    direct: Option<rusqlite::Connection>,
    pub(super) conn: SqliteConnection,
}

impl SqliteSession {
    pub(super) fn new(conn: SqliteConnection) -> Self {
        SqliteSession { direct: None, conn }
    }
}

impl Drop for SqliteSession {
    /// Finalizes the kept statements while sqlx's worker is off the handle:
    /// a command the worker was given before (a `ROLLBACK` whose caller
    /// gave up waiting, say) may still be running on it. A worker that is
    /// gone cannot use the handle any more.
    fn drop(&mut self) {
        if let Some(direct) = self.direct.take() {
            let locked = futures_executor::block_on(self.conn.lock_handle());
            drop(direct);
            drop(locked);
        }
    }
}

/// The connection's raw handle, sent to the blocking thread that uses it.
#[derive(Clone, Copy)]
struct Handle(std::ptr::NonNull<libsqlite3_sys::sqlite3>);

// SAFETY: SQLite handles may be used from any thread, one thread at a time;
// `with_handle` makes sure only its blocking task uses it meanwhile.
unsafe impl Send for Handle {}

/// Waits, if the call is dropped before its blocking task finished, for
/// that task to finish (interrupting its statement first) and drops the
/// rusqlite connection it hands back (finalizing its statements), so the
/// handle is never released to sqlx's worker while the task, or a statement
/// of its, may still use it.
struct Finished {
    handle: Handle,
    done: Option<std::sync::mpsc::Receiver<rusqlite::Connection>>,
}

impl Drop for Finished {
    fn drop(&mut self) {
        use std::sync::mpsc::RecvTimeoutError;
        let Some(done) = self.done.take() else {
            return;
        };
        // Interrupted again and again: SQLite forgets an interrupt that
        // comes before the task's statement has started.
        loop {
            // SAFETY: the handle is open: `with_handle`'s lock on it is
            // released only after this guard.
            unsafe { libsqlite3_sys::sqlite3_interrupt(self.handle.0.as_ptr()) };
            match done.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(direct) => return drop(direct),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

/// Hands the rusqlite connection back to the caller when the task ends,
/// also when `work` panics: its statements are then finalized by the
/// caller, while the handle is still locked, never on the task's thread
/// after the caller was told the task is done.
struct HandBack {
    direct: Option<rusqlite::Connection>,
    finished: std::sync::mpsc::SyncSender<rusqlite::Connection>,
}

impl Drop for HandBack {
    fn drop(&mut self) {
        if let Some(direct) = self.direct.take() {
            let _ = self.finished.send(direct);
        }
    }
}

/// Runs `work` on the session's handle, through the session's rusqlite
/// connection (one that does not own, and so never closes, the handle), on
/// tokio's blocking pool.
async fn with_handle<T: Send + 'static>(
    session: &mut SqliteSession,
    work: impl FnOnce(&rusqlite::Connection) -> Result<T, DbError> + Send + 'static,
) -> Result<T, DbError> {
    let mut locked = session.conn.lock_handle().await?;
    let handle = Handle(locked.as_raw_handle());
    let direct = match session.direct.take() {
        Some(direct) => direct,
        None => {
            // SAFETY: the handle is open while the session lives, and the
            // session drops this connection before it closes the handle.
            let direct = unsafe { rusqlite::Connection::from_handle(handle.0.as_ptr()) }
                .map_err(db_error)?;
            direct.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            direct
        }
    };
    let (finished, done) = std::sync::mpsc::sync_channel(1);
    let mut guard = Finished {
        handle,
        done: Some(done),
    };
    // SAFETY (of the task's use of the handle): the handle is open while
    // `locked` lives, which `guard` outlives the task; the lock keeps sqlx's
    // worker off it meanwhile.
    let task = tokio::task::spawn_blocking(move || {
        let back = HandBack {
            direct: Some(direct),
            finished,
        };
        work(back.direct.as_ref().expect("set above"))
    });
    let result = task.await.map_err(|e| DbError {
        number: None,
        code: None,
        message: format!("the SQLite call failed: {e}"),
    });
    // Finished: keep the connection and its statements for the next call.
    session.direct = guard.done.take().and_then(|done| done.try_recv().ok());
    drop(guard);
    drop(locked);
    result?
}

/// A rusqlite error as the database's error: SQLite's extended result code
/// and message, as sqlx reports them.
fn db_error(error: rusqlite::Error) -> DbError {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => DbError {
            number: None,
            code: Some(failure.extended_code.to_string()),
            message: message.unwrap_or_else(|| failure.to_string()),
        },
        other => DbError {
            number: None,
            code: None,
            message: other.to_string(),
        },
    }
}

/// Binds `params` to `statement`'s `?` markers, in order.
fn bind(statement: &mut rusqlite::Statement<'_>, params: &[Value]) -> Result<(), DbError> {
    use rusqlite::types::ToSqlOutput;
    use rusqlite::types::ValueRef as Raw;
    let expected = statement.parameter_count();
    if params.len() != expected {
        return Err(DbError {
            number: None,
            code: None,
            message: format!(
                "the statement has {expected} parameter{}, but {} {} given",
                if expected == 1 { "" } else { "s" },
                params.len(),
                if params.len() == 1 { "was" } else { "were" }
            ),
        });
    }
    for (i, param) in params.iter().enumerate() {
        let raw = match param {
            Value::Null => Raw::Null,
            Value::Boolean(b) => Raw::Integer(i64::from(*b)),
            Value::Int(n) => Raw::Integer(*n),
            Value::Float(f) => Raw::Real(*f),
            Value::Text(t) => Raw::Text(t.as_bytes()),
            Value::Blob(b) => Raw::Blob(b),
        };
        statement
            .raw_bind_parameter(i + 1, ToSqlOutput::Borrowed(raw))
            .map_err(db_error)?;
    }
    Ok(())
}

pub(super) async fn query(
    session: &mut SqliteSession,
    sql: &str,
    params: &[Value],
    limits: ResultLimits,
) -> Result<Rows, DbError> {
    let (sql, params) = (sql.to_owned(), params.to_vec());
    with_handle(session, move |db| {
        let mut statement = db.prepare_cached(&sql).map_err(db_error)?;
        bind(&mut statement, &params)?;
        // Names and width come from the statement once it has stepped: a
        // kept statement is compiled again at its first step if the schema
        // changed since, and only then says what it returns now.
        let names = |statement: &rusqlite::Statement<'_>| -> Vec<String> {
            statement
                .column_names()
                .into_iter()
                .map(str::to_owned)
                .collect()
        };
        let mut columns: Option<Vec<String>> = None;
        let mut rows = Collector::new(limits);
        let mut raw_rows = statement.raw_query();
        while let Some(row) = raw_rows.next().map_err(db_error)? {
            rows.room()?;
            let columns = columns.get_or_insert_with(|| names(row.as_ref()));
            let mut values = Vec::with_capacity(columns.len());
            for (i, column) in columns.iter().enumerate() {
                let raw = row.get_ref(i).map_err(db_error)?;
                values.push(decode_value(column, raw)?);
            }
            rows.push(values)?;
        }
        drop(raw_rows);
        let columns = columns.unwrap_or_else(|| names(&statement));
        let rows = rows.rows;
        Ok(Rows { columns, rows })
    })
    .await
}

/// Runs one statement; returns (rows changed, the last inserted rowid).
pub(super) async fn execute(
    session: &mut SqliteSession,
    sql: &str,
    params: &[Value],
) -> Result<(u64, i64), DbError> {
    let (sql, params) = (sql.to_owned(), params.to_vec());
    with_handle(session, move |db| {
        let mut statement = db.prepare_cached(&sql).map_err(db_error)?;
        bind(&mut statement, &params)?;
        let changed = run_to_end(db, &mut statement)?;
        Ok((changed, db.last_insert_rowid()))
    })
    .await
}

/// Runs one statement per parameter set, prepared once, all in one call on
/// the handle; stops at the first error, or before the next set once
/// `cancelled` says the step ran out of time. Returns the rows changed.
pub(super) async fn execute_many(
    session: &mut SqliteSession,
    sql: &str,
    param_sets: &[Vec<Value>],
    cancelled: std::sync::Arc<dyn Fn() -> bool + Send + Sync>,
) -> Result<u64, DbError> {
    let (sql, param_sets) = (sql.to_owned(), param_sets.to_vec());
    with_handle(session, move |db| {
        let mut statement = db.prepare_cached(&sql).map_err(db_error)?;
        let mut changed = 0;
        for params in &param_sets {
            if cancelled() {
                return Err(super::cancel::cancelled_error());
            }
            bind(&mut statement, params)?;
            changed += run_to_end(db, &mut statement)?;
        }
        Ok(changed)
    })
    .await
}

/// Steps `statement` until it is done, reading and dropping any rows;
/// returns the rows it changed: `sqlite3_changes` if the connection's total
/// count moved, else none (`sqlite3_changes` keeps the count of the last
/// statement that changed rows, so after a SELECT or DDL it would be stale).
fn run_to_end(
    db: &rusqlite::Connection,
    statement: &mut rusqlite::Statement<'_>,
) -> Result<u64, DbError> {
    let before = db.total_changes();
    let mut rows = statement.raw_query();
    while rows.next().map_err(db_error)?.is_some() {}
    drop(rows);
    Ok(if db.total_changes() == before {
        0
    } else {
        db.changes()
    })
}
/// Decodes by each value's storage class, which in SQLite belongs to the value,
/// not the column.
///
/// # Errors
///
/// [`UNSUPPORTED_TYPE_CODE`] for TEXT that is not valid UTF-8 (SQLite stores
/// whatever bytes it is given): as a blob it would go back as a BLOB, a
/// different value, so the guest is told to read it as one explicitly.
fn decode_value(column: &str, raw: rusqlite::types::ValueRef<'_>) -> Result<Value, DbError> {
    use rusqlite::types::ValueRef as Raw;
    Ok(match raw {
        Raw::Null => Value::Null,
        Raw::Integer(n) => Value::Int(n),
        Raw::Real(f) => Value::Float(f),
        Raw::Blob(b) => Value::Blob(b.to_vec()),
        Raw::Text(t) => Value::Text(
            std::str::from_utf8(t)
                .map_err(|_| not_utf8(column))?
                .to_owned(),
        ),
    })
}

fn not_utf8(column: &str) -> DbError {
    DbError {
        number: None,
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

    /// Kept statements run again as their text says now: after the table
    /// they read changed shape (the columns too), after a rollback, after
    /// more distinct texts than the cache keeps; they hold no lock between
    /// calls; and a call dropped mid-statement is interrupted and leaves the
    /// connection working.
    #[tokio::test]
    async fn kept_statements_follow_the_schema_and_survive_a_dropped_call() {
        let file = std::env::temp_dir().join(format!("dmig-kept-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let url = format!("sqlite://{}", file.display());
        let mut conn = Connection::connect(&url).await.unwrap();
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)", &[])
            .await
            .unwrap();
        let insert = "INSERT INTO t (k, v) VALUES (?, ?)";
        let sets: Vec<Vec<Value>> = (1..=3)
            .map(|k| vec![Value::Int(k), Value::Text(format!("v{k}"))])
            .collect();
        assert_eq!(conn.execute_many(insert, &sets).await.unwrap(), 3);
        let all = "SELECT * FROM t ORDER BY k";
        assert_eq!(conn.query(all, &[]).await.unwrap().columns, ["k", "v"]);
        conn.execute("ALTER TABLE t ADD COLUMN w INTEGER DEFAULT 7", &[])
            .await
            .unwrap();
        let rows = conn.query(all, &[]).await.unwrap();
        assert_eq!(rows.columns, ["k", "v", "w"]);
        assert_eq!(
            rows.rows[2],
            [Value::Int(3), Value::Text("v3".into()), Value::Int(7)]
        );

        conn.begin().await.unwrap();
        conn.execute(insert, &[Value::Int(4), Value::Text("v4".into())])
            .await
            .unwrap();
        conn.rollback().await.unwrap();
        for n in 0..(super::STATEMENT_CACHE as i64 + 8) {
            let rows = conn
                .query(&format!("SELECT count(*) + {n} AS c FROM t"), &[])
                .await
                .unwrap();
            assert_eq!(rows.rows, [[Value::Int(3 + n)]]);
        }
        // No kept statement holds a read lock: another connection commits a
        // write (it would wait out its busy timeout and fail otherwise).
        let mut other = Connection::connect(&url).await.unwrap();
        other
            .execute("UPDATE t SET w = 8 WHERE k = 1", &[])
            .await
            .unwrap();
        drop(other);
        assert_eq!(
            conn.query("SELECT w FROM t WHERE k = 1", &[])
                .await
                .unwrap()
                .rows,
            [[Value::Int(8)]]
        );

        // A call dropped while its statement runs: the statement is
        // interrupted, the kept statements go with the call, and the
        // connection works on.
        let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                       SELECT count(*) FROM n";
        let dropped = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            conn.query(endless, &[]),
        )
        .await;
        assert!(dropped.is_err(), "the endless query ended: {dropped:?}");
        assert_eq!(conn.query(all, &[]).await.unwrap().rows.len(), 3);
        assert_eq!(conn.execute_many(insert, &sets[..0]).await.unwrap(), 0);
        drop(conn);
        let _ = std::fs::remove_file(&file);
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
