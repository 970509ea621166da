//! Services: their own code length, lifetime and templates.
use crate::helpers::{TestApp, expect_error, fresh_number};
use chrono::Duration;
use serde_json::{Value, json};

#[tokio::test]
async fn a_service_shapes_its_codes_messages_and_expiry() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/services",
            json!({ "name": "Acme", "code_length": 8, "code_ttl_secs": 120, "templates": { "de": "{service}: Ihr Code {code}" } }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let s: Value = r.json().await.unwrap();
    assert!(s["id"].as_str().unwrap().starts_with("VA"));
    assert_eq!((s["code_length"].as_u64(), s["code_ttl_secs"].as_u64()), (Some(8), Some(120)));

    let to = fresh_number();
    let r = app.post("/api/verifications", json!({ "to": to, "service": s["id"], "locale": "de" })).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["service_id"], s["id"]);
    let body = app.outbox(&to).await[0]["body"].as_str().unwrap().to_string();
    let code = app.code_for(&to).await;
    assert_eq!(body, format!("Acme: Ihr Code {code}"));
    assert_eq!(code.len(), 8);

    // The same number has an independent verification in the default service.
    let other = app.start(&to).await;
    assert_ne!(other["id"], v["id"]);

    app.advance(Duration::seconds(120));
    expect_error(app.check(v["id"].as_str().unwrap(), &code).await, 409, "verification_expired").await;

    let by_name: Value = app.get("/api/services/Acme").await.json().await.unwrap();
    assert_eq!(by_name["id"], s["id"]);
    let list: Value = app.get("/api/services").await.json().await.unwrap();
    let names: Vec<&str> = list["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Acme", "accounts", "phonegate"], "sorted by name (accounts carries the login codes)");
}

#[tokio::test]
async fn service_settings_are_validated() {
    let app = TestApp::spawn().await;
    assert_eq!(app.post("/api/services", json!({ "name": "x" })).await.status(), 201);
    expect_error(app.post("/api/services", json!({ "name": "x" })).await, 409, "service_name_taken").await;
    for bad in [
        json!({ "name": "a", "code_length": 3 }),
        json!({ "name": "b", "code_length": 11 }),
        json!({ "name": "c", "code_ttl_secs": 59 }),
        json!({ "name": "d", "code_ttl_secs": 86401 }),
        json!({ "name": "e", "templates": { "en": "no code here" } }),
        json!({ "name": "" }),
    ] {
        expect_error(app.post("/api/services", bad).await, 400, "invalid_parameter").await;
    }
    expect_error(app.post("/api/services", json!({ "name": "f", "code_length": "six" })).await, 422, "invalid_body").await;
    expect_error(app.get("/api/services/unknown").await, 404, "service_not_found").await;
}
