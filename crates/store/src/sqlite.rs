//! SQLite backend: one file in WAL mode, on rusqlite directly (no thread hop per statement).
//!
//! **Writes** go to one writer thread that owns the only writing connection. It takes every unit
//! of work queued since its last wake-up, runs each under its own savepoint inside one
//! transaction (a failing unit rolls back only its savepoint), commits once, and only then
//! answers all of them: group commit. **Reads** go to a few reader threads, each owning a
//! read-only connection, fed by one queue; WAL lets them run beside the writer. Units are
//! synchronous, so no tokio worker ever waits on SQLite: the caller awaits only the answer.
//!
//! Durability: WAL with `synchronous=NORMAL`. A unit is acknowledged only after its commit, and a
//! committed transaction survives a crash of the process (kill -9); a power loss or OS crash may
//! drop the last transactions before a checkpoint.
use crate::sql::dialect::Sql;
use crate::sql::{Cell, Db, Repo, Row, Value};
use async_trait::async_trait;
use phonegate_core::ports::{ReadWork, Store, StoreError, StoreResult, Work};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use phonegate_core::startup::ERASE_PENDING;

/// Units of work one commit may carry at most.
const MAX_BATCH: usize = 512;
const READERS: usize = 4;

pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::Sender<Job>,
    readers: mpsc::Sender<ReadJob>,
    /// Dropped with the store, which stops the checkpointer.
    _checkpoints: mpsc::Sender<()>,
}

/// How often the checkpointer copies the WAL back into the database file. Often enough that
/// the writer's own checkpoint (at 1000 WAL pages, SQLite's default) finds nearly everything
/// copied and synced already: measured, a 10000-page threshold with 500 ms checkpoints made
/// that checkpoint stall the writer for up to 70 ms; this keeps stalls under ~20 ms and lets
/// the WAL restart from its beginning instead of growing.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

struct Job {
    work: Work,
    done: tokio::sync::oneshot::Sender<StoreResult<()>>,
}

struct ReadJob {
    work: ReadWork,
    done: tokio::sync::oneshot::Sender<StoreResult<()>>,
}

impl SqliteStore {
    /// Opens `sqlite://PATH` (or `sqlite:PATH`), creating the file if missing, and brings its
    /// schema up to date.
    pub fn open(url: &str) -> StoreResult<Self> {
        let path = path_of(url)?;
        create_private(&path)?;
        let writer = connect(&path, false)?;
        crate::migrations::sqlite(&writer)?;
        let (readers, reads) = mpsc::channel();
        let reads = Arc::new(Mutex::new(reads));
        for n in 0..READERS {
            let (conn, reads) = (connect(&path, true)?, reads.clone());
            std::thread::Builder::new()
                .name(format!("sqlite-reader-{n}"))
                .spawn(move || read_loop(conn, &reads))
                .map_err(|e| StoreError::Other(format!("cannot start a SQLite reader: {e}")))?;
        }
        let checkpointer = connect(&path, false)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(writer, rx))
            .map_err(|e| StoreError::Other(format!("cannot start the SQLite writer: {e}")))?;
        let (stop, stopped) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, stopped))
            .map_err(|e| StoreError::Other(format!("cannot start the SQLite checkpointer: {e}")))?;
        Ok(Self { path, writer: tx, readers, _checkpoints: stop })
    }
}

pub(crate) fn path_of(url: &str) -> StoreResult<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::Other("the SQLite URL must name a file: sqlite://PATH".into()));
    }
    Ok(PathBuf::from(path))
}

/// A new database file is made readable by its owner only (it holds numbers, the audit log and
/// hashes); SQLite gives its WAL and shared-memory files the same mode. An existing file is left
/// as it is.
fn create_private(path: &Path) -> StoreResult<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(format!("cannot create the database {}: {e}", path.display()))),
    }
}

fn connect(path: &Path, read_only: bool) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(map_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(map_err)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;").map_err(map_err)?;
    if read_only {
        conn.execute_batch("PRAGMA query_only = ON;").map_err(map_err)?;
    }
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::ConstraintViolation if matches!(f.extended_code, 1555 | 2067) => StoreError::Conflict,
            C::DatabaseBusy | C::DatabaseLocked | C::CannotOpen | C::SystemIoFailure | C::DiskFull | C::OutOfMemory => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Other(e.to_string()),
        },
        _ => StoreError::Other(e.to_string()),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn write(&self, work: Work) -> StoreResult<()> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.writer.send(Job { work, done }).map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }

    async fn read(&self, work: ReadWork) -> StoreResult<()> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.readers.send(ReadJob { work, done }).map_err(|_| StoreError::Unavailable("the SQLite readers have stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the SQLite readers have stopped".into()))?
    }

    /// An empty unit on the writer: answers only if the writer thread is alive and can take the
    /// database's write lock (it commits nothing).
    async fn ping(&self) -> StoreResult<()> {
        self.write(Box::new(|_| Ok(()))).await
    }

    /// On a connection of its own: with `secure_delete` the row's bytes are overwritten, `VACUUM`
    /// rewrites the file without its free pages, and a truncating checkpoint empties the WAL, so
    /// no copy of the secret is left in the database's files.
    async fn erase_secret(&self, name: &str) -> StoreResult<()> {
        let (path, name) = (self.path.clone(), name.to_string());
        let erase = move || {
            let conn = connect(&path, false)?;
            conn.execute_batch("PRAGMA secure_delete = ON").map_err(map_err)?;
            // The row goes with a marker in one transaction; the marker goes only once the files
            // are rewritten, so a crash in between is finished by the next start.
            conn.execute_batch("BEGIN IMMEDIATE").map_err(map_err)?;
            let marked = conn
                .execute("DELETE FROM server_secrets WHERE name = ?1", [&name])
                .and_then(|_| conn.execute("INSERT OR IGNORE INTO server_secrets (name, value) VALUES (?1, x'')", [ERASE_PENDING]));
            match marked {
                Ok(_) => conn.execute_batch("COMMIT").map_err(map_err)?,
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(map_err(e));
                }
            }
            conn.execute_batch("VACUUM").map_err(map_err)?;
            let (busy, _, _): (i64, i64, i64) =
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(map_err)?;
            if busy != 0 {
                return Err(StoreError::Unavailable("the WAL could not be emptied: another connection is reading".into()));
            }
            conn.execute("DELETE FROM server_secrets WHERE name = ?1", [ERASE_PENDING]).map(drop).map_err(map_err)
        };
        tokio::task::spawn_blocking(erase).await.map_err(|e| StoreError::Other(format!("erasing a secret failed: {e}")))?
    }
}

/// Copies the WAL back into the database file now and then without blocking the writer or
/// readers (a passive checkpoint), so the WAL stays small while commits never wait for a
/// checkpoint and its fsync. Stops when the store is dropped.
fn checkpoint_loop(conn: Connection, stop: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "SQLite checkpoint failed");
        }
    }
}

/// A reader thread: takes the next read unit from the shared queue, runs it on its own read-only
/// connection and answers, until the store is dropped.
fn read_loop(conn: Connection, reads: &Mutex<mpsc::Receiver<ReadJob>>) {
    loop {
        // Only reader threads wait on this lock, while one of them waits for the next unit.
        let next = reads.lock().map_err(drop).and_then(|queue| queue.recv().map_err(drop));
        let Ok(ReadJob { work, done }) = next else { return };
        // Its caller has gone (the client hung up): nobody would see the answer.
        if done.is_closed() {
            continue;
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut Repo(SqliteDb { conn: &conn }))));
        let _ = done.send(result.unwrap_or_else(|_| Err(StoreError::Other("a read unit panicked".into()))));
    }
}

/// The writer thread: group commit until every sender is gone.
fn write_loop(mut conn: Connection, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, batch);
    }
}

/// Runs `batch` in one transaction, each unit under its own savepoint, commits, then answers.
fn commit_batch(conn: &mut Connection, batch: Vec<Job>) {
    let mut results: Vec<StoreResult<()>> = Vec::with_capacity(batch.len());
    let mut dones = Vec::with_capacity(batch.len());
    let mut open = false;
    for job in batch {
        // Its caller has gone (the client hung up): the unit is not run, as if it never came.
        if job.done.is_closed() {
            continue;
        }
        dones.push(job.done);
        if !open {
            if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
                results.push(Err(map_err(e)));
                continue;
            }
            open = true;
        }
        // A unit that panics is rolled back like one that failed, and the writer goes on: one
        // bug must not stop every write of the server.
        let result = conn.execute_batch("SAVEPOINT unit").map_err(map_err).and_then(|()| {
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.work)(&mut Repo(SqliteDb { conn }))));
            ran.unwrap_or_else(|_| Err(StoreError::Other("a write unit panicked".into())))
        });
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, say): the units before
            // this one are gone too.
            let lost = StoreError::Unavailable("the transaction was rolled back".into());
            results.iter_mut().filter(|r| r.is_ok()).for_each(|r| *r = Err(lost.clone()));
            results.push(result.and(Err(lost)));
            open = false;
            continue;
        }
        let closed = match &result {
            Ok(()) => conn.execute_batch("RELEASE unit"),
            Err(_) => conn.execute_batch("ROLLBACK TO unit; RELEASE unit"),
        };
        results.push(result.and(closed.map_err(map_err)));
    }
    if open && let Err(e) = conn.execute_batch("COMMIT") {
        let failed = map_err(e);
        let _ = conn.execute_batch("ROLLBACK");
        results.iter_mut().filter(|r| r.is_ok()).for_each(|r| *r = Err(failed.clone()));
    }
    for (done, result) in dones.into_iter().zip(results) {
        let _ = done.send(result);
    }
}

struct SqliteDb<'c> {
    conn: &'c Connection,
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Int(Some(v)) => ToSqlOutput::from(*v),
            Value::Text(Some(v)) => ToSqlOutput::from(v.as_str()),
            Value::Blob(Some(v)) => ToSqlOutput::from(v.as_slice()),
            Value::Bool(v) => ToSqlOutput::from(i64::from(*v)),
            Value::Int(None) | Value::Text(None) | Value::Blob(None) => ToSqlOutput::from(rusqlite::types::Null),
        })
    }
}

impl SqliteDb<'_> {
    /// The prepared statement; `None` for one SQLite skips (see `dialect`).
    fn statement(&self, sql: &'static Sql) -> StoreResult<Option<rusqlite::CachedStatement<'_>>> {
        sql.sqlite().map(|text| self.conn.prepare_cached(text).map_err(map_err)).transpose()
    }
}

impl Db for SqliteDb<'_> {
    fn exec(&mut self, sql: &'static Sql, args: Vec<Value>) -> StoreResult<u64> {
        let Some(mut stmt) = self.statement(sql)? else { return Ok(0) };
        stmt.execute(rusqlite::params_from_iter(args.iter())).map(|n| n as u64).map_err(map_err)
    }

    fn rows(&mut self, sql: &'static Sql, args: Vec<Value>) -> StoreResult<Vec<Row>> {
        let Some(mut stmt) = self.statement(sql)? else { return Ok(Vec::new()) };
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(args.iter())).map_err(map_err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(map_err)? {
            let cells = (0..columns)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        ValueRef::Null => Cell::Null,
                        ValueRef::Integer(v) => Cell::Int(v),
                        ValueRef::Real(v) => Cell::Int(v as i64),
                        ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                        ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
                    })
                })
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            out.push(Row(cells));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonegate_core::PhoneNumber;
    use phonegate_core::ports::{OptOutReads, Tx};
    use tokio::sync::oneshot;

    fn number(n: u32) -> PhoneNumber {
        PhoneNumber::from_trusted(format!("+49151000{n:05}"))
    }

    fn opt_out(n: u32) -> Work {
        Box::new(move |tx: &mut dyn Tx| tx.set_opted_out(&number(n), true, chrono::Utc::now()))
    }

    fn job(work: Work) -> (Job, oneshot::Receiver<StoreResult<()>>) {
        let (done, answer) = oneshot::channel();
        (Job { work, done }, answer)
    }

    fn opted_out(conn: &Connection, n: u32) -> bool {
        Repo(SqliteDb { conn }).is_opted_out(&number(n)).unwrap()
    }

    fn database() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = connect(&dir.path().join("g.db"), false).unwrap();
        crate::migrations::sqlite(&conn).unwrap();
        (dir, conn)
    }

    #[test]
    fn a_failing_unit_rolls_back_only_itself() {
        let (_dir, mut conn) = database();
        let failing: Work = Box::new(|tx: &mut dyn Tx| {
            tx.set_opted_out(&number(2), true, chrono::Utc::now())?;
            Err(StoreError::Aborted)
        });
        let (a, mut ra) = job(opt_out(1));
        let (b, mut rb) = job(failing);
        let (c, mut rc) = job(opt_out(3));
        commit_batch(&mut conn, vec![a, b, c]);
        assert!(ra.try_recv().unwrap().is_ok());
        assert!(matches!(rb.try_recv().unwrap(), Err(StoreError::Aborted)));
        assert!(rc.try_recv().unwrap().is_ok());
        assert!(opted_out(&conn, 1) && opted_out(&conn, 3));
        assert!(!opted_out(&conn, 2), "the failed unit's write is rolled back");
    }

    #[test]
    fn no_unit_is_answered_before_its_batch_commits() {
        let (_dir, mut conn) = database();
        let (first, answer) = job(opt_out(1));
        let answer = Arc::new(Mutex::new(answer));
        let seen = answer.clone();
        let peek: Work = Box::new(move |_tx: &mut dyn Tx| {
            // Runs after the first unit, in the same batch: its answer must not be out yet.
            let early = seen.lock().unwrap().try_recv();
            assert!(matches!(early, Err(oneshot::error::TryRecvError::Empty)), "answered before the commit");
            Ok(())
        });
        let (second, mut second_answer) = job(peek);
        commit_batch(&mut conn, vec![first, second]);
        assert!(second_answer.try_recv().unwrap().is_ok());
        assert!(answer.lock().unwrap().try_recv().unwrap().is_ok());
    }

    #[test]
    fn a_batch_that_never_commits_leaves_nothing_behind() {
        // What a crash mid-batch leaves: the transaction was open, nothing was answered.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crash.db");
        {
            let conn = connect(&path, false).unwrap();
            crate::migrations::sqlite(&conn).unwrap();
            let mut conn = conn;
            commit_batch(&mut conn, vec![job(opt_out(1)).0]);
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            opt_out(2)(&mut Repo(SqliteDb { conn: &conn })).unwrap();
            // The process dies here: the connection goes without a COMMIT.
        }
        let conn = connect(&path, false).unwrap();
        assert!(opted_out(&conn, 1), "committed work survives");
        assert!(!opted_out(&conn, 2), "uncommitted work is gone");
    }

    #[tokio::test]
    async fn concurrent_writes_all_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&format!("sqlite://{}", dir.path().join("s.db").display())).unwrap());
        let writes: Vec<_> = (0..200)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move { store.write(opt_out(n)).await })
            })
            .collect();
        for w in writes {
            w.await.unwrap().unwrap();
        }
        let count = crate::testing::count(&format!("sqlite://{}", dir.path().join("s.db").display()), "SELECT count(*) FROM opt_outs")
            .await
            .unwrap();
        assert_eq!(count, 200);
    }
}
