//! What a run reports as it goes, for progress bars, logs and `--output json`.

use serde::Serialize;

use super::{Direction, Outcome, TableChange};

/// One thing that happened during a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The run started (or resumed from `resumed_from`).
    Started {
        migration: String,
        direction: Direction,
        run_id: Option<i64>,
        resumed_from: Option<String>,
        dry_run: bool,
    },
    /// A step committed (in a dry run: finished, to be rolled back at the end).
    Step {
        run_id: Option<i64>,
        step: u64,
        rows: u64,
        rows_total: u64,
        /// The total the guest declared, if it did.
        expected_rows: Option<u64>,
        cursor: Option<String>,
    },
    /// The guest logged a message.
    Log {
        run_id: Option<i64>,
        level: String,
        message: String,
    },
    /// A step met a transient error (deadlock, serialization failure, lock
    /// timeout); it was rolled back and runs again from the same cursor
    /// after `delay_ms`.
    Retry {
        run_id: Option<i64>,
        /// The step that runs again (1-based, within this run).
        step: u64,
        /// This retry's number, from 1 to `retries`.
        attempt: u32,
        /// How many retries a step may have (`--retries`).
        retries: u32,
        /// The wait before the retry, in milliseconds.
        delay_ms: u64,
        cursor: Option<String>,
        error: String,
    },
    /// Something the operator should know about a run that still
    /// succeeded (also noted on the run in the ledger).
    Warning {
        run_id: Option<i64>,
        message: String,
    },
    /// The run finished (or found nothing to do).
    Finished { outcome: Outcome },
    /// A dry run finished and everything was rolled back.
    DryRun {
        outcome: Outcome,
        changes: Vec<TableChange>,
    },
    /// The run failed; its last step was rolled back.
    Failed {
        run_id: Option<i64>,
        exit_code: u8,
        error: String,
    },
    /// The run was stopped on purpose and can be resumed.
    Interrupted {
        run_id: i64,
        steps: u64,
        cursor: Option<String>,
    },
}

/// Receives a run's events as they happen.
pub trait Observer: Send {
    fn event(&mut self, event: &Event);
}

impl<F: FnMut(&Event) + Send> Observer for F {
    fn event(&mut self, event: &Event) {
        self(event)
    }
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {
    fn event(&mut self, _: &Event) {}
}
