//! Provider webhooks: inbound SMS and delivery receipts from Twilio and Vonage. Each request is
//! trusted only with a valid, fresh signature; anything else gets 403 and changes nothing.
use super::AppState;
use super::auth::RequestMeta;
use super::compat::base_url;
use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use phonegate_core::audit::AuditKind;
use phonegate_core::message::DeliveryStatus;
use phonegate_providers::signature::{self, SignatureError};
use std::collections::BTreeMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/twilio/sms", post(twilio_sms))
        .route("/webhooks/twilio/status", post(twilio_status))
        .route("/webhooks/vonage/sms", get(vonage_sms).post(vonage_sms))
        .route("/webhooks/vonage/dlr", get(vonage_dlr).post(vonage_dlr))
        // Calls and WhatsApp messages.
        .merge(super::channel_webhooks::routes())
}

pub(super) fn forbidden(why: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "invalid_signature", format!("webhook refused: {why}"))
}

/// A refused signature is a forged (or misconfigured) webhook: recorded in the audit log.
pub(super) async fn audited(s: &AppState, meta: &RequestMeta, provider: &str, verified: Result<(), ApiError>) -> Result<(), ApiError> {
    if let Err(e) = &verified {
        s.core.audit.record_once(&meta.provider(), AuditKind::WebhookForged, Some(provider), &e.message).await;
    }
    verified
}

pub(super) fn missing(field: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", format!("{field} is required"))
}

pub(super) fn form(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_bytes(body).map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", "the body is not form-encoded"))
}

/// Checks `X-Twilio-Signature` against the URL Twilio called and the POST parameters.
pub(super) fn verify_twilio(s: &AppState, uri: &Uri, headers: &HeaderMap, params: &[(String, String)]) -> Result<(), ApiError> {
    let sig = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).ok_or_else(|| forbidden("no X-Twilio-Signature"))?;
    let account = params.iter().find(|(k, _)| k == "AccountSid").map(|(_, v)| v.as_str()).unwrap_or_default();
    let token = s.webhooks.twilio.iter().find(|a| a.account_sid == account).ok_or_else(|| forbidden("signature mismatch"))?;
    // Twilio signs the URL it called. Trusting the request's Host header for it would let a
    // request signed for another host be replayed here, so the public URL must be configured.
    let Some(public_url) = s.webhooks.public_url.as_deref() else {
        tracing::warn!("a Twilio webhook arrived but public_url is not configured; refusing it");
        return Err(forbidden("signed webhooks are not configured"));
    };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{}{path}", base_url(Some(public_url), s.webhooks.tls, headers, uri));
    if signature::verify_twilio(token.auth_token.expose(), &url, params, sig) { Ok(()) } else { Err(forbidden("signature mismatch")) }
}

/// A signed inbound SMS, handed to the core (opt-out words, joins by invite code).
async fn inbound(s: &AppState, meta: &RequestMeta, provider: &str, id: &str, from: &str, to: &str, text: &str) -> Result<(), ApiError> {
    let outcome = s.accounts.receive(&meta.provider(), provider, id, from, to, text).await?;
    tracing::info!(?outcome, provider, "inbound SMS");
    Ok(())
}

pub(super) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn twilio_sms(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = form(&body)?;
    audited(&s, &meta, "twilio", verify_twilio(&s, &uri, &headers, &params)).await?;
    let sid = param(&params, "MessageSid").ok_or_else(|| missing("MessageSid"))?;
    let from = param(&params, "From").ok_or_else(|| missing("From"))?;
    let (to, text) = (param(&params, "To").unwrap_or_default(), param(&params, "Body").unwrap_or_default());
    inbound(&s, &meta, "twilio", sid, from, to, text).await?;
    // An empty TwiML response: no automatic reply.
    Ok(([(header::CONTENT_TYPE, "text/xml")], "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>").into_response())
}

async fn twilio_status(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let params = form(&body)?;
    audited(&s, &meta, "twilio", verify_twilio(&s, &uri, &headers, &params)).await?;
    let sid = param(&params, "MessageSid").ok_or_else(|| missing("MessageSid"))?;
    let status = match param(&params, "MessageStatus").ok_or_else(|| missing("MessageStatus"))? {
        "delivered" | "read" => DeliveryStatus::Delivered,
        "undelivered" => DeliveryStatus::Undelivered,
        "failed" => DeliveryStatus::Failed,
        "sent" => DeliveryStatus::Sent,
        _ => return Ok(StatusCode::NO_CONTENT),
    };
    let error = param(&params, "ErrorCode").filter(|c| !c.is_empty()).map(|c| format!("Twilio error {c}"));
    s.core.delivery.record_receipt(&meta.provider(), sid, status, error.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Vonage sends GET query strings, POST forms or POST JSON; all become one parameter map.
fn vonage_params(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<BTreeMap<String, String>, ApiError> {
    let mut params: BTreeMap<String, String> = serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    let json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.starts_with("application/json"));
    if json {
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", "the body is not a JSON object"))?;
        for (k, v) in v {
            params.insert(k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
        }
    } else if !body.is_empty() {
        params.extend(form(body)?);
    }
    Ok(params)
}

fn verify_vonage(s: &AppState, params: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let key = params.get("api-key").map(String::as_str).unwrap_or_default();
    let account = s.webhooks.vonage.iter().find(|a| a.api_key == key).ok_or_else(|| forbidden("signature mismatch"))?;
    let Some(secret) = &account.signature_secret else {
        tracing::warn!("a Vonage webhook arrived but no signature_secret is configured for its api-key; refusing it");
        return Err(forbidden("signature mismatch"));
    };
    signature::verify_vonage(secret.expose(), account.signature_method, params, s.clock.now().timestamp()).map_err(|e| match e {
        SignatureError::Missing => forbidden("no sig parameter"),
        SignatureError::Mismatch => forbidden("signature mismatch"),
        SignatureError::Stale => forbidden("timestamp missing or too old"),
    })
}

async fn vonage_sms(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let params = vonage_params(&uri, &headers, &body)?;
    audited(&s, &meta, "vonage", verify_vonage(&s, &params)).await?;
    let id = params.get("messageId").ok_or_else(|| missing("messageId"))?;
    let from = params.get("msisdn").ok_or_else(|| missing("msisdn"))?;
    let to = params.get("to").map(String::as_str).unwrap_or_default();
    let text = params.get("text").map(String::as_str).unwrap_or_default();
    inbound(&s, &meta, "vonage", id, from, to, text).await?;
    Ok(StatusCode::OK)
}

async fn vonage_dlr(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let params = vonage_params(&uri, &headers, &body)?;
    audited(&s, &meta, "vonage", verify_vonage(&s, &params)).await?;
    let id = params.get("messageId").ok_or_else(|| missing("messageId"))?;
    let status = match params.get("status").map(String::as_str).ok_or_else(|| missing("status"))? {
        "delivered" => DeliveryStatus::Delivered,
        "expired" | "rejected" => DeliveryStatus::Undelivered,
        "failed" => DeliveryStatus::Failed,
        "accepted" | "buffered" => DeliveryStatus::Sent,
        _ => return Ok(StatusCode::OK),
    };
    let error = params.get("err-code").filter(|c| c.as_str() != "0").map(|c| format!("Vonage error {c}"));
    s.core.delivery.record_receipt(&meta.provider(), id, status, error.as_deref()).await?;
    Ok(StatusCode::OK)
}
