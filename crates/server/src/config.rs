//! Configuration, layered: built-in defaults → TOML file (`--config`) → `PHONEGATE_*` environment
//! variables → command-line flags. Unknown keys are an error, not silently ignored.
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use phonegate_core::phone::{NumberKind, PhonePolicy, parse_region};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server binds to.
    pub listen: SocketAddr,
    /// `sqlite://PATH` (created if missing).
    pub database_url: String,
    /// ISO 3166-1 region assumed for numbers written in national format ("DE", "US").
    pub default_region: Option<String>,
    /// Number types accepted; premium-rate, toll-free, fixed-line… are refused unless listed.
    pub allowed_number_types: Vec<NumberKind>,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `phonegate=debug,info`.
    pub log_level: String,
    /// Where codes go. Only `outbox` (stored locally, nothing leaves the machine) exists so far.
    pub sms_provider: String,
    /// Seconds between sweeps that mark overdue verifications expired.
    pub expiry_sweep_secs: u64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
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
            default_region: None,
            allowed_number_types: NumberKind::SMS_CAPABLE.to_vec(),
            log_format: LogFormat::Human,
            log_level: "info".into(),
            sms_provider: "outbox".into(),
            expiry_sweep_secs: 30,
            max_body_bytes: 64 * 1024,
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
}

impl Config {
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, String> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(format!("configuration file {} does not exist", path.display()));
            }
            figment = figment.merge(Toml::file(path));
        }
        let config: Config = figment
            .merge(Env::prefixed("PHONEGATE_").ignore(&["config"]))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| format!("invalid configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(region) = &self.default_region {
            parse_region(region).ok_or_else(|| format!("default_region `{region}` is not an ISO 3166-1 region code"))?;
        }
        if self.sms_provider != "outbox" {
            return Err(format!("sms_provider `{}` is not available; the only provider is `outbox`", self.sms_provider));
        }
        if self.expiry_sweep_secs == 0 {
            return Err("expiry_sweep_secs must be at least 1".into());
        }
        Ok(())
    }

    pub fn phone_policy(&self) -> PhonePolicy {
        PhonePolicy {
            default_region: self.default_region.as_deref().and_then(parse_region),
            allowed_kinds: self.allowed_number_types.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn layers_apply_in_order_and_unknown_keys_are_refused() {
        Jail::expect_with(|jail| {
            jail.create_file("p.toml", "listen = \"127.0.0.1:9000\"\ndatabase_url = \"sqlite://file.db\"\ndefault_region = \"DE\"")?;
            jail.set_env("PHONEGATE_DATABASE_URL", "sqlite://env.db");
            let c = Config::load(Some(Path::new("p.toml")), &Overrides::default()).unwrap();
            assert_eq!((c.listen.port(), c.database_url.as_str(), c.default_region.as_deref()), (9000, "sqlite://env.db", Some("DE")));
            let flags = Overrides { listen: Some("127.0.0.1:9001".parse().unwrap()), ..Default::default() };
            assert_eq!(Config::load(Some(Path::new("p.toml")), &flags).unwrap().listen.port(), 9001);

            jail.create_file("bad.toml", "lissten = \"127.0.0.1:1\"")?;
            let err = Config::load(Some(Path::new("bad.toml")), &Overrides::default()).unwrap_err();
            assert!(err.contains("lissten"), "{err}");
            jail.set_env("PHONEGATE_DATABSE_URL", "x");
            assert!(Config::load(None, &Overrides::default()).unwrap_err().contains("databse_url"));
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_refused() {
        Jail::expect_with(|jail| {
            jail.set_env("PHONEGATE_DEFAULT_REGION", "XX");
            assert!(Config::load(None, &Overrides::default()).unwrap_err().contains("default_region"));
            Ok(())
        });
    }
}
