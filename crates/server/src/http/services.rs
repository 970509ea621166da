//! Services (tenants): create, list, read, change, delete.
use super::error::{ApiError, ErrorBody};
use super::{AppState, auth::Authenticated, extract::ApiJson};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use phonegate_core::Service;
use phonegate_core::catalog::ServiceChanges;
use phonegate_core::service::ServiceSettings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create, list)).routes(routes!(get, update, delete))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceBody {
    /// Unique name; also what `{service}` renders to in messages.
    name: String,
    /// Digits per code, 4 to 10 (default 6).
    code_length: Option<u8>,
    /// Code lifetime in seconds, 60 to 86400 (default 600).
    code_ttl_secs: Option<i64>,
    /// Message templates by locale; each must contain `{code}` and may contain `{service}`.
    #[serde(default)]
    templates: BTreeMap<String, String>,
    /// Let starts bring their own code (`custom_code`; Twilio `CustomCode`, Vonage `pin_code`).
    #[serde(default)]
    custom_codes: bool,
    /// Let starts be PSD2 payment codes (`amount` and `payee`; Twilio `Amount`/`Payee`, Vonage
    /// `/verify/psd2/json`).
    #[serde(default)]
    psd2: bool,
    /// The steps a verification takes when the start names no channel (and, for `auto`, those
    /// that fit the number), as in `POST /api/verifications`: default one SMS.
    workflow: Option<Vec<super::verifications::StepBody>>,
    /// `From` of its e-mails (`Shop <codes@example.com>`), else the e-mail provider's `from`.
    email_from: Option<String>,
    /// `Reply-To` of its e-mails.
    email_reply_to: Option<String>,
    /// A call waits for a key press before it speaks the code (Twilio `DtmfInputRequired`).
    #[serde(default)]
    voice_key_press: bool,
    /// The name a call says instead of `name`, for a name that reads badly aloud (Twilio
    /// `TtsName`); a verification's `brand` still wins.
    voice_name: Option<String>,
    /// The WhatsApp sender of its messages (`+15005550006`, E.164), instead of the WhatsApp
    /// routing's or the provider's.
    whatsapp_from: Option<String>,
}

/// A change of a service: every field optional (absent or `null`: unchanged), each validated as on
/// create. Verifications already started keep the settings they started with.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServiceBody {
    /// A new unique name (the server's own services `phonegate`, `accounts` and `integrations`
    /// keep theirs).
    name: Option<String>,
    /// Digits per code, 4 to 10.
    code_length: Option<u8>,
    /// Code lifetime in seconds, 60 to 86400.
    code_ttl_secs: Option<i64>,
    /// Replaces every template (`{}` removes them all); each must contain `{code}`.
    templates: Option<BTreeMap<String, String>>,
    custom_codes: Option<bool>,
    psd2: Option<bool>,
    /// Replaces the default workflow (steps as on create).
    workflow: Option<Vec<super::verifications::StepBody>>,
    email_from: Option<String>,
    email_reply_to: Option<String>,
    voice_key_press: Option<bool>,
    voice_name: Option<String>,
    whatsapp_from: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ServiceView {
    id: String,
    name: String,
    /// The name `{service}` renders to and Twilio answers show, where it differs from `name`
    /// (a Twilio service given a FriendlyName another service has); else null.
    friendly_name: Option<String>,
    code_length: u8,
    code_ttl_secs: i64,
    templates: BTreeMap<String, String>,
    custom_codes: bool,
    psd2: bool,
    /// Its default workflow: steps with `channel` and `timeout_secs`.
    workflow: Vec<super::verifications::WorkflowStep>,
    email_from: Option<String>,
    email_reply_to: Option<String>,
    voice_key_press: bool,
    voice_name: Option<String>,
    whatsapp_from: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Service> for ServiceView {
    fn from(s: Service) -> Self {
        Self {
            id: s.id,
            name: s.name,
            friendly_name: s.friendly_name,
            code_length: s.code_length,
            code_ttl_secs: s.code_ttl_secs,
            templates: s.templates,
            custom_codes: s.custom_codes,
            psd2: s.psd2,
            workflow: super::verifications::workflow_view(&s.channels.workflow),
            email_from: s.channels.email_from,
            email_reply_to: s.channels.email_reply_to,
            voice_key_press: s.channels.voice_key_press,
            voice_name: s.channels.voice_name,
            whatsapp_from: s.channels.whatsapp_from,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ServiceList {
    services: Vec<ServiceView>,
}

/// Create a service.
#[utoipa::path(post, path = "/api/services", tag = "services", request_body = CreateServiceBody,
    responses((status = 201, body = ServiceView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "forbidden: only admin keys create services"),
        (status = 409, body = ErrorBody, description = "service_name_taken")))]
async fn create(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(b): ApiJson<CreateServiceBody>,
) -> Result<(StatusCode, Json<ServiceView>), ApiError> {
    let settings = ServiceSettings {
        name: b.name,
        code_length: b.code_length,
        code_ttl_secs: b.code_ttl_secs,
        templates: b.templates,
        custom_codes: b.custom_codes,
        psd2: b.psd2,
        channels: phonegate_core::service::ChannelSettings {
            workflow: b.workflow.map(super::verifications::workflow).transpose()?.unwrap_or_default(),
            email_from: b.email_from,
            email_reply_to: b.email_reply_to,
            voice_key_press: b.voice_key_press,
            voice_name: b.voice_name,
            whatsapp_from: b.whatsapp_from,
        },
    };
    Ok((StatusCode::CREATED, Json(s.core.catalog.create_service(&caller, settings).await?.into())))
}

/// List services, sorted by name.
#[utoipa::path(get, path = "/api/services", tag = "services", responses((status = 200, body = ServiceList), (status = 401, body = ErrorBody)))]
async fn list(State(s): State<AppState>, Authenticated(caller): Authenticated) -> Result<Json<ServiceList>, ApiError> {
    let services = s.core.catalog.services(&caller).await?;
    Ok(Json(ServiceList { services: services.into_iter().map(Into::into).collect() }))
}

/// Read a service by id or name.
#[utoipa::path(get, path = "/api/services/{id}", tag = "services", params(("id" = String, Path, description = "VA… id or name")),
    responses((status = 200, body = ServiceView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<ServiceView>, ApiError> {
    Ok(Json(s.core.catalog.service(&caller, Some(&id)).await?.into()))
}

/// Change a service's settings (admin keys only). What the body leaves out stays as it is.
#[utoipa::path(patch, path = "/api/services/{id}", tag = "services", request_body = UpdateServiceBody,
    params(("id" = String, Path, description = "VA… id or name")),
    responses((status = 200, body = ServiceView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "forbidden: only admin keys change services"),
        (status = 404, body = ErrorBody, description = "service_not_found (also another tenant's)"),
        (status = 409, body = ErrorBody, description = "service_name_taken; service_reserved: a rename of the server's own services")))]
async fn update(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateServiceBody>,
) -> Result<Json<ServiceView>, ApiError> {
    let changes = ServiceChanges {
        name: b.name,
        code_length: b.code_length,
        code_ttl_secs: b.code_ttl_secs,
        templates: b.templates,
        custom_codes: b.custom_codes,
        psd2: b.psd2,
        workflow: b.workflow.map(super::verifications::workflow).transpose()?,
        email_from: b.email_from,
        email_reply_to: b.email_reply_to,
        voice_key_press: b.voice_key_press,
        voice_name: b.voice_name,
        whatsapp_from: b.whatsapp_from,
        name_may_be_shared: false,
    };
    Ok(Json(s.core.catalog.update_service(&caller, &id, changes).await?.into()))
}

/// Delete a service (admin keys only): its pending verifications are canceled at once, and no API
/// finds it afterwards.
#[utoipa::path(delete, path = "/api/services/{id}", tag = "services", params(("id" = String, Path, description = "VA… id or name")),
    responses((status = 204, description = "deleted"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "forbidden: only admin keys delete services"),
        (status = 404, body = ErrorBody, description = "service_not_found (also another tenant's)"),
        (status = 409, body = ErrorBody, description = "service_reserved: the server's own services (phonegate, accounts, integrations)")))]
async fn delete(State(s): State<AppState>, Authenticated(caller): Authenticated, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.core.catalog.delete_service(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
