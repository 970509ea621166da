//! Tenant-scoped API keys: a service key sees only its services' verifications, in every API,
//! and another tenant's things answer exactly as if they did not exist.
use crate::helpers::{TestApp, expect_error, fresh_number};
use phonegate_core::Caller;
use phonegate_core::apikey::KeyScope;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

struct Key {
    id: String,
    secret: String,
}

async fn service_key(app: &TestApp, service: &str) -> Key {
    let scope = KeyScope::Services(vec![service.into()]);
    let (key, secret) = app.state.core.api_keys.create(&Caller::system("tests"), service, scope).await.unwrap();
    Key { id: key.id, secret: secret.expose_secret().to_string() }
}

async fn native(app: &TestApp, key: &Key, method: reqwest::Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let r = app.client.request(method, app.url(path)).bearer_auth(&key.secret);
    match body {
        Some(b) => r.json(&b),
        None => r,
    }
    .send()
    .await
    .unwrap()
}

async fn twilio(app: &TestApp, key: &Key, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = app.client.post(app.url(path)).basic_auth(&key.id, Some(&key.secret)).form(form).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn vonage(app: &TestApp, key: &Key, path: &str, params: &[(&str, &str)]) -> Value {
    let mut all = vec![("api_key", key.id.as_str()), ("api_secret", key.secret.as_str())];
    all.extend_from_slice(params);
    app.client.post(app.url(path)).form(&all).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn a_service_key_finds_nothing_of_another_tenant_in_any_api() {
    let app = TestApp::spawn().await;
    let a: Value = app.post("/api/services", json!({ "name": "Alpha" })).await.json().await.unwrap();
    let b: Value = app.post("/api/services", json!({ "name": "Beta" })).await.json().await.unwrap();
    let (a_id, b_id) = (a["id"].as_str().unwrap().to_string(), b["id"].as_str().unwrap().to_string());
    let (ka, kb) = (service_key(&app, "Alpha").await, service_key(&app, &b_id).await);

    // Key A works in its own service, which is its default.
    let to = fresh_number();
    let r = native(&app, &ka, reqwest::Method::POST, "/api/verifications", Some(json!({ "to": to }))).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["verification"]["service_id"].as_str().or(v["service_id"].as_str()), Some(a_id.as_str()), "{v}");
    let id = v["id"].as_str().or(v["verification"]["id"].as_str()).unwrap().to_string();
    let code = app.code_for(&to).await;

    // Key B: not found, as if it did not exist, in the native API…
    use reqwest::Method as M;
    expect_error(native(&app, &kb, M::GET, &format!("/api/verifications/{id}"), None).await, 404, "verification_not_found").await;
    let check = native(&app, &kb, M::POST, &format!("/api/verifications/{id}/check"), Some(json!({ "code": code }))).await;
    expect_error(check, 404, "verification_not_found").await;
    expect_error(
        native(&app, &kb, M::POST, &format!("/api/verifications/{id}/cancel"), Some(json!({}))).await,
        404,
        "verification_not_found",
    )
    .await;
    let by_number =
        native(&app, &kb, M::POST, "/api/verifications/check", Some(json!({ "to": to, "code": code, "service": "Alpha" }))).await;
    expect_error(by_number, 404, "service_not_found").await;
    let start = native(&app, &kb, M::POST, "/api/verifications", Some(json!({ "to": fresh_number(), "service": a_id }))).await;
    expect_error(start, 404, "service_not_found").await;
    expect_error(native(&app, &kb, M::GET, &format!("/api/services/{a_id}"), None).await, 404, "service_not_found").await;
    let listed: Value = native(&app, &kb, M::GET, "/api/services", None).await.json().await.unwrap();
    let names: Vec<&str> = listed["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Beta"]);
    expect_error(native(&app, &kb, M::POST, "/api/services", Some(json!({ "name": "Gamma" }))).await, 403, "forbidden").await;
    let outbox: Value =
        native(&app, &kb, M::GET, &format!("/api/dev/outbox?to={}", to.replace('+', "%2B")), None).await.json().await.unwrap();
    assert!(outbox["messages"].as_array().unwrap().is_empty(), "B reads none of A's codes: {outbox}");

    // … in Twilio's…
    let (status, body) = twilio(&app, &kb, &format!("/v2/Services/{a_id}/VerificationCheck"), &[("To", &to), ("Code", &code)]).await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(20404)));
    let (status, body) = twilio(&app, &kb, &format!("/v2/Services/{a_id}/Verifications/{id}"), &[("Status", "approved")]).await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(20404)));
    let (status, body) = twilio(&app, &kb, &format!("/v2/Services/{b_id}/Verifications/{id}"), &[("Status", "approved")]).await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(20404)), "another service's verification through one's own service");
    let (status, body) = twilio(&app, &kb, "/v2/Services", &[("FriendlyName", "Gamma")]).await;
    assert_eq!((status, body["code"].as_u64()), (403, Some(20403)));

    // … and in Vonage's.
    let rid = id.trim_start_matches("VE");
    assert_eq!(vonage(&app, &kb, "/verify/check/json", &[("request_id", rid), ("code", &code)]).await["status"], "6");
    assert_eq!(vonage(&app, &kb, "/verify/search/json", &[("request_id", rid)]).await["status"], "101");
    assert_eq!(vonage(&app, &kb, "/verify/control/json", &[("request_id", rid), ("cmd", "cancel")]).await["status"], "6");

    // Nothing of A's changed; A itself can finish it.
    let r = native(&app, &ka, M::POST, &format!("/api/verifications/{id}/check"), Some(json!({ "code": code }))).await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "approved");
    // Admin keys still see everything.
    assert_eq!(app.get(&format!("/api/verifications/{id}")).await.status(), 200);
}

#[test]
fn keys_are_created_with_a_scope_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("k.db").display());
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_phonegate"))
            .args(args)
            .env("PHONEGATE_DATABASE_URL", &db)
            .envs(phonegate_store::testing::secret_file(&db).map(|f| ("PHONEGATE_SECRET_FILE", f)))
            .output()
            .unwrap()
    };
    let out = run(&["keys", "create", "--name", "shop", "--scope", "service", "--service", "phonegate", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["scope"], "service");
    let listed: Value = serde_json::from_slice(&run(&["keys", "list", "--json"]).stdout).unwrap();
    assert_eq!(listed["keys"][0]["scope"], "service");
    assert!(listed["keys"][0]["services"][0].as_str().unwrap().starts_with("VA"));
    let out = run(&["keys", "create", "--name", "x", "--scope", "service", "--service", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such service"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["keys", "create", "--name", "x", "--scope", "service"]);
    assert!(!out.status.success());
}

/// Custom codes: only a service that allows them takes the app's code, in all three APIs; the
/// code is stored as a digest only and bound by the same attempt limits.
#[tokio::test]
async fn a_service_with_custom_codes_takes_the_apps_code_in_every_api() {
    let app = TestApp::spawn().await;
    let r = app.post("/api/services", json!({ "name": "bank", "custom_codes": true })).await;
    assert_eq!(r.status(), 201);
    let bank: Value = r.json().await.unwrap();
    assert_eq!(bank["custom_codes"], true);
    let key = service_key(&app, bank["id"].as_str().unwrap()).await;

    // Native: the code arrives as given and approves.
    let to = fresh_number();
    let r = native(&app, &key, reqwest::Method::POST, "/api/verifications", Some(json!({ "to": to, "custom_code": "4711" }))).await;
    assert_eq!(r.status(), 201);
    assert!(app.outbox(&to).await[0]["body"].as_str().unwrap().contains("4711"));
    let check = json!({ "to": to, "code": "4711" });
    let r = native(&app, &key, reqwest::Method::POST, "/api/verifications/check", Some(check)).await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "approved");
    // Another custom code while one is pending is refused, not silently replaced.
    let other = fresh_number();
    native(&app, &key, reqwest::Method::POST, "/api/verifications", Some(json!({ "to": other, "custom_code": "1111" }))).await;
    let r = native(&app, &key, reqwest::Method::POST, "/api/verifications", Some(json!({ "to": other, "custom_code": "2222" }))).await;
    assert_eq!(r.status(), 409, "{}", r.text().await.unwrap());
    expect_error(
        native(&app, &key, reqwest::Method::POST, "/api/verifications", Some(json!({ "to": fresh_number(), "custom_code": "12" }))).await,
        400,
        "invalid_parameter",
    )
    .await;
    // The default service does not allow them.
    expect_error(
        app.post("/api/verifications", json!({ "to": fresh_number(), "custom_code": "4711" })).await,
        403,
        "custom_code_not_enabled",
    )
    .await;

    // Twilio: CustomCode on a service created with CustomCodeEnabled.
    let admin = Key { id: app.key_id.clone(), secret: app.secret.clone() };
    let (status, service) = twilio(&app, &admin, "/v2/Services", &[("FriendlyName", "Shop"), ("CustomCodeEnabled", "true")]).await;
    assert_eq!((status, &service["custom_code_enabled"]), (201, &json!(true)), "{service}");
    let sid = service["sid"].as_str().unwrap();
    let tw = fresh_number();
    let (status, _) =
        twilio(&app, &admin, &format!("/v2/Services/{sid}/Verifications"), &[("To", &tw), ("Channel", "sms"), ("CustomCode", "865309")])
            .await;
    assert_eq!(status, 201);
    let (_, checked) = twilio(&app, &admin, &format!("/v2/Services/{sid}/VerificationCheck"), &[("To", &tw), ("Code", "865309")]).await;
    assert_eq!(checked["status"], "approved");
    let (status, refused) = twilio(
        &app,
        &admin,
        "/v2/Services/phonegate/Verifications",
        &[("To", &fresh_number()), ("Channel", "sms"), ("CustomCode", "865309")],
    )
    .await;
    assert_eq!((status, &refused["code"]), (400, &json!(60200)), "{refused}");

    // Vonage: `pin_code` with a key of the custom-code service; status 20 elsewhere.
    let vg = fresh_number();
    let started =
        vonage(&app, &key, "/verify/json", &[("number", vg.trim_start_matches('+')), ("brand", "Bank"), ("pin_code", "2468")]).await;
    assert_eq!(started["status"], "0", "{started}");
    assert!(app.outbox(&vg).await[0]["body"].as_str().unwrap().contains("2468"));
    let rid = started["request_id"].as_str().unwrap();
    assert_eq!(vonage(&app, &key, "/verify/check/json", &[("request_id", rid), ("code", "2468")]).await["status"], "0");
    let refused =
        vonage(&app, &admin, "/verify/json", &[("number", fresh_number().trim_start_matches('+')), ("brand", "x"), ("pin_code", "2468")])
            .await;
    assert_eq!(refused["status"], "20", "{refused}");
}

/// PSD2: a service that sends payment codes puts amount and payee in the message (in the
/// number's language too), and a check naming another payment does not approve, in all three APIs.
#[tokio::test]
async fn payment_codes_name_amount_and_payee_and_checks_are_bound_to_them() {
    let app = TestApp::spawn().await;
    let r = app.post("/api/services", json!({ "name": "pay", "psd2": true })).await;
    let pay: Value = r.json().await.unwrap();
    assert_eq!(pay["psd2"], true);
    let key = service_key(&app, pay["id"].as_str().unwrap()).await;
    let post = |body: Value| native(&app, &key, reqwest::Method::POST, "/api/verifications", Some(body));

    let to = fresh_number();
    let started: Value = post(json!({ "to": to, "amount": "€39.99", "payee": "Acme Shop", "locale": "en" })).await.json().await.unwrap();
    let body = app.outbox(&to).await[0]["body"].as_str().unwrap().to_string();
    assert!(body.contains("€39.99") && body.contains("Acme Shop") && body.starts_with("Your pay verification code is: "), "{body}");
    let code: String = body.split(':').nth(1).unwrap().chars().take_while(|c| *c != '.').filter(char::is_ascii_digit).collect();
    let id = started["id"].as_str().unwrap();
    let check_path = format!("/api/verifications/{id}/check");
    let check = |extra: Value| {
        let mut b = json!({ "code": code });
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        native(&app, &key, reqwest::Method::POST, &check_path, Some(b))
    };
    let other: Value = check(json!({ "amount": "€3999.00", "payee": "Acme Shop" })).await.json().await.unwrap();
    assert_eq!((other["status"].as_str(), other["valid"].as_bool()), (Some("pending"), Some(false)), "another amount: {other}");
    let ok: Value = check(json!({ "amount": "€39.99", "payee": "Acme Shop" })).await.json().await.unwrap();
    assert_eq!(ok["status"], "approved");
    // German number, no locale: the German payment text.
    let de = fresh_number();
    post(json!({ "to": de, "amount": "12,00 €", "payee": "Bäckerei" })).await;
    let body = app.outbox(&de).await[0]["body"].as_str().unwrap().to_string();
    assert!(body.starts_with("Ihr pay Bestätigungscode lautet: ") && body.contains("12,00 €") && body.contains("Bäckerei"), "{body}");
    expect_error(post(json!({ "to": fresh_number(), "amount": "€1" })).await, 400, "invalid_parameter").await;
    expect_error(
        app.post("/api/verifications", json!({ "to": fresh_number(), "amount": "€1", "payee": "x" })).await,
        403,
        "psd2_not_enabled",
    )
    .await;

    // Twilio: Amount and Payee on a Psd2Enabled service, reported back and bound to the check.
    let admin = Key { id: app.key_id.clone(), secret: app.secret.clone() };
    let (_, service) = twilio(&app, &admin, "/v2/Services", &[("FriendlyName", "Bank"), ("Psd2Enabled", "true")]).await;
    assert_eq!(service["psd2_enabled"], true);
    let sid = service["sid"].as_str().unwrap();
    let tw = fresh_number();
    let (status, v) = twilio(
        &app,
        &admin,
        &format!("/v2/Services/{sid}/Verifications"),
        &[("To", &tw), ("Channel", "sms"), ("Amount", "€10.00"), ("Payee", "Shop")],
    )
    .await;
    assert_eq!((status, v["amount"].as_str(), v["payee"].as_str()), (201, Some("€10.00"), Some("Shop")), "{v}");
    let sms = app.outbox(&tw).await[0]["body"].as_str().unwrap().to_string();
    let tw_code: String = sms.split(':').nth(1).unwrap().chars().take_while(|c| *c != '.').filter(char::is_ascii_digit).collect();
    let checked = |amount: &'static str| {
        let (path, tw, code) = (format!("/v2/Services/{sid}/VerificationCheck"), tw.clone(), tw_code.clone());
        let (app, admin) = (&app, &admin);
        async move { twilio(app, admin, &path, &[("To", &tw), ("Code", &code), ("Amount", amount), ("Payee", "Shop")]).await.1 }
    };
    assert_eq!(checked("€99.00").await["valid"], false);
    let approved = checked("€10.00").await;
    assert_eq!((approved["status"].as_str(), approved["amount"].as_str()), (Some("approved"), Some("€10.00")), "{approved}");

    // Vonage: /verify/psd2/json with a key of the payment service.
    let vg = fresh_number();
    let started = vonage(
        &app,
        &key,
        "/verify/psd2/json",
        &[("number", vg.trim_start_matches('+')), ("payee", "Vonage Shop"), ("amount", "7.5"), ("lg", "en-gb")],
    )
    .await;
    assert_eq!(started["status"], "0", "{started}");
    let sms = app.outbox(&vg).await[0]["body"].as_str().unwrap().to_string();
    assert!(sms.contains("€7.50") && sms.contains("Vonage Shop"), "{sms}");
    let missing = vonage(&app, &key, "/verify/psd2/json", &[("number", fresh_number().trim_start_matches('+')), ("amount", "1")]).await;
    assert_eq!(missing["status"], "2", "{missing}");
}
