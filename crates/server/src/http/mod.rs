//! The HTTP adapters: they parse, authenticate, call the core and render. No rules live here.
mod accounts;
mod admin;
mod audit;
mod auth;
mod call_webhooks;
mod channel_webhooks;
mod client_ip;
mod compat;
mod docs;
mod error;
mod extract;
mod headers;
mod keys;
mod me_email;
mod me_password;
mod oidc;
mod ops;
mod outbox;
mod pages;
mod services;
mod session;
mod silent;
mod trace;
mod verifications;
mod webhooks;

use crate::config::Config;
use crate::metrics::Metrics;
use auth::SecurityAddon;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use phonegate_core::apikey::KeyCache;
use phonegate_core::{Clock, Core};
use phonegate_providers::{TwilioAccount, VonageAccount};
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;

#[derive(Clone)]
pub struct AppState {
    /// Whether browsers reach this server over HTTPS (TLS here, or an `https` public URL): the
    /// session cookie is then `Secure` with the `__Host-` prefix.
    pub secure_cookies: bool,
    pub accounts: Arc<phonegate_core::accounts::Accounts>,
    /// The OpenID Connect provider.
    pub oidc: Arc<phonegate_core::oidc::Oidc>,
    /// The signed-redirect steps (Auth0 and configured clients).
    pub integrations: Arc<phonegate_core::integrations::Integrations>,
    /// The Vonage Verify v2 drop-in's applications, status callbacks and templates.
    pub vonage: Arc<phonegate_core::vonage::VonageV2>,
    /// The core's services (verifications, delivery, keys, audit, catalog…).
    pub core: Arc<Core>,
    pub keys: Arc<KeyCache>,
    pub metrics: Arc<Metrics>,
    /// True when the dev outbox is a configured provider (its read endpoints exist only then).
    pub outbox: bool,
    pub webhooks: Arc<WebhookKeys>,
    pub clock: Arc<dyn Clock>,
    /// Vonage refuses to cancel a verification younger than this (30 s, as Vonage does).
    pub vonage_min_cancel_secs: u64,
}

/// What verifies the providers' webhooks.
pub struct WebhookKeys {
    pub twilio: Vec<TwilioAccount>,
    pub vonage: Vec<VonageAccount>,
    /// Meta's WhatsApp Cloud API: app secrets and verify tokens.
    pub whatsapp: Vec<phonegate_providers::WhatsappCloudAccount>,
    /// The public base URL Twilio signs; without it, the request's Host header is trusted.
    pub public_url: Option<String>,
    /// Whether this server speaks HTTPS itself (for URLs built from the Host header).
    pub tls: bool,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "phonegate", description = "Prove that a person holds a phone number: send one-time codes and check them."),
    modifiers(&SecurityAddon),
    security(("bearer" = []), ("basic" = []))
)]
struct ApiDoc;

/// The OpenAPI document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(verifications::routes())
        .merge(services::routes())
        .merge(keys::routes())
        .merge(outbox::routes())
        .merge(ops::routes())
        .merge(audit::routes())
        .merge(accounts::routes())
        .merge(me_password::routes())
        .merge(me_email::routes())
        .merge(admin::routes())
        .merge(silent::routes())
        .merge(oidc::api_routes())
}

pub fn router(state: AppState, config: &Config) -> Router {
    let (api, spec) = api_router().split_for_parts();
    let spec = Arc::new(spec);
    let proxies = Arc::new(proxy_settings(config));
    api.merge(docs::routes(spec))
        .merge(outbox::page_routes())
        .merge(pages::routes())
        .merge(oidc::routes())
        .merge(silent::page_routes())
        .merge(webhooks::routes())
        .merge(call_webhooks::routes())
        .merge(compat::twilio::routes())
        .merge(compat::vonage::routes())
        .merge(compat::vonage2::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(config.http.max_body_bytes))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(axum::middleware::from_fn_with_state(state.secure_cookies, headers::security_headers))
        // `/readyz` reports a forwarding header from a peer that is not a trusted proxy.
        .layer(axum::Extension(proxies.untrusted.clone()))
        .layer(axum::middleware::from_fn_with_state(proxies.clone(), auth::request_meta))
        // The route template only: paths may hold numbers, query strings credentials (compat APIs).
        .layer(TraceLayer::new_for_http().make_span_with(trace::RequestSpan(proxies)).on_response(trace::RecordStatus))
        .with_state(state)
}

fn proxy_settings(config: &Config) -> client_ip::ProxySettings {
    client_ip::ProxySettings {
        proxies: config.http.trusted_proxies.clone(),
        header: config.http.client_ip_header,
        untrusted: Default::default(),
    }
}
