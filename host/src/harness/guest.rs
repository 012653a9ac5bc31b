//! Building the migration under test for `wasm32-wasip2`, once per test
//! process: every test of a crate shares one build.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::{HarnessError, Result};

/// Builds the guest crate in `manifest_dir` (pass
/// `env!("CARGO_MANIFEST_DIR")`) with `cargo build --release --target
/// wasm32-wasip2` and returns the path of its component. The first call in a
/// process builds (cargo does nothing when the artifact is fresh); later
/// calls return the same path at once.
///
/// The build goes into `<target dir>/guests`, a target directory of its own:
/// the `cargo test` that runs this holds the lock on the main one. It is the
/// directory dmig's own test build uses for guests, so the workspace builds
/// each guest once.
///
/// # Errors
///
/// [`HarnessError::Build`] with cargo's own messages when the crate does not
/// build (for example, when the `wasm32-wasip2` target is not installed:
/// `rustup target add wasm32-wasip2`).
pub fn build_guest(manifest_dir: impl AsRef<Path>) -> Result<PathBuf> {
    static BUILT: Mutex<Option<HashMap<PathBuf, PathBuf>>> = Mutex::new(None);
    let dir = manifest_dir.as_ref().to_path_buf();
    // Held while building, so concurrent tests wait for one build.
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(&dir) {
        return Ok(path.clone());
    }
    let path = cargo_build(&dir)?;
    built.insert(dir, path.clone());
    Ok(path)
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // The test's own build flags are for the host target, not wasm.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn cargo_build(dir: &Path) -> Result<PathBuf> {
    let failed = |reason: String| HarnessError::Build {
        dir: dir.to_path_buf(),
        reason,
    };
    let manifest = dir.join("Cargo.toml");
    let metadata = run_cargo(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--manifest-path",
            ])
            .arg(&manifest),
    )
    .map_err(failed)?;
    let metadata: serde_json::Value =
        serde_json::from_str(&metadata).map_err(|e| failed(format!("cargo metadata: {e}")))?;
    let target_dir = metadata["target_directory"]
        .as_str()
        .ok_or_else(|| failed("cargo metadata names no target directory".into()))?;
    let manifest = manifest.canonicalize().map_err(|e| failed(e.to_string()))?;

    let output = run_cargo(
        cargo()
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .args([
                "--message-format",
                "json-render-diagnostics",
                "--manifest-path",
            ])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(Path::new(target_dir).join("guests")),
    )
    .map_err(failed)?;
    // The component is the artifact of the crate itself (not a dependency)
    // whose file ends in .wasm.
    output
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["manifest_path"]
                .as_str()
                .is_some_and(|p| Path::new(p) == manifest)
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
        })
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| {
            failed(
                "cargo built no .wasm (is the crate a cdylib with crate-type = [\"cdylib\"]?)"
                    .into(),
            )
        })
}

/// Runs cargo, returning its stdout, or its stderr as the error.
fn run_cargo(cmd: &mut Command) -> std::result::Result<String, String> {
    let output = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint =
            if stderr.contains("wasm32-wasip2") && stderr.contains("target may not be installed") {
                " (install the target: rustup target add wasm32-wasip2)"
            } else {
                ""
            };
        return Err(format!("{}{hint}", stderr.trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
