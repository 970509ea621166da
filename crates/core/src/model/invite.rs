//! An invite to an invite-only group, and who may sign up.
use crate::model::phone::PhoneNumber;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who may sign up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    /// Anyone who proves a number.
    #[default]
    Open,
    /// Only invited numbers.
    InviteOnly,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    pub id: String,
    pub phone: PhoneNumber,
    /// An existing member's username (a second device, a lost session).
    pub username: Option<String>,
    /// The admin who invited.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_sent_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Invite {
    /// `pending`, `used`, `expired` or `revoked`.
    pub fn status(&self, now: DateTime<Utc>) -> &'static str {
        match (self.revoked_at, self.used_at) {
            (Some(_), _) => "revoked",
            (_, Some(_)) => "used",
            _ if now >= self.expires_at => "expired",
            _ => "pending",
        }
    }
}
