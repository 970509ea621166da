//! Nobody locks an owner out: strangers' wrong passwords and codes use up only the budgets that
//! strangers share, never the attempts of the owner's own flow or the budgets of the owner's
//! recognised devices (a device token from an earlier verification of the number), while the
//! number's guess budget still bounds every stranger's guessing.
use crate::helpers::{TestApp, expect_error, fresh_number, wrong};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An app whose per-address budgets do not get in the way: these tests are about the number's
/// and the account's budgets.
async fn app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.budgets.logins_per_ip = vec!["1000/1h".parse().unwrap()];
        c.budgets.starts_per_ip = vec!["1000/1h".parse().unwrap()];
        c.budgets.checks_per_ip = vec!["1000/1h".parse().unwrap()];
    })
    .await
}

impl TestApp {
    /// Logs in by number from a recognised device and returns the verify answer.
    async fn log_in_with(&self, phone: &str, device: &str) -> Value {
        self.advance(chrono::Duration::seconds(1));
        let (flow, code) = self.flow_code("/api/auth/login", json!({ "phone": phone, "device_token": device }), phone).await;
        self.verify_code(&flow, &code, None).await
    }
}

async fn verify(app: &TestApp, flow: &Value, code: &str) -> reqwest::Response {
    app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code })).await
}

#[tokio::test]
async fn a_strangers_wrong_codes_lock_only_the_strangers_flow() {
    // The account's failed-login budget is raised: this is about each flow's own attempts.
    let app = TestApp::spawn_with(|c| c.budgets.failed_logins_per_account = vec!["100/1h".parse().unwrap()]).await;
    let phone = fresh_number();
    app.sign_up("owner", &phone, None).await;
    // The owner asks for a code; a stranger starts a login for the same number (the same code is
    // sent again) and guesses five times.
    let (owners, code) = app.flow_code("/api/auth/login", json!({ "phone": phone }), &phone).await;
    let strangers: Value = app.anon_post("/api/auth/login", json!({ "phone": phone })).await.json().await.unwrap();
    for left in (1..5).rev() {
        let e = expect_error(verify(&app, &strangers, &wrong(&code)).await, 400, "code_incorrect").await;
        assert_eq!(e["attempts_left"], left);
    }
    expect_error(verify(&app, &strangers, &wrong(&code)).await, 429, "code_locked").await;
    expect_error(verify(&app, &strangers, &code).await, 429, "code_locked").await;
    // The owner's flow still has all its attempts and the right code signs in.
    let r = verify(&app, &owners, &code).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn strangers_wrong_passwords_never_lock_out_a_recognised_device() {
    let app = app().await;
    let phone = fresh_number();
    let signed_up = app.sign_up("careful", &phone, Some("correct horse battery")).await;
    let device = signed_up["device_token"].as_str().expect("a device token").to_string();
    // Strangers: five wrong passwords (each costs what a code to the number would), and the
    // account's shared budget then refuses even the right one, and the number's shared send
    // budget any code to it.
    app.advance(chrono::Duration::minutes(11));
    for _ in 0..5 {
        let r = app.anon_post("/api/auth/login", json!({ "identifier": "careful", "password": "wrong password!" })).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let r = app.anon_post("/api/auth/login", json!({ "identifier": "careful", "password": "correct horse battery" })).await;
    expect_error(r, 429, "login_throttled").await;
    expect_error(app.anon_post("/api/auth/login", json!({ "phone": phone })).await, 429, "send_budget_exceeded").await;

    // The owner's device: the right password and the code still sign in, by password and by number.
    let body = json!({ "identifier": "careful", "password": "correct horse battery", "device_token": device });
    let (flow, code) = app.flow_code("/api/auth/login", body, &phone).await;
    let signed_in = app.verify_code(&flow, &code, None).await;
    assert_eq!(signed_in["user"]["username"], "careful");
    app.advance(chrono::Duration::seconds(1));
    let (flow, code) = app.flow_code("/api/auth/login", json!({ "phone": phone, "device_token": device }), &phone).await;
    assert_eq!(verify(&app, &flow, &code).await.status(), StatusCode::OK);

    // A token made for another account or number, a forged one and an expired one are no proof.
    let other = app.sign_up("other", &fresh_number(), None).await["device_token"].as_str().unwrap().to_string();
    let (exp, mac) = device.split_once('.').unwrap();
    let forged = format!("{}.{mac}", exp.parse::<i64>().unwrap() + 1);
    for token in [other.as_str(), forged.as_str(), "1.AAAA", "garbage"] {
        let body = json!({ "identifier": "careful", "password": "correct horse battery", "device_token": token });
        expect_error(app.anon_post("/api/auth/login", body).await, 429, "login_throttled").await;
    }
}

#[tokio::test]
async fn strangers_wrong_codes_never_lock_out_a_recognised_device() {
    let app = app().await;
    let phone = fresh_number();
    let device = app.sign_up("guarded", &phone, None).await["device_token"].as_str().unwrap().to_string();
    // A stranger's login and five wrong codes: the number's shared failed-login budget is spent.
    let (strangers, code) = app.flow_code("/api/auth/login", json!({ "phone": phone }), &phone).await;
    for _ in 0..4 {
        expect_error(verify(&app, &strangers, &wrong(&code)).await, 400, "code_incorrect").await;
    }
    expect_error(verify(&app, &strangers, &wrong(&code)).await, 429, "code_locked").await;
    expect_error(app.anon_post("/api/auth/login", json!({ "phone": phone })).await, 429, "login_throttled").await;
    // The owner's device logs in at once, with the same pending code.
    let r = app.anon_post("/api/auth/login", json!({ "phone": phone, "device_token": device })).await;
    let owners: Value = r.json().await.unwrap();
    assert_eq!(verify(&app, &owners, &code).await.status(), StatusCode::OK);
    // After a number change the token of the old number is no proof for the new one.
    let fresh = app.log_in_with(&phone, &device).await;
    let new = fresh_number();
    let change = app.client.post(app.url("/api/me/phone")).bearer_auth(fresh["access_token"].as_str().unwrap());
    let flow: Value = change.json(&json!({ "phone": new })).send().await.unwrap().json().await.unwrap();
    let code = app.code_after(&new, &[]).await;
    let verify_phone = app.client.post(app.url("/api/me/phone/verify")).bearer_auth(fresh["access_token"].as_str().unwrap());
    let r = verify_phone.json(&json!({ "flow_id": flow["flow_id"], "code": code })).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let flow: Value = app.anon_post("/api/auth/login", json!({ "phone": new })).await.json().await.unwrap();
    for _ in 0..5 {
        assert_ne!(verify(&app, &flow, &wrong(&code)).await.status(), StatusCode::OK);
    }
    let r = app.anon_post("/api/auth/login", json!({ "phone": new, "device_token": device })).await;
    expect_error(r, 429, "login_throttled").await;
}

#[tokio::test]
async fn a_recognised_device_keeps_its_own_guess_budget_on_the_number() {
    // The number's guess budget is small here, so strangers exhaust it within one flow's attempts.
    let app = TestApp::spawn_with(|c| {
        c.budgets.failed_checks_per_number = vec!["3/1h".parse().unwrap()];
        c.budgets.failed_logins_per_account = vec!["100/1h".parse().unwrap()];
    })
    .await;
    let phone = fresh_number();
    let device = app.sign_up("guarded", &phone, None).await["device_token"].as_str().unwrap().to_string();
    let (strangers, code) = app.flow_code("/api/auth/login", json!({ "phone": phone }), &phone).await;
    for _ in 0..3 {
        expect_error(verify(&app, &strangers, &wrong(&code)).await, 400, "code_incorrect").await;
    }
    // Over the number's budget every stranger's code is refused alike, even the right one…
    expect_error(verify(&app, &strangers, &code).await, 429, "checks_locked").await;
    // …but the owner's device checks against its own budget: one wrong code, then the right one.
    // (The same pending code is sent again.)
    let r = app.anon_post("/api/auth/login", json!({ "phone": phone, "device_token": device })).await;
    let owners: Value = r.json().await.unwrap();
    expect_error(verify(&app, &owners, &wrong(&code)).await, 400, "code_incorrect").await;
    assert_eq!(verify(&app, &owners, &code).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_codes_of_a_sign_up_count_against_the_number_like_a_logins() {
    let app = TestApp::spawn_with(|c| c.budgets.failed_logins_per_account = vec!["3/15m".parse().unwrap()]).await;
    let phone = fresh_number();
    let (flow, code) = app.flow_code("/api/auth/signup", json!({ "username": "newcomer", "phone": phone }), &phone).await;
    for _ in 0..3 {
        expect_error(verify(&app, &flow, &wrong(&code)).await, 400, "code_incorrect").await;
    }
    // The number's failed-login budget is spent: a login or another sign-up of it is refused.
    expect_error(app.anon_post("/api/auth/login", json!({ "phone": phone })).await, 429, "login_throttled").await;
    let r = app.anon_post("/api/auth/signup", json!({ "username": "newcomer2", "phone": phone })).await;
    expect_error(r, 429, "login_throttled").await;
}
