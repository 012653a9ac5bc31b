use std::marker::PhantomData;

use crate::__private::exports::dmig::migration::migration as wit;
use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// A data migration. Implement it on a unit struct and export it with
/// [`export_migration!`](crate::export_migration).
///
/// Each method is a pure function of its arguments and the database: the host
/// may run each step in a fresh instance, and retries a step from its cursor
/// after a crash, so keep no state between calls.
pub trait Migration {
    /// Who the migration is and which tables it may touch. Evaluated at
    /// compile time and embedded in the artifact, so reviewers and the host
    /// read it without running the migration; the host refuses any statement
    /// outside it.
    const MANIFEST: Manifest;

    /// Does one forward batch starting after `cursor` (`None` on the first
    /// call) and returns where the next one starts, or [`Step::done`].
    fn up(cursor: Option<&str>) -> Result<Step>;

    /// Does one backward batch. The default refuses: a migration that sets
    /// [`Manifest::reversible`] must override it.
    fn down(cursor: Option<&str>) -> Result<Step> {
        let _ = cursor;
        Err(Error::msg(format!(
            "migration {} does not implement down",
            Self::MANIFEST.name
        )))
    }

    /// Checks the outcome of `up` after its last step, inside that step's
    /// transaction: an error rolls the last step back and fails the run. The
    /// default checks nothing.
    fn verify() -> Result<()> {
        Ok(())
    }
}

/// The outcome of one step: the next cursor (or none when finished) and how
/// many rows it processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Where the next step starts; `None` means this direction is finished.
    pub cursor: Option<String>,
    /// Rows processed by this step, for progress and the ledger.
    pub processed: u64,
}

impl Step {
    /// More to do: the next step starts at `cursor`.
    pub fn next(cursor: impl Into<String>, processed: u64) -> Self {
        Step {
            cursor: Some(cursor.into()),
            processed,
        }
    }

    /// This direction is finished.
    pub fn done(processed: u64) -> Self {
        Step {
            cursor: None,
            processed,
        }
    }
}

/// Bridges a [`Migration`] to the generated `Guest` trait.
#[doc(hidden)]
pub struct Adapter<M>(PhantomData<M>);

impl<M: Migration> wit::Guest for Adapter<M> {
    fn describe() -> wit::Metadata {
        let Manifest {
            name,
            description,
            reversible,
            ..
        } = M::MANIFEST;
        wit::Metadata {
            name: name.to_owned(),
            description: description.to_owned(),
            reversible,
        }
    }

    fn up(cursor: Option<String>) -> Result<wit::Step, String> {
        M::up(cursor.as_deref())
            .map(Into::into)
            .map_err(|e| e.to_string())
    }

    fn down(cursor: Option<String>) -> Result<wit::Step, String> {
        M::down(cursor.as_deref())
            .map(Into::into)
            .map_err(|e| e.to_string())
    }

    fn verify() -> Result<(), String> {
        M::verify().map_err(|e| e.to_string())
    }
}

impl From<Step> for wit::Step {
    fn from(step: Step) -> Self {
        wit::Step {
            cursor: step.cursor,
            processed: step.processed,
        }
    }
}
