//! sipgate.io: `POST /v2/sessions/sms` with JSON `{smsId, recipient, message}` and HTTP Basic
//! (token id + personal access token). Success is 204 No Content; no message id is returned.
use crate::common::{status_error, transport_error};
use crate::secret::Secret;
use async_trait::async_trait;
use phonegate_core::ports::{SendError, SentSms, Sms, SmsSender};
use serde::{Deserialize, Serialize};

pub const DEFAULT_BASE_URL: &str = "https://api.sipgate.com";

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SipgateSettings {
    pub token_id: String,
    pub token: Secret,
    /// The SMS extension to send from, e.g. `s0`.
    pub sms_id: String,
    pub base_url: Option<String>,
}

pub struct Sipgate {
    pub(crate) name: String,
    pub(crate) settings: SipgateSettings,
    pub(crate) client: reqwest::Client,
}

#[async_trait]
impl SmsSender for Sipgate {
    async fn send(&self, sms: &Sms) -> Result<SentSms, SendError> {
        let s = &self.settings;
        let url = format!("{}/v2/sessions/sms", s.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL));
        let body = serde_json::json!({ "smsId": s.sms_id, "recipient": sms.to.as_str(), "message": sms.body });
        let response = self
            .client
            .post(url)
            .basic_auth(&s.token_id, Some(s.token.expose()))
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error(&self.name, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(SentSms { provider: self.name.clone(), provider_message_id: None });
        }
        let text: String = response.text().await.unwrap_or_default().chars().take(200).collect();
        match status.as_u16() {
            // sipgate answers 400 for a recipient or message it will not send.
            400 => Err(SendError::Rejected(format!("{}: HTTP 400 {text}", self.name))),
            _ => Err(status_error(&self.name, status, &text)),
        }
    }
}
