//! Stopping a statement from outside its connection, so the step timeout is
//! the host's and never depends on a server setting the guest could change.
//!
//! * SQLite: the connection's progress and busy handlers stop a statement
//!   whose call is past its deadline or cancelled (see `super::sqlite`), and
//!   `sqlite3_interrupt` stops one from another thread.
//! * PostgreSQL: `pg_cancel_backend` from a short-lived second connection,
//!   opened with the same options. sqlx keeps the cancel key of the
//!   protocol's CancelRequest to itself, so the backend is named by its pid
//!   and start time, both read when the connection was opened (the start time
//!   makes sure a reused pid is never signalled).
//! * MySQL/MariaDB: `KILL QUERY <id>` from a second connection, with the id
//!   `CONNECTION_ID()` gave when the connection was opened.
//!
//! None of these needs a privilege beyond logging in: PostgreSQL lets a role
//! signal its own backends, MySQL and MariaDB let an account kill its own
//! threads. If a cancelled statement still has not returned after a grace
//! period, the connection is given up: its session is terminated
//! (`pg_terminate_backend`, `KILL CONNECTION`), and every later call on it
//! fails at once, so nothing waits on it (the server rolls back the open
//! transaction of a session that ends).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection as _, MySqlConnection, PgConnection};
use tokio::time::Instant;

use super::DbError;

/// How long a statement has, after its cancel was sent, to return before its
/// connection is given up.
pub(crate) const CANCEL_GRACE: Duration = Duration::from_millis(500);

/// How often the cancel is sent again while the statement runs on: a cancel
/// that reaches the server between two statements of an `execute_many`
/// cancels nothing.
const CANCEL_REPEAT: Duration = Duration::from_millis(100);

/// How long the caller waits for a given-up connection's session to be
/// ended before going on (the termination itself goes on in the background).
const TERMINATE_GRACE: Duration = Duration::from_millis(300);

/// How long ending a given-up connection's session may take in all.
const TERMINATE_LIMIT: Duration = Duration::from_secs(10);

/// The error every call on a given-up connection fails with.
pub(super) fn abandoned_error() -> DbError {
    DbError {
        number: None,
        code: None,
        message: "the connection was given up after a statement on it did not stop when cancelled"
            .into(),
    }
}

/// The error `execute_many` stops with once its call was cancelled.
pub(super) fn cancelled_error() -> DbError {
    DbError {
        number: None,
        code: None,
        message: "the call was cancelled (the step ran out of time)".into(),
    }
}

/// Which session a [`Canceller`] stops, and how to reach it from outside.
#[derive(Clone)]
pub(super) enum Target {
    Sqlite(Arc<rusqlite::InterruptHandle>),
    Postgres(Arc<PgTarget>),
    Mysql(Arc<MysqlTarget>),
}

pub(super) struct PgTarget {
    pub(super) options: PgConnectOptions,
    pub(super) pid: i32,
    /// `backend_start` in microseconds since the epoch, when it was readable.
    pub(super) started: Option<i64>,
}

pub(super) struct MysqlTarget {
    pub(super) options: MySqlConnectOptions,
    pub(super) id: u64,
}

impl Target {
    /// Identifies the session of a PostgreSQL connection just opened.
    pub(super) async fn postgres(
        options: PgConnectOptions,
        conn: &mut PgConnection,
    ) -> Result<Self, sqlx::Error> {
        let (pid, started): (i32, Option<i64>) = sqlx::query_as(
            "SELECT pg_backend_pid(), (SELECT (extract(epoch FROM backend_start) * 1000000)::int8 \
             FROM pg_stat_activity WHERE pid = pg_backend_pid())",
        )
        .fetch_one(conn)
        .await?;
        Ok(Target::Postgres(Arc::new(PgTarget {
            options,
            pid,
            started,
        })))
    }

    /// Identifies the session of a MySQL connection just opened.
    pub(super) async fn mysql(
        options: MySqlConnectOptions,
        conn: &mut MySqlConnection,
    ) -> Result<Self, sqlx::Error> {
        let (id,): (u64,) = sqlx::query_as("SELECT CONNECTION_ID()")
            .fetch_one(conn)
            .await?;
        Ok(Target::Mysql(Arc::new(MysqlTarget { options, id })))
    }
}

/// How often the SQLite watchdog interrupts again a guest call that runs on
/// past its deadline.
const WATCHDOG_REPEAT: Duration = Duration::from_millis(100);

/// How long a SQLite call is given to return after its interrupt before
/// the connection is given up: the busy timeout (5 s) and then some. (A
/// SQLite call runs on the caller's thread and its handlers stop it at its
/// deadline, so this is a backstop.)
const SQLITE_GRACE: Duration = Duration::from_secs(10);

/// What the calls on one connection are doing, shared with its cancellers
/// (and, on SQLite, with the connection's progress and busy handlers and its
/// watchdog).
#[derive(Debug, Default)]
pub(super) struct CallState {
    /// A guest call started and has not returned. Stays set when the call's
    /// future is dropped (an aborted step on a server; a SQLite call never
    /// yields, so it is never dropped half-way), so the statement it may have
    /// left running is stopped before the connection is used again.
    in_call: AtomicBool,
    /// The running call is being cancelled: `execute_many` starts no
    /// further statement.
    cancelled: AtomicBool,
    /// The run was aborted: no guest call on the connection runs any more.
    aborted: AtomicBool,
    /// When the running call must end: nanoseconds after [`epoch`], or 0
    /// for no deadline.
    deadline: AtomicU64,
    /// The connection was given up; every call on it fails at once.
    abandoned: AtomicBool,
    /// Held to end a call and to interrupt one (SQLite), so an interrupt
    /// never lands on the host's own statement after the call.
    turn: Mutex<()>,
    /// Wakes the SQLite watchdog: a new deadline, or the connection closed.
    wake: Condvar,
    /// The SQLite connection closed: its watchdog ends.
    closed: AtomicBool,
}

/// The instant call deadlines are counted from.
fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

impl CallState {
    /// Whether the running guest call must stop now: it was cancelled, the
    /// run aborted, or its deadline passed. Never true outside a guest call
    /// (the host's own statements, a step's `ROLLBACK` say, always run).
    pub(super) fn should_stop(&self) -> bool {
        self.is_stopped()
            || (self.in_call.load(Ordering::Relaxed)
                && self.time_left().is_some_and(|left| left.is_zero()))
    }

    /// [`CallState::should_stop`] without reading the clock: cancelled or
    /// aborted.
    pub(super) fn is_stopped(&self) -> bool {
        self.in_call.load(Ordering::Relaxed)
            && (self.cancelled.load(Ordering::Relaxed) || self.aborted.load(Ordering::Relaxed))
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.turn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Interrupts the running guest statement, if a guest call is running:
    /// never the host's own statement (ending a call waits for this).
    fn interrupt_call(&self, interrupt: &rusqlite::InterruptHandle) {
        let _turn = self.lock();
        if self.in_call.load(Ordering::SeqCst) {
            interrupt.interrupt();
        }
    }

    /// The SQLite watchdog, on a thread of its own until the connection
    /// closes: interrupts a guest call still running at its deadline (and
    /// again every [`WATCHDOG_REPEAT`] while it runs on: SQLite forgets an
    /// interrupt that comes between two statements). SQLite's progress
    /// handler sees the deadline too, but only between virtual-machine
    /// instructions, and some run long by themselves (`count(*)` of a
    /// table, a function over a long text); the interrupt reaches inside
    /// them.
    pub(super) fn watch(&self, interrupt: &rusqlite::InterruptHandle) {
        let mut turn = self.lock();
        while !self.closed.load(Ordering::SeqCst) {
            let wait = match self.time_left() {
                None => None,
                Some(left) if !left.is_zero() => Some(left),
                Some(_) if self.in_call.load(Ordering::SeqCst) => {
                    interrupt.interrupt();
                    Some(WATCHDOG_REPEAT)
                }
                // Past the deadline with no call running: a call that
                // starts now fails before its statement (see `sqlite`).
                Some(_) => None,
            };
            turn = match wait {
                Some(wait) => {
                    self.wake
                        .wait_timeout(turn, wait)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
                None => self
                    .wake
                    .wait(turn)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            };
        }
    }

    /// Ends [`CallState::watch`].
    pub(super) fn close(&self) {
        let _turn = self.lock();
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_all();
    }

    /// How long the running call has until its deadline, if it has one.
    pub(super) fn time_left(&self) -> Option<Duration> {
        match self.deadline.load(Ordering::Relaxed) {
            0 => None,
            nanos => {
                let deadline = epoch() + Duration::from_nanos(nanos);
                Some(deadline.saturating_duration_since(std::time::Instant::now()))
            }
        }
    }
}

/// A second connection, opened to cancel or terminate a session.
enum Side {
    Postgres(PgConnection),
    Mysql(MySqlConnection),
}

impl Side {
    async fn open(target: &Target) -> Result<Option<Self>, sqlx::Error> {
        Ok(match target {
            Target::Sqlite(_) => None,
            Target::Postgres(t) => Some(Side::Postgres(t.options.connect().await?)),
            Target::Mysql(t) => Some(Side::Mysql(t.options.connect().await?)),
        })
    }

    /// Cancels the target session's running statement (`terminate`: ends
    /// the session).
    async fn signal(&mut self, target: &Target, terminate: bool) -> Result<(), sqlx::Error> {
        match (self, target) {
            (Side::Postgres(side), Target::Postgres(t)) => {
                let function = if terminate {
                    "pg_terminate_backend"
                } else {
                    "pg_cancel_backend"
                };
                // The start time check makes sure a pid the OS handed to a
                // new backend is left alone.
                let sql = format!(
                    "SELECT {function}(pid) FROM pg_stat_activity WHERE pid = $1 \
                     AND ($2::int8 IS NULL OR (extract(epoch FROM backend_start) * 1000000)::int8 = $2)"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(t.pid)
                    .bind(t.started)
                    .fetch_all(side)
                    .await
                    .map(drop)
            }
            (Side::Mysql(side), Target::Mysql(t)) => {
                let what = if terminate { "CONNECTION" } else { "QUERY" };
                let sql = format!("KILL {what} {}", t.id);
                match sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(side).await {
                    // ER_NO_SUCH_THREAD: the session is gone already.
                    Err(sqlx::Error::Database(e))
                        if e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                            .is_some_and(|e| e.number() == 1094) =>
                    {
                        tracing::debug!("KILL {what} {}: {}", t.id, e.message());
                        Ok(())
                    }
                    other => other.map(drop),
                }
            }
            _ => Ok(()),
        }
    }

    /// Closes the side connection politely, without making anyone wait.
    fn close(self) {
        tokio::spawn(async move {
            let close = async {
                match self {
                    Side::Postgres(c) => c.close().await,
                    Side::Mysql(c) => c.close().await,
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
        });
    }
}

/// Stops what runs on one connection, from outside it.
#[derive(Clone)]
pub(crate) struct Canceller {
    pub(super) target: Target,
    pub(super) state: Arc<CallState>,
}

impl Canceller {
    /// A guest call is about to run on the connection, with no deadline of
    /// its own.
    #[cfg(test)]
    pub(crate) fn begin_call(&self) {
        self.begin_call_until(None);
    }

    /// A guest call is about to run on the connection and must end by
    /// `deadline`. On SQLite the connection's handlers stop its statement
    /// then; on the servers the caller's timer does (see [`Canceller::stop`]).
    pub(crate) fn begin_call_until(&self, deadline: Option<std::time::Instant>) {
        let nanos = deadline.map_or(0, |deadline| {
            let nanos = deadline.saturating_duration_since(epoch()).as_nanos();
            u64::try_from(nanos).unwrap_or(u64::MAX).max(1)
        });
        self.state.cancelled.store(false, Ordering::SeqCst);
        self.state.in_call.store(true, Ordering::SeqCst);
        // The calls of a step share its deadline: the watchdog is woken
        // once per step, not per call.
        if self.state.deadline.swap(nanos, Ordering::SeqCst) != nanos {
            let _turn = self.state.lock();
            self.state.wake.notify_all();
        }
    }

    /// The guest call returned. Waits for an interrupt of it in progress,
    /// so none lands on the statement that comes next.
    pub(crate) fn end_call(&self) {
        let _turn = self.state.lock();
        self.state.in_call.store(false, Ordering::SeqCst);
        self.state.cancelled.store(false, Ordering::SeqCst);
    }

    /// Aborts the run's use of the connection, from any thread: the running
    /// guest call stops (on SQLite its statement is interrupted now; on the
    /// servers the runner drops the call, which cancels it), and no later
    /// one runs. The host's own statements (the rollback) still do.
    pub(crate) fn abort(&self) {
        self.state.aborted.store(true, Ordering::SeqCst);
        self.state.cancelled.store(true, Ordering::SeqCst);
        if let Target::Sqlite(interrupt) = &self.target {
            self.state.interrupt_call(interrupt);
        }
    }

    /// Whether [`Canceller::abort`] was called.
    pub(crate) fn is_aborted(&self) -> bool {
        self.state.aborted.load(Ordering::SeqCst)
    }

    pub(super) fn in_call(&self) -> bool {
        self.state.in_call.load(Ordering::SeqCst)
    }

    pub(super) fn is_cancelled(&self) -> bool {
        self.state.cancelled.load(Ordering::SeqCst)
    }

    pub(super) fn is_abandoned(&self) -> bool {
        self.state.abandoned.load(Ordering::SeqCst)
    }

    /// Stops `call`, a call running on this canceller's connection whose
    /// time ran out: no further statement of it starts, the running one is
    /// cancelled in the database (again every [`CANCEL_REPEAT`] while it runs
    /// on), and if it has not returned within `grace`, the connection is
    /// given up. Returns the call's result, or `None` if it was given up.
    pub(crate) async fn stop<F: Future>(
        &self,
        mut call: Pin<&mut F>,
        grace: Duration,
    ) -> Option<F::Output> {
        self.state.cancelled.store(true, Ordering::SeqCst);
        if grace.is_zero() {
            // No grace: given up at once, without a cancel that could still
            // stop the statement before a timer tick.
            self.abandon(None, "a statement was given no time to stop")
                .await;
            return None;
        }
        // SQLite: the call runs on this thread and has returned by the time
        // this future is polled (its handlers stop it at the deadline); a
        // connection given up would keep its write transaction, so nothing
        // (not even the run's failure) could be written over a fresh one:
        // never give it up early.
        let grace = match self.target {
            Target::Sqlite(_) => grace.max(SQLITE_GRACE),
            _ => grace,
        };
        let give_up = Instant::now() + grace;
        let mut side = None;
        let cancelling = async {
            let _ = tokio::time::timeout_at(give_up, self.keep_cancelling(&mut side)).await;
            tokio::time::sleep_until(give_up).await;
        };
        let output = tokio::select! {
            output = call.as_mut() => Some(output),
            () = cancelling => None,
        };
        match output {
            Some(output) => {
                self.end_call();
                if let Some(side) = side {
                    side.close();
                }
                Some(output)
            }
            None => {
                self.abandon(side, "a statement did not stop when cancelled")
                    .await;
                None
            }
        }
    }

    /// Cancels the running statement until the caller stops waiting.
    async fn keep_cancelling(&self, side: &mut Option<Side>) {
        loop {
            if let Err(e) = self.cancel_once(side).await {
                tracing::warn!("cancelling the running statement failed (retrying): {e}");
            }
            tokio::time::sleep(CANCEL_REPEAT).await;
        }
    }

    /// Sends one cancel, opening the side connection if it is not open.
    async fn cancel_once(&self, side: &mut Option<Side>) -> Result<(), sqlx::Error> {
        if let Target::Sqlite(interrupt) = &self.target {
            interrupt.interrupt();
            return Ok(());
        }
        if side.is_none() {
            *side = Side::open(&self.target).await?;
        }
        let Some(open) = side.as_mut() else {
            return Ok(());
        };
        let sent = open.signal(&self.target, false).await;
        if sent.is_err() {
            // Open a new one next time.
            *side = None;
        }
        sent
    }

    /// Cancels a statement an aborted call may have left running, once, and
    /// gives up waiting after `grace`. For the step's rollback after an abort.
    pub(super) async fn cancel_left_over(&self, grace: Duration) {
        let mut side = None;
        match tokio::time::timeout(grace, self.cancel_once(&mut side)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("cancelling the aborted call's statement failed: {e}"),
            Err(_) => tracing::warn!("cancelling the aborted call's statement timed out"),
        }
        if let Some(side) = side {
            side.close();
        }
    }

    /// Gives the connection up: every later call on it fails at once, and its
    /// session is ended in the database so the server stops the statement
    /// and rolls back its transaction now, not whenever it notices.
    pub(super) async fn give_up(&self, why: &str) {
        self.abandon(None, why).await;
    }

    async fn abandon(&self, side: Option<Side>, why: &str) {
        self.state.abandoned.store(true, Ordering::SeqCst);
        tracing::warn!("{why}: the connection is given up and its session ended");
        if let Target::Sqlite(interrupt) = &self.target {
            // One more interrupt; nothing else can reach the statement.
            interrupt.interrupt();
            return;
        }
        let target = self.target.clone();
        let terminate = async move {
            let mut side = match side {
                Some(side) => side,
                None => match Side::open(&target).await? {
                    Some(side) => side,
                    None => return Ok(()),
                },
            };
            let ended = side.signal(&target, true).await;
            side.close();
            ended
        };
        // The caller waits [`TERMINATE_GRACE`]; on a loaded server opening
        // the side connection can take longer, so the termination goes on
        // in the background (up to [`TERMINATE_LIMIT`]) rather than leave
        // the session running its statement.
        let mut ending = tokio::spawn(async move {
            match tokio::time::timeout(TERMINATE_LIMIT, terminate).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("ending the given-up session failed: {e}"),
                Err(_) => tracing::warn!("ending the given-up session timed out"),
            }
        });
        if tokio::time::timeout(TERMINATE_GRACE, &mut ending)
            .await
            .is_err()
        {
            tracing::debug!("still ending the given-up session in the background");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection with no handlers of its own: only the watchdog can stop
    /// its statements.
    fn bare() -> (rusqlite::Connection, Arc<rusqlite::InterruptHandle>) {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        let interrupt = Arc::new(db.get_interrupt_handle());
        (db, interrupt)
    }

    fn watched(
        interrupt: &Arc<rusqlite::InterruptHandle>,
    ) -> (Canceller, std::thread::JoinHandle<()>) {
        let canceller = Canceller {
            target: Target::Sqlite(Arc::clone(interrupt)),
            state: Arc::default(),
        };
        let watchdog = std::thread::spawn({
            let state = Arc::clone(&canceller.state);
            let interrupt = Arc::clone(interrupt);
            move || state.watch(&interrupt)
        });
        (canceller, watchdog)
    }

    const ENDLESS: &str =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";

    /// Counts to `n` the slow way: about a second for ten million.
    fn count_to(db: &rusqlite::Connection, n: i64) -> rusqlite::Result<i64> {
        db.query_row(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
             SELECT count(*) FROM n",
            [n],
            |row| row.get(0),
        )
    }

    /// The watchdog interrupts a guest call at its deadline (and again, for
    /// a statement that starts later), and never a statement run after the
    /// call ended, though its deadline has passed.
    #[test]
    fn the_watchdog_interrupts_calls_and_nothing_else() {
        let (db, interrupt) = bare();
        let (canceller, watchdog) = watched(&interrupt);

        let started = std::time::Instant::now();
        canceller.begin_call_until(Some(started + Duration::from_millis(150)));
        let error = db.query_row(ENDLESS, [], |_| Ok(())).unwrap_err();
        assert_eq!(
            error.sqlite_error_code(),
            Some(rusqlite::ErrorCode::OperationInterrupted)
        );
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(140) && elapsed < Duration::from_secs(2),
            "{elapsed:?}"
        );
        // Still in the call: a statement started past the deadline is
        // interrupted too (within the watchdog's repeat).
        let error = db.query_row(ENDLESS, [], |_| Ok(())).unwrap_err();
        assert_eq!(
            error.sqlite_error_code(),
            Some(rusqlite::ErrorCode::OperationInterrupted)
        );
        canceller.end_call();

        // The host's own statement after the call runs to its end.
        let started = std::time::Instant::now();
        assert_eq!(count_to(&db, 3_000_000).unwrap(), 3_000_000);
        assert!(
            started.elapsed() > WATCHDOG_REPEAT,
            "long enough to have been hit"
        );

        // A new deadline for the next call is seen at once.
        canceller.begin_call_until(Some(std::time::Instant::now() + Duration::from_millis(100)));
        assert!(db.query_row(ENDLESS, [], |_| Ok(())).is_err());
        canceller.end_call();

        // An abort interrupts the running call, from another thread.
        canceller.begin_call_until(Some(std::time::Instant::now() + Duration::from_secs(60)));
        let aborter = std::thread::spawn({
            let canceller = canceller.clone();
            move || {
                std::thread::sleep(Duration::from_millis(100));
                canceller.abort();
            }
        });
        let started = std::time::Instant::now();
        assert!(db.query_row(ENDLESS, [], |_| Ok(())).is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
        aborter.join().unwrap();
        canceller.end_call();

        canceller.state.close();
        watchdog.join().unwrap();
    }
}
