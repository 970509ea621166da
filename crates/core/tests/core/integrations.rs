//! The redirect step: a signed incoming token starts a step whose code goes to the token's
//! number; the right code returns to the client's return URL with a signed answer; tokens are
//! single use and only configured return URLs are ever used.
use crate::harness::{Core, end_user, fresh_number, wrong};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use phonegate_core::integrations::RedirectClient;
use phonegate_core::{Clock, VerifyError};
use serde_json::{Value, json};

const SECRET: &[u8] = b"shop-secret-shop-secret-shop-secret";
const DONE: &str = "https://shop.example/phone/done";
const OTHER: &str = "https://shop.example/other?x=1";

async fn core() -> Core {
    Core::with(|s| {
        s.clients = vec![RedirectClient {
            name: "shop".into(),
            secret: SECRET.to_vec(),
            issuers: vec!["shop-backend".into()],
            return_urls: vec![DONE.into(), OTHER.into()],
            phone_claim: "phone".into(),
        }]
    })
    .await
}

/// An incoming token for `phone`, valid for five minutes, signed with `secret`.
fn token(core: &Core, phone: &str, secret: &[u8]) -> String {
    let now = core.clock.now().timestamp();
    let claims = json!({ "iss": "shop-backend", "sub": "user-1", "iat": now, "exp": now + 300, "phone": phone });
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
}

/// The claims of the answer a return URL carries, its signature checked.
fn answer(url: &str) -> Value {
    let token = url.split("session_token=").nth(1).expect("an answer token");
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&["shop"]);
    // The engine's clock is not the wall clock: the times are checked below.
    v.validate_exp = false;
    v.set_required_spec_claims(&["aud"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(SECRET).unwrap(), &v).expect("signed with the shared secret").claims
}

#[tokio::test]
async fn a_signed_token_starts_a_step_whose_right_code_returns_a_signed_answer() {
    let core = core().await;
    let phone = fresh_number();
    let user = end_user("203.0.113.9");
    let step = core.integrations.begin(&user, "shop", "st-1", &token(&core, &phone, SECRET), Some(OTHER), None).await.unwrap();
    assert_eq!(step.phone.as_ref().map(|p| p.as_str()), Some(phone.as_str()));
    let code = core.code_for(&phone).await;
    let r = core.integrations.check(&user, "shop", &step.token, &wrong(&code)).await;
    assert!(matches!(r, Err(VerifyError::CodeIncorrect { attempts_left: 4 })), "{r:?}");
    let back = core.integrations.check(&user, "shop", &step.token, &code).await.unwrap();
    assert!(back.starts_with(&format!("{OTHER}&state=st-1&session_token=")), "{back}");
    let claims = answer(&back);
    assert_eq!((claims["sub"].as_str(), claims["state"].as_str()), (Some("user-1"), Some("st-1")));
    assert_eq!((claims["phone_number"].as_str(), claims["phone_number_verified"].as_bool()), (Some(phone.as_str()), Some(true)));
    assert_eq!(claims["exp"].as_i64().unwrap() - core.clock.now().timestamp(), 300);
}

#[tokio::test]
async fn an_incoming_token_is_used_once() {
    let core = core().await;
    let incoming = token(&core, &fresh_number(), SECRET);
    core.integrations.begin(&end_user("203.0.113.9"), "shop", "st-1", &incoming, Some(DONE), None).await.unwrap();
    let again = core.integrations.begin(&end_user("203.0.113.9"), "shop", "st-1", &incoming, Some(DONE), None).await;
    assert!(matches!(again, Err(VerifyError::RedirectTokenUsed)), "{again:?}");
}

#[tokio::test]
async fn a_return_url_the_client_does_not_list_is_refused() {
    let core = core().await;
    let incoming = token(&core, &fresh_number(), SECRET);
    for evil in ["https://evil.example/phone/done", "https://shop.example/phone/done/", "https://shop.example/other"] {
        let r = core.integrations.begin(&end_user("203.0.113.9"), "shop", "st-1", &incoming, Some(evil), None).await;
        assert!(matches!(r, Err(VerifyError::ReturnUrlNotAllowed)), "{evil}: {r:?}");
    }
    // Refused before the token was looked at: it still starts a step with a listed URL.
    core.integrations.begin(&end_user("203.0.113.9"), "shop", "st-1", &incoming, Some(DONE), None).await.unwrap();
}

#[tokio::test]
async fn a_token_signed_with_another_secret_or_for_another_client_is_refused() {
    let core = core().await;
    let forged = token(&core, &fresh_number(), b"not-the-shop-secret-not-the-shop-secret");
    let r = core.integrations.begin(&end_user("203.0.113.9"), "shop", "st-1", &forged, Some(DONE), None).await;
    assert!(matches!(r, Err(VerifyError::RedirectTokenInvalid(_))), "{r:?}");
    let incoming = token(&core, &fresh_number(), SECRET);
    let r = core.integrations.begin(&end_user("203.0.113.9"), "bank", "st-1", &incoming, None, None).await;
    assert!(matches!(r, Err(VerifyError::RedirectClientNotFound)), "{r:?}");
}

#[tokio::test]
async fn the_last_wrong_code_returns_an_unverified_answer() {
    let core = core().await;
    let phone = fresh_number();
    let user = end_user("203.0.113.9");
    let step = core.integrations.begin(&user, "shop", "st-2", &token(&core, &phone, SECRET), Some(DONE), None).await.unwrap();
    let code = core.code_for(&phone).await;
    for _ in 0..4 {
        core.integrations.check(&user, "shop", &step.token, &wrong(&code)).await.unwrap_err();
    }
    let back = core.integrations.check(&user, "shop", &step.token, &wrong(&code)).await.unwrap();
    assert!(back.starts_with(&format!("{DONE}?state=st-2&session_token=")), "{back}");
    assert_eq!(answer(&back)["phone_number_verified"], false);
}
