//! Twilio Verify v2 over raw HTTP: paths, form bodies, Basic auth, field names and every error code.
use crate::helpers::{TestApp, fresh_number, wrong};
use reqwest::Response;
use serde_json::{Value, json};

async fn form(app: &TestApp, path: &str, params: &[(&str, &str)]) -> Response {
    app.client.post(app.url(path)).basic_auth(&app.key_id, Some(&app.secret)).form(params).send().await.unwrap()
}

async fn twilio_error(r: Response, status: u16, code: u64) -> Value {
    assert_eq!(r.status().as_u16(), status);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["status"], status);
    assert_eq!(v["more_info"], format!("https://www.twilio.com/docs/errors/{code}"));
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    v
}

async fn service(app: &TestApp) -> String {
    let r = form(app, "/v2/Services", &[("FriendlyName", "My App"), ("CodeLength", "6")]).await;
    assert_eq!(r.status(), 201);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["friendly_name"], "My App");
    assert_eq!(s["code_length"], 6);
    assert!(s["account_sid"].as_str().unwrap().starts_with("AC"));
    s["sid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_twilio_flow_start_check_approve_then_not_found() {
    let app = TestApp::spawn().await;
    let sid = service(&app).await;
    let fetched: Value = app
        .client
        .get(app.url(&format!("/v2/Services/{sid}")))
        .basic_auth(&app.key_id, Some(&app.secret))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["sid"], sid.as_str());

    let to = fresh_number();
    let r =
        form(&app, &format!("/v2/Services/{sid}/Verifications"), &[("To", &to), ("Channel", "sms"), ("CustomFriendlyName", "Acme Shop")])
            .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let vsid = v["sid"].as_str().unwrap().to_string();
    assert!(vsid.starts_with("VE") && vsid.len() == 34);
    assert_eq!((v["status"].as_str(), v["valid"].as_bool(), v["channel"].as_str()), (Some("pending"), Some(false), Some("sms")));
    assert_eq!(v["service_sid"], sid.as_str());
    assert_eq!(v["send_code_attempts"].as_array().unwrap().len(), 1);
    assert!(v["date_created"].as_str().unwrap().ends_with('Z'));
    assert!(v["url"].as_str().unwrap().ends_with(&format!("/v2/Services/{sid}/Verifications/{vsid}")));
    let body = app.outbox(&to).await[0]["body"].as_str().unwrap().to_string();
    assert!(body.starts_with("Your Acme Shop verification code is: "), "{body}");
    let code = app.code_for(&to).await;

    // Fetch by sid and by number.
    for target in [vsid.as_str(), to.as_str()] {
        let r = app
            .client
            .get(app.url(&format!("/v2/Services/{sid}/Verifications/{target}")))
            .basic_auth(&app.key_id, Some(&app.secret))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["sid"], vsid.as_str());
    }

    let check = format!("/v2/Services/{sid}/VerificationCheck");
    let r: Value = form(&app, &check, &[("To", &to), ("Code", &wrong(&code))]).await.json().await.unwrap();
    assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("pending"), Some(false)));
    let r: Value = form(&app, &check, &[("VerificationSid", &vsid), ("Code", &code)]).await.json().await.unwrap();
    assert_eq!((r["status"].as_str(), r["valid"].as_bool(), r["sid"].as_str()), (Some("approved"), Some(true), Some(vsid.as_str())));

    // Twilio forgets ended verifications: 20404 for checks and fetches.
    twilio_error(form(&app, &check, &[("VerificationSid", &vsid), ("Code", &code)]).await, 404, 20404).await;
    twilio_error(form(&app, &check, &[("To", &to), ("Code", &code)]).await, 404, 20404).await;
    let r = app
        .client
        .get(app.url(&format!("/v2/Services/{sid}/Verifications/{vsid}")))
        .basic_auth(&app.key_id, Some(&app.secret))
        .send()
        .await
        .unwrap();
    twilio_error(r, 404, 20404).await;

    // The same verification, seen through the native API, shares the state.
    let native: Value = app.get(&format!("/api/verifications/{vsid}")).await.json().await.unwrap();
    assert_eq!((native["status"].as_str(), native["attempts"].as_u64()), (Some("approved"), Some(2)));
}

#[tokio::test]
async fn lockout_expiry_cancel_and_approval() {
    let app = TestApp::spawn().await;
    let sid = service(&app).await;
    let start = |to: String| {
        let app = &app;
        let sid = sid.clone();
        async move {
            let v: Value =
                form(app, &format!("/v2/Services/{sid}/Verifications"), &[("To", &to), ("Channel", "sms")]).await.json().await.unwrap();
            v["sid"].as_str().unwrap().to_string()
        }
    };
    let check = format!("/v2/Services/{sid}/VerificationCheck");

    let to = fresh_number();
    let vsid = start(to.clone()).await;
    let code = app.code_for(&to).await;
    for attempt in 1..=5 {
        let r: Value = form(&app, &check, &[("VerificationSid", &vsid), ("Code", &wrong(&code))]).await.json().await.unwrap();
        assert_eq!(r["status"], if attempt < 5 { "pending" } else { "max_attempts_reached" });
    }
    twilio_error(form(&app, &check, &[("VerificationSid", &vsid), ("Code", &code)]).await, 429, 60202).await;

    let to = fresh_number();
    let vsid = start(to.clone()).await;
    let code = app.code_for(&to).await;
    app.advance(chrono::Duration::minutes(10));
    twilio_error(form(&app, &check, &[("VerificationSid", &vsid), ("Code", &code)]).await, 404, 20404).await;

    let to = fresh_number();
    let vsid = start(to.clone()).await;
    let r = form(&app, &format!("/v2/Services/{sid}/Verifications/{vsid}"), &[("Status", "canceled")]).await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "canceled");
    twilio_error(form(&app, &format!("/v2/Services/{sid}/Verifications/{vsid}"), &[("Status", "canceled")]).await, 404, 20404).await;

    let to = fresh_number();
    start(to.clone()).await;
    let r = form(&app, &format!("/v2/Services/{sid}/Verifications/{to}"), &[("Status", "approved")]).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["status"].as_str(), v["valid"].as_bool()), (Some("approved"), Some(true)));
    twilio_error(form(&app, &format!("/v2/Services/{sid}/Verifications/{to}"), &[("Status", "expired")]).await, 404, 20404).await;
}

#[tokio::test]
async fn every_twilio_error_code() {
    let app = TestApp::spawn().await;
    let sid = service(&app).await;
    let verifications = format!("/v2/Services/{sid}/Verifications");
    let r = app.client.post(app.url(&verifications)).form(&[("To", "+4915123456789"), ("Channel", "sms")]).send().await.unwrap();
    twilio_error(r, 401, 20003).await;
    let r = app
        .client
        .post(app.url(&verifications))
        .basic_auth(&app.key_id, Some("wrong"))
        .form(&[("To", "+4915123456789")])
        .send()
        .await
        .unwrap();
    twilio_error(r, 401, 20003).await;

    twilio_error(form(&app, "/v2/Services", &[]).await, 400, 60200).await;
    twilio_error(form(&app, "/v2/Services", &[("FriendlyName", "x"), ("CodeLength", "12")]).await, 400, 60200).await;
    twilio_error(form(&app, &verifications, &[("To", "12"), ("Channel", "sms")]).await, 400, 60200).await;
    twilio_error(form(&app, &verifications, &[("To", "+4915123456789"), ("Channel", "carrier-pigeon")]).await, 400, 60200).await;
    twilio_error(form(&app, &verifications, &[("Channel", "sms")]).await, 400, 60200).await;
    twilio_error(
        form(&app, "/v2/Services/VA00000000000000000000000000000000/Verifications", &[("To", "+4915123456789"), ("Channel", "sms")]).await,
        404,
        20404,
    )
    .await;

    let to = fresh_number();
    for _ in 0..5 {
        assert_eq!(form(&app, &verifications, &[("To", &to), ("Channel", "sms")]).await.status(), 201);
    }
    twilio_error(form(&app, &verifications, &[("To", &to), ("Channel", "sms")]).await, 429, 60203).await;

    let check = format!("/v2/Services/{sid}/VerificationCheck");
    twilio_error(form(&app, &check, &[("Code", "123456")]).await, 400, 60221).await;
    twilio_error(form(&app, &check, &[("To", &to)]).await, 400, 60200).await;
    twilio_error(form(&app, &check, &[("VerificationSid", "VE00000000000000000000000000000000"), ("Code", "123456")]).await, 404, 20404)
        .await;
    let body: Value = app
        .client
        .post(app.url(&check))
        .basic_auth(&app.key_id, Some(&app.secret))
        .json(&json!({ "Code": "1" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["code"], 60200, "a JSON body is not a Twilio request: {body}");
}
