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

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// True when `input` could be a code of `len` digits; anything else is refused before it costs
/// an attempt.
pub fn is_well_formed(input: &str, len: u8) -> bool {
    input.len() == len as usize && input.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `input` could be a code of some verification (4 to 10 digits). Only this is checked
/// before a verification is looked up, so the answer to a malformed code never depends on one.
pub fn is_plausible(input: &str) -> bool {
    (MIN_LENGTH as usize..=MAX_LENGTH as usize).contains(&input.len()) && input.bytes().all(|b| b.is_ascii_digit())
}

/// Keys derived from the server secret.
#[derive(Clone)]
pub struct ServerKeys {
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

impl ServerKeys {
    pub fn from_secret(secret: &[u8]) -> Self {
        let seal_key = derive(secret, "phonegate/v1/code-seal");
        Self { digest_key: derive(secret, "phonegate/v1/code-digest"), seal: Aes256Gcm::new_from_slice(&seal_key).expect("32-byte key") }
    }

    /// HMAC-SHA256 over the verification id and the code, so equal codes of different
    /// verifications have unrelated digests.
    pub fn digest(&self, verification_id: &str, code: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.digest_key).expect("32-byte key");
        mac.update(verification_id.as_bytes());
        mac.update(&[0]);
        mac.update(code.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The group's invite code of a generation: 8 characters without look-alikes (no 0/O,
    /// 1/I/L), derived from the server secret, so it is never stored and every instance agrees.
    pub fn invite_code(&self, generation: i64) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
        let digest = self.digest(&format!("invite-code/{generation}"), "");
        digest.iter().take(8).map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
    }

    pub fn matches(&self, verification_id: &str, code: &str, stored_digest: &[u8]) -> bool {
        bool::from(self.digest(verification_id, code).as_slice().ct_eq(stored_digest))
    }

    /// Encrypts the code for a later resend, bound to its verification id.
    pub fn seal(&self, verification_id: &str, code: &Code) -> Vec<u8> {
        self.seal_text(verification_id, &code.0)
    }

    pub fn open(&self, verification_id: &str, sealed: &[u8]) -> Option<Code> {
        self.open_text(verification_id, sealed).map(Code)
    }

    /// Encrypts text (a code, a queued message body): 12-byte random nonce followed by the
    /// ciphertext, authenticated together with `bound_to` (the id of the record holding it).
    pub fn seal_text(&self, bound_to: &str, text: &str) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        OsRng.try_fill_bytes(&mut nonce).expect("OS random source unavailable");
        let payload = Payload { msg: text.as_bytes(), aad: bound_to.as_bytes() };
        let ciphertext = self.seal.encrypt(Nonce::from_slice(&nonce), payload).expect("AES-GCM encryption cannot fail");
        [nonce.as_slice(), &ciphertext].concat()
    }

    pub fn open_text(&self, bound_to: &str, sealed: &[u8]) -> Option<String> {
        if sealed.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(12);
        let payload = Payload { msg: ciphertext, aad: bound_to.as_bytes() };
        let plain = self.seal.decrypt(Nonce::from_slice(nonce), payload).ok()?;
        String::from_utf8(plain).ok()
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
