//! The Vonage Verify v2 drop-in's status webhook: POSTs a callback's JSON to the application's
//! status URL, signed as Vonage signs webhooks: `Authorization: Bearer JWT`, HS256 with the
//! application's signature secret, claims `iat`, `jti`, `iss` ("Vonage"), `application_id` and
//! `payload_hash` (the hex SHA-256 of the body), so Vonage's own helpers verify it.
use async_trait::async_trait;
use phonegate_core::vonage::CallbackSink;
use rand::TryRngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Serialize)]
struct Claims<'a> {
    iat: u64,
    jti: String,
    iss: &'static str,
    application_id: &'a str,
    payload_hash: String,
}

/// Signs a body for an application.
pub fn sign(secret: &SecretString, application_id: &str, body: &[u8]) -> Result<String, String> {
    let iat = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let mut jti = [0u8; 16];
    rand::rngs::OsRng.try_fill_bytes(&mut jti).map_err(|_| "no random source".to_string())?;
    let claims = Claims { iat, jti: hex::encode(jti), iss: "Vonage", application_id, payload_hash: hex::encode(Sha256::digest(body)) };
    let key = jsonwebtoken::EncodingKey::from_secret(secret.expose_secret().as_bytes()).map_err(|_| "cannot sign".to_string())?;
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key).map_err(|_| "cannot sign".to_string())
}

pub struct StatusWebhook {
    client: reqwest::Client,
}

impl Default for StatusWebhook {
    fn default() -> Self {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        Self { client }
    }
}

#[async_trait]
impl CallbackSink for StatusWebhook {
    async fn deliver(&self, url: &str, application_id: &str, secret: Option<&SecretString>, body: &str) -> Result<(), String> {
        let mut request = self.client.post(url).header("content-type", "application/json").body(body.to_string());
        if let Some(secret) = secret {
            request = request.bearer_auth(sign(secret, application_id, body.as_bytes())?);
        }
        // Without the URL: it may carry a token.
        let response = request
            .send()
            .await
            .map_err(|e| format!("the status webhook could not be reached ({})", if e.is_timeout() { "timeout" } else { "connection" }))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) { Ok(()) } else { Err(format!("the status webhook answered HTTP {status}")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_body_verifies_as_vonage_callbacks_do() {
        let secret = SecretString::from("a-signature-secret-of-32-characters!!");
        let body = br#"{"type":"summary"}"#;
        let token = sign(&secret, "app", body).unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let claims = crate::signature::verify_vonage_jwt([secret.expose_secret()], &token, body, now).unwrap();
        assert_eq!(claims.payload_hash, hex::encode(Sha256::digest(body)));
        assert!(crate::signature::verify_vonage_jwt([secret.expose_secret()], &token, b"{}", now).is_err());
    }
}
