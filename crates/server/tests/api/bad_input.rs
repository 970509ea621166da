//! Bad input of every kind gets a clear error with a stable code and the right status.
use crate::helpers::{TestApp, expect_error, fresh_number};
use serde_json::json;

#[tokio::test]
async fn malformed_bodies_are_refused_with_specific_codes() {
    let app = TestApp::spawn().await;
    let raw = |body: &'static str| {
        app.client.post(app.url("/api/verifications")).bearer_auth(&app.secret).header("content-type", "application/json").body(body).send()
    };
    expect_error(raw("{\"to\":").await.unwrap(), 400, "malformed_json").await;
    expect_error(raw("{\"to\": 4915123456789}").await.unwrap(), 422, "invalid_body").await;
    expect_error(raw("{}").await.unwrap(), 422, "invalid_body").await;
    let e = expect_error(raw("{\"to\":\"+4915123456789\",\"channnel\":\"sms\"}").await.unwrap(), 422, "invalid_body").await;
    assert!(e["message"].as_str().unwrap().contains("channnel"));
    expect_error(raw("[]").await.unwrap(), 422, "invalid_body").await;
    let no_type =
        app.client.post(app.url("/api/verifications")).bearer_auth(&app.secret).body("{\"to\":\"+4915123456789\"}").send().await.unwrap();
    expect_error(no_type, 415, "unsupported_media_type").await;
    let huge = format!("{{\"to\":\"{}\"}}", "1".repeat(100 * 1024));
    let r = app
        .client
        .post(app.url("/api/verifications"))
        .bearer_auth(&app.secret)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "body_too_large").await;
}

#[tokio::test]
async fn invalid_phone_numbers_get_stable_codes() {
    let app = TestApp::spawn().await;
    let cases = [
        ("not a number", "phone_number_invalid"),
        ("", "phone_number_invalid"),
        ("0151 23456789", "phone_number_country_invalid"),
        ("+1 201 555", "phone_number_too_short"),
        ("+49 151 2345678901234567", "phone_number_too_long"),
        ("+1 201 055 0123", "phone_number_unassigned"),
        ("+49 900 1234567", "phone_number_type_not_allowed"),
    ];
    for (to, code) in cases {
        expect_error(app.post("/api/verifications", json!({ "to": to })).await, 400, code).await;
    }
}

#[tokio::test]
async fn premium_rate_numbers_can_be_allowed_by_configuration() {
    use phonegate_core::NumberKind;
    let app = TestApp::spawn_with(|c| c.phones.allowed_number_types = vec![NumberKind::Mobile, NumberKind::PremiumRate]).await;
    app.start("+49 900 1234567").await;
}

#[tokio::test]
async fn bad_parameters_and_unknown_things() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    expect_error(app.post("/api/verifications", json!({ "to": to, "channel": "fax" })).await, 400, "channel_not_supported").await;
    expect_error(app.post("/api/verifications", json!({ "to": to, "locale": "<b>" })).await, 400, "invalid_parameter").await;
    expect_error(app.post("/api/verifications", json!({ "to": to, "service": "nope" })).await, 404, "service_not_found").await;
    let id = app.start(&to).await["id"].as_str().unwrap().to_string();
    for code in ["123", "12345678901", "abcdef", "", "12 456"] {
        expect_error(app.check(&id, code).await, 400, "invalid_parameter").await;
    }
    let v: serde_json::Value = app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap();
    assert_eq!(v["attempts"], 0, "what cannot be a code costs no attempt");
    // A code of another length is a wrong code: it says nothing of the length, and costs an attempt.
    let r: serde_json::Value = app.check(&id, "12345").await.json().await.unwrap();
    assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("pending"), Some(false)));
    let v: serde_json::Value = app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap();
    assert_eq!(v["attempts"], 1);
    expect_error(app.check("VE00000000000000000000000000000000", "123456").await, 404, "verification_not_found").await;
    expect_error(app.get("/api/verifications/not-an-id").await, 404, "verification_not_found").await;
    expect_error(app.get("/api/verifications/VE00000000000000000000000000000000").await, 404, "verification_not_found").await;
    expect_error(app.get("/api/nothing-here").await, 404, "not_found").await;
    let r = app.client.delete(app.url("/api/verifications")).bearer_auth(&app.secret).send().await.unwrap();
    expect_error(r, 405, "method_not_allowed").await;
    let r = app.client.get(app.url("/api/dev/outbox?limit=many")).bearer_auth(&app.secret).send().await.unwrap();
    expect_error(r, 400, "invalid_query").await;
    let r = app.client.get(app.url("/api/dev/outbox?to=garbage")).bearer_auth(&app.secret).send().await.unwrap();
    expect_error(r, 400, "phone_number_invalid").await;
}

#[tokio::test]
async fn satellite_ranges_and_countries_outside_the_allow_list_get_no_code_in_any_api() {
    let app = TestApp::spawn_with(|c| c.phones.allowed_countries = vec!["DE".into(), "AT".into()]).await;
    for to in ["+881612345678", "+33612345678"] {
        expect_error(app.post("/api/verifications", json!({ "to": to })).await, 400, "phone_number_destination_not_allowed").await;
        let svc: serde_json::Value = app.post("/api/services", json!({ "name": format!("S{}", &to[1..4]) })).await.json().await.unwrap();
        let url = app.url(&format!("/v2/Services/{}/Verifications", svc["id"].as_str().unwrap()));
        let r =
            app.client.post(url).basic_auth(&app.key_id, Some(&app.secret)).form(&[("To", to), ("Channel", "sms")]).send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["code"], 60605);
        let form = [("api_key", app.key_id.as_str()), ("api_secret", app.secret.as_str()), ("number", &to[1..]), ("brand", "Acme")];
        let v: serde_json::Value = app.client.post(app.url("/verify/json")).form(&form).send().await.unwrap().json().await.unwrap();
        assert_eq!(v["status"], "15", "{v}");
    }
    assert_eq!(app.post("/api/verifications", json!({ "to": "+436641234567" })).await.status(), 201);
    let sent = app
        .client
        .get(app.url("/api/dev/outbox"))
        .bearer_auth(&app.secret)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(sent["messages"].as_array().unwrap().len(), 1, "only the allowed country got a message");
}
