//! A silent check: the silent part of a `silent` or `auto` verification, where it is, and why
//! one failed.
use serde::Serialize;

/// Why silent verification is not possible for a device, or why a silent check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The device is not on mobile data (its IP is not an operator's mobile address).
    Wifi,
    /// The device's operator (or the number's) is not covered by any configured provider.
    OperatorNotCovered,
    /// Coverage could not be determined (the provider did not answer).
    Unknown,
    /// The operator says the device does not hold the number's SIM.
    Mismatch,
    /// The device step did not end in time.
    Timeout,
    /// The provider refused or failed (credentials, quota, a callback it would not confirm).
    ProviderError,
}

impl Reason {
    pub const ALL: [Reason; 6] =
        [Reason::Wifi, Reason::OperatorNotCovered, Reason::Unknown, Reason::Mismatch, Reason::Timeout, Reason::ProviderError];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Wifi => "wifi",
            Self::OperatorNotCovered => "operator_not_covered",
            Self::Unknown => "unknown",
            Self::Mismatch => "mismatch",
            Self::Timeout => "timeout",
            Self::ProviderError => "provider_error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The result of a silent check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SilentResult {
    /// The operator confirmed the device holds the number's SIM.
    Match,
    Failed(Reason),
}

/// Where a silent check is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    /// Created; the device has not opened its `check_url` yet.
    Created,
    /// The device opened the `check_url` (it is spent) and went on to the provider.
    Opened,
    /// The operator confirmed the number.
    Matched,
    /// It ended without a match (`reason` says why).
    Failed,
}

impl CheckState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Opened => "opened",
            Self::Matched => "matched",
            Self::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Created, Self::Opened, Self::Matched, Self::Failed].into_iter().find(|c| c.as_str() == s)
    }
    pub fn is_live(&self) -> bool {
        matches!(self, Self::Created | Self::Opened)
    }
}

/// The silent part of a `silent` or `auto` verification. Its `check_url` token is kept only as a
/// SHA-256 digest; the provider's device URL is sealed with the server secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SilentCheck {
    pub id: String,
    pub verification_id: String,
    pub provider: String,
    pub provider_ref: Option<String>,
    pub device_url_sealed: Option<Vec<u8>>,
    pub token_digest: Vec<u8>,
    pub state: CheckState,
    pub reason: Option<Reason>,
    /// `auto`: on failure the verification continues by SMS; `silent`: it fails.
    pub fallback: bool,
    /// phonegate's own page the device returns to after the operator's step (a login flow's
    /// page); built by phonegate, never taken from a request.
    pub return_path: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The device step must end by then.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub opened_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl SilentCheck {
    /// Ends the check; false when it had ended already.
    pub fn finish(&mut self, result: SilentResult, now: chrono::DateTime<chrono::Utc>) -> bool {
        if !self.state.is_live() {
            return false;
        }
        match result {
            SilentResult::Match => self.state = CheckState::Matched,
            SilentResult::Failed(reason) => {
                self.state = CheckState::Failed;
                self.reason = Some(reason);
            }
        }
        self.finished_at = Some(now);
        true
    }
}

/// The SHA-256 of a `check_url` token, by which its check is found.
pub fn token_digest(token: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}
