//! WhatsApp by Meta's Cloud API, end to end: the authentication template against a mock of the
//! Graph API, the webhook's verification handshake, signed statuses (`X-Hub-Signature-256`)
//! moving the steps and forged ones changing nothing, and a number without WhatsApp handing over
//! to the next step whether Meta refuses it at once or reports it later.
use crate::helpers::{TestApp, eventually, expect_error, fresh_number};
use phonegate_providers::signature::meta_signature;
use phonegate_providers::{ProviderKind, ProviderSettings, Secret, WhatsappCloudSettings};
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WAMID: &str = "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA";
const MESSAGES: &str = "/v23.0/106540352242922/messages";

/// A Graph API mock answering sends with `status` and `body`.
async fn graph(status: u16, body: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .and(header("authorization", "Bearer EAAJB-token"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    server
}

async fn accepting() -> MockServer {
    graph(200, json!({ "messaging_product": "whatsapp", "contacts": [{ "input": "x", "wa_id": "x" }], "messages": [{ "id": WAMID }] }))
        .await
}

/// The app with the Cloud API for WhatsApp and the dev outbox for SMS. Keep the mock bound to a
/// name for the whole test (see `webhooks.rs`).
async fn app(mock: &MockServer) -> TestApp {
    let uri = mock.uri();
    TestApp::spawn_with(|c| {
        let wa = WhatsappCloudSettings {
            phone_number_id: "106540352242922".into(),
            access_token: Secret::new("EAAJB-token"),
            app_secret: Some(Secret::new("meta-app-secret")),
            verify_token: Some(Secret::new("hub-token")),
            template: "acme_otp".into(),
            template_languages: Some(vec!["en_US".into(), "de".into()]),
            base_url: Some(format!("{uri}/v23.0")),
            api_version: None,
        };
        let settings =
            |kind, channels: Option<Vec<String>>| ProviderSettings { kind, timeout: Duration::from_secs(30), retries: 0, channels };
        c.providers.insert("wa".into(), settings(ProviderKind::WhatsappCloud(wa), None));
        c.providers.insert("outbox".into(), settings(ProviderKind::Outbox, Some(vec!["sms".into()])));
    })
    .await
}

async fn detail(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap()
}

async fn start_whatsapp_then_sms(app: &TestApp, to: &str) -> String {
    let workflow = json!([{ "channel": "whatsapp", "timeout_secs": 900 }, { "channel": "sms" }]);
    let r = app.post("/api/verifications", json!({ "to": to, "workflow": workflow, "locale": "en-GB" })).await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

async fn webhook(app: &TestApp, body: &Value, signature: Option<String>) -> reqwest::Response {
    let mut req = app.client.post(app.url("/webhooks/whatsapp")).header("content-type", "application/json").body(body.to_string());
    if let Some(sig) = signature {
        req = req.header("X-Hub-Signature-256", sig);
    }
    req.send().await.unwrap()
}

fn statuses(status: Value) -> Value {
    json!({ "object": "whatsapp_business_account", "entry": [{ "id": "WABA", "changes": [{ "field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550001234", "phone_number_id": "106540352242922" },
        "statuses": [status],
    } }] }] })
}

#[tokio::test]
async fn sends_the_template_and_signed_statuses_update_it() {
    let mock = accepting().await;
    let app = app(&mock).await;
    let to = fresh_number();
    let id = start_whatsapp_then_sms(&app, &to).await;
    let sent = &mock.received_requests().await.unwrap()[0];
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    let code = body["template"]["components"][0]["parameters"][0]["text"].as_str().unwrap().to_string();
    let parameter = json!([{ "type": "text", "text": code }]);
    assert_eq!(
        body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to.trim_start_matches('+'),
            "type": "template",
            "template": {
                // en-GB, and the template exists in en_US: its own English.
                "name": "acme_otp",
                "language": { "code": "en_US" },
                "components": [
                    { "type": "body", "parameters": parameter },
                    { "type": "button", "sub_type": "url", "index": "0", "parameters": parameter },
                ],
            },
        })
    );

    let delivered =
        statuses(json!({ "id": WAMID, "status": "delivered", "timestamp": "1772355601", "recipient_id": to.trim_start_matches('+') }));
    let bytes = delivered.to_string().into_bytes();
    for forged in [None, Some(meta_signature("other-secret", &bytes)), Some(meta_signature("meta-app-secret", b"{}"))] {
        expect_error(webhook(&app, &delivered, forged).await, 403, "invalid_signature").await;
    }
    assert_eq!(detail(&app, &id).await["messages"][0]["status"], "sent", "refused statuses changed nothing");
    assert_eq!(webhook(&app, &delivered, Some(meta_signature("meta-app-secret", &bytes))).await.status(), 200);
    let d = detail(&app, &id).await;
    assert_eq!((d["messages"][0]["status"].as_str(), d["messages"][0]["channel"].as_str()), (Some("delivered"), Some("whatsapp")));
    assert_eq!(app.check(&id, &code).await.status(), 200);
}

#[tokio::test]
async fn a_number_reported_without_whatsapp_hands_over_to_the_sms() {
    let mock = accepting().await;
    let app = app(&mock).await;
    let to = fresh_number();
    let id = start_whatsapp_then_sms(&app, &to).await;
    assert!(app.outbox(&to).await.is_empty());
    let failed = statuses(json!({ "id": WAMID, "status": "failed", "timestamp": "1772355601", "recipient_id": to.trim_start_matches('+'),
        "errors": [{ "code": 131026, "title": "Message undeliverable" }] }));
    let sig = meta_signature("meta-app-secret", failed.to_string().as_bytes());
    assert_eq!(webhook(&app, &failed, Some(sig)).await.status(), 200);
    let sms = eventually(|| async { app.outbox(&to).await.into_iter().next() }).await;
    assert_eq!(sms["channel"], "sms");
    let d = detail(&app, &id).await;
    assert_eq!((d["steps"][0]["status"].as_str(), d["step"].as_u64()), (Some("failed"), Some(1)), "{d}");
    assert!(d["messages"].to_string().contains("WhatsApp error 131026"), "{d}");
}

#[tokio::test]
async fn a_number_meta_refuses_at_once_hands_over_at_once() {
    let refused =
        json!({ "error": { "message": "(#131026) Message undeliverable", "type": "OAuthException", "code": 131026, "fbtrace_id": "Az" } });
    let mock = graph(400, refused).await;
    let app = app(&mock).await;
    let to = fresh_number();
    let id = start_whatsapp_then_sms(&app, &to).await;
    let sms = eventually(|| async { app.outbox(&to).await.into_iter().next() }).await;
    assert_eq!(sms["channel"], "sms");
    let d = detail(&app, &id).await;
    assert_eq!((d["steps"][0]["status"].as_str(), d["status"].as_str()), (Some("failed"), Some("pending")), "{d}");
}

#[tokio::test]
async fn the_verification_handshake_answers_the_configured_token_only() {
    let mock = accepting().await;
    let app = app(&mock).await;
    let get = |q: &'static [(&'static str, &'static str)]| {
        let req = app.client.get(app.url("/webhooks/whatsapp")).query(q);
        async move { req.send().await.unwrap() }
    };
    let ok = get(&[("hub.mode", "subscribe"), ("hub.verify_token", "hub-token"), ("hub.challenge", "1158201444")]).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    for bad in [
        &[("hub.mode", "subscribe"), ("hub.verify_token", "wrong"), ("hub.challenge", "1158201444")][..],
        &[("hub.mode", "unsubscribe"), ("hub.verify_token", "hub-token"), ("hub.challenge", "1158201444")][..],
        &[("hub.mode", "subscribe"), ("hub.verify_token", "hub-token"), ("hub.challenge", "<script>")][..],
    ] {
        expect_error(get(bad).await, 403, "invalid_signature").await;
    }
}
