//! Property tests of the SQL gate (issue 13, point 5): statements built from
//! the pieces that have fooled SQL guards before, read by every dialect's
//! gate.
//!
//! For every generated input and every gate (each of PostgreSQL, MySQL with
//! and without backslash escapes, and SQLite; under a manifest that reads
//! `users` and writes `notes`, the same with raw SQL, and no manifest):
//!
//! - **verdict**: `admit` returns, with no panic, no stack overflow and never
//!   the internal "please report it" refusal;
//! - **fixpoint**: the text an admitted statement runs as, admitted again by
//!   the same gate (its `$n` given back as `?` on PostgreSQL), is admitted as
//!   that very text: what runs, re-checked, is what was checked;
//! - **containment**: under the manifest without raw SQL, no admitted text
//!   names `secrets` or a `dmig_` table as an identifier (and in no mode does
//!   one name a `dmig_` table), by the dialect's own lexer: `pg_query`'s
//!   scanner, sqlparser's tokenizer for the others. The generators put
//!   those names only in table references kept in one piece (`FROM t`,
//!   `UPDATE t`, `INSERT INTO t`, `(TABLE t)`…, which no comment can split),
//!   in self-contained subqueries, and inside comments and literals, so
//!   such an identifier in an admitted text is either a table the gate let
//!   through or a comment or literal it read differently from the server;
//! - **scoping**: a real table hidden behind a CTE of the same name (read
//!   outside the CTE's scope, in its own non-recursive body, or qualified)
//!   is refused.
//!
//! `PROPTEST_CASES` sets the number of cases of each property (defaults
//! below keep the whole module well under a minute in a debug build);
//! failures are not persisted (proptest prints the shrunk input).

use std::sync::LazyLock;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sqlparser::tokenizer::Token;

use super::{Admitted, Dialect, Gate, Placeholders, Reason, Syntax};
use crate::manifest::Capabilities;

/// The proptest configuration for a property with `cases` cases by default.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    // A fixed seed by default, so CI runs the same cases every time; set
    // PROPTEST_RNG_SEED (a number) or DMIG_PROPTEST_RANDOM=1 to explore.
    let rng_seed = if std::env::var_os("DMIG_PROPTEST_RANDOM").is_some() {
        proptest::test_runner::RngSeed::Random
    } else if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
        Config::default().rng_seed
    } else {
        proptest::test_runner::RngSeed::Fixed(0x00d1_5eed)
    };
    Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        rng_seed,
        ..Config::default()
    }
}

/// Which manifest a gate applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Reads `users`, writes `notes`, nothing else.
    Manifest,
    /// The same, with `.raw_sql()`.
    Raw,
    /// No manifest (`--allow-undeclared`).
    Unrestricted,
}

static GATES: LazyLock<Vec<(Gate, Mode)>> = LazyLock::new(|| {
    let syntaxes = [
        Syntax::of(Dialect::Postgres),
        Syntax::of(Dialect::Mysql),
        Syntax {
            dialect: Dialect::Mysql,
            backslash_escapes: false,
        },
        Syntax::of(Dialect::Sqlite),
    ];
    let manifest = Capabilities {
        reads: vec!["users".into()],
        writes: vec!["notes".into()],
        ..Capabilities::default()
    };
    let raw = Capabilities {
        raw_sql: true,
        ..manifest.clone()
    };
    syntaxes
        .iter()
        .flat_map(|s| {
            [
                (Gate::new(*s, Some(&manifest)).unwrap(), Mode::Manifest),
                (Gate::new(*s, Some(&raw)).unwrap(), Mode::Raw),
                (Gate::new(*s, None).unwrap(), Mode::Unrestricted),
            ]
        })
        .collect()
});

/// Every property but scoping, for `sql` on every gate.
fn judge_everywhere(sql: &str) -> Result<(), TestCaseError> {
    for (i, (gate, mode)) in GATES.iter().enumerate() {
        if judge(gate, *mode, sql, true)? {
            ADMITTED[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    Ok(())
}

/// How many statements each gate admitted (printed with `--nocapture`, to
/// see that the generators reach the fixpoint and containment checks).
static ADMITTED: [std::sync::atomic::AtomicUsize; 12] =
    [const { std::sync::atomic::AtomicUsize::new(0) }; 12];

/// Checks `sql` on `gate`; whether it was admitted.
fn judge(gate: &Gate, mode: Mode, sql: &str, contained: bool) -> Result<bool, TestCaseError> {
    let syntax = gate.syntax();
    let admitted = match gate.admit(sql) {
        Ok(admitted) => admitted,
        Err(refusal) => {
            prop_assert!(
                !is_internal(&refusal.reason),
                "{syntax:?} {mode:?}: internal refusal for {sql:?}: {refusal}"
            );
            return Ok(false);
        }
    };
    // Fixpoint: the text that runs, checked again, runs as itself.
    let again = resend(&admitted);
    match gate.admit(&again) {
        Ok(second) => {
            prop_assert_eq!(
                &second,
                &admitted,
                "{:?} {:?}: the admitted text {:?} (of {:?}) is not a fixpoint",
                syntax,
                mode,
                admitted.text,
                sql
            );
        }
        Err(refusal) => {
            return Err(TestCaseError::fail(format!(
                "{syntax:?} {mode:?}: {sql:?} was admitted as {:?}, which is then refused: {refusal}",
                admitted.text
            )));
        }
    }
    if !contained {
        return Ok(true);
    }
    // Containment.
    let words = identifiers(syntax, &admitted.text).map_err(|e| {
        TestCaseError::fail(format!(
            "{syntax:?} {mode:?}: the admitted text {:?} (of {sql:?}) does not scan: {e}",
            admitted.text
        ))
    })?;
    for word in words {
        let lower = word.to_lowercase();
        let ledger = lower.starts_with("dmig_");
        let secret = lower == "secrets";
        prop_assert!(
            !(ledger || (secret && mode == Mode::Manifest)),
            "{:?} {:?}: {:?} was admitted as {:?}, which names {:?}",
            syntax,
            mode,
            sql,
            admitted.text,
            word
        );
    }
    Ok(true)
}

/// The refusals that mean the gate itself failed.
fn is_internal(reason: &Reason) -> bool {
    match reason {
        Reason::Unreadable(m) => {
            m.contains("please report it") || m.contains("cannot start the SQL analysis")
        }
        // A panic in the deparser, caught.
        Reason::Construct(m) => m == "a statement PostgreSQL's deparser cannot write",
        _ => false,
    }
}

/// What a guest would send to run `admitted.text`: the text itself, with
/// PostgreSQL's numbered parameters written back as `?`.
fn resend(admitted: &Admitted) -> String {
    match &admitted.placeholders {
        Placeholders::Positional => admitted.text.clone(),
        Placeholders::Numbered(spots) => {
            let mut out = String::new();
            let mut rest = 0;
            for (range, _) in spots {
                out.push_str(&admitted.text[rest..range.start]);
                out.push('?');
                rest = range.end;
            }
            out.push_str(&admitted.text[rest..]);
            out
        }
    }
}

/// The identifiers of `text` (unquoted; string literals, comments and
/// MySQL's `@variables` left out), read by the dialect's own lexer.
fn identifiers(syntax: Syntax, text: &str) -> Result<Vec<String>, String> {
    match syntax.dialect {
        Dialect::Postgres => {
            use pg_query::protobuf::Token as Pg;
            let tokens = pg_query::scan(text).map_err(|e| e.to_string())?.tokens;
            Ok(tokens
                .iter()
                .filter(|t| {
                    matches!(Pg::try_from(t.token), Ok(Pg::Ident | Pg::Uident))
                        || t.keyword_kind != 0
                })
                .filter_map(|t| text.get(t.start as usize..t.end as usize))
                .map(|w| {
                    let w = w.strip_prefix("U&").unwrap_or(w);
                    match w.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
                        Some(quoted) => quoted.replace("\"\"", "\""),
                        None => w.to_owned(),
                    }
                })
                .collect())
        }
        Dialect::Mysql | Dialect::Sqlite => {
            // The gate's own lexer: the rendering must read back through it.
            let tokens = super::tokens::tokenize(syntax, text).map_err(|e| format!("{e:?}"))?;
            Ok(tokens
                .into_iter()
                .filter_map(|t| match t {
                    Token::Word(w) if !w.value.starts_with('@') => Some(w.value),
                    _ => None,
                })
                .collect())
        }
    }
}

// ---------------------------------------------------------------------------
// The hostile pieces.

/// Keywords, in the statement's and the pieces' positions. (Left out: the
/// ones after which `FROM x` does not name a table: `IS DISTINCT FROM`,
/// `EXTRACT(… FROM`, `SUBSTRING(… FROM`, `TRIM(… FROM`.)
const KEYWORDS: &[&str] = &[
    "SELECT",
    "UPDATE",
    "INSERT",
    "INTO",
    "VALUES",
    "DELETE",
    "FROM",
    "WHERE",
    "WITH",
    "RECURSIVE",
    "AS",
    "TABLE",
    "COMMIT",
    "ROLLBACK",
    "BEGIN",
    "START",
    "TRANSACTION",
    "SAVEPOINT",
    "SET",
    "RESET",
    "JOIN",
    "LEFT",
    "ON",
    "UNION",
    "ALL",
    "RETURNING",
    "LIMIT",
    "ORDER",
    "BY",
    "GROUP",
    "HAVING",
    "FOR",
    "SHARE",
    "NOT",
    "AND",
    "OR",
    "NULL",
    "TRUE",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "EXISTS",
    "IN",
    "LIKE",
    "CAST",
    "DEFAULT",
    "OVERRIDING",
    "SYSTEM",
    "VALUE",
    "DO",
    "NOTHING",
    "CONFLICT",
    "DUPLICATE",
    "KEY",
    "REPLACE",
    "IGNORE",
    "LOCK",
    "UNLOCK",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "GRANT",
    "CALL",
    "EXPLAIN",
    "ANALYZE",
    "SHOW",
    "USE",
    "PRAGMA",
    "ATTACH",
    "COPY",
    "LOAD",
    "DATA",
    "INFILE",
    "OUTFILE",
    "DUMPFILE",
    "HANDLER",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
    "DECLARE",
    "CURSOR",
    "LATERAL",
    "MERGE",
    "MATCHED",
    "OVER",
    "PARTITION",
    "ARRAY",
    "ROW",
    "INTERVAL",
    "TIMESTAMP",
    "BINARY",
    "COLLATE",
    "ESCAPE",
    "DISTINCT",
    "VACUUM",
    "LISTEN",
    "NOTIFY",
    "KILL",
    "DO",
    "SIGNAL",
    "XA",
    "DISCARD",
    "CHECKPOINT",
    "REINDEX",
    "CLUSTER",
];

/// Names a manifest of reads `users`, writes `notes` allows (some of them
/// only in some dialects' folding).
const ALLOWED: &[&[&str]] = &[
    &["users"],
    &["notes"],
    &["public", "notes"],
    &["Users"],
    &["NOTES"],
];

/// Names it must never let through.
const FORBIDDEN: &[&[&str]] = &[
    &["secrets"],
    &["Secrets"],
    &["SECRETS"],
    &["dmig_runs"],
    &["dmig_migrations"],
    &["DMIG_Migrations"],
    &["dmig_locks"],
    &["public", "secrets"],
    &["test", "secrets"],
    &["main", "secrets"],
    &["pg_temp", "secrets"],
    &["public", "dmig_runs"],
    &["test", "DMIG_RUNS"],
];

/// Column names, aliases and CTE names: never a forbidden name.
const COLUMNS: &[&str] = &[
    "id",
    "step",
    "body",
    "s",
    "name",
    "note",
    "x",
    "a.id",
    "users.id",
    "notes.step",
    "\"id\"",
    "`step`",
    "[s]",
    "\"Id\"",
    "U&\"\\0069d\"",
    "*",
];
const ALIASES: &[&str] = &["a", "b", "t", "u", "n", "x", "users", "notes", "\"N\""];

/// One part of a name in a quoting style.
fn quote(part: &str, style: u8) -> String {
    match style {
        0..=3 => part.to_owned(),
        4 => format!("\"{}\"", part.replace('"', "\"\"")),
        5 => format!("`{}`", part.replace('`', "``")),
        6 => format!("[{part}]"),
        7 => format!(
            "U&\"{}\"",
            part.chars()
                .map(|c| format!("\\{:04x}", u32::from(c)))
                .collect::<String>()
        ),
        _ => {
            let mut chars = part.chars();
            let first = chars.next().map_or(0, u32::from);
            format!("U&\"\\{first:04X}{}\"", chars.collect::<String>())
        }
    }
}

fn name(pool: &'static [&'static [&'static str]]) -> impl Strategy<Value = String> {
    (
        select(pool),
        prop::collection::vec(0u8..9, 3),
        select(&[".", ".", " . ", "/**/.", ".\n"][..]),
    )
        .prop_map(|(parts, styles, dot)| {
            parts
                .iter()
                .zip(styles)
                .map(|(p, s)| quote(p, s))
                .collect::<Vec<_>>()
                .join(dot)
        })
}

fn table() -> impl Strategy<Value = String> {
    prop_oneof![3 => name(ALLOWED), 2 => name(FORBIDDEN)]
}

/// A table reference with what introduces it, as one piece: the only
/// places forbidden names stand outside comments and literals. Only the
/// forms that name a table wherever they land (after `UPDATE`, `JOIN`,
/// `INTO` or `TABLE`, a name can be read as a column's alias: sqlparser
/// reads `SELECT JOIN secrets` so, PostgreSQL `SELECT UPDATE secrets`).
fn table_phrase() -> impl Strategy<Value = String> {
    (
        select(
            &[
                "FROM {}",
                "DELETE FROM {}",
                "(SELECT * FROM {})",
                "(TABLE {})",
            ][..],
        ),
        table(),
    )
        .prop_map(|(form, t)| form.replace("{}", &t))
}

const STRINGS: &[&str] = &[
    "'x'",
    "''",
    "'it''s'",
    "'a\\'b'",
    "'a\\\\'",
    "'\\'",
    "'\\\\'",
    "'\\''",
    "'\\'' , (SELECT s FROM secrets) -- '",
    "'\\' , (SELECT s FROM secrets) , '",
    "E'\\''",
    "e'\\\\'",
    "E'\\x27'",
    "E'\\047 , (SELECT s FROM secrets) -- '",
    "E'\\' , (SELECT s FROM secrets) -- '",
    "U&'\\0041'",
    "U&'d\\0061t\\+000061'",
    "U&'!0041' UESCAPE '!'",
    "U&'\\0027'",
    "$$x$$",
    "$$ ' $$",
    "$$$$",
    "$tag$ $$ ' $tag$",
    "$a$ /* $a$",
    "$a$$b$$a$",
    "$$ , (SELECT s FROM secrets) $$",
    "$_$ $$ $_$",
    "\"dq string\"",
    "\"it\"\"s\"",
    "\"\\\" , (SELECT s FROM secrets) , \\\"\"",
    "N'x'",
    "n'x'",
    "X'41'",
    "x'4'",
    "B'01'",
    "b'2'",
    "0x41",
    "_utf8mb4'x'",
    "_binary'x'",
    "'unterminated",
    "\"unterminated",
    "$$unterminated",
    "'--'",
    "'/*'",
    "'#'",
    "' */ '",
    "'; COMMIT; '",
    "'dmig_runs'",
    "'\u{0}'",
    "'é'",
    "'\u{2028}'",
];

const STRING_BODIES: &[&str] = &[
    "x",
    "'",
    "''",
    "\\",
    "\\'",
    "\\\\",
    "\"",
    "`",
    "$$",
    "$a$",
    "/*",
    "*/",
    "--",
    "#",
    ";",
    "?",
    "$1",
    " , (SELECT s FROM secrets) ",
    " UNION SELECT s FROM secrets -- ",
    "\n",
    "\\0",
    "\\x27",
    "\\u0027",
    "\\047",
    "é",
];

fn string_lit() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(STRINGS).prop_map(str::to_owned),
        3 => (
            select(&["'", "E'", "e'", "U&'", "N'", "\"", "$$", "$q$", "B'", "X'", "_latin1'"][..]),
            prop::collection::vec(select(STRING_BODIES), 0..5),
            prop::bool::weighted(0.9),
        )
            .prop_map(|(open, body, closed)| {
                let close = match open {
                    "\"" => "\"",
                    "$$" => "$$",
                    "$q$" => "$q$",
                    _ => "'",
                };
                let mut s = format!("{open}{}", body.concat());
                if closed {
                    s.push_str(close);
                }
                s
            }),
    ]
}

const COMMENT_BODIES: &[&str] = &[
    "",
    " x ",
    " , (SELECT s FROM secrets) ",
    " UNION SELECT s FROM secrets ",
    " COMMIT ",
    " ; DELETE FROM dmig_runs ",
    " */ , (SELECT s FROM secrets) /* ",
    "'",
    "\"",
    "`",
    "$$",
    "?",
    "\\",
    " JOIN secrets ",
    " , (SELECT 1 FROM dmig_runs) ",
];

fn comment() -> impl Strategy<Value = String> {
    (
        select(
            &[
                "--{}\n",
                "-- {}\n",
                "--{}",
                "-- {}",
                "#{}\n",
                "# {}\n",
                "/*{}*/",
                "/* /* */{}*/",
                "/*{}/* */*/",
                "/* /* {} */ */",
                "/*!{}*/",
                "/*!50000{}*/",
                "/*!999999{}*/",
                "/*M!{}*/",
                "/*M!100000{}*/",
                "/*m!{}*/",
                "/*+{}*/",
                "/*{}",
                "--\r{}\n",
                "-- {}\r\n",
                "/**/{}",
                "/*/{}*/",
                "--\t{}\n",
                "/*{}*//",
            ][..],
        ),
        select(COMMENT_BODIES),
    )
        .prop_map(|(form, body)| form.replace("{}", body))
}

const OPERATORS: &[&str] = &[
    "?", "?|", "?&", "=?", "?=", "||", "::", "+", "-", "*", "/", "%", "=", "<>", "!=", "<=>", "->",
    "->>", "#>", "#>>", "@>", "<@", "~", "!", "!!", "&&", "&", "|", "^", "<<", ">>", ":=", "@",
    "@@", "\\", "\\\\", "~~", "!~", "-|-", "|/", "||/", "^@", "=>", "<", ">", "<=", ">=", "==",
    "*=", "..", ":", "-?", "+?", "?-", "??",
];
const PUNCTUATION: &[&str] = &[
    "(", ")", ",", ";", ".", "[", "]", "{", "}", "'", "\"", "`", "$",
];
const PLACEHOLDERS: &[&str] = &[
    "?",
    "$1",
    "$2",
    "$0",
    ":x",
    ":1",
    "@x",
    "?1",
    "$a",
    "@@version",
    "$",
    "?::int",
    "@'x'",
    "@`x`",
    "@@session.sql_mode",
    "?NNN",
];
const NUMBERS: &[&str] = &[
    "1",
    "0",
    "-1",
    "1.5",
    ".5",
    "1e5",
    "1e",
    "1.e3",
    "0x1F",
    "0X1f",
    "0b101",
    "0o17",
    "1_000",
    "99999999999999999999999",
    "1.",
    "1e-5",
    "0xZZ",
    "1L",
    "1d",
    "1f",
    "1x",
    "00",
];
/// Expressions in PostgreSQL's less common syntax, which its deparser must
/// write back exactly (some it cannot: the gate must refuse those).
const PG_EXPRESSIONS: &[&str] = &[
    "1 OPERATOR(pg_catalog.+) 2",
    "1 OPERATOR(a.b.+) 2",
    "1 OPERATOR(a.b.=) ANY (SELECT 1)",
    "x::numeric(10, 2)",
    "x::numeric(1+1)",
    "x::varchar(?)",
    "x::int[]",
    "'{1}'::int[][]",
    "x::\"char\"",
    "x::double precision",
    "x::bit varying(3)",
    "x::time(2) with time zone",
    "'1'::interval day to second(3)",
    "interval '1' year",
    "interval(3) '1'",
    "ARRAY[1, 2]",
    "ARRAY[[1], [2]]",
    "x[1:2]",
    "x[1][:2]",
    "(x).y",
    "(users.*).id",
    "ROW(1, 2)",
    "(1, 2) < (3, 4)",
    "xmlelement(name a, xmlattributes(1 AS b), 'c')",
    "xmlserialize(document x AS text)",
    "x IS DOCUMENT",
    "x IS JSON SCALAR WITH UNIQUE KEYS",
    "JSON_OBJECT('a': 1 RETURNING jsonb)",
    "JSON_ARRAY(1, 2 ABSENT ON NULL)",
    "JSON_VALUE(x, '$' RETURNING int DEFAULT 1 ON ERROR)",
    "count(*) OVER (ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)",
    "count(DISTINCT x ORDER BY x) FILTER (WHERE x > 1)",
    "percentile_cont(0.5) WITHIN GROUP (ORDER BY x)",
    "x COLLATE \"C\"",
    "x AT TIME ZONE 'utc'",
    "SUBSTRING(x FROM 1 FOR 2)",
    "SUBSTRING(x SIMILAR 'a' ESCAPE '#')",
    "OVERLAY(x PLACING 'y' FROM 1 FOR 2)",
    "POSITION('a' IN x)",
    "TRIM(BOTH 'x' FROM x)",
    "EXTRACT(DAY FROM x)",
    "x SIMILAR TO 'a'",
    "x NOT ILIKE 'a'",
    "U&'\\0041' UESCAPE '!'",
    "U&'d\\0061t\\+000061'",
    "E'\\''",
    "E'\\x41\\u00e9'",
    "$$a$$",
    "$f$ ' $f$",
    "B'1'",
    "x'1F'",
    "GREATEST(1, 2)",
    "NULLIF(1, 2)",
    "CASE x WHEN 1 THEN 2 END",
    "x IS NOT NULL",
    "x ISNULL",
    "x IS NOT TRUE",
    "x BETWEEN SYMMETRIC 1 AND 2",
    "x = ANY(ARRAY[1])",
    "x <> ALL('{}')",
    "EXISTS (TABLE users)",
    "- - 1",
    "|/ 2",
    "@ -1",
    "CURRENT_DATE",
    "LOCALTIMESTAMP(2)",
    "CURRENT_ROLE",
    "TREAT(1 AS int)",
    "CAST(x AS text)",
    "1::int::text",
    "f(VARIADIC ARRAY[1])",
    "f(a => 1)",
    "MERGE_ACTION()",
    "(SELECT 1 UNION ALL (SELECT 2 EXCEPT SELECT 3))",
    "(VALUES (1), (2) LIMIT ALL)",
    "(SELECT id FROM users OFFSET 1 ROWS FETCH NEXT 2 ROWS ONLY)",
    "(SELECT DISTINCT ON (id) id FROM users ORDER BY id USING <)",
    "(SELECT 1 FROM users GROUP BY GROUPING SETS ((), (id), ROLLUP (id)))",
    "(SELECT 1 FROM users FOR NO KEY UPDATE SKIP LOCKED)",
];

/// Table references in PostgreSQL's less common syntax.
const PG_TABLES: &[&str] = &[
    "JSON_TABLE('[]'::jsonb, '$' COLUMNS (a int PATH '$', NESTED PATH '$' COLUMNS (b int)))",
    "ROWS FROM (generate_series(1, 2), unnest(ARRAY[1])) WITH ORDINALITY AS r(a, b, c)",
    "users TABLESAMPLE bernoulli(1) REPEATABLE (1)",
    "LATERAL generate_series(1, 2) AS g",
    "(users u JOIN notes n USING (id) AS j)",
    "ONLY users",
    "users *",
    "(VALUES (1, 2)) AS v(a, b)",
    "xmltable('/a' PASSING '<a/>' COLUMNS x int PATH 'x')",
];

/// Functions of every class: pure built-ins, sequences, refused-even-when-
/// declared, and undeclared.
const FUNCTIONS: &[&str] = &[
    "lower",
    "upper",
    "count",
    "coalesce",
    "abs",
    "concat",
    "length",
    "now",
    "json_extract",
    "jsonb_build_object",
    "nextval",
    "setval",
    "currval",
    "query_to_xml",
    "pg_read_file",
    "pg_ls_dir",
    "lo_import",
    "set_config",
    "pg_sleep",
    "pg_terminate_backend",
    "dblink",
    "load_file",
    "sleep",
    "benchmark",
    "get_lock",
    "load_extension",
    "readfile",
    "my_function",
    "public.lower",
    "pg_catalog.lower",
    "pg_catalog.pg_read_file",
    "\"lower\"",
    "`sleep`",
    "PG_SLEEP",
    "U&\"\\0070g_sleep\"",
    "test.sleep",
    "xmlagg",
];

fn function_start() -> impl Strategy<Value = String> {
    (select(FUNCTIONS), select(&["(", " (", "/**/("][..])).prop_map(|(f, p)| format!("{f}{p}"))
}

fn keyword() -> impl Strategy<Value = String> {
    (select(KEYWORDS), 0u8..4).prop_map(|(k, case)| match case {
        0 | 1 => k.to_owned(),
        2 => k.to_lowercase(),
        _ => k
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
            .collect(),
    })
}

/// What stands between two pieces: mostly a space, sometimes nothing (so
/// pieces run together), other whitespace, or a comment.
fn gap() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => Just(" ".to_owned()),
        2 => Just(String::new()),
        1 => select(&["\n", "\t", "\r\n", "\u{a0}", "\u{2028}", "\x0c", "\x0b", "  ", "\r"][..])
            .prop_map(str::to_owned),
        3 => comment().prop_map(|c| {
            // A line comment needs its end of line unless it ends the text.
            c
        }),
    ]
}

fn join_with_gaps(pieces: Vec<String>, gaps: Vec<String>) -> String {
    let mut out = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            out.push_str(&gaps[i % gaps.len()]);
        }
        out.push_str(piece);
    }
    out
}

/// Pieces with gaps between them.
fn spaced(pieces: impl Strategy<Value = Vec<String>>) -> impl Strategy<Value = String> {
    pieces.prop_flat_map(|pieces| {
        let n = pieces.len().max(1);
        (Just(pieces), prop::collection::vec(gap(), n))
            .prop_map(|(pieces, gaps)| join_with_gaps(pieces, gaps))
    })
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => keyword(),
        4 => table_phrase(),
        4 => select(COLUMNS).prop_map(str::to_owned),
        4 => string_lit(),
        3 => comment(),
        5 => select(OPERATORS).prop_map(str::to_owned),
        4 => select(PUNCTUATION).prop_map(str::to_owned),
        2 => select(PLACEHOLDERS).prop_map(str::to_owned),
        3 => select(NUMBERS).prop_map(str::to_owned),
        3 => function_start(),
        2 => words(PG_EXPRESSIONS),
        1 => words(PG_TABLES),
        1 => "[ -~]{1,6}",
    ]
}

/// A random sequence of hostile pieces, usually opened by a statement
/// keyword.
fn soup() -> impl Strategy<Value = String> {
    let start = prop_oneof![
        3 => select(&["SELECT", "UPDATE notes SET", "INSERT INTO notes", "DELETE FROM notes", "WITH", "TABLE users", "select 1", "SELECT * FROM users"][..])
            .prop_map(|s| vec![s.to_owned()]),
        1 => Just(Vec::new()),
    ];
    spaced(
        (start, prop::collection::vec(piece(), 0..24)).prop_map(|(mut start, rest)| {
            start.extend(rest);
            start
        }),
    )
}

// ---------------------------------------------------------------------------
// Statements in the grammar: mostly valid SQL of the kinds migrations send,
// with hostile parts, so many are admitted and the fixpoint and containment
// properties see real work.

type Tokens = Vec<String>;

fn toks<const N: usize>(items: [&str; N]) -> Tokens {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Mostly `plain` (the SQL migrations send), sometimes `hostile`.
fn mostly<T: std::fmt::Debug + Clone + 'static>(
    plain: impl Strategy<Value = T> + 'static,
    hostile: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    prop_oneof![6 => plain, 1 => hostile].boxed()
}

fn words(list: &'static [&'static str]) -> impl Strategy<Value = String> {
    select(list).prop_map(str::to_owned)
}

/// A table in a table position: mostly one the manifest allows, written
/// plainly.
fn st_table() -> BoxedStrategy<String> {
    prop_oneof![
        8 => words(&["users", "notes", "users", "notes", "Users", "NOTES"]),
        1 => name(ALLOWED),
        2 => name(FORBIDDEN),
    ]
    .boxed()
}

fn st_column() -> BoxedStrategy<String> {
    mostly(
        words(&["id", "step", "body", "name", "user_id", "n.step", "u.id"]),
        words(COLUMNS),
    )
}

fn st_literal() -> BoxedStrategy<String> {
    mostly(
        words(&[
            "'x'", "1", "0", "2.5", "'it''s'", "''", "NULL", "TRUE", "?", "?",
        ]),
        prop_oneof![
            3 => string_lit(),
            1 => words(NUMBERS),
            1 => words(PLACEHOLDERS),
            4 => words(PG_EXPRESSIONS),
        ],
    )
}

fn st_operator() -> BoxedStrategy<String> {
    mostly(
        words(&[
            "+", "-", "*", "=", "<>", "<", ">", "<=", ">=", "AND", "OR", "||", "LIKE",
        ]),
        words(OPERATORS),
    )
}

fn st_function() -> BoxedStrategy<String> {
    mostly(
        words(&[
            "lower", "upper", "abs", "coalesce", "length", "concat", "max", "min",
        ]),
        words(FUNCTIONS),
    )
}

fn leaf() -> impl Strategy<Value = Tokens> {
    prop_oneof![
        1 => st_column().prop_map(|c| vec![c]),
        1 => st_literal().prop_map(|l| vec![l]),
    ]
}

fn expr() -> BoxedStrategy<Tokens> {
    leaf()
        .prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                4 => (inner.clone(), st_operator(), inner.clone()).prop_map(|(mut a, op, b)| {
                    a.push(op);
                    a.extend(b);
                    a
                }),
                3 => (st_function(), prop::collection::vec(inner.clone(), 1..3)).prop_map(
                    |(f, args)| {
                        let mut out = vec![format!("{f}(")];
                        for (i, a) in args.into_iter().enumerate() {
                            if i > 0 {
                                out.push(",".into());
                            }
                            out.extend(a);
                        }
                        out.push(")".into());
                        out
                    }
                ),
                1 => inner.clone().prop_map(|e| {
                    let mut out = toks(["("]);
                    out.extend(e);
                    out.push(")".into());
                    out
                }),
                1 => (inner.clone(), words(&["int", "text", "integer", "bigint", "regclass"]))
                    .prop_map(|(mut e, ty)| {
                        e.push("::".into());
                        e.push(ty);
                        e
                    }),
                2 => (inner.clone(), st_table(), inner.clone()).prop_map(|(e, t, w)| {
                    let mut out = toks(["(", "SELECT"]);
                    out.extend(e);
                    out.push(format!("FROM {t}"));
                    out.push("WHERE".into());
                    out.extend(w);
                    out.extend(toks(["LIMIT", "1", ")"]));
                    out
                }),
                1 => (st_table(), inner.clone()).prop_map(|(t, w)| {
                    let mut out = toks(["EXISTS", "(", "SELECT", "1"]);
                    out.push(format!("FROM {t}"));
                    out.push("WHERE".into());
                    out.extend(w);
                    out.push(")".into());
                    out
                }),
                1 => (inner.clone(), inner.clone(), inner.clone()).prop_map(|(a, b, c)| {
                    let mut out = toks(["CASE", "WHEN"]);
                    out.extend(a);
                    out.push("THEN".into());
                    out.extend(b);
                    out.push("ELSE".into());
                    out.extend(c);
                    out.push("END".into());
                    out
                }),
                1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| {
                    let mut out = a;
                    out.extend(toks(["IN", "("]));
                    out.extend(b);
                    out.push(")".into());
                    out
                }),
                1 => inner.prop_map(|e| {
                    let mut out = toks(["NOT"]);
                    out.extend(e);
                    out
                }),
            ]
        })
        .boxed()
}

/// `table` (from [`table_ref`]) introduced by `keyword` in one piece, so no
/// comment between them can leave the name standing after something else.
fn introduce(keyword: &str, mut table: Tokens) -> Tokens {
    table[0] = format!("{keyword} {}", table[0]);
    table
}

fn table_ref() -> impl Strategy<Value = Tokens> {
    prop_oneof![
        6 => (st_table(), prop::option::of(words(&["u", "n", "t", "a"]))).prop_map(|(t, alias)| {
            let mut out = vec![t];
            if let Some(a) = alias {
                out.push("AS".into());
                out.push(a);
            }
            out
        }),
        1 => (words(&["json_each", "generate_series", "pg_ls_dir", "unnest", "my_table_function"]), expr())
            .prop_map(|(f, e)| {
                let mut out = vec![format!("{f}(")];
                out.extend(e);
                out.extend(toks([")", "AS", "f"]));
                out
            }),
        1 => words(PG_TABLES).prop_map(|t| vec![t]),
        1 => (st_table(), expr()).prop_map(|(t, w)| {
            let mut out = toks(["(", "SELECT", "*"]);
            out.push(format!("FROM {t}"));
            out.push("WHERE".into());
            out.extend(w);
            out.extend(toks([")", "AS", "d"]));
            out
        }),
    ]
}

fn select_stmt() -> impl Strategy<Value = Tokens> {
    (
        prop::collection::vec(expr(), 1..3),
        table_ref(),
        prop::option::of((
            words(&["JOIN", "LEFT JOIN", ",", "CROSS JOIN"]),
            table_ref(),
            expr(),
        )),
        prop::option::of(expr()),
        mostly(
            words(&["", "", "LIMIT 1", "ORDER BY 1", "GROUP BY 1"]),
            words(&[
                "FOR UPDATE",
                "FOR SHARE",
                "UNION SELECT 1",
                "UNION ALL TABLE users",
                "LOCK IN SHARE MODE",
                "INTO OUTFILE '/tmp/x'",
                "INTO @v",
                "FOR UPDATE OF n",
            ]),
        ),
    )
        .prop_map(|(items, from, join, filter, tail)| {
            let mut out = toks(["SELECT"]);
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(",".into());
                }
                out.extend(item);
            }
            out.extend(introduce("FROM", from));
            if let Some((kind, t, on)) = join {
                let on_clause = kind.ends_with("JOIN") && kind != "CROSS JOIN";
                out.extend(introduce(&kind, t));
                if on_clause {
                    out.push("ON".into());
                    out.extend(on);
                }
            }
            if let Some(filter) = filter {
                out.push("WHERE".into());
                out.extend(filter);
            }
            if !tail.is_empty() {
                out.push(tail);
            }
            out
        })
}

fn with_clause() -> impl Strategy<Value = Tokens> {
    (
        prop::bool::weighted(0.2),
        prop::collection::vec((select(ALIASES), select_stmt()), 1..3),
    )
        .prop_map(|(recursive, ctes)| {
            let mut out = toks(["WITH"]);
            if recursive {
                out.push("RECURSIVE".into());
            }
            for (i, (name, body)) in ctes.into_iter().enumerate() {
                if i > 0 {
                    out.push(",".into());
                }
                out.push(name.into());
                out.extend(toks(["AS", "("]));
                out.extend(body);
                out.push(")".into());
            }
            out
        })
}

fn dml_stmt() -> impl Strategy<Value = Tokens> {
    prop_oneof![
        (
            st_table(),
            st_column(),
            expr(),
            prop::option::of(table_ref()),
            prop::option::of(expr())
        )
            .prop_map(|(t, c, e, from, filter)| {
                let mut out = vec![format!("UPDATE {t}")];
                out.push("SET".into());
                out.push(c);
                out.push("=".into());
                out.extend(e);
                if let Some(from) = from {
                    out.extend(introduce("FROM", from));
                }
                if let Some(filter) = filter {
                    out.push("WHERE".into());
                    out.extend(filter);
                }
                out
            }),
        (
            st_table(),
            prop::collection::vec(expr(), 1..3),
            mostly(
                words(&["", "", "RETURNING id"]),
                words(&[
                    "ON CONFLICT DO NOTHING",
                    "ON DUPLICATE KEY UPDATE step = 1",
                    "RETURNING *"
                ]),
            ),
        )
            .prop_map(|(t, values, tail)| {
                let mut out = vec![format!("INSERT INTO {t}")];
                out.extend(toks(["VALUES", "("]));
                for (i, v) in values.into_iter().enumerate() {
                    if i > 0 {
                        out.push(",".into());
                    }
                    out.extend(v);
                }
                out.push(")".into());
                if !tail.is_empty() {
                    out.push(tail);
                }
                out
            }),
        (st_table(), select_stmt()).prop_map(|(t, s)| {
            let mut out = vec![format!("INSERT INTO {t}")];
            out.extend(s);
            out
        }),
        (st_table(), prop::option::of(expr())).prop_map(|(t, filter)| {
            let mut out = vec![format!("DELETE FROM {t}")];
            if let Some(filter) = filter {
                out.push("WHERE".into());
                out.extend(filter);
            }
            out
        }),
        st_table().prop_map(|t| vec![format!("TABLE {t}")]),
        prop::collection::vec(expr(), 1..3).prop_map(|items| {
            let mut out = toks(["SELECT"]);
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(",".into());
                }
                out.extend(item);
            }
            out
        }),
    ]
}

/// Mostly a space between tokens; sometimes a comment of any syntax, other
/// whitespace, or nothing.
fn calm_gap() -> impl Strategy<Value = String> {
    prop_oneof![
        40 => Just(" ".to_owned()),
        3 => Just("\n".to_owned()),
        4 => comment(),
        1 => Just(String::new()),
        1 => words(&["\t", "\r\n", "\u{a0}", "\x0c", "\x0b"]),
    ]
}

fn statement() -> impl Strategy<Value = String> {
    let body = prop_oneof![
        3 => select_stmt(),
        3 => dml_stmt(),
        2 => (with_clause(), prop_oneof![select_stmt(), dml_stmt()]).prop_map(|(mut w, s)| {
            w.extend(s);
            w
        }),
    ];
    (
        body,
        mostly(
            words(&["", "", ";", " ;"]),
            words(&[";;", "; SELECT 1", "; COMMIT", ";\n-- end"]),
        ),
    )
        .prop_flat_map(|(mut body, end)| {
            if !end.is_empty() {
                body.push(end);
            }
            let n = body.len();
            (Just(body), prop::collection::vec(calm_gap(), n))
                .prop_map(|(pieces, gaps)| join_with_gaps(pieces, gaps))
        })
}

/// Long chains and deep nesting, up to past every limit the gate has.
fn deep() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            select(
                &[
                    "+1",
                    "||'a'",
                    " AND TRUE",
                    " OR x",
                    "*2",
                    "-1",
                    "+?",
                    "::int",
                    ".x"
                ][..]
            ),
            0usize..12_000
        )
            .prop_map(|(link, n)| format!("SELECT 1{}", link.repeat(n))),
        (
            select(
                &[
                    ("(", ")"),
                    ("lower(", ")"),
                    ("(SELECT ", ")"),
                    ("ARRAY[", "]"),
                    ("NOT ", ""),
                    ("- ", ""),
                    ("CASE WHEN TRUE THEN ", " END"),
                    ("coalesce(1,", ")"),
                    ("EXISTS(SELECT ", ")")
                ][..]
            ),
            0usize..6_000
        )
            .prop_map(|((open, close), n)| format!(
                "SELECT {}1{}",
                open.repeat(n),
                close.repeat(n)
            )),
        // Runs of operator characters: PostgreSQL's scanner is quadratic
        // in each run's length.
        (0usize..3_000).prop_map(|n| format!("SELECT 1 {}1", "+-".repeat(n))),
        (0usize..20_000).prop_map(|n| format!("SELECT {} 1", "/**/".repeat(n))),
        (1usize..600, 1usize..4_000).prop_map(|(len, n)| format!(
            "SELECT 1 {}1",
            format!("{} ", "+".repeat(len)).repeat(n.min(1_000_000 / (len + 1)))
        )),
        (0usize..3_000).prop_map(|n| format!(
            "SELECT 1 FROM users{}",
            " JOIN users AS u ON TRUE".repeat(n)
        )),
        (0usize..3_000).prop_map(|n| format!("SELECT 1{}", " UNION SELECT 1".repeat(n))),
        (0usize..2_000).prop_map(|n| format!(
            "WITH {} SELECT 1",
            (0..=n)
                .map(|i| format!("c{i} AS (SELECT 1)"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        (0usize..200_000).prop_map(|n| format!("SELECT {}", "/*".repeat(n))),
        (0usize..100_000).prop_map(|n| format!("SELECT 1 {}", "-- x\n".repeat(n))),
    ]
}

/// Text of every kind: random Unicode, random bytes read as UTF-8.
fn random_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[ -~\n]{0,120}",
    ]
}

// ---------------------------------------------------------------------------
// CTE scoping: a CTE hides a table of its name only inside its scope.

/// Statements where a real `secrets` stands next to a CTE named like it,
/// and whether the real one is read or written (`true`: the gate must
/// refuse on every dialect) or only the CTE is (`false`: PostgreSQL, whose
/// parser the gate uses, must admit).
fn scoping() -> impl Strategy<Value = (String, bool)> {
    // (the CTE's spelling, the reference's spelling): the same name in
    // PostgreSQL's folding.
    let names = select(
        &[
            ("secrets", "secrets"),
            ("SECRETS", "secrets"),
            ("secrets", "Secrets"),
            ("\"secrets\"", "secrets"),
            ("Secrets", "\"secrets\""),
        ][..],
    );
    let real = &[
        // Its own body, not recursive: the real table.
        "WITH {c} AS (SELECT s FROM {r}) SELECT * FROM {c}",
        "WITH {c} AS (SELECT s FROM {r} WHERE s IS NOT NULL) SELECT s FROM {c}",
        // Another CTE's scope has ended.
        "SELECT (WITH {c} AS (SELECT 1 AS s) SELECT s FROM {c}), (SELECT s FROM {r} LIMIT 1) FROM users",
        "SELECT * FROM (WITH {c} AS (SELECT 1 AS s) SELECT s FROM {c}) AS d, {r}",
        "WITH x AS (WITH {c} AS (SELECT 1 AS s) SELECT s FROM {c}) SELECT * FROM x, {r}",
        "SELECT 1 FROM users WHERE EXISTS (WITH {c} AS (SELECT 1) SELECT 1) AND EXISTS (SELECT 1 FROM {r})",
        // An earlier sibling, not recursive: the real table.
        "WITH a AS (SELECT s FROM {r}), {c} AS (SELECT 1 AS s) SELECT * FROM a",
        // Qualified: never a CTE.
        "WITH {c} AS (SELECT 1 AS s) SELECT * FROM public.{r}",
        "WITH {c} AS (SELECT 1 AS s) SELECT * FROM test.{r}",
        // A statement's target is the real table.
        "WITH {c} AS (SELECT 1 AS s) UPDATE {r} SET s = 'x'",
        "WITH {c} AS (SELECT 1 AS s) DELETE FROM {r}",
        "WITH {c} AS (SELECT 1 AS s) INSERT INTO {r} (s) VALUES ('x')",
        "WITH {c} AS (SELECT 1 AS s) INSERT INTO notes (body) SELECT s FROM {c} UNION ALL SELECT s FROM public.{r}",
    ][..];
    let cte_only = &[
        "WITH {c} AS (SELECT 1 AS s) SELECT s FROM {r}",
        "WITH RECURSIVE {c} AS (SELECT 1 AS s UNION ALL SELECT s + 1 FROM {r} WHERE s < 3) SELECT s FROM {r}",
        "WITH {c} AS (SELECT 1 AS s) INSERT INTO notes (step) SELECT s FROM {r}",
        "WITH {c} AS (SELECT id AS s FROM users) SELECT * FROM users WHERE id IN (WITH y AS (SELECT s FROM {r}) SELECT s FROM y)",
        "WITH {c} AS (SELECT 1 AS s) SELECT * FROM users WHERE id IN (SELECT s FROM {r})",
        "WITH a AS (SELECT 1 AS s), {c} AS (SELECT s FROM a) SELECT s FROM {r}",
    ][..];
    (
        prop_oneof![
            3 => select(real).prop_map(|t| (t, true)),
            2 => select(cte_only).prop_map(|t| (t, false)),
        ],
        names,
        // Gaps that end where they start on every database (a `--` or `#`
        // comment to the end of the text could hide the real reference).
        prop::collection::vec(
            prop_oneof![
                8 => Just(" "),
                1 => select(&["\n", "\t", "/* x */", "/**/", "-- x\n", "--\n"][..]),
            ]
            .prop_map(str::to_owned),
            1..4,
        ),
    )
        .prop_map(|((template, must_refuse), (c, r), gaps)| {
            let sql = template.replace("{c}", c).replace("{r}", r);
            let pieces: Vec<String> = sql.split(' ').map(str::to_owned).collect();
            (join_with_gaps(pieces, gaps), must_refuse)
        })
}

fn check_scoping(case: &(String, bool)) -> Result<(), TestCaseError> {
    let (sql, must_refuse) = case;
    for (gate, mode) in GATES.iter() {
        let admitted = judge(gate, *mode, sql, false)?;
        if *mode != Mode::Manifest {
            continue;
        }
        let dialect = gate.syntax().dialect;
        if *must_refuse {
            prop_assert!(
                !admitted,
                "{dialect:?}: {sql:?} reads or writes the real table behind a CTE of its name, and was admitted"
            );
        } else if dialect == Dialect::Postgres {
            prop_assert!(
                admitted,
                "{dialect:?}: {sql:?} reads only CTEs and users, and was refused: {}",
                gate.admit(sql).unwrap_err()
            );
        }
    }
    Ok(())
}

/// Runs `property` on `cases` values of `strategy()` (PROPTEST_CASES
/// overrides), on a thread with room for proptest's generators, whose
/// nested value trees need more than a test thread's stack in a debug
/// build.
fn run<S: Strategy + 'static>(
    cases: u32,
    strategy: fn() -> S,
    property: impl Fn(&S::Value) -> Result<(), TestCaseError> + Send + 'static,
) {
    let outcome = std::thread::Builder::new()
        .name("sql-properties".into())
        .stack_size(64 << 20)
        .spawn(move || {
            let mut runner = TestRunner::new(config(cases));
            runner
                .run(&strategy(), |value| property(&value))
                .map_err(|e| e.to_string())
        })
        .expect("starting the property thread")
        .join()
        .expect("the property runner does not panic");
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    let admitted: Vec<String> = GATES
        .iter()
        .zip(&ADMITTED)
        .map(|((gate, mode), n)| {
            format!(
                "{:?}{} {mode:?}: {}",
                gate.syntax().dialect,
                if gate.syntax().backslash_escapes {
                    "\\"
                } else {
                    ""
                },
                n.load(std::sync::atomic::Ordering::Relaxed)
            )
        })
        .collect();
    println!("admitted so far: {}", admitted.join(", "));
}

#[test]
fn hostile_soup_is_judged_safely() {
    run(192, soup, |sql: &String| judge_everywhere(sql));
}

#[test]
fn hostile_statements_are_judged_safely() {
    run(192, statement, |sql: &String| judge_everywhere(sql));
}

#[test]
fn random_text_is_judged_safely() {
    run(192, random_text, |sql: &String| judge_everywhere(sql));
}

#[test]
fn cte_scoping_never_hides_a_real_table() {
    run(128, scoping, check_scoping);
}

#[test]
fn deep_and_long_statements_are_judged_safely() {
    run(24, deep, |sql: &String| judge_everywhere(sql));
}
