//! Who is calling: every request gets a `RequestMeta` (client address and request id), and
//! API-key authentication (`Authorization: Bearer SECRET` or HTTP Basic `id:secret`) turns it
//! into the core's `Caller`.
use super::client_ip::ProxySettings;
use super::{AppState, error::ApiError};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, header, request::Parts};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use phonegate_core::ids::new_id;
use phonegate_core::{Caller, StoreError};
use secrecy::{ExposeSecret, SecretString};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use utoipa::Modify;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

/// Where a request came from and the id its logs and answer carry.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    pub ip: Option<IpAddr>,
    pub request_id: String,
}

impl RequestMeta {
    /// The caller a signed provider webhook acts as.
    pub fn provider(&self) -> Caller {
        Caller::provider(self.ip, self.request_id.clone())
    }
}

const REQUEST_ID: &str = "x-request-id";

tokio::task_local! {
    /// The id of the request being answered, for the renderers of errors (which log it).
    static CURRENT_REQUEST_ID: String;
}

/// The id of the request being answered (outside a request, a new one).
pub fn current_request_id() -> String {
    CURRENT_REQUEST_ID.try_with(String::clone).unwrap_or_else(|_| new_id("RQ"))
}

/// Gives every request its `RequestMeta`: the client's address and a request id (the client's
/// own `x-request-id` when it is a short token, else a new one), echoed in the answer.
pub async fn request_meta(State(proxies): State<Arc<ProxySettings>>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let ip = peer.map(|peer| proxies.client_ip_noting(peer, req.headers()));
    let offered = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok());
    let request_id = match offered {
        Some(id) if (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) => id.to_string(),
        _ => new_id("RQ"),
    };
    let header = HeaderValue::from_str(&request_id).ok();
    tracing::Span::current().record("request_id", request_id.as_str());
    req.extensions_mut().insert(RequestMeta { ip, request_id: request_id.clone() });
    let mut response = CURRENT_REQUEST_ID.scope(request_id, next.run(req)).await;
    if let Some(h) = header {
        response.headers_mut().insert(REQUEST_ID, h);
    }
    response
}

/// The meta of a request (present on every route; a default only outside the router).
pub fn meta(parts: &Parts) -> RequestMeta {
    parts.extensions.get::<RequestMeta>().cloned().unwrap_or_else(|| RequestMeta { ip: None, request_id: new_id("RQ") })
}

/// The authenticated caller. Handlers that take it are closed to anyone without a valid key.
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(&parts.headers, &meta(parts), state).await?.map(Authenticated).ok_or_else(ApiError::unauthorized)
    }
}

/// The caller whose active key the `Authorization` header names, if any. Every API's extractor
/// calls this and renders a missing key in its own wire format.
pub async fn authenticate(headers: &HeaderMap, meta: &RequestMeta, state: &AppState) -> Result<Option<Caller>, StoreError> {
    let key = key_of(headers, state).await?;
    Ok(key.map(|k| Caller::key(&k, meta.ip, meta.request_id.clone())))
}

async fn key_of(headers: &HeaderMap, state: &AppState) -> Result<Option<phonegate_core::apikey::ApiKey>, StoreError> {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    let Some((scheme, credentials)) = value.split_once(' ') else { return Ok(None) };
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        state.keys.by_secret(&SecretString::from(credentials)).await
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(credentials).ok().and_then(|d| String::from_utf8(d).ok());
        let decoded = decoded.map(SecretString::from);
        match decoded.as_ref().and_then(|d| d.expose_secret().split_once(':')) {
            Some((id, secret)) => state.keys.by_pair(id, &SecretString::from(secret)).await,
            None => Ok(None),
        }
    } else {
        Ok(None)
    }
}

pub struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    }
}
