//! `dmig-host new`: a new migration crate rendered from the template in
//! `templates/migration/`, the same source `cargo generate --path
//! templates/migration` uses, so both ways produce the same crate.
//!
//! The template is compiled into the binary, so `new` works wherever
//! `dmig-host` is installed. It is rendered with the subset of Liquid the
//! template uses: `{{ name }}` substitutions of `project-name`, `crate_name`
//! and the placeholders declared in its `cargo-generate.toml`, whose defaults
//! apply unless `--define` overrides them. Anything else in `{{ }}` or any
//! `{% %}` tag is a bug in the template, reported as such.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The template's files, relative to `templates/migration/`. A test checks
/// that this list is the whole directory.
pub const TEMPLATE_FILES: &[(&str, &str)] = &[
    (
        "cargo-generate.toml",
        include_str!("../../templates/migration/cargo-generate.toml"),
    ),
    (
        "Cargo.toml",
        include_str!("../../templates/migration/Cargo.toml"),
    ),
    (
        ".gitignore",
        include_str!("../../templates/migration/.gitignore"),
    ),
    (
        "README.md",
        include_str!("../../templates/migration/README.md"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/migration/src/lib.rs"),
    ),
    (
        "tests/migration.rs",
        include_str!("../../templates/migration/tests/migration.rs"),
    ),
];

/// The template's configuration file: cargo-generate reads it and leaves it
/// out of the output; so does `new`.
const CONFIG: &str = "cargo-generate.toml";

/// What `dmig-host new` creates.
#[derive(Debug, Clone)]
pub struct NewMigration {
    /// The migration's name as given: lowercase letters, digits, `-`, `_`.
    pub name: String,
    /// The directory the migration's own directory goes in.
    pub dir: PathBuf,
    /// Placeholder values (`--define KEY=VALUE`), over the template's defaults.
    pub defines: Vec<(String, String)>,
    /// The UTC time that prefixes the directory name.
    pub now: chrono::DateTime<chrono::Utc>,
}

impl NewMigration {
    /// A migration named `name` in `dir`, stamped with the current time.
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        NewMigration {
            name: name.into(),
            dir: dir.into(),
            defines: Vec::new(),
            now: chrono::Utc::now(),
        }
    }

    /// Points the crate's `dmig-guest` and `dmig-host` dependencies at a dmig
    /// checkout (its `guest-sdk/` and `host/`) instead of released versions.
    pub fn dmig_path(&mut self, checkout: &Path) -> &mut Self {
        let toml_path = |sub: &str| {
            let path = checkout.join(sub).display().to_string();
            format!("{:?}", path)
        };
        self.defines.push((
            "dmig_guest".into(),
            format!("{{ path = {} }}", toml_path("guest-sdk")),
        ));
        self.defines.push((
            "dmig_host".into(),
            format!(
                "{{ path = {}, features = [\"harness\"] }}",
                toml_path("host")
            ),
        ));
        self
    }

    /// The directory the crate goes into: `<dir>/<YYYYMMDDHHMMSS>_<name>`.
    pub fn target(&self) -> PathBuf {
        self.dir
            .join(format!("{}_{}", self.now.format("%Y%m%d%H%M%S"), self.name))
    }

    /// Renders the template and writes it to [`NewMigration::target`];
    /// returns that directory. Nothing is left behind on failure.
    ///
    /// # Errors
    ///
    /// [`Error::BadMigrationName`], [`Error::BadDefine`],
    /// [`Error::ScaffoldExists`] (never overwrites), [`Error::ScaffoldWrite`].
    pub fn create(&self) -> Result<PathBuf> {
        let files = render(&self.name, &self.defines)?;
        let target = self.target();
        if target.exists() {
            return Err(Error::ScaffoldExists { path: target });
        }
        let write = |path: &Path, source: std::io::Error| Error::ScaffoldWrite {
            path: path.to_path_buf(),
            source,
        };
        // Create the parents first, then the target itself, so a failure
        // removes exactly what this call made.
        std::fs::create_dir_all(&self.dir).map_err(|e| write(&self.dir, e))?;
        std::fs::create_dir(&target).map_err(|e| write(&target, e))?;
        let written = files.iter().try_for_each(|(relative, text)| {
            let path = target.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| write(parent, e))?;
            }
            std::fs::write(&path, text).map_err(|e| write(&path, e))
        });
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&target);
            return Err(e);
        }
        Ok(target)
    }
}

/// Checks a migration name: it becomes a directory, a crate name and the
/// ledger's name for the migration.
///
/// # Errors
///
/// [`Error::BadMigrationName`] saying what is wrong.
pub fn check_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::BadMigrationName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    match name.chars().next() {
        None => return bad("it is empty"),
        Some(c) if !c.is_ascii_lowercase() => return bad("it must start with a lowercase letter"),
        _ => {}
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return bad(&format!("it contains {c:?}"));
    }
    if name.len() > 64 {
        return bad("it is longer than 64 characters");
    }
    Ok(())
}

/// The template rendered for `name`: each output file's relative path and
/// text. `project-name` is `name` in kebab case and `crate_name` in snake
/// case, as cargo-generate derives them.
///
/// # Errors
///
/// [`Error::BadMigrationName`], [`Error::BadDefine`] for a placeholder the
/// template does not declare.
pub fn render(name: &str, defines: &[(String, String)]) -> Result<Vec<(PathBuf, String)>> {
    check_name(name)?;
    let mut vars = placeholders()?;
    for (key, value) in defines {
        if !vars.contains_key(key) {
            return Err(Error::BadDefine {
                key: key.clone(),
                known: vars.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        vars.insert(key.clone(), value.clone());
    }
    vars.insert("project-name".into(), name.replace('_', "-"));
    vars.insert("crate_name".into(), name.replace('-', "_"));
    TEMPLATE_FILES
        .iter()
        .filter(|(path, _)| *path != CONFIG)
        .map(|(path, text)| {
            let text = substitute(text, &vars).map_err(|reason| Error::Template {
                file: (*path).to_owned(),
                reason,
            })?;
            Ok((PathBuf::from(path), text))
        })
        .collect()
}

/// The placeholders `cargo-generate.toml` declares, with their defaults.
fn placeholders() -> Result<BTreeMap<String, String>> {
    let config = TEMPLATE_FILES
        .iter()
        .find(|(path, _)| *path == CONFIG)
        .map(|(_, text)| *text)
        .unwrap_or_default();
    let bad = |reason: String| Error::Template {
        file: CONFIG.to_owned(),
        reason,
    };
    let table: toml::Table = config.parse().map_err(|e| bad(format!("{e}")))?;
    let mut vars = BTreeMap::new();
    if let Some(placeholders) = table.get("placeholders").and_then(|p| p.as_table()) {
        for (key, spec) in placeholders {
            let default = spec
                .get("default")
                .and_then(|d| d.as_str())
                .ok_or_else(|| bad(format!("placeholder {key} has no string default")))?;
            vars.insert(key.clone(), default.to_owned());
        }
    }
    Ok(vars)
}

/// Replaces every `{{ var }}` in `text`; refuses Liquid it does not support.
fn substitute(text: &str, vars: &BTreeMap<String, String>) -> std::result::Result<String, String> {
    if text.contains("{%") {
        return Err("uses a Liquid tag ({% %}), which dmig-host new does not render".into());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or("has a {{ without a matching }}")?;
        let var = after[..close].trim();
        let value = vars.get(var).ok_or_else(|| {
            format!("uses {{{{ {var} }}}}, which is neither a built-in nor a declared placeholder")
        })?;
        out.push_str(value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_list_is_the_whole_template() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/migration");
        let mut on_disk = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if path.file_name().unwrap() != "target" {
                        dirs.push(path);
                    }
                } else {
                    on_disk.push(path.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        on_disk.sort();
        let mut listed: Vec<_> = TEMPLATE_FILES.iter().map(|(p, _)| p.to_string()).collect();
        listed.sort();
        assert_eq!(
            on_disk, listed,
            "list every template file in TEMPLATE_FILES"
        );
    }

    #[test]
    fn renders_names_and_placeholders() {
        let files = render(
            "backfill_user_slugs",
            &[("dmig_guest".into(), "{ path = \"/x\" }".into())],
        )
        .unwrap();
        let file = |name: &str| {
            files
                .iter()
                .find(|(p, _)| p == Path::new(name))
                .map(|(_, t)| t.as_str())
                .unwrap()
        };
        assert!(files.iter().all(|(p, _)| p != Path::new(CONFIG)));
        let manifest = file("Cargo.toml");
        assert!(
            manifest.contains("name = \"backfill-user-slugs\""),
            "{manifest}"
        );
        assert!(
            manifest.contains("dmig-guest = { path = \"/x\" }"),
            "{manifest}"
        );
        assert!(
            manifest.contains("dmig-host = { version = \"0.1\", features = [\"harness\"] }"),
            "{manifest}"
        );
        assert!(file("README.md").contains("release/backfill_user_slugs.wasm"));
        assert!(files.iter().all(|(_, t)| !t.contains("{{")));
    }

    #[test]
    fn bad_names_and_defines_are_refused() {
        for (name, reason) in [
            ("", "it is empty"),
            ("1x", "it must start with a lowercase letter"),
            ("Backfill", "it must start with a lowercase letter"),
            ("a b", "it contains ' '"),
            ("a/b", "it contains '/'"),
        ] {
            match check_name(name) {
                Err(Error::BadMigrationName { reason: r, .. }) => assert_eq!(r, reason, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        let error = render("x", &[("nope".into(), "1".into())]).unwrap_err();
        assert!(matches!(error, Error::BadDefine { .. }), "{error}");
    }

    #[test]
    fn unsupported_liquid_is_a_template_error() {
        let vars = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        assert_eq!(substitute("x{{ a }}y{{a}}", &vars).unwrap(), "x1y1");
        assert!(substitute("{{ b }}", &vars).is_err());
        assert!(substitute("{{ a", &vars).is_err());
        assert!(substitute("{% if a %}", &vars).is_err());
    }
}
