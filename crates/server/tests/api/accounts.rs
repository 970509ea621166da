//! Accounts over the JSON API: sign-up, passwordless and password + code login, sessions,
//! tokens, refresh rotation, logout, phone change, deletion, and what never leaks.
use crate::helpers::{TestApp, eventually, expect_error, fresh_number, wrong};
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{Value, json};

impl TestApp {
    pub async fn anon_post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(&body).send().await.expect("request sent")
    }

    /// Signs up `username` at `phone` (with an optional password) through the API and returns
    /// the verify answer (tokens and user).
    pub async fn sign_up(&self, username: &str, phone: &str, password: Option<&str>) -> Value {
        let mut body = json!({ "username": username, "phone": phone });
        if let Some(p) = password {
            body["password"] = json!(p);
        }
        let (flow, code) = self.flow_code("/api/auth/signup", body, phone).await;
        self.verify_code(&flow, &code, None).await
    }

    /// Starts a flow (asserting 202) and waits for the code it sent to `phone` (login codes are
    /// sent in the background: the answer does not wait for the provider).
    pub async fn flow_code(&self, path: &str, body: Value, phone: &str) -> (Value, String) {
        let before = self.outbox(phone).await;
        let r = self.anon_post(path, body).await;
        let status = r.status();
        let flow: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{flow}");
        (flow, self.code_after(phone, &before).await)
    }

    /// The code of the message to `phone` that was not among `before`, once it is stored (the
    /// manual clock gives messages equal times, so "newest" would be ambiguous).
    pub async fn code_after(&self, phone: &str, before: &[Value]) -> String {
        let all = eventually(|| async { Some(self.outbox(phone).await).filter(|m| m.len() > before.len()) }).await;
        let new = all.iter().find(|m| !before.contains(m)).expect("a new message");
        new["body"].as_str().unwrap().rsplit(' ').next().unwrap().to_string()
    }

    /// Verifies a flow with `code`; asserts 200.
    pub async fn verify_code(&self, flow: &Value, code: &str, session: Option<&str>) -> Value {
        let mut body = json!({ "flow_id": flow["flow_id"], "code": code });
        if let Some(s) = session {
            body["session"] = json!(s);
        }
        let r = self.anon_post("/api/auth/verify", body).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    /// Logs in by number and returns the verify answer.
    pub async fn log_in(&self, phone: &str) -> Value {
        let (flow, code) = self.flow_code("/api/auth/login", json!({ "phone": phone }), phone).await;
        self.verify_code(&flow, &code, None).await
    }

    pub async fn me_with(&self, token: &str) -> reqwest::Response {
        self.client.get(self.url("/api/me")).bearer_auth(token).send().await.unwrap()
    }
}

fn session_cookie(r: &reqwest::Response) -> String {
    let set =
        r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).find(|c| c.starts_with("phonegate_session="));
    let set = set.expect("a session cookie");
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn sign_up_then_log_in_by_number_and_with_password_plus_code() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    let signed = app.sign_up("Ada.L", &phone, Some("correct horse battery")).await;
    assert_eq!(signed["token_type"], "Bearer");
    assert_eq!(signed["expires_in"], 300);
    assert!(signed["refresh_token"].as_str().is_some_and(|t| t.starts_with("rt_")), "{signed}");
    assert_eq!((signed["user"]["username"].as_str(), signed["user"]["phone_number"].as_str()), (Some("Ada.L"), Some(phone.as_str())));
    let me: Value = app.me_with(signed["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(me["id"], signed["user"]["id"]);

    // Passwordless: the number.
    let (flow, code) = app.flow_code("/api/auth/login", json!({ "phone": phone }), &phone).await;
    assert_eq!(flow["next"], "code");
    let again = app.verify_code(&flow, &code, None).await;
    assert_eq!(again["user"]["id"], signed["user"]["id"]);

    // Password (username in any case, then the code to the account's number).
    let body = json!({ "identifier": "ada.l", "password": "correct horse battery" });
    let (flow, code) = app.flow_code("/api/auth/login", body, &phone).await;
    let third = app.verify_code(&flow, &code, None).await;
    assert_eq!(third["user"]["id"], signed["user"]["id"]);

    // Three logins, three sessions (each login a new one).
    let r = app.client.get(app.url("/api/me/sessions")).bearer_auth(third["access_token"].as_str().unwrap()).send().await.unwrap();
    let sessions: Value = r.json().await.unwrap();
    let list = sessions["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{sessions}");
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);

    // A username is unique ignoring case; the answer says which characters are allowed.
    let r = app.anon_post("/api/auth/signup", json!({ "username": "ADA.l", "phone": fresh_number() })).await;
    expect_error(r, 409, "username_taken").await;
    let r = app.anon_post("/api/auth/signup", json!({ "username": "ada lovelace", "phone": fresh_number() })).await;
    let e = expect_error(r, 400, "invalid_parameter").await;
    assert!(e["message"].as_str().unwrap().contains("letters a-z, digits"), "{e}");
    let r = app.anon_post("/api/auth/signup", json!({ "username": "bob", "phone": fresh_number(), "password": "short" })).await;
    expect_error(r, 400, "invalid_parameter").await;
}

/// Unknown number, unknown username, wrong password, right password: the same status and the
/// same body shape; only the right one sends a code, and no code opens a decoy.
#[tokio::test]
async fn logins_never_tell_whether_an_account_exists() {
    let app = TestApp::spawn().await;
    let (phone, stranger) = (fresh_number(), fresh_number());
    app.sign_up("grace", &phone, Some("correct horse battery")).await;
    let sent_before = app.outbox(&phone).await;

    let attempts = [
        json!({ "phone": stranger }),
        json!({ "identifier": "nobody", "password": "correct horse battery" }),
        json!({ "identifier": "grace", "password": "wrong horse battery" }),
        json!({ "identifier": "grace", "password": "correct horse battery" }),
    ];
    let mut shapes = Vec::new();
    let mut flows = Vec::new();
    for body in attempts {
        let r = app.anon_post("/api/auth/login", body).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let v: Value = r.json().await.unwrap();
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let id = v["flow_id"].as_str().unwrap();
        shapes.push((keys, id.len(), id.starts_with("fl"), v["resend_after"].clone()));
        flows.push(v);
    }
    assert!(shapes.windows(2).all(|w| w[0] == w[1]), "{shapes:?}");
    let code = app.code_after(&phone, &sent_before).await;
    assert_eq!(app.queued(&stranger).await, 0, "nothing is sent to an unknown number");
    assert_eq!(app.queued(&phone).await, sent_before.len() as i64 + 1, "only the right password sent a code");

    // A decoy accepts no code (not even the real one), and locks like a real flow.
    for (i, decoy) in flows[..3].iter().enumerate() {
        let r = app.anon_post("/api/auth/verify", json!({ "flow_id": decoy["flow_id"], "code": code })).await;
        let e = expect_error(r, 400, "code_incorrect").await;
        assert_eq!(e["attempts_left"], 4, "decoy {i}");
    }
    app.verify_code(&flows[3], &code, None).await;
}

#[tokio::test]
async fn wrong_expired_locked_and_used_codes_are_told_apart() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    let (flow, code) = app.flow_code("/api/auth/signup", json!({ "username": "wrongs", "phone": phone }), &phone).await;
    let verify = |c: String| app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": c }));
    let e = expect_error(verify(wrong(&code)).await, 400, "code_incorrect").await;
    assert_eq!(e["attempts_left"], 4);
    for _ in 0..3 {
        expect_error(verify(wrong(&code)).await, 400, "code_incorrect").await;
    }
    expect_error(verify(wrong(&code)).await, 429, "code_locked").await;
    expect_error(verify(code.clone()).await, 429, "code_locked").await;

    // Expired: a new flow, ten minutes later.
    let phone = fresh_number();
    let (flow, code) = app.flow_code("/api/auth/signup", json!({ "username": "late", "phone": phone }), &phone).await;
    app.advance(Duration::seconds(601));
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code })).await;
    expect_error(r, 410, "code_expired").await;

    // Used once: the same flow and code again.
    let phone = fresh_number();
    let (flow, code) = app.flow_code("/api/auth/signup", json!({ "username": "once", "phone": phone }), &phone).await;
    app.verify_code(&flow, &code, None).await;
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code })).await;
    expect_error(r, 404, "flow_not_found").await;
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": "fl0123456789abcdef0123456789abcdef", "code": "123456" })).await;
    expect_error(r, 404, "flow_not_found").await;
}

#[tokio::test]
async fn resends_wait_for_the_cooldown_and_send_the_same_code() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    let (flow, code) = app.flow_code("/api/auth/signup", json!({ "username": "again", "phone": phone }), &phone).await;
    assert_eq!(flow["resend_after"], 30);
    let r = app.anon_post("/api/auth/resend", json!({ "flow_id": flow["flow_id"] })).await;
    assert!(r.headers().get("retry-after").is_some());
    expect_error(r, 429, "resend_too_soon").await;
    app.advance(Duration::seconds(31));
    let r = app.anon_post("/api/auth/resend", json!({ "flow_id": flow["flow_id"] })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let first = app.outbox(&phone).await;
    assert_eq!(app.code_after(&phone, &first[..0]).await, code);
    eventually(|| async { (app.outbox(&phone).await.len() == 2).then_some(()) }).await;
    let sent = app.outbox(&phone).await;
    assert_eq!(sent[0]["body"], sent[1]["body"], "a resend carries the same code");
    app.verify_code(&flow, &code, None).await;
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_ends_the_whole_family() {
    let app = TestApp::spawn().await;
    let signed = app.sign_up("rotor", &fresh_number(), None).await;
    let first = signed["refresh_token"].as_str().unwrap().to_string();
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": first })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second: Value = r.json().await.unwrap();
    let second_token = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second_token, first);
    assert_eq!(app.me_with(second["access_token"].as_str().unwrap()).await.status(), StatusCode::OK);

    // The spent one again, after the reuse interval (10 s): refused, and the family (the
    // session) is gone, so the fresh one dies too.
    app.advance(Duration::seconds(11));
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": first })).await;
    expect_error(r, 401, "refresh_token_invalid").await;
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": second_token })).await;
    expect_error(r, 401, "refresh_token_invalid").await;
    let reuse = app.query_i64("SELECT COUNT(*) FROM audit_events WHERE kind = 'refresh_reuse'").await;
    assert_eq!(reuse, 1);
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": "rt_forged" })).await;
    expect_error(r, 401, "refresh_token_invalid").await;
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_all_get_its_one_successor() {
    let app = TestApp::spawn().await;
    let refresh = |token: &str| app.anon_post("/api/auth/refresh", json!({ "refresh_token": token }));
    for round in 0..3 {
        let signed = app.sign_up(&format!("racer{round}"), &fresh_number(), None).await;
        let token = signed["refresh_token"].as_str().unwrap().to_string();
        // Tabs of one app refreshing at the same moment: each gets an access token, all the same
        // refresh token, and the session stays one family.
        let answers = futures::future::join_all((0..8).map(|_| refresh(&token))).await;
        let mut successors = std::collections::BTreeSet::new();
        for r in answers {
            assert_eq!(r.status(), StatusCode::OK);
            let v: Value = r.json().await.unwrap();
            assert_eq!(app.me_with(v["access_token"].as_str().unwrap()).await.status(), StatusCode::OK);
            successors.insert(v["refresh_token"].as_str().unwrap().to_string());
        }
        assert_eq!(successors.len(), 1, "{successors:?}");
        let next = successors.pop_first().unwrap();
        assert!(next.starts_with("rt_") && next != token, "{next}");
        // The successor is an ordinary refresh token: spent once, and presented again after the
        // interval it ends the session (the newest token with it).
        let r = refresh(&next).await;
        assert_eq!(r.status(), StatusCode::OK);
        let newest = r.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_string();
        app.advance(Duration::seconds(11));
        expect_error(refresh(&next).await, 401, "refresh_token_invalid").await;
        expect_error(refresh(&newest).await, 401, "refresh_token_invalid").await;
        expect_error(refresh(&token).await, 401, "refresh_token_invalid").await;
    }
}

#[tokio::test]
async fn a_reuse_after_the_successor_was_spent_or_with_reuse_off_ends_the_session() {
    for reuse_secs in [10, 0] {
        let app = TestApp::spawn_with(|c| c.accounts.refresh_reuse_secs = reuse_secs).await;
        let refresh = |token: &str| app.anon_post("/api/auth/refresh", json!({ "refresh_token": token }));
        let token_of = |v: Value| v["refresh_token"].as_str().unwrap().to_string();
        let first = token_of(app.sign_up("spender", &fresh_number(), None).await);
        let second = token_of(refresh(&first).await.json().await.unwrap());
        let mut last = second.clone();
        if reuse_secs == 0 {
            // A unit that read the clock before it waited for the token's row (another instance
            // spent it meanwhile) sees a time before the spend: still a reuse.
            app.advance(Duration::milliseconds(-500));
        }
        if reuse_secs > 0 {
            // Within the interval, but the successor was spent already: theft, not a second tab.
            last = token_of(refresh(&second).await.json().await.unwrap());
        }
        expect_error(refresh(&first).await, 401, "refresh_token_invalid").await;
        expect_error(refresh(&last).await, 401, "refresh_token_invalid").await;
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM sessions").await, 0, "reuse_secs = {reuse_secs}");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM audit_events WHERE kind = 'refresh_reuse'").await, 1);
    }
}

#[tokio::test]
async fn browser_sessions_are_cookies_that_idle_out_and_end_at_their_absolute_lifetime() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    app.sign_up("cookie", &phone, None).await;
    let login = || async {
        let (flow, code) = app.flow_code("/api/auth/login", json!({ "phone": phone }), &phone).await;
        let r = app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code, "session": "cookie" })).await;
        assert_eq!(r.status(), StatusCode::OK);
        let set = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"), "{set}");
        assert!(!set.contains("Secure"), "plain-http localhost: no Secure flag ({set})");
        let cookie = session_cookie(&r);
        let body: Value = r.json().await.unwrap();
        assert!(body.get("refresh_token").is_none(), "{body}");
        cookie
    };
    let me = |cookie: String| app.client.get(app.url("/api/me")).header("cookie", cookie).send();
    let (a, b) = (login().await, login().await);
    assert_ne!(a, b, "every login gets a new session id");
    assert!(a.len() > "phonegate_session=".len() + 40, "at least 256 bits: {a}");
    assert_eq!(me(a.clone()).await.unwrap().status(), StatusCode::OK);

    // Used every 20 days, a session lives on…
    for _ in 0..4 {
        app.advance(Duration::days(20));
        assert_eq!(me(a.clone()).await.unwrap().status(), StatusCode::OK);
    }
    // …while the unused one idled out after 30 days.
    expect_error(me(b).await.unwrap(), 401, "unauthenticated").await;
    // Until its absolute lifetime (365 days) ends it.
    for _ in 0..15 {
        app.advance(Duration::days(20));
        let _ = me(a.clone()).await.unwrap();
    }
    expect_error(me(a).await.unwrap(), 401, "unauthenticated").await;
    let r = app.client.get(app.url("/api/me")).header("cookie", "phonegate_session=forged").send().await.unwrap();
    expect_error(r, 401, "unauthenticated").await;

    // The sweep deletes the ended sessions and the long-expired flows; the account stays.
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM sessions").await, 3);
    assert!(app.state.accounts.purge().await.unwrap() >= 6);
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM sessions").await, 0);
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM auth_flows").await, 0);
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM users").await, 1);
}

#[tokio::test]
async fn logout_ends_this_session_or_every_session() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    let first = app.sign_up("leaver", &phone, None).await;
    let second = app.log_in(&phone).await;
    let third = app.log_in(&phone).await;
    let bearer = |v: &Value| v["access_token"].as_str().unwrap().to_string();
    let refresh = |v: &Value| json!({ "refresh_token": v["refresh_token"] });

    let r = app.client.post(app.url("/api/auth/logout")).bearer_auth(bearer(&first)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    expect_error(app.anon_post("/api/auth/refresh", refresh(&first)).await, 401, "refresh_token_invalid").await;
    assert_eq!(app.anon_post("/api/auth/refresh", refresh(&second)).await.status(), StatusCode::OK);

    let r = app.client.post(app.url("/api/auth/logout")).bearer_auth(bearer(&third)).json(&json!({ "all": true })).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    expect_error(app.anon_post("/api/auth/refresh", refresh(&third)).await, 401, "refresh_token_invalid").await;
    let r = app.client.post(app.url("/api/auth/logout")).send().await.unwrap();
    expect_error(r, 401, "unauthenticated").await;
    let kinds = app.query_i64("SELECT COUNT(*) FROM audit_events WHERE kind IN ('signup', 'login', 'logout')").await;
    assert_eq!(kinds, 5, "one sign-up, two logins, two logouts");
}

#[tokio::test]
async fn a_user_revokes_another_session_changes_the_number_and_deletes_the_account() {
    let app = TestApp::spawn().await;
    let (phone, new_phone) = (fresh_number(), fresh_number());
    let mine = app.sign_up("mover", &phone, None).await;
    let other = app.log_in(&phone).await;
    let token = mine["access_token"].as_str().unwrap().to_string();

    // Revoke the other device's session: its refresh token stops working.
    let list: Value = app.client.get(app.url("/api/me/sessions")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let victim = list["sessions"].as_array().unwrap().iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_string();
    let r = app.client.delete(app.url(&format!("/api/me/sessions/{victim}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    expect_error(
        app.anon_post("/api/auth/refresh", json!({ "refresh_token": other["refresh_token"] })).await,
        401,
        "refresh_token_invalid",
    )
    .await;
    let r = app.client.delete(app.url(&format!("/api/me/sessions/{victim}"))).bearer_auth(&token).send().await.unwrap();
    expect_error(r, 404, "session_not_found").await;

    // Change the number: the code goes to the new one; only this user can complete the flow.
    let r = app.client.post(app.url("/api/me/phone")).bearer_auth(&token).json(&json!({ "phone": new_phone })).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let flow: Value = r.json().await.unwrap();
    let code = app.code_after(&new_phone, &[]).await;
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code })).await;
    expect_error(r, 404, "flow_not_found").await;
    let r = app
        .client
        .post(app.url("/api/me/phone/verify"))
        .bearer_auth(&token)
        .json(&json!({ "flow_id": flow["flow_id"], "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["phone_number"], new_phone.as_str());

    // Delete: every session and refresh token dies at once.
    let r = app.client.delete(app.url("/api/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    expect_error(app.anon_post("/api/auth/refresh", json!({ "refresh_token": mine["refresh_token"] })).await, 401, "refresh_token_invalid")
        .await;
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM sessions").await, 0);
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM users").await, 0);
    for kind in ["session_revoked", "phone_changed", "account_deleted"] {
        let sql: &'static str = Box::leak(format!("SELECT COUNT(*) FROM audit_events WHERE kind = '{kind}'").into_boxed_str());
        assert_eq!(app.query_i64(sql).await, 1, "{kind}");
    }
}

#[tokio::test]
async fn a_sign_up_for_a_number_with_an_account_signs_in_to_that_account() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    let first = app.sign_up("owner", &phone, None).await;
    let again = app.sign_up("intruder", &phone, None).await;
    assert_eq!(again["user"]["id"], first["user"]["id"]);
    assert_eq!(again["user"]["username"], "owner");
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM users").await, 1);
}

#[tokio::test]
async fn wrong_passwords_throttle_the_account_whatever_the_password_next() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    app.sign_up("target", &phone, Some("correct horse battery")).await;
    // A wrong password costs what a code to the account's number would: the sign-up's send leaves
    // the number's 10-minute send window first.
    app.advance(Duration::minutes(11));
    for _ in 0..5 {
        let r = app.anon_post("/api/auth/login", json!({ "identifier": "target", "password": "guess guess" })).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let r = app.anon_post("/api/auth/login", json!({ "identifier": "TARGET", "password": "correct horse battery" })).await;
    assert!(r.headers().get("retry-after").is_some());
    expect_error(r, 429, "login_throttled").await;
    // The same for a name nobody has, so the throttle tells nothing either.
    for _ in 0..5 {
        app.anon_post("/api/auth/login", json!({ "identifier": "ghost", "password": "guess guess" })).await;
    }
    let r = app.anon_post("/api/auth/login", json!({ "identifier": "ghost", "password": "guess guess" })).await;
    expect_error(r, 429, "login_throttled").await;
    // Fifteen minutes later the account may try again.
    app.advance(Duration::minutes(16));
    let r = app.anon_post("/api/auth/login", json!({ "identifier": "target", "password": "correct horse battery" })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn logins_from_one_address_are_throttled() {
    let app = TestApp::spawn_with(|c| c.budgets.logins_per_ip = vec!["3/15m".parse().unwrap()]).await;
    for _ in 0..3 {
        assert_eq!(app.anon_post("/api/auth/login", json!({ "phone": fresh_number() })).await.status(), StatusCode::ACCEPTED);
    }
    expect_error(app.anon_post("/api/auth/login", json!({ "phone": fresh_number() })).await, 429, "login_throttled").await;
    let r = app.anon_post("/api/auth/signup", json!({ "username": "late", "phone": fresh_number() })).await;
    expect_error(r, 429, "login_throttled").await;
}

/// A flood of password checks queues behind the hashing bound (one slot per core) without
/// holding up other requests: once the metrics show checks waiting for a slot, `/healthz`
/// answers, and the metrics read after that answer still show checks waiting.
#[tokio::test]
async fn a_login_flood_does_not_starve_other_requests() {
    // A wrong password's decoy costs a start like a real login's code: both budgets are raised.
    let app = TestApp::spawn_with(|c| {
        c.budgets.logins_per_ip = vec!["1000/1m".parse().unwrap()];
        c.budgets.starts_per_ip = vec!["1000/1m".parse().unwrap()];
    })
    .await;
    // The server hashes on as many slots as this machine has cores: the flood is more than
    // twice that, so checks queue even while the first ones are still arriving.
    const QUEUED: i64 = 8;
    let slots = std::thread::available_parallelism().map_or(1, |n| n.get());
    let logins = (0..2 * slots + 40).map(|i| {
        let request =
            app.client.post(app.url("/api/auth/login")).json(&json!({ "identifier": format!("user{i}"), "password": "wrong password" }));
        async move { request.send().await.unwrap().status() }
    });
    let flood = tokio::spawn(futures::future::join_all(logins.collect::<Vec<_>>()));
    let waiting = || async {
        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let line = metrics.lines().find_map(|l| l.strip_prefix("phonegate_password_checks_waiting "));
        line.expect("the gauge is exported").trim().parse::<i64>().unwrap()
    };
    let saturated = eventually(|| async { Some(waiting().await).filter(|n| *n >= QUEUED) }).await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let after = waiting().await;
    assert!(after > 0, "checks were waiting ({saturated}) before /healthz answered, none after: it waited for the flood");
    let statuses = flood.await.unwrap();
    assert!(statuses.iter().all(|s| *s == StatusCode::ACCEPTED), "{statuses:?}");
    assert_eq!(waiting().await, 0, "every check left the queue");
}

/// The app's webhook hears of every account created, renumbered and deleted, signed, and again
/// after a failed delivery.
#[tokio::test]
async fn the_apps_webhook_receives_signed_account_events_until_it_accepts_them() {
    use hmac::Mac;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let hook = MockServer::start().await;
    // The first delivery fails; the retry (after 30 s) and every later one succeed.
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).up_to_n_times(1).mount(&hook).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(204)).mount(&hook).await;
    let url = format!("{}/hooks/phonegate", hook.uri());
    let app = TestApp::spawn_with(move |c| {
        c.delivery.dispatch_interval = std::time::Duration::from_millis(20);
        c.account_webhook =
            Some(phonegate_providers::events::AppWebhookSettings { url, secret: phonegate_providers::Secret::new("app-secret") });
    })
    .await;
    let (phone, new_phone) = (fresh_number(), fresh_number());
    let signed = app.sign_up("hooked", &phone, None).await;
    let received = |n: usize| {
        let hook = &hook;
        eventually(move || async move { Some(hook.received_requests().await.unwrap_or_default()).filter(|r| r.len() >= n) })
    };
    received(1).await;
    app.advance(Duration::seconds(31));
    let token = signed["access_token"].as_str().unwrap();
    let r = app.client.post(app.url("/api/me/phone")).bearer_auth(token).json(&json!({ "phone": new_phone })).send().await.unwrap();
    let flow: Value = r.json().await.unwrap();
    let code = app.code_after(&new_phone, &[]).await;
    let body = json!({ "flow_id": flow["flow_id"], "code": code });
    let r = app.client.post(app.url("/api/me/phone/verify")).bearer_auth(token).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.client.delete(app.url("/api/me")).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let requests = received(4).await;
    let kinds: Vec<String> = requests.iter().map(|r| r.headers["x-phonegate-event"].to_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["user.created", "user.created", "user.phone_changed", "user.deleted"], "the failed delivery was retried");
    assert_eq!(requests[0].headers["idempotency-key"], requests[1].headers["idempotency-key"], "a retry is the same event");
    for r in &requests {
        let signature = r.headers["x-phonegate-signature"].to_str().unwrap();
        let (t, v1) = signature.split_once(',').unwrap();
        let (t, v1) = (t.trim_start_matches("t="), v1.trim_start_matches("v1="));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"app-secret").unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(&r.body);
        assert_eq!(hex::encode(mac.finalize().into_bytes()), v1);
        let event: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(event["data"]["user_id"], signed["user"]["id"]);
    }
    let last: Value = serde_json::from_slice(&requests[3].body).unwrap();
    assert_eq!((last["type"].as_str(), last["data"]["phone_number"].as_str()), (Some("user.deleted"), Some(new_phone.as_str())));
}

/// Two logins for one number share its pending code; once one is used, a resend for the other
/// sends a new code and that login goes on with it.
#[tokio::test]
async fn a_resend_after_another_login_used_the_code_continues_with_a_new_one() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    app.sign_up("shared", &phone, None).await;
    let (first, code) = app.flow_code("/api/auth/login", json!({ "phone": phone }), &phone).await;
    let r = app.anon_post("/api/auth/login", json!({ "phone": phone })).await;
    let second: Value = r.json().await.unwrap();
    app.verify_code(&first, &code, None).await;
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": second["flow_id"], "code": code })).await;
    expect_error(r, 404, "flow_not_found").await;
    app.advance(Duration::seconds(31));
    let before = app.outbox(&phone).await;
    let r = app.anon_post("/api/auth/resend", json!({ "flow_id": second["flow_id"] })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let fresh = app.code_after(&phone, &before).await;
    let signed = app.verify_code(&second, &fresh, None).await;
    assert_eq!(signed["user"]["username"], "shared");
}

/// Repeated logins for a number with an account and for one without meet the same refusal at
/// the same point: budgets tell nothing either.
#[tokio::test]
async fn repeated_logins_are_refused_alike_for_known_and_unknown_numbers() {
    let app = TestApp::spawn().await;
    let (known, unknown) = (fresh_number(), fresh_number());
    app.sign_up("known", &known, None).await;
    app.advance(Duration::minutes(11));
    let mut answers = Vec::new();
    for phone in [&known, &unknown] {
        let mut seen = Vec::new();
        for _ in 0..7 {
            let r = app.anon_post("/api/auth/login", json!({ "phone": phone })).await;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            seen.push((status, body["error"]["code"].as_str().unwrap_or("").to_string()));
        }
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].iter().filter(|(s, _)| *s == 202).count(), 5, "{:?}", answers[0]);
    assert_eq!(answers[0][6], (429, "send_budget_exceeded".to_string()));
}
