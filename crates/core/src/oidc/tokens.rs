//! The token endpoint (an authorization code or a refresh token for tokens), the tokens
//! themselves, userinfo, revocation (RFC 7009) and introspection (RFC 7662).
//!
//! An exchanged code opens a *grant*: a session of the client with the granted scopes, which
//! lives as long as its access token, or with `offline_access` as long as the client's refresh
//! lifetime, its refresh tokens rotating like an app's (a spent one presented again ends it).
//! Access tokens are JWTs (`typ: at+jwt`, RFC 9068) for the client (`aud`), naming the grant
//! (`sid`); userinfo and introspection read the grant, so a revoked one stops at once.
use super::{AuthCode, ClientAuth, OAuthError, Oidc, OidcClient};
use crate::accounts::{Rotated, Session, SessionKind, User};
use crate::audit::AuditKind;
use crate::caller::Caller;
use crate::error::VerifyError;
use crate::model::ids::new_id;
use crate::model::session;
use crate::ports;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// The form of `POST /oauth2/token`.
#[derive(Clone, Debug, Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<SecretString>,
    pub scope: Option<String>,
}

/// A token response (RFC 6749 5.1, OpenID Connect Core 3.1.3.3).
#[derive(Debug)]
pub struct Tokens {
    pub access_token: String,
    pub expires_in: i64,
    pub id_token: Option<String>,
    pub refresh_token: Option<SecretString>,
    pub scope: String,
}

/// An OpenID access token's claims.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct AccessClaims {
    iss: String,
    sub: String,
    aud: String,
    client_id: String,
    exp: i64,
    iat: i64,
    jti: String,
    scope: String,
    /// The grant.
    sid: String,
}

/// What introspection tells a client of a token of its own.
#[derive(Debug, Default, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

/// What a code exchange's unit did.
enum Exchanged {
    Granted(Box<(User, Session, Option<SecretString>, AuthCode)>),
    /// The code was used before: the grant that use opened ended.
    Reused(Box<AuthCode>),
    Invalid(&'static str),
}

fn grant_error(d: &str) -> OAuthError {
    OAuthError::new("invalid_grant", d)
}

impl Oidc {
    /// `POST /oauth2/token`, for a client already authenticated.
    #[tracing::instrument(name = "oidc.token", level = "debug", skip_all)]
    pub async fn token(&self, caller: &Caller, client: &OidcClient, req: TokenRequest) -> Result<Tokens, OAuthError> {
        match req.grant_type.as_deref() {
            Some("authorization_code") => self.exchange(caller, client, req).await,
            Some("refresh_token") => self.refresh(caller, client, req).await,
            Some(_) => Err(OAuthError::new("unsupported_grant_type", "grant_type must be authorization_code or refresh_token")),
            None => Err(OAuthError::new("invalid_request", "grant_type is missing")),
        }
    }

    async fn exchange(&self, caller: &Caller, client: &OidcClient, req: TokenRequest) -> Result<Tokens, OAuthError> {
        let code =
            req.code.filter(|c| !c.is_empty() && c.len() <= 100).ok_or_else(|| OAuthError::new("invalid_request", "code is missing"))?;
        let redirect_uri = req.redirect_uri.unwrap_or_default();
        let verifier = req.code_verifier;
        let verifier_ok = |v: &str| (43..=128).contains(&v.len()) && v.chars().all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
        if verifier.as_deref().is_some_and(|v| !verifier_ok(v)) {
            return Err(OAuthError::new("invalid_request", "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~"));
        }
        let (this, hash, now, client_c) = (self.clone(), super::secret_digest(&code), self.now(), client.clone());
        let outcome = ports::write(self.ctx.store.as_ref(), move |tx| {
            let Some(code) = tx.auth_code(&hash)? else { return Ok(Exchanged::Invalid("unknown code")) };
            if code.client_id != client_c.client_id {
                return Ok(Exchanged::Invalid("the code was issued to another client"));
            }
            if code.used_at.is_some() {
                if let Some(grant) = &code.session_id {
                    tx.delete_session(&code.user_id, grant)?;
                }
                return Ok(Exchanged::Reused(Box::new(code)));
            }
            if code.expires_at <= now {
                return Ok(Exchanged::Invalid("the code expired"));
            }
            if code.redirect_uri != redirect_uri {
                return Ok(Exchanged::Invalid("redirect_uri differs from the authorization request's"));
            }
            match (&code.challenge, &verifier) {
                (Some(challenge), Some(v)) if &B64.encode(sha2::Sha256::digest(v.as_bytes())) == challenge => {}
                (Some(_), _) => return Ok(Exchanged::Invalid("code_verifier does not match the code_challenge")),
                // A verifier for a code issued without a challenge: a downgrade.
                (None, Some(_)) => return Ok(Exchanged::Invalid("the authorization request had no code_challenge")),
                (None, None) => {}
            }
            let Some(user) = tx.user(&code.user_id)? else { return Ok(Exchanged::Invalid("the account no longer exists")) };
            let (session, refresh) = this.open_grant(tx, &client_c, &code, now)?;
            tx.use_auth_code(&code.hash, now, &session.id)?;
            Ok::<_, VerifyError>(Exchanged::Granted(Box::new((user, session, refresh, code))))
        })
        .await?;
        match outcome {
            Exchanged::Granted(granted) => {
                let (user, session, refresh, code) = *granted;
                let id_token = self.id_token(client, &user, &code).await?;
                let (access_token, expires_in) = self.access_token(client, &user, &session, &code.scope).await?;
                Ok(Tokens { access_token, expires_in, id_token: Some(id_token), refresh_token: refresh, scope: code.scope })
            }
            Exchanged::Reused(code) => {
                let who = caller.as_user(&code.user_id);
                self.audit
                    .record(&who, AuditKind::OidcCodeReuse, Some(&code.client_id), "an authorization code was used again: its grant ended")
                    .await;
                Err(grant_error("the code was already used"))
            }
            Exchanged::Invalid(why) => Err(grant_error(why)),
        }
    }

    /// The grant a code opens, inside the exchange's unit: a session of the client, with a
    /// refresh token when `offline_access` was granted.
    fn open_grant(
        &self,
        tx: &mut dyn ports::Tx,
        client: &OidcClient,
        code: &AuthCode,
        now: DateTime<Utc>,
    ) -> Result<(Session, Option<SecretString>), VerifyError> {
        let offline = code.scope.split(' ').any(|s| s == "offline_access");
        let lifetime = if offline { client.refresh_token_secs } else { client.access_token_secs };
        let session = Session {
            id: new_id("ss"),
            user_id: code.user_id.clone(),
            kind: SessionKind::App,
            secret_hash: None,
            device: Some(client.name.chars().take(60).collect()),
            ip: None,
            created_at: now,
            last_seen_at: now,
            expires_at: now + chrono::Duration::seconds(lifetime),
            auth_time: code.auth_time,
            amr: code.amr.clone(),
            client_id: Some(client.client_id.clone()),
            scope: Some(code.scope.clone()),
        };
        tx.insert_session(&session)?;
        let refresh = if offline {
            let (secret, hash) = session::new_secret("rt_");
            tx.insert_refresh_token(&hash, &session.id, now)?;
            Some(secret)
        } else {
            None
        };
        Ok((session, refresh))
    }

    async fn refresh(&self, caller: &Caller, client: &OidcClient, req: TokenRequest) -> Result<Tokens, OAuthError> {
        let token = req.refresh_token.ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is missing"))?;
        let token = token.expose_secret();
        if token.len() > 100 {
            return Err(grant_error("invalid refresh token"));
        }
        let (accounts, hash, now) = (self.accounts.clone(), session::digest(token), self.now());
        if let Some(asked) = req.scope.as_deref() {
            // More scope than the grant has is refused before the token is spent.
            let (h, cid) = (hash.clone(), client.client_id.clone());
            let granted = ports::read(self.ctx.store.as_ref(), move |tx| {
                let Some((sid, _)) = tx.refresh_token(&h)? else { return Ok(None) };
                Ok::<_, VerifyError>(tx.session(&sid)?.filter(|s| s.client_id.as_deref() == Some(&cid)).and_then(|s| s.scope))
            })
            .await?;
            if let Some(granted) = granted
                && !asked.split(' ').filter(|a| !a.is_empty()).all(|a| granted.split(' ').any(|g| g == a))
            {
                return Err(OAuthError::new("invalid_scope", "more scope than the grant has"));
            }
        }
        let successor = self.accounts.successor(token);
        let cid = client.client_id.clone();
        let outcome = ports::write(self.ctx.store.as_ref(), move |tx| accounts.rotate(tx, &hash, (successor, Some(&cid)), now)).await?;
        match outcome {
            Rotated::Fresh(user, session, next) => {
                if !client.require_roles.is_empty() && !client.require_roles.iter().any(|r| user.roles.contains(r)) {
                    // No longer a member with the role: the grant ends.
                    let (u, g) = (user.id.clone(), session.id.clone());
                    ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.delete_session(&u, &g)?)).await?;
                    return Err(grant_error("this account may no longer use this app"));
                }
                // A narrower scope was checked against the grant before the token was spent.
                let scope = match req.scope.as_deref() {
                    Some(asked) => asked.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" "),
                    None => session.scope.clone().unwrap_or_default(),
                };
                let (access_token, expires_in) = self.access_token(client, &user, &session, &scope).await?;
                // A new ID token too, as most providers answer a refresh (OpenID Connect Core
                // 12.2): the same person, login time and methods; no nonce.
                let login = AuthCode {
                    hash: Vec::new(),
                    client_id: client.client_id.clone(),
                    user_id: user.id.clone(),
                    redirect_uri: String::new(),
                    scope: scope.clone(),
                    nonce: None,
                    challenge: None,
                    auth_time: session.auth_time,
                    amr: session.amr.clone(),
                    browser_session: session.id.clone(),
                    expires_at: session.expires_at,
                    used_at: None,
                    session_id: Some(session.id.clone()),
                };
                let id_token = Some(self.id_token(client, &user, &login).await?);
                Ok(Tokens { access_token, expires_in, id_token, refresh_token: Some(SecretString::from(next)), scope })
            }
            Rotated::Reused(user_id) => {
                self.audit
                    .record(
                        &caller.as_user(&user_id),
                        AuditKind::RefreshReuse,
                        Some(&client.client_id),
                        "a spent refresh token was used again: its grant ended",
                    )
                    .await;
                Err(grant_error("invalid refresh token"))
            }
            Rotated::Invalid => Err(grant_error("invalid refresh token")),
        }
    }

    /// An ID token for the login a code (or a grant's refresh) carries.
    async fn id_token(&self, client: &OidcClient, user: &User, code: &AuthCode) -> Result<String, OAuthError> {
        self.accounts.ensure_key(client.id_token_alg).await?;
        let now = self.now().timestamp();
        let mut claims = serde_json::json!({
            "iss": &*self.issuer,
            "sub": user.id,
            "aud": client.client_id,
            "azp": client.client_id,
            "exp": now + client.id_token_secs,
            "iat": now,
            "auth_time": code.auth_time.timestamp(),
            "amr": if code.amr.is_empty() { vec!["sms".to_string()] } else { code.amr.clone() },
            "acr": if code.amr.iter().any(|m| m == "mfa") { "2" } else { "1" },
            "sid": code.browser_session,
        });
        if let Some(nonce) = &code.nonce {
            claims["nonce"] = nonce.clone().into();
        }
        release(&mut claims, user, &code.scope);
        let ring = self.accounts.ring().await?;
        ring.sign_as(client.id_token_alg, "JWT", &claims).ok_or_else(|| VerifyError::Crypto("no ID token signing key".into()).into())
    }

    async fn access_token(&self, client: &OidcClient, user: &User, grant: &Session, scope: &str) -> Result<(String, i64), OAuthError> {
        let now = self.now().timestamp();
        // Never beyond the grant: a grant without a refresh token ends with its access token.
        let ttl = client.access_token_secs.min((grant.expires_at.timestamp() - now).max(1));
        let claims = AccessClaims {
            iss: self.issuer.to_string(),
            sub: user.id.clone(),
            aud: client.client_id.clone(),
            client_id: client.client_id.clone(),
            exp: now + ttl,
            iat: now,
            jti: new_id("at"),
            scope: scope.to_string(),
            sid: grant.id.clone(),
        };
        let ring = self.accounts.ring().await?;
        let alg = self.accounts.settings().jwt_algorithm;
        let token = ring
            .sign_as(alg, "at+jwt", &claims)
            .ok_or_else(|| OAuthError::from(VerifyError::Crypto("no access-token signing key".into())))?;
        Ok((token, ttl))
    }

    /// The claims of one of our OpenID access tokens, unexpired (not yet whether its grant lives).
    async fn access_claims(&self, token: &str) -> Result<Option<AccessClaims>, VerifyError> {
        if token.len() > 4096 {
            return Ok(None);
        }
        let now = self.now().timestamp();
        // A token whose signature was checked before is matched byte for byte (as the accounts'
        // bearer tokens are); it still counts only until it expires.
        if let Some(c) = self.verified.read().ok().and_then(|m| m.get(token).cloned()) {
            return Ok((c.exp > now).then_some(c));
        }
        let ring = self.accounts.ring_for(token).await?;
        let alg = self.accounts.settings().jwt_algorithm;
        let claims: Option<AccessClaims> = ring.verify_as(token, &[alg], &self.issuer, None, Some("at+jwt"));
        let claims = claims.filter(|c| c.aud == c.client_id && c.exp > now);
        if let (Some(c), Ok(mut m)) = (&claims, self.verified.write()) {
            if m.len() >= super::VERIFIED_TOKENS {
                m.clear();
            }
            m.insert(token.to_string(), c.clone());
        }
        Ok(claims)
    }

    /// The grant's session and user, when the grant still lives.
    async fn live_grant(&self, claims: &AccessClaims) -> Result<Option<(Session, User)>, VerifyError> {
        let (sid, sub, cid, now) = (claims.sid.clone(), claims.sub.clone(), claims.client_id.clone(), self.now());
        let idle = self.accounts.settings().idle();
        ports::read(self.ctx.store.as_ref(), move |tx| {
            let Some(s) = tx.session(&sid)?.filter(|s| s.user_id == sub && s.client_id.as_deref() == Some(&cid) && s.live(now, idle))
            else {
                return Ok(None);
            };
            Ok::<_, VerifyError>(tx.user(&sub)?.map(|u| (s, u)))
        })
        .await
    }

    /// `GET/POST /oauth2/userinfo`: the claims the token's scopes release; `None` for a token
    /// that is not (or no longer) valid.
    #[tracing::instrument(name = "oidc.userinfo", level = "debug", skip_all)]
    pub async fn userinfo(&self, token: &SecretString) -> Result<Option<serde_json::Value>, VerifyError> {
        let Some(claims) = self.access_claims(token.expose_secret()).await? else { return Ok(None) };
        let Some((_, user)) = self.live_grant(&claims).await? else { return Ok(None) };
        let mut out = serde_json::json!({ "sub": user.id });
        release(&mut out, &user, &claims.scope);
        Ok(Some(out))
    }

    /// `POST /oauth2/revoke` (RFC 7009): a refresh or access token of the calling client ends its
    /// grant; anything else is ignored (the answer is the same).
    pub async fn revoke(&self, caller: &Caller, auth: &ClientAuth, token: &str) -> Result<(), OAuthError> {
        let client = self.authenticate(auth, true).await?;
        let Some((user_id, grant)) = self.grant_of(token, &client).await? else { return Ok(()) };
        let (u, g) = (user_id.clone(), grant.clone());
        ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.delete_session(&u, &g)?)).await?;
        self.audit.record(&caller.as_user(&user_id), AuditKind::OidcRevoked, Some(&client.client_id), "the client revoked a grant").await;
        Ok(())
    }

    /// The user and grant a token of `client` belongs to.
    async fn grant_of(&self, token: &str, client: &OidcClient) -> Result<Option<(String, String)>, VerifyError> {
        if let Some(c) = self.access_claims(token).await? {
            return Ok((c.client_id == client.client_id).then_some((c.sub, c.sid)));
        }
        if token.len() > 100 {
            return Ok(None);
        }
        let (hash, cid) = (session::digest(token), client.client_id.clone());
        ports::read(self.ctx.store.as_ref(), move |tx| {
            let Some((sid, _)) = tx.refresh_token(&hash)? else { return Ok(None) };
            Ok::<_, VerifyError>(tx.session(&sid)?.filter(|s| s.client_id.as_deref() == Some(&cid)).map(|s| (s.user_id, s.id)))
        })
        .await
    }

    /// `POST /oauth2/introspect` (RFC 7662): active only for a live token of the calling client.
    pub async fn introspect(&self, auth: &ClientAuth, token: &str) -> Result<Introspection, OAuthError> {
        let client = self.authenticate(auth, false).await?;
        if let Some(c) = self.access_claims(token).await?.filter(|c| c.client_id == client.client_id) {
            return Ok(match self.live_grant(&c).await? {
                Some((_, user)) => Introspection {
                    active: true,
                    scope: Some(c.scope),
                    client_id: Some(c.client_id),
                    username: Some(user.username),
                    token_type: Some("Bearer"),
                    exp: Some(c.exp),
                    iat: Some(c.iat),
                    sub: Some(c.sub),
                    aud: Some(c.aud),
                    iss: Some(c.iss),
                },
                None => Introspection::default(),
            });
        }
        if token.len() > 100 {
            return Ok(Introspection::default());
        }
        let (hash, cid, now, idle) = (session::digest(token), client.client_id.clone(), self.now(), self.accounts.settings().idle());
        let found = ports::read(self.ctx.store.as_ref(), move |tx| {
            let Some((sid, None)) = tx.refresh_token(&hash)? else { return Ok(None) };
            let Some(s) = tx.session(&sid)?.filter(|s| s.client_id.as_deref() == Some(&cid) && s.live(now, idle)) else { return Ok(None) };
            Ok::<_, VerifyError>(tx.user(&s.user_id)?.map(|u| (s, u)))
        })
        .await?;
        Ok(match found {
            Some((s, user)) => Introspection {
                active: true,
                scope: s.scope,
                client_id: Some(client.client_id.clone()),
                username: Some(user.username),
                token_type: Some("refresh_token"),
                exp: Some(s.expires_at.timestamp()),
                iat: Some(s.created_at.timestamp()),
                sub: Some(user.id),
                aud: Some(client.client_id.clone()),
                iss: Some(self.issuer.to_string()),
            },
            None => Introspection::default(),
        })
    }
}

/// Adds the claims `scope` releases: `profile` the username, `phone` the proven number, `email`
/// the address only when it is verified.
fn release(out: &mut serde_json::Value, user: &User, scope: &str) {
    for s in scope.split(' ') {
        match s {
            "profile" => out["preferred_username"] = user.username.clone().into(),
            "phone" => {
                out["phone_number"] = user.phone.as_str().into();
                out["phone_number_verified"] = true.into();
            }
            "email" => {
                if let (Some(email), true) = (&user.email, user.email_verified) {
                    out["email"] = email.clone().into();
                    out["email_verified"] = true.into();
                }
            }
            _ => {}
        }
    }
}
