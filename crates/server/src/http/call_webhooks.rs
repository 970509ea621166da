//! Twilio's webhooks about calls, signed and verified like its SMS webhooks (`X-Twilio-Signature`
//! over the URL and the POST parameters; anything else gets 403 and changes nothing):
//! - a call's final status (`StatusCallback`), recorded as its message's delivery: `completed`
//!   delivered; `busy`, `no-answer`, `canceled` undelivered; `failed` failed (either makes a
//!   workflow's next step start at once);
//! - the key press of a call that waits for one (its `<Gather>` action), answered with the TwiML
//!   that says the code, only for that call of a pending verification.
use super::AppState;
use super::auth::RequestMeta;
use super::error::ApiError;
use super::webhooks::{audited, form, missing, param, verify_twilio};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use phonegate_core::message::DeliveryStatus;
use phonegate_providers::twilio::{CALL_STATUS_PATH, GATHER_PATH, say};

pub fn routes() -> Router<AppState> {
    Router::new().route(CALL_STATUS_PATH, post(call_status)).route(GATHER_PATH, post(call_gather))
}

async fn call_status(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let params = form(&body)?;
    audited(&s, &meta, "twilio", verify_twilio(&s, &uri, &headers, &params)).await?;
    let sid = param(&params, "CallSid").ok_or_else(|| missing("CallSid"))?;
    let call_status = param(&params, "CallStatus").ok_or_else(|| missing("CallStatus"))?;
    let status = match call_status {
        "completed" => DeliveryStatus::Delivered,
        "busy" | "no-answer" | "canceled" => DeliveryStatus::Undelivered,
        "failed" => DeliveryStatus::Failed,
        // `queued`, `initiated`, `ringing`, `in-progress`: not asked for, and not final.
        _ => return Ok(StatusCode::NO_CONTENT),
    };
    let error = match (status, param(&params, "ErrorCode").filter(|c| !c.is_empty())) {
        (DeliveryStatus::Delivered, _) => None,
        (_, Some(code)) => Some(format!("Twilio call {call_status}, error {code}")),
        (_, None) => Some(format!("Twilio call {call_status}")),
    };
    s.core.delivery.record_receipt(&meta.provider(), sid, status, error.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn twiml(document: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml")], format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{document}")).into_response()
}

/// The callee pressed a key: the call's text, in the language and voice its action URL names.
/// Anything that is not that call of a pending verification hangs up.
async fn call_gather(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = form(&body)?;
    audited(&s, &meta, "twilio", verify_twilio(&s, &uri, &headers, &params)).await?;
    let sid = param(&params, "CallSid").ok_or_else(|| missing("CallSid"))?;
    let query: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    let (verification, message) = (param(&query, "verification"), param(&query, "message"));
    let (Some(verification), Some(message)) = (verification, message) else { return Ok(twiml("<Response><Hangup/></Response>".into())) };
    let pressed = param(&params, "Digits").is_some_and(|d| !d.is_empty());
    let text = match pressed {
        true => s.core.delivery.spoken_text(&meta.provider(), verification, message, sid).await?,
        false => None,
    };
    Ok(twiml(match text {
        Some(text) => say(&text, param(&query, "language"), param(&query, "voice")),
        None => "<Response><Hangup/></Response>".into(),
    }))
}
