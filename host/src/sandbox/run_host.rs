//! The `log`, `progress` and `args` interfaces: what a guest tells the
//! operator, and what the operator tells the guest.

use super::state::{HostState, Report};
use super::text;
use crate::bindings::latest::dmig::migration::{args, log, progress};

/// Longest log message (or line of printed output) kept, in bytes after
/// escaping; the rest is cut with a marker (see [`text::one_line`]).
pub const MAX_LOG_MESSAGE: usize = 4096;
/// Most log messages kept per step; the rest are counted and dropped.
const MAX_LOGS_PER_STEP: usize = 1000;

impl log::Host for HostState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        if self.report.logs.len() >= MAX_LOGS_PER_STEP {
            self.report.dropped_logs += 1;
            return Ok(());
        }
        // One line on the operator's terminal, whatever the guest sent.
        let message = text::one_line(&message, MAX_LOG_MESSAGE);
        let level = match level {
            log::Level::Trace => tracing::Level::TRACE,
            log::Level::Debug => tracing::Level::DEBUG,
            log::Level::Info => tracing::Level::INFO,
            log::Level::Warn => tracing::Level::WARN,
            log::Level::Error => tracing::Level::ERROR,
        };
        match level {
            tracing::Level::TRACE => tracing::trace!(target: "dmig::guest", "{message}"),
            tracing::Level::DEBUG => tracing::debug!(target: "dmig::guest", "{message}"),
            tracing::Level::INFO => tracing::info!(target: "dmig::guest", "{message}"),
            tracing::Level::WARN => tracing::warn!(target: "dmig::guest", "{message}"),
            tracing::Level::ERROR => tracing::error!(target: "dmig::guest", "{message}"),
        }
        self.report.logs.push((level, message));
        Ok(())
    }
}

impl progress::Host for HostState {
    async fn set_total(&mut self, rows: u64) -> wasmtime::Result<()> {
        self.report.total = Some(rows);
        Ok(())
    }
}

impl args::Host for HostState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self
            .args
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone()))
    }

    async fn all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.args.clone())
    }
}

impl Report {
    /// Takes what the guest reported since the last take.
    pub(crate) fn take(&mut self) -> Report {
        std::mem::take(self)
    }
}
