//! Budgets: how much one phone number, API key, service, country, number prefix or end-user IP
//! may use, across verifications, services, the three APIs and every instance. Each is counted in
//! the store, in fixed windows, inside the use case's own transaction: a start or check that goes
//! over a budget writes nothing at all.
//!
//! Counters on one phone number are exact (the counter row is locked until the unit commits, so
//! parallel guesses on one number take turns). Counters shared by much traffic (a key, a service,
//! a country, a prefix, an IP) are spread over shards so they never serialize unrelated requests;
//! under concurrency they may overshoot by the requests in flight.
pub use crate::model::budget::{Budget, Charge, Guesser, Rate, SHARDS};
use crate::model::workflow::Channel;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

fn rates(list: &[&str]) -> Vec<Rate> {
    list.iter().map(|r| r.parse().expect("built-in rate")).collect()
}

/// Every budget, each a list of rates that must all hold. An empty list means no budget.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budgets {
    /// Wrong codes per phone number, whatever the verification, service or API. At 50 per UTC
    /// day, no 24 hours can see more than 100 wrong guesses, so a 6-digit code is guessed with a
    /// probability of at most 100 / 10^6 = 1 in 10,000 per number per day (see docs/budgets.md for
    /// each code length).
    pub failed_checks_per_number: Vec<Rate>,
    /// Codes sent per phone number, across verifications and services.
    pub sends_per_number: Vec<Rate>,
    /// Codes sent per API key, per service, per country calling code and per number prefix
    /// (the calling code and the next `prefix_digits` digits).
    pub sends_per_key: Vec<Rate>,
    pub sends_per_service: Vec<Rate>,
    pub sends_per_country: Vec<Rate>,
    pub sends_per_prefix: Vec<Rate>,
    pub prefix_digits: u8,
    /// Starts and checks per end-user IP address (the address an app's backend passes as
    /// `client_ip` / `DeviceIp`, or the peer of a public page).
    pub starts_per_ip: Vec<Rate>,
    pub checks_per_ip: Vec<Rate>,
    /// Sign-ups, logins and resends of login codes per end-user IP address.
    pub logins_per_ip: Vec<Rate>,
    /// Wrong passwords and wrong login codes per account tried (username, e-mail or number,
    /// whether or not it exists).
    pub failed_logins_per_account: Vec<Rate>,
    /// End-user networks no IP budget applies to (`10.0.0.0/8`, `2001:db8::/32`).
    pub exempt_networks: Vec<ipnet::IpNet>,
    /// The automatic prefix throttle: once this many *new* numbers in one prefix were sent a
    /// code within the window, and fewer than `throttle_min_conversion` of them were approved,
    /// further new numbers there are refused for the rest of the window and the whole next
    /// one. `None` turns it off.
    pub throttle_after: Option<Rate>,
    pub throttle_min_conversion: f64,
    /// Per service (by name), budgets that replace the global ones for that service's
    /// requests. Counters stay shared: a number's sends count in every service, each service
    /// applying its own limit to the total.
    pub services: std::collections::BTreeMap<String, Overrides>,
    /// Send budgets of calls, WhatsApp messages and e-mails per number (per address) and per
    /// prefix (per domain), counted apart from SMS's; what is not given takes the channel's
    /// default (`ChannelBudgets::defaults`). The per-key, per-service and per-country budgets
    /// are one counter for every channel: an operator's limit holds whatever the channel.
    pub voice: ChannelBudgets,
    pub whatsapp: ChannelBudgets,
    pub email: ChannelBudgets,
}

/// One channel's own send budgets; `None` takes the channel's default.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelBudgets {
    /// Per number (per address, for e-mail).
    pub sends_per_number: Option<Vec<Rate>>,
    /// Per number prefix (calls, WhatsApp).
    pub sends_per_prefix: Option<Vec<Rate>>,
    /// E-mail: per domain, in each service (a tenant cannot use up another's).
    pub sends_per_domain: Option<Vec<Rate>>,
}

impl ChannelBudgets {
    /// The defaults (per number, per prefix, per domain): a call costs the most and is what
    /// revenue-share fraud pumps, so a number's and a prefix's call budgets are below SMS's in
    /// every window; WhatsApp's are SMS's; e-mail counts per address and per domain.
    pub fn defaults(channel: Channel) -> [Vec<Rate>; 3] {
        match channel {
            Channel::Voice => [rates(&["3/10m", "5/1h", "10/1d"]), rates(&["100/1h", "500/1d"]), vec![]],
            Channel::Email => [rates(&["5/10m", "10/1h", "20/1d"]), vec![], rates(&["500/1h", "5000/1d"])],
            _ => [rates(&["5/10m", "10/1h", "20/1d"]), rates(&["300/1h", "2000/1d"]), vec![]],
        }
    }
}

/// A service's own budgets; what is not given is the global budget.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Overrides {
    pub failed_checks_per_number: Option<Vec<Rate>>,
    pub sends_per_number: Option<Vec<Rate>>,
    pub sends_per_key: Option<Vec<Rate>>,
    pub sends_per_service: Option<Vec<Rate>>,
    pub sends_per_country: Option<Vec<Rate>>,
    pub sends_per_prefix: Option<Vec<Rate>>,
    pub starts_per_ip: Option<Vec<Rate>>,
    pub checks_per_ip: Option<Vec<Rate>>,
    /// ISO 3166 regions this service may send to (empty: those the global policy allows), and
    /// regions it may not, on top of the global lists.
    pub allowed_countries: Vec<String>,
    pub denied_countries: Vec<String>,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            failed_checks_per_number: rates(&["10/1h", "50/1d"]),
            sends_per_number: rates(&["5/10m", "10/1h", "20/1d"]),
            sends_per_key: Vec::new(),
            sends_per_service: Vec::new(),
            sends_per_country: Vec::new(),
            sends_per_prefix: rates(&["300/1h", "2000/1d"]),
            prefix_digits: 3,
            starts_per_ip: rates(&["20/1h", "100/1d"]),
            checks_per_ip: rates(&["60/1h", "300/1d"]),
            logins_per_ip: rates(&["30/15m", "200/1d"]),
            failed_logins_per_account: rates(&["5/15m", "20/1d"]),
            exempt_networks: Vec::new(),
            throttle_after: Some(rates(&["100/1h"])[0]),
            throttle_min_conversion: 0.2,
            services: Default::default(),
            voice: Default::default(),
            whatsapp: Default::default(),
            email: Default::default(),
        }
    }
}

impl Budgets {
    /// The budgets that apply to requests of the service named `name`.
    pub fn for_service(&self, name: &str) -> std::borrow::Cow<'_, Budgets> {
        let Some(o) = self.services.get(name) else { return std::borrow::Cow::Borrowed(self) };
        let pick = |own: &Option<Vec<Rate>>, global: &Vec<Rate>| own.clone().unwrap_or_else(|| global.clone());
        std::borrow::Cow::Owned(Budgets {
            failed_checks_per_number: pick(&o.failed_checks_per_number, &self.failed_checks_per_number),
            sends_per_number: pick(&o.sends_per_number, &self.sends_per_number),
            sends_per_key: pick(&o.sends_per_key, &self.sends_per_key),
            sends_per_service: pick(&o.sends_per_service, &self.sends_per_service),
            sends_per_country: pick(&o.sends_per_country, &self.sends_per_country),
            sends_per_prefix: pick(&o.sends_per_prefix, &self.sends_per_prefix),
            starts_per_ip: pick(&o.starts_per_ip, &self.starts_per_ip),
            checks_per_ip: pick(&o.checks_per_ip, &self.checks_per_ip),
            services: Default::default(),
            ..self.clone()
        })
    }

    /// Whether the service named `service` may send to `to` (its region is looked up only for a
    /// service with country lists).
    pub fn destination_allowed(&self, service: &str, to: &crate::model::phone::PhoneNumber) -> bool {
        let Some(o) = self.services.get(service).filter(|o| !o.allowed_countries.is_empty() || !o.denied_countries.is_empty()) else {
            return true;
        };
        let region = to.region().unwrap_or_default();
        let listed = |list: &[String]| list.iter().any(|r| r.eq_ignore_ascii_case(&region));
        !listed(&o.denied_countries) && (o.allowed_countries.is_empty() || listed(&o.allowed_countries))
    }

    fn charges(budget: Budget, rates: &[Rate], subject: &str, out: &mut Vec<Charge>) {
        out.extend(rates.iter().map(|&rate| Charge { budget, subject: subject.to_string(), rate }));
    }

    /// The end-user IP an IP budget applies to, unless it is in an exempt network.
    fn ip(&self, ip: Option<IpAddr>) -> Option<String> {
        ip.filter(|ip| !self.exempt_networks.iter().any(|n| n.contains(ip))).map(|ip| ip.to_string())
    }

    /// What one code sent to `to` costs: `country` is its calling code with `+`.
    pub fn for_send(&self, to: &str, country: &str, key: Option<&str>, service_id: &str) -> Vec<Charge> {
        let mut out = Vec::new();
        Self::charges(Budget::SendsPerNumber, &self.sends_per_number, to, &mut out);
        if let Some(key) = key {
            Self::charges(Budget::SendsPerKey, &self.sends_per_key, key, &mut out);
        }
        Self::charges(Budget::SendsPerService, &self.sends_per_service, service_id, &mut out);
        Self::charges(Budget::SendsPerCountry, &self.sends_per_country, country, &mut out);
        Self::charges(Budget::SendsPerPrefix, &self.sends_per_prefix, &self.prefix(to, country), &mut out);
        out
    }

    /// What one code sent to `to` by `channel` costs: by SMS, `for_send`; by another channel,
    /// the channel's own per-number and per-prefix (e-mail: per-domain) budgets, counted apart
    /// (their subjects carry the channel), and the key's, service's and country's budgets, one
    /// counter for every channel. `country` is an address's `@domain`.
    pub fn for_send_on(&self, channel: Channel, to: &str, country: &str, key: Option<&str>, service_id: &str) -> Vec<Charge> {
        let own = match channel {
            Channel::Voice => &self.voice,
            Channel::Whatsapp => &self.whatsapp,
            Channel::Email => &self.email,
            _ => return self.for_send(to, country, key, service_id),
        };
        let [number, prefix, domain] = ChannelBudgets::defaults(channel);
        let mut out = Vec::new();
        Self::charges(Budget::SendsPerNumber, own.sends_per_number.as_ref().unwrap_or(&number), &format!("{channel}:{to}"), &mut out);
        if let Some(key) = key {
            Self::charges(Budget::SendsPerKey, &self.sends_per_key, key, &mut out);
        }
        Self::charges(Budget::SendsPerService, &self.sends_per_service, service_id, &mut out);
        if channel == Channel::Email {
            let domain_rates = own.sends_per_domain.as_ref().unwrap_or(&domain);
            Self::charges(Budget::SendsPerCountry, domain_rates, &format!("email:{service_id}{country}"), &mut out);
        } else {
            Self::charges(Budget::SendsPerCountry, &self.sends_per_country, country, &mut out);
            let prefix_rates = own.sends_per_prefix.as_ref().unwrap_or(&prefix);
            Self::charges(Budget::SendsPerPrefix, prefix_rates, &format!("{channel}:{}", self.prefix(to, country)), &mut out);
        }
        out
    }

    /// What one code sent to `to` costs when a recognised device asks for it: the number's own
    /// send counter is the device's partition (strangers cannot use it up), the rest as always.
    pub fn for_recognised_send(&self, to: &str, country: &str, key: Option<&str>, service_id: &str) -> Vec<Charge> {
        let mut out = self.for_send(to, country, key, service_id);
        for c in out.iter_mut().filter(|c| c.budget == Budget::SendsPerNumber) {
            c.subject = Guesser::Recognised.subject(to);
        }
        out
    }

    /// The number's prefix: its calling code (`+49`) and the next `prefix_digits` digits.
    pub fn prefix(&self, to: &str, country: &str) -> String {
        to.chars().take(country.len() + usize::from(self.prefix_digits)).collect()
    }

    /// The throttle's two counters for a prefix (new numbers, approvals), when it is on.
    pub fn throttle_counters(&self, prefix: &str) -> Option<(Charge, Charge)> {
        let rate = self.throttle_after?;
        let unlimited = Rate { limit: u32::MAX, secs: rate.secs };
        Some((
            Charge { budget: Budget::PrefixNewNumbers, subject: prefix.into(), rate: unlimited },
            Charge { budget: Budget::PrefixApprovals, subject: prefix.into(), rate: unlimited },
        ))
    }

    /// Whether a window with `new` new numbers and `approved` approvals trips the throttle.
    pub fn trips_throttle(&self, new: i64, approved: i64) -> bool {
        self.throttle_after.is_some_and(|r| new >= i64::from(r.limit) && (approved as f64) < new as f64 * self.throttle_min_conversion)
    }

    /// What a start from an end user at `ip` costs.
    pub fn for_start(&self, ip: Option<IpAddr>) -> Vec<Charge> {
        let mut out = Vec::new();
        if let Some(ip) = self.ip(ip) {
            Self::charges(Budget::StartsPerIp, &self.starts_per_ip, &ip, &mut out);
        }
        out
    }

    /// What a check from an end user at `ip` costs.
    pub fn for_check(&self, ip: Option<IpAddr>) -> Vec<Charge> {
        let mut out = Vec::new();
        if let Some(ip) = self.ip(ip) {
            Self::charges(Budget::ChecksPerIp, &self.checks_per_ip, &ip, &mut out);
        }
        out
    }

    /// What a sign-up, login or resend from an end user at `ip` costs.
    pub fn for_login(&self, ip: Option<IpAddr>) -> Vec<Charge> {
        let mut out = Vec::new();
        if let Some(ip) = self.ip(ip) {
            Self::charges(Budget::LoginsPerIp, &self.logins_per_ip, &ip, &mut out);
        }
        out
    }

    /// What a wrong password or login code for the account tried as `login` costs, for `who`.
    pub fn for_failed_login(&self, login: &str, who: Guesser) -> Vec<Charge> {
        let mut out = Vec::new();
        Self::charges(Budget::FailedLoginsPerAccount, &self.failed_logins_per_account, &who.subject(login), &mut out);
        out
    }

    /// What a wrong code for `to` from `who` costs (counted for a wrong code; a right code only
    /// reads the counters, and is refused alike when they are spent).
    pub fn for_guess(&self, to: &str, who: Guesser) -> Vec<Charge> {
        let mut out = Vec::new();
        Self::charges(Budget::FailedChecksPerNumber, &self.failed_checks_per_number, &who.subject(to), &mut out);
        out
    }
}

/// The refusal of a charge at `now`: retry once its window ends.
pub fn refusal(c: &Charge, now: chrono::DateTime<chrono::Utc>) -> crate::error::VerifyError {
    let (_, end) = c.rate.window(now);
    crate::error::VerifyError::OverBudget { budget: c.budget, retry_after_secs: (end - now).num_seconds().max(1) }
}

/// Takes one from each charge's counter, or refuses with the first budget that has nothing left
/// (the unit's rollback returns what was taken before it).
pub(crate) fn charge(
    tx: &mut dyn crate::ports::Tx,
    charges: &[Charge],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), crate::error::VerifyError> {
    for c in charges {
        let (start, end) = c.rate.window(now);
        let shard = rand::random::<u32>() % SHARDS;
        if !tx.take_budget(c, start, shard, end)? {
            tracing::info!(budget = c.budget.as_str(), rate = %c.rate, "over budget");
            return Err(crate::budget::refusal(c, now));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn rates_parse_and_print() {
        assert_eq!("5/10m".parse::<Rate>().unwrap(), Rate { limit: 5, secs: 600 });
        assert_eq!("20/1d".parse::<Rate>().unwrap().to_string(), "20/1d");
        assert_eq!("3/h".parse::<Rate>().unwrap(), Rate { limit: 3, secs: 3600 });
        for bad in ["5", "x/1h", "5/0m", "5/1w", "-1/1h", "5/400d", ""] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_are_aligned_and_end_where_the_next_begins() {
        let rate: Rate = "1/1h".parse().unwrap();
        let now = DateTime::from_timestamp(7200 + 1799, 0).unwrap();
        let (start, end) = rate.window(now);
        assert_eq!((start, end.timestamp()), (7200, 10_800));
    }

    #[test]
    fn the_default_guess_budget_keeps_a_six_digit_code_at_one_in_ten_thousand_a_day() {
        let b = Budgets::default();
        // Fixed windows: any 24 hours overlap at most two daily windows.
        let daily = b.failed_checks_per_number.iter().filter(|r| r.secs == 86_400).map(|r| r.limit).min().unwrap();
        assert!(f64::from(2 * daily) / 1e6 <= 1e-4);
    }

    #[test]
    fn a_send_is_charged_to_the_number_key_service_country_and_prefix() {
        let b = Budgets { sends_per_key: vec!["1/1h".parse().unwrap()], ..Budgets::default() };
        let charges = b.for_send("+4915123456789", "+49", Some("SKa"), "SVx");
        let prefix = charges.iter().find(|c| c.budget == Budget::SendsPerPrefix).unwrap();
        assert_eq!(prefix.subject, "+49151");
        assert!(charges.iter().any(|c| c.budget == Budget::SendsPerKey && c.subject == "SKa"));
        assert!(charges.iter().filter(|c| c.exact()).all(|c| c.subject == "+4915123456789"));
    }

    #[test]
    fn each_channel_counts_apart_and_calls_cost_less_budget_than_texts_in_every_window() {
        let b = Budgets::default();
        let voice = b.for_send_on(Channel::Voice, "+4915123456789", "+49", None, "SVx");
        let own = |c: &&Charge| matches!(c.budget, Budget::SendsPerNumber | Budget::SendsPerPrefix);
        assert!(voice.iter().filter(own).all(|c| c.subject.starts_with("voice:")));
        // The operator's limits are one counter whatever the channel.
        let keyed = Budgets {
            sends_per_key: vec!["1/1d".parse().unwrap()],
            sends_per_country: vec!["1/1d".parse().unwrap()],
            ..Budgets::default()
        };
        for channel in [Channel::Sms, Channel::Voice, Channel::Whatsapp] {
            let cs = keyed.for_send_on(channel, "+4915123456789", "+49", Some("SKa"), "SVx");
            assert!(cs.iter().any(|c| c.budget == Budget::SendsPerKey && c.subject == "SKa"), "{channel}");
            assert!(cs.iter().any(|c| c.budget == Budget::SendsPerCountry && c.subject == "+49"), "{channel}");
        }
        for budget in [Budget::SendsPerNumber, Budget::SendsPerPrefix] {
            let limits = |cs: &[Charge]| {
                let mut l: Vec<(i64, u32)> = cs.iter().filter(|c| c.budget == budget).map(|c| (c.rate.secs, c.rate.limit)).collect();
                l.sort();
                l
            };
            let sms = limits(&b.for_send("+4915123456789", "+49", None, "SVx"));
            for (secs, limit) in limits(&voice) {
                let same = sms.iter().filter(|(s, _)| *s >= secs).map(|(_, l)| *l).min().unwrap();
                assert!(limit < same, "{budget:?} {secs}s: voice {limit} vs sms {same}");
            }
        }
        let mail = b.for_send_on(Channel::Email, "ann@example.com", "@example.com", None, "SVx");
        assert!(mail.iter().any(|c| c.budget == Budget::SendsPerCountry && c.subject == "email:SVx@example.com"));
        assert!(mail.iter().all(|c| c.budget != Budget::SendsPerPrefix));
    }

    #[test]
    fn exempt_networks_have_no_ip_budget() {
        let b = Budgets { exempt_networks: vec!["10.0.0.0/8".parse().unwrap()], ..Budgets::default() };
        assert!(b.for_start(Some("10.1.2.3".parse().unwrap())).is_empty());
        assert!(!b.for_start(Some("192.0.2.1".parse().unwrap())).is_empty());
        assert!(b.for_check(None).is_empty());
    }
}
