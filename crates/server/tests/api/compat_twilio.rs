//! Twilio Verify v2 over raw HTTP: paths, form bodies, Basic auth, field names and every error code.
use crate::helpers::{TestApp, fresh_number, wrong};
use reqwest::{Response, StatusCode};
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
    // No `Locale`: the number's country's language (a German number).
    assert!(body.starts_with("Ihr Acme Shop Bestätigungscode lautet: "), "{body}");
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
    // phonegate's own channel names are not Twilio's; `sna` needs a silent provider.
    for channel in ["silent", "auto", "sna"] {
        twilio_error(form(&app, &verifications, &[("To", "+4915123456789"), ("Channel", channel)]).await, 400, 60200).await;
    }
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

#[tokio::test]
async fn locks_by_number_wrong_lengths_attempt_sids_and_twilio_shaped_refusals() {
    let app = TestApp::spawn().await;
    let sid = service(&app).await;
    let to = fresh_number();
    let v: Value = form(&app, &format!("/v2/Services/{sid}/Verifications"), &[("To", &to), ("Channel", "sms")]).await.json().await.unwrap();
    let attempt = v["send_code_attempts"][0]["attempt_sid"].as_str().unwrap();
    assert!(attempt.starts_with("VL") && attempt.len() > 10, "{attempt}");
    let code = app.code_for(&to).await;
    let check = format!("/v2/Services/{sid}/VerificationCheck");
    // A code of another length (4 to 10 digits) is a wrong code: 200, pending, not valid.
    for guess in ["1234", &wrong(&code), "12345678", &wrong(&code)] {
        let r: Value = form(&app, &check, &[("To", &to), ("Code", guess)]).await.json().await.unwrap();
        assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("pending"), Some(false)), "{guess}: {r}");
    }
    // Not 4 to 10 digits: 60200.
    twilio_error(form(&app, &check, &[("To", &to), ("Code", "12")]).await, 400, 60200).await;
    form(&app, &check, &[("To", &to), ("Code", &wrong(&code))]).await;
    // Locked after five wrong codes: 429/60202 by number and by sid, even for the right code.
    twilio_error(form(&app, &check, &[("To", &to), ("Code", &code)]).await, 429, 60202).await;
    let vsid = v["sid"].as_str().unwrap();
    twilio_error(form(&app, &check, &[("VerificationSid", vsid), ("Code", &code)]).await, 429, 60202).await;
    // A number that never had one is still not found.
    twilio_error(form(&app, &check, &[("To", &fresh_number()), ("Code", &code)]).await, 404, 20404).await;

    // Twilio's shapes for unknown paths and methods.
    let get = |path: &str| app.client.get(app.url(path)).basic_auth(&app.key_id, Some(&app.secret)).send();
    twilio_error(get("/v2/Nowhere").await.unwrap(), 404, 20404).await;
    twilio_error(get(&format!("/v2/Services/{sid}/Entities")).await.unwrap(), 404, 20404).await;
    let put = app.client.put(app.url(&format!("/v2/Services/{sid}"))).basic_auth(&app.key_id, Some(&app.secret)).send();
    twilio_error(put.await.unwrap(), 405, 20004).await;
    twilio_error(get(&format!("/v2/Services/{sid}/VerificationCheck")).await.unwrap(), 405, 20004).await;

    // A landline: Twilio's 60205.
    let landline = form(&app, &format!("/v2/Services/{sid}/Verifications"), &[("To", "+493012345678"), ("Channel", "sms")]).await;
    twilio_error(landline, 403, 60205).await;
}

#[tokio::test]
async fn services_list_reuse_report_every_field_and_refuse_unavailable_flags() {
    let app = TestApp::spawn().await;
    let first = service(&app).await;
    // Created again at the next boot with the same settings: the same service.
    assert_eq!(service(&app).await, first);
    for flag in ["LookupEnabled", "DoNotShareWarningEnabled"] {
        let e = twilio_error(form(&app, "/v2/Services", &[("FriendlyName", "Flags"), (flag, "true")]).await, 400, 60200).await;
        assert!(e["message"].as_str().unwrap().contains(flag), "{e}");
    }
    let r = form(&app, "/v2/Services", &[("FriendlyName", "Other"), ("Psd2Enabled", "false")]).await;
    assert_eq!(r.status(), 201);
    let s: Value = r.json().await.unwrap();
    for field in ["whatsapp", "passkeys", "verify_event_subscription_enabled", "push", "totp"] {
        assert!(s.get(field).is_some_and(|v| v != &json!({})), "{field}: {s}");
    }
    for link in ["verifications", "verification_checks", "rate_limits", "messaging_configurations", "entities", "webhooks", "access_tokens"]
    {
        assert!(s["links"][link].as_str().is_some_and(|u| u.starts_with("http")), "{link}");
    }

    let list = |query: &str| app.client.get(app.url(&format!("/v2/Services{query}"))).basic_auth(&app.key_id, Some(&app.secret)).send();
    let page: Value = list("?PageSize=1&Page=0").await.unwrap().json().await.unwrap();
    assert_eq!(page["services"].as_array().unwrap().len(), 1);
    assert_eq!(page["meta"]["key"], "services");
    assert_eq!(page["meta"]["page_size"], 1);
    assert!(page["meta"]["next_page_url"].as_str().unwrap().ends_with("/v2/Services?PageSize=1&Page=1"));
    assert!(page["meta"]["previous_page_url"].is_null());
    let all: Value = list("").await.unwrap().json().await.unwrap();
    let names: Vec<&str> = all["services"].as_array().unwrap().iter().map(|s| s["friendly_name"].as_str().unwrap()).collect();
    assert!(names.contains(&"My App") && names.contains(&"Other"), "{names:?}");
    assert!(all["meta"]["next_page_url"].is_null());
}

#[tokio::test]
async fn the_account_sid_alias_of_a_key_authenticates_like_the_key() {
    let app = TestApp::spawn().await;
    let sid = service(&app).await;
    let alias = format!("AC{}", app.key_id.trim_start_matches("SK"));
    let path = format!("/v2/Services/{sid}");
    let r = app.client.get(app.url(&path)).basic_auth(&alias, Some(&app.secret)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["account_sid"], alias.as_str(), "the account SID reported is the alias that works");
    let r = app.client.get(app.url(&path)).basic_auth(&alias, Some("wrong-secret")).send().await.unwrap();
    twilio_error(r, 401, 20003).await;
}

#[tokio::test]
async fn app_hash_puts_the_android_sms_retriever_line_last_in_both_apis() {
    let app = TestApp::spawn().await;
    let sid = service(&app).await;
    let to = fresh_number();
    let r = form(&app, &format!("/v2/Services/{sid}/Verifications"), &[("To", &to), ("Channel", "sms"), ("AppHash", "FA+9qCX9VSu")]).await;
    assert_eq!(r.status(), 201);
    let body = app.outbox(&to).await[0]["body"].as_str().unwrap().to_string();
    let (text, hash) = body.rsplit_once("\n\n").expect("the hash on its own last line");
    assert_eq!(hash, "FA+9qCX9VSu");
    let code: String = text.chars().filter(char::is_ascii_digit).collect();
    let check: Value =
        form(&app, &format!("/v2/Services/{sid}/VerificationCheck"), &[("To", &to), ("Code", &code)]).await.json().await.unwrap();
    assert_eq!(check["status"], "approved");
    let (path, other) = (format!("/v2/Services/{sid}/Verifications"), fresh_number());
    twilio_error(form(&app, &path, &[("To", &other), ("Channel", "sms"), ("AppHash", "short")]).await, 400, 60200).await;

    let native = fresh_number();
    let r = app.post("/api/verifications", json!({ "to": native, "app_hash": "Ab3/cd+Ef9X" })).await;
    assert_eq!(r.status(), 201);
    assert!(app.outbox(&native).await[0]["body"].as_str().unwrap().ends_with("\n\nAb3/cd+Ef9X"));
    crate::helpers::expect_error(
        app.post("/api/verifications", json!({ "to": fresh_number(), "app_hash": "no spaces!!" })).await,
        400,
        "invalid_parameter",
    )
    .await;
}

/// Over HTTP/2 the host comes as `:authority`, not `Host`: resource URLs keep it, with the port.
#[tokio::test]
async fn urls_keep_host_and_port_over_http2() {
    let app = TestApp::spawn().await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let r =
        h2.post(app.url("/v2/Services")).basic_auth(&app.key_id, Some(&app.secret)).form(&[("FriendlyName", "H2")]).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let s: Value = r.json().await.unwrap();
    let url = s["url"].as_str().unwrap();
    assert!(url.starts_with(&app.url("/v2/Services/VA")), "{url} vs {}", app.url(""));
}

#[tokio::test]
async fn silent_network_auth_through_the_twilio_api() {
    let app = TestApp::spawn_with(|c| c.silent.simulator = true).await;
    let sid = service(&app).await;
    let to = fresh_number();
    let r = form(&app, &format!("/v2/Services/{sid}/Verifications"), &[("To", &to), ("Channel", "sna")]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["channel"].as_str(), v["status"].as_str()), (Some("sna"), Some("pending")));
    let url = v["sna"]["url"].as_str().unwrap();
    let check = format!("/v2/Services/{sid}/VerificationCheck");
    // Before the device opened the URL: pending.
    let r: Value = form(&app, &check, &[("To", &to)]).await.json().await.unwrap();
    assert_eq!((r["status"].as_str(), r["valid"].as_bool(), r["channel"].as_str()), (Some("pending"), Some(false), Some("sna")));
    // The device opens it (the simulated operator confirms), then the check by number or sid.
    let page = reqwest::get(format!("{url}?sim=match")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let r: Value = form(&app, &check, &[("To", &to)]).await.json().await.unwrap();
    assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("approved"), Some(true)));
    let r: Value = form(&app, &check, &[("VerificationSid", v["sid"].as_str().unwrap())]).await.json().await.unwrap();
    assert_eq!(r["status"], "approved");
    // An SMS verification still needs its code, and so does a number without an SNA verification.
    let sms = form(&app, &format!("/v2/Services/{sid}/Verifications"), &[("To", &fresh_number()), ("Channel", "sms")]).await;
    let sms: Value = sms.json().await.unwrap();
    twilio_error(form(&app, &check, &[("VerificationSid", sms["sid"].as_str().unwrap())]).await, 400, 60200).await;
    twilio_error(form(&app, &check, &[("To", &fresh_number())]).await, 400, 60200).await;
}

/// A check without a code looks for the number's silent verification; a failure of the server on
/// the way is a server error (Twilio's 20500), never the client's missing code (60200 / 400).
#[tokio::test]
async fn a_database_failure_during_a_codeless_check_is_a_server_error() {
    let app = TestApp::spawn().await;
    let sid = service(&app).await;
    let to = fresh_number();
    let check = format!("/v2/Services/{sid}/VerificationCheck");
    twilio_error(form(&app, &check, &[("To", &to)]).await, 400, 60200).await;
    // (Renamed away: valid on both backends, whatever refers to it.)
    phonegate_store::testing::execute(&app.database_url, "ALTER TABLE verifications RENAME TO verifications_gone").await.unwrap();
    twilio_error(form(&app, &check, &[("To", &to)]).await, 500, 20500).await;
}

async fn fetch_service(app: &TestApp, sid: &str) -> Response {
    app.client.get(app.url(&format!("/v2/Services/{sid}"))).basic_auth(&app.key_id, Some(&app.secret)).send().await.unwrap()
}

#[tokio::test]
async fn services_are_updated_and_deleted_as_twilio_does() {
    let app = TestApp::spawn().await;
    let sid = service(&app).await;
    let path = format!("/v2/Services/{sid}");
    app.advance(chrono::Duration::seconds(3));
    let r = form(&app, &path, &[("FriendlyName", "Renamed"), ("CodeLength", "8"), ("CustomCodeEnabled", "true")]).await;
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated, fetch_service(&app, &sid).await.json::<Value>().await.unwrap(), "the service as fetch answers it");
    assert_eq!((updated["sid"].as_str(), updated["friendly_name"].as_str()), (Some(&*sid), Some("Renamed")));
    assert_eq!((updated["code_length"].as_u64(), updated["custom_code_enabled"].as_bool()), (Some(8), Some(true)));
    assert_ne!(updated["date_updated"], updated["date_created"]);
    // What is not given stays; nothing given changes nothing.
    let r: Value = form(&app, &path, &[("Psd2Enabled", "true")]).await.json().await.unwrap();
    assert_eq!(
        (r["code_length"].as_u64(), r["custom_code_enabled"].as_bool(), r["psd2_enabled"].as_bool()),
        (Some(8), Some(true), Some(true))
    );
    assert_eq!(form(&app, &path, &[]).await.status(), 200);

    twilio_error(form(&app, &path, &[("CodeLength", "12")]).await, 400, 60200).await;
    twilio_error(form(&app, &path, &[("LookupEnabled", "true")]).await, 400, 60200).await;
    twilio_error(form(&app, &path, &[("Psd2Enabled", "maybe")]).await, 400, 60200).await;
    let unknown = "/v2/Services/VA00000000000000000000000000000000";
    twilio_error(form(&app, unknown, &[("FriendlyName", "x")]).await, 404, 20404).await;
    let delete = |path: String| app.client.delete(app.url(&path)).basic_auth(&app.key_id, Some(&app.secret)).send();
    twilio_error(delete(unknown.into()).await.unwrap(), 404, 20404).await;
    // The server's own service is not deleted.
    twilio_error(delete("/v2/Services/phonegate".into()).await.unwrap(), 400, 60200).await;

    let to = fresh_number();
    let v: Value = form(&app, &format!("{path}/Verifications"), &[("To", &to), ("Channel", "sms")]).await.json().await.unwrap();
    let r = delete(path.clone()).await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.bytes().await.unwrap().is_empty());
    twilio_error(fetch_service(&app, &sid).await, 404, 20404).await;
    twilio_error(form(&app, &path, &[("CodeLength", "6")]).await, 404, 20404).await;
    twilio_error(delete(path.clone()).await.unwrap(), 404, 20404).await;
    twilio_error(form(&app, &format!("{path}/Verifications"), &[("To", &to), ("Channel", "sms")]).await, 404, 20404).await;
    let vsid = v["sid"].as_str().unwrap();
    twilio_error(form(&app, &format!("{path}/VerificationCheck"), &[("VerificationSid", vsid), ("Code", "123456")]).await, 404, 20404)
        .await;
}

/// Twilio allows two services of one FriendlyName: the second gets a distinct name of its own and
/// is still shown (and its messages signed) as the FriendlyName.
#[tokio::test]
async fn two_services_may_share_a_friendly_name() {
    let app = TestApp::spawn().await;
    let first = service(&app).await;
    let r = form(&app, "/v2/Services", &[("FriendlyName", "My App"), ("CodeLength", "8")]).await;
    assert_eq!(r.status(), 201);
    let second: Value = r.json().await.unwrap();
    let sid = second["sid"].as_str().unwrap().to_string();
    assert_ne!(sid, first);
    assert_eq!((second["friendly_name"].as_str(), second["code_length"].as_u64()), (Some("My App"), Some(8)));
    let native: Value = app.get(&format!("/api/services/{sid}")).await.json().await.unwrap();
    assert_eq!((native["name"].as_str(), native["friendly_name"].as_str()), (Some("My App-2"), Some("My App")));
    // Created again with those settings (the next boot): that one again.
    let again: Value = form(&app, "/v2/Services", &[("FriendlyName", "My App"), ("CodeLength", "8")]).await.json().await.unwrap();
    assert_eq!(again["sid"], sid.as_str());
    let list: Value =
        app.client.get(app.url("/v2/Services")).basic_auth(&app.key_id, Some(&app.secret)).send().await.unwrap().json().await.unwrap();
    let shown = list["services"].as_array().unwrap().iter().filter(|s| s["friendly_name"] == "My App").count();
    assert_eq!(shown, 2, "{list}");

    // Its messages name it as its FriendlyName.
    let to = fresh_number();
    form(&app, &format!("/v2/Services/{sid}/Verifications"), &[("To", &to), ("Channel", "sms"), ("Locale", "en")]).await;
    let code = app.code_for(&to).await;
    assert_eq!(app.outbox(&to).await[0]["body"], format!("Your My App verification code is: {code}"));

    // Updated to the FriendlyName it shows already: nothing moves. To one taken: shown so too.
    let r: Value = form(&app, &format!("/v2/Services/{sid}"), &[("FriendlyName", "My App")]).await.json().await.unwrap();
    assert_eq!(r["friendly_name"], "My App");
    let native: Value = app.get(&format!("/api/services/{sid}")).await.json().await.unwrap();
    assert_eq!(native["name"], "My App-2");
    let r: Value = form(&app, &format!("/v2/Services/{first}"), &[("FriendlyName", "phonegate")]).await.json().await.unwrap();
    assert_eq!(r["friendly_name"], "phonegate");
    let native: Value = app.get(&format!("/api/services/{first}")).await.json().await.unwrap();
    assert_eq!((native["name"].as_str(), native["friendly_name"].as_str()), (Some("phonegate-2"), Some("phonegate")));
    // The native API keeps names unique.
    let r =
        app.client.patch(app.url(&format!("/api/services/{sid}"))).bearer_auth(&app.secret).json(&json!({ "name": "phonegate" })).send();
    crate::helpers::expect_error(r.await.unwrap(), 409, "service_name_taken").await;
}
