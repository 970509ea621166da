//! The accounts JSON API: sign-up, login, code verification, token refresh, the signed-in
//! user's account and sessions, the JWKS, and forward auth for reverse proxies.
use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::session::{EndUser, SignedIn, set_device, set_session};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use phonegate_core::VerifyError;
use phonegate_core::accounts::flows::{LoginRequest, SignupRequest};
use phonegate_core::accounts::{FlowStarted, Session, SessionKind, User, Verified, session::device_name};
use phonegate_core::error::Field;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(verify))
        .routes(routes!(resend))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me, delete_me))
        .routes(routes!(sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(change_phone))
        .routes(routes!(verify_phone))
        .routes(routes!(jwks))
        .routes(routes!(forward))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupBody {
    /// 3–32 characters: letters a–z, digits, `.`, `_`, `-`.
    username: String,
    /// E.164, or national format with the configured default region.
    phone: String,
    email: Option<String>,
    /// 8–128 characters; with a password, logins can be password + code.
    #[schema(value_type = Option<String>)]
    password: Option<SecretString>,
    /// Language of the code message (`en`, `de`…).
    locale: Option<String>,
    /// Let the device's operator confirm the number where it can (silent verification): the
    /// answer then has `next: "silent"` and a `check_url` for the device to open over mobile
    /// data; the code goes by SMS only if that fails. Finish with `POST /api/auth/verify`
    /// `{flow_id, silent: true}`.
    silent: Option<bool>,
    /// The `device_token` an earlier verification of this number gave this app: its wrong codes
    /// and passwords then count in the number's own budgets, which strangers cannot use up.
    device_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// Passwordless: the account's number.
    phone: Option<String>,
    /// With `password`: a username or e-mail address.
    identifier: Option<String>,
    #[schema(value_type = Option<String>)]
    password: Option<SecretString>,
    locale: Option<String>,
    /// Passwordless logins only: as for sign-up (`next: "silent"`, `check_url`).
    silent: Option<bool>,
    /// The `device_token` an earlier verification of this number gave this app: its wrong codes
    /// and passwords then count in the number's own budgets, which strangers cannot use up.
    device_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    flow_id: String,
    /// The code sent by SMS; omit it with `silent: true`.
    #[serde(default)]
    code: String,
    /// The device came back from its `check_url` and the operator confirmed the number.
    silent: Option<bool>,
    /// With `silent`: the `proof` parameter of the page the device ended on after opening
    /// `check_url` (it proves the flow is finished by the device that was checked).
    proof: Option<String>,
    /// `cookie` sets the browser session cookie instead of returning a refresh token.
    session: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowBody {
    flow_id: String,
    locale: Option<String>,
    /// Send the code by this channel instead (`voice`: "call me instead", `whatsapp`), one of
    /// `[accounts] workflow`'s; default: the running step's.
    channel: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    #[schema(value_type = String)]
    refresh_token: SecretString,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LogoutBody {
    /// End every session of the account, not only this one.
    #[serde(default)]
    all: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneBody {
    phone: String,
    locale: Option<String>,
}

/// A flow waiting for its code.
#[derive(Serialize, ToSchema)]
pub struct FlowView {
    flow_id: String,
    /// What the flow needs next: `code`, or `silent` (open `check_url` on the device).
    next: &'static str,
    expires_at: DateTime<Utc>,
    /// Seconds before the code can be sent again.
    resend_after: i64,
    /// With `next: "silent"`: the single-use URL the device must open over mobile data.
    #[serde(skip_serializing_if = "Option::is_none")]
    check_url: Option<String>,
}

impl FlowView {
    fn new(f: FlowStarted, base: &str) -> Self {
        let next = if f.check_url.is_some() { "silent" } else { "code" };
        let check_url = f.check_url.map(|p| format!("{base}{p}"));
        Self { flow_id: f.flow_id, next, expires_at: f.expires_at, resend_after: f.resend_after, check_url }
    }
}

impl From<FlowStarted> for FlowView {
    fn from(f: FlowStarted) -> Self {
        Self::new(f, "")
    }
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    id: String,
    username: String,
    email: Option<String>,
    /// The account proved it holds `email` (`POST /api/me/email`); an address given at sign-up
    /// is not verified until then.
    email_verified: bool,
    phone_number: String,
    roles: Vec<String>,
    created_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
    /// Whether the account has a password (then logins can be password + code too).
    has_password: bool,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            has_password: u.password_hash.is_some(),
            id: u.id,
            username: u.username,
            email: u.email,
            email_verified: u.email_verified,
            phone_number: u.phone.as_str().to_string(),
            roles: u.roles,
            created_at: u.created_at,
            last_login_at: u.last_login_at,
        }
    }
}

/// Tokens after a verified login or a refresh.
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    access_token: String,
    token_type: &'static str,
    /// Seconds the access token is valid.
    expires_in: i64,
    /// Absent for a cookie session.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// Proof that this device verified the number (90 days): send it as `device_token` with later
    /// logins, so nobody else's wrong guesses can lock this device out.
    device_token: String,
    user: UserView,
}

/// A refreshed access token, and the refresh token that replaces the spent one.
#[derive(Serialize, ToSchema)]
pub struct RefreshedView {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    id: String,
    /// `browser` (cookie) or `app` (refresh token).
    kind: &'static str,
    device: Option<String>,
    ip: Option<String>,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// The session making this request.
    current: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SessionsView {
    sessions: Vec<SessionView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    flow_id: String,
    code: String,
}

pub fn session_view(s: Session, current: &str) -> SessionView {
    SessionView {
        current: s.id == current,
        id: s.id,
        kind: s.kind.as_str(),
        device: s.device,
        ip: s.ip,
        created_at: s.created_at,
        last_seen_at: s.last_seen_at,
        expires_at: s.expires_at,
    }
}

fn accepted(f: FlowStarted) -> (StatusCode, Json<FlowView>) {
    (StatusCode::ACCEPTED, Json(f.into()))
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    device_name(headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()))
}

/// Starts a sign-up: a code goes to the phone.
#[utoipa::path(post, path = "/api/auth/signup", tag = "accounts", request_body = SignupBody, security(()),
    responses((status = 202, body = FlowView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn signup(
    State(s): State<AppState>,
    EndUser(caller): EndUser,
    headers: HeaderMap,
    uri: axum::http::Uri,
    ApiJson(b): ApiJson<SignupBody>,
) -> Result<impl IntoResponse, ApiError> {
    let silent = b.silent.unwrap_or(false);
    let req = SignupRequest { username: b.username, phone: b.phone, email: b.email, password: b.password, locale: b.locale, silent };
    let device = b.device_token.or(caller.device.clone());
    let caller = caller.with_device(device);
    let base = super::compat::base_url(s.webhooks.public_url.as_deref(), s.webhooks.tls, &headers, &uri);
    Ok((StatusCode::ACCEPTED, Json(FlowView::new(s.accounts.signup(&caller, req).await?, &base))))
}

/// Starts a login: passwordless with `phone`, or `identifier` + `password` then a code. The
/// answer is the same whether or not the account exists or the password is right.
#[utoipa::path(post, path = "/api/auth/login", tag = "accounts", request_body = LoginBody, security(()),
    responses((status = 202, body = FlowView), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(s): State<AppState>,
    EndUser(caller): EndUser,
    headers: HeaderMap,
    uri: axum::http::Uri,
    ApiJson(b): ApiJson<LoginBody>,
) -> Result<impl IntoResponse, ApiError> {
    let silent = b.silent.unwrap_or(false);
    let req = match (b.phone, b.identifier, b.password) {
        (Some(phone), None, None) => LoginRequest::Phone { phone, locale: b.locale, silent },
        (None, Some(identifier), Some(password)) => LoginRequest::Password { identifier, password, locale: b.locale },
        _ => return Err(VerifyError::invalid(Field::Login, "give either `phone`, or `identifier` and `password`").into()),
    };
    let device = b.device_token.or(caller.device.clone());
    let caller = caller.with_device(device);
    if silent && matches!(req, LoginRequest::Password { .. }) {
        return Err(VerifyError::invalid(Field::Silent, "only passwordless logins (`phone`) can be silent").into());
    }
    let base = super::compat::base_url(s.webhooks.public_url.as_deref(), s.webhooks.tls, &headers, &uri);
    Ok((StatusCode::ACCEPTED, Json(FlowView::new(s.accounts.login(&caller, req).await?, &base))))
}

/// Checks a flow's code (or, with `silent: true`, that its device's operator confirmed the
/// number): signs in (tokens, or the session cookie).
#[utoipa::path(post, path = "/api/auth/verify", tag = "accounts", request_body = VerifyBody, security(()),
    responses((status = 200, body = TokenView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "no_silent_check: `silent: true`, but this flow's operator check has not matched"),
        (status = 410, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn verify(
    State(s): State<AppState>,
    EndUser(caller): EndUser,
    headers: HeaderMap,
    ApiJson(b): ApiJson<VerifyBody>,
) -> Result<Response, ApiError> {
    let kind = match b.session.as_deref() {
        None | Some("token") => SessionKind::App,
        Some("cookie") => SessionKind::Browser,
        Some(_) => return Err(VerifyError::invalid(Field::Session, "must be `cookie` or `token`").into()),
    };
    let verified = if b.silent == Some(true) {
        if !b.code.is_empty() {
            return Err(VerifyError::invalid(Field::Code, "give either `code` or `silent: true`").into());
        }
        s.accounts.verify_silent(&caller, &b.flow_id, b.proof.as_deref().unwrap_or_default(), kind, user_agent(&headers), None).await?
    } else {
        s.accounts.verify(&caller, &b.flow_id, &b.code, kind, user_agent(&headers), None).await?
    };
    match verified {
        // A phone or e-mail change is verified by its own user (`/api/me/phone/verify`,
        // `/api/me/email/verify`), never here.
        Verified::PhoneChanged(_) | Verified::EmailChanged(_) => Err(VerifyError::FlowNotFound.into()),
        Verified::SignedIn(done) => {
            let cookie =
                done.cookie.as_ref().map(|c| set_session(s.secure_cookies, Some(c), s.accounts.settings().session_max_days * 86_400));
            let device_token = s.accounts.device_token(&done.user);
            let device_cookie = done.cookie.as_ref().map(|_| set_device(s.secure_cookies, &device_token));
            let body = TokenView {
                device_token,
                access_token: done.access_token,
                token_type: "Bearer",
                expires_in: done.expires_in,
                // Exposed only for the response body, which alone carries it to the app.
                refresh_token: done.refresh_token.as_ref().map(|t| t.expose_secret().to_string()),
                user: done.user.into(),
            };
            let mut response = Json(body).into_response();
            for c in cookie.into_iter().chain(device_cookie) {
                response.headers_mut().append(header::SET_COOKIE, c);
            }
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        }
    }
}

/// Sends the flow's code again (after `resend_after` seconds).
#[utoipa::path(post, path = "/api/auth/resend", tag = "accounts", request_body = FlowBody, security(()),
    responses((status = 202, body = FlowView), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn resend(State(s): State<AppState>, EndUser(caller): EndUser, ApiJson(b): ApiJson<FlowBody>) -> Result<impl IntoResponse, ApiError> {
    let channel = b
        .channel
        .as_deref()
        .map(|c| phonegate_core::Channel::parse(c).ok_or_else(|| VerifyError::invalid(Field::Channel, "must be sms, voice or whatsapp")))
        .transpose()?;
    Ok(accepted(s.accounts.resend(&caller, &b.flow_id, b.locale, channel).await?))
}

/// Trades a refresh token for a new access token and refresh token (the old one is spent).
#[utoipa::path(post, path = "/api/auth/refresh", tag = "accounts", request_body = RefreshBody, security(()),
    responses((status = 200, body = RefreshedView), (status = 401, body = ErrorBody)))]
async fn refresh(State(s): State<AppState>, EndUser(caller): EndUser, ApiJson(b): ApiJson<RefreshBody>) -> Result<Response, ApiError> {
    let (access_token, refresh_token, expires_in) = s.accounts.refresh(&caller, &b.refresh_token).await?;
    let body = RefreshedView { access_token, token_type: "Bearer", expires_in, refresh_token: refresh_token.expose_secret().to_string() };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Ends this session (or, with `all`, every session of the account).
#[utoipa::path(post, path = "/api/auth/logout", tag = "accounts", request_body = LogoutBody,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "csrf_failed: signed in by the session cookie, but not sent from this server's own pages")))]
async fn logout(State(s): State<AppState>, me: SignedIn, body: Bytes) -> Result<Response, ApiError> {
    let b: LogoutBody = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", e.to_string()))?
    };
    s.accounts.logout(&me.caller, &me.principal, b.all).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if me.by_cookie {
        response.headers_mut().insert(header::SET_COOKIE, set_session(s.secure_cookies, None, 0));
    }
    Ok(response)
}

/// The signed-in user (session cookie or bearer access token).
#[utoipa::path(get, path = "/api/me", tag = "accounts", responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
async fn me(State(s): State<AppState>, me: SignedIn) -> Result<Json<UserView>, ApiError> {
    Ok(Json(s.accounts.me(&me.principal).await?.into()))
}

/// Deletes the account: its sessions and refresh tokens stop working at once.
#[utoipa::path(delete, path = "/api/me", tag = "accounts",
    responses((status = 204), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "reauthentication_required: the last login is older than `[accounts] reauth`; csrf_failed: signed in by the session cookie, but not sent from this server's own pages")))]
async fn delete_me(State(s): State<AppState>, me: SignedIn) -> Result<Response, ApiError> {
    s.accounts.delete_account(&me.caller, &me.principal).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if me.by_cookie {
        response.headers_mut().insert(header::SET_COOKIE, set_session(s.secure_cookies, None, 0));
    }
    Ok(response)
}

/// The account's live sessions (devices), newest first.
#[utoipa::path(get, path = "/api/me/sessions", tag = "accounts", responses((status = 200, body = SessionsView), (status = 401, body = ErrorBody)))]
async fn sessions(State(s): State<AppState>, me: SignedIn) -> Result<Json<SessionsView>, ApiError> {
    let list = s.accounts.sessions(&me.principal).await?;
    Ok(Json(SessionsView { sessions: list.into_iter().map(|x| session_view(x, &me.principal.session_id)).collect() }))
}

/// Ends one session of the account.
#[utoipa::path(delete, path = "/api/me/sessions/{id}", tag = "accounts",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "csrf_failed: signed in by the session cookie, but not sent from this server's own pages"),
        (status = 404, body = ErrorBody)))]
async fn revoke_session(State(s): State<AppState>, me: SignedIn, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.accounts.revoke_session(&me.caller, &me.principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a change of the account's number: a code goes to the new number.
#[utoipa::path(post, path = "/api/me/phone", tag = "accounts", request_body = PhoneBody,
    responses((status = 202, body = FlowView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "reauthentication_required: the last login is older than `[accounts] reauth`; csrf_failed: signed in by the session cookie, but not sent from this server's own pages")))]
async fn change_phone(State(s): State<AppState>, me: SignedIn, ApiJson(b): ApiJson<PhoneBody>) -> Result<impl IntoResponse, ApiError> {
    Ok(accepted(s.accounts.change_phone(&me.caller, &me.principal, &b.phone, b.locale).await?))
}

/// Checks the code sent to the new number: the account's number is changed.
#[utoipa::path(post, path = "/api/me/phone/verify", tag = "accounts", request_body = CodeBody,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "csrf_failed: signed in by the session cookie, but not sent from this server's own pages"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn verify_phone(State(s): State<AppState>, me: SignedIn, ApiJson(b): ApiJson<CodeBody>) -> Result<Json<UserView>, ApiError> {
    match s.accounts.verify(&me.caller, &b.flow_id, &b.code, SessionKind::App, None, Some(&me.principal)).await? {
        Verified::PhoneChanged(user) => Ok(Json(user.into())),
        Verified::SignedIn(_) | Verified::EmailChanged(_) => Err(VerifyError::FlowNotFound.into()),
    }
}

/// A public signing key (RFC 7517).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Jwk {
    /// `OKP` (Ed25519), `EC` (P-256) or `RSA` (RS256, OpenID ID tokens).
    kty: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    /// An RSA key's modulus and exponent.
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    kid: String,
    alg: String,
    #[serde(rename = "use")]
    use_: String,
}

#[derive(Serialize, ToSchema)]
pub struct JwkSet {
    keys: Vec<Jwk>,
}

/// The public keys access tokens are signed with (JWK set).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "accounts", security(()), responses((status = 200, body = JwkSet)))]
async fn jwks(State(s): State<AppState>) -> Result<Response, ApiError> {
    let keys = s.accounts.jwks().await?["keys"].as_array().cloned().unwrap_or_default();
    let keys = keys.into_iter().filter_map(|k| serde_json::from_value(k).ok()).collect();
    let mut response = Json(JwkSet { keys }).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    // Public keys: any origin may read them (a browser app checking an ID token).
    response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    Ok(response)
}

/// For reverse proxies (nginx `auth_request`, Traefik/Caddy forward auth): 200 with the user in
/// `X-Phonegate-User`, `X-Phonegate-User-Id` and `X-Phonegate-Phone` for a valid session or
/// access token, else 401.
#[utoipa::path(get, path = "/api/auth/forward", tag = "accounts", responses((status = 200), (status = 401, body = ErrorBody)))]
async fn forward(State(s): State<AppState>, me: SignedIn) -> Result<Response, ApiError> {
    // A token's session may have ended since it was issued (logout, a removed member): checked
    // in the store at most every `[accounts] revocation_check`.
    if me.principal.claims.is_some() {
        s.accounts.require_live(&me.principal).await?;
    }
    let (username, id, phone) = match &me.principal.claims {
        Some(c) => (c.preferred_username.clone(), c.sub.clone(), c.phone_number.clone()),
        None => {
            let u = s.accounts.me(&me.principal).await?;
            (u.username, u.id, u.phone.as_str().to_string())
        }
    };
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    for (name, value) in [("x-phonegate-user", username), ("x-phonegate-user-id", id), ("x-phonegate-phone", phone)] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
