//! phonegate's storage: the core's units of work on SQLite (one file, the embedded default) and
//! PostgreSQL (many instances), over one SQL layer both share (`sql`). `connect` picks the
//! backend from the database URL.
pub mod backup;
mod migrations;
mod postgres;
mod sql;
mod sqlite;
pub mod testing;

use phonegate_core::ports::{Store, StoreError};
use std::sync::Arc;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

pub use migrations::latest as latest_schema_version;

/// The file a `sqlite://PATH` URL names.
pub fn sqlite_path(url: &str) -> Result<std::path::PathBuf, StoreError> {
    sqlite::path_of(url)
}

/// Opens (creating if needed) and migrates the database named by `url`; `max_connections`
/// bounds the PostgreSQL pool.
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        let url = url.to_string();
        // Opening and migrating a file is blocking work.
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&url))
            .await
            .map_err(|e| StoreError::Other(format!("opening the database failed: {e}")))??;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let store = PgStore::connect(url, max_connections)?;
        store.migrate().await?;
        Ok(Arc::new(store))
    } else {
        Err(StoreError::Other(format!(
            "unsupported database URL scheme in `{}`; expected sqlite://PATH or postgres://…",
            url.split(':').next().unwrap_or_default()
        )))
    }
}
