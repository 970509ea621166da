//! API keys: an id (`SK…`) and a random secret shown once. Only a SHA-256 of the secret is
//! stored: the secret has 192 bits of entropy, so a slow password hash would add cost per
//! request without adding safety.
use crate::audit::Audit;
use crate::audit::AuditKind;
use crate::caller::Caller;
use crate::catalog::Catalog;
use crate::context::Context;
use crate::error::{Field, VerifyError};
pub use crate::model::api_key::{ApiKey, KeyScope, generate, hash_secret};
use crate::ports::{self, Store, StoreResult};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use subtle::ConstantTimeEq;

/// Finds the active key a secret belongs to (Bearer authentication).
pub async fn authenticate_secret(store: &dyn Store, secret: &SecretString) -> StoreResult<Option<ApiKey>> {
    let hash = hash_secret(secret);
    let key = ports::read(store, move |tx| tx.api_key_by_hash(&hash)).await?;
    Ok(key.filter(|k| k.revoked_at.is_none()))
}

/// Checks an id and secret pair (HTTP Basic authentication) in constant time.
pub async fn authenticate_pair(store: &dyn Store, id: &str, secret: &SecretString) -> StoreResult<Option<ApiKey>> {
    let id = id.to_string();
    let key = ports::read(store, move |tx| tx.api_key(&id)).await?;
    let presented = hash_secret(secret);
    Ok(key.filter(|k| k.revoked_at.is_none() && bool::from(k.secret_hash.ct_eq(&presented))))
}

/// Creating, listing and revoking API keys (admins only).
#[derive(Clone)]
pub struct ApiKeys {
    ctx: Context,
    audit: Audit,
    catalog: Catalog,
}

impl ApiKeys {
    pub fn new(ctx: Context, audit: Audit, catalog: Catalog) -> Self {
        Self { ctx, audit, catalog }
    }

    /// Creates a key named `name` (1 to 100 characters) with `scope` (services by id or name);
    /// the secret is returned only now. Admins only.
    pub async fn create(&self, caller: &Caller, name: &str, scope: KeyScope) -> Result<(ApiKey, SecretString), VerifyError> {
        caller.require_admin()?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(VerifyError::invalid(Field::Name, "must be 1 to 100 characters"));
        }
        let scope = match scope {
            KeyScope::Admin => KeyScope::Admin,
            KeyScope::Services(names) if names.is_empty() => {
                return Err(VerifyError::invalid(Field::Service, "a service key names at least one service"));
            }
            KeyScope::Services(names) => {
                let mut ids = Vec::new();
                for n in &names {
                    ids.push(self.catalog.service(caller, Some(n)).await?.id);
                }
                KeyScope::Services(ids)
            }
        };
        let (key, secret) = generate(name, scope, self.ctx.now());
        let k = key.clone();
        ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.insert_api_key(&k)?)).await?;
        self.audit.record_once(caller, AuditKind::KeyCreated, Some(&key.id), key.scope.as_str()).await;
        Ok((key, secret))
    }

    /// Every key, oldest first, revoked ones included.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<ApiKey>, VerifyError> {
        caller.require_admin()?;
        ports::read(self.ctx.store.as_ref(), |tx| Ok(tx.api_keys()?)).await
    }

    /// Revokes an active key; false when no active key has this id.
    pub async fn revoke(&self, caller: &Caller, id: &str) -> Result<bool, VerifyError> {
        caller.require_admin()?;
        let (key, now) = (id.to_string(), self.ctx.now());
        let revoked = ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.revoke_api_key(&key, now)?)).await?;
        if revoked {
            self.audit.record_once(caller, AuditKind::KeyRevoked, Some(id), "key revoked").await;
        }
        Ok(revoked)
    }
}

/// Authenticated keys remembered for a short time, so a request costs no database read for its
/// key. A revoked key is refused by every instance within `ttl`; only successes are remembered.
pub struct KeyCache {
    store: std::sync::Arc<dyn crate::ports::Store>,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    ttl: chrono::Duration,
    entries: std::sync::Mutex<std::collections::HashMap<Vec<u8>, Remembered>>,
}

/// A key and when it was last found active.
type Remembered = (ApiKey, DateTime<Utc>);

/// Bound on remembered keys; the cache starts over when it is reached.
const KEY_CACHE_LIMIT: usize = 10_000;

impl KeyCache {
    pub fn new(
        store: std::sync::Arc<dyn crate::ports::Store>,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
        ttl: chrono::Duration,
    ) -> Self {
        Self { store, clock, ttl, entries: Default::default() }
    }

    fn cached(&self, hash: &[u8]) -> Option<ApiKey> {
        let entries = self.entries.lock().ok()?;
        let (key, at) = entries.get(hash)?;
        (self.clock.now() - *at < self.ttl).then(|| key.clone())
    }

    fn remember(&self, hash: Vec<u8>, key: &ApiKey) {
        if self.ttl <= chrono::Duration::zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= KEY_CACHE_LIMIT {
                entries.clear();
            }
            entries.insert(hash, (key.clone(), self.clock.now()));
        }
    }

    /// Bearer authentication.
    pub async fn by_secret(&self, secret: &SecretString) -> StoreResult<Option<ApiKey>> {
        let hash = hash_secret(secret);
        if let Some(key) = self.cached(&hash) {
            return Ok(Some(key));
        }
        let key = authenticate_secret(self.store.as_ref(), secret).await?;
        if let Some(k) = &key {
            self.remember(hash, k);
        }
        Ok(key)
    }

    /// HTTP Basic (`id:secret`) authentication.
    pub async fn by_pair(&self, id: &str, secret: &SecretString) -> StoreResult<Option<ApiKey>> {
        // `AC…` is each key's account-SID alias (Twilio's SDKs insist on an `AC` account SID).
        let alias = id.strip_prefix("AC").map(|rest| format!("SK{rest}"));
        let id = alias.as_deref().unwrap_or(id);
        let hash = hash_secret(secret);
        if let Some(key) = self.cached(&hash).filter(|k| k.id == id) {
            return Ok(Some(key));
        }
        let key = authenticate_pair(self.store.as_ref(), id, secret).await?;
        if let Some(k) = &key {
            self.remember(hash, k);
        }
        Ok(key)
    }
}
