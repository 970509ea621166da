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
    /// Only events older than this one in the log's order (the next page).
    pub before: Option<AuditPosition>,
    /// Only events newer than this one (the previous page): the `limit` events just above it,
    /// still returned newest first.
    pub after: Option<AuditPosition>,
    pub limit: u32,
}

/// An event's place in the log, which is ordered by time and then id (newest first), so that
/// pages that start past a position neither repeat nor skip an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditPosition {
    pub at: DateTime<Utc>,
    pub id: String,
}

impl AuditPosition {
    pub fn of(e: &AuditEvent) -> Self {
        Self { at: e.at, id: e.id.clone() }
    }

    /// The position as a URL-safe cursor: `MILLISECONDS.ID`.
    pub fn cursor(&self) -> String {
        format!("{}.{}", self.at.timestamp_millis(), self.id)
    }

    /// A cursor made by `cursor`; `None` for anything else.
    pub fn parse(cursor: &str) -> Option<Self> {
        let (ms, id) = cursor.split_once('.')?;
        let valid_id = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let at = DateTime::from_timestamp_millis(ms.parse().ok()?)?;
        valid_id.then(|| Self { at, id: id.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_names_its_position_and_nothing_else_parses() {
        let p = AuditPosition { at: DateTime::from_timestamp_millis(1_777_000_000_123).unwrap(), id: "AUab12".into() };
        assert_eq!(p.cursor(), "1777000000123.AUab12");
        assert_eq!(AuditPosition::parse(&p.cursor()), Some(p));
        for bad in ["", "1777000000123", ".AU1", "x.AU1", "1.", "1.AU 1", "1.AU/1", "99999999999999999999.AU1"] {
            assert_eq!(AuditPosition::parse(bad), None, "{bad}");
        }
    }
}
