//! Stopping a run from outside: after the current step, or at once.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

const RUNNING: u8 = 0;
const AFTER_STEP: u8 = 1;
const NOW: u8 = 2;

/// A handle that asks a run to stop. Cloneable; hand one to a signal handler.
///
/// The first [`request`](StopHandle::request) lets the current step commit (or
/// roll back) and then stops the run as interrupted; a second one (or
/// [`abort`](StopHandle::abort)) cancels the current step at once, rolling it
/// back.
#[derive(Debug, Clone, Default)]
pub struct StopHandle {
    state: Arc<AtomicU8>,
    notify: Arc<Notify>,
    on_abort: Arc<Mutex<OnAbort>>,
}

/// What to do, on the aborting thread, when the run is aborted: interrupt
/// the statement of the step in progress, which may run on the runner's own
/// thread (SQLite) and so cannot see the abort until it returns.
#[derive(Default)]
struct OnAbort(Option<Box<dyn Fn() + Send + Sync>>);

impl std::fmt::Debug for OnAbort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "OnAbort(set)"
        } else {
            "OnAbort(none)"
        })
    }
}

impl StopHandle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Escalates: the first call stops after the current step, the second
    /// cancels the current step.
    pub fn request(&self) {
        let previous = self.state.fetch_add(1, Ordering::SeqCst);
        if previous >= AFTER_STEP {
            self.abort();
        }
        self.notify.notify_waiters();
    }

    /// Cancels the current step at once; it rolls back.
    pub fn abort(&self) {
        self.state.store(NOW, Ordering::SeqCst);
        if let Some(interrupt) = &self.on_abort.lock().unwrap_or_else(|e| e.into_inner()).0 {
            interrupt();
        }
        self.notify.notify_waiters();
    }

    /// Makes [`abort`](StopHandle::abort) run `interrupt` (at once if the
    /// run is aborted already) until the returned guard drops.
    pub(crate) fn interrupting(&self, interrupt: Box<dyn Fn() + Send + Sync>) -> Interrupting<'_> {
        self.on_abort(Some(interrupt));
        Interrupting(self)
    }

    fn on_abort(&self, interrupt: Option<Box<dyn Fn() + Send + Sync>>) {
        let mut slot = self.on_abort.lock().unwrap_or_else(|e| e.into_inner());
        slot.0 = interrupt;
        if self.aborted()
            && let Some(interrupt) = &slot.0
        {
            interrupt();
        }
    }

    /// Whether a stop was requested.
    pub fn stop_requested(&self) -> bool {
        self.state.load(Ordering::SeqCst) != RUNNING
    }

    /// Whether the run must stop at once.
    pub(crate) fn aborted(&self) -> bool {
        self.state.load(Ordering::SeqCst) >= NOW
    }

    /// Resolves when the run must stop at once.
    pub(crate) async fn aborting(&self) {
        loop {
            let notified = self.notify.notified();
            if self.aborted() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves when any stop is requested.
    pub(crate) async fn stopping(&self) {
        loop {
            let notified = self.notify.notified();
            if self.stop_requested() {
                return;
            }
            notified.await;
        }
    }
}

/// While it lives, an abort interrupts the step in progress (see
/// [`StopHandle::interrupting`]).
pub(crate) struct Interrupting<'a>(&'a StopHandle);

impl Drop for Interrupting<'_> {
    fn drop(&mut self) {
        self.0.on_abort(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalates() {
        let stop = StopHandle::new();
        assert!(!stop.stop_requested());
        stop.request();
        assert!(stop.stop_requested() && !stop.aborted());
        stop.request();
        assert!(stop.aborted());
    }
}
