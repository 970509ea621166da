//! The OpenID Connect provider: relying parties (configured, or made by an admin) sign people in
//! with phonegate's login pages and get ID tokens with the proven phone number. Built on
//! [`Accounts`]: a browser session is the login, an OpenID *grant* is a session of the client
//! (its refresh tokens rotate as an app's do), keys are the accounts' key set (plus RS256).
//! Codes, consents and grants live in the store, so every instance answers alike.
//!
//! `authorize.rs`: the authorization request, consent and codes; `tokens.rs`: the token
//! endpoint, ID and access tokens, userinfo, revocation and introspection; `logout.rs`:
//! RP-initiated logout; `apps.rs`: "Apps with access" and the admin API's clients.
mod apps;
mod authorize;
mod logout;
mod tokens;

pub use crate::model::oidc::redirect_uri_ok;
pub use crate::model::oidc::{AuthCode, Consent, OidcClient, SCOPES};
pub use apps::{App, NewClient};
pub use authorize::{AuthRequest, Authorized, NoRedirect, PendingRequest};
pub use logout::{LogoutOutcome, LogoutRequest};
pub use tokens::{Introspection, TokenRequest, Tokens};

use crate::Core;
use crate::accounts::Accounts;
use crate::audit::Audit;
use crate::context::Context;
use crate::error::VerifyError;
use crate::ports;
use secrecy::{ExposeSecret, SecretString};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// An OAuth error as the protocol names it (`error`, `error_description`), or a failure of the
/// server (rendered as `server_error` with a request id; its detail goes to the log only).
#[derive(Debug)]
pub enum OAuthError {
    Protocol { error: &'static str, description: String },
    Server(VerifyError),
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self::Protocol { error, description: description.into() }
    }

    /// The `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Protocol { error, .. } => error,
            Self::Server(_) => "server_error",
        }
    }
}

impl From<VerifyError> for OAuthError {
    fn from(e: VerifyError) -> Self {
        Self::Server(e)
    }
}

impl From<ports::StoreError> for OAuthError {
    fn from(e: ports::StoreError) -> Self {
        Self::Server(e.into())
    }
}

/// How a client authenticated at the token, revocation or introspection endpoint.
pub struct ClientAuth {
    pub client_id: String,
    /// None: a public client (only the token endpoint takes one).
    pub secret: Option<SecretString>,
    /// Sent by HTTP Basic (`client_secret_basic`): a failure answers 401 with a challenge.
    pub basic: bool,
}

/// Clients looked up in the store are remembered this long (a deleted or re-keyed client is
/// refused by every instance within it; the changing instance forgets it at once).
const CLIENT_CACHE: Duration = Duration::from_secs(2);

/// Clients read from the store, by id, with when (none: no such client).
type ClientCache = HashMap<String, (Instant, Option<OidcClient>)>;

#[derive(Clone)]
pub struct Oidc {
    accounts: Accounts,
    ctx: Context,
    audit: Audit,
    issuer: Arc<str>,
    configured: Arc<BTreeMap<String, OidcClient>>,
    cache: Arc<RwLock<ClientCache>>,
    /// Access tokens whose signature was checked, with their claims.
    verified: Arc<RwLock<HashMap<String, tokens::AccessClaims>>>,
}

/// Access tokens remembered as verified, at most (then the memory starts afresh).
const VERIFIED_TOKENS: usize = 10_000;

impl Oidc {
    /// The provider with the configured clients; makes the signing keys their ID tokens need.
    pub async fn new(core: &Core, accounts: &Accounts, clients: Vec<OidcClient>) -> Result<Self, VerifyError> {
        let mut configured = BTreeMap::new();
        for mut c in clients {
            c.validate().map_err(|m| VerifyError::invalid(crate::error::Field::OidcClient, format!("{}: {m}", c.client_id)))?;
            if c.client_id == accounts.settings().jwt_audience {
                return Err(VerifyError::invalid(crate::error::Field::OidcClient, "client_id: the access tokens' audience is reserved"));
            }
            c.configured = true;
            configured.insert(c.client_id.clone(), c);
        }
        let this = Self {
            accounts: accounts.clone(),
            ctx: core.ctx.clone(),
            audit: core.audit.clone(),
            issuer: accounts.issuer().into(),
            configured: Arc::new(configured),
            cache: Default::default(),
            verified: Default::default(),
        };
        let stored = ports::read(this.ctx.store.as_ref(), |tx| Ok::<_, VerifyError>(tx.oidc_clients()?)).await?;
        let mut algs: Vec<_> = this.configured.values().chain(&stored).map(|c| c.id_token_alg).collect();
        algs.dedup();
        for alg in algs {
            accounts.ensure_key(alg).await?;
        }
        Ok(this)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.ctx.clock.now()
    }

    /// A client by id: the configuration's, else the store's (cached briefly).
    pub async fn client(&self, client_id: &str) -> Result<Option<OidcClient>, VerifyError> {
        if let Some(c) = self.configured.get(client_id) {
            return Ok(Some(c.clone()));
        }
        if client_id.is_empty() || client_id.len() > 100 {
            return Ok(None);
        }
        if let Some((at, c)) = self.cache.read().ok().and_then(|m| m.get(client_id).cloned())
            && at.elapsed() < CLIENT_CACHE
        {
            return Ok(c);
        }
        let id = client_id.to_string();
        let found = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.oidc_client(&id)?)).await?;
        if let Ok(mut m) = self.cache.write() {
            if m.len() > 1000 {
                m.clear();
            }
            m.insert(client_id.to_string(), (Instant::now(), found.clone()));
        }
        Ok(found)
    }

    fn forget(&self, client_id: &str) {
        if let Ok(mut m) = self.cache.write() {
            m.remove(client_id);
        }
    }

    /// The client a request authenticates as: a confidential client by its secret (compared as
    /// digests, in constant time), a public one by its id alone where `public_ok`.
    pub async fn authenticate(&self, auth: &ClientAuth, public_ok: bool) -> Result<OidcClient, OAuthError> {
        let refuse = || OAuthError::new("invalid_client", "client authentication failed");
        let client = self.client(&auth.client_id).await?.ok_or_else(refuse)?;
        match (&client.secret_hash, &auth.secret) {
            (Some(hash), Some(secret)) => {
                use subtle::ConstantTimeEq;
                let given = crate::model::session::digest(secret.expose_secret());
                if bool::from(given.ct_eq(hash)) { Ok(client) } else { Err(refuse()) }
            }
            (None, None) if public_ok => Ok(client),
            _ => Err(refuse()),
        }
    }
}

/// Who an `id_token_hint` names: one of our ID tokens (`typ: JWT` with `auth_time`; an access
/// token is none), expired or not, for a client (not the accounts API's audience).
#[derive(serde::Deserialize)]
pub(crate) struct Hinted {
    pub sub: String,
    pub aud: String,
    #[allow(dead_code)]
    auth_time: i64,
}

impl Oidc {
    /// The person and client an `id_token_hint` names; `None` for anything else.
    pub(crate) async fn id_token_hint(&self, hint: &str) -> Result<Option<Hinted>, VerifyError> {
        if hint.len() > 8192 {
            return Ok(None);
        }
        let ring = self.accounts.ring_for(hint).await?;
        let algs = crate::model::jwt_key::JwtAlgorithm::ALL;
        let hinted: Option<Hinted> = ring.verify_as(hint, &algs, &self.issuer, None, Some("JWT"));
        Ok(hinted.filter(|h| h.aud != self.accounts.settings().jwt_audience))
    }
}

/// The digest a client secret is kept as.
pub fn secret_digest(secret: &str) -> Vec<u8> {
    crate::model::session::digest(secret)
}
