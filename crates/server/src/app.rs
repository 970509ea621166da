//! Builds the application from configuration: store, secret, engine, router and listener.
//! Tests call `App::build` with port 0 and their own clock; `serve` runs it until a signal.
use crate::config::Config;
use crate::http::{self, AppState, WebhookKeys};
use crate::metrics::Metrics;
use anyhow::Context;
use phonegate_core::accounts::Accounts;
use phonegate_core::accounts::events::EventSink;
use phonegate_core::apikey::KeyCache;
use phonegate_core::ports::{Observer, Store};
use phonegate_core::{Clock, Core, CoreParts, Limits, SystemClock};
use phonegate_providers::{BuildContext, Providers};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub struct App {
    pub state: AppState,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    config: Config,
}

impl App {
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        let metrics = Arc::new(Metrics::default());
        let (core, providers, store) = engine(&config, clock.clone(), metrics.clone(), crate::secret::Loader::Server).await?;
        if config.outbox_exposure(providers.has_outbox)? {
            tracing::warn!(listen = %config.listen, "outbox_public: the dev outbox is reachable from other machines (its codes only with an API key)");
        }
        let tls = match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
            _ => None,
        };
        let listener = TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let webhooks = Arc::new(WebhookKeys {
            twilio: providers.twilio,
            vonage: providers.vonage,
            whatsapp: providers.whatsapp_cloud,
            public_url: config.public_url.clone(),
            tls: tls.is_some(),
        });
        let keys = Arc::new(KeyCache::new(
            store.clone(),
            clock.clone(),
            chrono::Duration::from_std(config.api_key_cache).unwrap_or(chrono::Duration::MAX),
        ));
        let accounts = accounts(&config, &core).await?;
        crate::config::test_numbers::check_at_start(&core).await?;
        let integrations = Arc::new(
            phonegate_core::integrations::Integrations::new(&core, config.redirect_clients(), config.public_url.as_deref())
                .await
                .context("cannot set up the integrations")?,
        );
        let oidc_clients = config.oidc_clients().map_err(|e| anyhow::anyhow!(e))?;
        let oidc = Arc::new(
            phonegate_core::oidc::Oidc::new(&core, &accounts, oidc_clients).await.context("cannot set up the OpenID Connect provider")?,
        );
        let sink: Arc<dyn phonegate_core::vonage::CallbackSink> = Arc::new(phonegate_providers::vonage_status::StatusWebhook::default());
        let vonage = Arc::new(phonegate_core::vonage::VonageV2::new(&core, Some(sink)));
        let secure_cookies = tls.is_some() || config.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
        let state = AppState {
            secure_cookies,
            accounts,
            oidc,
            integrations,
            vonage,
            core: Arc::new(core),
            keys,
            metrics,
            outbox: providers.has_outbox,
            webhooks,
            clock,
            vonage_min_cancel_secs: config.compat.vonage_min_cancel.as_secs(),
        };
        Ok(App { state, listener, tls, config })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let retention = self.config.retention();
        let sweeper = tokio::spawn(sweep_expired(self.state.clone(), self.config.retention.sweep_interval, retention));
        let sender = tokio::spawn(send_queued(self.state.clone(), self.config.delivery.dispatch_interval));
        let steps = tokio::spawn(start_due_steps(self.state.clone(), self.config.delivery.dispatch_interval));
        let callbacks = tokio::spawn(deliver_callbacks(self.state.clone(), self.config.delivery.dispatch_interval));
        let router = http::router(self.state, &self.config);
        let result = crate::listen::serve(self.listener, self.tls, router, self.config.connections.clone(), shutdown).await;
        sweeper.abort();
        sender.abort();
        steps.abort();
        callbacks.abort();
        result
    }
}

/// The HTTPS configuration from PEM files (rustls with the ring provider; HTTP/2 and 1.1).
pub(crate) fn tls_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the certificate chain {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("cannot read the private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not form a valid pair")?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

/// Marks overdue verifications expired and deletes ended ones past the retention period.
async fn sweep_expired(state: AppState, every: Duration, retention: Option<chrono::Duration>) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match state.accounts.purge().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "deleted expired flows, ended sessions and delivered events"),
            Err(e) => tracing::warn!(error = %e, "account sweep failed"),
        }
        match state.core.verifier.expire_due(1000).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(expired = n, "expired overdue verifications"),
            Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
        }
        if let Some(retention) = retention {
            // Small batches, so the sweep never holds the database for long, until a backlog
            // (say, after a long downtime) is gone.
            let mut deleted = 0;
            for _ in 0..200 {
                match state.core.verifier.purge_old(retention, 2000).await {
                    Ok(n) => {
                        deleted += n;
                        if n < 2000 {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "retention sweep failed");
                        break;
                    }
                }
            }
            if deleted > 0 {
                tracing::info!(deleted, "deleted verifications past retention");
            }
        }
    }
}

/// The workflow worker: starts the next step of verifications whose running step's time has
/// passed, at every round, and at once when a step's message failed.
async fn start_due_steps(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wake = state.core.ctx.steps_due.clone();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = wake.notified() => {}
        }
        loop {
            match state.core.verifier.advance_due(100).await {
                Ok(100) => continue,
                Ok(0) => {}
                Ok(n) => tracing::debug!(started = n, "started workflow steps"),
                Err(e) => tracing::warn!(error = %e, "starting workflow steps failed"),
            }
            break;
        }
    }
}

/// The status-callback worker (Vonage Verify v2 applications): delivers the callbacks that can go,
/// at every round and at once when a request may have ended.
async fn deliver_callbacks(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wake = state.vonage.woken();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = wake.notified() => {}
        }
        match state.vonage.deliver_callbacks(50).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(delivered = n, "delivered status callbacks"),
            Err(e) => tracing::warn!(error = %e, "delivering status callbacks failed"),
        }
    }
}

/// The queue worker: sends messages nobody is sending (the start request's wait ran out, or a
/// sender died and its lease ended).
async fn send_queued(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state.core.delivery.dispatch_due(50).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sent = n, "sent queued messages"),
            Err(e) => tracing::warn!(error = %e, "sending queued messages failed"),
        }
        if state.core.verifier.silent_enabled() {
            match state.core.verifier.expire_silent_checks(100).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(ended = n, "ended overdue silent checks"),
                Err(e) => tracing::warn!(error = %e, "ending overdue silent checks failed"),
            }
        }
        match state.accounts.deliver_events(50).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(delivered = n, "delivered account events"),
            Err(e) => tracing::warn!(error = %e, "delivering account events failed"),
        }
    }
}

/// The engine on the configured database, with the configured SMS providers: what `serve` and
/// the one-shot commands run on. The store is returned only for the key cache to read through.
pub async fn engine(
    config: &Config,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn Observer>,
    loader: crate::secret::Loader,
) -> anyhow::Result<(Core, Providers, Arc<dyn Store>)> {
    let store =
        phonegate_store::connect(&config.database_url, config.database_max_connections).await.context("cannot open the database")?;
    let secret = crate::secret::load(config, store.as_ref(), loader).await?;
    let providers = build_providers(config, observer.clone())?;
    let core = Core::new(CoreParts {
        store: store.clone(),
        sender: providers.sender.clone(),
        clock,
        observer,
        keys: secret,
        phones: config.phone_policy(),
        limits: Limits::default(),
        budgets: config.budgets.clone(),
        test_numbers: config.test_numbers()?,
        delivery: config.delivery_times(),
        silent: silent_routes(config)?,
        decoy_service: phonegate_core::accounts::SERVICE.into(),
    });
    core.catalog.ensure_default_service().await.context("cannot create the default service")?;
    // Load the numbering-plan metadata now rather than on the first request.
    let _ = core.ctx.parse_phone("+4915123456789");
    Ok((core, providers, store))
}

/// The public base URL (configured, else the listening address): `check_url`s and callbacks.
pub fn public_base(config: &Config) -> String {
    config.public_url.clone().unwrap_or_else(|| {
        let scheme = if config.tls.cert.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", config.listen)
    })
}

/// The silent providers (and the simulator) with their routing.
pub(crate) fn silent_routes(config: &Config) -> anyhow::Result<phonegate_core::silent::SilentRoutes> {
    let public = public_base(config);
    let mut providers: Vec<Arc<dyn phonegate_core::silent::SilentProvider>> = Vec::new();
    if config.silent.simulator {
        providers.push(Arc::new(phonegate_core::silent::Simulator));
    }
    for (name, settings) in &config.silent.providers {
        providers.push(phonegate_providers::silent::build(name, settings).context("invalid silent provider configuration")?);
    }
    let timeout = chrono::Duration::from_std(config.silent.timeout).unwrap_or(chrono::Duration::MAX);
    phonegate_core::silent::SilentRoutes::new(providers, config.silent.routing.clone(), &public, timeout)
        .map_err(|e| anyhow::anyhow!("invalid silent provider configuration: {e}"))
}

/// Accounts on the engine: makes sure the `accounts` service and a signing key exist.
pub async fn accounts(config: &Config, core: &Core) -> anyhow::Result<Arc<Accounts>> {
    let events = config.account_webhook.clone().map(|w| Arc::new(phonegate_providers::events::AppWebhook::new(w)) as Arc<dyn EventSink>);
    let accounts =
        Accounts::new(core, config.accounts.clone(), config.public_url.as_deref(), events).await.context("cannot set up accounts")?;
    Ok(Arc::new(accounts))
}

/// The configured SMS providers behind the router (the dev outbox when none are configured).
pub fn build_providers(config: &Config, observer: Arc<dyn Observer>) -> anyhow::Result<Providers> {
    let ctx = BuildContext { public_url: config.public_url.clone(), observer };
    phonegate_providers::build(&config.providers, &config.routing, ctx).context("invalid provider configuration")
}

/// `phonegate serve`.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let signal = shutdown_signal();
    let files = crate::listen::raise_file_limit();
    let app = App::build(config.clone(), Arc::new(SystemClock)).await?;
    if let Some(files) = files
        && files < config.connections.max_connections as u64 + 64
    {
        tracing::warn!(files, max_connections = config.connections.max_connections, "the open-file limit is below the connection cap");
    }
    if app.state.outbox {
        tracing::warn!(
            "SMS provider is the dev outbox: NO message leaves this machine. Codes are stored locally; read them with `phonegate outbox` or GET /api/dev/outbox"
        );
    }
    let scheme = if app.is_tls() { "https" } else { "http" };
    tracing::info!(address = %app.local_addr(), scheme, database = %redact_url(&config.database_url), "phonegate is listening");
    app.run_until(signal).await?;
    // The last spans, before the process ends (the exporter blocks: off the runtime's workers).
    let _ = tokio::task::spawn_blocking(crate::telemetry::shutdown).await;
    tracing::info!("stopped");
    Ok(())
}

/// Drops any credentials from a database URL before it is logged.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***{}", &url[..scheme], &url[at..]),
        _ => url.to_string(),
    }
}

/// Resolves on SIGTERM or Ctrl-C. The SIGTERM handler is installed here, when this is called
/// (not when the future is first polled): called before the server says it listens, a SIGTERM
/// that follows that line at once is never the default action (an abrupt exit).
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async move {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
        tracing::info!("shutting down: finishing in-flight requests");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_are_redacted_from_urls() {
        assert_eq!(super::redact_url("postgres://u:pw@db/x"), "postgres://***@db/x");
        assert_eq!(super::redact_url("sqlite://a.db"), "sqlite://a.db");
    }
}
