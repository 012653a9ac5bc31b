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

pub use crate::db::backoff::{BASE, CAP, backoff, jitter};

/// How many times a step is retried by default.
pub const DEFAULT_RETRIES: u32 = 5;

#[cfg(test)]
mod tests {
    use crate::db::{DbError, Dialect};

    fn error(code: &str, message: &str) -> DbError {
        DbError {
            number: None,
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
                DbError {
                    number: Some(1205),
                    ..error(
                        "HY000",
                        "Lock wait timeout exceeded; try restarting transaction",
                    )
                },
            ),
            (
                Dialect::Mysql,
                DbError {
                    number: Some(1020),
                    ..error(
                        "HY000",
                        "Record has changed since last read in table 'accounts'; try restarting transaction",
                    )
                },
            ),
            // By number whatever the server's language (`lc_messages`).
            (
                Dialect::Mysql,
                DbError {
                    number: Some(1205),
                    ..error(
                        "HY000",
                        "Tiempo de espera de bloqueo excedido; intente reiniciar la transacción",
                    )
                },
            ),
            (
                Dialect::Mysql,
                DbError {
                    number: Some(1020),
                    ..error("HY000", "El registro ha cambiado desde la ultima lectura")
                },
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
            (
                Dialect::Mysql,
                DbError {
                    number: Some(1062),
                    ..error("23000", "Duplicate entry '1' for key 'PRIMARY'")
                },
            ),
            (Dialect::Mysql, error("23000", "Duplicate entry")),
            (Dialect::Sqlite, error("19", "constraint failed")),
            (Dialect::Sqlite, error("dmig:limit", "too many rows")),
            (Dialect::Postgres, error("dmig:refused", "refused")),
        ];
        for (dialect, e) in &lasting {
            assert!(!e.is_transient(*dialect), "{dialect}: {e}");
        }
        let no_code = DbError {
            number: None,
            code: None,
            message: "connection closed".into(),
        };
        assert!(!no_code.is_transient(Dialect::Postgres));
    }
}
