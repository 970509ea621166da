//! How a browser or app proves who it is to the account endpoints: the session cookie or an
//! access token (`Authorization: Bearer` with a JWT). Also the cookies themselves: the session
//! cookie (`__Host-` and `Secure` over HTTPS) and the anti-forgery cookie the page forms use.
use super::AppState;
use super::auth::meta;
use super::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use phonegate_core::Caller;
use phonegate_core::accounts::Principal;
use secrecy::{ExposeSecret, SecretString};

/// The session cookie's name. Over HTTPS every cookie of ours has the `__Host-` prefix, which
/// browsers accept only with `Secure`, `Path=/` and no `Domain`, so no sibling host can set or
/// shadow it; the unprefixed name is then never read (a sibling host could have planted it).
pub fn session_cookie(secure: bool) -> &'static str {
    if secure { "__Host-phonegate_session" } else { "phonegate_session" }
}

/// The anti-forgery cookie's name (prefixed over HTTPS, as the session cookie).
pub fn csrf_cookie(secure: bool) -> &'static str {
    if secure { "__Host-phonegate_csrf" } else { "phonegate_csrf" }
}

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// `Set-Cookie` for the session: `max_age` seconds, or removal with `None`.
pub fn set_session(secure: bool, value: Option<&SecretString>, max_age: i64) -> HeaderValue {
    let name = session_cookie(secure);
    let attrs = if secure { "; Secure" } else { "" };
    let text = match value.map(ExposeSecret::expose_secret) {
        Some(v) => format!("{name}={v}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{attrs}"),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{attrs}"),
    };
    HeaderValue::from_str(&text).expect("cookie values are URL-safe base64")
}

/// `Set-Cookie` for the anti-forgery cookie (a browser-lifetime random value).
pub fn set_csrf(secure: bool, value: &str) -> HeaderValue {
    let attrs = if secure { "; Secure" } else { "" };
    let name = csrf_cookie(secure);
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{attrs}")).expect("URL-safe value")
}

/// The caller of an end user's request (no API key): what budgets and the audit log see, with
/// the browser's device cookie.
pub fn end_user(parts: &Parts) -> Caller {
    let m = meta(parts);
    Caller::end_user(m.ip, m.request_id).with_device(device_cookie(&parts.headers).map(str::to_string))
}

/// The device cookie (`accounts::device`): proof that this browser verified a number. Either
/// name is read: a planted one is worth nothing, since it proves only the planter's own number.
pub fn device_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, "__Host-phonegate_device").or_else(|| cookie(headers, "phonegate_device"))
}

/// `Set-Cookie` for the device cookie (`__Host-` and `Secure` over HTTPS), for 90 days.
pub fn set_device(secure: bool, token: &str) -> HeaderValue {
    let (name, attrs) = if secure { ("__Host-phonegate_device", "; Secure") } else { ("phonegate_device", "") };
    let max_age = phonegate_core::accounts::device::DEVICE_DAYS * 86_400;
    HeaderValue::from_str(&format!("{name}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{attrs}")).expect("URL-safe value")
}

/// An end user's request, for the public account endpoints.
pub struct EndUser(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for EndUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(EndUser(end_user(parts)))
    }
}

/// A signed-in user: by access token (a bearer JWT) or by session cookie.
pub struct SignedIn {
    pub principal: Principal,
    pub caller: Caller,
    /// Whether the session cookie (not a token) authenticated the request.
    pub by_cookie: bool,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let caller = end_user(parts);
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        if let Some(token) = bearer {
            let principal = s.accounts.authenticate_bearer(&SecretString::from(token)).await?;
            return Ok(SignedIn { principal, caller, by_cookie: false });
        }
        let Some(value) = cookie(&parts.headers, session_cookie(s.secure_cookies)) else {
            return Err(phonegate_core::VerifyError::Unauthenticated.into());
        };
        if !from_own_pages(parts, s) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "a request signed in by the session cookie that changes something must come from this server's own pages \
                 (Sec-Fetch-Site: same-origin, or an Origin equal to this server's)",
            ));
        }
        let principal = s.accounts.authenticate_cookie(&SecretString::from(value)).await?;
        Ok(SignedIn { principal, caller, by_cookie: true })
    }
}

/// Whether a request the session cookie authenticates may act (no cross-site request forgery):
/// reads always; a state-changing request only from this server's own pages. `Sec-Fetch-Site`
/// is believed when sent (`same-origin`, or `none` for what the user typed); else `Origin` must
/// be this server's origin (the public URL's, or the request's Host with this server's scheme).
/// A request with neither comes from no browser (curl, an app) and cannot be forged by a site:
/// browsers send `Origin` on every cross-origin request that is not a GET or HEAD.
fn from_own_pages(parts: &Parts, s: &AppState) -> bool {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let h = &parts.headers;
    if let Some(site) = h.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = h.get(header::ORIGIN) else { return true };
    let own = super::compat::base_url(s.webhooks.public_url.as_deref(), s.webhooks.tls, h, &parts.uri);
    let origin_of = |u: &str| url::Url::parse(u).ok().map(|u| u.origin()).filter(url::Origin::is_tuple);
    let theirs = origin.to_str().ok().and_then(origin_of);
    theirs.is_some() && theirs == origin_of(&own)
}
