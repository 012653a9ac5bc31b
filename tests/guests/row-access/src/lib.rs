//! Test guest: reads one row of every value kind by name and by index, then
//! fails with the SDK's error messages for a type mismatch, a missing column,
//! a NULL read as non-optional, and an index out of range, so the test can
//! check the exact text an author would see.

use dmig_guest::{Error, Manifest, Migration, Result, Step, db, params};

struct RowAccess;

fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::msg(format!("check failed: {what}")))
    }
}

impl Migration for RowAccess {
    const MANIFEST: Manifest =
        Manifest::new("row-access", "Exercises typed row access").reads(&["no_such_table"]);

    fn up(_cursor: Option<&str>) -> Result<Step> {
        let rows = db::query(
            "SELECT 7 AS id, 'ada' AS name, NULL AS absent, x'00ff' AS bytes, 2.5 AS ratio, ? AS flag, ? AS big",
            &params![true, i64::MAX],
        )?;
        check(rows.len() == 1, "one row")?;
        check(
            rows.columns() == ["id", "name", "absent", "bytes", "ratio", "flag", "big"],
            "column names",
        )?;
        let row = rows.get(0).expect("checked above");
        check(
            row.get::<i64>("id")? == 7 && row.get::<i64>(0)? == 7,
            "id by name and index",
        )?;
        check(
            row.get::<i32>("id")? == 7 && row.get::<u8>("id")? == 7,
            "narrow integers",
        )?;
        check(
            row.get::<String>("name")? == "ada" && row.get::<String>(1)? == "ada",
            "text",
        )?;
        check(
            row.get::<Option<String>>("absent")?.is_none(),
            "NULL as Option",
        )?;
        check(row.get::<Option<i64>>("id")? == Some(7), "value as Option")?;
        check(row.get::<Vec<u8>>("bytes")? == [0x00, 0xff], "blob")?;
        check(row.get::<f64>("ratio")? == 2.5, "float")?;
        check(row.get::<bool>("flag")?, "bool parameter round trip")?;
        check(row.get::<i64>("big")? == i64::MAX, "i64::MAX round trip")?;
        check(row.get::<i64>("ID")? == 7, "case-insensitive name fallback")?;

        let errors = [
            row.get::<String>("id").unwrap_err(),
            row.get::<i64>("nope").unwrap_err(),
            row.get::<i64>("absent").unwrap_err(),
            row.get::<i64>(9).unwrap_err(),
            row.get::<i32>("big").unwrap_err(),
        ];
        let db_error = db::query("SELECT * FROM no_such_table", &[]).unwrap_err();
        let mut messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        messages.push(db_error.to_string());
        Err(Error::msg(messages.join(" | ")))
    }
}

dmig_guest::export_migration!(RowAccess);
