//! Silent (SIM-based) verification: the operator confirms that the device which opens a URL over
//! mobile data holds the SIM of the number. The words the core uses for it, and the port every
//! silent provider (the simulator, CAMARA Number Verification, Vonage `silent_auth`, tru.ID
//! PhoneCheck) implements.
//!
//! The device step always runs through phonegate: the verification's `check_url` is phonegate's
//! own single-use link (`/silent/{token}`), which sends the device on to the provider's device URL;
//! the provider sends the device back to `/silent/callback/{provider}` with the query the
//! provider defines, and the provider turns that query into a result.
use crate::model::phone::PhoneNumber;
pub use crate::model::silent::{CheckState, Reason, SilentCheck, SilentResult, token_digest};
use async_trait::async_trait;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Whether a device at some IP can be verified silently, and by which operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// The provider can check this device; `operator` names its network when known
    /// (`"EE"`, or an MCC-MNC like `"23430"`).
    Available { operator: Option<String> },
    /// It cannot (`Wifi`, `OperatorNotCovered` or `Unknown`).
    Unavailable(Reason),
}

/// The simulator's outcomes, chosen on its device page or with `sim=` on a `check_url` or on
/// `GET /api/coverage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SimOutcome {
    Match,
    Mismatch,
    Wifi,
    NoCoverage,
    Timeout,
}

impl SimOutcome {
    pub const ALL: [SimOutcome; 5] = [Self::Match, Self::Mismatch, Self::Wifi, Self::NoCoverage, Self::Timeout];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Match => "match",
            Self::Mismatch => "mismatch",
            Self::Wifi => "wifi",
            Self::NoCoverage => "no_coverage",
            Self::Timeout => "timeout",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// What a device in this situation gets from a check.
    pub fn result(&self) -> SilentResult {
        match self {
            Self::Match => SilentResult::Match,
            Self::Mismatch => SilentResult::Failed(Reason::Mismatch),
            Self::Wifi => SilentResult::Failed(Reason::Wifi),
            Self::NoCoverage => SilentResult::Failed(Reason::OperatorNotCovered),
            Self::Timeout => SilentResult::Failed(Reason::Timeout),
        }
    }

    /// What the coverage lookup answers for a device in this situation.
    pub fn coverage(&self) -> Coverage {
        match self {
            Self::Wifi => Coverage::Unavailable(Reason::Wifi),
            Self::NoCoverage => Coverage::Unavailable(Reason::OperatorNotCovered),
            _ => Coverage::Available { operator: Some("Simulated operator".into()) },
        }
    }
}

/// What a provider needs to create a check.
#[derive(Clone, Debug)]
pub struct SilentStart {
    /// phonegate's id of the silent check (`SC…`).
    pub check_id: String,
    pub to: PhoneNumber,
    /// Where the provider must send the device back: `{public_url}/silent/callback/{provider}`.
    pub callback_url: String,
    /// The name shown to the user where the provider shows one (Vonage's `brand`).
    pub brand: String,
}

/// A check the provider created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SilentSession {
    /// The URL the device must open over mobile data (the provider's `check_url`, or the
    /// operator's authorization URL).
    pub device_url: String,
    /// The provider's reference for the check, found again in the callback's query
    /// (tru.ID's `check_id`, Vonage's `request_id`, the OAuth `state` of CAMARA).
    pub provider_ref: String,
}

/// A provider's failure, in words that never contain a credential, a token or a code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SilentError {
    /// The provider refused the check for this number (not covered, not a mobile number).
    #[error("{0}")]
    NotCovered(String),
    /// Credentials, quota, network or an answer we cannot read.
    #[error("{0}")]
    Unavailable(String),
}

/// The callback's query, as the device brought it back.
pub type CallbackQuery = BTreeMap<String, String>;

/// One silent-verification provider. Implementations hold their credentials and HTTP client;
/// every method is safe to call concurrently.
#[async_trait]
pub trait SilentProvider: Send + Sync {
    /// The configured name (`[silent_providers.NAME]`), also the callback path's last segment.
    fn name(&self) -> &str;

    /// Whether a device at `ip` (and, when known, the number `to`) can be checked.
    /// A provider without a coverage lookup answers `Available { operator: None }`.
    async fn coverage(&self, ip: IpAddr, to: Option<&PhoneNumber>) -> Coverage;

    /// Creates a check for `start.to`.
    async fn create(&self, start: &SilentStart) -> Result<SilentSession, SilentError>;

    /// The provider reference a callback names (the `provider_ref` of `create`), so the check
    /// can be found; `None` when the query names none.
    fn callback_ref(&self, query: &CallbackQuery) -> Option<String>;

    /// Decides a check from its callback: exchanges the code, asks the operator, reads the match.
    /// Called once per check, after phonegate has found it open and unfinished.
    async fn result(&self, session: &SilentSession, to: &PhoneNumber, query: &CallbackQuery) -> Result<SilentResult, SilentError>;
}

/// The silent providers and which to use for a number (`[silent_routing]`): per E.164 prefix an
/// ordered list, the longest prefix winning; each is asked for coverage in turn, so the first
/// that covers the device's operator checks it.
#[derive(Clone, Debug, Default, serde::Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SilentRouting {
    /// Providers to try, in order (default: every configured one, by name).
    pub providers: Vec<String>,
    /// Prefix routes (`+44`, `+4915`…).
    pub routes: Vec<SilentRoute>,
}

#[derive(Clone, Debug, serde::Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SilentRoute {
    pub prefix: String,
    pub providers: Vec<String>,
}

/// The configured silent providers with their routing, and what checks need to know.
pub struct SilentRoutes {
    providers: BTreeMap<String, std::sync::Arc<dyn SilentProvider>>,
    routing: SilentRouting,
    /// The server's public base URL, for `check_url`s and provider callbacks.
    pub public_url: String,
    /// How long the device step may take.
    pub timeout: chrono::Duration,
}

impl Default for SilentRoutes {
    fn default() -> Self {
        Self {
            providers: BTreeMap::new(),
            routing: SilentRouting::default(),
            public_url: "http://127.0.0.1:8080".into(),
            timeout: chrono::Duration::seconds(120),
        }
    }
}

impl SilentRoutes {
    pub fn new(
        providers: Vec<std::sync::Arc<dyn SilentProvider>>,
        mut routing: SilentRouting,
        public_url: &str,
        timeout: chrono::Duration,
    ) -> Result<Self, String> {
        let providers: BTreeMap<_, _> = providers.into_iter().map(|p| (p.name().to_string(), p)).collect();
        if routing.providers.is_empty() {
            routing.providers = providers.keys().cloned().collect();
        }
        for name in routing.providers.iter().chain(routing.routes.iter().flat_map(|r| &r.providers)) {
            if !providers.contains_key(name) {
                return Err(format!("silent_routing names provider `{name}`, which is not configured"));
            }
        }
        if let Some(r) = routing.routes.iter().find(|r| !r.prefix.starts_with('+')) {
            return Err(format!("silent route prefixes are E.164 prefixes and start with `+` (not `{}`)", r.prefix));
        }
        Ok(Self { providers, routing, public_url: public_url.trim_end_matches('/').to_string(), timeout })
    }

    /// Whether any provider is configured.
    pub fn enabled(&self) -> bool {
        !self.providers.is_empty()
    }

    pub fn provider(&self, name: &str) -> Option<&std::sync::Arc<dyn SilentProvider>> {
        self.providers.get(name)
    }

    /// The providers to ask for a number, in order (the default list for an unknown number).
    pub fn plan(&self, to: Option<&PhoneNumber>) -> Vec<&std::sync::Arc<dyn SilentProvider>> {
        let route =
            to.and_then(|to| self.routing.routes.iter().filter(|r| to.as_str().starts_with(&r.prefix)).max_by_key(|r| r.prefix.len()));
        let names = route.map_or(&self.routing.providers, |r| &r.providers);
        names.iter().filter_map(|n| self.providers.get(n)).collect()
    }
}

/// The local simulator (`silent_simulator = true`, with the dev outbox only): a pretend operator
/// whose device page, served by phonegate, lets a developer choose what the operator answers.
pub struct Simulator;

pub const SIMULATOR: &str = "simulator";

#[async_trait]
impl SilentProvider for Simulator {
    fn name(&self) -> &str {
        SIMULATOR
    }

    async fn coverage(&self, _ip: IpAddr, _to: Option<&PhoneNumber>) -> Coverage {
        SimOutcome::Match.coverage()
    }

    async fn create(&self, _start: &SilentStart) -> Result<SilentSession, SilentError> {
        let provider_ref = crate::model::ids::new_id("SR");
        // A path on this server: the device is already talking to it.
        Ok(SilentSession { device_url: format!("/silent/simulator/{provider_ref}"), provider_ref })
    }

    fn callback_ref(&self, query: &CallbackQuery) -> Option<String> {
        query.get("ref").cloned()
    }

    async fn result(&self, session: &SilentSession, _to: &PhoneNumber, query: &CallbackQuery) -> Result<SilentResult, SilentError> {
        if query.get("ref") != Some(&session.provider_ref) {
            return Ok(SilentResult::Failed(Reason::ProviderError));
        }
        Ok(query.get("outcome").and_then(|o| SimOutcome::parse(o)).map_or(SilentResult::Failed(Reason::ProviderError), |o| o.result()))
    }
}
