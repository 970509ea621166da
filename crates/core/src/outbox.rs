//! The dev outbox: an `MessageSender` that sends nothing, so a new user can run phonegate with no SMS
//! account. The messages it "sent" are the queue's own rows that name it as their provider; the
//! outbox view opens their sealed bodies so the codes can be read locally.
use crate::caller::Caller;
use crate::catalog::Catalog;
use crate::context::Context;
use crate::error::VerifyError;
use crate::model::workflow::Channel;
use crate::ports::{self, Accepted, MessageSender, Outgoing, SendError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The provider name the dev outbox records on the messages it takes.
pub const PROVIDER: &str = "outbox";

#[derive(Clone, Debug, Serialize)]
pub struct OutboxMessage {
    pub id: String,
    /// sms, voice (the body is what the call says), whatsapp (the template's text with the
    /// code) or email.
    pub channel: Channel,
    pub to: String,
    pub body: String,
    /// An e-mail's subject and HTML part, as the provider would send them.
    pub email: Option<(String, String)>,
    pub verification_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Given to a test number (fixed code): recorded by the `test` pseudo-provider, never sent.
    pub test: bool,
}

pub struct OutboxSender;

#[async_trait]
impl MessageSender for OutboxSender {
    /// Takes the message and sends nothing: the message's row (written before any provider sees
    /// it) is the outbox's record of it.
    async fn send(&self, sms: &Outgoing) -> Result<Accepted, SendError> {
        Ok(Accepted { provider: PROVIDER.into(), provider_message_id: Some(sms.message_id.clone()) })
    }

    /// Every channel: the outbox shows a call as its spoken text, a WhatsApp message as its
    /// template's text with the code, an e-mail as its text and HTML.
    fn channels(&self) -> &[crate::model::workflow::Channel] {
        &crate::model::workflow::Channel::MESSAGE
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
        let to = match to {
            Some(raw) if raw.contains('@') => Some(crate::model::recipient::EmailAddress::parse(raw)?.as_str().to_string()),
            // Any number, whatever its kind (a landline's calls are listed too).
            Some(raw) => {
                let phones = &self.ctx.phones;
                let n = phones
                    .classify(raw)
                    .map(|(n, _)| n)
                    .or_else(|e| phones.normalize(raw).filter(|n| self.ctx.test_numbers.is_test(n)).ok_or(e));
                Some(n.map_err(VerifyError::from)?.as_str().to_string())
            }
            None => None,
        };
        let names: Option<Vec<String>> = match &caller.scope {
            crate::caller::Scope::All => None,
            _ => Some(self.catalog.services(caller).await?.into_iter().map(|s| s.name).collect()),
        };
        // An e-mail is shown as sent: its HTML part needs its verification's code and language.
        let messages = ports::read(self.ctx.store.as_ref(), move |tx| {
            let mut out = Vec::new();
            for m in tx.outbox(to.as_deref(), limit)? {
                let v = match (&m.verification_id, m.channel) {
                    (Some(id), Channel::Email) => tx.verification(id)?,
                    _ => None,
                };
                out.push((m, v));
            }
            Ok::<_, VerifyError>(out)
        })
        .await?;
        messages
            .into_iter()
            .filter(|(m, _)| names.as_ref().is_none_or(|names| m.service.as_ref().is_some_and(|s| names.contains(s))))
            .map(|(m, v)| {
                let body = self
                    .ctx
                    .keys
                    .open_text(&m.id, &m.body_sealed)
                    .ok_or_else(|| VerifyError::Crypto(format!("message {} does not open with the server secret", m.id)))?;
                let test = m.provider.as_deref() == Some(crate::model::test_numbers::PROVIDER);
                let email = v.and_then(|v| {
                    let code = self.ctx.keys.open(&v.id, &v.code_sealed)?;
                    let name = v.brand.clone().or_else(|| m.service.clone()).unwrap_or_default();
                    let parts = crate::model::email::render(&v.locale, &name, &body, code.expose());
                    Some((parts.subject, parts.html))
                });
                Ok(OutboxMessage {
                    channel: m.channel,
                    email,
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
