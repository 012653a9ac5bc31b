//! The `db` interface as the guest sees it: every call runs on the host's
//! connection, inside the transaction of the current step, bounded by the
//! step's deadline.

use std::future::Future;

use std::sync::Arc;

use super::state::{HostState, HostTrap};
use crate::bindings::latest::dmig::migration::{db, types};
use crate::db::{CANCEL_GRACE, DbError, Dialect, LIMIT_CODE, ResultLimits, Rows, Value};
use crate::sql::Admitted;

/// How many distinct admitted SQL texts an instance remembers.
const MAX_ADMITTED_SQL: usize = 256;

impl types::Host for HostState {}

impl db::Host for HostState {
    async fn current_dialect(&mut self) -> wasmtime::Result<types::Dialect> {
        Ok(match self.conn.dialect() {
            Dialect::Sqlite => types::Dialect::Sqlite,
            Dialect::Postgres => types::Dialect::Postgres,
            Dialect::Mysql => types::Dialect::Mysql,
        })
    }

    async fn query(
        &mut self,
        sql: String,
        params: Vec<types::Value>,
    ) -> wasmtime::Result<Result<types::Rows, types::DbError>> {
        let admitted = match self.admit_current(&sql, params.len()).await? {
            Ok(admitted) => admitted,
            Err(e) => return Ok(Err(e.into())),
        };
        let params = params.into_iter().map(Value::from).collect::<Vec<_>>();
        let limits = ResultLimits {
            max_rows: self.calls.max_result_rows,
            max_bytes: self.calls.max_result_bytes,
        };
        let writes = returns_written_rows(&admitted.text);
        let result = self
            .bounded(|conn| async move { conn.query_limited(&*admitted, &params, limits).await })
            .await?;
        if writes && let Ok(rows) = &result {
            self.tally.rows_written += rows.rows.len() as u64;
        }
        Ok(result.map(types::Rows::from))
    }

    async fn execute(
        &mut self,
        sql: String,
        params: Vec<types::Value>,
    ) -> wasmtime::Result<Result<u64, types::DbError>> {
        let admitted = match self.admit_current(&sql, params.len()).await? {
            Ok(admitted) => admitted,
            Err(e) => return Ok(Err(e.into())),
        };
        let params = params.into_iter().map(Value::from).collect::<Vec<_>>();
        let result = self
            .bounded(|conn| async move { conn.execute(&*admitted, &params).await })
            .await?;
        if let Ok(n) = result {
            self.tally.rows_written += n;
        }
        Ok(result)
    }

    async fn execute_many(
        &mut self,
        sql: String,
        param_sets: Vec<Vec<types::Value>>,
    ) -> wasmtime::Result<Result<u64, types::DbError>> {
        let total = param_sets.iter().map(Vec::len).sum();
        let admitted = match self.admit_current(&sql, total).await? {
            Ok(admitted) => admitted,
            Err(e) => return Ok(Err(e.into())),
        };
        let param_sets = param_sets
            .into_iter()
            .map(|set| set.into_iter().map(Value::from).collect())
            .collect::<Vec<Vec<_>>>();
        let result = self
            .bounded(|conn| async move { conn.execute_many(&*admitted, &param_sets).await })
            .await?;
        if let Ok(n) = result {
            self.tally.rows_written += n;
        }
        Ok(result)
    }
}

impl HostState {
    /// [`HostState::admit`] against a current catalog: after a statement
    /// that may have changed the schema, PostgreSQL's catalog is read again
    /// (within the step's deadline) and the statements admitted under the
    /// old one are forgotten. A statement that may change the schema marks
    /// the catalog stale for the next one.
    async fn admit_current(
        &mut self,
        sql: &str,
        params: usize,
    ) -> wasmtime::Result<Result<Arc<Admitted>, DbError>> {
        if self.catalog_stale && self.conn.dialect() == Dialect::Postgres {
            let catalog = match self
                .bounded(|conn| async move { conn.gate_catalog().await })
                .await?
            {
                Ok(catalog) => catalog,
                Err(e) => {
                    return Ok(Err(DbError {
                        number: None,
                        code: e.code,
                        message: format!(
                            "cannot read the database catalog the SQL gate needs: {}",
                            e.message
                        ),
                    }));
                }
            };
            self.gate.set_catalog(catalog);
            self.admitted.clear();
            self.catalog_stale = false;
        }
        let admitted = self.admit(sql, params)?;
        if let Ok(admitted) = &admitted
            && admitted.changes_schema
        {
            self.schema_changed = true;
            self.catalog_stale = true;
            if self.conn.dialect() == Dialect::Mysql {
                self.tally.committed_implicitly = true;
            }
        }
        Ok(admitted)
    }

    /// Checks a call against the per-call caps and the SQL gate before it
    /// reaches the database, and returns what to send: the gate's rendering,
    /// never the guest's text. A cap is an error the guest sees; a refusal
    /// by the gate traps (exit 8).
    fn admit(
        &mut self,
        sql: &str,
        params: usize,
    ) -> wasmtime::Result<Result<Arc<Admitted>, DbError>> {
        let limit = |message: String| DbError {
            number: None,
            code: Some(LIMIT_CODE.into()),
            message,
        };
        if sql.len() > self.calls.max_sql_bytes {
            return Ok(Err(limit(format!(
                "the SQL text is {} bytes, over the per-call limit of {} bytes",
                sql.len(),
                self.calls.max_sql_bytes
            ))));
        }
        if params > self.calls.max_params {
            return Ok(Err(limit(format!(
                "the call passes {params} parameter values, over the per-call limit of {}; send smaller batches",
                self.calls.max_params
            ))));
        }
        // A migration sends the same few statements batch after batch:
        // analyse each text once. Only admitted texts are remembered, and
        // only so many.
        if let Some(admitted) = self.admitted.get(sql) {
            return Ok(Ok(Arc::clone(admitted)));
        }
        let admitted = Arc::new(
            self.gate
                .admit(sql)
                .map_err(|refusal| wasmtime::Error::new(HostTrap::Refused(refusal)))?,
        );
        if self.admitted.len() >= MAX_ADMITTED_SQL {
            self.admitted.clear();
        }
        self.admitted.insert(sql.to_owned(), Arc::clone(&admitted));
        Ok(Ok(admitted))
    }

    /// Runs one database call if a step is running. If the step's deadline
    /// passes while it runs, the host stops the statement in the database
    /// itself (SQLite: its progress and busy handlers; PostgreSQL: `pg_cancel_backend`;
    /// MySQL: `KILL QUERY`; see `db::cancel`), whatever the server's own
    /// statement timeout says (the guest may have changed it), and the guest
    /// traps. On the servers, a statement that has not returned
    /// [`CANCEL_GRACE`] after the cancel costs the run its connection (its
    /// session is ended, and the failure is recorded over a new one): the
    /// step never outlives its deadline by more than that grace and the time
    /// to end the session. SQLite runs the call on this thread and stops it
    /// itself (see `db::sqlite`): the timer below never fires for it, and a
    /// single long instruction (a function over a long text) runs to its end.
    async fn bounded<'a, T, F>(
        &'a mut self,
        call: impl FnOnce(&'a mut crate::db::Connection) -> F,
    ) -> wasmtime::Result<Result<T, types::DbError>>
    where
        F: Future<Output = Result<T, DbError>> + 'a,
    {
        let Some(deadline) = self.step_deadline else {
            return Ok(Err(types::DbError {
                code: None,
                message:
                    "the database is only available inside up and down (describe must not use it)"
                        .into(),
            }));
        };
        // After a transient error the step is over whatever the guest does:
        // PostgreSQL has aborted the transaction, and MySQL has rolled it
        // back and *ended* it (a deadlock, or a lock wait timeout under
        // innodb_rollback_on_timeout), so a further statement would commit
        // on its own and run again when the step is retried.
        if let Some(error) = &self.tally.transient {
            return Ok(Err(types::DbError::from(error.clone())));
        }
        let timeout = self.step_timeout;
        let dialect = self.conn.dialect();
        let canceller = self.conn.canceller();
        if canceller.is_aborted() {
            return Err(wasmtime::Error::new(HostTrap::Aborted));
        }
        // SQLite runs the call on this thread and stops it at the deadline
        // itself; the timer below is for the servers.
        canceller.begin_call_until(Some(deadline.into_std()));
        let call = call(&mut self.conn);
        tokio::pin!(call);
        tokio::select! {
            result = &mut call => {
                canceller.end_call();
                // An abort interrupted the call (SQLite) or came while it ran.
                if canceller.is_aborted() {
                    return Err(wasmtime::Error::new(HostTrap::Aborted));
                }
                // A call that ends after the deadline is a timeout all the same.
                if tokio::time::Instant::now() >= deadline {
                    return Err(wasmtime::Error::new(HostTrap::StepTimeoutInHostCall { timeout }));
                }
                if let Err(e) = &result
                    && self.tally.transient.is_none()
                    && e.is_transient(dialect)
                {
                    self.tally.transient = Some(e.clone());
                }
                Ok(result.map_err(types::DbError::from))
            }
            () = tokio::time::sleep_until(deadline) => {
                if canceller.stop(call.as_mut(), CANCEL_GRACE).await.is_none() {
                    tracing::warn!(
                        "the statement running at the step deadline did not stop within {} ms of its cancel; its connection was given up",
                        CANCEL_GRACE.as_millis()
                    );
                }
                Err(wasmtime::Error::new(HostTrap::StepTimeoutInHostCall { timeout }))
            }
        }
    }
}

/// Whether a statement sent through `query` writes the rows it returns: an
/// `INSERT`, `UPDATE`, `DELETE` or `REPLACE` with `RETURNING`, by the first
/// word of the gate's canonical text. (A PostgreSQL `WITH … DELETE …
/// RETURNING` is not seen here; the runner counts PostgreSQL's writes from
/// the server's own statistics.)
fn returns_written_rows(text: &str) -> bool {
    let first = text
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default();
    ["INSERT", "UPDATE", "DELETE", "REPLACE"]
        .iter()
        .any(|k| first.eq_ignore_ascii_case(k))
}

impl From<types::Value> for Value {
    fn from(value: types::Value) -> Self {
        match value {
            types::Value::Null => Value::Null,
            types::Value::Boolean(b) => Value::Boolean(b),
            types::Value::Int(i) => Value::Int(i),
            types::Value::Float(f) => Value::Float(f),
            types::Value::Text(s) => Value::Text(s),
            types::Value::Blob(b) => Value::Blob(b),
        }
    }
}

impl From<Value> for types::Value {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => types::Value::Null,
            Value::Boolean(b) => types::Value::Boolean(b),
            Value::Int(i) => types::Value::Int(i),
            Value::Float(f) => types::Value::Float(f),
            Value::Text(s) => types::Value::Text(s),
            Value::Blob(b) => types::Value::Blob(b),
        }
    }
}

impl From<Rows> for types::Rows {
    fn from(rows: Rows) -> Self {
        types::Rows {
            columns: rows.columns,
            rows: rows
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(types::Value::from).collect())
                .collect(),
        }
    }
}

impl From<DbError> for types::DbError {
    fn from(error: DbError) -> Self {
        types::DbError {
            code: error.code,
            message: error.message,
        }
    }
}
