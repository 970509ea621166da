//! Accounts: users who proved their phone number, and how they sign in. Sign-up, login and
//! phone changes are *flows* that send a code through the verification engine (the `accounts`
//! service, so every code budget and attempt limit applies); a verified flow opens a *session*
//! (a browser cookie, or an app's rotating refresh token) and issues short-lived JWT access
//! tokens. Nothing here tells whether an account exists: logins for unknown accounts or with a
//! wrong password get a decoy flow that looks the same and sends nothing.
pub mod admin;
mod decoy;
pub mod device;
pub mod events;
mod finish;
pub mod flows;
pub mod invites;
pub mod jwt;
mod me;
mod me_email;
mod me_password;
pub mod password;
pub mod reply;
pub mod silent;

pub use crate::model::{flow, session, user};
pub use flow::{Flow, FlowKind};
pub use jwt::{Claims, JwtAlgorithm, JwtKey};
pub use session::{Session, SessionKind};
pub use user::User;

use crate::Core;
use crate::audit::Audit;
use crate::audit::AuditKind;
use crate::caller::{Caller, Scope};
use crate::catalog::Catalog;
use crate::context::Context;
use crate::delivery::Delivery;
use crate::engine::Verifier;
use crate::error::{Field, VerifyError};
use crate::model::ids::new_id;
use crate::model::service::ServiceSettings;
use crate::outbox::Outbox;
use crate::ports;
use crate::traffic::TrafficReports;
use chrono::{DateTime, Utc};
use jwt::KeyRing;
use password::Passwords;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// The service whose verifications carry the login codes.
pub const SERVICE: &str = "accounts";

/// `[accounts]` in the configuration.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountSettings {
    /// The name in the code message ("Your phonegate verification code is: …").
    pub brand: String,
    /// How long a flow and its code are valid (`code_ttl`, 1m to 24h). Durations are written
    /// `"10m"`, `"24h"`, `"30d"` (see [`crate::duration`]); each is kept in the unit its name says.
    #[serde(rename = "code_ttl", with = "crate::duration::secs")]
    pub code_ttl_secs: i64,
    /// The wait between two sends of a flow's code (`resend_cooldown`).
    #[serde(rename = "resend_cooldown", with = "crate::duration::secs")]
    pub resend_cooldown_secs: i64,
    /// A session ends after this long unused (`session_idle`, whole days)…
    #[serde(rename = "session_idle", with = "crate::duration::days")]
    pub session_idle_days: i64,
    /// …and in any case this long after the login (`session_max`, whole days).
    #[serde(rename = "session_max", with = "crate::duration::days")]
    pub session_max_days: i64,
    /// Lifetime of an access token (JWT) (`access_token_ttl`).
    #[serde(rename = "access_token_ttl", with = "crate::duration::secs")]
    pub access_token_secs: i64,
    /// A refresh token spent less than this long ago, presented again, gets the same successor
    /// as the first time (two tabs refreshing at once); `"0s"` turns this off (`refresh_reuse`,
    /// 0s to 60s).
    #[serde(rename = "refresh_reuse", with = "crate::duration::secs")]
    pub refresh_reuse_secs: i64,
    pub jwt_algorithm: JwtAlgorithm,
    /// `iss` of access tokens (default: the public URL, else `phonegate`).
    pub jwt_issuer: Option<String>,
    /// `aud` of access tokens.
    pub jwt_audience: String,
    /// Who may sign up: `open` (anyone) or `invite_only` (numbers an admin invited).
    pub registration: invites::Registration,
    /// How long an invite stays valid (`invite_ttl`, whole hours).
    #[serde(rename = "invite_ttl", with = "crate::duration::hours")]
    pub invite_ttl_hours: i64,
    /// Changing the number or deleting the account needs a login this recent (`reauth`): an
    /// older session logs in again first (a code to the current number).
    #[serde(rename = "reauth", with = "crate::duration::secs")]
    pub reauth_secs: i64,
    /// How long forward auth may trust that an access token's session is still live before it
    /// reads the store again (`revocation_check`; `"0s"`: every request). A revoked session
    /// stops passing forward auth within this time on every instance.
    #[serde(rename = "revocation_check", with = "crate::duration::secs")]
    pub revocation_check_secs: i64,
    /// Hosts (`host` or `host:port`) that the login pages and forward auth may send a browser
    /// back to after login, besides phonegate's own pages.
    pub return_hosts: Vec<String>,
    /// The steps a login or sign-up code takes (`"sms:60,voice"`: an SMS, and a call when it
    /// was not used within a minute); the code page offers each other channel of it ("Call me
    /// instead"). Default: one SMS.
    pub workflow: crate::model::workflow::Workflow,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            brand: "phonegate".into(),
            code_ttl_secs: 600,
            resend_cooldown_secs: 30,
            session_idle_days: 30,
            session_max_days: 365,
            access_token_secs: 300,
            refresh_reuse_secs: 10,
            jwt_algorithm: JwtAlgorithm::EdDSA,
            jwt_issuer: None,
            jwt_audience: "phonegate".into(),
            registration: invites::Registration::Open,
            invite_ttl_hours: 72,
            reauth_secs: 600,
            revocation_check_secs: 5,
            return_hosts: Vec::new(),
            workflow: Default::default(),
        }
    }
}

impl AccountSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.workflow.uses(crate::model::workflow::Channel::Email) {
            return Err("accounts.workflow: accounts are proven by their phone number: use sms, voice and whatsapp steps".into());
        }
        if !(crate::model::service::MIN_TTL_SECS..=crate::model::service::MAX_TTL_SECS).contains(&self.code_ttl_secs) {
            return Err("accounts.code_ttl must be between 1m and 24h".into());
        }
        if self.session_idle_days < 1 || self.session_max_days < self.session_idle_days {
            return Err("accounts.session_idle must be at least 1d and at most session_max".into());
        }
        if !(30..=86_400).contains(&self.access_token_secs) {
            return Err("accounts.access_token_ttl must be between 30s and 24h".into());
        }
        if !(1..=24 * 90).contains(&self.invite_ttl_hours) {
            return Err("accounts.invite_ttl must be between 1h and 90d".into());
        }
        if !(60..=86_400).contains(&self.reauth_secs) {
            return Err("accounts.reauth must be between 1m and 24h".into());
        }
        if !(0..=300).contains(&self.revocation_check_secs) {
            return Err("accounts.revocation_check must be between 0s and 5m".into());
        }
        if !(0..=60).contains(&self.refresh_reuse_secs) {
            return Err("accounts.refresh_reuse must be between 0s and 60s".into());
        }
        if !(0..=3600).contains(&self.resend_cooldown_secs) {
            return Err("accounts.resend_cooldown must be between 0s and 1h".into());
        }
        Ok(())
    }

    pub(crate) fn idle(&self) -> chrono::Duration {
        chrono::Duration::days(self.session_idle_days)
    }
}

/// A flow waiting for its code, as the caller sees it (decoys look the same).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowStarted {
    pub flow_id: String,
    pub expires_at: DateTime<Utc>,
    /// Seconds until the code may be sent again.
    pub resend_after: i64,
    /// The path of the device's `check_url` when the flow is checked silently (its code then
    /// goes by SMS only if that fails).
    pub check_url: Option<String>,
}

/// A verified login: the session it opened and the tokens for it.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub user: User,
    pub session: Session,
    pub access_token: String,
    pub expires_in: i64,
    /// An app session's refresh token.
    pub refresh_token: Option<SecretString>,
    /// A browser session's cookie value.
    pub cookie: Option<SecretString>,
}

/// What a verified flow did.
#[derive(Clone, Debug)]
pub enum Verified {
    SignedIn(Box<SignedIn>),
    PhoneChanged(User),
    /// An e-mail change: the account now has the address, verified.
    EmailChanged(User),
}

/// Who a session cookie or access token says is calling.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user_id: String,
    pub session_id: String,
    /// Present when authenticated by an access token.
    pub claims: Option<Claims>,
}

/// Signing keys as loaded, and when.
struct Keys {
    ring: RwLock<Arc<KeyRing>>,
    loaded: Mutex<Instant>,
}

#[derive(Clone)]
pub struct Accounts {
    /// The verifications engine: every code of a flow is a verification of the accounts service.
    verifier: Verifier,
    ctx: Context,
    audit: Audit,
    catalog: Catalog,
    delivery: Delivery,
    outbox: Outbox,
    traffic: TrafficReports,
    settings: Arc<AccountSettings>,
    issuer: Arc<str>,
    passwords: Passwords,
    keys: Arc<Keys>,
    service_id: Arc<str>,
    /// The app's webhook, when one is configured.
    events: Option<Arc<dyn events::EventSink>>,
    /// Sessions found live in the store, and when (forward auth's revocation check).
    live: Arc<RwLock<std::collections::HashMap<String, Instant>>>,
    /// Access tokens whose signature was checked, with their claims: a token seen again is
    /// matched byte for byte instead of verifying its signature again (still refused once expired).
    verified: Arc<RwLock<std::collections::HashMap<String, Claims>>>,
    /// The public base URL of the pages (invitation links).
    site: Arc<str>,
}

/// Tokens remembered as verified, at most (then the memory starts afresh).
const VERIFIED_TOKENS: usize = 10_000;

/// How often the signing keys are re-read (so a rotation reaches every instance).
const KEY_RELOAD: std::time::Duration = std::time::Duration::from_secs(60);
/// A session's last use is written at most this often.
const TOUCH_EVERY_SECS: i64 = 60;

impl Accounts {
    /// Makes sure the `accounts` service and a signing key of the configured algorithm exist.
    pub async fn new(
        core: &Core,
        settings: AccountSettings,
        public_url: Option<&str>,
        events: Option<Arc<dyn events::EventSink>>,
    ) -> Result<Self, VerifyError> {
        settings.validate().map_err(|m| VerifyError::invalid(Field::Accounts, m))?;
        let system = Caller::system("start-up");
        let service = match core.catalog.create_service(&system, ServiceSettings { name: SERVICE.into(), ..Default::default() }).await {
            Ok(s) => s,
            Err(VerifyError::ServiceNameTaken) => core.catalog.service(&system, Some(SERVICE)).await?,
            Err(e) => return Err(e),
        };
        let issuer = settings.jwt_issuer.clone().or_else(|| public_url.map(|u| u.trim_end_matches('/').to_string()));
        let this = Self {
            verifier: core.verifier.clone(),
            ctx: core.ctx.clone(),
            audit: core.audit.clone(),
            catalog: core.catalog.clone(),
            delivery: core.delivery.clone(),
            outbox: core.outbox.clone(),
            traffic: core.traffic.clone(),
            issuer: issuer.unwrap_or_else(|| "phonegate".into()).into(),
            settings: Arc::new(settings),
            passwords: Passwords::default(),
            keys: Arc::new(Keys {
                ring: RwLock::new(Arc::new(KeyRing::new(JwtAlgorithm::EdDSA, &[], |_| None))),
                loaded: Mutex::new(Instant::now()),
            }),
            service_id: service.id.into(),
            events,
            verified: Default::default(),
            live: Default::default(),
            site: public_url.unwrap_or("http://localhost:8080").trim_end_matches('/').into(),
        };
        if !this.load_keys().await?.can_sign() {
            this.rotate_key().await?;
        }
        Ok(this)
    }

    /// `iss` of the tokens (the OpenID issuer).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn settings(&self) -> &AccountSettings {
        &self.settings
    }

    /// Password hashes and checks waiting for a free hashing slot (for the metrics).
    pub fn password_checks_waiting(&self) -> usize {
        self.passwords.waiting()
    }

    /// The caller the engine sees for an end user's request: it may use the accounts service only.
    fn engine_caller(&self, caller: &Caller) -> Caller {
        Caller { scope: Scope::Services(vec![self.service_id.to_string()]), ..caller.clone() }.for_end_user(caller.ip)
    }

    fn now(&self) -> DateTime<Utc> {
        self.ctx.clock.now()
    }

    // --- signing keys -------------------------------------------------------------------

    async fn load_keys(&self) -> Result<Arc<KeyRing>, VerifyError> {
        let stored = ports::read(self.ctx.store.as_ref(), |tx| Ok::<_, VerifyError>(tx.jwt_keys()?)).await?;
        let server = self.ctx.keys.clone();
        let ring = Arc::new(KeyRing::new(self.settings.jwt_algorithm, &stored, |k| {
            server.open_text(&k.kid, &k.private_sealed).and_then(|h| hex::decode(h).ok())
        }));
        if let Ok(mut r) = self.keys.ring.write() {
            *r = ring.clone();
        }
        if let Ok(mut at) = self.keys.loaded.lock() {
            *at = Instant::now();
        }
        Ok(ring)
    }

    /// Makes a new signing key of the configured algorithm (and of every other algorithm in
    /// use: the OpenID ID tokens'), which signs from now on; earlier keys stay published and
    /// valid for the tokens they signed. Returns the configured algorithm's new key id.
    pub async fn rotate_key(&self) -> Result<String, VerifyError> {
        let ring = self.load_keys().await?;
        for alg in JwtAlgorithm::ALL {
            if alg != self.settings.jwt_algorithm && ring.can_sign_with(alg) {
                self.rotate_key_of(alg).await?;
            }
        }
        self.rotate_key_of(self.settings.jwt_algorithm).await
    }

    /// Makes a signing key of `alg` unless there is one (an OpenID client's ID tokens').
    pub async fn ensure_key(&self, alg: JwtAlgorithm) -> Result<(), VerifyError> {
        if !self.ring().await?.can_sign_with(alg) && !self.load_keys().await?.can_sign_with(alg) {
            self.rotate_key_of(alg).await?;
        }
        Ok(())
    }

    async fn rotate_key_of(&self, alg: JwtAlgorithm) -> Result<String, VerifyError> {
        let kid = new_id("kid");
        let k = kid.clone();
        let (der, jwk) =
            tokio::task::spawn_blocking(move || jwt::generate(alg, &k)).await.map_err(|e| VerifyError::Crypto(e.to_string()))?;
        let key = JwtKey {
            private_sealed: self.ctx.keys.seal_text(&kid, &hex::encode(der)),
            kid: kid.clone(),
            alg,
            public_jwk: jwk.to_string(),
            created_at: self.now(),
        };
        ports::write(self.ctx.store.as_ref(), move |tx| {
            // Newest signs: a key made in the same millisecond as the last still comes after it.
            let mut key = key;
            if let Some(last) = tx.jwt_keys()?.into_iter().find(|k| k.alg == key.alg) {
                key.created_at = key.created_at.max(last.created_at + chrono::Duration::milliseconds(1));
            }
            Ok::<_, VerifyError>(tx.insert_jwt_key(&key)?)
        })
        .await?;
        self.load_keys().await?;
        self.audit.record_once(&Caller::system("jwt-rotate"), AuditKind::JwtKeyRotated, Some(&kid), "new access-token signing key").await;
        Ok(kid)
    }

    /// The keys, re-read when they are older than `KEY_RELOAD`.
    pub(crate) async fn ring(&self) -> Result<Arc<KeyRing>, VerifyError> {
        let stale = self.keys.loaded.lock().map(|at| at.elapsed() > KEY_RELOAD).unwrap_or(true);
        let ring = self.keys.ring.read().map(|r| r.clone()).ok();
        match ring {
            Some(r) if !stale => Ok(r),
            _ => self.load_keys().await,
        }
    }

    /// The keys to verify `token` with: re-read when it names a key made since (another
    /// instance rotated), at most once a second.
    pub(crate) async fn ring_for(&self, token: &str) -> Result<Arc<KeyRing>, VerifyError> {
        let ring = self.ring().await?;
        if !ring.knows_kid(token) {
            let recent = self.keys.loaded.lock().map(|at| at.elapsed() < std::time::Duration::from_secs(1)).unwrap_or(true);
            if !recent {
                return self.load_keys().await;
            }
        }
        Ok(ring)
    }

    /// The public keys, as a JWK set.
    pub async fn jwks(&self) -> Result<serde_json::Value, VerifyError> {
        Ok(self.ring().await?.jwks().clone())
    }

    fn access_token(&self, ring: &KeyRing, user: &User, session_id: &str) -> Result<String, VerifyError> {
        let now = self.now();
        let claims = Claims {
            sub: user.id.clone(),
            iss: self.issuer.to_string(),
            aud: self.settings.jwt_audience.clone(),
            exp: now.timestamp() + self.settings.access_token_secs,
            iat: now.timestamp(),
            sid: session_id.to_string(),
            phone_number: user.phone.as_str().to_string(),
            phone_number_verified: true,
            preferred_username: user.username.clone(),
        };
        ring.sign(&claims).ok_or_else(|| VerifyError::Crypto("no access-token signing key".into()))
    }

    // --- authentication -----------------------------------------------------------------

    /// The principal of a valid access token (no database read: a token stays valid until it
    /// expires, so access tokens are short).
    #[tracing::instrument(name = "accounts.authenticate_bearer", level = "debug", skip_all)]
    pub async fn authenticate_bearer(&self, token: &SecretString) -> Result<Principal, VerifyError> {
        let token = token.expose_secret();
        let now = self.now().timestamp();
        let known = self.verified.read().ok().and_then(|m| m.get(token).cloned());
        if let Some(claims) = known {
            return if claims.exp > now {
                Ok(Principal { user_id: claims.sub.clone(), session_id: claims.sid.clone(), claims: Some(claims) })
            } else {
                Err(VerifyError::Unauthenticated)
            };
        }
        let ring = self.ring_for(token).await?;
        let claims = ring.verify(token, &self.issuer, &self.settings.jwt_audience, self.now()).ok_or(VerifyError::Unauthenticated)?;
        if let Ok(mut m) = self.verified.write() {
            if m.len() >= VERIFIED_TOKENS {
                m.clear();
            }
            m.insert(token.to_string(), claims.clone());
        }
        Ok(Principal { user_id: claims.sub.clone(), session_id: claims.sid.clone(), claims: Some(claims) })
    }

    /// The principal of a live browser session; its last use is recorded (at most once a minute).
    #[tracing::instrument(name = "accounts.authenticate_cookie", level = "debug", skip_all)]
    pub async fn authenticate_cookie(&self, cookie: &SecretString) -> Result<Principal, VerifyError> {
        let cookie = cookie.expose_secret();
        if cookie.len() > 100 {
            return Err(VerifyError::Unauthenticated);
        }
        let (hash, now, idle) = (session::digest(cookie), self.now(), self.settings.idle());
        let s = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.session_by_secret(&hash)?))
            .await?
            .filter(|s| s.kind == SessionKind::Browser && s.live(now, idle))
            .ok_or(VerifyError::Unauthenticated)?;
        if now - s.last_seen_at > chrono::Duration::seconds(TOUCH_EVERY_SECS) {
            let id = s.id.clone();
            ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.touch_session(&id, now)?)).await?;
        }
        Ok(Principal { user_id: s.user_id, session_id: s.id, claims: None })
    }

    /// Opens a session for `user` inside the unit that verified the login, and returns the
    /// session with its secret (cookie value or refresh token).
    fn open_session(
        &self,
        tx: &mut dyn ports::Tx,
        user: &User,
        kind: SessionKind,
        (device, amr): (Option<String>, Vec<String>),
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(Session, SecretString), VerifyError> {
        let (secret, hash) = session::new_secret(if kind == SessionKind::Browser { "" } else { "rt_" });
        let session = Session {
            id: new_id("ss"),
            user_id: user.id.clone(),
            kind,
            secret_hash: (kind == SessionKind::Browser).then(|| hash.clone()),
            device,
            ip,
            created_at: now,
            last_seen_at: now,
            expires_at: now + chrono::Duration::days(self.settings.session_max_days),
            auth_time: now,
            amr,
            client_id: None,
            scope: None,
        };
        tx.insert_session(&session)?;
        if kind == SessionKind::App {
            tx.insert_refresh_token(&hash, &session.id, now)?;
        }
        tx.set_last_login(&user.id, now)?;
        Ok((session, secret))
    }

    /// Trades a refresh token for a new access and refresh token. The old one is spent; a
    /// spent one presented again ends its session (the whole family), unless it was spent less
    /// than `refresh_reuse_secs` ago and its successor is still unspent: then it gets that same
    /// successor again (two tabs of one app refreshing at once stay one family).
    #[tracing::instrument(name = "accounts.refresh", level = "debug", skip_all)]
    pub async fn refresh(&self, caller: &Caller, refresh_token: &SecretString) -> Result<(String, SecretString, i64), VerifyError> {
        let refresh_token = refresh_token.expose_secret();
        if refresh_token.len() > 100 {
            return Err(VerifyError::RefreshTokenInvalid);
        }
        let (this, hash, now) = (self.clone(), session::digest(refresh_token), self.now());
        let successor = self.successor(refresh_token);
        let outcome = ports::write(self.ctx.store.as_ref(), move |tx| this.rotate(tx, &hash, (successor, None), now)).await?;
        match outcome {
            Rotated::Fresh(user, session, new) => {
                let token = self.access_token(&*self.ring().await?, &user, &session.id)?;
                Ok((token, SecretString::from(new), self.settings.access_token_secs))
            }
            Rotated::Reused(user_id) => {
                self.audit
                    .record(caller, AuditKind::RefreshReuse, Some(&user_id), "a spent refresh token was used again: its session ended")
                    .await;
                Err(VerifyError::RefreshTokenInvalid)
            }
            Rotated::Invalid => Err(VerifyError::RefreshTokenInvalid),
        }
    }

    /// The refresh token that replaces `token`: an HMAC of it with the server key, so it is
    /// stored only as a digest like any other, yet a second presentation of `token` can be
    /// answered with it again; nobody without `token` (and the key) can compute it.
    pub(crate) fn successor(&self, token: &str) -> String {
        use base64::Engine;
        let mac = self.ctx.keys.digest("phonegate/refresh-successor", token);
        format!("rt_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac))
    }

    /// The refresh unit: spends the token `hash` names and stores `successor`, or answers a
    /// spent token with its unspent successor within the reuse interval, or ends the session.
    pub(crate) fn rotate(
        &self,
        tx: &mut dyn ports::Tx,
        hash: &[u8],
        (successor, client): (String, Option<&str>),
        now: DateTime<Utc>,
    ) -> Result<Rotated, VerifyError> {
        let Some((session_id, spent)) = tx.refresh_token(hash)? else { return Ok(Rotated::Invalid) };
        let next_hash = session::digest(&successor);
        // Rows are locked in one order: the token, its successor, then the session (a refresh
        // of the successor itself takes the successor, then the session), so two refreshes of
        // one family never wait on each other.
        // An OpenID client's spent token gets no second answer: it is always a reuse.
        let reuse = chrono::Duration::seconds(if client.is_some() { 0 } else { self.settings.refresh_reuse_secs });
        // Without an interval a spent token is always a reuse, even when this unit's clock reading
        // (taken before it waited for the token's row) is earlier than the spend it waited for.
        let next = match spent {
            Some(spent_at) if reuse > chrono::Duration::zero() && now - spent_at < reuse => tx.refresh_token(&next_hash)?,
            _ => None,
        };
        // An app's token refreshes only at the accounts API, an OpenID grant's only for its client.
        let Some(session) = tx.session(&session_id)?.filter(|s| s.client_id.as_deref() == client) else { return Ok(Rotated::Invalid) };
        if spent.is_some() && next != Some((session.id.clone(), None)) {
            tx.delete_session(&session.user_id, &session.id)?;
            return Ok(Rotated::Reused(session.user_id));
        }
        let Some(user) = tx.user(&session.user_id)?.filter(|_| session.live(now, self.settings.idle())) else {
            return Ok(Rotated::Invalid);
        };
        if spent.is_none() {
            tx.spend_refresh_token(hash, now)?;
            tx.insert_refresh_token(&next_hash, &session.id, now)?;
            tx.touch_session(&session.id, now)?;
        }
        Ok(Rotated::Fresh(Box::new(user), Box::new(session), successor))
    }
}

/// What a refresh did.
pub(crate) enum Rotated {
    /// The session's user and the session, and its new (or, for a reuse within the interval,
    /// its current) refresh token.
    Fresh(Box<User>, Box<Session>, String),
    /// A spent token was presented again: the session ended (the user's id, for the audit).
    Reused(String),
    Invalid,
}

impl Accounts {
    /// The CSRF token for forms of a browser holding the anti-forgery cookie `anchor`.
    pub fn csrf_token(&self, anchor: &str) -> String {
        hex::encode(self.ctx.keys.digest("phonegate/csrf", anchor))
    }

    /// Whether a form's CSRF token belongs to the browser's anti-forgery cookie.
    pub fn csrf_valid(&self, anchor: &str, token: &str) -> bool {
        !anchor.is_empty() && hex::decode(token).is_ok_and(|t| self.ctx.keys.matches("phonegate/csrf", anchor, &t))
    }
}
