//! One run per migration at a time, across hosts.
//!
//! On SQLite the lock is a lease: a row in `dmig_locks` naming the holder
//! (host, pid, run) with an expiry the holder renews after every step. A
//! holder that died releases the lock when its lease expires, or at once when
//! the next host runs on the same machine and sees the holder's process gone.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Cols, ledger_error, now};
use crate::db::Connection;
use crate::error::{Error, Result};

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
        migration: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Lock> {
        let host = this_host();
        let pid = std::process::id();
        let token = format!("{host}:{pid}:{}", now());
        let give_up = tokio::time::Instant::now() + timeout;
        loop {
            let inserted = conn
                .execute(
                    "INSERT INTO dmig_locks (migration, holder, host, pid, acquired_at, expires_at) \
                     VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (migration) DO NOTHING",
                    &[
                        migration.into(),
                        token.as_str().into(),
                        host.as_str().into(),
                        i64::from(pid).into(),
                        now().into(),
                        expiry(ttl).into(),
                    ],
                )
                .await
                .map_err(|e| ledger_error("take the lock", e))?;
            let lock = Lock {
                migration: migration.to_owned(),
                token: token.clone(),
                ttl,
            };
            if inserted == 1 {
                return Ok(lock);
            }
            if let Some((old_token, holder)) = Self::holder(conn, migration).await? {
                if is_stale(&holder) {
                    // Compare-and-swap on the old token: of several hosts
                    // seeing the same stale lock, one wins.
                    let taken = conn
                        .execute(
                            "UPDATE dmig_locks SET holder = ?, run_id = NULL, host = ?, pid = ?, \
                             acquired_at = ?, expires_at = ? WHERE migration = ? AND holder = ?",
                            &[
                                token.as_str().into(),
                                host.as_str().into(),
                                i64::from(pid).into(),
                                now().into(),
                                expiry(ttl).into(),
                                migration.into(),
                                old_token.into(),
                            ],
                        )
                        .await
                        .map_err(|e| ledger_error("take over the lock", e))?;
                    if taken == 1 {
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
                    continue;
                }
                if tokio::time::Instant::now() >= give_up {
                    return Err(Error::Locked {
                        name: migration.to_owned(),
                        run_id: holder.run_id,
                        host: holder.host,
                        pid: holder.pid,
                        since: holder.since,
                        waited: timeout,
                    });
                }
            }
            // A live holder: check again shortly (bounded by the timeout).
            let wait = Duration::from_millis(200).min(give_up - tokio::time::Instant::now());
            tokio::time::sleep(wait).await;
        }
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

    /// Records which run holds the lock, and extends the lease.
    pub async fn renew(&self, conn: &mut Connection, run_id: Option<i64>) -> Result<()> {
        conn.execute(
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
        .map(drop)
        .map_err(|e| ledger_error("renew the lock", e))
    }

    /// Gives the lock up.
    pub async fn release(self, conn: &mut Connection) -> Result<()> {
        conn.execute(
            "DELETE FROM dmig_locks WHERE migration = ? AND holder = ?",
            &[self.migration.as_str().into(), self.token.as_str().into()],
        )
        .await
        .map(drop)
        .map_err(|e| ledger_error("release the lock", e))
    }
}
