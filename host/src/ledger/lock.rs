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
//! releases it when the lease expires, or at once when the next host can
//! tell it is gone: the row records who holds it precisely enough (a random
//! per-process id, the kernel's boot id, the PID namespace, the process's
//! start time, and a liveness file the holder keeps locked) that a host
//! restarted with the same host name and pid, in the same container or a new
//! one, takes its lock back at once, while a live holder in another
//! container with the same host name and pid is respected. See
//! [`identity`] for what can and cannot be told apart.
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

mod identity;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, watch};

use super::{Cols, ledger_error, now};
use crate::db::{Connection, Dialect, Value};
use crate::error::{Error, FailureCause, Result};
use identity::{AliveFile, Identity, this_process};

/// How often the watcher checks that the lock connection is alive.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// How long the lock connection may take to answer a ping before the lock
/// counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The advice every lock-loss cause ends with.
const STOPPED: &str =
    "the run stopped so that no second host could run alongside it; run again to resume";

/// Why renewing a lock failed.
#[derive(Debug)]
pub enum Renewal {
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
    /// Who exactly, when the holder recorded it (see [`identity`]).
    identity: Option<Identity>,
}

/// The tokens of the locks this process holds right now: a row naming this
/// process with any other token is left over from an earlier lock of this
/// process (whose release failed), not held.
fn live_tokens() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    static LIVE: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
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
    /// On SQLite, the file this process keeps locked while it holds the
    /// lease, so that other processes can tell it is alive.
    _alive: Option<AliveFile>,
}

impl Drop for Lock {
    fn drop(&mut self) {
        live_tokens().remove(&self.token);
    }
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

/// Whether `holder` (whose row has `token`) is certainly gone: its lease
/// expired, or it is this process but no lock of this process has that
/// token, or it ran on this host and its [`Identity`] says it died. `dir` is
/// the SQLite database's directory, where liveness files live.
fn is_stale(token: &str, holder: &Holder, dir: Option<&Path>) -> bool {
    let expired = DateTime::parse_from_rfc3339(&holder.expires_at)
        .map(|t| t < Utc::now())
        .unwrap_or(true);
    expired || is_dead(token, holder, dir)
}

/// Whether the process `holder` names is certainly gone, lease aside.
fn is_dead(token: &str, holder: &Holder, dir: Option<&Path>) -> bool {
    match &holder.identity {
        Some(identity) if identity.id == this_process().id => !live_tokens().contains(token),
        _ if holder.host != this_host() => false,
        Some(identity) => identity.is_dead(holder.pid, dir),
        // Written by a dmig-host that recorded no identity: a row naming
        // this pid may be a live older host in another PID namespace with
        // the same host name, so only the lease decides for it; any other
        // pid is checked in /proc.
        None => {
            cfg!(target_os = "linux")
                && holder.pid != std::process::id()
                && !Path::new(&format!("/proc/{}", holder.pid)).exists()
        }
    }
}

/// The directory of the SQLite database `conn` uses (`None` in memory).
async fn database_dir(conn: &mut Connection) -> Option<(PathBuf, String)> {
    let rows = conn
        .query(
            "SELECT file FROM pragma_database_list WHERE name = 'main'",
            &[],
        )
        .await
        .ok()?;
    let file = rows.rows.first()?.first()?.as_str()?.to_owned();
    let path = Path::new(&file);
    let name = path.file_name()?.to_string_lossy().into_owned();
    Some((path.parent()?.to_path_buf(), name))
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
        // Unique within this process too: two tasks may want one lock.
        static ACQUIRES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = ACQUIRES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("{host}:{pid}:{}:{n}", now());
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
        let database = database_dir(conn).await;
        let dir = database.as_ref().map(|(dir, _)| dir.as_path());
        // Locked before the row names it, unlocked after the row is gone, so
        // no reader of the row finds it unlocked while this process lives.
        let alive = database
            .as_ref()
            .and_then(|(dir, name)| AliveFile::create(dir, name));
        let identity = this_process().with_alive(alive.as_ref()).render();
        // Registered before the row is written, for the same reason.
        live_tokens().insert(token.clone());
        let lock = Lock {
            migration: migration.to_owned(),
            token: token.clone(),
            ttl,
            advisory: None,
            _alive: alive,
        };
        let mut last_holder = None;
        loop {
            // A live holder is seen with a plain read, which works while its
            // step holds the write lock; only a free or stale lease is written,
            // in one write transaction so two hosts cannot both take it.
            let attempt = match Self::holder(conn, migration).await? {
                Some((old, holder)) if !is_stale(&old, &holder, dir) => Ok(Lease::Held(holder)),
                _ => {
                    let lease = (token.as_str(), identity.as_str(), dir);
                    Self::lease_transaction(conn, migration, lease, ttl).await
                }
            };
            match attempt {
                Ok(Lease::Taken) => return Ok(lock),
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
                    return Ok(lock);
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

    /// Takes a free or stale lease in one write transaction. `lease` is
    /// this holder's token and rendered identity, and the database's
    /// directory.
    async fn lease_transaction(
        conn: &mut Connection,
        migration: &str,
        lease: (&str, &str, Option<&Path>),
        ttl: Duration,
    ) -> Result<Lease> {
        conn.begin()
            .await
            .map_err(|e| ledger_error("take the lock", e))?;
        match Self::try_lease(conn, migration, lease, ttl).await {
            Ok(outcome) => {
                if let Err(e) = conn.commit().await {
                    let _ = conn.rollback().await;
                    return Err(ledger_error("take the lock", e));
                }
                // Only once the takeover is committed: the dead holder's
                // liveness file goes with its lock.
                if let (Lease::TakenOver(holder), Some(dir)) = (&outcome, lease.2)
                    && let Some(name) = holder.identity.as_ref().and_then(|i| i.alive.as_deref())
                {
                    identity::remove_dead(dir, name);
                }
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
        (token, identity, dir): (&str, &str, Option<&Path>),
        ttl: Duration,
    ) -> Result<Lease> {
        let host = this_host();
        let pid = i64::from(std::process::id());
        if let Some((old_token, holder)) = Self::holder(conn, migration).await? {
            if !is_stale(&old_token, &holder, dir) {
                return Ok(Lease::Held(holder));
            }
            conn.execute(
                "UPDATE dmig_locks SET holder = ?, run_id = NULL, host = ?, pid = ?, \
                 acquired_at = ?, expires_at = ?, instance = ? WHERE migration = ? AND holder = ?",
                &[
                    token.into(),
                    host.as_str().into(),
                    pid.into(),
                    now().into(),
                    expiry(ttl).into(),
                    identity.into(),
                    migration.into(),
                    old_token.into(),
                ],
            )
            .await
            .map_err(|e| ledger_error("take over the lock", e))?;
            return Ok(Lease::TakenOver(holder));
        }
        conn.execute(
            "INSERT INTO dmig_locks (migration, holder, host, pid, acquired_at, expires_at, instance) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            &[
                migration.into(),
                token.into(),
                host.as_str().into(),
                pid.into(),
                now().into(),
                expiry(ttl).into(),
                identity.into(),
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
                // The server knows the lock is held, not by whom: a row
                // naming a process that is gone (one that died before the
                // live holder wrote its own row) names nobody.
                let holder = Self::holder(conn, migration)
                    .await?
                    .filter(|(token, holder)| !is_dead(token, holder, None))
                    .map(|(_, h)| h);
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
                "INSERT INTO dmig_locks (migration, holder, host, pid, acquired_at, expires_at, instance) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                &[
                    migration.into(),
                    token.as_str().into(),
                    this_host().into(),
                    i64::from(std::process::id()).into(),
                    now().into(),
                    expiry(ttl).into(),
                    this_process().render().into(),
                ],
            )
            .await
        };
        // Registered before the row names this process (see `is_dead`).
        live_tokens().insert(token.clone());
        if let Err(e) = record.await {
            live_tokens().remove(&token);
            return Err(ledger_error("record the lock holder", e));
        }
        Ok(Lock {
            migration: migration.to_owned(),
            token,
            ttl,
            advisory: Some(Advisory::new(lock_conn, key)),
            _alive: None,
        })
    }

    async fn holder(conn: &mut Connection, migration: &str) -> Result<Option<(String, Holder)>> {
        let rows = conn
            .query(
                "SELECT holder, run_id, host, pid, acquired_at, expires_at, instance \
                 FROM dmig_locks WHERE migration = ?",
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
            identity: c.opt_text("instance")?.as_deref().and_then(Identity::parse),
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
    /// (see the module's documentation): it fails with [`Renewal::Lost`]
    /// unless this host's row is still the lock's, and then holds that row's
    /// lock until the transaction ends; [`Renewal::Failed`] is the
    /// database's error (which may be transient: the caller decides).
    pub async fn renew_in(
        &self,
        conn: &mut Connection,
        run_id: Option<i64>,
    ) -> Result<(), Renewal> {
        self.renew_checked(conn, run_id).await
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

/// The error for a lock still held after `waited`. It never names the
/// waiting host itself: a live holder with this host's name and pid is
/// another process (in another container or PID namespace), and says so.
fn locked(migration: &str, holder: Option<Holder>, waited: Duration) -> Error {
    let mut holder = holder.unwrap_or(Holder {
        host: "an unknown host".into(),
        pid: 0,
        run_id: None,
        since: "just now".into(),
        expires_at: String::new(),
        identity: None,
    });
    if holder.host == this_host() && holder.pid == std::process::id() {
        holder.host = format!(
            "{} in another container or PID namespace (another process with this host name and pid)",
            holder.host
        );
    }
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
