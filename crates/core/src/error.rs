//! What can go wrong in the core, in terms a client can act on.
use crate::model::phone::PhoneError;
use crate::model::verification::Status;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Phone(#[from] PhoneError),
    #[error("{field}: {message}")]
    InvalidParameter { field: &'static str, message: String },
    #[error("this API key may not do that (an admin key may)")]
    Forbidden,
    #[error("no such service")]
    ServiceNotFound,
    #[error("a service with this name already exists")]
    ServiceNameTaken,
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
}

fn over_budget_message(budget: crate::model::budget::Budget, retry_after_secs: i64) -> String {
    use crate::model::budget::Budget as B;
    let what = match budget {
        B::FailedChecksPerNumber => "too many wrong codes for this phone number: checks are locked",
        B::SendsPerNumber => "too many codes sent to this phone number",
        B::SendsPerKey => "too many codes sent with this API key",
        B::SendsPerService => "too many codes sent for this service",
        B::SendsPerCountry => "too many codes sent to this country",
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

impl VerifyError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidParameter { field, message: message.into() }
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
