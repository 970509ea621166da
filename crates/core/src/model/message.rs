//! Outbound messages (a durable queue: written before any provider sees them, bodies sealed) and
//! inbound messages with the opt-out keywords they may carry.
use crate::model::phone::PhoneNumber;
use crate::model::recipient::Recipient;
use crate::model::workflow::Channel;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Written, not yet handed to a provider.
    Queued,
    /// Claimed by a sender; a provider is being asked.
    Sending,
    /// A provider accepted it.
    Sent,
    /// The handset received it (receipt).
    Delivered,
    /// The network could not deliver it (receipt).
    Undelivered,
    /// Every provider refused it, or the receipt says so.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 6] = [Self::Queued, Self::Sending, Self::Sent, Self::Delivered, Self::Undelivered, Self::Failed];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Receipts may only move a message to a later stage.
    pub fn can_follow(self, current: DeliveryStatus) -> bool {
        match self {
            Self::Delivered | Self::Undelivered | Self::Failed => matches!(current, Self::Sending | Self::Sent),
            Self::Sent => current == Self::Sending,
            Self::Queued | Self::Sending => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub verification_id: Option<String>,
    /// Service name, for routing.
    pub service: Option<String>,
    /// How it travels: sms, voice, whatsapp or email.
    pub channel: Channel,
    /// The verification's workflow step it belongs to (0 for the first).
    pub step: Option<u32>,
    /// A number, or an address for `email`.
    pub to: Recipient,
    /// AES-GCM sealed body, bound to `id`.
    pub body_sealed: Vec<u8>,
    /// A re-send of a code already sent once: its failure does not fail the verification.
    pub resend: bool,
    pub status: DeliveryStatus,
    pub provider: Option<String>,
    pub provider_message_id: Option<String>,
    pub error: Option<String>,
    /// How many times it was claimed for sending.
    pub claims: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundMessage {
    pub id: String,
    pub provider: String,
    pub provider_message_id: String,
    pub from: PhoneNumber,
    pub to: String,
    pub body: String,
    pub received_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptCommand {
    OptOut,
    OptIn,
}

/// The carrier-standard keywords (CTIA / Twilio's defaults), matched on the whole trimmed body.
pub fn opt_command(body: &str) -> Option<OptCommand> {
    let word = body.trim().trim_end_matches(['.', '!']).to_ascii_uppercase();
    match word.as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "OPTOUT" | "REVOKE" => Some(OptCommand::OptOut),
        "START" | "UNSTOP" | "YES" | "OPTIN" => Some(OptCommand::OptIn),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opt_keywords_are_recognised_only_as_the_whole_message() {
        assert_eq!(opt_command(" stop "), Some(OptCommand::OptOut));
        assert_eq!(opt_command("Unsubscribe."), Some(OptCommand::OptOut));
        assert_eq!(opt_command("START"), Some(OptCommand::OptIn));
        assert_eq!(opt_command("please stop"), None);
        assert_eq!(opt_command("123456"), None);
    }

    #[test]
    fn receipts_only_move_forward() {
        use DeliveryStatus::*;
        assert!(Delivered.can_follow(Sent));
        assert!(!Sent.can_follow(Delivered));
        assert!(!Undelivered.can_follow(Delivered));
        assert!(!Delivered.can_follow(Queued));
    }
}
