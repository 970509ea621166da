//! The device's pages under `/silent/` are whole HTML documents from the templates: language,
//! title, this server's script only on the relay page, and nothing a request sends is markup.
use crate::helpers::{TestApp, fresh_number};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn device() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A page as the device gets it: status, Content-Security-Policy and body.
async fn page(app: &TestApp, path: &str) -> (StatusCode, String, String) {
    let r = device().get(app.url(path)).send().await.unwrap();
    let h = r.headers();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
    assert_eq!(h["cache-control"], "no-store", "{path}");
    let csp = h["content-security-policy"].to_str().unwrap().to_string();
    (r.status(), csp, r.text().await.unwrap())
}

/// A whole document in English, titled, with every element it opens closed.
fn assert_document(body: &str, title: &str) {
    assert!(body.starts_with("<!doctype html>\n<html lang=\"en\">"), "{body}");
    assert!(body.contains(&format!("<title>{title} · phonegate</title>")) && body.contains(&format!("<h1>{title}</h1>")), "{body}");
    assert!(body.contains("<meta charset=\"utf-8\">") && body.contains("<meta name=\"referrer\" content=\"no-referrer\">"), "{body}");
    for tag in ["html", "head", "title", "style", "body", "main", "h1", "p", "ul", "li", "a", "script", "noscript"] {
        let opened = body.matches(&format!("<{tag}>")).count() + body.matches(&format!("<{tag} ")).count();
        assert_eq!(opened, body.matches(&format!("</{tag}>")).count(), "<{tag}> balanced: {body}");
    }
    assert!(!body.contains("<header>"), "no links into the account pages: {body}");
}

#[tokio::test]
async fn device_pages_are_whole_documents_and_never_echo_markup() {
    let app = TestApp::spawn_with(|c| c.silent.simulator = true).await;
    let v: Value = app.post("/api/verifications", json!({ "to": fresh_number(), "channel": "silent" })).await.json().await.unwrap();
    let check = v["silent"]["check_url"].as_str().unwrap().to_string();
    let operator = device().get(&check).send().await.unwrap().headers()["location"].to_str().unwrap().to_string();

    // The simulated operator: the answers as links, with their query escaped.
    let (status, csp, body) = page(&app, &operator).await;
    assert_eq!(
        (status, csp.as_str()),
        (StatusCode::OK, "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
    );
    assert_document(&body, "Simulated operator");
    let reference = operator.trim_start_matches("/silent/simulator/");
    let href = format!("href=\"/silent/callback/simulator?ref={reference}&#38;outcome=match\"");
    assert!(body.contains(&format!("<a class=\"choice\" data-outcome=\"match\" {href}>")), "{body}");
    assert_eq!(body.matches("class=\"choice\"").count(), 5, "{body}");
    assert!(!body.contains("<script"), "{body}");

    // The end of the check, then the link once more.
    let (status, _, body) = page(&app, &format!("/silent/callback/simulator?ref={reference}&outcome=match")).await;
    assert_eq!(status, StatusCode::OK);
    assert_document(&body, "Number verified");
    assert!(body.contains("<p role=\"status\">Your mobile operator confirmed your number. You can go back to the app.</p>"), "{body}");
    let (status, _, body) = page(&app, check.trim_start_matches(&app.base)).await;
    assert_eq!(status, StatusCode::GONE);
    assert_document(&body, "Link already used");

    // The fragment relay: this server's script, by its src, allowed by the page's own policy.
    let (status, csp, body) = page(&app, "/silent/callback/simulator").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(csp, "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'");
    assert_document(&body, "Verifying");
    assert!(
        body.contains("<p id=\"m\" role=\"status\">Finishing the verification…</p>\n<script src=\"/assets/silent-relay.js\"></script>")
    );
    assert_eq!(body.matches("<script").count(), 1, "{body}");

    // A hostile provider name, answer or reference is refused and never written into the page.
    let hostile = "%3Cscript%3Ehostile(1)%3C%2Fscript%3E";
    for (path, status, title) in [
        (format!("/silent/callback/{hostile}?ref={hostile}&outcome={hostile}"), StatusCode::BAD_REQUEST, "Not a valid answer"),
        (format!("/silent/callback/simulator?ref={hostile}&outcome=match"), StatusCode::BAD_REQUEST, "Not a valid answer"),
        (format!("/silent/{}?sim={hostile}", "A".repeat(43)), StatusCode::BAD_REQUEST, "Not a valid link"),
        (format!("/silent/simulator/{hostile}?sim={hostile}"), StatusCode::NOT_FOUND, "Not a valid link"),
    ] {
        let (got, _, body) = page(&app, &path).await;
        assert_eq!(got, status, "{path}");
        assert_document(&body, title);
        assert!(!body.contains("script") && !body.contains("hostile"), "{path}: {body}");
    }
}
