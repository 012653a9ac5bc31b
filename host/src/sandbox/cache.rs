//! Compiled components on disk, so that a second run of the same artifact
//! starts in milliseconds instead of recompiling it.
//!
//! An entry is keyed by the artifact's sha256 and wasmtime's compatibility
//! hash (engine version and settings), so a changed artifact or engine never
//! reuses it. Loading compiled code is `unsafe` (it is native code), so each
//! entry is stored with the sha256 of its bytes and checked against it first:
//! a corrupt or tampered entry is recompiled and rewritten, never loaded. The
//! directory is created private to the user; do not point it at a directory
//! others can write.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::artifact::Artifact;

/// Where compiled components are kept.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ComponentCache { dir: dir.into() }
    }

    /// `$DMIG_CACHE_DIR`, else `$XDG_CACHE_HOME/dmig/components`, else
    /// `~/.cache/dmig/components`; `None` when none can be determined.
    pub fn default_dir() -> Option<PathBuf> {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        var("DMIG_CACHE_DIR")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("dmig/components")))
            .or_else(|| var("HOME").map(|d| d.join(".cache/dmig/components")))
    }

    /// The directory entries live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, engine: &Engine, artifact: &Artifact) -> PathBuf {
        let mut compat = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut compat);
        let compat = hex::encode(compat.0.finalize());
        self.dir
            .join(format!("{}-{}.cwasm", artifact.sha256(), &compat[..16]))
    }

    /// The cached compilation of `artifact`, if there is a valid one.
    pub fn load(&self, engine: &Engine, artifact: &Artifact) -> Option<Component> {
        let path = self.entry(engine, artifact);
        let bytes = std::fs::read(&path).ok()?;
        let expected = std::fs::read_to_string(digest_path(&path)).unwrap_or_default();
        if hex::encode(Sha256::digest(&bytes)) != expected.trim() {
            tracing::warn!(entry = %path.display(), "compiled component failed validation; recompiling it");
            return None;
        }
        // SAFETY: the bytes are exactly what `store` wrote from
        // `Component::serialize` (checked against their sha256 above), for
        // this artifact and this engine configuration (the file name);
        // `deserialize` still checks wasmtime's own header.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(component) => {
                tracing::debug!(entry = %path.display(), "loaded compiled component from cache");
                Some(component)
            }
            Err(e) => {
                tracing::warn!(entry = %path.display(), "cached component unusable ({e}); recompiling it");
                None
            }
        }
    }

    /// Stores the compilation of `artifact`. Failing to cache is not an
    /// error: it is logged and the run goes on.
    pub fn store(&self, engine: &Engine, artifact: &Artifact, component: &Component) {
        if let Err(e) = self.try_store(engine, artifact, component) {
            tracing::warn!(dir = %self.dir.display(), "could not cache the compiled component: {e}");
        }
    }

    fn try_store(
        &self,
        engine: &Engine,
        artifact: &Artifact,
        component: &Component,
    ) -> std::io::Result<()> {
        let bytes = component.serialize().map_err(std::io::Error::other)?;
        create_private_dir(&self.dir)?;
        let path = self.entry(engine, artifact);
        // Write both files under temporary names and rename them into place,
        // the digest last: a reader sees a whole entry or an invalid one.
        let tmp = |p: &Path| p.with_extension(format!("tmp{}", std::process::id()));
        let digest = digest_path(&path);
        std::fs::write(tmp(&path), &bytes)?;
        std::fs::rename(tmp(&path), &path)?;
        std::fs::write(tmp(&digest), hex::encode(Sha256::digest(&bytes)))?;
        std::fs::rename(tmp(&digest), &digest)?;
        tracing::debug!(entry = %path.display(), "cached the compiled component");
        Ok(())
    }
}

fn digest_path(entry: &Path) -> PathBuf {
    entry.with_extension("cwasm.sha256")
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Feeds `Hash` output into SHA-256, for a stable, printable key.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("only the digest is read")
    }
}
