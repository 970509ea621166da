//! The traits the core needs from the outside world: storage, SMS delivery and an observer for
//! metrics.
//!
//! **Storage** is reached through units of work only. A unit is a plain closure over the
//! statements it may run, handed to [`write`] or [`read`]:
//!
//! - A **write unit** gets `&mut dyn Tx` and runs as one transaction: everything it wrote commits
//!   together, or, if it returns an error, nothing does. Inside it, a read of a row the unit may
//!   change (`verification`, `pending_verification`, `flow`, `invite`…) locks that row until
//!   commit, so two units on one row take turns.
//! - A **read unit** gets `&mut dyn ReadTx`: only reads, without locks or a transaction (each
//!   statement sees what was committed when it ran). A write in a read unit does not compile.
//! - Statements are grouped by aggregate: a `…Reads` trait and, where the aggregate changes, a
//!   `…Writes` trait. `ReadTx` is every `…Reads`; `Tx` is `ReadTx` and every `…Writes`. A helper
//!   that only reads takes `&mut dyn ReadTx`, so read and write units can both call it (a
//!   `&mut dyn Tx` coerces).
//! - Statements are synchronous, so **a unit cannot await anything**: no provider call, timer or
//!   other task while a transaction is open (the compiler refuses). Do such work before or after
//!   the unit. A unit runs off the async runtime (SQLite's writer or reader threads,
//!   PostgreSQL's blocking pool), so it should be short.
use crate::model::account_event::AccountEvent;
use crate::model::api_key::ApiKey;
use crate::model::audit::{AuditEvent, AuditQuery};
use crate::model::budget::Charge;
use crate::model::flow::Flow;
use crate::model::invite::Invite;
use crate::model::jwt_key::JwtKey;
use crate::model::message::{DeliveryStatus, InboundMessage, Message};
use crate::model::oidc::{AuthCode, Consent, OidcClient};
use crate::model::phone::PhoneNumber;
use crate::model::recipient::Recipient;
use crate::model::service::Service;
use crate::model::session::Session;
use crate::model::silent::SilentCheck;
use crate::model::user::User;
use crate::model::verification::{Channel, Status, Verification};
use crate::model::vonage::{TemplateFragment, VonageApp, VonageCallback, VonageTemplate};
use crate::spans::{UnitTrace, unit_name};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::field::Empty;

pub use crate::error::{StoreError, StoreResult};

/// A unit of work that may write: it runs inside one transaction (see the module docs).
pub type Work = Box<dyn FnOnce(&mut dyn Tx) -> StoreResult<()> + Send>;

/// A unit of work that only reads.
pub type ReadWork = Box<dyn FnOnce(&mut dyn ReadTx) -> StoreResult<()> + Send>;

/// The statements a read unit can run: every aggregate's reads, and nothing that changes a row.
pub trait ReadTx:
    VerificationReads
    + ServiceReads
    + ApiKeyReads
    + MessageReads
    + OptOutReads
    + BudgetReads
    + AuditReads
    + AccountReads
    + SilentReads
    + OidcReads
    + VonageReads
{
}
impl<T> ReadTx for T where
    T: VerificationReads
        + ServiceReads
        + ApiKeyReads
        + MessageReads
        + OptOutReads
        + BudgetReads
        + AuditReads
        + AccountReads
        + SilentReads
        + OidcReads
        + VonageReads
{
}

/// The statements a write unit can run: the reads, and every aggregate's writes. Inside a write,
/// a read of a row the unit may change (`verification`, `pending_verification`, `flow`…) locks it
/// until commit, so a unit never races another unit on the same row.
pub trait Tx:
    ReadTx
    + VerificationWrites
    + ServiceWrites
    + ApiKeyWrites
    + SecretWrites
    + MessageWrites
    + OptOutWrites
    + InboundWrites
    + BudgetWrites
    + AuditWrites
    + AccountWrites
    + SilentWrites
    + OnceWrites
    + OidcWrites
    + VonageWrites
{
}
impl<T> Tx for T where
    T: ReadTx
        + VerificationWrites
        + ServiceWrites
        + ApiKeyWrites
        + SecretWrites
        + MessageWrites
        + OptOutWrites
        + InboundWrites
        + BudgetWrites
        + AuditWrites
        + AccountWrites
        + SilentWrites
        + OnceWrites
        + OidcWrites
        + VonageWrites
{
}

pub trait VerificationReads {
    fn verification(&mut self, id: &str) -> StoreResult<Option<Verification>>;
    fn pending_verification(&mut self, service_id: &str, to: &Recipient) -> StoreResult<Option<Verification>>;
    /// A verification's checks, oldest first.
    fn checks(&mut self, verification_id: &str) -> StoreResult<Vec<crate::model::verification::CheckRecord>>;
    /// The newest verification of the number that wrong codes locked and whose code has not
    /// expired yet at `now`.
    fn locked_verification(&mut self, service_id: &str, to: &PhoneNumber, now: DateTime<Utc>) -> StoreResult<Option<Verification>>;
    /// The newest `silent` verification of a number in a service, whatever its status (a Twilio
    /// SNA check names the number only).
    fn latest_silent_verification(&mut self, service_id: &str, to: &PhoneNumber) -> StoreResult<Option<Verification>>;
    /// Number, creation and approval of up to `limit` verifications created since `since`.
    #[allow(clippy::type_complexity)] // (number, created, approved)
    fn recent_verifications(
        &mut self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<(Recipient, DateTime<Utc>, Option<DateTime<Utc>>)>>;
    /// Up to `limit` pending verifications whose next step is due at `now`, by id.
    fn due_steps(&mut self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<String>>;
}

pub trait VerificationWrites {
    /// Inserts a new pending verification; false (and nothing written) when one is already
    /// pending for the same service and number.
    fn insert_verification(&mut self, v: &Verification) -> StoreResult<bool>;
    /// Records a counted check of a verification.
    fn insert_check(&mut self, verification_id: &str, c: &crate::model::verification::CheckRecord) -> StoreResult<()>;
    /// Writes `v` over the stored row of the same id and version, bumping the version.
    /// `Conflict` when the stored version differs (a unit that read without its lock).
    fn update_verification(&mut self, v: &Verification) -> StoreResult<()>;
    /// Marks up to `limit` pending verifications whose deadline has passed as expired; returns
    /// the service and channel of each, for metrics.
    fn expire_due_verifications(&mut self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<(String, Channel)>>;
    /// Retention: deletes up to `limit` ended verifications last changed before `cutoff`, with
    /// their messages, and inbound messages and held receipts older than `cutoff`.
    /// Returns how many verifications went.
    fn purge_before(&mut self, cutoff: DateTime<Utc>, limit: u32) -> StoreResult<u64>;
}

/// Things that may be used once (a redirect step's incoming token), by digest, kept until they
/// expire.
pub trait OnceWrites {
    /// Records `digest` as used; false when it was used already.
    fn use_once(&mut self, digest: &[u8], expires_at: DateTime<Utc>) -> StoreResult<bool>;
}

/// Silent checks (`silent.rs`). Inside a write, every read locks the row until commit.
pub trait SilentReads {
    fn silent_check_of(&mut self, verification_id: &str) -> StoreResult<Option<SilentCheck>>;
    fn silent_check_by_token(&mut self, token_digest: &[u8]) -> StoreResult<Option<SilentCheck>>;
    fn silent_check_by_ref(&mut self, provider: &str, provider_ref: &str) -> StoreResult<Option<SilentCheck>>;
    /// Live checks whose device step is overdue (skipping rows another unit holds).
    fn due_silent_checks(&mut self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<SilentCheck>>;
}

pub trait SilentWrites {
    fn insert_silent_check(&mut self, c: &SilentCheck) -> StoreResult<()>;
    fn update_silent_check(&mut self, c: &SilentCheck) -> StoreResult<()>;
}

/// Services. A deleted one is kept (its verifications and messages name it) but no read finds it,
/// and its name is free again.
pub trait ServiceReads {
    /// A service by id or by name (the id wins).
    fn service(&mut self, id_or_name: &str) -> StoreResult<Option<Service>>;
    fn services(&mut self) -> StoreResult<Vec<Service>>;
}

pub trait ServiceWrites {
    /// False (and nothing written) when the name is taken.
    fn insert_service(&mut self, s: &Service) -> StoreResult<bool>;
    /// A service by id, locked until the unit ends (an update or a delete takes turns with every
    /// other unit that holds or locks it).
    fn lock_service(&mut self, id: &str) -> StoreResult<Option<Service>>;
    /// Whether service `id` exists, holding it so until the unit ends: a delete waits for this
    /// unit, and this unit, waiting for a delete, finds the service gone. Updates do not wait.
    fn hold_service(&mut self, id: &str) -> StoreResult<bool>;
    /// Writes `s`'s settings, name and friendly name over the service of its id; false when there
    /// is none. `Conflict` when another service has its name.
    fn update_service(&mut self, s: &Service) -> StoreResult<bool>;
    /// Deletes service `id` and cancels its pending verifications (those whose deadline has not
    /// passed; the sweep expires the others), at `now`. Returns the channels of the verifications
    /// canceled, or `None` when there is no such service.
    fn delete_service(&mut self, id: &str, now: DateTime<Utc>) -> StoreResult<Option<Vec<Channel>>>;
}

pub trait ApiKeyReads {
    fn api_key(&mut self, id: &str) -> StoreResult<Option<ApiKey>>;
    fn api_key_by_hash(&mut self, secret_hash: &[u8]) -> StoreResult<Option<ApiKey>>;
    fn api_keys(&mut self) -> StoreResult<Vec<ApiKey>>;
}

pub trait ApiKeyWrites {
    fn insert_api_key(&mut self, key: &ApiKey) -> StoreResult<()>;
    /// False when no active key has this id.
    fn revoke_api_key(&mut self, id: &str, now: DateTime<Utc>) -> StoreResult<bool>;
}

/// Users, their login flows, sessions, refresh tokens and the access-token signing keys.
pub trait AccountReads {
    fn user(&mut self, id: &str) -> StoreResult<Option<User>>;
    /// By lower-cased username or e-mail address.
    fn user_by_login(&mut self, login_lc: &str) -> StoreResult<Option<User>>;
    fn user_by_phone(&mut self, phone: &PhoneNumber) -> StoreResult<Option<User>>;
    /// The account whose e-mail address is `email_lc` (lower-cased), verified or not.
    fn user_by_email(&mut self, email_lc: &str) -> StoreResult<Option<User>>;
    fn username_taken(&mut self, username_lc: &str) -> StoreResult<bool>;
    /// Every user, by username.
    fn users(&mut self) -> StoreResult<Vec<User>>;
    fn admin_count(&mut self) -> StoreResult<i64>;
    fn email_taken(&mut self, email_lc: &str) -> StoreResult<bool>;
    /// Locks the flow until the unit ends.
    fn flow(&mut self, id: &str) -> StoreResult<Option<Flow>>;
    /// The user's newest unused, unexpired e-mail change.
    fn email_flow(&mut self, user_id: &str, now: DateTime<Utc>) -> StoreResult<Option<Flow>>;
    /// The newest unused, unexpired flow an SMS reply started for `phone`, locked.
    fn reply_flow(&mut self, phone: &PhoneNumber, now: DateTime<Utc>) -> StoreResult<Option<Flow>>;
    /// The group's invite code generation and when it began; `None` before the first rotation.
    fn invite_code(&mut self) -> StoreResult<Option<(i64, DateTime<Utc>)>>;
    fn session(&mut self, id: &str) -> StoreResult<Option<Session>>;
    fn session_by_secret(&mut self, secret_hash: &[u8]) -> StoreResult<Option<Session>>;
    /// A user's sessions, newest first.
    fn sessions_of(&mut self, user_id: &str) -> StoreResult<Vec<Session>>;
    /// The session a refresh token belongs to and when it was spent, locked until the unit ends.
    fn refresh_token(&mut self, token_hash: &[u8]) -> StoreResult<Option<(String, Option<DateTime<Utc>>)>>;
    /// Every signing key, newest first.
    fn jwt_keys(&mut self) -> StoreResult<Vec<JwtKey>>;
    /// Locks the invite until the unit ends.
    fn invite(&mut self, id: &str) -> StoreResult<Option<Invite>>;
    /// Newest first.
    fn invites(&mut self) -> StoreResult<Vec<Invite>>;
    /// The newest invite of `phone` that is neither used, revoked nor expired at `now`.
    fn live_invite(&mut self, phone: &PhoneNumber, now: DateTime<Utc>) -> StoreResult<Option<Invite>>;
}

pub trait AccountWrites {
    /// `Conflict` when the username, e-mail or phone number is taken.
    fn insert_user(&mut self, u: &User) -> StoreResult<()>;
    fn set_roles(&mut self, user_id: &str, roles: &[String]) -> StoreResult<()>;
    fn set_last_login(&mut self, user_id: &str, at: DateTime<Utc>) -> StoreResult<()>;
    /// `Conflict` when another account has the number.
    fn set_user_phone(&mut self, user_id: &str, phone: &PhoneNumber) -> StoreResult<()>;
    /// Sets the user's e-mail address (`None`: none) and whether it is verified; `Conflict`
    /// when another account has the address.
    fn set_user_email(&mut self, user_id: &str, email: Option<&str>, verified: bool) -> StoreResult<()>;
    /// Removes the user's e-mail address if it still is `email_lc` and not verified; false when
    /// it is verified or another.
    fn release_unverified_email(&mut self, user_id: &str, email_lc: &str) -> StoreResult<bool>;
    /// Replaces the user's password hash if it still is `expected` (`None`: none); false when
    /// it is not (another change came first) or there is no such user.
    fn set_password_hash(&mut self, user_id: &str, hash: &str, expected: Option<&str>) -> StoreResult<bool>;
    /// Deletes the user with every session and refresh token; false when there was none.
    fn delete_user(&mut self, user_id: &str) -> StoreResult<bool>;
    fn insert_flow(&mut self, f: &Flow) -> StoreResult<()>;
    /// Writes attempts, last send, use, verification and expiry.
    fn update_flow(&mut self, f: &Flow) -> StoreResult<()>;
    /// Begins a generation; `Conflict` when another rotation took that number first.
    fn insert_invite_code(&mut self, generation: i64, at: DateTime<Utc>, by: &str) -> StoreResult<()>;
    fn insert_session(&mut self, s: &Session) -> StoreResult<()>;
    fn touch_session(&mut self, id: &str, at: DateTime<Utc>) -> StoreResult<()>;
    fn set_session_secret(&mut self, id: &str, secret_hash: &[u8], at: DateTime<Utc>) -> StoreResult<()>;
    /// Deletes a session of the user (and its refresh tokens); false when it had none by that id.
    fn delete_session(&mut self, user_id: &str, id: &str) -> StoreResult<bool>;
    /// Deletes all of a user's sessions; returns how many.
    fn delete_sessions_of(&mut self, user_id: &str) -> StoreResult<u64>;
    /// Deletes every session of the user but `keep` (and their refresh tokens); returns how many.
    fn delete_other_sessions(&mut self, user_id: &str, keep: &str) -> StoreResult<u64>;
    fn insert_refresh_token(&mut self, token_hash: &[u8], session_id: &str, at: DateTime<Utc>) -> StoreResult<()>;
    fn spend_refresh_token(&mut self, token_hash: &[u8], at: DateTime<Utc>) -> StoreResult<()>;
    fn insert_jwt_key(&mut self, k: &JwtKey) -> StoreResult<()>;
    /// Deletes what can no longer be used: flows that expired before `before`, sessions (with
    /// their refresh tokens) past their end or unused since `idle_since`, and events delivered
    /// (or given up) before `before`. Returns how many rows went.
    fn purge_accounts(&mut self, now: DateTime<Utc>, before: DateTime<Utc>, idle_since: DateTime<Utc>) -> StoreResult<u64>;
    fn insert_invite(&mut self, i: &Invite) -> StoreResult<()>;
    /// Marks an invite used if it still was live; false when another sign-up used it first (or
    /// it was revoked).
    fn use_invite(&mut self, id: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Writes last send and revocation.
    fn update_invite(&mut self, i: &Invite) -> StoreResult<()>;
    /// Queues an event for the app's webhook, due at once.
    fn insert_account_event(&mut self, e: &AccountEvent, now: DateTime<Utc>) -> StoreResult<()>;
    /// Claims up to `limit` undelivered events due at `now` (their lease moves them to
    /// `lease_until`); concurrent claims never get the same event.
    fn claim_account_events(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        token: &str,
        limit: u32,
    ) -> StoreResult<Vec<AccountEvent>>;
    /// Records a delivery attempt by the claim holder: delivered (or given up) with `done_at`,
    /// else due again at `due_at`.
    fn finish_account_event(
        &mut self,
        id: &str,
        token: &str,
        attempts: u32,
        due_at: DateTime<Utc>,
        done_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;
}

/// OpenID Connect clients made by admins, authorization codes and consents.
pub trait OidcReads {
    fn oidc_client(&mut self, client_id: &str) -> StoreResult<Option<OidcClient>>;
    /// By client id.
    fn oidc_clients(&mut self) -> StoreResult<Vec<OidcClient>>;
    fn consent(&mut self, user_id: &str, client_id: &str) -> StoreResult<Option<Consent>>;
    /// A user's consents, oldest first.
    fn consents_of(&mut self, user_id: &str) -> StoreResult<Vec<Consent>>;
}

pub trait OidcWrites {
    /// `Conflict` when the client id is taken.
    fn insert_oidc_client(&mut self, c: &OidcClient) -> StoreResult<()>;
    /// False when there is no such client.
    fn set_oidc_client_secret(&mut self, client_id: &str, secret_hash: &[u8]) -> StoreResult<bool>;
    /// Deletes the client with its codes, consents and grants; false when there was none.
    fn delete_oidc_client(&mut self, client_id: &str) -> StoreResult<bool>;
    fn insert_auth_code(&mut self, c: &AuthCode) -> StoreResult<()>;
    /// The code `hash` names, locked until the unit ends.
    fn auth_code(&mut self, hash: &[u8]) -> StoreResult<Option<AuthCode>>;
    /// Marks the code used by the exchange that opened `session_id`.
    fn use_auth_code(&mut self, hash: &[u8], at: DateTime<Utc>, session_id: &str) -> StoreResult<()>;
    /// Inserts or replaces the user's consent for the client.
    fn put_consent(&mut self, c: &Consent) -> StoreResult<()>;
    /// Deletes the consent and every grant (session, refresh tokens) of the user for the
    /// client; false when there was neither.
    fn revoke_client_access(&mut self, user_id: &str, client_id: &str) -> StoreResult<bool>;
}

/// The Vonage Verify v2 drop-in's applications, status callbacks and templates.
pub trait VonageReads {
    fn vonage_app(&mut self, id: &str) -> StoreResult<Option<VonageApp>>;
    fn vonage_app_of_key(&mut self, key_id: &str) -> StoreResult<Option<VonageApp>>;
    /// The summary callback owed for a verification, not yet delivered.
    fn pending_summary(&mut self, verification_id: &str) -> StoreResult<Option<VonageCallback>>;
    /// A service's templates, oldest first.
    fn vonage_templates(&mut self, service_id: &str) -> StoreResult<Vec<VonageTemplate>>;
    fn vonage_template(&mut self, service_id: &str, id: &str) -> StoreResult<Option<VonageTemplate>>;
    /// A template's fragments, oldest first.
    fn template_fragments(&mut self, template_id: &str) -> StoreResult<Vec<TemplateFragment>>;
}

pub trait VonageWrites {
    /// Inserts the key's application, or replaces its key, webhook and secret (keeping its id).
    fn put_vonage_app(&mut self, app: &VonageApp) -> StoreResult<()>;
    /// Queues a callback, due at `due_at`.
    fn insert_vonage_callback(&mut self, c: &VonageCallback, due_at: DateTime<Utc>) -> StoreResult<()>;
    /// Changes an undelivered callback's payload and makes it due at `due_at`.
    fn update_vonage_callback(&mut self, id: &str, payload: &str, due_at: DateTime<Utc>) -> StoreResult<()>;
    /// Claims up to `limit` undelivered callbacks that can go at `now` (an event when due, a
    /// summary once its verification has ended), leasing them until `lease_until`.
    fn claim_vonage_callbacks(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        token: &str,
        limit: u32,
    ) -> StoreResult<Vec<VonageCallback>>;
    /// Records a delivery attempt by the claim holder (as `finish_account_event`).
    fn finish_vonage_callback(
        &mut self,
        id: &str,
        token: &str,
        attempts: u32,
        due_at: DateTime<Utc>,
        done_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;
    /// False when the service already has a template of that name.
    fn insert_vonage_template(&mut self, t: &VonageTemplate) -> StoreResult<bool>;
    /// Name and default flag; false when the name is taken or the template is gone.
    fn update_vonage_template(&mut self, t: &VonageTemplate) -> StoreResult<bool>;
    /// Leaves no other default template in the service.
    fn clear_default_template(&mut self, service_id: &str, except: &str) -> StoreResult<()>;
    fn delete_vonage_template(&mut self, service_id: &str, id: &str) -> StoreResult<bool>;
    /// False when the template already has a fragment for that channel and locale.
    fn insert_template_fragment(&mut self, f: &TemplateFragment) -> StoreResult<bool>;
    fn update_template_fragment(&mut self, f: &TemplateFragment) -> StoreResult<bool>;
    fn delete_template_fragment(&mut self, template_id: &str, id: &str) -> StoreResult<bool>;
}

pub trait AuditReads {
    /// Newest first, optionally of one kind and since a time.
    /// The events `q` selects, newest first, at most `q.limit`.
    fn audit_events(&mut self, q: &AuditQuery) -> StoreResult<Vec<AuditEvent>>;
}

pub trait AuditWrites {
    fn insert_audit_event(&mut self, e: &AuditEvent) -> StoreResult<()>;
}

/// Budget counters (see `budget`), one per budget, subject, rate and window.
pub trait BudgetReads {
    /// The sum of a shared charge's counter in a window (no lock).
    fn budget_used(&mut self, charge: &Charge, window_start: i64) -> StoreResult<i64>;
    /// Two shared counters' sums in two windows, in one read: `[a, b][window]`.
    fn budgets_used(&mut self, a: &Charge, b: &Charge, windows: [i64; 2]) -> StoreResult<[[i64; 2]; 2]>;
    /// Whether an exact charge's counter is still below its limit, locking it until the unit
    /// ends (so a take on it cannot slip in between).
    fn budget_left(&mut self, charge: &Charge, window_start: i64) -> StoreResult<bool>;
}

pub trait BudgetWrites {
    /// Adds one to the counter of `charge`'s window starting at `window_start` (a Unix time) if
    /// it stays within the rate's limit; false, taking nothing, when it would not. An exact
    /// charge locks its counter until the unit ends; a shared one adds to one of
    /// `budget::SHARDS` shards (`shard`) after reading their sum.
    fn take_budget(&mut self, charge: &Charge, window_start: i64, shard: u32, expires_at: DateTime<Utc>) -> StoreResult<bool>;
}

pub trait SecretWrites {
    /// The secret stored under `name`, storing `candidate` first if there is none, so every
    /// instance on one database ends up with the same secret.
    fn secret_or_insert(&mut self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>>;
    /// Every stored secret and key record, by name (a handful of rows).
    fn secrets(&mut self) -> StoreResult<Vec<(String, Vec<u8>)>>;
    /// Stores `value` under `name` unless the name is taken; true when it was stored.
    fn insert_secret(&mut self, name: &str, value: &[u8]) -> StoreResult<bool>;
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

pub trait MessageReads {
    fn messages_for_verification(&mut self, verification_id: &str) -> StoreResult<Vec<Message>>;
    /// The messages the dev outbox took (their provider is `outbox::PROVIDER`) and those test
    /// numbers were given (`test_numbers::PROVIDER`), optionally only those to one number, newest
    /// first.
    fn outbox(&mut self, to: Option<&str>, limit: u32) -> StoreResult<Vec<Message>>;
    /// Messages created since `since`, counted by provider and status.
    fn message_counts(&mut self, since: DateTime<Utc>) -> StoreResult<Vec<(Option<String>, String, i64)>>;
}

pub trait MessageWrites {
    /// Queues a message; with a lease it is written already claimed by the caller, who sends it
    /// at once (and anyone else may take it over only after `lease.until`).
    fn insert_message(&mut self, m: &Message, lease: Option<&Lease>) -> StoreResult<()>;
    /// Claims up to `limit` messages that were queued at or before `queued_before` (newer ones
    /// are still being sent by the request that queued them) or whose lease ran out. Several
    /// instances claiming at once never get the same message.
    fn claim_due_messages(
        &mut self,
        now: DateTime<Utc>,
        queued_before: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        token: &str,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
    /// Records the result of a claimed send; false when the claim was lost (lease expired and
    /// taken over), in which case nothing is written.
    fn finish_message(&mut self, id: &str, token: &str, result: &MessageResult, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Applies a delivery receipt to the message a provider knows by `provider_message_id`,
    /// only where `status.can_follow` its current status. Returns the updated message.
    fn apply_receipt(
        &mut self,
        provider_message_id: &str,
        status: DeliveryStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Message>>;
    /// Keeps a receipt for a provider message id no message carries yet (the receipt overtook the
    /// send's result). Returns false, keeping nothing, when a message carries it by now.
    fn hold_receipt(
        &mut self,
        provider_message_id: &str,
        status: DeliveryStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Removes and returns the receipt held for a provider message id, if any.
    fn take_held_receipt(&mut self, provider_message_id: &str) -> StoreResult<Option<(DeliveryStatus, Option<String>)>>;
}

pub trait OptOutReads {
    fn is_opted_out(&mut self, number: &PhoneNumber) -> StoreResult<bool>;
}

pub trait OptOutWrites {
    fn set_opted_out(&mut self, number: &PhoneNumber, opted_out: bool, now: DateTime<Utc>) -> StoreResult<()>;
}

pub trait InboundWrites {
    /// Stores an inbound message; false (and nothing written) if this provider message id was
    /// seen before.
    fn insert_inbound(&mut self, m: &InboundMessage) -> StoreResult<bool>;
}

/// A database: units of work, each run as one transaction.
#[async_trait]
pub trait Store: Send + Sync {
    /// Runs `work` in one transaction: everything it wrote is committed together, or, if it
    /// returns an error, nothing is. Returns once the commit is durable.
    async fn write(&self, work: Work) -> StoreResult<()>;
    /// Runs `work` on a read-only connection.
    async fn read(&self, work: ReadWork) -> StoreResult<()>;
    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> StoreResult<()>;
    /// Deletes the secret `name` and rewrites the database's files so its bytes are gone from
    /// them (freed pages, the write-ahead log), not only unlinked from its table.
    async fn erase_secret(&self, name: &str) -> StoreResult<()>;
}

/// Runs a unit of work that yields a value, as one transaction (`Store::write`). If it returns an
/// error, everything it wrote is rolled back and the error is returned.
///
/// ```
/// use phonegate_core::ports::{self, Store, StoreError};
/// async fn opt_out(store: &dyn Store, n: phonegate_core::PhoneNumber) -> Result<(), StoreError> {
///     ports::write(store, move |tx| tx.set_opted_out(&n, true, chrono::Utc::now())).await
/// }
/// ```
///
/// A unit cannot await anything; this does not compile:
///
/// ```compile_fail
/// use phonegate_core::ports::{self, Store, StoreError};
/// async fn opt_out(store: &dyn Store, n: phonegate_core::PhoneNumber) -> Result<(), StoreError> {
///     ports::write(store, move |tx| {
///         tokio::task::yield_now().await;
///         tx.set_opted_out(&n, true, chrono::Utc::now())
///     })
///     .await
/// }
/// ```
pub async fn write<T, E, F>(store: &dyn Store, f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
{
    let slot: Slot<T, E> = Default::default();
    let out = slot.clone();
    let trace = UnitTrace::new(tracing::debug_span!(
        "store.write",
        unit = unit_name::<F>(),
        wait_us = Empty,
        run_us = Empty,
        commit_us = Empty,
        otel.status_code = Empty
    ));
    let running = trace.clock();
    let ran = store.write(Box::new(move |tx| UnitTrace::running(running, || keep(&out, f(tx))))).await;
    trace.finish(matches!(ran, Err(ref e) if !matches!(e, StoreError::Aborted)));
    finish(ran, slot)
}

/// Runs a read unit that yields a value (`Store::read`). It cannot write; this does not compile:
///
/// ```compile_fail
/// use phonegate_core::ports::{self, Store, StoreError};
/// async fn opt_out(store: &dyn Store, n: phonegate_core::PhoneNumber) -> Result<(), StoreError> {
///     ports::read(store, move |tx| tx.set_opted_out(&n, true, chrono::Utc::now())).await
/// }
/// ```
pub async fn read<T, E, F>(store: &dyn Store, f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce(&mut dyn ReadTx) -> Result<T, E> + Send + 'static,
{
    let slot: Slot<T, E> = Default::default();
    let out = slot.clone();
    let trace = UnitTrace::new(tracing::debug_span!(
        "store.read",
        unit = unit_name::<F>(),
        wait_us = Empty,
        run_us = Empty,
        commit_us = Empty,
        otel.status_code = Empty
    ));
    let running = trace.clock();
    let ran = store.read(Box::new(move |tx| UnitTrace::running(running, || keep(&out, f(tx))))).await;
    trace.finish(matches!(ran, Err(ref e) if !matches!(e, StoreError::Aborted)));
    finish(ran, slot)
}

type Slot<T, E> = std::sync::Arc<std::sync::Mutex<Option<Result<T, E>>>>;

/// Leaves a unit's result in its slot; an error result makes the unit fail
/// (`StoreError::Aborted`), so the store rolls it back.
fn keep<T, E>(slot: &Slot<T, E>, result: Result<T, E>) -> StoreResult<()> {
    let failed = result.is_err();
    if let Ok(mut out) = slot.lock() {
        *out = Some(result);
    }
    if failed { Err(StoreError::Aborted) } else { Ok(()) }
}

fn finish<T, E: From<StoreError>>(ran: StoreResult<()>, slot: Slot<T, E>) -> Result<T, E> {
    let result = slot.lock().ok().and_then(|mut s| s.take());
    match (ran, result) {
        (Ok(()), Some(result)) | (Err(StoreError::Aborted), Some(result @ Err(_))) => result,
        (Ok(()), None) | (Err(StoreError::Aborted), _) => Err(StoreError::Other("a unit of work ended without a result".into()).into()),
        (Err(e), _) => Err(e.into()),
    }
}

/// A message to deliver by its channel: a text, a call's spoken text, a WhatsApp template or an
/// e-mail. `Debug` hides the body and the code.
#[derive(Clone)]
pub struct Outgoing {
    /// Our message id (`SM…`), for providers that carry a reference.
    pub message_id: String,
    pub channel: Channel,
    /// A number, or an address for `email`.
    pub to: Recipient,
    /// The text (an SMS, a WhatsApp template's preview, an e-mail's text part) or, for a call,
    /// what is spoken.
    pub body: String,
    /// The verification's language (a template's language); for a call, the language its text
    /// is in (`locales::spoken_locale`).
    pub locale: String,
    /// The code alone, for a template that takes it as a parameter (WhatsApp) or an e-mail's
    /// HTML part; none for a text that is not a code, or by SMS.
    pub code: Option<String>,
    /// An e-mail's subject and HTML part (`model::email`).
    pub email: Option<crate::model::email::EmailParts>,
    /// A call waits for a key press before it speaks the code (the service's setting).
    pub wait_for_key: bool,
    /// Keys a call dials once answered, before it speaks (the verification's `send_digits`).
    pub send_digits: Option<String>,
    /// Name of the service sending it, for per-service routing.
    pub service: Option<String>,
    /// Sender id or number; set by routing, else the provider's default.
    pub from: Option<String>,
    pub verification_id: Option<String>,
}

impl Outgoing {
    /// A text by SMS that is not a verification's (a test message, an invitation).
    pub fn text(message_id: String, to: Recipient, body: String) -> Self {
        Self {
            message_id,
            channel: Channel::Sms,
            to,
            body,
            locale: "en".into(),
            code: None,
            email: None,
            wait_for_key: false,
            send_digits: None,
            service: None,
            from: None,
            verification_id: None,
        }
    }
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("message_id", &self.message_id)
            .field("channel", &self.channel)
            .field("to", &self.to.masked())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
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
pub trait MessageSender: Send + Sync {
    async fn send(&self, sms: &Outgoing) -> Result<Accepted, SendError>;
    /// The channels this sender can deliver (a provider entry may serve fewer).
    fn channels(&self) -> &[Channel] {
        &[Channel::Sms]
    }
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
    /// A verification of a test number (fixed code, nothing sent) was `started`, `resent`,
    /// `approved` or ended otherwise (its status).
    fn test_number(&self, _service_id: &str, _event: &str) {}
}

/// An observer that ignores everything (CLI commands, unit tests).
pub struct NoObserver;

impl Observer for NoObserver {
    fn verification_entered(&self, _: &str, _: Channel, _: Status) {}
    fn sms_attempt(&self, _: &str, _: &str) {}
    fn sms_receipt(&self, _: &str, _: &str, _: DeliveryStatus) {}
}

/// Writes a verification the unit holds locked; the in-memory record carries the new version.
pub(crate) fn save_verification(tx: &mut dyn Tx, v: &mut Verification) -> Result<(), StoreError> {
    tx.update_verification(v)?;
    v.version += 1;
    Ok(())
}
