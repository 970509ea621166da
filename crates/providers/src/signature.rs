//! Webhook signatures, as the providers document them.
//! - Twilio: base64(HMAC-SHA1(auth token, full URL + each POST parameter name and value, sorted)).
//! - Vonage signed messages: over the sorted parameters as `&key=value` (`&` and `=` in values
//!   replaced by `_`), either MD5 of that plus the secret (`md5hash`) or an HMAC keyed with the
//!   secret (`md5`, `sha1`, `sha256`, `sha512`); lowercase hex; `timestamp` must be fresh.
//! - Vonage signed callbacks of the Voice and Messages APIs: a JWT (HS256, keyed with the
//!   signature secret) in `Authorization: Bearer`, claims `iat`, `jti`, `iss` "Vonage",
//!   `api_key`, `application_id` and `payload_hash`, the SHA-256 (hex) of the raw body.
//! - Meta (WhatsApp Cloud API): `X-Hub-Signature-256: sha256=hex(HMAC-SHA256(app secret, raw body))`.
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

/// Compares two secrets in constant time (for a given length).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    ct_eq(a, b)
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

/// The claims of a Vonage signed callback that `verify_vonage_jwt` checks.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
pub struct VonageCallbackClaims {
    pub iat: i64,
    pub payload_hash: String,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub application_id: Option<String>,
}

/// Checks a Vonage signed callback: the bearer `token` is an HS256 JWT made with one of
/// `secrets`, issued within `MAX_SKEW_SECS` of `now_unix`, whose `payload_hash` is the SHA-256 of
/// `body`. Returns its claims.
pub fn verify_vonage_jwt<'a>(
    secrets: impl IntoIterator<Item = &'a str>,
    token: &str,
    body: &[u8],
    now_unix: i64,
) -> Result<VonageCallbackClaims, SignatureError> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    // Vonage's callback JWTs carry no `exp`: freshness is judged by `iat` below.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let claims = secrets
        .into_iter()
        .find_map(|secret| {
            let key = jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()).ok()?;
            jsonwebtoken::decode::<VonageCallbackClaims>(token, &key, &validation).ok()
        })
        .ok_or(SignatureError::Mismatch)?
        .claims;
    if !ct_eq(&hex::encode(Sha256::digest(body)), &claims.payload_hash.to_ascii_lowercase()) {
        return Err(SignatureError::Mismatch);
    }
    if (now_unix - claims.iat).abs() > MAX_SKEW_SECS {
        return Err(SignatureError::Stale);
    }
    Ok(claims)
}

/// The `X-Hub-Signature-256` value Meta sends with a webhook `body`.
pub fn meta_signature(app_secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hmac_hex::<Hmac<Sha256>>(app_secret.as_bytes(), body))
}

/// Checks Meta's `X-Hub-Signature-256` header against any of `app_secrets`.
pub fn verify_meta<'a>(app_secrets: impl IntoIterator<Item = &'a str>, body: &[u8], header: &str) -> bool {
    let header = header.trim().to_ascii_lowercase();
    app_secrets.into_iter().any(|secret| ct_eq(&meta_signature(secret, body), &header))
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

    /// A Vonage callback JWT as Vonage signs one.
    fn vonage_callback_jwt(secret: &str, body: &[u8], iat: i64) -> String {
        let claims = serde_json::json!({
            "iat": iat, "jti": "c5ba8f24-1a14-4c10-bfdf-3fbe8ce511b5", "iss": "Vonage",
            "payload_hash": hex::encode(Sha256::digest(body)), "api_key": "abcd1234", "application_id": "app-1",
        });
        let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap();
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key).unwrap()
    }

    #[test]
    fn vonage_callback_jwts_bind_the_body_the_secret_and_the_time() {
        let body = br#"{"status":"completed","uuid":"63f61863"}"#;
        let token = vonage_callback_jwt("sig-secret", body, 1_700_000_000);
        let claims = verify_vonage_jwt(["other", "sig-secret"], &token, body, 1_700_000_100).unwrap();
        assert_eq!((claims.api_key.as_deref(), claims.application_id.as_deref()), (Some("abcd1234"), Some("app-1")));
        assert_eq!(verify_vonage_jwt(["other"], &token, body, 1_700_000_000).unwrap_err(), SignatureError::Mismatch);
        let tampered = br#"{"status":"completed","uuid":"63f61864"}"#;
        assert_eq!(verify_vonage_jwt(["sig-secret"], &token, tampered, 1_700_000_000).unwrap_err(), SignatureError::Mismatch);
        assert_eq!(verify_vonage_jwt(["sig-secret"], &token, body, 1_700_000_301).unwrap_err(), SignatureError::Stale);
        assert_eq!(verify_vonage_jwt(["sig-secret"], "not.a.jwt", body, 1_700_000_000).unwrap_err(), SignatureError::Mismatch);
        // An unsigned token (`alg: none`) is no signature.
        let none = format!(
            "{}.{}.",
            b64("{\"alg\":\"none\"}"),
            b64(&format!("{{\"iat\":1700000000,\"payload_hash\":\"{}\"}}", hex::encode(Sha256::digest(body))))
        );
        assert_eq!(verify_vonage_jwt(["sig-secret"], &none, body, 1_700_000_000).unwrap_err(), SignatureError::Mismatch);
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn meta_signature_matches_an_independent_computation() {
        // HMAC-SHA256("app-secret", "{}") computed with Python's hmac module.
        let sig = meta_signature("app-secret", b"{}");
        assert_eq!(sig, "sha256=bd9549eb87a414d3df28b5a60ea86d4a11e2f1c6258edbd18f56d3c23c0f908d");
        assert!(verify_meta(["x", "app-secret"], b"{}", &sig));
        assert!(verify_meta(["app-secret"], b"{}", &sig.to_ascii_uppercase().replace("SHA256=", "sha256=")));
        assert!(!verify_meta(["app-secret"], b"{ }", &sig));
        assert!(!verify_meta(["other"], b"{}", &sig));
        assert!(!verify_meta(["app-secret"], b"{}", sig.trim_start_matches("sha256=")));
    }

    #[test]
    fn webhook_signature_format() {
        // HMAC-SHA256("k", "7.{}") computed with Python's hmac module.
        assert_eq!(webhook_signature("k", 7, b"{}"), "t=7,v1=676b269d79cd27a0484d05de0823eb209fd73922d153a5a975a92a1b5c31b889");
    }
}
