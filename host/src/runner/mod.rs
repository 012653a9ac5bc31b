//! Running a migration: the loop of host-owned transactions, one per step,
//! each committing the step's writes together with its ledger checkpoint.
//!
//! * [`events`]: what a run reports as it goes.
//! * [`stop`]: stopping a run from outside (signals).
//! * [`directory`]: running a directory of artifacts in order.
//! * [`retry`]: running a step again after a transient error.
//! * `checks`: steps that do not advance, runs that end short of their total.
//! * `steps`: the step loop itself, for real runs and dry runs.

mod checks;
pub mod directory;
pub mod events;
pub mod retry;
mod steps;
pub mod stop;

pub use checks::DEFAULT_MAX_STALLED_STEPS;

use std::fmt;
use std::time::Duration;

use serde::Serialize;

pub use directory::{ArtifactStatus, PendingState, artifacts_in, directory_status};
pub use events::{Event, Observer, Quiet};
pub use stop::StopHandle;

use crate::artifact::Artifact;
use crate::db::Connection;
use crate::error::{Error, Result};
use crate::ledger::{self, MigrationState, RunStatus};
use crate::sandbox::{GuestFailure, Metadata, Sandbox};

use crate::signing::{self, TrustedKeys};

/// Which way a migration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    /// The form stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "up" => Some(Direction::Up),
            "down" => Some(Direction::Down),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Operator choices for one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run `up` again even though the migration is applied, from the start.
    pub force: bool,
    /// Start from the beginning instead of resuming an unfinished run.
    pub restart: bool,
    /// Run even though the artifact's sha256 differs from the applied one.
    pub allow_changed: bool,
    /// Named arguments for the guest (`--arg key=value`), in order.
    pub args: Vec<(String, String)>,
    /// Wait this long between steps, to spare a busy database.
    pub pause: Option<Duration>,
    /// Stop as interrupted (resumable) after this many steps.
    pub max_steps: Option<u64>,
    /// Run every step in one transaction, report, and roll it all back.
    pub dry_run: bool,
    /// How long to wait for another host's lock on the migration.
    pub lock_timeout: Duration,
    /// Run an artifact that carries no manifest, unrestricted.
    ///
    /// # Warning
    ///
    /// Such an artifact may touch any table (but the ledger's): nothing a
    /// reviewer saw limits it.
    pub allow_undeclared: bool,
    /// Require a valid signature by one of these keys before anything of the
    /// artifact is compiled or run.
    pub trusted_keys: Option<TrustedKeys>,
    /// How many times one step may be rolled back after a transient error
    /// (deadlock, serialization failure, lock timeout) and run again from
    /// the same cursor; 0 fails at the first. See [`retry`].
    pub retries: u32,
    /// Fail the run once this many steps in a row returned the cursor they
    /// were given and changed no rows; 0 never does.
    pub max_stalled_steps: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            force: false,
            restart: false,
            allow_changed: false,
            args: Vec::new(),
            pause: None,
            max_steps: None,
            dry_run: false,
            lock_timeout: Duration::from_secs(30),
            allow_undeclared: false,
            trusted_keys: None,
            retries: retry::DEFAULT_RETRIES,
            max_stalled_steps: DEFAULT_MAX_STALLED_STEPS,
        }
    }
}

/// What a successful call of [`Runner::run`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub migration: String,
    pub direction: Direction,
    pub kind: OutcomeKind,
    /// The ledger id of the run, if one was recorded (not for dry runs).
    pub run_id: Option<i64>,
    /// Steps this run committed (in a dry run: ran, then rolled back).
    pub steps: u64,
    /// Rows the guest reported processing in this run.
    pub rows: u64,
    /// The cursor this run resumed from, if it continued an unfinished run.
    pub resumed_from: Option<String>,
    /// Net row count change per table (dry runs only).
    pub changes: Vec<TableChange>,
    /// Steps of this run that were rolled back after a transient error and
    /// run again.
    pub retries: u64,
    /// What the runner noticed about a run that succeeded (it ended short of
    /// the total the migration declared, or past it); also in the ledger.
    pub note: Option<String>,
    #[serde(serialize_with = "as_secs")]
    pub elapsed: Duration,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// How a run ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// Every step ran; the migration is now applied (or reverted).
    Completed,
    /// The migration was already applied: nothing ran.
    AlreadyApplied,
    /// A dry run: every step ran in one transaction, then it was rolled back.
    DryRun,
}

/// How many rows a table had before and after a dry run's steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableChange {
    pub table: String,
    pub before: i64,
    pub after: i64,
}

impl TableChange {
    /// Rows added (positive) or removed (negative).
    pub fn net(&self) -> i64 {
        self.after - self.before
    }
}

/// Runs migrations in a sandbox against a database.
pub struct Runner {
    sandbox: Sandbox,
}

impl Runner {
    /// A runner whose migrations run in `sandbox`.
    pub fn new(sandbox: Sandbox) -> Self {
        Runner { sandbox }
    }

    /// Runs `artifact` in `direction` against the database at `url`, with no
    /// observer and no way to stop it early. See [`Runner::run_with`].
    pub async fn run(
        &self,
        artifact: &Artifact,
        url: &str,
        direction: Direction,
        options: &RunOptions,
    ) -> Result<Outcome> {
        self.run_with(
            artifact,
            url,
            direction,
            options,
            &mut Quiet,
            &StopHandle::new(),
        )
        .await
    }

    /// Runs `artifact` in `direction` against the database at `url`,
    /// reporting to `observer` and stopping when `stop` says so.
    ///
    /// The artifact is checked before the database is touched (its signature
    /// first, when trusted keys are required, then its manifest and its
    /// world), so a bad artifact leaves the database as it was.
    ///
    /// # Errors
    ///
    /// Artifact errors, signature errors ([`Error::Unsigned`],
    /// [`Error::BadSignature`], [`Error::UntrustedSigner`]), manifest errors
    /// ([`Error::Undeclared`], [`Error::ManifestMismatch`]),
    /// [`Error::Connect`], refusals ([`Error::NotReversible`],
    /// [`Error::NotApplied`], [`Error::ArtifactMismatch`]), [`Error::Locked`],
    /// [`Error::Ledger`], [`Error::Interrupted`] (resumable), and
    /// [`Error::MigrationFailed`] after the failed step was rolled back and
    /// recorded.
    pub async fn run_with(
        &self,
        artifact: &Artifact,
        url: &str,
        direction: Direction,
        options: &RunOptions,
        observer: &mut dyn Observer,
        stop: &StopHandle,
    ) -> Result<Outcome> {
        let signer = match &options.trusted_keys {
            Some(trusted) => Some(signing::verify(artifact, trusted)?.key_id),
            None => None,
        };
        // The world first: "not a migration" says more than "no manifest".
        let loaded = self.sandbox.load(artifact)?;
        if artifact.manifest().is_none() && !options.allow_undeclared {
            return Err(Error::Undeclared {
                path: artifact.path().to_path_buf(),
            });
        }
        let mut conn = Connection::connect(url).await?;
        conn.set_statement_timeout(self.sandbox.step_timeout())
            .await
            .map_err(|e| ledger::ledger_error("set the statement timeout", e))?;
        let mut instance = self
            .sandbox
            .instantiate(&loaded, conn, options.args.clone())
            .await?;
        let meta = instance
            .describe()
            .await
            .map_err(|failure| Error::DescribeFailed {
                path: artifact.path().to_path_buf(),
                reason: match failure {
                    GuestFailure::Returned(m)
                    | GuestFailure::Trapped(m)
                    | GuestFailure::Refused(m) => m,
                },
            })?;
        if let Some(manifest) = artifact.manifest()
            && let Err(d) = manifest.check_described(&meta.name, &meta.description, meta.reversible)
        {
            return Err(Error::ManifestMismatch {
                path: artifact.path().to_path_buf(),
                field: d.field,
                manifest: d.manifest,
                described: d.described,
            });
        }
        if direction == Direction::Down && !meta.reversible {
            return Err(Error::NotReversible { name: meta.name });
        }
        let run = steps::Run {
            url,
            sandbox: &self.sandbox,
            loaded: &loaded,
            meta,
            sha256: artifact.sha256().to_owned(),
            direction,
            options,
            step_timeout: self.sandbox.step_timeout(),
            signer,
        };
        if options.dry_run {
            return run.dry(&mut instance, observer, stop).await;
        }
        if let Some(outcome) = run.already_applied(&mut instance, observer).await? {
            return Ok(outcome);
        }
        ledger::ensure_schema(instance.connection()).await?;
        let lock = ledger::lock::Lock::acquire(
            instance.connection(),
            url,
            &run.meta.name,
            run.lease_ttl(),
            options.lock_timeout,
        )
        .await?;
        let result = run.real(&mut instance, &lock, observer, stop).await;
        let released = if instance.connection().is_abandoned() {
            // The run's connection was given up (a statement on it would not
            // stop): release over a new one.
            match Connection::connect(url).await {
                Ok(mut fresh) => lock.release(&mut fresh).await,
                Err(e) => Err(e),
            }
        } else {
            lock.release(instance.connection()).await
        };
        if let Err(e) = released {
            tracing::warn!("could not release the lock (it will expire): {e}");
        }
        result
    }
}

/// Where a run starts, decided from the ledger before any step runs.
pub(crate) enum Start {
    /// Already applied: nothing to do.
    Nothing,
    /// From `cursor`; `resumed` when continuing an unfinished run.
    From {
        cursor: Option<String>,
        resumed: bool,
    },
}

/// Decides where a run starts, or refuses it.
pub(crate) async fn plan(
    conn: &mut Connection,
    meta: &Metadata,
    sha256: &str,
    direction: Direction,
    options: &RunOptions,
) -> Result<Start> {
    let record = ledger::migration(conn, &meta.name).await?;
    if let Some(record) = &record
        && record.sha256 != sha256
        && !options.allow_changed
    {
        return Err(Error::ArtifactMismatch {
            name: meta.name.clone(),
            expected: record.sha256.clone(),
            found: sha256.to_owned(),
        });
    }
    match (direction, record.map(|r| r.state)) {
        (Direction::Up, Some(MigrationState::Applied)) if !options.force => {
            return Ok(Start::Nothing);
        }
        (Direction::Down, None | Some(MigrationState::Reverted)) => {
            return Err(Error::NotApplied {
                name: meta.name.clone(),
            });
        }
        _ => {}
    }
    if !options.restart
        && !options.force
        && let Some(last) = ledger::latest_run(conn, &meta.name).await?
        && last.status != RunStatus::Succeeded
        && last.direction == direction
        && last.cursor.is_some()
    {
        tracing::info!(
            run = last.id,
            cursor = last.cursor.as_deref(),
            "resuming the unfinished run"
        );
        return Ok(Start::From {
            cursor: last.cursor,
            resumed: true,
        });
    }
    Ok(Start::From {
        cursor: None,
        resumed: false,
    })
}

/// The ledger of the database at `url`: every migration with its last run.
/// Creates nothing: a database without a ledger has no migrations.
///
/// # Errors
///
/// [`Error::Connect`] or [`Error::Ledger`].
pub async fn status(url: &str) -> Result<Vec<ledger::MigrationStatus>> {
    match existing_ledger(url).await? {
        Some(mut conn) => ledger::status(&mut conn).await,
        None => Ok(Vec::new()),
    }
}

/// Every run recorded in the database at `url`, newest first.
///
/// # Errors
///
/// [`Error::Connect`] or [`Error::Ledger`].
pub async fn history(url: &str) -> Result<Vec<ledger::RunRecord>> {
    match existing_ledger(url).await? {
        Some(mut conn) => ledger::runs(&mut conn).await,
        None => Ok(Vec::new()),
    }
}

/// A connection to the database at `url` if it has a ledger; creates
/// neither the database nor the ledger.
async fn existing_ledger(url: &str) -> Result<Option<Connection>> {
    let mut conn = Connection::connect_existing(url).await?;
    Ok(ledger::exists(&mut conn).await?.then_some(conn))
}
