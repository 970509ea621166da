//! Where the core's errors become HTTP answers: the status of each kind of error (for every API
//! and page), the log line of a failure of the server (with the request id, which the answer
//! carries), and the native API's `{"error":{"code","message"}}` body.
use super::auth;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use phonegate_core::error::ErrorKind;
use phonegate_core::{StoreError, VerifyError};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub verification_id: Option<String>,
    /// Seconds for `Retry-After` (429 and 503 answers; 1 when not given).
    pub retry_after_secs: Option<i64>,
    /// Codes left for a flow after a wrong one (`code_incorrect`).
    pub attempts_left: Option<u32>,
}

/// Error body of every failed request.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `phone_number_invalid`.
    code: String,
    /// Human-readable explanation.
    message: String,
    /// The verification concerned, where one was created despite the error (`delivery_failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    verification_id: Option<String>,
    /// Codes left after a wrong one (`code_incorrect`).
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts_left: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { status, code: code.into(), message: message.into(), verification_id: None, retry_after_secs: None, attempts_left: None }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required (Authorization: Bearer SECRET, or Basic id:secret)",
        )
    }
}

/// The HTTP status of each kind of error: the one place it is chosen, for every API and page.
pub fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Gone => StatusCode::GONE,
        ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// For a failure of the server itself (internal, or the database unreachable): logs its detail,
/// once, with the request id, and gives that id for the answer. `None` for any other error.
/// Every renderer (the APIs, the pages) calls this and nothing else logs an error's detail.
pub fn report(e: &VerifyError) -> Option<String> {
    let detail = e.detail()?;
    let request_id = auth::current_request_id();
    if e.kind() == ErrorKind::Internal {
        tracing::error!(request_id = %request_id, code = e.code(), detail = %detail, "internal error");
    } else {
        tracing::warn!(request_id = %request_id, code = e.code(), detail = %detail, "service unavailable");
    }
    Some(request_id)
}

/// A generic message with the request id an administrator finds the failure's log line by.
pub fn with_reference(message: &str, request_id: &str) -> String {
    format!("{message} (request id {request_id})")
}

/// The message a client is shown: the error's public message, with the request id for a failure
/// of the server (which `report` logs).
pub fn public_message(e: &VerifyError) -> String {
    match report(e) {
        Some(id) => with_reference(&e.message(), &id),
        None => e.message(),
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        VerifyError::Store(e).into()
    }
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        let mut api = Self::new(status(e.kind()), e.code(), public_message(&e));
        api.retry_after_secs = e.retry_after_secs();
        match e {
            VerifyError::AlreadyPending { verification_id } | VerifyError::DeliveryFailed { verification_id, .. } => {
                api.verification_id = Some(verification_id);
            }
            VerifyError::CodeIncorrect { attempts_left } => api.attempts_left = Some(attempts_left),
            _ => {}
        }
        api
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body_code = self.code.clone();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                verification_id: self.verification_id,
                attempts_left: self.attempts_left,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        match self.status {
            // The account endpoints take access tokens; a Basic challenge there would make
            // browsers pop up a password dialog.
            StatusCode::UNAUTHORIZED if code_is_account(&body_code) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"phonegate\""));
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"phonegate\", charset=\"UTF-8\""));
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                headers.insert(header::RETRY_AFTER, self.retry_after_secs.unwrap_or(1).into());
            }
            _ => {}
        }
        response
    }
}

fn code_is_account(code: &str) -> bool {
    matches!(code, "unauthenticated" | "refresh_token_invalid")
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not accept that method")
}

pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let request_id = auth::current_request_id();
    tracing::error!(request_id = %request_id, "a request handler panicked");
    let message = with_reference(phonegate_core::error::INTERNAL_MESSAGE, &request_id);
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonegate_core::error::Field;
    use phonegate_core::{PhoneError, Status};

    #[test]
    fn domain_errors_map_to_stable_codes_and_statuses() {
        let cases = [
            (VerifyError::Phone(PhoneError::TooShort), 400, "phone_number_too_short"),
            (VerifyError::invalid(Field::Code, "x"), 400, "invalid_parameter"),
            (VerifyError::VerificationNotFound, 404, "verification_not_found"),
            (VerifyError::NotPending(Status::Approved), 409, "verification_approved"),
            (VerifyError::NotPending(Status::MaxAttemptsReached), 409, "verification_max_attempts_reached"),
            (VerifyError::MaxSendsReached, 429, "max_sends_reached"),
            (VerifyError::Busy, 503, "busy"),
            (VerifyError::Store(StoreError::Unavailable("down".into())), 503, "database_unavailable"),
            (VerifyError::Store(StoreError::Other("secret detail".into())), 500, "internal_error"),
            (VerifyError::Crypto("secret detail".into()), 500, "internal_error"),
        ];
        for (err, status, code) in cases {
            let internal = err.detail().is_some();
            let api = ApiError::from(err);
            assert_eq!((api.status.as_u16(), api.code.as_str()), (status, code));
            assert!(!api.message.contains("secret detail") && !api.message.contains("down"));
            assert_eq!(api.message.contains("(request id RQ"), internal, "{}", api.message);
        }
    }
}
