//! Silent verification through the local simulator: `silent` and `auto` verifications, the
//! single-use `check_url`, every fallback of `auto` to SMS, coverage, replayed and forged
//! callbacks, and the sweep of checks the device never finished.
use crate::helpers::{TestApp, eventually, expect_error, fresh_number};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn simulator() -> TestApp {
    TestApp::spawn_with(|c| c.silent.simulator = true).await
}

/// A client that does not follow redirects, to see each step of the device's way.
fn device() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn start(app: &TestApp, to: &str, channel: &str) -> Value {
    let r = app.post("/api/verifications", json!({ "to": to, "channel": channel })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

async fn get(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap()
}

/// The device opens the check URL and the simulated operator answers `sim`; returns the final
/// page's status and text.
async fn walk(check_url: &str, sim: &str) -> (StatusCode, String) {
    let r = reqwest::get(format!("{check_url}?sim={sim}")).await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// The device's walk, returning the URL it ended on (a login flow's page carries the proof).
async fn walk_to(check_url: &str, sim: &str) -> reqwest::Url {
    let r = reqwest::get(format!("{check_url}?sim={sim}")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.url().clone()
}

fn proof_of(url: &reqwest::Url) -> String {
    url.query_pairs().find(|(k, _)| k == "proof").map(|(_, v)| v.into_owned()).expect("a proof")
}

async fn code_sent(app: &TestApp, to: &str) -> String {
    eventually(|| async { app.outbox(to).await.first().and_then(|m| m["body"].as_str()).map(str::to_string) }).await;
    app.code_for(to).await
}

#[tokio::test]
async fn a_silent_verification_is_approved_when_the_operator_confirms_the_number() {
    let app = simulator().await;
    let to = fresh_number();
    let v = start(&app, &to, "silent").await;
    assert_eq!(v["status"], "pending");
    assert_eq!(v["channel"], "silent");
    assert_eq!(v["silent"]["status"], "created");
    assert_eq!(v["silent"]["provider"], "simulator");
    let check_url = v["silent"]["check_url"].as_str().unwrap().to_string();
    assert!(check_url.starts_with(&format!("{}/silent/", app.base)), "{check_url}");

    // A link preview (HEAD) or a browser's prefetch does not spend the link.
    assert_eq!(device().head(&check_url).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let prefetch = device().get(&check_url).header("sec-purpose", "prefetch").send().await.unwrap();
    assert_eq!(prefetch.status(), StatusCode::NO_CONTENT);
    // The device's way: the check URL sends it to the operator, the operator back to phonegate.
    let r = device().get(&check_url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let operator = r.headers()["location"].to_str().unwrap().to_string();
    assert!(operator.starts_with("/silent/simulator/SR"), "{operator}");
    let page = device().get(app.url(&operator)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Simulated operator") && page.contains("data-outcome=\"match\""), "{page}");
    let r = device().get(app.url(&format!("{operator}?sim=match"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let callback = r.headers()["location"].to_str().unwrap().to_string();
    assert!(callback.starts_with("/silent/callback/simulator?ref=SR"), "{callback}");
    let r = device().get(app.url(&callback)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Number verified"));

    let v = get(&app, v["id"].as_str().unwrap()).await;
    assert_eq!(v["status"], "approved");
    assert_eq!(v["approved_channel"], "silent");
    assert_eq!(v["silent"]["status"], "matched");
    assert!(v["silent"].get("check_url").is_none(), "the link is given out once");
    assert_eq!(app.queued(&to).await, 0, "no SMS for a silent approval");

    // The callback again (a replay), and the link again: both refused.
    assert_eq!(device().get(app.url(&callback)).send().await.unwrap().status(), StatusCode::GONE);
    assert_eq!(device().get(&check_url).send().await.unwrap().status(), StatusCode::GONE);
    let events: Value = app.get("/api/audit?kind=silent_approved").await.json().await.unwrap();
    assert_eq!(events["events"][0]["subject"], v["id"]);
}

#[tokio::test]
async fn a_silent_verification_fails_with_the_reason_when_the_operator_does_not_confirm() {
    let app = simulator().await;
    for (sim, reason) in [("mismatch", "mismatch"), ("wifi", "wifi"), ("no_coverage", "operator_not_covered"), ("timeout", "timeout")] {
        let to = fresh_number();
        let v = start(&app, &to, "silent").await;
        let (status, page) = walk(v["silent"]["check_url"].as_str().unwrap(), sim).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Not verified"), "{page}");
        let v = get(&app, v["id"].as_str().unwrap()).await;
        assert_eq!(v["status"], "failed", "{sim}");
        assert_eq!(v["failure_reason"], reason);
        assert_eq!(v["silent"]["reason"], reason);
        assert!(v["approved_channel"].is_null());
        assert_eq!(app.queued(&to).await, 0, "a silent verification never sends a code");
    }
}

#[tokio::test]
async fn auto_continues_the_same_verification_by_sms_whenever_the_silent_check_fails() {
    let app = simulator().await;
    for (sim, reason) in [("mismatch", "mismatch"), ("wifi", "wifi"), ("no_coverage", "operator_not_covered"), ("timeout", "timeout")] {
        let to = fresh_number();
        let v = start(&app, &to, "auto").await;
        let id = v["id"].as_str().unwrap();
        assert_eq!(app.queued(&to).await, 0, "no code while the silent check may succeed");
        let (_, page) = walk(v["silent"]["check_url"].as_str().unwrap(), sim).await;
        assert!(page.contains("We sent you a code"), "{sim}: {page}");
        let code = code_sent(&app, &to).await;
        let now = get(&app, id).await;
        assert_eq!(now["status"], "pending", "{sim}: the same verification goes on");
        assert_eq!(now["silent"]["reason"], reason);
        let r: Value = app.check(id, &code).await.json().await.unwrap();
        assert_eq!(r["status"], "approved");
        assert_eq!(get(&app, id).await["approved_channel"], "sms");
    }
}

#[tokio::test]
async fn auto_is_approved_silently_without_any_sms() {
    let app = simulator().await;
    let to = fresh_number();
    let v = start(&app, &to, "auto").await;
    let (_, page) = walk(v["silent"]["check_url"].as_str().unwrap(), "match").await;
    assert!(page.contains("Number verified"), "{page}");
    let v = get(&app, v["id"].as_str().unwrap()).await;
    assert_eq!((v["status"].as_str(), v["approved_channel"].as_str()), (Some("approved"), Some("silent")));
    assert_eq!(app.queued(&to).await, 0);
}

#[tokio::test]
async fn an_unfinished_check_times_out_into_sms_and_its_link_expires() {
    let app = simulator().await;
    // Never opened.
    let (a, b) = (fresh_number(), fresh_number());
    let va = start(&app, &a, "auto").await;
    // Opened, but the operator never answered.
    let vb = start(&app, &b, "auto").await;
    let r = device().get(vb["silent"]["check_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    app.advance(chrono::Duration::seconds(121));
    // The link opened after its deadline ends the check itself.
    let r = device().get(va["silent"]["check_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    code_sent(&app, &a).await;
    // The sweep ends the other: this call, or the server's own background sweep if it came
    // first (what follows holds either way).
    assert!(app.state.core.verifier.expire_silent_checks(100).await.unwrap() <= 1);
    code_sent(&app, &b).await;
    let v = get(&app, vb["id"].as_str().unwrap()).await;
    assert_eq!((v["status"].as_str(), v["silent"]["reason"].as_str()), (Some("pending"), Some("timeout")));
}

#[tokio::test]
async fn the_app_can_stop_waiting_and_send_the_code_now() {
    let app = simulator().await;
    let to = fresh_number();
    let v = start(&app, &to, "auto").await;
    let id = v["id"].as_str().unwrap();
    let r = app.post(&format!("/api/verifications/{id}/fallback"), json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r: Value = r.json().await.unwrap();
    assert_eq!((r["code_sent"].as_bool(), r["silent"]["status"].as_str()), (Some(true), Some("failed")));
    code_sent(&app, &to).await;
    // Once only; and the device's link is dead now.
    expect_error(app.post(&format!("/api/verifications/{id}/fallback"), json!({})).await, 409, "no_silent_check").await;
    assert_eq!(device().get(v["silent"]["check_url"].as_str().unwrap()).send().await.unwrap().status(), StatusCode::GONE);
    // Not for an SMS verification.
    let sms = app.start(&fresh_number()).await;
    let path = format!("/api/verifications/{}/fallback", sms["id"].as_str().unwrap());
    expect_error(app.post(&path, json!({})).await, 409, "no_silent_check").await;
}

#[tokio::test]
async fn a_check_url_opens_once_under_concurrency_and_forged_links_and_callbacks_are_refused() {
    let app = simulator().await;
    let v = start(&app, &fresh_number(), "silent").await;
    let url = v["silent"]["check_url"].as_str().unwrap().to_string();
    let client = device();
    let tries = (0..12).map(|_| {
        let (c, u) = (client.clone(), url.clone());
        tokio::spawn(async move { c.get(u).send().await.unwrap().status() })
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(tries).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::SEE_OTHER).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::SEE_OTHER || *s == StatusCode::GONE), "{statuses:?}");

    // A made-up token, a made-up reference, an unknown provider, no reference at all.
    let forged = format!("{}/silent/{}", app.base, "A".repeat(43));
    assert_eq!(device().get(forged).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    for path in [
        "/silent/callback/simulator?ref=SR00000000000000000000000000000000&outcome=match",
        "/silent/callback/operator?ref=x",
        "/silent/callback/simulator?outcome=match",
    ] {
        assert_eq!(device().get(app.url(path)).send().await.unwrap().status(), StatusCode::BAD_REQUEST, "{path}");
    }
}

#[tokio::test]
async fn coverage_answers_for_the_device_and_the_simulator_takes_sim() {
    let app = simulator().await;
    let anonymous = reqwest::Client::new();
    let cov = |q: &str| anonymous.get(app.url(&format!("/api/coverage{q}"))).send();
    let r: Value = cov("").await.unwrap().json().await.unwrap();
    assert_eq!((r["available"].as_bool(), r["provider"].as_str()), (Some(true), Some("simulator")));
    for (sim, reason) in [("wifi", "wifi"), ("no_coverage", "operator_not_covered")] {
        let r: Value = cov(&format!("?sim={sim}")).await.unwrap().json().await.unwrap();
        assert_eq!((r["available"].as_bool(), r["reason"].as_str()), (Some(false), Some(reason)));
    }
    let r: Value = cov("?sim=match").await.unwrap().json().await.unwrap();
    assert_eq!(r["available"], true);
    // Another address is a backend's question (with a key).
    expect_error(cov("?ip=203.0.113.7").await.unwrap(), 400, "invalid_parameter").await;
    let r: Value = app.get("/api/coverage?ip=203.0.113.7&to=%2B4915123456789").await.json().await.unwrap();
    assert_eq!(r["available"], true);
    expect_error(app.get("/api/coverage?ip=nope").await, 400, "invalid_parameter").await;
    expect_error(cov("?sim=maybe").await.unwrap(), 400, "invalid_parameter").await;
    let r = anonymous.get(app.url("/api/coverage")).bearer_auth("sk_wrong").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn without_a_silent_provider_silent_is_refused_and_auto_is_sms() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    expect_error(app.post("/api/verifications", json!({ "to": to, "channel": "silent" })).await, 400, "silent_unavailable").await;
    let v = start(&app, &to, "auto").await;
    assert_eq!(v["silent"]["status"], "failed");
    assert_eq!(v["silent"]["reason"], "operator_not_covered");
    assert!(v["silent"].get("check_url").is_none());
    let code = code_sent(&app, &to).await;
    let r: Value = app.check(v["id"].as_str().unwrap(), &code).await.json().await.unwrap();
    assert_eq!(r["status"], "approved");
    let r: Value = reqwest::get(app.url("/api/coverage")).await.unwrap().json().await.unwrap();
    assert_eq!((r["available"].as_bool(), r["reason"].as_str()), (Some(false), Some("operator_not_covered")));
    expect_error(reqwest::get(app.url("/api/coverage?sim=match")).await.unwrap(), 400, "invalid_parameter").await;
    expect_error(app.post("/api/verifications", json!({ "to": to, "channel": "fax" })).await, 400, "channel_not_supported").await;
}

#[tokio::test]
async fn a_second_silent_start_for_a_number_is_refused_while_one_is_pending() {
    let app = simulator().await;
    let to = fresh_number();
    let v = start(&app, &to, "silent").await;
    let e = expect_error(app.post("/api/verifications", json!({ "to": to, "channel": "silent" })).await, 409, "verification_pending").await;
    assert_eq!(e["verification_id"], v["id"]);
}

#[tokio::test]
async fn an_app_signs_up_and_logs_in_silently_through_the_json_api() {
    let app = simulator().await;
    let anonymous = reqwest::Client::new();
    let post = |path: &str, body: Value| anonymous.post(app.url(path)).json(&body).send();
    let to = fresh_number();
    // Without `silent`, the API is as before: a code.
    let r: Value = post("/api/auth/signup", json!({ "username": "plain", "phone": fresh_number() })).await.unwrap().json().await.unwrap();
    assert_eq!(r["next"], "code");
    assert!(r.get("check_url").is_none());

    let r = post("/api/auth/signup", json!({ "username": "quiet", "phone": to, "silent": true })).await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let flow: Value = r.json().await.unwrap();
    assert_eq!(flow["next"], "silent");
    let check_url = flow["check_url"].as_str().unwrap();
    // Too early: the device has not been to its operator.
    let early = post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "silent": true })).await.unwrap();
    expect_error(early, 409, "no_silent_check").await;
    let landed = walk_to(check_url, "match").await;
    assert_eq!(landed.path(), "/login/code", "the device ends on the flow's page");
    let proof = proof_of(&landed);
    // Whoever started the flow cannot finish it without the device's proof.
    for bad in [json!({ "flow_id": flow["flow_id"], "silent": true }), json!({ "flow_id": flow["flow_id"], "silent": true, "proof": "x" })]
    {
        expect_error(post("/api/auth/verify", bad).await.unwrap(), 409, "no_silent_check").await;
    }
    let r = post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "silent": true, "proof": proof })).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let tokens: Value = r.json().await.unwrap();
    assert!(tokens["access_token"].as_str().is_some_and(|t| t.len() > 20), "{tokens}");
    assert_eq!(app.queued(&to).await, 0, "no SMS");
    // Once: the flow is used.
    let again = post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "silent": true, "proof": proof })).await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    // A second flow for the number shares the pending verification, never the first's check.
    let a: Value = post("/api/auth/login", json!({ "phone": to, "silent": true })).await.unwrap().json().await.unwrap();
    let b: Value = post("/api/auth/login", json!({ "phone": to })).await.unwrap().json().await.unwrap();
    // A second silent login while one is pending answers the same shape (its check ends nothing).
    let c: Value = post("/api/auth/login", json!({ "phone": to, "silent": true })).await.unwrap().json().await.unwrap();
    assert_eq!(c["next"], "silent");
    let proof = proof_of(&walk_to(a["check_url"].as_str().unwrap(), "match").await);
    let stolen = post("/api/auth/verify", json!({ "flow_id": b["flow_id"], "silent": true, "proof": proof })).await.unwrap();
    expect_error(stolen, 409, "no_silent_check").await;
    let own = post("/api/auth/verify", json!({ "flow_id": a["flow_id"], "silent": true, "proof": proof })).await.unwrap();
    assert_eq!(own.status(), StatusCode::OK);

    // Password logins stay on codes; an unknown number gets a check link like a known one.
    let r = post("/api/auth/login", json!({ "identifier": "quiet", "password": "x", "silent": true })).await.unwrap();
    expect_error(r, 400, "invalid_parameter").await;
    let decoy: Value = post("/api/auth/login", json!({ "phone": fresh_number(), "silent": true })).await.unwrap().json().await.unwrap();
    assert_eq!(decoy["next"], "silent");
    let r = device().get(decoy["check_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "a decoy's link leads to the operator too");
    // And comes back like a real one whose SIM did not match.
    let operator = r.headers()["location"].to_str().unwrap().to_string();
    let landed = reqwest::get(app.url(&format!("{operator}?sim=match"))).await.unwrap();
    assert_eq!(landed.status(), StatusCode::OK);
    assert!(landed.url().query().is_some_and(|q| q.contains("silent=sms")), "{}", landed.url());
}

#[tokio::test]
async fn a_page_asking_for_coverage_spends_its_address_check_budget() {
    let app = TestApp::spawn_with(|c| {
        c.silent.simulator = true;
        c.budgets.checks_per_ip = vec!["3/1h".parse().unwrap()];
    })
    .await;
    let anonymous = reqwest::Client::new();
    for _ in 0..3 {
        assert_eq!(anonymous.get(app.url("/api/coverage")).send().await.unwrap().status(), StatusCode::OK);
    }
    let r = anonymous.get(app.url("/api/coverage")).send().await.unwrap();
    expect_error(r, 429, "rate_limited").await;
    // A backend with a key is not its users' address.
    assert_eq!(app.get("/api/coverage?ip=198.51.100.1").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_silent_verification_never_takes_a_code() {
    let app = simulator().await;
    let to = fresh_number();
    let v = start(&app, &to, "silent").await;
    let id = v["id"].as_str().unwrap();
    // No SMS start for the number while it is pending (its code would go by SMS).
    let e = expect_error(app.post("/api/verifications", json!({ "to": to })).await, 409, "verification_pending").await;
    assert_eq!(e["verification_id"], v["id"]);
    expect_error(app.post("/api/verifications", json!({ "to": to, "channel": "auto" })).await, 409, "verification_pending").await;
    assert_eq!(app.queued(&to).await, 0);
    // Whatever is typed is a wrong code.
    for code in ["123456", "000000"] {
        let r: Value = app.check(id, code).await.json().await.unwrap();
        assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("pending"), Some(false)));
    }
}

#[tokio::test]
async fn a_login_page_flow_is_finished_only_by_the_browser_that_started_it() {
    let app = simulator().await;
    let browser = || reqwest::Client::builder().cookie_store(true).build().unwrap();
    let (mine, theirs) = (browser(), browser());
    // The sign-up form of a browser (its CSRF cookie and token from the page).
    let page = mine.get(app.url("/signup")).send().await.unwrap().text().await.unwrap();
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let to = fresh_number();
    let r = mine
        .post(app.url("/signup"))
        .form(&[("csrf", csrf.as_str()), ("username", "pagesilent"), ("phone", to.as_str())])
        .send()
        .await
        .unwrap();
    let code_page = r.url().clone();
    assert_eq!(code_page.path(), "/login/code");
    let token = code_page.query_pairs().find(|(k, _)| k == "check").unwrap().1.into_owned();
    let landed = walk_to(&app.url(&format!("/silent/{token}")), "match").await;
    let (flow, proof) = (landed.query_pairs().find(|(k, _)| k == "flow").unwrap().1.into_owned(), proof_of(&landed));
    // Another browser with the whole link (and its own CSRF token) cannot finish it.
    let other = theirs.get(landed.clone()).send().await.unwrap().text().await.unwrap();
    let their_csrf = other.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let form = |csrf: &str| vec![("csrf", csrf.to_string()), ("flow", flow.clone()), ("proof", proof.clone())];
    let r = theirs.post(app.url("/login/silent")).form(&form(&their_csrf)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = mine.post(app.url("/login/silent")).form(&form(&csrf)).send().await.unwrap();
    assert_eq!(r.url().path(), "/account", "the browser that started it is signed in");
}

/// The simulator lets whoever holds the link choose the operator's answer, so it answers only
/// requests made on this machine: through a proxy, or for a rebound host name, it is a stranger's
/// and nothing is approved.
#[tokio::test]
async fn the_simulator_answers_only_this_machine() {
    let app = simulator().await;
    let to = fresh_number();
    let v = start(&app, &to, "silent").await;
    let check_url = v["silent"]["check_url"].as_str().unwrap().to_string();
    let remote = |r: reqwest::RequestBuilder| r.header("x-forwarded-for", "198.51.100.7");
    // The link with a chosen answer, the operator page and the callback: refused from afar.
    assert_eq!(remote(device().get(format!("{check_url}?sim=match"))).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let r = device().get(&check_url).send().await.unwrap();
    let operator = r.headers()["location"].to_str().unwrap().to_string();
    let reference = operator.trim_start_matches("/silent/simulator/").to_string();
    for path in [format!("{operator}?sim=match"), format!("/silent/callback/simulator?ref={reference}&outcome=match")] {
        let r = remote(device().get(app.url(&path))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let r = device().get(app.url(&path)).header("host", "attacker.example").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path} for a rebound name");
    }
    assert_eq!(get(&app, v["id"].as_str().unwrap()).await["status"], "pending", "nothing was approved");
    // From this machine it works as ever.
    let r = device().get(app.url(&format!("/silent/callback/simulator?ref={reference}&outcome=match"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(get(&app, v["id"].as_str().unwrap()).await["status"], "approved");
}
