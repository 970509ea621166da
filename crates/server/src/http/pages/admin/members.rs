//! The members' page: every member with their masked number, devices and last use; make or
//! unmake admin, remove; a member's devices, each of which can be signed out.
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
use phonegate_core::accounts::admin::{Member, mask_phone};
use serde::Deserialize;

struct MemberRow {
    id: String,
    username: String,
    phone: String,
    admin: bool,
    sessions: u32,
    last_seen: String,
}

struct DeviceRow {
    id: String,
    device: String,
    seen: String,
}

#[derive(Template)]
#[template(path = "admin_members.html")]
struct MembersPage {
    t: &'static Texts,
    a: &'static AdminTexts,
    frame: Frame,
    csrf: String,
    members: Vec<MemberRow>,
    /// The member whose devices are shown, with them.
    devices: Option<(MemberRow, Vec<DeviceRow>)>,
}

/// The page's query: the notice after an action, and the member whose devices to show.
#[derive(Deserialize, Default)]
pub(super) struct MembersQuery {
    done: Option<String>,
    member: Option<String>,
}

fn member_row(a: &AdminTexts, m: &Member) -> MemberRow {
    MemberRow {
        admin: m.user.is_admin(),
        phone: mask_phone(m.user.phone.as_str()),
        sessions: m.sessions,
        last_seen: m.last_seen_at.map(fmt).unwrap_or_else(|| a.never.into()),
        id: m.user.id.clone(),
        username: m.user.username.clone(),
    }
}

pub(super) async fn page(State(s): State<AppState>, ctx: PageCtx, Query(q): Query<MembersQuery>) -> Response {
    match admin(&s, &ctx, Section::Members).await {
        Ok(p) => render(&s, &ctx, &p, q, None, StatusCode::OK).await,
        Err(r) => r,
    }
}

async fn load(s: &AppState, p: &Principal, member: Option<&str>) -> Result<(Vec<Member>, Option<(Member, Vec<DeviceRow>)>), VerifyError> {
    let members = s.accounts.members(p).await?;
    let Some(m) = member.and_then(|id| members.iter().find(|m| m.user.id == id)).cloned() else { return Ok((members, None)) };
    let sessions = s.accounts.member_sessions(p, &m.user.id).await?;
    let rows =
        sessions.into_iter().map(|x| DeviceRow { device: x.device.unwrap_or_default(), seen: fmt(x.last_seen_at), id: x.id }).collect();
    Ok((members, Some((m, rows))))
}

async fn render(s: &AppState, ctx: &PageCtx, p: &Principal, q: MembersQuery, error: Option<String>, status: StatusCode) -> Response {
    let (t, a) = words(ctx);
    let (members, devices) = match load(s, p, q.member.as_deref()).await {
        Ok(loaded) => loaded,
        Err(e) => return ctx.failed(s, &e),
    };
    let devices = devices.map(|(m, mut rows)| {
        rows.iter_mut().filter(|d| d.device.is_empty()).for_each(|d| d.device = t.unknown_device.into());
        (member_row(a, &m), rows)
    });
    let page = MembersPage {
        t,
        a,
        frame: Frame::new(a, Section::Members, error, a.notice(q.done.as_deref())),
        csrf: ctx.csrf(s),
        members: members.iter().map(|m| member_row(a, m)).collect(),
        devices,
    };
    ctx.render(s, status, &page)
}

/// After an action: back to the page with a notice, or the page with the error.
async fn after(s: &AppState, ctx: &PageCtx, p: &Principal, result: Result<(), VerifyError>, done: &str) -> Response {
    match result {
        Ok(()) => ctx.redirect(s, &format!("/admin/members?done={done}")),
        Err(e) => render(s, ctx, p, MembersQuery::default(), Some(ctx.t.error(&e)), status_of(&e)).await,
    }
}

pub(super) async fn action(
    State(s): State<AppState>,
    ctx: PageCtx,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let p = match admin_post(&s, &ctx, &f.csrf, Section::Members).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (result, done) = match action.as_str() {
        "remove" => (s.accounts.remove_member(&ctx.caller, &p, &id).await, "removed"),
        "promote" => (s.accounts.set_admin(&ctx.caller, &p, &id, true).await.map(|_| ()), "promoted"),
        "demote" => (s.accounts.set_admin(&ctx.caller, &p, &id, false).await.map(|_| ()), "demoted"),
        _ => return ctx.redirect(&s, "/admin/members"),
    };
    after(&s, &ctx, &p, result, done).await
}

pub(super) async fn revoke_device(
    State(s): State<AppState>,
    ctx: PageCtx,
    Path((id, session)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let p = match admin_post(&s, &ctx, &f.csrf, Section::Members).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match s.accounts.revoke_member_session(&ctx.caller, &p, &id, &session).await {
        Ok(()) => ctx.redirect(&s, &format!("/admin/members?done=signed_out&member={}#devices", url_safe(&id))),
        Err(e) => render(&s, &ctx, &p, MembersQuery::default(), Some(ctx.t.error(&e)), status_of(&e)).await,
    }
}

/// An id for a query string (ids are `xx_` and URL-safe characters; anything else is dropped).
fn url_safe(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect()
}
