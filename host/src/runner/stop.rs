//! Stopping a run from outside: after the current step, or at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

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
        self.notify.notify_waiters();
    }

    /// Whether a stop was requested.
    pub fn stop_requested(&self) -> bool {
        self.state.load(Ordering::SeqCst) != RUNNING
    }

    fn aborted(&self) -> bool {
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
