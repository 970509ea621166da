//! Flows: one sign-up, login or phone change waiting for its code. A flow has an unguessable id,
//! expires with its code and is used once. A *decoy* flow (no verification) is what a login for
//! an unknown account or with a wrong password gets: it looks the same and no code is right.
use crate::model::phone::PhoneNumber;
use chrono::{DateTime, Utc};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowKind {
    Signup,
    Login,
    PhoneChange,
    /// A signed-in user proves an e-mail address (a code sent to it) to make it the account's.
    EmailChange,
}

impl FlowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Login => "login",
            Self::PhoneChange => "phone_change",
            Self::EmailChange => "email_change",
        }
    }

    /// A change of a signed-in user's account (number or address): only that user, with a
    /// recent login, completes it.
    pub fn is_change(self) -> bool {
        matches!(self, Self::PhoneChange | Self::EmailChange)
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "signup" => Some(Self::Signup),
            "login" => Some(Self::Login),
            "phone_change" => Some(Self::PhoneChange),
            "email_change" => Some(Self::EmailChange),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub id: String,
    pub kind: FlowKind,
    /// The account logged in to or changed (none for a sign-up).
    pub user_id: Option<String>,
    /// Where the code goes (a decoy for an unknown username may have none; an e-mail change
    /// has none).
    pub phone: Option<PhoneNumber>,
    /// A sign-up's account details.
    pub username: Option<String>,
    /// A sign-up's address (unverified), or the address an e-mail change sends its code to.
    pub email: Option<String>,
    pub password_hash: Option<String>,
    /// The verification carrying the code; `None` for a decoy.
    pub verification_id: Option<String>,
    /// What the login was tried with (lower-cased username, e-mail or number): wrong codes are
    /// charged to it like wrong passwords.
    pub login: Option<String>,
    /// The invite a sign-up consumes once verified (invite-only groups).
    pub invite_id: Option<String>,
    /// Started by an invitee's SMS reply with the invite code: the next sign-up (or login) of the
    /// number takes it over and its code, instead of sending another.
    pub by_reply: bool,
    /// Started by a recognised device of the number's holder (`device.rs`): its wrong codes count
    /// in the number's recognised budgets, not in those everybody shares.
    pub recognised: bool,
    /// Wrong codes entered in this flow: every flow has its own attempts, even where several
    /// share one verification (a number's pending code), so nobody else's guesses lock it.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_sent_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

impl Flow {
    /// Whose budgets its wrong codes count in (`budget::Guesser`).
    pub fn guesser(&self) -> crate::model::budget::Guesser {
        if self.recognised { crate::model::budget::Guesser::Recognised } else { crate::model::budget::Guesser::Anyone }
    }
}
