//! Durations in the configuration, in one format everywhere: a number with its unit, as in
//! `"500ms"`, `"30s"`, `"10m"`, `"24h"`, `"30d"`, or several of them (`"1h 30m"`); the units of
//! budget rates (`s`, `m`, `h`, `d`) are among them. A bare number is refused: its unit would be a
//! guess. The `serde` helpers here read such a string into a [`Duration`], or into whole seconds,
//! hours or days for settings that count in those.
use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use std::fmt;
use std::time::Duration;

const EXAMPLES: &str = "like \"30s\", \"10m\", \"24h\" or \"30d\"";

/// Reads a duration such as `"30s"` or `"1h 30m"`.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| format!("`{text}` is not a duration {EXAMPLES} ({e})"))
}

/// Writes `d` in its largest exact unit: `"30s"`, `"10m"`, `"24h"`, `"30d"`, `"1500ms"`.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if d.is_zero() {
        return "0s".into();
    }
    let units: [(u128, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")];
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return humantime::format_duration(d).to_string();
    }
    match units.iter().find(|(size, _)| ms.is_multiple_of(*size)) {
        Some((size, unit)) => format!("{}{unit}", ms / size),
        None => format!("{ms}ms"),
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a duration {EXAMPLES}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Err(E::custom(format!("`{v}` has no unit: write a duration {EXAMPLES}")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Err(E::custom(format!("`{v}` has no unit: write a duration {EXAMPLES}")))
    }
}

/// `#[serde(with = "phonegate_core::duration")]` for a [`Duration`].
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// See [`serialize`].
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

/// A duration kept as a whole number of `unit` seconds (an `i64`), refusing what is not whole.
fn whole<'de, D: Deserializer<'de>>(d: D, unit: u64, name: &str) -> Result<i64, D::Error> {
    let value = deserialize(d)?;
    if value.subsec_nanos() != 0 || !value.as_secs().is_multiple_of(unit) {
        return Err(de::Error::custom(format!("`{}` is not a whole number of {name}", format(value))));
    }
    i64::try_from(value.as_secs() / unit).map_err(|_| de::Error::custom("the duration is too long"))
}

fn write_whole<S: Serializer>(n: &i64, unit: u64, s: S) -> Result<S::Ok, S::Error> {
    serialize(&Duration::from_secs(u64::try_from(*n).unwrap_or(0) * unit), s)
}

/// `#[serde(with = "phonegate_core::duration::secs")]` for whole seconds in an `i64`.
pub mod secs {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &i64, s: S) -> Result<S::Ok, S::Error> {
        super::write_whole(n, 1, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        super::whole(d, 1, "seconds")
    }
}

/// `#[serde(with = "phonegate_core::duration::hours")]` for whole hours in an `i64`.
pub mod hours {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &i64, s: S) -> Result<S::Ok, S::Error> {
        super::write_whole(n, 3600, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        super::whole(d, 3600, "hours")
    }
}

/// `#[serde(with = "phonegate_core::duration::days")]` for whole days in an `i64`.
pub mod days {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &i64, s: S) -> Result<S::Ok, S::Error> {
        super::write_whole(n, 86_400, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        super::whole(d, 86_400, "days")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_write_in_their_largest_unit() {
        for (text, secs) in [("30s", 30), ("10m", 600), ("24h", 86_400), ("30d", 2_592_000), ("1h 30m", 5400), ("0s", 0)] {
            assert_eq!(parse(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        assert_eq!(parse("1500ms"), Ok(Duration::from_millis(1500)));
        let written: Vec<String> = [0, 1500, 30_000, 600_000, 86_400_000, 90_000].map(|ms| format(Duration::from_millis(ms))).into();
        assert_eq!(written, ["0s", "1500ms", "30s", "10m", "1d", "90s"]);
        for bad in ["30", "30x", "", "-5s", "ten minutes"] {
            assert!(parse(bad).unwrap_err().contains("is not a duration like \"30s\""), "{bad}");
        }
    }

    #[derive(Debug, serde::Deserialize, serde::Serialize, PartialEq)]
    struct Times {
        #[serde(with = "super")]
        wait: Duration,
        #[serde(with = "secs")]
        ttl_secs: i64,
        #[serde(with = "days")]
        idle_days: i64,
    }

    #[test]
    fn serde_reads_strings_into_durations_or_whole_units_and_refuses_bare_numbers() {
        let t: Times = serde_json::from_str(r#"{"wait": "2s", "ttl_secs": "10m", "idle_days": "48h"}"#).unwrap();
        assert_eq!(t, Times { wait: Duration::from_secs(2), ttl_secs: 600, idle_days: 2 });
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"wait":"2s","ttl_secs":"10m","idle_days":"2d"}"#);
        let bare = serde_json::from_str::<Times>(r#"{"wait": 2, "ttl_secs": "1s", "idle_days": "1d"}"#).unwrap_err();
        assert!(bare.to_string().contains("`2` has no unit: write a duration like \"30s\""), "{bare}");
        let partial = serde_json::from_str::<Times>(r#"{"wait": "1s", "ttl_secs": "1s", "idle_days": "36h"}"#).unwrap_err();
        assert!(partial.to_string().contains("`36h` is not a whole number of days"), "{partial}");
    }
}
