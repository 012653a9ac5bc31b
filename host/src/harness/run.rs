//! Running the migration under test through the real host: the same
//! sandbox, runner and ledger as `dmig-host run`, in process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::database::TestDatabase;
use super::{HarnessError, Result, runtime};
use crate::ledger::RunRecord;
use crate::runner::{self, Direction, Event, Outcome, RunOptions, Runner, StopHandle};
use crate::{Artifact, SandboxBuilder};

/// The migration under test: a built component, run with the host's default
/// sandbox (inputs and arguments per run, see [`TestMigration::on`]).
#[derive(Debug, Clone)]
pub struct TestMigration {
    wasm: PathBuf,
}

impl TestMigration {
    /// Builds the crate in `manifest_dir` for `wasm32-wasip2` (once per test
    /// process; see [`build_guest`](super::build_guest)). Pass
    /// `env!("CARGO_MANIFEST_DIR")` from the migration's own tests.
    ///
    /// # Errors
    ///
    /// [`HarnessError::Build`] when the crate does not build.
    pub fn build(manifest_dir: impl AsRef<Path>) -> Result<Self> {
        Ok(TestMigration {
            wasm: super::build_guest(manifest_dir)?,
        })
    }

    /// A component built elsewhere.
    pub fn from_wasm(path: impl Into<PathBuf>) -> Self {
        TestMigration { wasm: path.into() }
    }

    /// The component's path.
    pub fn wasm(&self) -> &Path {
        &self.wasm
    }

    /// Options for one run against `db`: arguments, inputs, limits.
    pub fn on<'a>(&'a self, db: &'a TestDatabase) -> RunBuilder<'a> {
        RunBuilder {
            migration: self,
            db,
            options: RunOptions {
                // A test that leaves a lock behind should fail, not wait.
                lock_timeout: Duration::from_secs(5),
                ..RunOptions::default()
            },
            inputs: Vec::new(),
            step_timeout: None,
        }
    }

    /// Runs `up` against `db` with default options.
    ///
    /// # Errors
    ///
    /// [`HarnessError::Run`] when the run fails, as `dmig-host run` would.
    pub fn up(&self, db: &TestDatabase) -> Result<Run> {
        self.on(db).up()
    }

    /// Runs `down` against `db` with default options.
    ///
    /// # Errors
    ///
    /// [`HarnessError::Run`] when the run fails or is refused.
    pub fn down(&self, db: &TestDatabase) -> Result<Run> {
        self.on(db).down()
    }
}

/// One run being set up: what `dmig-host run`'s flags would say.
#[must_use = "a RunBuilder does nothing until .up() or .down()"]
pub struct RunBuilder<'a> {
    migration: &'a TestMigration,
    db: &'a TestDatabase,
    options: RunOptions,
    inputs: Vec<(String, PathBuf)>,
    step_timeout: Option<Duration>,
}

impl RunBuilder<'_> {
    /// `--arg key=value`.
    pub fn arg(mut self, key: &str, value: impl ToString) -> Self {
        self.options.args.push((key.to_owned(), value.to_string()));
        self
    }

    /// `--input name=path`: grants the file, read-only, as `/inputs/<name>`.
    pub fn input(mut self, name: &str, path: impl Into<PathBuf>) -> Self {
        self.inputs.push((name.to_owned(), path.into()));
        self
    }

    /// `--max-steps n`: stop (interrupted, resumable) after `n` steps.
    pub fn max_steps(mut self, steps: u64) -> Self {
        self.options.max_steps = Some(steps);
        self
    }

    /// `--force`: run again although applied.
    pub fn force(mut self) -> Self {
        self.options.force = true;
        self
    }

    /// `--restart`: start over instead of resuming.
    pub fn restart(mut self) -> Self {
        self.options.restart = true;
        self
    }

    /// `--dry-run`: run every step in one transaction and roll it back.
    pub fn dry_run(mut self) -> Self {
        self.options.dry_run = true;
        self
    }

    /// `--step-timeout`.
    pub fn step_timeout(mut self, timeout: Duration) -> Self {
        self.step_timeout = Some(timeout);
        self
    }

    /// Runs `up`.
    ///
    /// # Errors
    ///
    /// [`HarnessError::Run`] when the run fails, with the guest's logs and
    /// the ledger's record of the run; [`HarnessError::Host`] when the host
    /// cannot be set up (a bad input grant, an unreadable artifact).
    pub fn up(self) -> Result<Run> {
        self.run(Direction::Up)
    }

    /// Runs `down`. Errors as [`RunBuilder::up`].
    pub fn down(self) -> Result<Run> {
        self.run(Direction::Down)
    }

    fn run(self, direction: Direction) -> Result<Run> {
        let mut builder = SandboxBuilder::new();
        if let Some(timeout) = self.step_timeout {
            builder.step_timeout(timeout);
        }
        for (name, path) in &self.inputs {
            builder.grant_input(name, path)?;
        }
        let runner = Runner::new(builder.build()?);
        let artifact = Artifact::load(&self.migration.wasm)?;
        let url = self.db.url();
        let mut logs = Vec::new();
        let mut observer = |event: &Event| {
            if let Event::Log { level, message, .. } = event {
                logs.push(Log {
                    level: level.clone(),
                    message: message.clone(),
                });
            }
        };
        let result = runtime().block_on(runner.run_with(
            &artifact,
            url,
            direction,
            &self.options,
            &mut observer,
            &StopHandle::new(),
        ));
        let run_id = match &result {
            Ok(outcome) => outcome.run_id,
            Err(crate::Error::MigrationFailed { run_id, .. }) => *run_id,
            Err(crate::Error::Interrupted { run_id, .. }) => Some(*run_id),
            Err(_) => None,
        };
        let record = match run_id {
            Some(id) => runtime()
                .block_on(runner::history(url))?
                .into_iter()
                .find(|r| r.id == id),
            None => None,
        };
        match result {
            Ok(outcome) => Ok(Run {
                outcome,
                record,
                logs,
            }),
            Err(error) => Err(HarnessError::Run {
                error: Box::new(error),
                logs,
                record: record.map(Box::new),
            }),
        }
    }
}

/// One message the guest logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct Run {
    /// What the runner reports: steps, rows, whether it was already applied.
    pub outcome: Outcome,
    /// The ledger's record of this run (none when nothing ran: already
    /// applied, or a dry run).
    pub record: Option<RunRecord>,
    /// Everything the guest logged, in order.
    pub logs: Vec<Log>,
}

impl Run {
    /// The messages logged at `level`.
    pub fn logged(&self, level: &str) -> Vec<&str> {
        self.logs
            .iter()
            .filter(|l| l.level == level)
            .map(|l| l.message.as_str())
            .collect()
    }

    /// The ledger's record; panics when the run recorded none.
    #[track_caller]
    pub fn record(&self) -> &RunRecord {
        self.record
            .as_ref()
            .expect("this run has no ledger record (already applied, or a dry run)")
    }
}
