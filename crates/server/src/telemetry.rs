//! Structured logs with tracing, human or JSON, and, when configured, OpenTelemetry traces
//! exported over OTLP/HTTP (protobuf). Codes and secrets never reach a log line or a span: the
//! types that carry them redact themselves, request spans name the route template (never the
//! path, a query string or a body), and spans show phone numbers masked.
//!
//! Traces are off unless `[telemetry]` or the standard `OTEL_*` variables ask for them; then the
//! spans of the server (requests), the core (use cases, store units, Argon2 hashes) and the
//! providers (SMS and silent providers, the app's webhook) are exported, and a trusted proxy's
//! `traceparent` is continued. When off, no layer beyond the log's is installed.
use crate::config::{Config, LogFormat, TelemetrySettings};
use anyhow::Context as _;
use opentelemetry::trace::{SpanKind, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Sets up logging, and trace export when configured. An export that is asked for but cannot
/// work (an unsupported protocol or exporter in the `OTEL_*` variables) is an error.
pub fn init(config: &Config) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&config.log.level)).unwrap_or_else(|_| EnvFilter::new("info"));
    let Some(provider) = tracer_provider(&config.telemetry)? else {
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
        let _ = match config.log.format {
            LogFormat::Human => builder.try_init(),
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
        };
        return Ok(());
    };
    let logs = match config.log.format {
        LogFormat::Human => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(std::io::stderr).boxed(),
    };
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("phonegate"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_target(false)
        // Nothing here reads OpenTelemetry's own current context: no attaching it at every poll.
        .with_context_activation(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|m| traced(m.target(), m.is_span(), *m.level())));
    let _ = tracing_subscriber::registry().with(logs.with_filter(filter)).with(traces).try_init();
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    let _ = PROVIDER.set(provider);
    ENABLED.store(true, Ordering::Relaxed);
    tracing::info!(service = %service_name(&config.telemetry), "exporting traces over OTLP/HTTP");
    Ok(())
}

/// Whether traces are exported (a trusted proxy's `traceparent` is then continued).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Sends the spans not yet exported and stops the exporter (at shutdown). Blocks: call it off
/// the async runtime's workers.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(e) = provider.shutdown()
    {
        tracing::warn!(error = %e, "the last traces could not be exported");
    }
}

/// Which callsites traces record: phonegate's spans from debug up (use cases, store units,
/// hashes, provider calls) and its events from info up (as span events).
fn traced(target: &str, span: bool, level: tracing::Level) -> bool {
    let ours = ["phonegate", "phonegate_core", "phonegate_providers", "phonegate_store"]
        .iter()
        .any(|c| target.strip_prefix(c).is_some_and(|rest| rest.is_empty() || rest.starts_with("::")));
    ours && level <= if span { tracing::Level::DEBUG } else { tracing::Level::INFO }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Whether traces are to be exported: `[telemetry] enabled`, else an endpoint set here or in the
/// `OTEL_*` variables. `OTEL_SDK_DISABLED=true` and `OTEL_TRACES_EXPORTER=none` turn it off.
pub fn export_wanted(t: &TelemetrySettings) -> anyhow::Result<bool> {
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(false);
    }
    match env("OTEL_TRACES_EXPORTER").as_deref() {
        Some("none") => return Ok(false),
        None | Some("otlp") => {}
        Some(other) => anyhow::bail!("OTEL_TRACES_EXPORTER={other}: phonegate exports traces over OTLP only (`otlp` or `none`)"),
    }
    let endpoint =
        t.otlp_endpoint.is_some() || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some();
    let wanted = t.enabled.unwrap_or(endpoint);
    if wanted {
        let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"));
        if let Some(p) = protocol.filter(|p| p != "http/protobuf") {
            anyhow::bail!("OTEL_EXPORTER_OTLP_PROTOCOL={p}: phonegate exports traces as http/protobuf only (a collector's port 4318)");
        }
    }
    Ok(wanted)
}

fn service_name(t: &TelemetrySettings) -> String {
    t.service_name.clone().or_else(|| env("OTEL_SERVICE_NAME")).unwrap_or_else(|| "phonegate".into())
}

/// The tracer provider exporting to the configured collector, or `None` when export is off.
fn tracer_provider(t: &TelemetrySettings) -> anyhow::Result<Option<SdkTracerProvider>> {
    if !export_wanted(t)? {
        return Ok(None);
    }
    let client = Exporter {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("cannot set up the HTTP client for trace export")?,
        runtime: tokio::runtime::Handle::try_current().context("trace export needs the async runtime")?,
    };
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary).with_http_client(client);
    if let Some(url) = &t.otlp_endpoint {
        exporter = exporter.with_endpoint(format!("{}/v1/traces", url.trim_end_matches('/')));
    }
    let exporter = exporter.build().context("cannot set up trace export")?;
    let resource = Resource::builder()
        .with_service_name(service_name(t))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    // `OTEL_TRACES_SAMPLER` (and `_ARG`) are read by the SDK's default.
    let sampler = match t.sample_ratio {
        Some(r) => {
            Box::new(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(r))))
        }
        None => opentelemetry_sdk::trace::Config::default().sampler,
    };
    let provider =
        SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).with_sampler(QuietBackground(sampler)).build();
    Ok(Some(provider))
}

/// The configured sampler, except that traces nobody wants are not started: a store unit with
/// no use case around it (the background workers' polls, several a second) and the probes'
/// requests (`/healthz`, `/readyz`, `/metrics`).
#[derive(Debug, Clone)]
struct QuietBackground(Box<dyn ShouldSample>);

impl ShouldSample for QuietBackground {
    fn should_sample(
        &self,
        parent: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[opentelemetry::trace::Link],
    ) -> SamplingResult {
        let root = parent.is_none_or(|cx| !cx.has_active_span());
        if root && quiet(name) {
            return SamplingResult { decision: SamplingDecision::Drop, attributes: Vec::new(), trace_state: Default::default() };
        }
        self.0.should_sample(parent, trace_id, name, kind, attributes, links)
    }
}

fn quiet(name: &str) -> bool {
    name.starts_with("store.") || ["GET /healthz", "GET /readyz", "GET /metrics"].contains(&name)
}

/// The OTLP exporter's HTTP client: the workspace's reqwest (rustls), run on the server's
/// runtime (the SDK's batch processor exports from a thread of its own).
#[derive(Debug)]
struct Exporter {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

/// When an export last failed (seconds since the epoch), so a collector that is down is
/// reported once a minute, not with every batch.
static LAST_FAILURE: AtomicU64 = AtomicU64::new(0);

fn report_failure(what: &str) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let last = LAST_FAILURE.load(Ordering::Relaxed);
    if now >= last + 60 && LAST_FAILURE.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        tracing::warn!(error = %what, "traces could not be exported (reported once a minute)");
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Exporter {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<opentelemetry_http::Response<opentelemetry_http::Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let response = client.execute(request).await?;
            let (status, headers) = (response.status(), response.headers().clone());
            let body = response.bytes().await?;
            let mut answer = opentelemetry_http::Response::new(body);
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            Ok::<_, reqwest::Error>(answer)
        });
        match sent.await? {
            Ok(answer) => {
                if !answer.status().is_success() {
                    report_failure(&format!("the collector answered HTTP {}", answer.status().as_u16()));
                }
                Ok(answer)
            }
            Err(e) => {
                // Without the URL's query: it may carry a token.
                let e = e.without_url();
                report_failure(&e.to_string());
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail hands back its own large error
mod tests {
    use super::*;

    #[test]
    fn traces_record_phonegate_spans_from_debug_and_its_events_from_info() {
        use tracing::Level;
        assert!(traced("phonegate_core::ports", true, Level::DEBUG));
        assert!(traced("phonegate::http", true, Level::INFO));
        assert!(!traced("phonegate_core::ports", true, Level::TRACE));
        assert!(!traced("phonegate_core::engine", false, Level::DEBUG));
        assert!(traced("phonegate_providers::routing", false, Level::WARN));
        assert!(!traced("hyper::proto", true, Level::INFO));
        assert!(!traced("phonegate_other", true, Level::INFO));
    }

    #[test]
    fn export_follows_the_settings_and_the_standard_variables() {
        // In a jail: the variables are set for this test alone and restored after it.
        figment::Jail::expect_with(|jail| {
            for name in ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER"] {
                jail.set_env(name, "");
            }
            let off = TelemetrySettings::default();
            let on = TelemetrySettings { otlp_endpoint: Some("http://collector:4318".into()), ..Default::default() };
            assert!(!export_wanted(&off).unwrap() && export_wanted(&on).unwrap());
            assert!(!export_wanted(&TelemetrySettings { enabled: Some(false), ..on.clone() }).unwrap());
            assert!(export_wanted(&TelemetrySettings { enabled: Some(true), ..Default::default() }).unwrap());
            jail.set_env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
            assert!(export_wanted(&off).unwrap());
            jail.set_env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
            assert!(export_wanted(&off).unwrap_err().to_string().contains("http/protobuf only"));
            jail.set_env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
            jail.set_env("OTEL_TRACES_EXPORTER", "zipkin");
            assert!(export_wanted(&off).unwrap_err().to_string().contains("OTLP only"));
            jail.set_env("OTEL_TRACES_EXPORTER", "none");
            assert!(!export_wanted(&on).unwrap());
            jail.set_env("OTEL_TRACES_EXPORTER", "");
            jail.set_env("OTEL_SDK_DISABLED", "true");
            assert!(!export_wanted(&on).unwrap());
            Ok(())
        });
    }

    #[test]
    fn background_polls_and_probes_start_no_trace() {
        assert!(quiet("store.write") && quiet("store.read") && quiet("GET /readyz"));
        assert!(!quiet("POST /api/verifications") && !quiet("delivery.send"));
    }
}
