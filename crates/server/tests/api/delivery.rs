//! Sending through real HTTP providers (local mocks): failover, rejection, all-fail, bounded
//! waits, restart-resume and no double sends.
use crate::helpers::{TestApp, eventually, expect_error, fresh_number, providers};
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn mock(status: u16, body: Value, delay_ms: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body).set_delay(Duration::from_millis(delay_ms)))
        .mount(&server)
        .await;
    server
}

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap()
}

async fn detail(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap()
}

#[tokio::test]
async fn a_timed_out_provider_fails_over_to_the_next() {
    let slow = mock(201, json!({ "sid": "SMslow" }), 3000).await;
    let vonage = mock(200, json!({ "message-count": "1", "messages": [{ "status": "0", "message-id": "vg-1" }] }), 0).await;
    let app = TestApp::spawn_with(|c| {
        c.providers.insert("twilio".into(), providers::twilio(&slow.uri(), 200));
        c.providers.insert("vonage".into(), providers::vonage(&vonage.uri()));
        c.routing.default.providers = vec!["twilio".into(), "vonage".into()];
    })
    .await;
    let to = fresh_number();
    let v = app.start(&to).await;
    let d = detail(&app, v["id"].as_str().unwrap()).await;
    assert_eq!(d["status"], "pending");
    assert_eq!(d["messages"][0]["status"], "sent");
    assert_eq!(d["messages"][0]["provider"], "vonage");
    assert_eq!(d["messages"][0]["provider_message_id"], "vg-1");
    assert_eq!(requests(&slow).await.len(), 1, "the slow provider was tried once, not retried");
    let sent = &requests(&vonage).await[0];
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&sent.body).unwrap();
    assert!(form.contains(&("to".into(), to.trim_start_matches('+').into())));
    let text = &form.iter().find(|(k, _)| k == "text").unwrap().1;
    assert!(text.starts_with("Ihr phonegate Bestätigungscode lautet: "), "{text}");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("phonegate_sms_attempts_total{provider=\"twilio\",result=\"unavailable\"} 1"), "{metrics}");
    assert!(metrics.contains("phonegate_sms_attempts_total{provider=\"vonage\",result=\"ok\"} 1"), "{metrics}");
}

#[tokio::test]
async fn when_every_provider_fails_the_verification_fails_with_the_reason() {
    let down = mock(503, json!({}), 0).await;
    let broken = mock(401, json!({ "code": 20003, "message": "Authenticate" }), 0).await;
    let app = TestApp::spawn_with(|c| {
        c.providers.insert("gw".into(), providers::http(&down.uri(), 30_000));
        c.providers.insert("twilio".into(), providers::twilio(&broken.uri(), 30_000));
        c.routing.default.providers = vec!["gw".into(), "twilio".into()];
    })
    .await;
    let err = expect_error(app.post("/api/verifications", json!({ "to": fresh_number() })).await, 502, "delivery_failed").await;
    let d = detail(&app, err["verification_id"].as_str().unwrap()).await;
    assert_eq!(d["status"], "failed");
    let reason = d["failure_reason"].as_str().unwrap();
    assert!(reason.contains("gw: HTTP 503") && reason.contains("20003"), "{reason}");
    assert!(!reason.contains("twilio-token"));
    assert_eq!(d["messages"][0]["status"], "failed");
}

#[tokio::test]
async fn a_rejected_number_is_not_tried_elsewhere() {
    let rejecting = mock(400, json!({ "code": 21614, "message": "'To' number is not a valid mobile number" }), 0).await;
    let other = mock(200, json!({}), 0).await;
    let app = TestApp::spawn_with(|c| {
        c.providers.insert("twilio".into(), providers::twilio(&rejecting.uri(), 30_000));
        c.providers.insert("gw".into(), providers::http(&other.uri(), 30_000));
        c.routing.default.providers = vec!["twilio".into(), "gw".into()];
    })
    .await;
    let err = expect_error(app.post("/api/verifications", json!({ "to": fresh_number() })).await, 502, "delivery_failed").await;
    assert!(err["message"].as_str().unwrap().contains("21614"));
    assert!(requests(&other).await.is_empty());
}

#[tokio::test]
async fn a_slow_provider_does_not_hold_the_request_past_the_send_wait() {
    // The provider answers after 5 s, a hundred times what a start takes even on a busy machine.
    let slow = mock(200, json!({ "id": "gw-slow" }), 5000).await;
    let app = TestApp::spawn_with(|c| {
        c.providers.insert("gw".into(), providers::http(&slow.uri(), 60_000));
        c.delivery.send_wait = Duration::from_millis(50);
    })
    .await;
    let started = std::time::Instant::now();
    let v = app.start(&fresh_number()).await;
    assert!(started.elapsed() < Duration::from_millis(5000), "answered before the provider did");
    let id = v["id"].as_str().unwrap().to_string();
    let message = eventually(|| async {
        let d = detail(&app, &id).await;
        (d["messages"][0]["status"] == "sent").then(|| d["messages"][0].clone())
    })
    .await;
    assert_eq!(message["provider_message_id"], "gw-slow");
    assert_eq!(requests(&slow).await.len(), 1);
}

/// Two instances on one database, both sending: every message reaches the provider once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_senders_never_send_a_message_twice() {
    let gateway = mock(200, json!({}), 150).await;
    let a = TestApp::spawn_with(|c| {
        c.providers.insert("gw".into(), providers::http(&gateway.uri(), 5000));
        c.delivery.send_wait = Duration::ZERO;
        c.delivery.dispatch_interval = Duration::from_millis(10);
    })
    .await;
    let url = a.database_url.clone();
    let b = TestApp::spawn_with(|c| {
        c.database_url = url;
        c.providers.insert("gw".into(), providers::http(&gateway.uri(), 5000));
        c.delivery.dispatch_interval = Duration::from_millis(10);
    })
    .await;
    let numbers: Vec<String> = (0..10).map(|_| fresh_number()).collect();
    let mut ids = Vec::new();
    for n in &numbers {
        ids.push(a.start(n).await["id"].as_str().unwrap().to_string());
    }
    // Every send has finished, and no message was ever claimed a second time (each is written
    // claimed by its start request): nothing else can reach the provider.
    for id in &ids {
        eventually(|| async { (detail(&a, id).await["messages"][0]["status"] == "sent").then_some(()) }).await;
    }
    assert_eq!(a.query_i64("SELECT CAST(SUM(claims) AS BIGINT) FROM messages").await, 10, "one claim per message");
    let keys: Vec<String> = requests(&gateway).await.iter().map(|r| r.headers["idempotency-key"].to_str().unwrap().to_string()).collect();
    let unique: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!((keys.len(), unique.len()), (10, 10), "{keys:?}");
    drop(b);
}

/// A message claimed by an instance that dies mid-send is sent by the next instance once the
/// lease ends, exactly once, with the same code.
#[test]
fn a_message_left_by_a_crashed_instance_is_sent_once_after_restart() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (hanging, working) = rt.block_on(async { (mock(200, json!({}), 30_000).await, mock(200, json!({ "id": "gw-2" }), 0).await) });
    let dir = tempfile::tempdir().unwrap();
    let db = rt.block_on(phonegate_store::testing::fresh_database_url(dir.path())).unwrap();
    let to = fresh_number();

    // Instance 1 runs in its own runtime, starts a verification whose send hangs, and is killed.
    let crashed = tokio::runtime::Runtime::new().unwrap();
    let (key_secret, verification_id) = crashed.block_on(async {
        let app = TestApp::spawn_with(|c| {
            c.database_url = db.clone();
            c.providers.insert("gw".into(), providers::http(&hanging.uri(), 60_000));
            c.delivery.send_wait = Duration::from_millis(100);
        })
        .await;
        let v = app.start(&to).await;
        eventually(|| async { (!hanging.received_requests().await.unwrap().is_empty()).then_some(()) }).await;
        (app.secret.clone(), v["id"].as_str().unwrap().to_string())
    });
    crashed.shutdown_background();

    rt.block_on(async {
        let app = TestApp::spawn_with(|c| {
            c.database_url = db.clone();
            c.providers.insert("gw".into(), providers::http(&working.uri(), 5000));
            c.delivery.dispatch_interval = Duration::from_millis(20);
        })
        .await;
        // Still leased by the dead instance: a whole pass of the queue worker sends nothing.
        assert_eq!(app.state.core.delivery.dispatch_due(50).await.unwrap(), 0);
        assert!(working.received_requests().await.unwrap().is_empty());
        app.advance(chrono::Duration::seconds(61));
        let status_of = |id: String| {
            let (client, url, secret) = (app.client.clone(), app.url(&format!("/api/verifications/{id}")), key_secret.clone());
            async move {
                let d: Value = client.get(url).bearer_auth(secret).send().await.unwrap().json().await.unwrap();
                d["messages"][0].clone()
            }
        };
        // Sent by the takeover, and nothing is left to send (a second claim would show in claims).
        eventually(|| async { (status_of(verification_id.clone()).await["status"] == "sent").then_some(()) }).await;
        assert_eq!(app.state.core.delivery.dispatch_due(50).await.unwrap(), 0);
        assert_eq!(app.query_i64("SELECT CAST(SUM(claims) AS BIGINT) FROM messages").await, 2, "claimed by the dead instance, then once");
        let sent = working.received_requests().await.unwrap();
        assert_eq!(sent.len(), 1, "sent exactly once after the restart");
        let first: Value = serde_json::from_slice(&hanging.received_requests().await.unwrap()[0].body).unwrap();
        let resumed: Value = serde_json::from_slice(&sent[0].body).unwrap();
        assert_eq!(first["body"], resumed["body"], "the same code");
        assert_eq!(first["message_id"], resumed["message_id"]);
        let m = status_of(verification_id.clone()).await;
        assert_eq!((m["status"].as_str(), m["provider_message_id"].as_str()), (Some("sent"), Some("gw-2")), "{m}");
    });
}

#[tokio::test]
async fn the_sms_send_command_uses_a_named_provider() {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "cli-1" })))
        .mount(&gateway)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(&config, format!("[providers.gw]\nkind = \"http\"\nurl = \"{}/sms\"\nsecret = \"s\"\n", gateway.uri())).unwrap();
    let database = format!("sqlite://{}", dir.path().join("c.db").display());
    let run = move |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_phonegate"))
            .args(["--config", config.to_str().unwrap(), "--database", &database])
            .args(args)
            .output()
            .unwrap()
    };
    let out = tokio::task::spawn_blocking(move || {
        let ok = run(&["sms", "send", "--to", "+4915123456789", "--body", "hello", "--provider", "gw"]);
        let unknown = run(&["sms", "send", "--to", "+4915123456789", "--body", "hello", "--provider", "nope"]);
        (ok, unknown)
    })
    .await
    .unwrap();
    assert!(out.0.status.success(), "{}", String::from_utf8_lossy(&out.0.stderr));
    assert!(String::from_utf8_lossy(&out.0.stdout).contains("sent via gw (provider message id: cli-1)"));
    assert!(!out.1.status.success());
    assert!(String::from_utf8_lossy(&out.1.stderr).contains("no provider named `nope`"));
    let body: Value = serde_json::from_slice(&requests(&gateway).await[0].body).unwrap();
    assert_eq!((body["to"].as_str(), body["body"].as_str()), (Some("+4915123456789"), Some("hello")));
}

/// The first message fails only after the user already asked for (and got) a resend: the
/// verification stays usable instead of turning `failed` under them.
#[tokio::test]
async fn a_late_failure_of_the_first_message_does_not_fail_a_resent_verification() {
    let gateway = MockServer::start().await;
    // The first send fails 5 s after it starts: long after the resend, even on a busy machine.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_millis(5000)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&gateway)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_body_json(json!({}))).with_priority(2).mount(&gateway).await;
    let app = TestApp::spawn_with(|c| {
        c.providers.insert("gw".into(), providers::http(&gateway.uri(), 5000));
        c.delivery.send_wait = Duration::from_millis(50);
    })
    .await;
    let to = fresh_number();
    let first = app.start(&to).await;
    let again = app.start(&to).await;
    assert_eq!((again["id"].as_str(), again["resent"].as_bool()), (first["id"].as_str(), Some(true)));
    let id = first["id"].as_str().unwrap().to_string();
    let messages = eventually(|| async {
        let d = detail(&app, &id).await;
        let m = d["messages"].as_array().unwrap().clone();
        (m.len() == 2 && m.iter().all(|m| m["status"] != "sending")).then_some((d["status"].clone(), m))
    })
    .await;
    let mut statuses: Vec<&str> = messages.1.iter().map(|m| m["status"].as_str().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, ["failed", "sent"]);
    assert_eq!(messages.0, "pending", "the resent code is still good");
    let sent = requests(&gateway).await;
    let body: Value = serde_json::from_slice(&sent.last().unwrap().body).unwrap();
    let code = body["body"].as_str().unwrap().rsplit(' ').next().unwrap();
    assert_eq!(app.check(&id, code).await.json::<Value>().await.unwrap()["valid"], true);
}
