//! Enforcing an artifact's declared capabilities: every statement the guest
//! sends is parsed (sqlparser, in the target database's dialect) and refused
//! if it touches a table outside the declared sets, writes a table declared
//! read-only, runs DDL without the DDL capability, or cannot be parsed and the
//! artifact did not declare raw SQL.
//!
//! The rules are conservative where SQL is ambiguous: every table an UPDATE
//! joins in its target list counts as written (MySQL's multi-table UPDATE can
//! write any of them), and every table named by a DDL statement other than
//! CREATE TABLE/INDEX counts as written. A common table expression's name is
//! not a table when read, but a write target is always the real table.
//! The `dmig_` ledger tables are refused to every migration.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FromTable, ObjectName, ObjectNamePart, Query, Select, SelectInto, Statement, TableObject,
    Visit, Visitor,
};
use sqlparser::dialect::{Dialect as SqlDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::db::Dialect;
use crate::manifest::{Capabilities, is_ledger_table};

/// A manifest's capabilities, ready to check statements against.
#[derive(Debug, Clone)]
pub struct CapabilityCheck {
    reads: HashSet<TableName>,
    writes: HashSet<TableName>,
    ddl: bool,
    raw_sql: bool,
}

/// A table name as compared: its dot-separated parts, ASCII-lowercased and
/// unquoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TableName(Vec<String>);

impl TableName {
    fn declared(text: &str) -> Self {
        TableName(
            text.split('.')
                .map(|p| {
                    p.trim()
                        .trim_matches(['"', '`', '[', ']'])
                        .to_ascii_lowercase()
                })
                .collect(),
        )
    }

    fn of(name: &ObjectName) -> Self {
        TableName(
            name.0
                .iter()
                .map(|part| match part {
                    ObjectNamePart::Identifier(ident) => ident.value.to_ascii_lowercase(),
                    other => other.to_string().to_ascii_lowercase(),
                })
                .collect(),
        )
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// A statement refused for lack of a capability; its `Display` is the
/// operator's one-line explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The start of the statement, on one line.
    pub statement: String,
    /// What the artifact would have to declare.
    pub missing: Missing,
}

/// The capability a refused statement lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Missing {
    /// It reads a table declared in neither `reads` nor `writes`.
    Read(String),
    /// It writes a table not declared in `writes`.
    Write(String),
    /// It is DDL and the artifact does not declare `ddl`.
    Ddl(String),
    /// It cannot be parsed and the artifact does not declare `raw_sql`.
    Unparseable(String),
    /// A kind of statement whose effects cannot be checked (CALL, GRANT, …)
    /// and the artifact does not declare `raw_sql`.
    Unchecked(String),
    /// It touches one of the host's ledger tables.
    Ledger(String),
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let statement = &self.statement;
        match &self.missing {
            Missing::Read(table) => write!(
                f,
                "statement `{statement}` reads table {table}, which the artifact does not declare (add it to the manifest's reads and have the change reviewed)"
            ),
            Missing::Write(table) => write!(
                f,
                "statement `{statement}` writes table {table}, which the artifact does not declare in writes (add it to the manifest's writes and have the change reviewed)"
            ),
            Missing::Ddl(kind) => write!(
                f,
                "statement `{statement}` is DDL ({kind}), which the artifact does not declare (add .ddl() to the manifest and have the change reviewed)"
            ),
            Missing::Unparseable(error) => write!(
                f,
                "statement `{statement}` cannot be parsed, so its tables cannot be checked ({error}); rewrite it in plain SQL, or declare .raw_sql() in the manifest"
            ),
            Missing::Unchecked(kind) => write!(
                f,
                "statement `{statement}` is a {kind} statement, whose effects cannot be checked against the declared tables; declare .raw_sql() in the manifest to allow it"
            ),
            Missing::Ledger(table) => write!(
                f,
                "statement `{statement}` touches {table}; the dmig_ ledger tables belong to the host and no migration may use them"
            ),
        }
    }
}

impl CapabilityCheck {
    /// A check of `capabilities`.
    pub fn new(capabilities: &Capabilities) -> Self {
        CapabilityCheck {
            reads: capabilities
                .reads
                .iter()
                .map(|t| TableName::declared(t))
                .collect(),
            writes: capabilities
                .writes
                .iter()
                .map(|t| TableName::declared(t))
                .collect(),
            ddl: capabilities.ddl,
            raw_sql: capabilities.raw_sql,
        }
    }

    /// Checks one statement (the SQL policy has already made sure it is one).
    ///
    /// # Errors
    ///
    /// The first [`Violation`] found.
    pub fn check(&self, dialect: Dialect, sql: &str) -> Result<(), Violation> {
        let violation = |missing| Violation {
            statement: excerpt(sql),
            missing,
        };
        let sql_dialect: &dyn SqlDialect = match dialect {
            Dialect::Sqlite => &SQLiteDialect {},
            Dialect::Postgres => &PostgreSqlDialect {},
            Dialect::Mysql => &MySqlDialect {},
        };
        // PostgreSQL's tokenizer reads `?` as a JSON operator: parse the text
        // as the driver will send it, with `$n` placeholders.
        let numbered;
        let parsed_sql = if dialect == Dialect::Postgres {
            numbered = crate::db::numbered_placeholders(sql);
            numbered.as_str()
        } else {
            sql
        };
        let statements = match Parser::parse_sql(sql_dialect, parsed_sql) {
            Ok(statements) => statements,
            Err(_) if self.raw_sql => return Ok(()),
            Err(e) => return Err(violation(Missing::Unparseable(parse_error(&e)))),
        };
        for statement in &statements {
            let access = Access::of(statement);
            if let Some(table) = access
                .writes
                .iter()
                .chain(&access.reads)
                .find(|t| is_ledger_table(&t.to_string()))
            {
                return Err(violation(Missing::Ledger(table.to_string())));
            }
            let Some(kind) = access.kind else {
                if self.raw_sql {
                    // Unknown effects: every table it names must be writable.
                    if let Some(t) = access.reads.iter().find(|t| !self.writes.contains(*t)) {
                        return Err(violation(Missing::Write(t.to_string())));
                    }
                    continue;
                }
                return Err(violation(Missing::Unchecked(statement_kind(statement))));
            };
            if access.ddl && !self.ddl {
                return Err(violation(Missing::Ddl(kind.to_owned())));
            }
            if let Some(t) = access.writes.iter().find(|t| !self.writes.contains(*t)) {
                return Err(violation(Missing::Write(t.to_string())));
            }
            if let Some(t) = access
                .reads
                .iter()
                .filter(|t| !access.ctes.contains(*t))
                .find(|t| !self.reads.contains(*t) && !self.writes.contains(*t))
            {
                return Err(violation(Missing::Read(t.to_string())));
            }
        }
        Ok(())
    }
}

/// What one statement touches.
#[derive(Debug, Default)]
struct Access {
    /// A name for the statement's kind if its effects are understood.
    kind: Option<&'static str>,
    ddl: bool,
    writes: Vec<TableName>,
    /// Every other table it names.
    reads: Vec<TableName>,
    /// Names of common table expressions, which are not tables when read.
    ctes: HashSet<TableName>,
}

impl Access {
    fn of(statement: &Statement) -> Self {
        let all = Relations::of(statement);
        let mut access = Access {
            ctes: all.ctes.clone(),
            ..Access::default()
        };
        let (kind, ddl, writes): (Option<&'static str>, bool, Vec<TableName>) = match statement {
            Statement::Query(_) if all.opaque_into || all.opaque_dml => (None, false, Vec::new()),
            Statement::Query(_) => {
                // `WITH … UPDATE/INSERT/DELETE` parses as a query around the
                // statement: its writes are the nested statement's.
                let ddl = !all.select_into.is_empty();
                let mut writes = all.select_into.clone();
                writes.extend(all.nested_writes.iter().cloned());
                (
                    Some(if ddl { "SELECT INTO" } else { "SELECT" }),
                    ddl,
                    writes,
                )
            }
            Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_)
            | Statement::Merge(_) => match dml_targets(statement) {
                // Nested writes too: PostgreSQL's data-modifying CTEs.
                Some((kind, mut targets)) if !all.opaque_dml => {
                    targets.extend(all.nested_writes.iter().cloned());
                    (Some(kind), false, targets)
                }
                _ => (None, false, Vec::new()),
            },
            // Session and server settings: no table.
            Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowStatus { .. } => (Some("SHOW"), false, Vec::new()),
            Statement::CreateTable(create) => (
                Some("CREATE TABLE"),
                true,
                vec![TableName::of(&create.name)],
            ),
            Statement::CreateIndex(create) => (
                Some("CREATE INDEX"),
                true,
                vec![TableName::of(&create.table_name)],
            ),
            Statement::AlterTable(_) => (Some("ALTER TABLE"), true, all.names.clone()),
            Statement::Drop { .. } => (Some("DROP"), true, all.names.clone()),
            Statement::Truncate(_) => (Some("TRUNCATE"), true, all.names.clone()),
            Statement::RenameTable(_) => (Some("RENAME TABLE"), true, all.names.clone()),
            Statement::CreateView(_) => (Some("CREATE VIEW"), true, all.names.clone()),
            _ => (None, false, Vec::new()),
        };
        access.kind = kind;
        access.ddl = ddl;
        access.reads = all
            .names
            .into_iter()
            .filter(|n| !writes.contains(n))
            .collect();
        access.writes = writes;
        access
    }
}

/// The tables an INSERT, UPDATE, DELETE or MERGE writes, or `None` for
/// another statement or a target this check cannot see (a table function).
fn dml_targets(statement: &Statement) -> Option<(&'static str, Vec<TableName>)> {
    Some(match statement {
        Statement::Insert(insert) => match &insert.table {
            TableObject::TableName(name) => ("INSERT", vec![TableName::of(name)]),
            _ => return None,
        },
        Statement::Update(update) => ("UPDATE", Relations::of(&update.table).names),
        Statement::Delete(delete) => {
            let targets = if delete.tables.is_empty() {
                match &delete.from {
                    FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from) => {
                        Relations::of(from).names
                    }
                }
            } else {
                delete.tables.iter().map(TableName::of).collect()
            };
            ("DELETE", targets)
        }
        Statement::Merge(merge) => ("MERGE", Relations::of(&merge.table).names),
        _ => return None,
    })
}

/// Every table name, CTE name and SELECT INTO target under an AST node.
#[derive(Debug, Default)]
struct Relations {
    names: Vec<TableName>,
    ctes: HashSet<TableName>,
    select_into: Vec<TableName>,
    /// A SELECT INTO something other than a table.
    opaque_into: bool,
    /// Tables written by statements nested in a query (`WITH … UPDATE`).
    nested_writes: Vec<TableName>,
    /// A nested statement whose writes cannot be seen.
    opaque_dml: bool,
}

impl Relations {
    fn of<V: Visit>(node: &V) -> Self {
        let mut relations = Relations::default();
        let _ = node.visit(&mut relations);
        relations
    }
}

impl Visitor for Relations {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        let name = TableName::of(relation);
        if !self.names.contains(&name) {
            self.names.push(name);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        match statement {
            Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_)
            | Statement::Merge(_) => match dml_targets(statement) {
                Some((_, targets)) => self.nested_writes.extend(targets),
                None => self.opaque_dml = true,
            },
            Statement::Query(_) => {}
            _ => self.opaque_dml = true,
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes
                    .insert(TableName(vec![cte.alias.name.value.to_ascii_lowercase()]));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        if let Some(SelectInto { targets, .. }) = &select.into {
            for target in targets {
                match target {
                    Expr::Identifier(ident) => self
                        .select_into
                        .push(TableName(vec![ident.value.to_ascii_lowercase()])),
                    Expr::CompoundIdentifier(parts) => self.select_into.push(TableName(
                        parts.iter().map(|p| p.value.to_ascii_lowercase()).collect(),
                    )),
                    // Variables, files: effects this check cannot see.
                    _ => self.opaque_into = true,
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// The statement's leading keyword(s), for messages about unknown kinds.
fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.as_slice() {
        [first, second]
            if first.eq_ignore_ascii_case("CREATE") || first.eq_ignore_ascii_case("ALTER") =>
        {
            format!(
                "{} {}",
                first.to_ascii_uppercase(),
                second.to_ascii_uppercase()
            )
        }
        [first, ..] => first.to_ascii_uppercase(),
        [] => "empty".to_owned(),
    }
}

fn parse_error(error: &sqlparser::parser::ParserError) -> String {
    let text = error.to_string();
    text.strip_prefix("sql parser error: ")
        .unwrap_or(&text)
        .to_owned()
}

/// The statement's start on one line, at most 80 characters.
fn excerpt(sql: &str) -> String {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= 80 {
        flat
    } else {
        format!("{} …", flat.chars().take(77).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(caps: &Capabilities, dialect: Dialect, sql: &str) -> Result<(), Missing> {
        CapabilityCheck::new(caps)
            .check(dialect, sql)
            .map_err(|v| v.missing)
    }

    fn caps(reads: &[&str], writes: &[&str], ddl: bool, raw_sql: bool) -> Capabilities {
        Capabilities {
            reads: reads.iter().map(|s| s.to_string()).collect(),
            writes: writes.iter().map(|s| s.to_string()).collect(),
            ddl,
            raw_sql,
        }
    }

    const ALL: [Dialect; 3] = [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql];

    #[test]
    fn allows_what_is_declared() {
        let c = caps(&["users"], &["orders", "archive.orders"], false, false);
        for d in ALL {
            for sql in [
                "SELECT id, name FROM users WHERE id > ? ORDER BY id LIMIT ?",
                "SELECT count(*) FROM Users u JOIN orders o ON o.user_id = u.id",
                "UPDATE orders SET total = (SELECT count(*) FROM users) WHERE id = ?",
                "INSERT INTO orders (id) SELECT id FROM users",
                "INSERT INTO archive.orders (id) VALUES (?)",
                "DELETE FROM orders WHERE user_id IN (SELECT id FROM users)",
                "WITH recent AS (SELECT id FROM orders) SELECT * FROM recent",
                "SELECT 1",
                "",
            ] {
                assert_eq!(check(&c, d, sql), Ok(()), "{d:?}: {sql}");
            }
        }
        let ddl = caps(&["orders"], &["archived_orders"], true, false);
        for d in ALL {
            assert_eq!(
                check(
                    &ddl,
                    d,
                    "CREATE TABLE archived_orders (id BIGINT, items TEXT)"
                ),
                Ok(())
            );
            assert_eq!(check(&ddl, d, "DROP TABLE archived_orders"), Ok(()));
            assert_eq!(
                check(&ddl, d, "ALTER TABLE archived_orders ADD COLUMN note TEXT"),
                Ok(())
            );
        }
    }

    #[test]
    fn refuses_each_kind_of_violation() {
        let c = caps(&["users"], &["orders"], false, false);
        for d in ALL {
            let refused = |sql: &str| {
                check(&c, d, sql)
                    .err()
                    .unwrap_or_else(|| panic!("{d:?} allowed {sql}"))
            };
            assert_eq!(
                refused("SELECT * FROM secrets"),
                Missing::Read("secrets".into())
            );
            assert_eq!(
                refused("SELECT * FROM orders o JOIN payments p ON p.order_id = o.id"),
                Missing::Read("payments".into())
            );
            assert_eq!(
                refused("UPDATE users SET name = ? WHERE id = ?"),
                Missing::Write("users".into())
            );
            assert_eq!(
                refused("INSERT INTO users (id) VALUES (?)"),
                Missing::Write("users".into())
            );
            assert_eq!(
                refused("DELETE FROM users WHERE id = ?"),
                Missing::Write("users".into())
            );
            assert_eq!(
                refused("INSERT INTO orders (id) SELECT id FROM accounts"),
                Missing::Read("accounts".into())
            );
            assert_eq!(
                refused("SELECT * FROM other.orders"),
                Missing::Read("other.orders".into())
            );
            assert!(matches!(
                refused("DROP TABLE orders"),
                Missing::Ddl(k) if k == "DROP"
            ));
            assert!(matches!(
                refused("CREATE TABLE orders (id INT)"),
                Missing::Ddl(_)
            ));
            assert!(matches!(
                refused("SELECT * FROM dmig_runs"),
                Missing::Ledger(t) if t == "dmig_runs"
            ));
            assert!(matches!(
                refused("UPDATE DMIG_MIGRATIONS SET state = 'applied'"),
                Missing::Ledger(_)
            ));
            assert!(matches!(
                refused("GRANT ALL ON users TO bob"),
                Missing::Unchecked(_)
            ));
            if d != Dialect::Sqlite {
                assert_eq!(check(&c, d, "SHOW VARIABLES LIKE '%tx_isolation'"), Ok(()));
            }
            assert!(matches!(
                refused("SELEC * FROM users"),
                Missing::Unparseable(_)
            ));
            // A CTE may shadow a name when read, never when written.
            assert_eq!(
                refused("WITH users AS (SELECT 1 AS id) UPDATE users SET name = 'x'"),
                Missing::Write("users".into())
            );
        }
        let pg = |sql| check(&c, Dialect::Postgres, sql).unwrap_err();
        assert_eq!(
            pg(
                "WITH gone AS (DELETE FROM users RETURNING id) INSERT INTO orders (id) SELECT id FROM gone"
            ),
            Missing::Write("users".into())
        );
        // MySQL's multi-table UPDATE writes every table in its target list.
        let mysql = |sql| check(&c, Dialect::Mysql, sql).unwrap_err();
        assert_eq!(
            mysql("UPDATE orders o JOIN users u ON u.id = o.user_id SET u.name = 'x'"),
            Missing::Write("users".into())
        );
    }

    #[test]
    fn raw_sql_allows_unparseable_statements_but_still_guards_tables() {
        let c = caps(&[], &["orders"], false, true);
        assert_eq!(check(&c, Dialect::Sqlite, "SELEC gibberish"), Ok(()));
        assert!(matches!(
            check(&c, Dialect::Sqlite, "SELECT * FROM secrets"),
            Err(Missing::Read(_))
        ));
        assert!(matches!(
            check(&c, Dialect::Sqlite, "SELECT * FROM dmig_runs"),
            Err(Missing::Ledger(_))
        ));
    }

    #[test]
    fn messages_name_statement_and_capability() {
        let c = caps(&["users"], &[], false, false);
        let v = CapabilityCheck::new(&c)
            .check(Dialect::Sqlite, "UPDATE users\n   SET name = ?")
            .unwrap_err();
        assert_eq!(
            v.to_string(),
            "statement `UPDATE users SET name = ?` writes table users, which the artifact does not declare in writes (add it to the manifest's writes and have the change reviewed)"
        );
    }
}
