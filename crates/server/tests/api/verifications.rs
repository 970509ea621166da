//! Every status transition and the resend rules, through the native API.
use crate::helpers::{TestApp, expect_error, fresh_number, wrong};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

#[tokio::test]
async fn started_code_arrives_in_outbox_and_approves_exactly_once() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let v = app.start(&to).await;
    assert_eq!((v["status"].as_str(), v["to"].as_str(), v["channel"].as_str()), (Some("pending"), Some(to.as_str()), Some("sms")));
    assert!(v["id"].as_str().unwrap().starts_with("VE"));
    assert_eq!(v["resent"], false);
    let expires: DateTime<Utc> = v["expires_at"].as_str().unwrap().parse().unwrap();
    let created: DateTime<Utc> = v["created_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires - created, Duration::minutes(10));
    assert!(v.get("code").is_none());

    let messages = app.outbox(&to).await;
    assert_eq!(messages.len(), 1);
    let body = messages[0]["body"].as_str().unwrap();
    assert!(body.starts_with("Ihr phonegate Bestätigungscode lautet: "), "a German number's language: {body}");
    let code = app.code_for(&to).await;
    assert_eq!(code.len(), 6);
    assert!(code.chars().all(|c| c.is_ascii_digit()));

    let id = v["id"].as_str().unwrap();
    let r = app.check(id, &code).await;
    assert_eq!(r.status(), 200);
    let c: Value = r.json().await.unwrap();
    assert_eq!(c, json!({ "id": id, "status": "approved", "valid": true }));

    expect_error(app.check(id, &code).await, 409, "verification_approved").await;
    let got: Value = app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap();
    assert_eq!((got["status"].as_str(), got["attempts"].as_u64()), (Some("approved"), Some(1)));
    assert!(got["approved_at"].is_string());
}

#[tokio::test]
async fn five_wrong_codes_lock_the_verification_even_against_the_right_code() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let id = app.start(&to).await["id"].as_str().unwrap().to_string();
    let code = app.code_for(&to).await;
    for attempt in 1..=5 {
        let r: Value = app.check(&id, &wrong(&code)).await.json().await.unwrap();
        let expected = if attempt < 5 { "pending" } else { "max_attempts_reached" };
        assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some(expected), Some(false)), "attempt {attempt}");
    }
    expect_error(app.check(&id, &code).await, 409, "verification_max_attempts_reached").await;
    let got: Value = app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap();
    assert_eq!((got["status"].as_str(), got["attempts"].as_u64()), (Some("max_attempts_reached"), Some(5)));
    assert!(got["max_attempts_reached_at"].is_string());
    // A locked verification is no longer pending: starting again sends a new code.
    let again = app.start(&to).await;
    assert_ne!(again["id"].as_str(), Some(id.as_str()));
}

#[tokio::test]
async fn expiry_follows_the_clock_and_is_stamped_with_the_deadline() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let v = app.start(&to).await;
    let id = v["id"].as_str().unwrap();
    let code = app.code_for(&to).await;
    app.advance(Duration::minutes(10) - Duration::milliseconds(1));
    let got: Value = app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap();
    assert_eq!(got["status"], "pending");
    app.advance(Duration::milliseconds(1));
    expect_error(app.check(id, &code).await, 409, "verification_expired").await;
    let got: Value = app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap();
    assert_eq!((got["status"].as_str(), got["attempts"].as_u64()), (Some("expired"), Some(0)));
    assert_eq!(got["expired_at"], v["expires_at"]);
    expect_error(app.post(&format!("/api/verifications/{id}/cancel"), json!({})).await, 409, "verification_expired").await;
}

#[tokio::test]
async fn the_background_sweep_expires_overdue_verifications() {
    let app = TestApp::spawn().await;
    let (a, b) = (fresh_number(), fresh_number());
    let va = app.start(&a).await;
    app.advance(Duration::minutes(5));
    let vb = app.start(&b).await;
    app.advance(Duration::minutes(6));
    assert_eq!(app.state.core.verifier.expire_due(100).await.unwrap(), 1);
    let got: Value = app.get(&format!("/api/verifications/{}", va["id"].as_str().unwrap())).await.json().await.unwrap();
    assert_eq!(got["status"], "expired");
    let got: Value = app.get(&format!("/api/verifications/{}", vb["id"].as_str().unwrap())).await.json().await.unwrap();
    assert_eq!(got["status"], "pending");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("event=\"expired\"} 1"), "{metrics}");
}

#[tokio::test]
async fn starting_again_resends_the_same_verification_and_code_within_limits() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let first = app.start(&to).await;
    let code = app.code_for(&to).await;
    for sends in 2..=5 {
        let again = app.start(&to).await;
        assert_eq!(again["id"], first["id"]);
        assert_eq!((again["resent"].as_bool(), again["sends"].as_u64()), (Some(true), Some(sends)));
        assert_eq!(app.code_for(&to).await, code);
    }
    assert_eq!(app.outbox(&to).await.len(), 5);
    expect_error(app.post("/api/verifications", json!({ "to": to })).await, 429, "max_sends_reached").await;
    assert_eq!(app.outbox(&to).await.len(), 5);
    // The same code still approves.
    let r: Value = app.check(first["id"].as_str().unwrap(), &code).await.json().await.unwrap();
    assert_eq!(r["valid"], true);
}

#[tokio::test]
async fn the_send_window_reopens_after_ten_minutes() {
    let app = TestApp::spawn().await;
    let r = app.post("/api/services", json!({ "name": "long-lived", "code_ttl_secs": 3600 })).await;
    assert_eq!(r.status(), 201);
    let to = fresh_number();
    let start = || app.post("/api/verifications", json!({ "to": to, "service": "long-lived" }));
    for _ in 0..5 {
        assert_eq!(start().await.status(), 201);
    }
    expect_error(start().await, 429, "max_sends_reached").await;
    app.advance(Duration::minutes(10));
    let v: Value = start().await.json().await.unwrap();
    assert_eq!((v["resent"].as_bool(), v["sends"].as_u64()), (Some(true), Some(1)));
}

#[tokio::test]
async fn cancel_ends_a_pending_verification() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let id = app.start(&to).await["id"].as_str().unwrap().to_string();
    let code = app.code_for(&to).await;
    let r = app.post(&format!("/api/verifications/{id}/cancel"), json!({})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "canceled");
    assert!(v["canceled_at"].is_string());
    expect_error(app.post(&format!("/api/verifications/{id}/cancel"), json!({})).await, 409, "verification_canceled").await;
    expect_error(app.check(&id, &code).await, 409, "verification_canceled").await;
}

#[tokio::test]
async fn check_by_number_uses_the_pending_verification() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let id = app.start(&to).await["id"].as_str().unwrap().to_string();
    let code = app.code_for(&to).await;
    let r: Value = app.post("/api/verifications/check", json!({ "to": to, "code": wrong(&code) })).await.json().await.unwrap();
    assert_eq!((r["id"].as_str(), r["status"].as_str(), r["valid"].as_bool()), (Some(id.as_str()), Some("pending"), Some(false)));
    let r: Value = app.post("/api/verifications/check", json!({ "to": to, "code": code })).await.json().await.unwrap();
    assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("approved"), Some(true)));
    // Nothing pending any more: answered as a wrong code, with an id that names nothing.
    let r: Value = app.post("/api/verifications/check", json!({ "to": to, "code": code })).await.json().await.unwrap();
    assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("pending"), Some(false)));
    assert_ne!(r["id"].as_str(), Some(id.as_str()));
    assert_eq!(app.get(&format!("/api/verifications/{}", r["id"].as_str().unwrap())).await.status(), 404);
}

/// The answer with its ids masked: what an observer can compare.
async fn masked(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let mut body: Value = r.json().await.unwrap();
    if body["id"].is_string() {
        body["id"] = json!("VE…");
    }
    (status, body.to_string())
}

#[tokio::test]
async fn check_by_number_never_tells_whether_a_verification_is_pending() {
    let app = TestApp::spawn().await;
    let (pending, nothing, expired, approved) = (fresh_number(), fresh_number(), fresh_number(), fresh_number());
    for to in [&pending, &expired, &approved] {
        app.start(to).await;
    }
    let code = app.code_for(&approved).await;
    assert_eq!(app.post("/api/verifications/check", json!({ "to": approved, "code": code })).await.status(), 200);
    // A code valid for none of them: each answers the same, byte for byte once ids are masked,
    // malformed codes and codes of another length included.
    for guess in ["000000", "1234", "12345678", "12ab56", "", "12345678901"] {
        let mut answers = Vec::new();
        for to in [&pending, &nothing, &approved] {
            answers.push(masked(app.post("/api/verifications/check", json!({ "to": to, "code": guess })).await).await);
        }
        assert!(answers.windows(2).all(|w| w[0] == w[1]), "{guess}: {answers:?}");
    }
    app.advance(chrono::Duration::minutes(11));
    let late = masked(app.post("/api/verifications/check", json!({ "to": expired, "code": "000000" })).await).await;
    let never = masked(app.post("/api/verifications/check", json!({ "to": fresh_number(), "code": "000000" })).await).await;
    assert_eq!(late, never);
}

#[tokio::test]
async fn locale_picks_the_message_language_with_english_fallback() {
    let app = TestApp::spawn().await;
    for (locale, prefix) in [
        ("de", "Ihr phonegate"),
        ("fr-CA", "Votre code"),
        ("es", "Tu código"),
        ("ja", "phonegateの認証コードは"),
        ("pt-BR", "Seu código de verificação"),
        ("zh-HK", "您的phonegate驗證碼"),
        ("en", "Your phonegate"),
        ("xx", "Your phonegate"),
    ] {
        let to = fresh_number();
        let r = app.post("/api/verifications", json!({ "to": to, "locale": locale })).await;
        assert_eq!(r.status(), 201);
        let body = app.outbox(&to).await[0]["body"].as_str().unwrap().to_string();
        assert!(body.starts_with(prefix), "{locale}: {body}");
    }
    // No locale: the number's country's language, else English.
    for (to, prefix) in [("+33612345678", "Votre code"), ("+5511987654321", "Seu código"), ("+12125550123", "Your phonegate")] {
        let r = app.post("/api/verifications", json!({ "to": to })).await;
        assert_eq!(r.status(), 201, "{to}");
        let body = app.outbox(to).await[0]["body"].as_str().unwrap().to_string();
        assert!(body.starts_with(prefix), "{to}: {body}");
    }
}

#[tokio::test]
async fn national_numbers_use_the_configured_default_region() {
    let app = TestApp::spawn_with(|c| c.phones.default_region = Some("DE".into())).await;
    let v = app.start("0151 2345 6789").await;
    assert_eq!(v["to"], "+4915123456789");
}

#[tokio::test]
async fn retention_deletes_ended_verifications_after_the_period() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let id = app.start(&to).await["id"].as_str().unwrap().to_string();
    let code = app.code_for(&to).await;
    app.check(&id, &code).await;
    let pending = app.start(&fresh_number()).await["id"].as_str().unwrap().to_string();
    app.advance(Duration::days(31));
    assert_eq!(app.state.core.verifier.purge_old(Duration::days(30), 100).await.unwrap(), 1);
    expect_error(app.get(&format!("/api/verifications/{id}")).await, 404, "verification_not_found").await;
    // A pending one is never deleted by retention; reading it now records its expiry.
    let v: Value = app.get(&format!("/api/verifications/{pending}")).await.json().await.unwrap();
    assert_eq!(v["status"], "expired");
}
