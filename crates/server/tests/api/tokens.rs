//! Access tokens: what `/api/me` accepts (only phonegate's own keys and algorithm, for its own
//! issuer and audience, before expiry), the JWKS, key rotation, ES256, and forward auth.
use crate::helpers::{TestApp, expect_error, fresh_number};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::Duration;
use phonegate_core::accounts::{AccountSettings, Accounts, JwtAlgorithm, JwtKey, jwt};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn part(token: &str, i: usize) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

fn hs256(header: &Value, claims: &Value, key: &[u8]) -> String {
    use hmac::Mac;
    let signing_input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn only_our_own_unexpired_tokens_for_our_audience_are_accepted() {
    let app = TestApp::spawn().await;
    let signed = app.sign_up("tokens", &fresh_number(), None).await;
    let token = signed["access_token"].as_str().unwrap().to_string();
    let (header, claims) = (part(&token, 0), part(&token, 1));
    assert_eq!(header["alg"], "EdDSA");
    for claim in ["sub", "iss", "aud", "exp", "iat", "phone_number"] {
        assert!(!claims[claim].is_null(), "{claim} in {claims}");
    }
    assert_eq!((claims["phone_number_verified"].as_bool(), claims["aud"].as_str()), (Some(true), Some("phonegate")));
    assert_eq!(app.me_with(&token).await.status(), StatusCode::OK);

    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let jwk = &jwks["keys"][0];
    assert_eq!((jwk["kid"].as_str(), jwk["kty"].as_str(), jwk["crv"].as_str()), (header["kid"].as_str(), Some("OKP"), Some("Ed25519")));
    assert!(jwk.get("d").is_none(), "never the private key");

    let body = token.split('.').nth(1).unwrap();
    let none = format!("{}.{body}.", B64.encode(json!({ "alg": "none", "typ": "JWT", "kid": header["kid"] }).to_string()));
    let hs_header = json!({ "alg": "HS256", "typ": "JWT", "kid": header["kid"] });
    let public = B64.decode(jwk["x"].as_str().unwrap()).unwrap();
    let with_public_key = hs256(&hs_header, &claims, &public);
    let with_jwk_text = hs256(&hs_header, &claims, jwk.to_string().as_bytes());
    // A valid Ed25519 signature by another key, under our key id.
    let (der, other_jwk) = jwt::generate(JwtAlgorithm::EdDSA, header["kid"].as_str().unwrap());
    let stranger = JwtKey {
        kid: header["kid"].as_str().unwrap().into(),
        alg: JwtAlgorithm::EdDSA,
        private_sealed: der,
        public_jwk: other_jwk.to_string(),
        created_at: chrono::Utc::now(),
    };
    let foreign = jwt::KeyRing::new(JwtAlgorithm::EdDSA, &[stranger], |k| Some(k.private_sealed.clone()))
        .sign(&serde_json::from_value(claims.clone()).unwrap())
        .unwrap();
    let mut tampered_claims = claims.clone();
    tampered_claims["sub"] = json!("us_someone_else");
    let tampered =
        format!("{}.{}.{}", token.split('.').next().unwrap(), B64.encode(tampered_claims.to_string()), token.split('.').nth(2).unwrap());
    for (what, bad) in [
        ("alg none", none),
        ("HS256 keyed with the public key", with_public_key),
        ("HS256 keyed with the JWK", with_jwk_text),
        ("another key", foreign),
        ("tampered claims", tampered),
        ("garbage", "not.a.token".to_string()),
    ] {
        let r = app.me_with(&bad).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
        expect_error(r, 401, "unauthenticated").await;
    }

    // Another audience, signed with our very key: refused.
    let settings = AccountSettings { jwt_audience: "another-app".into(), ..Default::default() };
    let other = Accounts::new(&app.state.core, settings, None, None).await.unwrap();
    let caller = phonegate_core::Caller::system("tests");
    let (foreign_aud, _, _) = other.refresh(&caller, &signed["refresh_token"].as_str().unwrap().into()).await.unwrap();
    assert_eq!(part(&foreign_aud, 0)["kid"], header["kid"]);
    expect_error(app.me_with(&foreign_aud).await, 401, "unauthenticated").await;

    // Expired: five minutes and a second later.
    app.advance(Duration::seconds(301));
    expect_error(app.me_with(&token).await, 401, "unauthenticated").await;
}

#[tokio::test]
async fn rotation_signs_with_a_new_key_and_keeps_the_old_one_valid() {
    let app = TestApp::spawn().await;
    let signed = app.sign_up("rotation", &fresh_number(), None).await;
    let old = signed["access_token"].as_str().unwrap().to_string();
    let kid = app.state.accounts.rotate_key().await.unwrap();
    let r = app.anon_post("/api/auth/refresh", json!({ "refresh_token": signed["refresh_token"] })).await;
    let fresh: Value = r.json().await.unwrap();
    let new = fresh["access_token"].as_str().unwrap();
    assert_eq!(part(new, 0)["kid"], kid.as_str());
    assert_ne!(part(&old, 0)["kid"], kid.as_str());
    assert_eq!(app.me_with(&old).await.status(), StatusCode::OK);
    assert_eq!(app.me_with(new).await.status(), StatusCode::OK);
    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));
    let rotated = app.query_i64("SELECT COUNT(*) FROM audit_events WHERE kind = 'jwt_key_rotated'").await;
    assert_eq!(rotated, 2, "the first key at start-up, then the rotation");
}

#[tokio::test]
async fn es256_is_the_other_algorithm_and_then_the_only_one() {
    let app = TestApp::spawn_with(|c| c.accounts.jwt_algorithm = JwtAlgorithm::ES256).await;
    let signed = app.sign_up("elliptic", &fresh_number(), None).await;
    let token = signed["access_token"].as_str().unwrap();
    assert_eq!(part(token, 0)["alg"], "ES256");
    assert_eq!(app.me_with(token).await.status(), StatusCode::OK);
    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    assert!(jwks["keys"].as_array().unwrap().iter().all(|k| k["kty"] == "EC" && k["crv"] == "P-256"), "{jwks}");
}

#[tokio::test]
async fn forward_auth_names_the_user_to_a_proxy_or_refuses() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    let signed = app.sign_up("proxied", &phone, None).await;
    let r = app.client.get(app.url("/api/auth/forward")).bearer_auth(signed["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(header("x-phonegate-user").as_deref(), Some("proxied"));
    assert_eq!(header("x-phonegate-phone").as_deref(), Some(phone.as_str()));
    assert_eq!(header("x-phonegate-user-id").as_deref(), signed["user"]["id"].as_str());

    let (flow, code) = app.flow_code("/api/auth/login", json!({ "phone": phone }), &phone).await;
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code, "session": "cookie" })).await;
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_string();
    let r = app.client.get(app.url("/api/auth/forward")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-phonegate-user"], "proxied");

    let r = app.client.get(app.url("/api/auth/forward")).send().await.unwrap();
    expect_error(r, 401, "unauthenticated").await;
    let r = app.client.get(app.url("/api/auth/forward")).header("cookie", "phonegate_session=nope").send().await.unwrap();
    expect_error(r, 401, "unauthenticated").await;
}
