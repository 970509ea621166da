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
use crate::model::recipient::Recipient;
use crate::model::service::Service;
use crate::model::verification::{Status, Verification};
use crate::model::workflow::Channel;
use crate::ports::{self, MessageResult, Outgoing, StoreError, Tx};
use crate::ports::{Lease, MessageSender, save_verification as save};
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
    sender: std::sync::Arc<dyn MessageSender>,
    pub(crate) times: DeliveryTimes,
}

impl Delivery {
    pub fn new(ctx: Context, sender: std::sync::Arc<dyn MessageSender>, times: DeliveryTimes) -> Self {
        Self { ctx, sender, times }
    }

    /// Whether some provider serves `channel` (the dev outbox serves them all).
    pub fn serves(&self, channel: Channel) -> bool {
        self.sender.channels().contains(&channel)
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
        let sms = self.outgoing(&message, body).await?;
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
            if let (Some(reason), Some(vid)) = (&record.error, &message.verification_id) {
                failed = step_failed(tx, vid, message.step, !message.resend, reason, now)?;
            }
            Ok::<_, VerifyError>(Some((receipt, failed)))
        })
        .await?;
        if matches!(outcome, DispatchOutcome::Failed(_)) {
            self.ctx.steps_due.notify_one();
        }
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

    /// What the sender gets for a message: its text, and for a call, a WhatsApp template or an
    /// e-mail what their providers need besides (the code alone, the language, the e-mail's
    /// subject and HTML part, the service's sender), read with the verification and its service.
    async fn outgoing(&self, message: &Message, body: String) -> Result<Outgoing, VerifyError> {
        let mut out = Outgoing {
            channel: message.channel,
            service: message.service.clone(),
            verification_id: message.verification_id.clone(),
            ..Outgoing::text(message.id.clone(), message.to.clone(), body)
        };
        let Some(vid) = message.verification_id.clone().filter(|_| message.channel != Channel::Sms) else { return Ok(out) };
        let found = ports::read(self.ctx.store.as_ref(), move |tx| {
            let Some(v) = tx.verification(&vid)? else { return Ok::<_, VerifyError>(None) };
            let service = tx.service(&v.service_id)?;
            Ok(Some((v, service)))
        })
        .await?;
        let Some((v, service)) = found else { return Ok(out) };
        let code = self
            .ctx
            .keys
            .open(&v.id, &v.code_sealed)
            .ok_or_else(|| VerifyError::Crypto("sealed code does not open with the server secret".into()))?;
        // A call's language is the one its text is in (English where the locale has no spoken text).
        out.locale = match message.channel {
            Channel::Voice => crate::model::locales::spoken_locale(&v.locale).to_string(),
            _ => v.locale.clone(),
        };
        if message.channel == Channel::Voice {
            out.send_digits.clone_from(&v.send_digits);
        }
        if let Some(service) = &service {
            out.wait_for_key = service.channels.voice_key_press;
            if message.channel == Channel::Whatsapp {
                out.from.clone_from(&service.channels.whatsapp_from);
            }
            if message.channel == Channel::Email {
                let name = v.brand.as_deref().unwrap_or(&service.name);
                let mut parts = crate::model::email::render(&v.locale, name, &out.body, code.expose());
                parts.from = v.email_from.clone().or_else(|| service.channels.email_from.clone());
                parts.reply_to.clone_from(&service.channels.email_reply_to);
                out.email = Some(parts);
            }
        }
        out.code = Some(code.expose().to_string());
        Ok(out)
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
            // An undelivered step hands over to the next one at once.
            if let Some(m) = updated.as_ref().filter(|m| matches!(m.status, DeliveryStatus::Failed | DeliveryStatus::Undelivered))
                && let Some(vid) = &m.verification_id
            {
                step_failed(tx, vid, m.step, false, error.as_deref().unwrap_or("undelivered"), now)?;
            }
            Ok::<_, VerifyError>(updated)
        })
        .await?;
        if let Some(m) = &updated {
            self.observe_receipt(m);
            if matches!(m.status, DeliveryStatus::Failed | DeliveryStatus::Undelivered) {
                self.ctx.steps_due.notify_one();
            }
        }
        Ok(updated)
    }

    /// What a call says, asked by the provider that placed it once the callee pressed a key (a
    /// call that waits for one says nothing else): the text of `message_id`, when it is a call of
    /// the pending verification `verification_id` and `provider_message_id` is that call's (or
    /// not yet recorded, the send's answer still on its way). Nothing for anything else.
    #[tracing::instrument(name = "delivery.spoken_text", level = "debug", skip_all)]
    pub async fn spoken_text(
        &self,
        _caller: &Caller,
        verification_id: &str,
        message_id: &str,
        provider_message_id: &str,
    ) -> Result<Option<String>, VerifyError> {
        let now = self.ctx.now();
        let (vid, mid, pmid) = (verification_id.to_string(), message_id.to_string(), provider_message_id.to_string());
        let call = ports::read(self.ctx.store.as_ref(), move |tx| {
            let Some(v) = tx.verification(&vid)? else { return Ok::<_, VerifyError>(None) };
            if v.status_at(now) != Status::Pending {
                return Ok(None);
            }
            let m = tx.messages_for_verification(&vid)?.into_iter().find(|m| m.id == mid);
            Ok(m.filter(|m| m.channel == Channel::Voice && m.provider_message_id.as_deref().is_none_or(|p| p == pmid)))
        })
        .await?;
        Ok(call.and_then(|m| self.ctx.keys.open_text(&m.id, &m.body_sealed)))
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
        let recipient = Recipient::Phone(to.clone());
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
            true => (self.test_message(service, &recipient, None, &body, false, now), None),
            false => {
                let (m, l) = self.claimed_message(service, &recipient, None, &body, false, now);
                (m, Some(l))
            }
        };
        let id = message.id.clone();
        let (m, l) = (message.clone(), lease.clone());
        ports::write(self.ctx.store.as_ref(), move |tx| {
            if m.to.phone().map(|p| tx.is_opted_out(p)).transpose()?.unwrap_or(false) {
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

    /// Writes the message carrying `code` for `v` by `channel` (`resend`: a later send, whose
    /// failure does not fail the verification), already claimed by the caller, who sends it
    /// right after the commit. A test number's message is recorded as sent by the `test`
    /// pseudo-provider, with no claim: nobody ever sends it.
    pub(crate) fn queue(
        &self,
        tx: &mut dyn Tx,
        service: &Service,
        v: &Verification,
        code: &Code,
        (channel, resend): (Channel, bool),
        now: DateTime<Utc>,
    ) -> Result<Queued, VerifyError> {
        let body = message_body(service, v, code, channel);
        let at_step = |m: Message| Message { channel, step: Some(v.step), ..m };
        if v.test {
            let message = at_step(self.test_message(service, &v.to, Some(v.id.clone()), &body, resend, now));
            tx.insert_message(&message, None)?;
            return Ok((message, None));
        }
        let (message, lease) = self.claimed_message(service, &v.to, Some(v.id.clone()), &body, resend, now);
        let message = at_step(message);
        tx.insert_message(&message, Some(&lease))?;
        Ok((message, Some(lease)))
    }

    /// A test number's message: sealed like any other, recorded as sent by the `test`
    /// pseudo-provider, never claimed or sent.
    fn test_message(
        &self,
        service: &Service,
        to: &Recipient,
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
        to: &Recipient,
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
            channel: Channel::Sms,
            step: None,
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

/// A message of a verification could not be delivered. When it was its running step's and a
/// step follows, the next step is due at once (the worker starts it); else, for a first send
/// with no later message, the verification has failed. Returns the verification when it failed.
fn step_failed(
    tx: &mut dyn Tx,
    id: &str,
    step: Option<u32>,
    first: bool,
    reason: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Verification>, StoreError> {
    let Some(mut v) = tx.verification(id)? else { return Ok(None) };
    if v.status_at(now) != Status::Pending {
        return Ok(None);
    }
    if step == Some(v.step) && v.step_due_at.is_some() {
        v.step_due_at = Some(now);
        save(tx, &mut v)?;
        return Ok(None);
    }
    if !first || v.sends > 1 || v.workflow.steps().len() > 1 {
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
/// PSD2) in its language, as the service was when the verification started, and by SMS the
/// Android SMS Retriever hash alone on the last line; for a call, what is spoken
/// (`locales::spoken`).
fn message_body(service: &Service, v: &Verification, code: &Code, channel: Channel) -> String {
    let service = v.service_as_started(service);
    let name = v.brand.as_deref().unwrap_or(service.shown_name());
    if channel == Channel::Voice {
        // A call says the service's spoken name where it has one.
        let name = v.brand.as_deref().or(service.channels.voice_name.as_deref()).unwrap_or(service.shown_name());
        return crate::model::locales::spoken(&v.locale, name, code.expose());
    }
    let body = match &v.psd2 {
        None => service.render_as(name, &v.locale, code.expose()),
        Some(p) => crate::model::locales::psd2(&v.locale)
            .replace("{service}", name)
            .replace("{amount}", &p.amount)
            .replace("{payee}", &p.payee)
            .replace("{code}", code.expose()),
    };
    match &v.app_hash {
        Some(hash) if channel == Channel::Sms => format!("{body}\n\n{hash}"),
        _ => body,
    }
}
