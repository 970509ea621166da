//! Cross-site request forgery on the JSON API: a request that the session cookie signs in and
//! that changes something is refused unless it comes from phonegate's own pages
//! (`Sec-Fetch-Site`, or `Origin`); reads, access tokens and non-browser clients are unaffected.
use crate::helpers::{TestApp, eventually, expect_error, fresh_number};
use phonegate_core::Caller;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const EVIL: &str = "https://evil.example";

/// Signs `phone` in as a browser (`session: cookie`); returns the `Cookie` header value.
async fn cookie_session(app: &TestApp, phone: &str) -> String {
    let (flow, code) = app.flow_code("/api/auth/login", json!({ "phone": phone }), phone).await;
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code, "session": "cookie" })).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
}

/// What the forged requests could have changed, as the admin sees it.
async fn state(app: &TestApp, token: &str, member: &str) -> Value {
    let get = |path: String| async move {
        let r = app.client.get(app.url(&path)).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        r.json::<Value>().await.unwrap()
    };
    json!({
        "code": get("/api/admin/invite-code".into()).await,
        "invites": get("/api/admin/invites".into()).await,
        "members": get("/api/admin/members".into()).await,
        "devices": get(format!("/api/admin/members/{member}/sessions")).await,
        "admin_sessions": get("/api/me/sessions".into()).await,
    })
}

#[tokio::test]
async fn a_foreign_site_cannot_act_with_a_signed_in_browsers_cookie() {
    let app = TestApp::spawn().await;
    let admin_phone = fresh_number();
    app.state.accounts.create_admin(&Caller::system("tests"), "boss", &admin_phone).await.unwrap();
    let token = app.log_in(&admin_phone).await["access_token"].as_str().unwrap().to_string();
    let cookie = cookie_session(&app, &admin_phone).await;
    let member = app.sign_up("member", &fresh_number(), None).await;
    let id = member["user"]["id"].as_str().unwrap().to_string();
    let invited = fresh_number();
    let r = app.client.post(app.url("/api/admin/invites")).bearer_auth(&token).json(&json!({ "phone": invited })).send().await.unwrap();
    let invite = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    eventually(|| async { (app.outbox(&invited).await.len() == 1).then_some(()) }).await;
    let devices: Value = app
        .client
        .get(app.url(&format!("/api/admin/members/{id}/sessions")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device = devices["sessions"][0]["id"].as_str().unwrap().to_string();
    let new_phone = fresh_number();
    let before = state(&app, &token, &id).await;

    // Every state-changing request the cookie authenticates (JSON bodies where the route takes one).
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/api/admin/invite-code/rotate".into(), None),
        (Method::POST, format!("/api/admin/invites/{invite}/resend"), None),
        (Method::DELETE, format!("/api/admin/invites/{invite}"), None),
        (Method::POST, "/api/admin/invites".into(), Some(json!({ "phone": fresh_number() }))),
        (Method::PUT, format!("/api/admin/members/{id}/admin"), None),
        (Method::DELETE, format!("/api/admin/members/{id}/admin"), None),
        (Method::DELETE, format!("/api/admin/members/{id}/sessions/{device}"), None),
        (Method::DELETE, format!("/api/admin/members/{id}"), None),
        (Method::POST, "/api/me/phone".into(), Some(json!({ "phone": new_phone }))),
        (Method::POST, "/api/me/phone/verify".into(), Some(json!({ "flow_id": "fl0", "code": "000000" }))),
        (Method::DELETE, "/api/me/sessions/ss0".into(), None),
        (Method::POST, "/api/auth/logout".into(), None),
        (Method::DELETE, "/api/me".into(), None),
    ];
    let send = |method: &Method, path: &str, body: &Option<Value>| {
        let r = app.client.request(method.clone(), app.url(path)).header("cookie", &cookie);
        match body {
            Some(b) => r.json(b),
            // What a form or `fetch` with `mode: "no-cors"` can send cross-site without asking.
            None => r.header("content-type", "text/plain").body("{}"),
        }
    };
    for (method, path, body) in &calls {
        let forged = [
            send(method, path, body).header("origin", EVIL),
            send(method, path, body).header("origin", EVIL).header("sec-fetch-site", "cross-site"),
            send(method, path, body).header("sec-fetch-site", "same-site"),
            send(method, path, body).header("origin", "null"),
            send(method, path, body).header("origin", app.base.replace("127.0.0.1", "localhost")),
        ];
        for request in forged {
            expect_error(request.send().await.unwrap(), 403, "csrf_failed").await;
        }
    }
    // Nothing changed: the same code, invite, members, devices; no SMS; the session lives.
    assert_eq!(state(&app, &token, &id).await, before);
    assert_eq!(app.queued(&invited).await, 1);
    assert_eq!(app.queued(&new_phone).await, 0);
    let r = app.client.get(app.url("/api/me")).header("cookie", &cookie).header("origin", EVIL).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "reads are not refused");

    // The server's own pages: by Sec-Fetch-Site, or by Origin; a non-browser sends neither.
    let rotate = || send(&Method::POST, "/api/admin/invite-code/rotate", &None);
    let code = |r: Value| r["code"].as_str().unwrap().to_string();
    let mut last = code(before["code"].clone());
    for request in [
        rotate().header("sec-fetch-site", "same-origin"),
        rotate().header("sec-fetch-site", "none"),
        rotate().header("origin", &app.base),
        rotate(),
    ] {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let now = code(r.json().await.unwrap());
        assert_ne!(now, last, "rotated");
        last = now;
    }
    // An access token is no ambient credential: a foreign Origin does not matter.
    let r = app.client.post(app.url("/api/admin/invite-code/rotate")).bearer_auth(&token).header("origin", EVIL).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = send(&Method::POST, "/api/auth/logout", &None).header("origin", &app.base).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    expect_error(app.client.get(app.url("/api/me")).header("cookie", &cookie).send().await.unwrap(), 401, "unauthenticated").await;
}

#[tokio::test]
async fn behind_a_public_url_the_origin_must_be_the_public_one() {
    let app = TestApp::spawn_with(|c| c.public_url = Some("https://id.example.com/".into())).await;
    let phone = fresh_number();
    app.sign_up("public", &phone, None).await;
    let (flow, code) = app.flow_code("/api/auth/login", json!({ "phone": phone }), &phone).await;
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code, "session": "cookie" })).await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let logout = |origin: &str| app.client.post(app.url("/api/auth/logout")).header("cookie", &cookie).header("origin", origin).send();
    // The Host the request reached is not the origin browsers see behind the proxy.
    expect_error(logout(&app.base).await.unwrap(), 403, "csrf_failed").await;
    expect_error(logout("http://id.example.com").await.unwrap(), 403, "csrf_failed").await;
    assert_eq!(app.client.get(app.url("/api/me")).header("cookie", &cookie).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(logout("https://id.example.com:443").await.unwrap().status(), StatusCode::NO_CONTENT);
    expect_error(app.client.get(app.url("/api/me")).header("cookie", &cookie).send().await.unwrap(), 401, "unauthenticated").await;
}
