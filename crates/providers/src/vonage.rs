//! Vonage (Nexmo) SMS API: `POST /sms/json`, form-encoded, `api_key`/`api_secret` parameters,
//! `to` as digits without `+`, `type=unicode` for text outside GSM-7. A response lists one entry
//! per part; every part must have status "0".
use crate::common::{is_gsm7, status_error, transport_error};
use crate::secret::Secret;
use crate::signature::VonageSigMethod;
use async_trait::async_trait;
use phonegate_core::ports::{SendError, SentSms, Sms, SmsSender};
use serde::{Deserialize, Serialize};

pub const DEFAULT_BASE_URL: &str = "https://rest.nexmo.com";

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VonageSettings {
    pub api_key: String,
    pub api_secret: Secret,
    /// Default sender (number or alphanumeric id); a route's `from` overrides it.
    pub from: Option<String>,
    /// Verifies Vonage's signed webhooks (inbound SMS, delivery receipts).
    pub signature_secret: Option<Secret>,
    pub signature_method: Option<VonageSigMethod>,
    pub base_url: Option<String>,
}

pub struct Vonage {
    pub(crate) name: String,
    pub(crate) settings: VonageSettings,
    pub(crate) client: reqwest::Client,
    pub(crate) callback: Option<String>,
}

/// Vonage status codes by what they mean for routing.
fn classify(name: &str, status: &str, text: &str) -> SendError {
    let reason = format!("{name}: Vonage status {status}: {text}");
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
impl SmsSender for Vonage {
    async fn send(&self, sms: &Sms) -> Result<SentSms, SendError> {
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
        if let Some(callback) = &self.callback {
            form.push(("callback", callback));
            form.push(("status-report-req", "1"));
        }
        let url = format!("{}/sms/json", s.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL));
        let response = self.client.post(url).form(&form).send().await.map_err(|e| transport_error(&self.name, e))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(status_error(&self.name, status, text.chars().take(200).collect::<String>().as_str()));
        }
        let body: serde_json::Value =
            response.json().await.map_err(|e| SendError::unavailable(format!("{}: unreadable response: {e}", self.name)))?;
        let parts = body["messages"]
            .as_array()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| SendError::unavailable(format!("{}: response lists no messages", self.name)))?;
        if let Some(failed) = parts.iter().find(|p| p["status"].as_str() != Some("0")) {
            return Err(classify(
                &self.name,
                failed["status"].as_str().unwrap_or("?"),
                failed["error-text"].as_str().unwrap_or("no error text"),
            ));
        }
        let id = parts[0]["message-id"].as_str().map(str::to_string);
        Ok(SentSms { provider: self.name.clone(), provider_message_id: id })
    }
}
