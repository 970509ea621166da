//! Joining by SMS reply: an invitee texts the group's invite code to the service's number; the
//! signed inbound webhook hands the message here, and a sender with a live invite is sent a
//! verification code. The invitee then signs up (or, for a member's second device, logs in)
//! with that number on the pages or the API and enters the code: the flow the reply started
//! is taken over, so no second code is sent. Anything else (no invite, a wrong code, an
//! unparsable sender) does nothing and answers the provider the same.
use super::{Accounts, Flow, FlowKind, FlowStarted, Principal};
use crate::audit::AuditKind;
use crate::caller::Caller;
use crate::delivery::InboundOutcome;
use crate::error::VerifyError;
use crate::model::phone::PhoneNumber;
use crate::ports;
use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;

/// The group's current invite code, which invite messages carry and invitees text back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteCode {
    pub code: String,
    /// How many times it was rotated.
    pub generation: i64,
    /// When this code replaced the last one (`None`: the first code, never rotated).
    pub since: Option<DateTime<Utc>>,
}

/// Whether a message says `code`: one of its first few words, ignoring case, spaces and dashes
/// (a message holding many guesses does not get many tries).
fn says(body: &str, code: &str) -> bool {
    body.split_whitespace().take(3).any(|word| {
        let word: String = word.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect();
        bool::from(word.as_bytes().ct_eq(code.as_bytes()))
    })
}

impl Accounts {
    pub(super) async fn current_invite_code(&self) -> Result<InviteCode, VerifyError> {
        let current = ports::read(self.ctx.store.as_ref(), |tx| Ok::<_, VerifyError>(tx.invite_code()?)).await?;
        let (generation, since) = current.map_or((0, None), |(g, at)| (g, Some(at)));
        Ok(InviteCode { code: self.ctx.keys.invite_code(generation), generation, since })
    }

    /// The invite code, for an admin.
    pub async fn invite_code(&self, p: &Principal) -> Result<InviteCode, VerifyError> {
        self.admin(p).await?;
        self.current_invite_code().await
    }

    /// Replaces the invite code: the old one no longer starts a join (invites already sent keep
    /// their link; resending one carries the new code).
    pub async fn rotate_invite_code(&self, caller: &Caller, p: &Principal) -> Result<InviteCode, VerifyError> {
        let admin = self.admin(p).await?;
        let now = self.now();
        ports::write(self.ctx.store.as_ref(), move |tx| {
            let next = tx.invite_code()?.map_or(1, |(g, _)| g + 1);
            match tx.insert_invite_code(next, now, &admin.id) {
                // Another admin rotated at the same moment: the code changed all the same.
                Ok(()) | Err(ports::StoreError::Conflict) => Ok::<_, VerifyError>(()),
                Err(e) => Err(e.into()),
            }
        })
        .await?;
        self.audit.record(&caller.as_user(&p.user_id), AuditKind::InviteCodeRotated, None, "an admin rotated the invite code").await;
        self.current_invite_code().await
    }

    /// A signed inbound SMS: stored (an opt-out or opt-in word applied, a redelivery recognised)
    /// by `Verifier::receive`; then, when it is new, says the invite code and its sender has a
    /// live invite, a verification code goes to the sender. The provider gets the same answer
    /// whatever the message did, so a failed join is logged, not returned.
    #[tracing::instrument(name = "accounts.receive_reply", level = "debug", skip_all)]
    pub async fn receive(
        &self,
        caller: &Caller,
        provider: &str,
        provider_message_id: &str,
        from: &str,
        to: &str,
        body: &str,
    ) -> Result<InboundOutcome, VerifyError> {
        let outcome = self.delivery.receive(caller, provider, provider_message_id, from, to, body).await?;
        if outcome == InboundOutcome::Stored
            && let Ok(sender) = PhoneNumber::parse_e164_lenient(from)
        {
            match self.join_by_reply(caller, &sender, body).await {
                Ok(joined) => tracing::info!(joined, "inbound SMS checked for the invite code"),
                Err(e) => tracing::warn!(error = %e, "an invite reply could not be answered"),
            }
        }
        Ok(outcome)
    }

    /// When `body` says the invite code and its sender has a live invite, a verification code
    /// goes to the sender. True when it did.
    async fn join_by_reply(&self, caller: &Caller, from: &PhoneNumber, body: &str) -> Result<bool, VerifyError> {
        let code = self.current_invite_code().await?;
        if !says(body, &code.code) {
            return Ok(false);
        }
        let (phone, now) = (from.clone(), self.now());
        let (invite, user) =
            ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>((tx.live_invite(&phone, now)?, tx.user_by_phone(&phone)?)))
                .await?;
        let Some(invite) = invite else { return Ok(false) };
        let kind = if user.is_some() { FlowKind::Login } else { FlowKind::Signup };
        let flow = Flow {
            user_id: user.map(|u| u.id),
            invite_id: Some(invite.id.clone()),
            by_reply: true,
            ..self.new_flow(kind, Some(from.clone()), None)
        };
        self.start_flow(caller, flow, None, false).await?;
        self.audit.record(caller, AuditKind::InviteReplied, Some(&invite.id), "an invitee texted the invite code; a code was sent").await;
        Ok(true)
    }

    /// Takes over the flow an SMS reply started for the new flow's number, if there is one: the
    /// new flow gets its code (already sent, so nothing is sent again) and invite, and costs what
    /// a send would, so the budgets refuse at the same point either way. `None` when there is
    /// none, or when its code is no longer pending.
    /// Whether an SMS reply's flow waits for `phone`: nearly every login has none, and a read
    /// says so without taking the writer.
    pub(super) async fn reply_pending(&self, phone: &PhoneNumber) -> Result<bool, VerifyError> {
        let (p, now) = (phone.clone(), self.now());
        ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.reply_flow(&p, now)?.is_some())).await
    }

    pub(super) async fn take_reply_flow(&self, caller: &Caller, flow: &Flow) -> Result<Option<FlowStarted>, VerifyError> {
        let Some(phone) = flow.phone.clone() else { return Ok(None) };
        if flow.by_reply || flow.kind == FlowKind::PhoneChange {
            return Ok(None);
        }
        let (mut flow, now) = (flow.clone(), self.now());
        if !self.reply_pending(&phone).await? {
            return Ok(None);
        }
        let charges = self.send_charges(caller, &phone, flow.recognised, None);
        let resend_after = self.settings.resend_cooldown_secs;
        ports::write(self.ctx.store.as_ref(), move |tx| {
            // The reply flow stays: whoever takes it over gets a flow of their own with its
            // own attempts on the same code, so a stranger who takes it over first cannot
            // lock the invitee out of it.
            let Some(reply) = tx.reply_flow(&phone, now)? else { return Ok::<_, VerifyError>(None) };
            // Its code must still be pending (a flow that took it over may have used it).
            let Some(vid) = reply.verification_id.as_deref() else { return Ok(None) };
            let pending = tx.verification(vid)?.is_some_and(|v| v.status_at(now) == crate::model::verification::Status::Pending);
            if !pending {
                return Ok(None);
            }
            crate::budget::charge(tx, &charges, now)?;
            flow.verification_id = reply.verification_id;
            flow.expires_at = reply.expires_at;
            flow.last_sent_at = reply.last_sent_at;
            flow.invite_id = flow.invite_id.or(reply.invite_id);
            tx.insert_flow(&flow)?;
            Ok(Some(FlowStarted { flow_id: flow.id, expires_at: flow.expires_at, resend_after, check_url: None }))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::says;

    #[test]
    fn a_reply_says_the_code_in_one_of_its_first_words() {
        assert!(says("K7PMQ2XD", "K7PMQ2XD"));
        assert!(says("  join k7pm-q2xd please", "K7PMQ2XD"));
        assert!(!says("K7PMQ2X", "K7PMQ2XD"));
        assert!(!says("K7PMQ2XDK7PMQ2XD", "K7PMQ2XD"));
        assert!(!says("a b c K7PMQ2XD", "K7PMQ2XD"));
        assert!(!says("", "K7PMQ2XD"));
    }
}
