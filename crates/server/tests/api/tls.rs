//! The HTTPS listener (several official SDKs only speak HTTPS to a configurable host).
use crate::helpers::{TestApp, fresh_number};
use serde_json::Value;

#[tokio::test]
async fn serves_the_apis_over_https_only_when_configured() {
    let (app, _) = TestApp::spawn_tls(|_| {}).await;
    let health: Value = app.client.get(app.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");

    // The Twilio-compatible API over TLS, as an SDK would call it.
    let r = app
        .client
        .post(app.url("/v2/Services"))
        .basic_auth(&app.key_id, Some(&app.secret))
        .form(&[("FriendlyName", "tls")])
        .send()
        .await
        .unwrap();
    let service: Value = r.json().await.unwrap();
    assert!(service["url"].as_str().unwrap().starts_with("https://"), "{service}");
    let sid = service["sid"].as_str().unwrap().to_string();
    let r = app
        .client
        .post(app.url(&format!("/v2/Services/{sid}/Verifications")))
        .basic_auth(&app.key_id, Some(&app.secret))
        .form(&[("To", fresh_number().as_str()), ("Channel", "sms")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Plain HTTP on the same port gets no answer from the API.
    let plain = reqwest::Client::new().get(app.base.replace("https://", "http://") + "/healthz").send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

#[test]
fn mismatched_tls_settings_are_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonegate")).args(["serve", "--tls-cert", "x.pem"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}
