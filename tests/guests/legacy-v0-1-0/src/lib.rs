//! A v0.1.0 migration: inserts three rows into `legacy_log`, one per step,
//! and deletes them again on `down`.

wit_bindgen::generate!({
    path: "../../../wit/v0.1.0",
    world: "data-migration",
});

use dmig::migration::db;
use dmig::migration::types::Value;
use exports::dmig::migration::migration::{Guest, Metadata, Step};

struct Legacy;

impl Guest for Legacy {
    fn describe() -> Metadata {
        Metadata {
            name: "legacy-v0-1-0".into(),
            description: "Built against dmig:migration@0.1.0".into(),
            reversible: true,
        }
    }

    fn up(cursor: Option<String>) -> Result<Step, String> {
        let n: i64 = cursor
            .as_deref()
            .map_or(Ok(0), str::parse)
            .map_err(|e| format!("{e}"))?;
        db::execute(
            "INSERT INTO legacy_log (step) VALUES (?)",
            &[Value::Int(n + 1)],
        )
        .map_err(|e| e.message)?;
        Ok(Step {
            cursor: (n + 1 < 3).then(|| (n + 1).to_string()),
            processed: 1,
        })
    }

    fn down(_cursor: Option<String>) -> Result<Step, String> {
        let deleted = db::execute("DELETE FROM legacy_log", &[]).map_err(|e| e.message)?;
        Ok(Step {
            cursor: None,
            processed: deleted,
        })
    }
}

export!(Legacy);
