//! The dev outbox: an `SmsSender` that stores messages in the database instead of sending them,
//! so a new user can run phonegate with no SMS account and read the codes locally.
use crate::clock::Clock;
use crate::ids::new_id;
use crate::ports::{OutboxStore, SendError, SentSms, Sms, SmsSender};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;

#[derive(Clone, Debug, Serialize)]
pub struct OutboxMessage {
    pub id: String,
    pub to: String,
    pub body: String,
    pub verification_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub struct OutboxSender {
    store: Arc<dyn OutboxStore>,
    clock: Arc<dyn Clock>,
}

impl OutboxSender {
    pub fn new(store: Arc<dyn OutboxStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }
}

#[async_trait]
impl SmsSender for OutboxSender {
    async fn send(&self, sms: &Sms) -> Result<SentSms, SendError> {
        let message = OutboxMessage {
            id: new_id("SM"),
            to: sms.to.to_string(),
            body: sms.body.clone(),
            verification_id: sms.verification_id.clone(),
            created_at: self.clock.now(),
        };
        if let Err(e) = self.store.push_outbox(&message).await {
            tracing::error!(error = %e, "the dev outbox could not store a message");
            return Err(SendError::retryable("the dev outbox could not store the message"));
        }
        Ok(SentSms { provider: "outbox".into(), provider_message_id: Some(message.id) })
    }
}
