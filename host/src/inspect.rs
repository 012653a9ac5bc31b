//! What a reviewer needs to know about an artifact before trusting it: its
//! identity, its manifest and capabilities, what it imports and exports, and
//! who signed it. Read from the bytes and the signature file alone; nothing
//! of the artifact is compiled or run.

use std::path::PathBuf;

use serde::Serialize;

use crate::artifact::Artifact;
use crate::bindings::PACKAGE;
use crate::error::Result;
use crate::manifest::Manifest;
use crate::signing::{self, SignatureFile, TrustedKeys};

/// Everything `dmig-host inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// The embedded manifest; `None` means the artifact declares nothing.
    pub manifest: Option<Manifest>,
    /// The `dmig:migration` version it exports, e.g. `0.2.0`.
    pub wit_version: Option<String>,
    /// The world it implements, e.g. `dmig:migration/data-migration@0.2.0`.
    pub world: Option<String>,
    pub exports: Vec<String>,
    /// Every import, dmig's and WASI's.
    pub imports: Vec<String>,
    /// The WASI interfaces among the imports (all linked, none granted).
    pub wasi_imports: Vec<String>,
    /// Where its detached signatures are looked for.
    pub signature_file: PathBuf,
    pub signatures: Vec<SignatureReport>,
    /// Why the signature file cannot be used, if it cannot.
    pub signature_problem: Option<String>,
}

/// One signature and, when trusted keys were given, whether it verifies.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureReport {
    pub key_id: String,
    pub signed_at: String,
    /// `Some(true)` if a trusted key with this id verifies it, `Some(false)`
    /// if it does not verify, `None` if the key is not among the trusted ones
    /// (or none were given).
    pub verified: Option<bool>,
}

/// Inspects `artifact`, checking its signatures against `trusted` if given.
///
/// # Errors
///
/// None today beyond those of reading the artifact; signature problems are
/// reported in the result, not raised.
pub fn inspect(artifact: &Artifact, trusted: Option<&TrustedKeys>) -> Result<Inspection> {
    let (imports, exports) = component_names(artifact.bytes());
    let wit_version = exports.iter().find_map(|e| {
        e.strip_prefix(PACKAGE)
            .and_then(|rest| rest.strip_prefix("migration@"))
            .map(str::to_owned)
    });
    let world = wit_version
        .as_ref()
        .map(|v| format!("{PACKAGE}data-migration@{v}"));
    let wasi_imports = imports
        .iter()
        .filter(|i| i.starts_with("wasi:"))
        .cloned()
        .collect();
    let mut report = Inspection {
        path: artifact.path().to_path_buf(),
        size: artifact.bytes().len() as u64,
        sha256: artifact.sha256().to_owned(),
        manifest: artifact.manifest().cloned(),
        wit_version,
        world,
        exports,
        imports,
        wasi_imports,
        signature_file: signing::signature_path(artifact.path()),
        signatures: Vec::new(),
        signature_problem: None,
    };
    let file = match SignatureFile::read_for(artifact) {
        Ok(file) => file,
        Err(e) => {
            report.signature_problem = Some(e.to_string());
            return Ok(report);
        }
    };
    let Some(file) = file else {
        return Ok(report);
    };
    if file.sha256 != artifact.sha256() {
        report.signature_problem = Some(format!(
            "the signatures are of other bytes (sha256 {}): the artifact changed after signing",
            file.sha256
        ));
    }
    report.signatures = file
        .signatures
        .iter()
        .map(|s| {
            let key = trusted.and_then(|t| t.keys().iter().find(|k| k.id() == s.key_id));
            SignatureReport {
                key_id: s.key_id.clone(),
                signed_at: s.signed_at.clone(),
                verified: key.map(|k| signing::signature_valid(artifact, s, k)),
            }
        })
        .collect();
    Ok(report)
}

/// The component's top-level import and export names.
fn component_names(bytes: &[u8]) -> (Vec<String>, Vec<String>) {
    use wasmparser::{Parser, Payload};
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            Payload::ComponentImportSection(reader) if depth == 0 => {
                imports.extend(reader.into_iter().flatten().map(|i| i.name.name.to_owned()));
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                exports.extend(reader.into_iter().flatten().map(|e| e.name.name.to_owned()));
            }
            _ => {}
        }
    }
    (imports, exports)
}

impl std::fmt::Display for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |items: &[String]| {
            if items.is_empty() {
                "(none)".to_owned()
            } else {
                items.join(", ")
            }
        };
        let yes = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "artifact      {}", self.path.display())?;
        writeln!(f, "sha256        {}", self.sha256)?;
        writeln!(
            f,
            "size          {} ({} bytes)",
            bytesize::ByteSize(self.size).display().iec(),
            self.size
        )?;
        match &self.manifest {
            Some(m) => {
                writeln!(f, "name          {}", m.name)?;
                writeln!(f, "version       {}", m.version)?;
                writeln!(f, "description   {}", m.description)?;
                writeln!(f, "reversible    {}", yes(m.reversible))?;
                writeln!(f, "manifest WIT  {}", m.wit)?;
                let c = &m.capabilities;
                writeln!(f, "capabilities")?;
                writeln!(f, "  reads       {}", list(&c.reads))?;
                writeln!(f, "  writes      {}", list(&c.writes))?;
                writeln!(f, "  functions   {}", list(&c.functions))?;
                writeln!(f, "  ddl         {}", yes(c.ddl))?;
                if c.raw_sql {
                    writeln!(
                        f,
                        "  raw SQL     YES: statements dmig-host cannot parse run UNCHECKED against the declared tables, and server-file, dynamic-SQL, session, lock, sleep and signal functions are allowed"
                    )?;
                } else {
                    writeln!(f, "  raw SQL     no")?;
                }
            }
            None => writeln!(
                f,
                "manifest      NONE: the artifact declares nothing; it runs only with --allow-undeclared, and then UNRESTRICTED"
            )?,
        }
        writeln!(
            f,
            "world         {}",
            self.world.as_deref().unwrap_or("(not a dmig migration)")
        )?;
        writeln!(f, "exports       {}", list(&self.exports))?;
        let dmig: Vec<String> = self
            .imports
            .iter()
            .filter(|i| !i.starts_with("wasi:"))
            .cloned()
            .collect();
        writeln!(f, "imports       {}", list(&dmig))?;
        writeln!(
            f,
            "WASI imports  {} (linked, nothing granted unless the operator grants it)",
            list(&self.wasi_imports)
        )?;
        if let Some(problem) = &self.signature_problem {
            writeln!(f, "signatures    PROBLEM: {problem}")?;
        }
        if self.signatures.is_empty() {
            write!(
                f,
                "signatures    none ({} not found)",
                self.signature_file.display()
            )?;
            return Ok(());
        }
        write!(
            f,
            "signatures    {} in {}",
            self.signatures.len(),
            self.signature_file.display()
        )?;
        for s in &self.signatures {
            let state = match s.verified {
                Some(true) => "verified by a trusted key",
                Some(false) => "DOES NOT VERIFY against the trusted key",
                None => "not checked (key not among --trusted-keys)",
            };
            write!(f, "\n  key {}  signed {}  {state}", s.key_id, s.signed_at)?;
        }
        Ok(())
    }
}
