//! CAMARA Number Verification v2 (releases r3/r4: `number-verification/v2`), through the
//! operator's OpenID Connect authorization-code flow, as CAMARA defines them
//! (github.com/camaraproject: NumberVerification `code/API_definitions/number-verification.yaml`;
//! IdentityAndConsentManagement `CAMARA-Security-Interoperability.md`, `CAMARA-ICM-examples.md`):
//!
//! - the device is sent to the operator's `authorization_endpoint` with `response_type=code`,
//!   `client_id`, `redirect_uri`, `scope`, `state`, `prompt=none` (the NV spec: no user
//!   interaction), `login_hint=tel:+…` (the profile's `tel:` format) and PKCE (`S256`, which the
//!   profile recommends; servers without PKCE ignore it). The operator authenticates the device
//!   by its mobile-data connection and redirects to `redirect_uri?code=…&state=…`, or
//!   `?error=…&state=…`;
//! - the code is exchanged at the `token_endpoint` (`grant_type=authorization_code`, `code`,
//!   `redirect_uri`, `code_verifier`; client authenticated with HTTP Basic) for a single-use
//!   access token; a replayed, expired or altered code is `400 invalid_grant`;
//! - `POST {api_root}/number-verification/v2/verify` with `{"phoneNumber": "+…"}` or
//!   `{"hashedPhoneNumber": <lowercase hex SHA-256 of the E.164 number with its '+'>}` →
//!   `200 {"devicePhoneNumberVerified": bool}`; 403 when the token was not obtained by
//!   mobile-network authentication.
//!
//! Scope: CAMARA puts the purpose in the scope as exactly one `dpv:` value next to the API's
//! scopes, so the default is `openid dpv:FraudPreventionAndDetection number-verification:verify`.
//! Older deployments (NV v0.3/v1, e.g. aggregators) use
//! `openid dpv:FraudPreventionAndDetection#number-verification-verify-read`: set `scope`.
//!
//! Not done here: `private_key_jwt` client authentication, which the CAMARA profile asks of
//! operators; this provider authenticates with `client_secret_basic`, as aggregators accept.
use super::{http_error, read_json, transport};
use crate::common::Traced;
use crate::secret::Secret;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use phonegate_core::PhoneNumber;
use phonegate_core::silent::{CallbackQuery, Coverage, Reason, SilentError, SilentProvider, SilentResult, SilentSession, SilentStart};
use rand::TryRngCore;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use tokio::sync::OnceCell;

pub const DEFAULT_SCOPE: &str = "openid dpv:FraudPreventionAndDetection number-verification:verify";

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CamaraSettings {
    pub client_id: String,
    pub client_secret: Secret,
    /// The operator's `/.well-known/openid-configuration`, read once for the endpoints not given.
    pub discovery_url: Option<String>,
    /// Explicit endpoints override those of the discovery document.
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    /// The operator's API root (`https://operator.example/camara`), before `/number-verification`.
    pub api_root: String,
    /// Send `hashedPhoneNumber` instead of `phoneNumber` (default false).
    #[serde(default)]
    pub hashed: bool,
    /// Default [`DEFAULT_SCOPE`].
    pub scope: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
struct Endpoints {
    authorization_endpoint: String,
    token_endpoint: String,
}

pub struct Camara {
    name: String,
    settings: CamaraSettings,
    client: reqwest::Client,
    /// The discovery document's endpoints, fetched once (concurrent first callers wait for it).
    discovered: OnceCell<Endpoints>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

#[derive(Deserialize)]
struct OauthError {
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Verified {
    device_phone_number_verified: bool,
}

/// An error the operator's authorization endpoint redirected with, in our words. With
/// `prompt=none`, `login_required` and `interaction_required` say the operator could not
/// authenticate the device without the user, that is, not by its mobile-data connection: the
/// device is on Wi-Fi (or another operator's network). Everything else (`access_denied`,
/// `consent_required`, `invalid_scope`, `unauthorized_client`, `server_error`, …) is the operator
/// refusing: provider error.
fn authorization_error(error: &str) -> Reason {
    match error {
        "login_required" | "interaction_required" => Reason::Wifi,
        _ => Reason::ProviderError,
    }
}

impl Camara {
    pub fn new(name: &str, settings: CamaraSettings, client: reqwest::Client) -> Self {
        if settings.discovery_url.is_none() && (settings.authorization_endpoint.is_none() || settings.token_endpoint.is_none()) {
            tracing::error!(provider = %name, "needs discovery_url, or authorization_endpoint and token_endpoint: silent checks will fail");
        }
        Self { name: name.to_string(), settings, client, discovered: OnceCell::new() }
    }

    async fn endpoints(&self) -> Result<Endpoints, SilentError> {
        let s = &self.settings;
        if let (Some(a), Some(t)) = (&s.authorization_endpoint, &s.token_endpoint) {
            return Ok(Endpoints { authorization_endpoint: a.clone(), token_endpoint: t.clone() });
        }
        let Some(discovery) = &s.discovery_url else {
            return Err(SilentError::Unavailable(format!(
                "{}: needs discovery_url, or authorization_endpoint and token_endpoint",
                self.name
            )));
        };
        let found = self.discovered.get_or_try_init(|| self.discover(discovery)).await?;
        Ok(Endpoints {
            authorization_endpoint: s.authorization_endpoint.clone().unwrap_or_else(|| found.authorization_endpoint.clone()),
            token_endpoint: s.token_endpoint.clone().unwrap_or_else(|| found.token_endpoint.clone()),
        })
    }

    async fn discover(&self, url: &str) -> Result<Endpoints, SilentError> {
        let what = "discovery";
        let response = self.client.get(url).traced().send().await.map_err(|e| transport(&self.name, what, e))?;
        if !response.status().is_success() {
            return Err(http_error(&self.name, what, response.status()));
        }
        read_json(&self.name, what, response).await
    }

    /// The PKCE verifier of a check, derived from its `state` and the client secret, so nothing
    /// beyond the `state` needs keeping: 43 characters of base64url (RFC 7636's minimum).
    fn code_verifier(&self, state: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.settings.client_secret.expose().as_bytes()).expect("HMAC takes any key length");
        mac.update(b"phonegate camara pkce ");
        mac.update(state.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    fn refused(&self, why: &str) -> Result<SilentResult, SilentError> {
        tracing::warn!(provider = %self.name, "callback refused: {why}");
        Ok(SilentResult::Failed(Reason::ProviderError))
    }
}

#[async_trait]
impl SilentProvider for Camara {
    fn name(&self) -> &str {
        &self.name
    }

    /// Number Verification has no device-IP lookup: every device may try.
    async fn coverage(&self, _ip: IpAddr, _to: Option<&PhoneNumber>) -> Coverage {
        Coverage::Available { operator: None }
    }

    /// No call to the operator but the discovery (once): the check is the authorization URL,
    /// and its reference the fresh `state`.
    async fn create(&self, start: &SilentStart) -> Result<SilentSession, SilentError> {
        let endpoints = self.endpoints().await?;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.try_fill_bytes(&mut bytes).map_err(|_| SilentError::Unavailable(format!("{}: no random source", self.name)))?;
        let state = hex::encode(bytes);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(self.code_verifier(&state).as_bytes()));
        let mut url = Url::parse(&endpoints.authorization_endpoint)
            .map_err(|_| SilentError::Unavailable(format!("{}: the authorization endpoint is not a URL", self.name)))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &start.callback_url)
            .append_pair("scope", self.settings.scope.as_deref().unwrap_or(DEFAULT_SCOPE))
            .append_pair("state", &state)
            .append_pair("prompt", "none")
            .append_pair("login_hint", &format!("tel:{}", start.to.as_str()))
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(SilentSession { device_url: url.into(), provider_ref: state })
    }

    fn callback_ref(&self, query: &CallbackQuery) -> Option<String> {
        query.get("state").cloned()
    }

    /// A `state` that is not the check's is refused unasked, as is a callback with neither code
    /// nor error. A code is exchanged (the `redirect_uri` comes back from the device URL) and the
    /// number verified; a code the token endpoint refuses (`invalid_grant`: replayed, expired or
    /// altered) and a 403 of `/verify` are provider errors; other refusals are errors.
    async fn result(&self, session: &SilentSession, to: &PhoneNumber, query: &CallbackQuery) -> Result<SilentResult, SilentError> {
        if query.get("state") != Some(&session.provider_ref) {
            return self.refused("state is not the check's");
        }
        if let Some(error) = query.get("error") {
            return Ok(SilentResult::Failed(authorization_error(error)));
        }
        let Some(code) = query.get("code") else { return self.refused("no code") };
        let redirect_uri = Url::parse(&session.device_url)
            .ok()
            .and_then(|u| u.query_pairs().find(|(k, _)| k == "redirect_uri").map(|(_, v)| v.into_owned()))
            .ok_or_else(|| SilentError::Unavailable(format!("{}: the check's device URL names no redirect_uri", self.name)))?;
        let endpoints = self.endpoints().await?;

        let what = "token";
        let verifier = self.code_verifier(&session.provider_ref);
        let form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", &redirect_uri), ("code_verifier", &verifier)];
        let response = self
            .client
            .post(&endpoints.token_endpoint)
            .basic_auth(&self.settings.client_id, Some(self.settings.client_secret.expose()))
            .form(&form)
            .traced()
            .send()
            .await
            .map_err(|e| transport(&self.name, what, e))?;
        let status = response.status();
        if status == reqwest::StatusCode::BAD_REQUEST {
            let error = read_json::<OauthError>(&self.name, what, response).await.ok().and_then(|e| e.error);
            if error.as_deref() == Some("invalid_grant") {
                return self.refused("the token endpoint refused the code (invalid_grant)");
            }
            return Err(http_error(&self.name, what, status));
        }
        if !status.is_success() {
            return Err(http_error(&self.name, what, status));
        }
        let token: TokenResponse = read_json(&self.name, what, response).await?;

        let what = "verify";
        let body = if self.settings.hashed {
            serde_json::json!({ "hashedPhoneNumber": hex::encode(Sha256::digest(to.as_str().as_bytes())) })
        } else {
            serde_json::json!({ "phoneNumber": to.as_str() })
        };
        let url = format!("{}/number-verification/v2/verify", self.settings.api_root.trim_end_matches('/'));
        let response = self
            .client
            .post(url)
            .bearer_auth(&token.access_token)
            .json(&body)
            .traced()
            .send()
            .await
            .map_err(|e| transport(&self.name, what, e))?;
        match response.status() {
            s if s.is_success() => {
                let verified: Verified = read_json(&self.name, what, response).await?;
                Ok(if verified.device_phone_number_verified { SilentResult::Match } else { SilentResult::Failed(Reason::Mismatch) })
            }
            reqwest::StatusCode::FORBIDDEN => self.refused("/verify answered 403"),
            s => Err(http_error(&self.name, what, s)),
        }
    }
}
