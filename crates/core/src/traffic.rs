//! What an admin's dashboard shows: codes started and approved per hour over the last day,
//! conversion per country, what each provider did with the messages, and the prefixes the
//! throttle paused. Read-only, from the verifications, messages and audit log of the last day.
use crate::audit::AuditQuery;
use crate::context::Context;
use crate::error::VerifyError;
use crate::ports;
use chrono::{DateTime, Duration, DurationRound, Utc};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// The last 24 hours, oldest first.
    pub hours: Vec<Counts>,
    /// Countries (ISO 3166 or `unknown`) by codes started, most first (at most 10).
    pub countries: Vec<(String, Counts)>,
    /// Per provider (`none` for messages no provider took): sent, delivered, failed.
    pub providers: Vec<(String, Delivery)>,
    /// Prefixes the throttle paused, newest first.
    pub throttled: Vec<(String, DateTime<Utc>)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub started: u32,
    pub approved: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Handed to the provider (sent, delivered or undelivered since).
    pub sent: u32,
    pub delivered: u32,
    /// Refused by every provider, or reported undelivered.
    pub failed: u32,
}

/// Verifications read for the hourly and country figures, at most.
const SAMPLE: u32 = 100_000;

/// The admin dashboard's figures.
#[derive(Clone)]
pub struct TrafficReports {
    ctx: Context,
}

impl TrafficReports {
    pub fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    /// The last 24 hours of traffic. The caller is trusted to be an admin (the accounts core and
    /// the CLI ask).
    pub async fn last_day(&self) -> Result<Traffic, VerifyError> {
        let now = self.ctx.now();
        let first_hour = now.duration_trunc(Duration::hours(1)).unwrap_or(now) - Duration::hours(23);
        let (verifications, messages, throttled) = ports::read(self.ctx.store.as_ref(), move |tx| {
            let v = tx.recent_verifications(first_hour, SAMPLE)?;
            let m = tx.message_counts(first_hour)?;
            let t = tx.audit_events(&AuditQuery {
                kind: Some("prefix_throttled".into()),
                since: Some(first_hour),
                limit: 20,
                ..Default::default()
            })?;
            Ok::<_, VerifyError>((v, m, t))
        })
        .await?;
        let mut hours = vec![Counts::default(); 24];
        let mut countries: BTreeMap<String, Counts> = BTreeMap::new();
        for (to, created, approved) in verifications {
            let hour = ((created - first_hour).num_hours().clamp(0, 23)) as usize;
            hours[hour].started += 1;
            let country = countries.entry(to.region().unwrap_or_else(|| "unknown".into())).or_default();
            country.started += 1;
            if let Some(at) = approved {
                let hour = ((at - first_hour).num_hours().clamp(0, 23)) as usize;
                hours[hour].approved += 1;
                country.approved += 1;
            }
        }
        let mut countries: Vec<(String, Counts)> = countries.into_iter().collect();
        countries.sort_by(|a, b| b.1.started.cmp(&a.1.started).then_with(|| a.0.cmp(&b.0)));
        countries.truncate(10);
        let mut providers: BTreeMap<String, Delivery> = BTreeMap::new();
        for (provider, status, n) in messages {
            let d = providers.entry(provider.unwrap_or_else(|| "none".into())).or_default();
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            match status.as_str() {
                "sent" => d.sent += n,
                "delivered" => {
                    d.sent += n;
                    d.delivered += n;
                }
                "undelivered" => {
                    d.sent += n;
                    d.failed += n;
                }
                "failed" => d.failed += n,
                _ => {}
            }
        }
        let throttled = throttled.into_iter().map(|e| (e.subject.unwrap_or_default(), e.at)).collect();
        Ok(Traffic { hours, countries, providers: providers.into_iter().collect(), throttled })
    }
}
