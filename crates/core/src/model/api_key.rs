//! API keys: an id (`SK…`) and a random secret shown once. Only a SHA-256 of the secret is
//! stored: the secret has 192 bits of entropy, so a slow password hash would add cost per
//! request without adding safety.
use crate::model::ids::new_id;
use chrono::{DateTime, Utc};
use rand::{TryRngCore, rngs::OsRng};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub scope: KeyScope,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What a key may touch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyScope {
    /// Everything: services, keys, audit, every verification.
    Admin,
    /// Only the verifications (and dev-outbox messages) of these services, by id.
    Services(Vec<String>),
}

impl KeyScope {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Services(_) => "service",
        }
    }
}

/// The stored digest of a key's secret: the one place a secret is exposed.
pub fn hash_secret(secret: &SecretString) -> Vec<u8> {
    Sha256::digest(secret.expose_secret().as_bytes()).to_vec()
}

/// Creates a key; the returned secret is never stored and cannot be shown again.
pub fn generate(name: &str, scope: KeyScope, now: DateTime<Utc>) -> (ApiKey, SecretString) {
    let mut bytes = [0u8; 24];
    OsRng.try_fill_bytes(&mut bytes).expect("OS random source unavailable");
    let secret = SecretString::from(format!("pgs_{}", hex::encode(bytes)));
    let key =
        ApiKey { id: new_id("SK"), name: name.to_string(), secret_hash: hash_secret(&secret), scope, created_at: now, revoked_at: None };
    (key, secret)
}
