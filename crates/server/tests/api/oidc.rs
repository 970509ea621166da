//! The OpenID Connect provider over HTTP, as a relying party and a browser see it: discovery,
//! code + PKCE through the login and consent pages, ID tokens verified against the JWKS,
//! userinfo, refresh rotation, revocation, introspection, logout; and each security rule (exact
//! redirect URIs, PKCE, single-use codes, client binding, CSRF, no framing, no `alg: none`).
use crate::helpers::{TestApp, fresh_number};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Digest;

pub(crate) const ISSUER: &str = "https://id.example";
pub(crate) const RP: &str = "https://rp.example/cb";
pub(crate) const SECRET: &str = "rp-secret-0123456789";

pub(crate) async fn app() -> TestApp {
    let config = format!(
        r#"
public_url = "{ISSUER}"
[oidc_clients.rp]
client_secret = "{SECRET}"
redirect_uris = ["{RP}"]
post_logout_redirect_uris = ["https://rp.example/bye"]
[oidc_clients.spa]
public = true
name = "Single page"
redirect_uris = ["http://127.0.0.1:3000/cb"]
id_token_signed_response_alg = "ES256"
[oidc_clients.staff]
client_secret = "staff-secret-0123456789"
redirect_uris = ["https://staff.example/cb"]
require_roles = ["admin"]
first_party = true
[oidc_clients.other]
client_secret = "other-secret-0123456789"
redirect_uris = ["https://other.example/cb"]
first_party = true
"#
    );
    let parsed: phonegate::config::Config = toml::from_str(&config).unwrap();
    TestApp::spawn_with(|c| {
        c.public_url = parsed.public_url.clone();
        c.oidc_clients = parsed.oidc_clients.clone();
    })
    .await
}

pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

pub(crate) fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

pub(crate) fn field_of(html: &str, name: &str) -> String {
    let mark = format!("name=\"{name}\" value=\"");
    let at = html.find(&mark).unwrap_or_else(|| panic!("a {name} field in {html}")) + mark.len();
    html[at..].split('"').next().unwrap().replace("&#x2B;", "+").replace("&amp;", "&")
}

pub(crate) fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

pub(crate) fn query(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.to_string())
}

pub(crate) fn pkce() -> (String, String) {
    let verifier = B64.encode(rand::random::<[u8; 32]>());
    let challenge = B64.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub(crate) fn authorize_url(client: &str, redirect: &str, scope: &str, challenge: Option<&str>, extra: &str) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("client_id", client).append_pair("redirect_uri", redirect).append_pair("response_type", "code");
    q.append_pair("scope", scope).append_pair("state", "st-1").append_pair("nonce", "n-1");
    if let Some(c) = challenge {
        q.append_pair("code_challenge", c).append_pair("code_challenge_method", "S256");
    }
    format!("/oauth2/authorize?{}{extra}", q.finish())
}

/// Signs up by the pages (the login page's return leads back to the authorization), and
/// returns where the last redirect pointed.
async fn sign_up_from(app: &TestApp, b: &reqwest::Client, login_url: &str, phone: &str) -> reqwest::Response {
    let return_to = query(&format!("http://x{login_url}"), "return_to").expect("a return_to");
    let html = b.get(app.url("/signup")).send().await.unwrap().text().await.unwrap();
    let form =
        [("csrf", csrf_of(&html)), ("username", format!("u{}", &phone[6..])), ("phone", phone.into()), ("return_to", return_to.clone())];
    let r = b.post(app.url("/signup")).form(&form).send().await.unwrap();
    let code_page = location(&r);
    let code = app.code_after(phone, &[]).await;
    let html = b.get(app.url(&code_page)).send().await.unwrap().text().await.unwrap();
    let flow = query(&format!("http://x{code_page}"), "flow").unwrap();
    let form = [("csrf", csrf_of(&html)), ("flow", flow), ("code", code), ("return_to", return_to)];
    let r = b.post(app.url("/login/code")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("/oauth2/authorize/resume?request="), "{}", location(&r));
    b.get(app.url(&location(&r))).send().await.unwrap()
}

/// Through login and consent to the code; returns (browser, code).
async fn code_for(app: &TestApp, phone: &str, scope: &str, challenge: &str) -> (reqwest::Client, String) {
    let b = browser();
    let r = b
        .get(app.url(&authorize_url("rp", RP, scope, Some(challenge), &format!("&login_hint={}", phone.replace('+', "%2B")))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let login = location(&r);
    assert!(login.starts_with("/login?") && login.contains(&format!("phone={}", phone.replace('+', "%2B"))), "{login}");
    // The login page keeps the request for a newcomer who signs up instead.
    let html = b.get(app.url(&login)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("href=\"/signup?return_to=/oauth2/authorize/resume%3Frequest%3D"), "{html}");
    let consent = sign_up_from(app, &b, &login, phone).await;
    assert_eq!(consent.status(), StatusCode::OK);
    assert_eq!(consent.headers()["x-frame-options"], "DENY");
    let html = consent.text().await.unwrap();
    assert!(html.contains(">rp<") && html.contains("Your phone number") == scope.contains("phone"), "{html}");
    let form = [("csrf", csrf_of(&html)), ("request", field_of(&html, "request")), ("decision", "allow".into())];
    let r = b.post(app.url("/oauth2/consent")).form(&form).send().await.unwrap();
    let back = location(&r);
    assert!(back.starts_with(&format!("{RP}?code=")), "{back}");
    assert_eq!(query(&back, "state").as_deref(), Some("st-1"));
    assert_eq!(query(&back, "iss").as_deref(), Some(ISSUER));
    (b, query(&back, "code").unwrap())
}

pub(crate) async fn token(app: &TestApp, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> reqwest::Response {
    let mut req = app.client.post(app.url("/oauth2/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    req.send().await.unwrap()
}

/// The claims of a JWT after checking its signature against the server's JWKS.
pub(crate) async fn verified(app: &TestApp, jwt: &str, audience: &str) -> Value {
    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    let key = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"].as_str() == header.kid.as_deref()).expect("the kid is published");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.clone()).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[audience]);
    v.set_issuer(&[ISSUER]);
    v.validate_exp = false;
    jsonwebtoken::decode::<Value>(jwt, &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(), &v).unwrap().claims
}

#[tokio::test]
async fn a_relying_party_signs_a_person_in_by_phone_and_out_again() {
    let app = app().await;
    let d: Value = app.client.get(app.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(d["issuer"], ISSUER);
    assert_eq!(d["token_endpoint"], format!("{ISSUER}/oauth2/token"));
    assert_eq!(d["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert!(d["id_token_signing_alg_values_supported"].as_array().unwrap().contains(&"RS256".into()));
    // A browser app may call the token endpoint from its own origin (no cookies involved).
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/oauth2/token"))
        .header("origin", "http://127.0.0.1:3000")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(r.headers().get("access-control-allow-credentials").is_none());
    let r = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");

    let phone = fresh_number();
    let (verifier, challenge) = pkce();
    let (b, code) = code_for(&app, &phone, "openid profile phone offline_access", &challenge).await;
    let form = [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", RP), ("code_verifier", &verifier)];
    let r = token(&app, &form, Some(("rp", SECRET))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    let id = verified(&app, t["id_token"].as_str().unwrap(), "rp").await;
    assert_eq!(jsonwebtoken::decode_header(t["id_token"].as_str().unwrap()).unwrap().alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!((id["phone_number"].as_str(), id["phone_number_verified"].as_bool()), (Some(phone.as_str()), Some(true)));
    assert_eq!((id["nonce"].as_str(), id["amr"].clone(), id["acr"].as_str()), (Some("n-1"), serde_json::json!(["sms"]), Some("1")));
    assert!(id["auth_time"].as_i64().is_some() && id.get("email").is_none());

    // Counted per client.
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"phonegate_oidc_tokens_total{client="rp",outcome="authorization_code"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"phonegate_oidc_authorizations_total{client="rp",outcome="code"} 1"#), "{metrics}");

    // Userinfo releases the same claims.
    let access = t["access_token"].as_str().unwrap();
    let info: Value = app.client.get(app.url("/oauth2/userinfo")).bearer_auth(access).send().await.unwrap().json().await.unwrap();
    assert_eq!((info["sub"].clone(), info["phone_number"].as_str()), (id["sub"].clone(), Some(phone.as_str())));
    assert!(info["preferred_username"].is_string());
    // The access token is not an accounts token, nor the ID token an access token.
    let r = app.client.get(app.url("/api/me")).bearer_auth(access).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app.client.get(app.url("/oauth2/userinfo")).bearer_auth(t["id_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Refresh rotates; the spent token again ends the grant.
    let first = t["refresh_token"].as_str().unwrap();
    let r = token(&app, &[("grant_type", "refresh_token"), ("refresh_token", first)], Some(("rp", SECRET))).await;
    let t2: Value = r.json().await.unwrap();
    let second = t2["refresh_token"].as_str().unwrap();
    assert_ne!(first, second);
    app.advance(chrono::Duration::seconds(61));
    let r = token(&app, &[("grant_type", "refresh_token"), ("refresh_token", first)], Some(("rp", SECRET))).await;
    assert_eq!((r.status(), r.json::<Value>().await.unwrap()["error"].clone()), (StatusCode::BAD_REQUEST, "invalid_grant".into()));
    let r = token(&app, &[("grant_type", "refresh_token"), ("refresh_token", second)], Some(("rp", SECRET))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "the whole grant ended");
    let r = app.client.get(app.url("/oauth2/userinfo")).bearer_auth(t2["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The account page lists the app; logout with the ID token ends the browser session.
    let html = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Apps with access") && html.contains("data-app=\"rp\""), "{html}");
    let hint = t["id_token"].as_str().unwrap();
    let url = format!("/oauth2/logout?id_token_hint={hint}&post_logout_redirect_uri=https%3A%2F%2Frp.example%2Fbye&state=s2");
    let r = b.get(app.url(&url)).send().await.unwrap();
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, "https://rp.example/bye?state=s2".to_string()));
    let r = b.get(app.url("/account")).send().await.unwrap();
    assert_eq!(location(&r), "/login");
}

#[tokio::test]
async fn codes_are_single_use_bound_and_short_lived() {
    let app = app().await;
    let (verifier, challenge) = pkce();
    let (_b, code) = code_for(&app, &fresh_number(), "openid phone", &challenge).await;
    // Another client, a wrong verifier, another redirect URI: refused, the code still good.
    let form = [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", RP), ("code_verifier", &verifier)];
    let r = token(&app, &form, Some(("other", "other-secret-0123456789"))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let wrong = pkce().0;
    let bad = [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", RP), ("code_verifier", &wrong)];
    assert_eq!(token(&app, &bad, Some(("rp", SECRET))).await.status(), StatusCode::BAD_REQUEST);
    let bad =
        [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://rp.example/cb2"), ("code_verifier", &verifier)];
    assert_eq!(token(&app, &bad, Some(("rp", SECRET))).await.status(), StatusCode::BAD_REQUEST);
    let r = token(&app, &form, Some(("rp", "wrong-secret-000000000"))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    let t: Value = token(&app, &form, Some(("rp", SECRET))).await.json().await.unwrap();
    let access = t["access_token"].as_str().unwrap().to_string();
    // Introspection: the client's own token is active; another client's view says nothing.
    let r = app.client.post(app.url("/oauth2/introspect")).basic_auth("rp", Some(SECRET)).form(&[("token", &access)]).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["active"], true);
    let r = app
        .client
        .post(app.url("/oauth2/introspect"))
        .basic_auth("other", Some("other-secret-0123456789"))
        .form(&[("token", &access)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), serde_json::json!({"active": false}));
    // A second exchange fails and ends what the first one issued.
    let r = token(&app, &form, Some(("rp", SECRET))).await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let r = app.client.get(app.url("/oauth2/userinfo")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A code older than 60 s is refused.
    let (verifier, challenge) = pkce();
    let (_b, code) = code_for(&app, &fresh_number(), "openid", &challenge).await;
    app.advance(chrono::Duration::seconds(61));
    let form = [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", RP), ("code_verifier", &verifier)];
    assert_eq!(token(&app, &form, Some(("rp", SECRET))).await.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn bad_requests_never_redirect_anywhere_unregistered() {
    let app = app().await;
    let b = browser();
    let (_, challenge) = pkce();
    // Unknown client, unregistered or prefix-extended redirect URIs: a page, no Location.
    for (client, uri) in
        [("nobody", RP), ("rp", "https://evil.example/cb"), ("rp", "https://rp.example/cb/../x"), ("rp", "https://rp.example/cbx")]
    {
        let r = b.get(app.url(&authorize_url(client, uri, "openid", Some(&challenge), ""))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{client} {uri}");
        assert!(r.headers().get("location").is_none());
    }
    // A public client without PKCE, or with `plain`: the error goes back to its own URI.
    let spa = "http://127.0.0.1:3000/cb";
    let r = b.get(app.url(&authorize_url("spa", spa, "openid", None, ""))).send().await.unwrap();
    let to = location(&r);
    assert!(to.starts_with(spa) && query(&to, "error").as_deref() == Some("invalid_request"), "{to}");
    let r = b
        .get(app.url(&format!("{}&code_challenge=abc&code_challenge_method=plain", authorize_url("spa", spa, "openid", None, ""))))
        .send()
        .await
        .unwrap();
    assert_eq!(query(&location(&r), "error").as_deref(), Some("invalid_request"));
    // prompt=none without a login; an unknown scope.
    let r = b.get(app.url(&authorize_url("rp", RP, "openid", Some(&challenge), "&prompt=none"))).send().await.unwrap();
    assert_eq!(query(&location(&r), "error").as_deref(), Some("login_required"));
    let r = b.get(app.url(&authorize_url("rp", RP, "openid admin", Some(&challenge), ""))).send().await.unwrap();
    assert_eq!(query(&location(&r), "error").as_deref(), Some("invalid_scope"));
    // A consent form without this browser's CSRF token is refused.
    let r = b.post(app.url("/oauth2/consent")).form(&[("csrf", "x"), ("request", "y"), ("decision", "allow")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A token with alg none is nobody's.
    let none =
        format!("{}.{}.", B64.encode(br#"{"alg":"none","typ":"at+jwt"}"#), B64.encode(br#"{"sub":"x","aud":"rp","client_id":"rp"}"#));
    let r = app.client.get(app.url("/oauth2/userinfo")).bearer_auth(none).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_code_without_a_challenge_takes_no_verifier_and_logout_without_hint_asks() {
    let app = app().await;
    // A confidential client may skip PKCE; a verifier sent anyway is a downgrade and refused.
    let b = browser();
    let phone = fresh_number();
    let r = b.get(app.url(&authorize_url("other", "https://other.example/cb", "openid", None, ""))).send().await.unwrap();
    let r = sign_up_from(&app, &b, &location(&r), &phone).await;
    let back = location(&r);
    let code = query(&back, "code").expect("first party: no consent page");
    let (verifier, _) = pkce();
    let form =
        [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://other.example/cb"), ("code_verifier", &verifier)];
    let r = token(&app, &form, Some(("other", "other-secret-0123456789"))).await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // Logout without a hint: a page asking, and the session lives until the person confirms.
    let r = b.get(app.url("/oauth2/logout")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("Sign out"), "{html}");
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status(), StatusCode::OK);
    let r = b.post(app.url("/oauth2/logout")).form(&[("csrf", csrf_of(&html)), ("confirm", "yes".into())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(location(&b.get(app.url("/account")).send().await.unwrap()), "/login");
}
