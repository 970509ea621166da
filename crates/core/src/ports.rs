//! The traits the core needs from the outside world: storage (units of work run as one
//! transaction, over statements grouped by aggregate in `Tx`), SMS delivery and an observer for
//! metrics.
use crate::model::account_event::AccountEvent;
use crate::model::api_key::ApiKey;
use crate::model::audit::{AuditEvent, AuditQuery};
use crate::model::budget::Charge;
use crate::model::flow::Flow;
use crate::model::invite::Invite;
use crate::model::jwt_key::JwtKey;
use crate::model::message::{DeliveryStatus, InboundMessage, Message};
use crate::model::phone::PhoneNumber;
use crate::model::service::Service;
use crate::model::session::Session;
use crate::model::silent::SilentCheck;
use crate::model::user::User;
use crate::model::verification::{Channel, Status, Verification};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use crate::error::{StoreError, StoreResult};

/// A boxed future, as the store's units of work return them.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// One use case's work against the store: it runs inside one transaction and must only await the
/// `Tx` it is given (on SQLite it runs on the writer thread, where nothing else can wake it).
pub type Work = Box<dyn for<'t> FnOnce(&'t mut dyn Tx) -> BoxFuture<'t, StoreResult<()>> + Send>;

/// The statements a unit of work can run, one trait per aggregate. Inside `Store::write` a read
/// of a row the unit may change (`verification`, `pending_verification`) locks it until commit,
/// so a unit never races another unit on the same row.
pub trait Tx:
    VerificationTx + ServiceTx + ApiKeyTx + SecretTx + MessageTx + OptOutTx + InboundTx + BudgetTx + AuditTx + AccountTx + SilentTx + OnceTx
{
}
impl<
    T: VerificationTx
        + ServiceTx
        + ApiKeyTx
        + SecretTx
        + MessageTx
        + OptOutTx
        + InboundTx
        + BudgetTx
        + AuditTx
        + AccountTx
        + SilentTx
        + OnceTx,
> Tx for T
{
}

#[async_trait]
pub trait VerificationTx: Send {
    /// Inserts a new pending verification; false (and nothing written) when one is already
    /// pending for the same service and number.
    async fn insert_verification(&mut self, v: &Verification) -> StoreResult<bool>;
    async fn verification(&mut self, id: &str) -> StoreResult<Option<Verification>>;
    async fn pending_verification(&mut self, service_id: &str, to: &PhoneNumber) -> StoreResult<Option<Verification>>;
    /// Records a counted check of a verification.
    async fn insert_check(&mut self, verification_id: &str, c: &crate::model::verification::CheckRecord) -> StoreResult<()>;
    /// A verification's checks, oldest first.
    async fn checks(&mut self, verification_id: &str) -> StoreResult<Vec<crate::model::verification::CheckRecord>>;
    /// The newest verification of the number that wrong codes locked and whose code has not
    /// expired yet at `now`.
    async fn locked_verification(&mut self, service_id: &str, to: &PhoneNumber, now: DateTime<Utc>) -> StoreResult<Option<Verification>>;
    /// The newest `silent` verification of a number in a service, whatever its status (a Twilio
    /// SNA check names the number only).
    async fn latest_silent_verification(&mut self, service_id: &str, to: &PhoneNumber) -> StoreResult<Option<Verification>>;
    /// Writes `v` over the stored row of the same id and version, bumping the version.
    /// `Conflict` when the stored version differs (a unit that read without its lock).
    async fn update_verification(&mut self, v: &Verification) -> StoreResult<()>;
    /// Marks up to `limit` pending verifications whose deadline has passed as expired; returns
    /// the service and channel of each, for metrics.
    async fn expire_due_verifications(&mut self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<(String, Channel)>>;
    /// Retention: deletes up to `limit` ended verifications last changed before `cutoff`, with
    /// their messages, and inbound messages and held receipts older than `cutoff`.
    /// Returns how many verifications went.
    async fn purge_before(&mut self, cutoff: DateTime<Utc>, limit: u32) -> StoreResult<u64>;
    /// Number, creation and approval of up to `limit` verifications created since `since`.
    async fn recent_verifications(
        &mut self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<(PhoneNumber, DateTime<Utc>, Option<DateTime<Utc>>)>>;
}

/// Things that may be used once (a redirect step's incoming token), by digest, kept until they
/// expire.
#[async_trait]
pub trait OnceTx: Send {
    /// Records `digest` as used; false when it was used already.
    async fn use_once(&mut self, digest: &[u8], expires_at: DateTime<Utc>) -> StoreResult<bool>;
}

/// Silent checks (`silent.rs`). Inside a write, every read locks the row until commit.
#[async_trait]
pub trait SilentTx: Send {
    async fn insert_silent_check(&mut self, c: &SilentCheck) -> StoreResult<()>;
    async fn update_silent_check(&mut self, c: &SilentCheck) -> StoreResult<()>;
    async fn silent_check_of(&mut self, verification_id: &str) -> StoreResult<Option<SilentCheck>>;
    async fn silent_check_by_token(&mut self, token_digest: &[u8]) -> StoreResult<Option<SilentCheck>>;
    async fn silent_check_by_ref(&mut self, provider: &str, provider_ref: &str) -> StoreResult<Option<SilentCheck>>;
    /// Live checks whose device step is overdue (skipping rows another unit holds).
    async fn due_silent_checks(&mut self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<SilentCheck>>;
}

#[async_trait]
pub trait ServiceTx: Send {
    /// False (and nothing written) when the name is taken.
    async fn insert_service(&mut self, s: &Service) -> StoreResult<bool>;
    /// A service by id or by name (the id wins).
    async fn service(&mut self, id_or_name: &str) -> StoreResult<Option<Service>>;
    async fn services(&mut self) -> StoreResult<Vec<Service>>;
}

#[async_trait]
pub trait ApiKeyTx: Send {
    async fn insert_api_key(&mut self, key: &ApiKey) -> StoreResult<()>;
    async fn api_key(&mut self, id: &str) -> StoreResult<Option<ApiKey>>;
    async fn api_key_by_hash(&mut self, secret_hash: &[u8]) -> StoreResult<Option<ApiKey>>;
    async fn api_keys(&mut self) -> StoreResult<Vec<ApiKey>>;
    /// False when no active key has this id.
    async fn revoke_api_key(&mut self, id: &str, now: DateTime<Utc>) -> StoreResult<bool>;
}

/// Users, their login flows, sessions, refresh tokens and the access-token signing keys.
#[async_trait]
pub trait AccountTx: Send {
    /// `Conflict` when the username, e-mail or phone number is taken.
    async fn insert_user(&mut self, u: &User) -> StoreResult<()>;
    async fn user(&mut self, id: &str) -> StoreResult<Option<User>>;
    /// By lower-cased username or e-mail address.
    async fn user_by_login(&mut self, login_lc: &str) -> StoreResult<Option<User>>;
    async fn user_by_phone(&mut self, phone: &PhoneNumber) -> StoreResult<Option<User>>;
    async fn username_taken(&mut self, username_lc: &str) -> StoreResult<bool>;
    /// Every user, by username.
    async fn users(&mut self) -> StoreResult<Vec<User>>;
    async fn admin_count(&mut self) -> StoreResult<i64>;
    async fn set_roles(&mut self, user_id: &str, roles: &[String]) -> StoreResult<()>;
    async fn email_taken(&mut self, email_lc: &str) -> StoreResult<bool>;
    async fn set_last_login(&mut self, user_id: &str, at: DateTime<Utc>) -> StoreResult<()>;
    /// `Conflict` when another account has the number.
    async fn set_user_phone(&mut self, user_id: &str, phone: &PhoneNumber) -> StoreResult<()>;
    /// Deletes the user with every session and refresh token; false when there was none.
    async fn delete_user(&mut self, user_id: &str) -> StoreResult<bool>;

    async fn insert_flow(&mut self, f: &Flow) -> StoreResult<()>;
    /// Locks the flow until the unit ends.
    async fn flow(&mut self, id: &str) -> StoreResult<Option<Flow>>;
    /// Writes attempts, last send, use, verification and expiry.
    async fn update_flow(&mut self, f: &Flow) -> StoreResult<()>;
    /// The newest unused, unexpired flow an SMS reply started for `phone`, locked.
    async fn reply_flow(&mut self, phone: &PhoneNumber, now: DateTime<Utc>) -> StoreResult<Option<Flow>>;
    /// The group's invite code generation and when it began; `None` before the first rotation.
    async fn invite_code(&mut self) -> StoreResult<Option<(i64, DateTime<Utc>)>>;
    /// Begins a generation; `Conflict` when another rotation took that number first.
    async fn insert_invite_code(&mut self, generation: i64, at: DateTime<Utc>, by: &str) -> StoreResult<()>;

    async fn insert_session(&mut self, s: &Session) -> StoreResult<()>;
    async fn session(&mut self, id: &str) -> StoreResult<Option<Session>>;
    async fn session_by_secret(&mut self, secret_hash: &[u8]) -> StoreResult<Option<Session>>;
    /// A user's sessions, newest first.
    async fn sessions_of(&mut self, user_id: &str) -> StoreResult<Vec<Session>>;
    async fn touch_session(&mut self, id: &str, at: DateTime<Utc>) -> StoreResult<()>;
    async fn set_session_secret(&mut self, id: &str, secret_hash: &[u8], at: DateTime<Utc>) -> StoreResult<()>;
    /// Deletes a session of the user (and its refresh tokens); false when it had none by that id.
    async fn delete_session(&mut self, user_id: &str, id: &str) -> StoreResult<bool>;
    /// Deletes all of a user's sessions; returns how many.
    async fn delete_sessions_of(&mut self, user_id: &str) -> StoreResult<u64>;

    async fn insert_refresh_token(&mut self, token_hash: &[u8], session_id: &str, at: DateTime<Utc>) -> StoreResult<()>;
    /// The session a refresh token belongs to and when it was spent, locked until the unit ends.
    async fn refresh_token(&mut self, token_hash: &[u8]) -> StoreResult<Option<(String, Option<DateTime<Utc>>)>>;
    async fn spend_refresh_token(&mut self, token_hash: &[u8], at: DateTime<Utc>) -> StoreResult<()>;

    /// Every signing key, newest first.
    async fn jwt_keys(&mut self) -> StoreResult<Vec<JwtKey>>;
    async fn insert_jwt_key(&mut self, k: &JwtKey) -> StoreResult<()>;

    /// Deletes what can no longer be used: flows that expired before `before`, sessions (with
    /// their refresh tokens) past their end or unused since `idle_since`, and events delivered
    /// (or given up) before `before`. Returns how many rows went.
    async fn purge_accounts(&mut self, now: DateTime<Utc>, before: DateTime<Utc>, idle_since: DateTime<Utc>) -> StoreResult<u64>;

    async fn insert_invite(&mut self, i: &Invite) -> StoreResult<()>;
    /// Locks the invite until the unit ends.
    async fn invite(&mut self, id: &str) -> StoreResult<Option<Invite>>;
    /// Newest first.
    async fn invites(&mut self) -> StoreResult<Vec<Invite>>;
    /// The newest invite of `phone` that is neither used, revoked nor expired at `now`.
    async fn live_invite(&mut self, phone: &PhoneNumber, now: DateTime<Utc>) -> StoreResult<Option<Invite>>;
    /// Marks an invite used if it still was live; false when another sign-up used it first (or
    /// it was revoked).
    async fn use_invite(&mut self, id: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Writes last send and revocation.
    async fn update_invite(&mut self, i: &Invite) -> StoreResult<()>;

    /// Queues an event for the app's webhook, due at once.
    async fn insert_account_event(&mut self, e: &AccountEvent, now: DateTime<Utc>) -> StoreResult<()>;
    /// Claims up to `limit` undelivered events due at `now` (their lease moves them to
    /// `lease_until`); concurrent claims never get the same event.
    async fn claim_account_events(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        token: &str,
        limit: u32,
    ) -> StoreResult<Vec<AccountEvent>>;
    /// Records a delivery attempt by the claim holder: delivered (or given up) with `done_at`,
    /// else due again at `due_at`.
    async fn finish_account_event(
        &mut self,
        id: &str,
        token: &str,
        attempts: u32,
        due_at: DateTime<Utc>,
        done_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait AuditTx: Send {
    async fn insert_audit_event(&mut self, e: &AuditEvent) -> StoreResult<()>;
    /// Newest first, optionally of one kind and since a time.
    /// The events `q` selects, newest first, at most `q.limit`.
    async fn audit_events(&mut self, q: &AuditQuery) -> StoreResult<Vec<AuditEvent>>;
}

/// Budget counters (see `budget`), one per budget, subject, rate and window.
#[async_trait]
pub trait BudgetTx: Send {
    /// Adds one to the counter of `charge`'s window starting at `window_start` (a Unix time) if
    /// it stays within the rate's limit; false, taking nothing, when it would not. An exact
    /// charge locks its counter until the unit ends; a shared one adds to one of
    /// `budget::SHARDS` shards (`shard`) after reading their sum.
    async fn take_budget(&mut self, charge: &Charge, window_start: i64, shard: u32, expires_at: DateTime<Utc>) -> StoreResult<bool>;
    /// The sum of a shared charge's counter in a window (no lock).
    async fn budget_used(&mut self, charge: &Charge, window_start: i64) -> StoreResult<i64>;
    /// Two shared counters' sums in two windows, in one read: `[a, b][window]`.
    async fn budgets_used(&mut self, a: &Charge, b: &Charge, windows: [i64; 2]) -> StoreResult<[[i64; 2]; 2]>;
    /// Whether an exact charge's counter is still below its limit, locking it until the unit
    /// ends (so a take on it cannot slip in between).
    async fn budget_left(&mut self, charge: &Charge, window_start: i64) -> StoreResult<bool>;
}

#[async_trait]
pub trait SecretTx: Send {
    /// The secret stored under `name`, storing `candidate` first if there is none, so every
    /// instance on one database ends up with the same secret.
    async fn secret_or_insert(&mut self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>>;
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
pub trait MessageTx: Send {
    /// Queues a message; with a lease it is written already claimed by the caller, who sends it
    /// at once (and anyone else may take it over only after `lease.until`).
    async fn insert_message(&mut self, m: &Message, lease: Option<&Lease>) -> StoreResult<()>;
    /// Claims up to `limit` messages that were queued at or before `queued_before` (newer ones
    /// are still being sent by the request that queued them) or whose lease ran out. Several
    /// instances claiming at once never get the same message.
    async fn claim_due_messages(
        &mut self,
        now: DateTime<Utc>,
        queued_before: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        token: &str,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
    /// Records the result of a claimed send; false when the claim was lost (lease expired and
    /// taken over), in which case nothing is written.
    async fn finish_message(&mut self, id: &str, token: &str, result: &MessageResult, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Applies a delivery receipt to the message a provider knows by `provider_message_id`,
    /// only where `status.can_follow` its current status. Returns the updated message.
    async fn apply_receipt(
        &mut self,
        provider_message_id: &str,
        status: DeliveryStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Message>>;
    async fn messages_for_verification(&mut self, verification_id: &str) -> StoreResult<Vec<Message>>;
    /// The messages the dev outbox took (their provider is `outbox::PROVIDER`), optionally only
    /// those to one number, newest first.
    async fn outbox(&mut self, to: Option<&str>, limit: u32) -> StoreResult<Vec<Message>>;
    /// Keeps a receipt for a provider message id no message carries yet (the receipt overtook the
    /// send's result). Returns false, keeping nothing, when a message carries it by now.
    async fn hold_receipt(
        &mut self,
        provider_message_id: &str,
        status: DeliveryStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Messages created since `since`, counted by provider and status.
    async fn message_counts(&mut self, since: DateTime<Utc>) -> StoreResult<Vec<(Option<String>, String, i64)>>;
    /// Removes and returns the receipt held for a provider message id, if any.
    async fn take_held_receipt(&mut self, provider_message_id: &str) -> StoreResult<Option<(DeliveryStatus, Option<String>)>>;
}

#[async_trait]
pub trait OptOutTx: Send {
    async fn is_opted_out(&mut self, number: &PhoneNumber) -> StoreResult<bool>;
    async fn set_opted_out(&mut self, number: &PhoneNumber, opted_out: bool, now: DateTime<Utc>) -> StoreResult<()>;
}

#[async_trait]
pub trait InboundTx: Send {
    /// Stores an inbound message; false (and nothing written) if this provider message id was
    /// seen before.
    async fn insert_inbound(&mut self, m: &InboundMessage) -> StoreResult<bool>;
}

/// A database: units of work, each run as one transaction.
#[async_trait]
pub trait Store: Send + Sync {
    /// Runs `work` in one transaction: everything it wrote is committed together, or, if it
    /// returns an error, nothing is. Returns once the commit is durable.
    async fn write(&self, work: Work) -> StoreResult<()>;
    /// Runs `work` on a read-only connection: it can read but never write.
    async fn read(&self, work: Work) -> StoreResult<()>;
    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> StoreResult<()>;
}

/// Runs a unit of work that yields a value, as one transaction (`Store::write`). If it returns an
/// error, everything it wrote is rolled back and the error is returned.
pub async fn write<T, E, F>(store: &dyn Store, f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: for<'t> FnOnce(&'t mut dyn Tx) -> BoxFuture<'t, Result<T, E>> + Send + 'static,
{
    let (work, slot) = unit(f);
    finish(store.write(work).await, slot)
}

/// Runs a read-only unit of work that yields a value (`Store::read`).
pub async fn read<T, E, F>(store: &dyn Store, f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: for<'t> FnOnce(&'t mut dyn Tx) -> BoxFuture<'t, Result<T, E>> + Send + 'static,
{
    let (work, slot) = unit(f);
    finish(store.read(work).await, slot)
}

type Slot<T, E> = std::sync::Arc<std::sync::Mutex<Option<Result<T, E>>>>;

/// Wraps `f` as `Work` that leaves its result in a slot; an error result makes the unit fail
/// (`StoreError::Aborted`), so the store rolls it back.
fn unit<T, E, F>(f: F) -> (Work, Slot<T, E>)
where
    T: Send + 'static,
    E: Send + 'static,
    F: for<'t> FnOnce(&'t mut dyn Tx) -> BoxFuture<'t, Result<T, E>> + Send + 'static,
{
    let slot: Slot<T, E> = Default::default();
    let out = slot.clone();
    let work: Work = Box::new(move |tx| {
        Box::pin(async move {
            let result = f(tx).await;
            let failed = result.is_err();
            if let Ok(mut out) = out.lock() {
                *out = Some(result);
            }
            if failed { Err(StoreError::Aborted) } else { Ok(()) }
        })
    });
    (work, slot)
}

fn finish<T, E: From<StoreError>>(ran: StoreResult<()>, slot: Slot<T, E>) -> Result<T, E> {
    let result = slot.lock().ok().and_then(|mut s| s.take());
    match (ran, result) {
        (Ok(()), Some(result)) | (Err(StoreError::Aborted), Some(result @ Err(_))) => result,
        (Ok(()), None) | (Err(StoreError::Aborted), _) => Err(StoreError::Other("a unit of work ended without a result".into()).into()),
        (Err(e), _) => Err(e.into()),
    }
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
    /// A security event was recorded in the audit log.
    fn audit_event(&self, _kind: &str) {}
    /// A verification to a number of `region` (ISO 3166 or `unknown`) was `started` or
    /// `approved`: their ratio per country is the conversion rate SMS pumping drives down.
    fn conversion(&self, _region: &str, _event: &str) {}
}

/// An observer that ignores everything (CLI commands, unit tests).
pub struct NoObserver;

impl Observer for NoObserver {
    fn verification_entered(&self, _: &str, _: Channel, _: Status) {}
    fn sms_attempt(&self, _: &str, _: &str) {}
    fn sms_receipt(&self, _: &str, _: &str, _: DeliveryStatus) {}
}
