//! `/openapi.json` and `/docs`: the API reference rendered on the server from the generated
//! OpenAPI document, so it works without any internet access (no CDN scripts).
use super::AppState;
use super::pages::docs::DocsPages;
use axum::http::HeaderMap;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use utoipa::openapi::OpenApi;

pub fn routes(spec: Arc<OpenApi>) -> Router<AppState> {
    let pages = Arc::new(DocsPages::new(&spec));
    let json = Arc::new(serde_json::to_value(spec.as_ref()).unwrap_or_default());
    Router::new()
        .route("/openapi.json", get(move || std::future::ready(Json(json.as_ref().clone()))))
        .route("/docs", get(move |headers: HeaderMap| std::future::ready(Html(pages.for_reader(&headers).to_string()))))
}
