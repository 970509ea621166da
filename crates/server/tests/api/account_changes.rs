//! Changing the number and deleting the account need a session that is still live in the store
//! and a recent login; the former number is told of a change; forward auth stops passing a token
//! whose session ended within `revocation_check_secs`.
use crate::helpers::{TestApp, eventually, expect_error, fresh_number};
use chrono::Duration;
use phonegate_core::Caller;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn token(answer: &Value) -> String {
    answer["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_stolen_token_cannot_change_the_number_or_delete_the_account_after_logout_everywhere() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    let stolen = token(&app.sign_up("victim", &phone, None).await);
    let owner = token(&app.log_in(&phone).await);
    let r = app.client.post(app.url("/api/auth/logout")).bearer_auth(&owner).json(&json!({ "all": true })).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // The stolen token's signature is still valid for a few minutes, but its session is gone.
    let change = app.client.post(app.url("/api/me/phone")).bearer_auth(&stolen).json(&json!({ "phone": fresh_number() }));
    expect_error(change.send().await.unwrap(), 401, "unauthenticated").await;
    expect_error(app.client.delete(app.url("/api/me")).bearer_auth(&stolen).send().await.unwrap(), 401, "unauthenticated").await;
    // The account is still there, with its number.
    let me: Value = app.me_with(&token(&app.log_in(&phone).await)).await.json().await.unwrap();
    assert_eq!(me["phone_number"], phone.as_str());
}

#[tokio::test]
async fn a_number_change_needs_a_recent_login_and_tells_the_former_number() {
    let app = TestApp::spawn().await;
    let (old, new) = (fresh_number(), fresh_number());
    let signed = app.sign_up("mover", &old, None).await;
    // Eleven minutes later the session is still live (a refreshed token works) but not fresh.
    app.advance(Duration::minutes(11));
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": signed["refresh_token"] })).await;
    let later = token(&r.json::<Value>().await.unwrap());
    assert_eq!(app.me_with(&later).await.status(), StatusCode::OK);
    let change = |t: &str| app.client.post(app.url("/api/me/phone")).bearer_auth(t).json(&json!({ "phone": new })).send();
    expect_error(change(&later).await.unwrap(), 403, "reauthentication_required").await;
    expect_error(app.client.delete(app.url("/api/me")).bearer_auth(&later).send().await.unwrap(), 403, "reauthentication_required").await;
    assert_eq!(app.queued(&new).await, 0, "no code went to the new number");

    // Logging in again (a code to the current number) makes it fresh.
    let fresh = token(&app.log_in(&old).await);
    let r = change(&fresh).await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let flow: Value = r.json().await.unwrap();
    let code = app.code_after(&new, &[]).await;
    let before = app.outbox(&old).await;
    let verify = app.client.post(app.url("/api/me/phone/verify")).bearer_auth(&fresh);
    let r = verify.json(&json!({ "flow_id": flow["flow_id"], "code": code })).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The former number hears of it, with only the last digits of the new one.
    let notices = eventually(|| async { Some(app.outbox(&old).await).filter(|m| m.len() > before.len()) }).await;
    let notice = notices.iter().find(|m| !before.contains(m)).unwrap()["body"].as_str().unwrap().to_string();
    assert!(notice.contains("changed") && notice.contains(&new[new.len() - 2..]), "{notice}");
    assert!(!notice.contains(&new[..new.len() - 2]), "the new number is not spelled out: {notice}");
}

#[tokio::test]
async fn forward_auth_stops_passing_a_removed_members_token() {
    // 0: the store is asked on every request (the default, 5, bounds how long a revoked session
    // may still pass on each instance).
    let app = TestApp::spawn_with(|c| c.accounts.revocation_check_secs = 0).await;
    let admin_phone = fresh_number();
    app.state.accounts.create_admin(&Caller::system("tests"), "boss", &admin_phone).await.unwrap();
    let admin = token(&app.log_in(&admin_phone).await);
    let member = app.sign_up("leaving", &fresh_number(), None).await;
    let (member_token, id) = (token(&member), member["user"]["id"].as_str().unwrap().to_string());
    let forward = || app.client.get(app.url("/api/auth/forward")).bearer_auth(&member_token).send();
    assert_eq!(forward().await.unwrap().status(), StatusCode::OK);
    let r = app.client.delete(app.url(&format!("/api/admin/members/{id}"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // At once, not after the token's remaining five minutes.
    expect_error(forward().await.unwrap(), 401, "unauthenticated").await;
}

/// A login's verification, its message and its flow are one unit of work: when the flow cannot be
/// written, no code is queued either (a code no flow could check would be a message for nothing).
#[tokio::test]
async fn no_code_goes_out_for_a_flow_that_could_not_be_written() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    app.sign_up("atomic", &phone, None).await;
    let before = app.outbox(&phone).await.len();
    // Every later flow insert fails.
    let refuse = if app.database_url.starts_with("postgres") {
        "CREATE FUNCTION refuse_flows() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'flows refused'; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER refuse_flows BEFORE INSERT ON auth_flows FOR EACH ROW EXECUTE FUNCTION refuse_flows()"
    } else {
        "CREATE TRIGGER refuse_flows BEFORE INSERT ON auth_flows BEGIN SELECT RAISE(ABORT, 'flows refused'); END"
    };
    phonegate_store::testing::execute(&app.database_url, refuse).await.unwrap();
    let r = app.anon_post("/api/auth/login", json!({ "phone": phone })).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = r.text().await.unwrap();
    assert!(!body.contains("flows refused"), "the detail stays in the log: {body}");
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM messages").await, before as i64, "no message was queued");
    assert_eq!(app.outbox(&phone).await.len(), before);
}
