//! Sending through the durable queue, delivery receipts and inbound messages. A message is
//! written before any provider sees it; a sender claims it with a lease, so two workers never
//! send the same message at once and a crashed sender's message is taken over when its lease ends.
use crate::engine::Verifier;
use crate::error::VerifyError;
use crate::ids::new_id;
use crate::message::{DeliveryStatus, InboundMessage, Message, OptCommand, opt_command};
use crate::phone::PhoneNumber;
use crate::ports::{Lease, MessageResult, Sms, StoreError};
use crate::verification::{Status, Verification};

const MAX_RACES: usize = 64;

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
    /// Writes the message already claimed by the caller, who sends it right away.
    pub(crate) async fn enqueue(&self, v: &Verification, service: &str, body: &str, resend: bool) -> Result<(Message, Lease), VerifyError> {
        let id = new_id("SM");
        let now = self.clock.now();
        let lease = Lease { token: new_id("LT"), until: now + self.delivery.lease };
        let message = Message {
            body_sealed: self.keys.seal_text(&id, body),
            id: id.clone(),
            verification_id: Some(v.id.clone()),
            service: Some(service.to_string()),
            to: v.to.clone(),
            resend,
            status: DeliveryStatus::Sending,
            provider: None,
            provider_message_id: None,
            error: None,
            claims: 1,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_message(&message, Some(&lease)).await?;
        Ok((message, lease))
    }

    /// The background worker's step: sends up to `limit` due messages, claiming each one just
    /// before sending it so no claim can run out while it waits behind others. A message that
    /// fails to send is logged and the rest go on.
    pub async fn dispatch_due(&self, limit: u32) -> Result<usize, VerifyError> {
        let mut sent = 0;
        for _ in 0..limit {
            let now = self.clock.now();
            let token = new_id("LT");
            let queued_before = now - chrono::Duration::from_std(self.delivery.send_wait).unwrap_or_default();
            let claimed = self.store.claim_due_messages(now, queued_before, now + self.delivery.lease, &token, 1).await?;
            let Some(message) = claimed.into_iter().next() else { break };
            if let Err(e) = self.send_claimed(message, &token).await {
                tracing::warn!(error = %e, "a queued message could not be handled");
            }
            sent += 1;
        }
        Ok(sent)
    }

    pub(crate) async fn send_claimed(&self, message: Message, token: &str) -> Result<DispatchOutcome, VerifyError> {
        let Some(body) = self.keys.open_text(&message.id, &message.body_sealed) else {
            return Err(StoreError::Other(format!("message {} does not open with the server secret", message.id)).into());
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
        let now = self.clock.now();
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
        if !self.store.finish_message(&message.id, token, &record, now).await? {
            tracing::warn!(message = %message.id, "lost the claim on a message while sending it");
            return Ok(outcome);
        }
        // A receipt may have overtaken this result.
        if let Some(pmid) = &record.provider_message_id
            && let Some((status, error)) = self.store.take_held_receipt(pmid).await?
        {
            self.record_receipt(pmid, status, error.as_deref()).await?;
        }
        if let (Err(e), false, Some(vid)) = (&result, message.resend, &message.verification_id) {
            self.fail_verification(vid, e.to_string()).await?;
        }
        Ok(outcome)
    }

    /// Marks a verification failed because its first message could not be sent, unless it was
    /// sent again meanwhile (the later message may well arrive).
    async fn fail_verification(&self, id: &str, reason: String) -> Result<(), VerifyError> {
        for _ in 0..MAX_RACES {
            let Some(mut v) = self.store.get_verification(id).await? else { return Ok(()) };
            if v.sends > 1 {
                return Ok(());
            }
            let version = v.version;
            v.fail(self.clock.now(), reason.clone());
            if v.status != Status::Failed || v.version != version {
                return Ok(());
            }
            if self.store.update_verification(&v, version).await? {
                self.observer.verification_entered(&v.service_id, v.channel, Status::Failed);
                return Ok(());
            }
        }
        Err(VerifyError::Busy)
    }

    /// Applies a provider's delivery receipt. One for a message id not (yet) known is held until
    /// the send's result names it; retention drops it if that never happens.
    pub async fn record_receipt(
        &self,
        provider_message_id: &str,
        status: DeliveryStatus,
        error: Option<&str>,
    ) -> Result<Option<Message>, VerifyError> {
        let now = self.clock.now();
        let mut updated = self.store.apply_receipt(provider_message_id, status, error, now).await?;
        // No message took it: either the receipt overtook the send's result (hold it), or it came
        // too late for its message's status, or the result was stored in between (apply again).
        if updated.is_none() && !self.store.hold_receipt(provider_message_id, status, error, now).await? {
            updated = self.store.apply_receipt(provider_message_id, status, error, now).await?;
        }
        if let Some(m) = &updated {
            let region = m.to.region().unwrap_or_else(|| "unknown".into());
            self.observer.sms_receipt(m.provider.as_deref().unwrap_or("unknown"), &region, status);
        }
        Ok(updated)
    }

    /// Stores an inbound message once and runs its handlers (so far: STOP / START opt-out).
    pub async fn receive(
        &self,
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
            from: from.clone(),
            to: to.into(),
            body: body.into(),
            received_at: now,
        };
        let command = opt_command(body);
        let opt_out = command.map(|c| c == OptCommand::OptOut);
        // Stored and applied together: a retried webhook after a failure is processed again, a
        // duplicate of a processed one changes nothing.
        match self.store.insert_inbound(&inbound, opt_out).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Ok(InboundOutcome::Duplicate),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(inbound = %inbound.id, ?command, "inbound message");
        Ok(match command {
            Some(OptCommand::OptOut) => InboundOutcome::OptedOut,
            Some(OptCommand::OptIn) => InboundOutcome::OptedIn,
            None => InboundOutcome::Stored,
        })
    }

    pub async fn messages_for(&self, verification_id: &str) -> Result<Vec<Message>, VerifyError> {
        Ok(self.store.list_messages_for_verification(verification_id).await?)
    }
}
