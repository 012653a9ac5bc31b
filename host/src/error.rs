//! Every way a dmig operation can fail, and the exit code each maps to.

use std::path::PathBuf;

use crate::runner::Direction;

/// The process exit codes of `dmig-host`, one per class of outcome, so scripts
/// and CI can tell "the migration failed" from "the artifact is wrong" from
/// "the database is unreachable" without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum ExitCode {
    /// Success, including "already applied, nothing to do".
    Ok = 0,
    /// The migration ran and failed (guest error, trap, SQL error); its step
    /// was rolled back and the run recorded as failed in the ledger.
    MigrationFailed = 1,
    /// Bad command-line usage or configuration (missing database URL, unknown
    /// URL scheme, an input that cannot be granted).
    Usage = 2,
    /// The database could not be reached, or the ledger could not be read or
    /// written.
    Database = 3,
    /// The host refused to run: not reversible, not applied, or an artifact
    /// whose bytes differ from the applied one.
    Refused = 4,
    /// The guest trapped (panic, stack overflow, `unreachable`) or hit a
    /// sandbox limit (memory, time, fuel); its step was rolled back and the
    /// run recorded as failed with the cause.
    GuestTrapped = 5,
    /// Another host holds the migration's lock and did not release it within
    /// `--lock-timeout`.
    Locked = 6,
    /// The run stopped before finishing on purpose (SIGINT/SIGTERM or
    /// `--max-steps`); run again to resume from its cursor.
    Interrupted = 7,
    /// The guest sent a statement outside its declared capabilities; the
    /// statement did not run, its step was rolled back and the run recorded
    /// as failed.
    CapabilityViolation = 8,
    /// The run lost the migration's lock while it ran (the lock connection
    /// was closed, or another host took the lock over): it stopped at once,
    /// its open step was rolled back and the run recorded as failed; run
    /// again to resume.
    LockLost = 9,
    /// The artifact file could not be read.
    ArtifactUnreadable = 10,
    /// The artifact is not a WebAssembly file at all.
    NotWasm = 11,
    /// The artifact is WebAssembly but truncated or invalid.
    MalformedWasm = 12,
    /// The artifact is a core module, not a component.
    CoreModule = 13,
    /// The artifact is a component, but not of the `dmig:migration` world.
    WrongWorld = 14,
    /// A file dmig-host was asked to write (`new`'s migration crate,
    /// `pack`'s output) could not be written.
    CannotWrite = 15,
    /// The artifact's manifest is missing (without `--allow-undeclared`),
    /// invalid, or contradicts what the guest says of itself.
    BadManifest = 16,
    /// `--trusted-keys` was given and the artifact has no signature.
    Unsigned = 17,
    /// The artifact's signature does not match it: the artifact, its
    /// manifest or the signature changed after signing.
    BadSignature = 18,
    /// The artifact is signed, but by no trusted key.
    UntrustedSigner = 19,
    /// The migration stopped advancing: its steps kept returning the cursor
    /// they were given and changed no rows (see `--max-stalled-steps`); the
    /// run was recorded as failed.
    NoProgress = 20,
    /// The database's ledger was upgraded by a newer dmig-host, past the
    /// schema version this one understands; nothing was written.
    LedgerTooNew = 21,
    /// A bug in dmig-host itself.
    Internal = 70,
}

/// Why a migration step failed, in terms an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureCause {
    /// The guest returned an error from `up` or `down`.
    Guest(String),
    /// The guest trapped (panic, unreachable, stack overflow, limit); the text
    /// is a one-line explanation.
    Trap(String),
    /// The database failed while the host committed the step or wrote the
    /// ledger.
    Database(String),
    /// The guest sent a statement outside its declared capabilities; the
    /// text names the statement and what it lacks.
    Capability(String),
    /// The run lost the migration's lock (its connection was closed, or
    /// another host took it over) and stopped; the text says how.
    LockLost(String),
    /// The migration does not advance: its steps returned the cursor they
    /// were given and changed no rows, several times in a row; the text
    /// says what the runner saw.
    NoProgress(String),
}

impl FailureCause {
    /// The same cause with `suffix` appended to its text.
    pub(crate) fn with_suffix(self, suffix: &str) -> Self {
        let add = |m: String| format!("{m}{suffix}");
        match self {
            FailureCause::Guest(m) => FailureCause::Guest(add(m)),
            FailureCause::Trap(m) => FailureCause::Trap(add(m)),
            FailureCause::Database(m) => FailureCause::Database(add(m)),
            FailureCause::Capability(m) => FailureCause::Capability(add(m)),
            FailureCause::LockLost(m) => FailureCause::LockLost(add(m)),
            FailureCause::NoProgress(m) => FailureCause::NoProgress(add(m)),
        }
    }
}

impl std::fmt::Display for FailureCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureCause::Guest(m)
            | FailureCause::Trap(m)
            | FailureCause::Database(m)
            | FailureCause::Capability(m)
            | FailureCause::LockLost(m)
            | FailureCause::NoProgress(m) => f.write_str(m),
        }
    }
}

/// Everything the dmig library can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The artifact file could not be read.
    #[error("cannot read artifact {}: {source} (check the path and its permissions)", path.display())]
    ArtifactUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the WebAssembly magic number.
    #[error("{} is not a WebAssembly file (build the migration with `cargo build --release --target wasm32-wasip2` and pass the .wasm it produces)", path.display())]
    NotWasm { path: PathBuf },
    /// The file is WebAssembly but cannot be decoded.
    #[error("{} is truncated or invalid WebAssembly: {reason} (rebuild it, or copy it again if it was cut short)", path.display())]
    MalformedWasm { path: PathBuf, reason: String },
    /// The file is a core module rather than a component.
    #[error("{} is a core WebAssembly module, not a component (build for the wasm32-wasip2 target, which produces components)", path.display())]
    CoreModule { path: PathBuf },
    /// The component does not implement the dmig world.
    #[error("{} is a component but not a dmig migration: {reason} (build it against the dmig-guest SDK and call export_migration!)", path.display())]
    WrongWorld { path: PathBuf, reason: String },
    /// An `--input` grant cannot be made.
    #[error("cannot grant input {name} ({}): {reason} (use --input NAME=PATH with a plain NAME and a readable file)", path.display())]
    BadInput {
        name: String,
        path: PathBuf,
        reason: String,
    },
    /// No database URL was given.
    #[error(
        "no database given: pass --database URL or set DATABASE_URL (in the environment or a .env file)"
    )]
    MissingDatabaseUrl,
    /// The URL names a database this build cannot talk to.
    #[error("unsupported database URL {url:?}: {reason}")]
    UnsupportedDatabase { url: String, reason: String },
    /// Connecting to the database failed.
    #[error(
        "cannot connect to {url}: {source} (check the URL, and that the server is running and reachable)"
    )]
    Connect {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading or writing the dmig ledger tables failed.
    #[error("ledger {action} failed: {source}")]
    Ledger {
        action: &'static str,
        #[source]
        source: crate::db::DbError,
    },
    /// The migration failed; its open step was rolled back and the run
    /// recorded in the ledger.
    #[error("migration {name} failed during {direction} step {step} ({}, cursor {cursor}): {cause}", run_id.map_or("dry run".to_owned(), |id| format!("run {id}")), cursor = cursor.as_deref().map_or("<start>".to_owned(), crate::sandbox::text::shown_cursor))]
    MigrationFailed {
        name: String,
        direction: Direction,
        /// The ledger id of the run; `None` for a dry run, which records nothing.
        run_id: Option<i64>,
        /// The 1-based number of the step that failed, within this run.
        step: u64,
        /// The cursor the failed step started from (the last committed one).
        cursor: Option<String>,
        cause: FailureCause,
    },
    /// The ledger's schema is newer than this dmig-host understands.
    #[error(
        "the dmig ledger in this database has schema version {found} (upgraded by dmig-host {upgraded_by}), newer than version {supported}, which this dmig-host {} understands; nothing was written (run a dmig-host at least as new as the one that upgraded it)",
        crate::ledger::HOST_VERSION
    )]
    LedgerTooNew {
        found: i64,
        upgraded_by: String,
        supported: i64,
    },
    /// Another host holds the migration's lock.
    #[error("migration {name} is locked by {} on {host} (pid {pid}) since {since}; gave up after {} (raise --lock-timeout, or wait for that run to finish)", run_id.map_or("a run starting".to_owned(), |id| format!("run {id}")), humantime::format_duration(*waited))]
    Locked {
        name: String,
        run_id: Option<i64>,
        host: String,
        pid: u32,
        since: String,
        waited: std::time::Duration,
    },
    /// The run was stopped before finishing, on purpose; resumable.
    #[error("migration {name} was interrupted after {} of this run (run {run_id}, cursor {cursor}); run it again to resume", plural(*steps, "step"), cursor = cursor.as_deref().map_or("<start>".to_owned(), crate::sandbox::text::shown_cursor))]
    Interrupted {
        name: String,
        run_id: i64,
        steps: u64,
        cursor: Option<String>,
    },
    /// `down` was asked of a migration that declares itself irreversible.
    #[error(
        "migration {name} is not reversible: it declares reversible = false, so `down` is refused"
    )]
    NotReversible { name: String },
    /// `down` was asked of a migration that was never applied.
    #[error(
        "migration {name} has not been applied to this database, so there is nothing to revert"
    )]
    NotApplied { name: String },
    /// The artifact's bytes differ from those applied under the same name.
    #[error(
        "migration {name} was applied from an artifact with sha256 {expected}, but this one has sha256 {found} (pass --allow-changed to run it anyway)"
    )]
    ArtifactMismatch {
        name: String,
        expected: String,
        found: String,
    },
    /// The artifact's manifest section is unusable.
    #[error("{} cannot be trusted to declare what it does: {reason} (rebuild it with the dmig-guest SDK, or fix the section with dmig-host pack)", path.display())]
    BadManifest {
        path: PathBuf,
        reason: crate::manifest::ManifestError,
    },
    /// The artifact has no manifest, so nothing limits what it touches.
    #[error("{} declares no manifest, so its tables and capabilities are unknown (rebuild it with the dmig-guest SDK, add one with dmig-host pack, or pass --allow-undeclared to run it unrestricted)", path.display())]
    Undeclared { path: PathBuf },
    /// The guest describes itself differently from its manifest, in
    /// `field` (`name`, `description` or `reversible`); the values are shown
    /// as they read, strings quoted.
    #[error("{} is inconsistent: its manifest's {field} is {manifest} but the guest's describe() returns {described} (rebuild it)", path.display())]
    ManifestMismatch {
        path: PathBuf,
        field: &'static str,
        manifest: String,
        described: String,
    },
    /// Trusted keys were required and the artifact has no signature.
    #[error("{} is not signed, and --trusted-keys requires a signature (sign it with dmig-host sign, and ship the .sig file beside it)", path.display())]
    Unsigned { path: PathBuf },
    /// The artifact's signature does not verify.
    #[error("{} fails signature verification: {reason} (do not run it; get the artifact and its .sig from the signer again)", path.display())]
    BadSignature { path: PathBuf, reason: String },
    /// Only keys the operator does not trust signed the artifact.
    #[error("{} is signed only by untrusted keys {} (none of them is in {}; add the signer's .pub there if you trust it)", path.display(), key_ids.join(", "), trusted_dir.display())]
    UntrustedSigner {
        path: PathBuf,
        key_ids: Vec<String>,
        trusted_dir: PathBuf,
    },
    /// A key file or trusted-keys directory is unusable.
    #[error("key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    /// A directory given as the artifact holds no `.wasm` files.
    #[error("{} holds no .wasm artifacts (pass a migration's .wasm, or a directory of them)", dir.display())]
    NoArtifacts { dir: PathBuf },
    /// `down` was given a directory.
    #[error("down reverts one migration at a time, and {} is a directory (pass the artifact to revert)", dir.display())]
    DownDirectory { dir: PathBuf },
    /// Writing a packed artifact failed.
    #[error("cannot write {}: {source} (check the path and its permissions)", path.display())]
    WriteArtifact {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The guest trapped outside a step (in `describe`).
    #[error("migration in {} failed while describing itself: {reason}", path.display())]
    DescribeFailed { path: PathBuf, reason: String },
    /// `dmig-host new` was given a name that cannot name a migration.
    #[error(
        "invalid migration name {name:?}: {reason} (use lowercase letters, digits, - and _, starting with a letter, e.g. backfill_user_slugs)"
    )]
    BadMigrationName { name: String, reason: String },
    /// `--define` named a placeholder the template does not declare.
    #[error("unknown template placeholder {key} in --define (the template declares: {known})")]
    BadDefine { key: String, known: String },
    /// The directory `dmig-host new` would create exists already.
    #[error("{} already exists; dmig-host new never overwrites (pick another name or --dir)", path.display())]
    ScaffoldExists { path: PathBuf },
    /// Writing the new migration's files failed; nothing was left behind.
    #[error("cannot write {}: {source} (check that the directory is writable; nothing was created)", path.display())]
    ScaffoldWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The built-in template cannot be rendered: a bug in dmig-host.
    #[error("the migration template's {file} cannot be rendered: {reason}")]
    Template { file: String, reason: String },
    /// Wasmtime could not be set up; a bug or an unsupported platform.
    #[error("sandbox setup failed: {0}")]
    Sandbox(String),
}

impl Error {
    /// The exit code this error maps to; see [`ExitCode`].
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::ArtifactUnreadable { .. } => ExitCode::ArtifactUnreadable,
            Error::NotWasm { .. } => ExitCode::NotWasm,
            Error::MalformedWasm { .. } => ExitCode::MalformedWasm,
            Error::CoreModule { .. } => ExitCode::CoreModule,
            Error::WrongWorld { .. } => ExitCode::WrongWorld,
            Error::MissingDatabaseUrl
            | Error::UnsupportedDatabase { .. }
            | Error::BadInput { .. }
            | Error::Key { .. }
            | Error::NoArtifacts { .. }
            | Error::DownDirectory { .. }
            | Error::BadMigrationName { .. }
            | Error::BadDefine { .. } => ExitCode::Usage,
            Error::ScaffoldWrite { .. } | Error::WriteArtifact { .. } => ExitCode::CannotWrite,
            Error::ScaffoldExists { .. } => ExitCode::Refused,
            Error::BadManifest { .. }
            | Error::Undeclared { .. }
            | Error::ManifestMismatch { .. } => ExitCode::BadManifest,
            Error::Unsigned { .. } => ExitCode::Unsigned,
            Error::BadSignature { .. } => ExitCode::BadSignature,
            Error::UntrustedSigner { .. } => ExitCode::UntrustedSigner,
            Error::Connect { .. } | Error::Ledger { .. } => ExitCode::Database,
            Error::MigrationFailed {
                cause: FailureCause::Trap(_),
                ..
            } => ExitCode::GuestTrapped,
            Error::MigrationFailed {
                cause: FailureCause::Capability(_),
                ..
            } => ExitCode::CapabilityViolation,
            Error::MigrationFailed {
                cause: FailureCause::LockLost(_),
                ..
            } => ExitCode::LockLost,
            Error::MigrationFailed {
                cause: FailureCause::NoProgress(_),
                ..
            } => ExitCode::NoProgress,
            Error::LedgerTooNew { .. } => ExitCode::LedgerTooNew,
            Error::MigrationFailed { .. } | Error::DescribeFailed { .. } => {
                ExitCode::MigrationFailed
            }
            Error::Locked { .. } => ExitCode::Locked,
            Error::Interrupted { .. } => ExitCode::Interrupted,
            Error::NotReversible { .. }
            | Error::NotApplied { .. }
            | Error::ArtifactMismatch { .. } => ExitCode::Refused,
            Error::Sandbox(_) | Error::Template { .. } => ExitCode::Internal,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `n` and `noun`, plural unless `n` is 1: "1 step", "2 steps", "0 rows",
/// "3 retries" (a consonant and `y` become `ies`; other nouns take `s`).
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        return format!("{n} {noun}");
    }
    match noun.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) => format!("{n} {stem}ies"),
        _ => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_pluralized() {
        assert_eq!(plural(1, "step"), "1 step");
        assert_eq!(plural(2, "step"), "2 steps");
        assert_eq!(plural(0, "row"), "0 rows");
        assert_eq!(plural(3, "retry"), "3 retries");
        assert_eq!(plural(1, "retry"), "1 retry");
        assert_eq!(plural(2, "key"), "2 keys");
    }
}
