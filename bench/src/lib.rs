//! What the benchmark's programs share: the data set, the slug function and
//! the statements of the `backfill-user-slugs` example, so that the native
//! comparator does exactly the work the guest does.
//!
//! The binaries:
//!
//! * `dmig-bench`: the benchmark itself (run it with `scripts/bench.sh`).
//! * `native-backfill`: comparator (b), the example as a plain sqlx program.
//! * `library-backfill`: the example through dmig-host's library, with the
//!   sandbox's default limits or with them off, to measure what they cost.
//!
//! Comparator (d), the same work as a plain Python program, is not Rust: see
//! `bench/python` (its slug function must match [`slug_for`] on the data set,
//! which every run's check enforces).

use std::fmt;

/// The example's batch size unless `--batch-size` says otherwise.
pub const DEFAULT_BATCH_SIZE: i64 = 500;

/// The example's statements, word for word (see
/// `examples/backfill-user-slugs/src/lib.rs`), with `?` placeholders.
pub mod sql {
    /// First step: how many rows the run will touch (its progress total).
    pub const COUNT_MISSING: &str = "SELECT count(*) AS n FROM users WHERE slug IS NULL";
    /// Every step: the next keyset batch.
    pub const SELECT_BATCH: &str =
        "SELECT id, name FROM users WHERE id > ? AND slug IS NULL ORDER BY id LIMIT ?";
    /// Every row: one prepared UPDATE.
    pub const UPDATE_ONE: &str = "UPDATE users SET slug = ? WHERE id = ?";
    /// After the last step, in its transaction: every user has a unique slug.
    pub const VERIFY: &str = "SELECT (SELECT count(*) FROM users WHERE slug IS NULL) AS missing, \
                (SELECT count(*) - count(DISTINCT slug) FROM users) AS duplicates";
}

/// The databases the benchmark runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The dialect of a `sqlite://` or `postgres://` URL.
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Dialect::Postgres)
        } else {
            None
        }
    }

    /// `sql` with its `?` placeholders as this dialect writes them: `$1`,
    /// `$2`, ... for PostgreSQL. (The statements above have no `?` inside
    /// literals.)
    pub fn placeholders(self, sql: &str) -> String {
        match self {
            Dialect::Sqlite => sql.to_owned(),
            Dialect::Postgres => {
                let mut out = String::with_capacity(sql.len() + 8);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push_str(&format!("${n}"));
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }

    /// How a transaction starts, as dmig-host starts it.
    pub fn begin(self) -> &'static str {
        match self {
            // dmig-host takes SQLite's write lock up front (see host/src/db).
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::Sqlite => "SQLite",
            Dialect::Postgres => "PostgreSQL",
        })
    }
}

/// `<slugified name>-<id>`, as the example computes it (same `slug` crate
/// version, same fallback for names with nothing to slugify).
pub fn slug_for(name: &str, id: i64) -> String {
    let base = slug::slugify(name);
    if base.is_empty() {
        format!("user-{id}")
    } else {
        format!("{base}-{id}")
    }
}

const FIRST_NAMES: [&str; 16] = [
    "Ada",
    "Grace",
    "Émile",
    "Zoë",
    "José",
    "Jürgen",
    "Siobhán",
    "Mary-Jane",
    "Alan",
    "Edsger",
    "Barbara",
    "Ken",
    "Margaret",
    "Dennis",
    "Frances",
    "Linus",
];
const LAST_NAMES: [&str; 15] = [
    "Lovelace",
    "Hopper",
    "Zola",
    "O'Brien",
    "García Márquez",
    "Müller",
    "de la Cruz",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Allen",
    "Torvalds",
];

/// The name of user `id` in the data set: deterministic, a mix of plain
/// ASCII, accented letters, apostrophes, hyphens and several words, as a
/// real `users` table has.
pub fn name_for(id: i64) -> String {
    let id = id.unsigned_abs() as usize;
    let first = FIRST_NAMES[id % FIRST_NAMES.len()];
    let last = LAST_NAMES[(id / FIRST_NAMES.len()) % LAST_NAMES.len()];
    format!("{first} {last}")
}

/// Every character of the data set's names that is not a lowercase or
/// uppercase ASCII letter, with what `slug` turns it into: what a set-based
/// UPDATE needs on a database without regular expressions or
/// transliteration (SQLite).
pub fn non_ascii_letters() -> Vec<(char, String)> {
    let mut chars: Vec<char> = FIRST_NAMES
        .iter()
        .chain(LAST_NAMES.iter())
        .flat_map(|n| n.chars())
        .filter(|c| !c.is_ascii_alphabetic())
        .collect();
    chars.sort_unstable();
    chars.dedup();
    chars.into_iter().map(|c| (c, deunicode_char(c))).collect()
}

/// What `slug` makes of one character between letters: its transliteration
/// in lowercase, or `-` for a separator.
fn deunicode_char(c: char) -> String {
    let slugged = slug::slugify(format!("a{c}a"));
    slugged[1..slugged.len() - 1].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_match_the_example() {
        assert_eq!(slug_for("Ada Lovelace", 7), "ada-lovelace-7");
        assert_eq!(slug_for("Émile Zola", 3), "emile-zola-3");
        assert_eq!(slug_for("O'Brien & Sons", 8), "o-brien-sons-8");
        assert_eq!(slug_for("!!!", 4), "user-4");
    }

    #[test]
    fn names_cover_every_combination() {
        let names: std::collections::HashSet<_> = (0..240).map(name_for).collect();
        assert_eq!(names.len(), FIRST_NAMES.len() * LAST_NAMES.len());
        assert_eq!(name_for(0), "Ada Lovelace");
        assert_eq!(name_for(17), "Grace Hopper");
    }

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            Dialect::Postgres.placeholders(sql::SELECT_BATCH),
            "SELECT id, name FROM users WHERE id > $1 AND slug IS NULL ORDER BY id LIMIT $2"
        );
        assert_eq!(
            Dialect::Sqlite.placeholders(sql::UPDATE_ONE),
            sql::UPDATE_ONE
        );
    }

    #[test]
    fn non_ascii_letters_transliterate_as_slug_does() {
        let map = non_ascii_letters();
        let get = |c| map.iter().find(|(k, _)| *k == c).map(|(_, v)| v.as_str());
        assert_eq!(get('É'), Some("e"));
        assert_eq!(get('ü'), Some("u"));
        assert_eq!(get(' '), Some("-"));
        assert_eq!(get('\''), Some("-"));
        assert_eq!(get('-'), Some("-"));
    }
}
