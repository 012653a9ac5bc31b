//! Older WIT versions, implemented by converting to the latest one: the
//! host's logic exists once.

use crate::bindings::{latest, v0_1_0};

use super::state::HostState;

use latest::dmig::migration::{db as db_latest, types as t};
use v0_1_0::dmig::migration::{db as db_v1, types as t1};

impl t1::Host for HostState {}

impl db_v1::Host for HostState {
    async fn current_dialect(&mut self) -> wasmtime::Result<t1::Dialect> {
        Ok(match db_latest::Host::current_dialect(self).await? {
            t::Dialect::Sqlite => t1::Dialect::Sqlite,
            t::Dialect::Postgres => t1::Dialect::Postgres,
            t::Dialect::Mysql => t1::Dialect::Mysql,
        })
    }

    async fn query(
        &mut self,
        sql: String,
        params: Vec<t1::Value>,
    ) -> wasmtime::Result<Result<t1::Rows, t1::DbError>> {
        let params = params.into_iter().map(up).collect();
        let result = db_latest::Host::query(self, sql, params).await?;
        Ok(result
            .map(|rows| t1::Rows {
                columns: rows.columns,
                rows: rows
                    .rows
                    .into_iter()
                    .map(|row| row.into_iter().map(down).collect())
                    .collect(),
            })
            .map_err(error))
    }

    async fn execute(
        &mut self,
        sql: String,
        params: Vec<t1::Value>,
    ) -> wasmtime::Result<Result<u64, t1::DbError>> {
        let params = params.into_iter().map(up).collect();
        Ok(db_latest::Host::execute(self, sql, params)
            .await?
            .map_err(error))
    }

    async fn execute_many(
        &mut self,
        sql: String,
        param_sets: Vec<Vec<t1::Value>>,
    ) -> wasmtime::Result<Result<u64, t1::DbError>> {
        let sets = param_sets
            .into_iter()
            .map(|set| set.into_iter().map(up).collect())
            .collect();
        Ok(db_latest::Host::execute_many(self, sql, sets)
            .await?
            .map_err(error))
    }
}

fn up(value: t1::Value) -> t::Value {
    match value {
        t1::Value::Null => t::Value::Null,
        t1::Value::Boolean(b) => t::Value::Boolean(b),
        t1::Value::Int(i) => t::Value::Int(i),
        t1::Value::Float(f) => t::Value::Float(f),
        t1::Value::Text(s) => t::Value::Text(s),
        t1::Value::Blob(b) => t::Value::Blob(b),
    }
}

fn down(value: t::Value) -> t1::Value {
    match value {
        t::Value::Null => t1::Value::Null,
        t::Value::Boolean(b) => t1::Value::Boolean(b),
        t::Value::Int(i) => t1::Value::Int(i),
        t::Value::Float(f) => t1::Value::Float(f),
        t::Value::Text(s) => t1::Value::Text(s),
        t::Value::Blob(b) => t1::Value::Blob(b),
    }
}

fn error(e: t::DbError) -> t1::DbError {
    t1::DbError {
        code: e.code,
        message: e.message,
    }
}
