//! The account pages: sign up, log in (by number, or password then code), enter the code, and
//! the account (phone, e-mail, password, devices, renew, log out). Server-rendered, no JavaScript, English or
//! German. Every form carries a CSRF token bound to the browser's anti-forgery cookie; every
//! redirect goes to phonegate's own pages or to a configured host.
mod account;
mod admin;
mod ctx;
pub(super) mod device;
pub mod docs;
mod email;
mod home;
mod oidc;
pub mod outbox;
mod password;
mod silent;
mod step;
mod texts;

use super::outbox::OutboxReader;
use super::session::set_session;
use super::{ApiError, AppState};
use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use phonegate_core::VerifyError;
use phonegate_core::accounts::flows::{LoginRequest, SignupRequest};
use phonegate_core::accounts::{FlowStarted, SessionKind, Verified};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use texts::Texts;

use account::{account, account_page};
pub use ctx::PageCtx;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home::page))
        .route("/signup", get(signup_page).post(signup_submit))
        .route("/login", get(login_page).post(login_submit))
        .route("/login/code", get(code_page).post(code_submit))
        .route("/login/resend", post(resend_submit))
        .route("/login/silent", post(silent::continue_submit))
        .route("/login/fallback", post(silent::fallback_submit))
        .route("/assets/silent.js", get(silent::script))
        .route("/integrations/{client}/verify", get(step::start).post(step::submit))
        .route("/account", get(account_page))
        .route("/account/phone", post(phone_submit))
        .route("/account/password", post(password::submit))
        .route("/account/email", post(email::submit))
        .route("/account/email/verify", post(email::verify_submit))
        .route("/account/renew", post(renew_submit))
        .route("/account/apps/revoke", post(account::revoke_app_submit))
        .route("/account/sessions/{id}/revoke", post(revoke_submit))
        .route("/logout", post(logout_submit))
        .route("/dev/outbox/flow/{flow}", get(dev_message))
        .merge(admin::routes())
        .merge(oidc::routes())
}

/// Where to go after login: a path on this server, or a URL on a configured host; anything
/// else (other hosts, `//host`, backslashes, user info, other schemes) is dropped.
pub fn safe_return(hosts: &[String], raw: &str) -> Option<String> {
    if raw.is_empty() || raw.len() > 4096 || raw.chars().any(|c| c.is_control() || c == '\\' || c.is_whitespace()) {
        return None;
    }
    if raw.starts_with('/') {
        return (!raw.starts_with("//")).then(|| raw.to_string());
    }
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "https" | "http") || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let host = url.host_str()?;
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    hosts.iter().any(|h| h.eq_ignore_ascii_case(&authority)).then(|| url.to_string())
}

fn return_to(s: &AppState, raw: Option<&str>) -> String {
    raw.and_then(|r| safe_return(&s.accounts.settings().return_hosts, r)).unwrap_or_default()
}

fn code_url(flow: &str, return_to: &str) -> String {
    let mut url = format!("/login/code?flow={}", urlencode(flow));
    if !return_to.is_empty() {
        url.push_str(&format!("&return_to={}", urlencode(return_to)));
    }
    url
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn status_of(e: &VerifyError) -> StatusCode {
    super::error::status(e.kind())
}

// --- templates ------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage<'a> {
    t: &'a Texts,
    csrf: String,
    error: Option<String>,
    notice: Option<&'a str>,
    username: String,
    phone: String,
    email: String,
    return_to: String,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    t: &'a Texts,
    csrf: String,
    error: Option<String>,
    phone: String,
    identifier: String,
    return_to: String,
}

#[derive(Template)]
#[template(path = "code.html")]
struct CodePage<'a> {
    t: &'a Texts,
    csrf: String,
    flow: String,
    error: Option<String>,
    notice: Option<&'a str>,
    return_to: String,
    outbox: bool,
    /// The path of the flow's check link while its silent check waits for the device.
    check: Option<String>,
    /// The device came back: matched (continue, with the device's proof) or a code went by SMS.
    silent_done: bool,
    silent_sms: bool,
    proof: String,
    /// The other channels the login workflow offers ("Call me instead").
    channels: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    t: &'a Texts,
    title: &'a str,
    message: &'a str,
    link: &'a str,
    link_text: &'a str,
}

// --- forms ----------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct ReturnQuery {
    return_to: Option<String>,
    /// An invite link's invite id (the sign-up page fills in its number).
    invite: Option<String>,
    flow: Option<String>,
    done: Option<String>,
    /// The flow's check link token (`/silent/{check}`), right after a silent flow started.
    check: Option<String>,
    /// Where the device's operator step ended: `done` or `sms`.
    silent: Option<String>,
    /// After `done`: the device's proof of the match.
    proof: Option<String>,
    /// The e-mail change waiting for its code (the account page's e-mail section).
    email_flow: Option<String>,
    /// The login page's number, pre-filled (an OpenID `login_hint`).
    phone: Option<String>,
    /// Show the login page even to a signed-in browser (an OpenID client asked for a new login).
    reauth: Option<String>,
}

#[derive(Deserialize)]
struct SignupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: SecretString,
    return_to: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    phone: Option<String>,
    identifier: Option<String>,
    password: Option<SecretString>,
    return_to: Option<String>,
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    flow: String,
    #[serde(default)]
    code: String,
    return_to: Option<String>,
    /// Send the code by another channel of the login workflow (`/login/resend`).
    channel: Option<String>,
    /// The silent step's proof (`/login/silent`).
    #[serde(default)]
    proof: String,
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
    phone: Option<String>,
    all: Option<String>,
}

// --- handlers -------------------------------------------------------------------------------

async fn signup_page(State(s): State<AppState>, ctx: PageCtx, Query(q): Query<ReturnQuery>) -> Response {
    let link = match q.invite.as_deref().map(|id| s.accounts.invite_by_link(id)) {
        Some(found) => match found.await {
            Ok(link) => link,
            Err(e) => return ctx.failed(&s, &e),
        },
        None => None,
    };
    // An invite that ended says so; a pending one fills in the form.
    let ended = link.as_ref().is_some_and(|(_, status)| *status != "pending");
    let invite = link.filter(|(_, status)| *status == "pending").map(|(i, _)| i);
    let page = SignupPage {
        t: ctx.t,
        csrf: ctx.csrf(&s),
        error: ended.then(|| ctx.t.invite_ended.to_string()),
        notice: invite.as_ref().map(|_| ctx.t.invited),
        username: invite.as_ref().and_then(|i| i.username.clone()).unwrap_or_default(),
        phone: invite.map(|i| i.phone.as_str().to_string()).unwrap_or_default(),
        email: String::new(),
        return_to: return_to(&s, q.return_to.as_deref()),
    };
    ctx.render(&s, StatusCode::OK, &page)
}

async fn signup_submit(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<SignupForm>) -> Response {
    if let Some(r) = ctx.forged(&s, &f.csrf) {
        return r;
    }
    let back = return_to(&s, f.return_to.as_deref());
    let req = SignupRequest {
        username: f.username.trim().to_string(),
        phone: f.phone.clone(),
        email: Some(f.email.trim().to_string()).filter(|e| !e.is_empty()),
        password: Some(f.password).filter(|p| !p.expose_secret().is_empty()),
        locale: ctx.locale(),
        silent: true,
    };
    match s.accounts.signup(&ctx.caller, req).await {
        Ok(flow) => silent::to_flow(&s, &ctx, &flow, &back),
        Err(e) => {
            let page = SignupPage {
                t: ctx.t,
                csrf: ctx.csrf(&s),
                error: Some(ctx.t.error(&e)),
                notice: None,
                username: f.username,
                phone: f.phone,
                email: f.email,
                return_to: back,
            };
            ctx.render(&s, status_of(&e), &page)
        }
    }
}

async fn login_page(State(s): State<AppState>, ctx: PageCtx, Query(q): Query<ReturnQuery>) -> Response {
    let back = return_to(&s, q.return_to.as_deref());
    if q.reauth.is_none() {
        match ctx.principal(&s).await {
            Ok(Some(_)) => return ctx.redirect(&s, if back.is_empty() { "/account" } else { &back }),
            Ok(None) => {}
            Err(r) => return r,
        }
    }
    let phone = q.phone.filter(|p| p.len() <= 20 && p.chars().all(|c| c.is_ascii_digit() || c == '+')).unwrap_or_default();
    let page = LoginPage { t: ctx.t, csrf: ctx.csrf(&s), error: None, phone, identifier: String::new(), return_to: back };
    ctx.render(&s, StatusCode::OK, &page)
}

async fn login_submit(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<LoginForm>) -> Response {
    if let Some(r) = ctx.forged(&s, &f.csrf) {
        return r;
    }
    let back = return_to(&s, f.return_to.as_deref());
    let req = match (&f.phone, &f.identifier, f.password) {
        (Some(phone), _, _) => LoginRequest::Phone { phone: phone.clone(), locale: ctx.locale(), silent: true },
        (None, Some(identifier), Some(password)) => {
            LoginRequest::Password { identifier: identifier.clone(), password, locale: ctx.locale() }
        }
        _ => LoginRequest::Password { identifier: String::new(), password: SecretString::default(), locale: None },
    };
    let result: Result<FlowStarted, VerifyError> = s.accounts.login(&ctx.caller, req).await;
    match result {
        Ok(flow) => silent::to_flow(&s, &ctx, &flow, &back),
        Err(e) => {
            let page = LoginPage {
                t: ctx.t,
                csrf: ctx.csrf(&s),
                error: Some(ctx.t.error(&e)),
                phone: f.phone.unwrap_or_default(),
                identifier: f.identifier.unwrap_or_default(),
                return_to: back,
            };
            ctx.render(&s, status_of(&e), &page)
        }
    }
}

fn code_page_of(
    s: &AppState,
    ctx: &PageCtx,
    flow: String,
    error: Option<String>,
    notice: Option<&'static str>,
    back: String,
) -> CodePage<'static> {
    CodePage {
        t: ctx.t,
        csrf: ctx.csrf(s),
        flow,
        error,
        notice,
        return_to: back,
        outbox: s.outbox,
        check: None,
        silent_done: false,
        silent_sms: false,
        proof: String::new(),
        channels: {
            let mut offered: Vec<&'static str> = Vec::new();
            for step in s.accounts.settings().workflow.steps() {
                let c = step.channel.as_str();
                if step.channel != phonegate_core::Channel::Sms && !offered.contains(&c) {
                    offered.push(c);
                }
            }
            offered
        },
    }
}

async fn code_page(State(s): State<AppState>, ctx: PageCtx, Query(q): Query<ReturnQuery>) -> Response {
    let Some(flow) = q.flow.filter(|f| !f.is_empty() && f.len() <= 64) else { return ctx.redirect(&s, "/login") };
    let notice = (q.done.as_deref() == Some("resent")).then_some(ctx.t.resent);
    let raw_back = match q.return_to {
        Some(r) => Some(r),
        None if q.silent.as_deref() == Some("done") => silent::kept_return(&s, &ctx),
        None => None,
    };
    let mut page = code_page_of(&s, &ctx, flow, None, notice, return_to(&s, raw_back.as_deref()));
    page.check = q.check.filter(|c| silent::is_token(c)).map(|c| format!("/silent/{c}"));
    page.silent_done = q.silent.as_deref() == Some("done");
    page.proof = q.proof.filter(|p| p.len() <= 64).unwrap_or_default();
    page.silent_sms = q.silent.as_deref() == Some("sms");
    let mut response = ctx.render(&s, StatusCode::OK, &page);
    if page.check.is_some() || page.silent_done {
        silent::allow_script(&mut response);
    }
    response
}

async fn code_submit(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<CodeForm>) -> Response {
    if let Some(r) = ctx.forged(&s, &f.csrf) {
        return r;
    }
    let back = return_to(&s, f.return_to.as_deref());
    let code: String = f.code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    let result = if code.is_empty() || !code.chars().all(|c| c.is_ascii_digit()) {
        Err(VerifyError::CodeIncorrect { attempts_left: 0 })
    } else {
        let owner = match ctx.principal(&s).await {
            Ok(owner) => owner,
            Err(r) => return r,
        };
        s.accounts.verify(&ctx.caller, &f.flow, &code, SessionKind::Browser, ctx.device(), owner.as_ref()).await
    };
    verified_page(&s, &ctx, f.flow, back, result)
}

/// Where a verified flow leads (signed in: the return address with the session cookie), or the
/// code page with the error.
fn verified_page(s: &AppState, ctx: &PageCtx, flow: String, back: String, result: Result<Verified, VerifyError>) -> Response {
    match result {
        Ok(Verified::SignedIn(done)) => {
            let mut response = ctx.redirect(s, if back.is_empty() { "/account" } else { &back });
            let max_age = s.accounts.settings().session_max_days * 86_400;
            response.headers_mut().append(header::SET_COOKIE, set_session(s.secure_cookies, done.cookie.as_ref(), max_age));
            let device = s.accounts.device_token(&done.user);
            response.headers_mut().append(header::SET_COOKIE, super::session::set_device(s.secure_cookies, &device));
            response
        }
        Ok(Verified::PhoneChanged(_)) => ctx.redirect(s, "/account?done=phone"),
        Ok(Verified::EmailChanged(_)) => ctx.redirect(s, "/account?done=email"),
        Err(e) => {
            let page = code_page_of(s, ctx, flow, Some(ctx.t.error(&e)), None, back);
            ctx.render(s, status_of(&e), &page)
        }
    }
}

async fn resend_submit(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<CodeForm>) -> Response {
    if let Some(r) = ctx.forged(&s, &f.csrf) {
        return r;
    }
    let back = return_to(&s, f.return_to.as_deref());
    let channel = f.channel.as_deref().and_then(phonegate_core::Channel::parse);
    match s.accounts.resend(&ctx.caller, &f.flow, ctx.locale(), channel).await {
        Ok(_) => ctx.redirect(&s, &format!("{}&done=resent", code_url(&f.flow, &back))),
        Err(e) => {
            let page = code_page_of(&s, &ctx, f.flow, Some(ctx.t.error(&e)), None, back);
            ctx.render(&s, status_of(&e), &page)
        }
    }
}

async fn phone_submit(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<CsrfForm>) -> Response {
    if let Some(r) = ctx.forged(&s, &f.csrf) {
        return r;
    }
    let p = match ctx.signed_in(&s, "/login").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match s.accounts.change_phone(&ctx.caller, &p, f.phone.as_deref().unwrap_or_default(), ctx.locale()).await {
        Ok(flow) => ctx.redirect(&s, &code_url(&flow.flow_id, "")),
        Err(e) => account(&s, &ctx, &p, Some(ctx.t.error(&e)), None, status_of(&e)).await,
    }
}

async fn renew_submit(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<CsrfForm>) -> Response {
    if let Some(r) = ctx.forged(&s, &f.csrf) {
        return r;
    }
    let p = match ctx.signed_in(&s, "/login").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match s.accounts.renew(&p).await {
        Ok(secret) => {
            let mut response = ctx.redirect(&s, "/account?done=renewed");
            let max_age = s.accounts.settings().session_max_days * 86_400;
            response.headers_mut().append(header::SET_COOKIE, set_session(s.secure_cookies, Some(&secret), max_age));
            response
        }
        Err(e) if e.detail().is_some() => ctx.failed(&s, &e),
        Err(_) => ctx.redirect(&s, "/login"),
    }
}

async fn revoke_submit(State(s): State<AppState>, ctx: PageCtx, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> Response {
    if let Some(r) = ctx.forged(&s, &f.csrf) {
        return r;
    }
    let p = match ctx.signed_in(&s, "/login").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match s.accounts.revoke_session(&ctx.caller, &p, &id).await {
        Ok(()) => ctx.redirect(&s, "/account?done=revoked"),
        Err(e) => account(&s, &ctx, &p, Some(ctx.t.error(&e)), None, status_of(&e)).await,
    }
}

async fn logout_submit(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<CsrfForm>) -> Response {
    if let Some(r) = ctx.forged(&s, &f.csrf) {
        return r;
    }
    let signed_in = match ctx.principal(&s).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(p) = signed_in {
        let all = f.all.as_deref().is_some_and(|v| !v.is_empty() && v != "0");
        // The session lives on if the server failed: say so rather than pretend.
        match s.accounts.logout(&ctx.caller, &p, all).await {
            Err(e) if e.detail().is_some() => return ctx.failed(&s, &e),
            _ => {}
        }
    }
    let mut response = ctx.redirect(&s, "/login");
    response.headers_mut().append(header::SET_COOKIE, set_session(s.secure_cookies, None, 0));
    response
}

/// Development only: the message a flow sent, from the dev outbox (absent with real providers),
/// for a reader of the outbox only (an API key, or a client on this machine).
async fn dev_message(
    State(s): State<AppState>,
    ctx: PageCtx,
    Path(flow): Path<String>,
    reader: Result<OutboxReader, ApiError>,
) -> Response {
    if !s.outbox {
        return StatusCode::NOT_FOUND.into_response();
    }
    // A flow belongs to the accounts service: only an admin key or this machine sees it.
    match reader {
        Ok(OutboxReader(caller)) if caller.require_admin().is_ok() => {}
        Ok(_) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => return e.into_response(),
    }
    let message = match s.accounts.dev_message(&flow).await {
        Ok(message) => message,
        Err(e) => return ctx.failed(&s, &e),
    };
    let body = message.map(|m| m.body).unwrap_or_else(|| "No message was stored for this login (yet).".into());
    let page = MessagePage { t: ctx.t, title: "Dev outbox", message: &body, link: "/login", link_text: ctx.t.back };
    ctx.render(&s, StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::safe_return;

    #[test]
    fn only_own_paths_and_configured_hosts_are_return_targets() {
        let hosts = vec!["app.example.com".to_string(), "127.0.0.1:9000".to_string()];
        assert_eq!(safe_return(&hosts, "/app/"), Some("/app/".into()));
        assert_eq!(safe_return(&hosts, "https://app.example.com/x?y=1"), Some("https://app.example.com/x?y=1".into()));
        assert_eq!(safe_return(&hosts, "http://127.0.0.1:9000/"), Some("http://127.0.0.1:9000/".into()));
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https:evil.example",
            "https://evil.example/",
            "https://app.example.com.evil.example/",
            "https://app.example.com@evil.example/",
            "https://user@app.example.com/",
            "javascript:alert(1)",
            "http://127.0.0.1:9001/",
            "/\t/evil.example",
            "",
        ] {
            assert_eq!(safe_return(&hosts, bad), None, "{bad}");
        }
    }
}
