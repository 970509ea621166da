//! API-key authentication as an extractor: `Authorization: Bearer SECRET` or HTTP Basic `id:secret`.
use super::{AppState, error::ApiError};
use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, header, request::Parts};
use base64::Engine;
use phonegate_core::StoreError;
use phonegate_core::apikey::ApiKey;
use utoipa::Modify;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

/// The authenticated caller. Handlers that take it are closed to anyone without a valid key.
pub struct Authenticated(#[allow(dead_code)] pub ApiKey);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(&parts.headers, state).await?.map(Authenticated).ok_or_else(ApiError::unauthorized)
    }
}

/// The active key named by the `Authorization` header, if any. Every API's extractor calls this
/// and renders a missing key in its own wire format.
pub async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Option<ApiKey>, StoreError> {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    let Some((scheme, credentials)) = value.split_once(' ') else { return Ok(None) };
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        state.keys.by_secret(credentials).await
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(credentials).ok().and_then(|d| String::from_utf8(d).ok());
        match decoded.as_deref().and_then(|d| d.split_once(':')) {
            Some((id, secret)) => state.keys.by_pair(id, secret).await,
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
