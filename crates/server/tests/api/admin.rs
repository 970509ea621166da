//! Admins over the JSON API: who may call it, members with masked numbers, promotion and
//! demotion with the last admin kept, and removal that ends the member's sessions at once.
use crate::helpers::{TestApp, expect_error, fresh_number};
use phonegate_core::Caller;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn admin_and_member(app: &TestApp) -> (String, Value, String) {
    let admin_phone = fresh_number();
    app.state.accounts.create_admin(&Caller::system("tests"), "boss", &admin_phone).await.unwrap();
    let admin = app.log_in(&admin_phone).await;
    let member_phone = fresh_number();
    let member = app.sign_up("member", &member_phone, None).await;
    (admin["access_token"].as_str().unwrap().to_string(), member, member_phone)
}

#[tokio::test]
async fn only_signed_in_admins_reach_the_admin_api() {
    let app = TestApp::spawn().await;
    let (admin, member, _) = admin_and_member(&app).await;
    let member_token = member["access_token"].as_str().unwrap();
    let id = member["user"]["id"].as_str().unwrap();
    let calls = [
        ("GET", "/api/admin/members".to_string()),
        ("DELETE", format!("/api/admin/members/{id}")),
        ("PUT", format!("/api/admin/members/{id}/admin")),
        ("DELETE", format!("/api/admin/members/{id}/admin")),
        ("GET", format!("/api/admin/members/{id}/sessions")),
        ("DELETE", format!("/api/admin/members/{id}/sessions/ss0")),
    ];
    for (method, path) in &calls {
        let request = |token: Option<&str>| {
            let r = app.client.request(method.parse().unwrap(), app.url(path));
            match token {
                Some(t) => r.bearer_auth(t),
                None => r,
            }
        };
        expect_error(request(None).send().await.unwrap(), 401, "unauthenticated").await;
        expect_error(request(Some(member_token)).send().await.unwrap(), 403, "forbidden").await;
        // An API key is no admin session either.
        expect_error(request(Some(&app.secret)).send().await.unwrap(), 401, "unauthenticated").await;
    }
    let r = app.client.get(app.url("/api/admin/members")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn admins_list_promote_demote_and_remove_members_but_keep_the_last_admin() {
    let app = TestApp::spawn().await;
    let (admin, member, member_phone) = admin_and_member(&app).await;
    let id = member["user"]["id"].as_str().unwrap().to_string();
    let call = |method: &str, path: String| app.client.request(method.parse().unwrap(), app.url(&path)).bearer_auth(&admin).send();

    let list: Value = call("GET", "/api/admin/members".into()).await.unwrap().json().await.unwrap();
    let members = list["members"].as_array().unwrap();
    assert_eq!(members.iter().map(|m| m["username"].as_str().unwrap()).collect::<Vec<_>>(), ["boss", "member"]);
    let shown = members[1]["phone_number"].as_str().unwrap();
    assert!(shown.ends_with(&member_phone[member_phone.len() - 3..]) && shown.contains('•') && shown != member_phone, "{shown}");
    assert_eq!(members[1]["sessions"], 1);
    let boss = members[0]["id"].as_str().unwrap().to_string();

    // The only admin can be neither demoted nor removed.
    expect_error(call("DELETE", format!("/api/admin/members/{boss}/admin")).await.unwrap(), 409, "last_admin").await;
    expect_error(call("DELETE", format!("/api/admin/members/{boss}")).await.unwrap(), 409, "last_admin").await;
    // With a second admin, the first may step down.
    let r: Value = call("PUT", format!("/api/admin/members/{id}/admin")).await.unwrap().json().await.unwrap();
    assert_eq!(r["roles"], json!(["admin"]));
    let r: Value = call("DELETE", format!("/api/admin/members/{id}/admin")).await.unwrap().json().await.unwrap();
    assert_eq!(r["roles"], json!([]));
    expect_error(call("PUT", "/api/admin/members/us0/admin".into()).await.unwrap(), 404, "member_not_found").await;

    // A member's devices, one ended by the admin.
    let second = app.log_in(&member_phone).await;
    let sessions: Value = call("GET", format!("/api/admin/members/{id}/sessions")).await.unwrap().json().await.unwrap();
    assert_eq!(sessions["sessions"].as_array().map(Vec::len), Some(2));
    // The second device's session, by the `sid` of its access token.
    let claims = second["access_token"].as_str().unwrap().split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap()).unwrap();
    let sid = claims["sid"].as_str().unwrap();
    assert!(sessions["sessions"].as_array().unwrap().iter().any(|s| s["id"] == sid));
    assert_eq!(call("DELETE", format!("/api/admin/members/{id}/sessions/{sid}")).await.unwrap().status(), StatusCode::NO_CONTENT);
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": second["refresh_token"] })).await;
    expect_error(r, 401, "refresh_token_invalid").await;

    // Removal: the member's refresh token dies at once.
    assert_eq!(call("DELETE", format!("/api/admin/members/{id}")).await.unwrap().status(), StatusCode::NO_CONTENT);
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": member["refresh_token"] })).await;
    expect_error(r, 401, "refresh_token_invalid").await;
    expect_error(call("DELETE", format!("/api/admin/members/{id}")).await.unwrap(), 404, "member_not_found").await;
    for kind in ["admin_created", "admin_promoted", "admin_demoted", "member_removed"] {
        let sql: &'static str = Box::leak(format!("SELECT COUNT(*) FROM audit_events WHERE kind = '{kind}'").into_boxed_str());
        assert_eq!(app.query_i64(sql).await, 1, "{kind}");
    }
}
