//! The host's only `bindgen!`s: one module per released WIT version, so a
//! component built against any of them keeps running. New host logic is
//! written against [`latest`]; older versions delegate to it (see
//! `sandbox::compat`).

/// `dmig:migration@0.2.0`, from `wit/v0.2.0/`.
pub mod v0_2_0 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2.0",
        world: "data-migration",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// `dmig:migration@0.1.0`, from `wit/v0.1.0/`: no log, progress, args or
/// verify.
pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "data-migration",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// The newest WIT version.
pub use v0_2_0 as latest;

/// A WIT version the host runs, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WitVersion {
    V0_1_0,
    V0_2_0,
}

impl WitVersion {
    /// Every supported version, newest first.
    pub const ALL: [WitVersion; 2] = [WitVersion::V0_2_0, WitVersion::V0_1_0];

    /// The version as written in WIT (`0.2.0`).
    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1_0 => "0.1.0",
            WitVersion::V0_2_0 => "0.2.0",
        }
    }

    /// The name of the `migration` export at this version.
    pub fn migration_export(self) -> String {
        format!("{PACKAGE}migration@{}", self.as_str())
    }
}

/// The package prefix of dmig's interfaces.
pub const PACKAGE: &str = "dmig:migration/";
