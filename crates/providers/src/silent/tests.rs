//! CAMARA Number Verification against a mock operator.
use super::camara::{Camara, CamaraSettings, DEFAULT_SCOPE};
use crate::secret::Secret;
use crate::testing::{basic, client};
use phonegate_core::PhoneNumber;
use phonegate_core::silent::{CallbackQuery, Coverage, Reason, SilentError, SilentProvider, SilentResult, SilentStart};
use reqwest::Url;
use serde_json::json;
use std::sync::Arc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CALLBACK: &str = "https://verify.example.com/silent/callback/op";
/// SHA-256 of "+447700900123", lowercase hex.
const HASHED: &str = "a8acc3a90a7b4e4dc65e93db9240ed26523050ef754d63b75b5161de76781436";

fn settings(server: &MockServer) -> CamaraSettings {
    CamaraSettings {
        client_id: "cid".into(),
        client_secret: Secret::new("csecret"),
        discovery_url: None,
        authorization_endpoint: Some(format!("{}/authorize?tenant=t1", server.uri())),
        token_endpoint: Some(format!("{}/token", server.uri())),
        api_root: format!("{}/camara/", server.uri()),
        hashed: false,
        scope: None,
    }
}

fn camara(settings: CamaraSettings) -> Camara {
    Camara::new("op", settings, client())
}

fn to() -> PhoneNumber {
    PhoneNumber::from_trusted("+447700900123".into())
}

fn start() -> SilentStart {
    SilentStart { check_id: "SC0123".into(), to: to(), callback_url: CALLBACK.into(), brand: "Acme".into() }
}

fn query(pairs: &[(&str, &str)]) -> CallbackQuery {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn pairs(url: &str) -> Vec<(String, String)> {
    Url::parse(url).unwrap().query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// An operator whose token endpoint answers `token` and whose `/verify` answers `verify`.
async fn operator(token: (u16, serde_json::Value), verify: (u16, serde_json::Value)) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(token.0).set_body_json(token.1))
        .mount(&server)
        .await;
    let verified = ResponseTemplate::new(verify.0).set_body_json(verify.1);
    Mock::given(method("POST")).and(path("/camara/number-verification/v2/verify")).respond_with(verified).mount(&server).await;
    server
}

fn issued() -> (u16, serde_json::Value) {
    (200, json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 300}))
}

async fn requests_to(server: &MockServer, p: &str) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap().into_iter().filter(|r| r.url.path() == p).collect()
}

#[tokio::test]
async fn sends_the_device_to_the_authorization_endpoint_without_calling_the_operator() {
    let server = MockServer::start().await;
    let c = camara(settings(&server));
    let s = c.create(&start()).await.unwrap();
    assert_eq!(s.provider_ref.len(), 64);
    assert!(s.provider_ref.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(s.device_url.starts_with(&format!("{}/authorize?tenant=t1&response_type=code&", server.uri())), "{}", s.device_url);
    let p = pairs(&s.device_url);
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(
        p.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        [
            "tenant",
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "prompt",
            "login_hint",
            "code_challenge",
            "code_challenge_method"
        ]
    );
    assert_eq!((get("client_id"), get("redirect_uri"), get("scope")), ("cid".into(), CALLBACK.into(), DEFAULT_SCOPE.into()));
    assert_eq!((get("state"), get("prompt"), get("login_hint")), (s.provider_ref.clone(), "none".into(), "tel:+447700900123".into()));
    assert_eq!((get("code_challenge").len(), get("code_challenge_method")), (43, "S256".into()));
    assert!(s.device_url.contains("login_hint=tel%3A%2B447700900123"), "{}", s.device_url);
    assert!(!s.device_url.contains("csecret"));
    assert!(server.received_requests().await.unwrap().is_empty());
    assert_ne!(c.create(&start()).await.unwrap().provider_ref, s.provider_ref, "a fresh state per check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_the_discovery_document_once() {
    let server = MockServer::start().await;
    let doc = json!({"issuer": "x", "authorization_endpoint": format!("{}/oidc/auth", server.uri()), "token_endpoint": "https://op.example/token"});
    let discovery = Mock::given(method("GET")).and(path("/.well-known/openid-configuration"));
    discovery.respond_with(ResponseTemplate::new(200).set_body_json(doc)).mount(&server).await;
    let mut s = settings(&server);
    s.discovery_url = Some(format!("{}/.well-known/openid-configuration", server.uri()));
    s.authorization_endpoint = None;
    let c = Arc::new(camara(s));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let c = c.clone();
        set.spawn(async move { c.create(&start()).await });
    }
    while let Some(r) = set.join_next().await {
        assert!(r.unwrap().unwrap().device_url.starts_with(&format!("{}/oidc/auth?response_type=code", server.uri())));
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);

    let mut s = settings(&server);
    (s.authorization_endpoint, s.token_endpoint) = (None, None);
    let e = camara(s).create(&start()).await.unwrap_err();
    assert!(e.to_string().contains("discovery_url"), "{e}");
}

/// Creates a check and decides it from a callback with `code_query` and the check's state.
async fn decide(s: CamaraSettings, code_query: &[(&str, &str)]) -> Result<SilentResult, SilentError> {
    let c = camara(s);
    let session = c.create(&start()).await.unwrap();
    let mut q = query(code_query);
    q.insert("state".into(), session.provider_ref.clone());
    assert_eq!(c.callback_ref(&q).as_deref(), Some(session.provider_ref.as_str()));
    c.result(&session, &to(), &q).await
}

#[tokio::test]
async fn exchanges_the_code_and_verifies_the_number() {
    let server = operator(issued(), (200, json!({"devicePhoneNumberVerified": true}))).await;
    let c = camara(settings(&server));
    let session = c.create(&start()).await.unwrap();
    let q = query(&[("code", "c0de"), ("state", &session.provider_ref)]);
    assert_eq!(c.result(&session, &to(), &q).await, Ok(SilentResult::Match));

    let token = &requests_to(&server, "/token").await[0];
    assert_eq!(token.headers["authorization"], basic("cid", "csecret").as_str());
    assert_eq!(token.headers["content-type"], "application/x-www-form-urlencoded");
    let form = pairs(&format!("http://form.invalid/?{}", String::from_utf8_lossy(&token.body)));
    let verifier = form.iter().find(|(k, _)| k == "code_verifier").unwrap().1.clone();
    assert_eq!(
        form,
        [
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".into(), "c0de".into()),
            ("redirect_uri".into(), CALLBACK.into()),
            ("code_verifier".into(), verifier.clone())
        ]
    );
    use base64::Engine;
    use sha2::Digest;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    assert!(pairs(&session.device_url).contains(&("code_challenge".into(), challenge)), "the verifier answers the challenge");

    let verify = &requests_to(&server, "/camara/number-verification/v2/verify").await[0];
    assert_eq!(verify.headers["authorization"], "Bearer at-1");
    assert_eq!(verify.headers["content-type"], "application/json");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&verify.body).unwrap(), json!({"phoneNumber": "+447700900123"}));

    let server = operator(issued(), (200, json!({"devicePhoneNumberVerified": false}))).await;
    let mut s = settings(&server);
    s.hashed = true;
    assert_eq!(decide(s, &[("code", "c0de")]).await, Ok(SilentResult::Failed(Reason::Mismatch)));
    let verify = &requests_to(&server, "/camara/number-verification/v2/verify").await[0];
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&verify.body).unwrap(), json!({"hashedPhoneNumber": HASHED}));
}

#[tokio::test]
async fn refuses_a_foreign_state_and_maps_authorization_errors_unasked() {
    let server = MockServer::start().await;
    let c = camara(settings(&server));
    let session = c.create(&start()).await.unwrap();
    for (q, expected) in [
        (query(&[("code", "c0de"), ("state", "0000")]), Reason::ProviderError),
        (query(&[("code", "c0de")]), Reason::ProviderError),
        (query(&[("state", &session.provider_ref)]), Reason::ProviderError),
        (query(&[("error", "login_required"), ("state", &session.provider_ref)]), Reason::Wifi),
        (query(&[("error", "interaction_required"), ("state", &session.provider_ref)]), Reason::Wifi),
        (query(&[("error", "access_denied"), ("state", &session.provider_ref)]), Reason::ProviderError),
    ] {
        assert_eq!(c.result(&session, &to(), &q).await, Ok(SilentResult::Failed(expected)), "{q:?}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
    assert_eq!(c.coverage("203.0.113.7".parse().unwrap(), None).await, Coverage::Available { operator: None });
}

#[tokio::test]
async fn a_replayed_code_and_operator_refusals() {
    let server = operator((400, json!({"error": "invalid_grant", "error_description": "code c0de used"})), (200, json!({}))).await;
    assert_eq!(decide(settings(&server), &[("code", "c0de")]).await, Ok(SilentResult::Failed(Reason::ProviderError)));
    assert!(requests_to(&server, "/camara/number-verification/v2/verify").await.is_empty(), "no token, no verify");

    let server = operator(issued(), (403, json!({"status": 403, "code": "PERMISSION_DENIED", "message": "x"}))).await;
    assert_eq!(decide(settings(&server), &[("code", "c0de")]).await, Ok(SilentResult::Failed(Reason::ProviderError)));

    for (token, verify, words) in [
        ((401, json!({"error": "invalid_client"})), (200, json!({})), "token: HTTP 401"),
        ((400, json!({"error": "invalid_request", "error_description": "c0de"})), (200, json!({})), "token: HTTP 400"),
        (issued(), (500, json!({"message": "at-1 +447700900123"})), "verify: HTTP 500"),
        (issued(), (200, json!({"unexpected": "+447700900123"})), "verify: unreadable"),
    ] {
        let server = operator(token, verify).await;
        let Err(SilentError::Unavailable(e)) = decide(settings(&server), &[("code", "c0de")]).await else { panic!("{words}") };
        assert!(e.contains(words), "{e}");
        for secret in ["c0de", "at-1", "csecret", "+447700900123"] {
            assert!(!e.contains(secret), "{e}");
        }
    }
}
