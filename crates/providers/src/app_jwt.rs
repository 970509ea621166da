//! Vonage application JWTs: what the Voice API, the Messages API and Verify v2 take as
//! `Authorization: Bearer`. RS256, signed with the application's private key, claims
//! `application_id`, `iat`, `exp` and a random `jti` (Vonage's "Authentication" guide).
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::TryRngCore;
use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

/// Lifetime of each request's JWT, in seconds.
pub const JWT_LIFETIME: u64 = 300;

/// An application id and its private key, ready to sign.
#[derive(Clone)]
pub struct AppJwt {
    application_id: String,
    key: EncodingKey,
}

#[derive(Serialize)]
struct Claims<'a> {
    application_id: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

impl AppJwt {
    /// `None` when `pem` is not an RSA private key in PEM (`\n` escapes, as an environment
    /// variable may carry them, are read as newlines).
    pub fn new(application_id: &str, pem: &str) -> Option<Self> {
        let pem = pem.replace("\\n", "\n");
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).ok()?;
        Some(Self { application_id: application_id.to_string(), key })
    }

    /// A fresh JWT for one request; the error says why none could be made (never the key).
    pub fn token(&self) -> Result<String, &'static str> {
        let iat = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let mut jti = [0u8; 16];
        rand::rngs::OsRng.try_fill_bytes(&mut jti).map_err(|_| "no random source")?;
        let claims = Claims { application_id: &self.application_id, iat, exp: iat + JWT_LIFETIME, jti: hex::encode(jti) };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key).map_err(|_| "the private key cannot sign")
    }
}

impl std::fmt::Debug for AppJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppJwt").field("application_id", &self.application_id).finish_non_exhaustive()
    }
}

/// Test keys and the claims of a request's JWT, checked against the public key.
#[cfg(test)]
pub(crate) mod testing {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    /// A 1024-bit RSA key pair made for these tests only.
    pub const PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIICdQIBADANBgkqhkiG9w0BAQEFAASCAl8wggJbAgEAAoGBAMOxL7w4IZe1wZKC
Gbv1v5T3iF4TsCTKsDPdyHgC7P2B7Dmk4Yn8LrfoooD3PJonXtJ2GyH5t+bNgg14
8ClI8Ek40HrbJSmfE+HjxEgpWFrhp7To7DHhvWdgCUNtCXDPBAdfM/96NfBoe2Dj
4/T99WSzv5eqO8+X2yrNyrig/u/xAgMBAAECgYAtUXY1h2Y4JO5MCHb/MT0JuX1K
FBMhohLGICFRsZPCbXkQLF/SvaTwEB658QeGx4FNCe7kolj1SThJ+GzdkreaRW75
w3LdgSS83B53ypfa1/uYt0FjwVrd0L5U0tLheIdNoEvpVpDibfxfgv/6e3OFAuyY
/1HLkNPZrZ+gkWoRcQJBAPCSTisKgMNVGmJljVcTTwZ123tkBWLWEdIZDDH3gHPd
bzuGx/A64pMKenp/O1Xot8U5OowKmtD/0jy7zEaeMb0CQQDQPg2cTsxZBFu07ckf
w/wWdcwWizW1sjLDWwu1q0K7DArC+3jXpwCyMOVXvdzNJDKzj+3TpAr8M72c06Wt
TihFAkBawZcjva6eAjkV7eHIe8xQT54hirZNdxz5+eET6J9ZFqyj9FDxXAWmG0nh
dKZZ3pWVneVsd4O4XQpfRynlakCxAkBaIRFo/p3pRT6f727mRb/8xJ1BgJ0NeAQK
k4Rc67PlGxApVgf2ZnyhoxIQSMehLjKXjwrjWBO9FnPRxbTmbnZ1AkAJE/pyL3Oe
7bYtWGWWRfotpEkjXNJW+QwPLIOeUd5S8armQ6CRx9I3ff9bHjIn8PoFcHN7+2hi
0sIYk1o5T0wL
-----END PRIVATE KEY-----";
    pub const PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDDsS+8OCGXtcGSghm79b+U94he
E7AkyrAz3ch4Auz9gew5pOGJ/C636KKA9zyaJ17Sdhsh+bfmzYINePApSPBJONB6
2yUpnxPh48RIKVha4ae06Owx4b1nYAlDbQlwzwQHXzP/ejXwaHtg4+P0/fVks7+X
qjvPl9sqzcq4oP7v8QIDAQAB
-----END PUBLIC KEY-----";

    /// The claims of the request's bearer JWT, verified with `PUBLIC_KEY`.
    pub fn claims(r: &wiremock::Request) -> serde_json::Value {
        let auth = r.headers["authorization"].to_str().unwrap();
        let jwt = auth.strip_prefix("Bearer ").expect("a bearer JWT");
        let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
        jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &Validation::new(Algorithm::RS256)).unwrap().claims
    }
}
