//! Sessions: one per signed-in device. A browser session is found by its cookie's secret; an app
//! session by its current refresh token (a rotating family). Only SHA-256 digests of either are
//! stored.
use base64::Engine;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
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
    /// When the person proved who they are (a browser or app session: its login; an OpenID
    /// grant: the browser session's login).
    pub auth_time: DateTime<Utc>,
    /// How (RFC 8176 method references: `sms`, `tel`, `otp`, `pwd`, `mfa`, `hwk`).
    pub amr: Vec<String>,
    /// An OpenID Connect grant: the client it was issued to and its scopes (space-separated).
    pub client_id: Option<String>,
    pub scope: Option<String>,
}

impl Session {
    /// Whether it is still valid at `now`: used within `idle` and before its absolute end.
    pub fn live(&self, now: DateTime<Utc>, idle: chrono::Duration) -> bool {
        now < self.expires_at && now < self.last_seen_at + idle
    }
}

/// A new secret (256 random bits) with a prefix, and its digest.
pub fn new_secret(prefix: &str) -> (SecretString, Vec<u8>) {
    let secret =
        SecretString::from(format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())));
    let digest = digest(secret.expose_secret());
    (secret, digest)
}

pub fn digest(secret: &str) -> Vec<u8> {
    sha2::Sha256::digest(secret.as_bytes()).to_vec()
}

/// A device name a person recognises, from a User-Agent: "Firefox on Android", "Safari on
/// iPhone"; for anything else, the agent's first 60 printable characters.
pub fn device_name(user_agent: Option<&str>) -> Option<String> {
    let ua = user_agent?.trim();
    let has = |s: &str| ua.contains(s);
    let browser = [("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari")]
        .into_iter()
        .find(|(mark, _)| has(mark))
        .map(|(_, name)| if has("HeadlessChrome") { "Headless Chrome" } else { name });
    let system = [
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Android", "Android"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(mark, _)| has(mark))
    .map(|(_, name)| name);
    match (browser, system) {
        (Some(b), Some(s)) => Some(format!("{b} on {s}")),
        _ => {
            let clean: String = ua.chars().filter(|c| !c.is_control()).take(60).collect();
            (!clean.is_empty()).then_some(clean)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::device_name;

    #[test]
    fn devices_get_names_people_recognise() {
        let cases = [
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36", "Chrome on Linux"),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iPhone",
            ),
            ("Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0", "Firefox on Android"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36 Edg/126.0", "Edge on Windows"),
            ("curl/8.5.0", "curl/8.5.0"),
        ];
        for (ua, name) in cases {
            assert_eq!(device_name(Some(ua)).as_deref(), Some(name), "{ua}");
        }
        assert_eq!(device_name(Some("  ")), None);
        assert_eq!(device_name(None), None);
    }
}
