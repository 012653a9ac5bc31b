//! Comparator (b): the `backfill-user-slugs` example as a plain native Rust
//! program on sqlx, doing the same work the guest does through dmig-host:
//! the same statements, the same keyset batches of the same size, one
//! transaction per batch (begun as dmig-host begins it), one prepared UPDATE
//! per row, the same slug function, the progress count at the start and the
//! verify query in the last batch's transaction. It keeps no ledger.
//!
//! ```text
//! native-backfill --database sqlite://app.db [--batch-size 500]
//! ```
//!
//! Prints `rows=N steps=N` on success; exits 1 with `error: …` otherwise.

use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use dmig_bench::{DEFAULT_BATCH_SIZE, Dialect, slug_for, sql};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{
    ColumnIndex, ConnectOptions, Database, Decode, Encode, Executor, IntoArguments, Row, Type,
};

/// Backfill users.slug natively (the benchmark's comparator).
#[derive(Debug, Parser)]
struct Args {
    /// sqlite://… or postgres://…
    #[arg(long)]
    database: String,
    /// Rows per batch (the example's `--arg batch_size`).
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    batch_size: i64,
}

/// Why a backfill stopped.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Database(#[from] sqlx::Error),
    #[error(
        "verify failed: {missing} users still have no slug and {duplicates} slugs are duplicated"
    )]
    Verify { missing: i64, duplicates: i64 },
}

/// What a backfill did.
struct Done {
    rows: u64,
    steps: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(&args)) {
        Ok(done) => {
            println!("rows={} steps={}", done.rows, done.steps);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<Done, String> {
    if args.batch_size < 1 {
        return Err(format!(
            "--batch-size {} must be at least 1",
            args.batch_size
        ));
    }
    let url = &args.database;
    let error = |e: sqlx::Error| e.to_string();
    match Dialect::from_url(url) {
        // The same connection settings dmig-host uses (host/src/db/sqlite.rs).
        Some(Dialect::Sqlite) => {
            let mut conn = SqliteConnectOptions::from_str(url)
                .map_err(error)?
                .busy_timeout(Duration::from_secs(5))
                .connect()
                .await
                .map_err(error)?;
            backfill::<sqlx::Sqlite>(&mut conn, Dialect::Sqlite, args.batch_size)
                .await
                .map_err(|e| e.to_string())
        }
        Some(Dialect::Postgres) => {
            let mut conn = url
                .parse::<PgConnectOptions>()
                .map_err(error)?
                .connect()
                .await
                .map_err(error)?;
            backfill::<sqlx::Postgres>(&mut conn, Dialect::Postgres, args.batch_size)
                .await
                .map_err(|e| e.to_string())
        }
        None => Err(format!(
            "unsupported database URL {url:?}: use sqlite://… or postgres://…"
        )),
    }
}

async fn backfill<DB>(
    conn: &mut DB::Connection,
    dialect: Dialect,
    batch_size: i64,
) -> Result<Done, Failure>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let select = dialect.placeholders(sql::SELECT_BATCH);
    let update = dialect.placeholders(sql::UPDATE_ONE);
    let mut after = i64::MIN;
    let mut done = Done { rows: 0, steps: 0 };
    loop {
        sqlx::raw_sql(dialect.begin()).execute(&mut *conn).await?;
        if done.steps == 0 {
            // The example reports this total to the operator; so does this.
            let missing: i64 = sqlx::query(sql::COUNT_MISSING)
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
            eprintln!("{missing} users have no slug; batches of {batch_size}");
        }
        let batch = sqlx::query(sqlx::AssertSqlSafe(select.as_str()))
            .bind(after)
            .bind(batch_size)
            .fetch_all(&mut *conn)
            .await?;
        for user in &batch {
            let id: i64 = user.try_get(0)?;
            let name: String = user.try_get(1)?;
            sqlx::query(sqlx::AssertSqlSafe(update.as_str()))
                .bind(slug_for(&name, id))
                .bind(id)
                .execute(&mut *conn)
                .await?;
            after = id;
        }
        done.rows += batch.len() as u64;
        done.steps += 1;
        let last = (batch.len() as i64) < batch_size;
        if last {
            let check = sqlx::query(sql::VERIFY).fetch_one(&mut *conn).await?;
            let (missing, duplicates): (i64, i64) = (check.try_get(0)?, check.try_get(1)?);
            if missing > 0 || duplicates > 0 {
                sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await?;
                return Err(Failure::Verify {
                    missing,
                    duplicates,
                });
            }
        }
        sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
        if last {
            return Ok(done);
        }
    }
}
