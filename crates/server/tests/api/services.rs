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

async fn patch(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client.patch(app.url(path)).bearer_auth(&app.secret).json(&body).send().await.unwrap()
}

async fn delete(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.delete(app.url(path)).bearer_auth(&app.secret).send().await.unwrap()
}

async fn audit_kinds(app: &TestApp) -> Vec<String> {
    let r: Value = app.get("/api/audit").await.json().await.unwrap();
    r["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_service_is_changed_then_deleted_with_its_pending_verifications() {
    let app = TestApp::spawn().await;
    let s: Value = app.post("/api/services", json!({ "name": "Acme" })).await.json().await.unwrap();
    let id = s["id"].as_str().unwrap().to_string();
    app.advance(Duration::seconds(5));

    // A partial change, by name: what the body leaves out stays.
    let r = patch(&app, "/api/services/Acme", json!({ "code_length": 8, "templates": { "en": "{service} code {code}" } })).await;
    assert_eq!(r.status(), 200);
    let changed: Value = r.json().await.unwrap();
    assert_eq!((changed["id"].as_str(), changed["name"].as_str(), changed["code_length"].as_u64()), (Some(&*id), Some("Acme"), Some(8)));
    assert_eq!((changed["code_ttl_secs"].as_u64(), changed["psd2"].as_bool()), (Some(600), Some(false)));
    assert_eq!(changed["created_at"], s["created_at"]);
    assert_ne!(changed["updated_at"], s["updated_at"]);
    assert_eq!(app.get(&format!("/api/services/{id}")).await.json::<Value>().await.unwrap(), changed);
    // The instance that changed it starts with the new settings at once.
    let to = fresh_number();
    let v: Value = app.post("/api/verifications", json!({ "to": to, "service": id, "locale": "en" })).await.json().await.unwrap();
    let code = app.code_for(&to).await;
    assert_eq!((code.len(), app.outbox(&to).await[0]["body"].as_str().unwrap()), (8, &*format!("Acme code {code}")));

    // Renamed: the old name is gone, the new one and the id find it; `null` changes nothing.
    let renamed: Value = patch(&app, &format!("/api/services/{id}"), json!({ "name": "Acme 2", "psd2": null })).await.json().await.unwrap();
    assert_eq!((renamed["name"].as_str(), renamed["code_length"].as_u64()), (Some("Acme 2"), Some(8)));
    expect_error(app.get("/api/services/Acme").await, 404, "service_not_found").await;
    assert_eq!(app.get("/api/services/Acme%202").await.status(), 200);
    expect_error(patch(&app, &format!("/api/services/{id}"), json!({ "name": "phonegate" })).await, 409, "service_name_taken").await;

    // Deleted: found by nothing, its pending verification canceled, its name free again.
    let r = delete(&app, "/api/services/Acme%202").await;
    assert_eq!(r.status(), 204);
    assert!(r.bytes().await.unwrap().is_empty());
    for path in [format!("/api/services/{id}"), "/api/services/Acme%202".into()] {
        expect_error(app.get(&path).await, 404, "service_not_found").await;
        expect_error(patch(&app, &path, json!({ "code_length": 6 })).await, 404, "service_not_found").await;
        expect_error(delete(&app, &path).await, 404, "service_not_found").await;
    }
    let vid = v["id"].as_str().unwrap();
    let after: Value = app.get(&format!("/api/verifications/{vid}")).await.json().await.unwrap();
    assert_eq!(after["status"], "canceled", "{after}");
    expect_error(app.check(vid, &code).await, 409, "verification_canceled").await;
    expect_error(app.post("/api/verifications", json!({ "to": to, "service": id })).await, 404, "service_not_found").await;
    let list: Value = app.get("/api/services").await.json().await.unwrap();
    assert!(list["services"].as_array().unwrap().iter().all(|s| s["id"] != id.as_str()), "{list}");
    assert_eq!(app.post("/api/services", json!({ "name": "Acme 2" })).await.status(), 201);

    let kinds = audit_kinds(&app).await;
    assert_eq!(kinds.iter().filter(|k| *k == "service_updated").count(), 2, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "service_deleted").count(), 1, "{kinds:?}");
}

#[tokio::test]
async fn service_changes_are_validated_like_creates_and_the_servers_own_keep_their_names() {
    let app = TestApp::spawn().await;
    assert_eq!(app.post("/api/services", json!({ "name": "x" })).await.status(), 201);
    for bad in [
        json!({ "code_length": 3 }),
        json!({ "code_length": 11 }),
        json!({ "code_ttl_secs": 59 }),
        json!({ "code_ttl_secs": 86401 }),
        json!({ "templates": { "en": "no code here" } }),
        json!({ "templates": { "<script>": "{code}" } }),
        json!({ "name": " " }),
        json!({ "name": "a\u{202E}b" }),
    ] {
        expect_error(patch(&app, "/api/services/x", bad.clone()).await, 400, "invalid_parameter").await;
    }
    expect_error(patch(&app, "/api/services/x", json!({ "nmae": "y" })).await, 422, "invalid_body").await;
    expect_error(patch(&app, "/api/services/x", json!({ "code_length": "six" })).await, 422, "invalid_body").await;
    let raw = app.client.patch(app.url("/api/services/x")).bearer_auth(&app.secret).header("content-type", "application/json");
    expect_error(raw.body("{").send().await.unwrap(), 400, "malformed_json").await;
    let unchanged: Value = app.get("/api/services/x").await.json().await.unwrap();
    assert_eq!((unchanged["code_length"].as_u64(), unchanged["templates"].as_object().map(|t| t.len())), (Some(6), Some(0)));

    // The server's own services: their settings change, their names and existence do not.
    for name in ["phonegate", "accounts"] {
        expect_error(delete(&app, &format!("/api/services/{name}")).await, 409, "service_reserved").await;
        expect_error(patch(&app, &format!("/api/services/{name}"), json!({ "name": "mine" })).await, 409, "service_reserved").await;
    }
    let r = patch(&app, "/api/services/phonegate", json!({ "name": "phonegate", "code_length": 7 })).await;
    assert_eq!(r.status(), 200);
    let to = fresh_number();
    app.start(&to).await;
    assert_eq!(app.code_for(&to).await.len(), 7);
}

#[tokio::test]
async fn only_admin_keys_change_services_and_another_tenants_is_not_found() {
    use phonegate_core::Caller;
    use phonegate_core::apikey::KeyScope;
    use secrecy::ExposeSecret;
    let app = TestApp::spawn().await;
    let a: Value = app.post("/api/services", json!({ "name": "Alpha" })).await.json().await.unwrap();
    app.post("/api/services", json!({ "name": "Beta" })).await;
    let scope = KeyScope::Services(vec![a["id"].as_str().unwrap().into()]);
    let (_, secret) = app.state.core.api_keys.create(&Caller::system("tests"), "alpha", scope).await.unwrap();
    let key = secret.expose_secret();
    let call = |method: reqwest::Method, path: &str| {
        app.client.request(method, app.url(path)).bearer_auth(key).json(&json!({ "code_length": 8 })).send()
    };
    use reqwest::Method as M;
    expect_error(call(M::PATCH, "/api/services/Beta").await.unwrap(), 404, "service_not_found").await;
    expect_error(call(M::DELETE, "/api/services/Beta").await.unwrap(), 404, "service_not_found").await;
    expect_error(call(M::PATCH, "/api/services/Alpha").await.unwrap(), 403, "forbidden").await;
    expect_error(call(M::DELETE, "/api/services/Alpha").await.unwrap(), 403, "forbidden").await;
    let alpha: Value = app.get("/api/services/Alpha").await.json().await.unwrap();
    assert_eq!(alpha["code_length"], 6);
    assert_eq!(app.get("/api/services/Beta").await.status(), 200);
}

/// A verification keeps the rules it started with: the service's code length, lifetime, name and
/// templates changed mid-way change neither its resend nor its check.
#[tokio::test]
async fn a_running_verification_keeps_the_rules_it_started_with() {
    let app = TestApp::spawn().await;
    let body = json!({ "name": "Keep", "code_length": 6, "code_ttl_secs": 600, "templates": { "en": "{service} old {code}" } });
    let s: Value = app.post("/api/services", body).await.json().await.unwrap();
    let id = s["id"].as_str().unwrap();
    let to = fresh_number();
    let start = json!({ "to": to, "service": id, "locale": "en" });
    let v: Value = app.post("/api/verifications", start.clone()).await.json().await.unwrap();
    let code = app.code_for(&to).await;
    assert_eq!(app.outbox(&to).await[0]["body"], format!("Keep old {code}"));

    let change = json!({ "name": "Kept", "code_length": 8, "code_ttl_secs": 60, "templates": { "en": "{service} new {code}" } });
    assert_eq!(patch(&app, &format!("/api/services/{id}"), change).await.status(), 200);
    // The resend: the same code, in the text the verification started with.
    let again: Value = app.post("/api/verifications", start).await.json().await.unwrap();
    assert_eq!((again["id"].as_str(), again["resent"].as_bool()), (v["id"].as_str(), Some(true)));
    let messages = app.outbox(&to).await;
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["body"], format!("Keep old {code}"));
    // Past the new lifetime, within the old one: the six-digit code still approves.
    app.advance(Duration::seconds(120));
    let r: Value = app.check(v["id"].as_str().unwrap(), &code).await.json().await.unwrap();
    assert_eq!(r["status"], "approved", "{r}");

    // A new verification follows the new rules.
    let other = fresh_number();
    app.post("/api/verifications", json!({ "to": other, "service": id, "locale": "en" })).await;
    let new_code = app.code_for(&other).await;
    assert_eq!((new_code.len(), app.outbox(&other).await[0]["body"].clone()), (8, json!(format!("Kept new {new_code}"))));
}
