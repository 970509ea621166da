//! The admin console: a page each for the members, the invites, the audit log and the
//! dashboard, with a navigation between them, in English or German like the other pages. Every
//! action is a CSRF-checked form over the same core calls as the admin JSON API.
mod apps;
mod audit;
mod chart;
mod dashboard;
mod invites;
mod kinds;
mod members;
mod texts;

use super::PageCtx;
use super::texts::Texts;
use crate::http::AppState;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use phonegate_core::accounts::Principal;
use texts::AdminTexts;

pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/admin", get(console))
        .route("/admin/members", get(members::page))
        .route("/admin/invites", get(invites::page).post(invites::invite))
        .route("/admin/audit", get(audit::page))
        .route("/admin/dashboard", get(dashboard::page))
        .route("/admin/invites/{id}/resend", post(invites::resend))
        .route("/admin/invites/{id}/revoke", post(invites::revoke))
        .route("/admin/members/{id}/{action}", post(members::action))
        .route("/admin/members/{id}/sessions/{session}/revoke", post(members::revoke_device))
        .route("/admin/invite-code/rotate", post(invites::rotate_code))
        .route("/admin/apps", get(apps::page).post(apps::create))
        .route("/admin/apps/secret", post(apps::rotate))
        .route("/admin/apps/delete", post(apps::delete))
}

/// The console's pages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Members,
    Invites,
    Audit,
    Dashboard,
    Apps,
}

impl Section {
    const ALL: [Section; 5] = [Section::Members, Section::Invites, Section::Apps, Section::Audit, Section::Dashboard];

    fn path(self) -> &'static str {
        match self {
            Section::Members => "/admin/members",
            Section::Invites => "/admin/invites",
            Section::Audit => "/admin/audit",
            Section::Dashboard => "/admin/dashboard",
            Section::Apps => "/admin/apps",
        }
    }

    fn name(self, a: &AdminTexts) -> &'static str {
        match self {
            Section::Members => a.members,
            Section::Invites => a.invites,
            Section::Audit => a.audit,
            Section::Dashboard => a.dashboard,
            Section::Apps => a.apps,
        }
    }
}

/// A link of the console's navigation; the current page's is marked `aria-current="page"`.
struct NavLink {
    href: &'static str,
    label: &'static str,
    current: bool,
}

/// What every console page shows around its own content: the navigation and a notice or an
/// error.
struct Frame {
    nav: Vec<NavLink>,
    error: Option<String>,
    notice: Option<&'static str>,
}

impl Frame {
    fn new(a: &AdminTexts, current: Section, error: Option<String>, notice: Option<&'static str>) -> Self {
        let nav = Section::ALL.iter().map(|&s| NavLink { href: s.path(), label: s.name(a), current: s == current }).collect();
        Frame { nav, error, notice }
    }
}

/// The console's words for this request.
fn words(ctx: &PageCtx) -> (&'static Texts, &'static AdminTexts) {
    (ctx.t, texts::of(ctx.t))
}

fn fmt(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An admin's form post: a forged one (no matching anti-forgery token) or one from anyone but
/// a signed-in admin gets its refusal as the `Err`.
async fn admin_post(s: &AppState, ctx: &PageCtx, csrf: &str, section: Section) -> Result<Principal, Response> {
    if let Some(r) = ctx.forged(s, csrf) {
        return Err(r);
    }
    admin(s, ctx, section).await
}

/// The signed-in admin, or the answer for anyone else: the login page (back to `section`
/// after it), or 403.
async fn admin(s: &AppState, ctx: &PageCtx, section: Section) -> Result<Principal, Response> {
    let p = ctx.signed_in(s, &format!("/login?return_to={}", section.path())).await?;
    let admin = match s.accounts.is_admin(&p).await {
        Ok(admin) => admin,
        Err(e) if e.detail().is_some() => return Err(ctx.failed(s, &e)),
        Err(_) => false,
    };
    if !admin {
        let (t, a) = words(ctx);
        let page = super::MessagePage { t, title: a.console, message: a.only_admins, link: "/account", link_text: t.back };
        return Err(ctx.render(s, StatusCode::FORBIDDEN, &page));
    }
    Ok(p)
}

/// `/admin`: the members' page, or the page an older link of the one-page console meant (its
/// audit filters, a member's devices, the notice after an action), with the same query.
async fn console(State(s): State<AppState>, ctx: PageCtx, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let given = |name: &str| params.iter().find(|(n, v)| n == name && !v.is_empty()).map(|(_, v)| v.as_str());
    let section = if ["kind", "who", "ip", "since", "until"].into_iter().any(|f| given(f).is_some()) {
        Section::Audit
    } else if matches!(given("done"), Some("invited" | "resent" | "revoked" | "rotated")) {
        Section::Invites
    } else {
        Section::Members
    };
    let to = if query.is_empty() { section.path().to_string() } else { format!("{}?{query}", section.path()) };
    ctx.redirect(&s, &to)
}
