//! Test guest: attacks its sandbox. Step 1 commits a row to `progress`; step
//! 2 writes another row, then attempts the attack named in `attack.name`, so
//! every test can check that the database is exactly as step 1 left it.

use std::hint::black_box;
use std::io::Read;

use dmig_guest::{Error, Manifest, Migration, Result, Step, Value, db, input, params};

struct Hostile;

impl Migration for Hostile {
    const MANIFEST: Manifest =
        Manifest::new("hostile", "Attempts the attack named in the attack table")
            .reads(&["attack", "information_schema.columns"])
            .writes(&["progress", "imported"]);

    fn up(cursor: Option<&str>) -> Result<Step> {
        if cursor.is_none() {
            db::execute(
                "INSERT INTO progress (step, note) VALUES (1, 'committed')",
                &[],
            )?;
            return Ok(Step::next("1", 1));
        }
        db::execute(
            "INSERT INTO progress (step, note) VALUES (2, 'must be rolled back')",
            &[],
        )?;
        let rows = db::query("SELECT name, arg FROM attack", &[])?;
        let row = rows
            .get(0)
            .ok_or_else(|| Error::msg("no attack configured"))?;
        let name: String = row.get("name")?;
        let arg: Option<String> = row.get("arg")?;
        attack(&name, arg.as_deref().unwrap_or_default())?;
        Ok(Step::done(1))
    }
}

dmig_guest::export_migration!(Hostile);

fn attack(name: &str, arg: &str) -> Result<()> {
    match name {
        "infinite-loop" => loop {
            black_box(());
        },
        "host-call-loop" => loop {
            db::query("SELECT 1", &[])?;
        },
        "memory-bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(black_box(vec![1u8; 16 * 1024 * 1024]));
            }
        }
        "recursion" => {
            black_box(recurse(black_box(1)));
            Ok(())
        }
        "panic" => {
            let items: Vec<u32> = black_box(vec![1, 2, 3]);
            let index = black_box(5);
            println!("about to index {index} of {}", items.len());
            let _ = items[index];
            Ok(())
        }
        "abort" => std::process::abort(),
        "print-flood" => {
            for i in 0..200_000 {
                println!("line {i} of a flood the host must bound");
            }
            Err(Error::msg("printed 200000 lines"))
        }
        "huge-result" => {
            db::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000000) SELECT i FROM n",
                &[],
            )?;
            Ok(())
        }
        "huge-result-bytes" => {
            db::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) SELECT randomblob(1048576) FROM n",
                &[],
            )?;
            Ok(())
        }
        "huge-sql" => {
            let sql = format!("SELECT 1 /* {} */", "x".repeat(2 * 1024 * 1024));
            db::query(&sql, &[])?;
            Ok(())
        }
        "huge-params" => {
            let sets = vec![params![1]; 200_000];
            db::execute_many("UPDATE progress SET note = note WHERE step = ?", &sets)?;
            Ok(())
        }
        "read-file" => {
            let text =
                std::fs::read_to_string(arg).map_err(|e| Error::msg(format!("read {arg}: {e}")))?;
            Err(Error::msg(format!("read {} bytes of {arg}", text.len())))
        }
        "list-dir" => {
            let entries =
                std::fs::read_dir(arg).map_err(|e| Error::msg(format!("list {arg}: {e}")))?;
            Err(Error::msg(format!(
                "listed {} entries of {arg}",
                entries.count()
            )))
        }
        "write-file" => {
            std::fs::write(arg, b"pwned").map_err(|e| Error::msg(format!("write {arg}: {e}")))?;
            Err(Error::msg(format!("wrote {arg}")))
        }
        "tcp" => {
            let stream = std::net::TcpStream::connect(arg)
                .map_err(|e| Error::msg(format!("connect {arg}: {e}")))?;
            Err(Error::msg(format!("connected to {:?}", stream.peer_addr())))
        }
        "ambient" => {
            let vars = std::env::vars().count();
            let args = std::env::args().count();
            let mut stdin = Vec::new();
            let stdin_result = std::io::stdin().read_to_end(&mut stdin);
            Err(Error::msg(format!(
                "env vars: {vars}, args: {args}, stdin: {} bytes ({})",
                stdin.len(),
                if stdin_result.is_ok() { "ok" } else { "error" }
            )))
        }
        "query" => {
            let rows = db::query(arg, &[])?;
            let first = rows.get(0).and_then(|r| r.values().last().cloned());
            Err(Error::msg(format!("query returned: {first:?}")))
        }
        "statement" => {
            db::execute(arg, &[])?;
            Err(Error::msg(format!("statement ran: {arg}")))
        }
        "input" => {
            let text = input::read_to_string(arg)?;
            let lines: Vec<Value> = text.lines().map(Value::from).collect();
            for line in &lines {
                db::execute(
                    "INSERT INTO imported (line) VALUES (?)",
                    std::slice::from_ref(line),
                )?;
            }
            let listed: Vec<String> = std::fs::read_dir(input::DIR)
                .map_err(|e| Error::msg(format!("list inputs: {e}")))?
                .map(|e| {
                    e.map(|e| e.file_name().to_string_lossy().into_owned())
                        .unwrap_or_default()
                })
                .collect();
            let write = std::fs::write(input::path(arg), b"changed").is_ok();
            let escape = std::fs::read(format!("{}/../etc/passwd", input::DIR)).is_ok();
            Err(Error::msg(format!(
                "imported {} lines; inputs visible: {listed:?}; write allowed: {write}; escape allowed: {escape}",
                lines.len()
            )))
        }
        other => Err(Error::msg(format!("unknown attack {other}"))),
    }
}

// Deliberately unbounded: the sandbox must turn it into a clean trap.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let local = black_box([depth; 16]);
    black_box(recurse(local[0] + 1)) + local[15]
}
