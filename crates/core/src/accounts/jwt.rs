//! Access tokens: short-lived JWTs signed with EdDSA (Ed25519), ES256 (P-256) or RS256 (RSA
//! 2048, which OpenID Connect requires of ID tokens). Keys are made on first start (RS256 when an
//! OpenID client needs it) and by `phonegate jwt rotate`, kept in the store with the private half
//! sealed by the server secret, and published at `/.well-known/jwks.json`. Verification accepts
//! only the algorithm asked for and only phonegate's own keys: `none`, HMAC (including HS256
//! signed with a public key) and any other algorithm are refused.
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
        JwtAlgorithm::RS256 => {
            use rsa::traits::PublicKeyParts;
            // 2048 bits: what relying parties expect of RS256, and a signature in about a
            // millisecond (3072 bits takes three).
            let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("the system's random source works");
            let der = rsa::pkcs8::EncodePrivateKey::to_pkcs8_der(&key).expect("an RSA key encodes").as_bytes().to_vec();
            // JWK integers are big-endian without leading zero octets (RFC 7518 §6.3.1).
            let unsigned = |b: Box<[u8]>| {
                let start = b.iter().position(|&x| x != 0).unwrap_or(b.len().saturating_sub(1));
                B64.encode(&b[start..])
            };
            let (n, e) = (unsigned(key.n().to_be_bytes()), unsigned(key.e().to_be_bytes()));
            (der, serde_json::json!({"kty": "RSA", "n": n, "e": e, "kid": kid, "alg": "RS256", "use": "sig"}))
        }
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

/// The keys in use: the newest key of each algorithm signs; every loaded key verifies tokens of
/// its own algorithm. `alg` is the access tokens' algorithm.
pub struct KeyRing {
    alg: JwtAlgorithm,
    signers: HashMap<JwtAlgorithm, (String, Signer)>,
    verifiers: HashMap<String, (JwtAlgorithm, DecodingKey)>,
    jwks: serde_json::Value,
}

impl KeyRing {
    /// From stored keys, newest first; `open` unseals a private key.
    pub fn new(alg: JwtAlgorithm, keys: &[JwtKey], open: impl Fn(&JwtKey) -> Option<Vec<u8>>) -> Self {
        let mut signers = HashMap::new();
        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        for k in keys {
            if !signers.contains_key(&k.alg)
                && let Some(der) = open(k)
            {
                let key = match k.alg {
                    JwtAlgorithm::EdDSA => Some(Signer::Jwt(EncodingKey::from_ed_der(&der))),
                    JwtAlgorithm::ES256 => Some(Signer::Jwt(EncodingKey::from_ec_der(&der))),
                    JwtAlgorithm::RS256 => ring::signature::RsaKeyPair::from_pkcs8(&der).ok().map(|k| Signer::Rsa(Box::new(k))),
                };
                if let Some(key) = key {
                    signers.insert(k.alg, (k.kid.clone(), key));
                }
            }
            let Ok(jwk) = serde_json::from_str::<serde_json::Value>(&k.public_jwk) else { continue };
            let s = |name: &str| jwk[name].as_str();
            let key = match k.alg {
                JwtAlgorithm::EdDSA => s("x").and_then(|x| DecodingKey::from_ed_components(x).ok()),
                JwtAlgorithm::ES256 => s("x").zip(s("y")).and_then(|(x, y)| DecodingKey::from_ec_components(x, y).ok()),
                JwtAlgorithm::RS256 => s("n").zip(s("e")).and_then(|(n, e)| DecodingKey::from_rsa_components(n, e).ok()),
            };
            if let Some(key) = key {
                verifiers.insert(k.kid.clone(), (k.alg, key));
                published.push(jwk);
            }
        }
        Self { alg, signers, verifiers, jwks: serde_json::json!({ "keys": published }) }
    }

    /// Whether the access tokens' algorithm has a signing key.
    pub fn can_sign(&self) -> bool {
        self.can_sign_with(self.alg)
    }

    pub fn can_sign_with(&self, alg: JwtAlgorithm) -> bool {
        self.signers.contains_key(&alg)
    }

    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    /// An access token (`typ: at+jwt`) with the access tokens' algorithm.
    pub fn sign(&self, claims: &Claims) -> Option<String> {
        self.sign_as(self.alg, "at+jwt", claims)
    }

    /// Any token: `claims` signed with `alg`'s newest key, with `typ` in the header.
    pub fn sign_as(&self, alg: JwtAlgorithm, typ: &str, claims: &impl Serialize) -> Option<String> {
        let (kid, key) = self.signers.get(&alg)?;
        let header = Header { kid: Some(kid.clone()), typ: Some(typ.into()), ..Header::new(alg.jwt()) };
        match key {
            Signer::Jwt(key) => jsonwebtoken::encode(&header, claims, key).ok(),
            Signer::Rsa(pair) => {
                let signed = format!("{}.{}", B64.encode(serde_json::to_vec(&header).ok()?), B64.encode(serde_json::to_vec(claims).ok()?));
                let mut signature = vec![0; pair.public().modulus_len()];
                let rng = ring::rand::SystemRandom::new();
                pair.sign(&ring::signature::RSA_PKCS1_SHA256, &rng, signed.as_bytes(), &mut signature).ok()?;
                Some(format!("{signed}.{}", B64.encode(signature)))
            }
        }
    }

    /// Whether the token names a key this ring does not have (it may have been made since).
    pub fn knows_kid(&self, token: &str) -> bool {
        jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid).is_none_or(|kid| self.verifiers.contains_key(&kid))
    }

    /// The claims of a valid access token: signed by one of our keys with the access tokens'
    /// algorithm, for our issuer and audience, not expired at `now`.
    pub fn verify(&self, token: &str, issuer: &str, audience: &str, now: DateTime<Utc>) -> Option<Claims> {
        let claims: Claims = self.verify_as(token, &[self.alg], issuer, Some(audience), Some("at+jwt"))?;
        (claims.exp > now.timestamp()).then_some(claims)
    }

    /// The claims of a token signed by one of our keys with one of `algs`, for our issuer (and
    /// `audience`, when given), with the header's `typ` (when given). Expiry is the caller's to
    /// check, against the server's clock.
    pub fn verify_as<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        algs: &[JwtAlgorithm],
        issuer: &str,
        audience: Option<&str>,
        typ: Option<&str>,
    ) -> Option<T> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let (alg, key) = self.verifiers.get(header.kid.as_deref()?)?;
        if header.alg != alg.jwt() || !algs.contains(alg) {
            return None;
        }
        if typ.is_some_and(|t| !header.typ.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(t))) {
            return None;
        }
        let mut v = Validation::new(alg.jwt());
        v.set_issuer(&[issuer]);
        match audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        v.validate_exp = false;
        Some(jsonwebtoken::decode::<T>(token, key, &v).ok()?.claims)
    }
}

/// A signing key: jsonwebtoken's for EdDSA and ES256; ring's for RS256, whose RSA signature is
/// four times faster than the pure-Rust one (0.6 ms against 2.3 ms for 2048 bits), and an RSA
/// signature is most of an ID token's cost.
enum Signer {
    Jwt(EncodingKey),
    Rsa(Box<ring::signature::RsaKeyPair>),
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
        for alg in JwtAlgorithm::ALL {
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
