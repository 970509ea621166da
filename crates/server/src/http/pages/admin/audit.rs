//! The audit log's page: filters (what, who, from where, which days) and the matching events,
//! newest first, in pages of 50 linked by the positions of their last and first events
//! (`?before=` older, `?after=` newer), so that paging neither repeats nor skips an event while
//! new ones arrive.
use super::super::{PageCtx, texts::Texts};
use super::texts::AdminTexts;
use super::{Frame, Section, admin, kinds, words};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use phonegate_core::accounts::Principal;
use phonegate_core::accounts::admin::Member;
use phonegate_core::audit::{AuditPage, AuditPosition, AuditQuery};
use serde::Deserialize;

/// Events on a page.
const PAGE: u32 = 50;

/// A value of a cell, and whether it is an id (shown as one, so that it reads as one when it wraps).
struct Value {
    text: String,
    id: bool,
}

impl Value {
    fn of(text: String) -> Self {
        let id = text.len() >= 16 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        Value { text, id }
    }
}

struct EventRow {
    /// When, to the second (UTC).
    at: String,
    kind: String,
    /// The kind in words.
    label: String,
    detail: String,
    /// Who caused it (a username where the id is a member's).
    who: Value,
    subject: Value,
    ip: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditLogPage {
    t: &'static Texts,
    a: &'static AdminTexts,
    frame: Frame,
    filter: AuditFilters,
    /// Every kind, for the "what" field's suggestions: its name and its words.
    kinds: Vec<(&'static str, &'static str)>,
    events: Vec<EventRow>,
    /// The links to the newest, newer and older pages, where there are such pages.
    newest: Option<String>,
    newer: Option<String>,
    older: Option<String>,
}

/// The page's query: the filters and where the page starts.
#[derive(Deserialize, Default)]
pub(super) struct AuditFilters {
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
    /// The events older than this position (`AuditPosition::cursor`).
    before: Option<String>,
    /// The events newer than this position.
    after: Option<String>,
}

impl AuditFilters {
    /// The audit query, with `who` given as a member's username or an id; `None` when a page
    /// position is not one.
    fn query(&self, members: &[Member]) -> Option<AuditQuery> {
        let text = |v: &str| Some(v.trim()).filter(|v| !v.is_empty() && v.len() <= 128).map(str::to_string);
        let day =
            |v: &str| chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").ok().map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc());
        let who =
            text(&self.who).map(|w| members.iter().find(|m| m.user.username.eq_ignore_ascii_case(&w)).map_or(w, |m| m.user.id.clone()));
        let position = |cursor: &Option<String>| match cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => AuditPosition::parse(c).map(Some),
            None => Some(None),
        };
        Some(AuditQuery {
            kind: text(&self.kind),
            who,
            ip: text(&self.ip),
            since: day(&self.since),
            until: day(&self.until).map(|d| d + chrono::Duration::days(1)),
            before: position(&self.before)?,
            after: position(&self.after)?,
            limit: PAGE,
        })
    }

    /// This page's filters at another position (`before` or `after` a cursor, or the newest).
    fn link(&self, at: Option<(&str, &AuditPosition)>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [("kind", &self.kind), ("who", &self.who), ("ip", &self.ip), ("since", &self.since), ("until", &self.until)] {
            if !value.trim().is_empty() {
                q.append_pair(name, value.trim());
            }
        }
        if let Some((name, position)) = at {
            q.append_pair(name, &position.cursor());
        }
        match q.finish() {
            q if q.is_empty() => "/admin/audit".into(),
            q => format!("/admin/audit?{q}"),
        }
    }
}

pub(super) async fn page(State(s): State<AppState>, ctx: PageCtx, Query(filter): Query<AuditFilters>) -> Response {
    let p = match admin(&s, &ctx, Section::Audit).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let members = match s.accounts.members(&p).await {
        Ok(members) => members,
        Err(e) => return ctx.failed(&s, &e),
    };
    match filter.query(&members) {
        Some(query) => render(&s, &ctx, &p, (filter, query), &members, None, StatusCode::OK).await,
        // A page position that is not one: the newest page, saying so.
        None => {
            let newest = AuditFilters { before: None, after: None, ..filter };
            let query = newest.query(&members).unwrap_or_default();
            let error = Some(words(&ctx).1.bad_cursor.to_string());
            render(&s, &ctx, &p, (newest, query), &members, error, StatusCode::BAD_REQUEST).await
        }
    }
}

async fn render(
    s: &AppState,
    ctx: &PageCtx,
    p: &Principal,
    (filter, query): (AuditFilters, AuditQuery),
    members: &[Member],
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let (t, a) = words(ctx);
    let AuditPage { events, newer, older } = match s.accounts.audit_page(p, query).await {
        Ok(page) => page,
        Err(e) => return ctx.failed(s, &e),
    };
    let name_of = |id: &str| members.iter().find(|m| m.user.id == id).map_or_else(|| id.to_string(), |m| m.user.username.clone());
    let events = events
        .into_iter()
        .map(|e| EventRow {
            at: e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            label: kinds::label(t.lang, &e.kind).to_string(),
            detail: kinds::detail(t.lang, &e.detail).to_string(),
            kind: e.kind,
            who: Value::of(e.actor.as_deref().map(name_of).unwrap_or_else(|| "–".into())),
            subject: Value::of(e.subject.as_deref().map(name_of).unwrap_or_else(|| "–".into())),
            ip: e.ip.unwrap_or_else(|| "–".into()),
        })
        .collect();
    let page = AuditLogPage {
        t,
        a,
        frame: Frame::new(a, Section::Audit, error, None),
        kinds: kinds::KINDS.iter().map(|&(name, en, de)| (name, if t.lang == "de" { de } else { en })).collect(),
        events,
        newest: newer.is_some().then(|| filter.link(None)),
        newer: newer.as_ref().map(|n| filter.link(Some(("after", n)))),
        older: older.as_ref().map(|o| filter.link(Some(("before", o)))),
        filter,
    };
    ctx.render(s, status, &page)
}
