//! Provider webhooks end to end: signed receipts update messages, signed inbound STOP/START
//! opt out and in, and anything unsigned, forged or stale is refused without a state change.
use crate::helpers::{TestApp, expect_error, fresh_number, providers};
use phonegate_providers::signature::{VonageSigMethod, twilio_signature, vonage_signature};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const PUBLIC: &str = "https://verify.example.com";

/// The app with Twilio and Vonage mocks. Keep both mock servers alive (bound to a name, not `_`)
/// for the whole test: wiremock pools its servers, and a dropped one is handed, same port and
/// new mocks, to the next test that starts one, so this app's sends would get that test's answers.
async fn app_with_twilio_and_vonage() -> (TestApp, MockServer, MockServer) {
    let twilio = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SMtw1" }))).mount(&twilio).await;
    let vonage = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "message-count": "1", "messages": [{ "status": "0", "message-id": "vg-9" }] })),
        )
        .mount(&vonage)
        .await;
    let app = TestApp::spawn_with(|c| {
        c.public_url = Some(PUBLIC.into());
        // The mocks answer at once; a long timeout keeps a loaded machine from failing the send.
        c.providers.insert("tw".into(), providers::twilio(&twilio.uri(), 30_000));
        c.providers.insert("vg".into(), providers::vonage(&vonage.uri()));
        c.routing.default.providers = vec!["tw".into()];
        c.routing.default.routes =
            vec![phonegate_providers::routing::Route { prefix: "+4916".into(), providers: vec!["vg".into()], from: None }];
    })
    .await;
    (app, twilio, vonage)
}

fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn twilio_post(app: &TestApp, path: &str, p: &[(String, String)], signature: Option<String>) -> reqwest::Response {
    let mut req = app.client.post(app.url(path)).form(p);
    if let Some(sig) = signature {
        req = req.header("X-Twilio-Signature", sig);
    }
    req.send().await.unwrap()
}

fn twilio_sig(path: &str, p: &[(String, String)]) -> String {
    twilio_signature("twilio-token", &format!("{PUBLIC}{path}"), p)
}

async fn message(app: &TestApp, verification_id: &str) -> Value {
    let d: Value = app.get(&format!("/api/verifications/{verification_id}")).await.json().await.unwrap();
    d["messages"][0].clone()
}

#[tokio::test]
async fn signed_twilio_status_callbacks_update_delivery_and_forged_ones_change_nothing() {
    let (app, twilio, _vonage) = app_with_twilio_and_vonage().await;
    let v = app.start(&fresh_number()).await;
    let id = v["id"].as_str().unwrap();
    let sent = &twilio.received_requests().await.unwrap()[0];
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&sent.body).unwrap();
    assert!(form.contains(&("StatusCallback".into(), format!("{PUBLIC}/webhooks/twilio/status"))));

    let path = "/webhooks/twilio/status";
    let delivered = params(&[("AccountSid", "AC0123"), ("MessageSid", "SMtw1"), ("MessageStatus", "delivered"), ("ErrorCode", "")]);
    let forged = twilio_signature("wrong-token", &format!("{PUBLIC}{path}"), &delivered);
    expect_error(twilio_post(&app, path, &delivered, Some(forged)).await, 403, "invalid_signature").await;
    expect_error(twilio_post(&app, path, &delivered, None).await, 403, "invalid_signature").await;
    let mut tampered = delivered.clone();
    tampered[1].1 = "SMother".into();
    expect_error(twilio_post(&app, path, &tampered, Some(twilio_sig(path, &delivered))).await, 403, "invalid_signature").await;
    assert_eq!(message(&app, id).await["status"], "sent", "refused callbacks changed nothing");

    assert_eq!(twilio_post(&app, path, &delivered, Some(twilio_sig(path, &delivered))).await.status(), 204);
    assert_eq!(message(&app, id).await["status"], "delivered");
    // A late "sent" never moves a delivered message backwards.
    let late = params(&[("AccountSid", "AC0123"), ("MessageSid", "SMtw1"), ("MessageStatus", "sent")]);
    assert_eq!(twilio_post(&app, path, &late, Some(twilio_sig(path, &late))).await.status(), 204);
    assert_eq!(message(&app, id).await["status"], "delivered");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("phonegate_sms_receipts_total{provider=\"tw\",region=\"DE\",status=\"delivered\"} 1"), "{metrics}");
}

fn vonage_signed(p: &[(&str, &str)], timestamp: i64) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    map.insert("api-key".into(), "abcd1234".into());
    map.insert("timestamp".into(), timestamp.to_string());
    let sig = vonage_signature("sig-secret", VonageSigMethod::Md5hash, &map);
    map.insert("sig".into(), sig);
    map
}

#[tokio::test]
async fn signed_vonage_receipts_update_delivery_and_stale_ones_are_refused() {
    let (app, _twilio, vonage) = app_with_twilio_and_vonage().await;
    let to = "+4916012345678";
    let v = app.start(to).await;
    let id = v["id"].as_str().unwrap();
    assert_eq!(message(&app, id).await["provider"], "vg", "the +4916 route chose Vonage");
    assert_eq!(vonage.received_requests().await.unwrap().len(), 1);
    let now = app.clock_now_unix();
    let receipt = [("messageId", "vg-9"), ("msisdn", "4916012345678"), ("status", "delivered"), ("err-code", "0")];
    let stale = vonage_signed(&receipt, now - 600);
    let r = app.client.post(app.url("/webhooks/vonage/dlr")).form(&stale).send().await.unwrap();
    expect_error(r, 403, "invalid_signature").await;
    let mut forged = vonage_signed(&receipt, now);
    forged.insert("status".into(), "failed".into());
    let r = app.client.post(app.url("/webhooks/vonage/dlr")).form(&forged).send().await.unwrap();
    expect_error(r, 403, "invalid_signature").await;
    assert_eq!(message(&app, id).await["status"], "sent");

    // Vonage may send GET with a query string, or JSON.
    let good = vonage_signed(&receipt, now);
    let r = app.client.get(app.url("/webhooks/vonage/dlr")).query(&good).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(message(&app, id).await["status"], "delivered");
    let json_receipt = vonage_signed(&[("messageId", "unknown-id"), ("status", "failed")], now);
    let r = app.client.post(app.url("/webhooks/vonage/dlr")).json(&json_receipt).send().await.unwrap();
    assert_eq!(r.status(), 200, "receipts for unknown messages are acknowledged and ignored");
}

#[tokio::test]
async fn stop_through_a_signed_webhook_blocks_codes_until_start() {
    let (app, twilio, _vonage) = app_with_twilio_and_vonage().await;
    let number = fresh_number();
    let path = "/webhooks/twilio/sms";
    let inbound = |sid: &str, body: &str| {
        params(&[("AccountSid", "AC0123"), ("MessageSid", sid), ("From", &number), ("To", "+15005550006"), ("Body", body)])
    };

    let stop = inbound("SMin1", "STOP");
    // Forged: nothing happens.
    let r = twilio_post(&app, path, &stop, Some("bm90IGEgc2lnbmF0dXJl".into())).await;
    expect_error(r, 403, "invalid_signature").await;
    app.start(&number).await;

    let r = twilio_post(&app, path, &stop, Some(twilio_sig(path, &stop))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/xml");
    assert!(r.text().await.unwrap().contains("<Response>"));
    let sent_before = twilio.received_requests().await.unwrap().len();
    let other = fresh_number();
    let err =
        expect_error(app.post("/api/verifications", json!({ "to": number, "service": "phonegate" })).await, 403, "recipient_opted_out")
            .await;
    assert!(err["message"].as_str().unwrap().contains("START"));
    assert_eq!(twilio.received_requests().await.unwrap().len(), sent_before, "nothing was sent");
    app.start(&other).await;

    // A redelivery of the same inbound message is processed once: it cannot undo later state.
    let start = inbound("SMin2", "start");
    assert_eq!(twilio_post(&app, path, &start, Some(twilio_sig(path, &start))).await.status(), 200);
    let replay_stop = twilio_post(&app, path, &stop, Some(twilio_sig(path, &stop))).await;
    assert_eq!(replay_stop.status(), 200);
    assert_eq!(
        app.post("/api/verifications", json!({ "to": number })).await.status(),
        201,
        "opted in again; the replayed STOP was a duplicate"
    );
}

#[tokio::test]
async fn vonage_inbound_stop_is_verified_and_applied() {
    let (app, _twilio, _vonage) = app_with_twilio_and_vonage().await;
    let number = fresh_number();
    let now = app.clock_now_unix();
    let digits = number.trim_start_matches('+').to_string();
    let inbound = vonage_signed(
        &[("msisdn", &digits), ("to", "4915000000000"), ("messageId", "0A00000001"), ("text", "Stop"), ("type", "text")],
        now,
    );
    let mut unsigned = inbound.clone();
    unsigned.remove("sig");
    let r = app.client.post(app.url("/webhooks/vonage/sms")).form(&unsigned).send().await.unwrap();
    expect_error(r, 403, "invalid_signature").await;
    assert_eq!(app.post("/api/verifications", json!({ "to": number })).await.status(), 201);
    let r = app.client.post(app.url("/webhooks/vonage/sms")).json(&inbound).send().await.unwrap();
    assert_eq!(r.status(), 200);
    expect_error(app.post("/api/verifications", json!({ "to": number })).await, 403, "recipient_opted_out").await;
}

/// Without `public_url` the signed URL would have to come from the request's Host header, which
/// the caller controls: Twilio webhooks are refused instead.
#[tokio::test]
async fn twilio_webhooks_need_the_public_url() {
    let app = TestApp::spawn_with(|c| {
        c.providers.insert("tw".into(), providers::twilio("http://127.0.0.1:9", 1000));
    })
    .await;
    let path = "/webhooks/twilio/sms";
    let stop = params(&[("AccountSid", "AC0123"), ("MessageSid", "SMh1"), ("From", "+4915123456789"), ("Body", "STOP")]);
    let host = app.base.trim_start_matches("http://").to_string();
    let signed_for_host = twilio_signature("twilio-token", &format!("http://{host}{path}"), &stop);
    expect_error(twilio_post(&app, path, &stop, Some(signed_for_host)).await, 403, "invalid_signature").await;
    assert_eq!(
        app.post("/api/verifications", json!({ "to": "+4915123456789" })).await.status(),
        502,
        "not opted out (the provider is unreachable)"
    );
}

/// Twilio may call the status callback before its API answer reaches us: the receipt is held
/// and applied once the send's result names the message.
#[tokio::test]
async fn a_receipt_that_overtakes_the_send_result_is_applied_afterwards() {
    let (app, _twilio, _vonage) = app_with_twilio_and_vonage().await;
    let path = "/webhooks/twilio/status";
    let delivered = params(&[("AccountSid", "AC0123"), ("MessageSid", "SMtw1"), ("MessageStatus", "delivered")]);
    assert_eq!(twilio_post(&app, path, &delivered, Some(twilio_sig(path, &delivered))).await.status(), 204);
    let v = app.start(&fresh_number()).await;
    let id = v["id"].as_str().unwrap().to_string();
    // Wait for the send itself to finish (it normally has when start answers), then look.
    let m = crate::helpers::eventually(|| async {
        let m = message(&app, &id).await;
        (m["status"].is_string() && m["status"] != "sending").then_some(m)
    })
    .await;
    assert_eq!((m["status"].as_str(), m["provider_message_id"].as_str()), (Some("delivered"), Some("SMtw1")), "{m}");
}
