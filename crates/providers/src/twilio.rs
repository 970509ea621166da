//! Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`,
//! form-encoded, HTTP Basic with the Account SID and auth token (or an API key SID and secret).
use crate::common::{status_error, transport_error};
use crate::secret::Secret;
use async_trait::async_trait;
use phonegate_core::ports::{SendError, SentSms, Sms, SmsSender};
use serde::{Deserialize, Serialize};

pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

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
}

/// Recipient-level rejections (Twilio error codes): no other provider would do better.
const REJECTIONS: [u64; 8] = [21211, 21214, 21217, 21401, 21407, 21610, 21612, 21614];

pub struct Twilio {
    pub(crate) name: String,
    pub(crate) settings: TwilioSettings,
    pub(crate) client: reqwest::Client,
    pub(crate) status_callback: Option<String>,
}

#[async_trait]
impl SmsSender for Twilio {
    async fn send(&self, sms: &Sms) -> Result<SentSms, SendError> {
        let s = &self.settings;
        let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", s.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL), s.account_sid);
        let mut form = vec![("To", sms.to.as_str()), ("Body", sms.body.as_str())];
        match (sms.from.as_deref().or(s.from.as_deref()), s.messaging_service_sid.as_deref()) {
            (Some(from), _) => form.push(("From", from)),
            (None, Some(service)) => form.push(("MessagingServiceSid", service)),
            (None, None) => {
                return Err(SendError::unavailable(format!("{}: neither `from` nor `messaging_service_sid` is configured", self.name)));
            }
        }
        if let Some(callback) = &self.status_callback {
            form.push(("StatusCallback", callback));
        }
        let (user, password) = match (&s.api_key_sid, &s.api_key_secret) {
            (Some(sid), Some(secret)) => (sid.as_str(), secret.expose()),
            _ => (s.account_sid.as_str(), s.auth_token.expose()),
        };
        let response =
            self.client.post(url).basic_auth(user, Some(password)).form(&form).send().await.map_err(|e| transport_error(&self.name, e))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if status.is_success() {
            let sid = body["sid"].as_str().map(str::to_string);
            return Ok(SentSms { provider: self.name.clone(), provider_message_id: sid });
        }
        let detail = format!("Twilio error {}: {}", body["code"], body["message"].as_str().unwrap_or("no message"));
        match body["code"].as_u64() {
            Some(code) if status.is_client_error() && REJECTIONS.contains(&code) => {
                Err(SendError::Rejected(format!("{}: {detail}", self.name)))
            }
            _ => Err(status_error(&self.name, status, &detail)),
        }
    }
}
