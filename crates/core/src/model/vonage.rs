//! The Vonage Verify v2 drop-in's own records: an API key's application (an RS256 public key
//! whose JWTs authenticate as the key, the status webhook and the secret its callbacks are
//! signed with), the status callbacks owed to it, and templates with their fragments.
use chrono::{DateTime, Utc};

/// An API key's application. The signature secret is kept sealed with the server key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VonageApp {
    /// A UUID, as Vonage's application ids are.
    pub id: String,
    pub key_id: String,
    /// The application's RSA public key (PEM).
    pub public_key: String,
    pub status_url: Option<String>,
    pub signature_secret_sealed: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
}

/// What kind of status callback a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackKind {
    /// Sent once its verification has ended; its body is made then.
    Summary,
    /// Sent at once, with the body stored.
    Event,
}

impl CallbackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Summary => "summary",
            Self::Event => "event",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "summary" => Some(Self::Summary),
            "event" => Some(Self::Event),
            _ => None,
        }
    }
}

/// A status callback owed to an application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VonageCallback {
    pub id: String,
    pub app_id: String,
    pub verification_id: String,
    pub kind: CallbackKind,
    /// An event's body; a summary's facts the verification does not keep (`client_ref`,
    /// `channel_timeout`), as JSON.
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
}

/// A named set of texts of a service (Vonage's template), by channel and locale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VonageTemplate {
    /// A UUID.
    pub id: String,
    pub service_id: String,
    pub name: String,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
}

/// One text of a template: its channel (`sms`, `voice`), locale (`en-us`) and text with
/// `${code}`, `${brand}`, `${time-limit}` and `${time-limit-unit}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateFragment {
    /// A UUID.
    pub id: String,
    pub template_id: String,
    pub channel: String,
    pub locale: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A verification's Vonage `request_id`: its 32 hex digits in UUID form.
pub fn request_id(verification_id: &str) -> String {
    let h = verification_id.trim_start_matches("VE");
    if h.len() != 32 || !h.is_ascii() {
        return h.to_string();
    }
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The verification a `request_id` names; `None` when it is not a UUID.
pub fn verification_id(request_id: &str) -> Option<String> {
    crate::model::ids::is_uuid(&request_id.to_ascii_lowercase()).then(|| format!("VE{}", request_id.to_ascii_lowercase().replace('-', "")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_verification_ids_in_uuid_form() {
        let v = crate::model::ids::new_id("VE");
        let r = request_id(&v);
        assert!(crate::model::ids::is_uuid(&r), "{r}");
        assert_eq!(verification_id(&r).as_deref(), Some(v.as_str()));
        assert_eq!(verification_id(&r.to_uppercase()).as_deref(), Some(v.as_str()));
        assert_eq!(verification_id("VE123"), None);
        assert_eq!(verification_id("../x"), None);
    }
}
