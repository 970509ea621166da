//! Vonage (Nexmo) Verify v1: `/verify/json`, `/verify/check/json`, `/verify/search/json`,
//! `/verify/control/json`, GET or POST, form or JSON, `api_key`/`api_secret` as parameters,
//! HTTP 200 with Vonage's string status codes. Vonage request ids are our verification ids
//! without the `VE` prefix (Vonage allows 32 characters). A request's events are the steps of a
//! core workflow (`workflows.rs`: `workflow_id`, `next_event_wait`, `pin_expiry`).
mod workflows;

use crate::http::AppState;
use crate::http::auth::{RequestMeta, authenticate};
use crate::http::error::{report, with_reference};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use phonegate_core::PhoneError;
use phonegate_core::budget::Budget;
use phonegate_core::error::ErrorKind;
use phonegate_core::error::Field;
use phonegate_core::message::Message;
use phonegate_core::psd2::Psd2;
use phonegate_core::verification::CheckRecord;
use phonegate_core::{Caller, CheckOutcome, StartOptions, StartRequest, Status, Verification, VerifyError};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Status 6 for a request that is unknown or over, in the spec's wording.
const NOT_FOUND: &str = "The Vonage platform was unable to process this message for the following reason: the request was not found or it has been verified already";
/// Vonage allows 3 checks per verification.
const VONAGE_MAX_ATTEMPTS: u32 = 3;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/verify/json", get(start).post(start))
        .route("/verify/check/json", get(check).post(check))
        .route("/verify/search/json", get(search).post(search))
        .route("/verify/control/json", get(control).post(control))
        .route("/verify/psd2/json", get(start_psd2).post(start_psd2))
        // Any other Vonage Verify path: a Vonage status body, not phonegate's.
        .route("/verify/{*rest}", any(unknown_path))
}

async fn unknown_path() -> Response {
    let body = json!({ "status": "3", "error_text": "Invalid request: this Verify API path is not available on this server" });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// A Vonage answer: always HTTP 200, the outcome in `status`.
pub struct Answer(Value);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (StatusCode::OK, Json(self.0)).into_response()
    }
}

fn fail(status: &str, text: impl Into<String>) -> Answer {
    Answer(json!({ "status": status, "error_text": text.into() }))
}

fn missing(param: &str) -> Answer {
    fail("2", format!("Your request is incomplete and missing the mandatory parameter `{param}`"))
}

fn invalid(param: &str) -> Answer {
    fail("3", format!("Invalid value for parameter `{param}`"))
}

fn from_error(e: VerifyError) -> Answer {
    match e {
        VerifyError::Phone(PhoneError::DestinationNotAllowed) => fail("15", "The destination number is not in a supported network"),
        VerifyError::Phone(p) => fail("3", format!("Invalid value for parameter `number`: {p}")),
        VerifyError::InvalidParameter { field, message } => fail("3", format!("Invalid value for parameter `{field}`: {message}")),
        VerifyError::Forbidden => fail("4", "Invalid credentials were provided"),
        VerifyError::ServiceNotFound
        | VerifyError::VerificationNotFound
        | VerifyError::NoPendingVerification
        | VerifyError::NotPending(_) => fail("6", NOT_FOUND),
        VerifyError::TooEarlyToCancel { min_age_secs } => {
            fail("19", format!("Verification request can't be cancelled within the first {min_age_secs} seconds."))
        }
        VerifyError::MaxSendsReached => fail("10", "Concurrent verifications to the same number are not allowed"),
        VerifyError::OverBudget { budget: Budget::FailedChecksPerNumber, .. } => fail("17", "The wrong code was provided too many times"),
        VerifyError::OverBudget { budget: Budget::SendsPerNumber, .. } => {
            fail("10", "Concurrent verifications to the same number are not allowed")
        }
        VerifyError::OverBudget { .. } => fail("1", "Throttled"),
        VerifyError::AlreadyPending { verification_id } => Answer(json!({
            "request_id": verification_id.trim_start_matches("VE"),
            "status": "10",
            "error_text": "Concurrent verifications to the same number are not allowed",
        })),
        VerifyError::OptedOut => fail("7", "The number you are trying to verify is blacklisted for verification."),
        VerifyError::Busy => fail("1", "Throttled"),
        VerifyError::Psd2NotEnabled => fail("20", "This account does not support PSD2 verification."),
        VerifyError::CustomCodeNotEnabled => fail("20", "This account does not support the parameter: pin_code."),
        // Anything else (a failure of the server; errors the Verify API never meets) by its kind;
        // a failure of the server is logged and answered with the request id.
        other => match other.kind() {
            ErrorKind::BadRequest => fail("3", other.message()),
            ErrorKind::NotFound | ErrorKind::Gone => fail("6", NOT_FOUND),
            ErrorKind::Unauthenticated | ErrorKind::Forbidden => fail("4", "Invalid credentials were provided"),
            ErrorKind::TooManyRequests => fail("1", "Throttled"),
            ErrorKind::Conflict | ErrorKind::Upstream | ErrorKind::Unavailable | ErrorKind::Internal => {
                fail("5", report(&other).map_or_else(|| "Internal Error".to_string(), |id| with_reference("Internal Error", &id)))
            }
        },
    }
}

type Params = BTreeMap<String, String>;

/// Query string, form body or JSON body, merged.
fn params(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Params, Answer> {
    let mut p: Params = serde_urlencoded::from_str(uri.query().unwrap_or_default()).map_err(|_| fail("3", "Malformed query string"))?;
    let json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.starts_with("application/json"));
    if json {
        let object: serde_json::Map<String, Value> = serde_json::from_slice(body).map_err(|_| fail("3", "Malformed JSON body"))?;
        for (k, v) in object {
            p.insert(k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
        }
    } else if !body.is_empty() {
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|_| fail("3", "Malformed form body"))?;
        p.extend(form);
    }
    p.retain(|_, v| !v.is_empty());
    Ok(p)
}

/// Parses and authenticates a request: HTTP Basic, or `api_key` and `api_secret` parameters
/// (both are a phonegate key id and secret), as Vonage accepts either.
async fn authenticated(s: &AppState, meta: &RequestMeta, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<(Params, Caller), Answer> {
    let mut p = params(uri, headers, body)?;
    let result = if headers.contains_key(header::AUTHORIZATION) {
        authenticate(headers, meta, s).await
    } else {
        // The secret leaves the parameters at once, wrapped so it cannot be printed.
        let secret = SecretString::from(p.remove("api_secret").ok_or_else(|| missing("api_secret"))?);
        let key = p.get("api_key").ok_or_else(|| missing("api_key"))?;
        s.keys.by_pair(key, &secret).await.map(|k| k.map(|k| Caller::key(&k, meta.ip, meta.request_id.clone())))
    };
    match result {
        Ok(Some(caller)) => {
            // Vonage reports the account a request ran under; ours is the key.
            p.insert("api_key".into(), caller.key_id.clone().unwrap_or_default());
            Ok((p, caller))
        }
        Ok(None) => Err(fail("4", "Invalid credentials were provided")),
        Err(e) => Err(from_error(e.into())),
    }
}

fn request_id(v: &Verification) -> &str {
    v.id.trim_start_matches("VE")
}

fn verification_id(p: &Params) -> Result<String, Answer> {
    let rid = p.get("request_id").ok_or_else(|| missing("request_id"))?;
    Ok(format!("VE{rid}"))
}

fn bounded(p: &Params, name: &str, range: std::ops::RangeInclusive<i64>) -> Result<Option<i64>, Answer> {
    match p.get(name) {
        None => Ok(None),
        Some(v) => v.parse::<i64>().ok().filter(|n| range.contains(n)).map(Some).ok_or_else(|| invalid(name)),
    }
}

async fn start(State(s): State<AppState>, Extension(meta): Extension<RequestMeta>, uri: Uri, headers: HeaderMap, body: Bytes) -> Answer {
    match start_inner(&s, &meta, &uri, &headers, &body, false).await {
        Ok(a) | Err(a) => a,
    }
}

/// `/verify/psd2/json`: a payment code naming `payee` and `amount` (in euros) in its message.
async fn start_psd2(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    match start_inner(&s, &meta, &uri, &headers, &body, true).await {
        Ok(a) | Err(a) => a,
    }
}

async fn start_inner(
    s: &AppState,
    meta: &RequestMeta,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    payment: bool,
) -> Result<Answer, Answer> {
    let (p, caller) = authenticated(s, meta, uri, headers, body).await?;
    let number = p.get("number").ok_or_else(|| missing("number"))?;
    let (brand, psd2) = if payment {
        let payee = p.get("payee").ok_or_else(|| missing("payee"))?;
        let amount = p.get("amount").ok_or_else(|| missing("amount"))?;
        let euros = amount.parse::<f64>().ok().filter(|a| a.is_finite() && *a >= 0.0 && *a < 1e12).ok_or_else(|| invalid("amount"))?;
        let psd2 = Psd2::from_parts(Some(&format!("€{euros:.2}")), Some(payee)).map_err(|_| invalid("payee"))?;
        (None, psd2)
    } else {
        let brand = p.get("brand").ok_or_else(|| missing("brand"))?;
        if brand.chars().count() > 18 {
            return Err(fail("3", "Invalid value for parameter `brand`: at most 18 characters"));
        }
        (Some(brand.clone()), None)
    };
    // Vonage's default PIN has 4 digits.
    let code_length = match p.get("code_length").map(String::as_str) {
        None | Some("4") => Some(4),
        Some("6") => Some(6),
        Some(_) => return Err(invalid("code_length")),
    };
    // An alphanumeric sender of at most 11 characters, or a number of at most 15 digits.
    if let Some(sender) = p.get("sender_id") {
        let numeric = sender.len() <= 15 && sender.bytes().all(|b| b.is_ascii_digit());
        let alphanumeric = sender.chars().count() <= 11 && sender.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ');
        if !(numeric || alphanumeric) {
            return Err(invalid("sender_id"));
        }
    }
    let pin_expiry = bounded(&p, "pin_expiry", 60..=3600)?;
    let next_event_wait = bounded(&p, "next_event_wait", 60..=900)?;
    let workflow_id = bounded(&p, "workflow_id", 1..=7)?;
    let options = StartOptions {
        // The core keeps the steps that reach the number: a landline gets the calls only.
        workflow: Some(workflows::workflow(workflow_id, next_event_wait)),
        code_length,
        ttl_secs: Some(workflows::pin_expiry(pin_expiry, next_event_wait)),
        max_attempts: Some(VONAGE_MAX_ATTEMPTS),
        brand,
        region: p.get("country").cloned(),
        // Vonage answers a second start for a number with status 10 and sends nothing.
        refuse_if_pending: true,
        background: false,
        app_hash: None,
        // A service with custom codes (a key scoped to it) takes the app's PIN.
        custom_code: p.get("pin_code").cloned(),
        psd2,
        silent_return: None,
        rehearse: false,
        recognised: false,
        templates: None,
        letters_in_code: false,
        manual_steps: false,
        email_from: None,
        send_digits: None,
    };
    // Vonage takes the number in international format without `+`.
    let to = if p.contains_key("country") || number.starts_with('+') { number.clone() } else { format!("+{number}") };
    let req = StartRequest { service: None, to, channel: None, locale: p.get("lg").cloned(), options };
    let started = s.core.verifier.start(&caller, req).await.map_err(|e| match e {
        VerifyError::InvalidParameter { field: Field::CustomCode, .. } => invalid("pin_code"),
        other => from_error(other),
    })?;
    let id = request_id(&started.verification);
    if started.resent {
        return Ok(Answer(
            json!({ "request_id": id, "status": "10", "error_text": "Concurrent verifications to the same number are not allowed" }),
        ));
    }
    Ok(Answer(json!({ "request_id": id, "status": "0" })))
}

async fn check(State(s): State<AppState>, Extension(meta): Extension<RequestMeta>, uri: Uri, headers: HeaderMap, body: Bytes) -> Answer {
    let inner = async {
        let (p, caller) = authenticated(&s, &meta, &uri, &headers, &body).await?;
        let id = verification_id(&p)?;
        let code = p.get("code").ok_or_else(|| missing("code"))?;
        let started = std::time::Instant::now();
        // Any text is an attempt: a code of the wrong shape is a wrong code and costs one.
        let result = s.core.verifier.check_any(&caller, &id, code).await;
        s.metrics.observe_check(started.elapsed().as_secs_f64());
        let (v, outcome) = match result {
            Err(VerifyError::NotPending(Status::MaxAttemptsReached)) => {
                return Err(fail("17", "The wrong code was provided too many times"));
            }
            other => other.map_err(from_error)?,
        };
        let rid = request_id(&v).to_string();
        Ok(match outcome {
            CheckOutcome::Approved => {
                let event = s
                    .core
                    .verifier
                    .messages_for(&caller, &v.id)
                    .await
                    .ok()
                    .and_then(|m| m.last().map(|m| m.id.clone()))
                    .unwrap_or_default();
                Answer(
                    json!({ "request_id": rid, "event_id": event, "status": "0", "price": "0.00000000", "currency": "EUR", "estimated_price_messages_sent": "0.00000000" }),
                )
            }
            CheckOutcome::Rejected { .. } => {
                Answer(json!({ "request_id": rid, "status": "16", "error_text": "The code inserted does not match the expected value" }))
            }
            CheckOutcome::LockedOut => {
                Answer(json!({ "request_id": rid, "status": "17", "error_text": "The wrong code was provided too many times" }))
            }
            CheckOutcome::NotPending(_) => fail("6", NOT_FOUND),
        })
    };
    match inner.await {
        Ok(a) | Err(a) => a,
    }
}

/// Vonage's `YYYY-MM-DD HH:MM:SS`; a time not reached yet is an empty string (the spec's fields
/// are strings).
fn vonage_time(t: Option<DateTime<Utc>>) -> Value {
    Value::from(t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default())
}

async fn search(State(s): State<AppState>, Extension(meta): Extension<RequestMeta>, uri: Uri, headers: HeaderMap, body: Bytes) -> Answer {
    let inner = async {
        let (p, caller) = authenticated(&s, &meta, &uri, &headers, &body).await?;
        // Several ids come as repeated `request_ids` parameters.
        let all: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
        let many: Vec<&str> = all.iter().filter(|(k, _)| k == "request_ids").map(|(_, v)| v.as_str()).collect();
        if !many.is_empty() {
            let mut found = Vec::new();
            for rid in many.iter().take(10) {
                let id = format!("VE{rid}");
                match s.core.verifier.detail(&caller, &id).await {
                    Ok(d) => found.push(status_json(&d.verification, &d.messages, &d.checks, &p)),
                    // An unknown id is left out; a failure of the server is said as such.
                    Err(e) if e.detail().is_some() => return Err(from_error(e)),
                    Err(_) => {}
                }
            }
            return Ok(Answer(json!({ "verification_requests": found })));
        }
        let id = verification_id(&p)?;
        let d = s.core.verifier.detail(&caller, &id).await.map_err(|e| match e.kind() {
            ErrorKind::NotFound | ErrorKind::Forbidden => fail("101", "No response found"),
            _ => from_error(e),
        })?;
        Ok(Answer(status_json(&d.verification, &d.messages, &d.checks, &p)))
    };
    match inner.await {
        Ok(a) | Err(a) => a,
    }
}

/// One verification as Vonage's search reports it.
fn status_json(v: &Verification, messages: &[Message], checks: &[CheckRecord], p: &Params) -> Value {
    let status = match v.status {
        Status::Pending => "IN PROGRESS",
        Status::Approved => "SUCCESS",
        Status::MaxAttemptsReached | Status::Failed => "FAILED",
        Status::Expired => "EXPIRED",
        Status::Canceled => "CANCELLED",
    };
    let finalized = (v.status != Status::Pending).then(|| v.status_changed_at());
    let events: Vec<Value> = messages.iter().map(|m| json!({ "type": workflows::event_type(m.channel), "id": m.id })).collect();
    json!({
        "request_id": request_id(v),
        "account_id": p.get("api_key"),
        "number": v.to.as_str().trim_start_matches('+'),
        "sender_id": "verify",
        "date_submitted": vonage_time(Some(v.created_at)),
        "date_finalized": vonage_time(finalized),
        "first_event_date": vonage_time(messages.first().map(|m| m.created_at)),
        "last_event_date": vonage_time(messages.last().map(|m| m.created_at)),
        "price": "0.00000000",
        "currency": "EUR",
        "status": status,
        // The code typed is never kept, so each check says when, whether and from where only.
        "checks": checks
            .iter()
            .map(|c| json!({
                "date_received": vonage_time(Some(c.at)),
                "status": if c.valid { "VALID" } else { "INVALID" },
                "ip_address": c.ip.clone().unwrap_or_default(),
            }))
            .collect::<Vec<_>>(),
        "events": events,
        "estimated_price_messages_sent": "0.00000000",
    })
}

async fn control(State(s): State<AppState>, Extension(meta): Extension<RequestMeta>, uri: Uri, headers: HeaderMap, body: Bytes) -> Answer {
    let inner = async {
        let (p, caller) = authenticated(&s, &meta, &uri, &headers, &body).await?;
        let id = verification_id(&p)?;
        let cmd = p.get("cmd").ok_or_else(|| missing("cmd"))?;
        match cmd.as_str() {
            "cancel" => {
                // Vonage refuses to cancel once a second event went out ("too many attempts to
                // deliver").
                let v = s.core.verifier.get(&caller, &id).await.map_err(from_error)?;
                if v.status == Status::Pending && v.step > 0 {
                    return Err(fail(
                        "19",
                        "Verification request can't be cancelled now. Too many attempts to re-deliver have already been made.",
                    ));
                }
                let min_age = chrono::Duration::seconds(s.vonage_min_cancel_secs as i64);
                s.core.verifier.cancel_once_older_than(&caller, &id, min_age).await.map_err(from_error)?;
                Ok(Answer(json!({ "status": "0", "command": "cancel" })))
            }
            "trigger_next_event" => match s.core.verifier.next(&caller, &id).await {
                Ok(_) => Ok(Answer(json!({ "status": "0", "command": "trigger_next_event" }))),
                Err(VerifyError::NoNextStep) => Err(fail("19", "No more events are left to execute for the request")),
                Err(e) => Err(from_error(e)),
            },
            _ => Err(invalid("cmd")),
        }
    };
    match inner.await {
        Ok(a) | Err(a) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonegate_core::StoreError;

    /// Every core error has its Vonage status, including the ones hard to provoke over HTTP.
    #[test]
    fn core_errors_map_to_vonage_statuses() {
        let cases = [
            (VerifyError::invalid(Field::Brand, "x"), "3"),
            (VerifyError::VerificationNotFound, "6"),
            (VerifyError::NotPending(Status::Approved), "6"),
            (VerifyError::MaxSendsReached, "10"),
            (VerifyError::OptedOut, "7"),
            (VerifyError::Busy, "1"),
            (VerifyError::TooEarlyToCancel { min_age_secs: 30 }, "19"),
            (VerifyError::Store(StoreError::Unavailable("down".into())), "5"),
        ];
        for (err, status) in cases {
            let internal = err.detail().is_some();
            let Answer(body) = from_error(err);
            assert_eq!(body["status"], status, "{body}");
            assert!(body["error_text"].as_str().is_some_and(|t| !t.is_empty() && !t.contains("down")));
            assert_eq!(body["error_text"].as_str().unwrap().contains("(request id "), internal, "{body}");
        }
    }
}
