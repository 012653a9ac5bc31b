//! Running a migration: the loop of host-owned transactions, one per step,
//! each committing the step's writes together with its ledger checkpoint.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::artifact::Artifact;
use crate::db::Connection;
use crate::error::{Error, FailureCause, Result};
use crate::ledger::{self, MigrationState, NewRun, RunStatus};
use crate::sandbox::{GuestFailure, Instance, Metadata, Sandbox};

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
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run `up` again even though the migration is applied, from the start.
    pub force: bool,
    /// Start from the beginning instead of resuming an unfinished run.
    pub restart: bool,
    /// Run even though the artifact's sha256 differs from the applied one.
    pub allow_changed: bool,
}

/// What a successful call of [`Runner::run`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub migration: String,
    pub direction: Direction,
    pub kind: OutcomeKind,
    /// The ledger id of the run, if one was started.
    pub run_id: Option<i64>,
    /// Steps committed by this run.
    pub steps: u64,
    /// Rows the guest reported processing in this run.
    pub rows: u64,
    /// The cursor this run resumed from, if it continued an unfinished run.
    pub resumed_from: Option<String>,
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

    /// Runs `artifact` in `direction` against the database at `url`.
    ///
    /// The artifact is read and checked before the database is touched, so a
    /// bad artifact leaves the database as it was.
    ///
    /// # Errors
    ///
    /// Artifact errors, [`Error::Connect`], refusals ([`Error::NotReversible`],
    /// [`Error::NotApplied`], [`Error::ArtifactMismatch`]), [`Error::Ledger`],
    /// and [`Error::MigrationFailed`] after the failed step was rolled back and
    /// recorded.
    pub async fn run(
        &self,
        artifact: &Artifact,
        url: &str,
        direction: Direction,
        options: &RunOptions,
    ) -> Result<Outcome> {
        let loaded = self.sandbox.load(artifact)?;
        let conn = Connection::connect(url).await?;
        let mut instance = self.sandbox.instantiate(&loaded, conn).await?;
        let meta = instance
            .describe()
            .await
            .map_err(|failure| Error::DescribeFailed {
                path: artifact.path().to_path_buf(),
                reason: match failure {
                    GuestFailure::Returned(m) | GuestFailure::Trapped(m) => m,
                },
            })?;
        if direction == Direction::Down && !meta.reversible {
            return Err(Error::NotReversible { name: meta.name });
        }
        RunPlan::new(&mut instance, artifact, meta, direction, options)
            .await?
            .execute(&mut instance)
            .await
    }
}

/// What a run will do, decided from the ledger before any step runs.
struct RunPlan {
    meta: Metadata,
    sha256: String,
    direction: Direction,
    /// `None`: nothing to do (already applied).
    start: Option<Option<String>>,
    resumed: bool,
}

impl RunPlan {
    async fn new(
        instance: &mut Instance,
        artifact: &Artifact,
        meta: Metadata,
        direction: Direction,
        options: &RunOptions,
    ) -> Result<Self> {
        let conn = instance.connection();
        ledger::ensure_schema(conn).await?;
        let record = ledger::migration(conn, &meta.name).await?;
        if let Some(record) = &record
            && record.sha256 != artifact.sha256()
            && !options.allow_changed
        {
            return Err(Error::ArtifactMismatch {
                name: meta.name,
                expected: record.sha256.clone(),
                found: artifact.sha256().to_owned(),
            });
        }
        let state = record.as_ref().map(|r| r.state);
        let mut plan = RunPlan {
            sha256: artifact.sha256().to_owned(),
            direction,
            start: Some(None),
            resumed: false,
            meta,
        };
        match (direction, state) {
            (Direction::Up, Some(MigrationState::Applied)) if !options.force => {
                plan.start = None;
                return Ok(plan);
            }
            (Direction::Down, None | Some(MigrationState::Reverted)) => {
                return Err(Error::NotApplied {
                    name: plan.meta.name,
                });
            }
            _ => {}
        }
        if !options.restart
            && !options.force
            && let Some(last) = ledger::latest_run(conn, &plan.meta.name).await?
            && last.status != RunStatus::Succeeded
            && last.direction == direction
            && last.cursor.is_some()
        {
            tracing::info!(
                run = last.id,
                cursor = last.cursor.as_deref(),
                "resuming the unfinished run"
            );
            plan.start = Some(last.cursor);
            plan.resumed = true;
        }
        Ok(plan)
    }

    async fn execute(self, instance: &mut Instance) -> Result<Outcome> {
        let started = Instant::now();
        let name = self.meta.name.clone();
        let Some(mut cursor) = self.start.clone() else {
            return Ok(Outcome {
                migration: name,
                direction: self.direction,
                kind: OutcomeKind::AlreadyApplied,
                run_id: None,
                steps: 0,
                rows: 0,
                resumed_from: None,
                elapsed: started.elapsed(),
            });
        };
        let resumed_from = self.resumed.then(|| cursor.clone()).flatten();
        let run_id = ledger::start_run(
            instance.connection(),
            &NewRun {
                migration: &name,
                description: &self.meta.description,
                sha256: &self.sha256,
                direction: self.direction,
                cursor: cursor.as_deref(),
            },
        )
        .await?;
        tracing::info!(run = run_id, migration = %name, direction = %self.direction, "run started");

        let (mut steps, mut rows) = (0u64, 0u64);
        loop {
            let failed = |cause| Failure {
                run_id,
                step: steps + 1,
                cursor: cursor.clone(),
                cause,
            };
            let step = match self.step(instance, run_id, cursor.as_deref()).await {
                Ok(step) => step,
                Err(cause) => return Err(failed(cause).record(instance, &self).await),
            };
            steps += 1;
            rows += step.processed;
            tracing::info!(
                run = run_id,
                step = steps,
                rows = step.processed,
                cursor = step.cursor.as_deref(),
                "step committed"
            );
            match step.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        tracing::info!(run = run_id, steps, rows, "run finished");
        Ok(Outcome {
            migration: name,
            direction: self.direction,
            kind: OutcomeKind::Completed,
            run_id: Some(run_id),
            steps,
            rows,
            resumed_from,
            elapsed: started.elapsed(),
        })
    }

    /// One step in one transaction: the guest's batch, the checkpoint, and on
    /// the last step the run's completion, committed together or not at all.
    async fn step(
        &self,
        instance: &mut Instance,
        run_id: i64,
        cursor: Option<&str>,
    ) -> Result<crate::sandbox::Step, FailureCause> {
        let db = |e: crate::db::DbError| FailureCause::Database(e.to_string());
        instance.connection().begin().await.map_err(db)?;
        let outcome = async {
            let step =
                instance
                    .step(self.direction, cursor)
                    .await
                    .map_err(|failure| match failure {
                        GuestFailure::Returned(m) => FailureCause::Guest(m),
                        GuestFailure::Trapped(m) => FailureCause::Trap(m),
                    })?;
            let conn = instance.connection();
            ledger::checkpoint(conn, run_id, step.cursor.as_deref(), step.processed)
                .await
                .map_err(db)?;
            if step.cursor.is_none() {
                ledger::finish(conn, run_id, &self.meta.name, self.direction)
                    .await
                    .map_err(db)?;
            }
            conn.commit().await.map_err(db)?;
            Ok(step)
        }
        .await;
        // After a failed COMMIT the transaction is already over, so a failing
        // rollback here is expected and only worth a debug line.
        if outcome.is_err()
            && let Err(e) = instance.connection().rollback().await
        {
            tracing::debug!("rollback after a failed step: {e}");
        }
        outcome
    }
}

/// A failed step, before it is recorded.
struct Failure {
    run_id: i64,
    step: u64,
    cursor: Option<String>,
    cause: FailureCause,
}

impl Failure {
    /// Records the failure in the ledger (after the step's rollback) and turns
    /// it into the error the caller sees.
    async fn record(self, instance: &mut Instance, plan: &RunPlan) -> Error {
        let message = self.cause.to_string();
        if let Err(e) = ledger::fail(
            instance.connection(),
            self.run_id,
            &plan.meta.name,
            &message,
        )
        .await
        {
            tracing::error!("the failure could not be recorded in the ledger: {e}");
        }
        Error::MigrationFailed {
            name: plan.meta.name.clone(),
            direction: plan.direction,
            run_id: self.run_id,
            step: self.step,
            cursor: self.cursor,
            cause: self.cause,
        }
    }
}

/// The ledger of the database at `url`: every migration with its last run.
/// Creates nothing: a database without a ledger has no migrations.
///
/// # Errors
///
/// [`Error::Connect`] or [`Error::Ledger`].
pub async fn status(url: &str) -> Result<Vec<ledger::MigrationStatus>> {
    let mut conn = Connection::connect_existing(url).await?;
    if !ledger::exists(&mut conn).await? {
        return Ok(Vec::new());
    }
    ledger::status(&mut conn).await
}
