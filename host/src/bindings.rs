//! The host's only `bindgen!`: one module per released WIT version, so a
//! component built against any of them keeps running.

/// `dmig:migration@0.1.0`, from `wit/v0.1.0/`.
pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "data-migration",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// The newest WIT version; new host logic is written against it.
pub use v0_1_0 as latest;

/// The export every dmig migration component has, in every version.
pub const MIGRATION_EXPORT: &str = "dmig:migration/migration@0.1.0";
/// The package prefix of dmig's interfaces at this version.
pub const PACKAGE: &str = "dmig:migration/";
/// The version suffix of the interfaces this host provides.
pub const VERSION_SUFFIX: &str = "@0.1.0";
