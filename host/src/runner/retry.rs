//! Running a step again after a transient error: how long to wait first.
//!
//! A step that meets contention with other sessions (a deadlock, a
//! serialization failure, a lock it could not get in time; see
//! [`DbError::is_transient`](crate::db::DbError::is_transient)) is rolled
//! back and run again from the same cursor, in a fresh instance of the
//! migration, up to `--retries` times ([`DEFAULT_RETRIES`]). Before retry
//! `n` (1-based) the runner waits a jittered exponential backoff: a random
//! time between half and all of `BASE × 2^(n-1)`, capped at [`CAP`], so
//! hosts and application sessions that collided do not collide again in
//! lockstep.

use std::time::Duration;

/// How many times a step is retried by default.
pub const DEFAULT_RETRIES: u32 = 5;

/// The backoff before the first retry (before jitter).
pub const BASE: Duration = Duration::from_millis(100);

/// The longest backoff before any retry.
pub const CAP: Duration = Duration::from_secs(5);

/// How long to wait before retry `attempt` (1-based), with `unit` a random
/// number in `[0, 1)`: `d/2 + unit × d/2`, where `d = min(CAP, BASE ×
/// 2^(attempt-1))`.
pub fn backoff(attempt: u32, unit: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let full = BASE.saturating_mul(1 << exponent).min(CAP);
    let unit = unit.clamp(0.0, 1.0);
    full / 2 + full.div_f64(2.0).mul_f64(unit)
}

/// A random number in `[0, 1)` for [`backoff`]'s jitter (from the operating
/// system; a fixed midpoint if it has none to give).
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{DbError, Dialect};

    #[test]
    fn backoff_doubles_within_its_jitter_and_stops_at_the_cap() {
        assert_eq!(backoff(1, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(2, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(3, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(10, 1.0), CAP);
        assert_eq!(backoff(u32::MAX, 0.0), CAP / 2);
        for _ in 0..100 {
            let unit = jitter();
            assert!((0.0..1.0).contains(&unit));
            let wait = backoff(4, unit);
            assert!(wait >= Duration::from_millis(400) && wait <= Duration::from_millis(800));
        }
    }

    fn error(code: &str, message: &str) -> DbError {
        DbError {
            code: Some(code.into()),
            message: message.into(),
        }
    }

    #[test]
    fn transient_errors_are_told_by_their_codes() {
        let transient = [
            (Dialect::Postgres, error("40P01", "deadlock detected")),
            (
                Dialect::Postgres,
                error("40001", "could not serialize access"),
            ),
            (
                Dialect::Postgres,
                error("55P03", "canceling statement due to lock timeout"),
            ),
            (
                Dialect::Mysql,
                error("40001", "Deadlock found when trying to get lock"),
            ),
            (
                Dialect::Mysql,
                error(
                    "HY000",
                    "Lock wait timeout exceeded; try restarting transaction",
                ),
            ),
            (Dialect::Sqlite, error("5", "database is locked")),
            (Dialect::Sqlite, error("517", "database is locked")),
            (Dialect::Sqlite, error("6", "database table is locked")),
        ];
        for (dialect, e) in &transient {
            assert!(e.is_transient(*dialect), "{dialect}: {e}");
        }
        let lasting = [
            (Dialect::Postgres, error("23505", "duplicate key")),
            (Dialect::Postgres, error("57014", "statement timeout")),
            (Dialect::Mysql, error("HY000", "Unknown error")),
            (Dialect::Mysql, error("23000", "Duplicate entry")),
            (Dialect::Sqlite, error("19", "constraint failed")),
            (Dialect::Sqlite, error("dmig:limit", "too many rows")),
            (Dialect::Postgres, error("dmig:refused", "refused")),
        ];
        for (dialect, e) in &lasting {
            assert!(!e.is_transient(*dialect), "{dialect}: {e}");
        }
        let no_code = DbError {
            code: None,
            message: "connection closed".into(),
        };
        assert!(!no_code.is_transient(Dialect::Postgres));
    }
}
