//! Flows checked by the device's operator instead of a code. A sign-up, a login by number or a
//! phone change starts an `auto` verification whose silent check brings the device back to the
//! flow's page (`flow_page`); the page then completes the flow with `verify_silent`, which holds
//! only when that very check matched. A login by password never goes silent: its link would tell
//! a password guesser that the password was right. Decoys for numbers get a silent check that
//! ends nothing, so a link never tells a real flow from a decoy.
use super::{Accounts, SessionKind, Verified};
use crate::caller::Caller;
use crate::error::VerifyError;
use crate::model::verification::Status;
use crate::ports;
use crate::silent::CheckState;

/// The login page a flow's device returns to after the operator's step.
pub fn flow_page(flow_id: &str) -> String {
    format!("/login/code?flow={flow_id}")
}

impl Accounts {
    /// Completes a flow whose silent check matched: a sign-up creates the account, a login opens
    /// the session, a phone change changes the number — like a right code. The check must be
    /// this flow's own (another flow of the same number shares its verification, never its
    /// check), and `proof` what the device brought back from the operator (so whoever started
    /// the flow cannot finish it with someone else's phone); anything else is `NoSilentCheck`,
    /// the same for decoys.
    #[tracing::instrument(name = "accounts.verify_silent", level = "debug", skip_all)]
    pub async fn verify_silent(
        &self,
        caller: &Caller,
        flow_id: &str,
        proof: &str,
        kind: SessionKind,
        device: Option<String>,
        signed_in: Option<&str>,
    ) -> Result<Verified, VerifyError> {
        let (this, id, now) = (self.clone(), flow_id.to_string(), self.now());
        let ip = caller.end_user_ip.or(caller.ip);
        let owner = signed_in.map(str::to_string);
        let proof = proof.to_string();
        let done = ports::write(self.ctx.store.as_ref(), move |tx| {
            let mut flow = super::flows::open_flow(tx, &id, owner.as_deref(), now)?;
            let vid = flow.verification_id.clone().ok_or(VerifyError::NoSilentCheck)?;
            let approved = tx.verification(&vid)?.is_some_and(|v| v.status == Status::Approved);
            let check = tx.silent_check_of(&vid)?;
            let own = check.is_some_and(|c| {
                use subtle::ConstantTimeEq;
                let proven: bool = this.verifier.silent_proof(&c.id).as_bytes().ct_eq(proof.as_bytes()).into();
                c.state == CheckState::Matched && c.return_path.as_deref() == Some(&flow_page(&flow.id)) && proven
            });
            if !(approved && own) {
                return Err(VerifyError::NoSilentCheck);
            }
            flow.used_at = Some(now);
            tx.update_flow(&flow)?;
            let amr = super::finish::amr(&flow, None);
            this.finish(tx, flow, kind, (device, amr), ip.map(|i| i.to_string()), now)
        })
        .await?;
        self.verified(caller, done).await
    }
}

impl Accounts {
    /// "Get a code by SMS instead": ends the flow's silent check, so its code goes out now. A
    /// flow without one (a decoy, or its check ended) answers the same.
    pub async fn fall_back(&self, caller: &Caller, flow_id: &str) -> Result<(), VerifyError> {
        let id = flow_id.to_string();
        let flow = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.flow(&id)?))
            .await?
            .filter(|f| f.used_at.is_none())
            .ok_or(VerifyError::FlowNotFound)?;
        let Some(vid) = flow.verification_id else { return Ok(()) };
        match self.verifier.fall_back(&self.engine_caller(caller), &vid).await {
            Ok(_) | Err(VerifyError::NoSilentCheck) | Err(VerifyError::NotPending(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
