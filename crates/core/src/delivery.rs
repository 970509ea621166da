//! Sending through the durable queue, delivery receipts and inbound messages. A message is
//! written (in the start's own transaction) before any provider sees it; a sender claims it with
//! a lease, so two workers never send the same message at once and a crashed sender's message is
//! taken over when its lease ends.
use crate::engine::{Verifier, save};
use crate::error::VerifyError;
use crate::model::caller::Caller;
use crate::model::ids::new_id;
use crate::model::message::{DeliveryStatus, InboundMessage, Message, OptCommand, opt_command};
use crate::model::phone::PhoneNumber;
use crate::model::verification::{Channel, Status, Verification};
use crate::ports::{self, MessageResult, Sms, StoreError, Tx};

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

impl Verifier {
    /// The background worker's step: sends up to `limit` due messages, claiming each one just
    /// before sending it so no claim can run out while it waits behind others. A message that
    /// fails to send is logged and the rest go on.
    pub async fn dispatch_due(&self, limit: u32) -> Result<usize, VerifyError> {
        let mut sent = 0;
        for _ in 0..limit {
            let now = self.clock.now();
            let token = new_id("LT");
            let queued_before = now - chrono::Duration::from_std(self.delivery.send_wait).unwrap_or_default();
            let (lease_until, claim) = (now + self.delivery.lease, token.clone());
            let claimed: Vec<Message> = ports::write(self.store.as_ref(), move |tx| {
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
    pub(crate) async fn send_claimed(&self, message: Message, token: &str) -> Result<DispatchOutcome, VerifyError> {
        let Some(body) = self.keys.open_text(&message.id, &message.body_sealed) else {
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
        let (now, token) = (self.clock.now(), token.to_string());
        let finished: Option<(Option<Message>, Option<Verification>)> = ports::write(self.store.as_ref(), move |tx| {
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
                    self.observer.verification_entered(&v.service_id, v.channel, v.status);
                }
            }
        }
        Ok(outcome)
    }

    /// Applies a provider's delivery receipt. One for a message id not (yet) known is held until
    /// the send's result names it; retention drops it if that never happens.
    pub async fn record_receipt(
        &self,
        _caller: &Caller,
        provider_message_id: &str,
        status: DeliveryStatus,
        error: Option<&str>,
    ) -> Result<Option<Message>, VerifyError> {
        let now = self.clock.now();
        let (pmid, error) = (provider_message_id.to_string(), error.map(str::to_string));
        let updated = ports::write(self.store.as_ref(), move |tx| {
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
        self.observer.sms_receipt(m.provider.as_deref().unwrap_or("unknown"), &region, m.status);
    }

    /// Stores an inbound message once and runs its handlers (so far: STOP / START opt-out), in
    /// one transaction: a retried webhook after a failure is processed again, a duplicate of a
    /// processed one changes nothing.
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
        let now = self.clock.now();
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
        let stored = ports::write(self.store.as_ref(), move |tx| {
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

    /// A verification (reported expired once its deadline passed, as `get` does) with what
    /// belongs to it, in one read: its messages, its counted checks (when it has any) and its
    /// silent check (when it is `silent` or `auto`).
    pub async fn detail(&self, caller: &Caller, id: &str) -> Result<Detail, VerifyError> {
        let (id, caller) = (id.to_string(), caller.clone());
        let mut d = ports::read(self.store.as_ref(), move |tx| {
            let verification = crate::engine::visible(&caller, tx.verification(&id)?)?;
            let messages = tx.messages_for_verification(&id)?;
            let checks = if verification.attempts > 0 { tx.checks(&id)? } else { Vec::new() };
            let silent = match verification.channel {
                Channel::Sms => None,
                _ => tx.silent_check_of(&id)?,
            };
            Ok::<_, VerifyError>(Detail { verification, messages, checks, silent })
        })
        .await?;
        d.verification.expire_if_due(self.clock.now());
        Ok(d)
    }

    /// The messages sent for a verification, oldest first.
    pub async fn messages_for(&self, caller: &Caller, verification_id: &str) -> Result<Vec<Message>, VerifyError> {
        Ok(self.detail(caller, verification_id).await?.messages)
    }
}

/// A verification with what belongs to it (`Verifier::detail`).
#[derive(Clone, Debug)]
pub struct Detail {
    pub verification: Verification,
    /// Its messages, oldest first.
    pub messages: Vec<Message>,
    /// Its counted checks, oldest first.
    pub checks: Vec<crate::model::verification::CheckRecord>,
    pub silent: Option<crate::silent::SilentCheck>,
}

impl Detail {
    /// Which channel approved it, once approved: `Silent` when the operator confirmed the
    /// number, else `Sms` (a code).
    pub fn approved_channel(&self) -> Option<Channel> {
        let by_operator = self.silent.as_ref().is_some_and(|c| c.state == crate::silent::CheckState::Matched);
        (self.verification.status == Status::Approved).then_some(if by_operator { Channel::Silent } else { Channel::Sms })
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
