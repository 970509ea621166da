//! `[telemetry]`: OpenTelemetry traces, exported over OTLP/HTTP (protobuf). Every key may be left
//! to the standard `OTEL_*` variables instead; a key that is set wins over its variable.
use super::{Config, ConfigError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// `true`: export traces (to `otlp_endpoint`, else `OTEL_EXPORTER_OTLP_*ENDPOINT`, else
    /// `http://localhost:4318`); `false`: never. Unset: export when an endpoint is configured
    /// (here or by `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
    pub enabled: Option<bool>,
    /// The collector's base URL (`http://otel-collector:4318`); traces go to `/v1/traces` under it.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the traces (else `OTEL_SERVICE_NAME`, else `phonegate`).
    pub service_name: Option<String>,
    /// The share of new traces kept, 0.0 to 1.0; a trace continued from a trusted proxy's
    /// `traceparent` follows the proxy's decision. Else `OTEL_TRACES_SAMPLER` (and `_ARG`),
    /// else every trace.
    pub sample_ratio: Option<f64>,
}

impl Config {
    pub(super) fn validate_telemetry(&self) -> Result<(), ConfigError> {
        let t = &self.telemetry;
        if let Some(url) = &t.otlp_endpoint
            && !((url.starts_with("http://") || url.starts_with("https://")) && url.parse::<axum::http::Uri>().is_ok())
        {
            return Err(ConfigError::Telemetry(format!("telemetry.otlp_endpoint `{url}` must be an http:// or https:// URL")));
        }
        if t.sample_ratio.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            return Err(ConfigError::Telemetry("telemetry.sample_ratio must be between 0.0 and 1.0".into()));
        }
        if t.service_name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(ConfigError::Telemetry("telemetry.service_name must not be empty".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail hands back its own large error
mod tests {
    use crate::config::{Config, Overrides};
    use figment::Jail;
    use std::path::Path;

    #[test]
    fn telemetry_keys_load_and_bad_values_are_refused() {
        Jail::expect_with(|jail| {
            let toml = "[telemetry]\notlp_endpoint = \"http://collector:4318\"\nservice_name = \"verify\"\nsample_ratio = 0.25\n";
            jail.create_file("t.toml", toml)?;
            jail.set_env("PHONEGATE_TELEMETRY__ENABLED", "false");
            let t = Config::load(Some(Path::new("t.toml")), &Overrides::default()).unwrap().telemetry;
            assert_eq!(t.otlp_endpoint.as_deref(), Some("http://collector:4318"));
            assert_eq!((t.enabled, t.service_name.as_deref(), t.sample_ratio), (Some(false), Some("verify"), Some(0.25)));
            for (toml, error) in [
                ("otlp_endpoint = \"collector:4318\"", "must be an http:// or https:// URL"),
                ("sample_ratio = 1.5", "between 0.0 and 1.0"),
                ("service_name = \" \"", "must not be empty"),
                ("endpoint = \"http://x\"", "endpoint"),
            ] {
                jail.create_file("bad.toml", &format!("[telemetry]\n{toml}\n"))?;
                let err = Config::load(Some(Path::new("bad.toml")), &Overrides::default()).unwrap_err().to_string();
                assert!(err.contains(error), "{toml}: {err}");
            }
            Ok(())
        });
    }
}
