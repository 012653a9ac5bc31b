//! Files the operator granted with `dmig-host run --input NAME=PATH`.
//!
//! Each granted file is visible, read-only, as `/inputs/NAME`; nothing else
//! of the host's filesystem is. Reading is ordinary `std::fs`; these helpers
//! add the path and an error that says how to grant a missing input.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Where the host mounts granted inputs.
pub const DIR: &str = "/inputs";

/// The guest path of input `name`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(DIR).join(name)
}

/// Opens input `name` for reading (for large files: read it in pieces).
pub fn open(name: &str) -> Result<std::fs::File> {
    std::fs::File::open(path(name)).map_err(|e| not_granted(name, e))
}

/// Reads all of input `name`.
pub fn read(name: &str) -> Result<Vec<u8>> {
    std::fs::read(path(name)).map_err(|e| not_granted(name, e))
}

/// Reads all of input `name` as UTF-8 text.
pub fn read_to_string(name: &str) -> Result<String> {
    std::fs::read_to_string(path(name)).map_err(|e| not_granted(name, e))
}

fn not_granted(name: &str, error: std::io::Error) -> Error {
    Error::msg(format!(
        "cannot read input {name}: {error} (grant it with dmig-host run --input {name}=PATH)"
    ))
}
