//! Test guest for exactly-once resume: adds 1 to `counters.n` for every row,
//! in keyset batches (`--arg batch_size`, default 500), and records each
//! batch in `counter_batches`. `verify` checks every counter is exactly 1.
//! `--arg sleep_ms=N` makes each step wait after its writes, so a test can
//! signal the host in the middle of a step.

use dmig_guest::{Error, Manifest, Migration, Result, Step, args, db, log, params, progress};

struct Counter;

impl Migration for Counter {
    const MANIFEST: Manifest = Manifest::new("counter", "Adds 1 to every counter, exactly once")
        .writes(&["counters", "counter_batches"]);

    fn up(cursor: Option<&str>) -> Result<Step> {
        let size: i64 = args::parse_or("batch_size", 500)?;
        let sleep_ms: u64 = args::parse_or("sleep_ms", 0)?;
        let after: i64 = cursor.map_or(Ok(0), str::parse).map_err(Error::msg)?;
        if cursor.is_none() {
            let total = db::query("SELECT count(*) AS n FROM counters", &[])?;
            progress::set_total(total.get(0).map_or(Ok(0), |r| r.get("n"))?);
        }
        let batch = db::query(
            "SELECT id FROM counters WHERE id > ? ORDER BY id LIMIT ?",
            &params![after, size],
        )?;
        let ids: Vec<Vec<_>> = batch
            .iter()
            .map(|r| r.get::<i64>("id").map(|id| params![id]))
            .collect::<Result<_>>()?;
        db::execute_many("UPDATE counters SET n = n + 1 WHERE id = ?", &ids)?;
        let Some(last) = batch.last() else {
            return Ok(Step::done(0));
        };
        let last: i64 = last.get("id")?;
        db::execute(
            "INSERT INTO counter_batches (first_id, last_id) VALUES (?, ?)",
            &params![after + 1, last],
        )?;
        log::debug(format!("batch up to {last}"));
        if sleep_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(sleep_ms));
        }
        if (batch.len() as i64) < size {
            return Ok(Step::done(batch.len() as u64));
        }
        Ok(Step::next(last.to_string(), batch.len() as u64))
    }

    fn verify() -> Result<()> {
        let wrong = db::query("SELECT count(*) AS n FROM counters WHERE n <> 1", &[])?;
        let wrong: i64 = wrong.get(0).map_or(Ok(0), |r| r.get("n"))?;
        if wrong > 0 {
            return Err(Error::msg(format!("{wrong} counters are not exactly 1")));
        }
        Ok(())
    }
}

dmig_guest::export_migration!(Counter);
