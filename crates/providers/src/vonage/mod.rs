//! Vonage (Nexmo): texts by the SMS API, calls by the Voice API (`voice.rs`) and WhatsApp
//! authentication templates by the Messages API (`whatsapp.rs`).
//!
//! SMS: `POST /sms/json`, form-encoded, `api_key`/`api_secret` parameters, `to` as digits without
//! `+`, `type=unicode` for text outside GSM-7. A response lists one entry per part; every part must
//! have status "0".
mod voice;
mod whatsapp;

pub(crate) use whatsapp::error_code;

use crate::app_jwt::AppJwt;
use crate::common::{Traced, is_gsm7, status_error, transport_error};
use crate::error::BuildError;
use crate::secret::Secret;
use crate::signature::VonageSigMethod;
use async_trait::async_trait;
use phonegate_core::Channel;
use phonegate_core::ports::{Accepted, MessageSender, Outgoing, SendError};
use serde::{Deserialize, Serialize};

pub const DEFAULT_BASE_URL: &str = "https://rest.nexmo.com";
/// The Voice and Messages APIs.
pub const DEFAULT_API_BASE_URL: &str = "https://api.nexmo.com";

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VonageSettings {
    pub api_key: String,
    pub api_secret: Secret,
    /// Default sender (number or alphanumeric id); a route's `from` overrides it.
    pub from: Option<String>,
    /// Verifies Vonage's signed webhooks (inbound SMS and delivery receipts by `sig`, call events
    /// and WhatsApp statuses by their signed JWT).
    pub signature_secret: Option<Secret>,
    pub signature_method: Option<VonageSigMethod>,
    pub base_url: Option<String>,
    /// The Vonage application (Voice and Messages capabilities) whose key signs the Voice and
    /// Messages API requests: with `private_key` (or `private_key_file`), calls are served.
    pub application_id: Option<String>,
    /// The application's private key, PEM.
    pub private_key: Option<Secret>,
    /// The number calls come from (a Vonage number of the application); default: a voice route's
    /// `from`, else `from` when it is a number.
    pub voice_from: Option<String>,
    /// The WhatsApp Business number messages come from; with `whatsapp_template`, WhatsApp is
    /// served.
    pub whatsapp_from: Option<String>,
    /// The name of an approved WhatsApp authentication template with a copy-code button.
    pub whatsapp_template: Option<String>,
    /// The languages the template exists in (`["en_US", "de"]`); default: the verification's.
    pub whatsapp_languages: Option<Vec<String>>,
    /// Base URL of the Voice and Messages APIs (default `https://api.nexmo.com`).
    pub api_base_url: Option<String>,
}

pub struct Vonage {
    pub(crate) name: String,
    pub(crate) settings: VonageSettings,
    pub(crate) client: reqwest::Client,
    /// This server's public URL, for the delivery receipts', call events' and WhatsApp statuses'
    /// callbacks.
    pub(crate) public_url: Option<String>,
    /// Signs Voice and Messages API requests (`application_id` and `private_key`).
    pub(crate) app: Option<AppJwt>,
    pub(crate) channels: Vec<Channel>,
}

impl Vonage {
    /// Checks the settings the new channels need: an application id comes with its key, and the key
    /// must be an RSA private key.
    pub fn new(name: &str, settings: VonageSettings, client: reqwest::Client, public_url: Option<String>) -> Result<Self, BuildError> {
        let invalid = |reason: &str| BuildError::Settings { provider: name.to_string(), reason: reason.to_string() };
        let app = match (&settings.application_id, &settings.private_key) {
            (Some(id), Some(key)) => {
                Some(AppJwt::new(id, key.expose()).ok_or_else(|| invalid("private_key is not an RSA private key in PEM"))?)
            }
            (None, None) => None,
            _ => return Err(invalid("application_id and private_key (or private_key_file) go together")),
        };
        if settings.whatsapp_from.is_some() != settings.whatsapp_template.is_some() {
            return Err(invalid("whatsapp_from and whatsapp_template go together"));
        }
        let mut channels = vec![Channel::Sms];
        if app.is_some() {
            channels.push(Channel::Voice);
        }
        if settings.whatsapp_from.is_some() {
            channels.push(Channel::Whatsapp);
        }
        let public_url = public_url.map(|u| u.trim_end_matches('/').to_string());
        Ok(Self { name: name.to_string(), settings, client, public_url, app, channels })
    }

    fn callback(&self, path: &str) -> Option<String> {
        self.public_url.as_ref().map(|u| format!("{u}{path}"))
    }

    fn api_url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.api_base_url.as_deref().unwrap_or(DEFAULT_API_BASE_URL).trim_end_matches('/'))
    }

    /// A request to the Voice or Messages API, signed with the application's JWT (or, for the
    /// Messages API without an application, HTTP Basic with the API key and secret).
    fn api_post(&self, path: &str) -> Result<reqwest::RequestBuilder, SendError> {
        let request = self.client.post(self.api_url(path));
        Ok(match &self.app {
            Some(app) => request.bearer_auth(app.token().map_err(|why| SendError::unavailable(format!("{}: {why}", self.name)))?),
            None => request.basic_auth(&self.settings.api_key, Some(self.settings.api_secret.expose())),
        })
    }
}

/// What Vonage's documented SMS statuses mean, in our words: the response's own `error-text`
/// is never repeated (Vonage may echo the request, credentials and message included).
fn describe(status: &str) -> &'static str {
    match status {
        "1" => "throttled",
        "2" => "missing parameters",
        "3" => "invalid parameters",
        "4" => "invalid credentials",
        "5" => "internal error",
        "6" => "invalid message",
        "7" => "number barred",
        "8" => "partner account barred",
        "9" => "partner quota violation",
        "10" => "too many existing binds",
        "11" => "account not enabled for HTTP",
        "12" => "message too long",
        "14" => "invalid signature",
        "15" => "invalid sender address",
        "22" => "invalid network code",
        "23" => "invalid callback URL",
        "29" => "non-whitelisted destination",
        "32" => "signature and API secret disallowed",
        "33" => "number de-activated",
        _ => "unknown status",
    }
}

/// Vonage status codes by what they mean for routing.
fn classify(name: &str, status: &str) -> SendError {
    let status: String = status.chars().filter(char::is_ascii_digit).take(4).collect();
    let reason = format!("{name}: Vonage status {status} ({})", describe(&status));
    let status = status.as_str();
    match status {
        // Throttled; too many binds: nothing was accepted, ask again.
        "1" | "10" => SendError::retryable(reason),
        // Unroutable, barred number, message too long, invalid network, non-whitelisted
        // destination, deactivated number: about this recipient or text.
        "6" | "7" | "12" | "22" | "29" | "33" => SendError::Rejected(reason),
        // Credentials, account, quota, sender, signature, internal error: this provider's problem.
        _ => SendError::unavailable(reason),
    }
}

#[async_trait]
impl MessageSender for Vonage {
    async fn send(&self, out: &Outgoing) -> Result<Accepted, SendError> {
        match out.channel {
            Channel::Voice if self.app.is_some() => self.call(out).await,
            Channel::Whatsapp if self.settings.whatsapp_from.is_some() => self.whatsapp(out).await,
            Channel::Sms => self.sms(out).await,
            other => Err(SendError::Rejected(format!("{}: does not serve the {other} channel", self.name))),
        }
    }

    fn channels(&self) -> &[Channel] {
        &self.channels
    }
}

impl Vonage {
    async fn sms(&self, sms: &Outgoing) -> Result<Accepted, SendError> {
        let s = &self.settings;
        let from = sms
            .from
            .as_deref()
            .or(s.from.as_deref())
            .ok_or_else(|| SendError::unavailable(format!("{}: no `from` configured", self.name)))?;
        let to = sms.to.as_str().trim_start_matches('+');
        let mut form = vec![
            ("api_key", s.api_key.as_str()),
            ("api_secret", s.api_secret.expose()),
            ("from", from),
            ("to", to),
            ("text", sms.body.as_str()),
            ("client-ref", sms.message_id.as_str()),
        ];
        if !is_gsm7(&sms.body) {
            form.push(("type", "unicode"));
        }
        let callback = self.callback("/webhooks/vonage/dlr");
        if let Some(callback) = &callback {
            form.push(("callback", callback));
            form.push(("status-report-req", "1"));
        }
        let url = format!("{}/sms/json", s.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL));
        let response = self.client.post(url).form(&form).traced().send().await.map_err(|e| transport_error(&self.name, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(&self.name, status, ""));
        }
        let body: serde_json::Value =
            response.json().await.map_err(|e| SendError::unavailable(format!("{}: unreadable response: {e}", self.name)))?;
        let parts = body["messages"]
            .as_array()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| SendError::unavailable(format!("{}: response lists no messages", self.name)))?;
        if let Some(failed) = parts.iter().find(|p| p["status"].as_str() != Some("0")) {
            return Err(classify(&self.name, failed["status"].as_str().unwrap_or_default()));
        }
        let id = parts[0]["message-id"].as_str().map(str::to_string);
        Ok(Accepted { provider: self.name.clone(), provider_message_id: id })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::testing::{client, only_request, sms};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn vonage(server: &MockServer) -> Vonage {
        let settings = VonageSettings { base_url: Some(server.uri()), ..settings() };
        Vonage::new("vg", settings, client(), Some("https://verify.example.com/".into())).unwrap()
    }

    /// SMS only, as before calls and WhatsApp.
    pub(super) fn settings() -> VonageSettings {
        VonageSettings {
            api_key: "abcd1234".into(),
            api_secret: Secret::new("s3cr3t"),
            from: Some("Acme".into()),
            signature_secret: None,
            signature_method: None,
            base_url: None,
            application_id: None,
            private_key: None,
            voice_from: None,
            whatsapp_from: None,
            whatsapp_template: None,
            whatsapp_languages: None,
            api_base_url: None,
        }
    }

    async fn answering(status: u16, body: serde_json::Value) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/sms/json"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        server
    }

    fn parts(statuses: &[&str]) -> serde_json::Value {
        let messages: Vec<_> = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| serde_json::json!({ "to": "4915123456789", "message-id": format!("id-{i}"), "status": s, "error-text": format!("error {s}") }))
            .collect();
        serde_json::json!({ "message-count": statuses.len().to_string(), "messages": messages })
    }

    #[tokio::test]
    async fn sends_the_exact_form_vonage_expects() {
        let server = answering(200, parts(&["0"])).await;
        let sent = vonage(&server).send(&sms("Your code: 123456")).await.unwrap();
        assert_eq!(sent.provider_message_id.as_deref(), Some("id-0"));
        let r = only_request(&server).await;
        assert_eq!(r.headers["content-type"], "application/x-www-form-urlencoded");
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            "api_key=abcd1234&api_secret=s3cr3t&from=Acme&to=4915123456789&text=Your+code%3A+123456\
             &client-ref=SM00000000000000000000000000000001\
             &callback=https%3A%2F%2Fverify.example.com%2Fwebhooks%2Fvonage%2Fdlr&status-report-req=1"
        );
    }

    #[tokio::test]
    async fn non_gsm_text_goes_as_unicode_and_multipart_needs_every_part() {
        let server = answering(200, parts(&["0", "0", "0"])).await;
        let text = format!("验证码 123456 {}", "码".repeat(150));
        let sent = vonage(&server).send(&sms(&text)).await.unwrap();
        assert_eq!(sent.provider_message_id.as_deref(), Some("id-0"));
        let body = String::from_utf8(only_request(&server).await.body).unwrap();
        assert!(body.contains("&type=unicode"), "{body}");
        assert!(body.contains("text=%E9%AA%8C%E8%AF%81%E7%A0%81+123456+"), "{body}");

        let server = answering(200, parts(&["0", "6"])).await;
        assert!(matches!(vonage(&server).send(&sms("x")).await, Err(SendError::Rejected(r)) if r.contains("status 6")));
    }

    #[tokio::test]
    async fn maps_documented_status_codes() {
        for (status, expected) in [
            ("1", "retryable"),
            ("2", "unavailable"),
            ("4", "unavailable"),
            ("5", "unavailable"),
            ("6", "rejected"),
            ("7", "rejected"),
            ("9", "unavailable"),
            ("15", "unavailable"),
            ("29", "rejected"),
        ] {
            let server = answering(200, parts(&[status])).await;
            let err = vonage(&server).send(&sms("x")).await.unwrap_err();
            let kind = match &err {
                SendError::Rejected(_) => "rejected",
                SendError::Unavailable { retry_safe: true, .. } => "retryable",
                SendError::Unavailable { .. } => "unavailable",
            };
            assert_eq!(kind, expected, "status {status}: {err}");
            assert!(err.to_string().contains(&format!("Vonage status {status} (")), "{err}");
            assert!(!err.to_string().contains(&format!("error {status}")), "the provider's error text is not repeated: {err}");
        }
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
        assert!(matches!(vonage(&server).send(&sms("x")).await, Err(SendError::Unavailable { retry_safe: false, .. })));
    }

    #[test]
    fn settings_of_the_new_channels_come_in_pairs_and_the_key_must_be_one() {
        let build = |s: VonageSettings| Vonage::new("vg", s, client(), None).map(|v| v.channels().to_vec());
        assert_eq!(build(settings()).unwrap(), [Channel::Sms]);
        let key = |k: &str| VonageSettings { application_id: Some("app-1".into()), private_key: Some(Secret::new(k)), ..settings() };
        assert_eq!(build(key(crate::app_jwt::testing::PRIVATE_KEY)).unwrap(), [Channel::Sms, Channel::Voice]);
        for (bad, words) in [
            (key("not a key"), "not an RSA private key"),
            (VonageSettings { application_id: Some("app-1".into()), ..settings() }, "go together"),
            (VonageSettings { private_key: Some(Secret::new("k")), ..settings() }, "go together"),
            (VonageSettings { whatsapp_from: Some("14157386102".into()), ..settings() }, "whatsapp_template"),
        ] {
            let e = build(bad).unwrap_err().to_string();
            assert!(e.contains("`vg`") && e.contains(words), "{e}");
            assert!(!e.contains("not a key\""), "the key is not repeated: {e}");
        }
    }
}
