//! Configuration, layered: built-in defaults → TOML file (`--config`) → `PHONEGATE_*` environment
//! variables → command-line flags. Unknown keys are an error, not silently ignored.
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server binds to.
    pub listen: SocketAddr,
    /// PEM certificate chain and private key: when both are set the listener speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// `sqlite://PATH` (created if missing) or `postgres://USER@HOST:PORT/DB`.
    pub database_url: String,
    /// Upper bound of the PostgreSQL connection pool per instance.
    pub database_max_connections: u32,
    /// Milliseconds an authenticated API key is remembered (a revoked key is refused by every
    /// instance within this time); 0 checks the database on every request.
    pub api_key_cache_ms: u64,
    /// ISO 3166-1 region assumed for numbers written in national format ("DE", "US").
    pub default_region: Option<String>,
    /// Number types accepted; premium-rate, toll-free, fixed-line… are refused unless listed.
    pub allowed_number_types: Vec<NumberKind>,
    /// E.164 prefixes never sent to (satellite and international-network ranges by default).
    pub denied_prefixes: Vec<String>,
    /// ISO 3166-1 regions codes may be sent to (empty: all but `denied_countries`).
    pub allowed_countries: Vec<String>,
    pub denied_countries: Vec<String>,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `phonegate=debug,info`.
    pub log_level: String,
    /// Public base URL of this server (`https://verify.example.com`): status callbacks point
    /// there and Twilio's webhook signatures are checked against it.
    pub public_url: Option<String>,
    /// SMS providers by name (`[providers.NAME]` with `kind = "twilio" | "vonage" | "sipgate" |
    /// "http" | "outbox"`). None configured: the dev outbox.
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Which providers to try, in order, per service and number prefix.
    pub routing: RoutingSettings,
    /// Lets the dev outbox serve on an address other than loopback. Its pages and API show every
    /// code to an API key or a local client only, but a server that sends nothing should not be
    /// reachable by accident: without this, such a `listen` is refused.
    pub outbox_public: bool,
    /// Milliseconds a start request waits for the provider before answering (the send goes on).
    pub send_wait_ms: u64,
    /// Milliseconds between queue sweeps that (re)send waiting messages.
    pub dispatch_interval_ms: u64,
    /// Seconds a sender holds a message before another may take it over.
    pub send_lease_secs: u64,
    /// Vonage Verify compatibility: a verification younger than this cannot be cancelled
    /// (Vonage's own rule is 30 seconds).
    pub vonage_min_cancel_secs: u64,
    /// Seconds between sweeps that mark overdue verifications expired (and apply retention).
    pub expiry_sweep_secs: u64,
    /// Days an ended verification (and its messages) is kept; 0 keeps everything.
    pub retention_days: u32,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// What a phone number, key, service, country, prefix or end-user IP may use
    /// (`[budgets]`, rates like `"5/10m"`; see the README's security section).
    pub budgets: phonegate_core::budget::Budgets,
    /// Networks of reverse proxies whose forwarding header names the client (empty: the peer
    /// address is the client, and the header is ignored).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The one header the trusted proxies write: `x-forwarded-for` or `forwarded` (RFC 7239).
    /// The other is ignored, since a client could have written it.
    pub client_ip_header: ClientIpHeader,
    /// Limits on client connections (`[connections]`; see the README's security section).
    pub connections: crate::listen::ConnectionLimits,
    /// Accounts and login (`[accounts]`: sessions, tokens, codes; see docs/accounts.md).
    pub accounts: phonegate_core::accounts::AccountSettings,
    /// The app's webhook for account events (`[account_webhook]` with `url` and `secret`):
    /// user created, phone changed, deleted.
    pub account_webhook: Option<phonegate_providers::events::AppWebhookSettings>,
    /// The local silent-verification simulator: a pretend operator whose device page lets a
    /// developer choose the answer. Only with the dev outbox (refused with real SMS providers).
    pub silent_simulator: bool,
    /// Seconds the device has to open a `check_url` and finish the operator's step.
    pub silent_timeout_secs: u64,
    /// Silent (SIM-based) providers by name (`[silent_providers.NAME]` with `kind = "camara" |
    /// "vonage" | "truid"`); they need `public_url`, where the operator sends the device back.
    pub silent_providers: BTreeMap<String, phonegate_providers::silent::SilentProviderConfig>,
    /// Which silent providers to ask, in order, per number prefix (`[silent_routing]`).
    pub silent_routing: phonegate_core::silent::SilentRouting,
    /// The hosted phone step for an Auth0 tenant (`[auth0]`: `domain`, `secret`; docs/redirect-step.md).
    pub auth0: Option<Auth0Settings>,
    /// The same signed-redirect step for any identity provider or app, by name
    /// (`[redirect_clients.NAME]`: `secret`, `issuer`, `return_urls`).
    pub redirect_clients: BTreeMap<String, RedirectClientSettings>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Auth0Settings {
    /// The tenant's domain (`acme.eu.auth0.com`, or its custom domain): tokens must come from it,
    /// and users go back only to `https://{domain}/continue`.
    pub domain: String,
    /// The secret the Login Action signs with (HS256), also signing phonegate's answer.
    pub secret: phonegate_providers::Secret,
    /// The claim of the Action's token that holds the phone number (default `phone_number`).
    #[serde(default = "default_phone_claim")]
    pub phone_claim: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedirectClientSettings {
    /// The shared HS256 secret.
    pub secret: phonegate_providers::Secret,
    /// The `iss` the client's tokens carry.
    pub issuer: String,
    /// Where users may go back, exactly (https; http only for localhost). With several, the
    /// request's `return_url` names one of them exactly.
    pub return_urls: Vec<String>,
    #[serde(default = "default_phone_claim")]
    pub phone_claim: String,
}

fn default_phone_claim() -> String {
    "phone_number".into()
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
            tls_cert: None,
            tls_key: None,
            database_url: "sqlite://phonegate.db".into(),
            database_max_connections: 10,
            api_key_cache_ms: 2000,
            default_region: None,
            allowed_number_types: NumberKind::SMS_CAPABLE.to_vec(),
            denied_prefixes: phonegate_core::phone::DENIED_PREFIXES.iter().map(|p| p.to_string()).collect(),
            allowed_countries: Vec::new(),
            denied_countries: Vec::new(),
            log_format: LogFormat::Human,
            log_level: "info".into(),
            public_url: None,
            providers: BTreeMap::new(),
            routing: RoutingSettings::default(),
            outbox_public: false,
            send_wait_ms: 5000,
            dispatch_interval_ms: 1000,
            send_lease_secs: 60,
            vonage_min_cancel_secs: 30,
            expiry_sweep_secs: 30,
            retention_days: 30,
            max_body_bytes: 64 * 1024,
            budgets: Default::default(),
            connections: Default::default(),
            trusted_proxies: Vec::new(),
            client_ip_header: ClientIpHeader::default(),
            accounts: Default::default(),
            account_webhook: None,
            silent_simulator: false,
            silent_providers: BTreeMap::new(),
            silent_timeout_secs: 120,
            silent_routing: Default::default(),
            auth0: None,
            redirect_clients: BTreeMap::new(),
        }
    }
}

/// Values given as command-line flags; they override everything else.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

/// Why a configuration cannot be used. Each is reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("denied_prefixes: `{prefix}` is not an E.164 prefix like `+881`")]
    Prefix { prefix: String },
    /// `--config` (or `PHONEGATE_CONFIG`) names a file that is not there.
    #[error("configuration file {} does not exist", .path.display())]
    MissingFile { path: PathBuf },
    /// The layers do not make a configuration: bad TOML, an unknown key, a value of the wrong type.
    #[error("invalid configuration: {0}")]
    Invalid(Box<figment::Error>),
    /// A `KEY_file` entry of a provider table whose value is not a path.
    #[error("providers.{provider}.{key} must be a file path")]
    SecretPath { provider: String, key: String },
    /// A `KEY_file` entry of a provider table names a file that cannot be read.
    #[error("providers.{provider}.{key}: cannot read {path}: {error}")]
    SecretFile { provider: String, key: String, path: String, error: std::io::Error },
    #[error("default_region `{region}` is not an ISO 3166-1 region code")]
    Region { region: String },
    #[error("public_url `{url}` must start with https:// or http://")]
    PublicUrl { url: String },
    #[error("tls_cert and tls_key must be given together")]
    TlsHalf,
    #[error("send_lease_secs and dispatch_interval_ms must be at least 1")]
    SendIntervals,
    #[error("expiry_sweep_secs must be at least 1")]
    ExpirySweep,
    #[error("{0}")]
    Accounts(String),
    #[error("silent_simulator needs the dev outbox: it is refused with real SMS providers ({0})")]
    SimulatorWithProviders(String),
    #[error("silent_providers need public_url: the operator sends the device back to {{public_url}}/silent/callback/NAME")]
    SilentNeedsPublicUrl,
    #[error("silent_providers: `simulator` is the name of the simulator (silent_simulator = true); choose another")]
    SilentSimulatorName,
    #[error("{0}")]
    Integration(String),
    #[error("silent_timeout_secs must be between 10 and 3600")]
    SilentTimeout,
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
        let figment = figment.merge(Env::prefixed("PHONEGATE_").ignore(&["config"]).split("__")).merge(Serialized::defaults(overrides));
        let mut tree: Value = figment.extract()?;
        resolve_secret_files(&mut tree)?;
        let config: Config = tree.deserialize()?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for region in self.allowed_countries.iter().chain(&self.denied_countries) {
            parse_region(region).ok_or_else(|| ConfigError::Region { region: region.clone() })?;
        }
        if let Some(p) =
            self.denied_prefixes.iter().find(|p| !p.starts_with('+') || p.len() < 2 || !p[1..].bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ConfigError::Prefix { prefix: p.clone() });
        }
        if let Some(region) = &self.default_region {
            parse_region(region).ok_or_else(|| ConfigError::Region { region: region.clone() })?;
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::PublicUrl { url: url.clone() });
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::TlsHalf);
        }
        if self.send_lease_secs == 0 || self.dispatch_interval_ms == 0 {
            return Err(ConfigError::SendIntervals);
        }
        if self.expiry_sweep_secs == 0 {
            return Err(ConfigError::ExpirySweep);
        }
        self.accounts.validate().map_err(ConfigError::Accounts)?;
        let real: Vec<&str> = self
            .providers
            .iter()
            .filter(|(_, p)| !matches!(p.kind, phonegate_providers::ProviderKind::Outbox))
            .map(|(n, _)| n.as_str())
            .collect();
        if self.silent_simulator && !real.is_empty() {
            return Err(ConfigError::SimulatorWithProviders(real.join(", ")));
        }
        if !self.silent_providers.is_empty() && self.public_url.is_none() {
            return Err(ConfigError::SilentNeedsPublicUrl);
        }
        if self.silent_providers.contains_key(phonegate_core::silent::SIMULATOR) {
            return Err(ConfigError::SilentSimulatorName);
        }
        self.validate_integrations().map_err(ConfigError::Integration)?;
        if !(10..=3600).contains(&self.silent_timeout_secs) {
            return Err(ConfigError::SilentTimeout);
        }
        Ok(())
    }

    fn validate_integrations(&self) -> Result<(), String> {
        if let Some(a) = &self.auth0 {
            let host_ok = !a.domain.is_empty()
                && a.domain.len() <= 253
                && a.domain.split('.').all(|l| {
                    !l.is_empty() && !l.starts_with('-') && !l.ends_with('-') && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !host_ok {
                return Err(format!("auth0.domain `{}` must be the tenant's host name, like acme.eu.auth0.com", a.domain));
            }
            if a.secret.expose().is_empty() {
                return Err("auth0.secret must not be empty".into());
            }
        }
        for (name, c) in &self.redirect_clients {
            if name == "auth0"
                || name.is_empty()
                || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            {
                return Err(format!("redirect_clients.{name}: names are a-z, 0-9, - and _ (and `auth0` is the [auth0] table's)"));
            }
            if c.secret.expose().is_empty() || c.issuer.is_empty() || c.return_urls.is_empty() {
                return Err(format!("redirect_clients.{name} needs a secret, an issuer and at least one return URL"));
            }
            for u in &c.return_urls {
                let ok = url::Url::parse(u).ok().is_some_and(|p| {
                    let local = matches!(p.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
                    (p.scheme() == "https" || (p.scheme() == "http" && local))
                        && p.host_str().is_some()
                        && p.username().is_empty()
                        && p.password().is_none()
                        && p.fragment().is_none()
                });
                if !ok {
                    return Err(format!("redirect_clients.{name}.return_urls: `{u}` must be an https URL without user info or fragment"));
                }
            }
        }
        Ok(())
    }

    /// The configured signed-redirect clients, Auth0's first.
    pub fn redirect_clients(&self) -> Vec<phonegate_core::integrations::RedirectClient> {
        let auth0 = self.auth0.iter().map(|a| {
            let domain = a.domain.to_ascii_lowercase();
            phonegate_core::integrations::RedirectClient {
                name: "auth0".into(),
                secret: a.secret.expose().as_bytes().to_vec(),
                issuers: vec![domain.clone(), format!("https://{domain}/"), format!("https://{domain}")],
                return_urls: vec![format!("https://{domain}/continue")],
                phone_claim: a.phone_claim.clone(),
            }
        });
        let others = self.redirect_clients.iter().map(|(name, c)| phonegate_core::integrations::RedirectClient {
            name: name.clone(),
            secret: c.secret.expose().as_bytes().to_vec(),
            issuers: vec![c.issuer.clone()],
            return_urls: c.return_urls.clone(),
            phone_claim: c.phone_claim.clone(),
        });
        auth0.chain(others).collect()
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
            send_wait: Duration::from_millis(self.send_wait_ms),
            lease: chrono::Duration::seconds(self.send_lease_secs.min(86_400) as i64),
        }
    }

    pub fn phone_policy(&self) -> PhonePolicy {
        PhonePolicy {
            default_region: self.default_region.as_deref().and_then(parse_region),
            allowed_kinds: self.allowed_number_types.clone(),
            denied_prefixes: self.denied_prefixes.clone(),
            allowed_regions: self.allowed_countries.clone(),
            denied_regions: self.denied_countries.clone(),
        }
    }
}

/// Replaces every `KEY_file = "PATH"` inside a provider table (SMS or silent) by
/// `KEY = <contents of PATH>`, so secrets can come from files (container secrets) instead of the
/// configuration itself.
fn resolve_secret_files(tree: &mut Value) -> Result<(), ConfigError> {
    let Value::Dict(_, root) = tree else { return Ok(()) };
    for section in ["providers", "silent_providers", "redirect_clients"] {
        let Some(Value::Dict(_, providers)) = root.get_mut(section) else { continue };
        resolve_in(providers)?;
    }
    // `[auth0]` is one table, not a table of them.
    if let Some(auth0) = root.remove("auth0") {
        let mut one = figment::value::Dict::new();
        one.insert("auth0".into(), auth0);
        resolve_in(&mut one)?;
        root.extend(one);
    }
    Ok(())
}

fn resolve_in(providers: &mut figment::value::Dict) -> Result<(), ConfigError> {
    for (name, table) in providers.iter_mut() {
        let Value::Dict(_, fields) = table else { continue };
        let file_keys: Vec<String> = fields.keys().filter(|k| k.ends_with("_file")).cloned().collect();
        for key in file_keys {
            let path = fields
                .remove(&key)
                .and_then(|v| v.into_string())
                .ok_or_else(|| ConfigError::SecretPath { provider: name.clone(), key: key.clone() })?;
            let contents = std::fs::read_to_string(&path).map_err(|error| ConfigError::SecretFile {
                provider: name.clone(),
                key: key.clone(),
                path: path.clone(),
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
