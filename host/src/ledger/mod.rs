//! The ledger: what dmig has done to a database, kept in that database.
//!
//! Two tables, created on first use:
//!
//! * `dmig_migrations`: one row per migration name: the artifact's sha256,
//!   its state, when it was first applied and when a run last finished.
//! * `dmig_runs`: one row per attempt: direction, status, start and finish
//!   times, steps, rows processed, the last committed cursor (`last_cursor`),
//!   the error, the host version, and the key id of the signature that was
//!   verified before the run (`signer`, when `--trusted-keys` was given).
//! * `dmig_locks`: who is running which migration (see [`lock`]).
//!
//! The ledger is written through the same driver-neutral [`Connection`] as the
//! guest's statements, so its logic exists once; only the DDL differs per
//! database ([`schema`]). Checkpoints are written inside the step's own
//! transaction, which is what makes a crash resume exactly at a batch boundary.

pub mod lock;
mod schema;

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

/// Creates the ledger tables if they are missing, and adds the columns a
/// ledger made by an older dmig-host lacks.
pub async fn ensure_schema(conn: &mut Connection) -> Result<()> {
    for ddl in schema::ddl(conn.dialect()) {
        conn.execute(&ddl, &[])
            .await
            .map_err(|e| ledger_error("create tables", e))?;
    }
    if !has_signer_column(conn).await {
        conn.execute("ALTER TABLE dmig_runs ADD COLUMN signer TEXT", &[])
            .await
            .map_err(|e| ledger_error("upgrade tables", e))?;
    }
    // guestout (issue 14, item 7): the lock holder's identity.
    if conn
        .query("SELECT instance FROM dmig_locks WHERE 1 = 0", &[])
        .await
        .is_err()
    {
        conn.execute("ALTER TABLE dmig_locks ADD COLUMN instance TEXT", &[])
            .await
            .map_err(|e| ledger_error("upgrade tables", e))?;
    }
    Ok(())
}

/// Whether `dmig_runs` has the `signer` column (added in dmig-host 0.1 with
/// signed artifacts). Run outside a transaction: on PostgreSQL a failed
/// statement would poison one.
async fn has_signer_column(conn: &mut Connection) -> bool {
    conn.query("SELECT signer FROM dmig_runs WHERE 1 = 0", &[])
        .await
        .is_ok()
}

/// The run query, reading `signer` as NULL from a ledger too old to have it
/// (status and history upgrade nothing).
async fn run_select(conn: &mut Connection) -> String {
    let signer = if has_signer_column(conn).await {
        "signer"
    } else {
        "NULL AS signer"
    };
    format!("{RUN_SELECT}, {signer} FROM dmig_runs")
}

/// Whether this database has a ledger at all (without creating one).
pub async fn exists(conn: &mut Connection) -> Result<bool> {
    let (sql, params) = schema::table_exists(conn.dialect(), "dmig_migrations");
    let rows = conn
        .query(sql, &params)
        .await
        .map_err(|e| ledger_error("read", e))?;
    Ok(!rows.rows.is_empty())
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
    let select = run_select(conn).await;
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
    let sql = format!("{} ORDER BY id DESC", run_select(conn).await);
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
    let select = run_select(conn).await;
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

/// Marks the run succeeded and the migration applied (or reverted). Call
/// inside the last step's transaction.
pub async fn finish(
    conn: &mut Connection,
    run_id: i64,
    migration: &str,
    direction: Direction,
) -> Result<(), crate::db::DbError> {
    let finished = now();
    conn.execute(
        "UPDATE dmig_runs SET status = ?, finished_at = ? WHERE id = ?",
        &[
            RunStatus::Succeeded.as_str().into(),
            finished.as_str().into(),
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
    })
}
