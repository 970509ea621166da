//! An audit event: a security event, who caused it and when, and the filters for reading them.
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub id: String,
    pub at: DateTime<Utc>,
    /// An `audit::AuditKind`'s name (`budget_exceeded`, `checks_locked`, `login`…), as stored.
    pub kind: String,
    /// The API key that caused it, if any.
    pub key_id: Option<String>,
    /// Who caused it: the signed-in user's id (an admin in the console, a user on their own
    /// account), else the API key's id.
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub request_id: String,
    /// What it concerns: a phone number, key id, service id, prefix or provider.
    pub subject: Option<String>,
    /// A short fixed description (never a secret, a code or a provider's text).
    pub detail: String,
}

/// Filters for reading the log, newest first.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// What: only events of this kind.
    pub kind: Option<String>,
    /// Who: only events this user or API key caused, or that concern it (its id).
    pub who: Option<String>,
    /// Where from: only events from this address.
    pub ip: Option<String>,
    /// When: only events at or after `since` and before `until`.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: u32,
}
