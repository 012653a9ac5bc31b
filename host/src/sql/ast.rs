//! What a statement parsed by sqlparser (MySQL/MariaDB, SQLite) touches.
//!
//! Only statement kinds whose effects are understood are checked; any other
//! kind is unchecked (raw SQL only). Conservative where SQL is ambiguous:
//! every table a multi-table UPDATE joins counts as written, every table
//! named by DDL other than CREATE TABLE/INDEX counts as written, tables read
//! under `FOR UPDATE`/`FOR SHARE` count as written (they are locked), and a
//! common table expression hides a table of the same name only where it is
//! in scope (not in its own body unless recursive, never as a write target).

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FromTable, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, Query, Select, SelectInto, SetExpr, Statement, TableFactor, TableObject, Value,
    Visit, Visitor,
};

use super::functions::{self, Class};
use super::{Access, Dialect, Name, Reason};

/// What `statement` touches.
pub(super) fn access(dialect: Dialect, statement: &Statement) -> Result<Access, Reason> {
    let mut all = Relations::new(dialect);
    let _ = statement.visit(&mut all);
    if let Some(reason) = all.refusal.take() {
        return Err(reason);
    }
    let kind_word = statement_kind(statement);
    let (checked, ddl, mut writes): (Option<&str>, bool, Vec<Name>) = match statement {
        Statement::Query(_) if all.opaque => (None, false, Vec::new()),
        Statement::Query(_) => {
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
        | Statement::Merge(_) => match dml_targets(dialect, statement) {
            Some((kind, mut targets)) if !all.opaque => {
                targets.extend(all.nested_writes.iter().cloned());
                (Some(kind), false, targets)
            }
            _ => (None, false, Vec::new()),
        },
        // `SHOW [GLOBAL|SESSION] VARIABLES|STATUS [LIKE …|WHERE …]`. Not
        // `ShowVariable`: neither MySQL nor SQLite has a `SHOW name`
        // statement, and sqlparser parses every SHOW it does not know
        // (`SHOW INDEX FROM secrets`, `SHOW GRANTS FOR …`) as that name,
        // so its effects are unknown.
        Statement::ShowVariables { .. } | Statement::ShowStatus { .. } => {
            (Some("SHOW"), false, Vec::new())
        }
        Statement::CreateTable(create) if !all.opaque => (
            Some("CREATE TABLE"),
            true,
            vec![name_of(dialect, &create.name)],
        ),
        Statement::CreateIndex(create) if !all.opaque => (
            Some("CREATE INDEX"),
            true,
            vec![name_of(dialect, &create.table_name)],
        ),
        Statement::AlterTable(_) if !all.opaque => (Some("ALTER TABLE"), true, all.names.clone()),
        Statement::Drop { .. } if !all.opaque => (Some("DROP"), true, all.names.clone()),
        Statement::Truncate(_) if !all.opaque => (Some("TRUNCATE"), true, all.names.clone()),
        Statement::RenameTable(_) if !all.opaque => (Some("RENAME TABLE"), true, all.names.clone()),
        Statement::CreateView(_) if !all.opaque => (Some("CREATE VIEW"), true, all.names.clone()),
        _ => (None, false, Vec::new()),
    };
    writes.extend(all.locked.iter().cloned());
    let mut access = Access {
        kind: checked.map_or(kind_word, str::to_owned),
        checked: checked.map(str::to_owned),
        ddl,
        reads: all.names.into_iter().collect(),
        writes: writes.into_iter().collect(),
        functions: all.functions.into_iter().collect(),
        fields: Default::default(),
        mentions_ledger: false,
    };
    if access.checked.is_none() {
        // Unknown effects: whatever it names, it may write.
        access.reads.extend(std::mem::take(&mut access.writes));
    } else {
        access.settle();
    }
    Ok(access)
}

fn ident_name(dialect: Dialect, idents: &[Ident]) -> Name {
    Name::from_parts(dialect, idents.iter().map(|i| fold(dialect, i)))
}

/// An identifier as the database resolves it.
fn fold(dialect: Dialect, ident: &Ident) -> String {
    match (dialect, ident.quote_style) {
        (Dialect::Sqlite, _) | (Dialect::Postgres, None) => ident.value.to_ascii_lowercase(),
        _ => ident.value.clone(),
    }
}

fn name_of(dialect: Dialect, name: &ObjectName) -> Name {
    Name::from_parts(
        dialect,
        name.0.iter().map(|part| match part {
            ObjectNamePart::Identifier(ident) => fold(dialect, ident),
            other => other.to_string(),
        }),
    )
}

/// The tables an INSERT, UPDATE, DELETE or MERGE writes, or `None` for
/// another statement or a target this check cannot see (a table function).
fn dml_targets(dialect: Dialect, statement: &Statement) -> Option<(&'static str, Vec<Name>)> {
    Some(match statement {
        Statement::Insert(insert) => match &insert.table {
            TableObject::TableName(name) => ("INSERT", vec![name_of(dialect, name)]),
            _ => return None,
        },
        Statement::Update(update) => ("UPDATE", plain_relations(dialect, &update.table)),
        Statement::Delete(delete) => {
            let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
            let named = if delete.tables.is_empty() {
                plain_relations(dialect, from)
            } else {
                delete.tables.iter().map(|n| name_of(dialect, n)).collect()
            };
            // MySQL reads a target (`DELETE t FROM …`, `DELETE FROM t USING
            // …`) as an alias when one is defined: the aliased table is
            // written. Both count, conservatively.
            let mut aliases = aliases(dialect, from);
            if let Some(using) = &delete.using {
                aliases.extend(self::aliases(dialect, using));
            }
            let mut targets = Vec::new();
            for name in named {
                if name.len() == 1 {
                    for (alias, table) in &aliases {
                        if alias == name.last() && !targets.contains(table) {
                            targets.push(table.clone());
                        }
                    }
                }
                if !targets.contains(&name) {
                    targets.push(name);
                }
            }
            ("DELETE", targets)
        }
        Statement::Merge(merge) => ("MERGE", plain_relations(dialect, &merge.table)),
        _ => return None,
    })
}

/// The table aliases defined under `node`, with the tables they stand for.
fn aliases<V: Visit>(dialect: Dialect, node: &V) -> Vec<(String, Name)> {
    struct All(Dialect, Vec<(String, Name)>);
    impl Visitor for All {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name,
                alias: Some(alias),
                ..
            } = factor
            {
                self.1
                    .push((fold(self.0, &alias.name), name_of(self.0, name)));
            }
            ControlFlow::Continue(())
        }
    }
    let mut all = All(dialect, Vec::new());
    let _ = node.visit(&mut all);
    all.1
}

/// Every relation named under `node`, CTE names not excepted (write targets).
fn plain_relations<V: Visit>(dialect: Dialect, node: &V) -> Vec<Name> {
    struct All(Dialect, Vec<Name>);
    impl Visitor for All {
        type Break = ();
        fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
            self.1.push(name_of(self.0, relation));
            ControlFlow::Continue(())
        }
    }
    let mut all = All(dialect, Vec::new());
    let _ = node.visit(&mut all);
    all.1
}

/// One `WITH` being walked: its CTE names and bodies, and which body (if
/// any) the walk is inside.
struct Frame {
    query: *const Query,
    names: Vec<String>,
    bodies: Vec<*const Query>,
    recursive: bool,
    active: Option<usize>,
}

/// Every table, function, CTE scope and SELECT INTO target under a node.
struct Relations {
    dialect: Dialect,
    /// Tables read (CTE references excepted).
    names: Vec<Name>,
    functions: Vec<Name>,
    select_into: Vec<Name>,
    /// Tables read under a locking clause.
    locked: Vec<Name>,
    /// Tables written by statements nested in a query (`WITH … UPDATE`).
    nested_writes: Vec<Name>,
    /// Something whose effects this check cannot see.
    opaque: bool,
    frames: Vec<Frame>,
    /// Queries with a locking clause being walked.
    locking: Vec<*const Query>,
    /// A table-function name about to be visited as a relation.
    table_function: Option<*const ObjectName>,
    refusal: Option<Reason>,
}

impl Relations {
    fn new(dialect: Dialect) -> Self {
        Relations {
            dialect,
            names: Vec::new(),
            functions: Vec::new(),
            select_into: Vec::new(),
            locked: Vec::new(),
            nested_writes: Vec::new(),
            opaque: false,
            frames: Vec::new(),
            locking: Vec::new(),
            table_function: None,
            refusal: None,
        }
    }

    /// Whether an unqualified `name` is a CTE in scope here.
    fn is_cte(&self, name: &str) -> bool {
        self.frames.iter().any(|frame| {
            // Inside a CTE's body: the earlier CTEs, and itself if
            // recursive. (Databases differ on later ones under RECURSIVE:
            // MySQL 8 hides them, MariaDB and SQLite show them; treating them
            // as tables can only refuse more.)
            let visible = match frame.active {
                None => frame.names.len(),
                Some(i) if frame.recursive => i + 1,
                Some(i) => i,
            };
            frame.names[..visible].iter().any(|n| n == name)
        })
    }

    fn read(&mut self, name: Name) {
        let list = if self.locking.is_empty() {
            &mut self.names
        } else {
            &mut self.locked
        };
        if !list.contains(&name) {
            list.push(name);
        }
    }

    fn function(&mut self, name: Name, args: &FunctionArguments) {
        // MySQL's LAST_INSERT_ID(expr) sets the session's value.
        if self.dialect == Dialect::Mysql
            && name.len() == 1
            && name.last().eq_ignore_ascii_case("last_insert_id")
            && matches!(args, FunctionArguments::List(list) if !list.args.is_empty())
        {
            self.refusal = Some(Reason::Dangerous(
                name.clone(),
                functions::Danger::SessionState,
            ));
        }
        match functions::classify(self.dialect, &name) {
            Class::SequenceRead | Class::SequenceWrite => {
                let write = functions::classify(self.dialect, &name) == Class::SequenceWrite;
                match first_arg_name(self.dialect, args) {
                    Some(sequence) if write => {
                        if !self.nested_writes.contains(&sequence) {
                            self.nested_writes.push(sequence);
                        }
                    }
                    Some(sequence) => self.read(sequence),
                    None => self.refusal = Some(Reason::Sequence(name.clone())),
                }
            }
            _ => {}
        }
        if !self.functions.contains(&name) {
            self.functions.push(name);
        }
    }

    /// `TABLE t` (a query body that is a whole table) names its table
    /// outside any `ObjectName`.
    fn set_expr_tables(&mut self, body: &SetExpr) {
        match body {
            SetExpr::Table(table) => {
                let mut parts = Vec::new();
                if let Some(schema) = &table.schema_name {
                    parts.push(Ident::new(schema));
                }
                if let Some(name) = &table.table_name {
                    parts.push(Ident::new(name));
                }
                let name = ident_name(self.dialect, &parts);
                if name.len() == 1 && self.is_cte(name.last()) {
                    return;
                }
                self.read(name);
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr_tables(left);
                self.set_expr_tables(right);
            }
            _ => {}
        }
    }
}

/// The sequence a sequence function names: a string literal (PostgreSQL
/// style) or an identifier (MariaDB style).
fn first_arg_name(dialect: Dialect, args: &FunctionArguments) -> Option<Name> {
    let FunctionArguments::List(list) = args else {
        return None;
    };
    match list.args.first()? {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => match expr {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) => Name::parse(dialect, s).ok(),
                _ => None,
            },
            Expr::Identifier(ident) => Some(ident_name(dialect, std::slice::from_ref(ident))),
            Expr::CompoundIdentifier(idents) => Some(ident_name(dialect, idents)),
            _ => None,
        },
        _ => None,
    }
}

impl Visitor for Relations {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let ptr: *const Query = query;
        if let Some(frame) = self.frames.last_mut()
            && frame.active.is_none()
            && let Some(i) = frame.bodies.iter().position(|b| *b == ptr)
        {
            frame.active = Some(i);
        }
        if let Some(with) = &query.with {
            self.frames.push(Frame {
                query: ptr,
                names: with
                    .cte_tables
                    .iter()
                    .map(|cte| fold(self.dialect, &cte.alias.name))
                    .collect(),
                bodies: with
                    .cte_tables
                    .iter()
                    .map(|cte| &*cte.query as *const Query)
                    .collect(),
                recursive: with.recursive,
                active: None,
            });
        }
        if !query.locks.is_empty() {
            self.locking.push(ptr);
        }
        self.set_expr_tables(&query.body);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let ptr: *const Query = query;
        if self.locking.last() == Some(&ptr) {
            self.locking.pop();
        }
        if self.frames.last().is_some_and(|f| f.query == ptr) {
            self.frames.pop();
        }
        if let Some(frame) = self.frames.last_mut()
            && let Some(i) = frame.active
            && frame.bodies[i] == ptr
        {
            frame.active = None;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if self.table_function.take() == Some(relation as *const ObjectName) {
            return ControlFlow::Continue(());
        }
        let name = name_of(self.dialect, relation);
        if name.len() == 1 && self.is_cte(name.last()) {
            return ControlFlow::Continue(());
        }
        // MySQL's dummy table.
        if self.dialect == Dialect::Mysql
            && name.len() == 1
            && name.last().eq_ignore_ascii_case("dual")
        {
            return ControlFlow::Continue(());
        }
        self.read(name);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table {
                name,
                args: Some(args),
                ..
            } => {
                // A table-valued function (`json_each(x)`): a function, not a table.
                let function = name_of(self.dialect, name);
                self.table_function = Some(name as *const ObjectName);
                let args = FunctionArguments::List(sqlparser::ast::FunctionArgumentList {
                    duplicate_treatment: None,
                    args: args.args.clone(),
                    clauses: Vec::new(),
                });
                self.function(function, &args);
            }
            TableFactor::Table { .. }
            | TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. }
            | TableFactor::JsonTable { .. } => {}
            _ => self.opaque = true,
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = expr {
            let name = name_of(self.dialect, &f.name);
            self.function(name, &f.args);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        match statement {
            Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_)
            | Statement::Merge(_) => match dml_targets(self.dialect, statement) {
                Some((_, targets)) => self.nested_writes.extend(targets),
                None => self.opaque = true,
            },
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        if let Some(SelectInto { targets, .. }) = &select.into {
            for target in targets {
                match target {
                    Expr::Identifier(ident) => self
                        .select_into
                        .push(ident_name(self.dialect, std::slice::from_ref(ident))),
                    Expr::CompoundIdentifier(parts) => {
                        self.select_into.push(ident_name(self.dialect, parts));
                    }
                    // Variables, files: effects this check cannot see.
                    _ => self.opaque = true,
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
