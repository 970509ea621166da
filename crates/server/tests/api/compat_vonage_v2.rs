//! Vonage Verify v2 over raw HTTP: Basic and application-JWT authentication, start, check,
//! next workflow, cancel, every status and error body, templates, and signed status callbacks
//! (the official SDKs run in sdk-tests/; the vendored spec checks the shapes in vendor_specs.rs).
use crate::helpers::{TestApp, eventually, fresh_number, wrong};
use crate::vonage_channels::{PRIVATE_KEY, PUBLIC_KEY};
use phonegate_core::Caller;
use phonegate_core::vonage::NewApp;
use reqwest::{RequestBuilder, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

pub fn basic(app: &TestApp, r: RequestBuilder) -> RequestBuilder {
    r.basic_auth(&app.key_id, Some(&app.secret))
}

pub async fn v2(app: &TestApp, method: reqwest::Method, path: &str, body: Option<Value>) -> Response {
    let r = basic(app, app.client.request(method, app.url(path)));
    match body {
        Some(b) => r.json(&b).send().await.unwrap(),
        None => r.send().await.unwrap(),
    }
}

pub async fn start(app: &TestApp, body: Value) -> Response {
    v2(app, reqwest::Method::POST, "/v2/verify", Some(body)).await
}

/// An error answer: its status, Vonage's problem body and content type.
pub async fn problem(r: Response, status: u16) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    for field in ["type", "title", "detail", "instance"] {
        assert!(body[field].as_str().is_some_and(|s| !s.is_empty()), "{field} in {body}");
    }
    assert!(body["type"].as_str().unwrap().starts_with("https://developer.vonage.com/"), "{body}");
    body
}

fn sms(to: &str) -> Value {
    json!([{ "channel": "sms", "to": to.trim_start_matches('+') }])
}

#[tokio::test]
async fn start_check_and_the_errors_of_a_code() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let r = start(&app, json!({ "brand": "Acme", "workflow": sms(&to), "locale": "en-gb" })).await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    let rid = body["request_id"].as_str().unwrap().to_string();
    assert_eq!(rid.len(), 36, "a UUID: {rid}");
    assert!(body.get("check_url").is_none());
    let code = app.code_for(&to).await;
    assert_eq!(code.len(), 4, "Vonage's default length");
    assert!(app.outbox(&to).await[0]["body"].as_str().unwrap().contains("Acme"));

    // The same number again while it runs: 409 naming the running request.
    let again = problem(start(&app, json!({ "brand": "Acme", "workflow": sms(&to) })).await, 409).await;
    assert_eq!(again["request_id"], rid.as_str());

    let path = format!("/v2/verify/{rid}");
    let bad = problem(v2(&app, reqwest::Method::POST, &path, Some(json!({ "code": wrong(&code) }))).await, 400).await;
    assert_eq!(bad["title"], "Invalid Code");
    let ok = v2(&app, reqwest::Method::POST, &path, Some(json!({ "code": code }))).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap(), json!({ "request_id": rid, "status": "completed" }));
    // Over: checked again, cancelled or moved on, it is not found.
    problem(v2(&app, reqwest::Method::POST, &path, Some(json!({ "code": code }))).await, 404).await;
    problem(v2(&app, reqwest::Method::DELETE, &path, None).await, 404).await;
    problem(v2(&app, reqwest::Method::POST, &format!("{path}/next_workflow"), None).await, 404).await;
    // Unknown ids and ids that are not UUIDs alike.
    problem(v2(&app, reqwest::Method::POST, "/v2/verify/8f35a1a7-1c52-4c3b-9b9f-2a1e4c5d6e7f", Some(json!({ "code": "1234" }))).await, 404)
        .await;
    problem(v2(&app, reqwest::Method::DELETE, "/v2/verify/not-a-uuid", None).await, 404).await;
}

#[tokio::test]
async fn too_many_wrong_codes_end_the_request_with_410() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let rid: Value = start(&app, json!({ "brand": "Acme", "workflow": sms(&to) })).await.json().await.unwrap();
    let path = format!("/v2/verify/{}", rid["request_id"].as_str().unwrap());
    let code = app.code_for(&to).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(v2(&app, reqwest::Method::POST, &path, Some(json!({ "code": wrong(&code) }))).await.status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&410), "{statuses:?}");
    assert!(statuses.iter().take_while(|s| **s == 400).count() >= 3, "{statuses:?}");
    problem(v2(&app, reqwest::Method::POST, &path, Some(json!({ "code": code }))).await, 410).await;
}

#[tokio::test]
async fn next_workflow_cancel_and_a_custom_code() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let number = to.trim_start_matches('+');
    let workflow = json!([{ "channel": "sms", "to": number }, { "channel": "voice", "to": number }]);
    let rid: Value = start(&app, json!({ "brand": "Acme", "workflow": workflow, "code_length": 6 })).await.json().await.unwrap();
    let rid = rid["request_id"].as_str().unwrap().to_string();
    let code = app.code_for(&to).await;
    assert_eq!(code.len(), 6);
    let next = v2(&app, reqwest::Method::POST, &format!("/v2/verify/{rid}/next_workflow"), None).await;
    assert_eq!(next.status(), 200);
    let mut channels = eventually(|| async {
        let channels: Vec<String> = app.outbox(&to).await.iter().map(|m| m["channel"].as_str().unwrap().to_string()).collect();
        (channels.len() == 2).then_some(channels)
    })
    .await;
    channels.sort();
    assert_eq!(channels, ["sms", "voice"], "the call followed the text");
    // No step left; the hyphenated path some SDK versions send answers the same.
    let none = problem(v2(&app, reqwest::Method::POST, &format!("/v2/verify/{rid}/next-workflow"), None).await, 409).await;
    assert!(none["type"].as_str().unwrap().ends_with("#no-events"), "{none}");
    let cancel = v2(&app, reqwest::Method::DELETE, &format!("/v2/verify/{rid}"), None).await;
    assert_eq!(cancel.status(), 204);
    problem(v2(&app, reqwest::Method::POST, &format!("/v2/verify/{rid}"), Some(json!({ "code": code }))).await, 404).await;

    // A custom code of letters and digits on a service that allows custom codes.
    let service = json!({ "name": "letters", "custom_codes": true });
    assert_eq!(app.post("/api/services", service).await.status(), 201);
    let scope = phonegate_core::apikey::KeyScope::Services(vec!["letters".into()]);
    let (key, secret) = app.state.core.api_keys.create(&Caller::system("tests"), "letters", scope).await.unwrap();
    let secret = secrecy::ExposeSecret::expose_secret(&secret).to_string();
    let to = fresh_number();
    let r = app
        .client
        .post(app.url("/v2/verify"))
        .basic_auth(&key.id, Some(&secret))
        .json(&json!({ "brand": "Acme", "workflow": sms(&to), "code": "ab12CD" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let rid = r.json::<Value>().await.unwrap()["request_id"].as_str().unwrap().to_string();
    assert!(app.outbox(&to).await[0]["body"].as_str().unwrap().contains("ab12CD"));
    let ok = app
        .client
        .post(app.url(&format!("/v2/verify/{rid}")))
        .basic_auth(&key.id, Some(&secret))
        .json(&json!({ "code": "ab12CD" }))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // The admin key's default service takes no custom codes.
    let refused = problem(start(&app, json!({ "brand": "Acme", "workflow": sms(&fresh_number()), "code": "ab12CD" })).await, 422).await;
    assert_eq!(refused["invalid_parameters"][0]["name"], "code");
}

#[tokio::test]
async fn invalid_requests_name_their_parameter() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let n = to.trim_start_matches('+').to_string();
    let cases = [
        (json!({ "workflow": sms(&to) }), "brand"),
        (json!({ "brand": "A".repeat(19), "workflow": sms(&to) }), "brand"),
        (json!({ "brand": "a/b", "workflow": sms(&to) }), "brand"),
        (json!({ "brand": "Acme" }), "workflow"),
        (json!({ "brand": "Acme", "workflow": [] }), "workflow"),
        (json!({ "brand": "Acme", "workflow": sms(&to), "code_length": 3 }), "code_length"),
        (json!({ "brand": "Acme", "workflow": sms(&to), "channel_timeout": 901 }), "channel_timeout"),
        (json!({ "brand": "Acme", "workflow": sms(&to), "client_ref": "x".repeat(41) }), "client_ref"),
        (json!({ "brand": "Acme", "workflow": sms(&to), "code": "12" }), "code"),
        (json!({ "brand": "Acme", "workflow": [{ "channel": "pigeon", "to": n }] }), "workflow[0].channel"),
        (json!({ "brand": "Acme", "workflow": [{ "channel": "whatsapp_interactive", "to": n }] }), "workflow[0].channel"),
        (
            json!({ "brand": "Acme", "workflow": [{ "channel": "sms", "to": n }, { "channel": "silent_auth", "to": n }] }),
            "workflow[1].channel",
        ),
        (
            json!({ "brand": "Acme", "workflow": [{ "channel": "sms", "to": n }, { "channel": "voice", "to": "447700900001" }] }),
            "workflow[1].to",
        ),
        (json!({ "brand": "Acme", "workflow": [{ "channel": "sms", "to": "12" }] }), "to"),
        (json!({ "brand": "Acme", "workflow": sms(&to), "template_id": "8f35a1a7-1c52-4c3b-9b9f-2a1e4c5d6e7f" }), "template_id"),
    ];
    for (body, name) in cases {
        let p = problem(start(&app, body.clone()).await, 422).await;
        assert_eq!(p["title"], "Invalid params");
        assert_eq!(p["invalid_parameters"][0]["name"], name, "{body} -> {p}");
        assert!(p["invalid_parameters"][0]["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    assert!(app.outbox(&to).await.is_empty(), "nothing refused was sent");
    let r =
        basic(&app, app.client.post(app.url("/v2/verify"))).header("content-type", "application/json").body("{oops").send().await.unwrap();
    problem(r, 422).await;
}

/// A key with an application (the test key pair), and a JWT for it.
async fn application(app: &TestApp, status_url: Option<String>) -> (String, String) {
    let (key, _) = app.state.core.api_keys.create(&Caller::system("tests"), "app", phonegate_core::apikey::KeyScope::Admin).await.unwrap();
    let new = NewApp {
        public_key: PUBLIC_KEY.into(),
        status_url,
        signature_secret: Some(secrecy::SecretString::from("a-signature-secret-of-32-characters!!")),
    };
    let a = app.state.vonage.set_app(&Caller::system("tests"), &key.id, new).await.unwrap();
    (a.id, key.id)
}

fn jwt(application_id: &str, key: &str, iat: i64, exp: Option<i64>, jti: &str) -> String {
    let mut claims = json!({ "application_id": application_id, "iat": iat, "jti": jti });
    if let Some(exp) = exp {
        claims["exp"] = exp.into();
    }
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key.as_bytes()).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).unwrap()
}

async fn with_jwt(app: &TestApp, token: &str, to: &str) -> u16 {
    let r = app.client.post(app.url("/v2/verify")).bearer_auth(token).json(&json!({ "brand": "Acme", "workflow": sms(to) })).send().await;
    r.unwrap().status().as_u16()
}

#[tokio::test]
async fn application_jwts_authenticate_once_within_their_lifetime() {
    let app = TestApp::spawn().await;
    let (app_id, key_id) = application(&app, None).await;
    let now = app.clock_now_unix();
    let good = jwt(&app_id, PRIVATE_KEY, now, Some(now + 900), "jti-1");
    assert_eq!(with_jwt(&app, &good, &fresh_number()).await, 202);
    assert_eq!(with_jwt(&app, &good, &fresh_number()).await, 401, "a jti is taken once");
    // Without exp: 15 minutes from iat.
    assert_eq!(with_jwt(&app, &jwt(&app_id, PRIVATE_KEY, now - 60, None, "jti-2"), &fresh_number()).await, 202);
    assert_eq!(with_jwt(&app, &jwt(&app_id, PRIVATE_KEY, now - 1000, None, "jti-3"), &fresh_number()).await, 401);
    assert_eq!(with_jwt(&app, &jwt(&app_id, PRIVATE_KEY, now - 100, Some(now - 1), "jti-4"), &fresh_number()).await, 401);
    assert_eq!(with_jwt(&app, &jwt(&app_id, PRIVATE_KEY, now + 600, None, "jti-5"), &fresh_number()).await, 401, "issued later");
    assert_eq!(with_jwt(&app, &jwt(&app_id, PRIVATE_KEY, now, Some(now + 200_000), "jti-6"), &fresh_number()).await, 401);
    // Another application id, an HS256 token keyed with the public key, no signature at all.
    let other = phonegate_core::ids::new_uuid();
    assert_eq!(with_jwt(&app, &jwt(&other, PRIVATE_KEY, now, None, "jti-7"), &fresh_number()).await, 401);
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "application_id": app_id, "iat": now, "jti": "jti-8" }),
        &jsonwebtoken::EncodingKey::from_secret(PUBLIC_KEY.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(with_jwt(&app, &hs, &fresh_number()).await, 401);
    let unsigned = format!("{}.", good.rsplit_once('.').unwrap().0);
    assert_eq!(with_jwt(&app, &unsigned, &fresh_number()).await, 401);
    // A revoked key's application is refused.
    app.state.core.api_keys.revoke(&Caller::system("tests"), &key_id).await.unwrap();
    assert_eq!(with_jwt(&app, &jwt(&app_id, PRIVATE_KEY, now, None, "jti-9"), &fresh_number()).await, 401);
    let r = app.client.post(app.url("/v2/verify")).basic_auth(&app.key_id, Some("wrong")).json(&json!({})).send().await.unwrap();
    problem(r, 401).await;
}

/// A local status webhook that keeps what it receives.
pub async fn receiver() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let kept = got.clone();
    let router = axum::Router::new().route(
        "/status",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                kept.lock().unwrap().push((auth, body));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/status", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, got)
}

#[tokio::test]
async fn the_application_receives_a_signed_summary() {
    let app = TestApp::spawn().await;
    let (url, got) = receiver().await;
    let (app_id, _) = application(&app, Some(url)).await;
    let now = app.clock_now_unix();
    let to = fresh_number();
    let body = json!({ "brand": "Acme", "workflow": sms(&to), "client_ref": "order42" });
    let r = app.client.post(app.url("/v2/verify")).bearer_auth(jwt(&app_id, PRIVATE_KEY, now, None, "a")).json(&body).send().await;
    let rid = r.unwrap().json::<Value>().await.unwrap()["request_id"].as_str().unwrap().to_string();
    let code = app.code_for(&to).await;
    let check = app
        .client
        .post(app.url(&format!("/v2/verify/{rid}")))
        .bearer_auth(jwt(&app_id, PRIVATE_KEY, now, None, "b"))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200);
    let (auth, body) = eventually(|| {
        let got = got.clone();
        async move { got.lock().unwrap().first().cloned() }
    })
    .await;
    let summary: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["request_id"], rid.as_str());
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["client_ref"], "order42");
    assert_eq!(summary["channel_timeout"], 180);
    assert_eq!(summary["workflow"][0]["channel"], "sms");
    assert_eq!(summary["workflow"][0]["status"], "completed");
    assert!(summary["submitted_at"].is_string() && summary["finalized_at"].is_string());
    // Signed as Vonage signs: HS256 with the signature secret, payload_hash of the body.
    let token = auth.strip_prefix("Bearer ").unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    let key = jsonwebtoken::DecodingKey::from_secret(b"a-signature-secret-of-32-characters!!").unwrap();
    let claims = jsonwebtoken::decode::<Value>(token, &key, &v).unwrap().claims;
    assert_eq!(claims["payload_hash"], hex::encode(Sha256::digest(body.as_bytes())));
    assert_eq!(claims["application_id"], app_id.as_str());
    assert!(!body.contains(&code), "a callback never carries the code");
    // Delivered, it keeps no payload, and retention removes it with the verifications.
    let kept = "SELECT COUNT(*) FROM vonage_callbacks WHERE done_at IS NOT NULL AND payload = ''";
    eventually(|| async { (app.query_i64(kept).await == 1).then_some(()) }).await;
    app.advance(chrono::Duration::days(31));
    app.state.core.verifier.purge_old(chrono::Duration::days(30), 100).await.unwrap();
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM vonage_callbacks").await, 0);
}

#[tokio::test]
async fn templates_and_fragments_pick_a_requests_text() {
    let app = TestApp::spawn().await;
    let post = |path: String, body: Value| {
        let app = &app;
        async move { v2(app, reqwest::Method::POST, &path, Some(body)).await }
    };
    let t = post("/v2/verify/templates".into(), json!({ "name": "login" })).await;
    assert_eq!(t.status(), 201);
    let t: Value = t.json().await.unwrap();
    let tid = t["template_id"].as_str().unwrap().to_string();
    assert_eq!(t["is_default"], false);
    assert_eq!(t["_links"]["fragments"]["href"], app.url(&format!("/v2/verify/templates/{tid}/template_fragments")));
    problem(post("/v2/verify/templates".into(), json!({ "name": "login" })).await, 409).await;
    problem(post("/v2/verify/templates".into(), json!({ "name": "no spaces" })).await, 422).await;
    for i in 0..3 {
        post("/v2/verify/templates".into(), json!({ "name": format!("extra-{i}") })).await;
    }
    let page: Value = v2(&app, reqwest::Method::GET, "/v2/verify/templates?page_size=3&page=2", None).await.json().await.unwrap();
    assert_eq!(
        (page["page"].clone(), page["page_size"].clone(), page["total_items"].clone(), page["total_pages"].clone()),
        (json!(2), json!(3), json!(4), json!(2))
    );
    assert_eq!(page["_embedded"]["templates"].as_array().unwrap().len(), 1);
    assert!(page["_links"].get("next").is_none() && page["_links"]["prev"].is_object());

    let frags = format!("/v2/verify/templates/{tid}/template_fragments");
    let f =
        post(frags.clone(), json!({ "channel": "sms", "locale": "en-us", "text": "${brand}: ${code} (${time-limit} ${time-limit-unit})" }))
            .await;
    assert_eq!(f.status(), 201);
    let f: Value = f.json().await.unwrap();
    let fid = f["template_fragment_id"].as_str().unwrap().to_string();
    problem(post(frags.clone(), json!({ "channel": "sms", "locale": "en-us", "text": "${code}" })).await, 409).await;
    problem(post(frags.clone(), json!({ "channel": "sms", "locale": "en-us", "text": "no code" })).await, 422).await;
    let listed: Value = v2(&app, reqwest::Method::GET, &frags, None).await.json().await.unwrap();
    assert_eq!(listed["_embedded"]["template_fragments"][0]["template_fragment_id"], fid.as_str());

    let to = fresh_number();
    let body = json!({ "brand": "Acme", "workflow": sms(&to), "template_id": tid, "locale": "en-us", "channel_timeout": 300 });
    assert_eq!(start(&app, body).await.status(), 202);
    let text = app.outbox(&to).await[0]["body"].as_str().unwrap().to_string();
    let code = text.strip_prefix("Acme: ").and_then(|t| t.strip_suffix(" (5 minutes)")).unwrap_or_default();
    assert!(code.len() == 4 && code.bytes().all(|b| b.is_ascii_digit()), "{text}");

    let patched = v2(&app, reqwest::Method::PATCH, &format!("{frags}/{fid}"), Some(json!({ "text": "Code ${code}" }))).await;
    assert_eq!(patched.json::<Value>().await.unwrap()["text"], "Code ${code}");
    let renamed =
        v2(&app, reqwest::Method::PATCH, &format!("/v2/verify/templates/{tid}"), Some(json!({ "name": "login2", "is_default": true })))
            .await;
    assert_eq!(renamed.json::<Value>().await.unwrap()["is_default"], true);
    // The default template's texts apply without template_id.
    let to = fresh_number();
    assert_eq!(start(&app, json!({ "brand": "Acme", "workflow": sms(&to), "locale": "en-us" })).await.status(), 202);
    let text = app.outbox(&to).await[0]["body"].as_str().unwrap().to_string();
    assert!(text.strip_prefix("Code ").is_some_and(|c| c.len() == 4), "{text}");
    // The default template's texts are the service's: the native API sends them too.
    let native = fresh_number();
    let r = app.post("/api/verifications", json!({ "to": native, "channel": "sms", "locale": "en-us" })).await;
    assert_eq!(r.status(), 201);
    let text = app.outbox(&native).await[0]["body"].as_str().unwrap().to_string();
    assert!(text.strip_prefix("Code ").is_some_and(|c| c.len() == 6), "{text}");
    problem(v2(&app, reqwest::Method::DELETE, &format!("/v2/verify/templates/{tid}"), None).await, 409).await;
    assert_eq!(v2(&app, reqwest::Method::DELETE, &format!("{frags}/{fid}"), None).await.status(), 204);
    // Its fragment gone, the service's text for that language is the built-in one again.
    let native = fresh_number();
    app.post("/api/verifications", json!({ "to": native, "channel": "sms", "locale": "en-us" })).await;
    let text = app.outbox(&native).await[0]["body"].as_str().unwrap().to_string();
    assert!(!text.starts_with("Code "), "{text}");
    assert_eq!(v2(&app, reqwest::Method::DELETE, &format!("/v2/verify/templates/{tid}"), None).await.status(), 204);
    problem(v2(&app, reqwest::Method::GET, &format!("/v2/verify/templates/{tid}"), None).await, 404).await;
}

/// The device's way from `check_url` to its last answer, through the simulator (`outcome`).
async fn device_follows(app: &TestApp, check_url: &str, outcome: &str) -> Response {
    let device = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let operator = device.get(check_url).send().await.unwrap().headers()["location"].to_str().unwrap().to_string();
    let r = device.get(app.url(&format!("{operator}?sim={outcome}"))).send().await.unwrap();
    let callback = r.headers()["location"].to_str().unwrap().to_string();
    device.get(app.url(&callback)).send().await.unwrap()
}

#[tokio::test]
async fn silent_auth_hands_the_device_a_code_that_completes_the_request_once() {
    let app = TestApp::spawn_with(|c| c.silent.simulator = true).await;
    let to = fresh_number();
    let n = to.trim_start_matches('+');
    let workflow = json!([{ "channel": "silent_auth", "to": n }, { "channel": "sms", "to": n }]);
    let r: Value = start(&app, json!({ "brand": "Acme", "workflow": workflow })).await.json().await.unwrap();
    let rid = r["request_id"].as_str().unwrap().to_string();
    let check_url = r["check_url"].as_str().unwrap().to_string();
    assert!(check_url.starts_with(&format!("{}/silent/", app.base)), "{check_url}");
    // While the device has not come back, a code is refused without counting: 409.
    let path = format!("/v2/verify/{rid}");
    let waiting = problem(v2(&app, reqwest::Method::POST, &path, Some(json!({ "code": "1234" }))).await, 409).await;
    assert!(waiting["type"].as_str().unwrap().ends_with("#no-code"), "{waiting}");

    let answer = device_follows(&app, &check_url, "match").await;
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["request_id"], rid.as_str());
    let code = answer["code"].as_str().unwrap().to_string();
    assert!(app.outbox(&to).await.is_empty(), "no SMS once the operator confirmed the number");
    let ok = v2(&app, reqwest::Method::POST, &path, Some(json!({ "code": code }))).await;
    assert_eq!(ok.json::<Value>().await.unwrap(), json!({ "request_id": rid, "status": "completed" }));
    problem(v2(&app, reqwest::Method::POST, &path, Some(json!({ "code": code }))).await, 404).await;

    // One attempt, as at Vonage: a wrong code spends it, and the right one is refused after.
    let to = fresh_number();
    let n = to.trim_start_matches('+');
    let workflow = json!([{ "channel": "silent_auth", "to": n }]);
    let r: Value = start(&app, json!({ "brand": "Acme", "workflow": workflow })).await.json().await.unwrap();
    let answer: Value = device_follows(&app, r["check_url"].as_str().unwrap(), "match").await.json().await.unwrap();
    let path = format!("/v2/verify/{}", r["request_id"].as_str().unwrap());
    let code = answer["code"].as_str().unwrap();
    problem(v2(&app, reqwest::Method::POST, &path, Some(json!({ "code": wrong(code) }))).await, 404).await;
    problem(v2(&app, reqwest::Method::POST, &path, Some(json!({ "code": code }))).await, 404).await;

    // With a redirect_url the device lands there with the answer in the fragment; a mismatch
    // says why, and the workflow's SMS goes out.
    let to = fresh_number();
    let n = to.trim_start_matches('+');
    let workflow =
        json!([{ "channel": "silent_auth", "to": n, "redirect_url": "https://app.example/done" }, { "channel": "sms", "to": n }]);
    let r: Value = start(&app, json!({ "brand": "Acme", "workflow": workflow })).await.json().await.unwrap();
    let landed = device_follows(&app, r["check_url"].as_str().unwrap(), "mismatch").await;
    assert_eq!(landed.status(), 302);
    let location = landed.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("https://app.example/done#error_description="), "{location}");
    eventually(|| async { (!app.outbox(&to).await.is_empty()).then_some(()) }).await;
    let code = app.code_for(&to).await;
    let ok =
        v2(&app, reqwest::Method::POST, &format!("/v2/verify/{}", r["request_id"].as_str().unwrap()), Some(json!({ "code": code }))).await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn budgets_hold_for_v2_requests_and_an_address_takes_email() {
    let app = TestApp::spawn_with(|c| c.budgets.sends_per_key = vec!["2/1h".parse().unwrap()]).await;
    let address = "someone@example.com";
    let workflow = json!([{ "channel": "email", "to": address }]);
    assert_eq!(start(&app, json!({ "brand": "Acme", "workflow": workflow })).await.status(), 202);
    let mail = app.outbox(address).await;
    assert_eq!(mail[0]["channel"], "email", "{mail:?}");
    // WhatsApp first, then a call, to one number.
    let to = fresh_number();
    let n = to.trim_start_matches('+');
    let workflow = json!([{ "channel": "whatsapp", "to": n, "from": "447700900000" }, { "channel": "voice", "to": n }]);
    assert_eq!(start(&app, json!({ "brand": "Acme", "workflow": workflow })).await.status(), 202);
    assert_eq!(app.outbox(&to).await[0]["channel"], "whatsapp");
    // The key's third code within the hour: refused as Vonage refuses a throttled request.
    let to = fresh_number();
    let p = problem(start(&app, json!({ "brand": "Acme", "workflow": sms(&to) })).await, 429).await;
    assert_eq!(p["title"], "Rate Limit Hit");
    assert!(app.outbox(&to).await.is_empty());
}

#[tokio::test]
async fn a_silent_match_is_completed_only_when_the_app_checks_the_devices_code() {
    let app = TestApp::spawn_with(|c| c.silent.simulator = true).await;
    let (url, got) = receiver().await;
    let (app_id, _) = application(&app, Some(url)).await;
    let now = app.clock_now_unix();
    let summaries = |rid: String| {
        let got = got.clone();
        async move {
            let all: Vec<Value> = got.lock().unwrap().iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect();
            all.into_iter().find(|b| b["request_id"] == rid.as_str() && b["type"] == "summary")
        }
    };
    let mut rids = Vec::new();
    for (i, redeem) in [true, false].into_iter().enumerate() {
        let n = fresh_number().trim_start_matches('+').to_string();
        let body = json!({ "brand": "Acme", "workflow": [{ "channel": "silent_auth", "to": n }] });
        let r = app
            .client
            .post(app.url("/v2/verify"))
            .bearer_auth(jwt(&app_id, PRIVATE_KEY, now, None, &format!("s{i}")))
            .json(&body)
            .send()
            .await;
        let r: Value = r.unwrap().json().await.unwrap();
        let rid = r["request_id"].as_str().unwrap().to_string();
        let answer: Value = device_follows(&app, r["check_url"].as_str().unwrap(), "match").await.json().await.unwrap();
        // The silent_auth event came at the start; the summary waits for the app's check.
        eventually(|| {
            let got = got.clone();
            let rid = rid.clone();
            async move { got.lock().unwrap().iter().any(|(_, b)| b.contains(&rid) && b.contains("action_pending")).then_some(()) }
        })
        .await;
        if redeem {
            let check = app
                .client
                .post(app.url(&format!("/v2/verify/{rid}")))
                .bearer_auth(jwt(&app_id, PRIVATE_KEY, now, None, &format!("c{i}")))
                .json(&json!({ "code": answer["code"] }))
                .send()
                .await
                .unwrap();
            assert_eq!(check.status(), 200);
            let summary = eventually(|| summaries(rid.clone())).await;
            assert_eq!(summary["status"], "completed");
            assert_eq!(summary["workflow"][0]["channel"], "silent_auth");
        }
        rids.push(rid);
    }
    // The unchecked one is held until its request's end, then told as expired.
    assert!(summaries(rids[1].clone()).await.is_none(), "held while the app may still check the code");
    app.advance(chrono::Duration::seconds(400));
    let summary = eventually(|| summaries(rids[1].clone())).await;
    assert_eq!(summary["status"], "expired");
}
