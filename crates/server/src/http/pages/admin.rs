//! The admin console: invite numbers, see and manage invites and members, read the audit log.
//! Every action is a CSRF-checked form over the same core calls as the admin JSON API.
use super::{CsrfForm, PageCtx};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use phonegate_core::VerifyError;
use phonegate_core::accounts::Principal;
use phonegate_core::accounts::admin::{Member, mask_phone};
use phonegate_core::audit::AuditQuery;
use phonegate_core::traffic::Counts;
use serde::Deserialize;

pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/admin", get(console))
        .route("/admin/dashboard", get(dashboard))
        .route("/admin/invites", post(invite))
        .route("/admin/invites/{id}/resend", post(resend))
        .route("/admin/invites/{id}/revoke", post(revoke))
        .route("/admin/members/{id}/{action}", post(member))
        .route("/admin/members/{id}/sessions/{session}/revoke", post(revoke_device))
        .route("/admin/invite-code/rotate", post(rotate_code))
}

struct InviteRow {
    id: String,
    phone: String,
    username: Option<String>,
    status: &'static str,
    expires: String,
    pending: bool,
}

struct MemberRow {
    id: String,
    username: String,
    phone: String,
    admin: bool,
    sessions: u32,
    last_seen: String,
}

struct EventRow {
    kind: String,
    at: String,
    detail: String,
    /// Who caused it (a username where the id is a member's).
    who: String,
    subject: String,
    ip: String,
}

struct DeviceRow {
    id: String,
    device: String,
    seen: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct ConsolePage<'a> {
    t: &'a super::texts::Texts,
    csrf: String,
    error: Option<String>,
    notice: Option<&'a str>,
    invites: Vec<InviteRow>,
    members: Vec<MemberRow>,
    events: Vec<EventRow>,
    invite_code: String,
    /// The member whose devices are shown, with them.
    devices: Option<(MemberRow, Vec<DeviceRow>)>,
    filter: ConsoleQuery,
}

/// The console's query: a notice after an action, a member whose devices to show, and the
/// audit log's filters (what, who, from where, when).
#[derive(Deserialize, Default)]
struct ConsoleQuery {
    done: Option<String>,
    member: Option<String>,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    who: String,
    #[serde(default)]
    ip: String,
    /// A day, `YYYY-MM-DD` (from its start).
    #[serde(default)]
    since: String,
    /// A day, `YYYY-MM-DD` (to its end).
    #[serde(default)]
    until: String,
}

impl ConsoleQuery {
    /// The audit query, with `who` given as a member's username or an id.
    fn audit(&self, members: &[Member]) -> AuditQuery {
        let text = |v: &str| Some(v.trim()).filter(|v| !v.is_empty() && v.len() <= 128).map(str::to_string);
        let day =
            |v: &str| chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").ok().map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc());
        let who =
            text(&self.who).map(|w| members.iter().find(|m| m.user.username.eq_ignore_ascii_case(&w)).map_or(w, |m| m.user.id.clone()));
        AuditQuery {
            kind: text(&self.kind),
            who,
            ip: text(&self.ip),
            since: day(&self.since),
            until: day(&self.until).map(|d| d + chrono::Duration::days(1)),
            limit: 100,
            ..Default::default()
        }
    }
}

#[derive(Deserialize)]
struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    phone: String,
    username: Option<String>,
}

fn fmt(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An admin's form post: a forged one (no matching anti-forgery token) or one from anyone but
/// a signed-in admin gets its refusal as the `Err`.
async fn admin_post(s: &AppState, ctx: &PageCtx, csrf: &str) -> Result<Principal, Response> {
    if let Some(r) = ctx.forged(s, csrf) {
        return Err(r);
    }
    admin(s, ctx).await
}

/// The signed-in admin, or the answer for anyone else: the login page, or 403.
async fn admin(s: &AppState, ctx: &PageCtx) -> Result<Principal, Response> {
    let p = ctx.signed_in(s, "/login?return_to=/admin").await?;
    let admin = match s.accounts.is_admin(&p).await {
        Ok(admin) => admin,
        Err(e) if e.detail().is_some() => return Err(ctx.failed(s, &e)),
        Err(_) => false,
    };
    if !admin {
        let page = super::MessagePage {
            t: ctx.t,
            title: "Admin",
            message: "Only an admin may open the console.",
            link: "/account",
            link_text: ctx.t.back,
        };
        return Err(ctx.render(s, StatusCode::FORBIDDEN, &page));
    }
    Ok(p)
}

/// What the console shows: invites, members, audit events, the invite code, and the devices of
/// the member `q` names.
struct Console {
    invites: Vec<phonegate_core::accounts::invites::Invite>,
    members: Vec<Member>,
    events: Vec<phonegate_core::audit::AuditEvent>,
    invite_code: String,
    devices: Option<Vec<phonegate_core::accounts::Session>>,
}

async fn load(s: &AppState, p: &Principal, q: &ConsoleQuery) -> Result<Console, VerifyError> {
    let (invites, members) = (s.accounts.invites(p).await?, s.accounts.members(p).await?);
    let events = s.accounts.audit_log(p, q.audit(&members)).await?;
    let invite_code = s.accounts.invite_code(p).await?.code;
    let devices = match q.member.as_deref().and_then(|id| members.iter().find(|m| m.user.id == id)) {
        Some(m) => Some(s.accounts.member_sessions(p, &m.user.id).await?),
        None => None,
    };
    Ok(Console { invites, members, events, invite_code, devices })
}

async fn render(s: &AppState, ctx: &PageCtx, p: &Principal, q: ConsoleQuery, error: Option<String>, status: StatusCode) -> Response {
    let now = s.clock.now();
    let Console { invites, members, events, invite_code, devices: listed } = match load(s, p, &q).await {
        Ok(console) => console,
        Err(e) => return ctx.failed(s, &e),
    };
    let name_of = |id: &str| members.iter().find(|m| m.user.id == id).map_or_else(|| id.to_string(), |m| m.user.username.clone());
    let mut devices = None;
    if let (Some(m), Some(list)) = (q.member.as_deref().and_then(|id| members.iter().find(|m| m.user.id == id)), listed) {
        let rows = list
            .into_iter()
            .map(|x| DeviceRow { device: x.device.unwrap_or_else(|| "Unknown device".into()), seen: fmt(x.last_seen_at), id: x.id })
            .collect();
        devices = Some((member_row(m), rows));
    }
    let notice = match q.done.as_deref() {
        Some("invited") => Some("The invite is on its way."),
        Some("resent") => Some("The invite was sent again."),
        Some("revoked") => Some("The invite was revoked."),
        Some("removed") => Some("The member was removed; their devices are signed out."),
        Some("promoted") => Some("The member is now an admin."),
        Some("demoted") => Some("The member is no longer an admin."),
        Some("signed_out") => Some("The device is signed out."),
        Some("rotated") => Some("The invite code was replaced; the old one no longer works."),
        _ => None,
    };
    let page = ConsolePage {
        t: ctx.t,
        csrf: ctx.csrf(s),
        error,
        notice,
        invites: invites
            .into_iter()
            .map(|i| InviteRow {
                status: i.status(now),
                pending: i.status(now) == "pending",
                expires: fmt(i.expires_at),
                id: i.id,
                phone: i.phone.as_str().to_string(),
                username: i.username,
            })
            .collect(),
        events: events
            .into_iter()
            .map(|e| EventRow {
                at: fmt(e.at),
                kind: e.kind,
                detail: e.detail,
                who: e.actor.as_deref().map(name_of).unwrap_or_else(|| "-".into()),
                subject: e.subject.as_deref().map(name_of).unwrap_or_default(),
                ip: e.ip.unwrap_or_else(|| "-".into()),
            })
            .collect(),
        members: members.iter().map(member_row).collect(),
        invite_code,
        devices,
        filter: q,
    };
    ctx.render(s, status, &page)
}

fn member_row(m: &Member) -> MemberRow {
    MemberRow {
        admin: m.user.is_admin(),
        phone: mask_phone(m.user.phone.as_str()),
        sessions: m.sessions,
        last_seen: m.last_seen_at.map(fmt).unwrap_or_else(|| "never".into()),
        id: m.user.id.clone(),
        username: m.user.username.clone(),
    }
}

struct CountryRow {
    name: String,
    started: u32,
    approved: u32,
    rate: String,
    bar: String,
}

struct ProviderRow {
    name: String,
    sent: u32,
    delivered: u32,
    failed: u32,
    /// More than a tenth of the messages failed: SMS may not be arriving.
    alarming: bool,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    t: &'a super::texts::Texts,
    hours_svg: String,
    started: u32,
    approved: u32,
    conversion: String,
    countries: Vec<CountryRow>,
    providers: Vec<ProviderRow>,
    throttled: Vec<(String, String)>,
}

fn percent(part: u32, whole: u32) -> String {
    if whole == 0 { "–".into() } else { format!("{:.0} %", f64::from(part) * 100.0 / f64::from(whole)) }
}

/// Started and approved codes per hour as an SVG bar chart (server-rendered, no script).
fn hours_svg(hours: &[Counts], first: chrono::DateTime<chrono::Utc>) -> String {
    let (w, h, left, bottom) = (720.0, 200.0, 36.0, 24.0);
    let max = hours.iter().map(|c| c.started.max(c.approved)).max().unwrap_or(0).max(1);
    let slot = (w - left) / hours.len().max(1) as f64;
    let y = |v: u32| (h - bottom) * (1.0 - f64::from(v) / f64::from(max));
    let mut svg = format!(
        r##"<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="Codes started and approved per hour"><line x1="{left}" y1="{base}" x2="{w}" y2="{base}" stroke="#888"/><text x="0" y="12" font-size="11" fill="currentColor">{max}</text>"##,
        base = h - bottom
    );
    for (i, c) in hours.iter().enumerate() {
        let x = left + slot * i as f64;
        let bw = (slot - 4.0) / 2.0;
        svg.push_str(&format!(
            r##"<rect x="{x:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="#9aa0a6"><title>{} started</title></rect><rect x="{:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="#1e8e3e"><title>{} approved</title></rect>"##,
            y(c.started),
            h - bottom - y(c.started),
            c.started,
            x + bw,
            y(c.approved),
            h - bottom - y(c.approved),
            c.approved
        ));
        if i % 4 == 0 {
            let label = (first + chrono::Duration::hours(i as i64)).format("%H:00");
            svg.push_str(&format!(r#"<text x="{x:.1}" y="{}" font-size="11" fill="currentColor">{label}</text>"#, h - 6.0));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A small horizontal bar: the approved share of what was started.
fn share_svg(approved: u32, started: u32) -> String {
    let width = if started == 0 { 0.0 } else { 200.0 * f64::from(approved) / f64::from(started) };
    format!(
        r##"<svg viewBox="0 0 200 10" width="200" height="10" role="img" aria-label="conversion"><rect width="200" height="10" fill="#dadce0"/><rect width="{width:.1}" height="10" fill="#1e8e3e"/></svg>"##
    )
}

async fn dashboard(State(s): State<AppState>, ctx: PageCtx) -> Response {
    let p = match admin(&s, &ctx).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let traffic = match s.accounts.dashboard(&p).await {
        Ok(t) => t,
        Err(e) => {
            return render(&s, &ctx, &p, ConsoleQuery::default(), Some(ctx.t.error(&e)), super::status_of(&e)).await;
        }
    };
    let now = s.clock.now();
    let first = chrono::DurationRound::duration_trunc(now, chrono::Duration::hours(1)).unwrap_or(now) - chrono::Duration::hours(23);
    let (started, approved) = traffic.hours.iter().fold((0, 0), |(s, a), c| (s + c.started, a + c.approved));
    let page = DashboardPage {
        t: ctx.t,
        hours_svg: hours_svg(&traffic.hours, first),
        started,
        approved,
        conversion: percent(approved, started),
        countries: traffic
            .countries
            .into_iter()
            .map(|(name, c)| CountryRow {
                rate: percent(c.approved, c.started),
                bar: share_svg(c.approved, c.started),
                name,
                started: c.started,
                approved: c.approved,
            })
            .collect(),
        providers: traffic
            .providers
            .into_iter()
            .map(|(name, d)| ProviderRow {
                alarming: d.failed * 10 > d.sent + d.failed && d.failed > 0,
                name,
                sent: d.sent,
                delivered: d.delivered,
                failed: d.failed,
            })
            .collect(),
        throttled: traffic.throttled.into_iter().map(|(prefix, at)| (prefix, fmt(at))).collect(),
    };
    ctx.render(&s, StatusCode::OK, &page)
}

async fn console(State(s): State<AppState>, ctx: PageCtx, Query(q): Query<ConsoleQuery>) -> Response {
    match admin(&s, &ctx).await {
        Ok(p) => render(&s, &ctx, &p, q, None, StatusCode::OK).await,
        Err(r) => r,
    }
}

/// After an action: back to the console with a notice, or the console with the error.
async fn after(s: &AppState, ctx: &PageCtx, p: &Principal, result: Result<(), VerifyError>, done: &str) -> Response {
    match result {
        Ok(()) => ctx.redirect(s, &format!("/admin?done={done}")),
        Err(e) => render(s, ctx, p, ConsoleQuery::default(), Some(ctx.t.error(&e)), super::status_of(&e)).await,
    }
}

async fn invite(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<InviteForm>) -> Response {
    let p = match admin_post(&s, &ctx, &f.csrf).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let username = f.username.as_deref().map(str::trim).filter(|u| !u.is_empty());
    let result = s.accounts.invite(&ctx.caller, &p, &f.phone, username).await.map(|_| ());
    after(&s, &ctx, &p, result, "invited").await
}

async fn resend(State(s): State<AppState>, ctx: PageCtx, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> Response {
    let p = match admin_post(&s, &ctx, &f.csrf).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let result = s.accounts.resend_invite(&ctx.caller, &p, &id).await.map(|_| ());
    after(&s, &ctx, &p, result, "resent").await
}

async fn revoke(State(s): State<AppState>, ctx: PageCtx, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> Response {
    let p = match admin_post(&s, &ctx, &f.csrf).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let result = s.accounts.revoke_invite(&ctx.caller, &p, &id).await;
    after(&s, &ctx, &p, result, "revoked").await
}

async fn member(State(s): State<AppState>, ctx: PageCtx, Path((id, action)): Path<(String, String)>, Form(f): Form<CsrfForm>) -> Response {
    let p = match admin_post(&s, &ctx, &f.csrf).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (result, done) = match action.as_str() {
        "remove" => (s.accounts.remove_member(&ctx.caller, &p, &id).await, "removed"),
        "promote" => (s.accounts.set_admin(&ctx.caller, &p, &id, true).await.map(|_| ()), "promoted"),
        "demote" => (s.accounts.set_admin(&ctx.caller, &p, &id, false).await.map(|_| ()), "demoted"),
        _ => return ctx.redirect(&s, "/admin"),
    };
    after(&s, &ctx, &p, result, done).await
}

async fn revoke_device(
    State(s): State<AppState>,
    ctx: PageCtx,
    Path((id, session)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let p = match admin_post(&s, &ctx, &f.csrf).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match s.accounts.revoke_member_session(&ctx.caller, &p, &id, &session).await {
        Ok(()) => ctx.redirect(&s, &format!("/admin?done=signed_out&member={}#devices", urlencoding(&id))),
        Err(e) => render(&s, &ctx, &p, ConsoleQuery::default(), Some(ctx.t.error(&e)), super::status_of(&e)).await,
    }
}

async fn rotate_code(State(s): State<AppState>, ctx: PageCtx, Form(f): Form<CsrfForm>) -> Response {
    let p = match admin_post(&s, &ctx, &f.csrf).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let result = s.accounts.rotate_invite_code(&ctx.caller, &p).await.map(|_| ());
    after(&s, &ctx, &p, result, "rotated").await
}

/// An id for a query string (ids are `xx_` and URL-safe characters; anything else is dropped).
fn urlencoding(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect()
}
