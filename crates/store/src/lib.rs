//! phonegate's storage: the core's store traits implemented on SQLite (one file, the embedded
//! default) and PostgreSQL (many instances). `connect` picks the backend from the database URL.
mod postgres;
mod sqlite;
pub mod testing;

use chrono::{DateTime, Utc};
use phonegate_core::ports::{Store, StoreError};
use std::sync::Arc;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Both backends store timestamps as milliseconds since the Unix epoch.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub(crate) fn opt_ts(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(ts)
}

/// Opens (creating if needed) and migrates the database named by `url`; `max_connections`
/// bounds the PostgreSQL pool.
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url).await?;
        store.migrate().await?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let store = PgStore::connect(url, max_connections).await?;
        store.migrate().await?;
        Ok(Arc::new(store))
    } else {
        Err(StoreError::Other(format!(
            "unsupported database URL scheme in `{}`; expected sqlite://PATH or postgres://…",
            url.split(':').next().unwrap_or_default()
        )))
    }
}
