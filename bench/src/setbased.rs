//! Comparator (c): the whole backfill as one set-based `UPDATE`, as far as
//! each database can express the slug function in SQL.

use dmig_bench::{Dialect, non_ascii_letters};

/// The statement, and a note on how faithful it is.
pub fn statement(dialect: Dialect) -> (String, &'static str) {
    match dialect {
        // unaccent transliterates as the slug crate does for these names;
        // the regular expression turns every other run into one `-`.
        Dialect::Postgres => (
            "UPDATE users SET slug = coalesce(nullif(trim(both '-' from \
             regexp_replace(lower(unaccent(name)), '[^a-z0-9]+', '-', 'g')), ''), 'user') \
             || '-' || id WHERE slug IS NULL"
                .to_owned(),
            "unaccent + regexp_replace: the general slug function",
        ),
        // SQLite has neither regular expressions nor transliteration: a
        // replace() per character the data set has besides ASCII letters.
        // Correct for this data set only (checked row by row), a floor for
        // what SQLite itself costs rather than a general slug function.
        Dialect::Sqlite => {
            let mut expr = "name".to_owned();
            for (c, with) in non_ascii_letters() {
                let quote = |s: &str| s.replace('\'', "''");
                expr = format!(
                    "replace({expr}, '{}', '{}')",
                    quote(&c.to_string()),
                    quote(&with)
                );
            }
            (
                format!(
                    "UPDATE users SET slug = coalesce(nullif(lower({expr}), ''), 'user') \
                     || '-' || id WHERE slug IS NULL"
                ),
                "a replace() chain for this data set's characters (SQLite has no regexp or transliteration)",
            )
        }
    }
}
