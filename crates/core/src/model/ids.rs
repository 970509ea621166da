//! Public identifiers: a two-letter type prefix and 32 random hex digits, the shape Twilio uses
//! (VE… verifications, VA… services, SK… API keys) so compatibility layers need no translation.
use rand::TryRngCore;

pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).expect("OS random source unavailable");
    format!("{prefix}{}", hex::encode(bytes))
}

/// True when `id` has the given prefix followed by exactly 32 lowercase hex digits.
pub fn is_id(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}
