//! The OpenID provider's rules beyond the happy path: roles a client requires, first-party
//! grants listed and revocable, `prompt` and `max_age`, a verified e-mail released only by its
//! scope, and tokens that are not what they claim (an access token as a logout hint, a refresh
//! token of one API at the other).
use crate::helpers::{TestApp, fresh_number};
use crate::oidc::{RP, SECRET, app, authorize_url, csrf_of, field_of, location, pkce, query, token, verified};
use phonegate_core::Caller;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

const STAFF: &str = "https://staff.example/cb";
const STAFF_SECRET: &str = "staff-secret-0123456789";

/// A browser with a session cookie of the account at `phone`, and an access token of it.
async fn signed_in(app: &TestApp, phone: &str) -> (reqwest::Client, String) {
    let tokens = app.log_in(phone).await;
    let (flow, code) = app.flow_code("/api/auth/login", json!({ "phone": phone }), phone).await;
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code, "session": "cookie" })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let jar = Arc::new(reqwest::cookie::Jar::default());
    jar.add_cookie_str(&cookie, &app.base.parse().unwrap());
    let b = reqwest::Client::builder().cookie_provider(jar).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    (b, tokens["access_token"].as_str().unwrap().to_string())
}

async fn member(app: &TestApp, name: &str) -> (reqwest::Client, String) {
    let phone = fresh_number();
    app.sign_up(name, &phone, None).await;
    signed_in(app, &phone).await
}

/// Allows the consent page `r` shows and returns where the browser is sent.
async fn allow(app: &TestApp, b: &reqwest::Client, r: reqwest::Response) -> String {
    assert_eq!(r.status(), StatusCode::OK, "a consent page");
    let html = r.text().await.unwrap();
    let form = [("csrf", csrf_of(&html)), ("request", field_of(&html, "request")), ("decision", "allow".into())];
    location(&b.post(app.url("/oauth2/consent")).form(&form).send().await.unwrap())
}

async fn exchange(app: &TestApp, client: (&str, &str), redirect: &str, back: &str, verifier: &str) -> Value {
    let code = query(back, "code").unwrap_or_else(|| panic!("a code in {back}"));
    let form = [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", redirect), ("code_verifier", verifier)];
    let r = token(app, &form, Some(client)).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_client_may_require_a_role_and_a_first_party_grant_is_listed_and_revocable() {
    let app = app().await;
    let (verifier, challenge) = pkce();
    let (plain, _) = member(&app, "plain").await;
    let r = plain.get(app.url(&authorize_url("staff", STAFF, "openid offline_access", Some(&challenge), ""))).send().await.unwrap();
    assert_eq!(query(&location(&r), "error").as_deref(), Some("access_denied"));

    let phone = fresh_number();
    app.state.accounts.create_admin(&Caller::system("tests"), "chief", &phone).await.unwrap();
    let (chief, bearer) = signed_in(&app, &phone).await;
    let r = chief.get(app.url(&authorize_url("staff", STAFF, "openid offline_access", Some(&challenge), ""))).send().await.unwrap();
    let t = exchange(&app, ("staff", STAFF_SECRET), STAFF, &location(&r), &verifier).await;
    // No consent was asked, yet the grant is listed, and revoking it ends its refresh token.
    let apps: Value = app.client.get(app.url("/api/me/apps")).bearer_auth(&bearer).send().await.unwrap().json().await.unwrap();
    assert_eq!(apps["apps"][0]["client_id"], "staff", "{apps}");
    let r = app.client.delete(app.url("/api/me/apps/staff")).bearer_auth(&bearer).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = token(
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"].as_str().unwrap())],
        Some(("staff", STAFF_SECRET)),
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn prompt_and_max_age_ask_for_a_new_login_and_consent_is_remembered() {
    let app = app().await;
    let (verifier, challenge) = pkce();
    let (b, _) = member(&app, "prompter").await;
    let url = |extra: &str| app.url(&authorize_url("rp", RP, "openid phone", Some(&challenge), extra));
    // The login was a second ago: prompt=login wants one after the request.
    app.advance(chrono::Duration::seconds(1));
    for extra in ["&prompt=login", "&max_age=0"] {
        let to = location(&b.get(url(extra)).send().await.unwrap());
        assert!(to.starts_with("/login?reauth=1&return_to="), "{extra}: {to}");
    }
    app.advance(chrono::Duration::seconds(30));
    assert!(location(&b.get(url("&max_age=10")).send().await.unwrap()).starts_with("/login?"));
    // A recent enough login: the consent page, and prompt=consent asks no second time after Allow.
    let back = allow(&app, &b, b.get(url("&max_age=3600&prompt=consent")).send().await.unwrap()).await;
    assert!(back.starts_with(&format!("{RP}?code=")), "{back}");
    // Remembered: straight back with a code; prompt=consent asks again; prompt=none answers.
    assert!(location(&b.get(url("")).send().await.unwrap()).starts_with(&format!("{RP}?code=")));
    assert_eq!(b.get(url("&prompt=consent")).send().await.unwrap().status(), StatusCode::OK);
    assert!(query(&location(&b.get(url("&prompt=none")).send().await.unwrap()), "code").is_some());
    // More scope than consented: asked again, and prompt=none says so.
    let wider = app.url(&authorize_url("rp", RP, "openid phone profile", Some(&challenge), "&prompt=none"));
    assert_eq!(query(&location(&b.get(wider).send().await.unwrap()), "error").as_deref(), Some("consent_required"));

    // An id_token_hint naming this person changes nothing; naming another, the browser's
    // session does not count for the request.
    let back = location(&b.get(url("")).send().await.unwrap());
    let hint = exchange(&app, ("rp", SECRET), RP, &back, &verifier).await["id_token"].as_str().unwrap().to_string();
    assert!(query(&location(&b.get(url(&format!("&prompt=none&id_token_hint={hint}"))).send().await.unwrap()), "code").is_some());
    let (someone_else, _) = member(&app, "other").await;
    let r = someone_else.get(url(&format!("&prompt=none&id_token_hint={hint}"))).send().await.unwrap();
    assert_eq!(query(&location(&r), "error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn a_verified_email_is_released_by_its_scope_and_tokens_stay_in_their_lane() {
    let app = app().await;
    let (verifier, challenge) = pkce();
    let (b, bearer) = member(&app, "mailer").await;
    let address = format!("mailer.{}@example.com", &fresh_number()[6..]);
    let r = app.client.post(app.url("/api/me/email")).bearer_auth(&bearer).json(&json!({ "email": address })).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let code = app.code_after(&address, &[]).await;
    let r = app.client.post(app.url("/api/me/email/verify")).bearer_auth(&bearer).json(&json!({ "code": code })).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let back = allow(
        &app,
        &b,
        b.get(app.url(&authorize_url("rp", RP, "openid email offline_access", Some(&challenge), ""))).send().await.unwrap(),
    )
    .await;
    let t = exchange(&app, ("rp", SECRET), RP, &back, &verifier).await;
    let id = verified(&app, t["id_token"].as_str().unwrap(), "rp").await;
    assert_eq!((id["email"].as_str(), id["email_verified"].as_bool()), (Some(address.as_str()), Some(true)));
    assert!(id.get("phone_number").is_none() && id.get("preferred_username").is_none(), "{id}");
    let info: Value = app
        .client
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((info["email"].as_str(), info.get("phone_number")), (Some(address.as_str()), None));

    // An access token is no ID token: as a logout hint it is refused on a page, nobody is sent anywhere.
    let hint = t["access_token"].as_str().unwrap();
    let r = b
        .get(app.url(&format!("/oauth2/logout?id_token_hint={hint}&post_logout_redirect_uri=https%3A%2F%2Frp.example%2Fbye")))
        .send()
        .await
        .unwrap();
    assert_eq!((r.status(), location(&r)), (StatusCode::BAD_REQUEST, String::new()));
    // An unregistered place to go after logout: refused, no redirect.
    let id_token = t["id_token"].as_str().unwrap();
    let r = b
        .get(app.url(&format!("/oauth2/logout?id_token_hint={id_token}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F")))
        .send()
        .await
        .unwrap();
    assert_eq!((r.status(), location(&r)), (StatusCode::BAD_REQUEST, String::new()));
    // Each API's refresh tokens work only there.
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": t["refresh_token"] })).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let accounts = app.log_in(&app_phone(&app, &bearer).await).await;
    let r = token(
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", accounts["refresh_token"].as_str().unwrap())],
        Some(("rp", SECRET)),
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // Another client can neither see nor revoke the grant.
    let rt = t["refresh_token"].as_str().unwrap();
    let r = app
        .client
        .post(app.url("/oauth2/revoke"))
        .basic_auth("other", Some("other-secret-0123456789"))
        .form(&[("token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.client.post(app.url("/oauth2/introspect")).basic_auth("rp", Some(SECRET)).form(&[("token", rt)]).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["active"], true);
    let r = app.client.post(app.url("/oauth2/revoke")).basic_auth("rp", Some(SECRET)).form(&[("token", rt)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.client.post(app.url("/oauth2/introspect")).basic_auth("rp", Some(SECRET)).form(&[("token", rt)]).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({ "active": false }));
}

async fn app_phone(app: &TestApp, bearer: &str) -> String {
    let me: Value = app.me_with(bearer).await.json().await.unwrap();
    me["phone_number"].as_str().unwrap().to_string()
}
