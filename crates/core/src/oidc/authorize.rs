//! The authorization request: who the client is and where it may be answered (else an error
//! page, never a redirect), what it asks (else an error sent to its redirect URI), whether the
//! browser's login will do (`prompt`, `max_age`), whether the person consented, and the code.
use super::{OAuthError, Oidc, OidcClient};
use crate::accounts::{Principal, Session, User};
use crate::audit::AuditKind;
use crate::caller::Caller;
use crate::error::VerifyError;
use crate::model::oidc::{AuthCode, Consent};
use crate::ports;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

/// An authorization code lives this long (at most 60 s, as the issue and RFC 9700 ask).
pub const CODE_TTL_SECS: i64 = 60;
/// A pending request (carried through the login pages sealed) is good for this long.
const PENDING_TTL_SECS: i64 = 30 * 60;

/// The parameters of `GET/POST /oauth2/authorize` (OpenID Connect Core 3.1.2.1).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AuthRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_challenge_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui_locales: Option<String>,
    /// An ID token naming who the client expects: a browser signed in as someone else counts
    /// as not signed in (`prompt=none` answers `login_required`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_hint: Option<String>,
}

/// A request waiting for a login or a consent, as carried by the pages (sealed): the request and
/// the time from which a login counts (`prompt=login`, `max_age`).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct PendingRequest {
    pub request: AuthRequest,
    /// A login before this does not count (Unix seconds).
    pub login_after: Option<i64>,
    made_at: i64,
}

/// What the browser is to do next.
#[derive(Debug)]
pub enum Authorized {
    /// Go back to the client (with a code, or with an error): a registered redirect URI.
    Redirect(String),
    /// Sign in first (the phone number to pre-fill), then resume `pending`.
    Login { pending: Box<PendingRequest>, login_hint: Option<String> },
    /// Ask the person; the page lists `scopes`.
    Consent { pending: Box<PendingRequest>, client: Box<OidcClient>, scopes: Vec<&'static str> },
}

/// An error shown on phonegate's own page: the client or its redirect URI is not known, so
/// nothing may be sent back to it.
#[derive(Debug)]
pub struct NoRedirect(pub OAuthError);

/// The validated request.
struct Valid {
    client: OidcClient,
    redirect_uri: String,
    scopes: Vec<&'static str>,
    state: Option<String>,
}

impl Oidc {
    /// Seals a pending request for the pages' `return_to` (tamper-proof and private).
    pub fn seal(&self, pending: &PendingRequest) -> String {
        let json = serde_json::to_string(pending).unwrap_or_default();
        B64.encode(self.ctx.keys.seal_text("phonegate/oidc-request", &json))
    }

    pub fn open(&self, sealed: &str) -> Option<PendingRequest> {
        if sealed.len() > 8192 {
            return None;
        }
        let bytes = B64.decode(sealed).ok()?;
        let p: PendingRequest = serde_json::from_str(&self.ctx.keys.open_text("phonegate/oidc-request", &bytes)?).ok()?;
        (self.now().timestamp() - p.made_at < PENDING_TTL_SECS).then_some(p)
    }

    pub fn pending(&self, request: AuthRequest) -> PendingRequest {
        PendingRequest { request, login_after: None, made_at: self.now().timestamp() }
    }

    /// The client and redirect URI, or the page's error.
    async fn client_of(&self, r: &AuthRequest) -> Result<(OidcClient, String), NoRedirect> {
        let bad = |d: &str| NoRedirect(OAuthError::new("invalid_request", d));
        let id = r.client_id.as_deref().ok_or_else(|| bad("client_id is missing"))?;
        let client = self.client(id).await.map_err(|e| NoRedirect(e.into()))?.ok_or_else(|| bad("unknown client_id"))?;
        let uri = r.redirect_uri.as_deref().ok_or_else(|| bad("redirect_uri is missing"))?;
        // Exactly as registered: no prefix, no normalisation, no wildcard.
        if !client.redirect_uris.iter().any(|u| u == uri) {
            return Err(bad("redirect_uri is not registered for this client"));
        }
        Ok((client, uri.to_string()))
    }

    /// Checks everything but the login; errors after the client is known go to its redirect URI.
    async fn validate(&self, r: &AuthRequest) -> Result<Result<Valid, (Valid, OAuthError)>, NoRedirect> {
        let (client, redirect_uri) = self.client_of(r).await?;
        let mut v = Valid { client, redirect_uri, scopes: Vec::new(), state: r.state.clone() };
        let err = |e: &'static str, d: &str| OAuthError::new(e, d);
        let problem = if r.request.is_some() {
            Some(err("request_not_supported", "request objects are not supported"))
        } else if r.request_uri.is_some() {
            Some(err("request_uri_not_supported", "request_uri is not supported"))
        } else if r.response_type.as_deref() != Some("code") {
            Some(err("unsupported_response_type", "response_type must be code"))
        } else if r.response_mode.as_deref().is_some_and(|m| m != "query") {
            Some(err("invalid_request", "response_mode must be query"))
        } else if too_long(r) {
            Some(err("invalid_request", "a parameter is too long (state: 1000 characters, nonce: 500, the others: 200)"))
        } else {
            match v.client.grant_scopes(r.scope.as_deref().unwrap_or_default()) {
                Err(s) => Some(err("invalid_scope", &format!("scope {s:?} is not allowed for this client"))),
                Ok(s) if !s.contains(&"openid") => Some(err("invalid_scope", "scope must include openid")),
                Ok(s) => {
                    v.scopes = s;
                    pkce_problem(r, &v.client)
                }
            }
        };
        Ok(match problem {
            Some(e) => Err((v, e)),
            None => Ok(v),
        })
    }

    /// `GET/POST /oauth2/authorize`, and its resumption after the login or consent page.
    #[tracing::instrument(name = "oidc.authorize", level = "debug", skip_all)]
    pub async fn authorize(&self, caller: &Caller, pending: PendingRequest, browser: Option<&Principal>) -> Result<Authorized, NoRedirect> {
        let v = match self.validate(&pending.request).await? {
            Ok(v) => v,
            Err((v, e)) => return Ok(Authorized::Redirect(self.error_uri(&v, &e))),
        };
        let r = &pending.request.clone();
        let prompts: Vec<&str> = r.prompt.as_deref().unwrap_or_default().split(' ').filter(|p| !p.is_empty()).collect();
        if prompts.contains(&"none") && prompts.len() > 1 {
            return Ok(Authorized::Redirect(self.error_uri(&v, &OAuthError::new("invalid_request", "prompt=none stands alone"))));
        }
        let max_age = match r.max_age.as_deref().map(str::parse::<i64>) {
            None => None,
            Some(Ok(a)) if a >= 0 => Some(a),
            Some(_) => {
                return Ok(Authorized::Redirect(
                    self.error_uri(&v, &OAuthError::new("invalid_request", "max_age must be a number of seconds")),
                ));
            }
        };
        let now = self.now();
        // prompt=login asks for a login after the request; so does a login older than max_age.
        let mut login_after = pending.login_after;
        if prompts.contains(&"login") && login_after.is_none() {
            login_after = Some(now.timestamp());
        }
        let hinted = match r.id_token_hint.as_deref() {
            // A hint that is no ID token of ours names nobody and is ignored.
            Some(hint) => self.id_token_hint(hint).await.map_err(|e| NoRedirect(e.into()))?.map(|h| h.sub),
            None => None,
        };
        let signed_in = match browser {
            Some(p) if hinted.as_ref().is_none_or(|sub| *sub == p.user_id) => {
                self.signed_in(p, &v.client).await.map_err(|e| NoRedirect(e.into()))?
            }
            _ => None,
        };
        // A login asked for (prompt=login, max_age run out, none yet) must come after the
        // request; otherwise the browser's login will do if max_age allows.
        let fresh = |s: &Session| match login_after {
            Some(t) => s.auth_time.timestamp_millis() >= t * 1000,
            None => max_age.is_none_or(|a| (now - s.auth_time).num_seconds() <= a),
        };
        let pending = PendingRequest { login_after, ..pending };
        let Some((session, user, consent)) = signed_in.filter(|(s, _, _)| fresh(s)) else {
            if prompts.contains(&"none") {
                return Ok(Authorized::Redirect(self.error_uri(&v, &OAuthError::new("login_required", "the user is not signed in"))));
            }
            // The login to come counts; one from before this request would not (max_age, prompt).
            // Whoever signs in now is who the client gets: the hint has done its part.
            let mut pending = PendingRequest { login_after: Some(pending.login_after.unwrap_or(now.timestamp())), ..pending };
            pending.request.id_token_hint = None;
            return Ok(Authorized::Login { login_hint: login_hint(r.login_hint.as_deref()), pending: Box::new(pending) });
        };
        if !v.client.require_roles.is_empty() && !v.client.require_roles.iter().any(|role| user.roles.contains(role)) {
            self.audit
                .record(&caller.as_user(&user.id), AuditKind::OidcDenied, Some(&v.client.client_id), "no role this client requires")
                .await;
            return Ok(Authorized::Redirect(self.error_uri(&v, &OAuthError::new("access_denied", "this account may not use this app"))));
        }
        let consented = v.client.first_party || (!prompts.contains(&"consent") && consent.is_some_and(|c| c.covers(&v.scopes)));
        if !consented {
            if prompts.contains(&"none") {
                return Ok(Authorized::Redirect(self.error_uri(&v, &OAuthError::new("consent_required", "the user has not consented"))));
            }
            return Ok(Authorized::Consent { pending: Box::new(pending), client: Box::new(v.client), scopes: v.scopes });
        }
        self.issue_code(caller, &v, r, &session, &user).await
    }

    /// The consent page's answer: remembered and answered with a code, or `access_denied`.
    pub async fn consent(
        &self,
        caller: &Caller,
        pending: PendingRequest,
        browser: &Principal,
        allow: bool,
    ) -> Result<Authorized, NoRedirect> {
        let v = match self.validate(&pending.request).await? {
            Ok(v) => v,
            Err((v, e)) => return Ok(Authorized::Redirect(self.error_uri(&v, &e))),
        };
        let who = caller.as_user(&browser.user_id);
        if !allow {
            self.audit.record(&who, AuditKind::OidcDenied, Some(&v.client.client_id), "consent refused").await;
            return Ok(Authorized::Redirect(self.error_uri(&v, &OAuthError::new("access_denied", "the user refused"))));
        }
        let consent = Consent {
            user_id: browser.user_id.clone(),
            client_id: v.client.client_id.clone(),
            scope: v.scopes.join(" "),
            created_at: self.now(),
        };
        ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.put_consent(&consent)?))
            .await
            .map_err(|e| NoRedirect(e.into()))?;
        let note = format!("allowed {}", v.scopes.join(" "));
        self.audit.record(&who, AuditKind::OidcConsented, Some(&v.client.client_id), &note).await;
        // Asked and answered: prompt=consent does not ask again.
        let mut pending = pending;
        let prompt: Vec<&str> = pending.request.prompt.as_deref().unwrap_or_default().split(' ').filter(|p| *p != "consent").collect();
        pending.request.prompt = Some(prompt.join(" ")).filter(|p| !p.trim().is_empty());
        self.authorize(caller, pending, Some(browser)).await
    }

    /// The browser session's login, its user and their consent for the client.
    async fn signed_in(&self, p: &Principal, client: &OidcClient) -> Result<Option<(Session, User, Option<Consent>)>, VerifyError> {
        let (sid, uid, cid) = (p.session_id.clone(), p.user_id.clone(), client.client_id.clone());
        ports::read(self.ctx.store.as_ref(), move |tx| {
            let Some(session) = tx.session(&sid)? else { return Ok(None) };
            let Some(user) = tx.user(&uid)? else { return Ok(None) };
            let consent = tx.consent(&uid, &cid)?;
            Ok::<_, VerifyError>(Some((session, user, consent)))
        })
        .await
    }

    async fn issue_code(
        &self,
        caller: &Caller,
        v: &Valid,
        r: &AuthRequest,
        session: &Session,
        user: &User,
    ) -> Result<Authorized, NoRedirect> {
        let code = format!("ac_{}", B64.encode(rand::random::<[u8; 32]>()));
        let now = self.now();
        let row = AuthCode {
            hash: super::secret_digest(&code),
            client_id: v.client.client_id.clone(),
            user_id: user.id.clone(),
            redirect_uri: v.redirect_uri.clone(),
            scope: v.scopes.join(" "),
            nonce: r.nonce.clone(),
            challenge: r.code_challenge.clone(),
            auth_time: session.auth_time,
            amr: session.amr.clone(),
            browser_session: session.id.clone(),
            expires_at: now + chrono::Duration::seconds(CODE_TTL_SECS),
            used_at: None,
            session_id: None,
        };
        ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.insert_auth_code(&row)?))
            .await
            .map_err(|e| NoRedirect(e.into()))?;
        self.audit
            .record(&caller.as_user(&user.id), AuditKind::OidcAuthorized, Some(&v.client.client_id), "authorization code issued")
            .await;
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("code", &code);
        if let Some(state) = &v.state {
            q.append_pair("state", state);
        }
        q.append_pair("iss", &self.issuer);
        Ok(Authorized::Redirect(join_query(&v.redirect_uri, &q.finish())))
    }

    /// The registered redirect URI with the error (RFC 6749 4.1.2.1, with `iss`: RFC 9207).
    fn error_uri(&self, v: &Valid, e: &OAuthError) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("error", e.code());
        if let OAuthError::Protocol { description, .. } = e {
            q.append_pair("error_description", description);
        }
        if let Some(state) = &v.state {
            q.append_pair("state", state);
        }
        q.append_pair("iss", &self.issuer);
        join_query(&v.redirect_uri, &q.finish())
    }
}

/// Whether a parameter is longer than a sealed request may carry through the login pages.
fn too_long(r: &AuthRequest) -> bool {
    let short =
        [&r.scope, &r.prompt, &r.max_age, &r.login_hint, &r.ui_locales, &r.code_challenge, &r.code_challenge_method, &r.response_mode];
    r.state.as_deref().is_some_and(|s| s.len() > 1000)
        || r.nonce.as_deref().is_some_and(|n| n.len() > 500)
        || short.iter().any(|v| v.as_deref().is_some_and(|v| v.len() > 200))
}

/// PKCE (RFC 7636): S256 only; required of public clients.
fn pkce_problem(r: &AuthRequest, client: &OidcClient) -> Option<OAuthError> {
    match (&r.code_challenge, r.code_challenge_method.as_deref()) {
        (None, Some(_)) => Some(OAuthError::new("invalid_request", "code_challenge_method without code_challenge")),
        (None, None) if client.is_public() => {
            Some(OAuthError::new("invalid_request", "PKCE (code_challenge, S256) is required for this client"))
        }
        (None, None) => None,
        (Some(_), Some(m)) if m != "S256" => Some(OAuthError::new("invalid_request", "code_challenge_method must be S256")),
        (Some(_), None) => Some(OAuthError::new("invalid_request", "code_challenge_method must be S256")),
        (Some(c), Some(_)) if c.len() != 43 || !c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') => {
            Some(OAuthError::new("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)"))
        }
        _ => None,
    }
}

/// A login hint that is a phone number (E.164-looking) pre-fills the login page; anything else
/// is ignored.
fn login_hint(hint: Option<&str>) -> Option<String> {
    let h = hint?.trim();
    let h = h.strip_prefix("tel:").unwrap_or(h);
    (h.len() <= 20 && h.len() >= 6 && h.chars().enumerate().all(|(i, c)| c.is_ascii_digit() || (i == 0 && c == '+'))).then(|| h.to_string())
}

fn join_query(uri: &str, query: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{query}")
}
