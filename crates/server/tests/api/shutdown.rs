//! SIGTERM while requests are being served: the server stops accepting, lets every request it
//! took finish (each start is answered and stored, each send completed), and exits 0.
use crate::helpers::{Server, cli_key, fresh_number};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_requests_in_flight_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let url = match phonegate_store::testing::postgres_url() {
        Some(admin) => phonegate_store::testing::fresh_postgres_schema(&admin, "term").await.unwrap(),
        None => format!("sqlite://{}", dir.path().join("t.db").display()),
    };
    // A gateway that takes a second and a half to accept each message.
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "gw-1" })).set_delay(Duration::from_millis(1500)))
        .mount(&gateway)
        .await;
    let config = dir.path().join("p.toml");
    let toml =
        format!("[delivery]\nsend_wait = \"20s\"\n[providers.gw]\nkind = \"http\"\nurl = \"{}/sms\"\nsecret = \"s\"\n", gateway.uri());
    std::fs::write(&config, toml).unwrap();
    let key = tokio::task::spawn_blocking({
        let url = url.clone();
        move || cli_key(&url, "term")
    })
    .await
    .unwrap();
    let server = tokio::task::spawn_blocking({
        let (url, config) = (url.clone(), config.clone());
        move || Server::spawn(&url, &[("PHONEGATE_CONFIG", config.to_str().unwrap())])
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let numbers: Vec<String> = (0..4).map(|_| fresh_number()).collect();
    let requests: Vec<_> = numbers
        .iter()
        .map(|to| {
            let (client, base, key, to) = (client.clone(), server.base.clone(), key.clone(), to.clone());
            tokio::spawn(async move {
                client.post(format!("{base}/api/verifications")).bearer_auth(&key).json(&json!({ "to": to })).send().await
            })
        })
        .collect();
    // Every request is inside the server, waiting for the gateway: now the signal.
    crate::helpers::eventually(|| async { (gateway.received_requests().await.unwrap_or_default().len() == 4).then_some(()) }).await;
    let mut server = server;
    let stopping = tokio::task::spawn_blocking(move || server.stop());
    for r in requests {
        let r = r.await.unwrap().expect("an in-flight request is answered, not cut off");
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], "pending");
    }
    let (clean, logs) = stopping.await.unwrap();
    assert!(clean, "exit status 0 after SIGTERM: {logs}");
    assert!(logs.contains("shutting down") && logs.contains("stopped"), "{logs}");
    // All four are stored, and their messages were handed to the gateway and recorded sent.
    let sent = phonegate_store::testing::count(&url, "SELECT COUNT(*) FROM messages WHERE status = 'sent'").await.unwrap();
    assert_eq!(sent, 4);
}
