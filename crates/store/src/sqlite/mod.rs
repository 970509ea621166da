//! SQLite backend: one file in WAL mode, every guarantee enforced by single statements
//! (conditional UPDATE on `version`, partial unique indexes).
mod accounts;
mod messages;
mod verifications;

pub(crate) use crate::{ms, opt_ts, ts};
use async_trait::async_trait;
use phonegate_core::ports::{SecretStore, Store, StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone)]
pub struct SqliteStore {
    /// Readers: WAL lets them run in parallel with each other and with the writer.
    pool: SqlitePool,
    /// The one writing connection. SQLite admits one writer at a time; queueing writes here (an
    /// async wait) instead of letting connections collide on the database lock (SQLite's busy
    /// handler sleeps) keeps latency flat under load.
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens `sqlite://PATH`, creating the file if missing. WAL with `synchronous=NORMAL`: a
    /// committed write survives a process crash; a power loss may drop the last transactions.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Checkpoint (and fsync) every ~40 MiB of WAL instead of every 4 MiB.
            .pragma("wal_autocheckpoint", "10000");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self { pool, writer })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/sqlite").run(&self.writer).await.map_err(|e| StoreError::Other(format!("migration failed: {e}")))
    }
}

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) if db.message().contains("database is locked") => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}

#[async_trait]
impl SecretStore for SqliteStore {
    async fn get_or_create_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(candidate)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        let row =
            sqlx::query("SELECT value FROM server_secrets WHERE name = ?").bind(name).fetch_one(&self.writer).await.map_err(map_err)?;
        row.try_get("value").map_err(map_err)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(map_err)
    }
}
