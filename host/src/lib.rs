//! dmig-host runs data migrations built as WebAssembly components: sandboxed
//! (nothing granted unless the operator grants it, every resource bounded),
//! transactional (one host-owned transaction per step, with the cursor
//! committed alongside the data) and tracked (every run recorded in a ledger
//! table in the target database).
//!
//! The pieces, each with one job:
//!
//! * [`artifact`]: read a `.wasm` file and tell what it is.
//! * [`manifest`]: what an artifact declares about itself, read from its bytes.
//! * [`signing`]: keys, detached signatures, and trusted-key checks.
//! * [`inspect`]: everything a reviewer needs to know about an artifact.
//! * [`sandbox`]: compile and instantiate it with limits and deny-by-default WASI.
//! * [`db`]: one driver-neutral connection to the target database.
//! * [`ledger`]: the `dmig_` tables that record what ran.
//! * [`runner`]: the step loop tying them together.
//! * [`cli`]: the `dmig-host` command line, a thin layer over the above.
//! * [`scaffold`]: `dmig-host new`, a new migration crate from the template.
//! * `harness` (feature `harness`): run a migration from an author's
//!   `cargo test` against a throwaway database.

pub mod artifact;
mod bindings;
pub mod cli;
pub mod db;
pub mod error;
pub mod grants;
#[cfg(feature = "harness")]
pub mod harness;
pub mod inspect;
pub mod ledger;
pub mod manifest;
pub mod runner;
pub mod sandbox;
pub mod scaffold;
pub mod signing;
pub mod sql;

pub use artifact::Artifact;
pub use error::{Error, ExitCode, Result};
pub use runner::{Direction, Outcome, OutcomeKind, RunOptions, Runner};
pub use sandbox::{Sandbox, SandboxBuilder};
