//! Recognised devices. A browser or app that proves a phone number for an account (a verified
//! sign-up, login or phone change) gets a *device token*: the `phonegate_device` cookie, or
//! `device_token` in the JSON answer. It is `EXPIRY.MAC`, an HMAC with the server key over the
//! account, its number and the expiry, so it names neither, cannot be made without the key, and
//! proves nothing for another account or number (a recycled number's new account, say).
//!
//! A flow started by a device holding a token for the flow's account and number is
//! *recognised*: its wrong
//! passwords and codes count in the number's recognised budgets instead of the budgets everybody
//! shares (`budget::Guesser`). Strangers can use up the shared budgets, never the holder's: the
//! holder's known devices keep working while an attack locks everyone else out.
use super::{Accounts, User};
use crate::budget::Guesser;
use crate::caller::Caller;
use crate::model::phone::PhoneNumber;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How long a device stays recognised after it last proved the number.
pub const DEVICE_DAYS: i64 = 90;

const LABEL: &str = "phonegate/device";

impl Accounts {
    /// A new device token for `user` at its number, valid for `DEVICE_DAYS`.
    pub fn device_token(&self, user: &User) -> String {
        let exp = (self.now() + chrono::Duration::days(DEVICE_DAYS)).timestamp();
        let mac = self.ctx.keys.digest(LABEL, &signed(&user.id, &user.phone, exp));
        format!("{exp}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// Whether the caller's device token was made for this account at this number and is
    /// unexpired (compared in constant time).
    pub(super) fn guesser(&self, caller: &Caller, account: Option<(&str, &PhoneNumber)>) -> Guesser {
        let (Some(token), Some((user_id, phone))) = (caller.device.as_deref(), account) else { return Guesser::Anyone };
        let Some((exp, mac)) = token.split_once('.') else { return Guesser::Anyone };
        let (Ok(exp), Ok(mac)) = (exp.parse::<i64>(), URL_SAFE_NO_PAD.decode(mac)) else { return Guesser::Anyone };
        // Only the newest key, and no expiry later than one it would give: a key retired by a
        // rotation (perhaps because it leaked) recognises no device.
        let now = self.now().timestamp();
        let latest = now + chrono::Duration::days(DEVICE_DAYS).num_seconds();
        if exp <= now || exp > latest || !self.ctx.keys.matches_newest(LABEL, &signed(user_id, phone, exp), &mac) {
            return Guesser::Anyone;
        }
        Guesser::Recognised
    }
}

fn signed(user_id: &str, phone: &PhoneNumber, exp: i64) -> String {
    format!("{user_id}|{}|{exp}", phone.as_str())
}
