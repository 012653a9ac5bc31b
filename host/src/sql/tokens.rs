//! MySQL/MariaDB and SQLite: read a statement into tokens by the database's
//! lexical rules (sqlparser's tokenizer), refuse what has no single reading,
//! and render the tokens as the canonical text that is both parsed for the
//! check and sent to the server.
//!
//! Each token has exactly one spelling here: identifiers in the database's
//! identifier quotes (or bare when they are plain ASCII words), strings in
//! single quotes with only the escapes the server reads back the same way,
//! numbers and operators as themselves, one space between tokens (none
//! between a name and its `(`, so MySQL still reads a built-in function
//! call), and no comments. Re-tokenizing the rendering must give the same
//! tokens, or the statement is refused.

use std::any::TypeId;

use sqlparser::dialect::{Dialect as SqlDialect, MySqlDialect, SQLiteDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use super::{Access, Admitted, Dialect, MAX_OPERATORS, Placeholders, Reason, Syntax, policy};

/// MySQL's lexical rules as the server applies them to dmig's connection:
/// sqlparser's MySQL dialect, but `/*! … */` stays a comment (so the gate can
/// refuse it instead of guessing which server version would run it) and `\`
/// escapes only when the session's SQL mode says so.
#[derive(Debug)]
struct MySqlLexer {
    backslash_escapes: bool,
}

impl SqlDialect for MySqlLexer {
    fn dialect(&self) -> TypeId {
        TypeId::of::<MySqlDialect>()
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        MySqlDialect {}.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        MySqlDialect {}.is_identifier_part(ch)
    }
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        MySqlDialect {}.is_delimited_identifier_start(ch)
    }
    fn supports_string_literal_backslash_escape(&self) -> bool {
        self.backslash_escapes
    }
    fn ignores_wildcard_escapes(&self) -> bool {
        MySqlDialect {}.ignores_wildcard_escapes()
    }
    fn supports_numeric_prefix(&self) -> bool {
        MySqlDialect {}.supports_numeric_prefix()
    }
    fn requires_single_line_comment_whitespace(&self) -> bool {
        MySqlDialect {}.requires_single_line_comment_whitespace()
    }
    fn supports_multiline_comment_hints(&self) -> bool {
        false
    }
}

pub(super) fn tokenize(syntax: Syntax, sql: &str) -> Result<Vec<Token>, Reason> {
    let lexer;
    let dialect: &dyn SqlDialect = match syntax.dialect {
        Dialect::Mysql => {
            lexer = MySqlLexer {
                backslash_escapes: syntax.backslash_escapes,
            };
            &lexer
        }
        _ => &SQLiteDialect {},
    };
    Tokenizer::new(dialect, sql)
        .tokenize()
        .map_err(|e| Reason::Unreadable(e.to_string()))
}

/// Reads, renders and parses one statement; returns what to send and what it
/// touches (not yet judged against the manifest).
pub(super) fn analyse(
    syntax: Syntax,
    sql: &str,
    raw_sql: bool,
) -> Result<(Admitted, Access), Reason> {
    let all = tokenize(syntax, sql)?;
    let mut statements: Vec<Vec<Token>> = vec![Vec::new()];
    for token in all {
        match token {
            Token::Whitespace(Whitespace::MultiLineComment(comment))
                if syntax.dialect == Dialect::Mysql && is_executable_comment(&comment) =>
            {
                return Err(Reason::Construct(format!(
                    "an executable comment /*{}…*/",
                    comment.chars().take(3).collect::<String>()
                )));
            }
            // MySQL ends a `--` comment's marker at ASCII whitespace or a
            // control character only; sqlparser at any Unicode whitespace
            // (`--\u{a0}` is a comment to one and two minus signs to the other).
            Token::Whitespace(Whitespace::SingleLineComment { comment, prefix })
                if syntax.dialect == Dialect::Mysql
                    && prefix == "--"
                    && !comment
                        .starts_with(|c: char| c.is_ascii_whitespace() || c.is_ascii_control())
                    && !comment.is_empty() =>
            {
                return Err(Reason::Construct(
                    "a -- comment not followed by an ASCII space, which MySQL does not read as a comment".into(),
                ));
            }
            // MySQL/MariaDB `@var := …` assigns a user variable, session
            // state that outlives the step.
            Token::Assignment if syntax.dialect == Dialect::Mysql => {
                return Err(Reason::Statement {
                    kind: "user-variable assignment (:=)".into(),
                    why: policy::SESSION,
                });
            }
            Token::Whitespace(_) | Token::EOF => {}
            Token::SemiColon => statements.push(Vec::new()),
            other => statements.last_mut().expect("one statement").push(other),
        }
    }
    statements.retain(|s| !s.is_empty());
    let tokens = match statements.len() {
        0 => return Err(Reason::Empty),
        1 => statements.pop().expect("one statement"),
        _ => return Err(Reason::Multiple),
    };
    let word = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        _ => String::new(),
    };
    let (first, second) = (word(0), word(1));
    let why = policy::by_leading_words(&first, &second).or_else(|| {
        (syntax.dialect == Dialect::Mysql)
            .then(|| policy::mysql_by_leading_words(&first, &second))
            .flatten()
    });
    if let Some(why) = why {
        return Err(Reason::Statement {
            kind: if first == "START" && second == "TRANSACTION" {
                "START TRANSACTION".into()
            } else {
                first
            },
            why,
        });
    }
    // Transaction control anywhere in a statement (SQLite's `INSERT OR
    // ROLLBACK`, `ON CONFLICT ROLLBACK`) ends the host's transaction too.
    if tokens.iter().any(|t| {
        matches!(t, Token::Word(w) if w.quote_style.is_none()
            && matches!(w.keyword, Keyword::ROLLBACK | Keyword::COMMIT))
    }) {
        return Err(Reason::Statement {
            kind: format!("{first} … ROLLBACK/COMMIT"),
            why: policy::TRANSACTION,
        });
    }
    let operators = tokens.iter().filter(|t| is_operator(t)).count();
    if operators > MAX_OPERATORS {
        return Err(Reason::TooComplex(operators));
    }
    let text = render(syntax, &tokens)?;
    // The rendering must read back as the very same tokens.
    // (MySQL's `"…"` strings are rendered as `'…'` strings.)
    let reread: Vec<Token> = tokenize(syntax, &text)?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
        .collect();
    let same = reread.len() == tokens.len()
        && reread.iter().zip(&tokens).all(|(a, b)| match (a, b) {
            (Token::SingleQuotedString(a), Token::DoubleQuotedString(b)) => a == b,
            // Quoted identifiers are rendered in the database's own quotes.
            (Token::Word(a), Token::Word(b)) if b.quote_style.is_some() => {
                a.quote_style.is_some() && a.value == b.value
            }
            (a, b) => a == b,
        });
    if !same {
        return Err(Reason::Construct(
            "a token with no unambiguous spelling".into(),
        ));
    }
    let mentions_ledger = raw_sql
        && tokens.iter().any(|t| match t {
            Token::Word(w) => super::names::mentions_ledger(&w.value),
            Token::SingleQuotedString(s)
            | Token::DoubleQuotedString(s)
            | Token::NationalStringLiteral(s) => super::names::mentions_ledger(s),
            _ => false,
        });
    let parser_dialect: &dyn SqlDialect = match syntax.dialect {
        Dialect::Mysql => &MySqlDialect {},
        _ => &SQLiteDialect {},
    };
    // One statement that takes every token: what is not parsed is not
    // checked, but it is sent. (sqlparser's `parse_statements` stops at a
    // top-level `END` and drops the rest, which MySQL and SQLite read as an
    // alias: `SELECT s END FROM secrets` reads secrets.)
    let mut parser = Parser::new(parser_dialect).with_tokens(tokens);
    let parsed = parser
        .parse_statement()
        .and_then(|statement| match parser.peek_token().token {
            Token::EOF => Ok(statement),
            _ => parser.expected("the end of the statement", parser.peek_token()),
        });
    let mut access = match parsed {
        Ok(statement) => super::ast::access(syntax.dialect, &statement)?,
        Err(_) if raw_sql => Access {
            kind: first.clone(),
            ..Access::default()
        },
        Err(e) => {
            let text = e.to_string();
            return Err(Reason::Unreadable(
                text.strip_prefix("sql parser error: ")
                    .unwrap_or(&text)
                    .to_owned(),
            ));
        }
    };
    access.mentions_ledger = mentions_ledger;
    Ok((
        Admitted {
            text,
            placeholders: Placeholders::Positional,
            changes_schema: false,
        },
        access,
    ))
}

/// MySQL runs `/*! … */` (and MariaDB `/*M! … */`), optionally versioned.
fn is_executable_comment(body: &str) -> bool {
    body.starts_with('!') || body.starts_with("M!") || body.starts_with("m!")
}

/// Tokens that combine expressions, each of which can nest the tree a level.
fn is_operator(token: &Token) -> bool {
    match token {
        Token::Word(w) => w.quote_style.is_none() && w.keyword != Keyword::NoKeyword,
        Token::Number(..)
        | Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::NationalStringLiteral(_)
        | Token::HexStringLiteral(_)
        | Token::Placeholder(_)
        | Token::Comma
        | Token::Period
        | Token::LParen
        | Token::RParen => false,
        _ => true,
    }
}

/// The canonical text of a statement's tokens.
fn render(syntax: Syntax, tokens: &[Token]) -> Result<String, Reason> {
    let mut out = String::new();
    let mut previous: Option<&Token> = None;
    for token in tokens {
        let glued = match (previous, token) {
            (None, _) => true,
            // A call: MySQL reads `COUNT (x)` as a column unless glued.
            (Some(Token::Word(_)), Token::LParen) => true,
            (Some(Token::Word(_)), Token::Period) => true,
            (Some(Token::Period), Token::Word(_) | Token::Mul) => true,
            _ => false,
        };
        if !glued {
            out.push(' ');
        }
        render_token(syntax, token, &mut out)?;
        previous = Some(token);
    }
    Ok(out)
}

fn render_token(syntax: Syntax, token: &Token, out: &mut String) -> Result<(), Reason> {
    let mysql = syntax.dialect == Dialect::Mysql;
    let construct = |what: &str| Err(Reason::Construct(what.to_owned()));
    match token {
        Token::Word(w) => {
            let bare = w.quote_style.is_none() && is_plain_word(&w.value, mysql);
            if bare {
                out.push_str(&w.value);
            } else if mysql {
                out.push('`');
                out.push_str(&w.value.replace('`', "``"));
                out.push('`');
            } else {
                out.push('"');
                out.push_str(&w.value.replace('"', "\"\""));
                out.push('"');
            }
        }
        Token::Number(n, long) => {
            let plain = n
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
                || (n.starts_with("0x") && n[2..].chars().all(|c| c.is_ascii_hexdigit()));
            if *long || !plain {
                return construct(&format!("the number {n:?}"));
            }
            out.push_str(n);
        }
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => {
            push_string(syntax, s, out);
        }
        Token::NationalStringLiteral(s) if mysql => {
            out.push('N');
            push_string(syntax, s, out);
        }
        Token::HexStringLiteral(s) if s.chars().all(|c| c.is_ascii_hexdigit()) => {
            out.push_str("X'");
            out.push_str(s);
            out.push('\'');
        }
        Token::SingleQuotedByteStringLiteral(s)
            if mysql && s.chars().all(|c| c == '0' || c == '1') =>
        {
            out.push_str("b'");
            out.push_str(s);
            out.push('\'');
        }
        Token::Placeholder(p) if p == "?" => out.push('?'),
        Token::Placeholder(p) => return Err(Reason::Placeholder(p.clone())),
        Token::Char(c) => return construct(&format!("the character {c:?}")),
        Token::Sharp | Token::Backslash | Token::DoubleSharp => {
            return construct(&format!("{token}"));
        }
        Token::Whitespace(_) | Token::EOF | Token::SemiColon => {}
        Token::Comma
        | Token::DoubleEq
        | Token::Eq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq
        | Token::Spaceship
        | Token::Plus
        | Token::Minus
        | Token::Mul
        | Token::Div
        | Token::Mod
        | Token::StringConcat
        | Token::LParen
        | Token::RParen
        | Token::Period
        | Token::Colon
        | Token::DoubleColon
        | Token::Assignment
        | Token::LBracket
        | Token::RBracket
        | Token::Ampersand
        | Token::Pipe
        | Token::Caret
        | Token::Tilde
        | Token::ExclamationMark
        | Token::ShiftLeft
        | Token::ShiftRight
        | Token::Arrow
        | Token::LongArrow
        | Token::AtSign => out.push_str(&token.to_string()),
        other => return construct(&format!("the token {other}")),
    }
    Ok(())
}

/// An unquoted word that reads back as the same word: ASCII letters, digits,
/// `_` and `$`, not starting with a digit; on MySQL also `@var` and
/// `@@scope.var`.
fn is_plain_word(word: &str, mysql: bool) -> bool {
    let body = if mysql {
        word.trim_start_matches('@')
    } else {
        word
    };
    let at = word.len() - body.len();
    at <= 2
        && (at == 0 || mysql)
        && body.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || (at > 0 && c == '.'))
}

fn push_string(syntax: Syntax, s: &str, out: &mut String) {
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' if syntax.dialect == Dialect::Mysql && syntax.backslash_escapes => {
                out.push_str("\\\\");
            }
            // Read from an escape (`\0`); written back as one, so the text
            // sent carries no NUL (which the gate refuses in what it reads).
            '\0' if syntax.dialect == Dialect::Mysql && syntax.backslash_escapes => {
                out.push_str("\\0");
            }
            c => out.push(c),
        }
    }
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(dialect: Dialect, sql: &str) -> Result<String, Reason> {
        analyse(Syntax::of(dialect), sql, false).map(|(a, _)| a.text)
    }

    #[test]
    fn renders_one_canonical_text() {
        let my = Dialect::Mysql;
        assert_eq!(
            text(
                my,
                "select  id,`odd name` from users /* hi */ where x = 'it''s' -- c\n"
            )
            .unwrap(),
            "select id , `odd name` from users where x = 'it''s'"
        );
        assert_eq!(
            text(my, "SELECT 'a\\\\b', \"q\"").unwrap(),
            "SELECT 'a\\\\b' , 'q'"
        );
        assert_eq!(
            text(my, "SELECT COUNT(*) FROM t").unwrap(),
            "SELECT COUNT( * ) FROM t"
        );
        assert_eq!(text(my, "SELECT t.* FROM t").unwrap(), "SELECT t.* FROM t");
        // An escaped NUL is sent escaped: the text carries no NUL.
        assert_eq!(
            text(my, "SELECT 'a\\0b', \"\\0\"").unwrap(),
            "SELECT 'a\\0b' , '\\0'"
        );
        let lite = Dialect::Sqlite;
        assert_eq!(
            text(lite, "SELECT [a b], `c` FROM \"users\" WHERE id = ?").unwrap(),
            "SELECT \"a b\" , \"c\" FROM \"users\" WHERE id = ?"
        );
    }

    #[test]
    fn refuses_what_has_no_single_reading() {
        let my = Dialect::Mysql;
        for sql in [
            "SELECT 1 /*M! , (SELECT s FROM secrets) */",
            "SELECT 1 /*!50000 , 2 */",
            "/*!COMMIT*/",
            "SELECT 1 /*m!100000 , 2 */",
        ] {
            assert!(matches!(text(my, sql), Err(Reason::Construct(_))), "{sql}");
        }
        assert!(matches!(
            text(Dialect::Sqlite, "SELECT $1"),
            Err(Reason::Placeholder(_))
        ));
        assert!(matches!(
            text(my, "SELECT 1 --\u{a0}, (SELECT s FROM secrets)"),
            Err(Reason::Construct(_))
        ));
        assert_eq!(text(my, "SELECT 1 -- fine\n").unwrap(), "SELECT 1");
        assert!(matches!(
            text(my, "SELECT @x := 1"),
            Err(Reason::Statement { .. })
        ));
        assert_eq!(text(my, "  /* only */ "), Err(Reason::Empty));
        assert_eq!(text(my, "SELECT 1; SELECT 2"), Err(Reason::Multiple));
        assert!(matches!(text(my, "COMMIT"), Err(Reason::Statement { .. })));
        // A SHOW sqlparser does not know is unchecked (raw SQL only).
        let show = analyse(Syntax::of(my), "SHOW INDEX FROM secrets", false)
            .unwrap()
            .1;
        assert_eq!(show.checked, None);
        let show = analyse(Syntax::of(my), "SHOW VARIABLES LIKE 'sql_mode'", false)
            .unwrap()
            .1;
        assert_eq!(show.checked.as_deref(), Some("SHOW"));
        // Every token is parsed: nothing after the statement goes unchecked.
        for dialect in [my, Dialect::Sqlite] {
            for sql in [
                "SELECT s END FROM secrets",
                "INSERT INTO notes (body) SELECT s END FROM secrets",
                "SELECT name FROM users END",
            ] {
                assert!(
                    matches!(text(dialect, sql), Err(Reason::Unreadable(_))),
                    "{dialect:?}: {sql}"
                );
            }
        }
    }

    #[test]
    fn bounds_the_work_per_statement() {
        // SELECT and the `+`s.
        let chain = format!("SELECT 1{}", "+1".repeat(MAX_OPERATORS));
        assert_eq!(
            text(Dialect::Sqlite, &chain),
            Err(Reason::TooComplex(MAX_OPERATORS + 1))
        );
        let long = format!("SELECT 1{}", "+1".repeat(MAX_OPERATORS - 1));
        assert!(text(Dialect::Sqlite, &long).is_ok());
    }
}
