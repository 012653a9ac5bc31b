//! Ledger DDL: the only ledger SQL that differs between databases.

use crate::db::{Dialect, Value};

/// Statements that create the ledger tables if they do not exist.
pub(super) fn ddl(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        // Postgres and MySQL get their own DDL when their drivers land; the
        // connection refuses them before the ledger is reached.
        Dialect::Sqlite | Dialect::Postgres | Dialect::Mysql => &[
            "CREATE TABLE IF NOT EXISTS dmig_migrations (
                name TEXT PRIMARY KEY NOT NULL,
                sha256 TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                state TEXT NOT NULL,
                first_applied_at TEXT,
                last_finished_at TEXT
            )",
            "CREATE TABLE IF NOT EXISTS dmig_runs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                migration TEXT NOT NULL REFERENCES dmig_migrations (name),
                direction TEXT NOT NULL,
                status TEXT NOT NULL,
                started_at TEXT NOT NULL,
                finished_at TEXT,
                steps INTEGER NOT NULL DEFAULT 0,
                rows_processed INTEGER NOT NULL DEFAULT 0,
                cursor TEXT,
                error TEXT,
                host_version TEXT NOT NULL,
                sha256 TEXT NOT NULL
            )",
            "CREATE INDEX IF NOT EXISTS dmig_runs_migration ON dmig_runs (migration, id)",
            "CREATE TABLE IF NOT EXISTS dmig_locks (
                migration TEXT PRIMARY KEY NOT NULL,
                holder TEXT NOT NULL,
                run_id INTEGER,
                host TEXT NOT NULL,
                pid INTEGER NOT NULL,
                acquired_at TEXT NOT NULL,
                expires_at TEXT NOT NULL
            )",
        ],
    }
}

/// A query returning a row iff `table` exists.
pub(super) fn table_exists(dialect: Dialect, table: &str) -> (&'static str, Vec<Value>) {
    match dialect {
        Dialect::Sqlite => (
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
            vec![table.into()],
        ),
        Dialect::Postgres | Dialect::Mysql => (
            "SELECT table_name FROM information_schema.tables WHERE table_name = ?",
            vec![table.into()],
        ),
    }
}
