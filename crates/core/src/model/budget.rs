//! The words of budgets: a rate (`5/10m`), which budget, and one counter to charge.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// "`limit` per `secs`", written `5/10m`, `10/1h`, `20/1d` (units `s`, `m`, `h`, `d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub secs: i64,
}

impl Rate {
    /// The start of the fixed window holding `now`, and its end.
    pub fn window(&self, now: DateTime<Utc>) -> (i64, DateTime<Utc>) {
        let t = now.timestamp();
        let start = t - t.rem_euclid(self.secs);
        (start, DateTime::from_timestamp(start + self.secs, 0).unwrap_or(now))
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a rate like `5/10m` (a count, `/`, a period in s, m, h or d)");
        let (limit, period) = s.trim().split_once('/').ok_or_else(bad)?;
        let limit: u32 = limit.trim().parse().map_err(|_| bad())?;
        let period = period.trim();
        let (n, unit) = period.split_at(period.find(|c: char| !c.is_ascii_digit()).unwrap_or(period.len()));
        let n: i64 = if n.is_empty() { 1 } else { n.parse().map_err(|_| bad())? };
        let unit = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        if n <= 0 || n > 366 * 86_400 / unit {
            return Err(bad());
        }
        Ok(Self { limit, secs: n * unit })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, unit) = match self.secs {
            s if s % 86_400 == 0 => (s / 86_400, "d"),
            s if s % 3600 == 0 => (s / 3600, "h"),
            s if s % 60 == 0 => (s / 60, "m"),
            s => (s, "s"),
        };
        write!(f, "{}/{n}{unit}", self.limit)
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Which budget refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    FailedChecksPerNumber,
    SendsPerNumber,
    SendsPerKey,
    SendsPerService,
    SendsPerCountry,
    SendsPerPrefix,
    StartsPerIp,
    ChecksPerIp,
    LoginsPerIp,
    FailedLoginsPerAccount,
    /// The prefix throttle refused (see `Budgets::throttle_after`).
    PrefixThrottled,
    /// Counters behind the prefix throttle: new numbers sent a code, and approved.
    PrefixNewNumbers,
    PrefixApprovals,
}

impl Budget {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailedChecksPerNumber => "failed_checks_per_number",
            Self::SendsPerNumber => "sends_per_number",
            Self::SendsPerKey => "sends_per_key",
            Self::SendsPerService => "sends_per_service",
            Self::SendsPerCountry => "sends_per_country",
            Self::SendsPerPrefix => "sends_per_prefix",
            Self::StartsPerIp => "starts_per_ip",
            Self::ChecksPerIp => "checks_per_ip",
            Self::LoginsPerIp => "logins_per_ip",
            Self::FailedLoginsPerAccount => "failed_logins_per_account",
            Self::PrefixThrottled => "prefix_throttled",
            Self::PrefixNewNumbers => "prefix_new_numbers",
            Self::PrefixApprovals => "prefix_approvals",
        }
    }

    /// Whether it counts something done to one phone number (exact, locked counters).
    fn per_number(self) -> bool {
        matches!(self, Self::FailedChecksPerNumber | Self::SendsPerNumber | Self::FailedLoginsPerAccount)
    }
}

/// Shards of a shared counter.
pub const SHARDS: u32 = 8;

/// One counter to take from: the budget, what it counts (`+4915…`, a key id, `+49`…), one rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    pub budget: Budget,
    pub subject: String,
    pub rate: Rate,
}

impl Charge {
    /// The counter's name in the store.
    pub fn counter(&self) -> String {
        format!("{}:{}:{}", self.budget.as_str(), self.rate.secs, self.subject)
    }

    pub fn exact(&self) -> bool {
        self.budget.per_number()
    }
}

/// Who guesses a code or a password: anybody, or a *recognised device* of the number's holder (a
/// browser or app that proved the number before: `accounts::device`). Each has its own counters
/// of the same size, so nobody else's wrong guesses use up the holder's: the budget everybody
/// else shares is exactly as large as before, which keeps the guess bound, and only a device that
/// already proved the number can use the other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Guesser {
    #[default]
    Anyone,
    Recognised,
}

impl Guesser {
    /// The counter's subject. A recognised one carries a space, which no number, username or
    /// e-mail address (the subjects anybody can name) may hold: nobody can charge it by naming it.
    pub(crate) fn subject(self, s: &str) -> String {
        match self {
            Self::Anyone => s.to_string(),
            Self::Recognised => format!("recognised {s}"),
        }
    }
}
