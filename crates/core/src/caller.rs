//! Who is asking. Every call into the engine carries a `Caller`, so authorization, rate limits
//! and audit can be decided in the core, once, for every API.
use crate::error::VerifyError;
use crate::model::api_key::{ApiKey, KeyScope};
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The API key that authenticated the request (`SK…`); `None` for the server's own work and
    /// for signed provider webhooks.
    pub key_id: Option<String>,
    pub scope: Scope,
    /// The client's address, where the request came over the network.
    pub ip: Option<IpAddr>,
    /// The end user's address, which IP budgets count: the peer of a public page, or what an
    /// app's backend passes for its user (`client_ip`, Twilio's `DeviceIp`). `None` when unknown.
    pub end_user_ip: Option<IpAddr>,
    /// Correlates the call with the request's logs (`x-request-id`).
    pub request_id: String,
    /// The signed-in user acting (an admin in the console, a user on their own account): who
    /// the audit log names.
    pub user: Option<String>,
    /// The device token an end user's browser or app presented (`accounts::device`): proof that
    /// it verified a number before, checked where a number is known.
    pub device: Option<String>,
}

/// What a caller may touch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything: an admin key, the CLI, the server's own jobs.
    All,
    /// The verifications of these services (ids) only: a service key.
    Services(Vec<String>),
    /// A signed provider webhook: receipts and inbound messages only.
    Provider,
}

impl Caller {
    /// A request authenticated by an API key, with the key's scope.
    pub fn key(key: &ApiKey, ip: Option<IpAddr>, request_id: impl Into<String>) -> Self {
        let scope = match &key.scope {
            KeyScope::Admin => Scope::All,
            KeyScope::Services(ids) => Scope::Services(ids.clone()),
        };
        Self { key_id: Some(key.id.clone()), scope, ip, end_user_ip: None, request_id: request_id.into(), user: None, device: None }
    }

    /// Whether the caller may see what belongs to the service `service_id`.
    pub fn may_see(&self, service_id: &str) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Services(ids) => ids.iter().any(|id| id == service_id),
            Scope::Provider => false,
        }
    }

    /// Refuses anyone but an admin (or the server itself).
    pub fn require_admin(&self) -> Result<(), VerifyError> {
        if self.scope == Scope::All { Ok(()) } else { Err(VerifyError::Forbidden) }
    }

    /// A provider's signed webhook.
    pub fn provider(ip: Option<IpAddr>, request_id: impl Into<String>) -> Self {
        Self { key_id: None, scope: Scope::Provider, ip, end_user_ip: None, request_id: request_id.into(), user: None, device: None }
    }

    /// The same caller acting for an end user at `ip`.
    pub fn for_end_user(mut self, ip: Option<IpAddr>) -> Self {
        self.end_user_ip = ip.or(self.end_user_ip);
        self
    }

    /// An end user's own request to the public account endpoints (no API key): it may see no
    /// service; the accounts core acts for it.
    pub fn end_user(ip: Option<IpAddr>, request_id: impl Into<String>) -> Self {
        Self {
            key_id: None,
            scope: Scope::Services(Vec::new()),
            ip,
            end_user_ip: ip,
            request_id: request_id.into(),
            user: None,
            device: None,
        }
    }

    /// The server itself: the CLI, start-up and background jobs.
    pub fn system(task: &str) -> Self {
        Self { key_id: None, scope: Scope::All, ip: None, end_user_ip: None, request_id: task.to_string(), user: None, device: None }
    }

    /// The same caller, acting as the signed-in user `user_id`.
    /// The caller presenting a device token (`accounts::device`).
    pub fn with_device(mut self, token: Option<String>) -> Self {
        self.device = token.filter(|t| !t.is_empty() && t.len() <= 200);
        self
    }

    pub fn as_user(&self, user_id: &str) -> Self {
        Self { user: Some(user_id.to_string()), ..self.clone() }
    }

    /// Who the audit log names: the signed-in user, else the API key.
    pub fn actor(&self) -> Option<String> {
        self.user.clone().or_else(|| self.key_id.clone())
    }
}
