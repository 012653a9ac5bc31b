//! The sandbox a migration runs in: a wasmtime engine with deny-by-default
//! WASI and explicit limits on everything a guest can consume.
//!
//! The whole WASI 0.2 surface is linked, so components built by any
//! toolchain instantiate, but nothing is granted: no preopened directories,
//! no sockets, no name lookups, no environment variables, no arguments, and an
//! empty stdin. Stdout and stderr are captured, bounded, so `println!` output
//! and panic messages reach the operator.

mod db_host;
mod output;
mod state;
mod trap;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::WasiCtx;

pub use output::CapturedOutput;
pub use state::{HostState, HostTrap};

use crate::artifact::Artifact;
use crate::bindings::latest::DataMigration;
use crate::bindings::latest::exports::dmig::migration::migration as wit;
use crate::bindings::{MIGRATION_EXPORT, PACKAGE, VERSION_SUFFIX};
use crate::db::Connection;
use crate::error::{Error, Result};
use crate::runner::Direction;
use state::Limiter;

/// How often the epoch advances; the granularity of the step timeout.
const EPOCH_TICK: Duration = Duration::from_millis(10);

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
}

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
    /// * 64 instances, 64 tables of at most 100,000 elements, 8 memories
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
        }
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
            .epoch_interruption(true)
            .consume_fuel(self.fuel.is_some())
            .max_wasm_stack(self.max_stack);
        let engine = Engine::new(&config).map_err(sandbox_error)?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(sandbox_error)?;
        DataMigration::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(sandbox_error)?;

        Ok(Sandbox {
            config: self.clone(),
            ticker: Ticker::start(engine.clone()),
            engine,
            linker,
        })
    }
}

fn sandbox_error(e: wasmtime::Error) -> Error {
    Error::Sandbox(format!("{e:#}"))
}

/// A configured engine that loads and instantiates migration components.
pub struct Sandbox {
    config: SandboxBuilder,
    engine: Engine,
    linker: Linker<HostState>,
    #[allow(dead_code)] // Held for its Drop, which stops the thread.
    ticker: Ticker,
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
        let component =
            Component::new(&self.engine, artifact.bytes()).map_err(|e| Error::MalformedWasm {
                path: artifact.path().to_path_buf(),
                reason: e.root_cause().to_string(),
            })?;
        let wrong_world = |reason: String| Error::WrongWorld {
            path: artifact.path().to_path_buf(),
            reason,
        };
        let ty = component.component_type();
        if ty.get_export(&self.engine, MIGRATION_EXPORT).is_none() {
            let exports: Vec<_> = ty.exports(&self.engine).map(|(name, _)| name).collect();
            return Err(wrong_world(format!(
                "it does not export {MIGRATION_EXPORT} (it exports: {})",
                if exports.is_empty() {
                    "nothing".into()
                } else {
                    exports.join(", ")
                }
            )));
        }
        for (name, _) in ty.imports(&self.engine) {
            let ours = name.starts_with(PACKAGE) && name.ends_with(VERSION_SUFFIX);
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
        let pre = crate::bindings::latest::DataMigrationPre::new(pre)
            .map_err(|e| wrong_world(format!("{:#}", e.root_cause())))?;
        Ok(LoadedMigration { pre })
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
    ) -> Result<Instance> {
        let stdout = CapturedOutput::new(self.config.max_output);
        let stderr = CapturedOutput::new(self.config.max_output);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
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
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let mut instance = Instance {
            store,
            bindings: None,
            config: self.config.clone(),
        };
        instance.arm()?;
        let bindings = loaded
            .pre
            .instantiate_async(&mut instance.store)
            .await
            .map_err(|e| Error::Sandbox(instance.explain(&e)))?;
        instance.bindings = Some(bindings);
        Ok(instance)
    }
}

/// A compiled, type-checked migration, ready to instantiate.
pub struct LoadedMigration {
    pre: crate::bindings::latest::DataMigrationPre<HostState>,
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
}

/// One instantiated migration with its store.
pub struct Instance {
    store: Store<HostState>,
    bindings: Option<DataMigration>,
    config: SandboxBuilder,
}

impl Instance {
    /// The host's database connection, for the runner's transactions and
    /// ledger writes between steps.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.store.data_mut().conn
    }

    /// Hands the connection back, ending the instance.
    pub fn into_connection(self) -> Connection {
        self.store.into_data().conn
    }

    /// Asks the guest to describe itself. The database is not available to it.
    pub async fn describe(&mut self) -> Result<Metadata, GuestFailure> {
        self.arm()
            .map_err(|e| GuestFailure::Trapped(e.to_string()))?;
        let exports = self.exports();
        let result = exports.call_describe(&mut self.store).await;
        let meta = result.map_err(|e| GuestFailure::Trapped(self.explain(&e)))?;
        Ok(Metadata {
            name: meta.name,
            description: meta.description,
            reversible: meta.reversible,
        })
    }

    /// Runs one step. The caller owns the transaction around it.
    pub async fn step(
        &mut self,
        direction: Direction,
        cursor: Option<&str>,
    ) -> Result<Step, GuestFailure> {
        self.arm()
            .map_err(|e| GuestFailure::Trapped(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + self.config.step_timeout;
        self.store.data_mut().step_deadline = Some(deadline);
        let exports = self.exports();
        let result = match direction {
            Direction::Up => exports.call_up(&mut self.store, cursor).await,
            Direction::Down => exports.call_down(&mut self.store, cursor).await,
        };
        self.store.data_mut().step_deadline = None;
        self.log_output();
        match result {
            Ok(Ok(step)) => Ok(Step {
                cursor: step.cursor,
                processed: step.processed,
            }),
            Ok(Err(message)) => Err(GuestFailure::Returned(message)),
            Err(trap) => Err(GuestFailure::Trapped(self.explain(&trap))),
        }
    }

    fn exports(&self) -> wit::Guest {
        self.bindings
            .as_ref()
            .expect("instance is instantiated before any call")
            .dmig_migration_migration()
            .clone()
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
            let (text, dropped) = capture.take();
            for line in text.lines() {
                tracing::info!(target: "dmig::guest", stream, "{line}");
            }
            if dropped > 0 {
                tracing::warn!(target: "dmig::guest", stream, "{dropped} more bytes of guest output were dropped");
            }
        }
    }

    fn explain(&mut self, error: &wasmtime::Error) -> String {
        let stderr = self.store.data().stderr.contents();
        let explanation = trap::explain(error, &stderr, &self.config);
        self.log_output();
        explanation
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a background thread,
/// so a guest stuck in a loop is interrupted at its deadline.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("dmig-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Ticker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
