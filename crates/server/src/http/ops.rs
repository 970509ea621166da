//! Operability endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document.
use super::AppState;
use super::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
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

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(),
    responses((status = 200, body = Health), (status = 503, body = ErrorBody, description = "database_unavailable")))]
async fn readyz(State(s): State<AppState>) -> Result<Json<Health>, ApiError> {
    s.core.ctx.ping().await.map_err(|e| match e {
        phonegate_core::VerifyError::Store(phonegate_core::StoreError::Unavailable(_)) => ApiError::from(e),
        other => ApiError::from(phonegate_core::StoreError::Unavailable(other.to_string())),
    })?;
    Ok(Json(Health { status: "ready" }))
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(), responses((status = 200, body = String, content_type = "application/openmetrics-text")))]
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    s.metrics.set_password_checks_waiting(s.accounts.password_checks_waiting());
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.render())
}
