//! `dmig-bench`: backfills users' slugs on SQLite and PostgreSQL four ways
//! and reports throughput, CPU time, peak memory and start-up time. See
//! docs/PERFORMANCE.md; run it with `scripts/bench.sh`.
//!
//! * (a) the `backfill-user-slugs` example through `dmig-host run`;
//! * (b) `native-backfill`: the same work as a native sqlx program;
//! * (c) one set-based `UPDATE` doing the same transform;
//! * (d) the same work as a plain Python program (`bench/python`: the
//!   standard library's `sqlite3`, or psycopg 3), the script a user would
//!   otherwise write;
//!
//! plus the example with the sandbox's limits off and with `--fuel`, at
//! two sizes for memory, and the start-up of an already-applied migration
//! against `dmig-host --version`. Every run starts from a fresh copy of the
//! same data set, and every result is checked row by row.

mod dataset;
mod error;
mod machine;
mod measure;
mod report;
mod setbased;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use dmig_bench::{DEFAULT_BATCH_SIZE, Dialect};

use dataset::{Conn, Store, Template};
use error::{BenchError, Result};
use report::{Measurement, Method, Report, Startup};

/// Benchmark dmig-host against a native program, a Python program and a
/// set-based UPDATE.
#[derive(Debug, Parser)]
#[command(name = "dmig-bench")]
struct Args {
    /// Rows in the large data set.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Rows in the small data set (peak memory is compared between the two).
    #[arg(long, default_value_t = 100_000)]
    small_rows: u64,
    /// Rows per batch, for the example, the native and the Python programs
    /// alike.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    batch_size: i64,
    /// Which databases to run on.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    databases: Vec<Database>,
    /// A PostgreSQL server URL (any existing database on it): the benchmark
    /// creates its own databases there and drops them afterwards.
    #[arg(
        long,
        env = "DMIG_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    /// The per-step fuel budget of the `--fuel` run.
    #[arg(long, default_value_t = 1_000_000_000)]
    fuel: u64,
    /// Rounds of (a), (b) and (c) on the large data set; the median is
    /// reported.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Rounds of the runs on the small data set (the sandbox's cost: limits
    /// on and off, fuel; and memory); the median is reported.
    #[arg(long, default_value_t = 3)]
    sandbox_repeat: usize,
    /// Start-up runs of each kind (the median is reported).
    #[arg(long, default_value_t = 20)]
    startup_runs: usize,
    /// The dmig-host binary (a release build).
    #[arg(long, default_value = "target/release/dmig-host")]
    dmig_host: PathBuf,
    /// The example's component (a release build).
    #[arg(
        long,
        default_value = "target/wasm32-wasip2/release/backfill_user_slugs.wasm"
    )]
    artifact: PathBuf,
    /// The Python interpreter of the Python comparators (d): one with their
    /// packages installed (bench/python/requirements.txt; scripts/bench.sh
    /// makes this virtual environment).
    #[arg(long, default_value = "target/bench-venv/bin/python")]
    python: PathBuf,
    /// The directory of the Python comparators' programs.
    #[arg(long, default_value = "bench/python")]
    python_programs: PathBuf,
    /// Where data sets, caches and the results go.
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
    /// Where the SQLite databases go (default: `sqlite` in the work
    /// directory). On a RAM disk such as /dev/shm, commits cost no fsync and
    /// the runs measure CPU work alone.
    #[arg(long)]
    sqlite_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Database {
    Sqlite,
    Postgres,
}

/// The programs being measured.
struct Programs {
    dmig_host: PathBuf,
    native: PathBuf,
    library: PathBuf,
    artifact: PathBuf,
    /// The Python interpreter (not resolved through its symbolic link: a
    /// virtual environment is known by the path it is started as).
    python: PathBuf,
    /// `backfill_sqlite.py` and `backfill_postgres.py`.
    python_sqlite: PathBuf,
    python_postgres: PathBuf,
    /// Where Python writes the programs' bytecode (out of the source tree).
    pycache: PathBuf,
    /// The compile cache every measured host shares (warmed first).
    cache: PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(&args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}

async fn run(args: &Args) -> Result<()> {
    if args.batch_size < 1
        || args.rows == 0
        || args.small_rows == 0
        || args.repeat == 0
        || args.sandbox_repeat == 0
    {
        return Err(BenchError::Missing(
            "--rows, --small-rows, --batch-size, --repeat and --sandbox-repeat must be at least 1"
                .into(),
        ));
    }
    let work = absolute(&args.work_dir, "creating the work directory")?;
    let programs = Programs::find(args, &work)?;
    let mut report = Report::new(
        args.rows,
        args.small_rows,
        args.batch_size,
        args.fuel,
        (args.repeat, args.sandbox_repeat),
    );
    report.machine = machine::describe();
    report.notes.push(programs.python_versions()?);
    for database in &args.databases {
        let store = match database {
            Database::Sqlite => {
                let dir = args
                    .sqlite_dir
                    .clone()
                    .unwrap_or_else(|| work.join("sqlite"));
                let dir = absolute(&dir, "creating the SQLite directory")?;
                report.notes.push(format!(
                    "SQLite files in {} ({}), default journal mode and synchronous=FULL: \
                     every step commits with fsync",
                    dir.display(),
                    filesystem(&dir)
                ));
                Store::Sqlite { dir }
            }
            Database::Postgres => Store::Postgres {
                admin: args.postgres.clone(),
                prefix: format!("dmig_bench_{}", std::process::id()),
            },
        };
        let mut templates = Vec::new();
        let result = bench_database(args, &programs, &store, &mut templates, &mut report).await;
        let cleanup = store
            .cleanup(&templates, &["run", "warmup", "startup"])
            .await;
        result?;
        cleanup?;
    }
    let text = report.render();
    println!("{text}");
    let out = work.join("results.md");
    std::fs::write(&out, &text).map_err(|source| BenchError::Io {
        what: "writing the results",
        path: out.clone(),
        source,
    })?;
    eprintln!("results written to {}", out.display());
    Ok(())
}

/// The type of filesystem `dir` is on (from /proc/mounts: the longest
/// mount point that contains it).
fn filesystem(dir: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            dir.starts_with(point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max()
        .map_or("unknown filesystem".into(), |(_, kind)| kind)
}

fn absolute(dir: &Path, what: &'static str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .and_then(|()| dir.canonicalize())
        .map_err(|source| BenchError::Io {
            what,
            path: dir.to_path_buf(),
            source,
        })
}

impl Programs {
    fn find(args: &Args, work: &Path) -> Result<Self> {
        let exe = std::env::current_exe().map_err(|source| BenchError::Io {
            what: "finding the benchmark's own binary",
            path: PathBuf::from("dmig-bench"),
            source,
        })?;
        let bin_dir = exe.parent().unwrap_or(Path::new("."));
        let exists = |path: PathBuf, hint: &str| {
            if path.is_file() {
                path.canonicalize().map_err(|source| BenchError::Io {
                    what: "resolving a program",
                    path,
                    source,
                })
            } else {
                Err(BenchError::Missing(format!(
                    "{} does not exist: {hint} (scripts/bench.sh builds everything)",
                    path.display()
                )))
            }
        };
        let python = std::path::absolute(&args.python).map_err(|source| BenchError::Io {
            what: "resolving the Python interpreter",
            path: args.python.clone(),
            source,
        })?;
        if !python.is_file() {
            return Err(BenchError::Missing(format!(
                "{} does not exist: make a virtual environment with bench/python/requirements.txt \
                 installed (scripts/bench.sh does) or pass --python",
                python.display()
            )));
        }
        let script = |name: &str| {
            exists(
                args.python_programs.join(name),
                "pass --python-programs with the directory of the Python programs",
            )
        };
        let cache = work.join("cache");
        // Start cold: the warm-up compiles each engine configuration once.
        if cache.exists() {
            std::fs::remove_dir_all(&cache).map_err(|source| BenchError::Io {
                what: "emptying the compile cache",
                path: cache.clone(),
                source,
            })?;
        }
        Ok(Programs {
            dmig_host: exists(
                args.dmig_host.clone(),
                "build it with cargo build --release -p dmig-host",
            )?,
            native: exists(
                bin_dir.join("native-backfill"),
                "build it with cargo build --release -p dmig-bench",
            )?,
            library: exists(
                bin_dir.join("library-backfill"),
                "build it with cargo build --release -p dmig-bench",
            )?,
            artifact: exists(
                args.artifact.clone(),
                "build it with cargo build --release --target wasm32-wasip2 --manifest-path examples/backfill-user-slugs/Cargo.toml",
            )?,
            python,
            python_sqlite: script("backfill_sqlite.py")?,
            python_postgres: script("backfill_postgres.py")?,
            pycache: work.join("pycache"),
            cache,
        })
    }

    /// The Python interpreter with the environment every Python run gets:
    /// none of the caller's `PYTHON*` settings (`PYTHONDONTWRITEBYTECODE`
    /// would make every run compile psycopg again, about 0.5 s of CPU), and
    /// bytecode written once, by the warm-up, outside the source tree.
    fn python(&self) -> Command {
        let mut c = Command::new(&self.python);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PYTHON") {
                c.env_remove(name);
            }
        }
        c.env("PYTHONPYCACHEPREFIX", &self.pycache);
        c
    }

    /// What the Python programs run on, for the report: the interpreter,
    /// the SQLite library its `sqlite3` module links (not the one sqlx
    /// bundles) and psycopg with its libpq. Fails if the packages are
    /// missing.
    fn python_versions(&self) -> Result<String> {
        let probe = "import sys, sqlite3, psycopg; \
                     v = psycopg.pq.version(); \
                     print(f'Python {sys.version.split()[0]} (its sqlite3 module on SQLite {sqlite3.sqlite_version}), \
                     psycopg {psycopg.__version__} ({psycopg.pq.__impl__}, libpq {v // 10000}.{v % 10000})')";
        let out = measure::run("the Python interpreter", self.python().args(["-c", probe]))?;
        Ok(format!("Python programs: {}", out.stdout.trim()))
    }

    /// The command that runs `method` against `url`.
    fn command(&self, method: Method, url: &str, args: &Args) -> Command {
        let batch = args.batch_size.to_string();
        let mut command = match method {
            Method::Host | Method::HostBulk | Method::HostFuel => {
                let mut c = Command::new(&self.dmig_host);
                c.arg("run")
                    .arg(&self.artifact)
                    .args(["--database", url])
                    .args(["--arg", &format!("batch_size={batch}")]);
                if method != Method::HostBulk {
                    c.args(["--arg", "writes=per-row"]);
                }
                if method == Method::HostFuel {
                    c.args(["--fuel", &args.fuel.to_string()]);
                }
                c
            }
            Method::Native => {
                let mut c = Command::new(&self.native);
                c.args(["--database", url, "--batch-size", &batch]);
                c
            }
            Method::LibraryDefault | Method::LibraryOff => {
                let mut c = Command::new(&self.library);
                c.arg("--artifact")
                    .arg(&self.artifact)
                    .args(["--database", url, "--batch-size", &batch])
                    .args([
                        "--limits",
                        if method == Method::LibraryOff {
                            "off"
                        } else {
                            "default"
                        },
                    ]);
                c
            }
            Method::Python => {
                let mut c = self.python();
                c.arg(match Dialect::from_url(url) {
                    Some(Dialect::Postgres) => &self.python_postgres,
                    _ => &self.python_sqlite,
                })
                .args(["--database", url, "--batch-size", &batch]);
                c
            }
            Method::SetBased => unreachable!("the set-based UPDATE runs in-process"),
        };
        command
            .env("DMIG_CACHE_DIR", &self.cache)
            .env_remove("DATABASE_URL")
            .env_remove("RUST_LOG");
        command
    }
}

async fn bench_database(
    args: &Args,
    programs: &Programs,
    store: &Store,
    templates: &mut Vec<Template>,
    report: &mut Report,
) -> Result<()> {
    let dialect = store.dialect();
    let mut sizes = vec![1000, args.small_rows, args.rows];
    sizes.sort_unstable();
    sizes.dedup();
    for rows in sizes {
        eprintln!("==> {dialect}: building the data set of {rows} rows");
        templates.push(store.template(rows).await?);
    }
    let template = |rows: u64| {
        templates
            .iter()
            .find(|t| t.rows == rows)
            .expect("every size was built")
    };
    report.versions.push(server_version(store).await?);

    // Compile every engine configuration once (and check each works), so
    // no measured run pays for compiling.
    // The Python program's first run writes its bytecode.
    for method in [
        Method::Host,
        Method::HostBulk,
        Method::HostFuel,
        Method::LibraryDefault,
        Method::LibraryOff,
        Method::Python,
    ] {
        eprintln!(
            "==> {dialect}: warming the compile cache: {}",
            method.label_on(dialect)
        );
        measured(args, programs, store, template(1000), "warmup", method).await?;
    }

    let large = [
        Method::Host,
        Method::HostBulk,
        Method::Native,
        Method::Python,
        Method::SetBased,
    ];
    let small = [
        Method::Host,
        Method::Native,
        Method::Python,
        Method::LibraryDefault,
        Method::LibraryOff,
        Method::HostFuel,
    ];
    let plan = (1..=args.repeat)
        .map(|round| (round, args.repeat, args.rows, &large[..]))
        .chain(
            (1..=args.sandbox_repeat)
                .map(|round| (round, args.sandbox_repeat, args.small_rows, &small[..])),
        );
    for (round, rounds, rows, methods) in plan {
        for &method in methods {
            eprint!(
                "==> {dialect}: round {round}/{rounds}: {} on {rows} rows: ",
                method.label_on(dialect)
            );
            let m = measured(args, programs, store, template(rows), "run", method).await?;
            eprintln!(
                "{:.2} s, {:.0} rows/s, CPU {:.2} s (system {:.2} s)",
                m.wall.as_secs_f64(),
                rows as f64 / m.wall.as_secs_f64(),
                m.cpu.unwrap_or_default().as_secs_f64(),
                m.system.unwrap_or_default().as_secs_f64()
            );
            report.measurements.push(m);
        }
    }

    eprintln!("==> {dialect}: start-up");
    report
        .startup
        .push(startup(args, programs, store, template(1000)).await?);
    Ok(())
}

async fn server_version(store: &Store) -> Result<(Dialect, String)> {
    let (url, sql) = match store {
        Store::Sqlite { dir } => (
            format!("sqlite://{}", dir.join("template-1000.db").display()),
            "SELECT 'SQLite ' || sqlite_version() || ' (bundled with sqlx)'",
        ),
        Store::Postgres { admin, .. } => (admin.clone(), "SELECT version()"),
    };
    let mut conn = Conn::open(&url).await?;
    let version = conn.text(sql).await?;
    conn.close().await?;
    // "PostgreSQL 15.20 (Debian …) on x86_64…": the first two words say it.
    let short = match store {
        Store::Postgres { .. } => version.split(' ').take(2).collect::<Vec<_>>().join(" "),
        Store::Sqlite { .. } => version,
    };
    Ok((store.dialect(), short))
}

/// Runs `method` once on a fresh copy of `template` and checks the result.
async fn measured(
    args: &Args,
    programs: &Programs,
    store: &Store,
    template: &Template,
    copy: &str,
    method: Method,
) -> Result<Measurement> {
    let url = store.copy(template, copy).await?;
    let (wall, max_rss, cpu, user, system) = match method {
        Method::SetBased => {
            let (sql, _) = setbased::statement(store.dialect());
            let mut conn = Conn::open(&url).await?;
            let started = Instant::now();
            conn.exec(&sql).await?;
            let wall = started.elapsed();
            conn.close().await?;
            (wall, None, None, None, None)
        }
        _ => {
            let m = measure::run(method.label(), &mut programs.command(method, &url, args))?;
            (
                m.wall,
                Some(m.max_rss),
                Some(m.cpu),
                Some(m.user),
                Some(m.system),
            )
        }
    };
    let mut conn = Conn::open(&url).await?;
    let check = conn.check().await?;
    conn.close().await?;
    if check.rows != template.rows || check.missing > 0 || check.wrong > 0 {
        return Err(BenchError::WrongResult {
            what: format!(
                "{} on {}",
                method.label_on(store.dialect()),
                store.dialect()
            ),
            rows: check.rows,
            missing: check.missing,
            wrong: check.wrong,
            example: check.example,
        });
    }
    store.drop_copy(copy).await?;
    Ok(Measurement {
        dialect: store.dialect(),
        method,
        rows: template.rows,
        wall,
        max_rss,
        cpu,
        user,
        system,
    })
}

/// Start-up of an already-applied migration, warm and cold, against
/// `dmig-host --version`.
async fn startup(
    args: &Args,
    programs: &Programs,
    store: &Store,
    template: &Template,
) -> Result<Startup> {
    let url = store.copy(template, "startup").await?;
    let applied = || programs.command(Method::Host, &url, args);
    measure::run("the first run", &mut applied())?;
    let mut version = Vec::new();
    let mut warm = Vec::new();
    let mut warm_rss = 0;
    for _ in 0..args.startup_runs {
        let v = measure::run(
            "dmig-host --version",
            Command::new(&programs.dmig_host).arg("--version"),
        )?;
        version.push(v.wall);
        let w = measure::run("a second run", &mut applied())?;
        if !w.stdout.contains("already applied") {
            return Err(BenchError::Missing(format!(
                "a second run did not report the migration as applied: {}",
                w.stdout.trim()
            )));
        }
        warm.push(w.wall);
        warm_rss = warm_rss.max(w.max_rss);
    }
    // Cold: an empty compile cache each time, so the component is compiled.
    let mut cold = Vec::new();
    let mut cold_rss = 0;
    for i in 0..3 {
        let dir = programs.cache.with_file_name(format!("cold-cache-{i}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut command = applied();
        command.env("DMIG_CACHE_DIR", &dir);
        let c = measure::run("a run with an empty compile cache", &mut command)?;
        let _ = std::fs::remove_dir_all(&dir);
        cold.push(c.wall);
        cold_rss = cold_rss.max(c.max_rss);
    }
    store.drop_copy("startup").await?;
    Ok(Startup {
        dialect: store.dialect(),
        version: measure::median(&mut version),
        warm: measure::median(&mut warm),
        warm_rss,
        cold: measure::median(&mut cold),
        cold_rss,
        runs: args.startup_runs,
    })
}

/// Seconds as the tables print them.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}
