//! Calls and WhatsApp by Vonage, end to end: the Voice API call (its application JWT, its NCCO)
//! and the Messages API template against a mock of Vonage, and Vonage's signed callbacks (call
//! events, message statuses) moving the steps, forged ones changing nothing.
use crate::helpers::{TestApp, eventually, expect_error, fresh_number};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use phonegate_providers::{ProviderKind, ProviderSettings, Secret, VonageSettings};
use serde_json::{Value, json};
use sha2::Digest;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PUBLIC: &str = "https://verify.example.com";
const CALL: &str = "63f61863-4a51-4f6b-86e1-46edebcf9356";
const MESSAGE: &str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";

/// A 1024-bit RSA key pair made for tests only (the application's key).
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

/// A mock of Vonage's SMS, Voice and Messages APIs, each accepting.
async fn vonage_mock() -> MockServer {
    let server = MockServer::start().await;
    let sms = json!({ "message-count": "1", "messages": [{ "status": "0", "message-id": "vg-sms-1" }] });
    Mock::given(method("POST")).and(path("/sms/json")).respond_with(ResponseTemplate::new(200).set_body_json(sms)).mount(&server).await;
    let call = json!({ "uuid": CALL, "status": "started", "direction": "outbound", "conversation_uuid": "CON-1" });
    Mock::given(method("POST")).and(path("/v1/calls")).respond_with(ResponseTemplate::new(201).set_body_json(call)).mount(&server).await;
    let message = json!({ "message_uuid": MESSAGE });
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(202).set_body_json(message))
        .mount(&server)
        .await;
    server
}

fn vonage(uri: &str) -> ProviderSettings {
    ProviderSettings {
        kind: ProviderKind::Vonage(VonageSettings {
            api_key: "abcd1234".into(),
            api_secret: Secret::new("vonage-secret"),
            from: Some("Acme".into()),
            signature_secret: Some(Secret::new("sig-secret")),
            signature_method: None,
            base_url: Some(uri.into()),
            application_id: Some("app-1".into()),
            private_key: Some(Secret::new(PRIVATE_KEY)),
            voice_from: Some("+447700900001".into()),
            whatsapp_from: Some("14157386102".into()),
            whatsapp_template: Some("acme_otp".into()),
            whatsapp_languages: None,
            api_base_url: Some(uri.into()),
        }),
        timeout: Duration::from_secs(30),
        retries: 0,
        channels: None,
    }
}

/// The app with Vonage as its only provider (SMS, calls and WhatsApp). Keep the mock bound to a
/// name for the whole test (see `webhooks.rs`).
async fn app() -> (TestApp, MockServer) {
    let mock = vonage_mock().await;
    let app = TestApp::spawn_with(|c| {
        c.public_url = Some(PUBLIC.into());
        c.providers.insert("vg".into(), vonage(&mock.uri()));
    })
    .await;
    (app, mock)
}

async fn requests(mock: &MockServer, p: &str) -> Vec<wiremock::Request> {
    mock.received_requests().await.unwrap().into_iter().filter(|r| r.url.path() == p).collect()
}

async fn detail(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap()
}

async fn start(app: &TestApp, body: Value) -> String {
    let r = app.post("/api/verifications", body).await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

/// A callback signed as Vonage signs it: HS256 with `secret`, issued at `iat`, binding `body`.
fn signed(secret: &str, body: &[u8], iat: i64) -> String {
    let claims = json!({
        "iat": iat, "jti": "c5ba8f24-1a14-4c10-bfdf-3fbe8ce511b5", "iss": "Vonage",
        "payload_hash": hex::encode(sha2::Sha256::digest(body)), "api_key": "abcd1234", "application_id": "app-1",
    });
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()).unwrap()).unwrap()
}

async fn callback(app: &TestApp, p: &str, body: &Value, token: Option<String>) -> reqwest::Response {
    let mut req = app.client.post(app.url(p)).header("content-type", "application/json").body(body.to_string());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

#[tokio::test]
async fn a_call_speaks_the_code_and_only_signed_call_events_update_it() {
    let (app, mock) = app().await;
    let to = fresh_number();
    let id = start(&app, json!({ "to": to, "channel": "voice", "locale": "de" })).await;
    let calls = requests(&mock, "/v1/calls").await;
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let jwt = call.headers["authorization"].to_str().unwrap().strip_prefix("Bearer ").unwrap();
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &Validation::new(Algorithm::RS256)).unwrap().claims;
    assert_eq!(claims["application_id"], "app-1");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(body["to"], json!([{ "type": "phone", "number": to.trim_start_matches('+') }]));
    assert_eq!(body["from"], json!({ "type": "phone", "number": "447700900001" }));
    assert_eq!(body["event_url"], json!([format!("{PUBLIC}/webhooks/vonage/call-event")]));
    let talk = &body["ncco"].as_array().unwrap()[..];
    assert_eq!((talk.len(), talk[0]["action"].as_str(), talk[0]["language"].as_str()), (1, Some("talk"), Some("de-DE")));
    let text = talk[0]["text"].as_str().unwrap();
    assert!(text.starts_with("Ihr Bestätigungscode"), "{text}");
    // The code, digit by digit and twice: what is spoken is what checks.
    let spoken = digits(text);
    let code = &spoken[..spoken.len() / 2];
    assert_eq!(&spoken[spoken.len() / 2..], code);
    assert!(detail(&app, &id).await["messages"][0]["status"] == "sent");

    let p = "/webhooks/vonage/call-event";
    let completed = json!({ "uuid": CALL, "conversation_uuid": "CON-1", "status": "completed", "direction": "outbound", "duration": "21" });
    let now = app.clock_now_unix();
    let bytes = completed.to_string().into_bytes();
    let other = json!({ "uuid": "other", "status": "completed" }).to_string().into_bytes();
    for forged in [
        None,
        Some(signed("wrong-secret", &bytes, now)),
        Some(signed("sig-secret", &other, now)),
        Some(signed("sig-secret", &bytes, now - 400)),
    ] {
        expect_error(callback(&app, p, &completed, forged).await, 403, "invalid_signature").await;
    }
    assert_eq!(detail(&app, &id).await["messages"][0]["status"], "sent", "refused events changed nothing");
    assert_eq!(callback(&app, p, &completed, Some(signed("sig-secret", &bytes, now))).await.status(), 204);
    let d = detail(&app, &id).await;
    assert_eq!((d["messages"][0]["status"].as_str(), d["messages"][0]["channel"].as_str()), (Some("delivered"), Some("voice")));
    assert_eq!(app.check(&id, code).await.status(), 200);
}

#[tokio::test]
async fn an_unanswered_call_hands_over_to_the_next_step_at_once() {
    let (app, mock) = app().await;
    let to = fresh_number();
    let workflow = json!([{ "channel": "voice", "timeout_secs": 900 }, { "channel": "sms" }]);
    let id = start(&app, json!({ "to": to, "workflow": workflow })).await;
    assert!(requests(&mock, "/sms/json").await.is_empty());
    let unanswered = json!({ "uuid": CALL, "status": "unanswered", "direction": "outbound" });
    let token = signed("sig-secret", unanswered.to_string().as_bytes(), app.clock_now_unix());
    assert_eq!(callback(&app, "/webhooks/vonage/call-event", &unanswered, Some(token)).await.status(), 204);
    // No clock moves: the failed call alone starts the SMS.
    eventually(|| async { (!requests(&mock, "/sms/json").await.is_empty()).then_some(()) }).await;
    let d = detail(&app, &id).await;
    assert_eq!((d["steps"][0]["status"].as_str(), d["step"].as_u64()), (Some("failed"), Some(1)), "{d}");
}

#[tokio::test]
async fn a_call_that_waits_for_a_key_speaks_the_code_only_after_one() {
    let (app, mock) = app().await;
    let r = app.post("/api/services", json!({ "name": "keypress", "voice_key_press": true })).await;
    assert_eq!(r.status(), 201);
    start(&app, json!({ "to": fresh_number(), "channel": "voice", "service": "keypress", "locale": "en" })).await;
    let body: Value = serde_json::from_slice(&requests(&mock, "/v1/calls").await[0].body).unwrap();
    let ncco = body["ncco"].as_array().unwrap();
    assert_eq!(ncco.len(), 3);
    assert_eq!((ncco[0]["action"].as_str(), ncco[0]["bargeIn"].as_bool()), (Some("talk"), Some(true)));
    assert_eq!(ncco[0]["text"], "Press any key to hear your verification code.");
    assert_eq!(ncco[1]["action"], "input");
    assert_eq!(ncco[1]["dtmf"]["maxDigits"], 1);
    assert_eq!(ncco[1]["eventUrl"], json!([format!("{PUBLIC}/webhooks/vonage/call-event")]));
    assert_eq!(ncco[2]["action"], "talk");

    // A key: no NCCO, so the call goes on to speak the code. Silence: an NCCO that ends it.
    let input = |d: Value| json!({ "dtmf": { "digits": d, "timed_out": false }, "uuid": CALL, "speech": { "results": [] } });
    let pressed = callback(&app, "/webhooks/vonage/call-event", &input(json!("5")), None).await;
    assert_eq!(pressed.status(), 204);
    let silent = callback(&app, "/webhooks/vonage/call-event", &input(json!(null)), None).await;
    assert_eq!(silent.status(), 200);
    let ncco: Value = silent.json().await.unwrap();
    assert_eq!(ncco, json!([{ "action": "talk", "text": "<speak><break time=\"1s\"/></speak>" }]), "a pause, then the call ends");
}

#[tokio::test]
async fn whatsapp_by_vonage_sends_the_template_and_a_number_without_whatsapp_moves_on() {
    let (app, mock) = app().await;
    let to = fresh_number();
    let workflow = json!([{ "channel": "whatsapp", "timeout_secs": 900 }, { "channel": "sms" }]);
    let id = start(&app, json!({ "to": to, "workflow": workflow, "locale": "de" })).await;
    let sent = &requests(&mock, "/v1/messages").await[0];
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!((body["message_type"].as_str(), body["channel"].as_str()), (Some("custom"), Some("whatsapp")));
    assert_eq!((body["to"].as_str(), body["from"].as_str()), (Some(to.trim_start_matches('+')), Some("14157386102")));
    assert_eq!(body["webhook_url"], format!("{PUBLIC}/webhooks/vonage/message-status"));
    let template = &body["custom"]["template"];
    assert_eq!((template["name"].as_str(), template["language"]["code"].as_str()), (Some("acme_otp"), Some("de")));
    let code = template["components"][0]["parameters"][0]["text"].as_str().unwrap().to_string();
    assert_eq!(
        template["components"][1],
        json!({ "type": "button", "sub_type": "url", "index": "0", "parameters": [{ "type": "text", "text": code }] })
    );

    let p = "/webhooks/vonage/message-status";
    let rejected = json!({
        "message_uuid": MESSAGE, "to": to.trim_start_matches('+'), "from": "14157386102", "channel": "whatsapp",
        "timestamp": "2026-03-01T09:00:01Z", "status": "rejected",
        "error": { "type": "https://developer.vonage.com/api-errors/messages#1300", "title": 1300, "detail": "Not part of the provider network" },
    });
    let bytes = rejected.to_string().into_bytes();
    let now = app.clock_now_unix();
    expect_error(callback(&app, p, &rejected, Some(signed("wrong-secret", &bytes, now))).await, 403, "invalid_signature").await;
    expect_error(callback(&app, p, &rejected, None).await, 403, "invalid_signature").await;
    assert!(requests(&mock, "/sms/json").await.is_empty(), "a forged status moved nothing");
    assert_eq!(callback(&app, p, &rejected, Some(signed("sig-secret", &bytes, now))).await.status(), 200);
    let sms = eventually(|| async { requests(&mock, "/sms/json").await.into_iter().next() }).await;
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&sms.body).unwrap();
    let text = &form.iter().find(|(k, _)| k == "text").unwrap().1;
    assert!(text.ends_with(&code), "one code for both steps: {text}");
    let d = detail(&app, &id).await;
    assert_eq!(d["steps"][0]["status"], "failed", "{d}");
    assert_eq!(app.check(&id, &code).await.status(), 200);
}
