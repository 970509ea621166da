//! Silent verification through real provider wire formats, each against a local mock of the
//! provider (the network edge): tru.ID PhoneCheck (coverage, token, check, code exchange) and
//! CAMARA Number Verification (discovery, the operator's authorization redirect, token exchange,
//! /verify), routed per number prefix, with `auto` falling back to SMS. The exact requests each
//! provider gets are asserted.
use crate::helpers::{TestApp, eventually, fresh_number};
use phonegate_providers::silent::SilentProviderConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PUBLIC: &str = "http://phonegate.test";

fn truid(mock: &MockServer) -> SilentProviderConfig {
    serde_json::from_value(json!({ "kind": "truid", "client_id": "cid", "client_secret": "csecret", "base_url": mock.uri() })).unwrap()
}

fn camara(mock: &MockServer) -> SilentProviderConfig {
    serde_json::from_value(json!({
        "kind": "camara", "client_id": "phonegate", "client_secret": "op-secret",
        "discovery_url": format!("{}/.well-known/openid-configuration", mock.uri()), "api_root": format!("{}/camara", mock.uri()),
    }))
    .unwrap()
}

/// The app with the given silent providers; German numbers (`+49`) go to CAMARA when it is
/// configured, everything else to tru.ID.
async fn app_with(providers: Vec<(&str, SilentProviderConfig)>) -> TestApp {
    TestApp::spawn_with(move |c| {
        c.public_url = Some(PUBLIC.into());
        if providers.iter().any(|(n, _)| *n == "camara") {
            c.silent.routing.routes = vec![phonegate_core::silent::SilentRoute { prefix: "+49".into(), providers: vec!["camara".into()] }];
            c.silent.routing.providers = vec!["truid".into()];
        }
        c.silent.providers = providers.into_iter().map(|(n, p)| (n.to_string(), p)).collect();
    })
    .await
}

/// A URL phonegate gave out for its public address, on the test server.
fn local(app: &TestApp, url: &str) -> String {
    url.replace(PUBLIC, &app.base)
}

fn device() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn start(app: &TestApp, to: &str, channel: &str, ip: &str) -> Value {
    let r = app.post("/api/verifications", json!({ "to": to, "channel": channel, "client_ip": ip })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

async fn status(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap()
}

async fn mount_truid_token(mock: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/oauth2/v1/token"))
        .and(header("authorization", "Basic Y2lkOmNzZWNyZXQ="))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "access_token": "tok-1", "expires_in": 3600, "token_type": "bearer" })),
        )
        .mount(mock)
        .await;
}

async fn mount_coverage(mock: &MockServer, ip: &str, status: u16) {
    let body = json!({ "country_code": "GB", "network_id": "23410", "network_name": "O2 UK", "products": [{ "product_id": "PCK", "product_name": "Phone Check" }] });
    Mock::given(method("GET"))
        .and(path(format!("/coverage/v0.1/device_ips/{ip}")))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(mock)
        .await;
}

#[tokio::test]
async fn truid_phone_check_approves_on_a_match_and_auto_falls_back_to_sms_otherwise() {
    let mock = MockServer::start().await;
    mount_truid_token(&mock).await;
    mount_coverage(&mock, "198.51.100.20", 200).await;
    mount_coverage(&mock, "198.51.100.30", 412).await;
    mount_coverage(&mock, "198.51.100.40", 400).await;
    Mock::given(method("POST"))
        .and(path("/phone_check/v0.2/checks"))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(|req: &wiremock::Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let id = format!("c-{}", body["phone_number"].as_str().unwrap());
            ResponseTemplate::new(201).set_body_json(json!({
                "check_id": id, "status": "ACCEPTED",
                "_links": { "check_url": { "href": format!("https://eu.api.tru.id/phone_check/v0.2/checks/{id}/redirect") } }
            }))
        })
        .mount(&mock)
        .await;
    let app = app_with(vec![("truid", truid(&mock))]).await;

    // Covered device, matching SIM.
    let to = "+447911123123";
    let v = start(&app, to, "auto", "198.51.100.20").await;
    assert_eq!(v["silent"]["provider"], "truid");
    let check_url = v["silent"]["check_url"].as_str().unwrap();
    assert!(check_url.starts_with(&format!("{PUBLIC}/silent/")), "{check_url}");
    let r = device().get(local(&app, check_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "https://eu.api.tru.id/phone_check/v0.2/checks/c-447911123123/redirect");
    Mock::given(method("PATCH"))
        .and(path("/phone_check/v0.2/checks/c-447911123123"))
        .and(header("content-type", "application/json-patch+json"))
        .and(body_json(json!([{ "op": "add", "path": "/code", "value": "tru-code-1" }])))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "check_id": "c-447911123123", "status": "COMPLETED", "match": true })),
        )
        .expect(1)
        .mount(&mock)
        .await;
    let callback = app.url("/silent/callback/truid?check_id=c-447911123123&code=tru-code-1");
    assert_eq!(device().get(&callback).send().await.unwrap().status(), StatusCode::OK);
    let now = status(&app, v["id"].as_str().unwrap()).await;
    assert_eq!((now["status"].as_str(), now["approved_channel"].as_str()), (Some("approved"), Some("silent")));
    // Replayed: refused without asking tru.ID again (the PATCH mock expects exactly one call).
    assert_eq!(device().get(&callback).send().await.unwrap().status(), StatusCode::GONE);
    // Forged: a check tru.ID never made.
    let forged = app.url("/silent/callback/truid?check_id=c-000&code=x");
    assert_eq!(device().get(forged).send().await.unwrap().status(), StatusCode::BAD_REQUEST);

    let requests = mock.received_requests().await.unwrap();
    let create = requests.iter().find(|r| r.url.path() == "/phone_check/v0.2/checks").unwrap();
    let body: Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(body["phone_number"], "447911123123");
    assert_eq!(body["redirect_url"], format!("{PUBLIC}/silent/callback/truid"));

    // Covered device, another SIM: the same verification goes on by SMS.
    let to = "+447911123124";
    let v = start(&app, to, "auto", "198.51.100.20").await;
    device().get(local(&app, v["silent"]["check_url"].as_str().unwrap())).send().await.unwrap();
    Mock::given(method("PATCH"))
        .and(path("/phone_check/v0.2/checks/c-447911123124"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "check_id": "c-447911123124", "status": "COMPLETED", "match": false })),
        )
        .mount(&mock)
        .await;
    let r = device().get(app.url("/silent/callback/truid?check_id=c-447911123124&code=c2")).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("We sent you a code"));
    let code = sms_code(&app, to).await;
    let id = v["id"].as_str().unwrap();
    assert_eq!(app.check(id, &code).await.json::<Value>().await.unwrap()["status"], "approved");
    assert_eq!(status(&app, id).await["silent"]["reason"], "mismatch");

    // On WiFi (412) and with an uncovered operator (400): SMS at once, no check created.
    for (ip, reason, to) in [("198.51.100.30", "wifi", "+447911123125"), ("198.51.100.40", "operator_not_covered", "+447911123126")] {
        let v = start(&app, to, "auto", ip).await;
        assert_eq!((v["silent"]["status"].as_str(), v["silent"]["reason"].as_str()), (Some("failed"), Some(reason)));
        assert!(v["silent"].get("check_url").is_none());
        sms_code(&app, to).await;
    }
    // Coverage for a backend's user, and for the page itself.
    let r: Value = app.get("/api/coverage?ip=198.51.100.30").await.json().await.unwrap();
    assert_eq!((r["available"].as_bool(), r["reason"].as_str()), (Some(false), Some("wifi")));
    let r: Value = app.get("/api/coverage?ip=198.51.100.20").await.json().await.unwrap();
    assert_eq!((r["available"].as_bool(), r["operator"].as_str(), r["provider"].as_str()), (Some(true), Some("O2 UK"), Some("truid")));

    // One token for everything above: cached.
    let tokens = mock.received_requests().await.unwrap().iter().filter(|r| r.url.path() == "/oauth2/v1/token").count();
    assert_eq!(tokens, 1);
}

#[tokio::test]
async fn truid_errors_fail_a_silent_verification_with_a_clear_reason_and_no_secret() {
    let mock = MockServer::start().await;
    Mock::given(method("POST")).and(path("/oauth2/v1/token")).respond_with(ResponseTemplate::new(401)).mount(&mock).await;
    let app = app_with(vec![("truid", truid(&mock))]).await;
    let to = "+447911123127";
    let v = start(&app, to, "silent", "198.51.100.20").await;
    assert_eq!(v["status"], "failed");
    assert_eq!((v["silent"]["status"].as_str(), v["silent"]["reason"].as_str()), (Some("failed"), Some("provider_error")));
    let v = start(&app, "+447911123128", "auto", "198.51.100.20").await;
    // Coverage unknown (the token was refused): auto goes by SMS.
    assert_eq!(v["silent"]["reason"], "unknown");
    sms_code(&app, "+447911123128").await;
    let audit: Value = app.get("/api/audit?limit=50").await.json().await.unwrap();
    assert!(!audit.to_string().contains("csecret"), "{audit}");
}

#[tokio::test]
async fn camara_number_verification_runs_the_operator_flow_and_is_routed_by_prefix() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": mock.uri(), "authorization_endpoint": format!("{}/authorize", mock.uri()), "token_endpoint": format!("{}/token", mock.uri()),
        })))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("authorization", "Basic cGhvbmVnYXRlOm9wLXNlY3JldA=="))
        .respond_with(|req: &wiremock::Request| {
            let form = String::from_utf8_lossy(&req.body).to_string();
            if form.contains("code=op-code-good") || form.contains("code=op-code-other") {
                let token = if form.contains("good") { "at-good" } else { "at-other" };
                ResponseTemplate::new(200).set_body_json(json!({ "access_token": token, "token_type": "Bearer", "expires_in": 300 }))
            } else {
                ResponseTemplate::new(400).set_body_json(json!({ "error": "invalid_grant" }))
            }
        })
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/camara/number-verification/v2/verify"))
        .respond_with(|req: &wiremock::Request| {
            let ok = req.headers.get("authorization").is_some_and(|h| h == "Bearer at-good");
            ResponseTemplate::new(200).set_body_json(json!({ "devicePhoneNumberVerified": ok }))
        })
        .mount(&mock)
        .await;
    let tru = MockServer::start().await;
    let app = app_with(vec![("camara", camara(&mock)), ("truid", truid(&tru))]).await;

    let operator_step = async |to: &str, channel: &str| {
        let v = start(&app, to, channel, "198.51.100.20").await;
        assert_eq!(v["silent"]["provider"], "camara", "+49 is routed to the operator");
        let r = device().get(local(&app, v["silent"]["check_url"].as_str().unwrap())).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let authorize = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(authorize.path(), "/authorize");
        let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["prompt"], "none");
        assert_eq!(q["client_id"], "phonegate");
        assert_eq!(q["redirect_uri"], format!("{PUBLIC}/silent/callback/camara"));
        assert_eq!(q["login_hint"], format!("tel:{to}"));
        assert!(q["scope"].contains("number-verification:verify"));
        (v["id"].as_str().unwrap().to_string(), q["state"].clone())
    };

    // The operator authenticates the device and the number is the device's.
    let to = fresh_number();
    let (id, state) = operator_step(&to, "silent").await;
    let r = device().get(app.url(&format!("/silent/callback/camara?code=op-code-good&state={state}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(status(&app, &id).await["approved_channel"], "silent");
    let verify = mock.received_requests().await.unwrap().into_iter().find(|r| r.url.path().ends_with("/verify")).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&verify.body).unwrap(), json!({ "phoneNumber": to }));

    // Another number on the device: auto goes on by SMS.
    let to = fresh_number();
    let (id, state) = operator_step(&to, "auto").await;
    device().get(app.url(&format!("/silent/callback/camara?code=op-code-other&state={state}"))).send().await.unwrap();
    sms_code(&app, &to).await;
    assert_eq!(status(&app, &id).await["silent"]["reason"], "mismatch");

    // On WiFi the operator cannot authenticate the device (prompt=none → login_required).
    let to = fresh_number();
    let (id, state) = operator_step(&to, "silent").await;
    device().get(app.url(&format!("/silent/callback/camara?error=login_required&state={state}"))).send().await.unwrap();
    assert_eq!(status(&app, &id).await["failure_reason"], "wifi");

    // A tampered code is refused by the operator's token endpoint: the check fails.
    let to = fresh_number();
    let (id, state) = operator_step(&to, "silent").await;
    device().get(app.url(&format!("/silent/callback/camara?code=forged&state={state}"))).send().await.unwrap();
    assert_eq!(status(&app, &id).await["failure_reason"], "provider_error");
    // A state nobody was given.
    let r = device().get(app.url("/silent/callback/camara?code=op-code-good&state=made-up")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // tru.ID was never asked: routing sent +49 to the operator.
    assert!(tru.received_requests().await.unwrap().is_empty());
}

async fn sms_code(app: &TestApp, to: &str) -> String {
    eventually(|| async { app.outbox(to).await.first().and_then(|m| m["body"].as_str()).map(str::to_string) }).await;
    app.code_for(to).await
}
