//! SQL identifiers: quoting a name for the current dialect, and reading a
//! name as a migration writes it (`users`, `public.users`, `"profileId"`,
//! `` `profileId` ``) so it can be written again for any dialect.
//!
//! PostgreSQL and SQLite quote with `"…"`, MySQL/MariaDB with `` `…` ``
//! (MySQL reads `"…"` as a string unless `ANSI_QUOTES` is set); a quote
//! character inside the name is doubled.

use crate::error::{Error, Result};
use crate::value::Dialect;

impl Dialect {
    /// `name` as a quoted identifier of this dialect: `"profileId"` on
    /// PostgreSQL and SQLite, `` `profileId` `` on MySQL, with an embedded
    /// quote character doubled (`a"b` → `"a""b"`). The name is taken exactly,
    /// case included: quoting is what keeps PostgreSQL from folding it to
    /// lower case.
    ///
    /// # Errors
    ///
    /// An empty name, or one containing a NUL character, which no database
    /// accepts as an identifier.
    pub fn quote_identifier(self, name: &str) -> Result<String> {
        if name.is_empty() {
            return Err(Error::msg(
                "an empty name cannot be an SQL identifier; give the table's or column's name",
            ));
        }
        if name.contains('\0') {
            return Err(Error::msg(format!(
                "identifier {name:?} contains a NUL character, which no database accepts in a name"
            )));
        }
        let quote = match self {
            Dialect::Mysql => '`',
            Dialect::Postgres | Dialect::Sqlite => '"',
        };
        let doubled: String = [quote, quote].iter().collect();
        Ok(format!("{quote}{}{quote}", name.replace(quote, &doubled)))
    }
}

/// One part of a written name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Written without quotes: written again as it is, so the database folds
    /// it as it always does.
    Bare(String),
    /// Written in quotes (`"…"`, `` `…` ``, `[…]`): the exact name, quoted
    /// again for whichever dialect runs the statement.
    Quoted(String),
}

/// A name as a migration wrote it, split into its dot-separated parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ident {
    parts: Vec<Part>,
}

impl Ident {
    /// Reads `text`: parts separated by `.` outside quotes, each either a
    /// plain identifier (letters, digits, `_`, `$`) or quoted with `"…"`,
    /// `` `…` `` (a doubled quote inside is one quote character) or `[…]`.
    ///
    /// # Errors
    ///
    /// A message (naming `text`) for an empty name or part, an unclosed
    /// quote, or a bare part with other characters, which must be quoted.
    pub(crate) fn parse(text: &str) -> Result<Ident, String> {
        let mut parts = Vec::new();
        let mut chars = text.trim().chars().peekable();
        loop {
            let part = match chars.peek().copied() {
                Some(open @ ('"' | '`' | '[')) => {
                    chars.next();
                    let close = if open == '[' { ']' } else { open };
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            None => {
                                return Err(format!(
                                    "name {text:?} has an unclosed {open}: close the quote"
                                ));
                            }
                            Some(c) if c == close => {
                                if close != ']' && chars.next_if_eq(&close).is_some() {
                                    name.push(close);
                                } else {
                                    break;
                                }
                            }
                            Some(c) => name.push(c),
                        }
                    }
                    if name.is_empty() || name.contains('\0') {
                        return Err(format!(
                            "name {text:?} has an empty or NUL-containing quoted part"
                        ));
                    }
                    Part::Quoted(name)
                }
                _ => {
                    let mut name = String::new();
                    while let Some(c) = chars.next_if(|c| *c != '.') {
                        name.push(c);
                    }
                    if name.is_empty() {
                        return Err(format!(
                            "name {text:?} has an empty part: give a table or column name"
                        ));
                    }
                    if !name
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
                    {
                        return Err(format!(
                            "name {text:?} is not a plain identifier: quote it (\"{}\") if that is its name",
                            name.replace('"', "\"\"")
                        ));
                    }
                    Part::Bare(name)
                }
            };
            parts.push(part);
            match chars.next() {
                None => return Ok(Ident { parts }),
                Some('.') => {}
                Some(c) => {
                    return Err(format!(
                        "name {text:?} has {c:?} after a quoted part: separate parts with '.'"
                    ));
                }
            }
        }
    }

    /// How many dot-separated parts the name has (`public.users`: 2).
    pub(crate) fn len(&self) -> usize {
        self.parts.len()
    }

    /// The last part without quotes: the name a result column comes back
    /// under (`"profileId"` → `profileId`).
    pub(crate) fn name(&self) -> &str {
        match self.parts.last().expect("a parsed name has a part") {
            Part::Bare(name) | Part::Quoted(name) => name,
        }
    }

    /// The name as SQL for `dialect`: bare parts as written, quoted parts
    /// quoted for the dialect.
    pub(crate) fn sql(&self, dialect: Dialect) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Bare(name) => name.clone(),
                Part::Quoted(name) => dialect
                    .quote_identifier(name)
                    .expect("parsed quoted parts are not empty and hold no NUL"),
            })
            .collect::<Vec<_>>()
            .join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_the_dialects_quote() {
        assert_eq!(
            Dialect::Postgres.quote_identifier("profileId").unwrap(),
            "\"profileId\""
        );
        assert_eq!(
            Dialect::Sqlite.quote_identifier("a\"b").unwrap(),
            "\"a\"\"b\""
        );
        assert_eq!(
            Dialect::Mysql.quote_identifier("a`b\"c").unwrap(),
            "`a``b\"c`"
        );
        assert_eq!(
            Dialect::Postgres.quote_identifier("a`b").unwrap(),
            "\"a`b\""
        );
        assert!(Dialect::Mysql.quote_identifier("").is_err());
        assert!(Dialect::Postgres.quote_identifier("a\0b").is_err());
    }

    #[test]
    fn written_names_are_requoted_per_dialect() {
        let id = Ident::parse("\"profileId\"").unwrap();
        assert_eq!(id.name(), "profileId");
        assert_eq!(id.sql(Dialect::Postgres), "\"profileId\"");
        assert_eq!(id.sql(Dialect::Mysql), "`profileId`");
        let id = Ident::parse("`odd``name`").unwrap();
        assert_eq!(id.name(), "odd`name");
        assert_eq!(id.sql(Dialect::Sqlite), "\"odd`name\"");
        assert_eq!(id.sql(Dialect::Mysql), "`odd``name`");
        let id = Ident::parse("public.\"Team \"\"A\"\"\"").unwrap();
        assert_eq!(id.len(), 2);
        assert_eq!(id.name(), "Team \"A\"");
        assert_eq!(id.sql(Dialect::Postgres), "public.\"Team \"\"A\"\"\"");
        let id = Ident::parse("[my.col]").unwrap();
        assert_eq!(id.name(), "my.col");
        assert_eq!(id.sql(Dialect::Mysql), "`my.col`");
        let id = Ident::parse("created_at").unwrap();
        assert_eq!(id.sql(Dialect::Mysql), "created_at");
    }

    #[test]
    fn bad_names_say_what_to_do() {
        for bad in [
            "",
            "a.",
            ".a",
            "\"open",
            "a b",
            "id; DROP TABLE x",
            "\"a\"b",
            "\"\"",
        ] {
            assert!(Ident::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Ident::parse("a b").unwrap_err(),
            "name \"a b\" is not a plain identifier: quote it (\"a b\") if that is its name"
        );
    }
}
