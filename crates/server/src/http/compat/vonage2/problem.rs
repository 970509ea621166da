//! Vonage's error bodies: `{type, title, detail, instance}` (RFC 7807 as Vonage writes it), with
//! `invalid_parameters` or `request_id` where Vonage adds them, so the SDKs raise their typed
//! errors. Every core error is rendered here.
use crate::http::error::{report, with_reference};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use phonegate_core::VerifyError;
use phonegate_core::error::ErrorKind;
use phonegate_core::ids::new_uuid;
use serde_json::{Value, json};

/// Where Vonage documents its errors; each `type` is a page and anchor there.
const DOCS: &str = "https://developer.vonage.com/en/api-errors";

pub struct Problem {
    status: StatusCode,
    body: Value,
}

impl Problem {
    pub fn new(status: StatusCode, anchor: &str, title: &str, detail: impl Into<String>) -> Self {
        let kind = match anchor.strip_prefix("verify#") {
            Some(a) => format!("{DOCS}/verify-v2#{a}"),
            None => format!("{DOCS}#{anchor}"),
        };
        Self { status, body: json!({ "type": kind, "title": title, "detail": detail.into(), "instance": new_uuid() }) }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.body[key] = value;
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", "You did not provide correct credentials.")
    }

    /// One or more parameters are invalid: 422 with each one named.
    pub fn invalid(name: &str, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-params", "Invalid params", "The value of one or more parameters is invalid.")
            .with("invalid_parameters", json!([{ "name": name, "reason": reason.into() }]))
    }

    pub fn not_found(request_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "verify#request-not-found",
            "Not Found",
            format!("Request '{request_id}' was not found or it has been verified already."),
        )
    }

    pub fn throttled() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "throttled", "Rate Limit Hit", "Please wait, then retry your request")
    }

    /// A core error, as Vonage would say it for `request_id` (when the request names one).
    pub fn from_error(e: VerifyError, request_id: Option<&str>) -> Self {
        match e {
            VerifyError::AlreadyPending { verification_id } => Self::new(
                StatusCode::CONFLICT,
                "verify#concurrent",
                "Conflict",
                "Concurrent verifications to the same number are not allowed.",
            )
            .with("request_id", phonegate_core::vonage_model::request_id(&verification_id).into()),
            VerifyError::InvalidParameter { field, message } => Self::invalid(field.as_str(), message),
            VerifyError::Phone(p) => Self::invalid("to", p.to_string()),
            VerifyError::CustomCodeNotEnabled => Self::invalid("code", "this service does not take custom codes (custom_codes)"),
            VerifyError::NoNextStep => {
                Self::new(StatusCode::CONFLICT, "verify#no-events", "Conflict", "There are no more events left to process.")
            }
            VerifyError::NoSilentCheck => {
                Self::new(StatusCode::CONFLICT, "verify#no-code", "Conflict", "The current Verify workflow step does not support a code.")
            }
            VerifyError::OptedOut => Self::invalid("to", "this number has opted out of verification messages"),
            other => match other.kind() {
                ErrorKind::BadRequest => Self::invalid("body", other.message()),
                ErrorKind::NotFound => Self::not_found(request_id.unwrap_or_default()),
                ErrorKind::Gone => Self::not_found(request_id.unwrap_or_default()),
                ErrorKind::Unauthenticated => Self::unauthorized(),
                ErrorKind::Forbidden => {
                    Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", "Your account does not have permission.")
                }
                ErrorKind::TooManyRequests => Self::throttled(),
                ErrorKind::Conflict => Self::new(StatusCode::CONFLICT, "verify#conflict", "Conflict", other.message()),
                ErrorKind::Upstream | ErrorKind::Unavailable | ErrorKind::Internal => {
                    let detail = report(&other).map_or_else(|| "Internal Error".to_string(), |id| with_reference("Internal Error", &id));
                    Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal-error", "Internal error", detail)
                }
            },
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body)).into_response();
        r.headers_mut().insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/problem+json"));
        r
    }
}
