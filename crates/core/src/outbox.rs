//! The dev outbox: an `SmsSender` that stores messages in the database instead of sending them,
//! so a new user can run phonegate with no SMS account and read the codes locally.
use crate::caller::Caller;
use crate::clock::Clock;
use crate::engine::Verifier;
use crate::error::VerifyError;
use crate::ids::new_id;
use crate::ports::{self, SendError, SentSms, Sms, SmsSender, Store};
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
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl OutboxSender {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
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
        let m = message.clone();
        if let Err(e) = ports::write(self.store.as_ref(), move |tx| Box::pin(async move { tx.push_outbox(&m).await })).await {
            tracing::error!(error = %e, "the dev outbox could not store a message");
            return Err(SendError::retryable("the dev outbox could not store the message"));
        }
        Ok(SentSms { provider: "outbox".into(), provider_message_id: Some(message.id) })
    }
}

impl Verifier {
    /// The newest `limit` messages the dev outbox stored, optionally only those to one number.
    pub async fn outbox(&self, _caller: &Caller, to: Option<&str>, limit: u32) -> Result<Vec<OutboxMessage>, VerifyError> {
        let to = to.map(|raw| self.parse_phone(raw)).transpose()?.map(|p| p.as_str().to_string());
        ports::read(self.store.as_ref(), move |tx| Box::pin(async move { Ok(tx.outbox(to.as_deref(), limit).await?) })).await
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<(), VerifyError> {
        Ok(self.store.ping().await?)
    }
}
