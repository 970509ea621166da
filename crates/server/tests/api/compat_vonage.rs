//! Vonage (Nexmo) Verify v1 over raw HTTP: GET/POST, form/JSON, credentials as parameters,
//! Vonage's response shapes and every status code (its workflows: `compat_vonage_workflows.rs`).
use crate::helpers::{TestApp, fresh_number, wrong};
use serde_json::{Value, json};

fn creds(app: &TestApp) -> Vec<(String, String)> {
    vec![("api_key".into(), app.key_id.clone()), ("api_secret".into(), app.secret.clone())]
}

pub async fn post(app: &TestApp, path: &str, params: &[(&str, &str)]) -> Value {
    let mut all = creds(app);
    all.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let r = app.client.post(app.url(path)).form(&all).send().await.unwrap();
    assert_eq!(r.status(), 200, "Vonage answers 200 and puts the outcome in `status`");
    r.json().await.unwrap()
}

pub fn assert_status(v: &Value, status: &str) {
    assert_eq!(v["status"], status, "{v}");
    if status != "0" {
        assert!(v["error_text"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    }
}

#[tokio::test]
async fn the_vonage_flow_with_three_attempts_and_brand() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let number = to.trim_start_matches('+');
    let started = post(&app, "/verify/json", &[("number", number), ("brand", "AcmeInc"), ("code_length", "4"), ("lg", "de-de")]).await;
    assert_status(&started, "0");
    let rid = started["request_id"].as_str().unwrap().to_string();
    assert_eq!(rid.len(), 32);
    let body = app.outbox(&to).await[0]["body"].as_str().unwrap().to_string();
    assert!(body.starts_with("Ihr AcmeInc Bestätigungscode lautet: "), "{body}");
    let code = app.code_for(&to).await;
    assert_eq!(code.len(), 4);

    // A second start for the same number: Vonage's "concurrent verification", same request.
    let again = post(&app, "/verify/json", &[("number", number), ("brand", "AcmeInc")]).await;
    assert_status(&again, "10");
    assert_eq!(again["request_id"], rid.as_str());

    let search = post(&app, "/verify/search/json", &[("request_id", &rid)]).await;
    assert_eq!((search["status"].as_str(), search["number"].as_str()), (Some("IN PROGRESS"), Some(number)));
    assert_eq!(search["events"].as_array().unwrap().len(), 1, "status 10 sends nothing");

    assert_status(&post(&app, "/verify/check/json", &[("request_id", &rid), ("code", &wrong(&code))]).await, "16");
    let ok = post(&app, "/verify/check/json", &[("request_id", &rid), ("code", &code)]).await;
    assert_status(&ok, "0");
    assert_eq!(ok["request_id"], rid.as_str());
    assert!(ok["event_id"].as_str().unwrap().starts_with("SM"));
    assert_status(&post(&app, "/verify/check/json", &[("request_id", &rid), ("code", &code)]).await, "6");
    let search = post(&app, "/verify/search/json", &[("request_id", &rid)]).await;
    assert_eq!(search["status"], "SUCCESS");
    assert!(search["date_finalized"].is_string());

    // Native view of the same verification.
    let native: Value = app.get(&format!("/api/verifications/VE{rid}")).await.json().await.unwrap();
    assert_eq!(native["status"], "approved");
}

#[tokio::test]
async fn vonage_locks_after_three_wrong_codes() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let rid = post(&app, "/verify/json", &[("number", to.trim_start_matches('+')), ("brand", "Acme")]).await["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let code = app.code_for(&to).await;
    assert_status(&post(&app, "/verify/check/json", &[("request_id", &rid), ("code", &wrong(&code))]).await, "16");
    assert_status(&post(&app, "/verify/check/json", &[("request_id", &rid), ("code", &wrong(&code))]).await, "16");
    assert_status(&post(&app, "/verify/check/json", &[("request_id", &rid), ("code", &wrong(&code))]).await, "17");
    assert_status(&post(&app, "/verify/check/json", &[("request_id", &rid), ("code", &code)]).await, "17");
    assert_eq!(post(&app, "/verify/search/json", &[("request_id", &rid)]).await["status"], "FAILED");
}

#[tokio::test]
async fn cancel_after_thirty_seconds_and_no_next_event() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    // Workflow 6 is one SMS: no next event.
    let rid =
        post(&app, "/verify/json", &[("number", to.trim_start_matches('+')), ("brand", "Acme"), ("workflow_id", "6")]).await["request_id"]
            .as_str()
            .unwrap()
            .to_string();
    assert_status(&post(&app, "/verify/control/json", &[("request_id", &rid), ("cmd", "cancel")]).await, "19");
    assert_status(&post(&app, "/verify/control/json", &[("request_id", &rid), ("cmd", "trigger_next_event")]).await, "19");
    app.advance(chrono::Duration::seconds(30));
    let canceled = post(&app, "/verify/control/json", &[("request_id", &rid), ("cmd", "cancel")]).await;
    assert_eq!(canceled, json!({ "status": "0", "command": "cancel" }));
    assert_eq!(post(&app, "/verify/search/json", &[("request_id", &rid)]).await["status"], "CANCELLED");
    assert_status(&post(&app, "/verify/control/json", &[("request_id", &rid), ("cmd", "cancel")]).await, "6");
}

#[tokio::test]
async fn get_and_json_requests_work_too() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let mut query = creds(&app);
    query.push(("number".into(), to.trim_start_matches('+').into()));
    query.push(("brand".into(), "Acme".into()));
    let v: Value = app.client.get(app.url("/verify/json")).query(&query).send().await.unwrap().json().await.unwrap();
    assert_status(&v, "0");
    let code = app.code_for(&to).await;
    let body = json!({ "api_key": app.key_id, "api_secret": app.secret, "request_id": v["request_id"], "code": code });
    let checked: Value = app.client.post(app.url("/verify/check/json")).json(&body).send().await.unwrap().json().await.unwrap();
    assert_status(&checked, "0");
}

#[tokio::test]
async fn every_vonage_status_code() {
    let app = TestApp::spawn().await;
    let r: Value = app
        .client
        .post(app.url("/verify/json"))
        .form(&[("number", "4915123456789"), ("brand", "x")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_status(&r, "2");
    let r: Value = app
        .client
        .post(app.url("/verify/json"))
        .form(&[("api_key", app.key_id.as_str()), ("api_secret", "wrong"), ("number", "4915123456789"), ("brand", "x")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_status(&r, "4");
    let n = fresh_number();
    let number = n.trim_start_matches('+');
    assert_status(&post(&app, "/verify/json", &[("brand", "x")]).await, "2");
    assert_status(&post(&app, "/verify/json", &[("number", number)]).await, "2");
    assert_status(&post(&app, "/verify/json", &[("number", "12"), ("brand", "x")]).await, "3");
    assert_status(&post(&app, "/verify/json", &[("number", number), ("brand", "a brand that is far too long")]).await, "3");
    assert_status(&post(&app, "/verify/json", &[("number", number), ("brand", "x"), ("code_length", "5")]).await, "3");
    assert_status(&post(&app, "/verify/json", &[("number", number), ("brand", "x"), ("pin_expiry", "30")]).await, "3");
    assert_status(&post(&app, "/verify/json", &[("number", number), ("brand", "x"), ("workflow_id", "9")]).await, "3");
    assert_status(&post(&app, "/verify/json", &[("number", "015123456789"), ("brand", "x"), ("country", "DE")]).await, "0");
    assert_status(&post(&app, "/verify/check/json", &[("code", "1234")]).await, "2");
    assert_status(&post(&app, "/verify/check/json", &[("request_id", "00000000000000000000000000000000"), ("code", "1234")]).await, "6");
    assert_status(&post(&app, "/verify/search/json", &[("request_id", "00000000000000000000000000000000")]).await, "101");
    assert_status(&post(&app, "/verify/control/json", &[("request_id", "00000000000000000000000000000000"), ("cmd", "cancel")]).await, "6");
}

#[tokio::test]
async fn basic_auth_custom_pins_and_multi_search() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let basic = |path: &str| app.client.post(app.url(path)).basic_auth(&app.key_id, Some(&app.secret));
    let started: Value = basic("/verify/json")
        .form(&[("number", to.trim_start_matches('+')), ("brand", "Acme")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_status(&started, "0");
    let wrong_key: Value = app
        .client
        .post(app.url("/verify/json"))
        .basic_auth(&app.key_id, Some("nope"))
        .form(&[("number", "4915123456789"), ("brand", "Acme")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_status(&wrong_key, "4");
    let custom: Value = basic("/verify/json")
        .form(&[("number", "4915123450000"), ("brand", "Acme"), ("pin_code", "1234")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_status(&custom, "20");
    let rid = started["request_id"].as_str().unwrap();
    let found: Value = app
        .client
        .get(app.url(&format!("/verify/search/json?request_ids={rid}&request_ids=00000000000000000000000000000000")))
        .basic_auth(&app.key_id, Some(&app.secret))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = found["verification_requests"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["request_id"], rid);
}

#[tokio::test]
async fn four_digit_pins_malformed_codes_cost_attempts_and_vonage_shaped_refusals() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let number = to.trim_start_matches('+');
    let started = post(&app, "/verify/json", &[("number", number), ("brand", "Acme")]).await;
    assert_status(&started, "0");
    let rid = started["request_id"].as_str().unwrap().to_string();
    assert_eq!(app.code_for(&to).await.len(), 4, "Vonage's default PIN has 4 digits");
    let search = post(&app, "/verify/search/json", &[("request_id", &rid)]).await;
    assert_eq!(search["date_finalized"], "", "a string while pending: {search}");
    // Any text is an attempt; a malformed one is a wrong code with the request id.
    for (guess, status) in [("abc", "16"), ("12", "16"), ("12345678901", "17")] {
        let r = post(&app, "/verify/check/json", &[("request_id", &rid), ("code", guess)]).await;
        assert_status(&r, status);
        assert_eq!(r["request_id"], rid.as_str(), "{r}");
    }
    // Search lists each check: when, whether right, from where (never the code typed).
    let search = post(&app, "/verify/search/json", &[("request_id", &rid)]).await;
    let checks = search["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3, "{search}");
    assert!(
        checks
            .iter()
            .all(|c| c["status"] == "INVALID" && c["date_received"].as_str().is_some_and(|d| d.len() == 19) && c.get("code").is_none())
    );
    let sender = post(&app, "/verify/json", &[("number", number), ("brand", "Acme"), ("sender_id", "ThisIsTooLong")]).await;
    assert_status(&sender, "3");
    assert!(sender["error_text"].as_str().unwrap().contains("sender_id"));
    // PSD2 needs a service that sends payment codes (status 20 elsewhere); paths this server
    // does not offer answer with a Vonage status body.
    let psd2 = post(&app, "/verify/psd2/json", &[("number", number), ("payee", "Shop"), ("amount", "10")]).await;
    assert_status(&psd2, "20");
    let r = app.client.post(app.url("/verify/nothing/json")).form(&creds(&app)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_status(&body, "3");
}
