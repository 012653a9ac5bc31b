//! The manifest: who a migration is and what it may touch, fixed at compile
//! time and embedded in the artifact as the `dmig:manifest` custom section, so
//! a reviewer (`dmig-host inspect`) and the host read it without running any
//! guest code, and the host enforces the declared capabilities on every
//! statement.
//!
//! The section holds one JSON object (format 1):
//!
//! ```json
//! {"format":1,"name":"backfill-user-slugs","version":"1.2.0",
//!  "description":"…","reversible":true,"wit":"0.2.0",
//!  "capabilities":{"reads":["users"],"writes":["users"],"ddl":false,"raw_sql":false}}
//! ```
//!
//! Components written in other languages embed the same section (or add it
//! with `dmig-host pack`).

/// The WIT package version this SDK binds, recorded in the manifest.
pub const WIT_VERSION: &str = "0.2.0";

/// What a migration is and may do; see [`Migration::MANIFEST`](crate::Migration::MANIFEST).
///
/// Built with `const` methods so it can be evaluated at compile time:
///
/// ```
/// use dmig_guest::Manifest;
/// const MANIFEST: Manifest = Manifest::new("archive-old-orders", "Move old orders to archived_orders")
///     .reversible()
///     .reads(&["order_items"])
///     .writes(&["orders", "archived_orders"]);
/// assert_eq!(MANIFEST.writes, &["orders", "archived_orders"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manifest {
    /// Unique, stable name: the ledger tracks the migration by it.
    pub name: &'static str,
    /// One line on what the migration does.
    pub description: &'static str,
    /// The migration's own version; `None` takes the crate's version.
    pub version: Option<&'static str>,
    /// Whether `down` undoes `up`; the host refuses `down` otherwise.
    pub reversible: bool,
    /// Tables the migration may read (and not write).
    pub reads: &'static [&'static str],
    /// Tables the migration may read and write.
    pub writes: &'static [&'static str],
    /// Whether it may run DDL (CREATE, ALTER, DROP, TRUNCATE) on tables it
    /// declares in `writes`.
    pub ddl: bool,
    /// Whether it may send statements the host cannot parse, which therefore
    /// cannot be checked against the declared tables, and call functions
    /// the host otherwise refuses (server files, dynamic SQL, session
    /// state, locks, sleeps, signals). Shown loudly by `dmig-host inspect`;
    /// avoid it.
    pub raw_sql: bool,
    /// Functions beyond the built-in pure ones (string, numeric, date/time,
    /// JSON, aggregates, …) that statements may call.
    pub functions: &'static [&'static str],
}

impl Manifest {
    /// A one-way migration that may touch no table until `reads`/`writes`
    /// say so.
    pub const fn new(name: &'static str, description: &'static str) -> Self {
        Manifest {
            name,
            description,
            version: None,
            reversible: false,
            reads: &[],
            writes: &[],
            ddl: false,
            raw_sql: false,
            functions: &[],
        }
    }

    /// Declares that `down` undoes `up`.
    pub const fn reversible(mut self) -> Self {
        self.reversible = true;
        self
    }

    /// Sets the version (default: the crate's `version`).
    pub const fn version(mut self, version: &'static str) -> Self {
        self.version = Some(version);
        self
    }

    /// Tables the migration reads without writing. Names are matched as the
    /// database matches them (PostgreSQL folds unquoted names to lower case,
    /// `"Quoted"` ones stay exact; MySQL compares exactly; SQLite ignores
    /// case); a schema-qualified name (`archive.orders`) matches only
    /// statements that qualify it the same way.
    pub const fn reads(mut self, tables: &'static [&'static str]) -> Self {
        self.reads = tables;
        self
    }

    /// Tables the migration reads and writes (INSERT, UPDATE, DELETE, and
    /// DDL if [`ddl`](Self::ddl) is declared).
    pub const fn writes(mut self, tables: &'static [&'static str]) -> Self {
        self.writes = tables;
        self
    }

    /// Allows DDL on the tables in `writes`.
    pub const fn ddl(mut self) -> Self {
        self.ddl = true;
        self
    }

    /// Allows statements the host cannot parse (and so cannot check), and
    /// the functions it refuses to everyone else.
    pub const fn raw_sql(mut self) -> Self {
        self.raw_sql = true;
        self
    }

    /// Functions statements may call beyond the built-in pure ones: your
    /// own (`slugify`, `billing.net_total`) and extensions'. Names are
    /// matched like table names: an unqualified declaration allows only
    /// unqualified calls.
    ///
    /// ```
    /// use dmig_guest::Manifest;
    /// const MANIFEST: Manifest = Manifest::new("fill-slugs", "Fill slugs with the database's slugify()")
    ///     .writes(&["users"])
    ///     .functions(&["slugify"]);
    /// assert_eq!(MANIFEST.functions, &["slugify"]);
    /// ```
    pub const fn functions(mut self, functions: &'static [&'static str]) -> Self {
        self.functions = functions;
        self
    }
}

/// The manifest's JSON length; with [`encode`], computed at compile time by
/// [`export_migration!`](crate::export_migration).
#[doc(hidden)]
pub const fn encoded_len(manifest: &Manifest, crate_version: &str) -> usize {
    write(manifest, crate_version, &mut [], true)
}

/// The manifest's JSON bytes; `N` must be [`encoded_len`].
#[doc(hidden)]
pub const fn encode<const N: usize>(manifest: &Manifest, crate_version: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let len = write(manifest, crate_version, &mut out, false);
    assert!(len == N, "manifest length changed between passes");
    out
}

/// Writes (or, when `dry`, only measures) the JSON form. `const` code has no
/// traits or closures, so this is one function with a position counter.
const fn write(m: &Manifest, crate_version: &str, out: &mut [u8], dry: bool) -> usize {
    let version = match m.version {
        Some(v) => v,
        None => crate_version,
    };
    let mut at = 0;
    // Format 2 only when it declares functions, so artifacts that do not
    // still run on hosts that read format 1.
    at = raw(
        out,
        at,
        if m.functions.is_empty() {
            "{\"format\":1,\"name\":"
        } else {
            "{\"format\":2,\"name\":"
        },
        dry,
    );
    at = string(out, at, m.name, dry);
    at = raw(out, at, ",\"version\":", dry);
    at = string(out, at, version, dry);
    at = raw(out, at, ",\"description\":", dry);
    at = string(out, at, m.description, dry);
    at = raw(out, at, ",\"reversible\":", dry);
    at = boolean(out, at, m.reversible, dry);
    at = raw(out, at, ",\"wit\":", dry);
    at = string(out, at, WIT_VERSION, dry);
    at = raw(out, at, ",\"capabilities\":{\"reads\":", dry);
    at = list(out, at, m.reads, dry);
    at = raw(out, at, ",\"writes\":", dry);
    at = list(out, at, m.writes, dry);
    at = raw(out, at, ",\"ddl\":", dry);
    at = boolean(out, at, m.ddl, dry);
    at = raw(out, at, ",\"raw_sql\":", dry);
    at = boolean(out, at, m.raw_sql, dry);
    if !m.functions.is_empty() {
        at = raw(out, at, ",\"functions\":", dry);
        at = list(out, at, m.functions, dry);
    }
    raw(out, at, "}}", dry)
}

const fn byte(out: &mut [u8], at: usize, b: u8, dry: bool) -> usize {
    if !dry {
        out[at] = b;
    }
    at + 1
}

const fn raw(out: &mut [u8], mut at: usize, text: &str, dry: bool) -> usize {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        at = byte(out, at, bytes[i], dry);
        i += 1;
    }
    at
}

const fn boolean(out: &mut [u8], at: usize, value: bool, dry: bool) -> usize {
    raw(out, at, if value { "true" } else { "false" }, dry)
}

const fn list(out: &mut [u8], mut at: usize, items: &[&str], dry: bool) -> usize {
    at = byte(out, at, b'[', dry);
    let mut i = 0;
    while i < items.len() {
        if i > 0 {
            at = byte(out, at, b',', dry);
        }
        at = string(out, at, items[i], dry);
        i += 1;
    }
    byte(out, at, b']', dry)
}

/// A JSON string: quotes, backslashes and control characters escaped; other
/// UTF-8 passes through unchanged.
const fn string(out: &mut [u8], mut at: usize, text: &str, dry: bool) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    at = byte(out, at, b'"', dry);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'"' || b == b'\\' {
            at = byte(out, at, b'\\', dry);
            at = byte(out, at, b, dry);
        } else if b < 0x20 {
            at = raw(out, at, "\\u00", dry);
            at = byte(out, at, HEX[(b >> 4) as usize], dry);
            at = byte(out, at, HEX[(b & 0xf) as usize], dry);
        } else {
            at = byte(out, at, b, dry);
        }
        i += 1;
    }
    byte(out, at, b'"', dry)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Manifest = Manifest::new("odd \"name\"", "tab\there\nand é")
        .reversible()
        .reads(&["users", "a\\b"])
        .writes(&["orders"])
        .ddl();
    const LEN: usize = encoded_len(&M, "1.2.3");
    const BYTES: [u8; LEN] = encode::<LEN>(&M, "1.2.3");

    #[test]
    fn encodes_valid_json_at_compile_time() {
        let json = std::str::from_utf8(&BYTES).unwrap();
        assert_eq!(
            json,
            r#"{"format":1,"name":"odd \"name\"","version":"1.2.3","description":"tab\u0009here\u000aand é","reversible":true,"wit":"0.2.0","capabilities":{"reads":["users","a\\b"],"writes":["orders"],"ddl":true,"raw_sql":false}}"#
        );
    }

    #[test]
    fn explicit_version_wins() {
        const V: Manifest = Manifest::new("n", "d").version("9.9.9");
        let len = encoded_len(&V, "0.1.0");
        let json = String::from_utf8(write_vec(&V, len)).unwrap();
        assert!(json.contains(r#""version":"9.9.9""#), "{json}");
        assert!(json.contains(r#""reads":[],"writes":[]"#), "{json}");
        assert!(json.starts_with(r#"{"format":1,"#), "{json}");
    }

    #[test]
    fn functions_need_format_2() {
        const F: Manifest = Manifest::new("n", "d").functions(&["slugify", "billing.total"]);
        let json = String::from_utf8(write_vec(&F, encoded_len(&F, "0.1.0"))).unwrap();
        assert!(json.starts_with(r#"{"format":2,"#), "{json}");
        assert!(
            json.ends_with(r#""raw_sql":false,"functions":["slugify","billing.total"]}}"#),
            "{json}"
        );
    }

    fn write_vec(m: &Manifest, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        assert_eq!(write(m, "0.1.0", &mut out, false), len);
        out
    }
}
