//! The dev outbox shows codes, so it shows them only to an API key or to a client on this
//! machine; a remote client (here: forwarded by a trusted local proxy) learns nothing from it.
use crate::helpers::{TestApp, fresh_number};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::json;

const REMOTE: &str = "198.51.100.7";

/// A server behind a local proxy, a sign-up flow whose code is in the outbox, and the code.
async fn app_with_a_code() -> (TestApp, String, String, String) {
    let app = TestApp::spawn_with(|c| c.http.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let phone = fresh_number();
    let flow = app.anon_post("/api/auth/signup", json!({ "username": "outboxed", "phone": phone })).await;
    assert_eq!(flow.status(), StatusCode::ACCEPTED);
    let flow = flow.json::<serde_json::Value>().await.unwrap()["flow_id"].as_str().unwrap().to_string();
    let code = app.code_after(&phone, &[]).await;
    (app, phone, flow, code)
}

fn endpoints(flow: &str) -> [String; 3] {
    ["/api/dev/outbox".into(), "/dev/outbox".into(), format!("/dev/outbox/flow/{flow}")]
}

async fn read(request: RequestBuilder) -> (StatusCode, String) {
    let r = request.send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_remote_client_without_a_key_learns_nothing() {
    let (app, phone, flow, code) = app_with_a_code().await;
    for path in endpoints(&flow) {
        let (status, body) = read(app.client.get(app.url(&path)).header("x-forwarded-for", REMOTE)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(!body.contains(&code) && !body.contains(&phone[1..]), "{path} leaks: {body}");
        let wrong_key = app.client.get(app.url(&path)).header("x-forwarded-for", REMOTE).bearer_auth("sk_not_a_key");
        assert_eq!(read(wrong_key).await.0, StatusCode::UNAUTHORIZED, "{path} with a wrong key");
    }
}

#[tokio::test]
async fn a_local_client_or_an_admin_key_reads_it() {
    let (app, _, flow, code) = app_with_a_code().await;
    for path in endpoints(&flow) {
        let (status, body) = read(app.client.get(app.url(&path))).await;
        assert_eq!(status, StatusCode::OK, "{path} from this machine");
        assert!(body.contains(&code), "{path} from this machine: {body}");
        let remote = app.client.get(app.url(&path)).header("x-forwarded-for", REMOTE);
        for request in [remote.try_clone().unwrap().bearer_auth(&app.secret), remote.basic_auth(&app.key_id, Some(&app.secret))] {
            let (status, body) = read(request).await;
            assert_eq!(status, StatusCode::OK, "{path} with the admin key");
            assert!(body.contains(&code), "{path} with the admin key: {body}");
        }
    }
}

/// "This machine" means a request made here directly: through a proxy on this machine (trusted or
/// not, whatever the client wrote in its header), or naming a host other than a loopback one (a
/// web page that rebound its own name to 127.0.0.1), it is a stranger's.
#[tokio::test]
async fn a_local_proxy_or_a_rebound_name_is_not_this_machine() {
    // No trusted proxies: a local proxy's requests come from 127.0.0.1 with its forwarding header.
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    let flow = app.anon_post("/api/auth/signup", json!({ "username": "proxied", "phone": phone })).await;
    let flow = flow.json::<serde_json::Value>().await.unwrap()["flow_id"].as_str().unwrap().to_string();
    let code = app.code_after(&phone, &[]).await;
    for path in endpoints(&flow) {
        for (header, value) in [
            ("x-forwarded-for", REMOTE),
            ("x-forwarded-for", "\""),
            ("forwarded", "for=127.0.0.1;x=\""),
            ("x-real-ip", REMOTE),
            ("host", "attacker.example"),
            ("host", "attacker.example:8080"),
        ] {
            let (status, body) = read(app.client.get(app.url(&path)).header(header, value)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} with {header}: {value}");
            assert!(!body.contains(&code), "{path} leaks with {header}: {value}");
        }
        for host in ["localhost", "localhost:8080", "127.0.0.1:9", "[::1]:80"] {
            assert_eq!(read(app.client.get(app.url(&path)).header("host", host)).await.0, StatusCode::OK, "{path} as {host}");
        }
    }
}

/// The outbox page is a page like the others (the templates' frame, language and headers), and
/// what it lists is escaped: a message body or a filter with markup shows as text.
#[tokio::test]
async fn the_outbox_page_is_a_templated_page_that_escapes_what_it_shows() {
    let (app, phone, _, code) = app_with_a_code().await;
    let r = app
        .client
        .get(app.url(&format!("/dev/outbox?to={}", phone.replace('+', "%2B"))))
        .header("accept-language", "de")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    let html = r.text().await.unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains(r#"lang="de""#) && html.contains("Dev outbox"), "{html}");
    assert!(html.contains(&code) && html.contains(&phone), "{html}");
    let r = app.client.get(app.url("/dev/outbox?to=%3Cscript%3Ealert(1)%3C%2Fscript%3E")).send().await.unwrap();
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script>alert(1)</script>"), "{html}");
}
