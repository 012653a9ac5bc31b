//! The body shared by `sql-probe` and `sql-probe-raw`: step 1 commits a row
//! to `notes`; step 2 writes another row (which must be rolled back), then
//! sends the statements given as `--arg sql=…`, `--arg sql2=…`, `--arg sql3=…`
//! in order, each through the call named by `--arg call=query|execute|many`
//! (`many`: `execute_many` with `--arg sets=N` empty parameter sets, default
//! 1000). If every statement runs, the step fails with what the last one
//! returned, so a test that expects a refusal (exit 8) or a limit (exit 5)
//! sees exit 1 instead when the gate let something through.
//!
//! With `--arg errors=continue`, a database error is remembered as what the
//! statement returned and the next statement is sent all the same (a guest
//! may swallow the errors it gets).
//!
//! With `--arg from=input`, each statement is read instead from the input of
//! the same name (`--input sql=PATH`, …; an input not granted is skipped), for
//! statements longer than a command-line argument may be.

use dmig_guest::{Error, Result, Step, args, db, input};

pub fn up(cursor: Option<&str>) -> Result<Step> {
    if cursor.is_none() {
        db::execute("INSERT INTO notes (step) VALUES (1)", &[])?;
        return Ok(Step::next("1", 1));
    }
    db::execute("INSERT INTO notes (step) VALUES (2)", &[])?;
    let call = args::get("call").unwrap_or_else(|| "query".into());
    let from_input = args::get("from").as_deref() == Some("input");
    let keep_going = args::get("errors").as_deref() == Some("continue");
    let mut last = String::from("nothing ran");
    for name in ["sql", "sql2", "sql3"] {
        let sql = if from_input {
            if !input::path(name).exists() {
                continue;
            }
            input::read_to_string(name)?
        } else {
            let Some(sql) = args::get(name) else { continue };
            sql
        };
        last = match send(&call, name, &sql) {
            Err(e) if keep_going => format!("{name} failed: {e}"),
            other => other?,
        };
    }
    // `--arg finish=done`: end the run as if all went well, so the host's
    // checks at commit (the ledger digest) are what must stop it.
    if args::get("finish").as_deref() == Some("done") {
        return Ok(Step::done(1));
    }
    Err(Error::msg(format!("every statement ran: {last}")))
}

/// Sends one statement through `call`; what it returned, for the message.
fn send(call: &str, name: &str, sql: &str) -> Result<String> {
    Ok(match call {
        "query" => {
            let rows = db::query(sql, &[])?;
            let first = rows.get(0).and_then(|r| r.values().first().cloned());
            format!(
                "{name} returned {} row(s), first value {first:?}",
                rows.len()
            )
        }
        "execute" => format!("{name} changed {} row(s)", db::execute(sql, &[])?),
        "many" => {
            let sets: usize = args::parse_or("sets", 1000)?;
            let changed = db::execute_many(sql, &vec![Vec::new(); sets])?;
            format!("{name} ran {sets} times, changed {changed} row(s)")
        }
        other => return Err(Error::msg(format!("unknown call {other}"))),
    })
}
