//! Running a directory of migrations, the way teams keep them: one artifact
//! per migration, named so that name order is the order to apply them in
//! (`20261122103000_backfill_user_slugs.wasm`).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Direction, Observer, Outcome, RunOptions, Runner, StopHandle};
use crate::artifact::Artifact;
use crate::db::Connection;
use crate::error::{Error, Result};
use crate::ledger::{self, MigrationState};

/// The `.wasm` files directly in `dir`, in file-name order.
///
/// # Errors
///
/// [`Error::ArtifactUnreadable`] if `dir` cannot be listed,
/// [`Error::NoArtifacts`] if it holds no `.wasm` file.
pub fn artifacts_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::ArtifactUnreadable {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if paths.is_empty() {
        return Err(Error::NoArtifacts {
            dir: dir.to_path_buf(),
        });
    }
    Ok(paths)
}

impl Runner {
    /// Applies every artifact in `dir` in file-name order: applied ones are
    /// skipped (their bytes must still match), unfinished ones resume, and
    /// the first failure stops the whole run, leaving later artifacts
    /// untouched. `finished` is told each artifact's outcome as it ends.
    ///
    /// # Errors
    ///
    /// Whatever the first failing artifact failed with (see
    /// [`Runner::run_with`]); artifacts after it do not run.
    pub async fn run_directory(
        &self,
        dir: &Path,
        url: &str,
        options: &RunOptions,
        observer: &mut dyn Observer,
        finished: &mut dyn FnMut(&Outcome),
        stop: &StopHandle,
    ) -> Result<Vec<Outcome>> {
        let mut outcomes = Vec::new();
        for path in artifacts_in(dir)? {
            if stop.stop_requested() {
                break;
            }
            let artifact = Artifact::load(&path)?;
            let outcome = self
                .run_with(&artifact, url, Direction::Up, options, observer, stop)
                .await?;
            finished(&outcome);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
}

/// Where one artifact of a directory stands on a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactStatus {
    pub path: PathBuf,
    /// The migration's name, from its manifest.
    pub name: Option<String>,
    pub sha256: Option<String>,
    #[serde(flatten)]
    pub state: PendingState,
}

/// Whether `run <dir>` would apply an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum PendingState {
    /// Never applied here (or reverted): `run` applies it.
    Pending,
    /// A run started and did not finish: `run` resumes it.
    Unfinished { last: MigrationState },
    /// Applied from these very bytes: `run` skips it.
    Applied,
    /// Applied from other bytes: `run` refuses it (drift).
    Changed { applied_sha256: String },
    /// It declares no manifest, so its name is unknown without running it.
    Undeclared,
    /// It cannot be read as an artifact.
    Invalid { reason: String },
}

impl std::fmt::Display for PendingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PendingState::Pending => f.write_str("pending"),
            PendingState::Unfinished { last } => write!(f, "pending (resumes; last {last})"),
            PendingState::Applied => f.write_str("applied"),
            PendingState::Changed { applied_sha256 } => write!(
                f,
                "CHANGED since applied (applied sha256 {}…)",
                &applied_sha256[..applied_sha256.len().min(12)]
            ),
            PendingState::Undeclared => f.write_str("unknown (no manifest)"),
            PendingState::Invalid { reason } => write!(f, "invalid: {reason}"),
        }
    }
}

/// Where each artifact of `dir` stands on the database at `url`. Creates
/// nothing.
///
/// # Errors
///
/// [`Error::NoArtifacts`], [`Error::Connect`] or [`Error::Ledger`]; an
/// unreadable artifact is reported as [`PendingState::Invalid`], not raised.
pub async fn directory_status(url: &str, dir: &Path) -> Result<Vec<ArtifactStatus>> {
    let paths = artifacts_in(dir)?;
    let mut conn = Connection::connect_existing(url).await?;
    let has_ledger = ledger::exists(&mut conn).await?;
    let mut statuses = Vec::with_capacity(paths.len());
    for path in paths {
        let artifact = match Artifact::load(&path) {
            Ok(artifact) => artifact,
            Err(e) => {
                statuses.push(ArtifactStatus {
                    path,
                    name: None,
                    sha256: None,
                    state: PendingState::Invalid {
                        reason: e.to_string(),
                    },
                });
                continue;
            }
        };
        let sha256 = Some(artifact.sha256().to_owned());
        let Some(manifest) = artifact.manifest() else {
            statuses.push(ArtifactStatus {
                path,
                name: None,
                sha256,
                state: PendingState::Undeclared,
            });
            continue;
        };
        let record = if has_ledger {
            ledger::migration(&mut conn, &manifest.name).await?
        } else {
            None
        };
        let state = match record {
            None => PendingState::Pending,
            Some(r) if r.sha256 != artifact.sha256() => PendingState::Changed {
                applied_sha256: r.sha256,
            },
            Some(r) => match r.state {
                MigrationState::Applied => PendingState::Applied,
                MigrationState::Reverted => PendingState::Pending,
                last => PendingState::Unfinished { last },
            },
        };
        statuses.push(ArtifactStatus {
            path,
            name: Some(manifest.name.clone()),
            sha256,
            state,
        });
    }
    Ok(statuses)
}
