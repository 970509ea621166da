//! The dev outbox: an `SmsSender` that sends nothing, so a new user can run phonegate with no SMS
//! account. The messages it "sent" are the queue's own rows that name it as their provider; the
//! outbox view opens their sealed bodies so the codes can be read locally.
use crate::caller::Caller;
use crate::catalog::Catalog;
use crate::context::Context;
use crate::error::VerifyError;
use crate::ports::{self, SendError, SentSms, Sms, SmsSender};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The provider name the dev outbox records on the messages it takes.
pub const PROVIDER: &str = "outbox";

#[derive(Clone, Debug, Serialize)]
pub struct OutboxMessage {
    pub id: String,
    pub to: String,
    pub body: String,
    pub verification_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Given to a test number (fixed code): recorded by the `test` pseudo-provider, never sent.
    pub test: bool,
}

pub struct OutboxSender;

#[async_trait]
impl SmsSender for OutboxSender {
    /// Takes the message and sends nothing: the message's row (written before any provider sees
    /// it) is the outbox's record of it.
    async fn send(&self, sms: &Sms) -> Result<SentSms, SendError> {
        Ok(SentSms { provider: PROVIDER.into(), provider_message_id: Some(sms.message_id.clone()) })
    }
}

/// What the dev outbox took, for a developer to read.
#[derive(Clone)]
pub struct Outbox {
    ctx: Context,
    catalog: Catalog,
}

impl Outbox {
    pub fn new(ctx: Context, catalog: Catalog) -> Self {
        Self { ctx, catalog }
    }

    /// The newest `limit` messages the dev outbox took and test numbers were given (`test`),
    /// optionally only those to one number.
    /// A service key sees only its services' messages.
    pub async fn messages(&self, caller: &Caller, to: Option<&str>, limit: u32) -> Result<Vec<OutboxMessage>, VerifyError> {
        let to = to.map(|raw| self.ctx.parse_phone(raw)).transpose()?.map(|p| p.as_str().to_string());
        let names: Option<Vec<String>> = match &caller.scope {
            crate::caller::Scope::All => None,
            _ => Some(self.catalog.services(caller).await?.into_iter().map(|s| s.name).collect()),
        };
        let messages = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.outbox(to.as_deref(), limit)?)).await?;
        messages
            .into_iter()
            .filter(|m| names.as_ref().is_none_or(|names| m.service.as_ref().is_some_and(|s| names.contains(s))))
            .map(|m| {
                let body = self
                    .ctx
                    .keys
                    .open_text(&m.id, &m.body_sealed)
                    .ok_or_else(|| VerifyError::Crypto(format!("message {} does not open with the server secret", m.id)))?;
                let test = m.provider.as_deref() == Some(crate::model::test_numbers::PROVIDER);
                Ok(OutboxMessage {
                    body,
                    to: m.to.to_string(),
                    verification_id: m.verification_id,
                    created_at: m.created_at,
                    id: m.id,
                    test,
                })
            })
            .collect()
    }
}
