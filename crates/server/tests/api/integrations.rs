//! The hosted phone step of a signed redirect (Auth0 and configured clients): the incoming
//! token's checks (signature, algorithm, expiry, issuer, single use), the code, and the only
//! place a user is ever sent back to.
use crate::helpers::{TestApp, fresh_number, wrong};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "a-shared-secret-of-the-tenant-0123456789";
const TENANT: &str = "tenant.example";

/// A JWT with the given header algorithm, signed HS256 (or HS512) with `secret`.
fn jwt(alg: &str, claims: Value, secret: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": alg, "typ": "JWT" }).to_string());
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{body}");
    let sig = match alg {
        "HS512" => {
            let mut m = Hmac::<sha2::Sha512>::new_from_slice(secret.as_bytes()).unwrap();
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        "none" => Vec::new(),
        _ => {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn claims(app: &TestApp, phone: Option<&str>) -> Value {
    let now = app.clock_now_unix();
    let mut c = json!({ "iss": TENANT, "sub": "auth0|user-1", "iat": now, "exp": now + 300, "ip": "203.0.113.9" });
    if let Some(p) = phone {
        c["phone_number"] = json!(p);
    }
    c
}

async fn app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.auth0 = Some(phonegate::config::Auth0Settings {
            domain: TENANT.into(),
            secret: phonegate_providers::Secret::new(SECRET),
            phone_claim: "phone_number".into(),
        });
        c.redirect_clients.insert(
            "shop".into(),
            phonegate::config::RedirectClientSettings {
                secret: phonegate_providers::Secret::new("shop-secret-shop-secret-shop-secret"),
                issuer: "shop-backend".into(),
                return_urls: vec!["https://shop.example/phone/done".into(), "https://shop.example/other?x=1".into()],
                phone_claim: "phone".into(),
            },
        );
    })
    .await
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The sealed step in a page's form.
fn step_of(page: &str) -> String {
    let at = page.find("name=\"step\" value=\"").expect("a step form") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

/// Decodes a JWT's claims after checking its HS256 signature with `secret`.
fn verified_claims(token: &str, secret: &str) -> Value {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(input.as_bytes());
    m.verify_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).expect("signed with the shared secret");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(input.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(input.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

async fn open(app: &TestApp, client: &str, query: &[(&str, &str)]) -> reqwest::Response {
    browser().get(app.url(&format!("/integrations/{client}/verify"))).query(query).send().await.unwrap()
}

async fn post(app: &TestApp, client: &str, form: &[(&str, &str)]) -> reqwest::Response {
    browser().post(app.url(&format!("/integrations/{client}/verify"))).form(form).send().await.unwrap()
}

#[tokio::test]
async fn auth0_step_verifies_the_number_and_returns_only_to_the_tenant() {
    let app = app().await;
    let phone = fresh_number();
    let token = jwt("HS256", claims(&app, Some(&phone)), SECRET);
    // Redirect targets in the request are never read.
    let evil = [
        ("redirect_uri", "//evil.example"),
        ("return_to", "https:evil.example"),
        ("continue", "https://tenant.example.evil.example"),
        ("next", "\\\\evil.example"),
        ("url", "https://tenant.example@evil.example"),
        ("return_url", "https%3A%2F%2Fevil.example"),
    ];
    let mut query = vec![("state", "st-123/+="), ("session_token", token.as_str())];
    query.extend(evil);
    let r = open(&app, "auth0", &query).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("name=\"code\""), "{page}");
    let step = step_of(&page);
    let code = app.code_for(&phone).await;

    let r = post(&app, "auth0", &[("step", &step), ("code", &wrong(&code))]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("role=\"alert\""));
    let r = post(&app, "auth0", &[("step", &step), ("code", &code)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!((location.scheme(), location.host_str(), location.path()), ("https", Some(TENANT), "/continue"));
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "st-123/+=");
    let answer = verified_claims(&q["session_token"], SECRET);
    assert_eq!(answer["phone_number"], phone);
    assert_eq!(answer["phone_number_verified"], true);
    assert_eq!(answer["state"], "st-123/+=");
    assert_eq!(answer["sub"], "auth0|user-1");
    assert!(answer["exp"].as_i64().unwrap() - answer["iat"].as_i64().unwrap() <= 300);
    // The same step again cannot mint a second answer.
    let r = post(&app, "auth0", &[("step", &step), ("code", &code)]).await;
    assert!(r.headers().get("location").is_none());
    // The same incoming token again: refused, no redirect.
    let r = open(&app, "auth0", &[("state", "st-123/+="), ("session_token", &token)]).await;
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.headers().get("location").is_none());
}

#[tokio::test]
async fn bad_tokens_get_an_error_page_never_a_redirect() {
    let app = app().await;
    let phone = fresh_number();
    let good = claims(&app, Some(&phone));
    let mut expired = good.clone();
    expired["exp"] = json!(app.clock_now_unix() - 60);
    let mut other_issuer = good.clone();
    other_issuer["iss"] = json!("evil.example");
    let mut no_sub = good.clone();
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut other_state = good.clone();
    other_state["state"] = json!("someone-else");
    let tampered = {
        let t = jwt("HS256", good.clone(), SECRET);
        let (head, sig) = t.rsplit_once('.').unwrap();
        let flipped = if sig.ends_with('A') { "B" } else { "A" };
        format!("{head}.{}{flipped}", &sig[..sig.len() - 1])
    };
    let payload_changed = {
        let t = jwt("HS256", good.clone(), SECRET);
        let parts: Vec<&str> = t.split('.').collect();
        let mut c = good.clone();
        c["phone_number"] = json!(fresh_number());
        format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(c.to_string()), parts[2])
    };
    let cases = [
        ("tampered signature", tampered),
        ("changed payload", payload_changed),
        ("expired", jwt("HS256", expired, SECRET)),
        ("wrong issuer", jwt("HS256", other_issuer, SECRET)),
        ("wrong secret", jwt("HS256", good.clone(), "another-secret-another-secret-0000")),
        ("HS512", jwt("HS512", good.clone(), SECRET)),
        ("alg none", jwt("none", good.clone(), SECRET)),
        ("no subject", jwt("HS256", no_sub, SECRET)),
        ("another login's state", jwt("HS256", other_state, SECRET)),
        ("not a token", "not.a.token".to_string()),
        ("empty", String::new()),
    ];
    for (what, token) in cases {
        let r = open(&app, "auth0", &[("state", "st-1"), ("session_token", &token)]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{what}");
        assert!(r.headers().get("location").is_none(), "{what}");
    }
    assert!(app.outbox(&phone).await.is_empty(), "no code for a refused token");
    let r = open(&app, "nobody", &[("state", "st-1"), ("session_token", &jwt("HS256", good, SECRET))]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // A forged step.
    let r = post(&app, "auth0", &[("step", "AAAA"), ("code", "123456")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let audit: Value = app.get("/api/audit?kind=integration_token_refused&limit=50").await.json().await.unwrap();
    assert!(!audit["events"].as_array().unwrap().is_empty(), "refusals are audited (repeats within a minute are merged)");
    assert!(!audit.to_string().contains(SECRET));
}

#[tokio::test]
async fn a_locked_code_returns_an_unverified_answer_and_a_missing_number_is_asked_for() {
    let app = app().await;
    let phone = fresh_number();
    // No number in the token: the page asks for one.
    let token = jwt("HS256", claims(&app, None), SECRET);
    let page = open(&app, "auth0", &[("state", "st-2"), ("session_token", &token)]).await.text().await.unwrap();
    assert!(page.contains("name=\"phone\""), "{page}");
    let r = post(&app, "auth0", &[("step", &step_of(&page)), ("phone", "12")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "an invalid number is asked for again");
    let ask = step_of(&page);
    let page = post(&app, "auth0", &[("step", &ask), ("phone", &phone)]).await.text().await.unwrap();
    assert!(page.contains("name=\"code\""), "{page}");
    // The step that asked for a number takes one number only: no codes to a list of numbers.
    let r = post(&app, "auth0", &[("step", &ask), ("phone", &fresh_number())]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("location").is_none());
    let step = step_of(&page);
    let code = app.code_for(&phone).await;
    for _ in 0..4 {
        assert_eq!(post(&app, "auth0", &[("step", &step), ("code", &wrong(&code))]).await.status(), StatusCode::BAD_REQUEST);
    }
    let r = post(&app, "auth0", &[("step", &step), ("code", &wrong(&code))]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the fifth wrong code locks: back to the tenant, unverified");
    let location = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!((location.host_str(), location.path()), (Some(TENANT), "/continue"));
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(verified_claims(&q["session_token"], SECRET)["phone_number_verified"], false);
    // The right code after that changes nothing.
    let r = post(&app, "auth0", &[("step", &step), ("code", &code)]).await;
    let answer = r.headers().get("location").map(|l| l.to_str().unwrap().to_string());
    if let Some(l) = answer {
        let q: std::collections::HashMap<_, _> = reqwest::Url::parse(&l).unwrap().query_pairs().into_owned().collect();
        assert_eq!(verified_claims(&q["session_token"], SECRET)["phone_number_verified"], false);
    }
}

#[tokio::test]
async fn a_configured_client_returns_only_to_a_listed_url() {
    let app = app().await;
    let phone = fresh_number();
    let secret = "shop-secret-shop-secret-shop-secret";
    let now = app.clock_now_unix();
    let token = |n: i64| jwt("HS256", json!({ "iss": "shop-backend", "sub": format!("u{n}"), "exp": now + 60, "phone": phone }), secret);
    // Not in the list, or a look-alike: refused.
    for bad in ["https://evil.example/", "https://shop.example/phone/done/../x", "https://shop.example/phone/done?x=1"] {
        let r = open(&app, "shop", &[("state", "s"), ("session_token", &token(1)), ("return_url", bad)]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = open(&app, "shop", &[("state", "s"), ("session_token", &token(2)), ("return_url", "https://shop.example/other?x=1")]).await;
    let step = step_of(&r.text().await.unwrap());
    let r = post(&app, "shop", &[("step", &step), ("code", &app.code_for(&phone).await)]).await;
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("https://shop.example/other?x=1&state=s&session_token="), "{location}");
    // A step of one client is worthless at another.
    let r = post(&app, "auth0", &[("step", &step), ("code", "123456")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn odd_claims_and_tokens_outside_their_time_are_refused() {
    let app = app().await;
    let phone = fresh_number();
    let now = app.clock_now_unix();
    let with = |changes: Value| {
        let mut c = claims(&app, Some(&phone));
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        jwt("HS256", c, SECRET)
    };
    let cases = [
        ("iss as a list holding the issuer", with(json!({ "iss": [TENANT] }))),
        ("iss as a list with another issuer", with(json!({ "iss": [TENANT, "evil.example"] }))),
        ("iss as a number", with(json!({ "iss": 7 }))),
        ("empty sub", with(json!({ "sub": "" }))),
        ("blank sub", with(json!({ "sub": "  " }))),
        ("not valid before a minute from now", with(json!({ "nbf": now + 60 }))),
        ("nbf not a number", with(json!({ "nbf": "soon" }))),
        ("exp further ahead than a step", with(json!({ "exp": now + 16 * 60 }))),
        ("exp beyond any calendar", with(json!({ "exp": 10_000_000_000_000_i64 }))),
    ];
    for (what, token) in cases {
        let r = open(&app, "auth0", &[("state", "st-1"), ("session_token", &token)]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{what}");
        assert!(r.headers().get("location").is_none(), "{what}");
    }
    assert!(app.outbox(&phone).await.is_empty(), "no code for a refused token");
    // Within the bounds (a few seconds of clock skew on nbf, the longest exp): accepted, once.
    let token = with(json!({ "nbf": now + 3, "exp": now + 15 * 60 }));
    assert_eq!(open(&app, "auth0", &[("state", "st-2"), ("session_token", &token)]).await.status(), StatusCode::OK);
    app.advance(chrono::Duration::seconds(15 * 60 - 1));
    let r = open(&app, "auth0", &[("state", "st-2"), ("session_token", &token)]).await;
    assert_eq!(r.status(), StatusCode::GONE, "a replay until the token's very end is refused");
}

/// A stranger's step for the owner's number (a token without a number, the owner's number typed
/// in) shares the pending code but not its attempts: five wrong codes there end only that step,
/// and the owner's step still verifies the number with the right code.
#[tokio::test]
async fn a_strangers_step_for_the_same_number_cannot_lock_the_owners_step() {
    let app = app().await;
    let phone = fresh_number();
    let owners = open(&app, "auth0", &[("state", "st-owner"), ("session_token", &jwt("HS256", claims(&app, Some(&phone)), SECRET))]).await;
    let owners = step_of(&owners.text().await.unwrap());
    let code = app.code_for(&phone).await;
    let mut stranger = claims(&app, None);
    stranger["sub"] = json!("auth0|stranger");
    let page = open(&app, "auth0", &[("state", "st-x"), ("session_token", &jwt("HS256", stranger, SECRET))]).await.text().await.unwrap();
    let page = post(&app, "auth0", &[("step", &step_of(&page)), ("phone", &phone)]).await.text().await.unwrap();
    let strangers = step_of(&page);
    for _ in 0..4 {
        assert_eq!(post(&app, "auth0", &[("step", &strangers), ("code", &wrong(&code))]).await.status(), StatusCode::BAD_REQUEST);
    }
    let r = post(&app, "auth0", &[("step", &strangers), ("code", &wrong(&code))]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the stranger's step ends unverified");
    let r = post(&app, "auth0", &[("step", &owners), ("code", &code)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    let answer = verified_claims(&q["session_token"], SECRET);
    assert_eq!((answer["phone_number_verified"].clone(), answer["sub"].clone()), (json!(true), json!("auth0|user-1")));
}
