//! Budgets across verifications, services and the three APIs: wrong guesses and sends per
//! number, sends per prefix, starts and checks per end-user IP.
use crate::helpers::{TestApp, expect_error, fresh_number, wrong};
use phonegate::config::Config;
use serde_json::{Value, json};

fn rates(list: &[&str]) -> Vec<phonegate_core::budget::Rate> {
    list.iter().map(|r| r.parse().unwrap()).collect()
}

async fn service(app: &TestApp, name: &str) -> String {
    let r: Value = app.post("/api/services", json!({ "name": name })).await.json().await.unwrap();
    r["id"].as_str().unwrap().to_string()
}

async fn start_in(app: &TestApp, service: &str, to: &str) -> (String, String) {
    // The dev outbox lists a number's messages newest first: one second apart, so the newest is clear.
    app.advance(chrono::Duration::seconds(1));
    let r = app.post("/api/verifications", json!({ "to": to, "service": service })).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    (v["id"].as_str().unwrap().to_string(), app.code_for(to).await)
}

async fn twilio_check(app: &TestApp, service: &str, to: &str, code: &str) -> reqwest::Response {
    let url = app.url(&format!("/v2/Services/{service}/VerificationCheck"));
    app.client.post(url).basic_auth(&app.key_id, Some(&app.secret)).form(&[("To", to), ("Code", code)]).send().await.unwrap()
}

async fn vonage(app: &TestApp, path: &str, params: &[(&str, &str)]) -> Value {
    let mut all = vec![("api_key", app.key_id.as_str()), ("api_secret", app.secret.as_str())];
    all.extend_from_slice(params);
    app.client.post(app.url(path)).form(&all).send().await.unwrap().json().await.unwrap()
}

fn guesses(config: &mut Config, rates_: &[&str]) {
    config.budgets.failed_checks_per_number = rates(rates_);
}

#[tokio::test]
async fn wrong_guesses_on_one_number_are_budgeted_across_verifications_services_and_apis() {
    let app = TestApp::spawn_with(|c| guesses(c, &["7/1d"])).await;
    let to = fresh_number();
    let (shop, club) = (service(&app, "Shop").await, service(&app, "Club").await);

    // Five wrong codes end the first verification (its own limit), all counted for the number.
    let (id, code) = start_in(&app, &shop, &to).await;
    for _ in 0..5 {
        assert_eq!(app.check(&id, &wrong(&code)).await.status(), 200);
    }
    // Another service, another verification, another API: two more wrong codes fit the budget.
    let (_, code) = start_in(&app, &club, &to).await;
    assert_eq!(twilio_check(&app, &club, &to, &wrong(&code)).await.status(), 200);
    assert_eq!(app.post("/api/verifications/check", json!({ "to": to, "service": club, "code": wrong(&code) })).await.status(), 200);

    // The budget is spent: every API refuses, even the right code, until the day is over.
    let r = app.post("/api/verifications/check", json!({ "to": to, "service": club, "code": code })).await;
    let retry: i64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 86_400, "{retry}");
    let err = expect_error(r, 429, "checks_locked").await;
    assert!(err["message"].as_str().unwrap().contains("wrong codes"));
    let r = twilio_check(&app, &club, &to, &code).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 60202);
    // Vonage: a fresh verification of the same number in the default service.
    let started = vonage(&app, "/verify/json", &[("number", to.trim_start_matches('+')), ("brand", "Acme")]).await;
    assert_eq!(started["status"], "0", "{started}");
    let rid = started["request_id"].as_str().unwrap().to_string();
    let code = app.code_for(&to).await;
    let checked = vonage(&app, "/verify/check/json", &[("request_id", &rid), ("code", &code)]).await;
    assert_eq!(checked["status"], "17", "{checked}");

    // Nothing was compared over budget: the verification is still pending, with no attempt used.
    let v: Value = app.get(&format!("/api/verifications/VE{rid}")).await.json().await.unwrap();
    assert_eq!((v["status"].as_str(), v["attempts"].as_i64()), (Some("pending"), Some(0)), "{v}");
    // Another number is not affected; the next day the number may try again.
    let other = fresh_number();
    let (oid, ocode) = start_in(&app, &shop, &other).await;
    assert_eq!(app.check(&oid, &ocode).await.json::<Value>().await.unwrap()["status"], "approved");
    app.advance(chrono::Duration::days(1));
    let v = app.start(&to).await;
    let code = app.code_for(&to).await;
    assert_eq!(app.check(v["id"].as_str().unwrap(), &code).await.json::<Value>().await.unwrap()["status"], "approved");
}

#[tokio::test]
async fn a_right_code_does_not_spend_the_guess_budget() {
    let app = TestApp::spawn_with(|c| guesses(c, &["1/1d"])).await;
    let to = fresh_number();
    for _ in 0..3 {
        app.advance(chrono::Duration::seconds(1));
        let v = app.start(&to).await;
        let code = app.code_for(&to).await;
        assert_eq!(app.check(v["id"].as_str().unwrap(), &code).await.json::<Value>().await.unwrap()["status"], "approved");
    }
}

#[tokio::test]
async fn parallel_guesses_against_one_number_never_exceed_its_budget() {
    let app = TestApp::spawn_with(|c| {
        guesses(c, &["12/1d"]);
        c.budgets.sends_per_number = Vec::new();
    })
    .await;
    let to = fresh_number();
    let mut ids = Vec::new();
    for i in 0..6 {
        let svc = service(&app, &format!("S{i}")).await;
        let (id, code) = start_in(&app, &svc, &to).await;
        ids.push((id, code));
    }
    let tries: Vec<_> = ids
        .iter()
        .flat_map(|(id, code)| (0..5).map(move |_| (id.clone(), wrong(code))))
        .map(|(id, guess)| {
            let (client, url, secret) = (app.client.clone(), app.url(&format!("/api/verifications/{id}/check")), app.secret.clone());
            tokio::spawn(async move { client.post(url).bearer_auth(secret).json(&json!({ "code": guess })).send().await.unwrap().status() })
        })
        .collect();
    let mut compared = 0;
    for t in tries {
        match t.await.unwrap().as_u16() {
            200 => compared += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(compared, 12, "exactly the budget's guesses were compared");
}

#[tokio::test]
async fn sends_to_one_number_are_budgeted_across_services_and_apis() {
    let app = TestApp::spawn_with(|c| c.budgets.sends_per_number = rates(&["3/1h"])).await;
    let to = fresh_number();
    let (a, b) = (service(&app, "A").await, service(&app, "B").await);
    start_in(&app, &a, &to).await;
    start_in(&app, &b, &to).await;
    // A resend is a send too.
    start_in(&app, &a, &to).await;
    let err = app.post("/api/verifications", json!({ "to": to, "service": b })).await;
    assert!(err.headers().contains_key("retry-after"));
    expect_error(err, 429, "send_budget_exceeded").await;
    let url = app.url(&format!("/v2/Services/{b}/Verifications"));
    let r = app
        .client
        .post(url)
        .basic_auth(&app.key_id, Some(&app.secret))
        .form(&[("To", to.as_str()), ("Channel", "sms")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 60203);
    let v = vonage(&app, "/verify/json", &[("number", to.trim_start_matches('+')), ("brand", "Acme")]).await;
    assert_eq!(v["status"], "10", "{v}");
    assert_eq!(app.outbox(&to).await.len(), 3, "nothing more was sent");
    // Another number still gets its code.
    app.start(&fresh_number()).await;
}

#[tokio::test]
async fn a_prefix_budget_stops_pumping_while_other_countries_keep_flowing() {
    let app = TestApp::spawn_with(|c| {
        c.budgets.sends_per_prefix = rates(&["5/1h"]);
        c.budgets.starts_per_ip = Vec::new();
    })
    .await;
    let mut refused = 0;
    for n in 0..12 {
        // Each from another address, and claiming yet another in a spoofed X-Forwarded-For.
        let body = json!({ "to": format!("+4915200000{n:03}"), "client_ip": format!("198.51.100.{n}") });
        let r = app
            .client
            .post(app.url("/api/verifications"))
            .bearer_auth(&app.secret)
            .header("x-forwarded-for", format!("203.0.113.{n}"))
            .json(&body);
        let r = r.send().await.unwrap();
        match r.status().as_u16() {
            201 => {}
            429 => {
                refused += 1;
                expect_error(r, 429, "send_budget_exceeded").await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(refused, 7);
    let sent: Vec<Value> = app
        .client
        .get(app.url("/api/dev/outbox"))
        .bearer_auth(&app.secret)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(sent.len(), 5);
    // France (+33 6…) is another prefix.
    assert_eq!(app.post("/api/verifications", json!({ "to": "+33612345678" })).await.status(), 201);
}

#[tokio::test]
async fn starts_and_checks_per_end_user_ip_with_exempt_networks() {
    let app = TestApp::spawn_with(|c| {
        c.budgets.starts_per_ip = rates(&["2/1h"]);
        c.budgets.checks_per_ip = rates(&["1/1h"]);
        c.budgets.exempt_networks = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    for _ in 0..2 {
        assert_eq!(app.post("/api/verifications", json!({ "to": fresh_number(), "client_ip": "203.0.113.7" })).await.status(), 201);
    }
    let r = app.post("/api/verifications", json!({ "to": fresh_number(), "client_ip": "203.0.113.7" })).await;
    expect_error(r, 429, "rate_limited").await;
    // Twilio's DeviceIp is the same end user.
    let svc = service(&app, "Twilio app").await;
    let url = app.url(&format!("/v2/Services/{svc}/Verifications"));
    let form = [("To", fresh_number()), ("Channel", "sms".into()), ("DeviceIp", "203.0.113.7".into())];
    let r = app.client.post(url).basic_auth(&app.key_id, Some(&app.secret)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 20429);
    // Another end user, an exempt network, and a backend that names no end user are not limited.
    assert_eq!(app.post("/api/verifications", json!({ "to": fresh_number(), "client_ip": "2001:db8::1" })).await.status(), 201);
    for _ in 0..3 {
        assert_eq!(app.post("/api/verifications", json!({ "to": fresh_number(), "client_ip": "10.1.2.3" })).await.status(), 201);
    }
    let to = fresh_number();
    let v = app.start(&to).await;
    let id = v["id"].as_str().unwrap();
    let code = app.code_for(&to).await;
    let path = format!("/api/verifications/{id}/check");
    assert_eq!(app.post(&path, json!({ "code": wrong(&code), "client_ip": "198.51.100.9" })).await.status(), 200);
    expect_error(app.post(&path, json!({ "code": code, "client_ip": "198.51.100.9" })).await, 429, "rate_limited").await;
    expect_error(app.post("/api/verifications", json!({ "to": fresh_number(), "client_ip": "not-an-ip" })).await, 400, "invalid_parameter")
        .await;
}

#[tokio::test]
async fn a_prefix_where_codes_go_unused_is_throttled_while_others_flow() {
    let app = TestApp::spawn_with(|c| {
        c.budgets.throttle_after = Some("10/1h".parse().unwrap());
        c.budgets.throttle_min_conversion = 0.5;
    })
    .await;
    // A prefix whose codes get used is never throttled…
    for n in 0..12 {
        let to = format!("+4916000000{n:03}");
        let v = app.start(&to).await;
        let code = app.code_for(&to).await;
        assert_eq!(app.check(v["id"].as_str().unwrap(), &code).await.status(), 200);
    }
    // … one pumped with codes nobody enters is, after ten new numbers.
    for n in 0..10 {
        app.start(&format!("+4915700000{n:03}")).await;
    }
    let r = app.post("/api/verifications", json!({ "to": "+4915700000999" })).await;
    let retry: i64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 3600, "the rest of this window and the next: {retry}");
    expect_error(r, 429, "send_budget_exceeded").await;
    assert_eq!(app.post("/api/verifications", json!({ "to": "+4916000000999" })).await.status(), 201);
    // A resend to a number already pending is not a new number.
    assert_eq!(app.post("/api/verifications", json!({ "to": "+4915700000001" })).await.status(), 201);
    let audit: Value = app.get("/api/audit?kind=prefix_throttled").await.json().await.unwrap();
    assert_eq!(audit["events"].as_array().unwrap().len(), 1);
    // The pause ends after the next window.
    app.advance(chrono::Duration::hours(2));
    assert_eq!(app.post("/api/verifications", json!({ "to": "+4915700000998" })).await.status(), 201);
}

#[tokio::test]
async fn a_service_can_have_its_own_budgets_over_the_shared_counters() {
    let app = TestApp::spawn_with(|c| {
        guesses(c, &["10/1h"]);
        let strict = phonegate_core::budget::Overrides { failed_checks_per_number: Some(rates(&["2/1h"])), ..Default::default() };
        c.budgets.services.insert("Strict".into(), strict);
    })
    .await;
    let strict = service(&app, "Strict").await;
    let to = fresh_number();
    let (id, code) = start_in(&app, &strict, &to).await;
    for _ in 0..2 {
        assert_eq!(app.check(&id, &wrong(&code)).await.status(), 200);
    }
    expect_error(app.check(&id, &wrong(&code)).await, 429, "checks_locked").await;
    // The default service applies the global budget to the same counter: 2 used, 8 left.
    let (id, code) = start_in(&app, "phonegate", &to).await;
    for _ in 0..4 {
        assert_eq!(app.check(&id, &wrong(&code)).await.status(), 200);
    }
    let (id, code) = start_in(&app, "phonegate", &fresh_number()).await;
    assert_eq!(app.check(&id, &code).await.status(), 200);
}

#[tokio::test]
async fn a_service_can_be_limited_to_some_countries() {
    let app = TestApp::spawn_with(|c| {
        let de_only = phonegate_core::budget::Overrides { allowed_countries: vec!["DE".into()], ..Default::default() };
        c.budgets.services.insert("Berlin".into(), de_only);
        let no_fr = phonegate_core::budget::Overrides { denied_countries: vec!["FR".into()], ..Default::default() };
        c.budgets.services.insert("NoFrance".into(), no_fr);
    })
    .await;
    service(&app, "Berlin").await;
    service(&app, "NoFrance").await;
    let start = |to: &'static str, svc: &'static str| app.post("/api/verifications", json!({ "to": to, "service": svc }));
    expect_error(start("+33612345678", "Berlin").await, 400, "phone_number_destination_not_allowed").await;
    expect_error(start("+33612345678", "NoFrance").await, 400, "phone_number_destination_not_allowed").await;
    assert_eq!(start("+4915123456789", "Berlin").await.status(), 201);
    assert_eq!(start("+436641234567", "NoFrance").await.status(), 201);
    assert_eq!(start("+33612345678", "phonegate").await.status(), 201, "other services follow the global policy");
}
