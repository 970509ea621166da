//! Sessions: one per signed-in device. A browser session is found by its cookie's secret; an app
//! session by its current refresh token (a rotating family). Only SHA-256 digests of either are
//! stored.
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::Digest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// A browser with the session cookie.
    Browser,
    /// An app with a refresh token.
    App,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Browser => "browser",
            Self::App => "app",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "browser" => Some(Self::Browser),
            "app" => Some(Self::App),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub kind: SessionKind,
    /// Digest of a browser session's cookie secret (none for app sessions).
    pub secret_hash: Option<Vec<u8>>,
    /// The device as its browser or app named itself (User-Agent), shortened.
    pub device: Option<String>,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The absolute end, whatever the use.
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// Whether it is still valid at `now`: used within `idle` and before its absolute end.
    pub fn live(&self, now: DateTime<Utc>, idle: chrono::Duration) -> bool {
        now < self.expires_at && now < self.last_seen_at + idle
    }
}

/// A new secret (256 random bits) with a prefix, and its digest.
pub fn new_secret(prefix: &str) -> (String, Vec<u8>) {
    let secret = format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()));
    let digest = digest(&secret);
    (secret, digest)
}

pub fn digest(secret: &str) -> Vec<u8> {
    sha2::Sha256::digest(secret.as_bytes()).to_vec()
}

/// A device name fit to show and store: printable, at most 120 characters.
pub fn device_name(user_agent: Option<&str>) -> Option<String> {
    let ua = user_agent?.trim();
    let clean: String = ua.chars().filter(|c| !c.is_control()).take(120).collect();
    (!clean.is_empty()).then_some(clean)
}
