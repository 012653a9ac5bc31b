//! PostgreSQL: the gate reads SQL with PostgreSQL's own scanner and parser
//! (libpg_query) and sends what PostgreSQL's own deparser writes from the
//! tree it checked.
//!
//! Guests write `?` placeholders. The scanner finds each `?` outside
//! literals, identifiers and comments (in an operator token, PostgreSQL's
//! reading); each becomes `$n`. The parse tree is walked as data (its JSON
//! form), so every node kind is covered: a `RangeVar` anywhere is a table, a
//! `FuncCall` anywhere a function, and `WITH` scopes are followed exactly.

use std::ops::Range;

use pg_query::protobuf::Token;
use serde_json::{Map, Value};

use super::{
    Access, Admitted, Dialect, MAX_OPERATOR_RUN_WORK, MAX_OPERATORS, Name, Placeholders, Reason,
    policy,
};

/// Reads, renders and walks one statement.
/// `judge` decides on what the statement touches before it is rendered, so
/// PostgreSQL's deparser only ever writes statements the manifest allows.
pub(super) fn analyse(
    sql: &str,
    raw_sql: bool,
    judge: impl Fn(&Access) -> Result<(), Reason>,
) -> Result<(Admitted, Access), Reason> {
    let (work, longest) = operator_runs(sql);
    if work > MAX_OPERATOR_RUN_WORK {
        return Err(Reason::OperatorRuns(longest));
    }
    let numbered = number_placeholders(sql)?;
    let parsed = pg_query::parse(&numbered, 0).map_err(|e| match e {
        pg_query::Error::Decode(_) => Reason::TooDeep,
        other => Reason::Unreadable(message(&other)),
    })?;
    let stmts = &parsed.protobuf.stmts;
    let raw = match stmts.as_slice() {
        [] => return Err(Reason::Empty),
        [one] => one,
        _ => return Err(Reason::Multiple),
    };
    let tree = serde_json::to_value(raw).map_err(|e| Reason::Unreadable(e.to_string()))?;
    let stmt = tree
        .get("stmt")
        .and_then(|s| s.get("node"))
        .and_then(Value::as_object)
        .and_then(|o| o.iter().next())
        .ok_or(Reason::Empty)?;
    let (kind, body) = (stmt.0.as_str(), stmt.1);
    let access = walk_statement(kind, body)?;
    judge(&access)?;
    let text = std::panic::catch_unwind(|| parsed.deparse(Default::default()))
        .map_err(|_| Reason::Construct("a statement PostgreSQL's deparser cannot write".into()))?
        .map_err(|e| {
            Reason::Construct(format!(
                "a statement PostgreSQL's deparser cannot write ({})",
                message(&e)
            ))
        })?;
    let placeholders = find_params(&text)?;
    let mut access = access;
    access.mentions_ledger = raw_sql && super::names::mentions_ledger(&text);
    Ok((
        Admitted {
            text,
            placeholders: Placeholders::Numbered(placeholders),
            changes_schema: false,
        },
        access,
    ))
}

/// The runs of PostgreSQL operator characters in `sql`, wherever they
/// stand: the sum of the squares of their lengths (what they cost the
/// scanner, see [`MAX_OPERATOR_RUN_WORK`]) and the longest.
fn operator_runs(sql: &str) -> (u64, usize) {
    let (mut work, mut longest, mut run) = (0u64, 0usize, 0u64);
    for b in sql.bytes().chain([b' ']) {
        if b"+-*/<>=~!@#%^&|`?".contains(&b) {
            run += 1;
        } else if run > 0 {
            work = work.saturating_add(run * run);
            longest = longest.max(usize::try_from(run).unwrap_or(usize::MAX));
            run = 0;
        }
    }
    (work, longest)
}

fn message(error: &pg_query::Error) -> String {
    match error {
        pg_query::Error::Parse(m) | pg_query::Error::Scan(m) => m.clone(),
        other => other.to_string(),
    }
}

/// PostgreSQL's tokens of `sql`. Through `pg_query::scan` (the protobuf
/// form), not `scan_tokens`: for a text with no tokens (empty, or only
/// whitespace) the latter builds a slice from a null pointer, which is
/// undefined behaviour and aborts a debug build.
fn scan(sql: &str) -> Result<Vec<pg_query::protobuf::ScanToken>, Reason> {
    pg_query::scan(sql)
        .map(|result| result.tokens)
        .map_err(|e| Reason::Unreadable(message(&e)))
}

/// `sql` with each `?` placeholder numbered `$1`, `$2`, … in order. A `$n`
/// written by the guest is refused: its numbers would collide.
fn number_placeholders(sql: &str) -> Result<String, Reason> {
    let tokens = scan(sql)?;
    let operators = tokens
        .iter()
        .filter(|t| {
            !matches!(
                Token::try_from(t.token),
                Ok(Token::Ident
                    | Token::Sconst
                    | Token::Iconst
                    | Token::Fconst
                    | Token::Ascii44
                    | Token::Ascii40
                    | Token::Ascii41
                    | Token::Ascii46
                    | Token::SqlComment
                    | Token::CComment
                    | Token::Param
                    | Token::Uident
                    | Token::Usconst
                    | Token::Bconst
                    | Token::Xconst)
            )
        })
        .count();
    if operators > MAX_OPERATORS {
        return Err(Reason::TooComplex(operators));
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = 0;
    let mut n = 0;
    for t in &tokens {
        let (start, end) = (t.start as usize, t.end as usize);
        let Some(text) = sql.get(start..end) else {
            return Err(Reason::Unreadable(
                "the scanner's offsets do not fit the text".into(),
            ));
        };
        match Token::try_from(t.token) {
            Ok(Token::Param) => return Err(Reason::Placeholder(text.to_owned())),
            Ok(Token::Op | Token::Ascii63) if text.contains('?') => {
                out.push_str(&sql[rest..start]);
                for c in text.chars() {
                    if c == '?' {
                        n += 1;
                        out.push_str(&format!(" ${n} "));
                    } else {
                        out.push(c);
                    }
                }
                rest = end;
            }
            _ => {}
        }
    }
    out.push_str(&sql[rest..]);
    Ok(out)
}

/// Each `$n` of the deparsed text: its byte range and parameter index.
fn find_params(text: &str) -> Result<Vec<(Range<usize>, usize)>, Reason> {
    let mut found = Vec::new();
    for t in scan(text)? {
        if Token::try_from(t.token) == Ok(Token::Param) {
            let range = t.start as usize..t.end as usize;
            let number: usize = text
                .get(range.clone())
                .and_then(|p| p.strip_prefix('$'))
                .and_then(|n| n.parse().ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| Reason::Unreadable("a parameter the host did not number".into()))?;
            found.push((range, number - 1));
        }
    }
    Ok(found)
}

/// Refused in every mode, by node kind (see [`policy`]).
fn refused_kind(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "TransactionStmt" => ("transaction control", policy::TRANSACTION),
        "VariableSetStmt" => ("SET", policy::SESSION),
        "DiscardStmt" => ("DISCARD", policy::SESSION),
        "ListenStmt" => ("LISTEN", policy::SESSION),
        "UnlistenStmt" => ("UNLISTEN", policy::SESSION),
        "NotifyStmt" => ("NOTIFY", policy::SIGNALS),
        "LockStmt" => ("LOCK", policy::LOCK),
        "CopyStmt" => ("COPY", policy::SERVER_FILES),
        "LoadStmt" => ("LOAD", policy::SERVER_FILES),
        "PrepareStmt" => ("PREPARE", policy::PREPARED),
        "ExecuteStmt" => ("EXECUTE", policy::PREPARED),
        "DeallocateStmt" => ("DEALLOCATE", policy::PREPARED),
        "VacuumStmt" => ("VACUUM/ANALYZE", policy::MAINTENANCE),
        "CheckPointStmt" => ("CHECKPOINT", policy::MAINTENANCE),
        "ClusterStmt" => ("CLUSTER", policy::MAINTENANCE),
        "ReindexStmt" => ("REINDEX", policy::MAINTENANCE),
        "AlterSystemStmt" => ("ALTER SYSTEM", policy::MAINTENANCE),
        "DeclareCursorStmt" | "FetchStmt" | "ClosePortalStmt" => ("cursor", policy::SESSION),
        _ => return None,
    })
}

fn walk_statement(kind: &str, body: &Value) -> Result<Access, Reason> {
    if let Some((name, why)) = refused_kind(kind) {
        return Err(Reason::Statement {
            kind: name.to_owned(),
            why,
        });
    }
    // EXPLAIN ANALYZE runs the statement it explains: that statement is
    // what is judged, as if it stood alone.
    if kind == "ExplainStmt" {
        let inner = body
            .get("query")
            .and_then(|q| q.get("node"))
            .and_then(Value::as_object)
            .and_then(|o| o.iter().next())
            .ok_or(Reason::Empty)?;
        return walk_statement(inner.0, inner.1);
    }
    let mut walk = Walk::default();
    walk.value(body, &Scope::default(), false);
    if let Some(reason) = walk.refusal.take() {
        return Err(reason);
    }
    let label = kind.trim_end_matches("Stmt");
    let mut access = Access {
        kind: label.to_owned(),
        ..Access::default()
    };
    let (checked, ddl, targets): (Option<&str>, bool, Vec<Name>) = match kind {
        "SelectStmt" | "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" => {
            let ddl = walk.select_into;
            (
                Some(if ddl { "SELECT INTO" } else { label }),
                ddl,
                Vec::new(),
            )
        }
        "VariableShowStmt" => (Some("SHOW"), false, Vec::new()),
        "CallStmt" => (Some("CALL"), false, Vec::new()),
        "CreateStmt" | "CreateTableAsStmt" | "AlterTableStmt" | "IndexStmt" | "ViewStmt"
        | "CreateSeqStmt" | "AlterSeqStmt" | "RenameStmt" => {
            // The statement's own relation (a RangeVar in `relation`,
            // `view`, `sequence` or `into.rel`) is written.
            let target = ["relation", "view", "sequence"]
                .iter()
                .find_map(|k| body.get(*k))
                .or_else(|| body.get("into").and_then(|i| i.get("rel")));
            let targets = target.and_then(range_var).into_iter().collect();
            (Some(ddl_label(kind)), true, targets)
        }
        "TruncateStmt" => {
            let targets = body
                .get("relations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|n| {
                    n.get("node")
                        .and_then(|n| n.get("RangeVar"))
                        .and_then(range_var)
                })
                .collect();
            (Some("TRUNCATE"), true, targets)
        }
        "DropStmt" => match drop_targets(body) {
            Some(targets) => (Some("DROP"), true, targets),
            None => (None, true, Vec::new()),
        },
        _ => (None, false, Vec::new()),
    };
    access.checked = checked.map(str::to_owned);
    access.ddl = ddl;
    access.reads = walk.reads;
    access.writes = walk.writes;
    access.writes.extend(targets);
    access.functions = walk.functions;
    access.fields = walk.fields;
    if access.checked.is_none() {
        access.reads.extend(std::mem::take(&mut access.writes));
    } else {
        access.settle();
    }
    Ok(access)
}

fn ddl_label(kind: &str) -> &'static str {
    match kind {
        "CreateStmt" => "CREATE TABLE",
        "CreateTableAsStmt" => "CREATE TABLE AS",
        "AlterTableStmt" => "ALTER TABLE",
        "IndexStmt" => "CREATE INDEX",
        "ViewStmt" => "CREATE VIEW",
        "CreateSeqStmt" => "CREATE SEQUENCE",
        "AlterSeqStmt" => "ALTER SEQUENCE",
        _ => "RENAME",
    }
}

/// The tables, indexes, views and sequences a DROP names; `None` for
/// other objects (functions, types, schemas…), which only raw SQL may drop.
fn drop_targets(body: &Value) -> Option<Vec<Name>> {
    let remove_type = body.get("remove_type")?.as_i64()?;
    let table_like = [
        pg_query::protobuf::ObjectType::ObjectTable,
        pg_query::protobuf::ObjectType::ObjectIndex,
        pg_query::protobuf::ObjectType::ObjectView,
        pg_query::protobuf::ObjectType::ObjectSequence,
        pg_query::protobuf::ObjectType::ObjectMatview,
    ];
    if !table_like.iter().any(|t| *t as i64 == remove_type) {
        return None;
    }
    body.get("objects")?
        .as_array()?
        .iter()
        .map(|o| {
            let items = o.get("node")?.get("List")?.get("items")?.as_array()?;
            Some(Name::from_parts(Dialect::Postgres, strings(items)?))
        })
        .collect()
}

/// The `sval`s of a list of `String` nodes.
fn strings(items: &[Value]) -> Option<Vec<String>> {
    items
        .iter()
        .map(|i| {
            i.get("node")?
                .get("String")?
                .get("sval")?
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// A RangeVar's name (catalog, schema, relation; empty parts left out).
fn range_var(v: &Value) -> Option<Name> {
    let part = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    let relname = part("relname");
    if relname.is_empty() {
        return None;
    }
    let parts: Vec<&str> = [part("catalogname"), part("schemaname"), relname]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    Some(Name::from_parts(Dialect::Postgres, parts))
}

/// The CTE names visible at a point of the walk.
#[derive(Default, Clone)]
struct Scope<'a>(Vec<&'a str>);

#[derive(Default)]
struct Walk {
    reads: std::collections::BTreeSet<Name>,
    writes: std::collections::BTreeSet<Name>,
    functions: std::collections::BTreeSet<Name>,
    fields: Fields,
    select_into: bool,
    refusal: Option<Reason>,
}

impl Walk {
    /// Walks any part of the tree. `locked`: inside the FROM of a select
    /// with a locking clause (`FOR UPDATE`, `FOR NO KEY UPDATE`, `FOR SHARE`,
    /// `FOR KEY SHARE`), where tables read are written: their rows are
    /// locked, and PostgreSQL wants the UPDATE privilege for any of them.
    fn value<'a>(&mut self, v: &'a Value, scope: &Scope<'a>, locked: bool) {
        match v {
            Value::Array(items) => {
                for item in items {
                    self.value(item, scope, locked);
                }
            }
            Value::Object(o) => self.object(o, scope, locked),
            _ => {}
        }
    }

    fn object<'a>(&mut self, o: &'a Map<String, Value>, scope: &Scope<'a>, locked: bool) {
        // A statement kind refused by name is refused wherever it stands
        // (nested in EXPLAIN, CREATE TABLE AS, a rule…), not only on top.
        for key in o.keys() {
            if let Some((name, why)) = refused_kind(key) {
                self.refusal.get_or_insert(Reason::Statement {
                    kind: name.to_owned(),
                    why,
                });
            }
        }
        // A table reference, wherever it stands.
        if o.contains_key("relname") && o.contains_key("relpersistence") {
            if let Some(name) = range_var(&Value::Object(o.clone())) {
                let cte = name.len() == 1 && scope.0.iter().any(|c| *c == name.last());
                let refname = alias(o).unwrap_or_else(|| name.last().to_owned());
                let binding = match alias_columns(o) {
                    // An alias's column list renames the first columns.
                    Some(columns) => Binding::columns(columns),
                    None if cte => Binding::columns(
                        self.fields
                            .cte_columns
                            .get(name.last())
                            .cloned()
                            .flatten()
                            .unwrap_or_default(),
                    ),
                    None => Binding::table(name.clone()),
                };
                self.fields.from_items.push((refname, binding));
                if !cte {
                    if locked {
                        self.writes.insert(name);
                    } else {
                        self.reads.insert(name);
                    }
                }
            }
            return;
        }
        // A function call, wherever it stands.
        if o.contains_key("funcname") && o.contains_key("funcformat") {
            self.function(o);
        }
        // Field selections, which may be calls (see `catalog`), and the
        // names they can be qualified by.
        self.fields.note(o);
        // Two constructs PostgreSQL's parser accepts, its server rejects
        // when it runs them, and its deparser cannot write (an assertion
        // aborts a debug build; a release build drops them from the text):
        // type modifiers other than constants and names (`numeric(1+1)`),
        // and operators qualified by more than a schema (`OPERATOR(a.b.+)`).
        if o.contains_key("type_oid")
            && let Some(typmods) = o.get("typmods").and_then(Value::as_array)
            && !typmods.iter().all(|m| {
                m.get("node").and_then(Value::as_object).is_some_and(|n| {
                    ["AConst", "ParamRef", "ColumnRef"]
                        .iter()
                        .any(|k| n.contains_key(*k))
                })
            })
        {
            self.refusal = Some(Reason::Construct(
                "a type modifier that is not a constant".into(),
            ));
        }
        // A bit string is written back as `b` or `x` and a string literal;
        // with anything but digits in it that literal can become `E'…'`, and
        // `bE'…'` reads as a cast to a type `be`. The server refuses such a
        // bit string when it runs it anyway.
        if let Some(bits) = o.get("bsval").and_then(Value::as_str) {
            let digits = match bits.split_at_checked(1) {
                Some(("b", digits)) => digits.bytes().all(|b| b == b'0' || b == b'1'),
                Some(("x", digits)) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
                _ => false,
            };
            if !digits {
                self.refusal = Some(Reason::Construct(
                    "a bit string with characters other than its digits".into(),
                ));
            }
        }
        let operator = if o.contains_key("lexpr") && o.contains_key("rexpr") {
            o.get("name")
        } else {
            o.get("oper_name").or_else(|| o.get("use_op"))
        };
        if operator
            .and_then(Value::as_array)
            .is_some_and(|parts| parts.len() > 2)
        {
            self.refusal = Some(Reason::Construct(
                "an operator qualified by more than a schema".into(),
            ));
        }
        // A statement with a WITH clause: its CTEs scope its body.
        // (Borrowed unless this node adds names: a copy per node would make
        // the walk quadratic in a statement's CTEs.)
        let mut inner = std::borrow::Cow::Borrowed(scope);
        if let Some(with) = o.get("with_clause").filter(|w| !w.is_null()) {
            let recursive = with
                .get("recursive")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let ctes: Vec<(&str, Option<&Value>)> = with
                .get("ctes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("node")?.get("CommonTableExpr"))
                .map(|c| {
                    (
                        c.get("ctename").and_then(Value::as_str).unwrap_or(""),
                        c.get("ctequery"),
                    )
                })
                .collect();
            let names: Vec<&str> = ctes.iter().map(|(n, _)| *n).collect();
            for c in with
                .get("ctes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("node")?.get("CommonTableExpr"))
            {
                let name = c.get("ctename").and_then(Value::as_str).unwrap_or("");
                let renamed = c
                    .get("aliascolnames")
                    .and_then(Value::as_array)
                    .filter(|a| !a.is_empty())
                    .and_then(|a| strings(a));
                let columns = renamed.or_else(|| c.get("ctequery").and_then(output_names));
                // The same name defined twice: its columns are not known.
                let known = if self.fields.cte_columns.contains_key(name) {
                    None
                } else {
                    columns
                };
                self.fields.cte_columns.insert(name.to_owned(), known);
            }
            for (i, (_, query)) in ctes.iter().enumerate() {
                let mut visible = scope.clone();
                visible.0.extend(
                    names[..if recursive { names.len() } else { i }]
                        .iter()
                        .copied(),
                );
                if let Some(query) = query {
                    self.value(query, &visible, false);
                }
            }
            inner.to_mut().0.extend(names);
        }
        // A DML statement's target is the real table, never a CTE.
        let dml = o.contains_key("with_clause") && o.contains_key("relation");
        if dml && let Some(target) = o.get("relation").and_then(range_var) {
            let refname = o
                .get("relation")
                .and_then(Value::as_object)
                .and_then(alias)
                .unwrap_or_else(|| target.last().to_owned());
            self.fields
                .from_items
                .push((refname, Binding::table(target.clone())));
            // INSERT … ON CONFLICT DO UPDATE reads the proposed row as
            // `excluded`, a row of the target table.
            if o.get("on_conflict_clause").is_some_and(|c| !c.is_null()) {
                self.fields
                    .from_items
                    .push(("excluded".to_owned(), Binding::table(target.clone())));
            }
            self.writes.insert(target);
        }
        if o.get("into_clause").is_some_and(|i| !i.is_null()) {
            self.select_into = true;
            if let Some(target) = o
                .get("into_clause")
                .and_then(|i| i.get("rel"))
                .and_then(range_var)
            {
                self.writes.insert(target);
            }
        }
        let locks_rows = o
            .get("locking_clause")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|l| {
                l.get("node")?
                    .get("LockingClause")?
                    .get("strength")?
                    .as_i64()
            })
            .any(|s| s >= pg_query::protobuf::LockClauseStrength::LcsForkeyshare as i64);
        for (key, child) in o {
            match key.as_str() {
                "with_clause" | "into_clause" => {}
                "relation" if dml => {}
                "from_clause" if locks_rows => self.value(child, &inner, true),
                _ => self.value(child, &inner, locked),
            }
        }
    }

    fn function(&mut self, o: &Map<String, Value>) {
        let Some(parts) = o
            .get("funcname")
            .and_then(Value::as_array)
            .and_then(|items| strings(items))
        else {
            return;
        };
        let name = Name::from_parts(Dialect::Postgres, parts);
        match super::functions::classify(Dialect::Postgres, &name) {
            super::FunctionClass::SequenceWrite | super::FunctionClass::SequenceRead => {
                let write = super::functions::classify(Dialect::Postgres, &name)
                    == super::FunctionClass::SequenceWrite;
                match o
                    .get("args")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .and_then(string_constant)
                    .and_then(|s| Name::parse(Dialect::Postgres, &s).ok())
                {
                    Some(sequence) if write => {
                        self.writes.insert(sequence);
                    }
                    Some(sequence) => {
                        self.reads.insert(sequence);
                    }
                    None => self.refusal = Some(Reason::Sequence(name.clone())),
                }
            }
            _ => {}
        }
        self.functions.insert(name);
    }
}

/// The field selections of a statement (`t.f`, `s.t.f`, `(expr).f`), each of
/// which PostgreSQL reads as a call of a function `f` when `f` is not a
/// column or field (see [`super::catalog`]), and the names of everything in
/// the statement a qualifier can name.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields {
    /// Each selection: its qualifier (`None` for `(expr).f`) and field.
    pub selections: Vec<(Option<Vec<String>>, String)>,
    /// Every FROM item (and DML target) by the name a qualifier uses for
    /// it (its alias, or a table's name), wherever it stands in the
    /// statement.
    pub from_items: Vec<(String, Binding)>,
    /// A FROM item whose name the walk does not know (a function, XMLTABLE
    /// or JSON_TABLE without an alias).
    pub unnamed_items: bool,
    /// Each CTE's output column names, where they are known.
    cte_columns: std::collections::HashMap<String, Option<Vec<String>>>,
}

/// What a FROM item's columns are known to be.
#[derive(Debug, Default, Clone)]
pub(crate) struct Binding {
    /// A table (not a CTE) whose columns the catalog knows.
    pub table: Option<Name>,
    /// Column names the item certainly has: an alias's column list, a
    /// column definition list, a subquery's or CTE's named outputs.
    pub columns: Vec<String>,
}

impl Binding {
    fn table(name: Name) -> Self {
        Binding {
            table: Some(name),
            columns: Vec::new(),
        }
    }

    fn columns(columns: Vec<String>) -> Self {
        Binding {
            table: None,
            columns,
        }
    }
}

impl Fields {
    fn note(&mut self, node: &Map<String, Value>) {
        if let Some(fields) = node
            .get("ColumnRef")
            .and_then(|c| c.get("fields"))
            .and_then(Value::as_array)
            && fields.len() >= 2
            && let Some(parts) = strings(fields)
            && let Some((field, qualifier)) = parts.split_last()
        {
            self.selections
                .push((Some(qualifier.to_vec()), field.clone()));
        }
        if let Some(indirection) = node
            .get("AIndirection")
            .and_then(|i| i.get("indirection"))
            .and_then(Value::as_array)
        {
            for item in indirection {
                if let Some(field) = item
                    .get("node")
                    .and_then(|n| n.get("String"))
                    .and_then(|s| s.get("sval"))
                    .and_then(Value::as_str)
                {
                    self.selections.push((None, field.to_owned()));
                }
            }
        }
        for (kind, item) in node {
            let Some(item) = item.as_object() else {
                continue;
            };
            // A table is bound where the walk reads it as a table.
            if item.contains_key("relname") && item.contains_key("relpersistence") {
                continue;
            }
            let mut columns = alias_columns(item);
            match kind.as_str() {
                "RangeSubselect" if columns.is_none() => {
                    columns = item.get("subquery").and_then(output_names);
                }
                "RangeFunction" if columns.is_none() => {
                    columns = column_definitions(item);
                }
                _ => {}
            }
            let binding = Binding::columns(columns.unwrap_or_default());
            match alias(item) {
                Some(name) => self.from_items.push((name, binding)),
                None if matches!(
                    kind.as_str(),
                    "RangeFunction" | "RangeTableFunc" | "JsonTable"
                ) =>
                {
                    self.unnamed_items = true;
                }
                None => {}
            }
            // `JOIN … USING (…) AS j` names the join's USING columns.
            if let Some(name) = item
                .get("join_using_alias")
                .and_then(|a| a.get("aliasname"))
                .and_then(Value::as_str)
            {
                self.from_items.push((name.to_owned(), Binding::default()));
            }
        }
    }
}

/// An alias's column list (`AS x(a, b)`), if it has one.
fn alias_columns(item: &Map<String, Value>) -> Option<Vec<String>> {
    item.get("alias")?
        .get("colnames")?
        .as_array()
        .filter(|c| !c.is_empty())
        .and_then(|c| strings(c))
}

/// A function's column definition list (`AS x(id int, name text)`).
fn column_definitions(item: &Map<String, Value>) -> Option<Vec<String>> {
    let definitions = item
        .get("coldeflist")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())?;
    definitions
        .iter()
        .map(|d| {
            d.get("node")?
                .get("ColumnDef")?
                .get("colname")?
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// The output column names of a query (a `node` holding a SelectStmt)
/// that are certain: explicit `AS` names and plain column references
/// (others, and `*`, are left out: the query has at least these columns).
/// A set operation has its first branch's names.
fn output_names(query: &Value) -> Option<Vec<String>> {
    let select = query.get("node")?.get("SelectStmt")?;
    if let Some(left) = select.get("larg").filter(|l| !l.is_null()) {
        return output_names(&serde_json::json!({ "node": { "SelectStmt": left } }));
    }
    let targets = select.get("target_list")?.as_array()?;
    let mut names = Vec::new();
    for target in targets {
        let target = target.get("node")?.get("ResTarget")?;
        if let Some(name) = target
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            names.push(name.to_owned());
        } else if let Some(fields) = target
            .get("val")
            .and_then(|v| v.get("node"))
            .and_then(|n| n.get("ColumnRef"))
            .and_then(|c| c.get("fields"))
            .and_then(Value::as_array)
            && let Some(last) = fields.last()
            && let Some(name) = last
                .get("node")
                .and_then(|n| n.get("String"))
                .and_then(|s| s.get("sval"))
                .and_then(Value::as_str)
        {
            names.push(name.to_owned());
        }
    }
    Some(names)
}

/// An item's alias (`AS name`), if it has one.
fn alias(item: &Map<String, Value>) -> Option<String> {
    item.get("alias")?
        .get("aliasname")?
        .as_str()
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
}

/// A string constant, possibly cast (`'s'::regclass`).
fn string_constant(node: &Value) -> Option<String> {
    let node = node.get("node")?;
    if let Some(cast) = node.get("TypeCast") {
        return string_constant(cast.get("arg")?);
    }
    node.get("AConst")?
        .get("val")?
        .get("Sval")?
        .get("sval")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The analysis with no manifest to judge against.
    fn analyse(sql: &str, raw_sql: bool) -> Result<(Admitted, Access), Reason> {
        super::analyse(sql, raw_sql, |_| Ok(()))
    }

    fn text(sql: &str) -> String {
        analyse(sql, false).unwrap().0.text
    }

    fn access(sql: &str) -> Access {
        analyse(sql, false).unwrap().1
    }

    fn names(set: &std::collections::BTreeSet<Name>) -> Vec<String> {
        set.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn numbers_placeholders_and_sends_the_deparsed_text() {
        assert_eq!(
            text("select id from users /* x */ where id=? and name = ? -- c"),
            "SELECT id FROM users WHERE id = $1 AND name = $2"
        );
        let (admitted, _) = analyse("SELECT ?, '?', \"?\" FROM t WHERE a = ?", false).unwrap();
        let Placeholders::Numbered(p) = admitted.placeholders else {
            panic!()
        };
        assert_eq!(p.iter().map(|(_, i)| *i).collect::<Vec<_>>(), [0, 1]);
        assert!(matches!(
            analyse("SELECT $1", false),
            Err(Reason::Placeholder(_))
        ));
    }

    #[test]
    fn reads_tables_functions_and_scopes() {
        let a = access("SELECT query_to_xml('select * from secrets', true, true, '')::text");
        assert_eq!(names(&a.functions), ["query_to_xml"]);
        let a = access(
            "SELECT (WITH secrets AS (SELECT 1 AS s) SELECT s FROM secrets), (SELECT s FROM secrets LIMIT 1) FROM users",
        );
        assert_eq!(names(&a.reads), ["secrets", "users"]);
        let a = access("WITH secrets AS (SELECT s FROM secrets) SELECT * FROM secrets");
        assert_eq!(names(&a.reads), ["secrets"]);
        let a = access("WITH notes AS (SELECT 1) UPDATE notes SET step = 1");
        assert_eq!(names(&a.writes), ["notes"]);
        let a = access("SELECT * FROM \"Secrets\", public.users");
        assert_eq!(names(&a.reads), ["\"Secrets\"", "public.users"]);
        let a = access("TABLE secrets");
        assert_eq!(names(&a.reads), ["secrets"]);
        let a = access("SELECT nextval('notes_id_seq')");
        assert_eq!(names(&a.writes), ["notes_id_seq"]);
        for lock in ["UPDATE", "NO KEY UPDATE", "SHARE", "KEY SHARE"] {
            let a = access(&format!("SELECT * FROM users FOR {lock}"));
            assert_eq!(names(&a.writes), ["users"], "FOR {lock}");
        }
        let a = access("INSERT INTO notes OVERRIDING SYSTEM VALUE SELECT * FROM users");
        assert_eq!(
            (names(&a.writes), names(&a.reads)),
            (vec!["notes".to_owned()], vec!["users".to_owned()])
        );
    }

    #[test]
    fn refuses_by_kind_and_bounds_depth() {
        for sql in [
            "COMMIT",
            "SET search_path = x",
            "COPY t TO '/tmp/x'",
            "PREPARE p AS SELECT 1",
            "LOCK t",
        ] {
            assert!(
                matches!(analyse(sql, true), Err(Reason::Statement { .. })),
                "{sql}"
            );
        }
        assert!(matches!(
            analyse("SELECT 1; COMMIT", false),
            Err(Reason::Multiple)
        ));
        assert!(matches!(analyse("/* only */", false), Err(Reason::Empty)));
        // Constructs the deparser cannot write (a debug build aborts on them).
        for sql in [
            "SELECT 1::numeric(1+1)",
            "SELECT 1 OPERATOR(a.b.+) 2",
            "SELECT 1 FROM t ORDER BY x USING OPERATOR(a.b.<)",
            "SELECT 1 OPERATOR(a.b.=) ANY (SELECT 1)",
        ] {
            assert!(
                matches!(analyse(sql, false), Err(Reason::Construct(_))),
                "{sql}"
            );
        }
        assert!(matches!(
            analyse("SELECT B'\\0 ||--', X'1F'", false),
            Err(Reason::Construct(_))
        ));
        assert!(analyse("SELECT B'0101', X'1f', b''", false).is_ok());
        assert!(
            analyse(
                "SELECT 1::numeric(10, 2), 1 OPERATOR(pg_catalog.+) 2",
                false
            )
            .is_ok()
        );
        // Nothing to scan (no tokens) is empty, not a crash.
        for blank in ["", " ", "\n\t "] {
            assert!(
                matches!(analyse(blank, false), Err(Reason::Empty)),
                "{blank:?}"
            );
        }
        // Long runs of operator characters, which PostgreSQL's scanner reads
        // in quadratic time, are refused before it sees them.
        let run = format!("SELECT 1 {}1", "+-".repeat(2_049));
        assert_eq!(
            analyse(&run, false).err(),
            Some(Reason::OperatorRuns(4_098))
        );
        let run = format!("SELECT 1 /*{}*/", "/*".repeat(3_000));
        assert_eq!(
            analyse(&run, false).err(),
            Some(Reason::OperatorRuns(6_004))
        );
        let runs = format!(
            "SELECT 1 {}1",
            format!("{} ", "+-".repeat(64)).repeat(1_100)
        );
        assert_eq!(analyse(&runs, false).err(), Some(Reason::OperatorRuns(128)));
        let banners = format!(
            "SELECT 1 {}",
            format!("-- {}\n/* {} */\n", "-".repeat(120), "=".repeat(120)).repeat(100)
        );
        assert!(analyse(&banners, false).is_ok());
        let chain = format!("SELECT 1{}", "+1".repeat(200_000));
        assert!(matches!(analyse(&chain, false), Err(Reason::TooComplex(_))));
        // Deep trees are read (prost's own recursion limit of 100 refused
        // any chain past ~48 operators), on a stack like the gate's.
        std::thread::Builder::new()
            .stack_size(super::super::ANALYSIS_STACK)
            .spawn(|| {
                for deep in [
                    format!("SELECT 1{}", "+1".repeat(1_000)),
                    format!("SELECT 'a'{}", " || 'b'".repeat(200)),
                ] {
                    let read = analyse(&deep, false);
                    assert!(read.is_ok(), "{:?}", read.err());
                }
            })
            .unwrap()
            .join()
            .unwrap();
        // Redundant parentheses leave no trace in PostgreSQL's tree.
        let parens = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert_eq!(analyse(&parens, false).unwrap().0.text, "SELECT 1");
    }
}
