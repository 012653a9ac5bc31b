//! Everything dmig knows about the SQL a guest sends, in one place: reading
//! it the way the target database reads it, deciding whether it may run, and
//! producing the exact text that then runs.
//!
//! **What is checked is what runs.** A guard that re-reads SQL with its own
//! parser can disagree with the server (an executable comment, a string
//! escape, a nested comment), and every disagreement is a way past it. So the
//! gate never forwards the guest's text. It reads the statement into tokens
//! and a tree, checks the tree, and sends the server a canonical rendering of
//! exactly what it checked:
//!
//! - PostgreSQL: PostgreSQL's own parser (libpg_query, through `pg_query`)
//!   reads the statement, and its own deparser writes the text that is sent,
//!   so no comment, escape or quoting rule can differ.
//! - MySQL/MariaDB and SQLite: sqlparser's tokenizer reads the statement in the
//!   database's lexical rules; [`tokens`] renders each token in one
//!   unambiguous spelling (comments dropped, strings and identifiers quoted
//!   canonically), refuses the few constructs with no such spelling
//!   (executable comments `/*! */` and `/*M! */`, `#`, odd placeholders), and
//!   the parser then reads that canonical text, which is what the server gets.
//!
//! The checks themselves ([`Gate::admit`]): one statement per call; the
//! statement kinds that would escape the step's transaction or change the
//! connection are refused by name in every mode ([`policy`]); the tables it
//! reads and writes, DDL, and every function it calls ([`functions`]) must be
//! within the manifest; the `dmig_` ledger is refused in every mode. The
//! analysis runs on a thread with a large stack and bounded work, so no
//! statement under the size caps can crash the host.

mod ast;
pub mod catalog;
mod functions;
#[cfg(test)]
mod fuzz_tests;
pub mod names;
pub(crate) mod placeholders;
mod policy;
mod postgres;
mod tokens;

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::ops::Range;

pub use crate::db::Dialect;
pub use catalog::Catalog;
pub use functions::{Class as FunctionClass, Danger, classify as classify_function};
pub use names::Name;

use crate::manifest::Capabilities;

/// How many operators and keywords one statement may chain: bounds the depth
/// of the tree the gate walks (a `1+1+1+…` chain nests one level per `+`).
pub const MAX_OPERATORS: usize = 10_000;

/// PostgreSQL: how much scanning the runs of operator characters
/// (`+-*/<>=~!@#%^&|`?`) in one statement may cost, as the sum of the
/// squares of their lengths, wherever they stand (comments and literals
/// included). PostgreSQL's scanner reads a run again from each token it
/// splits off it (at every `/*`, `--` and trailing `+` or `-`), so a run
/// costs time growing with the square of its length: a 20,000-character run
/// takes seconds, a 1 MiB one hours, on a thread no timeout can stop. This
/// allows one run of 4,096 characters, or hundreds of separator lines in
/// comments, and keeps any statement's scan to a fraction of a second.
pub const MAX_OPERATOR_RUN_WORK: u64 = 1 << 24;

/// The stack the analysis runs on: deep enough for [`MAX_OPERATORS`] levels
/// of any tree the parsers build, reserved (not committed) per analysis.
const ANALYSIS_STACK: usize = 256 * 1024 * 1024;

/// The lexical settings of the server the statement goes to, where they
/// change how text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syntax {
    pub dialect: Dialect,
    /// MySQL/MariaDB: whether `\` escapes in string literals (off under the
    /// `NO_BACKSLASH_ESCAPES` SQL mode). Ignored elsewhere.
    pub backslash_escapes: bool,
}

impl Syntax {
    /// The defaults of a freshly installed server of `dialect`.
    pub fn of(dialect: Dialect) -> Self {
        Syntax {
            dialect,
            backslash_escapes: dialect == Dialect::Mysql,
        }
    }
}

/// A statement the gate admitted: the text to send (not the guest's) and
/// where its parameters are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The canonical text that runs.
    pub text: String,
    pub placeholders: Placeholders,
    /// DDL: once it has run, the gate's [`Catalog`] is out of date.
    pub changes_schema: bool,
}

/// Where an admitted statement's parameters are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholders {
    /// `?` markers in order (MySQL/MariaDB and SQLite bind them natively).
    Positional,
    /// PostgreSQL: each `$n` in the text, as its byte range and the 0-based
    /// index of the parameter it takes.
    Numbered(Vec<(Range<usize>, usize)>),
}

/// What the manifest grants.
#[derive(Debug, Clone)]
enum Grants {
    /// No manifest (`--allow-undeclared`): anything but the ledger.
    Unrestricted,
    Declared {
        reads: HashSet<Name>,
        writes: HashSet<Name>,
        functions: HashSet<Name>,
        ddl: bool,
        raw_sql: bool,
    },
}

/// The gate for one run: a target database and what the artifact may do.
#[derive(Debug, Clone)]
pub struct Gate {
    syntax: Syntax,
    grants: Grants,
    catalog: std::sync::Arc<Catalog>,
}

impl Gate {
    /// A gate for an artifact declaring `capabilities` (`None`: declared
    /// nothing and runs unrestricted, but never on the ledger).
    ///
    /// # Errors
    ///
    /// A message naming a declared name that does not parse.
    pub fn new(syntax: Syntax, capabilities: Option<&Capabilities>) -> Result<Self, String> {
        let grants = match capabilities {
            None => Grants::Unrestricted,
            Some(c) => {
                let parse = |list: &[String]| -> Result<HashSet<Name>, String> {
                    list.iter()
                        .map(|t| Name::parse(syntax.dialect, t))
                        .collect()
                };
                Grants::Declared {
                    reads: parse(&c.reads)?,
                    writes: parse(&c.writes)?,
                    functions: parse(&c.functions)?,
                    ddl: c.ddl,
                    raw_sql: c.raw_sql,
                }
            }
        };
        Ok(Gate {
            syntax,
            grants,
            catalog: Default::default(),
        })
    }

    /// PostgreSQL: the server's [`Catalog`], which decides whether a field
    /// selection (`t.f`, `(expr).f`) is a column or a function call. A gate
    /// without one (the default, empty) treats every field selection as a
    /// column, so a gate for a real PostgreSQL connection must be given the
    /// catalog read from it, and a new one after every schema change.
    pub fn with_catalog(mut self, catalog: Catalog) -> Self {
        self.set_catalog(catalog);
        self
    }

    /// Replaces the catalog (see [`Gate::with_catalog`]).
    pub fn set_catalog(&mut self, catalog: Catalog) {
        self.catalog = std::sync::Arc::new(catalog);
    }

    /// The database this gate reads SQL for.
    pub fn syntax(&self) -> Syntax {
        self.syntax
    }

    /// Whether statements may reach what the gate cannot see (raw SQL, or
    /// no manifest at all): dynamic SQL, unparsed statements.
    pub fn unbounded(&self) -> bool {
        self.raw_sql()
    }

    fn raw_sql(&self) -> bool {
        match &self.grants {
            Grants::Unrestricted => true,
            Grants::Declared { raw_sql, .. } => *raw_sql,
        }
    }

    /// Reads, checks and renders one guest statement.
    ///
    /// # Errors
    ///
    /// A [`Refusal`] naming the statement and why.
    pub fn admit(&self, sql: &str) -> Result<Admitted, Refusal> {
        let refuse = |reason| Refusal {
            statement: excerpt(sql),
            reason,
        };
        if sql.contains('\0') {
            return Err(refuse(Reason::Construct(
                "a NUL character (pass binary data as a parameter)".into(),
            )));
        }
        // Deep trees are walked and dropped on a thread with room for them.
        let analysed = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("dmig-sql-gate".into())
                .stack_size(ANALYSIS_STACK)
                .spawn_scoped(scope, || self.analyse(sql))
                .map_err(|e| Reason::Unreadable(format!("cannot start the SQL analysis: {e}")))?
                .join()
                .unwrap_or_else(|_| {
                    Err(Reason::Unreadable(
                        "the SQL analysis failed on this statement (please report it)".into(),
                    ))
                })
        });
        analysed.map_err(refuse)
    }

    fn analyse(&self, sql: &str) -> Result<Admitted, Reason> {
        let (mut admitted, access) = match self.syntax.dialect {
            Dialect::Postgres => postgres::analyse(sql, self.raw_sql(), |a| self.judge(a))?,
            Dialect::Mysql | Dialect::Sqlite => tokens::analyse(self.syntax, sql, self.raw_sql())?,
        };
        self.judge(&access)?;
        // A declared function or a procedure may change the schema too.
        admitted.changes_schema = access.ddl
            || access.checked.is_none()
            || access.kind.eq_ignore_ascii_case("call")
            || access.functions.iter().any(|f| {
                matches!(
                    functions::classify(self.syntax.dialect, f),
                    FunctionClass::Other | FunctionClass::Dangerous(_)
                )
            });
        Ok(admitted)
    }

    /// Decides whether what a statement touches is within the grants.
    fn judge(&self, access: &Access) -> Result<(), Reason> {
        if let Some(table) = access.all_tables().find(|t| t.is_ledger()) {
            return Err(Reason::Ledger(table.to_string()));
        }
        if access.mentions_ledger {
            return Err(Reason::Ledger("a dmig_ ledger table".into()));
        }
        // PostgreSQL's pg_settings view writes through `set_config`: an
        // UPDATE of it is `SET`, refused in every mode like `SET` itself
        // (the session's settings are what the gate's renderings assume).
        if self.syntax.dialect == Dialect::Postgres
            && let Some(table) = access
                .writes
                .iter()
                .find(|t| t.last().eq_ignore_ascii_case("pg_settings"))
        {
            return Err(Reason::Statement {
                kind: format!("writing {table}"),
                why: policy::SESSION,
            });
        }
        let Grants::Declared {
            reads,
            writes,
            functions,
            ddl,
            raw_sql,
        } = &self.grants
        else {
            return Ok(());
        };
        if !raw_sql {
            self.judge_fields(&access.fields, access.ddl, functions)?;
        }
        for function in &access.functions {
            match functions::classify(self.syntax.dialect, function) {
                FunctionClass::Pure
                | FunctionClass::SequenceRead
                | FunctionClass::SequenceWrite => {}
                FunctionClass::Dangerous(danger) if !raw_sql => {
                    return Err(Reason::Dangerous(function.clone(), danger));
                }
                FunctionClass::Other if !raw_sql && !functions.contains(function) => {
                    return Err(Reason::Function(function.clone()));
                }
                FunctionClass::Dangerous(_) | FunctionClass::Other => {}
            }
        }
        let Some(kind) = &access.checked else {
            if !raw_sql {
                return Err(Reason::Unchecked(access.kind.clone()));
            }
            // Unknown effects: every table it names must be writable.
            if let Some(t) = access.all_tables().find(|t| !writes.contains(*t)) {
                return Err(Reason::Write(t.clone()));
            }
            return Ok(());
        };
        if access.ddl && !ddl {
            return Err(Reason::Ddl(kind.clone()));
        }
        if let Some(t) = access.writes.iter().find(|t| !writes.contains(*t)) {
            return Err(Reason::Write(t.clone()));
        }
        if let Some(t) = access
            .reads
            .iter()
            .find(|t| !reads.contains(*t) && !writes.contains(*t))
        {
            return Err(Reason::Read(t.clone()));
        }
        Ok(())
    }
}

impl Gate {
    /// PostgreSQL: refuses a field selection that may call a function the
    /// manifest does not let the statement call (see [`catalog`]): its name
    /// is a function's, and it is not a column of the table it is
    /// qualified by. Every item of the statement its qualifier can name
    /// must be a table with that column, whichever the server picks.
    fn judge_fields(
        &self,
        fields: &postgres::Fields,
        ddl: bool,
        declared: &HashSet<Name>,
    ) -> Result<(), Reason> {
        for (qualifier, field) in &fields.selections {
            if !self.catalog.is_function(field) {
                continue;
            }
            let function = Name::from_parts(Dialect::Postgres, [field]);
            let callable = match functions::classify(Dialect::Postgres, &function) {
                FunctionClass::Pure => true,
                FunctionClass::Other => declared.contains(&function),
                _ => false,
            };
            if callable {
                continue;
            }
            // In DDL the statement may change the very table it names
            // (`ALTER TABLE t DROP COLUMN f, ADD CHECK (t.f …)`), which the
            // catalog describes as it was.
            let column = !ddl
                && qualifier.as_deref().is_some_and(|qualifier| {
                    let Some(refname) = qualifier.last() else {
                        return false;
                    };
                    let mut items = fields
                        .from_items
                        .iter()
                        .filter(|(name, _)| name == refname)
                        .peekable();
                    !fields.unnamed_items
                        && items.peek().is_some()
                        && items.all(|(_, binding)| {
                            binding.columns.iter().any(|c| c == field)
                                || binding
                                    .table
                                    .as_ref()
                                    .is_some_and(|t| self.catalog.has_column(t.parts(), field))
                        })
                });
            if !column {
                let written = match qualifier {
                    Some(q) => format!("{}.{field}", q.join(".")),
                    None => format!("(…).{field}"),
                };
                return Err(Reason::FieldCall(written, function));
            }
        }
        Ok(())
    }
}

/// What one statement touches, as the gate read it.
#[derive(Debug, Default)]
pub(crate) struct Access {
    /// The statement's kind, for messages (`SELECT`, `CREATE INDEX`, …).
    pub kind: String,
    /// `Some(kind)` when its effects are understood; `None` for a statement
    /// only raw SQL may run.
    pub checked: Option<String>,
    pub ddl: bool,
    pub reads: BTreeSet<Name>,
    pub writes: BTreeSet<Name>,
    pub functions: BTreeSet<Name>,
    /// PostgreSQL: field selections, which may be function calls.
    pub(crate) fields: postgres::Fields,
    /// Raw SQL only: a word or literal of the statement names the ledger.
    pub mentions_ledger: bool,
}

impl Access {
    fn all_tables(&self) -> impl Iterator<Item = &Name> {
        self.writes.iter().chain(&self.reads)
    }

    /// Moves every name in `reads` that is also written into `writes` only.
    pub(crate) fn settle(&mut self) {
        let writes = &self.writes;
        self.reads.retain(|t| !writes.contains(t));
    }
}

/// A statement the gate refused; its `Display` is the one-line explanation
/// the operator and the ledger get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The start of the statement, on one line.
    pub statement: String,
    pub reason: Reason,
}

/// Why a statement was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// A kind of statement refused by name in every mode (`COMMIT`, `SET`).
    Statement { kind: String, why: &'static str },
    /// More than one statement in one call.
    Multiple,
    /// Nothing but whitespace and comments.
    Empty,
    /// The database's grammar does not accept it.
    Unreadable(String),
    /// A construct the gate cannot read exactly as the server would.
    Construct(String),
    /// Over [`MAX_OPERATORS`].
    TooComplex(usize),
    /// Nested deeper than the parser's tree can be read back (PostgreSQL:
    /// about 50 levels of nested expressions or subqueries).
    TooDeep,
    /// PostgreSQL: runs of operator characters over
    /// [`MAX_OPERATOR_RUN_WORK`]; the longest run's length.
    OperatorRuns(usize),
    /// Placeholders other than `?`.
    Placeholder(String),
    /// Reads a table declared in neither `reads` nor `writes`.
    Read(Name),
    /// Writes a table not declared in `writes`.
    Write(Name),
    /// DDL without `.ddl()`.
    Ddl(String),
    /// A statement whose effects the gate cannot check, without raw SQL.
    Unchecked(String),
    /// Touches the host's ledger.
    Ledger(String),
    /// Calls a function the manifest does not declare.
    Function(Name),
    /// Calls a function refused even when declared.
    Dangerous(Name, Danger),
    /// A sequence function whose sequence is not a literal name.
    Sequence(Name),
    /// PostgreSQL: a field selection (as written) that may call a function
    /// the artifact may not call.
    FieldCall(String, Name),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.statement;
        match &self.reason {
            Reason::Statement { kind, why } => {
                write!(
                    f,
                    "statement `{s}` is refused: {kind} statements are refused because {why}"
                )
            }
            Reason::Multiple => write!(
                f,
                "statement `{s}` is refused: one call runs exactly one statement (split them into separate calls)"
            ),
            Reason::Empty => write!(
                f,
                "statement `{s}` is refused: it is empty (only whitespace or comments)"
            ),
            Reason::Unreadable(e) => write!(
                f,
                "statement `{s}` is refused: the database's grammar does not accept it ({e})"
            ),
            Reason::Construct(what) => write!(
                f,
                "statement `{s}` is refused: it contains {what}, which the host will not forward because the database could read it differently from the check"
            ),
            Reason::TooComplex(n) => write!(
                f,
                "statement `{s}` is refused: it chains {n} operators and keywords, over the {MAX_OPERATORS} the host analyses (split it, or send smaller batches)"
            ),
            Reason::TooDeep => write!(
                f,
                "statement `{s}` is refused: it nests expressions or subqueries deeper than the host reads (about 50 levels); flatten it (for example a long a + b + c chain into a function call or several statements)"
            ),
            Reason::OperatorRuns(n) => write!(
                f,
                "statement `{s}` is refused: its runs of operator characters (such as + - * / = < > with nothing between them; the longest has {n}) are more than the host reads, as PostgreSQL's scanner takes time growing with the square of each run (separate them with spaces, or pass such text as a parameter)"
            ),
            Reason::Placeholder(p) => write!(
                f,
                "statement `{s}` is refused: placeholder {p} is not supported; write ? for every parameter on every database"
            ),
            Reason::Read(t) => write!(
                f,
                "statement `{s}` reads table {t}, which the artifact does not declare (add it to the manifest's reads and have the change reviewed)"
            ),
            Reason::Write(t) => write!(
                f,
                "statement `{s}` writes table {t}, which the artifact does not declare in writes (add it to the manifest's writes and have the change reviewed)"
            ),
            Reason::Ddl(kind) => write!(
                f,
                "statement `{s}` is DDL ({kind}), which the artifact does not declare (add .ddl() to the manifest and have the change reviewed)"
            ),
            Reason::Unchecked(kind) => write!(
                f,
                "statement `{s}` is a {kind} statement, whose effects cannot be checked against the declared tables; declare .raw_sql() in the manifest to allow it"
            ),
            Reason::Ledger(table) => write!(
                f,
                "statement `{s}` touches {table}; the dmig_ ledger tables belong to the host and no migration may use them"
            ),
            Reason::Function(name) => write!(
                f,
                "statement `{s}` calls function {name}, which the artifact does not declare (add it to the manifest's functions and have the change reviewed)"
            ),
            Reason::FieldCall(field, function) => write!(
                f,
                "statement `{s}` is refused: `{field}` may call function {function} (PostgreSQL reads a field that is not a column of the table it names as a call of the function of that name); qualify a column by a table the statement names, rename the field with AS, or declare the function in the manifest"
            ),
            Reason::Dangerous(name, danger) => write!(
                f,
                "statement `{s}` calls function {name}, which {}; it is refused even when declared, unless the artifact declares .raw_sql()",
                danger.describe()
            ),
            Reason::Sequence(name) => write!(
                f,
                "statement `{s}` calls {name} with a sequence that is not a literal name, so the sequence cannot be checked (write its name as a string literal)"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// The statement's start on one line, at most 80 characters, with control
/// characters shown escaped so it cannot forge output lines.
pub fn excerpt(sql: &str) -> String {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let flat: String = flat
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if flat.chars().count() <= 80 {
        flat
    } else {
        format!("{} …", flat.chars().take(77).collect::<String>())
    }
}
