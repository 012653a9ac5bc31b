//! Names of tables and functions as each database compares them.
//!
//! A name is compared part by part (`schema.table`), each part folded the way
//! the database folds it: PostgreSQL folds unquoted identifiers to lower case
//! and keeps quoted ones exactly; SQLite compares ASCII case-insensitively,
//! quoted or not; MySQL/MariaDB table and schema names are case-sensitive on
//! the file systems servers run on (Linux), so dmig compares them exactly,
//! which can only refuse more, never less. An unqualified name matches only an
//! unqualified declaration: it means what the connection's search path (or
//! current database) says, and a guest cannot change either.

use std::fmt;

use super::Dialect;

/// A table, sequence or function name, folded for comparison.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Vec<String>);

impl Name {
    /// A name from identifier parts as the database's own parser produced
    /// them (already unquoted, and folded where the database folds).
    pub(crate) fn from_parts<I, S>(dialect: Dialect, parts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Name(
            parts
                .into_iter()
                .map(|p| fold_quoted(dialect, p.as_ref()))
                .collect(),
        )
    }

    /// A name as written in SQL or in a manifest (`users`, `public.users`,
    /// `"Profile"`, `` `odd name` ``, `[x]`): dots separate parts outside
    /// quotes, quoted parts are taken exactly, unquoted parts are folded as
    /// the database folds them.
    ///
    /// # Errors
    ///
    /// A message if a part is empty or a quote is not closed.
    pub fn parse(dialect: Dialect, text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut chars = text.trim().chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let part = match chars.peek().copied() {
                Some(open @ ('"' | '`' | '[')) => {
                    chars.next();
                    let close = if open == '[' { ']' } else { open };
                    let mut part = String::new();
                    loop {
                        match chars.next() {
                            None => return Err(format!("{text:?} has an unclosed {open}")),
                            Some(c) if c == close => {
                                if close != ']' && chars.next_if_eq(&close).is_some() {
                                    part.push(close);
                                } else {
                                    break;
                                }
                            }
                            Some(c) => part.push(c),
                        }
                    }
                    fold_quoted(dialect, &part)
                }
                _ => {
                    let mut part = String::new();
                    while let Some(c) = chars.next_if(|&c| c != '.') {
                        part.push(c);
                    }
                    let part = part.trim_end();
                    if part.is_empty() {
                        return Err(format!("{text:?} has an empty part"));
                    }
                    if part
                        .contains(|c: char| c.is_whitespace() || matches!(c, '"' | '`' | '[' | ']'))
                    {
                        return Err(format!(
                            "{text:?} has an unquoted part with spaces or quotes (quote it)"
                        ));
                    }
                    fold_unquoted(dialect, part)
                }
            };
            parts.push(part);
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            match chars.next() {
                None => break,
                Some('.') => {}
                Some(c) => {
                    return Err(format!("{text:?} has {c:?} where a dot or the end belongs"));
                }
            }
        }
        Ok(Name(parts))
    }

    /// Every part, outermost first.
    pub fn parts(&self) -> &[String] {
        &self.0
    }

    /// The last part: the table or function itself.
    pub fn last(&self) -> &str {
        self.0.last().map_or("", String::as_str)
    }

    /// How many parts it has (1 when unqualified).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it has no parts (never true of a parsed name).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The qualifying parts before the last.
    pub fn qualifier(&self) -> &[String] {
        &self.0[..self.0.len().saturating_sub(1)]
    }

    /// Whether this names one of the host's `dmig_` ledger tables, in any
    /// schema and any case.
    pub fn is_ledger(&self) -> bool {
        is_ledger_word(self.last())
    }
}

/// Whether a bare word (an identifier, or the text of a literal) is or
/// starts like a ledger table's name, in any case.
pub(crate) fn is_ledger_word(word: &str) -> bool {
    let prefix = crate::manifest::LEDGER_PREFIX;
    word.len() >= prefix.len()
        && word.is_char_boundary(prefix.len())
        && word[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Whether `text` mentions a ledger table anywhere, in any case.
pub(crate) fn mentions_ledger(text: &str) -> bool {
    text.to_ascii_lowercase()
        .contains(crate::manifest::LEDGER_PREFIX)
}

fn fold_unquoted(dialect: Dialect, part: &str) -> String {
    match dialect {
        Dialect::Postgres | Dialect::Sqlite => part.to_ascii_lowercase(),
        Dialect::Mysql => part.to_owned(),
    }
}

fn fold_quoted(dialect: Dialect, part: &str) -> String {
    match dialect {
        Dialect::Sqlite => part.to_ascii_lowercase(),
        Dialect::Postgres | Dialect::Mysql => part.to_owned(),
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            let plain = !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !part.starts_with(|c: char| c.is_ascii_digit());
            if plain {
                f.write_str(part)?;
            } else {
                write!(f, "\"{}\"", part.replace('"', "\"\"").escape_debug())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(dialect: Dialect, text: &str) -> Vec<String> {
        Name::parse(dialect, text).unwrap().0
    }

    #[test]
    fn folds_as_each_database_does() {
        assert_eq!(
            parse(Dialect::Postgres, "Public.Users"),
            ["public", "users"]
        );
        assert_eq!(parse(Dialect::Postgres, "\"Profile\""), ["Profile"]);
        assert_eq!(parse(Dialect::Postgres, "\"a.b\".c"), ["a.b", "c"]);
        assert_eq!(
            parse(Dialect::Postgres, "\"say \"\"hi\"\"\""),
            ["say \"hi\""]
        );
        assert_eq!(parse(Dialect::Mysql, "Users"), ["Users"]);
        assert_eq!(parse(Dialect::Mysql, "`odd name`"), ["odd name"]);
        assert_eq!(parse(Dialect::Sqlite, "[Users]"), ["users"]);
        assert_eq!(parse(Dialect::Sqlite, " main . users "), ["main", "users"]);
        for bad in ["", "a..b", "\"open", "a b", "a."] {
            assert!(Name::parse(Dialect::Postgres, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn knows_the_ledger_in_any_case() {
        assert!(
            Name::parse(Dialect::Postgres, "x.\"DMIG_runs\"")
                .unwrap()
                .is_ledger()
        );
        assert!(
            Name::parse(Dialect::Mysql, "dmig_locks")
                .unwrap()
                .is_ledger()
        );
        assert!(
            !Name::parse(Dialect::Mysql, "dmigration")
                .unwrap()
                .is_ledger()
        );
        assert!(mentions_ledger("select * from DMIG_RUNS"));
        assert!(!is_ledger_word("dmi"));
    }
}
