//! Test guest: declares that it reads `users` and writes `notes`, nothing
//! else. Step 1 commits a row to `notes`; step 2 writes another, then sends
//! the statement given as `--arg sql=…` and *ignores its result*, so only the
//! host can make a refused statement fail the run.

use dmig_guest::{Manifest, Migration, Result, Step, args, db};

struct Capabilities;

impl Migration for Capabilities {
    const MANIFEST: Manifest = Manifest::new(
        "capabilities",
        "Sends one statement to check that its declared capabilities are enforced",
    )
    .version("2.1.0")
    .reads(&["users"])
    .writes(&["notes"]);

    fn up(cursor: Option<&str>) -> Result<Step> {
        if cursor.is_none() {
            db::execute("INSERT INTO notes (step) VALUES (1)", &[])?;
            return Ok(Step::next("1", 1));
        }
        db::execute("INSERT INTO notes (step) VALUES (2)", &[])?;
        let sql: String = args::required("sql")?;
        // Deliberately swallowed: a misdeclared artifact must not be able to
        // skip a refused write silently.
        let _ = db::execute(&sql, &[]);
        Ok(Step::done(1))
    }
}

dmig_guest::export_migration!(Capabilities);
