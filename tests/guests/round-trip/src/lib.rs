//! Test guest: copies every row of `rt_src (k, v)` into `rt_dst (k, v)`,
//! binding each value exactly as dmig read it (no conversion in the guest),
//! so the test can check that every value read can be written back
//! unchanged (`tests/values.rs`).
//!
//! `--arg write=` says how: `per-row` (the default; one `INSERT` per row),
//! `insert_many` (one bulk `INSERT` per batch) or `update_many` (one bulk
//! `UPDATE` by key per batch, into `rt_dst` rows the test made with `v`
//! NULL).

use dmig_guest::{Error, Manifest, Migration, Result, Step, Value, args, db, params};

/// Rows per step: small, so the 300 KB values of the tests stay well under
/// the per-call result limit.
const BATCH: usize = 50;

struct RoundTrip;

impl Migration for RoundTrip {
    const MANIFEST: Manifest =
        Manifest::new("round-trip", "Copies rt_src into rt_dst value for value")
            .reads(&["rt_src"])
            .writes(&["rt_dst"]);

    fn up(cursor: Option<&str>) -> Result<Step> {
        // The cursor is the last key copied; the first step starts below
        // every key.
        let after: i64 = cursor
            .map_or(Ok(i64::MIN), str::parse)
            .map_err(Error::msg)?;
        let rows = db::query(
            "SELECT k, v FROM rt_src WHERE k > ? ORDER BY k LIMIT ?",
            &params![after, BATCH as i64],
        )?;
        let copies = rows
            .iter()
            .map(|row| Ok(vec![row.get::<Value>("k")?, row.get::<Value>("v")?]))
            .collect::<Result<Vec<_>>>()?;
        match args::get("write").as_deref().unwrap_or("per-row") {
            "per-row" => {
                db::execute_many("INSERT INTO rt_dst (k, v) VALUES (?, ?)", &copies)?;
            }
            "insert_many" => {
                db::insert_many("rt_dst", &["k", "v"], &copies)?;
            }
            "update_many" => {
                db::update_many("rt_dst", "k", &["v"], &copies)?;
            }
            other => return Err(Error::msg(format!("unknown --arg write={other}"))),
        }
        Ok(match rows.last() {
            Some(last) if rows.len() == BATCH => {
                Step::next(last.get::<i64>("k")?.to_string(), BATCH as u64)
            }
            _ => Step::done(rows.len() as u64),
        })
    }
}

dmig_guest::export_migration!(RoundTrip);
