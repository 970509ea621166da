//! Silent authentication as Vonage ends it: once the operator has confirmed the device's number
//! (which approves the verification), the device is handed `{request_id, code}`, and the app's
//! backend checks that code like any other. The code is derived from the verification's id with
//! the server key (only a device that came back from the operator with a match is given it), and
//! it completes a request once.
use super::VonageV2;
use crate::caller::Caller;
use crate::error::VerifyError;
use crate::model::verification::{Channel, Status};
use crate::ports;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

impl VonageV2 {
    /// The code the device of a matched silent check is given: 10 digits.
    pub fn silent_code(&self, verification_id: &str) -> String {
        let mac = self.ctx.keys.digest(verification_id, "vonage-silent-code");
        mac.iter().take(10).map(|b| char::from(b'0' + b % 10)).collect()
    }

    /// Whether `code` is the silent code of a request its silent check approved, checked for the
    /// first time. Any other answer (not approved that way, another code, a second time) is false.
    pub async fn redeem_silent_code(&self, caller: &Caller, verification_id: &str, code: &str) -> Result<bool, VerifyError> {
        let (c, id) = (caller.clone(), verification_id.to_string());
        let v = ports::read(self.ctx.store.as_ref(), move |tx| crate::engine::visible(&c, tx.verification(&id)?)).await?;
        let silent = matches!(v.channel, Channel::Silent | Channel::Auto);
        let expected = self.silent_code(&v.id);
        if v.status != Status::Approved || !silent || !bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            return Ok(false);
        }
        let digest = Sha256::digest(format!("vonage-silent-code\n{}", v.id).as_bytes()).to_vec();
        let until = v.expires_at.max(self.ctx.now()) + chrono::Duration::days(1);
        ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.use_once(&digest, until)?)).await
    }
}
