//! What the runner checks about a migration's progress, beyond what the
//! guest says: steps that do not advance, and runs that end short of (or
//! past) the total they declared.

use crate::db::{Connection, DbError, Dialect};
use crate::error::plural;

/// How many steps in a row may return the cursor they were given and
/// change no rows before the run fails, by default.
pub const DEFAULT_MAX_STALLED_STEPS: u32 = 3;

/// Rows this connection has written so far, by the server's own count, where
/// the server keeps one the runner can read: SQLite's `total_changes()`
/// (since the connection opened), PostgreSQL's `pg_stat_xact_user_tables`
/// (inserted, updated, deleted; besides the current transaction's, it holds
/// earlier transactions' counts the session has not yet reported, so only
/// the difference across a step means anything, and the ledger's own tables
/// are left out). `None` on MySQL, which has none per session; there the
/// host's own count of the guest's statements stands alone.
pub(super) async fn rows_written(conn: &mut Connection) -> Result<Option<u64>, DbError> {
    let sql = match conn.dialect() {
        Dialect::Sqlite => "SELECT total_changes() AS n",
        Dialect::Postgres => {
            "SELECT CAST(COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0) AS BIGINT) AS n \
             FROM pg_stat_xact_user_tables WHERE relname NOT LIKE 'dmig!_%' ESCAPE '!'"
        }
        Dialect::Mysql => return Ok(None),
    };
    let rows = conn.query(sql, &[]).await?;
    let n = rows
        .rows
        .first()
        .and_then(|r| r.first())
        .and_then(crate::db::Value::as_i64)
        .unwrap_or(0);
    Ok(Some(u64::try_from(n).unwrap_or(0)))
}

/// Counts the steps in a row that did not advance: returned the cursor they
/// were given (not the end) and wrote no rows.
#[derive(Debug)]
pub(super) struct Stall {
    /// Fail at this many such steps in a row; 0 never fails.
    limit: u32,
    /// Such steps in a row so far.
    count: u32,
}

impl Stall {
    pub fn new(limit: u32) -> Self {
        Stall { limit, count: 0 }
    }

    /// Notes step number `step` (1-based, of this run), which was given
    /// `given`, returned `returned` and wrote `written` rows; says what was
    /// seen once `limit` steps in a row did not advance.
    pub fn observe(
        &mut self,
        step: u64,
        given: Option<&str>,
        returned: Option<&str>,
        written: u64,
    ) -> Option<String> {
        let stalled = returned.is_some() && returned == given && written == 0;
        if !stalled {
            self.count = 0;
            return None;
        }
        self.count += 1;
        if self.limit == 0 || self.count < self.limit {
            return None;
        }
        let first = step + 1 - u64::from(self.count);
        Some(format!(
            "steps {first} to {step} each returned the cursor they were given ({:?}) and changed no \
             rows, {} in a row: the migration does not advance (return a cursor past the rows \
             a step handled, or change them so that the next step no longer selects them; \
             --max-stalled-steps 0 turns this check off)",
            returned.unwrap_or_default(),
            plural(u64::from(self.count), "time"),
        ))
    }
}

/// What to note about a run that finished having processed `rows` rows when
/// the migration declared `declared` (`progress::set_total`) during this run:
/// nothing when they agree or no total was declared.
pub(super) fn total_note(rows: u64, declared: Option<u64>) -> Option<String> {
    let declared = declared?;
    if rows == declared {
        return None;
    }
    Some(if rows < declared {
        format!(
            "the run ended short: it processed {} of the {declared} it declared ({} fewer); \
             rows may have been skipped (or the total was counted over more rows than the \
             steps select)",
            plural(rows, "row"),
            declared - rows,
        )
    } else {
        format!(
            "the run processed {}, {} more than the {declared} it declared; the total was \
             counted low (rows added while it ran?) or rows were processed twice",
            plural(rows, "row"),
            rows - declared,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_that_does_not_move_and_writes_nothing_stalls() {
        let mut stall = Stall::new(3);
        assert_eq!(stall.observe(1, None, Some("a"), 0), None);
        assert_eq!(stall.observe(2, Some("a"), Some("a"), 0), None);
        assert_eq!(stall.observe(3, Some("a"), Some("a"), 0), None);
        let seen = stall.observe(4, Some("a"), Some("a"), 0).unwrap();
        assert!(
            seen.starts_with(r#"steps 2 to 4 each returned the cursor they were given ("a")"#),
            "{seen}"
        );
        assert!(seen.contains("3 times in a row"), "{seen}");
    }

    #[test]
    fn written_rows_or_a_moving_cursor_reset_the_count() {
        let mut stall = Stall::new(2);
        assert_eq!(stall.observe(1, Some("q"), Some("q"), 0), None);
        // A queue drained from the same cursor: rows were written.
        assert_eq!(stall.observe(2, Some("q"), Some("q"), 10), None);
        assert_eq!(stall.observe(3, Some("q"), Some("q"), 0), None);
        assert_eq!(stall.observe(4, Some("q"), Some("r"), 0), None);
        assert_eq!(stall.observe(5, Some("r"), None, 0), None);
        let mut off = Stall::new(0);
        for step in 1..100 {
            assert_eq!(off.observe(step, Some("a"), Some("a"), 0), None);
        }
    }

    #[test]
    fn a_total_that_differs_is_noted_either_way() {
        assert_eq!(total_note(10, None), None);
        assert_eq!(total_note(10, Some(10)), None);
        let short = total_note(7, Some(10)).unwrap();
        assert!(short.contains("processed 7 rows of the 10 it declared (3 fewer)"));
        let over = total_note(1, Some(0)).unwrap();
        assert!(over.contains("processed 1 row, 1 more than the 0"));
    }
}
