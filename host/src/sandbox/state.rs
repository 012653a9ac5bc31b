//! What a guest's store holds: its WASI context, its limits, and the host's
//! database connection.

use std::time::Duration;

use tokio::time::Instant;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::output::CapturedOutput;
use crate::db::Connection;

/// Per-run host state, owned by the wasmtime store.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) calls: super::CallLimits,
    /// The staged inputs, removed when the instance ends.
    pub(crate) _inputs: Option<tempfile::TempDir>,
    pub(crate) conn: Connection,
    /// When the current step must end, if a step is running. Host calls made
    /// outside a step (from `describe`) are refused.
    pub(crate) step_deadline: Option<Instant>,
    pub(crate) step_timeout: Duration,
    pub(crate) stdout: CapturedOutput,
    pub(crate) stderr: CapturedOutput,
    /// Operator arguments (`--arg key=value`), in order.
    pub(crate) args: Vec<(String, String)>,
    /// What the guest reported during the current step.
    pub(crate) report: Report,
    /// What the database did for the guest during the current step.
    pub(crate) tally: DbTally,
    /// Guest SQL texts the gate admitted, with what it sends for each (see
    /// `db_host`), so each text is analysed once.
    pub(crate) admitted: std::collections::HashMap<String, std::sync::Arc<crate::sql::Admitted>>,
    /// The SQL gate: the target's syntax and the artifact's capabilities.
    pub(crate) gate: crate::sql::Gate,
    /// Whether the guest has run a statement that may change the schema
    /// (PostgreSQL: the gate's catalog is then read again before the next
    /// statement, and at the start of every later step).
    pub(crate) schema_changed: bool,
    /// Whether the gate's catalog must be read again before the next
    /// statement is admitted.
    pub(crate) catalog_stale: bool,
}

/// What a guest reported through `log` and `progress` during a step.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// The total the guest declared, if it did.
    pub total: Option<u64>,
    /// Log messages, in order.
    pub logs: Vec<(tracing::Level, String)>,
    /// Messages dropped past the per-step cap.
    pub dropped_logs: u64,
}

/// What the database did for the guest's statements during a step, as the
/// host saw it (nothing here comes from the guest).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DbTally {
    /// Rows the statements wrote, as the database counted them: the
    /// affected rows of `execute` and `execute-many`, and the rows an
    /// `INSERT`, `UPDATE`, `DELETE` or `REPLACE … RETURNING` returned
    /// through `query`.
    pub rows_written: u64,
    /// The first error of the step that came from contention with other
    /// sessions (see [`crate::db::DbError::is_transient`]), whether or not
    /// the guest passed it on.
    pub transient: Option<crate::db::DbError>,
    /// MySQL/MariaDB: a statement that commits implicitly (DDL, or anything
    /// the gate could not check) ran in the step, so part of the step may
    /// be committed and the step must not be run again.
    pub committed_implicitly: bool,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A trap raised by the host itself, so the runner can name its cause.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostTrap {
    /// The guest tried to grow its linear memory past the limit.
    #[error("guest exceeded its {} MiB memory limit", limit / (1024 * 1024))]
    MemoryLimit { limit: usize },
    /// The guest tried to grow a table past the limit.
    #[error("guest exceeded its table limit of {limit} elements")]
    TableLimit { limit: usize },
    /// A host call (a database statement) was still running when the step's
    /// time ran out.
    #[error("step exceeded {} s (the time ran out inside a database call)", timeout.as_secs_f64())]
    StepTimeoutInHostCall { timeout: Duration },
    /// The run was aborted (a second stop signal) during or before a
    /// database call: the guest does not run on to see the error.
    #[error("the step was aborted by a stop signal")]
    Aborted,
    /// The SQL gate refused a statement: outside the declared capabilities,
    /// or of a kind no migration may send. A trap, not an error the guest
    /// could swallow: a misdeclared or hostile artifact must fail loudly
    /// rather than silently skip a write.
    #[error("{0}")]
    Refused(crate::sql::Refusal),
}

/// Enforces the sandbox's memory and table limits with errors that say which
/// limit was hit.
pub struct Limiter {
    pub(crate) max_memory: usize,
    pub(crate) max_table_elements: usize,
    pub(crate) max_instances: usize,
    pub(crate) max_tables: usize,
    pub(crate) max_memories: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            return Err(wasmtime::Error::new(HostTrap::MemoryLimit {
                limit: self.max_memory,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            return Err(wasmtime::Error::new(HostTrap::TableLimit {
                limit: self.max_table_elements,
            }));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn tables(&self) -> usize {
        self.max_tables
    }

    fn memories(&self) -> usize {
        self.max_memories
    }
}
