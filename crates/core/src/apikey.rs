//! API keys: an id (`SK…`) and a random secret shown once. Only a SHA-256 of the secret is
//! stored: the secret has 192 bits of entropy, so a slow password hash would add cost per
//! request without adding safety.
use crate::ids::new_id;
use crate::ports::{ApiKeyStore, StoreResult};
use chrono::{DateTime, Utc};
use rand::{TryRngCore, rngs::OsRng};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Creates a key; the returned secret is never stored and cannot be shown again.
pub fn generate(name: &str, now: DateTime<Utc>) -> (ApiKey, String) {
    let mut bytes = [0u8; 24];
    OsRng.try_fill_bytes(&mut bytes).expect("OS random source unavailable");
    let secret = format!("pgs_{}", hex::encode(bytes));
    let key = ApiKey { id: new_id("SK"), name: name.to_string(), secret_hash: hash_secret(&secret), created_at: now, revoked_at: None };
    (key, secret)
}

/// Finds the active key a secret belongs to (Bearer authentication).
pub async fn authenticate_secret(store: &dyn ApiKeyStore, secret: &str) -> StoreResult<Option<ApiKey>> {
    let key = store.find_api_key_by_hash(&hash_secret(secret)).await?;
    Ok(key.filter(|k| k.revoked_at.is_none()))
}

/// Checks an id and secret pair (HTTP Basic authentication) in constant time.
pub async fn authenticate_pair(store: &dyn ApiKeyStore, id: &str, secret: &str) -> StoreResult<Option<ApiKey>> {
    let key = store.get_api_key(id).await?;
    let presented = hash_secret(secret);
    Ok(key.filter(|k| k.revoked_at.is_none() && bool::from(k.secret_hash.ct_eq(&presented))))
}
