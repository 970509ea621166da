//! `[test_numbers]`: numbers (or reserved fictional ranges) with fixed codes that nothing is ever
//! sent to, globally and per service (`[test_numbers.services.NAME]`), and `allow_test_numbers`,
//! which a server with a real SMS provider needs before it takes any.
use super::{Config, ConfigError};
use phonegate_core::test_numbers::TestNumbers;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// The table as written: `"+E164" = "CODE"` entries (a range ends in `*`), and the services'
/// own tables under `services`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestNumberSettings {
    pub numbers: BTreeMap<String, String>,
    pub services: BTreeMap<String, BTreeMap<String, String>>,
}

impl TestNumberSettings {
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty() && self.services.values().all(BTreeMap::is_empty)
    }
}

impl Serialize for TestNumberSettings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (number, code) in &self.numbers {
            map.serialize_entry(number, code)?;
        }
        if !self.services.is_empty() {
            map.serialize_entry("services", &self.services)?;
        }
        map.end()
    }
}

/// A code, written as a string so that leading zeros stay.
struct CodeText(String);

impl<'de> Deserialize<'de> for CodeText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = CodeText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a code in quotes, like \"123456\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CodeText, E> {
                Ok(CodeText(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// One service's table.
struct ServiceTable(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for ServiceTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let codes = BTreeMap::<String, CodeText>::deserialize(d)?;
        Ok(ServiceTable(codes.into_iter().map(|(k, c)| (k, c.0)).collect()))
    }
}

impl<'de> Deserialize<'de> for TestNumberSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TestNumberSettings;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of \"+E164\" = \"CODE\" entries and [test_numbers.services.NAME] tables")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TestNumberSettings, A::Error> {
                let mut out = TestNumberSettings::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "services" {
                        let services: BTreeMap<String, ServiceTable> = map.next_value()?;
                        out.services = services.into_iter().map(|(name, t)| (name, t.0)).collect();
                    } else {
                        let code: CodeText = map.next_value()?;
                        out.numbers.insert(key, code.0);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

impl Config {
    /// The configured test numbers, checked: well-formed numbers and codes, wildcards only over
    /// reserved ranges, and `allow_test_numbers` when a real SMS provider is configured.
    pub fn test_numbers(&self) -> Result<TestNumbers, ConfigError> {
        let numbers = TestNumbers::new(&self.test_numbers.numbers, &self.test_numbers.services).map_err(ConfigError::TestNumbers)?;
        if numbers.is_empty() || self.allow_test_numbers {
            return Ok(numbers);
        }
        let real: Vec<&str> = self
            .providers
            .iter()
            .filter(|(_, p)| !matches!(p.kind, phonegate_providers::ProviderKind::Outbox))
            .map(|(n, _)| n.as_str())
            .collect();
        if !real.is_empty() {
            return Err(ConfigError::TestNumbersNeedAllow { providers: real.join(", ") });
        }
        Ok(numbers)
    }
}

/// At start, with the services in place: every test code has its service's code length (a
/// service's own table that of its service; the global table that of the default service and
/// the login pages' service), a table names a service that exists (else a warning), and a
/// warning lists every test number.
pub async fn check_at_start(core: &phonegate_core::Core) -> anyhow::Result<()> {
    let numbers = core.ctx.test_numbers();
    if numbers.is_empty() {
        return Ok(());
    }
    let services = core.catalog.services(&phonegate_core::Caller::system("start")).await?;
    for s in &services {
        let everyone_uses = s.name == phonegate_core::service::DEFAULT_SERVICE || s.name == phonegate_core::accounts::SERVICE;
        if let Some(e) = numbers.length_mismatch(s, everyone_uses) {
            anyhow::bail!("invalid configuration: {e}");
        }
    }
    let entries = numbers.entries();
    for name in entries.iter().filter_map(|e| e.service.as_deref()) {
        if !services.iter().any(|s| s.name == name || s.id == name) {
            tracing::warn!(service = name, "test_numbers.services.{name} names no service (yet): its numbers apply once it exists");
        }
    }
    let list: Vec<String> = entries
        .iter()
        .map(|e| match &e.service {
            Some(s) => format!("{} (service {s})", e.number),
            None => e.number.clone(),
        })
        .collect();
    tracing::warn!(
        numbers = %list.join(", "),
        "test numbers are configured: they get their fixed codes, are never sent anything and cost no send budget (their checks still count)"
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::config::Overrides;
    use figment::Jail;
    use std::path::Path;

    #[test]
    fn global_and_service_tables_load_from_toml_and_bad_entries_are_refused() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "p.toml",
                r#"
                [test_numbers]
                "+15005550006" = "123456"
                "+447700900*" = "012345"
                [test_numbers.services.shop]
                "+15005550006" = "4321"
                "#,
            )?;
            let c = Config::load(Some(Path::new("p.toml")), &Overrides::default()).unwrap();
            assert_eq!(c.test_numbers.numbers["+447700900*"], "012345");
            assert_eq!(c.test_numbers.services["shop"]["+15005550006"], "4321");
            assert!(!c.test_numbers().unwrap().is_empty());
            // Printed back (the effective configuration) it reads the same.
            let back: Config = figment::Figment::from(figment::providers::Serialized::defaults(&c)).extract().unwrap();
            assert_eq!(back.test_numbers, c.test_numbers);

            jail.create_file("range.toml", "[test_numbers]\n\"+4915*\" = \"123456\"")?;
            let e = Config::load(Some(Path::new("range.toml")), &Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("\"+4915*\"") && e.contains("reserved fictional range") && e.contains("+447700900*"), "{e}");
            jail.create_file("code.toml", "[test_numbers]\n\"+15005550006\" = \"12\"")?;
            let e = Config::load(Some(Path::new("code.toml")), &Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("4 to 10 digits"), "{e}");
            jail.create_file("int.toml", "[test_numbers]\n\"+15005550006\" = 123456")?;
            let e = Config::load(Some(Path::new("int.toml")), &Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("a code in quotes"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn a_real_provider_needs_allow_test_numbers() {
        Jail::expect_with(|jail| {
            let toml = r#"
                [providers.tw]
                kind = "twilio"
                account_sid = "AC1"
                auth_token = "t"
                from = "+15005550006"
                [test_numbers]
                "+15005550006" = "123456"
                "#;
            jail.create_file("p.toml", toml)?;
            let e = Config::load(Some(Path::new("p.toml")), &Overrides::default()).unwrap_err();
            assert!(matches!(e, ConfigError::TestNumbersNeedAllow { .. }), "{e}");
            assert!(e.to_string().contains("allow_test_numbers = true") && e.to_string().contains("tw"), "{e}");
            jail.set_env("PHONEGATE_ALLOW_TEST_NUMBERS", "true");
            assert!(Config::load(Some(Path::new("p.toml")), &Overrides::default()).is_ok());
            // The dev outbox needs no permission.
            jail.create_file("dev.toml", "[test_numbers]\n\"+15005550006\" = \"123456\"")?;
            jail.set_env("PHONEGATE_ALLOW_TEST_NUMBERS", "false");
            assert!(Config::load(Some(Path::new("dev.toml")), &Overrides::default()).is_ok());
            Ok(())
        });
    }
}
