//! Access tokens: short-lived JWTs signed with EdDSA (Ed25519) or ES256 (P-256). Keys are made
//! on first start and by `phonegate jwt rotate`, kept in the store with the private half sealed
//! by the server secret, and published at `/.well-known/jwks.json`. Verification accepts only
//! the configured algorithm and only phonegate's own keys: `none`, HMAC (including HS256 signed
//! with a public key) and any other algorithm are refused.
pub use crate::model::jwt_key::{JwtAlgorithm, JwtKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A new key pair: the private key as PKCS#8 DER and the public key as a JWK.
pub fn generate(alg: JwtAlgorithm, kid: &str) -> (Vec<u8>, serde_json::Value) {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    match alg {
        JwtAlgorithm::EdDSA => {
            let key = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
            let der = key.to_pkcs8_der().expect("an Ed25519 key encodes").as_bytes().to_vec();
            let x = B64.encode(key.verifying_key().to_bytes());
            (der, serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}))
        }
        JwtAlgorithm::ES256 => {
            let key = loop {
                // A random 32-byte string is a valid P-256 scalar but for a negligible few.
                if let Ok(k) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                    break k;
                }
            };
            let der = key.to_pkcs8_der().expect("a P-256 key encodes").as_bytes().to_vec();
            let point = p256::elliptic_curve::sec1::ToSec1Point::to_sec1_point(&key.public_key(), false);
            let (x, y) = (B64.encode(point.x().expect("uncompressed")), B64.encode(point.y().expect("uncompressed")));
            (der, serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"}))
        }
    }
}

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// The session the token was issued for.
    pub sid: String,
    pub phone_number: String,
    pub phone_number_verified: bool,
    pub preferred_username: String,
}

/// The keys in use: the newest key of the configured algorithm signs; every loaded key of that
/// algorithm verifies.
pub struct KeyRing {
    alg: JwtAlgorithm,
    signer: Option<(String, EncodingKey)>,
    verifiers: HashMap<String, DecodingKey>,
    jwks: serde_json::Value,
}

impl KeyRing {
    /// From stored keys, newest first; `open` unseals a private key.
    pub fn new(alg: JwtAlgorithm, keys: &[JwtKey], open: impl Fn(&JwtKey) -> Option<Vec<u8>>) -> Self {
        let mine: Vec<&JwtKey> = keys.iter().filter(|k| k.alg == alg).collect();
        let signer = mine.first().and_then(|k| {
            let der = open(k)?;
            Some((k.kid.clone(), if alg == JwtAlgorithm::EdDSA { EncodingKey::from_ed_der(&der) } else { EncodingKey::from_ec_der(&der) }))
        });
        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        for k in &mine {
            let Ok(jwk) = serde_json::from_str::<serde_json::Value>(&k.public_jwk) else { continue };
            let key = match alg {
                JwtAlgorithm::EdDSA => jwk["x"].as_str().and_then(|x| DecodingKey::from_ed_components(x).ok()),
                JwtAlgorithm::ES256 => {
                    jwk["x"].as_str().zip(jwk["y"].as_str()).and_then(|(x, y)| DecodingKey::from_ec_components(x, y).ok())
                }
            };
            if let Some(key) = key {
                verifiers.insert(k.kid.clone(), key);
                published.push(jwk);
            }
        }
        Self { alg, signer, verifiers, jwks: serde_json::json!({ "keys": published }) }
    }

    pub fn can_sign(&self) -> bool {
        self.signer.is_some()
    }

    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    pub fn sign(&self, claims: &Claims) -> Option<String> {
        let (kid, key) = self.signer.as_ref()?;
        let header = Header { kid: Some(kid.clone()), typ: Some("at+jwt".into()), ..Header::new(self.alg.jwt()) };
        jsonwebtoken::encode(&header, claims, key).ok()
    }

    /// Whether the token names a key this ring does not have (it may have been made since).
    pub fn knows_kid(&self, token: &str) -> bool {
        jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid).is_none_or(|kid| self.verifiers.contains_key(&kid))
    }

    /// The claims of a valid token: signed by one of our keys with our algorithm, for our
    /// issuer and audience, not expired at `now`.
    pub fn verify(&self, token: &str, issuer: &str, audience: &str, now: DateTime<Utc>) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != self.alg.jwt() {
            return None;
        }
        let key = self.verifiers.get(header.kid.as_deref()?)?;
        let mut v = Validation::new(self.alg.jwt());
        v.set_issuer(&[issuer]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        // Expiry is checked against the server's clock below, not the library's.
        v.validate_exp = false;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &v).ok()?.claims;
        (claims.exp > now.timestamp()).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::Algorithm;

    fn ring(alg: JwtAlgorithm) -> (KeyRing, Vec<u8>) {
        let (der, jwk) = generate(alg, "k1");
        let key = JwtKey { kid: "k1".into(), alg, private_sealed: der.clone(), public_jwk: jwk.to_string(), created_at: Utc::now() };
        (KeyRing::new(alg, &[key], |k| Some(k.private_sealed.clone())), der)
    }

    fn claims(now: DateTime<Utc>) -> Claims {
        Claims {
            sub: "us_1".into(),
            iss: "https://id.example".into(),
            aud: "phonegate".into(),
            exp: now.timestamp() + 300,
            iat: now.timestamp(),
            sid: "ss_1".into(),
            phone_number: "+4915123456789".into(),
            phone_number_verified: true,
            preferred_username: "ada".into(),
        }
    }

    #[test]
    fn both_algorithms_sign_and_verify_and_refuse_the_rest() {
        let now = Utc::now();
        for alg in [JwtAlgorithm::EdDSA, JwtAlgorithm::ES256] {
            let (ring, _) = ring(alg);
            let token = ring.sign(&claims(now)).unwrap();
            assert_eq!(ring.verify(&token, "https://id.example", "phonegate", now), Some(claims(now)));
            assert!(ring.verify(&token, "https://other", "phonegate", now).is_none());
            assert!(ring.verify(&token, "https://id.example", "other", now).is_none());
            assert!(ring.verify(&token, "https://id.example", "phonegate", now + chrono::Duration::seconds(301)).is_none());
            // alg none, and HS256 keyed with the public JWK's text.
            let body = token.split('.').nth(1).unwrap();
            let none = format!("{}.{body}.", B64.encode(br#"{"alg":"none","kid":"k1"}"#));
            assert!(ring.verify(&none, "https://id.example", "phonegate", now).is_none());
            let hs = jsonwebtoken::encode(
                &Header { kid: Some("k1".into()), ..Header::new(Algorithm::HS256) },
                &claims(now),
                &EncodingKey::from_secret(ring.jwks().to_string().as_bytes()).unwrap(),
            )
            .unwrap();
            assert!(ring.verify(&hs, "https://id.example", "phonegate", now).is_none());
            // Another key with the same kid.
            let (other, _) = self::ring(alg);
            assert!(ring.verify(&other.sign(&claims(now)).unwrap(), "https://id.example", "phonegate", now).is_none());
        }
    }
}
