//! tru.ID PhoneCheck v0.2. Wire format as tru.ID's OpenAPI definitions give it
//! (github.com/tru-ID/api-definitions: `specs/basics.yaml`, `specs/products.yaml`,
//! `specs/utils.yaml`, `specs/models/check/CheckResourceModels.v0.2.yaml`), which its tutorials
//! follow:
//!
//! - access token: `POST /oauth2/v1/token`, Basic `client_id:client_secret`, form
//!   `grant_type=client_credentials&scope=phone_check coverage` → `{access_token, expires_in}`;
//!   cached until shortly before it expires, fetched once for all concurrent callers;
//! - create: `POST /phone_check/v0.2/checks` `{phone_number, redirect_url, reference_id}` with the
//!   number in E.164 digits without `+` (the spec's example is `"447700900000"`) → `201
//!   {check_id, status, _links: {check_url: {href}}}`;
//! - the device opens `check_url` over mobile data and is redirected to `redirect_url` with
//!   `?check_id=…&code=…`, or `?check_id=…&error=…&error_description=…`;
//! - complete: `PATCH /phone_check/v0.2/checks/{check_id}`, `application/json-patch+json`
//!   `[{"op":"add","path":"/code","value":code}]` → `{check_id, status, match}`;
//! - without a code: `GET /phone_check/v0.2/checks/{check_id}` → `{status, match, error_code}`.
//!   (Tutorials read v0.1 here; the spec defines the v0.2 GET, which is used.)
//! - coverage: `GET /coverage/v0.1/device_ips/{ip}` → 200 `{network_id, network_name, products}`,
//!   400 operator not supported, 412 not a mobile IP.
use super::{http_error, is_plain_ref, read_json, transport};
use crate::common::Traced;
use crate::secret::Secret;
use async_trait::async_trait;
use phonegate_core::PhoneNumber;
use phonegate_core::silent::{CallbackQuery, Coverage, Reason, SilentError, SilentProvider, SilentResult, SilentSession, SilentStart};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub const DEFAULT_BASE_URL: &str = "https://eu.api.tru.id";
const SCOPE: &str = "phone_check coverage";

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TruidSettings {
    /// The tru.ID project's credentials.
    pub client_id: String,
    pub client_secret: Secret,
    /// The project's data residency (default `https://eu.api.tru.id`; `https://in.api.tru.id`…).
    #[serde(default = "default_base_url")]
    pub base_url: String,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.into()
}

struct Token {
    value: String,
    usable_until: Instant,
}

pub struct Truid {
    name: String,
    settings: TruidSettings,
    client: reqwest::Client,
    /// The access token; the lock is held while a new one is fetched, so concurrent callers
    /// wait for that one instead of each fetching their own.
    token: Mutex<Option<Token>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

#[derive(Deserialize)]
struct Check {
    status: String,
    #[serde(rename = "match")]
    matched: Option<bool>,
    error_code: Option<String>,
}

/// How long before its expiry a token is replaced: a minute, or a tenth of a short lifetime.
fn margin(lifetime: Duration) -> Duration {
    if lifetime >= Duration::from_secs(600) { Duration::from_secs(60) } else { lifetime / 10 }
}

/// tru.ID's `error_code` / redirect `error` values, in our words.
fn error_reason(code: Option<&str>) -> Reason {
    match code {
        Some("not_mobile_ip") => Reason::Wifi,
        Some("mno_not_supported" | "mno_redirect_unsupported") => Reason::OperatorNotCovered,
        Some("mno_timeout") => Reason::Timeout,
        _ => Reason::ProviderError,
    }
}

/// A check's state as tru.ID reports it: a match only when COMPLETED with `match: true`.
/// `hint` is the redirect's `error`, used when the check names no `error_code` itself (it can
/// only turn a check into a failure).
fn decide(check: &Check, hint: Option<&str>) -> SilentResult {
    match (check.status.as_str(), check.matched) {
        ("COMPLETED", Some(true)) => SilentResult::Match,
        ("COMPLETED", Some(false)) => SilentResult::Failed(Reason::Mismatch),
        ("EXPIRED", _) => SilentResult::Failed(Reason::Timeout),
        _ => SilentResult::Failed(error_reason(check.error_code.as_deref().or(hint))),
    }
}

impl Truid {
    pub fn new(name: &str, settings: TruidSettings, client: reqwest::Client) -> Self {
        Self { name: name.to_string(), settings, client, token: Mutex::new(None) }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.base_url.trim_end_matches('/'))
    }

    async fn token(&self) -> Result<String, SilentError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| Instant::now() < t.usable_until) {
            return Ok(t.value.clone());
        }
        let what = "access token";
        let response = self
            .client
            .post(self.url("/oauth2/v1/token"))
            .basic_auth(&self.settings.client_id, Some(self.settings.client_secret.expose()))
            .form(&[("grant_type", "client_credentials"), ("scope", SCOPE)])
            .traced()
            .send()
            .await
            .map_err(|e| transport(&self.name, what, e))?;
        if !response.status().is_success() {
            return Err(http_error(&self.name, what, response.status()));
        }
        let body: TokenResponse = read_json(&self.name, what, response).await?;
        let lifetime = Duration::from_secs(body.expires_in);
        *cached = Some(Token { value: body.access_token.clone(), usable_until: Instant::now() + lifetime - margin(lifetime) });
        Ok(body.access_token)
    }

    /// Sends a request with the access token; a token the API refuses is forgotten.
    async fn call(&self, what: &str, request: impl Fn(&str) -> reqwest::RequestBuilder) -> Result<reqwest::Response, SilentError> {
        let token = self.token().await?;
        let response = request(&token).traced().send().await.map_err(|e| transport(&self.name, what, e))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let mut cached = self.token.lock().await;
            if cached.as_ref().is_some_and(|t| t.value == token) {
                *cached = None;
            }
        }
        Ok(response)
    }
}

#[async_trait]
impl SilentProvider for Truid {
    fn name(&self) -> &str {
        &self.name
    }

    /// 200 covered (the operator's name, else its MCC-MNC), unless the answer lists products
    /// without PhoneCheck; 412 not a mobile IP; 400/404 operator not covered; else unknown.
    async fn coverage(&self, ip: IpAddr, _to: Option<&PhoneNumber>) -> Coverage {
        let url = self.url(&format!("/coverage/v0.1/device_ips/{ip}"));
        let response = match self.call("coverage", |t| self.client.get(&url).bearer_auth(t)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(provider = %self.name, error = %e, "coverage lookup failed");
                return Coverage::Unavailable(Reason::Unknown);
            }
        };
        match response.status().as_u16() {
            200 => {
                let Ok(r) = read_json::<serde_json::Value>(&self.name, "coverage", response).await else {
                    return Coverage::Unavailable(Reason::Unknown);
                };
                let products = r["products"].as_array().map(Vec::as_slice).unwrap_or_default();
                if !products.is_empty()
                    && !products.iter().any(|p| p["product_id"].as_str().is_some_and(|id| id.eq_ignore_ascii_case("pck")))
                {
                    return Coverage::Unavailable(Reason::OperatorNotCovered);
                }
                let operator = r["network_name"].as_str().or(r["network_id"].as_str());
                Coverage::Available { operator: operator.map(str::to_string) }
            }
            412 => Coverage::Unavailable(Reason::Wifi),
            400 | 404 => Coverage::Unavailable(Reason::OperatorNotCovered),
            _ => Coverage::Unavailable(Reason::Unknown),
        }
    }

    async fn create(&self, start: &SilentStart) -> Result<SilentSession, SilentError> {
        let what = "create check";
        let body = serde_json::json!({
            "phone_number": start.to.as_str().trim_start_matches('+'),
            "redirect_url": start.callback_url,
            "reference_id": start.check_id,
        });
        let url = self.url("/phone_check/v0.2/checks");
        let response = self.call(what, |t| self.client.post(&url).bearer_auth(t).json(&body)).await?;
        match response.status() {
            s if s.is_success() => {
                let created: serde_json::Value = read_json(&self.name, what, response).await?;
                match (created["check_id"].as_str(), created["_links"]["check_url"]["href"].as_str()) {
                    (Some(id), Some(url)) => Ok(SilentSession { device_url: url.into(), provider_ref: id.into() }),
                    _ => Err(SilentError::Unavailable(format!("{}: {what}: no check_id or check_url in the answer", self.name))),
                }
            }
            // An invalid number, or its country is not supported.
            StatusCode::BAD_REQUEST => {
                Err(SilentError::NotCovered(format!("{}: tru.ID does not support this number (HTTP 400)", self.name)))
            }
            s => Err(http_error(&self.name, what, s)),
        }
    }

    fn callback_ref(&self, query: &CallbackQuery) -> Option<String> {
        query.get("check_id").cloned()
    }

    /// With a code: redeems it (PATCH). Without: reads the check (GET), the redirect's `error`
    /// helping to name the failure. A callback naming another check is refused unasked.
    async fn result(&self, session: &SilentSession, _to: &PhoneNumber, query: &CallbackQuery) -> Result<SilentResult, SilentError> {
        let check_id = query.get("check_id").map(String::as_str).unwrap_or_default();
        if check_id != session.provider_ref || !is_plain_ref(check_id) {
            tracing::warn!(provider = %self.name, "callback names another check: refused");
            return Ok(SilentResult::Failed(Reason::ProviderError));
        }
        let url = self.url(&format!("/phone_check/v0.2/checks/{check_id}"));
        let response = match query.get("code") {
            Some(code) => {
                let patch = serde_json::to_vec(&serde_json::json!([{ "op": "add", "path": "/code", "value": code }])).unwrap_or_default();
                let request = |t: &str| {
                    let r = self.client.patch(&url).bearer_auth(t).header(reqwest::header::CONTENT_TYPE, "application/json-patch+json");
                    r.body(patch.clone())
                };
                self.call("complete check", request).await?
            }
            None => self.call("read check", |t| self.client.get(&url).bearer_auth(t)).await?,
        };
        match response.status() {
            s if s.is_success() => {
                let check: Check = read_json(&self.name, "check", response).await?;
                Ok(decide(&check, query.get("error").map(String::as_str)))
            }
            // The code was not issued for this check (or the device never reached the end of the
            // redirects): nothing was confirmed.
            StatusCode::NOT_FOUND => Ok(SilentResult::Failed(Reason::ProviderError)),
            s => Err(http_error(&self.name, "check", s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{basic, client};
    use serde_json::json;
    use std::sync::Arc;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const CHECK: &str = "c69bc0e6-a429-11ea-bb37-0242ac130002";

    fn truid(server: &MockServer) -> Truid {
        let settings = TruidSettings { client_id: "cid".into(), client_secret: Secret::new("csecret"), base_url: server.uri() };
        Truid::new("tru", settings, client())
    }

    fn start() -> SilentStart {
        SilentStart {
            check_id: "SC0123".into(),
            to: PhoneNumber::from_trusted("+447700900123".into()),
            callback_url: "https://verify.example.com/silent/callback/tru".into(),
            brand: "Acme".into(),
        }
    }

    fn session() -> SilentSession {
        SilentSession { device_url: format!("https://eu.api.tru.id/phone_check/v0.2/checks/{CHECK}/redirect"), provider_ref: CHECK.into() }
    }

    fn query(pairs: &[(&str, &str)]) -> CallbackQuery {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    async fn server_with_token(expires_in: u64) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/oauth2/v1/token"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"access_token": "tok-1", "expires_in": expires_in, "token_type": "bearer"})),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/phone_check/v0.2/checks"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "check_id": CHECK, "status": "ACCEPTED", "ttl": 120,
                "_links": {"self": {"href": "x"}, "check_url": {"href": format!("https://eu.api.tru.id/phone_check/v0.2/checks/{CHECK}/redirect")}}
            })))
            .mount(&server)
            .await;
        server
    }

    async fn requests_to(server: &MockServer, p: &str) -> Vec<wiremock::Request> {
        server.received_requests().await.unwrap().into_iter().filter(|r| r.url.path() == p).collect()
    }

    async fn answering_check(status: u16, body: serde_json::Value) -> MockServer {
        let server = server_with_token(3600).await;
        let check = format!("/phone_check/v0.2/checks/{CHECK}");
        for m in ["PATCH", "GET"] {
            let response = ResponseTemplate::new(status).set_body_json(body.clone());
            Mock::given(method(m)).and(path(check.as_str())).respond_with(response).mount(&server).await;
        }
        server
    }

    #[tokio::test]
    async fn creates_a_check_with_the_exact_requests() {
        let server = server_with_token(3600).await;
        let s = truid(&server).create(&start()).await.unwrap();
        assert_eq!(s, session());
        let token = &requests_to(&server, "/oauth2/v1/token").await[0];
        assert_eq!(token.method.as_str(), "POST");
        assert_eq!(token.headers["authorization"], basic("cid", "csecret").as_str());
        assert_eq!(token.headers["content-type"], "application/x-www-form-urlencoded");
        assert_eq!(String::from_utf8_lossy(&token.body), "grant_type=client_credentials&scope=phone_check+coverage");
        let create = &requests_to(&server, "/phone_check/v0.2/checks").await[0];
        assert_eq!(create.headers["authorization"], "Bearer tok-1");
        assert_eq!(create.headers["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_slice(&create.body).unwrap();
        let callback = "https://verify.example.com/silent/callback/tru";
        assert_eq!(body, json!({"phone_number": "447700900123", "redirect_url": callback, "reference_id": "SC0123"}));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fetches_the_token_once_for_concurrent_calls_and_again_after_expiry() {
        let server = server_with_token(3600).await;
        let t = Arc::new(truid(&server));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let t = t.clone();
            set.spawn(async move { t.create(&start()).await });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
        assert_eq!(requests_to(&server, "/oauth2/v1/token").await.len(), 1);
        assert_eq!(requests_to(&server, "/phone_check/v0.2/checks").await.len(), 20);

        assert_eq!(
            (margin(Duration::from_secs(3600)), margin(Duration::from_secs(100))),
            (Duration::from_secs(60), Duration::from_secs(10))
        );
        let server = server_with_token(1).await;
        let t = truid(&server);
        t.create(&start()).await.unwrap();
        t.create(&start()).await.unwrap();
        assert_eq!(requests_to(&server, "/oauth2/v1/token").await.len(), 1, "still fresh");
        tokio::time::sleep(Duration::from_millis(950)).await;
        t.create(&start()).await.unwrap();
        assert_eq!(requests_to(&server, "/oauth2/v1/token").await.len(), 2, "refreshed before expiry");
    }

    #[tokio::test]
    async fn redeems_the_code_and_reads_the_match() {
        let server = answering_check(200, json!({"check_id": CHECK, "status": "COMPLETED", "match": true})).await;
        let q = query(&[("check_id", CHECK), ("code", "94dae426fg")]);
        assert_eq!(truid(&server).result(&session(), &start().to, &q).await, Ok(SilentResult::Match));
        let patch = &requests_to(&server, &format!("/phone_check/v0.2/checks/{CHECK}")).await[0];
        assert_eq!(patch.method.as_str(), "PATCH");
        assert_eq!(patch.headers["authorization"], "Bearer tok-1");
        assert_eq!(patch.headers["content-type"], "application/json-patch+json");
        let body: serde_json::Value = serde_json::from_slice(&patch.body).unwrap();
        assert_eq!(body, json!([{"op": "add", "path": "/code", "value": "94dae426fg"}]));

        let server = answering_check(200, json!({"check_id": CHECK, "status": "COMPLETED", "match": false})).await;
        assert_eq!(truid(&server).result(&session(), &start().to, &q).await, Ok(SilentResult::Failed(Reason::Mismatch)));
    }

    #[tokio::test]
    async fn without_a_code_reads_the_check() {
        let q = query(&[("check_id", CHECK)]);
        let server = answering_check(200, json!({"check_id": CHECK, "status": "EXPIRED"})).await;
        assert_eq!(truid(&server).result(&session(), &start().to, &q).await, Ok(SilentResult::Failed(Reason::Timeout)));
        let get = &requests_to(&server, &format!("/phone_check/v0.2/checks/{CHECK}")).await[0];
        assert_eq!((get.method.as_str(), get.headers["authorization"].to_str().unwrap()), ("GET", "Bearer tok-1"));

        let server = answering_check(200, json!({"check_id": CHECK, "status": "ERROR", "error_code": "mno_not_supported"})).await;
        let r = truid(&server).result(&session(), &start().to, &q).await;
        assert_eq!(r, Ok(SilentResult::Failed(Reason::OperatorNotCovered)));
        let server = answering_check(200, json!({"check_id": CHECK, "status": "PENDING"})).await;
        let q = query(&[("check_id", CHECK), ("error", "not_mobile_ip"), ("error_description", "Not a mobile IP")]);
        assert_eq!(truid(&server).result(&session(), &start().to, &q).await, Ok(SilentResult::Failed(Reason::Wifi)));
    }

    #[tokio::test]
    async fn refuses_a_callback_for_another_check_unasked() {
        let server = MockServer::start().await;
        for q in [query(&[("check_id", "another"), ("code", "x")]), query(&[("code", "x")]), query(&[("check_id", "../x"), ("code", "x")])]
        {
            let r = truid(&server).result(&session(), &start().to, &q).await;
            assert_eq!(r, Ok(SilentResult::Failed(Reason::ProviderError)));
        }
        assert!(server.received_requests().await.unwrap().is_empty());
        assert_eq!(truid(&server).callback_ref(&query(&[("check_id", CHECK), ("code", "x")])).as_deref(), Some(CHECK));
    }

    #[tokio::test]
    async fn maps_provider_errors_without_repeating_them() {
        let q = query(&[("check_id", CHECK), ("code", "94dae426fg")]);
        let server = answering_check(500, json!({"detail": "boom tok-1 94dae426fg"})).await;
        let Err(SilentError::Unavailable(e)) = truid(&server).result(&session(), &start().to, &q).await else { panic!() };
        assert!(e.contains("HTTP 500") && !e.contains("boom") && !e.contains("94dae426fg"), "{e}");
        let server = answering_check(404, json!({"detail": "Check not found"})).await;
        assert_eq!(truid(&server).result(&session(), &start().to, &q).await, Ok(SilentResult::Failed(Reason::ProviderError)));

        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(401).set_body_string("csecret")).mount(&server).await;
        let Err(SilentError::Unavailable(e)) = truid(&server).create(&start()).await else { panic!() };
        assert!(e.contains("credentials") && !e.contains("csecret"), "{e}");

        for (status, not_covered) in [(400, true), (401, false)] {
            let server = server_with_token(3600).await;
            let refusal = Mock::given(method("POST")).and(path("/phone_check/v0.2/checks")).respond_with(ResponseTemplate::new(status));
            refusal.with_priority(1).mount(&server).await;
            let t = truid(&server);
            assert_eq!(matches!(t.create(&start()).await, Err(SilentError::NotCovered(_))), not_covered);
            let _ = t.create(&start()).await;
            let tokens = if status == 401 { 2 } else { 1 };
            assert_eq!(requests_to(&server, "/oauth2/v1/token").await.len(), tokens, "a refused token is not used again");
        }
    }

    #[tokio::test]
    async fn coverage_by_device_ip() {
        let cases = [
            (
                200,
                json!({"network_id": "23430", "network_name": "EE", "products": [{"product_id": "PCK"}]}),
                Coverage::Available { operator: Some("EE".into()) },
            ),
            (200, json!({"network_id": "23430", "products": [{"product_id": "SCK"}]}), Coverage::Unavailable(Reason::OperatorNotCovered)),
            (412, json!({}), Coverage::Unavailable(Reason::Wifi)),
            (400, json!({}), Coverage::Unavailable(Reason::OperatorNotCovered)),
            (503, json!({}), Coverage::Unavailable(Reason::Unknown)),
        ];
        for (status, body, expected) in cases {
            let server = server_with_token(3600).await;
            let response = ResponseTemplate::new(status).set_body_json(body);
            Mock::given(method("GET")).and(path("/coverage/v0.1/device_ips/203.0.113.7")).respond_with(response).mount(&server).await;
            assert_eq!(truid(&server).coverage("203.0.113.7".parse().unwrap(), None).await, expected, "HTTP {status}");
            let r = &requests_to(&server, "/coverage/v0.1/device_ips/203.0.113.7").await[0];
            assert_eq!(r.headers["authorization"], "Bearer tok-1");
        }
    }
}
