//! The dashboard: the last 24 hours' codes per hour (a chart and its figures), conversion per
//! country, delivery per provider and the prefixes the throttle paused.
use super::super::{PageCtx, texts::Texts};
use super::texts::AdminTexts;
use super::{Frame, Section, admin, chart, fmt, words};
use crate::http::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use phonegate_core::traffic::Traffic;

struct HourRow {
    hour: String,
    started: u32,
    approved: u32,
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
#[template(path = "admin_dashboard.html")]
struct DashboardPage {
    t: &'static Texts,
    a: &'static AdminTexts,
    frame: Frame,
    chart: String,
    hours: Vec<HourRow>,
    started: u32,
    approved: u32,
    conversion: String,
    countries: Vec<CountryRow>,
    providers: Vec<ProviderRow>,
    /// Some provider's messages fail.
    alarming: bool,
    throttled: Vec<(String, String)>,
}

fn percent(part: u32, whole: u32) -> String {
    if whole == 0 { "–".into() } else { format!("{:.0} %", f64::from(part) * 100.0 / f64::from(whole)) }
}

/// A small horizontal bar: the approved share of what was started.
fn share_svg(approved: u32, started: u32) -> String {
    let width = if started == 0 { 0.0 } else { 120.0 * f64::from(approved) / f64::from(started) };
    format!(
        r#"<svg class="share" viewBox="0 0 120 12" width="120" height="12" aria-hidden="true"><rect class="share-all" width="120" height="12"/><rect class="bar-approved" width="{width:.1}" height="12"/></svg>"#
    )
}

pub(super) async fn page(State(s): State<AppState>, ctx: PageCtx) -> Response {
    let p = match admin(&s, &ctx, Section::Dashboard).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match s.accounts.dashboard(&p).await {
        Ok(traffic) => ctx.render(&s, StatusCode::OK, &dashboard(&s, &ctx, traffic)),
        Err(e) => ctx.failed(&s, &e),
    }
}

fn dashboard(s: &AppState, ctx: &PageCtx, traffic: Traffic) -> DashboardPage {
    let (t, a) = words(ctx);
    let now = s.clock.now();
    let first = chrono::DurationRound::duration_trunc(now, chrono::Duration::hours(1)).unwrap_or(now) - chrono::Duration::hours(23);
    let (started, approved) = traffic.hours.iter().fold((0, 0), |(s, a), c| (s + c.started, a + c.approved));
    let hours = (traffic.hours.iter().enumerate())
        .map(|(i, c)| HourRow {
            hour: (first + chrono::Duration::hours(i as i64)).format("%H:00").to_string(),
            started: c.started,
            approved: c.approved,
        })
        .collect();
    let providers: Vec<ProviderRow> = (traffic.providers.into_iter())
        .map(|(name, d)| ProviderRow {
            alarming: d.failed * 10 > d.sent + d.failed && d.failed > 0,
            name,
            sent: d.sent,
            delivered: d.delivered,
            failed: d.failed,
        })
        .collect();
    DashboardPage {
        t,
        a,
        frame: Frame::new(a, Section::Dashboard, None, None),
        chart: chart::hours(a, &traffic.hours, first),
        hours,
        started,
        approved,
        conversion: percent(approved, started),
        countries: (traffic.countries.into_iter())
            .map(|(name, c)| CountryRow {
                rate: percent(c.approved, c.started),
                bar: share_svg(c.approved, c.started),
                name,
                started: c.started,
                approved: c.approved,
            })
            .collect(),
        alarming: providers.iter().any(|p| p.alarming),
        providers,
        throttled: traffic.throttled.into_iter().map(|(prefix, at)| (prefix, fmt(at))).collect(),
    }
}
