//! The app's webhook for account events: POSTs each event's JSON with the same signature as the
//! generic HTTP provider (`X-Phonegate-Signature: t=UNIX,v1=HMAC-SHA256(secret, "UNIX." + body)`)
//! and `Idempotency-Key: EVENT_ID`, so the app can drop a repeated delivery.
use crate::secret::Secret;
use crate::webhook::signed_post;
use async_trait::async_trait;
use phonegate_core::accounts::events::{AccountEvent, EventSink};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

/// `[accounts.webhook]`: where account events go.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppWebhookSettings {
    pub url: String,
    pub secret: Secret,
}

pub struct AppWebhook {
    settings: AppWebhookSettings,
    client: reqwest::Client,
}

impl AppWebhook {
    pub fn new(settings: AppWebhookSettings) -> Self {
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().expect("an HTTP client");
        Self { settings, client }
    }
}

#[async_trait]
impl EventSink for AppWebhook {
    async fn deliver(&self, event: &AccountEvent) -> Result<(), String> {
        let span = tracing::debug_span!(
            "webhook.deliver",
            otel.kind = "client",
            event = %event.id,
            kind = %event.kind,
            status = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let result = self.post(event).instrument(span.clone()).await;
        match &result {
            Ok(status) => span.record("status", status),
            Err(_) => span.record("otel.status_code", "ERROR"),
        };
        result.and_then(
            |status| {
                if (200..300).contains(&status) { Ok(()) } else { Err(format!("the app's webhook answered HTTP {status}")) }
            },
        )
    }
}

impl AppWebhook {
    /// POSTs the event; the app's HTTP status.
    async fn post(&self, event: &AccountEvent) -> Result<u16, String> {
        let body = event.payload.as_bytes().to_vec();
        let response = signed_post(&self.client, &self.settings.url, &self.settings.secret, &event.id, body)
            .header("x-phonegate-event", &event.kind)
            .send()
            .await
            // Without the URL: it may carry a token.
            .map_err(|e| format!("the app's webhook could not be reached ({})", if e.is_timeout() { "timeout" } else { "connection" }))?;
        Ok(response.status().as_u16())
    }
}
