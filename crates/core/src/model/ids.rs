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

/// A random UUID (version 4) in its usual lowercase `8-4-4-4-12` form: Vonage's identifiers.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.try_fill_bytes(&mut b).expect("OS random source unavailable");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// True when `s` is a UUID in lowercase `8-4-4-4-12` form.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices()
            .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_digit() || ('a'..='f').contains(&c) })
}
