//! sipgate.io: `POST /v2/sessions/sms` with JSON `{smsId, recipient, message}` and HTTP Basic
//! (token id + personal access token). Success is 204 No Content; no message id is returned.
use crate::common::{Traced, status_error, transport_error};
use crate::secret::Secret;
use async_trait::async_trait;
use phonegate_core::ports::{Accepted, MessageSender, Outgoing, SendError};
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
impl MessageSender for Sipgate {
    async fn send(&self, sms: &Outgoing) -> Result<Accepted, SendError> {
        let s = &self.settings;
        let url = format!("{}/v2/sessions/sms", s.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL));
        let body = serde_json::json!({ "smsId": s.sms_id, "recipient": sms.to.as_str(), "message": sms.body });
        let response = self
            .client
            .post(url)
            .basic_auth(&s.token_id, Some(s.token.expose()))
            .json(&body)
            .traced()
            .send()
            .await
            .map_err(|e| transport_error(&self.name, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Accepted { provider: self.name.clone(), provider_message_id: None });
        }
        // Response bodies are not repeated: a gateway may echo the message, code included.
        match status.as_u16() {
            // sipgate answers 400 for a recipient or message it will not send.
            400 => Err(SendError::Rejected(format!("{}: HTTP 400", self.name))),
            _ => Err(status_error(&self.name, status, "")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{basic, client, only_request, sms};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    async fn sipgate(status: u16) -> (Sipgate, MockServer) {
        let server = MockServer::start().await;
        Mock::given(method("POST")).and(path("/v2/sessions/sms")).respond_with(ResponseTemplate::new(status)).mount(&server).await;
        let settings =
            SipgateSettings { token_id: "token-ABC".into(), token: Secret::new("pat"), sms_id: "s0".into(), base_url: Some(server.uri()) };
        (Sipgate { name: "sg".into(), settings, client: client() }, server)
    }

    #[tokio::test]
    async fn sends_the_exact_json_sipgate_expects() {
        let (s, server) = sipgate(204).await;
        let sent = s.send(&sms("Ihr Code: 123456 — ✓")).await.unwrap();
        assert_eq!(sent, Accepted { provider: "sg".into(), provider_message_id: None });
        let r = only_request(&server).await;
        assert_eq!(r.headers["authorization"], basic("token-ABC", "pat").as_str());
        assert_eq!(r.headers["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body, serde_json::json!({ "smsId": "s0", "recipient": "+4915123456789", "message": "Ihr Code: 123456 — ✓" }));
    }

    #[tokio::test]
    async fn maps_error_statuses() {
        for (status, rejected) in [(400, true), (401, false), (402, false), (403, false), (500, false)] {
            let (s, _server) = sipgate(status).await;
            let err = s.send(&sms("x")).await.unwrap_err();
            assert_eq!(matches!(err, SendError::Rejected(_)), rejected, "{status}: {err}");
        }
    }
}
