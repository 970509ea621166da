//! The traits the core needs from the outside world: storage (one trait per aggregate, combined
//! in `Store`), SMS delivery and an observer for metrics.
use crate::apikey::ApiKey;
use crate::outbox::OutboxMessage;
use crate::phone::PhoneNumber;
use crate::service::Service;
use crate::verification::{Channel, Status, Verification};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (duplicate name, a second pending verification…).
    #[error("conflicting record")]
    Conflict,
    /// The database could not be reached or timed out; the operation may be retried.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the text is for logs only, never for clients.
    #[error("database error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait VerificationStore: Send + Sync {
    /// Inserts a new pending verification; `Conflict` when one is already pending for the same
    /// service and number.
    async fn insert_verification(&self, v: &Verification) -> StoreResult<()>;
    async fn get_verification(&self, id: &str) -> StoreResult<Option<Verification>>;
    async fn find_pending_verification(&self, service_id: &str, to: &PhoneNumber) -> StoreResult<Option<Verification>>;
    /// Writes `v` only if the stored version is still `expected_version` (and bumps it).
    /// Returns false when someone else wrote first.
    async fn update_verification(&self, v: &Verification, expected_version: i64) -> StoreResult<bool>;
    /// Marks every pending verification whose deadline has passed as expired; returns the
    /// service and channel of each, for metrics.
    async fn expire_due_verifications(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<(String, Channel)>>;
}

#[async_trait]
pub trait ServiceStore: Send + Sync {
    /// `Conflict` when the name is taken.
    async fn insert_service(&self, s: &Service) -> StoreResult<()>;
    /// Looks a service up by id or by name.
    async fn get_service(&self, id_or_name: &str) -> StoreResult<Option<Service>>;
    async fn list_services(&self) -> StoreResult<Vec<Service>>;
}

#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKey>>;
    async fn find_api_key_by_hash(&self, secret_hash: &[u8]) -> StoreResult<Option<ApiKey>>;
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>>;
    /// Returns false when no active key has this id.
    async fn revoke_api_key(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool>;
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    async fn push_outbox(&self, m: &OutboxMessage) -> StoreResult<()>;
    /// Newest first.
    async fn list_outbox(&self, to: Option<&str>, limit: u32) -> StoreResult<Vec<OutboxMessage>>;
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Returns the secret stored under `name`, storing `candidate` first if there is none, so
    /// every instance on one database ends up with the same secret.
    async fn get_or_create_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>>;
}

#[async_trait]
pub trait Store: VerificationStore + ServiceStore + ApiKeyStore + OutboxStore + SecretStore {
    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> StoreResult<()>;
}

/// A text message to deliver. `Debug` hides the body: it carries a code.
#[derive(Clone)]
pub struct Sms {
    pub to: PhoneNumber,
    pub body: String,
    pub verification_id: Option<String>,
}

impl std::fmt::Debug for Sms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sms").field("to", &self.to).field("verification_id", &self.verification_id).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct SentSms {
    pub provider: String,
    pub provider_message_id: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Timeouts, 5xx, network errors: another provider may succeed.
    #[error("temporary delivery failure: {0}")]
    Transient(String),
    /// The provider refused this message for good (invalid number, blocked…).
    #[error("delivery refused: {0}")]
    Permanent(String),
}

#[async_trait]
pub trait SmsSender: Send + Sync {
    fn name(&self) -> &str;
    async fn send(&self, sms: &Sms) -> Result<SentSms, SendError>;
}

/// Receives the domain events that metrics count.
pub trait Observer: Send + Sync {
    fn verification_entered(&self, service_id: &str, channel: Channel, status: Status);
    fn sms_sent(&self, provider: &str, ok: bool);
}

/// An observer that ignores everything (CLI commands, unit tests).
pub struct NoObserver;

impl Observer for NoObserver {
    fn verification_entered(&self, _: &str, _: Channel, _: Status) {}
    fn sms_sent(&self, _: &str, _: bool) {}
}
