//! The client's address behind trusted proxies: what a client writes into a forwarding header
//! never becomes the address it is recorded and budgeted under.
use crate::helpers::{TestApp, expect_error, fresh_number};
use chrono::Duration;
use phonegate::config::ClientIpHeader;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn behind_proxy(header: ClientIpHeader) -> impl FnOnce(&mut phonegate::config::Config) {
    move |c| {
        c.http.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        c.http.client_ip_header = header;
    }
}

/// The address a forged webhook is audited under when the proxy forwards `header: value`.
async fn recorded_ip(app: &TestApp, header: &str, value: &str) -> String {
    let r = app.client.post(app.url("/webhooks/twilio/sms")).header(header, value).form(&[("Body", "STOP")]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r: Value = app.get("/api/audit?kind=webhook_forged&limit=1").await.json().await.unwrap();
    app.advance(Duration::minutes(2)); // a repeated refusal is audited once a minute
    r["events"][0]["ip"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_client_written_entry_left_of_unknown_is_never_the_client() {
    let app = TestApp::spawn_with(behind_proxy(ClientIpHeader::XForwardedFor)).await;
    assert_eq!(recorded_ip(&app, "x-forwarded-for", "203.0.113.9, unknown, 198.51.100.7").await, "198.51.100.7");
    assert_eq!(recorded_ip(&app, "x-forwarded-for", "203.0.113.9, unknown, 127.0.0.2").await, "127.0.0.2", "ends at the hop");
    assert_eq!(recorded_ip(&app, "forwarded", "for=203.0.113.9").await, "127.0.0.1", "not the configured header");
}

#[tokio::test]
async fn the_forwarded_header_names_the_client_when_configured() {
    let app = TestApp::spawn_with(behind_proxy(ClientIpHeader::Forwarded)).await;
    let forwarded = r#"for=203.0.113.9, for=unknown, for="[2001:db8::7]:4711";proto=https"#;
    assert_eq!(recorded_ip(&app, "forwarded", forwarded).await, "2001:db8::7");
    assert_eq!(recorded_ip(&app, "forwarded", "for=203.0.113.9, for=_hidden").await, "127.0.0.1");
    assert_eq!(recorded_ip(&app, "x-forwarded-for", "203.0.113.9").await, "127.0.0.1", "not the configured header");
}

/// The per-address login budget (30 per 15 minutes by default) holds however the client rotates
/// the entry it writes itself, and charges the real client, not everyone behind the proxy.
#[tokio::test]
async fn rotating_a_spoofed_entry_does_not_escape_the_login_budget() {
    let app = TestApp::spawn_with(|c| {
        behind_proxy(ClientIpHeader::XForwardedFor)(c);
        c.budgets.starts_per_ip = vec!["1000/1h".parse().unwrap()];
    })
    .await;
    let login = |spoofed: u32, real: &str| {
        let forwarded = format!("203.0.{}.{}, unknown, {real}", spoofed / 256, spoofed % 256);
        app.client.post(app.url("/api/auth/login")).header("x-forwarded-for", forwarded).json(&json!({ "phone": fresh_number() })).send()
    };
    for n in 0..30 {
        assert_eq!(login(n, "198.51.100.7").await.unwrap().status(), StatusCode::ACCEPTED, "login {n}");
    }
    expect_error(login(30, "198.51.100.7").await.unwrap(), 429, "login_throttled").await;
    assert_eq!(login(31, "198.51.100.8").await.unwrap().status(), StatusCode::ACCEPTED, "another client is not throttled");
}

/// Behind a proxy that is not in `trusted_proxies`, everyone shares the proxy's address (and its
/// per-address budgets): `/readyz` says so once a forwarding header arrives from such a peer.
#[tokio::test]
async fn readyz_names_a_forwarding_peer_that_is_not_trusted() {
    let app = TestApp::spawn().await;
    let ready = || async { app.client.get(app.url("/readyz")).send().await.unwrap().json::<Value>().await.unwrap() };
    assert_eq!(ready().await, json!({ "status": "ready", "details": {} }));
    let r = app.client.get(app.url("/healthz")).header("x-forwarded-for", "198.51.100.7").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let details = &ready().await["details"]["untrusted_forwarded_for"];
    assert_eq!((details["peer"].as_str(), details["header"].as_str()), (Some("127.0.0.1"), Some("x-forwarded-for")), "{details}");
    assert!(details["hint"].as_str().unwrap().contains("[http] trusted_proxies"), "{details}");

    // A trusted proxy's header is what it should be: nothing to report.
    let trusted = TestApp::spawn_with(behind_proxy(ClientIpHeader::XForwardedFor)).await;
    trusted.client.get(trusted.url("/healthz")).header("x-forwarded-for", "198.51.100.7").send().await.unwrap();
    let r: Value = trusted.client.get(trusted.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["details"], json!({}));
}

#[tokio::test]
async fn a_forwarding_header_from_an_untrusted_peer_is_logged_once_with_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    let mut server = tokio::task::spawn_blocking(move || crate::helpers::Server::spawn(&db, &[])).await.unwrap();
    for forwarded in ["203.0.113.9", "203.0.113.10"] {
        let r = reqwest::Client::new().get(format!("{}/healthz", server.base)).header("x-forwarded-for", forwarded).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let ready: Value = reqwest::get(format!("{}/readyz", server.base)).await.unwrap().json().await.unwrap();
    assert_eq!(ready["details"]["untrusted_forwarded_for"]["peer"], "127.0.0.1");
    let (clean, logs) = server.stop();
    assert!(clean, "{logs}");
    let warnings: Vec<Value> =
        logs.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|l| l["setting"] == "[http] trusted_proxies").collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert_eq!((warnings[0]["level"].as_str(), warnings[0]["peer"].as_str()), (Some("WARN"), Some("127.0.0.1")), "{logs}");
}
