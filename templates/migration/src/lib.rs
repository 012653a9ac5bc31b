//! {{project-name}}: fills `users.email_normalized` with the trimmed,
//! lowercased email wherever it is NULL. `down` clears the column for every
//! user (it cannot tell the values it set from older ones).
//!
//! # The cursor contract
//!
//! dmig calls `up` again and again. Each call does ONE batch inside a
//! transaction the host owns, and returns a `Step`: the cursor the next call
//! starts from, or `Step::done` when there is nothing left. The host commits
//! the batch's writes and the returned cursor together, so after a crash the
//! next run resumes exactly after the last committed batch: no row is done
//! twice, none is skipped.
//!
//! So a step must be a function of its cursor and the database only: keep no
//! state in statics between calls, read one batch by key (`Keyset`, never
//! OFFSET), and put into the cursor everything the next step needs.
//!
//! # Idempotency
//!
//! Runs are recorded, so a finished migration is not run again; but an
//! operator may `--force` it, and a step may be retried after a failure. Write
//! every step so that running it twice does no harm: select only the rows
//! that still need the change (`email_normalized IS NULL`), use natural keys
//! or legacy-id columns to recognise rows copied before, and never append
//! blindly.

use dmig_guest::{
    Error, Keyset, Lock, Manifest, Migration, Result, Step, args, db, log, params, progress,
};

/// Rows per step unless `--arg batch_size=N` says otherwise. Each step is one
/// transaction: big enough to amortize the round trips, small enough to keep
/// locks short.
const DEFAULT_BATCH_SIZE: u64 = 500;

struct Migrate;

impl Migration for Migrate {
    /// Who the migration is and every table it may touch: embedded in the
    /// artifact, shown by `dmig-host inspect`, and enforced by the host on
    /// each statement. Declare reads with `.reads(&[...])`, DDL with `.ddl()`.
    ///
    /// The name is how the ledger knows this migration: never change it once
    /// it has run anywhere.
    const MANIFEST: Manifest = Manifest::new(
        "{{project-name}}",
        "Fill users.email_normalized from users.email where it is missing",
    )
    .reversible()
    .writes(&["users"]);

    fn up(cursor: Option<&str>) -> Result<Step> {
        let keyset = Keyset::new("users", "id")
            .columns("id, email")
            .filter("email_normalized IS NULL", params![])
            // The value written is computed from the value read: lock the
            // batch so the application cannot change an email in between
            // (a no-op on SQLite, whose steps hold the write lock anyway).
            .lock(Lock::ForUpdate)
            .batch_size(args::batch_size(DEFAULT_BATCH_SIZE)?);
        if cursor.is_none() {
            // The first step: tell the operator how much there is to do.
            let total = keyset.count()?;
            progress::set_total(total);
            log::info(format!("{total} users to normalize"));
        }
        let batch = keyset.fetch(cursor)?;
        db::execute_many_with(
            "UPDATE users SET email_normalized = ? WHERE id = ?",
            batch.rows(),
            |user| {
                let email: String = user.get("email")?;
                Ok(params![email.trim().to_lowercase(), user.get::<i64>("id")?])
            },
        )?;
        batch.step()
    }

    /// Runs after the last `up` step, inside its transaction: an error rolls
    /// that step back and fails the run.
    fn verify() -> Result<()> {
        let missing = db::query(
            "SELECT count(*) AS n FROM users WHERE email_normalized IS NULL",
            &[],
        )?;
        let missing: i64 = missing.get(0).map_or(Ok(0), |row| row.get("n"))?;
        if missing > 0 {
            return Err(Error::msg(format!(
                "{missing} users still have no email_normalized"
            )));
        }
        Ok(())
    }

    /// Undoes `up`, in batches too.
    fn down(cursor: Option<&str>) -> Result<Step> {
        let batch = Keyset::new("users", "id")
            .columns("id")
            .filter("email_normalized IS NOT NULL", params![])
            .batch_size(args::batch_size(DEFAULT_BATCH_SIZE)?)
            .fetch(cursor)?;
        db::execute_many_with(
            "UPDATE users SET email_normalized = NULL WHERE id = ?",
            batch.rows(),
            |user| Ok(params![user.get::<i64>("id")?]),
        )?;
        batch.step()
    }
}

dmig_guest::export_migration!(Migrate);

