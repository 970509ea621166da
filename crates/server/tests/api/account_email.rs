//! A verified e-mail address on an account: `POST /api/me/email` sends a code to the address,
//! `POST /api/me/email/verify` proves it. An address given at sign-up is shown unverified; one
//! another account verified gets the same answer and nothing is sent; one another account only
//! gave is taken by the account that proves it. Budgets per address hold for both alike.
use crate::helpers::{TestApp, eventually, expect_error, fresh_number, wrong};
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn token(answer: &Value) -> String {
    answer["access_token"].as_str().unwrap().to_string()
}

/// A fresh address per call (tests never share an address's pending code or budgets), in the
/// lower case every address is kept in.
fn fresh_address(name: &str) -> String {
    format!("{}.{}@example.com", name.to_lowercase(), &fresh_number()[6..])
}

impl TestApp {
    async fn post_as(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
    }

    /// How many e-mails were ever queued to `address`.
    async fn mails_to(&self, address: &str) -> i64 {
        assert!(!address.contains('\''));
        self.query_i64(&format!("SELECT COUNT(*) FROM messages WHERE to_number = '{address}'")).await
    }

    /// Starts the proof of `address` for `token`'s account (202) and returns the flow.
    async fn change_email(&self, token: &str, address: &str) -> Value {
        let r = self.post_as(token, "/api/me/email", json!({ "email": address })).await;
        let status = r.status();
        let flow: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{flow}");
        flow
    }

    /// Proves `address` for `token`'s account: the flow, the code from the outbox, the check.
    async fn prove_email(&self, token: &str, address: &str) -> Value {
        let before = self.outbox(address).await;
        self.change_email(token, address).await;
        let code = self.code_after(address, &before).await;
        let r = self.post_as(token, "/api/me/email/verify", json!({ "code": code })).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }
}

#[tokio::test]
async fn an_address_is_proven_by_the_code_it_gets_and_then_shown_verified() {
    let app = TestApp::spawn().await;
    let given = fresh_address("given");
    let body = json!({ "username": "mailer", "phone": fresh_number(), "email": given });
    let (flow, code) = app.flow_code("/api/auth/signup", body.clone(), body["phone"].as_str().unwrap()).await;
    let me = token(&app.verify_code(&flow, &code, None).await);
    // Given at sign-up, not proven.
    let user: Value = app.me_with(&me).await.json().await.unwrap();
    assert_eq!((user["email"].as_str(), user["email_verified"].as_bool()), (Some(given.as_str()), Some(false)));

    let address = fresh_address("Ann.Lee");
    // Any spelling of the address is the same mailbox: kept in lower case.
    let flow = app.change_email(&me, &address.to_uppercase()).await;
    assert_eq!((flow["next"].as_str(), flow["resend_after"].as_i64()), (Some("code"), Some(30)), "{flow}");
    let mail = eventually(|| async { Some(app.outbox(&address).await).filter(|m| !m.is_empty()) }).await;
    assert_eq!((mail[0]["channel"].as_str(), mail[0]["subject"].as_str()), (Some("email"), Some("phonegate: your verification code")));
    let code = mail[0]["body"].as_str().unwrap().rsplit(' ').next().unwrap().to_string();
    assert!(mail[0]["html"].as_str().unwrap().contains(&format!(">{code}</p>")));
    // The account still shows the address it had until the code is given.
    let user: Value = app.me_with(&me).await.json().await.unwrap();
    assert_eq!(user["email"], given.as_str());

    let r = app.post_as(&me, "/api/me/email/verify", json!({ "code": wrong(&code) })).await;
    assert_eq!(expect_error(r, 400, "code_incorrect").await["attempts_left"], 4);
    // Without `flow_id`: the account's pending change.
    let r = app.post_as(&me, "/api/me/email/verify", json!({ "code": code })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let user: Value = r.json().await.unwrap();
    assert_eq!((user["email"].as_str(), user["email_verified"].as_bool()), (Some(address.as_str()), Some(true)));
    let user: Value = app.me_with(&me).await.json().await.unwrap();
    assert_eq!((user["email"].as_str(), user["email_verified"].as_bool()), (Some(address.as_str()), Some(true)));
    // Used: the same code proves nothing twice.
    expect_error(app.post_as(&me, "/api/me/email/verify", json!({ "code": code })).await, 404, "flow_not_found").await;
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM audit_events WHERE kind = 'email_changed'").await, 1);
}

#[tokio::test]
async fn an_address_another_account_verified_is_answered_alike_and_sent_nothing() {
    let app = TestApp::spawn().await;
    let holder = token(&app.sign_up("holder", &fresh_number(), None).await);
    let taken = fresh_address("taken");
    app.prove_email(&holder, &taken).await;
    assert_eq!(app.mails_to(&taken).await, 1);

    let other = token(&app.sign_up("other", &fresh_number(), None).await);
    let free = app.change_email(&other, &fresh_address("free")).await;
    let decoy = app.change_email(&other, &taken).await;
    // The same answer, field for field (but the flow's id).
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&decoy), keys(&free));
    assert_eq!((decoy["next"].clone(), decoy["resend_after"].clone()), (free["next"].clone(), free["resend_after"].clone()));
    assert_eq!(decoy["expires_at"], free["expires_at"]);
    // Nothing went to the holder's address, and no code is right.
    assert_eq!(app.mails_to(&taken).await, 1);
    for guess in ["000000", "123456"] {
        let r = app.post_as(&other, "/api/me/email/verify", json!({ "flow_id": decoy["flow_id"], "code": guess })).await;
        expect_error(r, 400, "code_incorrect").await;
    }
    let holder_view: Value = app.me_with(&holder).await.json().await.unwrap();
    assert_eq!((holder_view["email"].as_str(), holder_view["email_verified"].as_bool()), (Some(taken.as_str()), Some(true)));
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM audit_events WHERE kind = 'email_in_use'").await, 1);
}

#[tokio::test]
async fn proving_an_address_takes_it_from_an_account_that_only_gave_it() {
    let app = TestApp::spawn().await;
    let address = fresh_address("squatted");
    let phone = fresh_number();
    let body = json!({ "username": "squatter", "phone": phone, "email": address });
    let (flow, code) = app.flow_code("/api/auth/signup", body, &phone).await;
    let squatter = token(&app.verify_code(&flow, &code, None).await);
    let owner = token(&app.sign_up("owner", &fresh_number(), None).await);
    let user = app.prove_email(&owner, &address).await;
    assert_eq!((user["email"].as_str(), user["email_verified"].as_bool()), (Some(address.as_str()), Some(true)));
    let squatter_view: Value = app.me_with(&squatter).await.json().await.unwrap();
    assert_eq!((squatter_view["email"].clone(), squatter_view["email_verified"].as_bool()), (Value::Null, Some(false)));
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM audit_events WHERE kind = 'email_released'").await, 1);
}

#[tokio::test]
async fn a_change_needs_a_recent_login_its_own_user_and_an_address() {
    // Codes live longer than the login stays recent here.
    let app = TestApp::spawn_with(|c| c.accounts.code_ttl_secs = 3600).await;
    let signed = app.sign_up("careful", &fresh_number(), None).await;
    let me = token(&signed);
    for bad in ["not-an-address", "a@localhost", ""] {
        expect_error(app.post_as(&me, "/api/me/email", json!({ "email": bad })).await, 400, "invalid_parameter").await;
    }
    let address = fresh_address("mine");
    let flow = app.change_email(&me, &address).await;
    let code = app.code_after(&address, &[]).await;
    // Somebody else's session cannot finish it, not even with the code.
    let stranger = token(&app.sign_up("stranger", &fresh_number(), None).await);
    let r = app.post_as(&stranger, "/api/me/email/verify", json!({ "flow_id": flow["flow_id"], "code": code })).await;
    expect_error(r, 404, "flow_not_found").await;
    expect_error(app.post_as(&stranger, "/api/me/email/verify", json!({ "code": code })).await, 404, "flow_not_found").await;
    // Nor does the login API.
    expect_error(app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code })).await, 404, "flow_not_found").await;
    // Nor an old login.
    app.advance(Duration::minutes(11));
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": signed["refresh_token"] })).await;
    let later = token(&r.json::<Value>().await.unwrap());
    let r = app.post_as(&later, "/api/me/email/verify", json!({ "flow_id": flow["flow_id"], "code": code })).await;
    expect_error(r, 403, "reauthentication_required").await;
    expect_error(app.post_as(&later, "/api/me/email", json!({ "email": fresh_address("later") })).await, 403, "reauthentication_required")
        .await;
    let unauthenticated = app.anon_post("/api/me/email", json!({ "email": fresh_address("anon") })).await;
    expect_error(unauthenticated, 401, "unauthenticated").await;
}

#[tokio::test]
async fn the_address_budget_refuses_a_real_change_and_a_decoy_alike() {
    let app = TestApp::spawn_with(|c| {
        c.budgets.logins_per_ip = vec![];
        c.budgets.starts_per_ip = vec![];
    })
    .await;
    let holder = token(&app.sign_up("first", &fresh_number(), None).await);
    let taken = fresh_address("taken");
    app.prove_email(&holder, &taken).await;
    let other = token(&app.sign_up("second", &fresh_number(), None).await);
    let free = fresh_address("free");
    app.change_email(&other, &free).await;
    // An address gets five codes in ten minutes (the e-mail default), whoever holds it: the
    // holder's proof was one, so was the first change of the free address.
    for _ in 0..4 {
        app.change_email(&other, &free).await;
        app.change_email(&other, &taken).await;
    }
    let over_free = app.post_as(&other, "/api/me/email", json!({ "email": free })).await;
    let over_taken = app.post_as(&other, "/api/me/email", json!({ "email": taken })).await;
    let (free_wait, taken_wait) = (over_free.headers()["retry-after"].clone(), over_taken.headers()["retry-after"].clone());
    let free_error = expect_error(over_free, 429, "send_budget_exceeded").await;
    let taken_error = expect_error(over_taken, 429, "send_budget_exceeded").await;
    assert_eq!(free_error, taken_error);
    assert_eq!(free_wait, taken_wait);
}

/// The CSRF token of a page's first form.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

/// The account page's e-mail section, without JavaScript: an address, its code (a wrong one said
/// on the page, in the browser's language), then the address shown verified.
#[tokio::test]
async fn the_account_page_adds_an_address_and_takes_its_code() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    app.sign_up("paged.mail", &phone, None).await;
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

    let html = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"action="/account/email""#) && html.contains("No e-mail address yet."), "{html}");
    assert!(!html.contains(r#"action="/account/email/verify""#), "no code asked for yet: {html}");
    let csrf = csrf_of(&html);
    let post = |path: &'static str, fields: Vec<(&'static str, String)>, lang: &'static str| {
        b.post(app.url(path)).header("accept-language", lang).form(&fields).send()
    };
    let address = fresh_address("paged");
    // Without the form's token: refused, nothing sent.
    let r = post("/account/email", vec![("email", address.clone())], "en").await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.mails_to(&address).await, 0);
    let r = post("/account/email", vec![("csrf", csrf.clone()), ("email", "nope".into())], "de").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"role="alert""#) && html.contains("Geben Sie eine E-Mail-Adresse wie name@example.com ein."), "{html}");

    let r = post("/account/email", vec![("csrf", csrf.clone()), ("email", address.clone())], "en").await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let waiting = location(&r);
    assert!(waiting.starts_with("/account?email_flow=") && waiting.ends_with("#email"), "{waiting}");
    let code = app.code_after(&address, &[]).await;
    let html = b.get(app.url(&waiting)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("We e-mailed you a code.") && html.contains(r#"action="/account/email/verify""#), "{html}");
    let flow = waiting.split("email_flow=").nth(1).unwrap().split('#').next().unwrap().to_string();
    let r =
        post("/account/email/verify", vec![("csrf", csrf.clone()), ("flow", flow.clone()), ("code", wrong(&code))], "en").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    assert!(html.contains("Check the e-mail and try again.") && html.contains(r#"name="flow" value=""#), "the form stays: {html}");
    let r = post("/account/email/verify", vec![("csrf", csrf), ("flow", flow), ("code", code)], "en").await.unwrap();
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, "/account?done=email".to_string()));
    let html = b.get(app.url("/account?done=email")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Your e-mail address was verified.") && html.contains(&address) && html.contains(">verified</span>"), "{html}");
}
