//! A database that fails under a running server: every page and every API answers with its own
//! error shape, 500 or 503, a generic message carrying the request id and nothing of the failure
//! (no SQL, no driver, no file); the failure's detail goes to the log line with that request id.
use crate::helpers::{TestApp, fresh_number, providers};
use phonegate_core::Caller;
use phonegate_providers::signature::{VonageSigMethod, twilio_signature, vonage_signature};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const PUBLIC: &str = "https://verify.example.com";

/// Everything logged on this thread (the test's runtime runs the server too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Words that would tell of the failure's inside.
const INTERNAL_WORDS: [&str; 14] = [
    "sqlx",
    "sqlite",
    "postgres",
    "no such table",
    "relation",
    "does not exist",
    "select ",
    "insert ",
    "update ",
    "broken_",
    "/tmp",
    ".rs:",
    "panicked",
    "database error",
];

/// Checks one failed answer: the status, the request id it echoes in the body, nothing internal,
/// and a log line with that id and the failure's detail. `shape` checks the API's own body.
async fn check(what: &str, r: reqwest::Response, logs: &Logs, shape: impl Fn(u16, &str)) {
    let status = r.status().as_u16();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let body = r.text().await.unwrap();
    assert!(matches!(status, 500 | 503), "{what}: {status} {body}");
    shape(status, &body);
    assert!(body.contains(&id), "{what}: the answer names its request id {id}: {body}");
    let lower = body.to_lowercase().replace("database_unavailable", "");
    for word in INTERNAL_WORDS.iter().chain(&["database"]) {
        assert!(!lower.contains(word), "{what}: `{word}` in {body}");
    }
    let logged = logs.text();
    let line = logged.lines().find(|l| l.contains(&format!("request_id={id}")) && l.contains("detail="));
    assert!(line.is_some_and(|l| l.contains("broken_") || l.contains("no such table") || l.contains("does not exist")), "{what}: {logged}");
}

fn json_error(status: u16, body: &str) {
    let v: Value = serde_json::from_str(body).expect("a JSON error body");
    let code = v["error"]["code"].as_str().unwrap();
    assert!(matches!((status, code), (500, "internal_error") | (503, "database_unavailable")), "{body}");
}

fn html_page(_: u16, body: &str) {
    assert!(body.starts_with("<!doctype html>") || body.starts_with("<!DOCTYPE html>"), "{body}");
}

fn twilio_error(status: u16, body: &str) {
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        (v["status"].as_u64(), v["code"].as_u64()),
        (Some(status.into()), Some(if status == 500 { 20500 } else { 20503 })),
        "{body}"
    );
}

/// A browser with the page's anti-forgery cookie; the CSRF token of `path`'s form.
async fn form_token(app: &TestApp, browser: &reqwest::Client, path: &str) -> String {
    let html = browser.get(app.url(path)).send().await.unwrap().text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

/// A JWT for the redirect client `shop`.
fn shop_token(app: &TestApp, phone: &str) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = app.clock_now_unix();
    let claims = json!({ "iss": "shop-backend", "sub": "u-1", "iat": now, "exp": now + 300, "phone": phone, "jti": fresh_number() });
    let input = format!("{}.{}", b64(json!({ "alg": "HS256", "typ": "JWT" })), b64(claims));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"shop-secret-shop-secret-shop-secret").unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_failing_database_shows_every_page_and_api_a_generic_error_with_the_request_id() {
    let (logs, _guard) = Logs::capture();
    let app = TestApp::spawn_with(|c| {
        c.silent.simulator = true;
        c.redirect_clients.insert(
            "shop".into(),
            phonegate::config::RedirectClientSettings {
                secret: phonegate_providers::Secret::new("shop-secret-shop-secret-shop-secret"),
                issuer: "shop-backend".into(),
                return_urls: vec!["https://shop.example/done".into()],
                phone_claim: "phone".into(),
            },
        );
    })
    .await;
    // While the database works: an admin signed in (a browser session and API tokens), a
    // silent check link, a redirect step.
    let phone = fresh_number();
    app.state.accounts.create_admin(&Caller::system("tests"), "boss", &phone).await.unwrap();
    let tokens = app.log_in(&phone).await;
    let (access, refresh) = (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());
    let (flow, code) = app.flow_code("/api/auth/login", json!({ "phone": phone }), &phone).await;
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code, "session": "cookie" })).await;
    let cookie = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).find(|c| c.starts_with("phonegate_session="));
    let cookie = cookie.expect("a session cookie").split(';').next().unwrap().to_string();
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let signed_in = reqwest::Client::builder().cookie_provider(jar.clone()).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let anonymous = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let csrf = form_token(&app, &anonymous, "/login").await;
    let admin_csrf = form_token(&app, &signed_in, "/login").await;
    jar.add_cookie_str(&cookie, &app.base.parse().unwrap());
    let silent = || async {
        let v: Value = app.post("/api/verifications", json!({ "to": fresh_number(), "channel": "silent" })).await.json().await.unwrap();
        v["silent"]["check_url"].as_str().unwrap().to_string()
    };
    let check_url = silent().await;
    let opened = anonymous.get(silent().await).send().await.unwrap();
    let operator = opened.headers()["location"].to_str().unwrap().to_string();
    let callback = format!("/silent/callback/simulator?ref={}&outcome=match", operator.trim_start_matches("/silent/simulator/"));
    let step_page =
        app.client.get(app.url("/integrations/shop/verify")).query(&[("state", "s1"), ("session_token", &shop_token(&app, &phone))]);
    let step_page = step_page.send().await.unwrap().text().await.unwrap();
    let at = step_page.find("name=\"step\" value=\"").expect("a step form") + 19;
    let step = step_page[at..].split('"').next().unwrap().to_string();

    phonegate_store::testing::break_every_table(&app.database_url).await.unwrap();

    // The pages.
    let get = |c: &reqwest::Client, path: &str| c.get(app.url(path)).send();
    check("home", get(&signed_in, "/").await.unwrap(), &logs, html_page).await;
    check("login page", get(&signed_in, "/login").await.unwrap(), &logs, html_page).await;
    check("account", get(&signed_in, "/account").await.unwrap(), &logs, html_page).await;
    for page in ["/admin/members", "/admin/invites", "/admin/audit"] {
        check(page, get(&signed_in, page).await.unwrap(), &logs, html_page).await;
    }
    check("admin dashboard", get(&signed_in, "/admin/dashboard").await.unwrap(), &logs, html_page).await;
    let logout = signed_in.post(app.url("/logout")).form(&[("csrf", admin_csrf.as_str())]).send().await.unwrap();
    check("logout", logout, &logs, html_page).await;
    let login = anonymous.post(app.url("/login")).form(&[("csrf", csrf.as_str()), ("phone", &fresh_number())]).send().await.unwrap();
    check("login", login, &logs, html_page).await;
    let signup = [("csrf", csrf.as_str()), ("username", "newcomer"), ("phone", &fresh_number())];
    check("sign-up", anonymous.post(app.url("/signup")).form(&signup).send().await.unwrap(), &logs, html_page).await;
    check("check link", anonymous.get(&check_url).send().await.unwrap(), &logs, html_page).await;
    check("silent callback", get(&anonymous, &callback).await.unwrap(), &logs, html_page).await;
    let query = [("state", "s2".to_string()), ("session_token", shop_token(&app, &phone))];
    let begin = anonymous.get(app.url("/integrations/shop/verify")).query(&query).send().await.unwrap();
    check("redirect step", begin, &logs, html_page).await;
    let code_step = anonymous.post(app.url("/integrations/shop/verify")).form(&[("step", step.as_str()), ("code", "123456")]);
    check("redirect step's code", code_step.send().await.unwrap(), &logs, html_page).await;
    check("outbox page", app.get("/dev/outbox").await, &logs, json_error).await;

    // The native API, the accounts and admin APIs.
    check("start", app.post("/api/verifications", json!({ "to": fresh_number() })).await, &logs, json_error).await;
    check("services", app.get("/api/services").await, &logs, json_error).await;
    check("audit", app.get("/api/audit").await, &logs, json_error).await;
    check("outbox", app.get("/api/dev/outbox").await, &logs, json_error).await;
    check("API login", app.anon_post("/api/auth/login", json!({ "phone": fresh_number() })).await, &logs, json_error).await;
    check("refresh", app.anon_post("/api/auth/refresh", json!({ "refresh_token": refresh })).await, &logs, json_error).await;
    check("me", app.me_with(access).await, &logs, json_error).await;
    let members = app.client.get(app.url("/api/admin/members")).bearer_auth(access).send().await.unwrap();
    check("admin API", members, &logs, json_error).await;

    // The compat APIs, each in its own shape (Vonage answers HTTP 200 with its status 5).
    let twilio = app.client.post(app.url("/v2/Services/VA0123/Verifications")).basic_auth(&app.key_id, Some(&app.secret));
    let twilio = twilio.form(&[("To", fresh_number().as_str()), ("Channel", "sms")]).send().await.unwrap();
    check("Twilio compat", twilio, &logs, twilio_error).await;
    let vonage = [("api_key", app.key_id.as_str()), ("api_secret", &app.secret), ("number", &fresh_number()), ("brand", "Acme")];
    let r = app.client.post(app.url("/verify/json")).form(&vonage).send().await.unwrap();
    let (headers, body): (HeaderMap, Value) = (r.headers().clone(), r.json().await.unwrap());
    assert_eq!(body["status"], "5", "{body}");
    let text = body["error_text"].as_str().unwrap();
    assert!(text.contains(headers["x-request-id"].to_str().unwrap()) && !text.to_lowercase().contains("table"), "{body}");
}

#[tokio::test]
async fn a_failing_database_shows_signed_webhooks_a_generic_error_with_the_request_id() {
    let (logs, _guard) = Logs::capture();
    let app = TestApp::spawn_with(|c| {
        c.public_url = Some(PUBLIC.into());
        // Only their webhook credentials are used: nothing is sent.
        c.providers.insert("tw".into(), providers::twilio("http://127.0.0.1:9", 1_000));
        c.providers.insert("vg".into(), providers::vonage("http://127.0.0.1:9"));
        c.routing.default.providers = vec!["tw".into()];
    })
    .await;
    phonegate_store::testing::break_every_table(&app.database_url).await.unwrap();

    let path = "/webhooks/twilio/status";
    let receipt: Vec<(String, String)> = [("AccountSid", "AC0123"), ("MessageSid", "SMtw1"), ("MessageStatus", "delivered")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let signature = twilio_signature("twilio-token", &format!("{PUBLIC}{path}"), &receipt);
    let r = app.client.post(app.url(path)).header("X-Twilio-Signature", signature).form(&receipt).send().await.unwrap();
    check("Twilio webhook", r, &logs, json_error).await;

    let mut dlr: BTreeMap<String, String> = [("messageId", "vg-9"), ("status", "delivered"), ("api-key", "abcd1234")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    dlr.insert("timestamp".into(), app.clock_now_unix().to_string());
    let sig = vonage_signature("sig-secret", VonageSigMethod::Md5hash, &dlr);
    dlr.insert("sig".into(), sig);
    let r = app.client.post(app.url("/webhooks/vonage/dlr")).form(&dlr).send().await.unwrap();
    check("Vonage webhook", r, &logs, json_error).await;
}
