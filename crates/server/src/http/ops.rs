//! Operability endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document.
use super::AppState;
use super::client_ip::{UntrustedForwarding, UntrustedPeer};
use super::error::{ApiError, ErrorBody};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz)).routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(), responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`.
    status: &'static str,
    /// What an operator should know while the server is ready.
    details: ReadinessDetails,
}

#[derive(Serialize, ToSchema)]
pub struct ReadinessDetails {
    /// A request carried a forwarding header from a peer that is not in `[http] trusted_proxies`
    /// (the first one since start): if that peer is a reverse proxy, everyone behind it is
    /// counted as its one address.
    #[serde(skip_serializing_if = "Option::is_none")]
    untrusted_forwarded_for: Option<UntrustedPeer>,
}

/// Readiness: the database answers. `details` names configuration to look at.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(),
    responses((status = 200, body = Readiness), (status = 503, body = ErrorBody, description = "database_unavailable")))]
async fn readyz(State(s): State<AppState>, Extension(untrusted): Extension<Arc<UntrustedForwarding>>) -> Result<Json<Readiness>, ApiError> {
    s.core.ctx.ping().await.map_err(|e| match e {
        phonegate_core::VerifyError::Store(phonegate_core::StoreError::Unavailable(_)) => ApiError::from(e),
        other => ApiError::from(phonegate_core::StoreError::Unavailable(other.to_string())),
    })?;
    let details = ReadinessDetails { untrusted_forwarded_for: untrusted.first().cloned() };
    Ok(Json(Readiness { status: "ready", details }))
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(), responses((status = 200, body = String, content_type = "application/openmetrics-text")))]
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    s.metrics.set_password_checks_waiting(s.accounts.password_checks_waiting());
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.render())
}
