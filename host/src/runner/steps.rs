//! The step loop: one transaction per step for real runs, one transaction
//! around every step for dry runs.

use std::time::{Duration, Instant};

use super::checks::{self, Stall};
use super::{
    Direction, Event, Observer, Outcome, OutcomeKind, RunOptions, Start, StopHandle, TableChange,
    plan, retry,
};
use crate::db::{CANCEL_GRACE, Connection, DbError};
use crate::error::{Error, FailureCause, Result, plural};
use crate::ledger::{
    self, NewRun,
    lock::{Lock, Renewal},
};
use crate::sandbox::{GuestFailure, Instance, LoadedMigration, Metadata, Sandbox, Step};

/// One run being carried out.
pub(crate) struct Run<'a> {
    pub url: &'a str,
    /// Where a retried step gets its fresh instance.
    pub sandbox: &'a Sandbox,
    pub loaded: &'a LoadedMigration,
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
    /// It met contention with other sessions (`error`, see
    /// [`DbError::is_transient`]) and may succeed when run again; `cause` is
    /// how it failed, recorded if it is not retried.
    Transient { error: DbError, cause: FailureCause },
    /// It was cancelled by a second stop request.
    Aborted,
}

/// A step the guest finished, with what the host saw of it.
struct Done {
    step: Step,
    /// Rows its statements wrote: the host's count of the guest's calls,
    /// and for a step that kept its cursor and wrote nothing by that count,
    /// the server's (see `checks::rows_written`).
    written: u64,
    /// What the runner noted on the run, when this step ended it.
    note: Option<String>,
}

/// Where the loop is, for events, errors and the outcome.
struct Progress {
    run_id: Option<i64>,
    cursor: Option<String>,
    steps: u64,
    rows: u64,
    expected_rows: Option<u64>,
    /// Steps of this run retried after a transient error.
    retries: u64,
    /// Steps in a row that did not advance.
    stall: Stall,
    /// Rows the last step wrote.
    last_written: u64,
    note: Option<String>,
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
            retries: progress.retries,
            note: progress.note.clone(),
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
            &Progress::new(None, None, 0),
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
        let mut progress = Progress::new(Some(run_id), cursor, self.options.max_stalled_steps);
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

        // Retries of the step about to run (reset by every step that commits).
        let mut attempt = 0;
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
            let done = match self
                .one_step(instance, &mut progress, observer, stop, Some(lock))
                .await
            {
                Ok(done) => done,
                Err(StepError::Aborted) => {
                    return Err(self.interrupted(instance, &progress, observer).await);
                }
                Err(StepError::Transient { error, cause }) if attempt < self.options.retries => {
                    self.report(instance, &mut progress, observer);
                    attempt += 1;
                    if !self
                        .wait_to_retry(
                            instance,
                            &mut progress,
                            attempt,
                            &error,
                            observer,
                            stop,
                            lock,
                        )
                        .await
                    {
                        return Err(self.interrupted(instance, &progress, observer).await);
                    }
                    if let Err(e) = self.fresh_instance(instance).await {
                        let cause = cause.with_suffix(&format!("; it could not be retried: {e}"));
                        self.record_failure(instance, run_id, &cause.to_string())
                            .await;
                        return Err(self.failed(&progress, cause));
                    }
                    continue;
                }
                Err(StepError::Transient { cause, .. }) => {
                    self.report(instance, &mut progress, observer);
                    let cause = self.out_of_retries(cause, attempt);
                    self.record_failure(instance, run_id, &cause.to_string())
                        .await;
                    return Err(self.failed(&progress, cause));
                }
                Err(StepError::Failed(cause)) => {
                    self.report(instance, &mut progress, observer);
                    self.record_failure(instance, run_id, &cause.to_string())
                        .await;
                    return Err(self.failed(&progress, cause));
                }
            };
            attempt = 0;
            let given = progress.cursor.clone();
            let finished = done.step.cursor.is_none();
            self.advance(instance, &mut progress, done, observer);
            if finished {
                break;
            }
            if let Some(seen) = progress.stall.observe(
                progress.steps,
                given.as_deref(),
                progress.cursor.as_deref(),
                progress.last_written,
            ) {
                let cause = FailureCause::NoProgress(seen);
                self.record_failure(instance, run_id, &cause.to_string())
                    .await;
                return Err(self.stalled(&progress, cause));
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
            retries = progress.retries,
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
                &Progress::new(None, None, 0),
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
        let mut progress = Progress::new(None, cursor, self.options.max_stalled_steps);
        loop {
            if self.must_stop(&progress, stop) {
                break;
            }
            // A dry run's steps share one transaction: a transient error
            // ended it, and there is no step boundary to retry from.
            let done = match self
                .one_step(instance, &mut progress, observer, stop, None)
                .await
            {
                Ok(done) => done,
                Err(StepError::Aborted) => break,
                Err(StepError::Failed(cause) | StepError::Transient { cause, .. }) => {
                    self.report(instance, &mut progress, observer);
                    return Err(self.failed(&progress, cause));
                }
            };
            let given = progress.cursor.clone();
            let finished = done.step.cursor.is_none();
            self.advance(instance, &mut progress, done, observer);
            if finished {
                break;
            }
            if let Some(seen) = progress.stall.observe(
                progress.steps,
                given.as_deref(),
                progress.cursor.as_deref(),
                progress.last_written,
            ) {
                return Err(self.stalled(&progress, FailureCause::NoProgress(seen)));
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
    ///
    /// A step during which the database reported contention to the guest
    /// (whether or not the guest passed the error on: PostgreSQL's
    /// transaction is then aborted, MySQL's deadlock victim rolled back)
    /// fails as [`StepError::Transient`], unless the guest broke a rule.
    async fn one_step(
        &self,
        instance: &mut Instance,
        progress: &mut Progress,
        observer: &mut dyn Observer,
        stop: &StopHandle,
        lock: Option<&Lock>,
    ) -> Result<Done, StepError> {
        let transactional = lock.is_some();
        let dialect = instance.connection().dialect();
        let db = |e: DbError| classify(dialect, FailureCause::Database(e.to_string()), e);
        if transactional {
            instance.connection().begin().await.map_err(db)?;
        }
        // A guard of the ledger for a guest whose SQL the gate cannot bound
        // (raw SQL, no manifest): it can reach the ledger through dynamic
        // SQL without naming it, so compare the ledger's contents instead
        // (see `ledger::digest`).
        let guard = if transactional && instance.sql_unbounded() {
            Some(ledger::digest(instance.connection()).await.map_err(db)?)
        } else {
            None
        };
        let written_before = checks::rows_written(instance.connection())
            .await
            .map_err(db)?;
        instance.take_db_tally();
        let lost = async {
            match lock {
                Some(lock) => lock.lost().await,
                None => std::future::pending().await,
            }
        };
        let cursor = progress.cursor.clone();
        let canceller = instance.connection().canceller();
        let interrupting = stop.interrupting(Box::new(move || canceller.abort()));
        let guest = async {
            let step = instance
                .step(self.direction, cursor.as_deref())
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
        drop(interrupting);
        // An abort that interrupted a statement reached the guest as an
        // error it may have ignored: the step never commits after an abort.
        let guest = if stop.aborted() {
            Err(StepError::Aborted)
        } else {
            guest
        };
        let tally = instance.take_db_tally();
        // Contention the guest met fails the step, however the guest took
        // it; a broken rule (a refused statement) or a lost lock stays what
        // it is.
        // A step that committed part of itself (MySQL DDL) is never run
        // again: its transient error fails the run.
        let transient = tally.transient.filter(|_| !tally.committed_implicitly);
        let guest = match (guest, transient) {
            (Ok(_), Some(error)) => Err(StepError::Transient {
                cause: FailureCause::Database(error.to_string()),
                error,
            }),
            (
                Err(StepError::Failed(cause @ (FailureCause::Guest(_) | FailureCause::Trap(_)))),
                Some(error),
            ) => Err(StepError::Transient { error, cause }),
            (other, _) => other,
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
        // The server's count is only needed where the stall check could
        // fire: the step kept its cursor and wrote nothing the host saw.
        let guest = match guest {
            Ok(step)
                if step.cursor.is_some() && step.cursor == cursor && tally.rows_written == 0 =>
            {
                match checks::rows_written(instance.connection()).await {
                    Ok(after) => {
                        let server = after
                            .zip(written_before)
                            .map_or(0, |(after, before)| after.saturating_sub(before));
                        Ok((step, server))
                    }
                    Err(e) => Err(db(e)),
                }
            }
            Ok(step) => Ok((step, tally.rows_written)),
            Err(e) => Err(e),
        };
        let result = match guest {
            Ok((step, written)) => {
                // The step's logs and total, before its commit: the total
                // decides the note the last step commits.
                self.report(instance, progress, observer);
                let note = if step.cursor.is_none() {
                    checks::total_note(progress.rows + step.processed, progress.expected_rows)
                } else {
                    None
                };
                let done = Done {
                    step,
                    written,
                    note,
                };
                match lock {
                    Some(lock) => self.commit(instance, progress, done, lock).await,
                    None => Ok(done),
                }
            }
            Err(e) => Err(e),
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
            (Err(StepError::Transient { error, cause }), Some(lock)) => {
                Err(match lock.verify().await {
                    Err(lost) => StepError::Failed(lost),
                    Ok(()) => StepError::Transient { error, cause },
                })
            }
            (result, _) => result,
        }
    }

    /// Writes the checkpoint and the lock's renewal (and, on the last step,
    /// the run's completion and note) and commits the step, if the lock is
    /// still this host's (see `ledger::lock` for why this is race-free).
    async fn commit(
        &self,
        instance: &mut Instance,
        progress: &Progress,
        done: Done,
        lock: &Lock,
    ) -> Result<Done, StepError> {
        let conn = instance.connection();
        let dialect = conn.dialect();
        let db = |e: DbError| classify(dialect, FailureCause::Database(e.to_string()), e);
        let run_id = progress.run_id.expect("real runs have a run id");
        // The fence first: it fails if another host replaced this host's
        // lock row, and from here on this transaction holds that row, so a
        // host that takes the lock cannot replace it (and so cannot read the
        // ledger to plan its start) until this step has committed.
        lock.renew_in(conn, None).await.map_err(|e| match e {
            Renewal::Lost(cause) => StepError::Failed(cause),
            // A deadlock or lock wait on the lock row is contention like any
            // other: the step is retried.
            Renewal::Failed(e) => classify(
                dialect,
                FailureCause::Database(format!("renewing the lock failed: {e}")),
                e,
            ),
        })?;
        let step = &done.step;
        ledger::checkpoint(conn, run_id, step.cursor.as_deref(), step.processed)
            .await
            .map_err(db)?;
        if step.cursor.is_none() {
            ledger::finish(
                conn,
                run_id,
                &self.meta.name,
                self.direction,
                done.note.as_deref(),
            )
            .await
            .map_err(db)?;
        }
        // And the advisory lock is held right now: never commit a step after
        // the lock connection could be known lost.
        lock.verify().await.map_err(StepError::Failed)?;
        conn.commit().await.map_err(db)?;
        Ok(done)
    }

    /// Before retry `attempt` of the step at `progress`: reports it, counts
    /// it in the ledger, and waits the backoff. `false` when a stop was
    /// requested meanwhile (the run is then interrupted, resumable from the
    /// same cursor). A lock lost meanwhile is found at the loop's top.
    ///
    /// The event comes before the count: on SQLite the count waits for the
    /// writer that made the step fail, which may be waiting for that event.
    #[allow(clippy::too_many_arguments)]
    async fn wait_to_retry(
        &self,
        instance: &mut Instance,
        progress: &mut Progress,
        attempt: u32,
        error: &DbError,
        observer: &mut dyn Observer,
        stop: &StopHandle,
        lock: &Lock,
    ) -> bool {
        let run_id = progress.run_id.expect("real runs have a run id");
        let delay = retry::backoff(attempt, retry::jitter());
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        progress.retries += 1;
        tracing::warn!(
            run = run_id,
            step = progress.steps + 1,
            attempt,
            delay_ms,
            "transient error, retrying the step: {error}"
        );
        observer.event(&Event::Retry {
            run_id: Some(run_id),
            step: progress.steps + 1,
            attempt,
            retries: self.options.retries,
            delay_ms,
            cursor: progress.cursor.clone(),
            error: error.to_string(),
        });
        if let Err(e) = ledger::count_retry(instance.connection(), run_id).await {
            tracing::warn!("could not count the retry in the ledger: {e}");
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => !stop.stop_requested(),
            () = stop.stopping() => false,
            _ = lock.lost() => true,
        }
    }

    /// Replaces `instance` with a fresh one of the same migration on a new
    /// connection: a retried step must not see what the failed attempt left
    /// in the guest's memory, nor a session it may have changed.
    async fn fresh_instance(&self, instance: &mut Instance) -> Result<()> {
        let mut conn = Connection::connect(self.url).await?;
        conn.set_statement_timeout(self.step_timeout)
            .await
            .map_err(|e| ledger::ledger_error("set the statement timeout", e))?;
        *instance = self
            .sandbox
            .instantiate(self.loaded, conn, self.options.args.clone())
            .await?;
        Ok(())
    }

    /// The cause of a step that met a transient error once more than
    /// `--retries` allows.
    fn out_of_retries(&self, cause: FailureCause, attempts: u32) -> FailureCause {
        let retries = self.options.retries;
        if retries == 0 {
            cause.with_suffix(" (a transient error; not retried: --retries 0)")
        } else {
            cause.with_suffix(&format!(
                " (a transient error, still there after {}; raise --retries, or find what \
                 holds the locks)",
                plural(u64::from(attempts), "retry")
            ))
        }
    }

    /// Counts a finished step and reports it.
    fn advance(
        &self,
        instance: &mut Instance,
        progress: &mut Progress,
        done: Done,
        observer: &mut dyn Observer,
    ) {
        let step = done.step;
        progress.steps += 1;
        progress.rows += step.processed;
        progress.cursor = step.cursor;
        progress.last_written = done.written;
        self.report(instance, progress, observer);
        tracing::info!(
            run = progress.run_id,
            step = progress.steps,
            rows = step.processed,
            written = done.written,
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
        if let Some(note) = done.note {
            tracing::warn!(run = progress.run_id, "{note}");
            observer.event(&Event::Warning {
                run_id: progress.run_id,
                message: note.clone(),
            });
            progress.note = Some(note);
        }
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
                    "dropped {} from this step",
                    plural(report.dropped_logs, "more log message")
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

    /// The run's failure after `progress.steps` steps of which the last ones
    /// did not advance (they committed: the error names the last of them).
    fn stalled(&self, progress: &Progress, cause: FailureCause) -> Error {
        Error::MigrationFailed {
            name: self.meta.name.clone(),
            direction: self.direction,
            run_id: progress.run_id,
            step: progress.steps,
            cursor: progress.cursor.clone(),
            cause,
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

/// A database error as a step's failure: transient or not.
fn classify(dialect: crate::db::Dialect, cause: FailureCause, error: DbError) -> StepError {
    if error.is_transient(dialect) {
        StepError::Transient { error, cause }
    } else {
        StepError::Failed(cause)
    }
}

impl Progress {
    fn new(run_id: Option<i64>, cursor: Option<String>, max_stalled_steps: u32) -> Self {
        Progress {
            run_id,
            cursor,
            steps: 0,
            rows: 0,
            expected_rows: None,
            retries: 0,
            stall: Stall::new(max_stalled_steps),
            last_written: 0,
            note: None,
        }
    }
}
