//! SQLite: the embedded default, through rusqlite on the calling thread.
//!
//! Every statement runs where it is called: a local database answers in
//! microseconds, far less than a hop to another thread and back (sqlx runs
//! SQLite on a worker thread, one hop per statement and per row read, which
//! cost more than the statements themselves; see docs/PERFORMANCE.md). The
//! step's deadline therefore cannot come from a timer beside the call
//! (it could not run while the call blocks); the connection enforces it:
//!
//! * a progress handler every [`PROGRESS_OPS`] virtual-machine instructions
//!   and a busy handler while a statement waits for another connection's
//!   lock stop the statement once the call's deadline passed or the call
//!   was cancelled or aborted (`super::cancel::CallState`);
//! * a watchdog thread per connection calls `sqlite3_interrupt` at the
//!   deadline, which also reaches inside an instruction that checks for
//!   interrupts but runs long (`count(*)` of a table), and a signal's abort
//!   interrupts the same way. Neither ever interrupts the host's own
//!   statements: they run outside a guest call.
//!
//! The statements run on the guest's fiber stack, which the sandbox sizes
//! for them (`sandbox::HOST_CALL_STACK`).
//!
//! The connection keeps the statements it prepared ([`STATEMENT_CACHE`] of
//! them, by text): a migration sends the same few statements batch after
//! batch, so each is parsed once.

use std::ffi::{c_int, c_void};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::OpenFlags;

use super::cancel::CallState;
use super::{Collector, DbError, ResultLimits, Rows, UNSUPPORTED_TYPE_CODE, Value, redact};
use crate::error::{Error, Result};

/// How long a statement waits for another connection's lock before failing
/// with `SQLITE_BUSY` (never past its call's deadline).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many virtual-machine instructions run between two checks of the
/// call's deadline by the progress handler (the watchdog's interrupt
/// reaches inside an instruction that runs long).
const PROGRESS_OPS: c_int = 1000;

/// Prepared statements a session keeps, by SQL text.
pub(super) const STATEMENT_CACHE: usize = 32;

/// A SQLite connection, what its handlers read, and its watchdog.
pub(super) struct SqliteSession {
    /// Declared first: it drops (closing the handle, and with it the
    /// handlers) before `state`, which the busy handler points to.
    db: rusqlite::Connection,
    state: Arc<CallState>,
    /// Interrupts a guest call that runs past its deadline (see
    /// `CallState::watch`); ended and joined before the handle closes.
    watchdog: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SqliteSession {
    fn drop(&mut self) {
        self.state.close();
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
    }
}

/// What `connect` opens: the session, and how to interrupt it from another
/// thread.
pub(super) struct Opened {
    pub(super) session: SqliteSession,
    pub(super) interrupt: Arc<rusqlite::InterruptHandle>,
}

/// Opens `url` (`sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:`, with
/// `mode`, `cache`, `immutable` and `vfs` parameters as sqlx reads them),
/// creating the file if `create` (unless the URL says `mode=ro`). `state` is the
/// connection's call state, which the handlers read.
pub(super) fn connect(url: &str, create: bool, state: Arc<CallState>) -> Result<Opened> {
    let connect_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::Connect {
        url: redact(url),
        source,
    };
    let target = Target::parse(url).map_err(|e| connect_error(e.into()))?;
    // Journal mode and other persistent settings are left as the database has
    // them: dmig must not change a user's database behind their back.
    let db = rusqlite::Connection::open_with_flags(&target.filename, target.flags(create))
        .map_err(|e| connect_error(Box::new(e)))?;
    db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let watched = Arc::clone(&state);
    db.progress_handler(PROGRESS_OPS, Some(move || watched.should_stop()))
        .map_err(|e| connect_error(Box::new(e)))?;
    // SAFETY: the handler's argument is `state`, which the session keeps
    // alive until after the handle is closed (see `SqliteSession`'s fields);
    // `busy_wait` only reads it.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_busy_handler(
            db.handle(),
            Some(busy_wait),
            Arc::as_ptr(&state).cast_mut().cast::<c_void>(),
        )
    };
    if rc != libsqlite3_sys::SQLITE_OK {
        return Err(connect_error(
            format!("cannot set the busy handler (SQLite result code {rc})").into(),
        ));
    }
    // As sqlx did for every SQLite connection: a connection setting, not
    // stored in the database.
    db.execute_batch("PRAGMA foreign_keys = ON")
        .map_err(|e| connect_error(Box::new(e)))?;
    let interrupt = Arc::new(db.get_interrupt_handle());
    let watchdog = std::thread::Builder::new()
        .name("dmig-sqlite-watchdog".into())
        .spawn({
            let state = Arc::clone(&state);
            let interrupt = Arc::clone(&interrupt);
            move || state.watch(&interrupt)
        })
        .map_err(|e| connect_error(format!("cannot start the statement watchdog: {e}").into()))?;
    Ok(Opened {
        session: SqliteSession {
            db,
            state,
            watchdog: Some(watchdog),
        },
        interrupt,
    })
}

/// The file (or URI) and open flags a `sqlite:` URL names, read as sqlx
/// reads it, so URLs that worked keep working.
struct Target {
    filename: String,
    in_memory: bool,
    read_only: bool,
    shared_cache: bool,
    /// `immutable` and `vfs`, which only a URI filename can carry.
    uri_params: Vec<(&'static str, String)>,
}

impl Target {
    fn parse(url: &str) -> std::result::Result<Self, String> {
        let rest = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let (database, params) = match rest.split_once('?') {
            Some((database, params)) => (database, Some(params)),
            None => (rest, None),
        };
        let mut target = Target {
            filename: String::new(),
            in_memory: false,
            read_only: false,
            shared_cache: false,
            uri_params: Vec::new(),
        };
        if database == ":memory:" {
            // sqlx gave each such connection a shared cache of its own
            // name: a private database all the same.
            target.in_memory = true;
        } else {
            target.filename = percent_encoding::percent_decode_str(database)
                .decode_utf8()
                .map_err(|_| "the file name is not valid UTF-8 once percent-decoded".to_owned())?
                .into_owned();
        }
        for (key, value) in url::form_urlencoded::parse(params.unwrap_or("").as_bytes()) {
            match (&*key, &*value) {
                ("mode", "ro") => target.read_only = true,
                ("mode", "rw") => {}
                // Creating is the caller's choice (see `flags`).
                ("mode", "rwc") => {}
                ("mode", "memory") => {
                    target.in_memory = true;
                    target.shared_cache = true;
                }
                ("cache", "private") => target.shared_cache = false,
                ("cache", "shared") => target.shared_cache = true,
                ("immutable", "true" | "1") => {
                    target.uri_params.push(("immutable", "1".into()));
                }
                ("immutable", "false" | "0") => {}
                ("vfs", vfs) => target.uri_params.push(("vfs", vfs.to_owned())),
                ("mode" | "cache" | "immutable", other) => {
                    let known = match &*key {
                        "mode" => "ro, rw, rwc or memory",
                        "cache" => "private or shared",
                        _ => "true, false, 1 or 0",
                    };
                    return Err(format!(
                        "unknown value {other:?} for `{key}` in the URL (use {known})"
                    ));
                }
                _ => {
                    return Err(format!(
                        "unknown query parameter `{key}` in the URL (mode, cache, immutable and vfs are known)"
                    ));
                }
            }
        }
        if target.in_memory && target.filename.is_empty() {
            target.filename = ":memory:".into();
        }
        if !target.uri_params.is_empty() {
            let encoded = percent_encoding::utf8_percent_encode(
                &target.filename,
                percent_encoding::NON_ALPHANUMERIC,
            );
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(target.uri_params.iter().map(|(k, v)| (*k, v.as_str())))
                .finish();
            target.filename = format!("file:{encoded}?{query}");
        }
        Ok(target)
    }

    /// The open flags. Whether a missing file is created is the caller's
    /// `create` alone (a read-only command never creates a database, whatever
    /// the URL's `mode=rwc` says), as with sqlx.
    fn flags(&self, create: bool) -> OpenFlags {
        let mut flags = OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        flags |= if self.read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else if create {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        if self.in_memory {
            flags |= OpenFlags::SQLITE_OPEN_MEMORY;
        }
        flags |= if self.shared_cache {
            OpenFlags::SQLITE_OPEN_SHARED_CACHE
        } else {
            OpenFlags::SQLITE_OPEN_PRIVATE_CACHE
        };
        flags
    }
}

/// SQLite's own busy-timeout schedule (milliseconds to sleep before each
/// retry), as `sqlite3_busy_timeout` uses it; 100 ms from then on.
const BUSY_DELAYS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];

/// The busy handler: sleeps as `sqlite3_busy_timeout` would, up to
/// [`BUSY_TIMEOUT`] in all, but never past the call's deadline nor once the
/// call is cancelled. Returns 0 (give up: `SQLITE_BUSY`) or 1 (try again).
unsafe extern "C" fn busy_wait(state: *mut c_void, count: c_int) -> c_int {
    // SAFETY: `state` is the `CallState` `connect` registered, alive while
    // the handle is open (see `SqliteSession`).
    let state = unsafe { &*state.cast_const().cast::<CallState>() };
    let count = usize::try_from(count).unwrap_or(0);
    let (delay, waited) = match BUSY_DELAYS.get(count) {
        Some(&delay) => (delay, BUSY_DELAYS[..count].iter().sum::<u64>()),
        None => {
            let scheduled: u64 = BUSY_DELAYS.iter().sum();
            let extra = u64::try_from(count - BUSY_DELAYS.len()).unwrap_or(u64::MAX);
            (100, scheduled.saturating_add(extra.saturating_mul(100)))
        }
    };
    let limit = u64::try_from(BUSY_TIMEOUT.as_millis()).unwrap_or(u64::MAX);
    if waited >= limit || state.should_stop() {
        return 0;
    }
    let mut sleep = Duration::from_millis(delay.min(limit - waited));
    if let Some(left) = state.time_left() {
        sleep = sleep.min(left);
    }
    std::thread::sleep(sleep);
    c_int::from(!state.should_stop())
}

/// A rusqlite error as the database's error: SQLite's extended result code
/// and message.
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

impl SqliteSession {
    /// Runs `sql` (no parameters, no rows: `BEGIN`, `COMMIT`, …).
    pub(super) fn raw(&mut self, sql: &str) -> Result<(), DbError> {
        self.db.execute_batch(sql).map_err(db_error)
    }

    /// Fails a guest call that must not start a statement: cancelled, past
    /// its deadline or aborted (the handlers only see statements that run
    /// long enough to be checked).
    fn check_stop(&self) -> Result<(), DbError> {
        if self.state.should_stop() {
            return Err(super::cancel::cancelled_error());
        }
        Ok(())
    }

    /// Whether a transaction is open (SQLite ends one by itself when a
    /// write in it is interrupted, or fails for want of disk or memory).
    pub(super) fn in_transaction(&self) -> bool {
        !self.db.is_autocommit()
    }

    pub(super) fn query(
        &mut self,
        sql: &str,
        params: &[Value],
        limits: ResultLimits,
    ) -> Result<Rows, DbError> {
        self.check_stop()?;
        let mut statement = self.db.prepare_cached(sql).map_err(db_error)?;
        bind(&mut statement, params)?;
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
    }

    /// Runs one statement; returns (rows changed, the last inserted rowid).
    pub(super) fn execute(&mut self, sql: &str, params: &[Value]) -> Result<(u64, i64), DbError> {
        self.check_stop()?;
        let mut statement = self.db.prepare_cached(sql).map_err(db_error)?;
        bind(&mut statement, params)?;
        let changed = run_to_end(&self.db, &mut statement)?;
        Ok((changed, self.db.last_insert_rowid()))
    }

    /// Runs one statement per parameter set, prepared once; stops at the
    /// first error, or before the next set once the call is cancelled or
    /// past its deadline. Returns the rows changed.
    pub(super) fn execute_many(
        &mut self,
        sql: &str,
        param_sets: &[Vec<Value>],
    ) -> Result<u64, DbError> {
        let mut statement = self.db.prepare_cached(sql).map_err(db_error)?;
        let mut changed = 0;
        for (i, params) in param_sets.iter().enumerate() {
            // The flags every set, the clock (a system call's worth) every
            // 64: sets are microseconds each.
            if self.state.is_stopped() || (i % 64 == 0 && self.state.should_stop()) {
                return Err(super::cancel::cancelled_error());
            }
            bind(&mut statement, params)?;
            changed += run_to_end(&self.db, &mut statement)?;
        }
        Ok(changed)
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
    use std::time::{Duration, Instant};

    use crate::db::{Connection, UNSUPPORTED_TYPE_CODE, Value};

    /// A URL for database file `t.db` in a new temporary directory, which
    /// goes (file and all) when the returned directory drops.
    fn temp_db() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        (dir, url)
    }

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
    /// calls; and a call stopped at its deadline mid-statement leaves the
    /// connection working.
    #[tokio::test]
    async fn kept_statements_follow_the_schema_and_survive_a_stopped_call() {
        let (_dir, url) = temp_db();
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

        // A call past its deadline: its statement is stopped by the
        // progress handler, and the connection and its kept statements
        // work on.
        let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                       SELECT count(*) FROM n";
        let canceller = conn.canceller();
        let started = Instant::now();
        canceller.begin_call_until(Some(started + Duration::from_millis(200)));
        let error = conn.query(endless, &[]).await.unwrap_err();
        canceller.end_call();
        assert_eq!(
            error.code.as_deref(),
            Some("9"),
            "SQLITE_INTERRUPT: {error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(conn.query(all, &[]).await.unwrap().rows.len(), 3);
        assert_eq!(conn.execute_many(insert, &sets[..0]).await.unwrap(), 0);
    }

    /// A statement waiting for another connection's write lock waits until
    /// its call's deadline, not the whole busy timeout, and fails as busy.
    #[tokio::test]
    async fn a_lock_wait_ends_at_the_deadline() {
        let (_dir, url) = temp_db();
        let mut holder = Connection::connect(&url).await.unwrap();
        holder
            .execute("CREATE TABLE t (k INTEGER)", &[])
            .await
            .unwrap();
        holder.begin().await.unwrap();
        holder
            .execute("INSERT INTO t VALUES (1)", &[])
            .await
            .unwrap();

        let mut waiter = Connection::connect(&url).await.unwrap();
        let canceller = waiter.canceller();
        let started = Instant::now();
        canceller.begin_call_until(Some(started + Duration::from_millis(300)));
        let error = waiter
            .execute("INSERT INTO t VALUES (2)", &[])
            .await
            .unwrap_err();
        canceller.end_call();
        let waited = started.elapsed();
        assert!(
            error.is_transient(crate::db::Dialect::Sqlite),
            "busy: {error}"
        );
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        // Once the lock is free, the same connection writes.
        holder.commit().await.unwrap();
        assert_eq!(
            waiter
                .execute("INSERT INTO t VALUES (2)", &[])
                .await
                .unwrap(),
            1
        );
    }

    /// An abort from another thread stops the running statement at once,
    /// and no later guest call runs; the host's own statements still do.
    #[tokio::test]
    async fn an_abort_from_another_thread_stops_the_statement() {
        let mut conn = Connection::connect("sqlite::memory:").await.unwrap();
        let canceller = conn.canceller();
        canceller.begin_call_until(Some(Instant::now() + Duration::from_secs(60)));
        let aborter = std::thread::spawn({
            let canceller = canceller.clone();
            move || {
                std::thread::sleep(Duration::from_millis(200));
                canceller.abort();
            }
        });
        let started = Instant::now();
        let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                       SELECT count(*) FROM n";
        let error = conn.query(endless, &[]).await.unwrap_err();
        aborter.join().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(error.code.as_deref(), Some("9"), "{error}");
        assert!(
            conn.query("SELECT 1", &[]).await.is_err(),
            "a guest call after the abort"
        );
        canceller.end_call();
        canceller.begin_call_until(Some(Instant::now() + Duration::from_secs(60)));
        assert!(
            conn.query("SELECT 1", &[]).await.is_err(),
            "a later guest call"
        );
        canceller.end_call();
        conn.begin().await.unwrap();
        conn.rollback().await.unwrap();
    }

    /// URLs read as sqlx read them, so URLs that worked keep working.
    #[test]
    fn urls_name_the_file_and_its_flags() {
        use super::Target;
        use rusqlite::OpenFlags as F;
        let memory = Target::parse("sqlite::memory:").unwrap();
        assert_eq!(memory.filename, ":memory:");
        assert!(memory.flags(true).contains(F::SQLITE_OPEN_MEMORY));
        let ro = Target::parse("sqlite://dir/a%20b.db?mode=ro").unwrap();
        assert_eq!(ro.filename, "dir/a b.db");
        assert!(ro.flags(true).contains(F::SQLITE_OPEN_READ_ONLY));
        assert!(!ro.flags(true).contains(F::SQLITE_OPEN_CREATE));
        let existing = Target::parse("sqlite:app.db").unwrap();
        assert_eq!(existing.filename, "app.db");
        assert!(!existing.flags(false).contains(F::SQLITE_OPEN_CREATE));
        assert!(existing.flags(true).contains(F::SQLITE_OPEN_CREATE));
        let rwc = Target::parse("sqlite:///abs/app.db?mode=rwc&cache=shared").unwrap();
        assert_eq!(rwc.filename, "/abs/app.db");
        assert!(
            rwc.flags(true)
                .contains(F::SQLITE_OPEN_CREATE | F::SQLITE_OPEN_SHARED_CACHE)
        );
        assert!(!rwc.flags(false).contains(F::SQLITE_OPEN_CREATE));
        let immutable = Target::parse("sqlite:///abs/a b.db?immutable=true").unwrap();
        assert_eq!(immutable.filename, "file:%2Fabs%2Fa%20b%2Edb?immutable=1");
        let error = Target::parse("sqlite://app.db?journal=wal").err().unwrap();
        assert!(error.contains("`journal`"), "{error}");
        let error = Target::parse("sqlite://app.db?mode=rx").err().unwrap();
        assert!(error.contains("\"rx\" for `mode`"), "{error}");
    }

    /// A database file that does not exist is not created by a connection
    /// that must not create one, and the error names the file.
    #[tokio::test]
    async fn a_missing_file_is_an_error_without_create() {
        let (dir, url) = temp_db();
        let error = Connection::connect_existing(&url).await.unwrap_err();
        assert!(error.to_string().contains("unable to open"), "{error}");
        assert!(!dir.path().join("t.db").exists());
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
