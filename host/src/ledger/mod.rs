//! The ledger: what dmig has done to a database, kept in that database.
//!
//! Its tables, created on first use:
//!
//! * `dmig_migrations`: one row per migration name: the artifact's sha256,
//!   its state, when it was first applied and when a run last finished.
//! * `dmig_runs`: one row per attempt: direction, status, start and finish
//!   times, steps, rows processed, the last committed cursor (`last_cursor`),
//!   the error, the host version, and the key id of the signature that was
//!   verified before the run (`signer`, when `--trusted-keys` was given),
//!   a note on a run that succeeded but ended short of its declared total
//!   (`note`), and how many times a step was retried (`retries`).
//! * `dmig_locks`: who is running which migration (see [`lock`]).
//! * `dmig_schema`: the ledger's schema version, one row per upgrade (see
//!   [`ensure_schema`]); a host refuses a ledger newer than it understands.
//!
//! The ledger is written through the same driver-neutral [`Connection`] as the
//! guest's statements, so its logic exists once; only the DDL differs per
//! database ([`schema`]). Checkpoints are written inside the step's own
//! transaction, which is what makes a crash resume exactly at a batch boundary.

pub mod lock;
mod schema;

pub use schema::SCHEMA_VERSION;

use std::fmt;

use serde::Serialize;

use crate::db::{Connection, Rows, Value};
use crate::error::{Error, Result};
use crate::runner::Direction;

/// Where a migration stands on this database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationState {
    /// A run started and has not finished (it is running, or its host died).
    Running,
    /// `up` finished.
    Applied,
    /// The last run failed; the next run resumes from its cursor.
    Failed,
    /// The last run was stopped (signal or `--max-steps`); the next run
    /// resumes from its cursor.
    Interrupted,
    /// `down` finished.
    Reverted,
}

/// How one run attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Still running, or its host died before recording an outcome.
    Running,
    Succeeded,
    Failed,
    /// Stopped on purpose before finishing; resumable.
    Interrupted,
}

macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            /// The form stored in the ledger.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),* }
            }

            fn parse(text: &str) -> Result<Self> {
                match text {
                    $($text => Ok($ty::$variant),)*
                    other => Err(corrupt(&format!("{} {other:?}", stringify!($ty)))),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(MigrationState { Running => "running", Applied => "applied", Failed => "failed", Interrupted => "interrupted", Reverted => "reverted" });
text_enum!(RunStatus { Running => "running", Succeeded => "succeeded", Failed => "failed", Interrupted => "interrupted" });

/// A row of `dmig_migrations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationRecord {
    pub name: String,
    pub sha256: String,
    pub description: String,
    pub state: MigrationState,
    pub first_applied_at: Option<String>,
    pub last_finished_at: Option<String>,
}

/// A row of `dmig_runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub migration: String,
    pub direction: Direction,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub steps: i64,
    pub rows_processed: i64,
    pub cursor: Option<String>,
    pub error: Option<String>,
    pub host_version: String,
    pub sha256: String,
    /// The key id whose signature was verified before the run, if one was.
    pub signer: Option<String>,
    /// What the runner noticed about a run that succeeded, e.g. that it
    /// processed fewer rows than the migration declared.
    pub note: Option<String>,
    /// How many times a step of this run was rolled back after a transient
    /// error (deadlock, serialization failure, lock timeout) and run again.
    pub retries: i64,
}

impl RunRecord {
    /// How long the run took, if it finished.
    pub fn duration(&self) -> Option<std::time::Duration> {
        let start = chrono::DateTime::parse_from_rfc3339(&self.started_at).ok()?;
        let end = chrono::DateTime::parse_from_rfc3339(self.finished_at.as_deref()?).ok()?;
        (end - start).to_std().ok()
    }
}

/// A migration with its most recent run, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationStatus {
    #[serde(flatten)]
    pub migration: MigrationRecord,
    pub last_run: Option<RunRecord>,
}

/// What a new run is, for [`start_run`].
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub migration: &'a str,
    pub description: &'a str,
    pub sha256: &'a str,
    pub direction: Direction,
    /// The cursor the run starts from: `None`, or a resumed run's cursor.
    pub cursor: Option<&'a str>,
    /// The key id of the verified signature, if the run required one.
    pub signer: Option<&'a str>,
}

/// The version written into every run row.
pub const HOST_VERSION: &str = env!("CARGO_PKG_VERSION");

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// How long a host waits for another host that is creating or upgrading the
/// ledger (MySQL; PostgreSQL waits within the statement timeout, SQLite
/// within its busy timeout).
const SCHEMA_LOCK_TIMEOUT_SECS: i64 = 60;

/// Creates the ledger if it is missing, or upgrades it in place to
/// [`SCHEMA_VERSION`], one ordered change at a time; a ledger already at
/// that version costs two small reads (whether `dmig_schema` exists, and its
/// highest version).
///
/// Safe when several hosts start at once: they take turns (PostgreSQL:
/// `pg_advisory_xact_lock` in the transaction around the DDL; MySQL: a
/// `GET_LOCK` named after the database around its self-committing DDL;
/// SQLite: `BEGIN IMMEDIATE`), and each one reads the version again once it
/// has its turn, so one creates or upgrades and the others find it done.
///
/// Safe beside older hosts still running (a rolling deploy): on PostgreSQL
/// an upgrade waits at most [`UPGRADE_LOCK_TIMEOUT`] for a table an older
/// host's open step holds (`lock_timeout`), so it never queues other
/// sessions behind it for long, and an upgrade that fails that way, or is
/// chosen as a deadlock's victim, or meets any other transient error (see
/// [`DbError::is_transient`](crate::db::DbError::is_transient)), is rolled
/// back and tried again after a jittered backoff, for up to
/// [`SCHEMA_LOCK_TIMEOUT_SECS`] seconds.
///
/// # Errors
///
/// [`Error::LedgerTooNew`] when a newer dmig-host has upgraded the ledger
/// past what this one understands (nothing is written); [`Error::Ledger`]
/// when the database fails, or keeps failing transiently.
pub async fn ensure_schema(conn: &mut Connection) -> Result<()> {
    let dialect = conn.dialect();
    let give_up = std::time::Instant::now()
        + std::time::Duration::from_secs(SCHEMA_LOCK_TIMEOUT_SECS.unsigned_abs());
    let mut attempt = 0;
    loop {
        match ensure_schema_once(conn).await {
            Err(Error::Ledger { action, source })
                if source.is_transient(dialect) && std::time::Instant::now() < give_up =>
            {
                attempt += 1;
                let wait = crate::db::backoff::backoff(attempt, crate::db::backoff::jitter());
                tracing::warn!(
                    attempt,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    error = %source,
                    "could not {action} for now; trying again"
                );
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// How long a PostgreSQL ledger upgrade waits for a lock on a ledger table
/// before it rolls back and tries again.
pub const UPGRADE_LOCK_TIMEOUT: &str = "2s";

/// One attempt of [`ensure_schema`].
async fn ensure_schema_once(conn: &mut Connection) -> Result<()> {
    if check_version(conn).await? == Some(SCHEMA_VERSION) {
        return Ok(());
    }
    let dialect = conn.dialect();
    let serialize = schema::serialize(dialect);
    let failed = |e| ledger_error("create or upgrade tables", e);
    match serialize {
        // MySQL: DDL commits by itself, so no transaction; a named lock.
        Some((take, Some(release))) => {
            let taken = conn
                .query(take, &[SCHEMA_LOCK_TIMEOUT_SECS.into()])
                .await
                .map_err(failed)?;
            if !matches!(
                taken.rows.first().and_then(|r| r.first()),
                Some(Value::Int(1) | Value::Boolean(true))
            ) {
                return Err(failed(crate::db::DbError {
                    number: None,
                    code: None,
                    message: format!(
                        "another host kept the ledger's schema lock for over {SCHEMA_LOCK_TIMEOUT_SECS} s (is one stuck creating the ledger?)"
                    ),
                }));
            }
            let result = upgrade(conn).await;
            let released = conn.query(release, &[]).await;
            result?;
            released.map_err(failed).map(drop)
        }
        // PostgreSQL and SQLite: DDL is transactional.
        other => {
            conn.begin().await.map_err(failed)?;
            let result = async {
                if let Some((take, _)) = other {
                    // `execute`: pg_advisory_xact_lock returns void.
                    conn.execute(take, &[]).await.map_err(failed)?;
                    // An ALTER TABLE waiting for an older host's step would
                    // queue every later session on that table behind it.
                    conn.execute(
                        &format!("SET LOCAL lock_timeout = '{UPGRADE_LOCK_TIMEOUT}'"),
                        &[],
                    )
                    .await
                    .map_err(failed)?;
                }
                upgrade(conn).await
            }
            .await;
            match result {
                Ok(()) => match conn.commit().await {
                    Ok(()) => Ok(()),
                    // A COMMIT that failed (SQLite: busy) may leave the
                    // transaction open; the retry begins a new one.
                    Err(e) => {
                        let _ = conn.rollback().await;
                        Err(failed(e))
                    }
                },
                Err(e) => {
                    let _ = conn.rollback().await;
                    Err(e)
                }
            }
        }
    }
}

/// Brings the ledger to [`SCHEMA_VERSION`]; the caller holds the schema
/// lock.
async fn upgrade(conn: &mut Connection) -> Result<()> {
    let dialect = conn.dialect();
    let failed = |e| ledger_error("create or upgrade tables", e);
    let found = check_version(conn).await?.unwrap_or(0);
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    // Without a recorded version (a ledger from before versions, or one
    // whose creation a host did not finish), every change is made again:
    // each is a no-op where it was made already.
    let first = match recorded_version(conn).await? {
        Some(_) => found + 1,
        None => 1,
    };
    conn.execute(&schema::version_table(dialect), &[])
        .await
        .map_err(failed)?;
    for version in first..=SCHEMA_VERSION {
        for change in schema::upgrade(dialect, version) {
            match change {
                schema::Change::Create(statements) => {
                    for ddl in statements {
                        conn.execute(&ddl, &[]).await.map_err(failed)?;
                    }
                }
                schema::Change::AddColumn {
                    table,
                    column,
                    definition,
                } => {
                    if !has_column(conn, table, column).await? {
                        let ddl = format!("ALTER TABLE {table} ADD COLUMN {column} {definition}");
                        conn.execute(&ddl, &[]).await.map_err(failed)?;
                    }
                }
            }
        }
        conn.execute(
            "INSERT INTO dmig_schema (version, applied_at, host_version) VALUES (?, ?, ?)",
            &[version.into(), now().into(), HOST_VERSION.into()],
        )
        .await
        .map_err(failed)?;
    }
    tracing::info!(from = found, to = SCHEMA_VERSION, "ledger schema upgraded");
    Ok(())
}

/// The ledger's version, refusing one newer than this host understands;
/// `None` when the database has no ledger.
async fn check_version(conn: &mut Connection) -> Result<Option<i64>> {
    let Some((version, by)) = schema_version(conn).await? else {
        return Ok(None);
    };
    if version > SCHEMA_VERSION {
        return Err(Error::LedgerTooNew {
            found: version,
            upgraded_by: by,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(Some(version))
}

/// The ledger's schema version and the dmig-host version that brought it
/// there (unknown for ledgers made before versioning); `None` when the
/// database has no ledger. Reads only.
pub async fn schema_version(conn: &mut Connection) -> Result<Option<(i64, String)>> {
    if let Some(recorded) = recorded_version(conn).await? {
        return Ok(Some(recorded));
    }
    if !table_exists(conn, "dmig_migrations").await? {
        return Ok(None);
    }
    let legacy = if has_column(conn, "dmig_runs", "signer").await? {
        2
    } else {
        1
    };
    Ok(Some((legacy, "a dmig-host before ledger versions".into())))
}

/// The highest version recorded in `dmig_schema`, and by which dmig-host;
/// `None` when there is no such table or row.
async fn recorded_version(conn: &mut Connection) -> Result<Option<(i64, String)>> {
    if !table_exists(conn, "dmig_schema").await? {
        return Ok(None);
    }
    let rows = conn
        .query(
            "SELECT version, host_version FROM dmig_schema ORDER BY version DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(|e| ledger_error("read the schema version", e))?;
    rows.rows
        .first()
        .map(|row| {
            let c = Cols { rows: &rows, row };
            Ok((c.int("version")?, c.text("host_version")?))
        })
        .transpose()
}

async fn table_exists(conn: &mut Connection, table: &str) -> Result<bool> {
    let (sql, params) = schema::table_exists(conn.dialect(), table);
    let rows = conn
        .query(sql, &params)
        .await
        .map_err(|e| ledger_error("read", e))?;
    Ok(!rows.rows.is_empty())
}

async fn has_column(conn: &mut Connection, table: &str, column: &str) -> Result<bool> {
    let (sql, params) = schema::column_exists(conn.dialect(), table, column);
    let rows = conn
        .query(sql, &params)
        .await
        .map_err(|e| ledger_error("read", e))?;
    Ok(!rows.rows.is_empty())
}

/// The run query for a ledger of this version, reading the columns an older
/// ledger lacks as NULL or 0 (status and history upgrade nothing).
async fn run_select(conn: &mut Connection) -> Result<String> {
    let version = schema_version(conn)
        .await?
        .map_or(SCHEMA_VERSION, |(v, _)| v);
    let signer = if version >= 2 {
        "signer"
    } else {
        "NULL AS signer"
    };
    let added = if version >= 3 {
        "note, retries"
    } else {
        "NULL AS note, 0 AS retries"
    };
    Ok(format!("{RUN_SELECT}, {signer}, {added} FROM dmig_runs"))
}

/// Whether this database has a ledger at all (without creating one).
pub async fn exists(conn: &mut Connection) -> Result<bool> {
    table_exists(conn, "dmig_migrations").await
}

/// The ledger row of migration `name`, if it ever ran here.
pub async fn migration(conn: &mut Connection, name: &str) -> Result<Option<MigrationRecord>> {
    let rows = conn
        .query(
            "SELECT name, sha256, description, state, first_applied_at, last_finished_at \
             FROM dmig_migrations WHERE name = ?",
            &[name.into()],
        )
        .await
        .map_err(|e| ledger_error("read", e))?;
    rows.rows
        .iter()
        .map(|r| migration_from_row(&rows, r))
        .next()
        .transpose()
}

/// The most recent run of migration `name`, if any.
pub async fn latest_run(conn: &mut Connection, name: &str) -> Result<Option<RunRecord>> {
    let select = run_select(conn).await?;
    latest_run_with(conn, &select, name).await
}

/// [`latest_run`] with the run query already chosen, so a loop probes the
/// ledger's columns once.
async fn latest_run_with(
    conn: &mut Connection,
    select: &str,
    name: &str,
) -> Result<Option<RunRecord>> {
    let sql = format!("{select} WHERE migration = ? ORDER BY id DESC LIMIT 1");
    let rows = conn
        .query(&sql, &[name.into()])
        .await
        .map_err(|e| ledger_error("read", e))?;
    rows.rows
        .iter()
        .map(|r| run_from_row(&rows, r))
        .next()
        .transpose()
}

/// Every run, newest first.
pub async fn runs(conn: &mut Connection) -> Result<Vec<RunRecord>> {
    let sql = format!("{} ORDER BY id DESC", run_select(conn).await?);
    let rows = conn
        .query(&sql, &[])
        .await
        .map_err(|e| ledger_error("read", e))?;
    rows.rows.iter().map(|r| run_from_row(&rows, r)).collect()
}

/// Every migration with its most recent run, by name.
pub async fn status(conn: &mut Connection) -> Result<Vec<MigrationStatus>> {
    let rows = conn
        .query(
            "SELECT name, sha256, description, state, first_applied_at, last_finished_at \
             FROM dmig_migrations ORDER BY name",
            &[],
        )
        .await
        .map_err(|e| ledger_error("read", e))?;
    let select = run_select(conn).await?;
    let mut statuses = Vec::with_capacity(rows.rows.len());
    for row in &rows.rows {
        let migration = migration_from_row(&rows, row)?;
        let last_run = latest_run_with(conn, &select, &migration.name).await?;
        statuses.push(MigrationStatus {
            migration,
            last_run,
        });
    }
    Ok(statuses)
}

/// Records the start of a run (and the migration, if new) in its own
/// transaction, and returns the run's id.
pub async fn start_run(conn: &mut Connection, run: &NewRun<'_>) -> Result<i64> {
    let started = now();
    conn.begin().await.map_err(|e| ledger_error("begin", e))?;
    let result = async {
        let updated = conn
            .execute(
                "UPDATE dmig_migrations SET sha256 = ?, description = ?, state = ? WHERE name = ?",
                &[
                    run.sha256.into(),
                    run.description.into(),
                    MigrationState::Running.as_str().into(),
                    run.migration.into(),
                ],
            )
            .await?;
        if updated == 0 {
            conn.execute(
                "INSERT INTO dmig_migrations (name, sha256, description, state) VALUES (?, ?, ?, ?)",
                &[
                    run.migration.into(),
                    run.sha256.into(),
                    run.description.into(),
                    MigrationState::Running.as_str().into(),
                ],
            )
            .await?;
        }
        let (_, id) = conn
            .execute_returning_id(
                "INSERT INTO dmig_runs (migration, direction, status, started_at, steps, \
                 rows_processed, last_cursor, host_version, sha256, signer) \
                 VALUES (?, ?, ?, ?, 0, 0, ?, ?, ?, ?)",
                &[
                    run.migration.into(),
                    run.direction.as_str().into(),
                    RunStatus::Running.as_str().into(),
                    started.into(),
                    run.cursor.into(),
                    HOST_VERSION.into(),
                    run.sha256.into(),
                    run.signer.into(),
                ],
            )
            .await?;
        Ok(id)
    }
    .await;
    match result {
        Ok(id) => {
            conn.commit().await.map_err(|e| ledger_error("commit", e))?;
            Ok(id)
        }
        Err(e) => {
            let _ = conn.rollback().await;
            Err(ledger_error("start run", e))
        }
    }
}

/// A digest of the ledger's contents as this transaction sees them: the
/// migrations and runs, and on SQLite (where the row is the lock, and the
/// step's transaction excludes every other writer) the locks. The runner
/// compares it before and after a step of an artifact whose SQL the gate
/// cannot bound (raw SQL, or no manifest): a guest can build a statement
/// that reaches the ledger through dynamic SQL without ever naming it, and
/// this catches every change it makes, whatever the text.
pub async fn digest(conn: &mut Connection) -> Result<[u8; 32], crate::db::DbError> {
    use sha2::Digest as _;
    let mut queries = vec![
        "SELECT * FROM dmig_migrations ORDER BY name",
        "SELECT * FROM dmig_runs ORDER BY id",
    ];
    if conn.dialect() == crate::db::Dialect::Sqlite {
        queries.push("SELECT * FROM dmig_locks ORDER BY migration");
    }
    let mut hash = sha2::Sha256::new();
    for sql in queries {
        let rows = conn.query(sql, &[]).await?;
        hash.update(format!("{:?}{:?}", rows.columns, rows.rows).as_bytes());
        hash.update([0]);
    }
    Ok(hash.finalize().into())
}

/// Records one finished step. Call inside the step's transaction, so the
/// cursor commits or rolls back together with the step's writes.
///
/// # Errors
///
/// The database's error; or, when `processed` would take the run's
/// `rows_processed` past `i64::MAX` (where SQLite would turn the counter
/// into a float and PostgreSQL and MySQL refuse it), an error saying so,
/// having written nothing.
pub async fn checkpoint(
    conn: &mut Connection,
    run_id: i64,
    cursor: Option<&str>,
    processed: u64,
) -> Result<(), crate::db::DbError> {
    let too_many = || crate::db::DbError {
        number: None,
        code: None,
        message: format!(
            "the step reported {processed} rows, which takes the run's row count past {} \
             (the ledger's limit); the step was rolled back",
            i64::MAX
        ),
    };
    let processed = i64::try_from(processed).map_err(|_| too_many())?;
    let updated = conn
        .execute(
            "UPDATE dmig_runs SET steps = steps + 1, rows_processed = rows_processed + ?, \
             last_cursor = ? WHERE id = ? AND rows_processed <= ?",
            &[
                processed.into(),
                cursor.into(),
                run_id.into(),
                (i64::MAX - processed).into(),
            ],
        )
        .await?;
    if updated == 0 {
        return Err(too_many());
    }
    Ok(())
}

/// Marks the run succeeded, with the runner's `note` if it has one, and the
/// migration applied (or reverted). Call inside the last step's transaction.
pub async fn finish(
    conn: &mut Connection,
    run_id: i64,
    migration: &str,
    direction: Direction,
    note: Option<&str>,
) -> Result<(), crate::db::DbError> {
    let finished = now();
    conn.execute(
        "UPDATE dmig_runs SET status = ?, finished_at = ?, note = ? WHERE id = ?",
        &[
            RunStatus::Succeeded.as_str().into(),
            finished.as_str().into(),
            note.into(),
            run_id.into(),
        ],
    )
    .await?;
    let state = match direction {
        Direction::Up => MigrationState::Applied,
        Direction::Down => MigrationState::Reverted,
    };
    conn.execute(
        "UPDATE dmig_migrations SET state = ?, last_finished_at = ?, \
         first_applied_at = CASE WHEN ? AND first_applied_at IS NULL THEN ? ELSE first_applied_at END \
         WHERE name = ?",
        &[
            state.as_str().into(),
            finished.as_str().into(),
            Value::Boolean(direction == Direction::Up),
            finished.as_str().into(),
            migration.into(),
        ],
    )
    .await
    .map(drop)
}

/// Longest error text the ledger stores, in bytes. Longer is cut with the
/// marker `… [truncated N bytes]`, the same on every database (MySQL's
/// `TEXT` holds 65,535 bytes, and a write it refused would leave the run
/// `running`).
pub const MAX_ERROR: usize = 16 * 1024;

/// Counts one retry of a step of run `run_id` (a statement of its own, after
/// the failed attempt was rolled back).
pub async fn count_retry(conn: &mut Connection, run_id: i64) -> Result<()> {
    conn.execute(
        "UPDATE dmig_runs SET retries = retries + 1 WHERE id = ?",
        &[run_id.into()],
    )
    .await
    .map(drop)
    .map_err(|e| ledger_error("count a retry", e))
}

/// Records a failed run in its own transaction. Call after the failed step
/// was rolled back. `error` is stored on one line (control characters
/// escaped: PostgreSQL refuses NUL, and the text is shown to operators), cut
/// to [`MAX_ERROR`] bytes.
pub async fn fail(conn: &mut Connection, run_id: i64, migration: &str, error: &str) -> Result<()> {
    let error = crate::sandbox::text::one_line(error, MAX_ERROR);
    end_run(
        conn,
        run_id,
        migration,
        RunStatus::Failed,
        MigrationState::Failed,
        Some(&error),
    )
    .await
}

/// Records a run stopped on purpose (a signal, `--max-steps`), resumable
/// from its last committed cursor.
pub async fn interrupt(conn: &mut Connection, run_id: i64, migration: &str) -> Result<()> {
    end_run(
        conn,
        run_id,
        migration,
        RunStatus::Interrupted,
        MigrationState::Interrupted,
        None,
    )
    .await
}

/// Marks runs of `migration` still `running` as failed, because their host
/// is known to be gone (its lock was taken over).
pub async fn abandon_running(conn: &mut Connection, migration: &str, why: &str) -> Result<()> {
    conn.execute(
        "UPDATE dmig_runs SET status = ?, finished_at = ?, error = ? WHERE migration = ? AND status = ?",
        &[
            RunStatus::Failed.as_str().into(),
            now().into(),
            why.into(),
            migration.into(),
            RunStatus::Running.as_str().into(),
        ],
    )
    .await
    .map(drop)
    .map_err(|e| ledger_error("record an abandoned run", e))
}

async fn end_run(
    conn: &mut Connection,
    run_id: i64,
    migration: &str,
    status: RunStatus,
    state: MigrationState,
    error: Option<&str>,
) -> Result<()> {
    let finished = now();
    conn.begin().await.map_err(|e| ledger_error("begin", e))?;
    let result = async {
        conn.execute(
            "UPDATE dmig_runs SET status = ?, finished_at = ?, error = ? WHERE id = ?",
            &[
                status.as_str().into(),
                finished.as_str().into(),
                error.into(),
                run_id.into(),
            ],
        )
        .await?;
        // Not over a newer run's state: a run that lost its lock records its
        // end after another host took the migration over.
        conn.execute(
            "UPDATE dmig_migrations SET state = ?, last_finished_at = ? WHERE name = ? \
             AND NOT EXISTS (SELECT 1 FROM dmig_runs WHERE migration = ? AND id > ?)",
            &[
                state.as_str().into(),
                finished.as_str().into(),
                migration.into(),
                migration.into(),
                run_id.into(),
            ],
        )
        .await
    }
    .await;
    match result {
        Ok(_) => conn.commit().await.map_err(|e| ledger_error("commit", e)),
        Err(e) => {
            let _ = conn.rollback().await;
            Err(ledger_error("record the outcome", e))
        }
    }
}

const RUN_SELECT: &str = "SELECT id, migration, direction, status, started_at, finished_at, steps, \
     rows_processed, last_cursor, error, host_version, sha256";

pub(crate) fn ledger_error(action: &'static str, source: crate::db::DbError) -> Error {
    Error::Ledger { action, source }
}

/// Reads typed columns from a ledger row by name.
struct Cols<'a> {
    rows: &'a Rows,
    row: &'a [Value],
}

impl Cols<'_> {
    fn value(&self, name: &str) -> &Value {
        let index = self
            .rows
            .columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .expect("ledger queries select every column they read");
        &self.row[index]
    }

    fn text(&self, name: &str) -> Result<String> {
        self.opt_text(name)?.ok_or_else(|| corrupt(name))
    }

    fn opt_text(&self, name: &str) -> Result<Option<String>> {
        match self.value(name) {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            _ => Err(corrupt(name)),
        }
    }

    fn int(&self, name: &str) -> Result<i64> {
        self.value(name).as_i64().ok_or_else(|| corrupt(name))
    }
}

fn corrupt(what: &str) -> Error {
    Error::Ledger {
        action: "read",
        source: crate::db::DbError {
            number: None,
            code: None,
            message: format!("unexpected value in the ledger: {what} (was dmig_ edited by hand?)"),
        },
    }
}

fn migration_from_row(rows: &Rows, row: &[Value]) -> Result<MigrationRecord> {
    let c = Cols { rows, row };
    Ok(MigrationRecord {
        name: c.text("name")?,
        sha256: c.text("sha256")?,
        description: c.opt_text("description")?.unwrap_or_default(),
        state: MigrationState::parse(&c.text("state")?)?,
        first_applied_at: c.opt_text("first_applied_at")?,
        last_finished_at: c.opt_text("last_finished_at")?,
    })
}

fn run_from_row(rows: &Rows, row: &[Value]) -> Result<RunRecord> {
    let c = Cols { rows, row };
    Ok(RunRecord {
        id: c.int("id")?,
        migration: c.text("migration")?,
        direction: Direction::parse(&c.text("direction")?).ok_or_else(|| corrupt("direction"))?,
        status: RunStatus::parse(&c.text("status")?)?,
        started_at: c.text("started_at")?,
        finished_at: c.opt_text("finished_at")?,
        steps: c.int("steps")?,
        rows_processed: c.int("rows_processed")?,
        cursor: c.opt_text("last_cursor")?,
        error: c.opt_text("error")?,
        host_version: c.text("host_version")?,
        sha256: c.text("sha256")?,
        signer: c.opt_text("signer")?,
        note: c.opt_text("note")?,
        retries: c.int("retries")?,
    })
}
