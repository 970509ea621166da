//! What can go wrong in the core, in terms a client can act on.
use crate::phone::PhoneError;
use crate::ports::StoreError;
use crate::verification::Status;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Phone(#[from] PhoneError),
    #[error("{field}: {message}")]
    InvalidParameter { field: &'static str, message: String },
    #[error("no such service")]
    ServiceNotFound,
    #[error("a service with this name already exists")]
    ServiceNameTaken,
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
    #[error("too many concurrent requests for this verification; retry")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VerifyError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidParameter { field, message: message.into() }
    }
}
