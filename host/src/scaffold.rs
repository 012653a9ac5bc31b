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

use heck::{ToKebabCase, ToSnakeCase};

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
    /// The dmig checkout the crate depends on by path, under any `defines`;
    /// `None` takes the template's defaults (the released crates).
    pub checkout: Option<PathBuf>,
}

impl NewMigration {
    /// A migration named `name` in `dir`, stamped with the current time,
    /// depending on [`built_from_checkout`] when there is one: a crate that
    /// builds on the first try against the very SDK and host this binary is.
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        NewMigration {
            name: name.into(),
            dir: dir.into(),
            defines: Vec::new(),
            now: chrono::Utc::now(),
            checkout: built_from_checkout(),
        }
    }

    /// Points the crate's `dmig-guest` and `dmig-host` dependencies at a dmig
    /// checkout (its `guest-sdk/` and `host/`).
    pub fn dmig_path(&mut self, checkout: &Path) -> &mut Self {
        self.checkout = Some(checkout.to_path_buf());
        self
    }

    /// Takes the template's defaults, the released crates, even when this
    /// binary was built from a checkout.
    pub fn released(&mut self) -> &mut Self {
        self.checkout = None;
        self
    }

    /// The placeholder values: the checkout's paths, then `defines` over them.
    fn values(&self) -> Vec<(String, String)> {
        let mut values = Vec::new();
        if let Some(checkout) = &self.checkout {
            let toml_path = |sub: &str| format!("{:?}", checkout.join(sub).display().to_string());
            values.push((
                "dmig_guest".into(),
                format!("{{ path = {} }}", toml_path("guest-sdk")),
            ));
            values.push((
                "dmig_host".into(),
                format!(
                    "{{ path = {}, features = [\"harness\"] }}",
                    toml_path("host")
                ),
            ));
        }
        values.extend(self.defines.iter().cloned());
        values
    }

    /// Every placeholder's value as the crate will be rendered: the
    /// template's defaults under [`NewMigration::checkout`] and `defines`.
    /// `new` prints the two dependency specs, which decide whether it builds.
    ///
    /// # Errors
    ///
    /// [`Error::BadDefine`] for a placeholder the template does not declare.
    pub fn placeholders(&self) -> Result<BTreeMap<String, String>> {
        placeholder_values(&self.values())
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
        let files = render(&self.name, &self.values())?;
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

/// The dmig checkout this binary was compiled from, if it is still on disk:
/// `dmig-host` installed with `cargo install --path host` from a checkout.
/// A binary built from a published crate has no `guest-sdk/` beside its
/// source, so it gets `None` and the template's released versions.
pub fn built_from_checkout() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let is_checkout = ["guest-sdk/Cargo.toml", "host/Cargo.toml", "wit"]
        .iter()
        .all(|p| root.join(p).exists());
    is_checkout.then(|| root.canonicalize().unwrap_or_else(|_| root.to_path_buf()))
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
/// text. `project-name` and `crate_name` are derived as cargo-generate
/// derives them (see [`project_name`]), so both tools render the same crate.
///
/// # Errors
///
/// [`Error::BadMigrationName`], [`Error::BadDefine`] for a placeholder the
/// template does not declare.
pub fn render(name: &str, defines: &[(String, String)]) -> Result<Vec<(PathBuf, String)>> {
    check_name(name)?;
    let mut vars = placeholder_values(defines)?;
    vars.insert("project-name".into(), project_name(name));
    vars.insert("crate_name".into(), name.to_snake_case());
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

/// The crate's (and the migration's) name for `name`, as cargo-generate
/// derives `project-name` without `--force`: a snake_case name as given,
/// anything else in kebab case (`backfill_user_slugs` stays, `fix-v2_users`
/// becomes `fix-v2-users`).
pub fn project_name(name: &str) -> String {
    if name.to_snake_case() == name {
        name.to_owned()
    } else {
        name.to_kebab_case()
    }
}

/// The declared placeholders with `defines` (later ones win) over their
/// defaults.
fn placeholder_values(defines: &[(String, String)]) -> Result<BTreeMap<String, String>> {
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
    Ok(vars)
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
            manifest.contains("name = \"backfill_user_slugs\""),
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
    fn depends_on_the_checkout_it_was_built_from_unless_told_otherwise() {
        let checkout = built_from_checkout().expect("these tests run in a checkout");
        assert!(checkout.join("guest-sdk/Cargo.toml").exists());
        let value = |new: &NewMigration, key: &str| new.placeholders().unwrap()[key].clone();
        let mut new = NewMigration::new("x", "/nowhere");
        let guest = format!(
            "{{ path = {:?} }}",
            checkout.join("guest-sdk").display().to_string()
        );
        assert_eq!(value(&new, "dmig_guest"), guest);
        assert!(value(&new, "dmig_host").contains("features = [\"harness\"]"));

        new.defines.push(("dmig_guest".into(), "\"9\"".into()));
        assert_eq!(value(&new, "dmig_guest"), "\"9\"");

        new.released();
        assert_eq!(
            value(&new, "dmig_host"),
            "{ version = \"0.1\", features = [\"harness\"] }",
            "the template's default applies"
        );
        new.dmig_path(Path::new("/src/dmig"));
        assert_eq!(
            value(&new, "dmig_host"),
            "{ path = \"/src/dmig/host\", features = [\"harness\"] }"
        );
    }

    #[test]
    fn project_names_follow_cargo_generate() {
        for (given, project) in [
            ("backfill_user_slugs", "backfill_user_slugs"),
            ("backfill-user-slugs", "backfill-user-slugs"),
            ("fix-v2_users", "fix-v2-users"),
            ("users2", "users2"),
        ] {
            assert_eq!(project_name(given), project, "{given}");
        }
        let files = render("fix-v2_users", &[]).unwrap();
        let manifest = &files
            .iter()
            .find(|(p, _)| p == Path::new("Cargo.toml"))
            .unwrap()
            .1;
        assert!(manifest.contains("name = \"fix-v2-users\""), "{manifest}");
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
