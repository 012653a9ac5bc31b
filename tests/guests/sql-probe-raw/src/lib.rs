//! Test guest: `sql-probe` with `.raw_sql()` declared, the most a manifest
//! can ask for short of DDL (see `../sql-probe/src/probe.rs`).

use dmig_guest::{Manifest, Migration, Result, Step};

#[path = "../../sql-probe/src/probe.rs"]
mod probe;

struct SqlProbeRaw;

impl Migration for SqlProbeRaw {
    const MANIFEST: Manifest = Manifest::new(
        "sql-probe-raw",
        "Sends the SQL it is given, raw SQL declared",
    )
    .reads(&["users"])
    .writes(&["notes"])
    .raw_sql();

    fn up(cursor: Option<&str>) -> Result<Step> {
        probe::up(cursor)
    }
}

dmig_guest::export_migration!(SqlProbeRaw);
