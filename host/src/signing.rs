//! Signed artifacts: ed25519 keys, detached signature files, and the check
//! `dmig-host run --trusted-keys` makes before anything is instantiated.
//!
//! A signature covers the artifact's sha256 *and* its manifest (name,
//! version, capabilities), so neither the bytes nor what they declare can
//! change without breaking it. Signatures are detached: `migration.wasm`'s
//! live in `migration.wasm.sig` beside it, so signing never changes the bytes
//! (and the sha256 the ledger records), and several reviewers can each add
//! theirs. The signed message is
//!
//! ```text
//! dmig-signature/1\n<sha256 of the artifact, lowercase hex>\n<manifest JSON, or null>
//! ```
//!
//! Keys are standard PEM files (PKCS#8 private keys, SPKI public keys), so
//! `openssl genpkey -algorithm ed25519` makes one too. A key's id is the
//! first 16 hex digits of the sha256 of its 32 raw public-key bytes.

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::artifact::Artifact;
use crate::error::{Error, Result};

/// The signature file format, also the first line of the signed message.
pub const FORMAT: &str = "dmig-signature/1";

/// Where an artifact's detached signatures live: `<artifact>.sig`.
pub fn signature_path(artifact: &Path) -> PathBuf {
    let mut name = artifact.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// A public key and its id.
#[derive(Debug, Clone)]
pub struct PublicKey {
    key: VerifyingKey,
    id: String,
    /// The file it was read from, for messages.
    pub path: Option<PathBuf>,
}

impl PublicKey {
    fn new(key: VerifyingKey, path: Option<PathBuf>) -> Self {
        PublicKey {
            id: key_id(&key),
            key,
            path,
        }
    }

    /// The key's id: 16 hex digits of the sha256 of the raw key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Reads a PEM public key.
    ///
    /// # Errors
    ///
    /// [`Error::Key`] if the file cannot be read or is not an ed25519 key.
    pub fn read(path: &Path) -> Result<Self> {
        let text = read_key_file(path)?;
        let key = VerifyingKey::from_public_key_pem(&text).map_err(|e| Error::Key {
            path: path.to_path_buf(),
            reason: format!("not an ed25519 public key in PEM form ({e})"),
        })?;
        Ok(PublicKey::new(key, Some(path.to_path_buf())))
    }
}

fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

fn read_key_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::Key {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A new key pair written as `<dir>/<name>.key` (private, mode 0600) and
/// `<dir>/<name>.pub`. Returns the public key.
///
/// # Errors
///
/// [`Error::Key`] if either file exists already (keys are never overwritten)
/// or cannot be written, or the system has no randomness.
pub fn generate(dir: &Path, name: &str) -> Result<PublicKey> {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let key_error = |path: &Path, reason: String| Error::Key {
        path: path.to_path_buf(),
        reason,
    };
    for path in [&private, &public] {
        if path.exists() {
            return Err(key_error(
                path,
                "it already exists; keys are never overwritten (choose another --name or remove it)"
                    .into(),
            ));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| key_error(dir, e.to_string()))?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| key_error(&private, format!("no randomness: {e}")))?;
    let signing = SigningKey::from_bytes(&seed);
    let private_pem = signing
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| key_error(&private, e.to_string()))?;
    let public_pem = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| key_error(&public, e.to_string()))?;
    write_private(&private, private_pem.as_bytes())
        .map_err(|e| key_error(&private, e.to_string()))?;
    std::fs::write(&public, public_pem).map_err(|e| key_error(&public, e.to_string()))?;
    Ok(PublicKey::new(signing.verifying_key(), Some(public)))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

/// One signature in a signature file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    /// The signer's key id.
    pub key_id: String,
    /// The ed25519 signature, lowercase hex.
    pub signature: String,
    /// When it was made (UTC, RFC 3339); informational, not signed.
    pub signed_at: String,
}

/// A detached signature file: what was signed, and the signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    pub format: String,
    /// The sha256 of the signed artifact.
    pub sha256: String,
    /// The signed manifest, as JSON (`null` for an artifact without one).
    pub manifest: Option<serde_json::Value>,
    pub signatures: Vec<SignatureEntry>,
}

impl SignatureFile {
    /// Reads `<artifact>.sig`, or `None` if there is none.
    ///
    /// # Errors
    ///
    /// [`Error::BadSignature`] if it exists but is not a signature file.
    pub fn read_for(artifact: &Artifact) -> Result<Option<Self>> {
        let path = signature_path(artifact.path());
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::BadSignature {
                    path: artifact.path().to_path_buf(),
                    reason: format!("cannot read {}: {e}", path.display()),
                });
            }
        };
        let file: SignatureFile = serde_json::from_str(&text).map_err(|e| Error::BadSignature {
            path: artifact.path().to_path_buf(),
            reason: format!("{} is not a {FORMAT} signature file: {e}", path.display()),
        })?;
        if file.format != FORMAT {
            return Err(Error::BadSignature {
                path: artifact.path().to_path_buf(),
                reason: format!(
                    "{} has format {:?}; this dmig-host reads {FORMAT}",
                    path.display(),
                    file.format
                ),
            });
        }
        Ok(Some(file))
    }
}

/// The message a signature covers.
fn message(artifact: &Artifact) -> Vec<u8> {
    let manifest = artifact
        .manifest()
        .map_or_else(|| "null".to_owned(), |m| m.to_json());
    format!("{FORMAT}\n{}\n{manifest}", artifact.sha256()).into_bytes()
}

/// Signs `artifact` with the PEM private key at `key_path`, adding the
/// signature to `<artifact>.sig` (created if missing; a previous signature by
/// the same key is replaced). Returns the signer's public key.
///
/// # Errors
///
/// [`Error::Key`] for an unreadable or invalid key; [`Error::BadSignature`]
/// if an existing signature file belongs to different bytes (re-signing a
/// changed artifact must start from a new file, so stale signatures cannot
/// linger) or cannot be written.
pub fn sign(artifact: &Artifact, key_path: &Path) -> Result<PublicKey> {
    let text = read_key_file(key_path)?;
    let key = SigningKey::from_pkcs8_pem(&text).map_err(|e| Error::Key {
        path: key_path.to_path_buf(),
        reason: format!("not an ed25519 private key in PKCS#8 PEM form ({e})"),
    })?;
    let public = PublicKey::new(key.verifying_key(), None);
    let mut file = match SignatureFile::read_for(artifact)? {
        Some(file) if file.sha256 != artifact.sha256() => {
            return Err(Error::BadSignature {
                path: artifact.path().to_path_buf(),
                reason: format!(
                    "{} holds signatures of other bytes (sha256 {}); remove it to sign this version",
                    signature_path(artifact.path()).display(),
                    file.sha256
                ),
            });
        }
        Some(file) => file,
        None => SignatureFile {
            format: FORMAT.to_owned(),
            sha256: artifact.sha256().to_owned(),
            manifest: artifact
                .manifest()
                .map(|m| serde_json::to_value(m).expect("manifests serialize")),
            signatures: Vec::new(),
        },
    };
    let signature = key.sign(&message(artifact));
    file.signatures.retain(|s| s.key_id != public.id);
    file.signatures.push(SignatureEntry {
        key_id: public.id.clone(),
        signature: hex::encode(signature.to_bytes()),
        signed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    let path = signature_path(artifact.path());
    let json = serde_json::to_string_pretty(&file).expect("signature files serialize");
    std::fs::write(&path, json + "\n").map_err(|e| Error::BadSignature {
        path: artifact.path().to_path_buf(),
        reason: format!("cannot write {}: {e}", path.display()),
    })?;
    Ok(public)
}

/// The keys an operator trusts: every `*.pub` file in a directory.
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
    dir: PathBuf,
}

impl TrustedKeys {
    /// Reads every `*.pub` in `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::Key`] if the directory cannot be read, holds no `.pub` file,
    /// or one of them is not a valid key (a broken trust store is an error,
    /// not something to skip).
    pub fn read_dir(dir: &Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::Key {
            path: dir.to_path_buf(),
            reason: format!("cannot read the trusted-keys directory: {e}"),
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "pub"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(Error::Key {
                path: dir.to_path_buf(),
                reason: "it holds no .pub files (copy the signers' public keys into it)".into(),
            });
        }
        let keys = paths
            .iter()
            .map(|p| PublicKey::read(p))
            .collect::<Result<Vec<_>>>()?;
        Ok(TrustedKeys {
            keys,
            dir: dir.to_path_buf(),
        })
    }

    /// The trusted keys, in file-name order.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }
}

/// A signature that verified against a trusted key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    pub key_id: String,
    pub key_file: Option<PathBuf>,
}

/// Whether `entry` is `key`'s signature of `artifact` (its sha256 and
/// manifest as they are now).
pub fn signature_valid(artifact: &Artifact, entry: &SignatureEntry, key: &PublicKey) -> bool {
    let signature = hex::decode(&entry.signature)
        .ok()
        .and_then(|bytes| Signature::from_slice(&bytes).ok());
    entry.key_id == key.id
        && signature.is_some_and(|s| key.key.verify(&message(artifact), &s).is_ok())
}

/// Checks that `artifact` carries a valid signature by one of `trusted`.
///
/// # Errors
///
/// [`Error::Unsigned`] if it has no signature file (or an empty one),
/// [`Error::BadSignature`] if the signatures are not of these bytes or a
/// trusted key's signature does not verify (the artifact or its signature
/// was changed), [`Error::UntrustedSigner`] if only untrusted keys signed it.
pub fn verify(artifact: &Artifact, trusted: &TrustedKeys) -> Result<Verified> {
    let path = artifact.path().to_path_buf();
    let Some(file) = SignatureFile::read_for(artifact)? else {
        return Err(Error::Unsigned { path });
    };
    if file.signatures.is_empty() {
        return Err(Error::Unsigned { path });
    }
    if file.sha256 != artifact.sha256() {
        return Err(Error::BadSignature {
            path,
            reason: format!(
                "it was signed with sha256 {} but now has sha256 {}: the artifact changed after it was signed",
                file.sha256,
                artifact.sha256()
            ),
        });
    }
    for entry in &file.signatures {
        let Some(key) = trusted.keys.iter().find(|k| k.id == entry.key_id) else {
            continue;
        };
        if !signature_valid(artifact, entry, key) {
            return Err(Error::BadSignature {
                path,
                reason: format!(
                    "the signature by trusted key {} does not match the artifact and its manifest: one of them was changed after signing, or the signature was forged",
                    entry.key_id
                ),
            });
        }
        return Ok(Verified {
            key_id: key.id.clone(),
            key_file: key.path.clone(),
        });
    }
    Err(Error::UntrustedSigner {
        path,
        key_ids: file.signatures.iter().map(|s| s.key_id.clone()).collect(),
        trusted_dir: trusted.dir.clone(),
    })
}
