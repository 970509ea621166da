//! API keys: Bearer secret or Basic id:secret; anything else is 401.
use crate::helpers::{TestApp, expect_error, fresh_number};
use serde_json::json;

#[tokio::test]
async fn requests_without_a_valid_key_are_refused() {
    let app = TestApp::spawn().await;
    let body = json!({ "to": fresh_number() });
    let url = app.url("/api/verifications");
    let r = app.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"phonegate\", charset=\"UTF-8\"");
    expect_error(r, 401, "unauthorized").await;
    for header in ["Bearer wrong", "Bearer", "Token abc", "Basic !!!", &format!("Bearer {}x", app.secret)] {
        let r = app.client.post(&url).header("authorization", header).json(&body).send().await.unwrap();
        expect_error(r, 401, "unauthorized").await;
    }
    let r = app.client.post(&url).basic_auth(&app.key_id, Some("wrong")).json(&body).send().await.unwrap();
    expect_error(r, 401, "unauthorized").await;
    let r = app.client.post(&url).basic_auth("SKnope", Some(&app.secret)).json(&body).send().await.unwrap();
    expect_error(r, 401, "unauthorized").await;
    assert!(app.outbox(body["to"].as_str().unwrap()).await.is_empty(), "nothing was sent");
}

#[tokio::test]
async fn basic_auth_with_id_and_secret_works_and_revocation_takes_effect() {
    let app = TestApp::spawn().await;
    let url = app.url("/api/verifications");
    let r = app.client.post(&url).basic_auth(&app.key_id, Some(&app.secret)).json(&json!({ "to": fresh_number() })).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert!(app.state.core.api_keys.revoke(&phonegate_core::Caller::system("tests"), &app.key_id).await.unwrap());
    // Every instance refuses a revoked key once its short key cache (2 s) has moved on.
    app.advance(chrono::Duration::seconds(2));
    let r = app.client.post(&url).bearer_auth(&app.secret).json(&json!({ "to": fresh_number() })).send().await.unwrap();
    expect_error(r, 401, "unauthorized").await;
}
