//! Test numbers: numbers (or whole reserved fictional ranges) that get a fixed code instead of a
//! random one and never reach a provider, for apps tested end to end without sending SMS.
//! Configured globally and per service; a service's own table wins for its numbers.
use crate::code;
use crate::model::phone::PhoneNumber;
use crate::model::service::Service;
use std::collections::BTreeMap;

/// The provider name a test number's message carries: it was recorded, never sent.
pub const PROVIDER: &str = "test";

/// The ranges a wildcard (`"+447700900*"`) may cover: numbers their regulators keep for fiction
/// and never assign, so a wildcard cannot take real people's numbers. `?` stands for any digit.
pub const RESERVED_RANGES: [(&str, &str); 7] = [
    ("+1???55501", "+1 NPA 555-01xx: 555-0100 to 555-0199 in any North American area code"),
    ("+447700900", "+44 7700 900xxx: UK mobile numbers for drama (Ofcom)"),
    ("+441632960", "+44 1632 960xxx: UK fictional area 01632 (Ofcom)"),
    ("+442079460", "+44 20 7946 0xxx: London numbers for drama (Ofcom)"),
    ("+6125550", "+61 2 5550 xxxx: Australian numbers for creative works (ACMA)"),
    ("+6135550", "+61 3 5550 xxxx: Australian numbers for creative works (ACMA)"),
    ("+6175550", "+61 7 5550 xxxx: Australian numbers for creative works (ACMA)"),
];

/// Why a table of test numbers cannot be used; `table` is where it is configured
/// (`test_numbers` or `test_numbers.services.NAME`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TestNumberError {
    #[error("{table}.\"{key}\": not a number in E.164 form like \"+15005550006\" (or a reserved range ending in *)")]
    Number { table: String, key: String },
    #[error("{table}.\"{key}\": a wildcard may only cover a reserved fictional range ({}); list other numbers one by one", reserved_list())]
    Range { table: String, key: String },
    #[error("{table}.\"{key}\": the code must be 4 to 10 digits")]
    Code { table: String, key: String },
    #[error(
        "{table}.\"{key}\": the code has {digits} digits but the service `{service}` sends {length}-digit codes: give it a {length}-digit code{hint}"
    )]
    Length { table: String, key: String, digits: usize, service: String, length: u8, hint: String },
}

fn reserved_list() -> String {
    RESERVED_RANGES.iter().map(|(p, _)| format!("{p}*")).collect::<Vec<_>>().join(", ")
}

/// One table: exact numbers and reserved ranges (by prefix), each with its code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Table {
    exact: BTreeMap<String, String>,
    ranges: Vec<(String, String)>,
}

impl Table {
    fn parse(table: &str, entries: &BTreeMap<String, String>) -> Result<Self, TestNumberError> {
        let mut out = Table::default();
        for (key, code) in entries {
            let err = |f: fn(String, String) -> TestNumberError| f(table.to_string(), key.clone());
            if !code::is_plausible(code) {
                return Err(err(|table, key| TestNumberError::Code { table, key }));
            }
            match key.trim().strip_suffix('*') {
                Some(prefix) => {
                    let digits = prefix.strip_prefix('+').filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
                    if digits.is_none() {
                        return Err(err(|table, key| TestNumberError::Number { table, key }));
                    }
                    if !RESERVED_RANGES.iter().any(|(range, _)| within(prefix, range)) {
                        return Err(err(|table, key| TestNumberError::Range { table, key }));
                    }
                    out.ranges.push((prefix.to_string(), code.clone()));
                }
                None => {
                    let number = normalize(key).ok_or_else(|| err(|table, key| TestNumberError::Number { table, key }))?;
                    out.exact.insert(number, code.clone());
                }
            }
        }
        // The longest prefix first: a narrower range wins.
        out.ranges.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    fn code(&self, to: &str) -> Option<&str> {
        self.exact.get(to).or_else(|| self.ranges.iter().find(|(p, _)| to.starts_with(p.as_str())).map(|(_, c)| c)).map(String::as_str)
    }

    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.ranges.is_empty()
    }

    /// Every entry as configured (a range with its `*`), with its code.
    fn entries(&self) -> impl Iterator<Item = (String, &str)> {
        let exact = self.exact.iter().map(|(n, c)| (n.clone(), c.as_str()));
        exact.chain(self.ranges.iter().map(|(p, c)| (format!("{p}*"), c.as_str())))
    }
}

/// Whether every number starting with `prefix` lies in the reserved `range` (`?`: any digit).
fn within(prefix: &str, range: &str) -> bool {
    prefix.len() >= range.len() && prefix.bytes().zip(range.bytes()).all(|(p, r)| r == b'?' || p == r)
}

/// A number as written in the configuration, in E.164 (`+15005550006`). Its shape only: a test
/// number need not be assigned, nor of a kind that can receive texts.
fn normalize(key: &str) -> Option<String> {
    let key = key.trim();
    if !key.starts_with('+') || key.chars().any(|c| c.is_alphabetic()) {
        return None;
    }
    PhoneNumber::parse_e164_lenient(key).ok().map(|n| n.as_str().to_string())
}

/// Every configured test number: the global table, and each service's own (by name or id).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestNumbers {
    global: Table,
    services: BTreeMap<String, Table>,
}

/// One configured test number or range, for the start-up warning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestNumberEntry {
    /// The number in E.164, or a range's prefix with its `*`.
    pub number: String,
    /// The service whose table holds it (`None`: every service).
    pub service: Option<String>,
}

impl TestNumbers {
    /// The tables as configured: `global` for every service, `services` by service name or id.
    pub fn new(global: &BTreeMap<String, String>, services: &BTreeMap<String, BTreeMap<String, String>>) -> Result<Self, TestNumberError> {
        let global = Table::parse("test_numbers", global)?;
        let services = services
            .iter()
            .map(|(name, t)| Ok((name.clone(), Table::parse(&format!("test_numbers.services.{name}"), t)?)))
            .collect::<Result<BTreeMap<_, _>, TestNumberError>>()?;
        Ok(Self { global, services })
    }

    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.services.values().all(Table::is_empty)
    }

    fn own(&self, service: &Service) -> Option<&Table> {
        self.own_by(&service.name, &service.id)
    }

    fn own_by(&self, name: &str, id: &str) -> Option<&Table> {
        self.services.get(name).or_else(|| self.services.get(id))
    }

    /// The fixed code of `to` in `service`, when it is a test number there: the service's own
    /// table first, then the global one.
    pub fn code_for(&self, service: &Service, to: &PhoneNumber) -> Option<&str> {
        self.code_in(&service.name, &service.id, to)
    }

    /// `code_for` the service named `name` with the id `id`.
    pub fn code_in(&self, name: &str, id: &str, to: &PhoneNumber) -> Option<&str> {
        if self.is_empty() {
            return None;
        }
        self.own_by(name, id).and_then(|t| t.code(to.as_str())).or_else(|| self.global.code(to.as_str()))
    }

    /// Whether `to` is a test number of any service.
    pub fn is_test(&self, to: &PhoneNumber) -> bool {
        !self.is_empty() && (self.global.code(to.as_str()).is_some() || self.services.values().any(|t| t.code(to.as_str()).is_some()))
    }

    /// Every configured number and range, global first.
    pub fn entries(&self) -> Vec<TestNumberEntry> {
        let global = self.global.entries().map(|(number, _)| TestNumberEntry { number, service: None });
        let own =
            self.services.iter().flat_map(|(s, t)| t.entries().map(|(number, _)| TestNumberEntry { number, service: Some(s.clone()) }));
        global.chain(own).collect()
    }

    /// The first code that does not have `service`'s code length: of its own table, and of the
    /// global table too when `global` (the services every app and login page use). A global
    /// number the service's own table lists is that table's.
    pub fn length_mismatch(&self, service: &Service, global: bool) -> Option<TestNumberError> {
        let own = self.own(service);
        let table_name = |t: &str| if t.is_empty() { "test_numbers".to_string() } else { format!("test_numbers.services.{t}") };
        let own_name = self.services.keys().find(|k| **k == service.name || **k == service.id).cloned().unwrap_or_default();
        let mut candidates: Vec<(String, String, &str)> =
            own.into_iter().flat_map(|t| t.entries()).map(|(n, c)| (table_name(&own_name), n, c)).collect();
        if global {
            let overridden = |n: &str| own.is_some_and(|t| t.exact.contains_key(n));
            candidates.extend(self.global.entries().filter(|(n, _)| !overridden(n)).map(|(n, c)| (table_name(""), n, c)));
        }
        candidates.into_iter().find(|(_, _, c)| c.len() != usize::from(service.code_length)).map(|(table, key, c)| {
            let hint = match table == "test_numbers" {
                true => format!(", or list the number in [test_numbers.services.{}] with one", service.name),
                false => String::new(),
            };
            TestNumberError::Length { table, key, digits: c.len(), service: service.name.clone(), length: service.code_length, hint }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::service::ServiceSettings;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn service(name: &str, code_length: u8) -> Service {
        ServiceSettings { name: name.into(), code_length: Some(code_length), ..Default::default() }
            .into_service(chrono::Utc::now())
            .unwrap()
    }

    fn number(n: &str) -> PhoneNumber {
        PhoneNumber::from_trusted(n.into())
    }

    #[test]
    fn exact_numbers_and_reserved_ranges_get_their_codes_and_a_service_table_wins() {
        let services = [("Shop".to_string(), map(&[("+15005550006", "4321"), ("+447700900*", "8888")]))].into();
        let t = TestNumbers::new(&map(&[("+15005550006", "123456"), ("+1202555010*", "111111"), ("+12025550*", "999999")]), &services);
        let t = t.unwrap_err();
        assert!(matches!(t, TestNumberError::Range { ref key, .. } if key == "+12025550*"), "{t}");
        let t = TestNumbers::new(&map(&[("+15005550006", "123456"), ("+1202555010*", "111111"), ("+120255501*", "222222")]), &services)
            .unwrap();
        let (shop, other) = (service("Shop", 4), service("Other", 6));
        assert_eq!(t.code_for(&other, &number("+15005550006")), Some("123456"));
        assert_eq!(t.code_for(&shop, &number("+15005550006")), Some("4321"));
        assert_eq!(t.code_for(&other, &number("+12025550107")), Some("111111"), "the narrower range wins");
        assert_eq!(t.code_for(&other, &number("+12025550199")), Some("222222"));
        assert_eq!(t.code_for(&shop, &number("+447700900123")), Some("8888"));
        assert_eq!(t.code_for(&other, &number("+447700900123")), None);
        assert!(t.is_test(&number("+447700900123")) && !t.is_test(&number("+4915123456789")));
        assert_eq!(t.code_for(&other, &number("+12025550200")), None);
        assert_eq!(t.entries().len(), 5);
    }

    #[test]
    fn bad_numbers_codes_and_wildcards_over_real_ranges_are_refused() {
        let none = BTreeMap::new();
        let bad = |k: &str, c: &str| TestNumbers::new(&map(&[(k, c)]), &none).unwrap_err();
        assert!(matches!(bad("15005550006", "123456"), TestNumberError::Number { .. }));
        assert!(matches!(bad("+1 call me", "123456"), TestNumberError::Number { .. }));
        assert!(matches!(bad("+15005550006", "12a456"), TestNumberError::Code { .. }));
        assert!(matches!(bad("+15005550006", "123"), TestNumberError::Code { .. }));
        assert!(matches!(bad("+15005550006", "12345678901"), TestNumberError::Code { .. }));
        for real in ["+1555*", "+4915*", "+44770090*", "+*", "+61491570*"] {
            let e = bad(real, "123456");
            assert!(matches!(e, TestNumberError::Range { .. } | TestNumberError::Number { .. }), "{real}: {e}");
        }
        assert!(bad("+4915*", "123456").to_string().contains("+447700900*"));
        for reserved in ["+1212555010*", "+447700900*", "+4477009001*", "+441632960*", "+442079460*", "+6125550*"] {
            assert!(TestNumbers::new(&map(&[(reserved, "123456")]), &none).is_ok(), "{reserved}");
        }
        let services = [("Shop".to_string(), map(&[("+4915*", "1234")]))].into();
        let e = TestNumbers::new(&BTreeMap::new(), &services).unwrap_err();
        assert!(e.to_string().starts_with("test_numbers.services.Shop.\"+4915*\""), "{e}");
    }

    #[test]
    fn numbers_are_written_in_e164() {
        let t = TestNumbers::new(&map(&[(" +1 500 555 0006 ", "123456")]), &BTreeMap::new()).unwrap();
        assert_eq!(t.code_for(&service("x", 6), &number("+15005550006")), Some("123456"));
    }

    #[test]
    fn codes_must_have_the_services_code_length() {
        let services = [("Pin".to_string(), map(&[("+15005550006", "1234")]))].into();
        let t = TestNumbers::new(&map(&[("+15005550006", "123456"), ("+15005550007", "654321")]), &services).unwrap();
        assert_eq!(t.length_mismatch(&service("Pin", 4), false), None);
        let e = t.length_mismatch(&service("Pin", 4), true).unwrap();
        assert!(matches!(&e, TestNumberError::Length { key, .. } if key == "+15005550007"), "{e}");
        assert!(e.to_string().contains("[test_numbers.services.Pin]"), "{e}");
        assert!(matches!(t.length_mismatch(&service("Pin", 6), false), Some(TestNumberError::Length { .. })));
        assert_eq!(t.length_mismatch(&service("phonegate", 6), true), None);
        assert!(t.length_mismatch(&service("short", 4), true).is_some());
    }
}
