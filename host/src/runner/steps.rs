//! The step loop: one transaction per step for real runs, one transaction
//! around every step for dry runs.

use std::time::{Duration, Instant};

use super::{
    Direction, Event, Observer, Outcome, OutcomeKind, RunOptions, Start, StopHandle, TableChange,
    plan,
};
use crate::db::{CANCEL_GRACE, Connection, DbError};
use crate::error::{Error, FailureCause, Result};
use crate::ledger::{self, NewRun, lock::Lock};
use crate::sandbox::{GuestFailure, Instance, Metadata, Step};

/// One run being carried out.
pub(crate) struct Run<'a> {
    pub url: &'a str,
    pub meta: Metadata,
    pub sha256: String,
    pub direction: Direction,
    pub options: &'a RunOptions,
    pub step_timeout: Duration,
    /// The key id of the verified signature, recorded with the run.
    pub signer: Option<String>,
}

/// Why a step did not commit.
enum StepError {
    /// It failed; the cause goes into the ledger.
    Failed(FailureCause),
    /// It was cancelled by a second stop request.
    Aborted,
}

/// Where the loop is, for events, errors and the outcome.
struct Progress {
    run_id: Option<i64>,
    cursor: Option<String>,
    steps: u64,
    rows: u64,
    expected_rows: Option<u64>,
}

impl Run<'_> {
    /// Whether the loop stops before its next step: a stop was requested, or
    /// `--max-steps` steps ran.
    fn must_stop(&self, progress: &Progress, stop: &StopHandle) -> bool {
        stop.stop_requested()
            || self
                .options
                .max_steps
                .is_some_and(|max| progress.steps >= max)
    }

    /// How long a lock outlives its last renewal: a step, a pause, a margin.
    pub fn lease_ttl(&self) -> Duration {
        self.step_timeout * 2 + self.options.pause.unwrap_or_default() + Duration::from_secs(30)
    }

    fn outcome(
        &self,
        kind: OutcomeKind,
        progress: &Progress,
        resumed_from: Option<String>,
        started: Instant,
    ) -> Outcome {
        Outcome {
            migration: self.meta.name.clone(),
            direction: self.direction,
            kind,
            run_id: progress.run_id,
            steps: progress.steps,
            rows: progress.rows,
            resumed_from,
            changes: Vec::new(),
            elapsed: started.elapsed(),
        }
    }

    /// Answers the most common rerun, an `up` of an applied migration, from
    /// a plain read of the ledger, before the schema is ensured and the lock
    /// taken: those cost DDL round trips, a second connection (for the
    /// advisory lock) and writes. `None` for anything else, which
    /// [`Run::real`] decides again under the lock. A database without a
    /// ledger has nothing applied: `None` without creating one.
    pub async fn already_applied(
        &self,
        instance: &mut Instance,
        observer: &mut dyn Observer,
    ) -> Result<Option<Outcome>> {
        let started = Instant::now();
        let conn = instance.connection();
        if self.direction != Direction::Up || self.options.force || !ledger::exists(conn).await? {
            return Ok(None);
        }
        let start = plan(conn, &self.meta, &self.sha256, self.direction, self.options).await;
        let Ok(Start::Nothing) = start else {
            return Ok(None);
        };
        Ok(Some(self.nothing_to_do(observer, started)))
    }

    /// The outcome of an `up` of an applied migration, reported.
    fn nothing_to_do(&self, observer: &mut dyn Observer, started: Instant) -> Outcome {
        let outcome = self.outcome(
            OutcomeKind::AlreadyApplied,
            &Progress::new(None, None),
            None,
            started,
        );
        observer.event(&Event::Finished {
            outcome: outcome.clone(),
        });
        outcome
    }

    /// A real run: each step commits with its checkpoint.
    pub async fn real(
        &self,
        instance: &mut Instance,
        lock: &Lock,
        observer: &mut dyn Observer,
        stop: &StopHandle,
    ) -> Result<Outcome> {
        let started = Instant::now();
        let name = self.meta.name.clone();
        let start = plan(
            instance.connection(),
            &self.meta,
            &self.sha256,
            self.direction,
            self.options,
        )
        .await?;
        let Start::From { cursor, resumed } = start else {
            return Ok(self.nothing_to_do(observer, started));
        };
        let resumed_from = resumed.then(|| cursor.clone()).flatten();
        let conn = instance.connection();
        let run_id = ledger::start_run(
            conn,
            &NewRun {
                migration: &name,
                description: &self.meta.description,
                sha256: &self.sha256,
                direction: self.direction,
                cursor: cursor.as_deref(),
                signer: self.signer.as_deref(),
            },
        )
        .await?;
        let mut progress = Progress::new(Some(run_id), cursor);
        if let Some(cause) = lock.renew(conn, Some(run_id)).await? {
            self.record_failure(instance, run_id, &cause.to_string())
                .await;
            return Err(self.failed(&progress, cause));
        }
        tracing::info!(run = run_id, migration = %name, direction = %self.direction, "run started");
        observer.event(&Event::Started {
            migration: name.clone(),
            direction: self.direction,
            run_id: Some(run_id),
            resumed_from: resumed_from.clone(),
            dry_run: false,
        });

        loop {
            if let Some(reason) = lock.lost_reason() {
                let cause = FailureCause::LockLost(reason);
                self.record_failure(instance, run_id, &cause.to_string())
                    .await;
                return Err(self.failed(&progress, cause));
            }
            if self.must_stop(&progress, stop) {
                return Err(self.interrupted(instance, &progress, observer).await);
            }
            let step = match self.one_step(instance, &progress, stop, Some(lock)).await {
                Ok(step) => step,
                Err(StepError::Aborted) => {
                    return Err(self.interrupted(instance, &progress, observer).await);
                }
                Err(StepError::Failed(cause)) => {
                    self.report(instance, &mut progress, observer);
                    self.record_failure(instance, run_id, &cause.to_string())
                        .await;
                    return Err(self.failed(&progress, cause));
                }
            };
            let done = step.cursor.is_none();
            self.advance(instance, &mut progress, step, observer);
            if done {
                break;
            }
            if let Some(pause) = self.options.pause {
                // A lock lost during the pause is found at the loop's top.
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stop.stopping() => {}
                    _ = lock.lost() => {}
                }
            }
        }
        tracing::info!(
            run = run_id,
            steps = progress.steps,
            rows = progress.rows,
            "run finished"
        );
        let outcome = self.outcome(OutcomeKind::Completed, &progress, resumed_from, started);
        observer.event(&Event::Finished {
            outcome: outcome.clone(),
        });
        Ok(outcome)
    }

    /// A dry run: every step inside one transaction, rolled back at the end
    /// whatever happens. It writes nothing to the ledger.
    pub async fn dry(
        &self,
        instance: &mut Instance,
        observer: &mut dyn Observer,
        stop: &StopHandle,
    ) -> Result<Outcome> {
        let started = Instant::now();
        let begin = instance.connection().begin().await;
        begin.map_err(|e| ledger::ledger_error("begin the dry run", e))?;
        let result = self.dry_steps(instance, observer, stop, started).await;
        if let Err(e) = instance.connection().rollback().await {
            tracing::error!("rolling back the dry run failed: {e}");
        }
        let outcome = result?;
        observer.event(&Event::DryRun {
            outcome: outcome.clone(),
            changes: outcome.changes.clone(),
        });
        Ok(outcome)
    }

    async fn dry_steps(
        &self,
        instance: &mut Instance,
        observer: &mut dyn Observer,
        stop: &StopHandle,
        started: Instant,
    ) -> Result<Outcome> {
        let conn = instance.connection();
        let before = conn
            .table_row_counts()
            .await
            .map_err(|e| ledger::ledger_error("count rows", e))?;
        // A dry run creates nothing, not even the ledger (on MySQL, DDL would
        // also commit the dry run's transaction): without one, nothing ran.
        let start = if ledger::exists(conn).await? {
            plan(conn, &self.meta, &self.sha256, self.direction, self.options).await?
        } else if self.direction == Direction::Down {
            return Err(Error::NotApplied {
                name: self.meta.name.clone(),
            });
        } else {
            Start::From {
                cursor: None,
                resumed: false,
            }
        };
        let Start::From { cursor, resumed } = start else {
            return Ok(self.outcome(
                OutcomeKind::AlreadyApplied,
                &Progress::new(None, None),
                None,
                started,
            ));
        };
        let resumed_from = resumed.then(|| cursor.clone()).flatten();
        observer.event(&Event::Started {
            migration: self.meta.name.clone(),
            direction: self.direction,
            run_id: None,
            resumed_from: resumed_from.clone(),
            dry_run: true,
        });
        let mut progress = Progress::new(None, cursor);
        loop {
            if self.must_stop(&progress, stop) {
                break;
            }
            let step = match self.one_step(instance, &progress, stop, None).await {
                Ok(step) => step,
                Err(StepError::Aborted) => break,
                Err(StepError::Failed(cause)) => {
                    self.report(instance, &mut progress, observer);
                    return Err(self.failed(&progress, cause));
                }
            };
            let done = step.cursor.is_none();
            self.advance(instance, &mut progress, step, observer);
            if done {
                break;
            }
        }
        let after = instance
            .connection()
            .table_row_counts()
            .await
            .map_err(|e| ledger::ledger_error("count rows", e))?;
        let changes = before
            .into_iter()
            .map(|(table, before)| {
                let after = after
                    .iter()
                    .find(|(t, _)| *t == table)
                    .map_or(0, |(_, n)| *n);
                TableChange {
                    table,
                    before,
                    after,
                }
            })
            .collect();
        let mut outcome = self.outcome(OutcomeKind::DryRun, &progress, resumed_from, started);
        outcome.changes = changes;
        Ok(outcome)
    }

    /// Runs one step (and, after the last `up` step, `verify`). With a
    /// `lock` (a real run), the step is its own transaction, committed with
    /// its checkpoint and the lock's renewal; without one (a dry run), the
    /// caller's transaction holds it. A real step stops at once when the
    /// lock is lost, and a step that fails while the lock is lost fails for
    /// that reason.
    async fn one_step(
        &self,
        instance: &mut Instance,
        progress: &Progress,
        stop: &StopHandle,
        lock: Option<&Lock>,
    ) -> Result<Step, StepError> {
        let transactional = lock.is_some();
        let db = |e: DbError| StepError::Failed(FailureCause::Database(e.to_string()));
        if transactional {
            instance.connection().begin().await.map_err(db)?;
        }
        // A guest whose SQL the gate cannot bound (raw SQL, no manifest) can
        // reach the ledger through dynamic SQL without naming it: guard the
        // ledger by its contents instead (see `ledger::digest`).
        let guard = if transactional && instance.sql_unbounded() {
            Some(ledger::digest(instance.connection()).await.map_err(db)?)
        } else {
            None
        };
        let lost = async {
            match lock {
                Some(lock) => lock.lost().await,
                None => std::future::pending().await,
            }
        };
        let guest = async {
            let step = instance
                .step(self.direction, progress.cursor.as_deref())
                .await
                .map_err(cause)?;
            if step.cursor.is_none() && self.direction == Direction::Up {
                instance
                    .verify()
                    .await
                    .map_err(|failure| match cause(failure) {
                        FailureCause::Guest(m) => {
                            FailureCause::Guest(format!("verify failed: {m}"))
                        }
                        other => other,
                    })?;
            }
            Ok(step)
        };
        let guest = tokio::select! {
            result = guest => result.map_err(StepError::Failed),
            () = stop.aborting() => Err(StepError::Aborted),
            reason = lost => Err(StepError::Failed(FailureCause::LockLost(reason))),
        };
        let guest = match (guest, guard) {
            (Ok(step), Some(before)) => match ledger::digest(instance.connection()).await {
                Ok(after) if after == before => Ok(step),
                Ok(_) => Err(StepError::Failed(FailureCause::Capability(
                    "the step changed the dmig_ ledger tables; they belong to the host and no \
                     migration may use them, raw SQL included"
                        .into(),
                ))),
                Err(e) => Err(db(e)),
            },
            (other, _) => other,
        };
        let result = match guest {
            Ok(step) if let Some(lock) = lock => self
                .commit(instance, progress, step, lock)
                .await
                .map_err(StepError::Failed),
            other => other,
        };
        if result.is_err() {
            let conn = instance.connection();
            if transactional {
                // If the step was cut short in the middle of a statement,
                // that statement is cancelled first; a rollback that fails or
                // does not come back in time costs the connection (the
                // failure is then recorded over a new one). After a failed
                // COMMIT the transaction is already over, and its ROLLBACK
                // is a no-op.
                if let Err(e) = conn.rollback_within(CANCEL_GRACE).await {
                    tracing::debug!("rollback after a failed step: {e}");
                }
            } else if let Err(e) = conn.settle(CANCEL_GRACE).await {
                tracing::debug!("after the aborted dry-run step: {e}");
            }
        }
        match (result, lock) {
            // The guest may have failed because the lock was lost (its
            // connection killed from inside the step, say): say so.
            (Err(StepError::Failed(other)), Some(lock))
                if !matches!(other, FailureCause::LockLost(_)) =>
            {
                Err(StepError::Failed(match lock.verify().await {
                    Err(lost) => lost,
                    Ok(()) => other,
                }))
            }
            (result, _) => result,
        }
    }

    /// Writes the checkpoint and the lock's renewal (and, on the last step,
    /// the run's completion) and commits the step, if the lock is still this
    /// host's (see `ledger::lock` for why this is race-free).
    async fn commit(
        &self,
        instance: &mut Instance,
        progress: &Progress,
        step: Step,
        lock: &Lock,
    ) -> Result<Step, FailureCause> {
        let db = |e: DbError| FailureCause::Database(e.to_string());
        let conn = instance.connection();
        let run_id = progress.run_id.expect("real runs have a run id");
        // The fence first: it fails if another host replaced this host's
        // lock row, and from here on this transaction holds that row, so a
        // host that takes the lock cannot replace it (and so cannot read the
        // ledger to plan its start) until this step has committed.
        lock.renew_in(conn, None).await?;
        ledger::checkpoint(conn, run_id, step.cursor.as_deref(), step.processed)
            .await
            .map_err(db)?;
        if step.cursor.is_none() {
            ledger::finish(conn, run_id, &self.meta.name, self.direction)
                .await
                .map_err(db)?;
        }
        // And the advisory lock is held right now: never commit a step after
        // the lock connection could be known lost.
        lock.verify().await?;
        conn.commit().await.map_err(db)?;
        Ok(step)
    }

    /// Counts a finished step and reports it.
    fn advance(
        &self,
        instance: &mut Instance,
        progress: &mut Progress,
        step: Step,
        observer: &mut dyn Observer,
    ) {
        progress.steps += 1;
        progress.rows += step.processed;
        progress.cursor = step.cursor;
        self.report(instance, progress, observer);
        tracing::info!(
            run = progress.run_id,
            step = progress.steps,
            rows = step.processed,
            cursor = progress.cursor.as_deref(),
            "step done"
        );
        observer.event(&Event::Step {
            run_id: progress.run_id,
            step: progress.steps,
            rows: step.processed,
            rows_total: progress.rows,
            expected_rows: progress.expected_rows,
            cursor: progress.cursor.clone(),
        });
    }

    /// Passes on what the guest logged, and the total it declared.
    fn report(
        &self,
        instance: &mut Instance,
        progress: &mut Progress,
        observer: &mut dyn Observer,
    ) {
        let report = instance.take_report();
        if report.total.is_some() {
            progress.expected_rows = report.total;
        }
        for (level, message) in report.logs {
            observer.event(&Event::Log {
                run_id: progress.run_id,
                level: level.as_str().to_lowercase(),
                message,
            });
        }
        if report.dropped_logs > 0 {
            observer.event(&Event::Log {
                run_id: progress.run_id,
                level: "warn".into(),
                message: format!(
                    "{} more log messages from this step were dropped",
                    report.dropped_logs
                ),
            });
        }
    }

    /// Records a failed run. If the step's connection is gone (the server
    /// killed it, the network dropped), the failure is recorded over a fresh
    /// connection; if the database cannot be reached at all, the run stays
    /// `running` and the next run, taking over the lock, records it.
    async fn record_failure(&self, instance: &mut Instance, run_id: i64, message: &str) {
        let name = &self.meta.name;
        let Err(first) = ledger::fail(instance.connection(), run_id, name, message).await else {
            return;
        };
        tracing::warn!("recording the failure over a new connection: {first}");
        let retry = async {
            let mut fresh = Connection::connect(self.url).await?;
            ledger::fail(&mut fresh, run_id, name, message).await
        };
        if let Err(e) = retry.await {
            tracing::error!("the failure could not be recorded in the ledger: {e}");
        }
    }

    async fn interrupted(
        &self,
        instance: &mut Instance,
        progress: &Progress,
        observer: &mut dyn Observer,
    ) -> Error {
        let run_id = progress.run_id.expect("real runs have a run id");
        if let Err(e) = ledger::interrupt(instance.connection(), run_id, &self.meta.name).await {
            return e;
        }
        tracing::info!(run = run_id, steps = progress.steps, "run interrupted");
        observer.event(&Event::Interrupted {
            run_id,
            steps: progress.steps,
            cursor: progress.cursor.clone(),
        });
        Error::Interrupted {
            name: self.meta.name.clone(),
            run_id,
            steps: progress.steps,
            cursor: progress.cursor.clone(),
        }
    }

    fn failed(&self, progress: &Progress, cause: FailureCause) -> Error {
        Error::MigrationFailed {
            name: self.meta.name.clone(),
            direction: self.direction,
            run_id: progress.run_id,
            step: progress.steps + 1,
            cursor: progress.cursor.clone(),
            cause,
        }
    }
}

/// A guest failure as the ledger records it.
fn cause(failure: GuestFailure) -> FailureCause {
    match failure {
        GuestFailure::Returned(m) => FailureCause::Guest(m),
        GuestFailure::Trapped(m) => FailureCause::Trap(m),
        GuestFailure::Refused(m) => FailureCause::Capability(m),
    }
}

impl Progress {
    fn new(run_id: Option<i64>, cursor: Option<String>) -> Self {
        Progress {
            run_id,
            cursor,
            steps: 0,
            rows: 0,
            expected_rows: None,
        }
    }
}
