//! Twilio Verify v2 at Twilio's own paths: form-encoded requests, HTTP Basic with a phonegate key
//! id and secret, Twilio's JSON field names, statuses and error codes.
use super::base_url;
use crate::http::AppState;
use crate::http::auth::{authenticate, meta};
use crate::http::error::{report, status, with_reference};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use phonegate_core::PhoneError;
use phonegate_core::budget::Budget;
use phonegate_core::error::ErrorKind;
use phonegate_core::phone::NumberKind;
use phonegate_core::psd2::Psd2;
use phonegate_core::{Caller, Channel, CheckOutcome, StartOptions, StartRequest, Status, StoreError, Verification, VerifyError};
use serde_json::{Value, json};

mod channels;
mod services;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/Services", post(services::create).get(services::list).fallback(method_not_allowed))
        .route("/v2/Services/{service}", get(services::fetch).post(services::update).delete(services::delete).fallback(method_not_allowed))
        .route("/v2/Services/{service}/Verifications", post(start).fallback(method_not_allowed))
        .route("/v2/Services/{service}/Verifications/{target}", get(fetch).post(update).fallback(method_not_allowed))
        .route("/v2/Services/{service}/VerificationCheck", post(check).fallback(method_not_allowed))
        // Any other Twilio path: Twilio's 404 body, not phonegate's.
        .route("/v2", any(unknown_path))
        .route("/v2/{*rest}", any(unknown_path))
}

async fn unknown_path() -> TwilioError {
    TwilioError::not_found()
}

async fn method_not_allowed() -> TwilioError {
    TwilioError::new(StatusCode::METHOD_NOT_ALLOWED, 20004, "Method not allowed")
}

/// Twilio's error body: `{code, message, more_info, status}`.
#[derive(Debug)]
pub struct TwilioError {
    status: StatusCode,
    code: u32,
    message: String,
    retry_after_secs: Option<i64>,
}

impl TwilioError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after_secs: None }
    }
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 60200, message)
    }
    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, 20404, "The requested resource was not found")
    }
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status.as_u16(),
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<StoreError> for TwilioError {
    fn from(e: StoreError) -> Self {
        VerifyError::Store(e).into()
    }
}

impl From<VerifyError> for TwilioError {
    fn from(e: VerifyError) -> Self {
        use StatusCode as S;
        match e {
            VerifyError::Phone(PhoneError::DestinationNotAllowed) => {
                Self::new(S::FORBIDDEN, 60605, "Verification delivery attempt blocked")
            }
            VerifyError::Phone(PhoneError::KindNotAllowed(NumberKind::FixedLine)) => {
                Self::new(S::FORBIDDEN, 60205, "SMS is not supported by landline phone number")
            }
            VerifyError::Phone(p) => Self::invalid(format!("Invalid parameter `To`: {p}")),
            VerifyError::InvalidParameter { field, message } => {
                Self::invalid(format!("Invalid parameter `{}`: {message}", channels::param(field)))
            }
            VerifyError::Psd2NotEnabled => Self::invalid("Invalid parameter `Amount`: PSD2 is not enabled for this service"),
            VerifyError::CustomCodeNotEnabled => {
                Self::invalid("Invalid parameter `CustomCode`: custom codes are not enabled for this service")
            }
            VerifyError::ServiceNameTaken => {
                Self::invalid("Invalid parameter `FriendlyName`: a service of this name exists with other settings")
            }
            VerifyError::SilentUnavailable => {
                Self::invalid("Invalid parameter `Channel`: sna is not available (no silent provider is configured)")
            }
            VerifyError::Forbidden => Self::new(S::FORBIDDEN, 20403, "Forbidden"),
            VerifyError::ServiceNotFound | VerifyError::VerificationNotFound | VerifyError::NoPendingVerification => Self::not_found(),
            VerifyError::NotPending(Status::MaxAttemptsReached) => Self::new(S::TOO_MANY_REQUESTS, 60202, "Max check attempts reached"),
            VerifyError::NotPending(_) => Self::not_found(),
            VerifyError::MaxSendsReached => Self::new(S::TOO_MANY_REQUESTS, 60203, "Max send attempts reached"),
            VerifyError::OverBudget { budget, retry_after_secs } => {
                let (code, message) = match budget {
                    Budget::FailedChecksPerNumber => (60202, "Max check attempts reached"),
                    Budget::StartsPerIp | Budget::ChecksPerIp => (20429, "Too Many Requests"),
                    _ => (60203, "Max send attempts reached"),
                };
                Self { retry_after_secs: Some(retry_after_secs), ..Self::new(S::TOO_MANY_REQUESTS, code, message) }
            }
            VerifyError::TooEarlyToCancel { .. } => Self::invalid("Invalid parameter `Status`: the verification cannot be canceled yet"),
            VerifyError::AlreadyPending { .. } => Self::new(S::TOO_MANY_REQUESTS, 60212, "Too many concurrent requests for phone number"),
            VerifyError::Busy => Self::new(S::TOO_MANY_REQUESTS, 60212, "Too many concurrent requests for phone number"),
            VerifyError::OptedOut => Self::new(S::BAD_REQUEST, 21610, "Attempt to send to unsubscribed recipient"),
            VerifyError::DeliveryFailed { reason, .. } => Self::new(S::BAD_GATEWAY, 60008, format!("Unable to deliver the code: {reason}")),
            // Anything else (a failure of the server; errors the Verify API never meets) by its
            // kind; a failure of the server is logged and answered with the request id.
            other => {
                let (code, message) = match other.kind() {
                    ErrorKind::BadRequest | ErrorKind::Conflict => return Self::invalid(other.message()),
                    ErrorKind::NotFound | ErrorKind::Gone => return Self::not_found(),
                    ErrorKind::Unauthenticated => (20003, "Authenticate"),
                    ErrorKind::Forbidden => (20403, "Forbidden"),
                    ErrorKind::TooManyRequests => (20429, "Too Many Requests"),
                    ErrorKind::Upstream => (60008, "Unable to deliver the code"),
                    ErrorKind::Unavailable => (20503, "Service unavailable"),
                    ErrorKind::Internal => (20500, "Internal server error"),
                };
                let message = report(&other).map_or_else(|| message.to_string(), |id| with_reference(message, &id));
                Self::new(status(other.kind()), code, message)
            }
        }
    }
}

/// The caller's key, authenticated like every API; a missing or wrong key is Twilio's 20003.
pub struct TwilioAuth(Caller);

impl FromRequestParts<AppState> for TwilioAuth {
    type Rejection = TwilioError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, TwilioError> {
        let caller = authenticate(&parts.headers, &meta(parts), state).await?;
        caller.map(TwilioAuth).ok_or_else(|| TwilioError::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate"))
    }
}

impl TwilioAuth {
    /// A stable account SID for the key, so responses carry Twilio's `AC…` shape.
    fn account_sid(&self) -> String {
        format!("AC{}", self.0.key_id.as_deref().unwrap_or_default().trim_start_matches("SK"))
    }
}

/// Form parameters as Twilio's SDKs send them.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(body: &[u8]) -> Result<Self, TwilioError> {
        serde_urlencoded::from_bytes(body).map(Params).map_err(|_| TwilioError::invalid("The request body must be form-encoded"))
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A send attempt, with Twilio's `VL…` attempt sid (the message's id under that prefix) and the
/// channel it went by.
fn attempt(message_id: &str, channel: Channel, at: DateTime<Utc>) -> Value {
    json!({ "attempt_sid": format!("VL{}", message_id.trim_start_matches("SM")), "channel": channels::name(channel), "time": time(at) })
}

/// The send attempts of a verification, as Twilio lists them.
async fn attempts(s: &AppState, auth: &TwilioAuth, v: &Verification) -> Result<Vec<Value>, TwilioError> {
    Ok(s.core.verifier.messages_for(&auth.0, &v.id).await?.iter().map(|m| attempt(&m.id, m.channel, m.created_at)).collect())
}

/// A verification, its `channel` the one its latest attempt went by (a second start by another
/// channel adds an attempt to the same verification, as Twilio does); an SNA one's is `sna`.
fn verification_json(v: &Verification, attempts: Vec<Value>, auth: &TwilioAuth, base: &str) -> Value {
    let latest = attempts.last().filter(|_| v.channel.carries_code()).map(|a| a["channel"].clone());
    json!({
        "sid": v.id,
        "service_sid": v.service_id,
        "account_sid": auth.account_sid(),
        "to": v.to.as_str(),
        "channel": latest.unwrap_or_else(|| channels::name(v.channel).into()),
        "status": v.status.as_str(),
        "valid": v.status == Status::Approved,
        "lookup": {},
        "amount": v.psd2.as_ref().map(|p| p.amount.clone()),
        "payee": v.psd2.as_ref().map(|p| p.payee.clone()),
        "send_code_attempts": attempts,
        "sna": null,
        "date_created": time(v.created_at),
        "date_updated": time(v.updated_at),
        "url": format!("{base}/v2/Services/{}/Verifications/{}", v.service_id, v.id),
    })
}

async fn start(
    State(s): State<AppState>,
    auth: TwilioAuth,
    headers: HeaderMap,
    uri: Uri,
    Path(sid): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), TwilioError> {
    let p = Params::parse(&body)?;
    let service = s.core.catalog.service(&auth.0, Some(&sid)).await?;
    let to = p.get("To").ok_or_else(|| TwilioError::invalid("Missing required parameter To in the post body"))?;
    let channel = p.get("Channel").ok_or_else(|| TwilioError::invalid("Missing required parameter Channel in the post body"))?;
    let channel = channels::parse(channel)?;
    if channel.carries_code() && !s.core.delivery.serves(channel) {
        return Err(channels::unserved(channel));
    }
    let (email_from, send_digits) = channels::start_options(&p, channel, &service)?;
    let options = StartOptions {
        email_from,
        send_digits,
        brand: p.get("CustomFriendlyName").map(str::to_string),
        app_hash: p.get("AppHash").map(str::to_string),
        custom_code: p.get("CustomCode").map(str::to_string),
        psd2: Psd2::from_parts(p.get("Amount"), p.get("Payee")).map_err(phonegate_core::VerifyError::from)?,
        ..Default::default()
    };
    let req = StartRequest {
        service: Some(service.id),
        to: to.into(),
        channel: Some(channel),
        locale: p.get("Locale").map(str::to_string),
        options,
    };
    // Twilio's `DeviceIp`: the end user's address, which the per-IP budgets count.
    let device_ip = p
        .get("DeviceIp")
        .map(|ip| ip.trim().parse::<std::net::IpAddr>())
        .transpose()
        .map_err(|_| TwilioError::invalid("Invalid parameter `DeviceIp`: must be an IPv4 or IPv6 address"))?;
    let started = s.core.verifier.start(&auth.0.clone().for_end_user(device_ip), req).await.map_err(|e| channels::refusal(e, channel))?;
    let base = base_url(s.webhooks.public_url.as_deref(), s.webhooks.tls, &headers, &uri);
    // A first send's only attempt is the one just queued; a resend lists them all.
    let sent = match started.resent {
        false => started.message_id.iter().map(|m| attempt(m, channel, started.queued_at)).collect(),
        true => attempts(&s, &auth, &started.verification).await?,
    };
    let mut json = verification_json(&started.verification, sent, &auth, &base);
    if let Some(path) = &started.check_url {
        // The URL the device opens over mobile data (Twilio's `sna.url`).
        json["sna"] = json!({ "url": format!("{base}{path}") });
    }
    Ok((StatusCode::CREATED, Json(json)))
}

/// The pending verification a path names, by `VE…` sid or by `To` number. Twilio forgets
/// verifications once they end, so anything not pending is not found.
async fn pending_target(s: &AppState, auth: &TwilioAuth, service_sid: &str, target: &str) -> Result<Verification, TwilioError> {
    let v = target_of(s, auth, service_sid, target).await?;
    if v.status_at(s.clock.now()) != Status::Pending {
        return Err(TwilioError::not_found());
    }
    Ok(v)
}

/// The verification a `VE…` sid or a `To` number (its pending verification) names in a service.
async fn target_of(s: &AppState, auth: &TwilioAuth, service_sid: &str, target: &str) -> Result<Verification, TwilioError> {
    let service = s.core.catalog.service(&auth.0, Some(service_sid)).await?;
    let v = if target.starts_with("VE") {
        s.core.verifier.get(&auth.0, target).await?
    } else {
        s.core.verifier.pending(&auth.0, Some(&service.id), target).await?
    };
    if v.service_id != service.id {
        return Err(TwilioError::not_found());
    }
    Ok(v)
}

async fn fetch(
    State(s): State<AppState>,
    auth: TwilioAuth,
    headers: HeaderMap,
    uri: Uri,
    Path((sid, target)): Path<(String, String)>,
) -> Result<Json<Value>, TwilioError> {
    let v = pending_target(&s, &auth, &sid, &target).await?;
    let sent = attempts(&s, &auth, &v).await?;
    Ok(Json(verification_json(&v, sent, &auth, &base_url(s.webhooks.public_url.as_deref(), s.webhooks.tls, &headers, &uri))))
}

async fn update(
    State(s): State<AppState>,
    auth: TwilioAuth,
    headers: HeaderMap,
    uri: Uri,
    Path((sid, target)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, TwilioError> {
    let p = Params::parse(&body)?;
    let v = pending_target(&s, &auth, &sid, &target).await?;
    let v = match p.get("Status") {
        Some("canceled") => s.core.verifier.cancel(&auth.0, &v.id).await?,
        Some("approved") => s.core.verifier.approve(&auth.0, &v.id).await?,
        _ => return Err(TwilioError::invalid("Invalid parameter `Status`: must be canceled or approved")),
    };
    let sent = attempts(&s, &auth, &v).await?;
    Ok(Json(verification_json(&v, sent, &auth, &base_url(s.webhooks.public_url.as_deref(), s.webhooks.tls, &headers, &uri))))
}

async fn check(State(s): State<AppState>, auth: TwilioAuth, Path(sid): Path<String>, body: Bytes) -> Result<Json<Value>, TwilioError> {
    let p = Params::parse(&body)?;
    let Some(code) = p.get("Code") else { return sna_check(&s, &auth, &sid, &p).await };
    let psd2 = Psd2::from_parts(p.get("Amount"), p.get("Payee")).map_err(phonegate_core::VerifyError::from)?;
    // The engine answers for ended verifications: locked → 60202, anything else → 20404.
    let started = std::time::Instant::now();
    let result = match (p.get("VerificationSid"), p.get("To")) {
        (Some(vsid), _) => {
            let v = target_of(&s, &auth, &sid, vsid).await?;
            s.core.verifier.check(&auth.0, &v.id, code, psd2.as_ref()).await
        }
        (None, Some(to)) => {
            let service = s.core.catalog.service(&auth.0, Some(&sid)).await?;
            s.core.verifier.check_number(&auth.0, Some(&service.id), to, code, psd2.as_ref()).await
        }
        (None, None) => {
            return Err(TwilioError::new(StatusCode::BAD_REQUEST, 60221, "Either a 'To' number or 'VerificationSid' must be specified"));
        }
    };
    s.metrics.observe_check(started.elapsed().as_secs_f64());
    let (v, outcome) = result?;
    Ok(Json(check_json(&v, v.status, outcome == CheckOutcome::Approved, &auth)))
}

/// A VerificationCheck resource.
fn check_json(v: &Verification, status: Status, valid: bool, auth: &TwilioAuth) -> Value {
    json!({
        "sid": v.id,
        "service_sid": v.service_id,
        "account_sid": auth.account_sid(),
        "to": v.to.as_str(),
        "channel": channels::name(v.channel),
        "status": status.as_str(),
        "valid": valid,
        "amount": v.psd2.as_ref().map(|p| p.amount.clone()),
        "payee": v.psd2.as_ref().map(|p| p.payee.clone()),
        "sna_attempts_error_codes": [],
        "date_created": time(v.created_at),
        "date_updated": time(v.updated_at),
    })
}

fn missing_code() -> TwilioError {
    TwilioError::invalid("Missing required parameter Code in the post body")
}

/// A VerificationCheck without `Code`: the result of an SNA verification (the device opened its
/// `sna.url`), by `VerificationSid` or by `To` (its newest SNA verification).
async fn sna_check(s: &AppState, auth: &TwilioAuth, sid: &str, p: &Params) -> Result<Json<Value>, TwilioError> {
    let v = match (p.get("VerificationSid"), p.get("To")) {
        (Some(vsid), _) => target_of(s, auth, sid, vsid).await?,
        (None, Some(to)) => {
            let service = s.core.catalog.service(&auth.0, Some(sid)).await?;
            // No SNA verification for the number: this is a code check without its code.
            // (A failure of the server itself is one, and is said as such.)
            s.core.verifier.latest_silent(&auth.0, Some(&service.id), to).await.map_err(|e| match e {
                VerifyError::NoPendingVerification | VerifyError::Phone(_) => missing_code(),
                other => other.into(),
            })?
        }
        (None, None) => return Err(missing_code()),
    };
    if v.channel != Channel::Silent {
        return Err(missing_code());
    }
    let status = v.status_at(s.clock.now());
    Ok(Json(check_json(&v, status, status == Status::Approved, auth)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonegate_core::PhoneError;

    /// Every core error has its Twilio code, including the ones hard to provoke over HTTP.
    #[test]
    fn core_errors_map_to_twilio_codes() {
        let cases = [
            (VerifyError::Phone(PhoneError::TooShort), 400, 60200),
            (VerifyError::invalid(phonegate_core::error::Field::Code, "x"), 400, 60200),
            (VerifyError::VerificationNotFound, 404, 20404),
            (VerifyError::NotPending(Status::Approved), 404, 20404),
            (VerifyError::NotPending(Status::Expired), 404, 20404),
            (VerifyError::NotPending(Status::MaxAttemptsReached), 429, 60202),
            (VerifyError::MaxSendsReached, 429, 60203),
            (VerifyError::Busy, 429, 60212),
            (VerifyError::OptedOut, 400, 21610),
            (VerifyError::Store(StoreError::Unavailable("down".into())), 503, 20503),
            (VerifyError::Store(StoreError::Other("detail".into())), 500, 20500),
        ];
        for (err, status, code) in cases {
            let e = TwilioError::from(err);
            assert_eq!((e.status.as_u16(), e.code), (status, code));
            assert!(!e.message.contains("detail"));
        }
    }
}
