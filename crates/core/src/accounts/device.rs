//! Recognised devices. A browser or app that proves a phone number (a verified sign-up, login or
//! phone change) gets a *device token* for that number: the `phonegate_device` cookie, or
//! `device_token` in the JSON answer. It is `EXPIRY.MAC`, an HMAC with the server key over the
//! number and the expiry, so it names no number and cannot be made without the key.
//!
//! A flow started by a device holding a token for the flow's number is *recognised*: its wrong
//! passwords and codes count in the number's recognised budgets instead of the budgets everybody
//! shares (`budget::Guesser`). Strangers can use up the shared budgets, never the holder's: the
//! holder's known devices keep working while an attack locks everyone else out.
use super::Accounts;
use crate::budget::Guesser;
use crate::caller::Caller;
use crate::phone::PhoneNumber;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How long a device stays recognised after it last proved the number.
pub const DEVICE_DAYS: i64 = 90;

const LABEL: &str = "phonegate/device";

impl Accounts {
    /// A new device token for `phone`, valid for `DEVICE_DAYS`.
    pub fn device_token(&self, phone: &PhoneNumber) -> String {
        let exp = (self.now() + chrono::Duration::days(DEVICE_DAYS)).timestamp();
        let mac = self.verifier.keys.digest(LABEL, &format!("{}|{exp}", phone.as_str()));
        format!("{exp}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// Whether the caller's device token was made for `phone` and is unexpired.
    pub(super) fn guesser(&self, caller: &Caller, phone: Option<&PhoneNumber>) -> Guesser {
        let (Some(token), Some(phone)) = (caller.device.as_deref(), phone) else { return Guesser::Anyone };
        let Some((exp, mac)) = token.split_once('.') else { return Guesser::Anyone };
        let (Ok(exp), Ok(mac)) = (exp.parse::<i64>(), URL_SAFE_NO_PAD.decode(mac)) else { return Guesser::Anyone };
        if exp <= self.now().timestamp() || !self.verifier.keys.matches(LABEL, &format!("{}|{exp}", phone.as_str()), &mac) {
            return Guesser::Anyone;
        }
        Guesser::Recognised
    }
}
