//! The generic HTTP provider, for any other gateway: POSTs JSON
//! `{message_id, channel, to, body, locale, from, service, verification_id}` with an
//! `X-Phonegate-Signature` header (see `signature::webhook_signature`) and
//! `Idempotency-Key: message_id`, so the gateway can drop a repeated delivery. A JSON response may
//! name the gateway's id as `id`.
//!
//! It serves SMS (`channel: "sms"`, `body` the text) and calls (`channel: "voice"`, `body` what
//! to say, in `locale`; `wait_for_key`: say it only after the callee pressed a key; `send_digits`:
//! keys to dial once answered, or null). Not WhatsApp
//! or e-mail: WhatsApp codes must go as an approved authentication template through a WhatsApp
//! Business provider, and e-mail has its own (`smtp`).
use crate::common::{Traced, status_error, transport_error};
use crate::secret::Secret;
use crate::signature::webhook_signature;
use async_trait::async_trait;
use phonegate_core::Channel;
use phonegate_core::ports::{Accepted, MessageSender, Outgoing, SendError};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    /// Signs every request (HMAC-SHA256).
    pub secret: Secret,
}

pub struct Webhook {
    pub(crate) name: String,
    pub(crate) settings: WebhookSettings,
    pub(crate) client: reqwest::Client,
}

/// A JSON POST signed with `X-Phonegate-Signature` (see `signature::webhook_signature`) and
/// carrying `Idempotency-Key`: how phonegate calls a gateway or an app.
pub(crate) fn signed_post(
    client: &reqwest::Client,
    url: &str,
    secret: &Secret,
    idempotency_key: &str,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let signature = webhook_signature(secret.expose(), chrono::Utc::now().timestamp(), &body);
    client
        .post(url)
        .traced()
        .header("content-type", "application/json")
        .header("x-phonegate-signature", signature)
        .header("idempotency-key", idempotency_key)
        .body(body)
}

#[async_trait]
impl MessageSender for Webhook {
    async fn send(&self, sms: &Outgoing) -> Result<Accepted, SendError> {
        let mut payload = serde_json::json!({
            "message_id": sms.message_id,
            "channel": sms.channel.as_str(),
            "to": sms.to.as_str(),
            "body": sms.body,
            "locale": sms.locale,
            "from": sms.from,
            "service": sms.service,
            "verification_id": sms.verification_id,
        });
        if sms.channel == Channel::Voice {
            payload["wait_for_key"] = sms.wait_for_key.into();
            payload["send_digits"] = sms.send_digits.clone().into();
        }
        let body = serde_json::to_vec(&payload).expect("JSON of strings");
        let response = signed_post(&self.client, &self.settings.url, &self.settings.secret, &sms.message_id, body)
            .send()
            .await
            .map_err(|e| transport_error(&self.name, e))?;
        let status = response.status();
        if status.is_success() {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let id = body["id"].as_str().map(|id| id.chars().take(100).collect());
            return Ok(Accepted { provider: self.name.clone(), provider_message_id: id });
        }
        // Response bodies are not repeated: a gateway may echo the message, code included.
        match status.as_u16() {
            400 | 422 => Err(SendError::Rejected(format!("{}: HTTP {}", self.name, status.as_u16()))),
            _ => Err(status_error(&self.name, status, "")),
        }
    }

    fn channels(&self) -> &[Channel] {
        &[Channel::Sms, Channel::Voice]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{client, only_request, sms};
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    async fn gateway(response: ResponseTemplate) -> (Webhook, MockServer) {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(response).mount(&server).await;
        let settings = WebhookSettings { url: format!("{}/send?token=abc", server.uri()), secret: Secret::new("whsec") };
        (Webhook { name: "gw".into(), settings, client: client() }, server)
    }

    #[tokio::test]
    async fn posts_signed_json_with_an_idempotency_key() {
        let (w, server) = gateway(ResponseTemplate::new(200).set_body_json(serde_json::json!({ "id": "gw-1" }))).await;
        let sent = w.send(&sms("code 123456")).await.unwrap();
        assert_eq!(sent.provider_message_id.as_deref(), Some("gw-1"));
        let r = only_request(&server).await;
        assert_eq!(r.url.path(), "/send");
        assert_eq!(r.url.query(), Some("token=abc"));
        assert_eq!(r.headers["idempotency-key"], "SM00000000000000000000000000000001");
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "message_id": "SM00000000000000000000000000000001",
                "channel": "sms",
                "to": "+4915123456789",
                "body": "code 123456",
                "locale": "en",
                "from": null,
                "service": null,
                "verification_id": "VE00000000000000000000000000000001",
            })
        );
        let header = r.headers["x-phonegate-signature"].to_str().unwrap();
        let t: i64 = header.strip_prefix("t=").unwrap().split(',').next().unwrap().parse().unwrap();
        assert_eq!(header, webhook_signature("whsec", t, &r.body));
        assert!((chrono::Utc::now().timestamp() - t).abs() < 60);
    }

    #[tokio::test]
    async fn a_call_names_its_channel_and_says_its_text_in_its_language() {
        let (w, server) = gateway(ResponseTemplate::new(202)).await;
        assert_eq!(w.channels(), [Channel::Sms, Channel::Voice]);
        let call = Outgoing {
            channel: Channel::Voice,
            locale: "de".into(),
            code: Some("123456".into()),
            wait_for_key: true,
            send_digits: Some("w1234".into()),
            service: Some("shop".into()),
            from: Some("+15005550006".into()),
            ..sms("Ihr Code lautet: 1, 2, 3, 4, 5, 6.")
        };
        assert_eq!(w.send(&call).await.unwrap().provider_message_id, None);
        let body: serde_json::Value = serde_json::from_slice(&only_request(&server).await.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "message_id": "SM00000000000000000000000000000001",
                "channel": "voice",
                "to": "+4915123456789",
                "body": "Ihr Code lautet: 1, 2, 3, 4, 5, 6.",
                "locale": "de",
                "from": "+15005550006",
                "service": "shop",
                "verification_id": "VE00000000000000000000000000000001",
                "wait_for_key": true,
                "send_digits": "w1234",
            })
        );
    }

    #[tokio::test]
    async fn maps_error_statuses() {
        for (status, expected) in [(400, "rejected"), (422, "rejected"), (429, "retryable"), (401, "unavailable"), (503, "unavailable")] {
            let (w, _server) = gateway(ResponseTemplate::new(status)).await;
            let kind = match w.send(&sms("x")).await.unwrap_err() {
                SendError::Rejected(_) => "rejected",
                SendError::Unavailable { retry_safe: true, .. } => "retryable",
                SendError::Unavailable { .. } => "unavailable",
            };
            assert_eq!(kind, expected, "{status}");
        }
    }
}
