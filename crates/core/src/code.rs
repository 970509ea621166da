//! One-time codes: drawn from the OS CSPRNG, stored only as a keyed digest (HMAC-SHA256) for
//! checking and sealed with AES-256-GCM so a resend can repeat the same code (queued message
//! bodies are sealed the same way). Neither reveals
//! the code without the server secret; comparisons are constant-time.
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, aead::Aead, aead::Payload};
use hmac::{Hmac, Mac};
use rand::{TryRngCore, rngs::OsRng};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const MIN_LENGTH: u8 = 4;
pub const MAX_LENGTH: u8 = 10;
pub const DEFAULT_LENGTH: u8 = 6;

/// A one-time code in clear. Deliberately not `Display`, and `Debug` is redacted, so it cannot
/// reach a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code(<redacted>)")
    }
}

impl Code {
    /// Draws `len` uniform decimal digits from the OS CSPRNG.
    /// `len` uniform digits from the OS CSPRNG, in one read: bytes of 250 or more are rejected
    /// so that `byte % 10` has no bias.
    pub fn generate(len: u8) -> Self {
        let mut digits = String::with_capacity(len.into());
        let mut bytes = [0u8; 32];
        while digits.len() < usize::from(len) {
            OsRng.try_fill_bytes(&mut bytes).expect("OS random source unavailable");
            for b in bytes.iter().filter(|b| **b < 250).take(usize::from(len) - digits.len()) {
                digits.push(char::from(b'0' + b % 10));
            }
        }
        Self(digits)
    }
    /// A code the app chose (a service with custom codes): 4 to 10 digits.
    pub fn custom(digits: &str) -> Option<Self> {
        is_plausible(digits).then(|| Self(digits.to_string()))
    }

    /// A code the app chose with letters too (Vonage Verify v2's `code`): 4 to 10 ASCII letters
    /// and digits, checked as typed.
    pub fn custom_alphanumeric(text: &str) -> Option<Self> {
        let ok = (MIN_LENGTH as usize..=MAX_LENGTH as usize).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| Self(text.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// True when `input` could be a code of `len` digits; anything else is refused before it costs
/// an attempt.
pub fn is_well_formed(input: &str, len: u8) -> bool {
    // Letters too: a custom code may have them (`Code::custom_alphanumeric`); a generated one
    // has digits only, so a letter never matches it.
    input.len() == len as usize && input.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether `input` could be a code of some verification (4 to 10 digits). Only this is checked
/// before a verification is looked up, so the answer to a malformed code never depends on one.
pub fn is_plausible(input: &str) -> bool {
    (MIN_LENGTH as usize..=MAX_LENGTH as usize).contains(&input.len()) && input.bytes().all(|b| b.is_ascii_digit())
}

/// Keys derived from the server secrets in the key file, newest last. The newest seals and
/// digests everything new; every key opens and matches what it sealed, so data from before a
/// rotation stays readable until retention removes it.
#[derive(Clone)]
pub struct ServerKeys(std::sync::Arc<[KeyParts]>);

struct KeyParts {
    digest_key: [u8; 32],
    seal: Aes256Gcm,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKeys(<redacted>)")
    }
}

fn derive(secret: &[u8], label: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

/// What the database records of a key: an HMAC under it of a fixed label. It tells which key
/// sealed a database's data without revealing the key.
pub fn fingerprint(secret: &[u8]) -> [u8; 32] {
    derive(secret, "phonegate/v1/key-fingerprint")
}

/// A key's short public name (12 hex digits of its fingerprint), for log lines and messages.
pub fn key_id(secret: &[u8]) -> String {
    hex::encode(&fingerprint(secret)[..6])
}

impl KeyParts {
    fn new(secret: &[u8]) -> Self {
        let seal_key = derive(secret, "phonegate/v1/code-seal");
        Self { digest_key: derive(secret, "phonegate/v1/code-digest"), seal: Aes256Gcm::new_from_slice(&seal_key).expect("32-byte key") }
    }

    fn digest(&self, verification_id: &str, code: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.digest_key).expect("32-byte key");
        mac.update(verification_id.as_bytes());
        mac.update(&[0]);
        mac.update(code.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn open(&self, bound_to: &str, nonce: &[u8], ciphertext: &[u8]) -> Option<String> {
        let payload = Payload { msg: ciphertext, aad: bound_to.as_bytes() };
        let plain = self.seal.decrypt(Nonce::from_slice(nonce), payload).ok()?;
        String::from_utf8(plain).ok()
    }
}

impl ServerKeys {
    /// One key (tests, and a key file holding one secret).
    pub fn from_secret(secret: &[u8]) -> Self {
        Self::from_secrets(&[secret])
    }

    /// The keys of `secrets`, oldest first: the last one seals. At least one is needed.
    pub fn from_secrets<S: AsRef<[u8]>>(secrets: &[S]) -> Self {
        assert!(!secrets.is_empty(), "a key ring needs a key");
        Self(secrets.iter().map(|s| KeyParts::new(s.as_ref())).collect())
    }

    fn newest(&self) -> &KeyParts {
        self.0.last().expect("a key ring has a key")
    }

    /// The keys newest first: what was sealed lately is found at the first try.
    fn newest_first(&self) -> impl Iterator<Item = &KeyParts> {
        self.0.iter().rev()
    }

    /// HMAC-SHA256 under the newest key over the verification id and the code, so equal codes of
    /// different verifications have unrelated digests.
    pub fn digest(&self, verification_id: &str, code: &str) -> Vec<u8> {
        self.newest().digest(verification_id, code)
    }

    /// The group's invite code of a generation: 8 characters without look-alikes (no 0/O,
    /// 1/I/L), derived from the newest key, so it is never stored and every instance agrees (a
    /// key rotation gives the group a new code, as a leaked key would reveal the old one).
    pub fn invite_code(&self, generation: i64) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
        let digest = self.digest(&format!("invite-code/{generation}"), "");
        digest.iter().take(8).map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
    }

    /// Whether `stored_digest` is the digest of `code` under any key, compared in constant time
    /// for each key (how many keys there are is no secret).
    pub fn matches(&self, verification_id: &str, code: &str, stored_digest: &[u8]) -> bool {
        self.newest_first().fold(false, |found, k| found | bool::from(k.digest(verification_id, code).as_slice().ct_eq(stored_digest)))
    }

    /// Whether `mac` is the digest of `text` under the newest key only: for tokens the server
    /// hands out and takes back (a device token), which a rotation should retire at once.
    pub fn matches_newest(&self, bound_to: &str, text: &str, mac: &[u8]) -> bool {
        bool::from(self.newest().digest(bound_to, text).as_slice().ct_eq(mac))
    }

    /// Encrypts the code for a later resend, bound to its verification id.
    pub fn seal(&self, verification_id: &str, code: &Code) -> Vec<u8> {
        self.seal_text(verification_id, &code.0)
    }

    pub fn open(&self, verification_id: &str, sealed: &[u8]) -> Option<Code> {
        self.open_text(verification_id, sealed).map(Code)
    }

    /// Encrypts text (a code, a queued message body) under the newest key: 12-byte random nonce
    /// followed by the ciphertext, authenticated together with `bound_to` (the id of the record
    /// holding it).
    pub fn seal_text(&self, bound_to: &str, text: &str) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        OsRng.try_fill_bytes(&mut nonce).expect("OS random source unavailable");
        let payload = Payload { msg: text.as_bytes(), aad: bound_to.as_bytes() };
        let ciphertext = self.newest().seal.encrypt(Nonce::from_slice(&nonce), payload).expect("AES-GCM encryption cannot fail");
        [nonce.as_slice(), &ciphertext].concat()
    }

    /// Opens what any of the keys sealed (AES-GCM's tag tells the right one).
    pub fn open_text(&self, bound_to: &str, sealed: &[u8]) -> Option<String> {
        if sealed.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(12);
        self.newest_first().find_map(|k| k.open(bound_to, nonce, ciphertext))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn digits_are_roughly_uniform() {
        let mut counts = [0u32; 10];
        for _ in 0..2000 {
            for b in Code::generate(10).0.bytes() {
                counts[(b - b'0') as usize] += 1;
            }
        }
        // 20,000 digits: each expected 2,000; a fair source stays well within ±15%.
        assert!(counts.iter().all(|&c| (1700..2300).contains(&c)), "{counts:?}");
    }

    #[test]
    fn debug_never_shows_the_code() {
        let code = Code::generate(6);
        assert!(!format!("{code:?}").contains(code.expose()));
    }

    #[test]
    fn sealed_code_opens_only_for_its_verification_and_key() {
        let keys = ServerKeys::from_secret(b"secret one");
        let code = Code::generate(6);
        let sealed = keys.seal("VEa", &code);
        assert_eq!(keys.open("VEa", &sealed), Some(code.clone()));
        assert_eq!(keys.open("VEb", &sealed), None);
        assert_eq!(ServerKeys::from_secret(b"secret two").open("VEa", &sealed), None);
        assert!(!sealed.windows(6).any(|w| w == code.expose().as_bytes()));
    }

    #[test]
    fn after_a_rotation_old_data_opens_and_new_data_uses_the_new_key() {
        let old = ServerKeys::from_secret(b"old");
        let code = Code::generate(6);
        let (sealed, digest) = (old.seal("VEa", &code), old.digest("VEa", code.expose()));
        let rotated = ServerKeys::from_secrets(&[b"old", b"new"]);
        assert_eq!(rotated.open("VEa", &sealed), Some(code.clone()));
        assert!(rotated.matches("VEa", code.expose(), &digest));
        let fresh = rotated.seal("VEb", &code);
        assert_eq!(old.open("VEb", &fresh), None, "new data is sealed with the new key");
        assert_eq!(ServerKeys::from_secret(b"new").open("VEb", &fresh), Some(code.clone()));
        assert!(!old.matches("VEb", code.expose(), &rotated.digest("VEb", code.expose())));
        assert_ne!(old.invite_code(1), rotated.invite_code(1));
        let device = old.digest("phonegate/device", "u|+49|1");
        assert!(rotated.matches("phonegate/device", "u|+49|1", &device) && !rotated.matches_newest("phonegate/device", "u|+49|1", &device));
        assert_ne!(key_id(b"old"), key_id(b"new"));
    }

    #[test]
    fn generated_digits_are_uniform() {
        let mut counts = [0u32; 10];
        for _ in 0..2000 {
            for d in Code::generate(10).expose().bytes() {
                counts[usize::from(d - b'0')] += 1;
            }
        }
        // 20,000 digits: 2,000 expected each; ±300 is over 7 standard deviations.
        assert!(counts.iter().all(|c| (1700..=2300).contains(c)), "{counts:?}");
    }

    proptest! {
        #[test]
        fn generated_codes_have_the_requested_length(len in MIN_LENGTH..=MAX_LENGTH) {
            let code = Code::generate(len);
            prop_assert!(is_well_formed(code.expose(), len));
        }

        #[test]
        fn digest_matches_only_the_same_code(a in "[0-9]{6}", b in "[0-9]{6}") {
            let keys = ServerKeys::from_secret(b"k");
            let d = keys.digest("VE1", &a);
            prop_assert!(keys.matches("VE1", &a, &d));
            prop_assert_eq!(keys.matches("VE1", &b, &d), a == b);
            prop_assert!(!keys.matches("VE2", &a, &d));
        }
    }
}
