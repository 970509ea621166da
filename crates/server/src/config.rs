//! Configuration, layered: built-in defaults → TOML file (`--config`) → `PHONEGATE_*` environment
//! variables → command-line flags. Unknown keys are an error, not silently ignored, and so are the
//! names of older releases (the error names the new place). Durations are strings everywhere:
//! `"500ms"`, `"30s"`, `"10m"`, `"24h"`, `"30d"` (see `phonegate_core::duration`).
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::Value;
use phonegate_core::DeliveryTimes;
use phonegate_core::phone::{NumberKind, PhonePolicy, parse_region};
use phonegate_providers::ProviderSettings;
use phonegate_providers::routing::RoutingSettings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod integrations;
mod moved;
mod oidc;
mod telemetry;
pub mod test_numbers;

pub use integrations::{Auth0Settings, RedirectClientSettings};
pub use telemetry::TelemetrySettings;

/// The whole configuration. The keys a first run needs stay at the top; the rest is grouped in
/// tables (`[silent]`, `[delivery]`, `[phones]`…), one per concern.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server binds to.
    pub listen: SocketAddr,
    /// `sqlite://PATH` (created if missing) or `postgres://USER@HOST:PORT/DB`.
    pub database_url: String,
    /// Upper bound of the PostgreSQL connection pool per instance.
    pub database_max_connections: u32,
    /// The key file: the server secrets that seal codes and message bodies and sign tokens,
    /// kept outside the database. Default: `$CREDENTIALS_DIRECTORY/phonegate-secret` when
    /// systemd passes that credential, else `phonegate-secret` next to the SQLite file; with
    /// PostgreSQL it must be set (every instance needs the same file).
    pub secret_file: Option<PathBuf>,
    /// Public base URL of this server (`https://verify.example.com`): status callbacks point
    /// there and Twilio's webhook signatures are checked against it.
    pub public_url: Option<String>,
    /// How long an authenticated API key is remembered (a revoked key is refused by every
    /// instance within this time); `"0s"` checks the database on every request.
    #[serde(with = "phonegate_core::duration")]
    pub api_key_cache: Duration,
    /// Lets the dev outbox serve on an address other than loopback. Its pages and API show every
    /// code to an API key or a local client only, but a server that sends nothing should not be
    /// reachable by accident: without this, such a `listen` is refused.
    pub outbox_public: bool,
    /// HTTPS (`[tls]`).
    pub tls: TlsSettings,
    /// Logs (`[log]`).
    pub log: LogSettings,
    /// OpenTelemetry traces (`[telemetry]`; the `OTEL_*` variables too).
    pub telemetry: TelemetrySettings,
    /// Requests (`[http]`): body size, reverse proxies.
    pub http: HttpSettings,
    /// Limits on client connections (`[connections]`; see docs/security.md).
    pub connections: crate::listen::ConnectionLimits,
    /// Which numbers are accepted and where codes may go (`[phones]`).
    pub phones: PhoneSettings,
    /// SMS providers by name (`[providers.NAME]` with `kind = "twilio" | "vonage" | "sipgate" |
    /// "http" | "outbox"`). None configured: the dev outbox.
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Which providers to try, in order, per service and number prefix.
    pub routing: RoutingSettings,
    /// When and how often messages are sent (`[delivery]`).
    pub delivery: DeliverySettings,
    /// How long ended verifications are kept (`[retention]`).
    pub retention: RetentionSettings,
    /// What a phone number, key, service, country, prefix or end-user IP may use
    /// (`[budgets]`, rates like `"5/10m"`; see docs/budgets.md).
    pub budgets: phonegate_core::budget::Budgets,
    /// Accounts and login (`[accounts]`: sessions, tokens, codes; see docs/accounts.md).
    pub accounts: phonegate_core::accounts::AccountSettings,
    /// The app's webhook for account events (`[account_webhook]` with `url` and `secret`):
    /// user created, phone changed, deleted.
    pub account_webhook: Option<phonegate_providers::events::AppWebhookSettings>,
    /// Silent (SIM-based) verification (`[silent]`).
    pub silent: SilentSettings,
    /// The compatibility APIs (`[compat]`).
    pub compat: CompatSettings,
    /// The hosted phone step for an Auth0 tenant (`[auth0]`: `domain`, `secret`; docs/redirect-step.md).
    pub auth0: Option<Auth0Settings>,
    /// The same signed-redirect step for any identity provider or app, by name
    /// (`[redirect_clients.NAME]`: `secret`, `issuer`, `return_urls`).
    pub redirect_clients: BTreeMap<String, RedirectClientSettings>,
    /// OpenID Connect relying parties (`[oidc_clients.NAME]`: `client_id`, `client_secret`,
    /// `redirect_uris`…; docs/oidc.md). More can be made in the admin console.
    pub oidc_clients: BTreeMap<String, oidc::OidcClientSettings>,
    /// Numbers with fixed codes that nothing is ever sent to (`[test_numbers]`: `"+E164" = "CODE"`,
    /// a reserved range ending in `*`, per service in `[test_numbers.services.NAME]`).
    pub test_numbers: test_numbers::TestNumberSettings,
    /// Lets test numbers be configured on a server with a real SMS provider.
    pub allow_test_numbers: bool,
}

/// `[tls]`: PEM certificate chain and private key; when both are set the listener speaks HTTPS only.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `phonegate=debug,info` (`RUST_LOG` overrides it).
    pub level: String,
}

/// `[http]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Networks of reverse proxies whose forwarding header names the client (empty: the peer
    /// address is the client, and the header is ignored).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The one header the trusted proxies write: `x-forwarded-for` or `forwarded` (RFC 7239).
    /// The other is ignored, since a client could have written it.
    pub client_ip_header: ClientIpHeader,
}

/// `[phones]`: which numbers are accepted, and where codes may be sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PhoneSettings {
    /// ISO 3166-1 region assumed for numbers written in national format ("DE", "US").
    pub default_region: Option<String>,
    /// Number types accepted; premium-rate, toll-free, fixed-line… are refused unless listed.
    pub allowed_number_types: Vec<NumberKind>,
    /// E.164 prefixes never sent to (satellite and international-network ranges by default).
    pub denied_prefixes: Vec<String>,
    /// ISO 3166-1 regions codes may be sent to (empty: all but `denied_countries`).
    pub allowed_countries: Vec<String>,
    pub denied_countries: Vec<String>,
    /// Landlines (fixed-line numbers) may get their code by a call, never by SMS or WhatsApp
    /// (default true).
    pub voice_landlines: bool,
}

/// `[delivery]`: how long a start waits for the provider, and the send queue's rhythm.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// How long a start request waits for the provider before answering (the send goes on).
    #[serde(with = "phonegate_core::duration")]
    pub send_wait: Duration,
    /// Time between queue sweeps that (re)send waiting messages.
    #[serde(with = "phonegate_core::duration")]
    pub dispatch_interval: Duration,
    /// How long a sender holds a message before another may take it over.
    #[serde(with = "phonegate_core::duration")]
    pub lease: Duration,
}

/// `[retention]`: the sweep that marks overdue verifications expired and forgets old ones.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// How long an ended verification (and its messages) is kept; `"0s"` keeps everything.
    #[serde(with = "phonegate_core::duration")]
    pub keep: Duration,
    /// Time between sweeps.
    #[serde(with = "phonegate_core::duration")]
    pub sweep_interval: Duration,
}

/// `[silent]`: silent (SIM-based) verification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SilentSettings {
    /// The local silent-verification simulator: a pretend operator whose device page lets a
    /// developer choose the answer. Only with the dev outbox (refused with real SMS providers).
    pub simulator: bool,
    /// How long the device has to open a `check_url` and finish the operator's step (10s to 1h).
    #[serde(with = "phonegate_core::duration")]
    pub timeout: Duration,
    /// Silent providers by name (`[silent.providers.NAME]` with `kind = "camara" | "vonage" |
    /// "truid"`); they need `public_url`, where the operator sends the device back.
    pub providers: BTreeMap<String, phonegate_providers::silent::SilentProviderConfig>,
    /// Which silent providers to ask, in order, per number prefix (`[silent.routing]`).
    pub routing: phonegate_core::silent::SilentRouting,
}

/// `[compat]`: the compatibility APIs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CompatSettings {
    /// Vonage Verify: a verification younger than this cannot be cancelled (Vonage's own rule
    /// is 30 seconds).
    #[serde(with = "phonegate_core::duration")]
    pub vonage_min_cancel: Duration,
}

/// Which header names the client behind `trusted_proxies`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum ClientIpHeader {
    #[default]
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    #[serde(rename = "forwarded")]
    Forwarded,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8080).into(),
            database_url: "sqlite://phonegate.db".into(),
            database_max_connections: 10,
            secret_file: None,
            public_url: None,
            api_key_cache: Duration::from_secs(2),
            outbox_public: false,
            tls: TlsSettings::default(),
            log: LogSettings::default(),
            telemetry: TelemetrySettings::default(),
            http: HttpSettings::default(),
            connections: Default::default(),
            phones: PhoneSettings::default(),
            providers: BTreeMap::new(),
            routing: RoutingSettings::default(),
            delivery: DeliverySettings::default(),
            retention: RetentionSettings::default(),
            budgets: Default::default(),
            accounts: Default::default(),
            account_webhook: None,
            silent: SilentSettings::default(),
            compat: CompatSettings::default(),
            auth0: None,
            redirect_clients: BTreeMap::new(),
            oidc_clients: BTreeMap::new(),
            test_numbers: Default::default(),
            allow_test_numbers: false,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: LogFormat::Human, level: "info".into() }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self { max_body_bytes: 64 * 1024, trusted_proxies: Vec::new(), client_ip_header: ClientIpHeader::default() }
    }
}

impl Default for PhoneSettings {
    fn default() -> Self {
        Self {
            default_region: None,
            allowed_number_types: NumberKind::SMS_CAPABLE.to_vec(),
            denied_prefixes: phonegate_core::phone::DENIED_PREFIXES.iter().map(|p| p.to_string()).collect(),
            allowed_countries: Vec::new(),
            denied_countries: Vec::new(),
            voice_landlines: true,
        }
    }
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self { send_wait: Duration::from_secs(5), dispatch_interval: Duration::from_secs(1), lease: Duration::from_secs(60) }
    }
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self { keep: Duration::from_secs(30 * 86_400), sweep_interval: Duration::from_secs(30) }
    }
}

impl Default for SilentSettings {
    fn default() -> Self {
        Self { simulator: false, timeout: Duration::from_secs(120), providers: BTreeMap::new(), routing: Default::default() }
    }
}

impl Default for CompatSettings {
    fn default() -> Self {
        Self { vonage_min_cancel: Duration::from_secs(30) }
    }
}

/// Values given as command-line flags; they override everything else.
#[derive(Debug, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub log_format: Option<LogFormat>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Overrides {
    /// Each given flag on top of `figment`, at its key.
    fn apply(&self, figment: Figment) -> Figment {
        let mut figment = figment;
        if let Some(v) = self.listen {
            figment = figment.merge(Serialized::default("listen", v));
        }
        if let Some(v) = &self.database_url {
            figment = figment.merge(Serialized::default("database_url", v));
        }
        if let Some(v) = self.log_format {
            figment = figment.merge(Serialized::default("log.format", v));
        }
        if let Some(v) = &self.tls_cert {
            figment = figment.merge(Serialized::default("tls.cert", v));
        }
        if let Some(v) = &self.tls_key {
            figment = figment.merge(Serialized::default("tls.key", v));
        }
        figment
    }
}

/// Why a configuration cannot be used. Each is reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("phones.denied_prefixes: `{prefix}` is not an E.164 prefix like `+881`")]
    Prefix { prefix: String },
    /// `--config` (or `PHONEGATE_CONFIG`) names a file that is not there.
    #[error("configuration file {} does not exist", .path.display())]
    MissingFile { path: PathBuf },
    /// The layers do not make a configuration: bad TOML, an unknown key, a value of the wrong type.
    #[error("invalid configuration: {0}")]
    Invalid(Box<figment::Error>),
    /// Keys of an older release, each with its new place.
    #[error("invalid configuration: {}", .0.join("; "))]
    Moved(Vec<String>),
    /// A `KEY_file` entry of a provider table whose value is not a path.
    #[error("{table}.{key} must be a file path")]
    SecretPath { table: String, key: String },
    /// A `KEY_file` entry of a provider table names a file that cannot be read.
    #[error("{table}.{key}: cannot read {path}: {error}")]
    SecretFile { table: String, key: String, path: String, error: std::io::Error },
    #[error("phones.{key} `{region}` is not an ISO 3166-1 region code")]
    Region { key: &'static str, region: String },
    #[error("public_url `{url}` must start with https:// or http://")]
    PublicUrl { url: String },
    #[error("tls.cert and tls.key must be given together")]
    TlsHalf,
    #[error("delivery.lease and delivery.dispatch_interval must be at least 1ms")]
    SendIntervals,
    #[error("retention.sweep_interval must be at least 1s")]
    ExpirySweep,
    /// A duration beyond its bound (a typo such as `"5M"`, five months, must not keep a revoked
    /// key working or a sweeper from running).
    #[error("{key} must be at most {max}")]
    TooLong { key: &'static str, max: &'static str },
    #[error("{0}")]
    Accounts(String),
    #[error("silent.simulator needs the dev outbox: it is refused with real SMS providers ({0})")]
    SimulatorWithProviders(String),
    #[error("silent.providers need public_url: the operator sends the device back to {{public_url}}/silent/callback/NAME")]
    SilentNeedsPublicUrl,
    #[error("silent.providers: `simulator` is the name of the simulator ([silent] simulator = true); choose another")]
    SilentSimulatorName,
    #[error("{0}")]
    Integration(String),
    #[error("{0}")]
    Telemetry(String),
    #[error("silent.timeout must be between 10s and 1h")]
    SilentTimeout,
    #[error("invalid configuration: {0}")]
    TestNumbers(phonegate_core::test_numbers::TestNumberError),
    #[error(
        "test_numbers are configured with a real SMS provider ({providers}): set allow_test_numbers = true at the top level (PHONEGATE_ALLOW_TEST_NUMBERS=true) to give these numbers their fixed codes instead of sending to them, or remove them"
    )]
    TestNumbersNeedAllow { providers: String },
    #[error(
        "the dev outbox (no SMS provider) is listening on {listen}, which is not loopback: listen on 127.0.0.1, configure a provider, or set outbox_public = true (PHONEGATE_OUTBOX_PUBLIC=true)"
    )]
    OutboxNotLocal { listen: SocketAddr },
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        ConfigError::Invalid(Box::new(e))
    }
}

impl Config {
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile { path: path.to_path_buf() });
            }
            figment = figment.merge(Toml::file(path));
        }
        let figment = overrides.apply(figment.merge(Env::prefixed("PHONEGATE_").ignore(&["config"]).split("__")));
        let mut tree: Value = figment.extract()?;
        let moved = moved::find(&tree);
        if !moved.is_empty() {
            return Err(ConfigError::Moved(moved));
        }
        resolve_secret_files(&mut tree)?;
        // Name the key and the layer it came from, as an extraction straight from `figment` would.
        let config: Config = tree.deserialize().map_err(|mut e: figment::Error| {
            e.metadata = figment.find_metadata(&e.path.join(".")).cloned();
            e.profile = Some(figment.profile().clone());
            e
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let phones = &self.phones;
        let regions = phones.allowed_countries.iter().map(|r| ("allowed_countries", r));
        let regions = regions
            .chain(phones.denied_countries.iter().map(|r| ("denied_countries", r)))
            .chain(phones.default_region.iter().map(|r| ("default_region", r)));
        for (key, region) in regions {
            parse_region(region).ok_or_else(|| ConfigError::Region { key, region: region.clone() })?;
        }
        if let Some(p) =
            phones.denied_prefixes.iter().find(|p| !p.starts_with('+') || p.len() < 2 || !p[1..].bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ConfigError::Prefix { prefix: p.clone() });
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::PublicUrl { url: url.clone() });
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError::TlsHalf);
        }
        if self.delivery.lease.as_millis() == 0 || self.delivery.dispatch_interval.as_millis() == 0 {
            return Err(ConfigError::SendIntervals);
        }
        if self.retention.sweep_interval.as_secs() == 0 {
            return Err(ConfigError::ExpirySweep);
        }
        const DAY: u64 = 86_400;
        let bounds = [
            ("api_key_cache", self.api_key_cache, 300, "5m"),
            ("delivery.send_wait", self.delivery.send_wait, 300, "5m"),
            ("delivery.dispatch_interval", self.delivery.dispatch_interval, 3600, "1h"),
            ("delivery.lease", self.delivery.lease, DAY, "1d"),
            ("retention.keep", self.retention.keep, 3650 * DAY, "3650d"),
            ("retention.sweep_interval", self.retention.sweep_interval, DAY, "1d"),
            ("connections.shutdown_grace", self.connections.shutdown_grace, 600, "10m"),
        ];
        if let Some((key, _, _, max)) = bounds.into_iter().find(|(_, d, max, _)| *d > Duration::from_secs(*max)) {
            return Err(ConfigError::TooLong { key, max });
        }
        self.accounts.validate().map_err(ConfigError::Accounts)?;
        self.validate_silent()?;
        self.test_numbers()?;
        self.validate_telemetry()?;
        self.oidc_clients().map_err(ConfigError::Integration)?;
        self.validate_integrations().map_err(ConfigError::Integration)
    }

    fn validate_silent(&self) -> Result<(), ConfigError> {
        let real: Vec<&str> = self
            .providers
            .iter()
            .filter(|(_, p)| !matches!(p.kind, phonegate_providers::ProviderKind::Outbox))
            .map(|(n, _)| n.as_str())
            .collect();
        if self.silent.simulator && !real.is_empty() {
            return Err(ConfigError::SimulatorWithProviders(real.join(", ")));
        }
        if !self.silent.providers.is_empty() && self.public_url.is_none() {
            return Err(ConfigError::SilentNeedsPublicUrl);
        }
        if self.silent.providers.contains_key(phonegate_core::silent::SIMULATOR) {
            return Err(ConfigError::SilentSimulatorName);
        }
        if !(Duration::from_secs(10)..=Duration::from_secs(3600)).contains(&self.silent.timeout) {
            return Err(ConfigError::SilentTimeout);
        }
        Ok(())
    }

    /// Whether a server whose provider is the dev outbox (`has_outbox`) may listen where it is
    /// configured to: on loopback always, elsewhere only with `outbox_public`. `Ok(true)` when it
    /// is reachable from other machines.
    pub fn outbox_exposure(&self, has_outbox: bool) -> Result<bool, ConfigError> {
        let exposed = has_outbox && !self.listen.ip().to_canonical().is_loopback();
        if exposed && !self.outbox_public {
            return Err(ConfigError::OutboxNotLocal { listen: self.listen });
        }
        Ok(exposed)
    }

    /// The send bounds the engine works with.
    pub fn delivery_times(&self) -> DeliveryTimes {
        DeliveryTimes {
            send_wait: self.delivery.send_wait,
            lease: chrono::Duration::seconds(self.delivery.lease.as_secs().clamp(1, 86_400) as i64),
        }
    }

    /// How long ended verifications are kept (`None`: for ever).
    pub fn retention(&self) -> Option<chrono::Duration> {
        (!self.retention.keep.is_zero()).then(|| chrono::Duration::from_std(self.retention.keep).unwrap_or(chrono::Duration::MAX))
    }

    pub fn phone_policy(&self) -> PhonePolicy {
        let p = &self.phones;
        PhonePolicy {
            default_region: p.default_region.as_deref().and_then(parse_region),
            allowed_kinds: p.allowed_number_types.clone(),
            denied_prefixes: p.denied_prefixes.clone(),
            allowed_regions: p.allowed_countries.clone(),
            denied_regions: p.denied_countries.clone(),
            voice_landlines: p.voice_landlines,
        }
    }
}

/// Replaces every `KEY_file = "PATH"` inside a provider table (SMS or silent) or a redirect
/// client by `KEY = <contents of PATH>`, so secrets can come from files (container secrets)
/// instead of the configuration itself.
fn resolve_secret_files(tree: &mut Value) -> Result<(), ConfigError> {
    let Value::Dict(_, root) = tree else { return Ok(()) };
    for section in ["providers", "redirect_clients"] {
        if let Some(Value::Dict(_, tables)) = root.get_mut(section) {
            resolve_in(section, tables)?;
        }
    }
    if let Some(Value::Dict(_, silent)) = root.get_mut("silent")
        && let Some(Value::Dict(_, tables)) = silent.get_mut("providers")
    {
        resolve_in("silent.providers", tables)?;
    }
    // `[auth0]` is one table, not a table of them.
    if let Some(auth0) = root.remove("auth0") {
        let mut one = figment::value::Dict::new();
        one.insert("auth0".into(), auth0);
        resolve_in("", &mut one)?;
        root.extend(one);
    }
    Ok(())
}

fn resolve_in(section: &str, tables: &mut figment::value::Dict) -> Result<(), ConfigError> {
    for (name, table) in tables.iter_mut() {
        let Value::Dict(_, fields) = table else { continue };
        let path = if section.is_empty() { name.clone() } else { format!("{section}.{name}") };
        let file_keys: Vec<String> = fields.keys().filter(|k| k.ends_with("_file")).cloned().collect();
        for key in file_keys {
            let file = fields
                .remove(&key)
                .and_then(|v| v.into_string())
                .ok_or_else(|| ConfigError::SecretPath { table: path.clone(), key: key.clone() })?;
            let contents = std::fs::read_to_string(&file).map_err(|error| ConfigError::SecretFile {
                table: path.clone(),
                key: key.clone(),
                path: file.clone(),
                error,
            })?;
            let base = key.trim_end_matches("_file").to_string();
            fields.insert(base, Value::from(contents.trim_end_matches(['\n', '\r']).to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests;
