//! An event for the app's webhook (`user.created`, `user.phone_changed`, `user.deleted`).
use chrono::{DateTime, Utc};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountEvent {
    pub id: String,
    /// `user.created`, `user.phone_changed` or `user.deleted`.
    pub kind: String,
    /// The JSON body the app receives.
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
}
