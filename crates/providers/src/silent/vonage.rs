//! Vonage Verify v2 with the `silent_auth` channel, as Vonage's documentation gives it
//! (developer.vonage.com: the Verify v2 API reference, "Verify: Authentication", the
//! silent-authentication synchronous guide, the Verify v2 API errors) and its Java SDK
//! (`Verify2Client`, `SilentAuthWorkflow`, `VerifyCodeResponse`):
//!
//! - authentication: an application JWT (RS256, claims `application_id`, `iat`, `exp`, `jti`).
//!   Verify v2 also takes Basic (API key and secret), but Vonage's authentication page says Basic
//!   "does not support the Silent Authentication channel", so this provider signs JWTs;
//! - create: `POST /v2/verify` `{brand, workflow: [{channel: "silent_auth", to, redirect_url}],
//!   client_ref}` with `to` in E.164 digits without `+` (the SDKs' examples) → `202 {request_id,
//!   check_url}`; 409 a verification to this number is in flight, 422 invalid parameters (the
//!   number is not supported), 429 rate limited;
//! - the device opens `check_url` over mobile data and is redirected to `redirect_url` carrying
//!   `request_id` and `code`. **Vonage puts them in the URL fragment** (`#request_id=…&code=…`),
//!   which browsers keep to themselves: the callback page must move them into the query before
//!   this provider can read them. `callback_ref` and `result` read them from the query;
//! - complete: `POST /v2/verify/{request_id}` `{code}` → `200 {request_id, status}`, `status`
//!   one of `completed`, `user_rejected`, `failed`, `expired`, …; 400 wrong code, 404 unknown or
//!   finished request, 409 the current step takes no code, 410 too many wrong codes.
use super::{http_error, is_plain_ref, read_json, transport};
use crate::app_jwt::AppJwt;
use crate::common::Traced;
use crate::secret::Secret;
use async_trait::async_trait;
use phonegate_core::PhoneNumber;
use phonegate_core::silent::{CallbackQuery, Coverage, Reason, SilentError, SilentProvider, SilentResult, SilentSession, SilentStart};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

pub const DEFAULT_BASE_URL: &str = "https://api.nexmo.com";

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VonageSilentSettings {
    /// The Vonage application (Verify capability on) whose key signs the requests.
    pub application_id: String,
    /// The application's private key, PEM (`-----BEGIN PRIVATE KEY-----…`); `\n` escapes, as an
    /// environment variable may carry them, are accepted.
    pub private_key: Secret,
    /// Default `https://api.nexmo.com`.
    pub base_url: Option<String>,
}

pub struct VonageSilent {
    name: String,
    settings: VonageSilentSettings,
    client: reqwest::Client,
    /// `None` when the configured key is not an RSA private key: every check then fails.
    key: Option<AppJwt>,
}

#[derive(Deserialize)]
struct Created {
    request_id: String,
    check_url: Option<String>,
}

#[derive(Deserialize)]
struct Completed {
    status: String,
}

/// Vonage's brand rules: at most 18 characters, none of `/{}:$` (such a brand is refused).
fn brand(brand: &str) -> String {
    let b: String = brand.chars().filter(|c| !"/{}:$".contains(*c)).take(18).collect();
    if b.trim().is_empty() { "Verification".into() } else { b }
}

/// The `status` of a redeemed code.
fn decide(status: &str) -> SilentResult {
    match status {
        "completed" => SilentResult::Match,
        // The operator answered, and the device is not the number's (Vonage's sandbox: "successful
        // check, but the user was not authenticated").
        "user_rejected" => SilentResult::Failed(Reason::Mismatch),
        "expired" => SilentResult::Failed(Reason::Timeout),
        _ => SilentResult::Failed(Reason::ProviderError),
    }
}

impl VonageSilent {
    pub fn new(name: &str, settings: VonageSilentSettings, client: reqwest::Client) -> Self {
        let key = AppJwt::new(&settings.application_id, settings.private_key.expose());
        if key.is_none() {
            tracing::error!(provider = %name, "private_key is not an RSA private key in PEM: silent checks will fail");
        }
        Self { name: name.to_string(), settings, client, key }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/'))
    }

    /// A fresh application JWT for one request.
    fn jwt(&self) -> Result<String, SilentError> {
        let unusable = || SilentError::Unavailable(format!("{}: private_key is not an RSA private key in PEM", self.name));
        let key = self.key.as_ref().ok_or_else(unusable)?;
        key.token().map_err(|why| SilentError::Unavailable(format!("{}: {why}", self.name)))
    }
}

#[async_trait]
impl SilentProvider for VonageSilent {
    fn name(&self) -> &str {
        &self.name
    }

    /// Verify v2 has no device-IP lookup: every device may try.
    async fn coverage(&self, _ip: IpAddr, _to: Option<&PhoneNumber>) -> Coverage {
        Coverage::Available { operator: None }
    }

    async fn create(&self, start: &SilentStart) -> Result<SilentSession, SilentError> {
        let what = "create verification";
        let body = serde_json::json!({
            "brand": brand(&start.brand),
            "workflow": [{
                "channel": "silent_auth",
                "to": start.to.as_str().trim_start_matches('+'),
                "redirect_url": start.callback_url,
            }],
            "client_ref": start.check_id,
        });
        let jwt = self.jwt()?;
        let response = self
            .client
            .post(self.url("/v2/verify"))
            .bearer_auth(jwt)
            .json(&body)
            .traced()
            .send()
            .await
            .map_err(|e| transport(&self.name, what, e))?;
        match response.status() {
            s if s.is_success() => {
                let created: Created = read_json(&self.name, what, response).await?;
                let device_url = created
                    .check_url
                    .ok_or_else(|| SilentError::Unavailable(format!("{}: {what}: no check_url in the answer", self.name)))?;
                Ok(SilentSession { device_url, provider_ref: created.request_id })
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                Err(SilentError::NotCovered(format!("{}: Vonage refused this number for silent authentication (HTTP 422)", self.name)))
            }
            StatusCode::CONFLICT => {
                Err(SilentError::Unavailable(format!("{}: {what}: HTTP 409 (a verification to this number is in flight)", self.name)))
            }
            s => Err(http_error(&self.name, what, s)),
        }
    }

    fn callback_ref(&self, query: &CallbackQuery) -> Option<String> {
        query.get("request_id").cloned()
    }

    /// Redeems the code the device brought back. A callback naming another request, or bringing
    /// no code, is refused unasked. Vonage's refusals of the code:
    /// - 400 `invalid-code`: not the code Vonage issued for this request, so a forged or altered
    ///   callback (an operator's "no" comes as `user_rejected`): provider error;
    /// - 404: the request is unknown or already finished: phonegate redeems each code once, so the
    ///   request lapsed (silent authentication's step lasts 60 s): timeout;
    /// - 409 `no-code`: the request's current step takes no code (the silent step failed or
    ///   moved on): provider error;
    /// - 410 `expired`: too many wrong codes, workflow terminated: provider error.
    ///
    /// Credentials (401/403), rate limits, server and network errors are errors (the core records
    /// a provider error and logs why).
    async fn result(&self, session: &SilentSession, _to: &PhoneNumber, query: &CallbackQuery) -> Result<SilentResult, SilentError> {
        let request_id = query.get("request_id").map(String::as_str).unwrap_or_default();
        let Some(code) = query.get("code").filter(|_| request_id == session.provider_ref && is_plain_ref(request_id)) else {
            tracing::warn!(provider = %self.name, "callback names another request or brings no code: refused");
            return Ok(SilentResult::Failed(Reason::ProviderError));
        };
        let what = "check code";
        let jwt = self.jwt()?;
        let url = self.url(&format!("/v2/verify/{request_id}"));
        let body = serde_json::json!({ "code": code });
        let response =
            self.client.post(url).bearer_auth(jwt).json(&body).traced().send().await.map_err(|e| transport(&self.name, what, e))?;
        match response.status().as_u16() {
            200..=299 => Ok(decide(&read_json::<Completed>(&self.name, what, response).await?.status)),
            400 | 409 | 410 => Ok(SilentResult::Failed(Reason::ProviderError)),
            404 => Ok(SilentResult::Failed(Reason::Timeout)),
            _ => Err(http_error(&self.name, what, response.status())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app_jwt::JWT_LIFETIME;
    use crate::app_jwt::testing::{PRIVATE_KEY, claims};
    use crate::testing::client;
    use serde_json::json;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const REQUEST: &str = "c11236f4-00bf-4b89-84ba-88b25df97315";

    fn vonage(server: &MockServer, key: &str) -> VonageSilent {
        let settings = VonageSilentSettings { application_id: "app-1".into(), private_key: Secret::new(key), base_url: Some(server.uri()) };
        VonageSilent::new("vg", settings, client())
    }

    fn start() -> SilentStart {
        SilentStart {
            check_id: "SC0123".into(),
            to: PhoneNumber::from_trusted("+447700900123".into()),
            callback_url: "https://verify.example.com/silent/callback/vg".into(),
            brand: "Acme: {Shop}/Online$ Store".into(),
        }
    }

    fn session() -> SilentSession {
        SilentSession { device_url: "https://api-eu.vonage.com/v2/verify/x/silent-auth/redirect".into(), provider_ref: REQUEST.into() }
    }

    fn query(pairs: &[(&str, &str)]) -> CallbackQuery {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    async fn answering(m: &str, p: &str, status: u16, body: serde_json::Value) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method(m)).and(path(p)).respond_with(ResponseTemplate::new(status).set_body_json(body)).mount(&server).await;
        server
    }

    async fn only(server: &MockServer) -> wiremock::Request {
        crate::testing::only_request(server).await
    }

    #[tokio::test]
    async fn creates_a_silent_auth_verification_signed_by_the_application() {
        let check_url = format!("https://api-eu.vonage.com/v2/verify/{REQUEST}/silent-auth/redirect");
        let server = answering("POST", "/v2/verify", 202, json!({"request_id": REQUEST, "check_url": check_url})).await;
        let s = vonage(&server, PRIVATE_KEY).create(&start()).await.unwrap();
        assert_eq!(s, SilentSession { device_url: check_url, provider_ref: REQUEST.into() });
        let r = only(&server).await;
        assert_eq!(r.headers["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let workflow =
            json!([{"channel": "silent_auth", "to": "447700900123", "redirect_url": "https://verify.example.com/silent/callback/vg"}]);
        assert_eq!(body, json!({"brand": "Acme ShopOnline St", "workflow": workflow, "client_ref": "SC0123"}));
        let c = claims(&r);
        assert_eq!(c["application_id"], "app-1");
        assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), JWT_LIFETIME);
        assert_eq!(c["jti"].as_str().unwrap().len(), 32);
        // Escaped newlines (an environment variable) are read too.
        let server = answering("POST", "/v2/verify", 202, json!({"request_id": REQUEST, "check_url": "u"})).await;
        assert!(vonage(&server, &PRIVATE_KEY.replace('\n', "\\n")).create(&start()).await.is_ok());
    }

    #[tokio::test]
    async fn maps_create_refusals() {
        for (status, not_covered, words) in [
            (422, true, "HTTP 422"),
            (401, false, "credentials"),
            (403, false, "credentials"),
            (409, false, "in flight"),
            (429, false, "rate limited"),
            (500, false, "provider error"),
        ] {
            let server = answering("POST", "/v2/verify", status, json!({"title": "x", "detail": "app-1 447700900123"})).await;
            let e = vonage(&server, PRIVATE_KEY).create(&start()).await.unwrap_err();
            assert_eq!(matches!(e, SilentError::NotCovered(_)), not_covered, "{status}: {e}");
            assert!(e.to_string().contains(words) && !e.to_string().contains("447700900123"), "{status}: {e}");
        }
        let server = MockServer::start().await;
        let e = vonage(&server, "not a key").create(&start()).await.unwrap_err();
        assert!(e.to_string().contains("private_key"), "{e}");
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn redeems_the_code_from_the_callback() {
        let check = format!("/v2/verify/{REQUEST}");
        let q = query(&[("request_id", REQUEST), ("code", "si9sfG")]);
        for (status, body, expected) in [
            (200, json!({"request_id": REQUEST, "status": "completed"}), Ok(SilentResult::Match)),
            (200, json!({"request_id": REQUEST, "status": "user_rejected"}), Ok(SilentResult::Failed(Reason::Mismatch))),
            (200, json!({"request_id": REQUEST, "status": "failed"}), Ok(SilentResult::Failed(Reason::ProviderError))),
            (400, json!({"title": "Invalid Code"}), Ok(SilentResult::Failed(Reason::ProviderError))),
            (404, json!({"title": "Not Found"}), Ok(SilentResult::Failed(Reason::Timeout))),
            (409, json!({"title": "Conflict"}), Ok(SilentResult::Failed(Reason::ProviderError))),
            (410, json!({"title": "Gone"}), Ok(SilentResult::Failed(Reason::ProviderError))),
        ] {
            let server = answering("POST", &check, status, body).await;
            assert_eq!(vonage(&server, PRIVATE_KEY).result(&session(), &start().to, &q).await, expected, "HTTP {status}");
            let r = only(&server).await;
            assert_eq!(serde_json::from_slice::<serde_json::Value>(&r.body).unwrap(), json!({"code": "si9sfG"}));
            assert_eq!(claims(&r)["application_id"], "app-1");
        }
        for status in [401, 500] {
            let server = answering("POST", &check, status, json!({"detail": "si9sfG"})).await;
            let Err(SilentError::Unavailable(e)) = vonage(&server, PRIVATE_KEY).result(&session(), &start().to, &q).await else { panic!() };
            assert!(e.contains(&format!("HTTP {status}")) && !e.contains("si9sfG"), "{e}");
        }
    }

    #[tokio::test]
    async fn refuses_a_callback_for_another_request_or_without_code_unasked() {
        let server = MockServer::start().await;
        let v = vonage(&server, PRIVATE_KEY);
        for q in [query(&[("request_id", "other"), ("code", "x")]), query(&[("request_id", REQUEST)]), query(&[("code", "x")])] {
            assert_eq!(v.result(&session(), &start().to, &q).await, Ok(SilentResult::Failed(Reason::ProviderError)));
        }
        assert!(server.received_requests().await.unwrap().is_empty());
        assert_eq!(v.callback_ref(&query(&[("request_id", REQUEST), ("code", "x")])).as_deref(), Some(REQUEST));
        assert_eq!(v.coverage("203.0.113.7".parse().unwrap(), None).await, Coverage::Available { operator: None });
    }
}
