//! The sandbox a migration runs in: a wasmtime engine with deny-by-default
//! WASI and explicit limits on everything a guest can consume.
//!
//! The whole WASI 0.2 surface is linked, so components built by any
//! toolchain instantiate, but nothing is granted: no preopened directories,
//! no sockets, no name lookups, no environment variables, no arguments, and an
//! empty stdin. Stdout and stderr are captured, bounded, so `println!` output
//! and panic messages reach the operator.

mod cache;
mod compat;
mod db_host;
mod output;
mod run_host;
mod state;
pub mod text;
mod trap;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx};

pub use crate::sql::Refusal;
pub use cache::ComponentCache;
pub use output::CapturedOutput;
pub use state::{DbTally, HostState, HostTrap, Report};

use crate::artifact::Artifact;
use crate::bindings::{PACKAGE, WitVersion, latest, v0_1_0};
use crate::db::Connection;
use crate::error::{Error, Result};
use crate::runner::Direction;
use state::Limiter;

/// How often the epoch advances; the granularity of the step timeout.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Longest text of a guest failure (a returned error, a trap's explanation
/// with its panic message, a refusal quoting the statement), in bytes after
/// escaping; the rest is cut with a marker (see [`text::one_line`]).
pub const MAX_GUEST_ERROR: usize = 8 * 1024;

/// Longest cursor a step may return, in bytes. Longer fails the step: a
/// cursor is stored whole or not at all, since the next step resumes from it.
pub const MAX_CURSOR: usize = 16 * 1024;

/// Longest migration name `describe()` may return, in bytes (the ledger's
/// key column holds 255 characters on MySQL).
pub const MAX_NAME: usize = 200;

/// Longest description `describe()` may return, in bytes.
pub const MAX_DESCRIPTION: usize = 4 * 1024;

/// The most rows one run can count: the ledger's counters are signed 64-bit.
pub const MAX_ROWS: u64 = i64::MAX as u64;

/// Configures a [`Sandbox`]. Every resource has a finite default.
#[derive(Debug, Clone)]
pub struct SandboxBuilder {
    max_memory: usize,
    step_timeout: Duration,
    fuel: Option<u64>,
    max_output: usize,
    max_stack: usize,
    max_instances: usize,
    max_tables: usize,
    max_table_elements: usize,
    max_memories: usize,
    max_resources: usize,
    calls: CallLimits,
    inputs: Vec<Input>,
    cache: Option<ComponentCache>,
    /// False only after [`SandboxBuilder::dangerous_disable_limits`].
    enforce_limits: bool,
}

/// Caps on what one `db` call may send or receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Most rows one query may return.
    pub max_result_rows: usize,
    /// Most bytes one query may return.
    pub max_result_bytes: usize,
    /// Longest SQL text, in bytes.
    pub max_sql_bytes: usize,
    /// Most parameter values in one call (all sets of an execute-many together).
    pub max_params: usize,
}

/// A file granted to the guest, read-only, as `/inputs/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub name: String,
    pub path: PathBuf,
}

/// Where granted inputs appear in the guest's filesystem.
pub const INPUTS_DIR: &str = "/inputs";

impl Default for SandboxBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SandboxBuilder {
    /// A sandbox that grants nothing and bounds everything.
    ///
    /// The defaults:
    ///
    /// * no preopened directories, sockets, name lookups, environment
    ///   variables or arguments; stdin is empty
    /// * stdout and stderr captured, 64 KiB each per step; the rest dropped
    /// * linear memory: 256 MiB per memory ([`max_memory`](Self::max_memory))
    /// * wall-clock time: 60 s per step, including time spent in database
    ///   calls ([`step_timeout`](Self::step_timeout))
    /// * fuel: off; no deterministic instruction budget ([`fuel`](Self::fuel))
    /// * wasm stack: 1 MiB ([`max_stack`](Self::max_stack))
    /// * one `db` call: at most 100,000 result rows and 64 MiB of result
    ///   data, 1 MiB of SQL text and 100,000 parameter values
    ///   ([`call_limits`](Self::call_limits))
    /// * 64 instances, 64 tables of at most 100,000 elements, 8 memories,
    ///   10,000 live WASI resources (streams, pollables, descriptors)
    /// * no granted inputs ([`grant_input`](Self::grant_input))
    /// * compiled components cached in `~/.cache/dmig/components`
    ///   ([`compile_cache`](Self::compile_cache))
    pub fn new() -> Self {
        SandboxBuilder {
            max_memory: 256 * 1024 * 1024,
            step_timeout: Duration::from_secs(60),
            fuel: None,
            max_output: 64 * 1024,
            max_stack: 1024 * 1024,
            max_instances: 64,
            max_tables: 64,
            max_table_elements: 100_000,
            max_memories: 8,
            max_resources: 10_000,
            calls: CallLimits {
                max_result_rows: 100_000,
                max_result_bytes: 64 * 1024 * 1024,
                max_sql_bytes: 1024 * 1024,
                max_params: 100_000,
            },
            inputs: Vec::new(),
            cache: ComponentCache::default_dir().map(ComponentCache::new),
            enforce_limits: true,
        }
    }

    /// Turns off every limit that costs anything at run time, so that a
    /// benchmark can measure what the limits cost (`scripts/bench.sh` does):
    /// no epoch checks compiled into the guest (so guest code has no time
    /// limit), no memory, table or instance limiter, no fuel, no caps on
    /// `db` calls or WASI resources. Database calls keep a deadline of
    /// `i32::MAX` milliseconds (about 24.8 days, the longest statement
    /// timeout PostgreSQL accepts). The SQL policy and the deny-by-default
    /// WASI grants stay: they are not limits.
    ///
    /// # Warning
    ///
    /// A guest in such a sandbox can run forever and take all the memory the
    /// machine has. Never use it for a guest you do not trust.
    pub fn dangerous_disable_limits(&mut self) -> &mut Self {
        self.enforce_limits = false;
        self.max_memory = usize::MAX;
        self.step_timeout = Duration::from_millis(i32::MAX.unsigned_abs().into());
        self.fuel = None;
        self.max_instances = usize::MAX;
        self.max_tables = usize::MAX;
        self.max_table_elements = usize::MAX;
        self.max_memories = usize::MAX;
        self.max_resources = usize::MAX;
        self.calls = CallLimits {
            max_result_rows: usize::MAX,
            max_result_bytes: usize::MAX,
            max_sql_bytes: usize::MAX,
            max_params: usize::MAX,
        };
        self
    }

    /// Keeps compiled components on disk in `cache` (or nowhere with `None`).
    /// Default: [`ComponentCache::default_dir`].
    pub fn compile_cache(&mut self, cache: Option<ComponentCache>) -> &mut Self {
        self.cache = cache;
        self
    }

    /// Caps what one `db` call may send or receive. Exceeding a cap fails
    /// that call with the error code `dmig:limit`, which the step may handle.
    pub fn call_limits(&mut self, limits: CallLimits) -> &mut Self {
        self.calls = limits;
        self
    }

    /// Caps the number of wasm instances, tables, table elements and
    /// memories a component may create. Defaults 64, 64, 100,000 and 8.
    pub fn max_instances(
        &mut self,
        instances: usize,
        tables: usize,
        table_elements: usize,
        memories: usize,
    ) -> &mut Self {
        self.max_instances = instances;
        self.max_tables = tables;
        self.max_table_elements = table_elements;
        self.max_memories = memories;
        self
    }

    /// Caps the live WASI resources (streams, pollables, file descriptors)
    /// a guest may hold. Default 10,000.
    pub fn max_resources(&mut self, resources: usize) -> &mut Self {
        self.max_resources = resources;
        self
    }

    /// Grants the guest read-only access to the file at `path`, visible as
    /// `/inputs/<name>` and nowhere else; the rest of the filesystem stays
    /// invisible. The guest can read and stat it, not write, create, rename
    /// or list anything beyond the granted names.
    ///
    /// # Errors
    ///
    /// [`Error::BadInput`] if `name` is not a plain file name or is granted
    /// twice, or `path` is not a readable regular file.
    pub fn grant_input(&mut self, name: &str, path: impl Into<PathBuf>) -> Result<&mut Self> {
        let path = path.into();
        let bad = |reason: &str| Error::BadInput {
            name: name.to_owned(),
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let plain =
            !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
        if !plain {
            return Err(bad("the name must be a plain file name, without / or \\"));
        }
        if self.inputs.iter().any(|i| i.name == name) {
            return Err(bad("that name is already granted"));
        }
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Err(bad("it is not a regular file")),
            Err(e) => return Err(bad(&e.to_string())),
        }
        std::fs::File::open(&path).map_err(|e| bad(&e.to_string()))?;
        self.inputs.push(Input {
            name: name.to_owned(),
            path,
        });
        Ok(self)
    }

    /// Caps each linear memory at `bytes`. Growing past it traps with
    /// "guest exceeded its N MiB memory limit". Default 256 MiB.
    pub fn max_memory(&mut self, bytes: usize) -> &mut Self {
        self.max_memory = bytes;
        self
    }

    /// Caps the wall-clock time of one step, guest code and database calls
    /// together. Default 60 s.
    pub fn step_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.step_timeout = timeout;
        self
    }

    /// Gives each step a deterministic budget of `fuel` units (roughly one per
    /// wasm instruction); running out traps. `None` (the default) turns
    /// metering off, which is faster.
    pub fn fuel(&mut self, fuel: Option<u64>) -> &mut Self {
        self.fuel = fuel;
        self
    }

    /// Caps how much of each of stdout and stderr is kept per step. Default 64 KiB.
    pub fn max_output(&mut self, bytes: usize) -> &mut Self {
        self.max_output = bytes;
        self
    }

    /// Caps the wasm stack; deeper recursion traps as a stack overflow.
    /// Default 1 MiB.
    pub fn max_stack(&mut self, bytes: usize) -> &mut Self {
        self.max_stack = bytes;
        self
    }

    /// Builds the engine and linker, and starts the epoch ticker that enforces
    /// step timeouts.
    ///
    /// # Errors
    ///
    /// [`Error::Sandbox`] if wasmtime cannot be configured on this platform.
    pub fn build(&self) -> Result<Sandbox> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(self.enforce_limits)
            .consume_fuel(self.fuel.is_some())
            .max_wasm_stack(self.max_stack)
            // Host calls run on the guest's fiber stack, SQLite's
            // statements included (see `db::sqlite`): room for them beyond
            // what the guest may use. Address space only until touched.
            .async_stack_size(self.max_stack.saturating_add(HOST_CALL_STACK));
        let engine = Engine::new(&config).map_err(sandbox_error)?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(sandbox_error)?;
        // Every supported version's imports, side by side: their instance
        // names differ by version, so one linker serves them all.
        latest::DataMigration::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(sandbox_error)?;
        v0_1_0::DataMigration::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(sandbox_error)?;

        Ok(Sandbox {
            compiled: Mutex::default(),
            config: self.clone(),
            ticker: self.enforce_limits.then(|| Ticker::start(engine.clone())),
            engine,
            linker,
        })
    }
}

/// Stack for host calls on a guest's fiber, beyond the guest's own
/// [`max_stack`](SandboxBuilder::max_stack): as much as a program's main
/// thread has on Linux. SQLite's deepest recursion (a `LIKE` pattern at its
/// length limit, an expression at its depth limit) needs a few MiB.
const HOST_CALL_STACK: usize = 8 * 1024 * 1024;

fn sandbox_error(e: wasmtime::Error) -> Error {
    Error::Sandbox(format!("{e:#}"))
}

/// A configured engine that loads and instantiates migration components.
pub struct Sandbox {
    config: SandboxBuilder,
    /// Components compiled by this sandbox, by artifact sha256.
    compiled: Mutex<HashMap<String, Component>>,
    engine: Engine,
    linker: Linker<HostState>,
    #[allow(dead_code)] // Held for its Drop, which stops the thread.
    ticker: Option<Ticker>,
}

impl Sandbox {
    /// Compiles `artifact` and checks that it is a component of the dmig world.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedWasm`] if it does not compile, [`Error::WrongWorld`]
    /// if it does not export the dmig `migration` interface or imports
    /// something the host does not provide.
    pub fn load(&self, artifact: &Artifact) -> Result<LoadedMigration> {
        let component = self.compile(artifact)?;
        let wrong_world = |reason: String| Error::WrongWorld {
            path: artifact.path().to_path_buf(),
            reason,
        };
        let ty = component.component_type();
        let version = WitVersion::ALL
            .into_iter()
            .find(|v| ty.get_export(&self.engine, &v.migration_export()).is_some());
        let Some(version) = version else {
            let exports: Vec<_> = ty.exports(&self.engine).map(|(name, _)| name).collect();
            return Err(wrong_world(format!(
                "it does not export {} (it exports: {})",
                WitVersion::ALL[0].migration_export(),
                if exports.is_empty() {
                    "nothing".into()
                } else {
                    exports.join(", ")
                }
            )));
        };
        let suffix = format!("@{}", version.as_str());
        for (name, _) in ty.imports(&self.engine) {
            let ours = name.starts_with(PACKAGE) && name.ends_with(&suffix);
            if !(ours || name.starts_with("wasi:")) {
                return Err(wrong_world(format!(
                    "it imports {name}, which dmig does not provide"
                )));
            }
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| wrong_world(format!("{:#}", e.root_cause())))?;
        let world = |e: wasmtime::Error| wrong_world(format!("{:#}", e.root_cause()));
        let pre = match version {
            WitVersion::V0_2_0 => Pre::V0_2_0(latest::DataMigrationPre::new(pre).map_err(world)?),
            WitVersion::V0_1_0 => Pre::V0_1_0(v0_1_0::DataMigrationPre::new(pre).map_err(world)?),
        };
        if let Some(manifest) = artifact.manifest()
            && manifest.wit != version.as_str()
        {
            return Err(Error::BadManifest {
                path: artifact.path().to_path_buf(),
                reason: crate::manifest::ManifestError::Rule(format!(
                    "says it was built against WIT {} but the component exports dmig:migration@{}",
                    manifest.wit,
                    version.as_str()
                )),
            });
        }
        let capabilities = artifact.manifest().map(|m| m.capabilities.clone());
        Ok(LoadedMigration {
            version,
            pre,
            capabilities,
        })
    }

    /// Instantiates a loaded migration in a fresh store that owns `conn`.
    ///
    /// # Errors
    ///
    /// [`Error::Sandbox`] if instantiation traps (for example a start function
    /// exceeding the memory limit).
    pub async fn instantiate(
        &self,
        loaded: &LoadedMigration,
        conn: Connection,
        args: Vec<(String, String)>,
    ) -> Result<Instance> {
        let stdout = CapturedOutput::new(self.config.max_output);
        let stderr = CapturedOutput::new(self.config.max_output);
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let inputs = self.stage_inputs()?;
        if let Some(dir) = &inputs {
            wasi.preopened_dir(dir.path(), INPUTS_DIR, FsPerms::ReadOnly)
                .map_err(|e| Error::Sandbox(format!("cannot grant the inputs: {e:#}")))?;
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(self.config.max_resources);
        // PostgreSQL's catalog is read before the first statement (inside
        // the first step, so after the run's lock is taken).
        let gate =
            crate::sql::Gate::new(conn.syntax(), loaded.capabilities.as_ref()).map_err(|e| {
                Error::Sandbox(format!(
                    "the manifest declares a name that does not parse: {e}"
                ))
            })?;
        let state = HostState {
            wasi: wasi.build(),
            table,
            calls: self.config.calls,
            _inputs: inputs,
            limiter: Limiter {
                max_memory: self.config.max_memory,
                max_table_elements: self.config.max_table_elements,
                max_instances: self.config.max_instances,
                max_tables: self.config.max_tables,
                max_memories: self.config.max_memories,
            },
            conn,
            step_deadline: None,
            step_timeout: self.config.step_timeout,
            stdout,
            stderr,
            args,
            report: Report::default(),
            tally: Default::default(),
            admitted: Default::default(),
            gate,
            schema_changed: false,
            catalog_stale: true,
        };
        let mut store = Store::new(&self.engine, state);
        if self.config.enforce_limits {
            store.limiter(|s| &mut s.limiter);
        }
        let mut instance = Instance {
            store,
            bindings: None,
            config: self.config.clone(),
            processed: 0,
        };
        instance.arm()?;
        let bindings = match &loaded.pre {
            Pre::V0_2_0(pre) => pre
                .instantiate_async(&mut instance.store)
                .await
                .map(Bindings::V0_2_0),
            Pre::V0_1_0(pre) => pre
                .instantiate_async(&mut instance.store)
                .await
                .map(Bindings::V0_1_0),
        };
        let bindings = bindings.map_err(|e| Error::Sandbox(instance.explain(&e)))?;
        instance.bindings = Some(bindings);
        Ok(instance)
    }
}

impl Sandbox {
    /// Puts the granted inputs, and nothing else, in a private directory:
    /// hard links where possible, copies otherwise.
    fn stage_inputs(&self) -> Result<Option<tempfile::TempDir>> {
        if self.config.inputs.is_empty() {
            return Ok(None);
        }
        let staging = |e: std::io::Error| Error::Sandbox(format!("cannot stage the inputs: {e}"));
        let dir = tempfile::Builder::new()
            .prefix("dmig-inputs-")
            .tempdir()
            .map_err(staging)?;
        for input in &self.config.inputs {
            let target = dir.path().join(&input.name);
            if std::fs::hard_link(&input.path, &target).is_err() {
                std::fs::copy(&input.path, &target).map_err(|e| Error::BadInput {
                    name: input.name.clone(),
                    path: input.path.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        Ok(Some(dir))
    }
}

impl Sandbox {
    /// The wall-clock limit of one step.
    pub fn step_timeout(&self) -> Duration {
        self.config.step_timeout
    }

    /// Compiles `artifact`, once per sha256 for the life of this sandbox.
    fn compile(&self, artifact: &Artifact) -> Result<Component> {
        let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(component) = compiled.get(artifact.sha256()) {
            return Ok(component.clone());
        }
        let cached = self
            .config
            .cache
            .as_ref()
            .and_then(|c| c.load(&self.engine, artifact));
        let component = match cached {
            Some(component) => component,
            None => {
                let component = Component::new(&self.engine, artifact.bytes()).map_err(|e| {
                    Error::MalformedWasm {
                        path: artifact.path().to_path_buf(),
                        reason: e.root_cause().to_string(),
                    }
                })?;
                if let Some(cache) = &self.config.cache {
                    cache.store(&self.engine, artifact, &component);
                }
                component
            }
        };
        compiled.insert(artifact.sha256().to_owned(), component.clone());
        Ok(component)
    }
}

/// A compiled, type-checked migration, ready to instantiate.
pub struct LoadedMigration {
    version: WitVersion,
    pre: Pre,
    /// What its statements are checked against; `None` for an artifact
    /// without a manifest, which runs unrestricted (the runner decides
    /// whether that is allowed).
    /// The declared capabilities; `None` runs unrestricted.
    capabilities: Option<crate::manifest::Capabilities>,
}

impl LoadedMigration {
    /// The WIT version the component was built against.
    pub fn wit_version(&self) -> WitVersion {
        self.version
    }
}

/// Instantiation, by WIT version.
enum Pre {
    V0_2_0(latest::DataMigrationPre<HostState>),
    V0_1_0(v0_1_0::DataMigrationPre<HostState>),
}

/// A live instance's exports, by WIT version.
enum Bindings {
    V0_2_0(latest::DataMigration),
    V0_1_0(v0_1_0::DataMigration),
}

/// What the guest said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub name: String,
    pub description: String,
    pub reversible: bool,
}

/// The outcome of one step, as the guest returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub cursor: Option<String>,
    pub processed: u64,
}

/// How a guest call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestFailure {
    /// The guest returned an error.
    Returned(String),
    /// The guest trapped; the text says why in one line. The instance must
    /// not be called again.
    Trapped(String),
    /// The guest sent a statement outside its declared capabilities; the
    /// host stopped it. The instance must not be called again.
    Refused(String),
}

/// One instantiated migration with its store.
pub struct Instance {
    store: Store<HostState>,
    bindings: Option<Bindings>,
    config: SandboxBuilder,
    /// Rows the steps of this instance reported so far (one run's total).
    processed: u64,
}

impl Instance {
    /// The host's database connection, for the runner's transactions and
    /// ledger writes between steps.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.store.data_mut().conn
    }

    /// Hands the connection back, ending the instance.
    /// Whether the SQL gate cannot bound what this guest's statements touch
    /// (it declares raw SQL, or declares nothing and runs unrestricted): the
    /// runner then guards the ledger by its contents (see
    /// [`crate::ledger::digest`]).
    pub fn sql_unbounded(&self) -> bool {
        self.store.data().gate.unbounded()
    }

    pub fn into_connection(self) -> Connection {
        self.store.into_data().conn
    }

    /// Asks the guest to describe itself. The database is not available to it.
    pub async fn describe(&mut self) -> Result<Metadata, GuestFailure> {
        self.arm()
            .map_err(|e| GuestFailure::Trapped(e.to_string()))?;
        let result = match self.bindings() {
            Bindings::V0_2_0(b) => {
                let m = b.dmig_migration_migration().clone();
                m.call_describe(&mut self.store).await.map(|m| Metadata {
                    name: m.name,
                    description: m.description,
                    reversible: m.reversible,
                })
            }
            Bindings::V0_1_0(b) => {
                let m = b.dmig_migration_migration().clone();
                m.call_describe(&mut self.store).await.map(|m| Metadata {
                    name: m.name,
                    description: m.description,
                    reversible: m.reversible,
                })
            }
        };
        let meta = result.map_err(|e| {
            GuestFailure::Trapped(text::one_line(&self.explain(&e), MAX_GUEST_ERROR))
        })?;
        meta.check().map_err(GuestFailure::Returned)?;
        Ok(meta)
    }

    /// What the database did for the guest's statements since the last call
    /// of this method (rows written, the first transient error), as the host
    /// saw it.
    pub fn take_db_tally(&mut self) -> DbTally {
        std::mem::take(&mut self.store.data_mut().tally)
    }

    /// What the guest reported (logs, total) since the last call.
    pub fn take_report(&mut self) -> Report {
        self.store.data_mut().report.take()
    }

    /// Runs the guest's `verify`, inside the caller's transaction. A v0.1.0
    /// component has none, which passes.
    pub async fn verify(&mut self) -> Result<(), GuestFailure> {
        self.guarded(async |store, bindings| match bindings {
            Bindings::V0_2_0(b) => {
                let m = b.dmig_migration_migration().clone();
                m.call_verify(store).await
            }
            Bindings::V0_1_0(_) => Ok(Ok(())),
        })
        .await
    }

    /// Runs one step. The caller owns the transaction around it.
    ///
    /// What the guest returns is checked before anyone uses it: a cursor of
    /// more than [`MAX_CURSOR`] bytes or with a character [`text::is_unsafe`]
    /// finds, or a `processed` count that would take this instance's total
    /// past [`MAX_ROWS`], fails the step ([`GuestFailure::Returned`], naming
    /// the problem), as if the guest had returned that error.
    pub async fn step(
        &mut self,
        direction: Direction,
        cursor: Option<&str>,
    ) -> Result<Step, GuestFailure> {
        let step = self.call_step(direction, cursor).await?;
        let total = self
            .processed
            .checked_add(step.processed)
            .filter(|total| *total <= MAX_ROWS);
        let Some(total) = total else {
            return Err(GuestFailure::Returned(format!(
                "the step returned processed = {}, which takes the run's row count past {MAX_ROWS}, \
                 the most the ledger counts (after {} rows so far); return the number of rows \
                 this step processed",
                step.processed, self.processed
            )));
        };
        if let Some(cursor) = &step.cursor {
            step_cursor_ok(cursor).map_err(GuestFailure::Returned)?;
        }
        self.processed = total;
        Ok(step)
    }

    async fn call_step(
        &mut self,
        direction: Direction,
        cursor: Option<&str>,
    ) -> Result<Step, GuestFailure> {
        let cursor = cursor.map(str::to_owned);
        self.guarded(async move |store, bindings| {
            let cursor = cursor.as_deref();
            Ok(match bindings {
                Bindings::V0_2_0(b) => {
                    let m = b.dmig_migration_migration().clone();
                    let result = match direction {
                        Direction::Up => m.call_up(store, cursor).await?,
                        Direction::Down => m.call_down(store, cursor).await?,
                    };
                    result.map(|s| Step {
                        cursor: s.cursor,
                        processed: s.processed,
                    })
                }
                Bindings::V0_1_0(b) => {
                    let m = b.dmig_migration_migration().clone();
                    let result = match direction {
                        Direction::Up => m.call_up(store, cursor).await?,
                        Direction::Down => m.call_down(store, cursor).await?,
                    };
                    result.map(|s| Step {
                        cursor: s.cursor,
                        processed: s.processed,
                    })
                }
            })
        })
        .await
    }

    /// Runs one guest call that may use the database: arms the budgets, sets
    /// the step deadline, and turns a trap into a one-line cause.
    async fn guarded<T>(
        &mut self,
        call: impl AsyncFnOnce(&mut Store<HostState>, &Bindings) -> wasmtime::Result<Result<T, String>>,
    ) -> Result<T, GuestFailure> {
        self.arm()
            .map_err(|e| GuestFailure::Trapped(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + self.config.step_timeout;
        self.store.data_mut().step_deadline = Some(deadline);
        // A step that changed the schema and then rolled back leaves the
        // gate's catalog describing a schema that no longer exists.
        if self.store.data().schema_changed {
            self.store.data_mut().catalog_stale = true;
        }
        let bindings = self
            .bindings
            .take()
            .expect("instance is instantiated before any call");
        let result = call(&mut self.store, &bindings).await;
        self.bindings = Some(bindings);
        self.store.data_mut().step_deadline = None;
        // `explain` reads the panic message from stderr, so it runs before
        // the output is drained into the log.
        // Every text here may carry what the guest chose (its error, its
        // panic message, its SQL): one line, bounded.
        let guest_text = |text: &str| text::one_line(text, MAX_GUEST_ERROR);
        let result = match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(GuestFailure::Returned(guest_text(&message))),
            Err(trap) => match trap.downcast_ref::<HostTrap>() {
                Some(HostTrap::Refused(refusal)) => {
                    Err(GuestFailure::Refused(guest_text(&refusal.to_string())))
                }
                _ => Err(GuestFailure::Trapped(guest_text(&self.explain(&trap)))),
            },
        };
        self.log_output();
        result
    }

    fn bindings(&self) -> &Bindings {
        self.bindings
            .as_ref()
            .expect("instance is instantiated before any call")
    }

    /// Resets the per-call budgets: the epoch deadline and, if metering is
    /// on, the fuel.
    fn arm(&mut self) -> Result<()> {
        let ticks = self.config.step_timeout.as_millis() / EPOCH_TICK.as_millis();
        self.store
            .set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX).max(1));
        self.store.epoch_deadline_trap();
        if let Some(fuel) = self.config.fuel {
            self.store
                .set_fuel(fuel)
                .map_err(|e| Error::Sandbox(e.to_string()))?;
        }
        Ok(())
    }

    /// Sends what the guest printed to the host's log.
    fn log_output(&mut self) {
        for (stream, capture) in [
            ("stdout", &self.store.data().stdout),
            ("stderr", &self.store.data().stderr),
        ] {
            let (printed, dropped) = capture.take();
            for line in printed.lines() {
                let line = text::one_line(line, run_host::MAX_LOG_MESSAGE);
                tracing::info!(target: "dmig::guest", stream, "{line}");
            }
            if dropped > 0 {
                tracing::warn!(target: "dmig::guest", stream, "{dropped} more bytes of guest output were dropped");
            }
        }
    }

    fn explain(&self, error: &wasmtime::Error) -> String {
        let stderr = self.store.data().stderr.contents();
        trap::explain(error, &stderr, &self.config)
    }
}

impl Metadata {
    /// Checks what `describe()` returned: a name of 1 to [`MAX_NAME`] bytes
    /// and a description of at most [`MAX_DESCRIPTION`] bytes, each one line
    /// (no character [`text::is_unsafe`] finds). A manifest is held to the
    /// same rules, and `describe()` must then also agree with it (see
    /// [`crate::manifest::Manifest::check_described`]).
    fn check(&self) -> Result<(), String> {
        let shown = |s: &str| text::one_line(s, 200);
        if self.name.trim().is_empty()
            || self.name.len() > MAX_NAME
            || self.name.chars().any(text::is_unsafe)
        {
            return Err(format!(
                "describe() returned the name \"{}\" ({} bytes); a migration name is 1 to \
                 {MAX_NAME} bytes without control characters",
                shown(&self.name),
                self.name.len()
            ));
        }
        if self.description.len() > MAX_DESCRIPTION || self.description.chars().any(text::is_unsafe)
        {
            return Err(format!(
                "describe() returned the description \"{}\" ({} bytes); a description is one \
                 line of at most {MAX_DESCRIPTION} bytes",
                shown(&self.description),
                self.description.len()
            ));
        }
        Ok(())
    }
}

/// Checks a cursor a step returned (see [`Instance::step`]).
fn step_cursor_ok(cursor: &str) -> Result<(), String> {
    if cursor.len() > MAX_CURSOR {
        return Err(format!(
            "the step returned a cursor of {} bytes; a cursor is at most {MAX_CURSOR} bytes \
             (keep only what the next step needs to resume, such as the last key)",
            cursor.len()
        ));
    }
    // Stored whole (any other character is fine: a key's text is shown
    // escaped); PostgreSQL's text cannot hold NUL.
    if let Some(at) = cursor.find('\0') {
        return Err(format!(
            "the step returned a cursor with a NUL character at byte {at}; a cursor is stored as \
             text (encode binary keys, e.g. as hex or JSON)"
        ));
    }
    Ok(())
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a background thread,
/// so a guest stuck in a loop is interrupted at its deadline.
///
/// The thread waits on a channel rather than sleeping, so dropping the
/// ticker (closing the channel) stops it at once: a process that is done
/// does not wait out the rest of a tick before it can exit.
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("dmig-epoch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Ticker {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        // Closing the channel wakes the thread, which then ends.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
