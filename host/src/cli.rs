//! The `dmig-host` command line: parses arguments, calls the library, prints
//! the outcome, and maps errors to exit codes. No behaviour lives here.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::error::{Error, ExitCode, plural};
use crate::ledger::{MigrationStatus, RunRecord};
use crate::manifest::{self, Manifest};
use crate::runner::{
    self, ArtifactStatus, Direction, Event, Outcome, OutcomeKind, RunOptions, Runner, StopHandle,
};
use crate::sandbox::CallLimits;
use crate::signing::{self, TrustedKeys};
use crate::{Artifact, SandboxBuilder};

/// Run sandboxed, transactional, tracked data migrations built as WebAssembly
/// components.
#[derive(Debug, Parser)]
#[command(name = "dmig-host", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Log more: -v for each step, -vv for debugging. RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply a migration: run `up` step by step until it is done, resuming an
    /// unfinished run from its last committed cursor. Given a directory,
    /// apply each pending artifact in it in file-name order, stopping at the
    /// first failure.
    Run(RunArgs),
    /// Revert a migration: run `down` step by step. Refused unless the
    /// migration declares itself reversible and has been applied.
    Down(RunArgs),
    /// Show every migration recorded in the database and its last run, and
    /// with --dir which artifacts of a directory are pending.
    Status(StatusArgs),
    /// Show every run recorded in the database, newest first: duration,
    /// steps, rows, status and error.
    History(ListArgs),
    /// Show what an artifact is and may do, without running it: name,
    /// version, sha256, capabilities, imports, exports and signatures.
    Inspect(InspectArgs),
    /// Print the GRANT statements a least-privileged database role needs to
    /// run an artifact: its declared tables and functions, and dmig's
    /// ledger. Connects to nothing; the URL only picks the database kind.
    Grants(GrantsArgs),
    /// Create an ed25519 key pair for signing artifacts: NAME.key (private,
    /// keep it secret) and NAME.pub (give it to operators).
    Keygen(KeygenArgs),
    /// Sign an artifact (its bytes and manifest) with a private key; the
    /// signature goes into ARTIFACT.sig beside it.
    Sign(SignArgs),
    /// Check that an artifact carries a valid signature by a trusted key.
    Verify(VerifyArgs),
    /// Embed a manifest into a component built without the dmig-guest SDK.
    Pack(PackArgs),
    /// Create a new migration crate from the template, in
    /// <DIR>/<UTC timestamp>_<NAME>/: a README, up/down/verify with comments,
    /// and a test through the harness.
    New(NewArgs),
}

/// Where and how `new` renders the template.
#[derive(Debug, Args)]
struct NewArgs {
    /// The migration's name: lowercase letters, digits, - and _ (e.g.
    /// backfill_user_slugs).
    #[arg(value_name = "NAME")]
    name: String,

    /// The directory the migration's directory is created in (with its
    /// parents).
    #[arg(long, value_name = "DIR", default_value = "db/data_migrations")]
    dir: PathBuf,

    /// Set a template placeholder, as cargo-generate's --define does
    /// (repeatable), e.g. dmig_guest='{ path = "../dmig/guest-sdk" }'.
    #[arg(long = "define", short = 'd', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    defines: Vec<(String, String)>,

    /// Depend on the dmig-guest and dmig-host crates of this dmig checkout
    /// (by path). The default is the checkout this dmig-host was built from,
    /// when it is still there, else the released crates.
    #[arg(long, value_name = "PATH")]
    dmig_path: Option<PathBuf>,

    /// Depend on the released dmig-guest and dmig-host from crates.io, even
    /// when this dmig-host was built from a checkout.
    #[arg(long, conflicts_with = "dmig_path")]
    released: bool,
}

/// Where the target database is.
#[derive(Debug, Args)]
struct ConnectOpts {
    /// The target database: sqlite://path/to/file.db (created if missing),
    /// postgres://… or mysql://…. Falls back to DATABASE_URL, from the
    /// environment or a .env file.
    #[arg(
        short = 'D',
        long = "database",
        env = "DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database: Option<String>,
}

impl ConnectOpts {
    fn url(&self) -> Result<&str, Error> {
        self.database.as_deref().ok_or(Error::MissingDatabaseUrl)
    }
}

/// What the guest may use. Every limit has a finite default; nothing is
/// granted unless named here.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sandbox")]
struct SandboxOpts {
    /// Most linear memory the guest may use (per memory), e.g. 256MiB, 1GiB.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    max_memory: usize,

    /// Most wall-clock time one step may take, guest code and database calls
    /// together, e.g. 60s, 5m, 500ms.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    step_timeout: Duration,

    /// A deterministic budget per step, in fuel units (about one per wasm
    /// instruction). Off by default.
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,

    /// Most rows one query may return to the guest.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_result_rows: usize,

    /// Most data one query may return to the guest, e.g. 64MiB.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    max_result_bytes: usize,

    /// Longest SQL text the guest may send in one call.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    max_sql_bytes: usize,

    /// Most parameter values in one call (all sets of an execute-many together).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_params: usize,

    /// Most wasm instances the component may create.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_instances: usize,

    /// Most wasm tables the component may create (each at most 100,000 elements).
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_tables: usize,

    /// Most live WASI resources (streams, pollables, descriptors) the guest may hold.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_resources: usize,

    /// Do not keep compiled components on disk (by default they are cached in
    /// $DMIG_CACHE_DIR or ~/.cache/dmig/components, so a second run starts fast).
    #[arg(long)]
    no_cache: bool,

    /// Grant one file, read-only, visible to the guest as /inputs/NAME
    /// (repeatable). Nothing else of the filesystem is visible.
    #[arg(long = "input", value_name = "NAME=PATH", value_parser = parse_input)]
    inputs: Vec<(String, PathBuf)>,
}

impl SandboxOpts {
    fn builder(&self) -> Result<SandboxBuilder, Error> {
        let mut builder = SandboxBuilder::new();
        builder
            .max_memory(self.max_memory)
            .step_timeout(self.step_timeout)
            .fuel(self.fuel)
            .call_limits(CallLimits {
                max_result_rows: self.max_result_rows,
                max_result_bytes: self.max_result_bytes,
                max_sql_bytes: self.max_sql_bytes,
                max_params: self.max_params,
            })
            .max_instances(self.max_instances, self.max_tables, 100_000, 8)
            .max_resources(self.max_resources);
        if self.no_cache {
            builder.compile_cache(None);
        }
        for (name, path) in &self.inputs {
            builder.grant_input(name, path)?;
        }
        Ok(builder)
    }
}

fn parse_size(text: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = text
        .parse()
        .map_err(|e| format!("{e} (write a size such as 256MiB or 1GiB)"))?;
    usize::try_from(size.as_u64()).map_err(|_| "too large for this machine".to_owned())
}

fn parse_input(text: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = text
        .split_once('=')
        .ok_or_else(|| "expected NAME=PATH, e.g. users.csv=./exports/users.csv".to_owned())?;
    Ok((name.to_owned(), PathBuf::from(path)))
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| "expected KEY=VALUE, e.g. batch_size=1000".to_owned())?;
    if key.is_empty() {
        return Err("the KEY of KEY=VALUE is empty".to_owned());
    }
    Ok((key.to_owned(), value.to_owned()))
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The migration component (.wasm) to run, or (for `run`) a directory of
    /// them, applied in file-name order.
    #[arg(value_name = "ARTIFACT")]
    artifact: PathBuf,

    #[command(flatten)]
    connect: ConnectOpts,

    /// Run again from the start even if the migration is already applied.
    #[arg(long)]
    force: bool,

    /// Start from the beginning instead of resuming an unfinished run.
    #[arg(long)]
    restart: bool,

    /// Run even if the artifact's sha256 differs from the one recorded when
    /// the migration was applied.
    #[arg(long)]
    allow_changed: bool,

    /// An argument for the migration, read by the guest by name (repeatable).
    #[arg(long = "arg", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    args: Vec<(String, String)>,

    /// Wait this long between steps, to spare a busy database (e.g. 200ms).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pause: Option<Duration>,

    /// Stop after N steps, recorded as interrupted; run again to resume.
    #[arg(long, value_name = "N")]
    max_steps: Option<u64>,

    /// Run every step inside one transaction, report the steps, rows and net
    /// row changes per table, then roll everything back. Records nothing.
    #[arg(long)]
    dry_run: bool,

    /// How long to wait for another host running the same migration.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    lock_timeout: Duration,

    /// How many times to run a step again after a transient error (deadlock,
    /// serialization failure, lock wait timeout): the step is rolled back
    /// and retried from the same cursor after a jittered backoff (100 ms
    /// doubling, at most 5 s). 0 fails at the first.
    #[arg(long, value_name = "N", default_value_t = runner::retry::DEFAULT_RETRIES)]
    retries: u32,

    /// Fail the run when this many steps in a row return the cursor they
    /// were given and change no rows (the migration does not advance). 0
    /// turns the check off.
    #[arg(long, value_name = "N", default_value_t = runner::DEFAULT_MAX_STALLED_STEPS)]
    max_stalled_steps: u32,

    /// Run only artifacts signed by a key in this directory (its *.pub
    /// files); unsigned, tampered or untrusted artifacts are refused before
    /// anything of them runs.
    #[arg(long, value_name = "DIR")]
    trusted_keys: Option<PathBuf>,

    /// Run an artifact that declares no manifest. Nothing then limits which
    /// tables it touches (but the dmig_ ledger).
    #[arg(long)]
    allow_undeclared: bool,

    /// How to report: `human` (a progress bar on a terminal, a summary line)
    /// or `json` (one JSON object per line per event, on stdout).
    #[arg(long, value_enum, default_value_t = Output::Human)]
    output: Output,

    #[command(flatten)]
    sandbox: SandboxOpts,
}

/// How `run` and `down` report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Human,
    Json,
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    connect: ConnectOpts,

    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    list: ListArgs,

    /// Also list the artifacts of this directory and whether each is
    /// pending, applied, or changed since it was applied.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct GrantsArgs {
    /// The artifact (.wasm) whose manifest to read.
    #[arg(value_name = "ARTIFACT")]
    artifact: PathBuf,

    /// The role (PostgreSQL) or user (MySQL/MariaDB) to grant to.
    #[arg(long, value_name = "NAME", default_value = "dmig")]
    role: String,

    #[command(flatten)]
    connect: ConnectOpts,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// The artifact (.wasm) to inspect.
    #[arg(value_name = "ARTIFACT")]
    artifact: PathBuf,

    /// Check the signatures against the *.pub keys in this directory.
    #[arg(long, value_name = "DIR")]
    trusted_keys: Option<PathBuf>,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// The key's name: the files are NAME.key and NAME.pub.
    #[arg(long, default_value = "dmig")]
    name: String,

    /// Where to write the key files (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

#[derive(Debug, Args)]
struct SignArgs {
    /// The artifact (.wasm) to sign.
    #[arg(value_name = "ARTIFACT")]
    artifact: PathBuf,

    /// The private key (PKCS#8 PEM, as `keygen` writes it).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The artifact (.wasm) to verify; its signatures are read from ARTIFACT.sig.
    #[arg(value_name = "ARTIFACT")]
    artifact: PathBuf,

    /// The directory of trusted public keys (*.pub).
    #[arg(long, value_name = "DIR")]
    trusted_keys: PathBuf,
}

#[derive(Debug, Args)]
struct PackArgs {
    /// The component (.wasm) to add the manifest to.
    #[arg(value_name = "COMPONENT")]
    component: PathBuf,

    /// The manifest, as JSON in the format documented in docs/ARTIFACTS.md.
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,

    /// Where to write the packed artifact.
    #[arg(long, short, value_name = "PATH")]
    output: PathBuf,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> std::process::ExitCode {
    // A missing .env is normal; a malformed one is worth a warning.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("warning: ignoring .env: {e}");
    }
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let code = match run(cli) {
        Ok(()) => ExitCode::Ok,
        Err(e) => {
            let message = e.to_string().replace('\n', " ");
            eprintln!("error: {message}");
            e.exit_code()
        }
    };
    std::process::ExitCode::from(code as u8)
}

fn init_logging(verbose: u8) {
    // sqlx's own statement logging (slow-statement warnings while another
    // host holds a lock) is noise for an operator; RUST_LOG can enable it.
    let default = match verbose {
        0 => "warn,sqlx=error",
        1 => "warn,sqlx=error,dmig_host=info,dmig=info",
        _ => "info,sqlx=warn,dmig_host=debug,dmig=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(cli: Cli) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Sandbox(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        match cli.command {
            Command::Run(args) => migrate(args, Direction::Up).await,
            Command::Down(args) => migrate(args, Direction::Down).await,
            Command::Status(args) => {
                let url = args.list.connect.url()?;
                let statuses = runner::status(url).await?;
                let artifacts = match &args.dir {
                    Some(dir) => Some(runner::directory_status(url, dir).await?),
                    None => None,
                };
                print_status(&statuses, artifacts.as_deref(), args.list.json);
                Ok(())
            }
            Command::Inspect(args) => inspect(&args),
            Command::Grants(args) => grants(&args),
            Command::Keygen(args) => {
                let key = signing::generate(&args.dir, &args.name)?;
                emit(&format!(
                    "wrote {0}.key (private: keep it secret) and {0}.pub (key id {1}) in {2}",
                    args.name,
                    key.id(),
                    args.dir.display()
                ));
                Ok(())
            }
            Command::Sign(args) => {
                let artifact = Artifact::load(&args.artifact)?;
                let key = signing::sign(&artifact, &args.key)?;
                emit(&format!(
                    "signed {} (sha256 {}) with key {}; signature in {}",
                    args.artifact.display(),
                    artifact.sha256(),
                    key.id(),
                    signing::signature_path(&args.artifact).display()
                ));
                Ok(())
            }
            Command::Verify(args) => {
                let artifact = Artifact::load(&args.artifact)?;
                let trusted = TrustedKeys::read_dir(&args.trusted_keys)?;
                let verified = signing::verify(&artifact, &trusted)?;
                emit(&format!(
                    "{}: signature by trusted key {} verifies (sha256 {})",
                    args.artifact.display(),
                    verified.key_id,
                    artifact.sha256()
                ));
                Ok(())
            }
            Command::Pack(args) => pack(&args),
            Command::History(args) => {
                let runs = runner::history(args.connect.url()?).await?;
                print_history(&runs, args.json);
                Ok(())
            }
            Command::New(args) => new_migration(args),
        }
    })
}

fn new_migration(args: NewArgs) -> Result<(), Error> {
    let mut new = crate::scaffold::NewMigration::new(args.name, args.dir);
    if let Some(checkout) = &args.dmig_path {
        new.dmig_path(checkout);
    }
    if args.released {
        new.released();
    }
    new.defines.extend(args.defines);
    let dir = new.create()?;
    // Where the SDK comes from decides whether the crate builds: say it.
    let values = new.placeholders()?;
    emit(&format!(
        "created {}\n  dmig-guest = {}\n  dmig-host = {}\nnext: cd {0} && cargo test, then cargo build --release --target wasm32-wasip2",
        dir.display(),
        values["dmig_guest"],
        values["dmig_host"],
    ));
    Ok(())
}

async fn migrate(args: RunArgs, direction: Direction) -> Result<(), Error> {
    let json = args.output == Output::Json;
    let result = migrate_inner(&args, direction).await;
    if json
        && let Err(e) = &result
        && !matches!(e, Error::Interrupted { .. })
    {
        emit(
            &serde_json::json!({
                "event": "failed",
                "exit_code": e.exit_code() as u8,
                "error": e.to_string(),
            })
            .to_string(),
        );
    }
    result
}

async fn migrate_inner(args: &RunArgs, direction: Direction) -> Result<(), Error> {
    let url = args.connect.url()?;
    if args.artifact.is_dir() {
        return match direction {
            Direction::Up => migrate_directory(args, url).await,
            Direction::Down => Err(Error::DownDirectory {
                dir: args.artifact.clone(),
            }),
        };
    }
    let artifact = Artifact::load(&args.artifact)?;
    let runner = Runner::new(args.sandbox.builder()?.build()?);
    let options = run_options(args)?;
    let stop = StopHandle::new();
    let signals = tokio::spawn(forward_signals(Signals::register()?, stop.clone()));
    let outcome = match args.output {
        Output::Json => {
            let mut observer =
                |event: &Event| emit(&serde_json::to_string(event).expect("events serialize"));
            runner
                .run_with(&artifact, url, direction, &options, &mut observer, &stop)
                .await
        }
        Output::Human => {
            let mut progress = ProgressBar::new();
            let outcome = runner
                .run_with(
                    &artifact,
                    url,
                    direction,
                    &options,
                    &mut |e: &Event| progress.event(e),
                    &stop,
                )
                .await;
            progress.finish();
            if let Ok(outcome) = &outcome {
                print_outcome(outcome);
            }
            outcome
        }
    };
    signals.abort();
    outcome.map(drop)
}

/// `run DIR`: every artifact of the directory in order.
async fn migrate_directory(args: &RunArgs, url: &str) -> Result<(), Error> {
    let runner = Runner::new(args.sandbox.builder()?.build()?);
    let options = run_options(args)?;
    let stop = StopHandle::new();
    let signals = tokio::spawn(forward_signals(Signals::register()?, stop.clone()));
    let result = match args.output {
        Output::Json => {
            let mut observer =
                |event: &Event| emit(&serde_json::to_string(event).expect("events serialize"));
            runner
                .run_directory(
                    &args.artifact,
                    url,
                    &options,
                    &mut observer,
                    &mut |_| {},
                    &stop,
                )
                .await
        }
        Output::Human => {
            let mut progress = ProgressBar::new();
            let result = runner
                .run_directory(
                    &args.artifact,
                    url,
                    &options,
                    &mut |e: &Event| progress.event(e),
                    &mut print_outcome,
                    &stop,
                )
                .await;
            progress.finish();
            if let Ok(outcomes) = &result {
                let applied = outcomes
                    .iter()
                    .filter(|o| o.kind == OutcomeKind::Completed)
                    .count();
                emit(&format!(
                    "{}: {applied} applied, {} already applied",
                    args.artifact.display(),
                    outcomes.len() - applied
                ));
            }
            result
        }
    };
    signals.abort();
    result.map(drop)
}

fn run_options(args: &RunArgs) -> Result<RunOptions, Error> {
    Ok(RunOptions {
        force: args.force,
        restart: args.restart,
        allow_changed: args.allow_changed,
        args: args.args.clone(),
        pause: args.pause,
        max_steps: args.max_steps,
        dry_run: args.dry_run,
        lock_timeout: args.lock_timeout,
        retries: args.retries,
        max_stalled_steps: args.max_stalled_steps,
        allow_undeclared: args.allow_undeclared,
        trusted_keys: args
            .trusted_keys
            .as_deref()
            .map(TrustedKeys::read_dir)
            .transpose()?,
    })
}

fn grants(args: &GrantsArgs) -> Result<(), Error> {
    let artifact = Artifact::load(&args.artifact)?;
    let url = args.connect.url()?;
    let dialect = crate::db::Dialect::from_url(url)?;
    let Some(manifest) = artifact.manifest() else {
        return Err(Error::Undeclared {
            path: args.artifact.clone(),
        });
    };
    // The MySQL database is the URL's path.
    let database = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, path)| path.split(['?', '#']).next().unwrap_or_default())
        .filter(|d| !d.is_empty());
    let text =
        crate::grants::render(manifest, dialect, &args.role, database).map_err(|reason| {
            Error::BadManifest {
                path: args.artifact.clone(),
                reason: manifest::ManifestError::Rule(reason),
            }
        })?;
    emit(text.trim_end());
    Ok(())
}

fn inspect(args: &InspectArgs) -> Result<(), Error> {
    let artifact = Artifact::load(&args.artifact)?;
    let trusted = args
        .trusted_keys
        .as_deref()
        .map(TrustedKeys::read_dir)
        .transpose()?;
    let report = crate::inspect::inspect(&artifact, trusted.as_ref())?;
    if args.json {
        emit(&serde_json::to_string_pretty(&report).expect("inspections serialize"));
    } else {
        emit(&report.to_string());
    }
    Ok(())
}

fn pack(args: &PackArgs) -> Result<(), Error> {
    let artifact = Artifact::load(&args.component)?;
    if artifact.manifest().is_some() {
        return Err(Error::BadManifest {
            path: args.component.clone(),
            reason: manifest::ManifestError::AlreadyPresent,
        });
    }
    let bad = |reason: manifest::ManifestError| Error::BadManifest {
        path: args.manifest.clone(),
        reason,
    };
    let text = std::fs::read(&args.manifest).map_err(|source| Error::ArtifactUnreadable {
        path: args.manifest.clone(),
        source,
    })?;
    let manifest = Manifest::parse(&text).map_err(bad)?;
    let mut bytes = artifact.bytes().to_vec();
    manifest::append_custom_section(&mut bytes, manifest::SECTION, manifest.to_json().as_bytes());
    std::fs::write(&args.output, &bytes).map_err(|source| Error::WriteArtifact {
        path: args.output.clone(),
        source,
    })?;
    let packed = Artifact::load(&args.output)?;
    emit(&format!(
        "wrote {} with the manifest of {} (sha256 {})",
        args.output.display(),
        manifest.name,
        packed.sha256()
    ));
    Ok(())
}

/// SIGINT and SIGTERM, registered before the run starts so that no signal
/// can arrive while nothing listens (and kill the process mid-step).
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> Result<Self, Error> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let failed =
                |e: std::io::Error| Error::Sandbox(format!("cannot listen for signals: {e}"));
            Ok(Signals {
                int: signal(SignalKind::interrupt()).map_err(failed)?,
                term: signal(SignalKind::terminate()).map_err(failed)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) -> bool {
        #[cfg(unix)]
        {
            tokio::select! {
                s = self.int.recv() => s.is_some(),
                s = self.term.recv() => s.is_some(),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.is_ok()
        }
    }
}

/// SIGINT or SIGTERM once: finish the current step, then stop as
/// interrupted. Twice: roll the current step back at once.
async fn forward_signals(mut signals: Signals, stop: StopHandle) {
    while signals.next().await {
        let first = !stop.stop_requested();
        stop.request();
        if first {
            eprintln!("stopping after the current step (signal again to roll it back now)");
        } else {
            eprintln!("rolling the current step back");
        }
    }
}

/// A progress bar on stderr while a run goes, when stderr is a terminal.
struct ProgressBar {
    bar: Option<indicatif::ProgressBar>,
}

impl ProgressBar {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        ProgressBar { bar }
    }

    fn event(&mut self, event: &Event) {
        let line = match event {
            Event::Started {
                migration,
                run_id: Some(run_id),
                resumed_from: Some(cursor),
                ..
            } => Some(format!(
                "resuming {migration} from cursor {} (run {run_id}); pass --restart to start over",
                crate::sandbox::text::shown_cursor(cursor)
            )),
            Event::Retry {
                step,
                attempt,
                retries,
                delay_ms,
                error,
                ..
            } => Some(format!(
                "retrying step {step} ({attempt} of {retries}) in {delay_ms} ms after a transient error: {error}"
            )),
            Event::Warning { message, .. } => Some(format!("warning: {message}")),
            _ => None,
        };
        if let Some(line) = line {
            match &self.bar {
                Some(bar) => bar.println(line),
                None => eprintln!("{line}"),
            }
        }
        let Some(bar) = &self.bar else { return };
        match event {
            Event::Started {
                migration,
                direction,
                ..
            } => bar.set_prefix(format!("{migration} {direction}")),
            Event::Step {
                step,
                rows_total,
                expected_rows,
                ..
            } => {
                match expected_rows {
                    Some(total) => {
                        if bar.length() != Some(*total) {
                            bar.set_length(*total);
                            bar.set_style(
                                indicatif::ProgressStyle::with_template(
                                    "{prefix} [{bar:30}] {human_pos}/{human_len} rows, {msg}, ETA {eta}",
                                )
                                .expect("a valid template")
                                .progress_chars("=> "),
                            );
                        }
                    }
                    None => bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{spinner} {prefix}: {pos} rows, {per_sec} {msg}",
                        )
                        .expect("a valid template"),
                    ),
                }
                bar.set_position(*rows_total);
                let rate = *rows_total as f64 / bar.elapsed().as_secs_f64().max(0.001);
                bar.set_message(format!("{rate:.0} rows/s, step {step}"));
            }
            Event::Log { level, message, .. } => bar.println(format!("{level}: {message}")),
            _ => {}
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn print_outcome(outcome: &Outcome) {
    let name = &outcome.migration;
    let summary = |verb: &str| {
        let resumed = outcome
            .resumed_from
            .as_deref()
            .map(|c| {
                format!(
                    ", resumed from cursor {}",
                    crate::sandbox::text::shown_cursor(c)
                )
            })
            .unwrap_or_default();
        let retried = match outcome.retries {
            0 => String::new(),
            n => format!(", {} after transient errors", plural(n, "retry")),
        };
        let run = outcome
            .run_id
            .map(|id| format!(" (run {id}{resumed}{retried})"))
            .unwrap_or_default();
        format!(
            "{verb} {name}: {}, {} in {:.2} s{run}",
            plural(outcome.steps, "step"),
            plural(outcome.rows, "row"),
            outcome.elapsed.as_secs_f64(),
        )
    };
    match (outcome.kind, outcome.direction) {
        (OutcomeKind::AlreadyApplied, _) => {
            emit(&format!(
                "{name} is already applied; nothing to do (pass --force to run it again)"
            ));
        }
        (OutcomeKind::Completed, Direction::Up) => emit(&summary("applied")),
        (OutcomeKind::Completed, Direction::Down) => emit(&summary("reverted")),
        (OutcomeKind::DryRun, direction) => {
            emit(&format!(
                "{}; everything was rolled back",
                summary(&format!("dry run ({direction}) of"))
            ));
            let mut table = Table::new();
            table.load_style(UTF8_FULL_CONDENSED).set_header([
                "table",
                "rows before",
                "rows after",
                "net",
            ]);
            for change in &outcome.changes {
                table.add_row([
                    change.table.clone(),
                    change.before.to_string(),
                    change.after.to_string(),
                    format!("{:+}", change.net()),
                ]);
            }
            emit(&table.to_string());
        }
    }
}

fn print_history(runs: &[RunRecord], json: bool) {
    if json {
        let runs: Vec<_> = runs
            .iter()
            .map(|run| {
                let mut value = serde_json::to_value(run).expect("runs serialize");
                value["duration_seconds"] =
                    serde_json::json!(run.duration().map(|d| d.as_secs_f64()));
                value
            })
            .collect();
        emit(&serde_json::to_string_pretty(&runs).expect("runs serialize"));
        return;
    }
    if runs.is_empty() {
        emit("no runs recorded in this database");
        return;
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header([
        "run",
        "migration",
        "direction",
        "status",
        "started",
        "duration",
        "steps",
        "rows",
        "retries",
        "error / note",
    ]);
    for run in runs {
        let duration = run
            .duration()
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .unwrap_or_default();
        table.add_row([
            run.id.to_string(),
            run.migration.clone(),
            run.direction.to_string(),
            run.status.to_string(),
            run.started_at.clone(),
            duration,
            run.steps.to_string(),
            run.rows_processed.to_string(),
            run.retries.to_string(),
            error_or_note(run),
        ]);
    }
    emit(&table.to_string());
}

fn print_status(statuses: &[MigrationStatus], artifacts: Option<&[ArtifactStatus]>, json: bool) {
    if json {
        let value = match artifacts {
            Some(artifacts) => serde_json::json!({"migrations": statuses, "artifacts": artifacts}),
            None => serde_json::to_value(statuses).expect("statuses serialize"),
        };
        emit(&serde_json::to_string_pretty(&value).expect("statuses serialize"));
        return;
    }
    if let Some(artifacts) = artifacts {
        print_artifacts(artifacts);
    }
    if statuses.is_empty() {
        emit("no migrations recorded in this database");
        return;
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header([
        "migration",
        "state",
        "last run",
        "steps",
        "rows",
        "finished",
        "sha256",
        "error / note",
    ]);
    for s in statuses {
        let m = &s.migration;
        let run = s.last_run.as_ref();
        table.add_row([
            m.name.clone(),
            m.state.to_string(),
            run.map(|r| format!("#{} {} {}", r.id, r.direction, r.status))
                .unwrap_or_default(),
            run.map(|r| r.steps.to_string()).unwrap_or_default(),
            run.map(|r| r.rows_processed.to_string())
                .unwrap_or_default(),
            m.last_finished_at.clone().unwrap_or_default(),
            m.sha256.chars().take(12).collect(),
            run.map(error_or_note).unwrap_or_default(),
        ]);
    }
    emit(&table.to_string());
}

/// A run's error, or else the runner's note on it (marked as one).
fn error_or_note(run: &RunRecord) -> String {
    match (&run.error, &run.note) {
        (Some(error), _) => error.clone(),
        (None, Some(note)) => format!("note: {note}"),
        (None, None) => String::new(),
    }
}

fn print_artifacts(artifacts: &[ArtifactStatus]) {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(["artifact", "migration", "state"]);
    for a in artifacts {
        table.add_row([
            a.path.file_name().map_or_else(
                || a.path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            a.name.clone().unwrap_or_default(),
            a.state.to_string(),
        ]);
    }
    let pending = artifacts
        .iter()
        .filter(|a| {
            matches!(
                a.state,
                runner::PendingState::Pending | runner::PendingState::Unfinished { .. }
            )
        })
        .count();
    emit(&format!(
        "{pending} of {} pending",
        plural(artifacts.len() as u64, "artifact")
    ));
    emit(&table.to_string());
}

/// Prints a line to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}
