//! The dev outbox, readable over the API and as a page: with an API key (Bearer, or HTTP Basic
//! with a key id and secret), or from this machine without one.
use super::error::{ApiError, ErrorBody};
use super::{AppState, auth, extract::ApiQuery};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Html;
use axum::routing::get;
use chrono::{DateTime, Utc};
use phonegate_core::Caller;
use phonegate_core::outbox::OutboxMessage;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

pub fn page_routes() -> axum::Router<AppState> {
    axum::Router::new().route("/dev/outbox", get(page))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    /// Only messages to this number (or e-mail address).
    to: Option<String>,
    /// At most this many messages (default 50, at most 500).
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct OutboxView {
    messages: Vec<OutboxMessageView>,
}

/// A message the dev outbox stored instead of sending it (the body shows the code).
#[derive(Serialize, ToSchema)]
pub struct OutboxMessageView {
    /// sms, voice (the body is what the call says), whatsapp (the template's text with its
    /// code) or email.
    #[schema(value_type = String, example = "sms")]
    channel: phonegate_core::Channel,
    to: String,
    /// The text; for a call, what it says; for an e-mail, its text part.
    body: String,
    /// An e-mail's subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    /// An e-mail's HTML part.
    #[serde(skip_serializing_if = "Option::is_none")]
    html: Option<String>,
    verification_id: Option<String>,
    created_at: DateTime<Utc>,
    /// Given to a configured test number (its fixed code): recorded, never sent.
    test: bool,
}

/// Who may read the dev outbox, whose bodies hold codes: a caller with an API key (a service key
/// sees only its services' messages), or a request made directly on this machine (`is_local`).
/// Anyone else: 401.
pub struct OutboxReader(pub Caller);

impl FromRequestParts<AppState> for OutboxReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let meta = auth::meta(parts);
        if let Some(caller) = auth::authenticate(&parts.headers, &meta, state).await? {
            return Ok(OutboxReader(caller));
        }
        if is_local(parts) {
            return Ok(OutboxReader(Caller { ip: meta.ip, request_id: meta.request_id, ..Caller::system("dev-outbox") }));
        }
        Err(ApiError::unauthorized())
    }
}

/// Whether a request was made directly on this machine: from a loopback address, naming a
/// loopback host (so a web page that rebinds its own name to 127.0.0.1 does not count), and
/// with no forwarding header (a proxy on this machine passing on a remote client does not
/// count, whether or not it is a trusted proxy, and neither does a client whose header ended the
/// walk at the proxy).
pub fn is_local(parts: &Parts) -> bool {
    let forwarded = ["x-forwarded-for", "forwarded", "x-real-ip"].iter().any(|h| parts.headers.contains_key(*h));
    let host = parts.headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).or_else(|| parts.uri.host());
    !forwarded && auth::meta(parts).ip.is_some_and(|ip| ip.to_canonical().is_loopback()) && host.is_some_and(loopback_host)
}

/// `localhost`, `127.0.0.1`, `[::1]`, with or without a port.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback())
}

async fn messages(s: &AppState, caller: &Caller, q: OutboxQuery) -> Result<Vec<OutboxMessage>, ApiError> {
    if !s.outbox {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "outbox_disabled", "the dev outbox is not the configured SMS provider"));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    Ok(s.core.outbox.messages(caller, q.to.as_deref(), limit).await?)
}

/// Messages the dev outbox stored instead of sending, newest first. Needs an API key, except
/// from this machine.
#[utoipa::path(get, path = "/api/dev/outbox", tag = "dev", params(OutboxQuery),
    responses((status = 200, body = OutboxView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list(
    State(s): State<AppState>,
    OutboxReader(caller): OutboxReader,
    ApiQuery(q): ApiQuery<OutboxQuery>,
) -> Result<Json<OutboxView>, ApiError> {
    let messages = messages(&s, &caller, q).await?;
    let messages = messages
        .into_iter()
        .map(|m| {
            let (subject, html) = m.email.map_or((None, None), |(s, h)| (Some(s), Some(h)));
            OutboxMessageView {
                channel: m.channel,
                to: m.to,
                body: m.body,
                subject,
                html,
                verification_id: m.verification_id,
                created_at: m.created_at,
                test: m.test,
            }
        })
        .collect();
    Ok(Json(OutboxView { messages }))
}

async fn page(
    State(s): State<AppState>,
    OutboxReader(caller): OutboxReader,
    headers: axum::http::HeaderMap,
    ApiQuery(q): ApiQuery<OutboxQuery>,
) -> Result<Html<String>, ApiError> {
    let to = q.to.clone().unwrap_or_default();
    let messages = messages(&s, &caller, q).await?;
    Ok(Html(super::pages::outbox::render(&headers, &to, &messages)))
}
