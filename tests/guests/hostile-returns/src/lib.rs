//! Test guest: returns what the `behaviour` argument names, for the host to
//! survive. Nothing it returns may corrupt the ledger or the operator's
//! terminal, or leave a run `running`. It touches no table.
//!
//! * `error-forge`: fails with an error full of line breaks, terminal escapes,
//!   NUL and bidi controls that try to forge lines of host output
//! * `error-huge`: fails with a 250,000-byte error (MySQL's TEXT holds 65,535)
//! * `log-forge`: logs and prints the forging text, then finishes
//! * `processed-max`: reports `u64::MAX` rows processed
//! * `processed-overflow`: `i64::MAX` rows in step 1, one more in step 2
//! * `cursor-huge`: returns a 100,000-byte cursor
//! * `cursor-control`: returns a cursor with a line break and an escape
//! * `describe-description`, `describe-name`, `describe-reversible`: say
//!   something of itself in `describe()` that its manifest does not
//! * `describe-forge`: calls itself by a name with a line break
//! * anything else: one step, one row

wit_bindgen::generate!({
    path: "../../../wit/v0.2.0",
    world: "data-migration",
});

use dmig::migration::{args, log};
use exports::dmig::migration::migration::{Guest, Metadata, Step};

/// Text that tries to end the host's line and forge its own.
pub const FORGED: &str = "boom\nerror: forged line\r\u{1b}[2K\u{1b}[32mapplied hostile-returns\u{2028}forged\u{0}nul\u{202e}rtl";

struct HostileReturns;

fn behaviour() -> String {
    args::get("behaviour").unwrap_or_default()
}

impl Guest for HostileReturns {
    fn describe() -> Metadata {
        let behaviour = behaviour();
        Metadata {
            name: match behaviour.as_str() {
                "describe-name" => "hostile-returns-2".into(),
                "describe-forge" => "hostile-returns\nerror: forged".into(),
                _ => "hostile-returns".into(),
            },
            description: match behaviour.as_str() {
                "describe-description" => "Something else entirely".into(),
                _ => "Returns what it is told to".into(),
            },
            reversible: behaviour == "describe-reversible",
        }
    }

    fn up(cursor: Option<String>) -> Result<Step, String> {
        let first = cursor.is_none();
        match behaviour().as_str() {
            "error-forge" => Err(FORGED.into()),
            "error-huge" => Err(format!("{}{}", "é".repeat(75_000), "x".repeat(100_000))),
            "log-forge" => {
                log::log(log::Level::Warn, FORGED);
                println!("{FORGED}");
                eprintln!("{FORGED}");
                Ok(Step {
                    cursor: None,
                    processed: 1,
                })
            }
            "processed-max" => Ok(Step {
                cursor: Some("1".into()),
                processed: u64::MAX,
            }),
            "processed-overflow" => Ok(Step {
                cursor: first.then(|| "1".into()),
                processed: if first { i64::MAX as u64 } else { 1 },
            }),
            "cursor-huge" => Ok(Step {
                cursor: Some("c".repeat(100_000)),
                processed: 1,
            }),
            "cursor-control" => Ok(Step {
                cursor: Some("1\n\u{1b}[2Kapplied".into()),
                processed: 1,
            }),
            "cursor-nul" => Ok(Step {
                cursor: Some("1\0x".into()),
                processed: 1,
            }),
            _ => Ok(Step {
                cursor: None,
                processed: 1,
            }),
        }
    }

    fn down(_cursor: Option<String>) -> Result<Step, String> {
        Ok(Step {
            cursor: None,
            processed: 0,
        })
    }

    fn verify() -> Result<(), String> {
        Ok(())
    }
}

export!(HostileReturns);
