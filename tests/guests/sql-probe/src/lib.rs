//! Test guest: sends the SQL it is given from a migration whose manifest
//! declares only that it reads `users` and writes `notes` (see `probe.rs`).

use dmig_guest::{Manifest, Migration, Result, Step};

mod probe;

struct SqlProbe;

impl Migration for SqlProbe {
    const MANIFEST: Manifest = Manifest::new("sql-probe", "Sends the SQL it is given")
        .reads(&["users"])
        .writes(&["notes"]);

    fn up(cursor: Option<&str>) -> Result<Step> {
        probe::up(cursor)
    }
}

dmig_guest::export_migration!(SqlProbe);
