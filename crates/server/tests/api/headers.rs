//! Security headers on every answer: nosniff everywhere, HSTS when served over HTTPS, and a
//! policy forbidding framing on every HTML page (the device's silent pages, the dev outbox, the
//! docs and error pages included).
use crate::helpers::TestApp;

const PATHS: &[&str] = &[
    "/healthz",
    "/api/services",
    "/api/verifications/VE0123456789abcdef0123456789abcdef",
    "/no/such/page",
    "/openapi.json",
    "/docs",
    "/login",
    "/signup",
    "/dev/outbox",
    "/dev/outbox/flow/fl0123456789abcdef",
    "/silent/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "/silent/simulator/SR0123456789abcdef0123456789abcdef",
    "/silent/callback/simulator",
    "/silent/callback/simulator?ref=nothing&outcome=match",
    "/integrations/nobody/verify?state=s&session_token=t",
    "/assets/silent.js",
    "/assets/silent-relay.js",
];

async fn walk(https: bool) {
    let app = TestApp::spawn_with(|c| {
        c.silent.simulator = true;
        c.public_url = Some(if https { "https://verify.example.com" } else { "http://localhost:8080" }.into());
    })
    .await;
    let mut html_pages = 0;
    for path in PATHS {
        let r = app.client.get(app.url(path)).bearer_auth(&app.secret).send().await.unwrap();
        let h = r.headers();
        let at = format!("{path} ({})", r.status());
        assert_eq!(h.get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"), "{at}");
        let hsts = h.get("strict-transport-security").map(|v| v.to_str().unwrap());
        assert_eq!(hsts, https.then_some("max-age=31536000; includeSubDomains"), "{at}");
        let html = h.get("content-type").is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
        if html {
            html_pages += 1;
            let csp = h.get("content-security-policy").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{at}: {csp:?}");
            let body = r.text().await.unwrap();
            if body.contains("<script") {
                let scripts = csp.split(';').map(str::trim).find(|d| d.starts_with("script-src"));
                assert_eq!(scripts, Some("script-src 'self'"), "{at}: {csp}");
                assert!(!body.contains("<script>"), "{at}: no inline script");
            }
        }
    }
    assert!(html_pages >= 10, "the walk covers the HTML pages ({html_pages})");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_over_http() {
    walk(false).await;
}

#[tokio::test]
async fn every_answer_carries_hsts_when_browsers_use_https() {
    walk(true).await;
}
