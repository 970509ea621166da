//! Silent authentication as Vonage ends it: once the operator has confirmed the device's number
//! (which approves the verification), the device is handed `{request_id, code}`, and the app's
//! backend checks that code like any other. The code is derived from the verification's id with
//! the server key (only a device that came back from the operator with a match is given it), and
//! it completes a request once.
use super::VonageV2;
use crate::caller::Caller;
use crate::error::VerifyError;
use crate::model::verification::{Channel, CheckOutcome, Status, Verification};
use crate::ports;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

impl VonageV2 {
    /// Checks a code of a Verify v2 request: a silent check still waiting for the device takes
    /// none (`NoSilentCheck`, no attempt counted); a request its silent check approved takes the
    /// device's code (`redeem_silent_code`; any other answer is `NotPending(Approved)`); any
    /// other request is checked as every code is.
    pub async fn check(&self, caller: &Caller, verification_id: &str, code: &str) -> Result<(Verification, CheckOutcome), VerifyError> {
        let (c, id, now) = (caller.clone(), verification_id.to_string(), self.ctx.now());
        let (v, waiting) = ports::read(self.ctx.store.as_ref(), move |tx| {
            let v = crate::engine::visible(&c, tx.verification(&id)?)?;
            let silent = matches!(v.channel, Channel::Silent | Channel::Auto);
            // No message yet: the code has not gone out, the device is still on its way.
            let waiting = silent && v.status_at(now) == Status::Pending && tx.messages_for_verification(&id)?.is_empty();
            Ok::<_, VerifyError>((v, waiting))
        })
        .await?;
        if waiting {
            return Err(VerifyError::NoSilentCheck);
        }
        let result = if v.status == Status::Approved && matches!(v.channel, Channel::Silent | Channel::Auto) {
            match self.redeem_silent_code(caller, &v.id, code).await? {
                true => Ok((v, CheckOutcome::Approved)),
                false => Err(VerifyError::NotPending(Status::Approved)),
            }
        } else {
            self.verifier.check_any(caller, &v.id, code).await
        };
        self.wake();
        result
    }

    /// The code the device of a matched silent check is given: 10 digits.
    pub fn silent_code(&self, verification_id: &str) -> String {
        let mac = self.ctx.keys.digest(verification_id, "vonage-silent-code");
        mac.iter().take(10).map(|b| char::from(b'0' + b % 10)).collect()
    }

    /// Whether `code` is the silent code of a request its silent check approved. One attempt,
    /// as at Vonage: the first code presented for such a request spends it, right or wrong, and
    /// only before the request's end. A right one lets its summary callback go (as completed).
    async fn redeem_silent_code(&self, caller: &Caller, verification_id: &str, code: &str) -> Result<bool, VerifyError> {
        let (c, id, now) = (caller.clone(), verification_id.to_string(), self.ctx.now());
        let expected = self.silent_code(verification_id);
        let right = bool::from(expected.as_bytes().ct_eq(code.as_bytes()));
        let redeemed = ports::write(self.ctx.store.as_ref(), move |tx| {
            let v = crate::engine::visible(&c, tx.verification(&id)?)?;
            let silent = matches!(v.channel, Channel::Silent | Channel::Auto);
            if v.status != Status::Approved || !silent || now >= v.expires_at {
                return Ok::<_, VerifyError>(false);
            }
            let digest = Sha256::digest(format!("vonage-silent-code\n{}", v.id).as_bytes()).to_vec();
            if !tx.use_once(&digest, v.expires_at + chrono::Duration::days(1))? || !right {
                return Ok(false);
            }
            if let Some(summary) = tx.pending_summary(&v.id)? {
                let mut watch: super::Watch = serde_json::from_str(&summary.payload).unwrap_or_default();
                watch.redeemed = true;
                tx.update_vonage_callback(&summary.id, &serde_json::to_string(&watch).unwrap_or_default(), now)?;
            }
            Ok(true)
        })
        .await?;
        Ok(redeemed)
    }
}
