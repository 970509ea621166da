//! Vonage Verify v2: `POST /v2/verify` (a workflow of up to three channels, silent
//! authentication first where asked), `POST /v2/verify/{request_id}` (check a code),
//! `POST /v2/verify/{request_id}/next_workflow` (also `next-workflow`), `DELETE
//! /v2/verify/{request_id}`, and templates with their fragments (`templates.rs`). JSON in and
//! out, Vonage's HTTP statuses and error bodies (`problem.rs`), HTTP Basic (a phonegate key id
//! and secret) or an application's RS256 JWT. A `request_id` is the verification's id in UUID
//! form. What differs from Vonage, and why: docs/migrate-from-vonage-verify.md.
mod problem;
mod templates;

use crate::http::AppState;
use crate::http::auth::{RequestMeta, authenticate};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use phonegate_core::vonage::Watch;
use phonegate_core::vonage_model::{request_id, verification_id};
use phonegate_core::workflow::{Step, Workflow};
use phonegate_core::{Caller, Channel, CheckOutcome, StartOptions, StartRequest, Status, VerifyError};
pub use problem::Problem;
use serde_json::{Map, Value, json};

/// Vonage's default and bounds of `channel_timeout`, in seconds.
const DEFAULT_TIMEOUT: u32 = 180;
const TIMEOUTS: std::ops::RangeInclusive<i64> = 15..=900;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/verify", post(start))
        .route("/v2/verify/{request_id}", post(check).delete(cancel))
        .route("/v2/verify/{request_id}/next_workflow", post(next))
        .route("/v2/verify/{request_id}/next-workflow", post(next))
        .merge(templates::routes())
}

/// The caller: HTTP Basic (key id and secret), or `Bearer` with an application's JWT.
pub(crate) async fn caller(s: &AppState, meta: &RequestMeta, headers: &HeaderMap) -> Result<Caller, Problem> {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let jwt = auth.split_once(' ').filter(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && t.matches('.').count() == 2);
    let key = match jwt {
        Some((_, token)) => s.vonage.authenticate(token.trim()).await.map_err(|e| Problem::from_error(e, None))?,
        None => {
            let found = authenticate(headers, meta, s).await.map_err(|e| Problem::from_error(e.into(), None))?;
            return found.ok_or_else(Problem::unauthorized);
        }
    };
    key.map(|k| Caller::key(&k, meta.ip, meta.request_id.clone())).ok_or_else(Problem::unauthorized)
}

fn json_body(body: &[u8]) -> Result<Map<String, Value>, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Problem::invalid("body", "must be a JSON object")),
    }
}

fn text<'a>(m: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, Problem> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(Problem::invalid(name, "must be a string")),
    }
}

fn int(m: &Map<String, Value>, name: &str, range: std::ops::RangeInclusive<i64>) -> Result<Option<i64>, Problem> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|n| range.contains(n))
            .map(Some)
            .ok_or_else(|| Problem::invalid(name, format!("must be an integer from {} to {}", range.start(), range.end()))),
    }
}

/// One item of `workflow`.
struct Item {
    channel: String,
    to: String,
    /// silent_auth's `redirect_url`.
    redirect_url: Option<String>,
}

/// Where a v2 request's silent check sends the device back to (phonegate's own path, with the
/// app's `redirect_url` when it gave one): the silent callback then answers as Vonage does.
pub const SILENT_RETURN: &str = "/v2/verify/silent-auth";

/// The request's workflow: its items, the code steps for the engine, and whether silent
/// authentication comes first.
fn workflow(m: &Map<String, Value>, timeout: u32) -> Result<(Vec<Item>, Option<Workflow>, bool), Problem> {
    let items = match m.get("workflow") {
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= 3 => a,
        Some(_) => return Err(Problem::invalid("workflow", "must list 1 to 3 channels")),
        None => return Err(Problem::invalid("workflow", "is required")),
    };
    let mut parsed = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = format!("workflow[{i}]");
        let Value::Object(o) = item else { return Err(Problem::invalid(&name, "must be an object")) };
        let channel = text(o, "channel")?.ok_or_else(|| Problem::invalid(&format!("{name}.channel"), "is required"))?;
        let to = text(o, "to")?.ok_or_else(|| Problem::invalid(&format!("{name}.to"), "is required"))?;
        match channel {
            "sms" | "voice" | "whatsapp" | "email" => {}
            "silent_auth" if i == 0 => {}
            "silent_auth" => return Err(Problem::invalid(&format!("{name}.channel"), "silent_auth must be the first channel")),
            "whatsapp_interactive" => {
                return Err(Problem::invalid(
                    &format!("{name}.channel"),
                    "whatsapp_interactive (a yes/no button) is not offered by this server: use whatsapp, which sends the code",
                ));
            }
            _ => return Err(Problem::invalid(&format!("{name}.channel"), "must be sms, voice, whatsapp, email or silent_auth")),
        }
        if let Some(url) = text(o, "redirect_url")?
            && (channel != "silent_auth" || !phonegate_core::vonage::is_callback_url(url))
        {
            return Err(Problem::invalid(
                &format!("{name}.redirect_url"),
                "is an https URL (http only to this machine or a private network), for silent_auth only",
            ));
        }
        let redirect_url = text(o, "redirect_url")?.map(str::to_string);
        parsed.push(Item { channel: channel.to_string(), to: to.to_string(), redirect_url });
    }
    // One verification goes to one recipient: every channel names the same number (or address).
    let first_to = normalized(&parsed[0].to);
    if let Some((i, _)) = parsed.iter().enumerate().find(|(_, it)| normalized(&it.to) != first_to) {
        return Err(Problem::invalid(
            &format!("workflow[{i}].to"),
            "every channel of a request goes to the same recipient on this server: start another request for another one",
        ));
    }
    let silent_first = parsed[0].channel == "silent_auth";
    let steps: Vec<Step> = parsed
        .iter()
        .filter(|it| it.channel != "silent_auth")
        .map(|it| {
            let channel = Channel::parse(&it.channel).unwrap_or(Channel::Sms);
            Step::new(channel, Some(timeout)).map_err(|e| Problem::from_error(VerifyError::from(e), None))
        })
        .collect::<Result<_, _>>()?;
    let flow =
        if steps.is_empty() { None } else { Some(Workflow::new(steps).map_err(|e| Problem::from_error(VerifyError::from(e), None))?) };
    Ok((parsed, flow, silent_first))
}

fn normalized(to: &str) -> String {
    to.trim().trim_start_matches('+').to_ascii_lowercase()
}

async fn start(State(s): State<AppState>, Extension(meta): Extension<RequestMeta>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    match start_inner(&s, &meta, &uri, &headers, &body).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    }
}

async fn start_inner(s: &AppState, meta: &RequestMeta, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Response, Problem> {
    let caller = caller(s, meta, headers).await?;
    let m = json_body(body)?;
    let brand = text(&m, "brand")?.ok_or_else(|| Problem::invalid("brand", "is required"))?;
    if brand.trim().is_empty() || brand.chars().count() > 18 || brand.contains(['\\', '/', '{', '}', ':', '$']) {
        return Err(Problem::invalid("brand", "must be 1 to 18 characters, without \\ / { } : or $"));
    }
    let timeout = int(&m, "channel_timeout", TIMEOUTS)?.map_or(DEFAULT_TIMEOUT, |t| t as u32);
    let (items, flow, silent_first) = workflow(&m, timeout)?;
    // Vonage's codes have 4 digits unless asked otherwise.
    let code_length = Some(int(&m, "code_length", 4..=10)?.map_or(4, |n| n as u8));
    let custom_code = text(&m, "code")?;
    if custom_code.is_some_and(|c| !(4..=10).contains(&c.len()) || !c.bytes().all(|b| b.is_ascii_alphanumeric())) {
        return Err(Problem::invalid("code", "must be 4 to 10 letters and digits"));
    }
    let client_ref = text(&m, "client_ref")?;
    // Vonage's spec shows letters and digits; apps send `order-42` too, so any printable ASCII.
    if client_ref.is_some_and(|r| r.is_empty() || r.len() > 40 || !r.bytes().all(|b| b.is_ascii_graphic())) {
        return Err(Problem::invalid("client_ref", "must be 1 to 40 printable characters"));
    }
    if m.get("fraud_check").is_some_and(|v| !v.is_boolean()) {
        return Err(Problem::invalid("fraud_check", "must be true or false"));
    }
    let template_id = text(&m, "template_id")?;
    let locale = text(&m, "locale")?;
    let steps = flow.as_ref().map_or(0, |w| w.steps().len()) as i64;
    let ttl = (i64::from(timeout) * steps.max(1)).max(60);
    let templates = s.vonage.texts_for(&caller, template_id, ttl).await.map_err(|e| match e {
        VerifyError::TemplateNotFound => Problem::invalid("template_id", "no such template"),
        other => Problem::from_error(other, None),
    })?;
    let channel = match (silent_first, &flow) {
        (true, Some(_)) => Some(Channel::Auto),
        (true, None) => Some(Channel::Silent),
        (false, _) => None,
    };
    let first = &items[0];
    let to = if first.channel == "email" || first.to.starts_with('+') { first.to.clone() } else { format!("+{}", first.to) };
    let options = StartOptions {
        workflow: flow,
        code_length,
        ttl_secs: Some(ttl),
        brand: Some(brand.to_string()),
        refuse_if_pending: true,
        custom_code: custom_code.map(str::to_string),
        letters_in_code: true,
        templates,
        silent_return: silent_first.then(|| match &first.redirect_url {
            Some(url) => format!("{SILENT_RETURN}?{}", serde_urlencoded::to_string([("redirect_url", url)]).unwrap_or_default()),
            None => SILENT_RETURN.to_string(),
        }),
        ..Default::default()
    };
    let req = StartRequest { service: None, to, channel, locale: locale.map(str::to_string), options };
    let started = s.core.verifier.start(&caller, req).await.map_err(|e| match e {
        VerifyError::InvalidParameter { field: phonegate_core::error::Field::CustomCode, message } => Problem::invalid("code", message),
        VerifyError::InvalidParameter { field: phonegate_core::error::Field::Locale, message } => Problem::invalid("locale", message),
        other => Problem::from_error(other, None),
    })?;
    let v = &started.verification;
    let rid = request_id(&v.id);
    let watch = Watch {
        client_ref: client_ref.map(str::to_string),
        channel_timeout: timeout,
        channels: items.iter().map(|i| i.channel.clone()).collect(),
        redeemed: false,
    };
    if let Err(e) = s.vonage.watch(&caller, &v.id, &watch).await {
        tracing::warn!(error = %e, "the status callback of a started request could not be queued");
    }
    let mut answer = json!({ "request_id": rid });
    if let Some(path) = &started.check_url {
        let base = crate::http::compat::base_url(s.webhooks.public_url.as_deref(), s.webhooks.tls, headers, uri);
        let url = format!("{base}{path}");
        answer["check_url"] = url.clone().into();
        let event = json!({ "channel": "silent_auth", "status": "action_pending", "action": { "type": "check", "check_url": url } });
        if let Err(e) = s.vonage.event(&caller, &v.id, event).await {
            tracing::warn!(error = %e, "the silent_auth event could not be queued");
        }
    }
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// The verification a path's `request_id` names (an id that is not a UUID names none).
fn named(rid: &str) -> Result<String, Problem> {
    verification_id(rid).ok_or_else(|| Problem::not_found(rid))
}

async fn check(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    Path(rid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let caller = caller(&s, &meta, &headers).await?;
    let m = json_body(&body)?;
    let code = text(&m, "code")?.ok_or_else(|| Problem::invalid("code", "is required"))?;
    if code.is_empty() || code.chars().count() > 10 {
        return Err(Problem::invalid("code", "must be 1 to 10 characters"));
    }
    let id = named(&rid)?;
    let started = std::time::Instant::now();
    let result = s.vonage.check(&caller, &id, code).await;
    s.metrics.observe_check(started.elapsed().as_secs_f64());
    let (v, outcome) = match result {
        Err(VerifyError::NotPending(Status::MaxAttemptsReached)) => return Err(gone()),
        Err(VerifyError::NotPending(_) | VerifyError::VerificationNotFound) => return Err(Problem::not_found(&rid)),
        other => other.map_err(|e| Problem::from_error(e, Some(&rid)))?,
    };
    match outcome {
        CheckOutcome::Approved => Ok(Json(json!({ "request_id": request_id(&v.id), "status": "completed" })).into_response()),
        CheckOutcome::Rejected { .. } => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "verify#invalid-code",
            "Invalid Code",
            "The code you provided does not match the expected value.",
        )),
        CheckOutcome::LockedOut => Err(gone()),
        CheckOutcome::NotPending(_) => Err(Problem::not_found(&rid)),
    }
}

/// What the device gets at the end of a v2 request's silent check (`return_path` is the check's,
/// starting with `SILENT_RETURN`): after a match `{request_id, code}`, as JSON or in the
/// `redirect_url`'s fragment; else why not.
pub fn silent_answer(s: &AppState, return_path: &str, verification_id: &str, matched: bool, code_sent: bool) -> Response {
    let redirect = return_path
        .split_once('?')
        .and_then(|(_, q)| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .and_then(|q| q.into_iter().find(|(k, _)| k == "redirect_url").map(|(_, v)| v));
    let rid = request_id(verification_id);
    let fragment = match matched {
        true => serde_urlencoded::to_string([("request_id", rid.as_str()), ("code", &s.vonage.silent_code(verification_id))]),
        false if code_sent => serde_urlencoded::to_string([(
            "error_description",
            "The silent auth verification cannot be completed. A code was sent instead.",
        )]),
        false => serde_urlencoded::to_string([("error_description", "The silent auth verification cannot be completed.")]),
    }
    .unwrap_or_default();
    if let Some(url) = redirect {
        let mut r = StatusCode::FOUND.into_response();
        if let Ok(v) = axum::http::HeaderValue::from_str(&format!("{}#{fragment}", url.split('#').next().unwrap_or_default())) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
        return r;
    }
    if matched {
        let mut r = Json(json!({ "request_id": rid, "code": s.vonage.silent_code(verification_id) })).into_response();
        r.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
        return r;
    }
    Problem::new(
        StatusCode::PRECONDITION_FAILED,
        "verify#precondition-failed",
        "Silent authentication failed",
        "The silent auth verification cannot be completed.",
    )
    .into_response()
}

fn gone() -> Problem {
    Problem::new(
        StatusCode::GONE,
        "verify#expired",
        "Invalid Code",
        "An incorrect code has been provided too many times. Workflow terminated.",
    )
}

async fn next(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    Path(rid): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let caller = caller(&s, &meta, &headers).await?;
    let id = named(&rid)?;
    match s.core.verifier.next(&caller, &id).await {
        // Vonage documents no body for it.
        Ok(_) => Ok(StatusCode::OK.into_response()),
        Err(VerifyError::NotPending(_)) => Err(Problem::not_found(&rid)),
        Err(e) => Err(Problem::from_error(e, Some(&rid))),
    }
}

async fn cancel(
    State(s): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    Path(rid): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let caller = caller(&s, &meta, &headers).await?;
    let id = named(&rid)?;
    match s.core.verifier.cancel(&caller, &id).await {
        Ok(_) => {
            s.vonage.wake();
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(VerifyError::NotPending(_)) => Err(Problem::not_found(&rid)),
        Err(e) => Err(Problem::from_error(e, Some(&rid))),
    }
}
