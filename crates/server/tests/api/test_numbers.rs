//! Test numbers: their fixed codes work through the native, Twilio and Vonage APIs and the login
//! pages; nothing is ever sent to them; they are marked as test in the API, the dev outbox,
//! the metrics and the audit log; they cost no send budget but wrong codes still lock them; and
//! a server refuses them where they could take real numbers unnoticed.
use crate::helpers::{TestApp, expect_error, fresh_number, providers, wrong};
use chrono::TimeZone;
use phonegate::app::App;
use phonegate::config::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Twilio's magic number, and a number of the UK's drama range (no assigned number at all).
const TEST: &str = "+15005550006";
const CODE: &str = "123456";
const DRAMA: &str = "+447700900123";
const DRAMA_CODE: &str = "024680";

fn with_test_numbers(c: &mut Config) {
    c.test_numbers.numbers.insert(TEST.into(), CODE.into());
    c.test_numbers.numbers.insert("+447700900*".into(), DRAMA_CODE.into());
}

/// A Twilio that accepts every message, and the app sending through it (test numbers allowed).
async fn with_twilio() -> (TestApp, MockServer) {
    let gateway = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SMtwilio" }))).mount(&gateway).await;
    let app = TestApp::spawn_with(|c| {
        with_test_numbers(c);
        c.allow_test_numbers = true;
        c.providers.insert("twilio".into(), providers::twilio(&gateway.uri(), 30_000));
    })
    .await;
    (app, gateway)
}

/// How many messages to `to` are (or were ever) for a provider to send: a test number's are
/// written already sent by the `test` pseudo-provider, in the unit that answered the request, so
/// none can ever be claimed for sending.
async fn sendable(app: &TestApp, to: &str) -> i64 {
    assert!(app.queued(to).await > 0, "messages to {to} were recorded");
    app.query_i64(&format!("SELECT COUNT(*) FROM messages WHERE to_number = '{to}' AND (provider IS NULL OR provider <> 'test')")).await
}

/// The numbers Twilio was asked to send to.
async fn sent_to(gateway: &MockServer) -> Vec<String> {
    let requests = gateway.received_requests().await.unwrap();
    let to = |r: &wiremock::Request| {
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&r.body).unwrap();
        form.into_iter().find(|(k, _)| k == "To").map(|(_, v)| v).unwrap_or_default()
    };
    requests.iter().map(to).collect()
}

async fn detail(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap()
}

#[tokio::test]
async fn a_test_number_gets_its_fixed_code_is_marked_test_and_nothing_reaches_the_provider() {
    let (app, gateway) = with_twilio().await;
    let v = app.start(TEST).await;
    let id = v["id"].as_str().unwrap();
    assert_eq!(v["test"], true, "{v}");
    let d = detail(&app, id).await;
    assert_eq!((d["test"].as_bool(), d["messages"][0]["provider"].as_str()), (Some(true), Some("test")), "{d}");
    assert_eq!(d["messages"][0]["status"], "sent");
    let r: Value = app.check(id, &wrong(CODE)).await.json().await.unwrap();
    assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("pending"), Some(false)));
    let r: Value = app.check(id, CODE).await.json().await.unwrap();
    assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("approved"), Some(true)));

    // A whole reserved range: its numbers need not be assigned ones.
    let v = app.start(DRAMA).await;
    assert_eq!(v["test"], true);
    let r = app.post("/api/verifications/check", json!({ "to": DRAMA, "code": DRAMA_CODE })).await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "approved");

    // Any other number is sent as ever, and says it is no test.
    let real = fresh_number();
    assert_eq!(app.start(&real).await["test"], false);
    assert_eq!(sent_to(&gateway).await, [real], "only the real number reached the provider");
    assert_eq!((sendable(&app, TEST).await, sendable(&app, DRAMA).await), (0, 0));

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let line =
        |event: &str| metrics.lines().any(|l| l.starts_with("phonegate_test_numbers_total{") && l.contains(&format!("event=\"{event}\"")));
    assert!(line("started") && line("approved"), "{metrics}");
    assert!(metrics.contains("phonegate_sms_attempts_total{provider=\"twilio\",result=\"ok\"} 1"), "{metrics}");
    let audit: Value = app.get("/api/audit?kind=test_number_used").await.json().await.unwrap();
    let subjects: Vec<&str> = audit["events"].as_array().unwrap().iter().filter_map(|e| e["subject"].as_str()).collect();
    assert!(subjects.contains(&TEST) && subjects.contains(&DRAMA), "{audit}");
    assert!(!audit.to_string().contains(CODE), "no code in the audit log");
}

#[tokio::test]
async fn test_numbers_work_through_the_twilio_and_vonage_apis_without_sending() {
    let (app, gateway) = with_twilio().await;
    let auth = |r: reqwest::RequestBuilder| r.basic_auth(&app.key_id, Some(&app.secret));
    let form = async |path: &str, params: &[(&str, &str)]| -> Value {
        let r = auth(app.client.post(app.url(path))).form(params).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    };
    let sid = form("/v2/Services", &[("FriendlyName", "My App")]).await["sid"].as_str().unwrap().to_string();
    let v = form(&format!("/v2/Services/{sid}/Verifications"), &[("To", TEST), ("Channel", "sms")]).await;
    assert_eq!(v["status"], "pending");
    let check = format!("/v2/Services/{sid}/VerificationCheck");
    let r = form(&check, &[("To", TEST), ("Code", &wrong(CODE))]).await;
    assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("pending"), Some(false)));
    let r = form(&check, &[("To", TEST), ("Code", CODE)]).await;
    assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("approved"), Some(true)));

    let vonage = |params: &[(&str, &str)]| {
        let mut all = vec![("api_key", app.key_id.as_str()), ("api_secret", app.secret.as_str())];
        all.extend_from_slice(params);
        all.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>()
    };
    let post = async |path: &str, params: Vec<(String, String)>| -> Value {
        app.client.post(app.url(path)).form(&params).send().await.unwrap().json().await.unwrap()
    };
    let started = post("/verify/json", vonage(&[("number", DRAMA.trim_start_matches('+')), ("brand", "Acme")])).await;
    assert_eq!(started["status"], "0", "{started}");
    let rid = started["request_id"].as_str().unwrap().to_string();
    let ok = post("/verify/check/json", vonage(&[("request_id", &rid), ("code", DRAMA_CODE)])).await;
    assert_eq!(ok["status"], "0", "{ok}");
    assert!(sent_to(&gateway).await.is_empty(), "nothing reached the provider");
    assert_eq!((sendable(&app, TEST).await, sendable(&app, DRAMA).await), (0, 0));
}

#[tokio::test]
async fn test_numbers_cost_no_send_budget_but_wrong_codes_still_lock_them() {
    let app = TestApp::spawn_with(|c| {
        with_test_numbers(c);
        c.budgets.sends_per_number = vec!["2/1h".parse().unwrap()];
        c.budgets.failed_checks_per_number = vec!["7/1h".parse().unwrap()];
    })
    .await;
    // Far more sends than the number's budget (and the verification's own resend limit) allow.
    let first = app.start(TEST).await;
    for _ in 0..7 {
        let again = app.start(TEST).await;
        assert_eq!((again["id"].as_str(), again["resent"].as_bool()), (first["id"].as_str(), Some(true)));
    }
    let real = fresh_number();
    app.start(&real).await;
    app.start(&real).await;
    expect_error(app.post("/api/verifications", json!({ "to": real })).await, 429, "send_budget_exceeded").await;

    // Attempts count as for any number: five wrong codes lock the verification, the right one too.
    let id = first["id"].as_str().unwrap();
    for attempt in 1..=5 {
        let r: Value = app.check(id, &wrong(CODE)).await.json().await.unwrap();
        assert_eq!(r["status"], if attempt < 5 { "pending" } else { "max_attempts_reached" });
    }
    expect_error(app.check(id, CODE).await, 409, "verification_max_attempts_reached").await;
    // And the number's guess budget holds across verifications.
    let second = app.start(TEST).await;
    let second = second["id"].as_str().unwrap();
    assert_ne!(second, id);
    assert_eq!(app.check(second, &wrong(CODE)).await.status(), StatusCode::OK);
    assert_eq!(app.check(second, &wrong(CODE)).await.status(), StatusCode::OK);
    expect_error(app.check(second, CODE).await, 429, "checks_locked").await;

    // The dev outbox shows what the test number was given, marked.
    let messages = app.outbox(TEST).await;
    assert_eq!(messages.len(), 9);
    assert!(messages.iter().all(|m| m["test"] == true && m["body"].as_str().unwrap().ends_with(CODE)), "{messages:?}");
    assert_eq!(app.outbox(&real).await[0]["test"], false);
    let page = app.client.get(app.url(&format!("/dev/outbox?to={}", TEST.replace('+', "%2B")))).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("(test number)"));
}

#[tokio::test]
async fn test_numbers_sign_up_and_log_in_through_the_api_and_the_pages() {
    let (app, gateway) = with_twilio().await;
    let r = app.anon_post("/api/auth/signup", json!({ "username": "tester", "phone": TEST })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let flow: Value = r.json().await.unwrap();
    let signed = app.verify_code(&flow, CODE, None).await;
    assert_eq!(signed["user"]["phone_number"], TEST);

    // The login pages, as a browser.
    let b = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let csrf = |html: &str| {
        let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
        html[at..].split('"').next().unwrap().to_string()
    };
    let html = b.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", csrf(&html)), ("phone", TEST.to_string()), ("return_to", String::new())];
    let r = b.post(app.url("/login")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let code_page = r.headers()["location"].to_str().unwrap().to_string();
    let flow = code_page.split("flow=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let html = b.get(app.url(&code_page)).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", csrf(&html)), ("flow", flow), ("code", CODE.to_string()), ("return_to", String::new())];
    let r = b.post(app.url("/login/code")).form(&form).send().await.unwrap();
    assert_eq!((r.status(), r.headers()["location"].to_str().unwrap()), (StatusCode::SEE_OTHER, "/account"));
    assert!(sent_to(&gateway).await.is_empty(), "no login code reached the provider");
    assert_eq!(sendable(&app, TEST).await, 0);
}

/// Builds an app from `configure`d settings and returns why it did not start.
async fn refused(configure: impl FnOnce(&mut Config)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let database_url = phonegate_store::testing::fresh_database_url(dir.path()).await.unwrap();
    let secret_file = phonegate_store::testing::secret_file(&database_url);
    let mut config = Config { listen: "127.0.0.1:0".parse().unwrap(), database_url, secret_file, ..Config::default() };
    configure(&mut config);
    let clock = std::sync::Arc::new(phonegate_core::ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()));
    match App::build(config, clock).await {
        Ok(_) => String::new(),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn a_server_refuses_test_numbers_where_they_could_take_real_numbers() {
    let twilio = |c: &mut Config| {
        with_test_numbers(c);
        c.providers.insert("twilio".into(), providers::twilio("http://127.0.0.1:9", 1000));
    };
    let e = refused(twilio).await;
    assert!(e.contains("allow_test_numbers = true") && e.contains("twilio"), "{e}");
    let allowed = |c: &mut Config| {
        twilio(c);
        c.allow_test_numbers = true;
    };
    assert_eq!(refused(allowed).await, "", "allowed, it starts");
    assert_eq!(refused(with_test_numbers).await, "", "the dev outbox needs no permission");

    let e = refused(|c| {
        c.test_numbers.numbers.insert("+4915*".into(), CODE.into());
    })
    .await;
    assert!(e.contains("\"+4915*\"") && e.contains("reserved fictional range"), "{e}");
    // A code must have the length its services' codes have.
    let e = refused(|c| {
        c.test_numbers.numbers.insert(TEST.into(), "1234".into());
    })
    .await;
    assert!(e.contains("4 digits") && e.contains("6-digit"), "{e}");
}
