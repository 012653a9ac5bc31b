//! Test guest for what the runner checks between steps, rebuilt from
//! failures users of other migration runners reported. `--arg mode=`:
//!
//! * `declare` (`--arg declare=N`): declares a total of N rows in its first
//!   step, then marks every `probe_items` row done, 4 per step: a run that
//!   ends short of (or past) its declared total.
//! * `stall`: selects the rows still to do and returns the cursor it was
//!   given without changing them: a migration that never advances.
//! * `drain`: deletes `probe_queue` rows, 3 per step, always returning the
//!   same cursor until the queue is empty: a migration that advances
//!   without moving its cursor.
//! * `contend` (`--arg order=1,2`, `--arg steps=N`): in each of N steps adds
//!   1 to `probe_items.done` of each listed id, in that order, so a test
//!   holding those rows' locks makes it wait, time out or deadlock.

use dmig_guest::{Error, Manifest, Migration, Result, Step, args, db, params, progress};

struct RunnerProbe;

impl Migration for RunnerProbe {
    const MANIFEST: Manifest = Manifest::new("runner-probe", "Exercises the runner's checks")
        .writes(&["probe_items", "probe_queue"]);

    fn up(cursor: Option<&str>) -> Result<Step> {
        let mode: String = args::required("mode")?;
        match mode.as_str() {
            "declare" => declare(cursor),
            "stall" => stall(cursor),
            "drain" => drain(),
            "contend" => contend(cursor),
            other => Err(Error::msg(format!(
                "unknown mode {other:?}: pass --arg mode=declare, stall, drain or contend"
            ))),
        }
    }
}

fn declare(cursor: Option<&str>) -> Result<Step> {
    if cursor.is_none() {
        progress::set_total(args::required("declare")?);
    }
    let after: i64 = cursor.map_or(Ok(0), str::parse).map_err(Error::msg)?;
    let batch = db::query(
        "SELECT id FROM probe_items WHERE id > ? ORDER BY id LIMIT 4",
        &params![after],
    )?;
    let Some(last) = batch.last() else {
        return Ok(Step::done(0));
    };
    let last: i64 = last.get("id")?;
    let marked = db::execute(
        "UPDATE probe_items SET done = 1 WHERE id > ? AND id <= ?",
        &params![after, last],
    )?;
    Ok(Step::next(last.to_string(), marked))
}

fn stall(cursor: Option<&str>) -> Result<Step> {
    let pending = db::query(
        "SELECT id FROM probe_items WHERE done = 0 ORDER BY id LIMIT 5",
        &[],
    )?;
    if pending.is_empty() {
        return Ok(Step::done(0));
    }
    // The bug: the rows are "handled" but nothing records it, and the
    // cursor stays where it was.
    Ok(Step::next(
        cursor.unwrap_or("pending").to_owned(),
        pending.len() as u64,
    ))
}

fn drain() -> Result<Step> {
    let batch = db::query("SELECT id FROM probe_queue ORDER BY id LIMIT 3", &[])?;
    if batch.is_empty() {
        return Ok(Step::done(0));
    }
    let ids: Vec<Vec<_>> = batch
        .iter()
        .map(|r| r.get::<i64>("id").map(|id| params![id]))
        .collect::<Result<_>>()?;
    let deleted = db::execute_many("DELETE FROM probe_queue WHERE id = ?", &ids)?;
    Ok(Step::next("queue", deleted))
}

fn contend(cursor: Option<&str>) -> Result<Step> {
    let steps: u64 = args::parse_or("steps", 1)?;
    let order: String = args::parse_or("order", "1,2".to_owned())?;
    let step: u64 = cursor.map_or(Ok(0), str::parse).map_err(Error::msg)?;
    let mut changed = 0;
    for id in order.split(',') {
        let id: i64 = id.trim().parse().map_err(Error::msg)?;
        changed += db::execute(
            "UPDATE probe_items SET done = done + 1 WHERE id = ?",
            &params![id],
        )?;
    }
    if step + 1 >= steps {
        return Ok(Step::done(changed));
    }
    Ok(Step::next((step + 1).to_string(), changed))
}

dmig_guest::export_migration!(RunnerProbe);
