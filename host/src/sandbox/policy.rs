//! Which SQL a guest may send: anything that works inside the host's step
//! transaction, and nothing that ends, starts or escapes it, or changes the
//! connection's state beyond the step.
//!
//! The check is lexical (sqlparser's tokenizer for the target dialect), so
//! comments, string literals and quoted identifiers cannot hide or fake a
//! keyword, and a `;` cannot smuggle a second statement: each call is exactly
//! one statement.

use sqlparser::dialect::{Dialect as SqlDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::db::Dialect;

/// Why a statement was refused; its `Display` is the guest-visible message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The statement's leading keywords, e.g. `COMMIT` or `PRAGMA journal_mode`.
    pub statement: String,
    /// Why statements of this kind are refused, and what to do instead.
    pub reason: &'static str,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "statement {} is refused: {}",
            self.statement, self.reason
        )
    }
}

const TRANSACTION: &str = "the host owns each step's transaction (return from the step to commit it, return an error to roll it back)";
const DATABASES: &str = "it would change which databases the connection can reach";
const PRAGMA: &str = "pragmas change connection or database settings (read a setting with SELECT * FROM pragma_<name>)";
const VACUUM: &str = "it rewrites the whole database and cannot run inside the step's transaction";
const SESSION: &str = "it changes the connection's session state, which would outlive the step";
const LOCK: &str = "explicit locks outlive the statement and can block other sessions; the step's own statements take the row locks they need";
const SERVER_FILES: &str = "it reads or writes files or programs on the database server";
const MULTIPLE: &str = "one call runs exactly one statement (split them into separate calls)";
const UNREADABLE: &str = "it could not be tokenized, so it cannot be checked";

/// Checks one guest statement.
///
/// # Errors
///
/// A [`Refusal`] naming the statement and the reason.
pub fn check(dialect: Dialect, sql: &str) -> Result<(), Refusal> {
    let sql_dialect: &dyn SqlDialect = match dialect {
        Dialect::Sqlite => &SQLiteDialect {},
        Dialect::Postgres => &PostgreSqlDialect {},
        Dialect::Mysql => &MySqlDialect {},
    };
    let tokens = Tokenizer::new(sql_dialect, sql)
        .tokenize()
        .map_err(|_| Refusal {
            statement: leading_words(sql),
            reason: UNREADABLE,
        })?;
    let mut statements = tokens
        .split(|t| matches!(t, Token::SemiColon))
        .map(|tokens| {
            tokens
                .iter()
                .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
                .collect::<Vec<_>>()
        })
        .filter(|tokens| !tokens.is_empty());
    let Some(statement) = statements.next() else {
        return Ok(());
    };
    if statements.next().is_some() {
        return Err(Refusal {
            statement: format!("{} …; …", describe(&statement)),
            reason: MULTIPLE,
        });
    }
    // Unquoted words only: a quoted identifier is never a keyword.
    let word = |i: usize| match statement.get(i) {
        Some(Token::Word(w)) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        _ => String::new(),
    };
    let reason = match word(0).as_str() {
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE" | "XA" => {
            TRANSACTION
        }
        "START" if word(1) == "TRANSACTION" => TRANSACTION,
        "ATTACH" | "DETACH" => DATABASES,
        "PRAGMA" => PRAGMA,
        "VACUUM" => VACUUM,
        "SET" | "RESET" | "DISCARD" | "USE" | "LISTEN" | "UNLISTEN" => SESSION,
        "LOCK" | "UNLOCK" => LOCK,
        "COPY" | "LOAD" => SERVER_FILES,
        _ => return Ok(()),
    };
    Err(Refusal {
        statement: describe(&statement),
        reason,
    })
}

/// The first two tokens of a statement as written, the first uppercased.
fn describe(statement: &[&Token]) -> String {
    statement
        .iter()
        .take(2)
        .enumerate()
        .map(|(i, t)| match t {
            Token::Word(w) if i == 0 && w.quote_style.is_none() => w.value.to_uppercase(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn leading_words(sql: &str) -> String {
    sql.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str) -> Option<String> {
        check(Dialect::Sqlite, sql).err().map(|r| r.statement)
    }

    #[test]
    fn allows_ordinary_statements() {
        for sql in [
            "SELECT id FROM users WHERE id > ? ORDER BY id LIMIT 500",
            "UPDATE users SET slug = ? WHERE id = ?",
            "INSERT INTO t (note) VALUES ('COMMIT; BEGIN')",
            "DELETE FROM \"commit\" WHERE 1",
            "WITH r(i) AS (SELECT 1) SELECT * FROM r",
            "SELECT * FROM pragma_table_info('users')",
            "  -- a comment\n SELECT 1;  ",
            "/* BEGIN */ SELECT 1",
            "",
        ] {
            assert_eq!(check(Dialect::Sqlite, sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn refuses_statements_that_escape_the_step() {
        let cases = [
            ("BEGIN", "BEGIN"),
            ("begin immediate transaction", "BEGIN immediate"),
            ("COMMIT", "COMMIT"),
            ("end", "END"),
            ("DETACH other", "DETACH other"),
            ("ROLLBACK", "ROLLBACK"),
            ("SAVEPOINT s1", "SAVEPOINT s1"),
            ("RELEASE s1", "RELEASE s1"),
            ("ATTACH DATABASE 'x.db' AS x", "ATTACH DATABASE"),
            ("DETACH x", "DETACH x"),
            ("PRAGMA journal_mode = WAL", "PRAGMA journal_mode"),
            ("VACUUM", "VACUUM"),
            ("SET SESSION sql_mode = ''", "SET SESSION"),
            ("LOCK TABLE users", "LOCK TABLE"),
            ("START TRANSACTION", "START TRANSACTION"),
            ("/* hidden */ COMMIT", "COMMIT"),
        ];
        for (sql, statement) in cases {
            assert_eq!(refused(sql).as_deref(), Some(statement), "{sql}");
        }
        let multi = check(Dialect::Sqlite, "SELECT 1; COMMIT").unwrap_err();
        assert_eq!(multi.reason, MULTIPLE);
        assert_eq!(
            multi.to_string(),
            "statement SELECT 1 …; … is refused: one call runs exactly one statement (split them into separate calls)"
        );
        assert!(refused("SELECT 'unterminated").is_some());
    }

    #[test]
    fn refuses_per_dialect_session_statements() {
        assert!(check(Dialect::Postgres, "SET statement_timeout = 0").is_err());
        assert!(check(Dialect::Postgres, "COPY users FROM PROGRAM 'id'").is_err());
        assert!(
            check(
                Dialect::Mysql,
                "LOAD DATA INFILE '/etc/passwd' INTO TABLE t"
            )
            .is_err()
        );
        assert!(check(Dialect::Mysql, "UNLOCK TABLES").is_err());
        assert!(check(Dialect::Mysql, "USE other").is_err());
    }
}
