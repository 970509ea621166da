//! The invites' page: invite a number, the group's invite code (and replacing it), every invite
//! with its status; send a pending one again or revoke it.
use super::super::{CsrfForm, PageCtx, status_of, texts::Texts};
use super::texts::AdminTexts;
use super::{Frame, Section, admin, admin_post, fmt, words};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use phonegate_core::VerifyError;
use phonegate_core::accounts::Principal;
use serde::Deserialize;

struct InviteRow {
    id: String,
    phone: String,
    username: Option<String>,
    status: &'static str,
    expires: String,
    pending: bool,
}

#[derive(Template)]
#[template(path = "admin_invites.html")]
struct InvitesPage {
    t: &'static Texts,
    a: &'static AdminTexts,
    frame: Frame,
    csrf: String,
    invites: Vec<InviteRow>,
    invite_code: String,
}

/// The page's query: the notice after an action.
#[derive(Deserialize, Default)]
pub(super) struct InvitesQuery {
    done: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    phone: String,
    username: Option<String>,
}

pub(super) async fn page(State(s): State<AppState>, ctx: PageCtx, Query(q): Query<InvitesQuery>) -> Response {
    match admin(&s, &ctx, Section::Invites).await {
        Ok(p) => render(&s, &ctx, &p, a_notice(&ctx, q.done.as_deref()), None, StatusCode::OK).await,
        Err(r) => r,
    }
}

fn a_notice(ctx: &PageCtx, done: Option<&str>) -> Option<&'static str> {
    words(ctx).1.notice(done)
}

async fn render(
    s: &AppState,
    ctx: &PageCtx,
    p: &Principal,
    notice: Option<&'static str>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let (t, a) = words(ctx);
    let loaded = async { Ok::<_, VerifyError>((s.accounts.invites(p).await?, s.accounts.invite_code(p).await?.code)) };
    let (invites, invite_code) = match loaded.await {
        Ok(loaded) => loaded,
        Err(e) => return ctx.failed(s, &e),
    };
    let now = s.clock.now();
    let invites = invites
        .into_iter()
        .map(|i| InviteRow {
            status: a.invite_status(i.status(now)),
            pending: i.status(now) == "pending",
            expires: fmt(i.expires_at),
            id: i.id,
            phone: i.phone.as_str().to_string(),
            username: i.username,
        })
        .collect();
    let page = InvitesPage { t, a, frame: Frame::new(a, Section::Invites, error, notice), csrf: ctx.csrf(s), invites, invite_code };
    ctx.render(s, status, &page)
}

/// After an action: back to the page with a notice, or the page with the error.
async fn after(s: &AppState, ctx: &PageCtx, p: &Principal, result: Result<(), VerifyError>, done: &str) -> Response {
    match result {
        Ok(()) => ctx.redirect(s, &format!("/admin/invites?done={done}")),
        Err(e) => render(s, ctx, p, None, Some(ctx.t.error(&e)), status_of(&e)).await,
    }
}

pub(super) async fn invite(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<InviteForm>) -> Response {
    let p = match admin_post(&s, &ctx, &f.csrf, Section::Invites).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let username = f.username.as_deref().map(str::trim).filter(|u| !u.is_empty());
    let result = s.accounts.invite(&ctx.caller, &p, &f.phone, username).await.map(|_| ());
    after(&s, &ctx, &p, result, "invited").await
}

pub(super) async fn resend(State(s): State<AppState>, ctx: PageCtx, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> Response {
    let p = match admin_post(&s, &ctx, &f.csrf, Section::Invites).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let result = s.accounts.resend_invite(&ctx.caller, &p, &id).await.map(|_| ());
    after(&s, &ctx, &p, result, "resent").await
}

pub(super) async fn revoke(State(s): State<AppState>, ctx: PageCtx, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> Response {
    let p = match admin_post(&s, &ctx, &f.csrf, Section::Invites).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let result = s.accounts.revoke_invite(&ctx.caller, &p, &id).await;
    after(&s, &ctx, &p, result, "revoked").await
}

pub(super) async fn rotate_code(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<CsrfForm>) -> Response {
    let p = match admin_post(&s, &ctx, &f.csrf, Section::Invites).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let result = s.accounts.rotate_invite_code(&ctx.caller, &p).await.map(|_| ());
    after(&s, &ctx, &p, result, "rotated").await
}
