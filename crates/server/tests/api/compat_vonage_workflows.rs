//! Vonage Verify v1 workflows over raw HTTP: `workflow_id` 1–7 with Vonage's order and waits
//! (by the manual clock), `next_event_wait`, `trigger_next_event` (status 19 only after the last
//! event), a landline given workflow 1 called at once, `pin_expiry` as Vonage states it with one
//! code for every event, and the search naming each event's channel.
use crate::compat_vonage::{assert_status, post};
use crate::helpers::{TestApp, eventually, fresh_number};
use chrono::Duration;
use serde_json::{Value, json};

/// The outbox's messages to `to`, oldest first, once there are `n`.
async fn messages(app: &TestApp, to: &str, n: usize) -> Vec<Value> {
    eventually(|| async {
        let mut m = app.outbox(to).await;
        m.reverse();
        (m.len() >= n).then_some(m)
    })
    .await
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

async fn start(app: &TestApp, number: &str, extra: &[(&str, &str)]) -> String {
    let mut params = vec![("number", number), ("brand", "Acme"), ("lg", "en-gb")];
    params.extend_from_slice(extra);
    let started = post(app, "/verify/json", &params).await;
    assert_status(&started, "0");
    started["request_id"].as_str().unwrap().to_string()
}

async fn native(app: &TestApp, rid: &str) -> Value {
    app.get(&format!("/api/verifications/VE{rid}")).await.json().await.unwrap()
}

async fn event_types(app: &TestApp, rid: &str) -> Vec<String> {
    let search = post(app, "/verify/search/json", &[("request_id", rid)]).await;
    search["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn workflow_1_by_default_texts_then_calls_twice_by_vonages_times_with_one_code() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let rid = start(&app, to.trim_start_matches('+'), &[]).await;
    let sms = messages(&app, &to, 1).await;
    assert_eq!(sms[0]["channel"], "sms");
    let code = app.code_for(&to).await;
    assert_eq!(
        native(&app, &rid).await["workflow"],
        json!([
            { "channel": "sms", "timeout_secs": 125 }, { "channel": "voice", "timeout_secs": 180 }, { "channel": "voice", "timeout_secs": 300 }
        ])
    );

    app.advance(Duration::seconds(124));
    assert_eq!(event_types(&app, &rid).await, ["sms"], "nothing before the wait is over");
    app.advance(Duration::seconds(2));
    let two = messages(&app, &to, 2).await;
    assert_eq!(two[1]["channel"], "voice");
    let spoken = digits(two[1]["body"].as_str().unwrap());
    assert_eq!(spoken, format!("{code}{code}"), "the same code, said twice");
    app.advance(Duration::seconds(180));
    let three = messages(&app, &to, 3).await;
    assert_eq!(three[2]["channel"], "voice");
    assert_eq!(event_types(&app, &rid).await, ["sms", "tts", "tts"]);

    // 306 s in: past the default pin_expiry (300 s), where Vonage would have made a new PIN for
    // the last call. phonegate's one code stays valid until the request ends.
    let ok = post(&app, "/verify/check/json", &[("request_id", &rid), ("code", &code)]).await;
    assert_status(&ok, "0");
    assert_eq!(post(&app, "/verify/search/json", &[("request_id", &rid)]).await["status"], "SUCCESS");
}

#[tokio::test]
async fn trigger_next_event_starts_the_next_event_and_19_comes_after_the_last() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let rid = start(&app, to.trim_start_matches('+'), &[("workflow_id", "2"), ("next_event_wait", "60")]).await;
    assert_eq!(
        native(&app, &rid).await["workflow"],
        json!([
            { "channel": "sms", "timeout_secs": 60 }, { "channel": "sms", "timeout_secs": 60 }, { "channel": "voice", "timeout_secs": 60 }
        ])
    );
    let params = [("request_id", rid.as_str()), ("cmd", "trigger_next_event")];
    let trigger = || post(&app, "/verify/control/json", &params);
    // A second apart each, so the events have an order.
    app.advance(Duration::seconds(1));
    assert_eq!(trigger().await, json!({ "status": "0", "command": "trigger_next_event" }));
    assert_eq!(messages(&app, &to, 2).await[1]["channel"], "sms");
    // Past 30 s, but a second event went out: Vonage no longer cancels.
    app.advance(Duration::seconds(30));
    let cancel = post(&app, "/verify/control/json", &[("request_id", &rid), ("cmd", "cancel")]).await;
    assert_status(&cancel, "19");
    assert!(cancel["error_text"].as_str().unwrap().contains("Too many attempts"), "{cancel}");
    app.advance(Duration::seconds(1));
    assert_eq!(trigger().await, json!({ "status": "0", "command": "trigger_next_event" }));
    assert_eq!(messages(&app, &to, 3).await[2]["channel"], "voice");
    let last = trigger().await;
    assert_status(&last, "19");
    assert_eq!(last["error_text"], "No more events are left to execute for the request");
    assert_eq!(event_types(&app, &rid).await, ["sms", "sms", "tts"]);
    assert_eq!(app.queued(&to).await, 3);
    // A finished request has no events to trigger: Vonage's "not found".
    let code = digits(messages(&app, &to, 3).await[0]["body"].as_str().unwrap());
    assert_status(&post(&app, "/verify/check/json", &[("request_id", &rid), ("code", &code)]).await, "0");
    assert_status(&trigger().await, "6");
}

#[tokio::test]
async fn every_workflow_starts_with_its_first_event() {
    let app = TestApp::spawn().await;
    for (id, first, events) in [("3", "voice", 2), ("4", "sms", 2), ("5", "sms", 2), ("6", "sms", 1), ("7", "voice", 1)] {
        let to = fresh_number();
        let rid = start(&app, to.trim_start_matches('+'), &[("workflow_id", id)]).await;
        assert_eq!(messages(&app, &to, 1).await[0]["channel"], first, "workflow {id}");
        assert_eq!(native(&app, &rid).await["workflow"].as_array().unwrap().len(), events, "workflow {id}");
    }
}

#[tokio::test]
async fn a_landline_given_workflow_1_is_called_at_once_and_an_sms_only_workflow_refused() {
    let app = TestApp::spawn().await;
    // A Berlin landline.
    let rid = start(&app, "493012345678", &[]).await;
    let call = messages(&app, "+493012345678", 1).await;
    assert_eq!(call[0]["channel"], "voice");
    assert_eq!(
        native(&app, &rid).await["workflow"],
        json!([
            { "channel": "voice", "timeout_secs": 180 }, { "channel": "voice", "timeout_secs": 300 }
        ])
    );
    assert_eq!(event_types(&app, &rid).await, ["tts"]);
    let refused = post(&app, "/verify/json", &[("number", "493012345679"), ("brand", "Acme"), ("workflow_id", "6")]).await;
    assert_status(&refused, "3");
    assert!(refused["error_text"].as_str().unwrap().contains("number"), "{refused}");
    assert_eq!(app.queued("+493012345679").await, 0);
}

#[tokio::test]
async fn pin_expiry_as_vonage_states_it_with_one_code() {
    let app = TestApp::spawn().await;
    // Longer than the workflow: the request stays open that long.
    let to = fresh_number();
    let rid = start(&app, to.trim_start_matches('+'), &[("workflow_id", "6"), ("pin_expiry", "3600")]).await;
    let code = app.code_for(&to).await;
    app.advance(Duration::seconds(3000));
    assert_status(&post(&app, "/verify/check/json", &[("request_id", &rid), ("code", &code)]).await, "0");

    // Shorter than the workflow: the code lives until the last event's wait is over (300 s
    // for workflow 7), not a second longer.
    let to = fresh_number();
    let rid = start(&app, to.trim_start_matches('+'), &[("workflow_id", "7"), ("pin_expiry", "60")]).await;
    let created = chrono::DateTime::parse_from_rfc3339(native(&app, &rid).await["created_at"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(native(&app, &rid).await["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_seconds(), 300);

    // Not a multiple of next_event_wait: Vonage takes next_event_wait (120 s), and the code then
    // lives as long as the workflow (3 × 120 s).
    let to = fresh_number();
    let rid = start(&app, to.trim_start_matches('+'), &[("pin_expiry", "200"), ("next_event_wait", "120")]).await;
    let v = native(&app, &rid).await;
    let created = chrono::DateTime::parse_from_rfc3339(v["created_at"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(v["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_seconds(), 360);
    let to = fresh_number();
    let rid = start(&app, to.trim_start_matches('+'), &[("workflow_id", "6"), ("pin_expiry", "600"), ("next_event_wait", "120")]).await;
    let v = native(&app, &rid).await;
    let created = chrono::DateTime::parse_from_rfc3339(v["created_at"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(v["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_seconds(), 600, "a multiple: kept");
}
