//! Status callbacks of calls and WhatsApp messages: Vonage's call events and Messages API
//! statuses (a JWT signed with the signature secret, binding the body), and Meta's WhatsApp Cloud
//! API webhook (its verification handshake, and statuses signed with `X-Hub-Signature-256`). A
//! callback without a valid signature gets 403, changes nothing and is audited.
//!
//! One exception: the `input` result of a call that waits for a key press (Vonage does not sign
//! those). Its answer only decides whether the call goes on to speak the code (a key was pressed:
//! no NCCO, the call's own continues) or ends (silence: an NCCO that pauses and hangs up). It
//! reveals nothing and changes nothing, so a forged one gains nothing.
use super::AppState;
use super::auth::RequestMeta;
use super::error::ApiError;
use super::webhooks::{audited, forbidden};
use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use phonegate_providers::callbacks::{self, Receipt};
use phonegate_providers::signature::{self, SignatureError};
use serde_json::Value;
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/vonage/call-event", post(vonage_call_event))
        .route("/webhooks/vonage/message-status", post(vonage_message_status))
        .route("/webhooks/whatsapp", post(whatsapp_cloud).get(whatsapp_handshake))
}

fn json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", "the body is not JSON"))
}

/// Checks Vonage's signed-callback JWT (`Authorization: Bearer`) against every configured
/// signature secret.
fn verify_vonage(s: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| forbidden("no signed JWT"))?;
    let secrets: Vec<&str> = s.webhooks.vonage.iter().filter_map(|a| a.signature_secret.as_ref()).map(|s| s.expose()).collect();
    if secrets.is_empty() {
        tracing::warn!("a Vonage call or message callback arrived but no signature_secret is configured; refusing it");
        return Err(forbidden("signature mismatch"));
    }
    signature::verify_vonage_jwt(secrets, token.trim(), body, s.clock.now().timestamp()).map(|_| ()).map_err(|e| match e {
        SignatureError::Stale => forbidden("the signed JWT is too old"),
        _ => forbidden("signature mismatch"),
    })
}

async fn record(s: &AppState, meta: &RequestMeta, receipt: Receipt) -> Result<(), ApiError> {
    s.core.delivery.record_receipt(&meta.provider(), &receipt.provider_message_id, receipt.status, receipt.error.as_deref()).await?;
    Ok(())
}

/// What ends a call whose callee pressed no key: a one-second pause, after which the NCCO is over.
const HANG_UP: &str = r#"[{"action":"talk","text":"<speak><break time=\"1s\"/></speak>"}]"#;

async fn vonage_call_event(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let event = json(&body)?;
    if let Some(pressed) = callbacks::vonage_key_pressed(&event) {
        return Ok(if pressed {
            StatusCode::NO_CONTENT.into_response()
        } else {
            ([(header::CONTENT_TYPE, "application/json")], HANG_UP).into_response()
        });
    }
    audited(&s, &meta, "vonage", verify_vonage(&s, &headers, &body)).await?;
    if let Some(receipt) = callbacks::vonage_call_event(&event) {
        record(&s, &meta, receipt).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn vonage_message_status(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    audited(&s, &meta, "vonage", verify_vonage(&s, &headers, &body)).await?;
    if let Some(receipt) = callbacks::vonage_message_status(&json(&body)?) {
        record(&s, &meta, receipt).await?;
    }
    Ok(StatusCode::OK)
}

/// Meta's webhook verification: `hub.mode=subscribe` with the configured `verify_token` is
/// answered with `hub.challenge`; anything else with 403.
async fn whatsapp_handshake(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Result<Response, ApiError> {
    let token = q.get("hub.verify_token").map(String::as_str).unwrap_or_default();
    let known = s.webhooks.whatsapp.iter().filter_map(|a| a.verify_token.as_ref()).any(|t| signature::constant_time_eq(t.expose(), token));
    let challenge = q.get("hub.challenge").filter(|c| !c.is_empty() && c.len() <= 100 && c.bytes().all(|b| b.is_ascii_alphanumeric()));
    match (q.get("hub.mode").map(String::as_str), known, challenge) {
        (Some("subscribe"), true, Some(challenge)) => Ok(([(header::CONTENT_TYPE, "text/plain")], challenge.clone()).into_response()),
        _ => Err(forbidden("the verify token does not match")),
    }
}

async fn whatsapp_cloud(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let verified = match headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok()) {
        None => Err(forbidden("no X-Hub-Signature-256")),
        Some(sig) => {
            let secrets: Vec<&str> = s.webhooks.whatsapp.iter().filter_map(|a| a.app_secret.as_ref()).map(|s| s.expose()).collect();
            if secrets.is_empty() {
                tracing::warn!("a WhatsApp webhook arrived but no app_secret is configured; refusing it");
            }
            if signature::verify_meta(secrets, &body, sig) { Ok(()) } else { Err(forbidden("signature mismatch")) }
        }
    };
    audited(&s, &meta, "whatsapp_cloud", verified).await?;
    for receipt in callbacks::whatsapp_statuses(&json(&body)?) {
        record(&s, &meta, receipt).await?;
    }
    Ok(StatusCode::OK)
}
