//! Routing and failover: per service an ordered provider list and per-prefix routes, each with
//! its sender id. Unavailable providers are retried (only when that cannot duplicate a message)
//! and then skipped; a rejection stops at once.
use async_trait::async_trait;
use phonegate_core::ports::{Observer, SendError, SentSms, Sms, SmsSender};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Routing {
    /// Providers to try, in order.
    pub providers: Vec<String>,
    /// Sender id or number for this routing (a provider's own `from` otherwise).
    pub from: Option<String>,
    /// Prefix routes (`+49`, `+4915`…); the longest matching prefix wins.
    pub routes: Vec<Route>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub prefix: String,
    pub providers: Vec<String>,
    pub from: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingSettings {
    #[serde(flatten)]
    pub default: Routing,
    /// Per-service routing, by service name; services not listed use the default.
    pub services: BTreeMap<String, Routing>,
}

/// A configured provider with its bounds.
pub struct Provider {
    pub name: String,
    pub sender: Arc<dyn SmsSender>,
    pub timeout: Duration,
    /// Extra attempts at this provider for failures that surely sent nothing.
    pub retries: u32,
}

pub struct RoutedSender {
    providers: BTreeMap<String, Provider>,
    routing: RoutingSettings,
    observer: Arc<dyn Observer>,
}

impl RoutedSender {
    pub fn new(providers: Vec<Provider>, routing: RoutingSettings, observer: Arc<dyn Observer>) -> Result<Self, String> {
        let providers: BTreeMap<String, Provider> = providers.into_iter().map(|p| (p.name.clone(), p)).collect();
        let all = std::iter::once(&routing.default).chain(routing.services.values());
        for r in all {
            for name in r.providers.iter().chain(r.routes.iter().flat_map(|route| &route.providers)) {
                if !providers.contains_key(name) {
                    return Err(format!("routing names provider `{name}`, which is not configured"));
                }
            }
            if r.routes.iter().any(|route| !route.prefix.starts_with('+')) {
                return Err("route prefixes are E.164 prefixes and start with `+`".into());
            }
        }
        if routing.default.providers.is_empty() {
            return Err("routing.providers must list at least one provider".into());
        }
        Ok(Self { providers, routing, observer })
    }

    pub fn provider_names(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }

    /// The providers to try for a message, and the sender id to use.
    pub fn plan(&self, service: Option<&str>, to: &str) -> (Vec<&str>, Option<&str>) {
        let routing = service.and_then(|s| self.routing.services.get(s)).unwrap_or(&self.routing.default);
        let route = routing.routes.iter().filter(|r| to.starts_with(&r.prefix)).max_by_key(|r| r.prefix.len());
        match route {
            Some(r) => (r.providers.iter().map(String::as_str).collect(), r.from.as_deref().or(routing.from.as_deref())),
            None => {
                let list = if routing.providers.is_empty() { &self.routing.default.providers } else { &routing.providers };
                (list.iter().map(String::as_str).collect(), routing.from.as_deref())
            }
        }
    }

    /// Sends through one named provider only (the `sms send --provider` command).
    pub async fn send_via(&self, provider: &str, sms: &Sms) -> Result<SentSms, SendError> {
        let p = self.providers.get(provider).ok_or_else(|| SendError::unavailable(format!("no provider named `{provider}`")))?;
        self.attempt(p, sms).await
    }

    async fn attempt(&self, p: &Provider, sms: &Sms) -> Result<SentSms, SendError> {
        let mut attempt = 0;
        loop {
            let result = match tokio::time::timeout(p.timeout, p.sender.send(sms)).await {
                Ok(r) => r,
                Err(_) => Err(SendError::unavailable(format!("{}: no answer within {} ms", p.name, p.timeout.as_millis()))),
            };
            let label = match &result {
                Ok(_) => "ok",
                Err(SendError::Rejected(_)) => "rejected",
                Err(SendError::Unavailable { .. }) => "unavailable",
            };
            self.observer.sms_attempt(&p.name, label);
            match result {
                Ok(mut sent) => {
                    sent.provider.clone_from(&p.name);
                    return Ok(sent);
                }
                Err(SendError::Unavailable { retry_safe: true, .. }) if attempt < p.retries => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[async_trait]
impl SmsSender for RoutedSender {
    async fn send(&self, sms: &Sms) -> Result<SentSms, SendError> {
        let (providers, from) = self.plan(sms.service.as_deref(), sms.to.as_str());
        let routed = Sms { from: sms.from.clone().or(from.map(str::to_string)), ..sms.clone() };
        let mut failures = Vec::new();
        for name in providers {
            let p = &self.providers[name];
            match self.attempt(p, &routed).await {
                Ok(sent) => return Ok(sent),
                Err(SendError::Rejected(reason)) => return Err(SendError::Rejected(reason)),
                Err(SendError::Unavailable { reason, .. }) => {
                    tracing::warn!(provider = %p.name, error = %reason, "provider failed; trying the next one");
                    failures.push(reason);
                }
            }
        }
        Err(SendError::unavailable(format!("every provider failed: {}", failures.join("; "))))
    }
}
