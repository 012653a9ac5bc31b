//! Messages to the operator, through the host's log (and `--output json`).
//! Keep them to one line; the host bounds their size and number per step.

use crate::__private::dmig::migration::log::{self as host, Level};

/// Detail for debugging a migration.
pub fn debug(message: impl AsRef<str>) {
    host::log(Level::Debug, message.as_ref());
}

/// Normal progress worth telling the operator.
pub fn info(message: impl AsRef<str>) {
    host::log(Level::Info, message.as_ref());
}

/// Something the operator should look at, that did not stop the migration
/// (a skipped malformed row, a resolved collision).
pub fn warn(message: impl AsRef<str>) {
    host::log(Level::Warn, message.as_ref());
}

/// A failure worth reporting before the step returns its error.
pub fn error(message: impl AsRef<str>) {
    host::log(Level::Error, message.as_ref());
}
