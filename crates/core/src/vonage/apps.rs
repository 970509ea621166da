//! Applications: an API key's RS256 public key (and status webhook). A request's
//! `Authorization: Bearer JWT` signed with the application's private key authenticates as the
//! key: checked for its signature (RS256 only), `application_id`, `iat` (not in the future),
//! `exp` (given or 15 minutes after `iat`, a lifetime of at most a day) and its `jti`, which is
//! accepted once within that lifetime.
use super::VonageV2;
use crate::apikey::ApiKey;
use crate::caller::Caller;
use crate::error::{Field, VerifyError};
use crate::model::ids::{is_uuid, new_uuid};
use crate::model::vonage::VonageApp;
use crate::ports;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// A JWT's lifetime when it names no `exp` (the SDKs' default).
const DEFAULT_LIFETIME: i64 = 900;
/// The longest lifetime accepted (Vonage's own limit).
const MAX_LIFETIME: i64 = 86_400;
/// Clock skew allowed on `iat`.
const SKEW: i64 = 60;

/// What an admin gives to attach an application to a key.
#[derive(Clone, Debug)]
pub struct NewApp {
    /// The RSA public key, PEM.
    pub public_key: String,
    /// Where status callbacks go (`https://`, or `http://` for a loopback or private host).
    pub status_url: Option<String>,
    /// The secret callbacks are signed with (HS256), 32 characters or more.
    pub signature_secret: Option<SecretString>,
}

#[derive(serde::Deserialize)]
struct Claims {
    application_id: String,
    iat: i64,
    exp: Option<i64>,
    jti: Option<String>,
}

fn invalid(field: Field, message: &str) -> VerifyError {
    VerifyError::invalid(field, message)
}

/// Whether `url` may receive a status callback or a device: an absolute `https` URL, or `http`
/// to a loopback or private-network host (a backend next to phonegate).
pub fn is_callback_url(url: &str) -> bool {
    if url.len() > 2000 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let (rest, plain) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(r), _) => (r, false),
        (None, Some(r)) => (r, true),
        _ => return false,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return false;
    }
    if !plain {
        return true;
    }
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| match ip {
            std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
            std::net::IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        })
}

fn check_status_url(url: &str) -> Result<(), VerifyError> {
    match is_callback_url(url) {
        true => Ok(()),
        false => Err(invalid(Field::Url, "the status URL must be https (http only to this machine or a private network)")),
    }
}

impl VonageV2 {
    /// Attaches an application to key `key_id` (or replaces the one it has, keeping its id):
    /// its public key, status webhook and signature secret. Admins only.
    pub async fn set_app(&self, caller: &Caller, key_id: &str, new: NewApp) -> Result<VonageApp, VerifyError> {
        caller.require_admin()?;
        // The public half only: a private key would be stored and shown.
        let pem = new.public_key.trim();
        let public = pem.starts_with("-----BEGIN PUBLIC KEY-----") || pem.starts_with("-----BEGIN RSA PUBLIC KEY-----");
        if !public || pem.contains("PRIVATE") || jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).is_err() {
            return Err(invalid(Field::PublicKey, "must be the application's RSA public key in PEM (BEGIN PUBLIC KEY)"));
        }
        if let Some(url) = &new.status_url {
            check_status_url(url)?;
            // Unsigned callbacks could be forged by anyone who finds the URL.
            if new.signature_secret.is_none() {
                return Err(invalid(Field::Secret, "a status URL needs a signature secret to sign its callbacks"));
            }
        }
        if new.signature_secret.as_ref().is_some_and(|s| s.expose_secret().chars().count() < 32) {
            return Err(invalid(Field::Secret, "the signature secret must have at least 32 characters"));
        }
        let (now, keys, key) = (self.ctx.now(), self.ctx.keys.clone(), key_id.to_string());
        let app = ports::write(self.ctx.store.as_ref(), move |tx| {
            let k = tx.api_key(&key)?.filter(|k| k.revoked_at.is_none()).ok_or(VerifyError::ApiKeyNotFound)?;
            let existing = tx.vonage_app_of_key(&k.id)?;
            let id = existing.map(|a| a.id).unwrap_or_else(new_uuid);
            let sealed = new.signature_secret.as_ref().map(|s| keys.seal_text(&id, s.expose_secret()));
            let app = VonageApp {
                id,
                key_id: k.id,
                public_key: new.public_key.trim().to_string(),
                status_url: new.status_url.clone(),
                signature_secret_sealed: sealed,
                created_at: now,
            };
            tx.put_vonage_app(&app)?;
            Ok::<_, VerifyError>(app)
        })
        .await?;
        if let Ok(mut parsed) = self.parsed.lock() {
            parsed.remove(&app.id);
        }
        if let Ok(mut apps) = self.apps_of_keys.lock() {
            apps.remove(&app.key_id);
        }
        self.audit.record(caller, crate::audit::AuditKind::VonageApplicationSet, Some(key_id), &app.id).await;
        Ok(app)
    }

    /// The application of key `key_id`, if it has one. Admins only.
    pub async fn app_of_key(&self, caller: &Caller, key_id: &str) -> Result<Option<VonageApp>, VerifyError> {
        caller.require_admin()?;
        let key = key_id.to_string();
        ports::read(self.ctx.store.as_ref(), move |tx| Ok(tx.vonage_app_of_key(&key)?)).await
    }

    /// The active key an application JWT authenticates as; `None` for any token that is not
    /// one (bad signature, unknown application, revoked key, expired, replayed).
    pub async fn authenticate(&self, token: &str) -> Result<Option<ApiKey>, VerifyError> {
        let Some(unverified) = unverified_claims(token) else { return Ok(None) };
        if !is_uuid(&unverified.application_id) {
            return Ok(None);
        }
        let id = unverified.application_id.clone();
        let found = ports::read(self.ctx.store.as_ref(), move |tx| {
            let Some(app) = tx.vonage_app(&id)? else { return Ok::<_, VerifyError>(None) };
            Ok(tx.api_key(&app.key_id)?.filter(|k| k.revoked_at.is_none()).map(|k| (app, k)))
        })
        .await?;
        let Some((app, key)) = found else { return Ok(None) };
        let Some(claims) = self.verified(&app, token) else { return Ok(None) };
        let now = self.ctx.now();
        let Some(expires) = lifetime(&claims, now) else { return Ok(None) };
        let jti = claims.jti.clone().unwrap_or_else(|| hex::encode(Sha256::digest(token.as_bytes())));
        let digest = Sha256::digest(format!("vonage-jwt\n{}\n{jti}", app.id).as_bytes()).to_vec();
        let fresh = ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.use_once(&digest, expires)?)).await?;
        Ok(fresh.then_some(key))
    }

    fn verified(&self, app: &VonageApp, token: &str) -> Option<Claims> {
        let key = {
            let mut parsed = self.parsed.lock().ok()?;
            match parsed.get(&app.id) {
                Some((pem, key)) if *pem == app.public_key => key.clone(),
                _ => {
                    let key = jsonwebtoken::DecodingKey::from_rsa_pem(app.public_key.as_bytes()).ok()?;
                    if parsed.len() > 1000 {
                        parsed.clear();
                    }
                    parsed.insert(app.id.clone(), (app.public_key.clone(), key.clone()));
                    key
                }
            }
        };
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation).ok()?.claims;
        (claims.application_id == app.id).then_some(claims)
    }
}

/// The claims of a JWT read without checking it: only to find the application whose key checks it.
fn unverified_claims(token: &str) -> Option<Claims> {
    use base64::Engine;
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || token.len() > 8192 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// When a token stops being accepted; `None` when it is not valid now.
fn lifetime(c: &Claims, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // In i128: no claim value can overflow the arithmetic.
    let (now_s, iat) = (i128::from(now.timestamp()), i128::from(c.iat));
    let exp = c.exp.map_or(iat + i128::from(DEFAULT_LIFETIME), i128::from);
    let ok = iat <= now_s + i128::from(SKEW) && exp > now_s && exp > iat && exp - iat <= i128::from(MAX_LIFETIME);
    ok.then(|| now + Duration::seconds((exp - now_s) as i64 + SKEW))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: i64, exp: Option<i64>) -> Claims {
        Claims { application_id: new_uuid(), iat, exp, jti: None }
    }

    #[test]
    fn a_token_lives_from_iat_to_exp_within_a_day() {
        let now = Utc::now();
        let t = now.timestamp();
        assert!(lifetime(&claims(t, None), now).is_some());
        assert!(lifetime(&claims(t - 901, None), now).is_none(), "15 minutes without exp");
        assert!(lifetime(&claims(t, Some(t + 3600)), now).is_some());
        assert!(lifetime(&claims(t, Some(t - 1)), now).is_none(), "expired");
        assert!(lifetime(&claims(t + 120, Some(t + 600)), now).is_none(), "issued in the future");
        assert!(lifetime(&claims(t, Some(t + MAX_LIFETIME + 1)), now).is_none(), "longer than a day");
        assert!(lifetime(&claims(i64::MIN, Some(t + 3600)), now).is_none(), "no overflow");
        assert!(lifetime(&claims(t, Some(i64::MAX)), now).is_none());
        assert!(lifetime(&claims(i64::MAX, None), now).is_none());
    }

    #[test]
    fn callbacks_and_devices_go_to_https_or_a_private_http_host() {
        for ok in ["https://app.example/s", "http://127.0.0.1:8080/s", "http://localhost/x", "http://10.1.2.3/x", "http://[::1]:9/x"] {
            assert!(is_callback_url(ok), "{ok}");
        }
        for bad in ["http://app.example/s", "ftp://x", "https://", "http://8.8.8.8/", "javascript:alert(1)", "https://a b"] {
            assert!(!is_callback_url(bad), "{bad}");
        }
    }

    #[test]
    fn unverified_claims_need_three_parts_and_json() {
        assert!(unverified_claims("a.b").is_none());
        assert!(unverified_claims("a.b.c.d").is_none());
        assert!(unverified_claims("x.eyJ9.y").is_none());
    }
}
