//! Silent verification over HTTP: coverage and fallback in the native API, and the device's side
//! — the single-use `check_url` (`/silent/{token}`), the simulator's operator page and the
//! providers' callbacks (`/silent/callback/{provider}`), which end on phonegate's own pages.
use super::error::{self, ApiError, ErrorBody, report};
use super::extract::ApiQuery;
use super::pages::device;
use super::{AppState, auth, auth::Authenticated};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use phonegate_core::error::Field;
use phonegate_core::silent::{CheckState, SIMULATOR, SilentCheck, SimOutcome};
use phonegate_core::{Caller, VerifyError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(coverage)).routes(routes!(fallback))
}

pub fn page_routes() -> Router<AppState> {
    Router::new()
        .route("/silent/{token}", get(open))
        .route("/silent/simulator/{reference}", get(simulator))
        .route("/silent/callback/{provider}", get(callback))
        .route("/assets/silent-relay.js", get(relay_script))
}

/// The silent part of a verification.
#[derive(Serialize, ToSchema)]
pub struct SilentView {
    /// The silent provider that checks the device (`simulator`, or a configured one).
    provider: Option<String>,
    /// created (waiting for the device), opened (the device is at the operator), matched, failed
    #[schema(value_type = String, example = "created")]
    status: CheckState,
    /// Why it failed: wifi, operator_not_covered, unknown, mismatch, timeout, provider_error.
    reason: Option<String>,
    /// The URL the device must open over mobile data; single-use. Given only when the
    /// verification is started, while the check waits for the device.
    #[serde(skip_serializing_if = "Option::is_none")]
    check_url: Option<String>,
    /// The device must finish the operator's step by then.
    expires_at: chrono::DateTime<chrono::Utc>,
}

impl SilentView {
    pub fn new(c: &SilentCheck, check_url: Option<String>) -> Self {
        Self {
            provider: (!c.provider.is_empty()).then(|| c.provider.clone()),
            status: c.state,
            reason: c.reason.map(|r| r.as_str().to_string()),
            check_url,
            expires_at: c.expires_at,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CoverageQuery {
    /// The device's IP address, from a backend with an API key (default: the caller's address).
    ip: Option<String>,
    /// The phone number, when known: routing may choose the provider by its prefix.
    to: Option<String>,
    /// Simulator only: the answer to give (match, mismatch, wifi, no_coverage, timeout).
    sim: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CoverageView {
    /// Whether silent verification can be tried for this device now.
    available: bool,
    /// Why not: wifi (not on mobile data), operator_not_covered, unknown.
    reason: Option<String>,
    provider: Option<String>,
    /// The device's network, when the provider names it.
    operator: Option<String>,
}

fn sim(raw: Option<&str>) -> Result<Option<SimOutcome>, ApiError> {
    raw.map(|s| {
        SimOutcome::parse(s).ok_or_else(|| VerifyError::invalid(Field::Sim, "must be match, mismatch, wifi, no_coverage or timeout").into())
    })
    .transpose()
}

/// The caller of a request that may carry an API key: the key's caller, or the end user's.
async fn key_or_end_user(parts: &Parts, s: &AppState) -> Result<Caller, ApiError> {
    let meta = auth::meta(parts);
    match auth::authenticate(&parts.headers, &meta, s).await? {
        Some(caller) => Ok(caller),
        None if parts.headers.contains_key(axum::http::header::AUTHORIZATION) => Err(ApiError::unauthorized()),
        None => Ok(Caller::end_user(meta.ip, meta.request_id)),
    }
}

/// Whether silent verification is possible for a device: for the caller's own address (a page
/// on the phone), or for `ip` (a backend with an API key, for its user's device). Answers
/// `available: false` with `wifi`, `operator_not_covered` or `unknown`.
#[utoipa::path(get, path = "/api/coverage", tag = "silent", params(CoverageQuery),
    responses((status = 200, body = CoverageView), (status = 400, body = ErrorBody, description = "invalid ip, number or sim; `ip` without an API key"),
        (status = 401, body = ErrorBody, description = "an Authorization header that names no active key")), security((), ("bearer" = []), ("basic" = [])))]
async fn coverage(State(s): State<AppState>, parts: Parts, ApiQuery(q): ApiQuery<CoverageQuery>) -> Result<Json<CoverageView>, ApiError> {
    let caller = key_or_end_user(&parts, &s).await?;
    let ip =
        q.ip.as_deref()
            .map(|ip| ip.trim().parse::<std::net::IpAddr>())
            .transpose()
            .map_err(|_| VerifyError::invalid(Field::Ip, "must be an IPv4 or IPv6 address"))?;
    let a = s.core.verifier.coverage(&caller, ip, q.to.as_deref(), sim(q.sim.as_deref())?).await?;
    Ok(Json(CoverageView {
        available: a.available,
        reason: a.reason.map(|r| r.as_str().to_string()),
        provider: a.provider,
        operator: a.operator,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct FallbackView {
    id: String,
    silent: SilentView,
    /// True when the code went out by SMS.
    code_sent: bool,
}

/// Stop waiting for the device and send the code by SMS now (an `auto` verification whose
/// silent check has not ended). The verification stays the same; check its code as usual.
#[utoipa::path(post, path = "/api/verifications/{id}/fallback", tag = "silent", params(("id" = String, Path)),
    responses((status = 200, body = FallbackView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "no_silent_check: not an auto verification, or its check has ended; verification_…: not pending")))]
async fn fallback(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<FallbackView>, ApiError> {
    super::verifications::known_id(&id)?;
    let outcome = s.core.verifier.fall_back(&caller, &id).await?;
    Ok(Json(FallbackView { id, silent: SilentView::new(&outcome.check, None), code_sent: outcome.code_sent }))
}

#[derive(Deserialize)]
struct SimQuery {
    sim: Option<String>,
}

/// The device opens its `check_url`: on to the provider (a 303), or a page saying why not.
async fn open(State(s): State<AppState>, parts: Parts, Path(token): Path<String>, Query(q): Query<SimQuery>) -> Response {
    // A link preview or a browser's prefetch must not spend the single-use link.
    let prefetch = parts.headers.get("sec-purpose").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("prefetch"));
    if parts.method == axum::http::Method::HEAD || prefetch {
        return (StatusCode::NO_CONTENT, [(CACHE_CONTROL, HeaderValue::from_static("no-store"))]).into_response();
    }
    let caller = end_user(&parts);
    // The simulator lets whoever holds the phone choose the operator's answer: only on this machine.
    if q.sim.is_some() && !super::outbox::is_local(&parts) {
        return failure(&VerifyError::CheckLinkNotFound);
    }
    let sim = match sim(q.sim.as_deref()) {
        Ok(sim) => sim,
        Err(_) => {
            return device::message(
                StatusCode::BAD_REQUEST,
                "Not a valid link",
                "The sim parameter must be match, mismatch, wifi, no_coverage or timeout.",
            );
        }
    };
    if token.len() > 64 {
        return failure(&VerifyError::CheckLinkNotFound);
    }
    match s.core.verifier.open_check_url(&caller, &token, sim).await {
        Ok(url) => redirect(&url),
        Err(e) => failure(&e),
    }
}

/// The simulator's operator: what a device would go through at a real operator, as a page that
/// lets the developer choose the answer (or takes it from `sim`).
async fn simulator(State(s): State<AppState>, parts: Parts, Path(reference): Path<String>, Query(q): Query<SimQuery>) -> Response {
    if !s.core.verifier.silent_enabled() || !phonegate_core::ids::is_id("SR", &reference) || !super::outbox::is_local(&parts) {
        return failure(&VerifyError::CheckLinkNotFound);
    }
    let target = |o: SimOutcome| format!("/silent/callback/{SIMULATOR}?ref={reference}&outcome={}", o.as_str());
    if let Ok(Some(o)) = sim(q.sim.as_deref()) {
        return redirect(&target(o));
    }
    device::simulator(target)
}

/// The provider sends the device back here: the check is decided once, then the device goes to
/// the page it came from (a login flow's) or sees the result.
async fn callback(
    State(s): State<AppState>,
    parts: Parts,
    Path(provider): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if query.is_empty() {
        // Vonage puts `request_id` and `code` in the fragment, which only the browser sees.
        return device::relay();
    }
    if provider == SIMULATOR && !super::outbox::is_local(&parts) {
        return failure(&VerifyError::CheckLinkNotFound);
    }
    let caller = end_user(&parts);
    match s.core.verifier.silent_callback(&caller, &provider, &query).await {
        Ok(outcome) => {
            // A Vonage Verify v2 request's device gets Vonage's answer.
            if let Some(path) = outcome.check.return_path.as_deref().filter(|p| p.starts_with(super::compat::vonage2::SILENT_RETURN)) {
                let matched = outcome.check.state == CheckState::Matched;
                return super::compat::vonage2::silent_answer(&s, path, &outcome.check.verification_id, matched, outcome.code_sent);
            }
            if let Some(path) = outcome.check.return_path.as_deref().filter(|p| p.starts_with('/') && !p.starts_with("//")) {
                let sep = if path.contains('?') { '&' } else { '?' };
                let result = match &outcome.proof {
                    Some(proof) => format!("silent=done&proof={proof}"),
                    None => "silent=sms".to_string(),
                };
                return redirect(&format!("{path}{sep}{result}"));
            }
            match (outcome.check.state, outcome.code_sent) {
                (CheckState::Matched, _) => device::message(
                    StatusCode::OK,
                    "Number verified",
                    "Your mobile operator confirmed your number. You can go back to the app.",
                ),
                (_, true) => device::message(
                    StatusCode::OK,
                    "We sent you a code",
                    "Your number could not be confirmed instantly, so a code is on its way by SMS. Enter it where you started.",
                ),
                (_, false) => device::message(
                    StatusCode::OK,
                    "Not verified",
                    &format!(
                        "Your mobile operator could not confirm this number ({}). Go back and try again on mobile data, or ask for a code by SMS.",
                        outcome.check.reason.map_or("unknown", |r| r.as_str())
                    ),
                ),
            }
        }
        Err(e) => failure(&e),
    }
}

async fn relay_script() -> Response {
    let mut r = include_str!("../../assets/silent-relay.js").into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    r
}

fn end_user(parts: &Parts) -> Caller {
    let meta = auth::meta(parts);
    Caller::end_user(meta.ip, meta.request_id)
}

/// The device's page for an error: its status from the one classification, its words by code.
fn failure(e: &VerifyError) -> Response {
    let (title, text) = match e.code() {
        "check_url_not_found" => ("Not a valid link", "This verification link is not valid.".to_string()),
        "check_url_used" => ("Link already used", "This verification link was used already. Go back and start again.".to_string()),
        "check_url_expired" => (
            "Link expired",
            "This verification link has expired. If you started with a code as a fallback, it is on its way by SMS.".to_string(),
        ),
        "silent_callback_invalid" => ("Not a valid answer", "This does not answer any open verification.".to_string()),
        "rate_limited" | "send_budget_exceeded" | "max_sends_reached" => {
            ("Too many attempts", "Too many verifications from this network. Try again later.".to_string())
        }
        _ => match report(e) {
            Some(request_id) => ("Try again", format!("{} {request_id}", device::INTERNAL)),
            None => ("Try again", "The verification could not be completed. Go back and start again.".to_string()),
        },
    };
    device::message(error::status(e.kind()), title, &text)
}

fn redirect(url: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(url) {
        r.headers_mut().insert(LOCATION, v);
    }
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
