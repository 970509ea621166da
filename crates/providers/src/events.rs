//! The app's webhook for account events: POSTs each event's JSON with the same signature as the
//! generic HTTP provider (`X-Phonegate-Signature: t=UNIX,v1=HMAC-SHA256(secret, "UNIX." + body)`)
//! and `Idempotency-Key: EVENT_ID`, so the app can drop a repeated delivery.
use crate::secret::Secret;
use crate::webhook::signed_post;
use async_trait::async_trait;
use phonegate_core::accounts::events::{AccountEvent, EventSink};
use serde::{Deserialize, Serialize};

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
        let body = event.payload.as_bytes().to_vec();
        let response = signed_post(&self.client, &self.settings.url, &self.settings.secret, &event.id, body)
            .header("x-phonegate-event", &event.kind)
            .send()
            .await
            // Without the URL: it may carry a token.
            .map_err(|e| format!("the app's webhook could not be reached ({})", if e.is_timeout() { "timeout" } else { "connection" }))?;
        if response.status().is_success() { Ok(()) } else { Err(format!("the app's webhook answered HTTP {}", response.status().as_u16())) }
    }
}
