//! PostgreSQL: what the server's catalog says about a field selection.
//!
//! PostgreSQL reads `t.f` as column `f` of the table `t` names when `t`
//! has one, and otherwise as a call of a function `f` on `t`'s whole row
//! ("functional notation"); `(expr).f` likewise calls `f(expr)` when `expr`
//! has no field `f`, whatever `expr`'s type. So
//! `SELECT ('/etc/hostname'::text).pg_read_file` calls `pg_read_file` with no
//! call in the parse tree. Which one the server means depends on the
//! catalog, not on the text, so the gate asks the catalog: the names of the
//! functions that can be called with one argument, and the columns that
//! share such a name. A field selection whose name is no such function is a
//! field; one whose name is a function the manifest would let the statement
//! call is harmless either way; any other must be a column of a table the
//! statement names, or the statement is refused.

use std::collections::{HashMap, HashSet};

/// The query for [`Catalog::from_rows`], as `(kind, schema, table, name)`:
/// kind `f` names a function that can be called with one argument; kind `p`
/// a schema of the search path (`name` its position); kind `c` a relation
/// (table, view, foreign table) with one of its columns whose name is such
/// a function's, or with `name` NULL, listed for every relation of a schema
/// on the search path. System columns (`xmin`, `ctid`…) count as columns.
pub const POSTGRES_QUERY: &str = "\
SELECT 'f' AS kind, NULL::text AS schema_name, NULL::text AS table_name, proname::text AS name \
FROM (SELECT DISTINCT proname FROM pg_catalog.pg_proc WHERE pronargs >= 1) p \
UNION ALL \
SELECT 'p', s::text, NULL, i::text FROM unnest(pg_catalog.current_schemas(true)) WITH ORDINALITY AS u(s, i) \
UNION ALL \
SELECT 'c', n.nspname::text, c.relname::text, a.attname::text \
FROM pg_catalog.pg_class c \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum <> 0 AND NOT a.attisdropped \
AND a.attname IN (SELECT proname FROM pg_catalog.pg_proc WHERE pronargs >= 1) \
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
AND (n.nspname = ANY (pg_catalog.current_schemas(true)) OR a.attname IS NOT NULL)";

/// Function names a field selection can call, and the columns that share
/// them (all names as stored: PostgreSQL has folded unquoted ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    functions: HashSet<String>,
    /// The search path, in order.
    path: Vec<String>,
    /// Each relation of the search path's schemas, and each relation
    /// elsewhere with such a column: its columns named like a function.
    relations: HashMap<(String, String), HashSet<String>>,
}

/// One row of [`POSTGRES_QUERY`].
pub type CatalogRow = (String, Option<String>, Option<String>, Option<String>);

impl Catalog {
    /// A catalog from the rows of [`POSTGRES_QUERY`]; rows of other kinds
    /// are ignored.
    pub fn from_rows<I>(rows: I) -> Self
    where
        I: IntoIterator<Item = CatalogRow>,
    {
        let mut catalog = Catalog::default();
        let mut path = Vec::new();
        for (kind, schema, table, name) in rows {
            match (kind.as_str(), schema, table, name) {
                ("f", _, _, Some(name)) => {
                    catalog.functions.insert(name);
                }
                ("p", Some(schema), _, Some(position)) => {
                    path.push((position.parse::<u64>().unwrap_or(u64::MAX), schema));
                }
                ("c", Some(schema), Some(table), name) => {
                    let columns = catalog.relations.entry((schema, table)).or_default();
                    columns.extend(name);
                }
                _ => {}
            }
        }
        path.sort();
        catalog.path = path.into_iter().map(|(_, s)| s).collect();
        catalog
    }

    /// Whether a field selection named `field` can call a function.
    pub(super) fn is_function(&self, field: &str) -> bool {
        self.functions.contains(field)
    }

    /// Whether `field` is a column of the relation `parts` names (`[table]`,
    /// `[schema, table]`, or with a database in front). An unqualified name
    /// is the first relation of that name on the search path, as the
    /// server resolves it (the guest cannot change the path).
    pub(super) fn has_column(&self, parts: &[String], field: &str) -> bool {
        let columns = match parts {
            [.., schema, table] => self.relations.get(&(schema.clone(), table.clone())),
            [table] => self
                .path
                .iter()
                .find_map(|schema| self.relations.get(&(schema.clone(), table.clone()))),
            [] => None,
        };
        columns.is_some_and(|c| c.contains(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        kind: &str,
        schema: Option<&str>,
        table: Option<&str>,
        name: Option<&str>,
    ) -> CatalogRow {
        (
            kind.into(),
            schema.map(Into::into),
            table.map(Into::into),
            name.map(Into::into),
        )
    }

    #[test]
    fn columns_answer_per_relation_on_the_search_path() {
        let catalog = Catalog::from_rows([
            row("f", None, None, Some("width")),
            row("p", Some("public"), None, Some("2")),
            row("p", Some("pg_catalog"), None, Some("1")),
            row("c", Some("public"), Some("boxes"), Some("width")),
            row("c", Some("public"), Some("crates"), None),
            row("c", Some("other"), Some("crates"), Some("width")),
            row("c", Some("other"), Some("boxes"), Some("height")),
        ]);
        assert!(catalog.is_function("width"));
        assert!(!catalog.is_function("email"));
        let parts = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(catalog.has_column(&parts(&["public", "boxes"]), "width"));
        assert!(catalog.has_column(&parts(&["boxes"]), "width"));
        assert!(catalog.has_column(&parts(&["db", "other", "crates"]), "width"));
        assert!(!catalog.has_column(&parts(&["other", "boxes"]), "width"));
        // Unqualified `crates` is public.crates (first on the path), which
        // has no such column, although other.crates has.
        assert!(!catalog.has_column(&parts(&["crates"]), "width"));
        assert!(!catalog.has_column(&parts(&["nowhere"]), "width"));
        assert!(!catalog.has_column(&[], "width"));
    }

    /// A gate for a migration reading `users` and writing `notes`, over a
    /// catalog where `width`, `record_send`, `pg_read_file` and `full_name`
    /// are functions, `users` has a column `width` and `notes` a column
    /// `full_name`.
    fn gate(functions: &[&str]) -> crate::sql::Gate {
        let capabilities = crate::manifest::Capabilities {
            reads: vec!["users".into(), "public.users".into()],
            writes: vec!["notes".into()],
            ddl: false,
            raw_sql: false,
            functions: functions.iter().map(|f| f.to_string()).collect(),
        };
        let catalog = Catalog::from_rows([
            row("f", None, None, Some("width")),
            row("f", None, None, Some("record_send")),
            row("f", None, None, Some("pg_read_file")),
            row("f", None, None, Some("full_name")),
            row("f", None, None, Some("lower")),
            row("p", Some("pg_catalog"), None, Some("1")),
            row("p", Some("public"), None, Some("2")),
            row("c", Some("public"), Some("users"), Some("width")),
            row("c", Some("public"), Some("notes"), Some("full_name")),
        ]);
        crate::sql::Gate::new(
            crate::sql::Syntax::of(crate::sql::Dialect::Postgres),
            Some(&capabilities),
        )
        .unwrap()
        .with_catalog(catalog)
    }

    #[test]
    fn a_field_that_may_be_a_call_must_be_a_column_of_its_table() {
        let refused = |gate: &crate::sql::Gate, sql: &str| match gate.admit(sql) {
            Err(refusal) => matches!(refusal.reason, crate::sql::Reason::FieldCall(..)),
            Ok(_) => false,
        };
        let g = gate(&[]);
        for sql in [
            "SELECT ('/etc/hostname'::text).pg_read_file",
            "SELECT u.record_send FROM users u",
            "SELECT users.record_send FROM users",
            "SELECT public.users.record_send FROM public.users",
            // `full_name` is a column of notes, not of users: on `u` it is
            // a call of full_name(users).
            "SELECT u.full_name FROM users u JOIN notes n ON true",
            // Two items named `x`: one of them lacks the column.
            "SELECT (SELECT x.full_name FROM notes x) FROM users x",
            // A function's columns are not known.
            "SELECT g.width FROM generate_series(1, 2) g",
            // An alias's column list renames the table's columns.
            "SELECT x.width FROM users AS x(a, b)",
            // A join's USING alias, and a decoy of the same name.
            "SELECT j.width FROM users JOIN notes USING (id) AS j WHERE NOT EXISTS (SELECT 1 FROM users j)",
            // A subquery whose output is renamed.
            "SELECT s.width FROM (SELECT width FROM users) AS s(w)",
            "SELECT generate_series.width FROM generate_series(1, 2)",
            "INSERT INTO notes (full_name) SELECT 'a' ON CONFLICT (id) DO UPDATE SET full_name = excluded.record_send",
            "UPDATE notes n SET full_name = 'x' WHERE (n).record_send IS NULL",
        ] {
            assert!(refused(&g, sql), "{sql}");
        }
        for sql in [
            "SELECT u.width, u.email, users_width FROM users u",
            "SELECT users.width FROM users",
            "SELECT public.users.width FROM public.users",
            "SELECT n.full_name FROM notes n",
            "SELECT u.lower FROM users u",
            "SELECT s.email FROM (SELECT email FROM users) s",
            "SELECT s.width FROM (SELECT width FROM users) s",
            "SELECT s.width FROM (SELECT u.id AS width FROM users u) s",
            "WITH latest AS (SELECT id, width FROM users) SELECT l.width FROM latest l",
            "WITH latest (width) AS (SELECT id FROM users) SELECT l.width FROM latest l",
            "SELECT v.width FROM (VALUES (1, 2)) AS v(id, width)",
            "SELECT x.width FROM jsonb_to_recordset('[]') AS x(id int, width int)",
            "UPDATE notes n SET full_name = 'x' WHERE n.full_name = 'y'",
            "SELECT x.a FROM users AS x(a, b)",
            "INSERT INTO notes (full_name) SELECT 'a' ON CONFLICT (id) DO UPDATE SET full_name = excluded.full_name",
        ] {
            assert!(g.admit(sql).is_ok(), "{sql}: {:?}", g.admit(sql));
        }
        // In DDL the statement may change the table it names.
        let mut ddl = gate(&[]);
        ddl = {
            let capabilities = crate::manifest::Capabilities {
                reads: vec!["users".into()],
                writes: vec!["notes".into()],
                ddl: true,
                raw_sql: false,
                functions: vec![],
            };
            crate::sql::Gate::new(
                crate::sql::Syntax::of(crate::sql::Dialect::Postgres),
                Some(&capabilities),
            )
            .unwrap()
            .with_catalog((*ddl.catalog).clone())
        };
        assert!(refused(
            &ddl,
            "ALTER TABLE notes DROP COLUMN full_name, ADD CONSTRAINT c CHECK (notes.full_name IS NOT NULL)"
        ));
        assert!(ddl.admit("ALTER TABLE notes ADD COLUMN body text").is_ok());
        // Declared, the function may be called either way.
        let g = gate(&["record_send"]);
        assert!(g.admit("SELECT u.record_send FROM users u").is_ok());
        // A dangerous function stays refused (by the field check here).
        let g = gate(&["pg_read_file"]);
        assert!(refused(&g, "SELECT ('/etc/hostname'::text).pg_read_file"));
    }
}
