//! What can go wrong in the core, and the one classification every adapter answers from: a
//! kind (which each adapter turns into its status), a stable machine code, a public message, and
//! for failures of the server itself a detail that is logged and never shown.
use crate::model::budget::Budget;
pub use crate::model::invalid::{Field, Invalid};
use crate::model::phone::PhoneError;
use crate::model::verification::Status;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Phone(#[from] PhoneError),
    #[error("{field}: {message}")]
    InvalidParameter { field: Field, message: String },
    #[error("this API key may not do that (an admin key may)")]
    Forbidden,
    #[error("no such service")]
    ServiceNotFound,
    #[error("a service with this name already exists")]
    ServiceNameTaken,
    #[error("this is one of the server's own services (phonegate, accounts, integrations): it can be changed but not renamed or deleted")]
    ServiceReserved,
    #[error("this service does not allow custom codes")]
    CustomCodeNotEnabled,
    #[error("this service does not send PSD2 payment codes")]
    Psd2NotEnabled,
    #[error("no such verification")]
    VerificationNotFound,
    #[error("no pending verification for this number")]
    NoPendingVerification,
    #[error("the verification is {}", .0.as_str())]
    NotPending(Status),
    #[error("a verification for this number is already pending")]
    AlreadyPending { verification_id: String },
    #[error("too many codes sent for this verification; wait before asking again")]
    MaxSendsReached,
    #[error("the verification is on the last step of its workflow")]
    NoNextStep,
    #[error("no provider serves the {0} channel")]
    ChannelUnavailable(crate::model::workflow::Channel),
    #[error("the recipient has opted out of messages (replied STOP); they can reply START to opt in again")]
    OptedOut,
    #[error("the message could not be delivered: {reason}")]
    DeliveryFailed { verification_id: String, reason: String },
    #[error("the verification cannot be canceled before it is {min_age_secs} seconds old")]
    TooEarlyToCancel { min_age_secs: i64 },
    #[error("{}", over_budget_message(*.budget, *.retry_after_secs))]
    OverBudget { budget: crate::model::budget::Budget, retry_after_secs: i64 },
    #[error("too many concurrent requests for this verification; retry")]
    Busy,
    #[error("this username is taken")]
    UsernameTaken,
    #[error("this e-mail address belongs to another account")]
    EmailTaken,
    #[error("this phone number belongs to another account")]
    PhoneTaken,
    #[error("no such login flow (or it was used already): start again")]
    FlowNotFound,
    #[error("the code is incorrect; {attempts_left} attempts left")]
    CodeIncorrect { attempts_left: u32 },
    #[error("the code has expired: start again to get a new one")]
    CodeExpired,
    #[error("too many wrong codes: start again later to get a new one")]
    CodeLocked,
    #[error("a code was sent moments ago; wait {retry_after_secs} seconds before asking again")]
    ResendTooSoon { retry_after_secs: i64 },
    #[error("sign in first: a valid session cookie or access token is required")]
    Unauthenticated,
    #[error("the refresh token is invalid, expired or already used: sign in again")]
    RefreshTokenInvalid,
    #[error("no such session")]
    SessionNotFound,
    /// A rehearsed start (`StartOptions::rehearse`) ran and was rolled back: only decoys see it.
    #[error("a rehearsal: nothing was stored")]
    Rehearsed,
    #[error("log in again first: this needs a login from the last few minutes")]
    ReauthenticationRequired,
    #[error("the current password is not right")]
    PasswordIncorrect,
    #[error("only an admin may do that")]
    AdminRequired,
    #[error("no such member")]
    MemberNotFound,
    #[error("the last admin can be neither removed nor demoted: make another member admin first")]
    LastAdmin,
    #[error("no such invite")]
    InviteNotFound,
    #[error("the invite was used, revoked or has expired")]
    InviteNotPending,
    #[error("silent verification is not available: no silent provider is configured")]
    SilentUnavailable,
    #[error("this check link is not valid")]
    CheckLinkNotFound,
    #[error("this check link was used already or its verification has ended")]
    CheckLinkUsed,
    #[error("this check link has expired")]
    CheckLinkExpired,
    #[error("this callback does not belong to an open silent check")]
    SilentCallbackInvalid,
    #[error("this verification has no silent check waiting for the device")]
    NoSilentCheck,
    #[error("no such integration")]
    RedirectClientNotFound,
    #[error("no such OpenID client, or no access of it to take back")]
    OidcClientNotFound,
    #[error("no such active API key")]
    ApiKeyNotFound,
    #[error("no such template or template fragment")]
    TemplateNotFound,
    #[error("a template of that name, or a fragment for that channel and locale, exists already")]
    TemplateConflict,
    #[error("{0}")]
    RedirectTokenInvalid(&'static str),
    #[error("the session token was used already: start the login again")]
    RedirectTokenUsed,
    #[error("the return URL is not one this integration allows")]
    ReturnUrlNotAllowed,
    #[error("this verification step is not valid any more: start the login again")]
    StepInvalid,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key, a seal or a signature failed on this server's side (a sealed value that does not
    /// open, a token that cannot be signed). The text is for logs only.
    #[error("crypto failure: {0}")]
    Crypto(String),
}

fn over_budget_message(budget: Budget, retry_after_secs: i64) -> String {
    use Budget as B;
    let what = match budget {
        B::FailedChecksPerNumber => "too many wrong codes for this phone number: checks are locked",
        B::SendsPerNumber => "too many codes sent to this phone number or address",
        B::SendsPerKey => "too many codes sent with this API key",
        B::SendsPerService => "too many codes sent for this service",
        B::SendsPerCountry => "too many codes sent to this country or e-mail domain",
        B::SendsPerPrefix => "too many codes sent to numbers starting like this one",
        B::StartsPerIp => "too many verifications started from this IP address",
        B::ChecksPerIp => "too many codes checked from this IP address",
        B::LoginsPerIp => "too many logins from this IP address",
        B::FailedLoginsPerAccount => "too many failed logins for this account",
        B::PrefixThrottled | B::PrefixNewNumbers | B::PrefixApprovals => {
            "codes to numbers starting like this one are paused: many were sent and few were used"
        }
    };
    format!("{what}; retry in {retry_after_secs} seconds")
}

/// How an error is answered, whatever the protocol: each adapter turns the kind into its own
/// status (the server has one function for HTTP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong: a parameter, a number, a code.
    BadRequest,
    /// Credentials are missing or not valid.
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    NotFound,
    /// The state does not allow it (taken, already pending, not pending any more…).
    Conflict,
    /// It existed and has ended (an expired code, a used link).
    Gone,
    /// A budget or a pace refused it; retry later.
    TooManyRequests,
    /// The SMS provider failed.
    Upstream,
    /// Busy or down for now; retry shortly.
    Unavailable,
    /// A failure of the server itself: logged with its detail, shown as a generic message.
    Internal,
}

/// What a person or client is told of a failure of the server itself (with the request id).
pub const INTERNAL_MESSAGE: &str = "the server could not complete the request";
/// What they are told when the database is unreachable for now.
pub const UNAVAILABLE_MESSAGE: &str = "the service is unavailable for a moment; retry shortly";

impl From<Invalid> for VerifyError {
    fn from(i: Invalid) -> Self {
        Self::InvalidParameter { field: i.field, message: i.message }
    }
}

impl VerifyError {
    pub fn invalid(field: Field, message: impl Into<String>) -> Self {
        Self::InvalidParameter { field, message: message.into() }
    }

    /// How this error is answered.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            Self::Phone(_)
            | Self::InvalidParameter { .. }
            | Self::CodeIncorrect { .. }
            | Self::PasswordIncorrect
            | Self::SilentUnavailable
            | Self::SilentCallbackInvalid
            | Self::RedirectTokenInvalid(_)
            | Self::ReturnUrlNotAllowed
            | Self::StepInvalid => K::BadRequest,
            Self::Unauthenticated | Self::RefreshTokenInvalid => K::Unauthenticated,
            Self::Forbidden
            | Self::AdminRequired
            | Self::CustomCodeNotEnabled
            | Self::Psd2NotEnabled
            | Self::OptedOut
            | Self::ReauthenticationRequired => K::Forbidden,
            Self::ServiceNotFound
            | Self::VerificationNotFound
            | Self::NoPendingVerification
            | Self::FlowNotFound
            | Self::SessionNotFound
            | Self::MemberNotFound
            | Self::InviteNotFound
            | Self::CheckLinkNotFound
            | Self::RedirectClientNotFound
            | Self::OidcClientNotFound
            | Self::ApiKeyNotFound
            | Self::TemplateNotFound => K::NotFound,
            Self::ServiceNameTaken
            | Self::ServiceReserved
            | Self::NotPending(_)
            | Self::AlreadyPending { .. }
            | Self::TooEarlyToCancel { .. }
            | Self::UsernameTaken
            | Self::EmailTaken
            | Self::PhoneTaken
            | Self::LastAdmin
            | Self::InviteNotPending
            | Self::NoNextStep
            | Self::NoSilentCheck
            | Self::TemplateConflict => K::Conflict,
            Self::CodeExpired | Self::CheckLinkUsed | Self::CheckLinkExpired | Self::RedirectTokenUsed => K::Gone,
            Self::MaxSendsReached | Self::OverBudget { .. } | Self::CodeLocked | Self::ResendTooSoon { .. } => K::TooManyRequests,
            Self::DeliveryFailed { .. } => K::Upstream,
            Self::ChannelUnavailable(_) => K::BadRequest,
            Self::Busy | Self::Store(StoreError::Unavailable(_)) => K::Unavailable,
            // A rehearsal never leaves the core (only decoys rehearse): if it did, it is a fault.
            Self::Rehearsed | Self::Store(_) | Self::Crypto(_) => K::Internal,
        }
    }

    /// The stable machine code clients read (the native API's `error.code`; the pages translate
    /// by it). Public: never change one.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Phone(p) => p.code(),
            Self::InvalidParameter { .. } => "invalid_parameter",
            Self::Forbidden | Self::AdminRequired => "forbidden",
            Self::ServiceNotFound => "service_not_found",
            Self::ServiceNameTaken => "service_name_taken",
            Self::ServiceReserved => "service_reserved",
            Self::CustomCodeNotEnabled => "custom_code_not_enabled",
            Self::Psd2NotEnabled => "psd2_not_enabled",
            Self::VerificationNotFound => "verification_not_found",
            Self::NoPendingVerification => "no_pending_verification",
            Self::NotPending(status) => match status {
                Status::Pending => "verification_pending",
                Status::Approved => "verification_approved",
                Status::Canceled => "verification_canceled",
                Status::Expired => "verification_expired",
                Status::MaxAttemptsReached => "verification_max_attempts_reached",
                Status::Failed => "verification_failed",
            },
            Self::AlreadyPending { .. } => "verification_pending",
            Self::MaxSendsReached => "max_sends_reached",
            Self::NoNextStep => "no_next_step",
            Self::ChannelUnavailable(_) => "channel_unavailable",
            Self::OptedOut => "recipient_opted_out",
            Self::DeliveryFailed { .. } => "delivery_failed",
            Self::TooEarlyToCancel { .. } => "cancel_too_early",
            Self::OverBudget { budget, .. } => match budget {
                Budget::FailedChecksPerNumber => "checks_locked",
                Budget::StartsPerIp | Budget::ChecksPerIp => "rate_limited",
                Budget::LoginsPerIp | Budget::FailedLoginsPerAccount => "login_throttled",
                _ => "send_budget_exceeded",
            },
            Self::Busy => "busy",
            Self::UsernameTaken => "username_taken",
            Self::EmailTaken => "email_taken",
            Self::PhoneTaken => "phone_number_taken",
            Self::FlowNotFound => "flow_not_found",
            Self::CodeIncorrect { .. } => "code_incorrect",
            Self::CodeExpired => "code_expired",
            Self::CodeLocked => "code_locked",
            Self::ResendTooSoon { .. } => "resend_too_soon",
            Self::Unauthenticated => "unauthenticated",
            Self::RefreshTokenInvalid => "refresh_token_invalid",
            Self::SessionNotFound => "session_not_found",
            Self::ReauthenticationRequired => "reauthentication_required",
            Self::PasswordIncorrect => "password_incorrect",
            Self::MemberNotFound => "member_not_found",
            Self::LastAdmin => "last_admin",
            Self::InviteNotFound => "invite_not_found",
            Self::InviteNotPending => "invite_not_pending",
            Self::SilentUnavailable => "silent_unavailable",
            Self::CheckLinkNotFound => "check_url_not_found",
            Self::CheckLinkUsed => "check_url_used",
            Self::CheckLinkExpired => "check_url_expired",
            Self::SilentCallbackInvalid => "silent_callback_invalid",
            Self::NoSilentCheck => "no_silent_check",
            Self::RedirectClientNotFound => "integration_not_found",
            Self::OidcClientNotFound => "oidc_client_not_found",
            Self::ApiKeyNotFound => "api_key_not_found",
            Self::TemplateNotFound => "template_not_found",
            Self::TemplateConflict => "template_conflict",
            Self::RedirectTokenInvalid(_) => "session_token_invalid",
            Self::RedirectTokenUsed => "session_token_used",
            Self::ReturnUrlNotAllowed => "return_url_not_allowed",
            Self::StepInvalid => "step_invalid",
            Self::Store(StoreError::Unavailable(_)) => "database_unavailable",
            Self::Rehearsed | Self::Store(_) | Self::Crypto(_) => "internal_error",
        }
    }

    /// The message safe to show anyone: what went wrong in the client's terms, or for a failure
    /// of the server a generic sentence (adapters add the request id).
    pub fn message(&self) -> String {
        match self {
            Self::Store(StoreError::Unavailable(_)) => UNAVAILABLE_MESSAGE.into(),
            e if e.kind() == ErrorKind::Internal => INTERNAL_MESSAGE.into(),
            e => e.to_string(),
        }
    }

    /// For a failure of the server itself (internal, or the database unreachable): the text to
    /// log with the request id. Never shown.
    pub fn detail(&self) -> Option<String> {
        match self {
            Self::Store(StoreError::Unavailable(_)) => Some(self.to_string()),
            e if e.kind() == ErrorKind::Internal => Some(e.to_string()),
            _ => None,
        }
    }

    /// Seconds after which a retry may succeed, when the error knows.
    pub fn retry_after_secs(&self) -> Option<i64> {
        match self {
            Self::OverBudget { retry_after_secs, .. } | Self::ResendTooSoon { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

/// What a store (a port, `ports::Store`) can fail with. Defined here, beside the core's own
/// errors, so that the model, the ports and the use cases all stand on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (duplicate name, a second pending verification…).
    #[error("conflicting record")]
    Conflict,
    /// The database could not be reached or timed out; the operation may be retried.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The unit of work returned an error, so its writes were rolled back. `ports::write` turns
    /// this back into the unit's own error; it never reaches a client.
    #[error("unit of work aborted")]
    Aborted,
    /// Anything else; the text is for logs only, never for clients.
    #[error("database error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_failures_show_only_a_generic_message_and_log_their_detail() {
        for e in [
            VerifyError::Store(StoreError::Other("no such table: users".into())),
            VerifyError::Crypto("sealed code does not open".into()),
            VerifyError::Rehearsed,
        ] {
            assert_eq!((e.kind(), e.code(), e.message().as_str()), (ErrorKind::Internal, "internal_error", INTERNAL_MESSAGE));
            assert!(e.detail().is_some());
        }
        let down = VerifyError::Store(StoreError::Unavailable("connection refused".into()));
        assert_eq!((down.kind(), down.code()), (ErrorKind::Unavailable, "database_unavailable"));
        assert!(!down.message().contains("connection") && down.detail().unwrap().contains("connection refused"));
        assert_eq!(VerifyError::CodeExpired.detail(), None);
    }

    #[test]
    fn fields_are_named_as_clients_send_them() {
        assert_eq!(serde_json::to_string(&Field::CodeTtlSecs).unwrap(), "\"code_ttl_secs\"");
        assert_eq!(VerifyError::invalid(Field::AppHash, "x").to_string(), "app_hash: x");
    }
}
