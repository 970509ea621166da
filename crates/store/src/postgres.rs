//! PostgreSQL backend (sqlx) for many stateless instances on one database. A write is one
//! transaction (BEGIN, the unit's statements, COMMIT) in which rows the unit will change are read
//! `FOR UPDATE`, so concurrent units on one row take turns; queue claims skip rows another
//! instance holds (`FOR UPDATE SKIP LOCKED`). Reads run without a transaction.
//!
//! Units are synchronous: the transaction is begun (or the connection taken) in async code, the
//! unit runs on tokio's blocking pool, each statement driving its sqlx future to its end with the
//! runtime's `Handle::block_on`, and the commit or rollback happens back in async code.
use crate::sql::dialect::{Mode, Sql};
use crate::sql::{Cell, Db, Repo, Row, Value};
use async_trait::async_trait;
use phonegate_core::ports::{ReadWork, Store, StoreError, StoreResult, Work};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Column, PgConnection, PgPool, Row as _, TypeInfo};
use std::str::FromStr;
use std::time::Duration;
use tokio::runtime::Handle;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// A bounded pool; connections are opened lazily, so a database that is down at start makes
    /// requests fail with 503 (and `/readyz` say so) until it is back, instead of a crash loop.
    pub fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Other(format!("invalid PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(3))
            .idle_timeout(Duration::from_secs(300))
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        crate::migrations::postgres(&self.pool).await
    }

    pub async fn pending_migrations(&self) -> StoreResult<Vec<i64>> {
        crate::migrations::postgres_pending(&self.pool).await
    }
}

/// SQLSTATE classes that mean "try again later": connection exceptions (08), operator
/// intervention such as a shutdown (57), insufficient resources (53), serialization failures
/// and deadlocks (40).
fn transient(code: &str) -> bool {
    ["08", "57", "53", "40"].iter().any(|class| code.starts_with(class))
}

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::Database(db) if db.code().is_some_and(|c| transient(&c)) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

#[async_trait]
impl Store for PgStore {
    async fn write(&self, work: Work) -> StoreResult<()> {
        let tx = self.pool.begin().await.map_err(map_err)?;
        let rt = Handle::current();
        let (tx, result) = off_runtime(move || {
            let mut tx = tx;
            let result = work(&mut Repo(PgDb { conn: &mut tx, mode: Mode::Write, rt: &rt }));
            (tx, result)
        })
        .await?;
        match result {
            Ok(()) => tx.commit().await.map_err(map_err),
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn read(&self, work: ReadWork) -> StoreResult<()> {
        let conn = self.pool.acquire().await.map_err(map_err)?;
        let rt = Handle::current();
        // The connection comes back to be returned to the pool here, in async code.
        let (_conn, result) = off_runtime(move || {
            let mut conn = conn;
            let result = work(&mut Repo(PgDb { conn: &mut conn, mode: Mode::Read, rt: &rt }));
            (conn, result)
        })
        .await?;
        result
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(map_err)
    }

    /// Deletes the row, then rewrites the table (`VACUUM FULL`) so the dead tuple's bytes leave
    /// its data file. PostgreSQL's own write-ahead log keeps them until it recycles its segments
    /// (docs/deployment.md says so).
    /// A marker row, deleted only after the rewrite, makes the next start finish an erase a crash
    /// interrupted; a rewrite that did not happen (`VACUUM FULL` skips a table its user does not
    /// own, with a mere warning) is an error.
    async fn erase_secret(&self, name: &str) -> StoreResult<()> {
        let marker = phonegate_core::startup::ERASE_PENDING;
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("DELETE FROM server_secrets WHERE name = $1").bind(name).execute(&mut *tx).await.map_err(map_err)?;
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, '') ON CONFLICT (name) DO NOTHING")
            .bind(marker)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        let file = "SELECT CAST(pg_relation_filenode('server_secrets') AS BIGINT)";
        let before: i64 = sqlx::query_scalar(file).fetch_one(&self.pool).await.map_err(map_err)?;
        sqlx::query("VACUUM FULL server_secrets").execute(&self.pool).await.map_err(map_err)?;
        let after: i64 = sqlx::query_scalar(file).fetch_one(&self.pool).await.map_err(map_err)?;
        if before == after {
            return Err(StoreError::Other("VACUUM FULL did not rewrite server_secrets: the database user must own the table".into()));
        }
        sqlx::query("DELETE FROM server_secrets WHERE name = $1").bind(marker).execute(&self.pool).await.map(drop).map_err(map_err)
    }
}

/// Runs a unit on the blocking pool; a panic in it goes on in the caller, as if it ran there.
async fn off_runtime<T: Send + 'static>(unit: impl FnOnce() -> T + Send + 'static) -> StoreResult<T> {
    match tokio::task::spawn_blocking(unit).await {
        Ok(out) => Ok(out),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(StoreError::Unavailable("the runtime is shutting down".into())),
    }
}

struct PgDb<'c> {
    conn: &'c mut PgConnection,
    mode: Mode,
    /// The runtime the unit's caller runs on, whose I/O drives the statements.
    rt: &'c Handle,
}

fn query(sql: &'static Sql, mode: Mode, args: Vec<Value>) -> sqlx::query::Query<'static, sqlx::Postgres, PgArguments> {
    args.into_iter().fold(sqlx::query(sql.postgres(mode)), |q, v| match v {
        Value::Int(v) => q.bind(v),
        Value::Text(v) => q.bind(v),
        Value::Blob(v) => q.bind(v),
        Value::Bool(v) => q.bind(v),
    })
}

fn cells(r: &PgRow) -> Result<Row, sqlx::Error> {
    let mut out = Vec::with_capacity(r.columns().len());
    for (i, c) in r.columns().iter().enumerate() {
        let cell = match c.type_info().name() {
            "INT8" => r.try_get::<Option<i64>, _>(i)?.map(Cell::Int),
            "INT4" => r.try_get::<Option<i32>, _>(i)?.map(|v| Cell::Int(v.into())),
            "INT2" => r.try_get::<Option<i16>, _>(i)?.map(|v| Cell::Int(v.into())),
            "BOOL" => r.try_get::<Option<bool>, _>(i)?.map(Cell::Bool),
            "BYTEA" => r.try_get::<Option<Vec<u8>>, _>(i)?.map(Cell::Blob),
            _ => r.try_get::<Option<String>, _>(i)?.map(Cell::Text),
        };
        out.push(cell.unwrap_or(Cell::Null));
    }
    Ok(Row(out))
}

impl Db for PgDb<'_> {
    fn exec(&mut self, sql: &'static Sql, args: Vec<Value>) -> StoreResult<u64> {
        let done = self.rt.block_on(query(sql, self.mode, args).execute(&mut *self.conn)).map_err(map_err)?;
        Ok(done.rows_affected())
    }

    fn rows(&mut self, sql: &'static Sql, args: Vec<Value>) -> StoreResult<Vec<Row>> {
        let rows = self.rt.block_on(query(sql, self.mode, args).fetch_all(&mut *self.conn)).map_err(map_err)?;
        rows.iter().map(cells).collect::<Result<_, _>>().map_err(map_err)
    }
}
