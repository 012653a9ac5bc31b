//! Backfills `users.slug` as `<slugified name>-<id>` for every user without one.
//!
//! Keyset batches by `id` (500 rows, or `--arg batch_size=N`): the cursor is
//! the last id of the previous batch, so each step reads one batch and a run
//! resumes exactly after a crash. Each batch's slugs are written back in one
//! statement (`db::update_many`); `--arg writes=per-row` writes one `UPDATE`
//! per row instead, for comparison.
//! `down` clears exactly the slugs this migration would have set (a slug equal
//! to `<slugified name>-<id>`), leaving hand-set slugs alone.

use dmig_guest::{Error, Manifest, Migration, Result, Rows, Step, args, db, log, params, progress};

/// Rows per step unless `--arg batch_size=N` says otherwise.
const DEFAULT_BATCH_SIZE: u64 = 500;

struct BackfillUserSlugs;

impl Migration for BackfillUserSlugs {
    const MANIFEST: Manifest = Manifest::new(
        "backfill-user-slugs",
        "Set users.slug to the slugified name plus -<id> where it is missing",
    )
    .reversible()
    .writes(&["users"]);

    fn up(cursor: Option<&str>) -> Result<Step> {
        let size = args::batch_size(DEFAULT_BATCH_SIZE)?;
        let after = parse_cursor(cursor)?;
        if cursor.is_none() {
            let missing = db::query("SELECT count(*) AS n FROM users WHERE slug IS NULL", &[])?;
            let missing: u64 = missing.get(0).map_or(Ok(0), |r| r.get("n"))?;
            progress::set_total(missing);
            log::info(format!("{missing} users have no slug; batches of {size}"));
        }
        let batch = db::query(
            "SELECT id, name FROM users WHERE id > ? AND slug IS NULL ORDER BY id LIMIT ?",
            &params![after, size as i64],
        )?;
        let per_row = per_row_writes()?;
        let mut updates = Vec::with_capacity(batch.len());
        for user in batch.iter() {
            let id: i64 = user.get("id")?;
            let slug = slug_for(&user.get::<String>("name")?, id);
            updates.push(if per_row {
                params![slug, id]
            } else {
                params![id, slug]
            });
        }
        if per_row {
            // One `UPDATE … WHERE id = ?` per row, for comparison.
            db::execute_many("UPDATE users SET slug = ? WHERE id = ?", &updates)?;
        } else {
            // The whole batch in one statement.
            db::update_many("users", "id", &["slug"], &updates)?;
        }
        next_step(&batch, size)
    }

    /// Every user has a slug, and no two share one.
    fn verify() -> Result<()> {
        let check = db::query(
            "SELECT (SELECT count(*) FROM users WHERE slug IS NULL) AS missing, \
                    (SELECT count(*) - count(DISTINCT slug) FROM users) AS duplicates",
            &[],
        )?;
        let row = check
            .get(0)
            .ok_or_else(|| Error::msg("verify query returned no row"))?;
        let (missing, duplicates): (i64, i64) = (row.get("missing")?, row.get("duplicates")?);
        if missing > 0 || duplicates > 0 {
            return Err(Error::msg(format!(
                "{missing} users still have no slug and {duplicates} slugs are duplicated"
            )));
        }
        Ok(())
    }

    fn down(cursor: Option<&str>) -> Result<Step> {
        let size = args::batch_size(DEFAULT_BATCH_SIZE)?;
        let after = parse_cursor(cursor)?;
        let batch = db::query(
            "SELECT id, name, slug FROM users WHERE id > ? AND slug IS NOT NULL ORDER BY id LIMIT ?",
            &params![after, size as i64],
        )?;
        let mut clears = Vec::new();
        for user in batch.iter() {
            let id: i64 = user.get("id")?;
            let name: String = user.get("name")?;
            let slug: String = user.get("slug")?;
            if slug == slug_for(&name, id) {
                clears.push(params![id]);
            }
        }
        db::execute_many("UPDATE users SET slug = NULL WHERE id = ?", &clears)?;
        next_step(&batch, size)
    }
}

dmig_guest::export_migration!(BackfillUserSlugs);

/// `--arg writes=per-row` writes one statement per row (the comparison the
/// benchmark makes); the default, `--arg writes=bulk`, one per batch.
fn per_row_writes() -> Result<bool> {
    match args::get("writes").as_deref() {
        None | Some("bulk") => Ok(false),
        Some("per-row") => Ok(true),
        Some(other) => Err(Error::msg(format!(
            "--arg writes={other} is not a way to write: use bulk (the default) or per-row"
        ))),
    }
}

fn parse_cursor(cursor: Option<&str>) -> Result<i64> {
    match cursor {
        None => Ok(i64::MIN),
        Some(c) => c
            .parse()
            .map_err(|_| Error::msg(format!("cursor {c:?} is not a user id"))),
    }
}

/// A full batch means there may be more; a short one means this was the last.
fn next_step(batch: &Rows, size: u64) -> Result<Step> {
    let processed = batch.len() as u64;
    match batch.last() {
        Some(last) if batch.len() as u64 == size => {
            Ok(Step::next(last.get::<i64>("id")?.to_string(), processed))
        }
        _ => Ok(Step::done(processed)),
    }
}

/// `<slugified name>-<id>`: unique by construction, even for equal names.
pub fn slug_for(name: &str, id: i64) -> String {
    let base = slugify(name);
    if base.is_empty() {
        format!("user-{id}")
    } else {
        format!("{base}-{id}")
    }
}

/// Lowercase ASCII letters and digits, other scripts transliterated
/// (`Émile` becomes `emile`), every other run of characters one `-`.
pub fn slugify(name: &str) -> String {
    slug::slugify(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug_for("Ada Lovelace", 7), "ada-lovelace-7");
        assert_eq!(slug_for("  Grace   HOPPER!! ", 12), "grace-hopper-12");
        assert_eq!(slug_for("Émile Zola", 3), "emile-zola-3");
        assert_eq!(slug_for("O'Brien & Sons", 8), "o-brien-sons-8");
        assert_eq!(slug_for("!!!", 4), "user-4");
        assert_eq!(slug_for("", 5), "user-5");
    }
}
