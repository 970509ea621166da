//! Channels and workflows through the native API: one code across an SMS, a call and WhatsApp;
//! the next step by time (the manual clock), on request and when a step cannot be delivered; a
//! landline in `auto`; an address by e-mail; and each channel's own send budgets.
use crate::helpers::{TestApp, eventually, expect_error, fresh_number};
use phonegate_providers::{ProviderKind, ProviderSettings};
use serde_json::{Value, json};
use std::time::Duration;

/// A Berlin landline: reachable by a call, never by SMS or WhatsApp.
const LANDLINE: &str = "+493012345678";

async fn detail(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap()
}

/// The outbox's messages to `to`, oldest first, once there are `n`.
async fn messages(app: &TestApp, to: &str, n: usize) -> Vec<Value> {
    eventually(|| async {
        let mut m = app.outbox(to).await;
        m.reverse();
        (m.len() >= n).then_some(m)
    })
    .await
}

fn code_in(body: &str) -> String {
    body.chars().filter(char::is_ascii_digit).take(6).collect()
}

#[tokio::test]
async fn the_next_step_starts_when_the_time_passes_and_one_code_serves_every_step() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let workflow = json!([{ "channel": "sms", "timeout_secs": 30 }, { "channel": "voice", "timeout_secs": 60 }, { "channel": "whatsapp" }]);
    let r = app.post("/api/verifications", json!({ "to": to, "workflow": workflow, "locale": "de" })).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let id = v["id"].as_str().unwrap();
    assert_eq!((v["channel"].as_str(), v["step"].as_u64()), (Some("sms"), Some(0)));
    assert_eq!(
        v["workflow"],
        json!([{ "channel": "sms", "timeout_secs": 30 }, { "channel": "voice", "timeout_secs": 60 }, { "channel": "whatsapp", "timeout_secs": 120 }])
    );
    let sms = messages(&app, &to, 1).await;
    let code = code_in(sms[0]["body"].as_str().unwrap());
    assert_eq!(sms[0]["channel"], "sms");

    // Before its time nothing moves; the steps show the SMS sent and the rest waiting.
    let d = detail(&app, id).await;
    assert_eq!(d["steps"][0]["status"], "sent", "{d}");
    assert_eq!((d["steps"][1]["status"].as_str(), d["steps"][2]["status"].as_str()), (Some("waiting"), Some("waiting")));
    assert!(d["steps"][1]["started_at"].is_null());

    app.advance(chrono::Duration::seconds(31));
    let both = messages(&app, &to, 2).await;
    assert_eq!(both[1]["channel"], "voice");
    let spoken = both[1]["body"].as_str().unwrap();
    // German, digit by digit, said twice.
    let digits: Vec<String> = code.chars().map(String::from).collect();
    assert_eq!(spoken.matches(&digits.join(", ")).count(), 2, "{spoken}");
    assert!(spoken.starts_with("Ihr Bestätigungscode"), "{spoken}");
    let d = detail(&app, id).await;
    assert_eq!((d["step"].as_u64(), d["steps"][1]["status"].as_str()), (Some(1), Some("sent")), "{d}");

    // The SMS's code still checks after the call.
    let r = app.check(id, &code).await;
    assert_eq!(r.status(), 200);
    let d = detail(&app, id).await;
    assert_eq!((d["status"].as_str(), d["approved_channel"].as_str()), (Some("approved"), Some("voice")));
    // Approved: no later step starts however long one waits.
    app.advance(chrono::Duration::seconds(600));
    let after = app.post(&format!("/api/verifications/{id}/next"), json!({})).await;
    expect_error(after, 409, "verification_approved").await;
    assert_eq!(app.queued(&to).await, 2);
}

#[tokio::test]
async fn next_starts_a_step_at_once_and_refuses_after_the_last() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let workflow = json!([{ "channel": "whatsapp", "timeout_secs": 900 }, { "channel": "sms" }]);
    let v: Value = app.post("/api/verifications", json!({ "to": to, "workflow": workflow })).await.json().await.unwrap();
    let id = v["id"].as_str().unwrap();
    let first = messages(&app, &to, 1).await;
    assert_eq!(first[0]["channel"], "whatsapp");
    let r = app.post(&format!("/api/verifications/{id}/next"), json!({})).await;
    assert_eq!(r.status(), 200);
    let moved: Value = r.json().await.unwrap();
    assert_eq!((moved["step"].as_u64(), moved["next_step_at"].is_null()), (Some(1), true));
    let both = messages(&app, &to, 2).await;
    let by = |channel: &str| both.iter().find(|m| m["channel"] == channel).map(|m| code_in(m["body"].as_str().unwrap()));
    assert_eq!(by("sms").unwrap(), by("whatsapp").unwrap(), "one code for all steps");
    expect_error(app.post(&format!("/api/verifications/{id}/next"), json!({})).await, 409, "no_next_step").await;
}

#[tokio::test]
async fn a_step_no_provider_can_deliver_hands_over_at_once() {
    // The outbox here serves SMS and calls only: the WhatsApp step fails when it is sent.
    let app = TestApp::spawn_with(|c| {
        let outbox = ProviderSettings {
            kind: ProviderKind::Outbox,
            timeout: Duration::from_secs(5),
            retries: 0,
            channels: Some(vec!["sms".into(), "voice".into()]),
        };
        c.providers.insert("outbox".into(), outbox);
    })
    .await;
    let to = fresh_number();
    let workflow = json!([{ "channel": "whatsapp", "timeout_secs": 900 }, { "channel": "sms" }]);
    let r = app.post("/api/verifications", json!({ "to": to, "workflow": workflow })).await;
    assert_eq!(r.status(), 201, "a failed first step is not a failed verification while a step follows");
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    // No clock moves: the failure alone starts the SMS.
    let sms = messages(&app, &to, 1).await;
    assert_eq!(sms[0]["channel"], "sms");
    let d = detail(&app, &id).await;
    assert_eq!(d["steps"][0]["status"], "failed", "{d}");
    assert_eq!((d["status"].as_str(), d["step"].as_u64()), (Some("pending"), Some(1)));
    let r = app.check(&id, &code_in(sms[0]["body"].as_str().unwrap())).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_landline_gets_a_call_in_auto_and_is_refused_for_texts() {
    let app = TestApp::spawn_with(|c| {
        c.budgets.starts_per_ip = vec![];
    })
    .await;
    for channel in ["sms", "whatsapp"] {
        let r = app.post("/api/verifications", json!({ "to": LANDLINE, "channel": channel })).await;
        expect_error(r, 400, "phone_number_type_not_allowed").await;
    }
    // The default service's workflow is one SMS: nothing fits a landline.
    expect_error(app.post("/api/verifications", json!({ "to": LANDLINE })).await, 400, "phone_number_type_not_allowed").await;
    let r = app.post("/api/verifications", json!({ "to": LANDLINE, "channel": "auto" })).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["workflow"], json!([{ "channel": "voice", "timeout_secs": 120 }]), "{v}");
    let call = messages(&app, LANDLINE, 1).await;
    assert_eq!(call[0]["channel"], "voice");
    assert_eq!(app.query_i64(&format!("SELECT COUNT(*) FROM messages WHERE to_number = '{LANDLINE}' AND channel <> 'voice'")).await, 0);
}

#[tokio::test]
async fn an_address_is_verified_by_email_and_shown_rendered_in_the_outbox() {
    let app = TestApp::spawn().await;
    let to = format!("Ann.{}@Bücher.example", std::process::id());
    for bad in ["not-an-address", "a@b", "two@@example.com"] {
        let r = app.post("/api/verifications", json!({ "to": bad, "channel": "email" })).await;
        expect_error(r, 400, "invalid_parameter").await;
    }
    expect_error(app.post("/api/verifications", json!({ "to": fresh_number(), "channel": "email" })).await, 400, "invalid_parameter").await;
    let r = app.post("/api/verifications", json!({ "to": to, "channel": "email", "locale": "de" })).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    // One canonical form: lower case, the domain in ASCII.
    let normalized = format!("ann.{}@xn--bcher-kva.example", std::process::id());
    assert_eq!((v["to"].as_str(), v["channel"].as_str()), (Some(normalized.as_str()), Some("email")));
    let mail = messages(&app, &normalized, 1).await;
    assert_eq!(mail[0]["channel"], "email");
    assert_eq!(mail[0]["subject"], "phonegate: Ihr Bestätigungscode");
    let code = code_in(mail[0]["body"].as_str().unwrap());
    let html = mail[0]["html"].as_str().unwrap();
    assert!(html.contains(&format!(">{code}</p>")) && html.contains("lang=\"de\"") && !html.contains("<img"), "{html}");
    let r = app.check(v["id"].as_str().unwrap(), &code).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn calls_have_their_own_lower_budget_and_a_pumped_number_still_gets_texts() {
    let app = TestApp::spawn_with(|c| c.budgets.starts_per_ip = vec![]).await;
    let to = fresh_number();
    // Three calls to one number in ten minutes (each a new verification), then refused.
    for _ in 0..3 {
        let r = app.post("/api/verifications", json!({ "to": to, "channel": "voice" })).await;
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        assert_eq!(app.post(&format!("/api/verifications/{id}/cancel"), json!({})).await.status(), 200);
    }
    let r = app.post("/api/verifications", json!({ "to": to, "channel": "voice" })).await;
    assert!(r.headers().get("retry-after").is_some());
    expect_error(r, 429, "send_budget_exceeded").await;
    assert_eq!(app.query_i64(&format!("SELECT COUNT(*) FROM messages WHERE to_number = '{to}' AND channel = 'voice'")).await, 3);
    // SMS counts apart.
    let r = app.post("/api/verifications", json!({ "to": to, "channel": "sms" })).await;
    assert_eq!(r.status(), 201);
    // The refusal was audited.
    let audit: Value = app.get("/api/audit?kind=budget_exceeded").await.json().await.unwrap();
    assert!(audit.to_string().contains("sends_per_number"), "{audit}");
}

#[tokio::test]
async fn services_carry_a_default_workflow() {
    let app = TestApp::spawn().await;
    let workflow = json!([{ "channel": "sms", "timeout_secs": 45 }, { "channel": "voice", "timeout_secs": 90 }]);
    let r = app.post("/api/services", json!({ "name": "wf-shop", "workflow": workflow, "email_from": "Shop <codes@shop.example>" })).await;
    assert_eq!(r.status(), 201);
    let s: Value = r.json().await.unwrap();
    assert_eq!((s["workflow"].clone(), s["email_from"].as_str()), (workflow.clone(), Some("Shop <codes@shop.example>")));
    let v: Value = app.post("/api/verifications", json!({ "to": fresh_number(), "service": "wf-shop" })).await.json().await.unwrap();
    assert_eq!(v["workflow"], workflow);
    // An explicit channel is one step; a landline in auto keeps only the call.
    let one: Value = app
        .post("/api/verifications", json!({ "to": fresh_number(), "service": "wf-shop", "channel": "voice" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["workflow"], json!([{ "channel": "voice", "timeout_secs": 120 }]));
    let auto: Value =
        app.post("/api/verifications", json!({ "to": LANDLINE, "service": "wf-shop", "channel": "auto" })).await.json().await.unwrap();
    assert_eq!(auto["workflow"], json!([{ "channel": "voice", "timeout_secs": 90 }]), "{auto}");
    for (bad, field) in [
        (json!([{ "channel": "sms", "timeout_secs": 10 }]), "timeout_secs"),
        (json!([{ "channel": "sms", "timeout_secs": 901 }]), "timeout_secs"),
        (json!([{ "channel": "silent" }]), "workflow"),
        (json!([]), "workflow"),
        (json!([{ "channel": "sms" }, { "channel": "email" }]), "workflow"),
    ] {
        let r = app.post("/api/services", json!({ "name": "wf-bad", "workflow": bad })).await;
        let e = expect_error(r, 400, "invalid_parameter").await;
        assert!(e["message"].as_str().is_some_and(|m| m.starts_with(field)), "{e}");
    }
}

#[tokio::test]
async fn of_two_nexts_at_once_on_the_second_last_step_one_moves_and_one_is_refused() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        let to = fresh_number();
        let workflow = json!([{ "channel": "sms", "timeout_secs": 900 }, { "channel": "voice" }]);
        let v: Value = app.post("/api/verifications", json!({ "to": to, "workflow": workflow })).await.json().await.unwrap();
        let next = format!("/api/verifications/{}/next", v["id"].as_str().unwrap());
        let (a, b) = tokio::join!(app.post(&next, json!({})), app.post(&next, json!({})));
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 409]);
        // One call, however the two requests interleaved.
        assert_eq!(app.query_i64(&format!("SELECT COUNT(*) FROM messages WHERE to_number = '{to}' AND channel = 'voice'")).await, 1);
    }
}

#[tokio::test]
async fn a_keys_limit_holds_whatever_the_channel_and_for_steps_the_worker_starts() {
    let app = TestApp::spawn_with(|c| {
        c.budgets.starts_per_ip = vec![];
        c.budgets.sends_per_key = vec!["3/1d".parse().unwrap()];
    })
    .await;
    // A workflow of three texts: its first send and the worker's two later steps are the key's.
    let to = fresh_number();
    let workflow = json!([{ "channel": "sms", "timeout_secs": 15 }, { "channel": "whatsapp", "timeout_secs": 15 }, { "channel": "voice" }]);
    let r = app.post("/api/verifications", json!({ "to": to, "workflow": workflow })).await;
    assert_eq!(r.status(), 201);
    for n in 2..=3 {
        app.advance(chrono::Duration::seconds(16));
        messages(&app, &to, n).await;
    }
    // The key's three sends are spent, by any channel.
    for channel in ["sms", "voice", "whatsapp"] {
        let r = app.post("/api/verifications", json!({ "to": fresh_number(), "channel": channel })).await;
        expect_error(r, 429, "send_budget_exceeded").await;
    }
}

#[tokio::test]
async fn a_channel_beside_a_workflow_must_be_one_of_its_steps_and_payment_codes_are_not_spoken() {
    let app = TestApp::spawn_with(|c| c.budgets.starts_per_ip = vec![]).await;
    let voice_only = json!([{ "channel": "voice" }]);
    let r = app.post("/api/verifications", json!({ "to": LANDLINE, "channel": "sms", "workflow": voice_only })).await;
    expect_error(r, 400, "invalid_parameter").await;
    let r =
        app.post("/api/verifications", json!({ "to": "ann@example.com", "channel": "voice", "workflow": [{ "channel": "email" }] })).await;
    expect_error(r, 400, "invalid_parameter").await;
    assert_eq!(app.query_i64(&format!("SELECT COUNT(*) FROM messages WHERE to_number IN ('{LANDLINE}', 'ann@example.com')")).await, 0);
    let svc = json!({ "name": "wf-bank", "psd2": true });
    assert_eq!(app.post("/api/services", svc).await.status(), 201);
    for channel in ["voice", "whatsapp"] {
        let body = json!({ "to": fresh_number(), "service": "wf-bank", "channel": channel, "amount": "€9.99", "payee": "Shop" });
        expect_error(app.post("/api/verifications", body).await, 400, "invalid_parameter").await;
    }
}

#[tokio::test]
async fn no_code_step_starts_while_a_silent_check_decides() {
    let app = TestApp::spawn_with(|c| c.silent.simulator = true).await;
    let to = fresh_number();
    let workflow = json!([{ "channel": "sms" }, { "channel": "voice" }]);
    let v: Value =
        app.post("/api/verifications", json!({ "to": to, "channel": "silent", "workflow": workflow })).await.json().await.unwrap();
    let r = app.post(&format!("/api/verifications/{}/next", v["id"].as_str().unwrap()), json!({})).await;
    expect_error(r, 400, "invalid_parameter").await;
    assert_eq!(app.queued(&to).await, 0);
}
