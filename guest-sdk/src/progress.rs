//! How far along the migration is, for the operator's progress bar.

/// Declares how many rows this direction will process in all, so the host can
/// show a rate and an ETA. Call it in the first step (for example after a
/// `SELECT count(*)`); calling it again corrects it.
pub fn set_total(rows: u64) {
    crate::__private::dmig::migration::progress::set_total(rows);
}
