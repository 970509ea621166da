//! What a server does once when it starts, before it serves anything: settle which keys seal the
//! database's data. The keys themselves live in a key file outside the database (the server
//! reads it); the database records only each key's fingerprint, so a copy of the database opens
//! nothing, and an instance whose key file lacks a key the database knows refuses to start
//! instead of writing data the others cannot open.
use crate::code::{self, ServerKeys};
use crate::ports::{self, Store, StoreError, StoreResult};

/// Where databases from before key files kept their one secret, in clear.
const LEGACY: &str = "code_keys";
/// Key records: `key:ID` → the key's fingerprint.
const KEY_PREFIX: &str = "key:";
/// The id of the first key a database was sealed with: of two instances starting at once on a
/// new database with different key files, the second refuses.
const ORIGIN: &str = "key-origin";
/// Written with an erase's delete and removed once the database's files are rewritten: while it
/// is there, a server start rewrites them again.
pub const ERASE_PENDING: &str = "erase-pending";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The database has data sealed with keys the key file does not hold.
    #[error("the database was sealed with key {} that the key file does not hold", .missing.join(", "))]
    Unknown { missing: Vec<String> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What start-up finds in a database about its keys.
#[derive(Debug, Default)]
pub struct DatabaseKeys {
    /// A secret stored in the database by a release before key files.
    pub legacy: Option<Vec<u8>>,
    /// The ids of the keys its data was sealed with.
    pub recorded: Vec<String>,
    /// An erase (of an earlier release's secret) whose rewrite of the files did not finish.
    pub erase_pending: bool,
}

impl DatabaseKeys {
    /// Nothing has been sealed in it yet.
    pub fn is_new(&self) -> bool {
        self.legacy.is_none() && self.recorded.is_empty()
    }
}

pub async fn inspect(store: &dyn Store) -> StoreResult<DatabaseKeys> {
    let rows = ports::write(store, |tx| tx.secrets()).await?;
    let mut keys = DatabaseKeys::default();
    for (name, value) in rows {
        if name == LEGACY {
            keys.legacy = Some(value);
        } else if name == ERASE_PENDING {
            keys.erase_pending = true;
        } else if let Some(id) = name.strip_prefix(KEY_PREFIX) {
            keys.recorded.push(id.to_string());
        }
    }
    Ok(keys)
}

/// The keys a database's key records (`stored`: its `server_secrets` rows) name that `secrets`
/// lack, by id: empty when the key file opens everything the database holds. An earlier
/// release's secret counts as a key.
pub fn missing_keys<S: AsRef<[u8]>>(stored: &[(String, Vec<u8>)], secrets: &[S]) -> Vec<String> {
    let fingerprints: Vec<[u8; 32]> = secrets.iter().map(|s| code::fingerprint(s.as_ref())).collect();
    let known = |fingerprint: &[u8]| fingerprints.iter().any(|f| f.as_slice() == fingerprint);
    let mut missing = Vec::new();
    for (name, value) in stored {
        if let Some(id) = name.strip_prefix(KEY_PREFIX)
            && !known(value)
        {
            missing.push(id.to_string());
        } else if name == LEGACY && !known(&code::fingerprint(value)) {
            missing.push(code::key_id(value));
        }
    }
    missing
}

/// Records `secrets` (the key file's keys, oldest first) as keys of the database — on its first
/// start, or after a rotation added one — and returns them, unless the database already holds
/// data sealed with a key they lack.
pub async fn register<S: AsRef<[u8]> + Send + 'static>(store: &dyn Store, secrets: Vec<S>) -> Result<ServerKeys, KeyError> {
    let records: Vec<(String, [u8; 32])> = secrets.iter().map(|s| (code::key_id(s.as_ref()), code::fingerprint(s.as_ref()))).collect();
    let plain: Vec<Vec<u8>> = secrets.iter().map(|s| s.as_ref().to_vec()).collect();
    ports::write(store, move |tx| {
        let stored: Vec<_> = tx.secrets()?.into_iter().filter(|(name, _)| name != LEGACY).collect();
        let missing = missing_keys(&stored, &plain);
        if !missing.is_empty() {
            return Err(KeyError::Unknown { missing });
        }
        let first = records.first().map(|(id, _)| id.clone()).unwrap_or_default();
        let origin = String::from_utf8_lossy(&tx.secret_or_insert(ORIGIN, first.as_bytes())?).into_owned();
        if !records.iter().any(|(id, _)| *id == origin) {
            return Err(KeyError::Unknown { missing: vec![origin] });
        }
        for (id, fingerprint) in &records {
            tx.insert_secret(&format!("{KEY_PREFIX}{id}"), fingerprint)?;
        }
        Ok(())
    })
    .await?;
    Ok(ServerKeys::from_secrets(&secrets))
}

/// Deletes the secret a release before key files stored in the database, leaving no copy of it
/// in the database's files (it has been written to the key file first).
pub async fn erase_legacy(store: &dyn Store) -> StoreResult<()> {
    store.erase_secret(LEGACY).await
}
