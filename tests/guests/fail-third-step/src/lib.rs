//! Test guest: marks `items` rows done in batches of 10 and fails in its third
//! step *after* writing, so the host must roll that step back.

use dmig_guest::{Error, Manifest, Migration, Result, Step, db, params};

struct FailThirdStep;

impl Migration for FailThirdStep {
    const MANIFEST: Manifest =
        Manifest::new("fail-third-step", "Fails on purpose in its third step").writes(&["items"]);

    fn up(cursor: Option<&str>) -> Result<Step> {
        let step: i64 = cursor.map_or(Ok(0), str::parse).map_err(Error::msg)?;
        let marked = db::execute(
            "UPDATE items SET done = 1 WHERE id > ? AND id <= ?",
            &params![step * 10, step * 10 + 10],
        )?;
        if step == 2 {
            return Err(Error::msg("refusing batch 3: simulated failure"));
        }
        Ok(Step::next((step + 1).to_string(), marked))
    }
}

dmig_guest::export_migration!(FailThirdStep);
