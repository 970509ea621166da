//! `POST /api/me/password` and the account page's password form: a passwordless account sets a
//! password (after a recent login) and then logs in with password + code; a change needs the
//! current password, whose wrong guesses count as failed logins of the account; either ends every
//! other session and keeps the caller's; the password is never logged.
use crate::helpers::{Server, TestApp, cli_key, eventually, expect_error, fresh_number};
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn token(answer: &Value) -> String {
    answer["access_token"].as_str().unwrap().to_string()
}

impl TestApp {
    /// `POST /api/me/password` with an access token.
    async fn set_password(&self, token: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url("/api/me/password")).bearer_auth(token).json(&body).send().await.unwrap()
    }

    /// A password login of `identifier` up to its code, and the verify answer.
    async fn password_login(&self, identifier: &str, password: &str, phone: &str) -> Value {
        self.advance(Duration::seconds(31));
        let body = json!({ "identifier": identifier, "password": password });
        let (flow, code) = self.flow_code("/api/auth/login", body, phone).await;
        self.verify_code(&flow, &code, None).await
    }

    /// How many audit events of `kind` concern `user`.
    async fn audited(&self, kind: &str, user: &str) -> usize {
        let events: Value = self.get(&format!("/api/audit?kind={kind}&limit=100")).await.json().await.unwrap();
        events["events"].as_array().unwrap().iter().filter(|e| e["subject"] == user).count()
    }
}

#[tokio::test]
async fn a_passwordless_account_sets_a_password_and_then_logs_in_with_password_and_code() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    let signed = app.sign_up("nopass", &phone, None).await;
    let (me, id) = (token(&signed), signed["user"]["id"].as_str().unwrap().to_string());
    assert_eq!(signed["user"]["has_password"], false);
    let before: Value = app.me_with(&me).await.json().await.unwrap();
    assert_eq!(before["has_password"], false);

    let r = app.set_password(&me, json!({ "new_password": "correct horse battery" })).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let user: Value = r.json().await.unwrap();
    assert_eq!((user["id"].as_str(), user["has_password"].as_bool()), (Some(id.as_str()), Some(true)), "{user}");
    let after: Value = app.me_with(&me).await.json().await.unwrap();
    assert_eq!(after, user, "the answer is GET /api/me's");
    assert_eq!(app.audited("password_changed", &id).await, 1);

    // The password login: username (any case) or nothing else, then the code to the number.
    let again = app.password_login("NoPass", "correct horse battery", &phone).await;
    assert_eq!(again["user"]["id"].as_str(), Some(id.as_str()));
    assert_eq!(again["user"]["has_password"], true);
    // A wrong password still gets a decoy: nothing is sent.
    let sent = app.queued(&phone).await;
    app.advance(Duration::seconds(31));
    let r = app.anon_post("/api/auth/login", json!({ "identifier": "nopass", "password": "wrong horse battery" })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(app.queued(&phone).await, sent);
}

#[tokio::test]
async fn a_change_needs_the_current_password_and_wrong_ones_count_as_failed_logins() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    let signed = app.sign_up("changer", &phone, Some("first password")).await;
    let (me, id) = (token(&signed), signed["user"]["id"].as_str().unwrap().to_string());
    assert_eq!(signed["user"]["has_password"], true);

    let e = expect_error(app.set_password(&me, json!({ "new_password": "second password" })).await, 400, "invalid_parameter").await;
    assert!(e["message"].as_str().unwrap().starts_with("current_password:"), "{e}");
    let blank = json!({ "new_password": "second password", "current_password": "" });
    expect_error(app.set_password(&me, blank).await, 400, "invalid_parameter").await;
    // Five wrong current passwords: the account's failed-login budget (5 in 15 minutes) is spent,
    // here and for password logins alike.
    let wrong = json!({ "new_password": "second password", "current_password": "not the password" });
    for _ in 0..5 {
        let e = expect_error(app.set_password(&me, wrong.clone()).await, 400, "password_incorrect").await;
        assert!(!e.to_string().contains("first password"), "{e}");
    }
    assert_eq!(app.audited("password_change_failed", &id).await, 5);
    let right = json!({ "new_password": "second password", "current_password": "first password" });
    let r = app.set_password(&me, right.clone()).await;
    assert!(r.headers().contains_key("retry-after"));
    expect_error(r, 429, "login_throttled").await;
    let r = app.anon_post("/api/auth/login", json!({ "identifier": "changer", "password": "first password" })).await;
    expect_error(r, 429, "login_throttled").await;

    // After the window the right one changes it (no recent login needed: the password is the proof).
    app.advance(Duration::minutes(16));
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": signed["refresh_token"] })).await;
    let me = token(&r.json::<Value>().await.unwrap());
    let r = app.set_password(&me, right).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.audited("password_changed", &id).await, 1);
    // The old password is a wrong one now; the new one signs in.
    let sent = app.queued(&phone).await;
    app.anon_post("/api/auth/login", json!({ "identifier": "changer", "password": "first password" })).await;
    assert_eq!(app.queued(&phone).await, sent, "the old password sends no code");
    let again = app.password_login("changer", "second password", &phone).await;
    assert_eq!(again["user"]["id"].as_str(), Some(id.as_str()));
}

#[tokio::test]
async fn a_wrong_current_password_given_by_e_mail_login_counts_for_the_e_mail_too() {
    let app = TestApp::spawn_with(|c| c.budgets.failed_logins_per_account = vec!["2/15m".parse().unwrap()]).await;
    let phone = fresh_number();
    let body = json!({ "username": "mailer", "phone": phone, "email": "Mailer@Example.com", "password": "first password" });
    let (flow, code) = app.flow_code("/api/auth/signup", body, &phone).await;
    let me = token(&app.verify_code(&flow, &code, None).await);
    let wrong = json!({ "new_password": "second password", "current_password": "not the password" });
    for _ in 0..2 {
        expect_error(app.set_password(&me, wrong.clone()).await, 400, "password_incorrect").await;
    }
    for identifier in ["mailer", "mailer@example.com"] {
        let r = app.anon_post("/api/auth/login", json!({ "identifier": identifier, "password": "first password" })).await;
        expect_error(r, 429, "login_throttled").await;
    }
}

#[tokio::test]
async fn a_weak_new_password_is_refused_like_at_sign_up() {
    let app = TestApp::spawn().await;
    let me = token(&app.sign_up("weakling", &fresh_number(), None).await);
    for weak in ["short".to_string(), "1234567".into(), "x".repeat(129)] {
        let e = expect_error(app.set_password(&me, json!({ "new_password": weak })).await, 400, "invalid_parameter").await;
        assert_eq!(e["message"], "new_password: must be 8 to 128 characters", "{e}");
    }
    let me: Value = app.me_with(&me).await.json().await.unwrap();
    assert_eq!(me["has_password"], false);
    // The same rule as sign-up's: 8 characters are enough (and 128 not too many).
    let ok = app.set_password(&token(&app.sign_up("edge", &fresh_number(), None).await), json!({ "new_password": "x".repeat(128) })).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_other_session_ends_and_the_callers_stays() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    let first = app.sign_up("many", &phone, None).await;
    let other_app = app.log_in(&phone).await;
    let (flow, code) = app.flow_code("/api/auth/login", json!({ "phone": phone }), &phone).await;
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code, "session": "cookie" })).await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let me = app.log_in(&phone).await;
    let app = &app;
    let sessions = |t: String| async move {
        let r = app.client.get(app.url("/api/me/sessions")).bearer_auth(t).send().await.unwrap();
        r.json::<Value>().await.unwrap()["sessions"].as_array().unwrap().clone()
    };
    assert_eq!(sessions(token(&me)).await.len(), 4);

    let r = app.set_password(&token(&me), json!({ "new_password": "correct horse battery" })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let left = sessions(token(&me)).await;
    assert_eq!((left.len(), &left[0]["current"]), (1, &json!(true)), "{left:?}");
    // The other apps' refresh tokens and the browser's cookie are dead; this app's refresh works.
    for answer in [&first, &other_app] {
        let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": answer["refresh_token"] })).await;
        expect_error(r, 401, "refresh_token_invalid").await;
    }
    let r = app.client.get(app.url("/api/me")).header("cookie", &cookie).send().await.unwrap();
    expect_error(r, 401, "unauthenticated").await;
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": me["refresh_token"] })).await;
    assert_eq!(r.status(), StatusCode::OK);
    // An access token of an ended session can no longer change the password.
    let body = json!({ "new_password": "stolen and changed", "current_password": "correct horse battery" });
    expect_error(app.set_password(&token(&first), body).await, 401, "unauthenticated").await;
}

/// Two devices set a first password at once: one wins, the other is refused (its session ended,
/// or the password it did not know came first), and the winner's password is the one that works.
#[tokio::test]
async fn of_two_first_passwords_at_once_one_is_set() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    let (a, b) = (token(&app.sign_up("racing", &phone, None).await), token(&app.log_in(&phone).await));
    let (ra, rb) = tokio::join!(
        app.set_password(&a, json!({ "new_password": "password of a" })),
        app.set_password(&b, json!({ "new_password": "password of b" }))
    );
    let (sa, sb) = (ra.status(), rb.status());
    assert_eq!([sa, sb].iter().filter(|s| **s == StatusCode::OK).count(), 1, "{sa} {sb}");
    let loser = if sa == StatusCode::OK { sb } else { sa };
    assert!([StatusCode::UNAUTHORIZED, StatusCode::BAD_REQUEST].contains(&loser), "{loser}");
    let winner = if sa == StatusCode::OK { "password of a" } else { "password of b" };
    let signed = app.password_login("racing", winner, &phone).await;
    assert_eq!(signed["user"]["has_password"], true);
}

#[tokio::test]
async fn a_browser_session_changes_it_from_its_own_pages_only_and_stays_signed_in() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    app.sign_up("browsing", &phone, None).await;
    let (flow, code) = app.flow_code("/api/auth/login", json!({ "phone": phone }), &phone).await;
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code, "session": "cookie" })).await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let post =
        || app.client.post(app.url("/api/me/password")).header("cookie", &cookie).json(&json!({ "new_password": "from the browser" }));
    expect_error(post().header("origin", "https://evil.example").send().await.unwrap(), 403, "csrf_failed").await;
    let r = post().header("sec-fetch-site", "same-origin").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = app.client.get(app.url("/api/me")).header("cookie", &cookie).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["has_password"], true);
}

#[tokio::test]
async fn without_a_session_or_with_an_old_login_a_first_password_is_refused() {
    let app = TestApp::spawn().await;
    let body = json!({ "new_password": "correct horse battery" });
    let r = app.client.post(app.url("/api/me/password")).json(&body).send().await.unwrap();
    expect_error(r, 401, "unauthenticated").await;
    expect_error(app.set_password("not-a-token", body.clone()).await, 401, "unauthenticated").await;

    // Eleven minutes after the login the session is live (a refreshed token works) but not fresh.
    let phone = fresh_number();
    let signed = app.sign_up("stale", &phone, None).await;
    app.advance(Duration::minutes(11));
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": signed["refresh_token"] })).await;
    let later = token(&r.json::<Value>().await.unwrap());
    expect_error(app.set_password(&later, body.clone()).await, 403, "reauthentication_required").await;
    let me: Value = app.me_with(&later).await.json().await.unwrap();
    assert_eq!(me["has_password"], false);
    // A fresh login (a code to the number) may.
    let fresh = app.log_in(&phone).await;
    assert_eq!(app.set_password(&token(&fresh), body).await.status(), StatusCode::OK);
    // A change with the current password needs no fresh login.
    app.advance(Duration::minutes(11));
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": fresh["refresh_token"] })).await;
    let fresh = token(&r.json::<Value>().await.unwrap());
    let change = json!({ "new_password": "another good one", "current_password": "correct horse battery" });
    assert_eq!(app.set_password(&fresh, change).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_apps_webhook_hears_of_the_change_without_the_password() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let hook = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(204)).mount(&hook).await;
    let url = format!("{}/hooks", hook.uri());
    let app = TestApp::spawn_with(move |c| {
        c.delivery.dispatch_interval = std::time::Duration::from_millis(20);
        c.account_webhook =
            Some(phonegate_providers::events::AppWebhookSettings { url, secret: phonegate_providers::Secret::new("app-secret") });
    })
    .await;
    let signed = app.sign_up("hooked", &fresh_number(), None).await;
    let r = app.set_password(&token(&signed), json!({ "new_password": "correct horse battery" })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let requests = eventually(|| async { Some(hook.received_requests().await.unwrap_or_default()).filter(|r| r.len() >= 2) }).await;
    let event: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!((event["type"].as_str(), &event["data"]["user_id"]), (Some("user.password_changed"), &signed["user"]["id"]));
    assert!(!String::from_utf8_lossy(&requests[1].body).contains("correct horse"));
}

/// A real server process logging at debug level: neither a new, a current nor a wrong password
/// appears in its logs.
#[tokio::test]
async fn no_password_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    let secret = cli_key(&db, "outbox");
    let mut server = tokio::task::spawn_blocking(move || Server::spawn(&db, &[("RUST_LOG", "debug")])).await.unwrap();
    let (client, base, phone) = (reqwest::Client::new(), server.base.clone(), fresh_number());
    let post = |path: &str, body: Value| client.post(format!("{base}{path}")).json(&body);
    let flow: Value = post("/api/auth/signup", json!({ "username": "logged", "phone": phone })).send().await.unwrap().json().await.unwrap();
    let outbox = format!("{base}/api/dev/outbox?to={}", phone.replace('+', "%2B"));
    let messages = eventually(|| async {
        let v: Value = client.get(&outbox).bearer_auth(&secret).send().await.ok()?.json().await.ok()?;
        v["messages"].as_array().filter(|m| !m.is_empty()).cloned()
    })
    .await;
    let code = messages[0]["body"].as_str().unwrap().rsplit(' ').next().unwrap().to_string();
    let signed: Value =
        post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code })).send().await.unwrap().json().await.unwrap();
    let me = token(&signed);
    let set = |body: Value| post("/api/me/password", body).bearer_auth(&me).send();
    assert_eq!(set(json!({ "new_password": "first-secret-6b1f" })).await.unwrap().status(), StatusCode::OK);
    let wrong = json!({ "new_password": "second-secret-2c9e", "current_password": "wrong-secret-8d3a" });
    assert_eq!(set(wrong).await.unwrap().status(), StatusCode::BAD_REQUEST);
    let right = json!({ "new_password": "second-secret-2c9e", "current_password": "first-secret-6b1f" });
    assert_eq!(set(right).await.unwrap().status(), StatusCode::OK);
    let (_, logs) = tokio::task::spawn_blocking(move || server.stop()).await.unwrap();
    assert!(logs.contains("accounts.set_password") || logs.contains("/api/me/password"), "the requests were logged");
    for password in ["first-secret", "second-secret", "wrong-secret"] {
        assert!(!logs.contains(password), "the logs contain `{password}`");
    }
}

/// The CSRF token of a page's first form.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

/// The account page's form, without JavaScript: a first password (no field for a current one),
/// refusals shown on the page in the browser's language, then a change with the current one.
#[tokio::test]
async fn the_account_page_sets_and_then_changes_the_password() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    app.sign_up("paged", &phone, None).await;
    let b = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let location = |r: &reqwest::Response| r.headers()["location"].to_str().unwrap().to_string();
    let html = b.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let before = app.outbox(&phone).await;
    let r = b.post(app.url("/login")).form(&[("csrf", csrf_of(&html)), ("phone", phone.clone())]).send().await.unwrap();
    let (code_page, code) = (location(&r), app.code_after(&phone, &before).await);
    let flow = code_page.split("flow=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let html = b.get(app.url(&code_page)).send().await.unwrap().text().await.unwrap();
    let r = b.post(app.url("/login/code")).form(&[("csrf", csrf_of(&html)), ("flow", flow), ("code", code)]).send().await.unwrap();
    assert_eq!(location(&r), "/account");

    let page = || async { b.get(app.url("/account")).send().await.unwrap().text().await.unwrap() };
    let html = page().await;
    assert!(html.contains(r#"action="/account/password""#) && html.contains("Set password"), "{html}");
    assert!(!html.contains(r#"name="current_password""#), "no current password to give: {html}");
    let submit = |fields: Vec<(&'static str, String)>, lang: &'static str| {
        b.post(app.url("/account/password")).header("accept-language", lang).form(&fields).send()
    };
    // Without the form's token: refused, nothing set.
    let r = submit(vec![("new_password", "correct horse battery".into())], "en").await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let csrf = csrf_of(&html);
    let r = submit(vec![("csrf", csrf.clone()), ("new_password", "short".into())], "en").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"role="alert""#) && html.contains("The password must be 8 to 128 characters."), "{html}");
    let r = submit(vec![("csrf", csrf.clone()), ("new_password", "correct horse battery".into())], "en").await.unwrap();
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, "/account?done=password".to_string()));
    let html = b.get(app.url("/account?done=password")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Your password was saved.") && html.contains("Change password"), "{html}");
    assert!(html.contains(r#"name="current_password""#), "{html}");

    // A change: the current password is checked, and a wrong one said so (here in German).
    let wrong = vec![("csrf", csrf.clone()), ("current_password", "not it at all".into()), ("new_password", "battery staple".into())];
    let r = submit(wrong, "de").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    assert!(html.contains("Das ist nicht Ihr aktuelles Passwort.") && html.contains("Aktuelles Passwort"), "{html}");
    let right = vec![("csrf", csrf), ("current_password", "correct horse battery".into()), ("new_password", "battery staple".into())];
    let r = submit(right, "en").await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The browser stays signed in; the new password logs in with a code.
    assert!(page().await.contains("paged"));
    let again = app.password_login("paged", "battery staple", &phone).await;
    assert_eq!(again["user"]["username"], "paged");
}
