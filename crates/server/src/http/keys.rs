//! An API key's Vonage application (Vonage Verify v2): set (or replace) its public key, status
//! webhook and signature secret, and read it back. Admin keys only; `phonegate keys create
//! --vonage-application-public-key` does the same for a new key.
use super::error::{ApiError, ErrorBody};
use super::{AppState, auth::Authenticated, extract::ApiJson};
use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use phonegate_core::vonage::NewApp;
use phonegate_core::vonage_model::VonageApp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(set_application, get_application))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationBody {
    /// The application's RSA public key, PEM.
    public_key: String,
    /// Where its status callbacks go (http or https).
    status_url: Option<String>,
    /// The secret its callbacks are signed with (HS256), 32 characters or more. Never shown again.
    signature_secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ApplicationView {
    /// The `application_id` its JWTs name.
    application_id: String,
    key_id: String,
    public_key: String,
    status_url: Option<String>,
    /// Whether callbacks are signed (the secret itself is never shown).
    signed_callbacks: bool,
    created_at: DateTime<Utc>,
}

impl From<VonageApp> for ApplicationView {
    fn from(a: VonageApp) -> Self {
        Self {
            application_id: a.id,
            key_id: a.key_id,
            public_key: a.public_key,
            status_url: a.status_url,
            signed_callbacks: a.signature_secret_sealed.is_some(),
            created_at: a.created_at,
        }
    }
}

/// Gives a key a Vonage application, or replaces its public key, status URL and secret (the
/// application id stays).
#[utoipa::path(put, path = "/api/keys/{id}/vonage-application", tag = "keys", request_body = ApplicationBody,
    params(("id" = String, Path, description = "the key's id (SK…)")),
    responses((status = 200, body = ApplicationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "forbidden: admin keys only"), (status = 404, body = ErrorBody, description = "api_key_not_found")))]
async fn set_application(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ApplicationBody>,
) -> Result<Json<ApplicationView>, ApiError> {
    let new = NewApp {
        public_key: b.public_key,
        status_url: b.status_url,
        signature_secret: b.signature_secret.map(secrecy::SecretString::from),
    };
    Ok(Json(s.vonage.set_app(&caller, &id, new).await?.into()))
}

/// A key's Vonage application.
#[utoipa::path(get, path = "/api/keys/{id}/vonage-application", tag = "keys",
    params(("id" = String, Path, description = "the key's id (SK…)")),
    responses((status = 200, body = ApplicationView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "forbidden: admin keys only"), (status = 404, body = ErrorBody, description = "api_key_not_found: no such key, or it has no application")))]
async fn get_application(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<ApplicationView>, ApiError> {
    let app = s.vonage.app_of_key(&caller, &id).await?.ok_or(phonegate_core::VerifyError::ApiKeyNotFound)?;
    Ok(Json(app.into()))
}
