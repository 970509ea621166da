//! The audit log: security events are recorded with who caused them, readable by admins only,
//! with no secret or code in them.
use crate::helpers::{TestApp, fresh_number, wrong};
use phonegate_core::Caller;
use phonegate_core::apikey::KeyScope;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let r: Value = app.get(&format!("/api/audit{query}")).await.json().await.unwrap();
    r["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn security_events_are_recorded_and_readable_by_admins_only() {
    let app = TestApp::spawn_with(|c| {
        c.budgets.sends_per_number = vec!["1/1h".parse().unwrap()];
        c.budgets.failed_checks_per_number = vec!["1/1h".parse().unwrap()];
    })
    .await;
    let to = fresh_number();
    let v = app.start(&to).await;
    let code = app.code_for(&to).await;
    let id = v["id"].as_str().unwrap();
    // A budget breach, a lockout, a refused destination, a forged webhook, a new service.
    assert_eq!(app.post("/api/verifications", json!({ "to": fresh_number() })).await.status(), 201);
    let second = app.post("/api/verifications", json!({ "to": to, "service": "phonegate" })).await;
    assert_eq!(second.status(), 429, "a resend is a send too: over the number's budget");
    assert_eq!(app.check(id, &wrong(&code)).await.status(), 200);
    assert_eq!(app.check(id, &code).await.status(), 429);
    assert_eq!(app.post("/api/verifications", json!({ "to": "+881612345678" })).await.status(), 400);
    let forged = app.client.post(app.url("/webhooks/twilio/sms")).form(&[("From", to.as_str()), ("Body", "STOP")]).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(app.post("/api/services", json!({ "name": "Audited" })).await.status(), 201);

    let all = events(&app, "").await;
    let kinds: Vec<&str> = all.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in ["key_created", "budget_exceeded", "checks_locked", "destination_refused", "webhook_forged", "service_created"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let locked = all.iter().find(|e| e["kind"] == "checks_locked").unwrap();
    assert_eq!(locked["key_id"], app.key_id.as_str());
    assert!(locked["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains(&code) && !text.contains(&app.secret), "no code or secret in the log: {text}");
    // Newest first, filtered by kind.
    let only = events(&app, "?kind=webhook_forged").await;
    assert!(only.iter().all(|e| e["kind"] == "webhook_forged") && !only.is_empty());
    assert!(all.windows(2).all(|w| w[0]["at"].as_str() >= w[1]["at"].as_str()));
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("phonegate_audit_events_total{kind=\"webhook_forged\"} 1"), "{metrics}");

    // A service key may not read it.
    let scope = KeyScope::Services(vec!["phonegate".into()]);
    let (_, secret) = app.state.core.api_keys.create(&Caller::system("tests"), "svc", scope).await.unwrap();
    let r = app.client.get(app.url("/api/audit")).bearer_auth(secret.expose_secret()).send().await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_flood_of_refusals_writes_one_event_a_minute_per_subject() {
    let app = TestApp::spawn().await;
    for _ in 0..20 {
        assert_eq!(app.post("/api/verifications", json!({ "to": "+881612345678" })).await.status(), 400);
    }
    assert_eq!(events(&app, "?kind=destination_refused").await.len(), 1);
    app.advance(chrono::Duration::minutes(2));
    assert_eq!(app.post("/api/verifications", json!({ "to": "+881612345678" })).await.status(), 400);
    assert_eq!(events(&app, "?kind=destination_refused").await.len(), 2);
}

async fn forged_from(app: &TestApp, forwarded: &str) -> String {
    let r = app
        .client
        .post(app.url("/webhooks/twilio/sms"))
        .header("x-forwarded-for", forwarded)
        .form(&[("Body", "STOP")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let events = events(app, "?kind=webhook_forged").await;
    events[0]["ip"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn x_forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let direct = TestApp::spawn().await;
    assert_eq!(forged_from(&direct, "198.51.100.7").await, "127.0.0.1", "a client cannot choose its address");
    let proxied = TestApp::spawn_with(|c| c.http.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    assert_eq!(forged_from(&proxied, "203.0.113.9, 198.51.100.7, 127.0.0.2").await, "198.51.100.7", "the right-most untrusted hop");
}
