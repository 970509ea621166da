//! The one place where errors become HTTP responses: `{"error":{"code","message"}}` with a stable
//! code and the right status. Internal details are logged, never sent.
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use phonegate_core::budget::Budget;
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

    fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "the server could not complete the request")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", "the database is unavailable; retry shortly")
            }
            other => {
                tracing::error!(error = %other, "store error");
                Self::internal()
            }
        }
    }
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        use StatusCode as S;
        let message = e.to_string();
        match e {
            VerifyError::Phone(p) => Self::new(S::BAD_REQUEST, p.code(), message),
            VerifyError::InvalidParameter { .. } => Self::new(S::BAD_REQUEST, "invalid_parameter", message),
            VerifyError::Forbidden => Self::new(S::FORBIDDEN, "forbidden", message),
            VerifyError::ServiceNotFound => Self::new(S::NOT_FOUND, "service_not_found", message),
            VerifyError::ServiceNameTaken => Self::new(S::CONFLICT, "service_name_taken", message),
            VerifyError::CustomCodeNotEnabled => Self::new(S::FORBIDDEN, "custom_code_not_enabled", message),
            VerifyError::Psd2NotEnabled => Self::new(S::FORBIDDEN, "psd2_not_enabled", message),
            VerifyError::VerificationNotFound => Self::new(S::NOT_FOUND, "verification_not_found", message),
            VerifyError::NoPendingVerification => Self::new(S::NOT_FOUND, "no_pending_verification", message),
            VerifyError::NotPending(status) => Self::new(S::CONFLICT, format!("verification_{}", status.as_str()), message),
            VerifyError::OptedOut => Self::new(S::FORBIDDEN, "recipient_opted_out", message),
            VerifyError::AlreadyPending { verification_id } => {
                Self { verification_id: Some(verification_id), ..Self::new(S::CONFLICT, "verification_pending", message) }
            }
            VerifyError::TooEarlyToCancel { .. } => Self::new(S::CONFLICT, "cancel_too_early", message),
            VerifyError::MaxSendsReached => Self::new(S::TOO_MANY_REQUESTS, "max_sends_reached", message),
            VerifyError::OverBudget { budget, retry_after_secs } => {
                let code = match budget {
                    Budget::FailedChecksPerNumber => "checks_locked",
                    Budget::StartsPerIp | Budget::ChecksPerIp => "rate_limited",
                    Budget::LoginsPerIp | Budget::FailedLoginsPerAccount => "login_throttled",
                    _ => "send_budget_exceeded",
                };
                Self { retry_after_secs: Some(retry_after_secs), ..Self::new(S::TOO_MANY_REQUESTS, code, message) }
            }
            VerifyError::DeliveryFailed { verification_id, .. } => {
                Self { verification_id: Some(verification_id), ..Self::new(S::BAD_GATEWAY, "delivery_failed", message) }
            }
            VerifyError::Busy => Self::new(S::SERVICE_UNAVAILABLE, "busy", message),
            // Never leaves the core (only decoys rehearse); if it did, it would be a fault.
            VerifyError::Rehearsed => {
                tracing::error!("a rehearsal's answer reached an adapter");
                Self::internal()
            }
            VerifyError::UsernameTaken => Self::new(S::CONFLICT, "username_taken", message),
            VerifyError::EmailTaken => Self::new(S::CONFLICT, "email_taken", message),
            VerifyError::PhoneTaken => Self::new(S::CONFLICT, "phone_number_taken", message),
            VerifyError::FlowNotFound => Self::new(S::NOT_FOUND, "flow_not_found", message),
            VerifyError::CodeIncorrect { attempts_left } => {
                Self { attempts_left: Some(attempts_left), ..Self::new(S::BAD_REQUEST, "code_incorrect", message) }
            }
            VerifyError::CodeExpired => Self::new(S::GONE, "code_expired", message),
            VerifyError::CodeLocked => Self::new(S::TOO_MANY_REQUESTS, "code_locked", message),
            VerifyError::ResendTooSoon { retry_after_secs } => {
                Self { retry_after_secs: Some(retry_after_secs), ..Self::new(S::TOO_MANY_REQUESTS, "resend_too_soon", message) }
            }
            VerifyError::Unauthenticated => Self::new(S::UNAUTHORIZED, "unauthenticated", message),
            VerifyError::RefreshTokenInvalid => Self::new(S::UNAUTHORIZED, "refresh_token_invalid", message),
            VerifyError::SessionNotFound => Self::new(S::NOT_FOUND, "session_not_found", message),
            VerifyError::ReauthenticationRequired => Self::new(S::FORBIDDEN, "reauthentication_required", message),
            VerifyError::AdminRequired => Self::new(S::FORBIDDEN, "forbidden", message),
            VerifyError::MemberNotFound => Self::new(S::NOT_FOUND, "member_not_found", message),
            VerifyError::LastAdmin => Self::new(S::CONFLICT, "last_admin", message),
            VerifyError::InviteNotFound => Self::new(S::NOT_FOUND, "invite_not_found", message),
            VerifyError::InviteNotPending => Self::new(S::CONFLICT, "invite_not_pending", message),
            VerifyError::SilentUnavailable => Self::new(S::BAD_REQUEST, "silent_unavailable", message),
            VerifyError::CheckLinkNotFound => Self::new(S::NOT_FOUND, "check_url_not_found", message),
            VerifyError::CheckLinkUsed => Self::new(S::GONE, "check_url_used", message),
            VerifyError::CheckLinkExpired => Self::new(S::GONE, "check_url_expired", message),
            VerifyError::SilentCallbackInvalid => Self::new(S::BAD_REQUEST, "silent_callback_invalid", message),
            VerifyError::NoSilentCheck => Self::new(S::CONFLICT, "no_silent_check", message),
            VerifyError::RedirectClientNotFound => Self::new(S::NOT_FOUND, "integration_not_found", message),
            VerifyError::RedirectTokenInvalid(_) => Self::new(S::BAD_REQUEST, "session_token_invalid", message),
            VerifyError::RedirectTokenUsed => Self::new(S::GONE, "session_token_used", message),
            VerifyError::ReturnUrlNotAllowed => Self::new(S::BAD_REQUEST, "return_url_not_allowed", message),
            VerifyError::StepInvalid => Self::new(S::BAD_REQUEST, "step_invalid", message),
            VerifyError::Store(s) => s.into(),
        }
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
    tracing::error!("a request handler panicked");
    ApiError::internal().into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonegate_core::{PhoneError, Status};

    #[test]
    fn domain_errors_map_to_stable_codes_and_statuses() {
        let cases = [
            (VerifyError::Phone(PhoneError::TooShort), 400, "phone_number_too_short"),
            (VerifyError::invalid("code", "x"), 400, "invalid_parameter"),
            (VerifyError::VerificationNotFound, 404, "verification_not_found"),
            (VerifyError::NotPending(Status::Approved), 409, "verification_approved"),
            (VerifyError::NotPending(Status::MaxAttemptsReached), 409, "verification_max_attempts_reached"),
            (VerifyError::MaxSendsReached, 429, "max_sends_reached"),
            (VerifyError::Busy, 503, "busy"),
            (VerifyError::Store(StoreError::Unavailable("down".into())), 503, "database_unavailable"),
            (VerifyError::Store(StoreError::Other("secret detail".into())), 500, "internal_error"),
        ];
        for (err, status, code) in cases {
            let api = ApiError::from(err);
            assert_eq!((api.status.as_u16(), api.code.as_str()), (status, code));
            assert!(!api.message.contains("secret detail"));
        }
    }
}
