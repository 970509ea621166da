//! Backup and restore of a SQLite database, and what a database file holds, for the `phonegate
//! backup`, `restore` and `migrate --check` commands. (PostgreSQL has `pg_dump` and
//! `pg_restore`; docs/deployment.md gives the procedure.)
use crate::migrations;
use crate::sqlite::{map_err, path_of};
use phonegate_core::ports::{StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a backup took.
#[derive(Debug)]
pub struct BackupReport {
    pub bytes: u64,
    pub schema_version: i64,
    /// How long the copy ran. It reads one snapshot of the database; the server's writes go on
    /// meanwhile (WAL), so this is not a pause of writes.
    pub took: Duration,
}

/// What a database file holds that a restore must check.
#[derive(Debug)]
pub struct DatabaseFile {
    pub schema_version: i64,
    /// The `server_secrets` rows: key fingerprints (and an earlier release's secret).
    pub secrets: Vec<(String, Vec<u8>)>,
}

fn other(what: &str) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Other(format!("{what}: {e}"))
}

/// Copies the live database `url` names into a new file `dest`, consistently while the server
/// writes: `VACUUM INTO` reads one snapshot and writes a compact copy beside `dest`, which is
/// synced, checked and only then renamed to `dest`. An existing `dest` is refused.
pub fn backup(url: &str, dest: &Path) -> StoreResult<BackupReport> {
    let source = path_of(url)?;
    if !source.exists() {
        return Err(StoreError::Other(format!("there is no database at {}", source.display())));
    }
    if dest.exists() {
        return Err(StoreError::Other(format!("{} exists: name a new file", dest.display())));
    }
    // Made here, readable by its owner only and refusing a file or link planted in its place;
    // `VACUUM INTO` writes into an empty file.
    let partial = sibling(dest, &unique("partial"));
    private_new_file(&partial)?;
    let conn =
        Connection::open_with_flags(&source, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(map_err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(map_err)?;
    let started = Instant::now();
    let copied = conn.execute("VACUUM INTO ?1", [partial.to_string_lossy()]).map_err(map_err);
    let took = started.elapsed();
    let finished = copied.and_then(|_| {
        std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(other("cannot sync the backup"))?;
        inspect(&partial)
    });
    let info = match finished {
        Ok(info) => info,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::hard_link(&partial, dest).map_err(other("cannot name the backup"))?;
    let _ = std::fs::remove_file(&partial);
    sync_dir(dest)?;
    let bytes = std::fs::metadata(dest).map_err(other("cannot read the backup"))?.len();
    Ok(BackupReport { bytes, schema_version: info.schema_version, took })
}

/// Opens `file` read-only and checks it is a whole phonegate database: SQLite's integrity
/// check, a schema version this release knows, its key records.
pub fn inspect(file: &Path) -> StoreResult<DatabaseFile> {
    if !file.is_file() {
        return Err(StoreError::Other(format!("{} is not a file", file.display())));
    }
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| StoreError::Other(format!("{} is not a SQLite database: {e}", file.display())))?;
    let not_ours = |e: rusqlite::Error| StoreError::Other(format!("{} is not a phonegate database: {e}", file.display()));
    let check: String = conn.query_row("PRAGMA integrity_check(1)", [], |r| r.get(0)).map_err(not_ours)?;
    if check != "ok" {
        return Err(StoreError::Other(format!("{} is damaged: {check}", file.display())));
    }
    let schema_version = migrations::current_sqlite_version(&conn)?;
    if schema_version == 0 {
        return Err(StoreError::Other(format!("{} is not a phonegate database (no schema)", file.display())));
    }
    migrations::sqlite_pending(&conn)?;
    let mut statement = conn.prepare("SELECT name, value FROM server_secrets ORDER BY name").map_err(not_ours)?;
    let secrets = statement
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(not_ours)?;
    Ok(DatabaseFile { schema_version, secrets })
}

/// Puts the backup `file` in place of the database `url` names, which no process may have
/// open: the current database (with its WAL) is moved aside to `NAME.before-restore-TIME`, the
/// backup copied in, synced and renamed into place. Returns where the old database went.
pub fn restore(file: &Path, url: &str) -> StoreResult<Option<PathBuf>> {
    let target = path_of(url)?;
    let aside = if target.exists() {
        ensure_unused(&target)?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let aside = sibling(&target, &format!("before-restore-{stamp}"));
        if aside.exists() {
            return Err(StoreError::Other(format!("{} exists: try again", aside.display())));
        }
        for suffix in ["", "-wal", "-shm"] {
            let from = PathBuf::from(format!("{}{suffix}", target.display()));
            if from.exists() {
                std::fs::rename(&from, format!("{}{suffix}", aside.display())).map_err(other("cannot move the current database aside"))?;
            }
        }
        Some(aside)
    } else {
        // A WAL without its database would be replayed onto the restored file.
        for suffix in ["-wal", "-shm"] {
            let stale = PathBuf::from(format!("{}{suffix}", target.display()));
            if stale.exists() {
                return Err(StoreError::Other(format!("{} is left from another database: move it away first", stale.display())));
            }
        }
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(other("cannot make the database's directory"))?;
        }
        None
    };
    let partial = sibling(&target, &unique("partial"));
    private_new_file(&partial)?;
    std::io::copy(
        &mut std::fs::File::open(file).map_err(other("cannot read the backup"))?,
        &mut std::fs::OpenOptions::new().write(true).open(&partial).map_err(other("cannot write the restored database"))?,
    )
    .map_err(other("cannot copy the backup"))?;
    std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(other("cannot sync the restored database"))?;
    std::fs::rename(&partial, &target).map_err(other("cannot put the restored database in place"))?;
    sync_dir(&target)?;
    Ok(aside)
}

/// Refuses a database another process has open (a running server): an exclusive lock, which a
/// connection in WAL mode can only take when it is the only one.
fn ensure_unused(path: &Path) -> StoreResult<()> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(map_err)?;
    let locked = conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; COMMIT;");
    locked
        .map_err(|_| StoreError::Other(format!("{} is in use (a server is running on it?): stop the server, then restore", path.display())))
}

/// `PATH.suffix`, in PATH's directory.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}.{suffix}", path.display()))
}

/// A name no earlier run left behind: the process and the time to the nanosecond.
fn unique(what: &str) -> String {
    format!("{}-{}.{what}", std::process::id(), chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default())
}

fn private_new_file(path: &Path) -> StoreResult<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop).map_err(other("cannot create the backup file"))
}

fn sync_dir(file: &Path) -> StoreResult<()> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(other("cannot sync the directory"))
}

/// The migrations the database `url` names still needs, by version.
pub async fn pending_migrations(url: &str) -> StoreResult<Vec<i64>> {
    if url.starts_with("sqlite:") {
        let path = path_of(url)?;
        if !path.exists() {
            return Ok(crate::migrations::SQLITE.iter().map(|(v, _)| *v).collect());
        }
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(map_err)?;
        return migrations::sqlite_pending(&conn);
    }
    let store = crate::PgStore::connect(url, 1)?;
    store.pending_migrations().await
}
