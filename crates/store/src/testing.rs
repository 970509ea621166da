//! Support for test suites and the benchmark, which run against either backend: a fresh,
//! isolated database each time (a temporary SQLite file, or a new schema in the PostgreSQL
//! database named by `TEST_POSTGRES_URL`), so runs and tests never see each other's rows.
use phonegate_core::ports::StoreError;
use sqlx::Connection;
use std::sync::atomic::{AtomicU64, Ordering};

/// The PostgreSQL database tests may create schemas in, when the suite runs on PostgreSQL.
pub fn postgres_url() -> Option<String> {
    std::env::var("TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
}

/// A URL for a fresh database: a new schema on PostgreSQL when `TEST_POSTGRES_URL` is set,
/// else a SQLite file in `dir`.
pub async fn fresh_database_url(dir: &std::path::Path) -> Result<String, StoreError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    match postgres_url() {
        Some(admin) => fresh_postgres_schema(&admin, &format!("t{}_{n}", std::process::id())).await,
        None => Ok(format!("sqlite://{}", dir.join(format!("test-{n}.db")).display())),
    }
}

/// The key file servers on `database_url` share, for PostgreSQL (which has no default key
/// file): one per database URL, in the system's temporary directory. `None` for SQLite, whose
/// key file defaults to one next to the database file.
pub fn secret_file(database_url: &str) -> Option<std::path::PathBuf> {
    use std::hash::{Hash, Hasher};
    if database_url.starts_with("sqlite:") {
        return None;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    database_url.hash(&mut hasher);
    let dir = std::env::temp_dir().join("phonegate-test-keys");
    let _ = std::fs::create_dir_all(&dir);
    Some(dir.join(format!("{:016x}", hasher.finish())))
}

/// Creates a new, uniquely named schema in the PostgreSQL database `admin_url` names and returns
/// a URL whose connections use it.
pub async fn fresh_postgres_schema(admin_url: &str, prefix: &str) -> Result<String, StoreError> {
    let schema = format!("{prefix}_{}", chrono::Utc::now().timestamp_micros());
    if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(StoreError::Other("schema names are letters, digits and _".into()));
    }
    let mut conn = sqlx::PgConnection::connect(admin_url).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?;
    let sep = if admin_url.contains('?') { '&' } else { '?' };
    Ok(format!("{admin_url}{sep}options=-c%20search_path%3D{schema}"))
}

/// Runs one SQL statement on the database `url` names, whichever backend it is (tests that
/// break the database on purpose).
pub async fn execute(url: &str, sql: &str) -> Result<(), StoreError> {
    if url.starts_with("sqlite:") {
        let conn = rusqlite::Connection::open(crate::sqlite::path_of(url)?).map_err(|e| StoreError::Other(e.to_string()))?;
        conn.execute_batch(sql).map_err(|e| StoreError::Other(e.to_string()))
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Other(e.to_string()))
    }
}

/// Runs a query that yields one integer (a count) on the database `url` names.
pub async fn count(url: &str, sql: &str) -> Result<i64, StoreError> {
    if url.starts_with("sqlite:") {
        let conn = rusqlite::Connection::open(crate::sqlite::path_of(url)?).map_err(|e| StoreError::Other(e.to_string()))?;
        conn.query_row(sql, [], |r| r.get(0)).map_err(|e| StoreError::Other(e.to_string()))
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(&mut conn).await.map_err(|e| StoreError::Other(e.to_string()))
    }
}

/// Breaks the database `url` names for a running server: every table is renamed, so every
/// statement fails from now on (tests of what a failing database looks like from outside).
pub async fn break_every_table(url: &str) -> Result<(), StoreError> {
    let other = |e: &dyn std::fmt::Display| StoreError::Other(e.to_string());
    if url.starts_with("sqlite:") {
        let conn = rusqlite::Connection::open(crate::sqlite::path_of(url)?).map_err(|e| other(&e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| other(&e))?;
        let mut list =
            conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").map_err(|e| other(&e))?;
        let names: Vec<String> =
            list.query_map([], |r| r.get(0)).map_err(|e| other(&e))?.collect::<Result<_, _>>().map_err(|e| other(&e))?;
        let renames: String = names.iter().map(|n| format!("ALTER TABLE \"{n}\" RENAME TO \"broken_{n}\";")).collect();
        conn.execute_batch(&renames).map_err(|e| other(&e))
    } else {
        // The server's background work may hold locks on some tables while this renames them
        // all in one transaction: PostgreSQL may then pick this one as a deadlock's victim, and
        // a retry goes through.
        let mut tries = 0;
        loop {
            let renamed = execute(
                url,
                "DO $$ DECLARE t record; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP \
                 EXECUTE format('ALTER TABLE %I RENAME TO %I', t.tablename, 'broken_' || t.tablename); END LOOP; END $$",
            )
            .await;
            tries += 1;
            match renamed {
                Err(StoreError::Other(e)) if e.contains("deadlock detected") && tries < 5 => continue,
                other => return other,
            }
        }
    }
}
