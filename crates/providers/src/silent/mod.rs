//! Silent (SIM-based) verification providers, each behind the core's
//! [`SilentProvider`](phonegate_core::silent::SilentProvider): CAMARA Number Verification (an
//! operator's OIDC authorization-code flow), Vonage Verify v2 `silent_auth` and tru.ID PhoneCheck.
//!
//! Each is a `[silent.providers.NAME]` table: a `kind` with that kind's settings, and the
//! per-request timeout shared by all kinds (see [`SilentProviderConfig`]):
//!
//! ```toml
//! [silent.providers.truid]
//! kind = "truid"
//! client_id = "…"
//! client_secret = "…"
//! base_url = "https://eu.api.tru.id"   # default
//! timeout = "5s"                         # default, per HTTP request to the provider
//! ```
//!
//! Failures are reported in words of our own: a text never holds a credential, a token, a code,
//! the device URL or anything of a response's body (providers echo requests).
pub mod camara;
pub mod truid;
pub mod vonage;

use crate::BuildError;
use phonegate_core::silent::{SilentError, SilentProvider};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// One configured silent provider (a table under `[silent.providers.NAME]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct SilentProviderConfig {
    #[serde(flatten)]
    pub kind: SilentProviderSettings,
    /// Timeout of each HTTP request to the provider (`timeout = "5s"`, the default). It bounds the
    /// coverage lookup, the creation of a check and each step of deciding one.
    #[serde(default = "default_timeout", with = "phonegate_core::duration")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// The provider's kind (`kind = "camara" | "vonage" | "truid"`) and its settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SilentProviderSettings {
    Camara(camara::CamaraSettings),
    Vonage(vonage::VonageSilentSettings),
    Truid(truid::TruidSettings),
}

/// Builds the provider configured as `[silent.providers.{name}]`. Settings that can only be
/// judged against the provider (a discovery document, a private key) are checked when first
/// used: a provider that cannot work fails its checks with a reason in the log.
pub fn build(name: &str, settings: &SilentProviderConfig) -> Result<Arc<dyn SilentProvider>, BuildError> {
    let timeout = settings.timeout.max(Duration::from_millis(1));
    let client = crate::common::client(timeout).map_err(|source| BuildError::HttpClient { provider: name.to_string(), source })?;
    Ok(match &settings.kind {
        SilentProviderSettings::Camara(s) => Arc::new(camara::Camara::new(name, s.clone(), client)),
        SilentProviderSettings::Vonage(s) => Arc::new(vonage::VonageSilent::new(name, s.clone(), client)),
        SilentProviderSettings::Truid(s) => Arc::new(truid::Truid::new(name, s.clone(), client)),
    })
}

/// A request that did not reach the provider or got no answer. URLs are stripped: they may
/// carry codes or tokens.
fn transport(name: &str, what: &str, e: reqwest::Error) -> SilentError {
    SilentError::Unavailable(format!("{name}: {what}: {}", e.without_url()))
}

/// An HTTP status the provider answered with, in our words (never the response's text).
fn http_error(name: &str, what: &str, status: reqwest::StatusCode) -> SilentError {
    let detail = match status.as_u16() {
        401 | 403 => "credentials refused",
        404 => "not found",
        429 => "rate limited",
        500..=599 => "provider error",
        _ => "refused",
    };
    SilentError::Unavailable(format!("{name}: {what}: HTTP {} ({detail})", status.as_u16()))
}

/// Reads a JSON answer. The parser's own message is not repeated: it may quote the body.
async fn read_json<T: serde::de::DeserializeOwned>(name: &str, what: &str, response: reqwest::Response) -> Result<T, SilentError> {
    response.json().await.map_err(|_| SilentError::Unavailable(format!("{name}: {what}: unreadable response")))
}

/// Whether a reference from a callback can go into a URL path as it is (provider ids are UUIDs).
fn is_plain_ref(r: &str) -> bool {
    !r.is_empty() && r.len() <= 128 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod config_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_each_kind_with_the_default_timeout() {
        let truid: SilentProviderConfig =
            serde_json::from_value(json!({"kind": "truid", "client_id": "id", "client_secret": "s"})).unwrap();
        assert_eq!(truid.timeout, Duration::from_secs(5));
        let SilentProviderSettings::Truid(t) = &truid.kind else { panic!("{truid:?}") };
        assert_eq!(t.base_url, truid::DEFAULT_BASE_URL);

        let vonage: SilentProviderConfig =
            serde_json::from_value(json!({"kind": "vonage", "application_id": "app", "private_key": "pem", "timeout": "3s"})).unwrap();
        assert_eq!(vonage.timeout, Duration::from_secs(3));
        assert!(matches!(vonage.kind, SilentProviderSettings::Vonage(_)));

        let camara: SilentProviderConfig = serde_json::from_value(json!({
            "kind": "camara", "client_id": "id", "client_secret": "s",
            "discovery_url": "https://op.example/.well-known/openid-configuration", "api_root": "https://op.example/camara"
        }))
        .unwrap();
        let SilentProviderSettings::Camara(c) = &camara.kind else { panic!("{camara:?}") };
        assert!(!c.hashed);
        assert_eq!(c.scope, None);
    }

    #[test]
    fn refuses_unknown_fields_and_kinds() {
        let typo = json!({"kind": "truid", "client_id": "id", "client_secret": "s", "base_ur": "x"});
        assert!(serde_json::from_value::<SilentProviderConfig>(typo).is_err());
        let vonage_basic = json!({"kind": "vonage", "api_key": "k", "api_secret": "s"});
        assert!(serde_json::from_value::<SilentProviderConfig>(vonage_basic).is_err());
        assert!(serde_json::from_value::<SilentProviderConfig>(json!({"kind": "simulator"})).is_err());
    }

    #[test]
    fn builds_each_kind_under_its_name() {
        for kind in [
            json!({"kind": "truid", "client_id": "id", "client_secret": "s"}),
            json!({"kind": "vonage", "application_id": "app", "private_key": "not a key"}),
            json!({"kind": "camara", "client_id": "id", "client_secret": "s", "api_root": "https://op.example"}),
        ] {
            let config: SilentProviderConfig = serde_json::from_value(kind).unwrap();
            assert_eq!(build("sp", &config).unwrap().name(), "sp");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let config: SilentProviderConfig =
            serde_json::from_value(json!({"kind": "truid", "client_id": "id", "client_secret": "hunter2"})).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
