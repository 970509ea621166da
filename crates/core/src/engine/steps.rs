//! A workflow's next step: asked for by the app (`next`), or started by the background worker
//! when the running step's time has passed or its message failed (`advance_due`). Each is one
//! unit: the verification moves to its next step, the step's budgets are taken and its message
//! (the same code, by the step's channel) is queued; the message is sent after the commit.
use super::{Verifier, visible};
use crate::caller::Caller;
use crate::error::{ErrorKind, Field, VerifyError};
use crate::model::verification::{NextRefusal, Verification};
use crate::model::workflow::Channel;
use crate::ports::{self, Tx};
use chrono::{DateTime, Utc};
use tracing::Instrument;

/// Which verifications a unit may move on.
#[derive(Clone, Copy)]
enum Due {
    /// The app asked: any pending one with a step left.
    Now,
    /// The worker: only one whose step is due (another instance may have moved it meanwhile).
    ByTime,
}

impl Verifier {
    /// Starts the next step of a verification's workflow at once (`POST
    /// /api/verifications/{id}/next`): `NoNextStep` on its last step.
    #[tracing::instrument(name = "verifier.next", level = "debug", skip_all, fields(verification = %id))]
    pub async fn next(&self, caller: &Caller, id: &str) -> Result<Verification, VerifyError> {
        let result = self.advance(caller, id, Due::Now).await;
        let result = result.and_then(|v| v.ok_or(VerifyError::NoNextStep));
        self.audit.audited(caller, id, result).await
    }

    /// The worker's step: starts the next step of up to `batch` verifications whose running
    /// step's time has passed (or whose message failed). Returns how many moved on.
    pub async fn advance_due(&self, batch: u32) -> Result<usize, VerifyError> {
        let now = self.ctx.clock.now();
        let due = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.due_steps(now, batch)?)).await?;
        let caller = Caller::system("workflow");
        let mut moved = 0;
        for id in due {
            match self.audit.audited(&caller, &id, self.advance(&caller, &id, Due::ByTime).await).await {
                Ok(Some(_)) => moved += 1,
                Ok(None) => {}
                // The database or the server failed: the step stays due, the next round retries.
                Err(e) if matches!(e.kind(), ErrorKind::Internal | ErrorKind::Unavailable) => {
                    tracing::warn!(verification = %id, error = %e, "a workflow step could not start; retrying");
                }
                Err(e) => {
                    // Refused (over budget…): the workflow stops here, the code already sent
                    // stays valid; the refusal was audited.
                    tracing::info!(verification = %id, error = %e, "a workflow step was refused; the workflow stops");
                    let halted = ports::write(self.ctx.store.as_ref(), move |tx| {
                        if let Some(mut v) = tx.verification(&id)?.filter(|v| v.step_due_at.is_some()) {
                            v.step_due_at = None;
                            ports::save_verification(tx, &mut v)?;
                        }
                        Ok::<_, VerifyError>(())
                    })
                    .await;
                    if let Err(e) = halted {
                        tracing::warn!(error = %e, "a workflow could not be stopped");
                    }
                }
            }
        }
        Ok(moved)
    }

    /// Moves one verification to its next step and sends that step's message; `None` when it
    /// was not due (`Due::ByTime`) or had no step left.
    async fn advance(&self, caller: &Caller, id: &str, due: Due) -> Result<Option<Verification>, VerifyError> {
        let (id, now, who) = (id.to_string(), self.ctx.clock.now(), caller.clone());
        let this = self.clone();
        let moved = ports::write(self.ctx.store.as_ref(), move |tx| {
            let mut v = visible(&who, tx.verification(&id)?)?;
            if matches!(due, Due::ByTime) && v.step_due_at.is_none_or(|at| at > now) {
                return Ok(None);
            }
            // A silent check decides first: no code goes out while it may still match (and a
            // `silent` verification has no code to send at all).
            let silent_running = v.channel == Channel::Auto && v.step == 0 && tx.silent_check_of(&v.id)?.is_some_and(|c| c.state.is_live());
            if v.status == crate::model::verification::Status::Pending && (v.channel == Channel::Silent || silent_running) {
                return Err(VerifyError::invalid(Field::Channel, "a silent check decides this verification: no code step can start now"));
            }
            let step = match v.next_step(now) {
                Ok(step) => step,
                Err(NextRefusal::NotPending(status)) => {
                    if matches!(due, Due::ByTime) {
                        // Ended (its deadline passed): record that and leave it.
                        ports::save_verification(tx, &mut v)?;
                        return Ok(None);
                    }
                    return Err(VerifyError::NotPending(status));
                }
                Err(NextRefusal::NoStepLeft) => {
                    v.step_due_at = None;
                    ports::save_verification(tx, &mut v)?;
                    return Ok(None);
                }
            };
            let queued = this.queue_step(tx, &who, &mut v, step.channel, now)?;
            Ok(Some((v, queued)))
        })
        .await?;
        let Some((v, (message, lease))) = moved else { return Ok(None) };
        tracing::info!(verification = %v.id, step = v.step, channel = %v.step_channel(), "workflow step started");
        if let Some(lease) = lease {
            let this = self.clone();
            tokio::spawn(async move { this.delivery.send_claimed(message, &lease.token).await }.in_current_span());
        }
        Ok(Some(v))
    }

    /// Writes `v` at its new step, takes the step's send budgets and queues its message.
    fn queue_step(
        &self,
        tx: &mut dyn Tx,
        caller: &Caller,
        v: &mut Verification,
        channel: crate::model::workflow::Channel,
        now: DateTime<Utc>,
    ) -> Result<crate::delivery::Queued, VerifyError> {
        ports::save_verification(tx, v)?;
        let service = tx.service(&v.service_id)?.ok_or(VerifyError::ServiceNotFound)?;
        if !v.test {
            let budgets = self.ctx.budgets.for_service(&service.name);
            // The key that started it pays for every step, whoever starts the step (the worker).
            let key = caller.key_id.as_deref().or(v.key_id.as_deref());
            let charges = budgets.for_send_on(channel, v.to.as_str(), &v.to.calling_code(), key, &service.id);
            crate::budget::charge(tx, &charges, now)?;
        }
        let code = self
            .ctx
            .keys
            .open(&v.id, &v.code_sealed)
            .ok_or_else(|| VerifyError::Crypto("sealed code does not open with the server secret".into()))?;
        // A later step's failure does not fail the verification: an earlier message may arrive.
        self.delivery.queue(tx, &service, v, &code, (channel, true), now)
    }
}
