//! Health, readiness, metrics, the OpenAPI document, the docs and outbox pages.
use crate::helpers::{TestApp, fresh_number, wrong};
use serde_json::{Value, json};

#[tokio::test]
async fn health_and_readiness_answer_without_a_key() {
    let app = TestApp::spawn().await;
    let h: Value = app.client.get(app.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(h["status"], "ok");
    let r: Value = app.client.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["status"], "ready");
}

#[tokio::test]
async fn metrics_count_verifications_sends_and_check_latency() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let id = app.start(&to).await["id"].as_str().unwrap().to_string();
    let code = app.code_for(&to).await;
    app.check(&id, &wrong(&code)).await;
    app.check(&id, &code).await;
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let service = app.state.core.catalog.service(&phonegate_core::Caller::system("tests"), None).await.unwrap().id;
    assert!(
        text.contains(&format!("phonegate_verifications_total{{service=\"{service}\",channel=\"sms\",event=\"started\"}} 1")),
        "{text}"
    );
    assert!(
        text.contains(&format!("phonegate_verifications_total{{service=\"{service}\",channel=\"sms\",event=\"approved\"}} 1")),
        "{text}"
    );
    assert!(text.contains("phonegate_sms_attempts_total{provider=\"outbox\",result=\"ok\"} 1"), "{text}");
    assert!(text.contains("phonegate_check_duration_seconds_count 2"), "{text}");
    // Conversion per country: one German number started, one approved.
    assert!(text.contains("phonegate_conversions_total{region=\"DE\",event=\"started\"} 1"), "{text}");
    assert!(text.contains("phonegate_conversions_total{region=\"DE\",event=\"approved\"} 1"), "{text}");
    assert!(!text.contains(&code));
}

#[tokio::test]
async fn openapi_document_and_offline_docs_page_describe_the_api() {
    let app = TestApp::spawn().await;
    let spec: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/api/verifications", "/api/verifications/{id}/check", "/api/verifications/check", "/api/services", "/api/dev/outbox"] {
        assert!(spec["paths"][path].is_object(), "missing {path}");
    }
    assert!(spec["components"]["schemas"]["StartBody"].is_object());
    let page = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    let html = page.text().await.unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains(r#"lang="en""#) && html.contains("API reference"), "{html}");
    assert!(!html.contains("<script"), "the docs page must work without fetching scripts");
    // Every operation of the document is on the page.
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys().filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str())) {
            let listed = format!(r#"<span class="method">{method}</span> <code>{path}</code>"#);
            assert!(html.contains(&listed), "{method} {path} is missing");
            operations += 1;
        }
    }
    assert!(operations > 30, "{operations}");
    for schema in spec["components"]["schemas"].as_object().unwrap().keys() {
        assert!(html.contains(&format!(r#"id="schema-{schema}""#)), "schema {schema} is missing");
    }
    let german = app.client.get(app.url("/docs")).header("accept-language", "de").send().await.unwrap().text().await.unwrap();
    assert!(german.contains(r#"lang="de""#) && german.contains("API-Referenz"), "{german}");
}

#[tokio::test]
async fn the_outbox_page_shows_messages_escaped_behind_basic_auth() {
    let app = TestApp::spawn_with(|c| c.http.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let r = app.post("/api/services", json!({ "name": "<i>Shop</i>" })).await;
    assert_eq!(r.status(), 201);
    let to = fresh_number();
    assert_eq!(app.post("/api/verifications", json!({ "to": to, "service": "<i>Shop</i>" })).await.status(), 201);
    // A remote client (forwarded by a local proxy) without a key; a local one needs none.
    let anonymous = app.client.get(app.url("/dev/outbox")).header("x-forwarded-for", "198.51.100.7").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let page = app.client.get(app.url("/dev/outbox")).header("x-forwarded-for", "198.51.100.7").basic_auth(&app.key_id, Some(&app.secret));
    let page = page.send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&to));
    // Escaped by the template (as numeric or named entities), never markup.
    assert!(html.contains("&#60;i&#62;Shop&#60;/i&#62;") || html.contains("&lt;i&gt;Shop&lt;/i&gt;"), "{html}");
    assert!(!html.contains("<i>Shop</i>"));
}
