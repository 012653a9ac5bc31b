//! The database privileges a manifest implies, as SQL an operator runs once
//! to create a least-privileged role for dmig (`dmig-host grants`).
//!
//! The SQL gate already confines a migration to its manifest; running dmig
//! as a role that holds only these grants makes the database enforce the same
//! boundary a second time, and bounds what raw SQL and database-side code
//! (views, triggers, functions) can reach.

use std::fmt::Write as _;

use crate::db::{Dialect, quote_identifier};
use crate::manifest::Manifest;
use crate::sql::Name;

/// The host's own tables, which the role must be able to create (first run)
/// and write.
const LEDGER: [&str; 3] = ["dmig_migrations", "dmig_runs", "dmig_locks"];

/// The GRANT statements for `role` to run `manifest` on `dialect`.
/// `database` is the MySQL/MariaDB database (schema) the tables live in.
///
/// # Errors
///
/// A message naming a declared name that does not parse.
pub fn render(
    manifest: &Manifest,
    dialect: Dialect,
    role: &str,
    database: Option<&str>,
) -> Result<String, String> {
    let c = &manifest.capabilities;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- Least privileges for dmig-host to run migration {:?} on {dialect}.",
        manifest.name
    );
    if dialect == Dialect::Sqlite {
        let _ = writeln!(
            out,
            "-- SQLite has no users or privileges: the SQL gate is the only boundary inside the\n\
             -- database. Give the dmig-host process access to this database file and nothing else."
        );
        return Ok(out);
    }
    let quote = |text: &str| -> Result<String, String> {
        let name = Name::parse(dialect, text)?;
        let mut parts: Vec<String> = name
            .parts()
            .iter()
            .map(|p| quote_identifier(dialect, p))
            .collect();
        if dialect == Dialect::Mysql && parts.len() == 1 {
            parts.insert(
                0,
                database.map_or_else(
                    || "`<database>`".to_owned(),
                    |d| quote_identifier(dialect, d),
                ),
            );
        }
        Ok(parts.join("."))
    };
    let grantee = match dialect {
        Dialect::Mysql => format!("'{}'@'%'", role.replace('\'', "''")),
        _ => quote_identifier(dialect, role),
    };
    let ledger: Vec<String> = LEDGER.iter().map(|t| quote(t)).collect::<Result<_, _>>()?;
    let _ = writeln!(
        out,
        "-- dmig-host's ledger (the first run creates these tables; or create them as"
    );
    let _ = writeln!(out, "-- their owner with one run, then grant):");
    match dialect {
        Dialect::Postgres => {
            let _ = writeln!(out, "GRANT USAGE, CREATE ON SCHEMA public TO {grantee};");
        }
        _ => {
            let db = database.map_or_else(
                || "`<database>`".to_owned(),
                |d| quote_identifier(dialect, d),
            );
            let _ = writeln!(out, "GRANT CREATE ON {db}.* TO {grantee};");
        }
    }
    for table in &ledger {
        let _ = writeln!(
            out,
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {grantee};"
        );
    }
    let _ = writeln!(out, "-- What the manifest declares:");
    for table in &c.reads {
        let _ = writeln!(out, "GRANT SELECT ON {} TO {grantee};", quote(table)?);
    }
    for table in &c.writes {
        let privileges = if c.ddl {
            match dialect {
                Dialect::Mysql => "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX",
                _ => "SELECT, INSERT, UPDATE, DELETE, TRUNCATE",
            }
        } else {
            "SELECT, INSERT, UPDATE, DELETE"
        };
        let _ = writeln!(out, "GRANT {privileges} ON {} TO {grantee};", quote(table)?);
    }
    if c.ddl && dialect == Dialect::Postgres && !c.writes.is_empty() {
        let _ = writeln!(
            out,
            "-- DDL (.ddl()): PostgreSQL lets only a table's owner ALTER or DROP it; make the role the\n\
             -- owner of the tables in writes (ALTER TABLE … OWNER TO {grantee}) or run DDL migrations\n\
             -- as the owner."
        );
    }
    for function in &c.functions {
        let _ = writeln!(
            out,
            "GRANT EXECUTE ON FUNCTION {} TO {grantee};",
            quote(function)?
        );
    }
    if c.raw_sql {
        let _ = writeln!(
            out,
            "-- The artifact declares raw SQL: the gate does not bound what its statements touch, so\n\
             -- these grants are the boundary. Grant nothing more."
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Capabilities, Manifest};

    fn manifest() -> Manifest {
        Manifest {
            format: 2,
            name: "fill".into(),
            version: "1.0.0".into(),
            description: "d".into(),
            reversible: false,
            wit: "0.2.0".into(),
            capabilities: Capabilities {
                reads: vec!["users".into(), "\"Audit\".log".into()],
                writes: vec!["notes".into()],
                ddl: false,
                raw_sql: false,
                functions: vec!["slugify".into()],
            },
        }
    }

    #[test]
    fn renders_per_database() {
        let pg = render(&manifest(), Dialect::Postgres, "dmig", None).unwrap();
        assert!(
            pg.contains("GRANT SELECT ON \"users\" TO \"dmig\";"),
            "{pg}"
        );
        assert!(
            pg.contains("GRANT SELECT ON \"Audit\".\"log\" TO \"dmig\";"),
            "{pg}"
        );
        assert!(
            pg.contains("GRANT SELECT, INSERT, UPDATE, DELETE ON \"notes\" TO \"dmig\";"),
            "{pg}"
        );
        assert!(
            pg.contains("GRANT EXECUTE ON FUNCTION \"slugify\" TO \"dmig\";"),
            "{pg}"
        );
        assert!(pg.contains("ON \"dmig_runs\" TO"), "{pg}");
        let my = render(&manifest(), Dialect::Mysql, "dmig", Some("app")).unwrap();
        assert!(
            my.contains("GRANT SELECT ON `app`.`users` TO 'dmig'@'%';"),
            "{my}"
        );
        assert!(
            my.contains("GRANT CREATE ON `app`.* TO 'dmig'@'%';"),
            "{my}"
        );
        let lite = render(&manifest(), Dialect::Sqlite, "dmig", None).unwrap();
        assert!(lite.contains("no users or privileges"), "{lite}");
    }
}
