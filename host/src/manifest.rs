//! The manifest an artifact carries in its `dmig:manifest` custom section:
//! name, version, description, reversibility, WIT version and the declared
//! capabilities. Read from the bytes alone, so reviewing or refusing an
//! artifact never runs any of its code.
//!
//! The section is one JSON object; the guest SDK writes it at compile time
//! (see `dmig_guest::Manifest`), `dmig-host pack` adds it to components built
//! otherwise. Format 1:
//!
//! ```json
//! {"format":1,"name":"backfill-user-slugs","version":"1.2.0",
//!  "description":"…","reversible":true,"wit":"0.2.0",
//!  "capabilities":{"reads":["users"],"writes":["users"],"ddl":false,"raw_sql":false}}
//! ```

use serde::{Deserialize, Serialize};

/// The custom section's name.
pub const SECTION: &str = "dmig:manifest";

/// The newest manifest format this host reads. Format 2 added
/// `capabilities.functions`; a format-1 manifest declares no functions.
pub const FORMAT: u32 = 2;

/// Tables every migration is denied, whatever it declares: the host's ledger.
pub const LEDGER_PREFIX: &str = "dmig_";

/// What an artifact says it is and may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The manifest format (1).
    pub format: u32,
    /// The migration's unique name, as the ledger records it.
    pub name: String,
    /// The migration's own version (the guest crate's, unless it set one).
    pub version: String,
    pub description: String,
    pub reversible: bool,
    /// The `dmig:migration` WIT version the guest was built against.
    pub wit: String,
    pub capabilities: Capabilities,
}

/// The tables a migration may touch and the kinds of SQL it may send; the
/// host refuses every statement outside them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Tables it may read.
    pub reads: Vec<String>,
    /// Tables it may read and write.
    pub writes: Vec<String>,
    /// Whether it may run DDL on the tables in `writes`.
    pub ddl: bool,
    /// Whether it may send statements the host cannot parse (unchecked),
    /// and call the functions refused to everyone else.
    pub raw_sql: bool,
    /// Functions outside the built-in pure ones that it may call (format 2;
    /// absent means none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<String>,
}

/// A field in which `describe()` and the manifest differ (see
/// [`Manifest::check_described`]); the values are shown on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement {
    /// `name`, `description` or `reversible`.
    pub field: &'static str,
    /// The manifest's value.
    pub manifest: String,
    /// What `describe()` returned.
    pub described: String,
}

/// Why an artifact's manifest cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("it has {0} dmig:manifest sections; it must have exactly one")]
    Duplicate(usize),
    #[error("its dmig:manifest section is not valid JSON of format {FORMAT}: {0}")]
    Invalid(String),
    #[error(
        "its manifest has format {0}, newer than this dmig-host reads ({FORMAT}); upgrade dmig-host"
    )]
    NewerFormat(u32),
    #[error("its manifest {0}")]
    Rule(String),
    #[error("the component already carries a dmig:manifest section; a component gets exactly one")]
    AlreadyPresent,
}

impl Manifest {
    /// Parses and validates one section's bytes.
    ///
    /// # Errors
    ///
    /// [`ManifestError`] naming what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        #[derive(Deserialize)]
        struct Format {
            format: u32,
        }
        let format: Format =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid(e.to_string()))?;
        if format.format > FORMAT {
            return Err(ManifestError::NewerFormat(format.format));
        }
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid(e.to_string()))?;
        manifest.validate()?;
        manifest.validate_functions()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        let rule = |text: String| Err(ManifestError::Rule(text));
        if self.name.trim().is_empty() {
            return rule("has an empty name".into());
        }
        if self.name.len() > crate::sandbox::MAX_NAME || self.name.chars().any(char::is_control) {
            return rule(format!(
                "name {:?} is too long or has control characters",
                self.name
            ));
        }
        // One line (as the WIT says): `inspect` and `status` print it, and a
        // line break in it could forge a line of their reports.
        if self.description.len() > crate::sandbox::MAX_DESCRIPTION
            || self
                .description
                .chars()
                .any(crate::sandbox::text::is_unsafe)
        {
            return rule(format!(
                "description is {} bytes long or has control characters; it is one line of at \
                 most {} bytes",
                self.description.len(),
                crate::sandbox::MAX_DESCRIPTION
            ));
        }
        for table in self
            .capabilities
            .reads
            .iter()
            .chain(&self.capabilities.writes)
        {
            if table.trim().is_empty() || table.split('.').any(|part| part.trim().is_empty()) {
                return rule(format!("declares an invalid table name {table:?}"));
            }
            if let Err(e) = crate::sql::Name::parse(crate::sql::Dialect::Postgres, table) {
                return rule(format!("declares an invalid table name: {e}"));
            }
            if is_ledger_table(table) {
                return rule(format!(
                    "declares the ledger table {table}; the dmig_ tables belong to the host"
                ));
            }
        }
        Ok(())
    }

    fn validate_functions(&self) -> Result<(), ManifestError> {
        for function in &self.capabilities.functions {
            if let Err(e) = crate::sql::Name::parse(crate::sql::Dialect::Postgres, function) {
                return Err(ManifestError::Rule(format!(
                    "declares an invalid function name: {e}"
                )));
            }
        }
        if self.format < 2 && !self.capabilities.functions.is_empty() {
            return Err(ManifestError::Rule(
                "declares functions, which needs format 2".into(),
            ));
        }
        Ok(())
    }

    /// Checks that what the guest's `describe()` returned agrees with this
    /// manifest in every field `describe()` has: the name, the description
    /// and whether it is reversible. (The version, the WIT version and the
    /// capabilities exist only in the manifest; the host takes them from
    /// there.)
    ///
    /// # Errors
    ///
    /// The first field that differs, with both values.
    pub fn check_described(
        &self,
        name: &str,
        description: &str,
        reversible: bool,
    ) -> Result<(), Disagreement> {
        let differs = |field, manifest: String, described: String| {
            Err(Disagreement {
                field,
                manifest,
                described,
            })
        };
        let quoted = |s: &str| format!("\"{}\"", crate::sandbox::text::one_line(s, 200));
        if self.name != name {
            return differs("name", quoted(&self.name), quoted(name));
        }
        if self.description != description {
            return differs(
                "description",
                quoted(&self.description),
                quoted(description),
            );
        }
        if self.reversible != reversible {
            return differs(
                "reversible",
                self.reversible.to_string(),
                reversible.to_string(),
            );
        }
        Ok(())
    }

    /// The manifest as the JSON a section holds.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("manifests serialize")
    }
}

/// Whether `table` (possibly schema-qualified) is one of the host's tables.
pub fn is_ledger_table(table: &str) -> bool {
    let last = table.rsplit('.').next().unwrap_or(table);
    let last = last.trim_matches(['"', '`', '[', ']']);
    last.len() >= LEDGER_PREFIX.len()
        && last[..LEDGER_PREFIX.len()].eq_ignore_ascii_case(LEDGER_PREFIX)
}

/// Finds the manifest in a component's bytes, at any nesting depth (the SDK's
/// lands in the core module, `pack`'s at the top level).
///
/// Returns `Ok(None)` when there is none.
///
/// # Errors
///
/// [`ManifestError`] if there are several, or the one there is invalid. Bytes
/// that do not parse as WebAssembly yield `Ok(None)`: compiling them reports
/// that better.
pub fn find(bytes: &[u8]) -> Result<Option<Manifest>, ManifestError> {
    let sections: Vec<&[u8]> = custom_sections(bytes, SECTION);
    match sections.as_slice() {
        [] => Ok(None),
        [one] => Manifest::parse(one).map(Some),
        many => Err(ManifestError::Duplicate(many.len())),
    }
}

/// The data of every custom section named `name`, nested ones included.
pub fn custom_sections<'a>(bytes: &'a [u8], name: &str) -> Vec<&'a [u8]> {
    let mut found = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        if let wasmparser::Payload::CustomSection(section) = payload
            && section.name() == name
        {
            found.push(section.data());
        }
    }
    found
}

/// Appends a custom section to a component or module (custom sections may
/// appear anywhere, so appending keeps everything else byte-for-byte).
pub fn append_custom_section(bytes: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut body = Vec::with_capacity(name.len() + data.len() + 5);
    leb128(&mut body, name.len() as u64);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    bytes.push(0);
    leb128(bytes, body.len() as u64);
    bytes.extend_from_slice(&body);
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"format":1,"name":"n","version":"1.0.0","description":"d","reversible":false,"wit":"0.2.0","capabilities":{"reads":["a"],"writes":["b"],"ddl":false,"raw_sql":false}}"#;

    #[test]
    fn parses_and_validates() {
        let m = Manifest::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(m.capabilities.reads, ["a"]);
        assert_eq!(Manifest::parse(m.to_json().as_bytes()).unwrap(), m);
        let ledger = GOOD.replace(r#"["b"]"#, r#"["public.DMIG_runs"]"#);
        assert!(matches!(
            Manifest::parse(ledger.as_bytes()),
            Err(ManifestError::Rule(r)) if r.contains("ledger table public.DMIG_runs")
        ));
        let unknown = GOOD.replace(r#""ddl":false"#, r#""ddl":false,"network":true"#);
        assert!(matches!(
            Manifest::parse(unknown.as_bytes()),
            Err(ManifestError::Invalid(_))
        ));
        let newer = GOOD.replace(r#""format":1"#, r#""format":3"#);
        assert_eq!(
            Manifest::parse(newer.as_bytes()),
            Err(ManifestError::NewerFormat(3))
        );
        let functions = GOOD.replace(
            r#""raw_sql":false"#,
            r#""raw_sql":false,"functions":["slugify"]"#,
        );
        assert!(matches!(
            Manifest::parse(functions.as_bytes()),
            Err(ManifestError::Rule(r)) if r.contains("format 2")
        ));
        let v2 = functions.replace(r#""format":1"#, r#""format":2"#);
        assert_eq!(
            Manifest::parse(v2.as_bytes())
                .unwrap()
                .capabilities
                .functions,
            ["slugify"]
        );
    }

    #[test]
    fn describe_must_agree_in_every_field() {
        let m = Manifest::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(m.check_described("n", "d", false), Ok(()));
        let field = |r: Result<(), Disagreement>| r.unwrap_err().field;
        assert_eq!(field(m.check_described("m", "d", false)), "name");
        assert_eq!(field(m.check_described("n", "e", false)), "description");
        assert_eq!(field(m.check_described("n", "d", true)), "reversible");
        let shown = m.check_described("n", "d\nforged", false).unwrap_err();
        assert_eq!(shown.described, r#""d\nforged""#);
        // A description is one line, at most 4 KiB.
        for bad in [
            r#""d\nforged""#.to_owned(),
            format!("\"{}\"", "x".repeat(5000)),
        ] {
            let json = GOOD.replace(r#""d""#, &bad);
            assert!(
                matches!(Manifest::parse(json.as_bytes()), Err(ManifestError::Rule(r)) if r.contains("description")),
                "{bad}"
            );
        }
    }

    #[test]
    fn appended_sections_are_found() {
        // An empty component: magic, version 0x0d, layer 1.
        let mut component = b"\0asm\x0d\0\x01\0".to_vec();
        assert_eq!(find(&component), Ok(None));
        append_custom_section(&mut component, SECTION, GOOD.as_bytes());
        assert_eq!(find(&component).unwrap().unwrap().name, "n");
        append_custom_section(&mut component, SECTION, GOOD.as_bytes());
        assert_eq!(find(&component), Err(ManifestError::Duplicate(2)));
    }
}
