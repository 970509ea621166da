//! Schema migrations, per backend in `migrations/{sqlite,postgres}` with matching versions.
//! PostgreSQL uses sqlx's migrator; SQLite keeps its version in `PRAGMA user_version`.
use crate::sqlite::map_err;
use phonegate_core::ports::{StoreError, StoreResult};
use rusqlite::Connection;

/// The SQLite migrations, in order. A new migration is added here and, with the same number,
/// in `migrations/postgres` (a test checks both directories agree with this list).
pub(crate) const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../migrations/sqlite/0002_messages.sql")),
    (3, include_str!("../migrations/sqlite/0003_verification_options.sql")),
    (4, include_str!("../migrations/sqlite/0004_retention.sql")),
    (5, include_str!("../migrations/sqlite/0005_early_receipts.sql")),
    (6, include_str!("../migrations/sqlite/0006_outbox_in_messages.sql")),
    (7, include_str!("../migrations/sqlite/0007_budget_counters.sql")),
    (8, include_str!("../migrations/sqlite/0008_key_scopes.sql")),
    (9, include_str!("../migrations/sqlite/0009_audit_events.sql")),
    (10, include_str!("../migrations/sqlite/0010_accounts.sql")),
    (11, include_str!("../migrations/sqlite/0011_invites.sql")),
    (12, include_str!("../migrations/sqlite/0012_group_join.sql")),
    (13, include_str!("../migrations/sqlite/0013_silent.sql")),
    (14, include_str!("../migrations/sqlite/0014_used_tokens.sql")),
    (15, include_str!("../migrations/sqlite/0015_silent_by_number.sql")),
    (16, include_str!("../migrations/sqlite/0016_test_numbers.sql")),
    (17, include_str!("../migrations/sqlite/0017_service_changes.sql")),
    (18, include_str!("../migrations/sqlite/0018_channels.sql")),
    (19, include_str!("../migrations/sqlite/0019_verified_email.sql")),
    (20, include_str!("../migrations/sqlite/0020_channel_options.sql")),
    (21, include_str!("../migrations/sqlite/0021_oidc.sql")),
    (22, include_str!("../migrations/sqlite/0022_vonage_v2.sql")),
];

/// Brings a SQLite database up to date, each migration in its own transaction. Several processes
/// may start at once on one file: the write lock taken first makes them take turns.
/// The newest schema version this release knows.
pub fn latest() -> i64 {
    SQLITE.last().map(|(v, _)| *v).unwrap_or(0)
}

/// Refuses a database a newer release has migrated: this binary would misread it.
fn refuse_newer(version: i64) -> StoreResult<()> {
    if version > latest() {
        return Err(StoreError::Other(format!(
            "the database's schema is version {version}, newer than this release knows ({}): it was migrated by a newer phonegate; run that release (or a later one), or restore a backup taken before the upgrade",
            latest()
        )));
    }
    Ok(())
}

pub(crate) fn sqlite(conn: &Connection) -> StoreResult<()> {
    refuse_newer(current_sqlite_version(conn)?)?;
    for (version, sql) in SQLITE {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(map_err)?;
        let applied = current_sqlite_version(conn);
        let step = match applied {
            Ok(v) if v >= *version => Ok(()),
            Ok(_) => {
                conn.execute_batch(sql).and_then(|()| conn.execute_batch(&format!("PRAGMA user_version = {version}"))).map_err(map_err)
            }
            Err(e) => Err(e),
        };
        match step {
            Ok(()) => conn.execute_batch("COMMIT").map_err(map_err)?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(StoreError::Other(format!("migration {version} failed: {e}")));
            }
        }
    }
    Ok(())
}

/// The schema version; a database that an earlier release migrated with sqlx records it in
/// `_sqlx_migrations` instead.
pub(crate) fn current_sqlite_version(conn: &Connection) -> StoreResult<i64> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(map_err)?;
    if version > 0 {
        return Ok(version);
    }
    let legacy: bool = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'", [], |r| r.get(0))
        .map_err(map_err)?;
    if !legacy {
        return Ok(0);
    }
    conn.query_row("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success", [], |r| r.get(0)).map_err(map_err)
}

/// The versions PostgreSQL has applied (none on a new database).
async fn postgres_applied(pool: &sqlx::PgPool) -> StoreResult<Vec<i64>> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(pool).await.map_err(crate::postgres::map_err)?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
        .map_err(crate::postgres::map_err)
}

/// The migrations a database still needs, by version (for `phonegate migrate --check`); an error
/// for a database a newer release migrated.
pub(crate) async fn postgres_pending(pool: &sqlx::PgPool) -> StoreResult<Vec<i64>> {
    let applied = postgres_applied(pool).await?;
    refuse_newer(applied.last().copied().unwrap_or(0))?;
    Ok(SQLITE.iter().map(|(v, _)| *v).filter(|v| !applied.contains(v)).collect())
}

pub(crate) fn sqlite_pending(conn: &Connection) -> StoreResult<Vec<i64>> {
    let version = current_sqlite_version(conn)?;
    refuse_newer(version)?;
    Ok(SQLITE.iter().map(|(v, _)| *v).filter(|v| *v > version).collect())
}

pub(crate) async fn postgres(pool: &sqlx::PgPool) -> StoreResult<()> {
    postgres_pending(pool).await?;
    sqlx::migrate!("./migrations/postgres").run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(inner) => crate::postgres::map_err(inner),
        other => StoreError::Other(format!("migration failed: {other}")),
    })
}

#[cfg(test)]
mod tests {
    /// Both backends have the same migrations, and SQLite's list names every file.
    #[test]
    fn migrations_are_in_step() {
        let names = |dir: &str| {
            let mut v: Vec<String> = std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let sqlite = names("sqlite");
        assert_eq!(sqlite, names("postgres"));
        let versions: Vec<i64> = sqlite.iter().map(|n| n[..4].parse().unwrap()).collect();
        assert_eq!(versions, super::SQLITE.iter().map(|(v, _)| *v).collect::<Vec<_>>());
    }
}
