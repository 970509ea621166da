//! phonegate's storage: the core's store traits implemented on SQLite (PostgreSQL follows the
//! same traits). `connect` picks the backend from the database URL.
mod sqlite;

use phonegate_core::ports::{Store, StoreError};
use std::sync::Arc;

pub use sqlite::SqliteStore;

/// Opens (creating if needed) and migrates the database named by `url`.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url).await?;
        store.migrate().await?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Err(StoreError::Other("the PostgreSQL backend is not available in this build yet; use sqlite://PATH".into()))
    } else {
        Err(StoreError::Other(format!(
            "unsupported database URL scheme in `{}`; expected sqlite://PATH",
            url.split(':').next().unwrap_or_default()
        )))
    }
}
