//! The audit log: security events (budget breaches and lockouts, refused destinations, forged
//! webhooks, keys and services created or revoked), who caused them and when. Readable by admin
//! keys only. Events that an attacker can cause at will are recorded once per kind and subject
//! per minute on each instance, so the log cannot be turned into a write flood.
use crate::caller::Caller;
use crate::context::Context;
use crate::error::VerifyError;
pub use crate::model::audit::{AuditEvent, AuditPosition, AuditQuery};
use crate::model::ids::new_id;
use crate::ports;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;

/// What an audit event records. Stored, returned by the audit API and filtered by `?kind=` as
/// its name (`as_str`), which never changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    // Attacks and refusals (recorded once per kind and subject per minute).
    BudgetExceeded,
    ChecksLocked,
    PrefixThrottled,
    DestinationRefused,
    WebhookForged,
    SilentCallbackRefused,
    IntegrationTokenRefused,
    // Keys, services and signing keys.
    KeyCreated,
    KeyRevoked,
    VonageApplicationSet,
    ServiceCreated,
    ServiceUpdated,
    ServiceDeleted,
    JwtKeyRotated,
    // Silent checks and signed redirects.
    SilentApproved,
    SilentFellBack,
    SilentFailed,
    IntegrationVerified,
    IntegrationDenied,
    // Test numbers: a verification with a fixed code, nothing sent.
    TestNumberUsed,
    // Accounts.
    Signup,
    Login,
    LoginFailed,
    Logout,
    PhoneChanged,
    EmailChanged,
    EmailInUse,
    EmailReleased,
    PasswordChanged,
    PasswordChangeFailed,
    SessionRevoked,
    RefreshReuse,
    AccountDeleted,
    AdminCreated,
    AdminPromoted,
    AdminDemoted,
    MemberRemoved,
    InviteCreated,
    InviteRevoked,
    InviteReplied,
    InviteCodeRotated,
    // OpenID Connect.
    OidcAuthorized,
    OidcConsented,
    OidcDenied,
    OidcCodeReuse,
    OidcRevoked,
    OidcClientCreated,
    OidcClientSecretRotated,
    OidcClientDeleted,
}

impl AuditKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::BudgetExceeded => "budget_exceeded",
            Self::ChecksLocked => "checks_locked",
            Self::PrefixThrottled => "prefix_throttled",
            Self::DestinationRefused => "destination_refused",
            Self::WebhookForged => "webhook_forged",
            Self::SilentCallbackRefused => "silent_callback_refused",
            Self::IntegrationTokenRefused => "integration_token_refused",
            Self::KeyCreated => "key_created",
            Self::KeyRevoked => "key_revoked",
            Self::VonageApplicationSet => "vonage_application_set",
            Self::ServiceCreated => "service_created",
            Self::ServiceUpdated => "service_updated",
            Self::ServiceDeleted => "service_deleted",
            Self::JwtKeyRotated => "jwt_key_rotated",
            Self::SilentApproved => "silent_approved",
            Self::SilentFellBack => "silent_fell_back",
            Self::SilentFailed => "silent_failed",
            Self::IntegrationVerified => "integration_verified",
            Self::IntegrationDenied => "integration_denied",
            Self::TestNumberUsed => "test_number_used",
            Self::Signup => "signup",
            Self::Login => "login",
            Self::LoginFailed => "login_failed",
            Self::Logout => "logout",
            Self::PhoneChanged => "phone_changed",
            Self::EmailChanged => "email_changed",
            Self::EmailInUse => "email_in_use",
            Self::EmailReleased => "email_released",
            Self::PasswordChanged => "password_changed",
            Self::PasswordChangeFailed => "password_change_failed",
            Self::SessionRevoked => "session_revoked",
            Self::RefreshReuse => "refresh_reuse",
            Self::AccountDeleted => "account_deleted",
            Self::AdminCreated => "admin_created",
            Self::AdminPromoted => "admin_promoted",
            Self::AdminDemoted => "admin_demoted",
            Self::MemberRemoved => "member_removed",
            Self::InviteCreated => "invite_created",
            Self::InviteRevoked => "invite_revoked",
            Self::InviteReplied => "invite_replied",
            Self::InviteCodeRotated => "invite_code_rotated",
            Self::OidcAuthorized => "oidc_authorized",
            Self::OidcConsented => "oidc_consented",
            Self::OidcDenied => "oidc_denied",
            Self::OidcCodeReuse => "oidc_code_reuse",
            Self::OidcRevoked => "oidc_revoked",
            Self::OidcClientCreated => "oidc_client_created",
            Self::OidcClientSecretRotated => "oidc_client_secret_rotated",
            Self::OidcClientDeleted => "oidc_client_deleted",
        }
    }
}

/// When each (kind, subject) was last recorded by this instance.
#[derive(Default)]
struct Recent(Mutex<HashMap<(AuditKind, String), DateTime<Utc>>>);

impl Recent {
    /// True when the event should be written now (not seen in the last minute).
    fn admit(&self, kind: AuditKind, subject: &str, now: DateTime<Utc>) -> bool {
        let Ok(mut seen) = self.0.lock() else { return true };
        if seen.len() > 10_000 {
            seen.clear();
        }
        let key = (kind, subject.to_string());
        match seen.get(&key) {
            Some(at) if now - *at < chrono::Duration::minutes(1) => false,
            _ => {
                seen.insert(key, now);
                true
            }
        }
    }
}

/// The audit log's use cases: recording events and reading them.
#[derive(Clone)]
pub struct Audit {
    ctx: Context,
    recent: std::sync::Arc<Recent>,
}

impl Audit {
    pub fn new(ctx: Context) -> Self {
        Self { ctx, recent: Default::default() }
    }

    /// Records a security event an attacker can cause at will at most once per kind and subject
    /// per minute on this instance (best effort: a failure to record is logged, never returned).
    pub async fn record_once(&self, caller: &Caller, kind: AuditKind, subject: Option<&str>, detail: &str) {
        if self.recent.admit(kind, subject.unwrap_or_default(), self.ctx.clock.now()) {
            self.record(caller, kind, subject, detail).await;
        }
    }

    /// Records an event every time (for what a user does to their own account, which an
    /// attacker cannot repeat at will: sign-ups, logins, logouts).
    pub async fn record(&self, caller: &Caller, kind: AuditKind, subject: Option<&str>, detail: &str) {
        let event = self.event(caller, kind, subject, detail);
        let written = ports::write(self.ctx.store.as_ref(), move |tx| tx.insert_audit_event(&event)).await;
        if let Err(e) = written {
            tracing::warn!(error = %e, kind = kind.as_str(), "an audit event could not be recorded");
        }
    }

    /// The event `record_once` would record, for a unit of work to write with its own changes; `None`
    /// when the same event was recorded within the last minute.
    pub(crate) fn in_unit(&self, caller: &Caller, kind: AuditKind, subject: Option<&str>, detail: &str) -> Option<AuditEvent> {
        self.recent.admit(kind, subject.unwrap_or_default(), self.ctx.clock.now()).then(|| self.event(caller, kind, subject, detail))
    }

    fn event(&self, caller: &Caller, kind: AuditKind, subject: Option<&str>, detail: &str) -> AuditEvent {
        let now = self.ctx.clock.now();
        self.ctx.observer.audit_event(kind.as_str());
        tracing::info!(kind = kind.as_str(), request = %caller.request_id, "audit event");
        AuditEvent {
            id: new_id("AU"),
            at: now,
            kind: kind.as_str().into(),
            key_id: caller.key_id.clone(),
            actor: caller.actor(),
            ip: caller.end_user_ip.or(caller.ip).map(|ip| ip.to_string()),
            request_id: caller.request_id.clone(),
            subject: subject.map(str::to_string),
            detail: detail.into(),
        }
    }

    /// Passes `result` on, first recording what a refusal says about an attack, if anything.
    pub(crate) async fn audited<T>(&self, caller: &Caller, subject: &str, result: Result<T, VerifyError>) -> Result<T, VerifyError> {
        let Err(e) = &result else { return result };
        match e {
            VerifyError::OverBudget { budget: crate::budget::Budget::FailedChecksPerNumber, .. } => {
                self.record_once(caller, AuditKind::ChecksLocked, Some(subject), "too many wrong codes for this number").await;
            }
            VerifyError::OverBudget { budget: crate::budget::Budget::PrefixThrottled, .. } => {
                self.record_once(caller, AuditKind::PrefixThrottled, Some(subject), "many codes sent into this prefix, few used").await;
            }
            VerifyError::OverBudget { budget, .. } => {
                self.record_once(caller, AuditKind::BudgetExceeded, Some(subject), budget.as_str()).await
            }
            VerifyError::Phone(crate::model::phone::PhoneError::DestinationNotAllowed) => {
                self.record_once(caller, AuditKind::DestinationRefused, Some(subject), "denied range or country").await;
            }
            _ => {}
        }
        result
    }

    /// The audit log, newest first. Admins only.
    pub async fn events(&self, caller: &Caller, query: AuditQuery) -> Result<Vec<AuditEvent>, VerifyError> {
        caller.require_admin()?;
        let limit = query.limit.clamp(1, 1000);
        ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.audit_events(&AuditQuery { limit, ..query })?)).await
    }

    /// One page of the log, newest first: the newest `query.limit` events (1 to 1000) that
    /// match, or those just older than `query.before` or just newer than `query.after`, with the
    /// positions of the pages on either side. A page of newer events that reaches the newest is
    /// the first page. Admins only.
    pub async fn page(&self, caller: &Caller, query: AuditQuery) -> Result<AuditPage, VerifyError> {
        caller.require_admin()?;
        let size = query.limit.clamp(1, 1000) as usize;
        let read = |q: AuditQuery| ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.audit_events(&q)?));
        // One more than a page says whether there are more beyond it.
        let mut wider = AuditQuery { limit: size as u32 + 1, ..query.clone() };
        if query.after.is_some() {
            let mut events = read(wider.clone()).await?;
            if events.len() > size {
                events.remove(0);
                let (newer, older) = (events.first().map(AuditPosition::of), events.last().map(AuditPosition::of));
                return Ok(AuditPage { events, newer, older });
            }
            wider.after = None;
        }
        let mut events = read(wider.clone()).await?;
        let older = (events.len() > size).then(|| {
            events.truncate(size);
            events.last().map(AuditPosition::of)
        });
        let newer = wider.before.as_ref().and(events.first().map(AuditPosition::of));
        Ok(AuditPage { events, newer, older: older.flatten() })
    }
}

/// A page of the audit log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditPage {
    /// Newest first.
    pub events: Vec<AuditEvent>,
    /// Where the page of newer events starts (`AuditQuery::after`), unless this is the newest.
    pub newer: Option<AuditPosition>,
    /// Where the page of older events starts (`AuditQuery::before`), unless this is the oldest.
    pub older: Option<AuditPosition>,
}
