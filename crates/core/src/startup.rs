//! What a server does once when it starts, before it serves anything.
use crate::code::ServerKeys;
use crate::ports::{self, Store, StoreResult};

/// The keys from the server secret stored in the database, storing `candidate` first if there is
/// none, so every instance on one database derives the same keys.
pub async fn server_keys(store: &dyn Store, candidate: &[u8]) -> StoreResult<ServerKeys> {
    let candidate = candidate.to_vec();
    let secret = ports::write(store, move |tx| tx.secret_or_insert("code_keys", &candidate)).await?;
    Ok(ServerKeys::from_secret(&secret))
}
