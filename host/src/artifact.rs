//! Reading a migration artifact and telling what kind of file it is, before
//! any of it is compiled or run.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::manifest::{self, Manifest};

const MAGIC: &[u8; 4] = b"\0asm";
/// Version and layer fields of a core module (version 1, layer 0).
const CORE_MODULE: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
/// Version and layer fields of a component (layer 1).
const COMPONENT_LAYER: [u8; 2] = [0x01, 0x00];

/// A migration artifact's bytes and identity.
#[derive(Clone)]
pub struct Artifact {
    path: PathBuf,
    bytes: Vec<u8>,
    sha256: String,
    manifest: Option<Manifest>,
}

impl std::fmt::Debug for Artifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Artifact")
            .field("path", &self.path)
            .field("len", &self.bytes.len())
            .field("sha256", &self.sha256)
            .field("manifest", &self.manifest.as_ref().map(|m| &m.name))
            .finish()
    }
}

impl Artifact {
    /// Reads `path`, checks that it is a WebAssembly component, and reads its
    /// manifest if it has one. Whether it is a component *of the dmig world*
    /// is checked when it is compiled.
    ///
    /// # Errors
    ///
    /// [`Error::ArtifactUnreadable`], [`Error::NotWasm`], [`Error::MalformedWasm`]
    /// (too short to hold a header), [`Error::CoreModule`] or
    /// [`Error::BadManifest`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| Error::ArtifactUnreadable {
            path: path.clone(),
            source,
        })?;
        Self::from_bytes(path, bytes)
    }

    /// Like [`Artifact::load`], for bytes already in memory; `path` is used in
    /// messages only.
    pub fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> Result<Self> {
        classify(&path, &bytes)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let manifest = manifest::find(&bytes).map_err(|reason| Error::BadManifest {
            path: path.clone(),
            reason,
        })?;
        Ok(Artifact {
            path,
            bytes,
            sha256,
            manifest,
        })
    }

    /// Where the artifact was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw component bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Lowercase hex SHA-256 of the bytes: the identity the ledger records.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// What the artifact declares about itself, if it carries a manifest.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }
}

fn classify(path: &Path, bytes: &[u8]) -> Result<()> {
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] || bytes.is_empty() {
        return Err(Error::NotWasm {
            path: path.to_path_buf(),
        });
    }
    if bytes.len() < 8 {
        return Err(Error::MalformedWasm {
            path: path.to_path_buf(),
            reason: format!("only {} bytes, too short for a header", bytes.len()),
        });
    }
    let header = &bytes[4..8];
    if header == CORE_MODULE {
        return Err(Error::CoreModule {
            path: path.to_path_buf(),
        });
    }
    if header[2..4] != COMPONENT_LAYER {
        return Err(Error::MalformedWasm {
            path: path.to_path_buf(),
            reason: format!("unknown header {header:02x?}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(bytes: &[u8]) -> Result<Artifact> {
        Artifact::from_bytes(PathBuf::from("x.wasm"), bytes.to_vec())
    }

    #[test]
    fn classifies_headers() {
        assert!(matches!(kind(b""), Err(Error::NotWasm { .. })));
        assert!(matches!(kind(b"hello world"), Err(Error::NotWasm { .. })));
        assert!(matches!(kind(b"\0as"), Err(Error::MalformedWasm { .. })));
        assert!(matches!(
            kind(b"\0asm\x01"),
            Err(Error::MalformedWasm { .. })
        ));
        assert!(matches!(
            kind(b"\0asm\x01\0\0\0"),
            Err(Error::CoreModule { .. })
        ));
        let component = kind(b"\0asm\x0d\0\x01\0").unwrap();
        assert_eq!(
            component.sha256(),
            hex::encode(Sha256::digest(b"\0asm\x0d\0\x01\0"))
        );
    }
}
