//! The traits the core needs from the outside world: storage (one trait per aggregate, combined
//! in `Store`), SMS delivery and an observer for metrics.
use crate::apikey::ApiKey;
use crate::message::{DeliveryStatus, InboundMessage, Message};
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
    /// Retention: deletes up to `limit` ended verifications last changed before `cutoff`, with
    /// their messages, and dev-outbox and inbound messages older than `cutoff`. Returns how many
    /// verifications went.
    async fn purge_before(&self, cutoff: DateTime<Utc>, limit: u32) -> StoreResult<u64>;
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

/// A claim on a message: who holds it (a random token) and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub token: String,
    pub until: DateTime<Utc>,
}

/// How a claimed message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageResult {
    pub status: DeliveryStatus,
    pub provider: Option<String>,
    pub provider_message_id: Option<String>,
    pub error: Option<String>,
}

#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Queues a message; with a lease it is written already claimed by the caller, who sends it
    /// at once (and anyone else may take it over only after `lease_until`).
    async fn insert_message(&self, m: &Message, lease: Option<&Lease>) -> StoreResult<()>;
    /// Claims up to `limit` messages that were queued at or before `queued_before` (newer ones
    /// are still being sent by the request that queued them) or whose lease ran out.
    async fn claim_due_messages(
        &self,
        now: DateTime<Utc>,
        queued_before: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        token: &str,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
    /// Records the result of a claimed send; false when the claim was lost (lease expired and
    /// taken over), in which case nothing is written.
    async fn finish_message(&self, id: &str, token: &str, result: &MessageResult, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Applies a delivery receipt to the message a provider knows by `provider_message_id`,
    /// never moving a final status backwards. Returns the updated message.
    async fn apply_receipt(
        &self,
        provider_message_id: &str,
        status: DeliveryStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Message>>;
    async fn list_messages_for_verification(&self, verification_id: &str) -> StoreResult<Vec<Message>>;
    /// Keeps a receipt for a provider message id no message carries yet (the receipt overtook the
    /// send's result). Returns false, keeping nothing, when a message carries it by now.
    async fn hold_receipt(
        &self,
        provider_message_id: &str,
        status: DeliveryStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Removes and returns the receipt held for a provider message id, if any.
    async fn take_held_receipt(&self, provider_message_id: &str) -> StoreResult<Option<(DeliveryStatus, Option<String>)>>;
}

#[async_trait]
pub trait OptOutStore: Send + Sync {
    async fn is_opted_out(&self, number: &PhoneNumber) -> StoreResult<bool>;
    async fn set_opted_out(&self, number: &PhoneNumber, opted_out: bool, now: DateTime<Utc>) -> StoreResult<()>;
}

#[async_trait]
pub trait InboundStore: Send + Sync {
    /// Stores an inbound message and, in the same transaction, sets (`Some(true)`) or clears
    /// (`Some(false)`) the sender's opt-out; `Conflict` (and no change) if this provider message
    /// id was seen before.
    async fn insert_inbound(&self, m: &InboundMessage, opt_out: Option<bool>) -> StoreResult<()>;
}

#[async_trait]
pub trait Store:
    VerificationStore + ServiceStore + ApiKeyStore + OutboxStore + SecretStore + MessageStore + OptOutStore + InboundStore
{
    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> StoreResult<()>;
}

/// A text message to deliver. `Debug` hides the body: it carries a code.
#[derive(Clone)]
pub struct Sms {
    /// Our message id (`SM…`), for providers that carry a reference.
    pub message_id: String,
    pub to: PhoneNumber,
    pub body: String,
    /// Name of the service sending it, for per-service routing.
    pub service: Option<String>,
    /// Sender id or number; set by routing, else the provider's default.
    pub from: Option<String>,
    pub verification_id: Option<String>,
}

impl std::fmt::Debug for Sms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sms").field("message_id", &self.message_id).field("to", &self.to).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    /// Name of the configured provider that accepted the message.
    pub provider: String,
    pub provider_message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The provider could not take the message (network, timeout, 5xx, throttling, bad
    /// credentials); another provider may. `retry_safe` says the request surely was not
    /// processed, so the same provider may be asked again without risking a duplicate.
    #[error("provider unavailable: {reason}")]
    Unavailable { reason: String, retry_safe: bool },
    /// The message was refused for its recipient or content; no provider will do better.
    #[error("message rejected: {0}")]
    Rejected(String),
}

impl SendError {
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable { reason: reason.into(), retry_safe: false }
    }
    pub fn retryable(reason: impl Into<String>) -> Self {
        Self::Unavailable { reason: reason.into(), retry_safe: true }
    }
}

#[async_trait]
pub trait SmsSender: Send + Sync {
    async fn send(&self, sms: &Sms) -> Result<SentSms, SendError>;
}

/// Receives the domain events that metrics count.
pub trait Observer: Send + Sync {
    fn verification_entered(&self, service_id: &str, channel: Channel, status: Status);
    /// One attempt at one provider: `ok`, `unavailable` or `rejected`.
    fn sms_attempt(&self, provider: &str, result: &str);
    /// A delivery receipt, with the recipient's region (ISO 3166 code or `unknown`).
    fn sms_receipt(&self, provider: &str, region: &str, status: DeliveryStatus);
}

/// An observer that ignores everything (CLI commands, unit tests).
pub struct NoObserver;

impl Observer for NoObserver {
    fn verification_entered(&self, _: &str, _: Channel, _: Status) {}
    fn sms_attempt(&self, _: &str, _: &str) {}
    fn sms_receipt(&self, _: &str, _: &str, _: DeliveryStatus) {}
}
