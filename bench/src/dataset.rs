//! The data set, `users(id, name, slug NULL)`, and the databases it lives
//! in. Each size is built once as a template and copied for every measured
//! run (a file copy for SQLite, `CREATE DATABASE … TEMPLATE` for
//! PostgreSQL), so every run starts from the same data and none pays for
//! building it. The benchmark creates everything it uses under its own names
//! and drops it at the end.

use std::path::PathBuf;
use std::str::FromStr;

use futures_util::TryStreamExt;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{
    ColumnIndex, ConnectOptions, Connection, Database, Decode, Encode, Executor, IntoArguments,
    Row, Type,
};

use dmig_bench::{Dialect, name_for, slug_for};

use crate::error::{BenchError, Context, Result};

/// Rows per INSERT statement while seeding (2 parameters each).
const SEED_CHUNK: u64 = 1000;

/// Where the benchmark's databases are made.
pub enum Store {
    /// Files in a directory.
    Sqlite { dir: PathBuf },
    /// Databases on a server, reached through `admin` (an existing database
    /// to connect to), named `<prefix>_…`.
    Postgres { admin: String, prefix: String },
}

/// A data set of `rows` users, to copy from.
pub struct Template {
    pub rows: u64,
    name: String,
}

impl Store {
    pub fn dialect(&self) -> Dialect {
        match self {
            Store::Sqlite { .. } => Dialect::Sqlite,
            Store::Postgres { .. } => Dialect::Postgres,
        }
    }

    fn url(&self, name: &str) -> String {
        match self {
            Store::Sqlite { dir } => format!("sqlite://{}", dir.join(name).display()),
            Store::Postgres { admin, .. } => with_database(admin, name),
        }
    }

    /// Builds the data set of `rows` users.
    pub async fn template(&self, rows: u64) -> Result<Template> {
        let name = match self {
            Store::Sqlite { .. } => format!("template-{rows}.db"),
            Store::Postgres { prefix, .. } => format!("{prefix}_template_{rows}"),
        };
        self.discard(&name).await?;
        if let Store::Postgres { admin, .. } = self {
            Conn::open(admin)
                .await?
                .exec(&format!("CREATE DATABASE {name}"))
                .await?;
        }
        let mut conn = Conn::open(&self.url(&name)).await?;
        conn.seed(rows).await?;
        conn.close().await?;
        Ok(Template { rows, name })
    }

    /// A fresh copy of `template` named `name`; returns its URL.
    pub async fn copy(&self, template: &Template, name: &str) -> Result<String> {
        let name = self.name(name);
        self.discard(&name).await?;
        match self {
            Store::Sqlite { dir } => {
                let (from, to) = (dir.join(&template.name), dir.join(&name));
                std::fs::copy(&from, &to).map_err(|source| BenchError::Io {
                    what: "copying the data set",
                    path: to.clone(),
                    source,
                })?;
            }
            Store::Postgres { admin, .. } => {
                Conn::open(admin)
                    .await?
                    .exec(&format!(
                        "CREATE DATABASE {name} TEMPLATE {}",
                        template.name
                    ))
                    .await?;
            }
        }
        Ok(self.url(&name))
    }

    fn name(&self, name: &str) -> String {
        match self {
            Store::Sqlite { .. } => format!("{name}.db"),
            Store::Postgres { prefix, .. } => format!("{prefix}_{name}"),
        }
    }

    /// Removes the database `name` (a file name or a database name) if it
    /// exists.
    async fn discard(&self, name: &str) -> Result<()> {
        match self {
            Store::Sqlite { dir } => {
                for file in [name.to_owned(), format!("{name}-journal")] {
                    let path = dir.join(file);
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(source) => {
                            return Err(BenchError::Io {
                                what: "removing an old database",
                                path,
                                source,
                            });
                        }
                    }
                }
                Ok(())
            }
            Store::Postgres { admin, .. } => {
                Conn::open(admin)
                    .await?
                    .exec(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
                Ok(())
            }
        }
    }

    /// Drops the copy made by [`Store::copy`] as `name`.
    pub async fn drop_copy(&self, name: &str) -> Result<()> {
        self.discard(&self.name(name)).await
    }

    /// Drops everything the benchmark made: `templates` and the copies
    /// named `copies`.
    pub async fn cleanup(&self, templates: &[Template], copies: &[&str]) -> Result<()> {
        for template in templates {
            self.discard(&template.name).await?;
        }
        for copy in copies {
            self.drop_copy(copy).await?;
        }
        Ok(())
    }
}

/// `url` (a server URL) pointing at database `name` instead.
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

/// What [`Conn::check`] found.
pub struct Check {
    pub rows: u64,
    pub missing: u64,
    pub wrong: u64,
    pub example: String,
}

/// The benchmark's own connection, for building, checking and the
/// set-based UPDATE; never the connection of a measured program.
pub enum Conn {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Conn {
    pub async fn open(url: &str) -> Result<Conn> {
        let what = || format!("connecting to {url}");
        Ok(match Dialect::from_url(url) {
            Some(Dialect::Sqlite) => Conn::Sqlite(
                SqliteConnectOptions::from_str(url)
                    .context(what())?
                    .create_if_missing(true)
                    .connect()
                    .await
                    .context(what())?,
            ),
            Some(Dialect::Postgres) => Conn::Postgres(
                PgConnectOptions::from_str(url)
                    .context(what())?
                    .connect()
                    .await
                    .context(what())?,
            ),
            None => return Err(BenchError::Missing(format!("unsupported URL {url}"))),
        })
    }

    pub async fn close(self) -> Result<()> {
        match self {
            Conn::Sqlite(c) => c.close().await,
            Conn::Postgres(c) => c.close().await,
        }
        .context("closing a connection")
    }

    /// Runs `sql` (no parameters); returns the rows it changed.
    pub async fn exec(&mut self, sql: &str) -> Result<u64> {
        let raw = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()));
        match self {
            Conn::Sqlite(c) => raw.execute(c).await.map(|r| r.rows_affected()),
            Conn::Postgres(c) => raw.execute(c).await.map(|r| r.rows_affected()),
        }
        .context(format!("running {sql}"))
    }

    /// The first column of the first row of `sql`, as text.
    pub async fn text(&mut self, sql: &'static str) -> Result<String> {
        match self {
            Conn::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(c).await,
            Conn::Postgres(c) => sqlx::query_scalar(sql).fetch_one(c).await,
        }
        .context(format!("running {sql}"))
    }

    /// Creates `users` and fills it with `rows` users without a slug.
    async fn seed(&mut self, rows: u64) -> Result<()> {
        match self {
            Conn::Sqlite(c) => seed::<sqlx::Sqlite>(c, Dialect::Sqlite, rows).await,
            Conn::Postgres(c) => seed::<sqlx::Postgres>(c, Dialect::Postgres, rows).await,
        }
        .context(format!("building the data set of {rows} rows"))?;
        if let Conn::Postgres(_) = self {
            // Planner statistics, the visibility map, and the extension
            // the set-based UPDATE transliterates with: every copy has them.
            self.exec("VACUUM ANALYZE users").await?;
            self.exec("CREATE EXTENSION IF NOT EXISTS unaccent").await?;
        }
        Ok(())
    }

    /// Reads every row and compares its slug with [`slug_for`]: a run that
    /// left a wrong result has no throughput worth reporting.
    pub async fn check(&mut self) -> Result<Check> {
        match self {
            Conn::Sqlite(c) => check::<sqlx::Sqlite>(c).await,
            Conn::Postgres(c) => check::<sqlx::Postgres>(c).await,
        }
        .context("checking the slugs")
    }
}

async fn seed<DB>(conn: &mut DB::Connection, dialect: Dialect, rows: u64) -> sqlx::Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> String: Encode<'a, DB> + Type<DB>,
{
    let id_type = match dialect {
        Dialect::Sqlite => "INTEGER",
        Dialect::Postgres => "BIGINT",
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE users (id {id_type} PRIMARY KEY, name TEXT NOT NULL, slug TEXT)"
    )))
    .execute(&mut *conn)
    .await?;
    sqlx::raw_sql(dialect.begin()).execute(&mut *conn).await?;
    let mut start = 1;
    while start <= rows {
        let n = SEED_CHUNK.min(rows - start + 1);
        let values = vec!["(?, ?)"; n as usize].join(", ");
        let insert = dialect.placeholders(&format!("INSERT INTO users (id, name) VALUES {values}"));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(insert));
        for id in start..start + n {
            let id = i64::try_from(id).expect("fewer than 2^63 rows");
            query = query.bind(id).bind(name_for(id));
        }
        query.execute(&mut *conn).await?;
        start += n;
    }
    sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
    Ok(())
}

async fn check<DB>(conn: &mut DB::Connection) -> sqlx::Result<Check>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'a> i64: Decode<'a, DB> + Type<DB>,
    for<'a> String: Decode<'a, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let mut check = Check {
        rows: 0,
        missing: 0,
        wrong: 0,
        example: String::new(),
    };
    // Streamed: the benchmark holds one row at a time, like everything else.
    let mut rows = sqlx::query("SELECT id, name, slug FROM users ORDER BY id").fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        let (id, name): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
        let slug: Option<String> = row.try_get(2)?;
        check.rows += 1;
        match slug {
            None => check.missing += 1,
            Some(slug) if slug != slug_for(&name, id) => {
                check.wrong += 1;
                if check.example.is_empty() {
                    check.example = format!("id {id}, name {name:?}: {slug:?}");
                }
            }
            Some(_) => {}
        }
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_point_at_another_database() {
        assert_eq!(
            with_database("postgres://me@127.0.0.1:5432/postgres", "b"),
            "postgres://me@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgres://me:pw@h/postgres?sslmode=disable", "b"),
            "postgres://me:pw@h/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "b"), "postgres://h/b");
    }
}
