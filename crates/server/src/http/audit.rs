//! The audit log of security events, for admin keys.
use super::error::{ApiError, ErrorBody};
use super::{AppState, auth::Authenticated, extract::ApiQuery};
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use phonegate_core::audit::{AuditEvent, AuditQuery};
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
    /// `webhook_forged`, `key_created`, `key_revoked`, `service_created`, `signup`, `login`,
    /// `member_removed`, `invite_created`…).
    kind: Option<String>,
    /// Only events a user or API key (its id) caused, or that concern it.
    who: Option<String>,
    /// Only events from this address.
    ip: Option<String>,
    /// Only events at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Only events before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// At most this many, newest first (1 to 1000, default 100).
    limit: Option<u32>,
}

impl AuditParams {
    pub fn query(self) -> AuditQuery {
        let filter = |f: Option<String>| f.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        AuditQuery {
            kind: filter(self.kind),
            who: filter(self.who),
            ip: filter(self.ip),
            since: self.since,
            until: self.until,
            limit: self.limit.unwrap_or(100),
            ..Default::default()
        }
    }
}

/// One security event.
#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    id: String,
    at: DateTime<Utc>,
    kind: String,
    key_id: Option<String>,
    /// Who caused it: a signed-in user's id, else the API key's id.
    actor: Option<String>,
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
    let events = s.core.audit.events(&caller, p.query()).await?;
    Ok(Json(AuditList::from(events)))
}

impl From<Vec<AuditEvent>> for AuditList {
    fn from(events: Vec<AuditEvent>) -> Self {
        let events = events
            .into_iter()
            .map(|e| AuditEventView {
                id: e.id,
                at: e.at,
                kind: e.kind,
                key_id: e.key_id,
                actor: e.actor,
                ip: e.ip,
                request_id: e.request_id,
                subject: e.subject,
                detail: e.detail,
            })
            .collect();
        Self { events }
    }
}
