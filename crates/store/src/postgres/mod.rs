//! PostgreSQL backend for many stateless instances on one database. The same guarantees as
//! SQLite, from the same single statements (conditional UPDATE on `version`, partial unique
//! indexes), plus `FOR UPDATE SKIP LOCKED` so background work is shared out, never repeated.
mod accounts;
mod messages;
mod verifications;

pub(crate) use crate::{ms, opt_ts, ts};
use async_trait::async_trait;
use phonegate_core::ports::{SecretStore, Store, StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// A bounded pool; connections are opened lazily, so a database that is down at start makes
    /// requests fail with 503 (and `/readyz` say so) until it is back, instead of a crash loop.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Other(format!("invalid PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(3))
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => map_err(inner),
            other => StoreError::Other(format!("migration failed: {other}")),
        })
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
impl SecretStore for PgStore {
    async fn get_or_create_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(candidate)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        let row =
            sqlx::query("SELECT value FROM server_secrets WHERE name = $1").bind(name).fetch_one(&self.pool).await.map_err(map_err)?;
        row.try_get("value").map_err(map_err)
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(map_err)
    }
}
