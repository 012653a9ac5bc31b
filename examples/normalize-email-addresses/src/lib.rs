//! Lowercases and trims `users.email`.
//!
//! Collisions are resolved deterministically: when the normalized address is
//! already some other user's email, or two users normalize to the same
//! address, the user who holds it exactly keeps it, otherwise the lowest id
//! gets it; every other user keeps their email unchanged and is listed in the
//! log as a warning (`user 7 keeps "Ada@x.org": ada@x.org belongs to user
//! 3`). Users are handled in id order, so the outcome does not depend on the
//! batch size.
//!
//! Keyset batches by id (`--arg batch_size=N`, default 500). Idempotent: an
//! email already normalized is left alone, so a rerun changes nothing.
//! Not reversible: the original spellings are not kept.

use std::collections::HashMap;

use dmig_guest::{
    Keyset, Manifest, Migration, Result, Step, Value, args, db, log, params, progress,
};

const DEFAULT_BATCH_SIZE: u64 = 500;

struct NormalizeEmailAddresses;

impl Migration for NormalizeEmailAddresses {
    const MANIFEST: Manifest = Manifest::new(
        "normalize-email-addresses",
        "Lowercase and trim users.email; collisions keep their email and are logged",
    )
    .writes(&["users"]);

    fn up(cursor: Option<&str>) -> Result<Step> {
        let users = Keyset::new("users", "id")
            .columns("id, email")
            .batch_size(args::batch_size(DEFAULT_BATCH_SIZE)?);
        if cursor.is_none() {
            progress::set_total(users.count()?);
        }
        let batch = users.fetch(cursor)?;
        let changes: Vec<(i64, String, String)> = batch
            .rows()
            .iter()
            .map(|row| {
                let id: i64 = row.get("id")?;
                let email: String = row.get("email")?;
                Ok((id, normalize(&email), email))
            })
            .filter(|c| !matches!(c, Ok((_, normalized, email)) if normalized == email))
            .collect::<Result<_>>()?;

        // Who holds each wanted address now. A case-insensitive collation
        // (MySQL's default) also returns other spellings: compare exactly here.
        let mut holders: HashMap<String, i64> = HashMap::new();
        if !changes.is_empty() {
            let wanted: Vec<Value> = changes.iter().map(|(_, n, _)| Value::from(n)).collect();
            let list = vec!["?"; wanted.len()].join(", ");
            for row in db::query(
                &format!("SELECT id, email FROM users WHERE email IN ({list})"),
                &wanted,
            )?
            .iter()
            {
                holders.insert(row.get("email")?, row.get("id")?);
            }
        }
        let mut updates = Vec::new();
        for (id, normalized, email) in changes {
            match holders.get(&normalized) {
                Some(&holder) if holder != id => log::warn(format!(
                    "user {id} keeps {email:?}: {normalized} belongs to user {holder}"
                )),
                _ => {
                    holders.insert(normalized.clone(), id);
                    updates.push(params![normalized, id]);
                }
            }
        }
        db::execute_many("UPDATE users SET email = ? WHERE id = ?", &updates)?;
        batch.step_with(updates.len() as u64)
    }
}

dmig_guest::export_migration!(NormalizeEmailAddresses);

/// The normal form: trimmed, lowercase.
pub fn normalize(email: &str) -> String {
    email.trim().to_lowercase()
}
