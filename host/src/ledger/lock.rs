//! One run per migration at a time, across hosts.
//!
//! On PostgreSQL and MySQL the lock is the server's own advisory lock
//! (`pg_try_advisory_lock`, `GET_LOCK`), held on a dedicated connection: when
//! a holder dies, its connection closes and the server releases the lock. A
//! row in `dmig_locks` describes the holder (host, pid, run, since) so a
//! waiting host can say who it waits for.
//!
//! SQLite has no such lock, so there the row itself is the lock: a lease
//! with an expiry the holder renews after every step. A holder that died
//! releases it when the lease expires, or at once when the next host runs on
//! the same machine and sees the holder's process gone.
//!
//! # Losing the lock
//!
//! The lock connection can be lost while its host runs on: the server or an
//! administrator (or a hostile migration, with `pg_terminate_backend` or
//! `KILL`) ends its session, or the network drops it. The server then
//! releases the advisory lock and a second host may take it. Two things make
//! sure the first host never commits a step alongside the second:
//!
//! * **The fence** ([`Lock::renew_in`]): every step's transaction updates
//!   this host's row in `dmig_locks`, matched by its token, before its
//!   checkpoint, and fails unless that row is still there. A host that takes
//!   the lock replaces the row (a new token) before it reads the ledger to
//!   decide where to start. Either the replacement commits first, and the
//!   step's update matches no row, so the step rolls back; or the step's
//!   update comes first and holds the row's lock until the step commits, so
//!   the replacement waits for that commit and the new host then reads a
//!   ledger that includes the step. There is no window in between: the row
//!   lock orders the two. Before the commit, the lock connection is also
//!   pinged ([`Lock::verify`]), so a step never commits after its host
//!   could know the lock was gone.
//! * **The watcher**: a task pings the lock connection every
//!   [`WATCH_INTERVAL`]; the moment it fails, [`Lock::lost`] resolves and the
//!   runner stops the run (the open step rolls back), within that interval.
//!   The fence is what makes it safe; the watcher is what makes it prompt.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, watch};

use super::{Cols, ledger_error, now};
use crate::db::{Connection, Dialect, Value};
use crate::error::{Error, FailureCause, Result};

/// How often the watcher checks that the lock connection is alive.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// How long the lock connection may take to answer a ping before the lock
/// counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The advice every lock-loss cause ends with.
const STOPPED: &str =
    "the run stopped so that no second host could run alongside it; run again to resume";

/// Why a renewal failed.
enum Renewal {
    /// The lock is no longer this host's.
    Lost(FailureCause),
    /// The database failed.
    Failed(crate::db::DbError),
}

/// The outcome of one attempt at a lease.
enum Lease {
    Taken,
    TakenOver(Holder),
    Held(Holder),
}

/// Who holds (or wants) a migration's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    pub run_id: Option<i64>,
    pub since: String,
    pub expires_at: String,
}

/// A lock this process holds; renew it between steps, release it at the end.
#[derive(Debug)]
pub struct Lock {
    migration: String,
    token: String,
    ttl: Duration,
    /// The dedicated connection holding the server's advisory lock, watched
    /// (not on SQLite).
    advisory: Option<Advisory>,
}

/// The server's advisory lock: its connection, its key, and the task that
/// watches the connection.
#[derive(Debug)]
struct Advisory {
    key: String,
    conn: Arc<Mutex<Connection>>,
    /// Why the lock was lost, once it is.
    lost: watch::Sender<Option<String>>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for Advisory {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl Advisory {
    fn new(conn: Connection, key: String) -> Self {
        let conn = Arc::new(Mutex::new(conn));
        let (lost, _) = watch::channel(None);
        let watcher = tokio::spawn({
            let conn = Arc::clone(&conn);
            let lost = lost.clone();
            async move {
                loop {
                    tokio::time::sleep(WATCH_INTERVAL).await;
                    if let Err(reason) = ping(&conn).await {
                        tracing::error!("{reason}");
                        lost.send_replace(Some(reason));
                        return;
                    }
                }
            }
        });
        Advisory {
            key,
            conn,
            lost,
            watcher,
        }
    }

    /// Why the lock was lost, if it was.
    fn lost_reason(&self) -> Option<String> {
        self.lost.borrow().clone()
    }
}

/// Pings the lock connection; the error is the one-line cause of the loss.
async fn ping(conn: &Mutex<Connection>) -> Result<(), String> {
    let mut conn = conn.lock().await;
    let why = match tokio::time::timeout(PING_TIMEOUT, conn.ping()).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => format!(
            "the lock connection was closed by the server ({})",
            e.to_string().replace('\n', " ")
        ),
        Err(_) => format!(
            "the lock connection did not answer within {} s",
            PING_TIMEOUT.as_secs()
        ),
    };
    Err(format!("{why}; {STOPPED}"))
}

/// How to take and release the server's advisory lock, per database.
fn advisory_sql(dialect: Dialect) -> Option<(&'static str, &'static str)> {
    match dialect {
        Dialect::Sqlite => None,
        Dialect::Postgres => Some((
            "SELECT pg_try_advisory_lock(hashtextextended(?, 0)) AS taken",
            "SELECT pg_advisory_unlock(hashtextextended(?, 0)) AS released",
        )),
        Dialect::Mysql => Some((
            "SELECT GET_LOCK(?, 0) AS taken",
            "SELECT RELEASE_LOCK(?) AS released",
        )),
    }
}

/// The advisory lock's key: MySQL lock names are at most 64 characters.
///
/// PostgreSQL's advisory locks belong to one database; MySQL's `GET_LOCK`
/// names are global to the server, so there the key includes the database
/// (`database`): two databases on one server may each run a migration of the
/// same name at the same time. (`None` on PostgreSQL.)
fn advisory_key(database: Option<&str>, migration: &str) -> String {
    use sha2::Digest;
    let scoped = match database {
        Some(database) => format!("{database}/{migration}"),
        None => migration.to_owned(),
    };
    let digest = hex::encode(sha2::Sha256::digest(scoped.as_bytes()));
    format!("dmig:{}", &digest[..40])
}

fn truthy(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Boolean(true) | Value::Int(1)))
}

fn this_host() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

fn expiry(ttl: Duration) -> String {
    let expires = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Whether `holder` is certainly gone: its lease expired, or it ran on this
/// machine and its process no longer exists.
fn is_stale(holder: &Holder) -> bool {
    let expired = DateTime::parse_from_rfc3339(&holder.expires_at)
        .map(|t| t < Utc::now())
        .unwrap_or(true);
    let dead_here = holder.host == this_host()
        && holder.pid != std::process::id()
        && cfg!(target_os = "linux")
        && !std::path::Path::new(&format!("/proc/{}", holder.pid)).exists();
    expired || dead_here
}

impl Lock {
    /// Takes the lock on `migration`, waiting up to `timeout` for a live
    /// holder to finish. A stale holder's lock is taken over, and its runs
    /// still marked `running` are recorded as failed.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] naming the holder when `timeout` passes.
    pub async fn acquire(
        conn: &mut Connection,
        url: &str,
        migration: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Lock> {
        let host = this_host();
        let pid = std::process::id();
        let token = format!("{host}:{pid}:{}", now());
        let give_up = tokio::time::Instant::now() + timeout;
        if let Some((take, _)) = advisory_sql(conn.dialect()) {
            return Self::acquire_advisory(
                conn,
                url,
                migration,
                ttl,
                (give_up, timeout),
                take,
                token,
            )
            .await;
        }
        let mut last_holder = None;
        loop {
            // A live holder is seen with a plain read, which works while its
            // step holds the write lock; only a free or stale lease is written,
            // in one write transaction so two hosts cannot both take it.
            let attempt = match Self::holder(conn, migration).await? {
                Some((_, holder)) if !is_stale(&holder) => Ok(Lease::Held(holder)),
                _ => Self::lease_transaction(conn, migration, &token, ttl).await,
            };
            match attempt {
                Ok(Lease::Taken) => {
                    return Ok(Lock {
                        migration: migration.to_owned(),
                        token,
                        ttl,
                        advisory: None,
                    });
                }
                Ok(Lease::TakenOver(holder)) => {
                    tracing::warn!(
                        host = %holder.host, pid = holder.pid, run = holder.run_id,
                        "took over the lock of a host that is gone"
                    );
                    let why = format!(
                        "the host running it (pid {} on {}) stopped without recording an outcome; \
                         the next run took over its lock",
                        holder.pid, holder.host
                    );
                    super::abandon_running(conn, migration, &why).await?;
                    return Ok(Lock {
                        migration: migration.to_owned(),
                        token,
                        ttl,
                        advisory: None,
                    });
                }
                Ok(Lease::Held(holder)) => last_holder = Some(holder),
                // Another host is writing the lease right now: look again.
                Err(e) if is_busy(&e) => {}
                Err(e) => return Err(e),
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(locked(migration, last_holder, timeout));
            }
            wait_a_little(give_up).await;
        }
    }

    /// Takes a free or stale lease in one write transaction.
    async fn lease_transaction(
        conn: &mut Connection,
        migration: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<Lease> {
        conn.begin()
            .await
            .map_err(|e| ledger_error("take the lock", e))?;
        match Self::try_lease(conn, migration, token, ttl).await {
            Ok(outcome) => {
                conn.commit()
                    .await
                    .map_err(|e| ledger_error("take the lock", e))?;
                Ok(outcome)
            }
            Err(e) => {
                let _ = conn.rollback().await;
                Err(e)
            }
        }
    }

    /// One attempt at the lease, inside the caller's transaction.
    async fn try_lease(
        conn: &mut Connection,
        migration: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<Lease> {
        let host = this_host();
        let pid = i64::from(std::process::id());
        if let Some((old_token, holder)) = Self::holder(conn, migration).await? {
            if !is_stale(&holder) {
                return Ok(Lease::Held(holder));
            }
            conn.execute(
                "UPDATE dmig_locks SET holder = ?, run_id = NULL, host = ?, pid = ?, \
                 acquired_at = ?, expires_at = ? WHERE migration = ? AND holder = ?",
                &[
                    token.into(),
                    host.as_str().into(),
                    pid.into(),
                    now().into(),
                    expiry(ttl).into(),
                    migration.into(),
                    old_token.into(),
                ],
            )
            .await
            .map_err(|e| ledger_error("take over the lock", e))?;
            return Ok(Lease::TakenOver(holder));
        }
        conn.execute(
            "INSERT INTO dmig_locks (migration, holder, host, pid, acquired_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
            &[
                migration.into(),
                token.into(),
                host.as_str().into(),
                pid.into(),
                now().into(),
                expiry(ttl).into(),
            ],
        )
        .await
        .map_err(|e| ledger_error("take the lock", e))?;
        Ok(Lease::Taken)
    }

    /// Takes the server's advisory lock on a dedicated connection, then
    /// records this process as the holder.
    async fn acquire_advisory(
        conn: &mut Connection,
        url: &str,
        migration: &str,
        ttl: Duration,
        (give_up, timeout): (tokio::time::Instant, Duration),
        take: &str,
        token: String,
    ) -> Result<Lock> {
        let mut lock_conn = Connection::connect(url).await?;
        let database = match lock_conn.dialect() {
            Dialect::Mysql => {
                let rows = lock_conn
                    .query("SELECT DATABASE() AS db", &[])
                    .await
                    .map_err(|e| ledger_error("name the database", e))?;
                rows.rows
                    .first()
                    .and_then(|r| r.first())
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }
            Dialect::Postgres | Dialect::Sqlite => None,
        };
        let key = advisory_key(database.as_deref(), migration);
        loop {
            let taken = lock_conn
                .query(take, &[key.as_str().into()])
                .await
                .map_err(|e| ledger_error("take the advisory lock", e))?;
            if truthy(taken.rows.first().and_then(|r| r.first())) {
                break;
            }
            if tokio::time::Instant::now() >= give_up {
                let holder = Self::holder(conn, migration).await?.map(|(_, h)| h);
                return Err(locked(migration, holder, timeout));
            }
            wait_a_little(give_up).await;
        }
        // Holding the server's lock, any earlier holder is gone: its row is
        // stale and its runs still `running` died with it.
        if let Some((_, holder)) = Self::holder(conn, migration).await? {
            let why = format!(
                "the host running it (pid {} on {}) stopped without recording an outcome; \
                 the next run took over its lock",
                holder.pid, holder.host
            );
            super::abandon_running(conn, migration, &why).await?;
        }
        let record = async {
            conn.execute(
                "DELETE FROM dmig_locks WHERE migration = ?",
                &[migration.into()],
            )
            .await?;
            conn.execute(
                "INSERT INTO dmig_locks (migration, holder, host, pid, acquired_at, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
                &[
                    migration.into(),
                    token.as_str().into(),
                    this_host().into(),
                    i64::from(std::process::id()).into(),
                    now().into(),
                    expiry(ttl).into(),
                ],
            )
            .await
        };
        record
            .await
            .map_err(|e| ledger_error("record the lock holder", e))?;
        Ok(Lock {
            migration: migration.to_owned(),
            token,
            ttl,
            advisory: Some(Advisory::new(lock_conn, key)),
        })
    }

    async fn holder(conn: &mut Connection, migration: &str) -> Result<Option<(String, Holder)>> {
        let rows = conn
            .query(
                "SELECT holder, run_id, host, pid, acquired_at, expires_at FROM dmig_locks WHERE migration = ?",
                &[migration.into()],
            )
            .await
            .map_err(|e| ledger_error("read the lock", e))?;
        let Some(row) = rows.rows.first() else {
            return Ok(None);
        };
        let c = Cols { rows: &rows, row };
        let holder = Holder {
            host: c.text("host")?,
            pid: u32::try_from(c.int("pid")?).unwrap_or_default(),
            run_id: c.value("run_id").as_i64(),
            since: c.text("acquired_at")?,
            expires_at: c.text("expires_at")?,
        };
        Ok(Some((c.text("holder")?, holder)))
    }

    /// Records which run holds the lock, and extends the lease. Returns
    /// [`FailureCause::LockLost`] if another host took the lock over.
    ///
    /// # Errors
    ///
    /// [`Error::Ledger`] when the database fails.
    pub async fn renew(
        &self,
        conn: &mut Connection,
        run_id: Option<i64>,
    ) -> Result<Option<FailureCause>> {
        match self.renew_checked(conn, run_id).await {
            Ok(()) => Ok(None),
            Err(Renewal::Lost(cause)) => Ok(Some(cause)),
            Err(Renewal::Failed(e)) => Err(ledger_error("renew the lock", e)),
        }
    }

    /// Like [`Lock::renew`], inside the caller's transaction: the step's, so
    /// the lease is renewed exactly when a step commits. This is the fence
    /// (see the module's documentation): it fails with
    /// [`FailureCause::LockLost`] unless this host's row is still the lock's,
    /// and then holds that row's lock until the transaction ends.
    pub async fn renew_in(
        &self,
        conn: &mut Connection,
        run_id: Option<i64>,
    ) -> Result<(), FailureCause> {
        self.renew_checked(conn, run_id).await.map_err(|e| match e {
            Renewal::Lost(cause) => cause,
            Renewal::Failed(e) => FailureCause::Database(format!("renewing the lock failed: {e}")),
        })
    }

    async fn renew_checked(
        &self,
        conn: &mut Connection,
        run_id: Option<i64>,
    ) -> Result<(), Renewal> {
        let renewed = conn
            .execute(
                "UPDATE dmig_locks SET run_id = COALESCE(?, run_id), expires_at = ? \
                 WHERE migration = ? AND holder = ?",
                &[
                    run_id.into(),
                    expiry(self.ttl).into(),
                    self.migration.as_str().into(),
                    self.token.as_str().into(),
                ],
            )
            .await
            .map_err(Renewal::Failed)?;
        if renewed == 0 {
            // The lost reason, when the watcher knows it, says how.
            let how = self.lost_reason().unwrap_or_else(|| {
                format!(
                    "the lock was taken over by another host (the lock record no longer names this host); {STOPPED}"
                )
            });
            return Err(Renewal::Lost(FailureCause::LockLost(how)));
        }
        Ok(())
    }

    /// Checks now that the advisory lock is still held (its connection
    /// answers). Always true on SQLite, where the fence alone is the check.
    ///
    /// # Errors
    ///
    /// [`FailureCause::LockLost`] with the one-line cause.
    pub async fn verify(&self) -> Result<(), FailureCause> {
        let Some(advisory) = &self.advisory else {
            return Ok(());
        };
        if let Some(reason) = advisory.lost_reason() {
            return Err(FailureCause::LockLost(reason));
        }
        if let Err(reason) = ping(&advisory.conn).await {
            advisory.lost.send_replace(Some(reason.clone()));
            return Err(FailureCause::LockLost(reason));
        }
        Ok(())
    }

    /// Why the lock was lost, if the watcher found it lost.
    pub fn lost_reason(&self) -> Option<String> {
        self.advisory.as_ref().and_then(Advisory::lost_reason)
    }

    /// Resolves, with the one-line cause, when the watcher finds the lock
    /// lost; never on SQLite.
    pub async fn lost(&self) -> String {
        let Some(advisory) = &self.advisory else {
            return std::future::pending().await;
        };
        let mut lost = advisory.lost.subscribe();
        match lost.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The sender lives as long as `self`: unreachable, but never
            // resolve on it.
            Err(_) => std::future::pending().await,
        }
    }

    /// Gives the lock up.
    pub async fn release(self, conn: &mut Connection) -> Result<()> {
        if let Some(advisory) = &self.advisory {
            advisory.watcher.abort();
            let mut lock_conn = advisory.conn.lock().await;
            if advisory.lost_reason().is_none()
                && let Some((_, release)) = advisory_sql(lock_conn.dialect())
            {
                // Closing the connection would release it too; say so explicitly.
                lock_conn
                    .query(release, &[advisory.key.as_str().into()])
                    .await
                    .map_err(|e| ledger_error("release the advisory lock", e))?;
            }
        }
        conn.execute(
            "DELETE FROM dmig_locks WHERE migration = ? AND holder = ?",
            &[self.migration.as_str().into(), self.token.as_str().into()],
        )
        .await
        .map(drop)
        .map_err(|e| ledger_error("release the lock", e))
    }
}

/// Waits before asking for the lock again, never past `give_up`.
async fn wait_a_little(give_up: tokio::time::Instant) {
    let wait = Duration::from_millis(200)
        .min(give_up.saturating_duration_since(tokio::time::Instant::now()));
    tokio::time::sleep(wait).await;
}

fn locked(migration: &str, holder: Option<Holder>, waited: Duration) -> Error {
    let holder = holder.unwrap_or(Holder {
        host: "an unknown host".into(),
        pid: 0,
        run_id: None,
        since: "just now".into(),
        expires_at: String::new(),
    });
    Error::Locked {
        name: migration.to_owned(),
        run_id: holder.run_id,
        host: holder.host,
        pid: holder.pid,
        since: holder.since,
        waited,
    }
}

/// Whether a ledger error is SQLite's "database is locked" (SQLITE_BUSY, in
/// its primary or an extended form).
fn is_busy(error: &Error) -> bool {
    matches!(error, Error::Ledger { source, .. }
        if source.code.as_deref().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| c & 0xff == 5))
}
