//! The audit log of security events, for admin keys.
use super::error::{ApiError, ErrorBody};
use super::{AppState, auth::Authenticated, extract::ApiQuery};
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use phonegate_core::audit::AuditQuery;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only events of this kind (`budget_exceeded`, `checks_locked`, `destination_refused`,
    /// `webhook_forged`, `key_created`, `key_revoked`, `service_created`).
    kind: Option<String>,
    /// Only events at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// At most this many, newest first (1 to 1000, default 100).
    limit: Option<u32>,
}

/// One security event.
#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    id: String,
    at: DateTime<Utc>,
    kind: String,
    key_id: Option<String>,
    ip: Option<String>,
    request_id: String,
    subject: Option<String>,
    detail: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    events: Vec<AuditEventView>,
}

/// Read the audit log (admin keys only), newest first.
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorBody, description = "invalid_query"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "forbidden: not an admin key")))]
async fn list(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Json<AuditList>, ApiError> {
    let query = AuditQuery { kind: p.kind, since: p.since, limit: p.limit.unwrap_or(100) };
    let events = s.verifier.audit_events(&caller, query).await?;
    let events = events
        .into_iter()
        .map(|e| AuditEventView {
            id: e.id,
            at: e.at,
            kind: e.kind,
            key_id: e.key_id,
            ip: e.ip,
            request_id: e.request_id,
            subject: e.subject,
            detail: e.detail,
        })
        .collect();
    Ok(Json(AuditList { events }))
}
