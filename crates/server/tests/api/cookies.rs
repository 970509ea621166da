//! The login pages' cookies over HTTPS: every one has the `__Host-` prefix (so no sibling host can
//! set or shadow it), and a cookie of the same name without it, planted by a sibling host, is not
//! read: an attacker cannot sign a victim's browser into the attacker's account with one.
use crate::helpers::{TestApp, fresh_number};
use reqwest::StatusCode;
use reqwest::cookie::Jar;
use serde_json::json;
use std::sync::Arc;

/// An app serving HTTPS itself, with the silent simulator; and the certificate to trust.
async fn tls_app() -> (TestApp, reqwest::Certificate) {
    TestApp::spawn_tls(|c| c.silent.simulator = true).await
}

/// A browser trusting the test certificate, with the cookie jar `jar`.
fn browser(ca: &reqwest::Certificate, jar: Arc<Jar>) -> reqwest::Client {
    reqwest::Client::builder().add_root_certificate(ca.clone()).cookie_provider(jar).build().unwrap()
}

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"").nth(1).expect("a CSRF field").split('"').next().unwrap().to_string()
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

/// Whether `b`'s cookies sign it in to the JSON API, and as whom.
async fn signed_in_as(app: &TestApp, b: &reqwest::Client) -> Option<String> {
    let r = b.get(app.url("/api/me")).send().await.unwrap();
    if r.status() != StatusCode::OK {
        return None;
    }
    r.json::<serde_json::Value>().await.unwrap()["username"].as_str().map(str::to_string)
}

#[tokio::test]
async fn over_https_the_pages_cookies_are_host_only_and_unprefixed_ones_are_ignored() {
    let (app, ca) = tls_app().await;
    let attacker_phone = fresh_number();
    app.sign_up("attacker", &attacker_phone, None).await;

    // The attacker starts a silent login in their own browser.
    let attacker = reqwest::Client::builder()
        .add_root_certificate(ca.clone())
        .cookie_provider(Arc::new(Jar::default()))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = attacker.get(app.url("/login")).send().await.unwrap();
    let csrf_set = set_cookies(&r);
    // What the attacker knows: the anti-forgery value their browser got, and its page's token.
    let anchor = csrf_set.iter().find_map(|c| c.split(';').next().unwrap().split_once("phonegate_csrf=")).unwrap().1.to_string();
    let token = csrf_of(&r.text().await.unwrap());
    let r = attacker.post(app.url("/login")).form(&[("csrf", token.as_str()), ("phone", attacker_phone.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let flow_set = set_cookies(&r).into_iter().find(|c| c.contains("phonegate_flow=")).expect("a flow cookie");
    let base: reqwest::Url = app.base.parse().unwrap();
    let code_page = base.join(r.headers()["location"].to_str().unwrap()).unwrap();
    let check = code_page.query_pairs().find(|(k, _)| k == "check").unwrap().1.into_owned();
    // The attacker's own phone passes the operator's check: a link with the flow and its proof.
    let device = reqwest::Client::builder().add_root_certificate(ca.clone()).build().unwrap();
    let landed = device.get(app.url(&format!("/silent/{check}?sim=match"))).send().await.unwrap().url().clone();
    let pair = |k: &str| landed.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap();
    let (flow, proof) = (pair("flow"), pair("proof"));

    // A sibling host plants the flow cookie, unprefixed, in the victim's browser; the victim
    // opens the attacker's link and continues.
    let victim_jar = Arc::new(Jar::default());
    victim_jar.add_cookie_str(&format!("phonegate_flow={flow}; Path=/"), &base);
    let victim = browser(&ca, victim_jar);
    let html = victim.get(landed.clone()).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", csrf_of(&html)), ("flow", flow.clone()), ("proof", proof.clone())];
    let r = victim.post(app.url("/login/silent")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "the planted flow cookie is not read");
    assert_eq!(signed_in_as(&app, &victim).await, None);

    // A planted anti-forgery cookie with the attacker's value does not make the attacker's
    // token valid in the victim's browser either (a code login the attacker started by API).
    let before = app.outbox(&attacker_phone).await;
    let r = app.anon_post("/api/auth/login", json!({ "phone": attacker_phone })).await;
    let code_flow = r.json::<serde_json::Value>().await.unwrap()["flow_id"].as_str().unwrap().to_string();
    let code = app.code_after(&attacker_phone, &before).await;
    let victim_jar = Arc::new(Jar::default());
    victim_jar.add_cookie_str(&format!("phonegate_csrf={anchor}; Path=/"), &base);
    let victim = browser(&ca, victim_jar);
    let form = [("csrf", token.as_str()), ("flow", code_flow.as_str()), ("code", code.as_str())];
    let r = victim.post(app.url("/login/code")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "the planted anti-forgery cookie is not read");
    assert_eq!(signed_in_as(&app, &victim).await, None);

    // The attacker's own browser, with the cookies it was given, finishes its flow; each of
    // them is `Secure`, `Path=/`, without `Domain`, and prefixed.
    let form = [("csrf", token), ("flow", flow), ("proof", proof)];
    let r = attacker.post(app.url("/login/silent")).form(&form).send().await.unwrap();
    assert_eq!((r.status(), r.headers()["location"].to_str().unwrap()), (StatusCode::SEE_OTHER, "/account"));
    let session_set = set_cookies(&r).into_iter().find(|c| c.contains("phonegate_session=")).expect("a session cookie");
    for (set, name) in
        [(&csrf_set[0], "__Host-phonegate_csrf="), (&flow_set, "__Host-phonegate_flow="), (&session_set, "__Host-phonegate_session=")]
    {
        assert!(set.starts_with(name) && set.contains("; Secure") && set.contains("Path=/;") && !set.contains("Domain"), "{set}");
    }
    assert_eq!(signed_in_as(&app, &attacker).await.as_deref(), Some("attacker"));
}
