//! Twilio: SMS and WhatsApp through Programmable Messaging
//! (`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`), calls through Programmable Voice
//! (`…/Calls.json` with inline TwiML, `voice.rs`). Form-encoded, HTTP Basic with the Account SID
//! and auth token (or an API key SID and secret).
use crate::common::{Traced, status_error, transport_error};
use crate::secret::Secret;
use async_trait::async_trait;
use phonegate_core::Channel;
use phonegate_core::ports::{Accepted, MessageSender, Outgoing, SendError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod voice;
mod whatsapp;

pub use voice::{GATHER_PATH, say};

pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// Where Twilio reports on messages (SMS and WhatsApp) and on calls.
pub const STATUS_PATH: &str = "/webhooks/twilio/status";
pub const CALL_STATUS_PATH: &str = "/webhooks/twilio/call-status";

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    pub account_sid: String,
    /// Authenticates requests unless an API key is given; always signs Twilio's webhooks.
    pub auth_token: Secret,
    pub api_key_sid: Option<String>,
    pub api_key_secret: Option<Secret>,
    /// Default sender number; a route's `from` overrides it.
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub base_url: Option<String>,
    /// The number calls come from, when `from` is not one that can call (an alphanumeric sender
    /// id); a voice route's `from` overrides it.
    #[serde(default)]
    pub voice_from: Option<String>,
    /// The voice a call speaks with, per Twilio language (`"de-DE" = "Polly.Marlene"`); a
    /// language not listed gets the account's default voice for it.
    #[serde(default)]
    pub voices: BTreeMap<String, String>,
    /// The WhatsApp sender (`+15005550006`, registered with Twilio); a WhatsApp route's `from`
    /// overrides it.
    #[serde(default)]
    pub whatsapp_from: Option<String>,
    /// The Content template (`HX…`, of type authentication) WhatsApp codes are sent with; its
    /// variable `1` is the code. Without it, this provider sends no WhatsApp messages.
    #[serde(default)]
    pub whatsapp_content_sid: Option<String>,
}

/// Recipient-level rejections (Twilio error codes): no other provider would do better. 63003 and
/// 63024: the number is not on WhatsApp.
const REJECTIONS: [u64; 10] = [21211, 21214, 21217, 21401, 21407, 21610, 21612, 21614, 63003, 63024];

pub struct Twilio {
    name: String,
    settings: TwilioSettings,
    client: reqwest::Client,
    /// This server's public base URL: status callbacks and a call's key press come back there.
    public_url: Option<String>,
    channels: Vec<Channel>,
}

impl Twilio {
    pub(crate) fn new(name: String, settings: TwilioSettings, client: reqwest::Client, public_url: Option<String>) -> Self {
        // WhatsApp needs its Content template: without one, the entry serves SMS and calls.
        let channels = match settings.whatsapp_content_sid {
            Some(_) => vec![Channel::Sms, Channel::Voice, Channel::Whatsapp],
            None => vec![Channel::Sms, Channel::Voice],
        };
        let public_url = public_url.map(|u| u.trim_end_matches('/').to_string());
        Self { name, settings, client, public_url, channels }
    }

    /// A URL of this server that Twilio calls back.
    fn callback(&self, path: &str) -> Option<String> {
        self.public_url.as_ref().map(|u| format!("{u}{path}"))
    }

    /// Creates a resource of the account (`Messages`, `Calls`); its `sid` is the message id.
    async fn create(&self, resource: &str, form: &[(&str, &str)]) -> Result<Accepted, SendError> {
        let s = &self.settings;
        let base = s.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let url = format!("{base}/2010-04-01/Accounts/{}/{resource}.json", s.account_sid);
        let (user, password) = match (&s.api_key_sid, &s.api_key_secret) {
            (Some(sid), Some(secret)) => (sid.as_str(), secret.expose()),
            _ => (s.account_sid.as_str(), s.auth_token.expose()),
        };
        let response = self
            .client
            .post(url)
            .basic_auth(user, Some(password))
            .form(form)
            .traced()
            .send()
            .await
            .map_err(|e| transport_error(&self.name, e))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if status.is_success() {
            let sid = body["sid"].as_str().map(str::to_string);
            return Ok(Accepted { provider: self.name.clone(), provider_message_id: sid });
        }
        // The code only: Twilio's `message` may echo the request (the message, so the code).
        let detail = match body["code"].as_u64() {
            Some(code) => format!("Twilio error {code}"),
            None => "no Twilio error code".to_string(),
        };
        match body["code"].as_u64() {
            Some(code) if status.is_client_error() && REJECTIONS.contains(&code) => {
                Err(SendError::Rejected(format!("{}: {detail}", self.name)))
            }
            _ => Err(status_error(&self.name, status, &detail)),
        }
    }

    async fn sms(&self, sms: &Outgoing) -> Result<Accepted, SendError> {
        let s = &self.settings;
        let mut form = vec![("To", sms.to.as_str()), ("Body", sms.body.as_str())];
        match (sms.from.as_deref().or(s.from.as_deref()), s.messaging_service_sid.as_deref()) {
            (Some(from), _) => form.push(("From", from)),
            (None, Some(service)) => form.push(("MessagingServiceSid", service)),
            (None, None) => {
                return Err(SendError::unavailable(format!("{}: neither `from` nor `messaging_service_sid` is configured", self.name)));
            }
        }
        let callback = self.callback(STATUS_PATH);
        if let Some(callback) = &callback {
            form.push(("StatusCallback", callback));
        }
        self.create("Messages", &form).await
    }
}

#[async_trait]
impl MessageSender for Twilio {
    async fn send(&self, message: &Outgoing) -> Result<Accepted, SendError> {
        match message.channel {
            Channel::Voice => self.call(message).await,
            Channel::Whatsapp => self.whatsapp(message).await,
            _ => self.sms(message).await,
        }
    }

    fn channels(&self) -> &[Channel] {
        &self.channels
    }
}

#[cfg(test)]
mod tests;
