//! The account page (`/account`): the number, the e-mail address, the password, the devices.
use super::texts::Texts;
use super::{PageCtx, ReturnQuery};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use phonegate_core::accounts::Principal;

struct SessionRow {
    id: String,
    device: String,
    ip: String,
    created: String,
    last_seen: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    t: &'a Texts,
    csrf: String,
    error: Option<String>,
    notice: Option<&'a str>,
    username: String,
    phone: String,
    email: Option<String>,
    email_verified: bool,
    /// An e-mail change waiting for its code: the section asks for it.
    email_flow: Option<String>,
    /// Whether the password form asks for the current one.
    has_password: bool,
    sessions: Vec<SessionRow>,
    /// OpenID clients with the person's consent.
    apps: Vec<AppRow>,
    admin: bool,
}

struct AppRow {
    client_id: String,
    name: String,
    scopes: String,
    since: String,
}

/// A flow id as the page may carry it back (what `new_id` makes: letters and digits).
pub(super) fn flow_id(raw: Option<String>) -> Option<String> {
    raw.filter(|f| !f.is_empty() && f.len() <= 64 && f.bytes().all(|b| b.is_ascii_alphanumeric()))
}

pub(super) async fn account_page(State(s): State<AppState>, ctx: PageCtx, Query(q): Query<ReturnQuery>) -> Response {
    let p = match ctx.signed_in(&s, "/login").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let notice = match q.done.as_deref() {
        Some("phone") => Some(ctx.t.phone_changed),
        Some("email") => Some(ctx.t.email_saved),
        Some("revoked") => Some(ctx.t.revoked),
        Some("renewed") => Some(ctx.t.renewed),
        Some("password") => Some(ctx.t.password_saved),
        Some("app") => Some(ctx.t.app_revoked),
        _ => None,
    };
    account_with(&s, &ctx, &p, (None, notice), flow_id(q.email_flow), StatusCode::OK).await
}

pub(super) async fn account(
    s: &AppState,
    ctx: &PageCtx,
    p: &Principal,
    error: Option<String>,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    account_with(s, ctx, p, (error, notice), None, status).await
}

/// The page with an error or a notice, and the e-mail change waiting for its code.
pub(super) async fn account_with(
    s: &AppState,
    ctx: &PageCtx,
    p: &Principal,
    (error, notice): (Option<String>, Option<&str>),
    email_flow: Option<String>,
    status: StatusCode,
) -> Response {
    let (user, sessions) = match (s.accounts.me(p).await, s.accounts.sessions(p).await) {
        (Ok(u), Ok(list)) => (u, list),
        (Err(e), _) | (_, Err(e)) if e.detail().is_some() => return ctx.failed(s, &e),
        _ => return ctx.redirect(s, "/login"),
    };
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let sessions = sessions
        .into_iter()
        .map(|x| SessionRow {
            current: x.id == p.session_id,
            device: x.device.unwrap_or_else(|| ctx.t.unknown_device.to_string()),
            ip: x.ip.unwrap_or_else(|| "-".into()),
            created: fmt(x.created_at),
            last_seen: fmt(x.last_seen_at),
            id: x.id,
        })
        .collect();
    let apps = match s.oidc.apps(p).await {
        Ok(apps) => apps,
        Err(e) => return ctx.failed(s, &e),
    };
    let apps = apps
        .into_iter()
        .map(|a| AppRow { client_id: a.client_id, name: a.name, scopes: a.scopes.join(", "), since: fmt(a.since) })
        .collect();
    let page = AccountPage {
        apps,
        t: ctx.t,
        csrf: ctx.csrf(s),
        error,
        notice,
        admin: user.is_admin(),
        has_password: user.password_hash.is_some(),
        username: user.username,
        phone: user.phone.as_str().to_string(),
        email_verified: user.email_verified,
        email: user.email,
        email_flow,
        sessions,
    };
    ctx.render(s, status, &page)
}

#[derive(serde::Deserialize)]
pub(super) struct AppForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    client_id: String,
}

/// "Revoke" under "Apps with access": the app's consent and refresh tokens end at once.
pub(super) async fn revoke_app_submit(
    State(s): State<AppState>,
    ctx: PageCtx,
    axum::extract::Form(f): axum::extract::Form<AppForm>,
) -> Response {
    if let Some(r) = ctx.forged(&s, &f.csrf) {
        return r;
    }
    let p = match ctx.signed_in(&s, "/login").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match s.oidc.revoke_app(&ctx.caller, &p, &f.client_id).await {
        Ok(()) => ctx.redirect(&s, "/account?done=app"),
        Err(e) => account(&s, &ctx, &p, Some(ctx.t.error(&e)), None, super::status_of(&e)).await,
    }
}
