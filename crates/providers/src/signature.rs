//! Webhook signatures, as the providers document them.
//! - Twilio: base64(HMAC-SHA1(auth token, full URL + each POST parameter name and value, sorted)).
//! - Vonage signed messages: over the sorted parameters as `&key=value` (`&` and `=` in values
//!   replaced by `_`), either MD5 of that plus the secret (`md5hash`) or an HMAC keyed with the
//!   secret (`md5`, `sha1`, `sha256`, `sha512`); lowercase hex; `timestamp` must be fresh.
//! - phonegate's generic HTTP provider: `t=UNIX,v1=hex(HMAC-SHA256(secret, "UNIX.BODY"))`.
use base64::Engine;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use std::collections::BTreeMap;
use subtle::ConstantTimeEq;

/// How far a signed timestamp may be from our clock.
pub const MAX_SKEW_SECS: i64 = 300;

fn ct_eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(auth_token.as_bytes()).expect("any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub fn verify_twilio(auth_token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    ct_eq(&twilio_signature(auth_token, url, params), header)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VonageSigMethod {
    Md5hash,
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

fn hmac_hex<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> String {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// The signature of `params` (any `sig` among them is ignored).
pub fn vonage_signature(secret: &str, method: VonageSigMethod, params: &BTreeMap<String, String>) -> String {
    let mut input = String::new();
    for (k, v) in params.iter().filter(|(k, _)| k.as_str() != "sig") {
        input.push('&');
        input.push_str(k);
        input.push('=');
        input.push_str(&v.replace(['&', '='], "_"));
    }
    match method {
        VonageSigMethod::Md5hash => {
            input.push_str(secret);
            hex::encode(Md5::digest(input.as_bytes()))
        }
        VonageSigMethod::Md5 => hmac_hex::<Hmac<Md5>>(secret.as_bytes(), input.as_bytes()),
        VonageSigMethod::Sha1 => hmac_hex::<Hmac<Sha1>>(secret.as_bytes(), input.as_bytes()),
        VonageSigMethod::Sha256 => hmac_hex::<Hmac<Sha256>>(secret.as_bytes(), input.as_bytes()),
        VonageSigMethod::Sha512 => hmac_hex::<Hmac<Sha512>>(secret.as_bytes(), input.as_bytes()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request is not signed")]
    Missing,
    #[error("the signature does not match")]
    Mismatch,
    #[error("the signed timestamp is missing or too old")]
    Stale,
}

pub fn verify_vonage(
    secret: &str,
    method: VonageSigMethod,
    params: &BTreeMap<String, String>,
    now_unix: i64,
) -> Result<(), SignatureError> {
    let sig = params.get("sig").ok_or(SignatureError::Missing)?;
    let timestamp: i64 = params.get("timestamp").and_then(|t| t.parse().ok()).ok_or(SignatureError::Stale)?;
    if !ct_eq(&vonage_signature(secret, method, params), &sig.to_ascii_lowercase()) {
        return Err(SignatureError::Mismatch);
    }
    if (now_unix - timestamp).abs() > MAX_SKEW_SECS {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// The `X-Phonegate-Signature` header value for a generic-HTTP-provider request body.
pub fn webhook_signature(secret: &str, unix: i64, body: &[u8]) -> String {
    let mut data = format!("{unix}.").into_bytes();
    data.extend_from_slice(body);
    format!("t={unix},v1={}", hmac_hex::<Hmac<Sha256>>(secret.as_bytes(), &data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The example from Twilio's "Webhooks security" documentation.
    #[test]
    fn twilio_documented_vector() {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(twilio_signature("12345", url, &params), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(verify_twilio("12345", url, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        let mut tampered = params.clone();
        tampered[2].1 = "1235".into();
        assert!(!verify_twilio("12345", url, &tampered, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!verify_twilio("54321", url, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!verify_twilio("12345", "https://mycompany.com/myapp.php?foo=1&bar=3", &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    fn map(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The vector used by Vonage's own client library tests (md5hash, secret "secret").
    #[test]
    fn vonage_md5hash_vector_and_freshness() {
        let params = map(&[("a", "1"), ("b", "2"), ("timestamp", "1461605396"), ("sig", "6af838ef94998832dbfc29020b564830")]);
        assert_eq!(vonage_signature("secret", VonageSigMethod::Md5hash, &params), "6af838ef94998832dbfc29020b564830");
        assert_eq!(verify_vonage("secret", VonageSigMethod::Md5hash, &params, 1461605396 + 10), Ok(()));
        assert_eq!(verify_vonage("secret", VonageSigMethod::Md5hash, &params, 1461605396 + 301), Err(SignatureError::Stale));
        assert_eq!(verify_vonage("other", VonageSigMethod::Md5hash, &params, 1461605396), Err(SignatureError::Mismatch));
        let mut tampered = params.clone();
        tampered.insert("b".into(), "3".into());
        assert_eq!(verify_vonage("secret", VonageSigMethod::Md5hash, &tampered, 1461605396), Err(SignatureError::Mismatch));
        let mut unsigned = params.clone();
        unsigned.remove("sig");
        assert_eq!(verify_vonage("secret", VonageSigMethod::Md5hash, &unsigned, 1461605396), Err(SignatureError::Missing));
    }

    #[test]
    fn vonage_hmac_methods_match_an_independent_computation() {
        // HMAC-SHA256("secret", "&a=1&b=x_y_z&timestamp=1") computed with Python's hmac module.
        let params = map(&[("a", "1"), ("b", "x&y=z"), ("timestamp", "1")]);
        assert_eq!(
            vonage_signature("secret", VonageSigMethod::Sha256, &params),
            "c909bdb1a5fda974a9f0cdd1ce58f5c4a7c74ef42ad01499d9db9c1cb6b4cbf5"
        );
    }

    #[test]
    fn webhook_signature_format() {
        // HMAC-SHA256("k", "7.{}") computed with Python's hmac module.
        assert_eq!(webhook_signature("k", 7, b"{}"), "t=7,v1=676b269d79cd27a0484d05de0823eb209fd73922d153a5a975a92a1b5c31b889");
    }
}
