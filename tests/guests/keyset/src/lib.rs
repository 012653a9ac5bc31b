//! Test guest for keyset batches (`tests/keyset.rs`, issue 14).
//!
//! `--arg mode=copy` (the default) copies every row of `--arg source` into
//! `--arg dest`, column for column, in keyset batches of `--arg batch_size`
//! ordered by `--arg key` (columns separated by `,`; `--arg text_key=true`
//! for a one-column text key), locking each batch as `--arg lock` says
//! (`none`, `for_share`, `for_update`, `for_update_nowait`,
//! `for_update_skip_locked`). It declares the total it expects, so a run that
//! loses rows is visible as a mismatch.
//!
//! `--arg mode=rmw` adds 10 to every `accounts.balance` the read-modify-write
//! way: it reads a batch (locked as `--arg lock` says), logs `read`, then, with
//! `--arg gate=true`, updates `rmw_gate` row 1 (which a test can hold locked
//! to stop the step between its read and its write), then writes each balance
//! it computed: blindly (`--arg write=naive`) or only where the balance is
//! still the one it read (`--arg write=checked`), failing the step when a row
//! changed.

use dmig_guest::{
    Error, Keyset, Lock, Manifest, Migration, Result, Step, args, db, log, params, progress,
};

struct KeysetProbe;

impl Migration for KeysetProbe {
    const MANIFEST: Manifest = Manifest::new(
        "keyset",
        "Copies rows, or updates balances, in keyset batches",
    )
    .reads(&["\"Profiles\"", "archive"])
    .writes(&[
        "teams",
        "teams_copy",
        "tags",
        "tags_copy",
        "profiles_copy",
        "accounts",
        "rmw_gate",
    ]);

    fn up(cursor: Option<&str>) -> Result<Step> {
        match args::get("mode").as_deref().unwrap_or("copy") {
            "copy" => copy(cursor),
            "rmw" => read_modify_write(cursor),
            other => Err(Error::msg(format!(
                "unknown --arg mode={other}: use copy or rmw"
            ))),
        }
    }
}

fn lock() -> Result<Lock> {
    Ok(match args::get("lock").as_deref().unwrap_or("none") {
        "none" => Lock::None,
        "for_share" => Lock::ForShare,
        "for_update" => Lock::ForUpdate,
        "for_update_nowait" => Lock::ForUpdateNoWait,
        "for_update_skip_locked" => Lock::ForUpdateSkipLocked,
        other => return Err(Error::msg(format!("unknown --arg lock={other}"))),
    })
}

fn copy(cursor: Option<&str>) -> Result<Step> {
    let source: String = args::required("source")?;
    let dest = db::quote_identifier(&args::required::<String>("dest")?)?;
    let key: String = args::required("key")?;
    let mut keyset = Keyset::new(source, key.split(',').collect::<Vec<_>>())
        .batch_size(args::batch_size(500)?)
        .lock(lock()?);
    if args::parse_or("text_key", false)? {
        keyset = keyset.text_key();
    }
    if cursor.is_none() {
        progress::set_total(keyset.count()?);
    }
    let batch = keyset.fetch(cursor)?;
    let rows = batch.rows();
    if !rows.is_empty() {
        let columns = rows
            .columns()
            .iter()
            .map(|c| db::quote_identifier(c))
            .collect::<Result<Vec<_>>>()?;
        let sql = format!(
            "INSERT INTO {dest} ({}) VALUES ({})",
            columns.join(", "),
            db::placeholders(columns.len())
        );
        db::execute_many_with(&sql, rows, |row| Ok(row.values().to_vec()))?;
    }
    batch.step()
}

fn read_modify_write(cursor: Option<&str>) -> Result<Step> {
    let batch = Keyset::new("accounts", "id")
        .columns("id, balance")
        .batch_size(args::batch_size(500)?)
        .lock(lock()?)
        .fetch(cursor)?;
    let mut updates = Vec::new();
    for row in batch.rows() {
        let (id, balance): (i64, i64) = (row.get("id")?, row.get("balance")?);
        updates.push((id, balance));
    }
    log::info(format!("read {updates:?}, skipped {}", batch.skipped()));
    if args::parse_or("gate", false)? {
        db::execute("UPDATE rmw_gate SET passes = passes + 1 WHERE id = 1", &[])?;
    }
    match args::get("write").as_deref().unwrap_or("naive") {
        "naive" => {
            for (id, balance) in &updates {
                db::execute(
                    "UPDATE accounts SET balance = ? WHERE id = ?",
                    &params![balance + 10, *id],
                )?;
            }
        }
        "checked" => {
            for (id, balance) in &updates {
                let changed = db::execute(
                    "UPDATE accounts SET balance = ? WHERE id = ? AND balance = ?",
                    &params![balance + 10, *id, *balance],
                )?;
                if changed != 1 {
                    return Err(Error::msg(format!(
                        "account {id} changed after this step read its balance {balance}; the step is rolled back: run again to retry with the new balance"
                    )));
                }
            }
        }
        other => {
            return Err(Error::msg(format!(
                "unknown --arg write={other}: use naive or checked"
            )));
        }
    }
    batch.step()
}

dmig_guest::export_migration!(KeysetProbe);
