//! The `backfill-user-slugs` example through dmig-host's library, the way
//! `dmig-host run` runs it, with the sandbox's default limits or with them
//! turned off ([`SandboxBuilder::dangerous_disable_limits`]): the benchmark
//! runs both to measure what the limits cost.
//!
//! ```text
//! library-backfill --artifact backfill_user_slugs.wasm --database URL --limits default|off [--batch-size 500]
//! ```
//!
//! The compile cache is the one `dmig-host` uses (`$DMIG_CACHE_DIR`, …).
//! Prints `rows=N steps=N` on success; exits with dmig-host's exit code
//! and `error: …` otherwise.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use dmig_bench::DEFAULT_BATCH_SIZE;
use dmig_host::{Artifact, Direction, RunOptions, Runner, SandboxBuilder};

/// Run the example through the library, limits on or off.
#[derive(Debug, Parser)]
struct Args {
    /// The example's component.
    #[arg(long)]
    artifact: PathBuf,
    /// The target database URL.
    #[arg(long)]
    database: String,
    /// The sandbox's limits: `default` (as dmig-host runs) or `off`.
    #[arg(long, value_enum)]
    limits: Limits,
    /// Rows per batch (`--arg batch_size`).
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    batch_size: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Limits {
    Default,
    Off,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(outcome) => {
            println!("rows={} steps={}", outcome.rows, outcome.steps);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn run(args: &Args) -> dmig_host::Result<dmig_host::Outcome> {
    let artifact = Artifact::load(&args.artifact)?;
    let mut builder = SandboxBuilder::new();
    if args.limits == Limits::Off {
        builder.dangerous_disable_limits();
    }
    let runner = Runner::new(builder.build()?);
    let options = RunOptions {
        args: vec![("batch_size".into(), args.batch_size.to_string())],
        ..RunOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| dmig_host::Error::Sandbox(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(runner.run(&artifact, &args.database, Direction::Up, &options))
}
