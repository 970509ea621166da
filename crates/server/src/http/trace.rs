//! The span of each request: its method and route template (`/api/verifications/{id}`), never
//! the path itself (a Twilio-compat path may hold a phone number), a query string or a body.
//! With traces exported, the span is the trace's server span; it continues the W3C
//! `traceparent` of a trusted proxy (`[http] trusted_proxies`), and any other peer's is ignored.
use super::client_ip::ProxySettings;
use axum::extract::{ConnectInfo, MatchedPath};
use axum::http::{Request, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_http::trace::{DefaultOnResponse, MakeSpan, OnResponse};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes each request's span.
#[derive(Clone)]
pub struct RequestSpan(pub Arc<ProxySettings>);

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &Request<B>) -> tracing::Span {
        // The fallback (no route matched) names no path: it could be anything a client typed.
        let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str());
        let method = req.method().as_str();
        if !crate::telemetry::enabled() {
            return tracing::info_span!("request", method, route, request_id = Empty);
        }
        // The same, in OpenTelemetry's names (the logs then show these too).
        let span = tracing::info_span!(
            "request",
            request_id = Empty,
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            http.request.method = method,
            http.route = route,
            http.response.status_code = Empty,
            otel.status_code = Empty,
        );
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        if peer.is_some_and(|ip| self.0.trusts(&ip)) {
            let headers = opentelemetry_http::HeaderExtractor(req.headers());
            let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&headers));
            let _ = span.set_parent(parent);
        }
        span
    }
}

/// Records the response's status on the span (a server error marks it failed), then logs as
/// tower-http does by default.
#[derive(Clone)]
pub struct RecordStatus;

impl<B> OnResponse<B> for RecordStatus {
    fn on_response(self, response: &Response<B>, latency: Duration, span: &tracing::Span) {
        span.record("http.response.status_code", response.status().as_u16());
        if response.status().is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        DefaultOnResponse::default().on_response(response, latency, span);
    }
}
