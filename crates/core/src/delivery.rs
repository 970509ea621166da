//! Sending through the durable queue, delivery receipts and inbound messages. A message is
//! written (in the start's own transaction) before any provider sees it; a sender claims it with
//! a lease, so two workers never send the same message at once and a crashed sender's message is
//! taken over when its lease ends.
use crate::caller::Caller;
use crate::code::Code;
use crate::context::Context;
use crate::error::VerifyError;
use crate::model::ids::new_id;
use crate::model::message::{DeliveryStatus, InboundMessage, Message, OptCommand, opt_command};
use crate::model::phone::PhoneNumber;
use crate::model::service::Service;
use crate::model::verification::{Status, Verification};
use crate::ports::{self, MessageResult, Sms, StoreError, Tx};
use crate::ports::{Lease, SmsSender, save_verification as save};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tracing::Instrument;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchOutcome {
    Sent {
        provider: String,
    },
    Failed(String),
    /// Another sender holds the message, or it was already done.
    NotClaimed,
}

/// What an inbound message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundOutcome {
    Stored,
    OptedOut,
    OptedIn,
    /// This provider message id was processed before.
    Duplicate,
}

/// A message written by `Delivery::queue`, with the claim to send it after the commit (none for a
/// test number's, which is never sent).
pub(crate) type Queued = (Message, Option<Lease>);

/// Bounds on sending.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryTimes {
    /// How long a start request waits for the first provider answer before returning 201 and
    /// leaving the send to the background.
    pub send_wait: Duration,
    /// How long a claimed message is held before another worker may take it over.
    pub lease: chrono::Duration,
}

impl Default for DeliveryTimes {
    fn default() -> Self {
        Self { send_wait: Duration::from_secs(5), lease: chrono::Duration::seconds(60) }
    }
}

/// The queue of messages: sending, receipts, inbound messages.
#[derive(Clone)]
pub struct Delivery {
    ctx: Context,
    sender: std::sync::Arc<dyn SmsSender>,
    pub(crate) times: DeliveryTimes,
}

impl Delivery {
    pub fn new(ctx: Context, sender: std::sync::Arc<dyn SmsSender>, times: DeliveryTimes) -> Self {
        Self { ctx, sender, times }
    }

    /// The background worker's step: sends up to `limit` due messages, claiming each one just
    /// before sending it so no claim can run out while it waits behind others. A message that
    /// fails to send is logged and the rest go on.
    pub async fn dispatch_due(&self, limit: u32) -> Result<usize, VerifyError> {
        let mut sent = 0;
        for _ in 0..limit {
            let now = self.ctx.now();
            let token = new_id("LT");
            let queued_before = now - chrono::Duration::from_std(self.times.send_wait).unwrap_or_default();
            let (lease_until, claim) = (now + self.times.lease, token.clone());
            let claimed: Vec<Message> = ports::write(self.ctx.store.as_ref(), move |tx| {
                Ok::<_, VerifyError>(tx.claim_due_messages(now, queued_before, lease_until, &claim, 1)?)
            })
            .await?;
            let Some(message) = claimed.into_iter().next() else { break };
            if let Err(e) = self.send_claimed(message, &token).await {
                tracing::warn!(error = %e, "a queued message could not be handled");
            }
            sent += 1;
        }
        Ok(sent)
    }

    /// Sends a message this process holds the claim on, then records the result in one
    /// transaction: the message's status, a receipt that overtook it, and (for a first send
    /// that no provider took) the verification's failure.
    #[tracing::instrument(name = "delivery.send", level = "debug", skip_all, fields(message = %message.id, to = %message.to.masked()))]
    pub(crate) async fn send_claimed(&self, message: Message, token: &str) -> Result<DispatchOutcome, VerifyError> {
        let Some(body) = self.ctx.keys.open_text(&message.id, &message.body_sealed) else {
            return Err(VerifyError::Crypto(format!("message {} does not open with the server secret", message.id)));
        };
        let sms = Sms {
            message_id: message.id.clone(),
            to: message.to.clone(),
            body,
            service: message.service.clone(),
            from: None,
            verification_id: message.verification_id.clone(),
        };
        let result = self.sender.send(&sms).await;
        let (record, outcome) = match &result {
            Ok(sent) => (
                MessageResult {
                    status: DeliveryStatus::Sent,
                    provider: Some(sent.provider.clone()),
                    provider_message_id: sent.provider_message_id.clone(),
                    error: None,
                },
                DispatchOutcome::Sent { provider: sent.provider.clone() },
            ),
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(message = %message.id, error = %reason, "no provider delivered the message");
                let record = MessageResult {
                    status: DeliveryStatus::Failed,
                    provider: None,
                    provider_message_id: None,
                    error: Some(reason.clone()),
                };
                (record, DispatchOutcome::Failed(reason))
            }
        };
        let (now, token) = (self.ctx.now(), token.to_string());
        let finished: Option<(Option<Message>, Option<Verification>)> = ports::write(self.ctx.store.as_ref(), move |tx| {
            if !tx.finish_message(&message.id, &token, &record, now)? {
                return Ok(None);
            }
            // A receipt may have overtaken this result.
            let mut receipt = None;
            if let Some(pmid) = &record.provider_message_id
                && let Some((status, error)) = tx.take_held_receipt(pmid)?
            {
                receipt = tx.apply_receipt(pmid, status, error.as_deref(), now)?;
            }
            let mut failed = None;
            if let (Some(reason), false, Some(vid)) = (&record.error, message.resend, &message.verification_id) {
                failed = fail_first_send(tx, vid, reason, now)?;
            }
            Ok::<_, VerifyError>(Some((receipt, failed)))
        })
        .await?;
        match finished {
            None => tracing::warn!("lost the claim on a message while sending it"),
            Some((receipt, failed)) => {
                if let Some(m) = receipt {
                    self.observe_receipt(&m);
                }
                if let Some(v) = failed {
                    self.ctx.observer.verification_entered(&v.service_id, v.channel, v.status);
                }
            }
        }
        Ok(outcome)
    }

    /// Applies a provider's delivery receipt. One for a message id not (yet) known is held until
    /// the send's result names it; retention drops it if that never happens.
    #[tracing::instrument(name = "delivery.receipt", level = "debug", skip_all)]
    pub async fn record_receipt(
        &self,
        _caller: &Caller,
        provider_message_id: &str,
        status: DeliveryStatus,
        error: Option<&str>,
    ) -> Result<Option<Message>, VerifyError> {
        let now = self.ctx.now();
        let (pmid, error) = (provider_message_id.to_string(), error.map(str::to_string));
        let updated = ports::write(self.ctx.store.as_ref(), move |tx| {
            let mut updated = tx.apply_receipt(&pmid, status, error.as_deref(), now)?;
            // No message took it: either the receipt overtook the send's result (hold it), or
            // it came too late for its message's status, or the result was stored in between
            // (apply again).
            if updated.is_none() && !tx.hold_receipt(&pmid, status, error.as_deref(), now)? {
                updated = tx.apply_receipt(&pmid, status, error.as_deref(), now)?;
            }
            Ok::<_, VerifyError>(updated)
        })
        .await?;
        if let Some(m) = &updated {
            self.observe_receipt(m);
        }
        Ok(updated)
    }

    fn observe_receipt(&self, m: &Message) {
        let region = m.to.region().unwrap_or_else(|| "unknown".into());
        self.ctx.observer.sms_receipt(m.provider.as_deref().unwrap_or("unknown"), &region, m.status);
    }

    /// Stores an inbound message once and runs its handlers (so far: STOP / START opt-out), in
    /// one transaction: a retried webhook after a failure is processed again, a duplicate of a
    /// processed one changes nothing.
    #[tracing::instrument(name = "delivery.inbound", level = "debug", skip_all, fields(provider = %provider))]
    pub async fn receive(
        &self,
        _caller: &Caller,
        provider: &str,
        provider_message_id: &str,
        from: &str,
        to: &str,
        body: &str,
    ) -> Result<InboundOutcome, VerifyError> {
        let from = PhoneNumber::parse_e164_lenient(from)?;
        let now = self.ctx.now();
        let inbound = InboundMessage {
            id: new_id("IM"),
            provider: provider.into(),
            provider_message_id: provider_message_id.into(),
            from,
            to: to.into(),
            body: body.into(),
            received_at: now,
        };
        let command = opt_command(body);
        let id = inbound.id.clone();
        let stored = ports::write(self.ctx.store.as_ref(), move |tx| {
            if !tx.insert_inbound(&inbound)? {
                return Ok::<_, VerifyError>(false);
            }
            if let Some(c) = command {
                tx.set_opted_out(&inbound.from, c == OptCommand::OptOut, now)?;
            }
            Ok(true)
        })
        .await?;
        if !stored {
            return Ok(InboundOutcome::Duplicate);
        }
        tracing::info!(inbound = %id, ?command, "inbound message");
        Ok(match command {
            Some(OptCommand::OptOut) => InboundOutcome::OptedOut,
            Some(OptCommand::OptIn) => InboundOutcome::OptedIn,
            None => InboundOutcome::Stored,
        })
    }

    /// Sends a text that is not a code (an invitation) to `to` for the service `service`: it
    /// costs what a code would in every send budget, and goes through the same queue. To a test
    /// number of the service it is recorded, costs nothing and is never sent.
    #[tracing::instrument(name = "delivery.send_text", level = "debug", skip_all, fields(to = %to.masked()))]
    pub async fn send_text(&self, caller: &Caller, service: &Service, to: &PhoneNumber, body: String) -> Result<String, VerifyError> {
        let test = self.ctx.test_numbers.code_for(service, to).is_some();
        if !test && !self.ctx.budgets.destination_allowed(&service.name, to) {
            return Err(crate::model::phone::PhoneError::DestinationNotAllowed.into());
        }
        let now = self.ctx.now();
        let budgets = self.ctx.budgets.for_service(&service.name);
        let charges = match test {
            true => Vec::new(),
            false => budgets.for_send(to.as_str(), &to.calling_code(), caller.key_id.as_deref(), &service.id),
        };
        let (message, lease) = match test {
            true => (self.test_message(service, to, None, &body, false, now), None),
            false => {
                let (m, l) = self.claimed_message(service, to, None, &body, false, now);
                (m, Some(l))
            }
        };
        let id = message.id.clone();
        let (m, l) = (message.clone(), lease.clone());
        ports::write(self.ctx.store.as_ref(), move |tx| {
            if tx.is_opted_out(&m.to)? {
                return Err(VerifyError::OptedOut);
            }
            crate::budget::charge(tx, &charges, now)?;
            tx.insert_message(&m, l.as_ref())?;
            Ok(())
        })
        .await?;
        if let Some(lease) = lease {
            let this = self.clone();
            tokio::spawn(async move { this.send_claimed(message, &lease.token).await }.in_current_span());
        }
        Ok(id)
    }

    /// Writes the message carrying `code` for `v`, already claimed by the caller, who sends it
    /// right after the commit. A test number's message is recorded as sent by the `test`
    /// pseudo-provider, with no claim: nobody ever sends it.
    pub(crate) fn queue(
        &self,
        tx: &mut dyn Tx,
        service: &Service,
        v: &Verification,
        code: &Code,
        resend: bool,
        now: DateTime<Utc>,
    ) -> Result<Queued, VerifyError> {
        let body = message_body(service, v, code);
        if v.test {
            let message = self.test_message(service, &v.to, Some(v.id.clone()), &body, resend, now);
            tx.insert_message(&message, None)?;
            return Ok((message, None));
        }
        let (message, lease) = self.claimed_message(service, &v.to, Some(v.id.clone()), &body, resend, now);
        tx.insert_message(&message, Some(&lease))?;
        Ok((message, Some(lease)))
    }

    /// A test number's message: sealed like any other, recorded as sent by the `test`
    /// pseudo-provider, never claimed or sent.
    fn test_message(
        &self,
        service: &Service,
        to: &PhoneNumber,
        verification_id: Option<String>,
        body: &str,
        resend: bool,
        now: DateTime<Utc>,
    ) -> Message {
        let (message, _) = self.claimed_message(service, to, verification_id, body, resend, now);
        Message { status: DeliveryStatus::Sent, provider: Some(crate::model::test_numbers::PROVIDER.into()), claims: 0, ..message }
    }

    /// A new message, its body sealed, claimed by the caller (who sends it after the commit).
    pub(crate) fn claimed_message(
        &self,
        service: &Service,
        to: &PhoneNumber,
        verification_id: Option<String>,
        body: &str,
        resend: bool,
        now: DateTime<Utc>,
    ) -> (Message, Lease) {
        let id = new_id("SM");
        let lease = Lease { token: new_id("LT"), until: now + self.times.lease };
        let message = Message {
            body_sealed: self.ctx.keys.seal_text(&id, body),
            id,
            verification_id,
            service: Some(service.name.clone()),
            to: to.clone(),
            resend,
            status: DeliveryStatus::Sending,
            provider: None,
            provider_message_id: None,
            error: None,
            claims: 1,
            created_at: now,
            updated_at: now,
        };
        (message, lease)
    }
}

/// Marks a verification failed because its first message could not be sent, unless it was sent
/// again meanwhile (the later message may well arrive). Returns it when it changed.
fn fail_first_send(
    tx: &mut dyn Tx,
    id: &str,
    reason: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Verification>, StoreError> {
    let Some(mut v) = tx.verification(id)? else { return Ok(None) };
    if v.sends > 1 || v.status != Status::Pending {
        return Ok(None);
    }
    v.fail(now, reason.to_string());
    if v.status != Status::Failed {
        return Ok(None);
    }
    save(tx, &mut v)?;
    Ok(Some(v))
}

/// The text of a verification's message: the service's template (a payment code's text for
/// PSD2) in its language, as the service was when the verification started, and the Android SMS
/// Retriever hash alone on the last line.
fn message_body(service: &Service, v: &Verification, code: &Code) -> String {
    let service = v.service_as_started(service);
    let name = v.brand.as_deref().unwrap_or(service.shown_name());
    let body = match &v.psd2 {
        None => service.render_as(name, &v.locale, code.expose()),
        Some(p) => crate::model::locales::psd2(&v.locale)
            .replace("{service}", name)
            .replace("{amount}", &p.amount)
            .replace("{payee}", &p.payee)
            .replace("{code}", code.expose()),
    };
    match &v.app_hash {
        Some(hash) => format!("{body}\n\n{hash}"),
        None => body,
    }
}
