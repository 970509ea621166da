//! Invite-only groups: only invited numbers join, and nothing tells an uninvited number apart;
//! invites are listed, re-sent, revoked and expire; one invite makes one member, even when two
//! sign-ups race for it.
use crate::helpers::{TestApp, expect_error, fresh_number};
use chrono::Duration;
use phonegate_core::Caller;
use phonegate_core::accounts::invites::Registration;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn group() -> (TestApp, String, String) {
    let app = TestApp::spawn_with(|c| c.accounts.registration = Registration::InviteOnly).await;
    let phone = fresh_number();
    app.state.accounts.create_admin(&Caller::system("tests"), "admin", &phone).await.unwrap();
    let admin = app.log_in(&phone).await;
    (app, admin["access_token"].as_str().unwrap().to_string(), phone)
}

#[tokio::test]
async fn only_invited_numbers_join_and_the_uninvited_cannot_tell() {
    let (app, admin, _) = group().await;
    let (invited, stranger) = (fresh_number(), fresh_number());
    let r = app.client.post(app.url("/api/admin/invites")).bearer_auth(&admin).json(&json!({ "phone": invited })).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let invite: Value = r.json().await.unwrap();
    assert_eq!(invite["status"], "pending");
    let sms = crate::helpers::eventually(|| async { app.outbox(&invited).await.first().cloned() }).await;
    let body = sms["body"].as_str().unwrap();
    assert!(body.contains(&format!("/signup?invite={}", invite["id"].as_str().unwrap())), "{body}");

    // The stranger's sign-up answers alike, sends nothing, and no code opens it.
    let r = app.anon_post("/api/auth/signup", json!({ "username": "stranger", "phone": stranger })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let decoy: Value = r.json().await.unwrap();
    let before = app.outbox(&invited).await;
    let (flow, code) = app.flow_code("/api/auth/signup", json!({ "username": "friend", "phone": invited }), &invited).await;
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&decoy), keys(&flow));
    assert!(app.outbox(&stranger).await.is_empty());
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": decoy["flow_id"], "code": code })).await;
    expect_error(r, 400, "code_incorrect").await;
    assert!(before.len() < app.outbox(&invited).await.len());

    let joined = app.verify_code(&flow, &code, None).await;
    assert_eq!(joined["user"]["username"], "friend");
    let list: Value = app.client.get(app.url("/api/admin/invites")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["invites"][0]["status"], "used");
}

#[tokio::test]
async fn invites_are_resent_revoked_and_expire() {
    let (app, mut admin, admin_phone) = group().await;
    let phone = fresh_number();
    let call = |method: &str, path: String, token: &str| app.client.request(method.parse().unwrap(), app.url(&path)).bearer_auth(token);
    let invite: Value =
        call("POST", "/api/admin/invites".into(), &admin).json(&json!({ "phone": phone })).send().await.unwrap().json().await.unwrap();
    let id = invite["id"].as_str().unwrap().to_string();
    let r = call("POST", format!("/api/admin/invites/{id}/resend"), &admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    crate::helpers::eventually(|| async { (app.outbox(&phone).await.len() == 2).then_some(()) }).await;
    assert_eq!(call("DELETE", format!("/api/admin/invites/{id}"), &admin).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    expect_error(call("POST", format!("/api/admin/invites/{id}/resend"), &admin).send().await.unwrap(), 409, "invite_not_pending").await;
    expect_error(call("DELETE", "/api/admin/invites/iv0".into(), &admin).send().await.unwrap(), 404, "invite_not_found").await;
    // A revoked invite admits nobody: the sign-up is a decoy, nothing more is sent.
    app.anon_post("/api/auth/signup", json!({ "username": "late", "phone": phone })).await;
    assert_eq!(app.outbox(&phone).await.len(), 2);

    // Expiry after 72 hours.
    let other = fresh_number();
    call("POST", "/api/admin/invites".into(), &admin).json(&json!({ "phone": other })).send().await.unwrap();
    app.advance(Duration::hours(73));
    admin = app.log_in(&admin_phone).await["access_token"].as_str().unwrap().to_string();
    let list: Value = call("GET", "/api/admin/invites".into(), &admin).send().await.unwrap().json().await.unwrap();
    let mut statuses: Vec<&str> = list["invites"].as_array().unwrap().iter().map(|i| i["status"].as_str().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, ["expired", "revoked"]);
    let sent = app.outbox(&other).await.len();
    app.anon_post("/api/auth/signup", json!({ "username": "later", "phone": other })).await;
    assert_eq!(app.outbox(&other).await.len(), sent, "an expired invite sends nothing");

    // An invite for a member's username must be that member's number.
    let r = call("POST", "/api/admin/invites".into(), &admin)
        .json(&json!({ "phone": fresh_number(), "username": "admin" }))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_parameter").await;
    let r = call("POST", "/api/admin/invites".into(), &admin)
        .json(&json!({ "phone": fresh_number(), "username": "nobody" }))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "member_not_found").await;
}

#[tokio::test]
async fn one_invite_makes_one_member_even_when_sign_ups_race() {
    let (app, admin, _) = group().await;
    let phone = fresh_number();
    app.client.post(app.url("/api/admin/invites")).bearer_auth(&admin).json(&json!({ "phone": phone })).send().await.unwrap();
    let invite_sms = crate::helpers::eventually(|| async { app.outbox(&phone).await.first().cloned() }).await;
    let (first, code) = app.flow_code("/api/auth/signup", json!({ "username": "racer-a", "phone": phone }), &phone).await;
    assert!(!invite_sms["body"].as_str().unwrap().ends_with(&code));
    let r = app.anon_post("/api/auth/signup", json!({ "username": "racer-b", "phone": phone })).await;
    let second: Value = r.json().await.unwrap();
    let verify = |flow: &Value| app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code }));
    let (a, b) = tokio::join!(verify(&first), verify(&second));
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM users").await, 2, "the admin and one member");
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM invites WHERE used_at IS NOT NULL").await, 1);
}

#[tokio::test]
async fn members_and_strangers_cannot_touch_invites() {
    let (app, _, _) = group().await;
    let phone = fresh_number();
    let admin_made = app.state.accounts.create_admin(&Caller::system("tests"), "second", &phone).await.unwrap();
    assert!(admin_made.is_admin());
    // An ordinary member: invited, joined.
    let invited = fresh_number();
    let admin = app.log_in(&phone).await;
    app.client
        .post(app.url("/api/admin/invites"))
        .bearer_auth(admin["access_token"].as_str().unwrap())
        .json(&json!({ "phone": invited }))
        .send()
        .await
        .unwrap();
    crate::helpers::eventually(|| async { app.outbox(&invited).await.first().cloned() }).await;
    let member = app.sign_up("plain", &invited, None).await;
    let token = member["access_token"].as_str().unwrap();
    for (method, path) in [
        ("GET", "/api/admin/invites"),
        ("POST", "/api/admin/invites"),
        ("POST", "/api/admin/invites/iv0/resend"),
        ("DELETE", "/api/admin/invites/iv0"),
    ] {
        let request = app.client.request(method.parse().unwrap(), app.url(path)).json(&json!({ "phone": fresh_number() }));
        expect_error(request.try_clone().unwrap().send().await.unwrap(), 401, "unauthenticated").await;
        expect_error(request.bearer_auth(token).send().await.unwrap(), 403, "forbidden").await;
    }
}
