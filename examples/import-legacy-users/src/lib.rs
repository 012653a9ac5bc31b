//! Imports the legacy user export, a CSV file granted with
//! `dmig-host run --input users.csv=PATH`, into `users` with one `profiles`
//! row per user.
//!
//! The file has a header row naming at least `legacy_id`, `email` and `name`
//! (and optionally `phone`), in any order. Emails are trimmed and lowercased.
//! A malformed row (wrong number of fields, a non-integer id, an email that is
//! not an address, an empty name, an email another user has, an id imported
//! before with another email) does not stop the import: it is recorded in
//! `legacy_import_errors` with its line and reason, and logged as a warning.
//!
//! Batches of records (`--arg batch_size=N`, default 500): the cursor is the
//! byte offset and line of the next record, so a step seeks straight to it.
//! Idempotent: a row whose `legacy_id` is already in `users` is skipped, and
//! an error already recorded for a line is not recorded again, so a rerun
//! (`--force`, e.g. with a corrected or longer file) imports nothing twice.
//!
//! `down` deletes the imported users (those with a `legacy_id`), their
//! profiles and the recorded errors.

use std::collections::{HashMap, HashSet};

use dmig_guest::{
    Error, Keyset, Manifest, Migration, Result, Step, Value, args, db, input, log, params, progress,
};

/// The granted input's name.
const INPUT: &str = "users.csv";
const DEFAULT_BATCH_SIZE: u64 = 500;

struct ImportLegacyUsers;

impl Migration for ImportLegacyUsers {
    const MANIFEST: Manifest = Manifest::new(
        "import-legacy-users",
        "Import the legacy users CSV (--input users.csv=PATH) into users and profiles",
    )
    .reversible()
    .writes(&["users", "profiles", "legacy_import_errors"]);

    fn up(cursor: Option<&str>) -> Result<Step> {
        let size = args::batch_size(DEFAULT_BATCH_SIZE)?;
        let mut reader = open()?;
        let columns = Columns::find(reader.headers().map_err(csv_error)?)?;
        if cursor.is_none() {
            let total = open()?.records().count() as u64;
            progress::set_total(total);
            log::info(format!("{INPUT} has {total} records"));
        } else {
            reader.seek(parse_cursor(cursor)?).map_err(csv_error)?;
        }

        let mut records = Vec::new();
        let mut record = csv::StringRecord::new();
        while (records.len() as u64) < size {
            let line = reader.position().line();
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => records.push(columns.parse(line, &record)),
                // A row that is not even CSV (invalid UTF-8): record and go on.
                Err(e) if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) => {
                    records.push(Err(Malformed {
                        line,
                        reason: "the row is not valid UTF-8".into(),
                        content: String::new(),
                    }))
                }
                Err(e) => return Err(csv_error(e)),
            }
        }
        let processed = records.len() as u64;
        let (imported, malformed) = import(records)?;
        log::debug(format!(
            "imported {imported} users, {malformed} malformed rows"
        ));

        let next = reader.position();
        if processed < size {
            summarize()?;
            return Ok(Step::done(processed));
        }
        Ok(Step::next(
            format!("{}:{}", next.byte(), next.line()),
            processed,
        ))
    }

    fn down(cursor: Option<&str>) -> Result<Step> {
        if cursor.is_none() {
            let errors = db::execute("DELETE FROM legacy_import_errors", &[])?;
            log::info(format!("deleted {errors} recorded import errors"));
        }
        let batch = Keyset::new("users", "id")
            .columns("id")
            .filter("legacy_id IS NOT NULL", params![])
            .batch_size(args::batch_size(DEFAULT_BATCH_SIZE)?)
            .fetch(cursor)?;
        let ids = batch.keys()?;
        if !ids.is_empty() {
            let list = db::placeholders(ids.len());
            db::execute(
                &format!("DELETE FROM profiles WHERE user_id IN ({list})"),
                &ids,
            )?;
            db::execute(&format!("DELETE FROM users WHERE id IN ({list})"), &ids)?;
        }
        batch.step()
    }
}

dmig_guest::export_migration!(ImportLegacyUsers);

/// One valid row of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Legacy {
    pub line: u64,
    pub legacy_id: i64,
    pub email: String,
    pub name: String,
    pub phone: Option<String>,
}

/// One row that cannot be imported, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    pub line: u64,
    pub reason: String,
    pub content: String,
}

/// Where each field is, from the header row.
struct Columns {
    count: usize,
    legacy_id: usize,
    email: usize,
    name: usize,
    phone: Option<usize>,
}

impl Columns {
    fn find(headers: &csv::StringRecord) -> Result<Self> {
        let position = |name: &str| headers.iter().position(|h| h.trim() == name);
        let required = |name: &str| {
            position(name).ok_or_else(|| {
                Error::msg(format!(
                    "{INPUT} has no {name} column (its header is: {}); it needs legacy_id, email and name",
                    headers.iter().collect::<Vec<_>>().join(",")
                ))
            })
        };
        Ok(Columns {
            count: headers.len(),
            legacy_id: required("legacy_id")?,
            email: required("email")?,
            name: required("name")?,
            phone: position("phone"),
        })
    }

    fn parse(&self, line: u64, record: &csv::StringRecord) -> Result<Legacy, Malformed> {
        let bad = |reason: String| Malformed {
            line,
            reason,
            content: to_csv(record),
        };
        if record.len() != self.count {
            return Err(bad(format!(
                "expected {} fields, found {}",
                self.count,
                record.len()
            )));
        }
        let id = record[self.legacy_id].trim();
        let legacy_id = id
            .parse()
            .map_err(|_| bad(format!("legacy_id {id:?} is not an integer")))?;
        let email = normalize_email(&record[self.email])
            .ok_or_else(|| bad(format!("email {:?} is not an address", &record[self.email])))?;
        let name = record[self.name].trim();
        if name.is_empty() {
            return Err(bad("name is empty".into()));
        }
        let phone = self
            .phone
            .map(|i| record[i].trim().to_owned())
            .filter(|p| !p.is_empty());
        Ok(Legacy {
            line,
            legacy_id,
            email,
            name: name.to_owned(),
            phone,
        })
    }
}

/// Trimmed and lowercased, if it looks like an address: one `@`, something
/// before it, a dotted domain after it, no spaces.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.contains(char::is_whitespace);
    ok.then_some(email)
}

/// Imports the valid rows not imported before, records the malformed ones
/// not recorded before; returns how many of each this step wrote.
fn import(records: Vec<Result<Legacy, Malformed>>) -> Result<(usize, usize)> {
    let (mut valid, mut malformed) = (Vec::new(), Vec::new());
    for record in records {
        match record {
            Ok(row) => valid.push(row),
            Err(row) => malformed.push(row),
        }
    }

    // What the database already has for these ids and emails.
    let mut imported_ids: HashMap<i64, String> = HashMap::new();
    let mut taken_emails: HashMap<String, Option<i64>> = HashMap::new();
    if !valid.is_empty() {
        let mut keys: Vec<Value> = valid.iter().map(|r| Value::from(r.legacy_id)).collect();
        keys.extend(valid.iter().map(|r| Value::from(&r.email)));
        let list = db::placeholders(valid.len());
        let existing = db::query(
            &format!(
                "SELECT legacy_id, email FROM users WHERE legacy_id IN ({list}) OR email IN ({list})"
            ),
            &keys,
        )?;
        for row in existing.iter() {
            let legacy_id: Option<i64> = row.get("legacy_id")?;
            let email: String = row.get("email")?;
            if let Some(id) = legacy_id {
                imported_ids.insert(id, email.clone());
            }
            taken_emails.insert(email.to_lowercase(), legacy_id);
        }
    }

    let mut new_users = Vec::new();
    for row in valid {
        match imported_ids.get(&row.legacy_id) {
            // Imported by an earlier run: nothing to do.
            Some(email) if email.to_lowercase() == row.email => continue,
            Some(email) => {
                malformed.push(Malformed {
                    line: row.line,
                    reason: format!(
                        "legacy_id {} was already imported with email {email}",
                        row.legacy_id
                    ),
                    content: format!("{},{},{}", row.legacy_id, row.email, row.name),
                });
                continue;
            }
            None => {}
        }
        if let Some(owner) = taken_emails.get(&row.email) {
            let owner = owner.map_or("another user".to_owned(), |id| format!("legacy user {id}"));
            malformed.push(Malformed {
                line: row.line,
                reason: format!("email {} already belongs to {owner}", row.email),
                content: format!("{},{},{}", row.legacy_id, row.email, row.name),
            });
            continue;
        }
        imported_ids.insert(row.legacy_id, row.email.clone());
        taken_emails.insert(row.email.clone(), Some(row.legacy_id));
        new_users.push(row);
    }

    db::execute_many_with(
        "INSERT INTO users (legacy_id, email, name) VALUES (?, ?, ?)",
        &new_users,
        |u| Ok(params![u.legacy_id, &u.email, &u.name]),
    )?;
    if !new_users.is_empty() {
        let ids: Vec<Value> = new_users.iter().map(|u| Value::from(u.legacy_id)).collect();
        let rows = db::query(
            &format!(
                "SELECT id, legacy_id FROM users WHERE legacy_id IN ({})",
                db::placeholders(ids.len())
            ),
            &ids,
        )?;
        let user_ids: HashMap<i64, i64> = rows
            .iter()
            .map(|r| Ok((r.get("legacy_id")?, r.get("id")?)))
            .collect::<Result<_>>()?;
        db::execute_many_with(
            "INSERT INTO profiles (user_id, display_name, phone) VALUES (?, ?, ?)",
            &new_users,
            |u| Ok(params![user_ids[&u.legacy_id], &u.name, u.phone.as_deref()]),
        )?;
    }

    let malformed = record_errors(malformed)?;
    Ok((new_users.len(), malformed))
}

/// Records (and logs) the malformed rows whose lines are not recorded yet.
fn record_errors(mut malformed: Vec<Malformed>) -> Result<usize> {
    malformed.sort_by_key(|m| m.line);
    if malformed.is_empty() {
        return Ok(0);
    }
    let lines: Vec<Value> = malformed
        .iter()
        .map(|m| Value::from(m.line as i64))
        .collect();
    let recorded: HashSet<i64> = db::query(
        &format!(
            "SELECT line FROM legacy_import_errors WHERE line IN ({})",
            db::placeholders(lines.len())
        ),
        &lines,
    )?
    .iter()
    .map(|r| r.get("line"))
    .collect::<Result<_>>()?;
    let new: Vec<&Malformed> = malformed
        .iter()
        .filter(|m| !recorded.contains(&(m.line as i64)))
        .collect();
    for m in &new {
        log::warn(format!("{INPUT} line {}: {}", m.line, m.reason));
    }
    db::execute_many_with(
        "INSERT INTO legacy_import_errors (line, reason, content) VALUES (?, ?, ?)",
        &new,
        |m| Ok(params![m.line as i64, &m.reason, &m.content]),
    )?;
    Ok(new.len())
}

/// The closing report, in the last step.
fn summarize() -> Result<()> {
    let counts = db::query(
        "SELECT (SELECT count(*) FROM users WHERE legacy_id IS NOT NULL) AS users, \
                (SELECT count(*) FROM legacy_import_errors) AS errors",
        &[],
    )?;
    let row = counts
        .get(0)
        .ok_or_else(|| Error::msg("the summary query returned no row"))?;
    let (users, errors): (i64, i64) = (row.get("users")?, row.get("errors")?);
    log::info(format!(
        "import finished: {users} legacy users imported; {errors} malformed rows listed in legacy_import_errors"
    ));
    Ok(())
}

fn open() -> Result<csv::Reader<std::fs::File>> {
    Ok(csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(input::open(INPUT)?))
}

/// The cursor `byte:line` as a position to seek to.
fn parse_cursor(cursor: Option<&str>) -> Result<csv::Position> {
    let mut position = csv::Position::new();
    if let Some(c) = cursor {
        let parsed = c
            .split_once(':')
            .and_then(|(b, l)| Some((b.parse().ok()?, l.parse().ok()?)));
        let Some((byte, line)) = parsed else {
            return Err(Error::msg(format!(
                "cursor {c:?} is not a byte:line position in {INPUT} (run with --restart to start over)"
            )));
        };
        position.set_byte(byte).set_line(line);
    }
    Ok(position)
}

fn csv_error(e: csv::Error) -> Error {
    Error::msg(format!("reading {INPUT}: {e}"))
}

/// The record as one CSV line, quoted where needed.
fn to_csv(record: &csv::StringRecord) -> String {
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    let _ = writer.write_record(record);
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_or_refused() {
        assert_eq!(
            normalize_email("  Ada@Example.COM "),
            Some("ada@example.com".into())
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.com",
            "ada@.com",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad}");
        }
    }

    #[test]
    fn rows_are_checked_field_by_field() {
        let columns =
            Columns::find(&csv::StringRecord::from(vec!["email", "legacy_id", "name"])).unwrap();
        let row = |fields: Vec<&str>| columns.parse(7, &csv::StringRecord::from(fields));
        assert_eq!(
            row(vec![" Ada@X.org", "3", " Ada "]).unwrap(),
            Legacy {
                line: 7,
                legacy_id: 3,
                email: "ada@x.org".into(),
                name: "Ada".into(),
                phone: None
            }
        );
        assert_eq!(
            row(vec!["a@x.org", "x", "A"]).unwrap_err().reason,
            "legacy_id \"x\" is not an integer"
        );
        assert_eq!(
            row(vec!["a@x.org", "1"]).unwrap_err().reason,
            "expected 3 fields, found 2"
        );
        assert_eq!(
            row(vec!["a@x.org", "1", " "]).unwrap_err().reason,
            "name is empty"
        );
        assert_eq!(row(vec!["nope", "1", "A"]).unwrap_err().content, "nope,1,A");
        assert!(Columns::find(&csv::StringRecord::from(vec!["id", "email"])).is_err());
    }
}
