//! Waiting before trying again after a transient database error (see
//! [`DbError::is_transient`](super::DbError::is_transient)): a jittered
//! exponential backoff. Before attempt `n` (1-based) of a retry, wait a
//! random time between half and all of `BASE × 2^(n-1)`, capped at [`CAP`],
//! so sessions that collided do not collide again in lockstep.

use std::time::Duration;

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
}
