//! Routing and failover: per service an ordered provider list and per-prefix routes, each with
//! its sender id. Unavailable providers are retried (only when that cannot duplicate a message)
//! and then skipped; a rejection stops at once.
use crate::BuildError;
use async_trait::async_trait;
use phonegate_core::Channel;
use phonegate_core::ports::{Accepted, MessageSender, Observer, Outgoing, SendError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

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
    /// The routing of calls, WhatsApp messages and e-mails (`[routing.channels.voice]`), with
    /// the same per-prefix and per-service rules. The rules above are SMS's. A channel not listed
    /// goes to every provider that serves it, in name order.
    pub channels: BTreeMap<String, ChannelRouting>,
}

/// One channel's routing: its providers, per-prefix routes and per-service rules.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelRouting {
    #[serde(flatten)]
    pub default: Routing,
    pub services: BTreeMap<String, Routing>,
}

/// A configured provider with its bounds.
pub struct Provider {
    pub name: String,
    pub sender: Arc<dyn MessageSender>,
    pub timeout: Duration,
    /// Extra attempts at this provider for failures that surely sent nothing.
    pub retries: u32,
    /// The channels it serves (its entry's `channels`, within what its kind can do).
    pub channels: Vec<Channel>,
}

pub struct RoutedSender {
    providers: BTreeMap<String, Provider>,
    routing: RoutingSettings,
    /// Per channel other than SMS, its routing (configured, or every provider serving it).
    channels: BTreeMap<Channel, ChannelRouting>,
    /// The channels some provider serves.
    served: Vec<Channel>,
    observer: Arc<dyn Observer>,
}

impl RoutedSender {
    pub fn new(providers: Vec<Provider>, routing: RoutingSettings, observer: Arc<dyn Observer>) -> Result<Self, BuildError> {
        let providers: BTreeMap<String, Provider> = providers.into_iter().map(|p| (p.name.clone(), p)).collect();
        let all = std::iter::once(&routing.default).chain(routing.services.values());
        for r in all {
            for name in r.providers.iter().chain(r.routes.iter().flat_map(|route| &route.providers)) {
                if !providers.contains_key(name) {
                    return Err(BuildError::UnknownProvider { name: name.clone() });
                }
            }
            if let Some(route) = r.routes.iter().find(|route| !route.prefix.starts_with('+')) {
                return Err(BuildError::BadPrefix { prefix: route.prefix.clone() });
            }
        }
        // Some provider sends SMS, yet the rules say none does.
        if routing.default.providers.is_empty() && providers.values().any(|p| p.channels.contains(&Channel::Sms)) {
            return Err(BuildError::NoDefaultProvider);
        }
        let mut channels = BTreeMap::new();
        for channel in [Channel::Voice, Channel::Whatsapp, Channel::Email] {
            let configured = routing.channels.get(channel.as_str()).cloned();
            let r = configured.unwrap_or_else(|| ChannelRouting {
                default: Routing {
                    providers: providers.values().filter(|p| p.channels.contains(&channel)).map(|p| p.name.clone()).collect(),
                    ..Default::default()
                },
                services: BTreeMap::new(),
            });
            let all = std::iter::once(&r.default).chain(r.services.values());
            for rule in all {
                for name in rule.providers.iter().chain(rule.routes.iter().flat_map(|route| &route.providers)) {
                    let p = providers.get(name).ok_or_else(|| BuildError::UnknownProvider { name: name.clone() })?;
                    if !p.channels.contains(&channel) {
                        return Err(BuildError::ChannelNotServed { name: name.clone(), channel: channel.as_str() });
                    }
                }
            }
            channels.insert(channel, r);
        }
        if let Some(unknown) = routing.channels.keys().find(|c| !matches!(c.as_str(), "voice" | "whatsapp" | "email")) {
            return Err(BuildError::UnknownChannel { channel: unknown.clone() });
        }
        let served = Channel::MESSAGE.into_iter().filter(|c| providers.values().any(|p| p.channels.contains(c))).collect();
        Ok(Self { providers, routing, channels, served, observer })
    }

    /// The providers to try for a message by `channel`, and the sender id to use: SMS by the
    /// top-level rules, the other channels by theirs.
    pub fn plan_for(&self, channel: Channel, service: Option<&str>, to: &str) -> (Vec<&str>, Option<&str>) {
        let Some(r) = self.channels.get(&channel) else { return self.plan(service, to) };
        Self::pick(service.and_then(|s| r.services.get(s)).unwrap_or(&r.default), &r.default, to)
    }

    /// The providers to try for a message, and the sender id to use.
    pub fn plan(&self, service: Option<&str>, to: &str) -> (Vec<&str>, Option<&str>) {
        let routing = service.and_then(|s| self.routing.services.get(s)).unwrap_or(&self.routing.default);
        Self::pick(routing, &self.routing.default, to)
    }

    /// A routing's providers and sender id for `to`: the longest matching prefix route, else its
    /// list, else the default's.
    fn pick<'a>(routing: &'a Routing, default: &'a Routing, to: &str) -> (Vec<&'a str>, Option<&'a str>) {
        let route = routing.routes.iter().filter(|r| to.starts_with(&r.prefix)).max_by_key(|r| r.prefix.len());
        match route {
            Some(r) => (r.providers.iter().map(String::as_str).collect(), r.from.as_deref().or(routing.from.as_deref())),
            None => {
                let list = if routing.providers.is_empty() { &default.providers } else { &routing.providers };
                (list.iter().map(String::as_str).collect(), routing.from.as_deref())
            }
        }
    }

    /// Sends through one named provider only (the `sms send --provider` command).
    pub async fn send_via(&self, provider: &str, sms: &Outgoing) -> Result<Accepted, SendError> {
        let p = self.providers.get(provider).ok_or_else(|| SendError::unavailable(format!("no provider named `{provider}`")))?;
        self.attempt(p, sms).await
    }

    async fn attempt(&self, p: &Provider, sms: &Outgoing) -> Result<Accepted, SendError> {
        let mut attempt = 0;
        loop {
            // One span per call (debug: traces only); the number masked, never the text.
            let span = tracing::debug_span!(
                "provider.send",
                otel.kind = "client",
                provider = %p.name,
                attempt = attempt + 1,
                to = %sms.to.masked(),
                outcome = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
            );
            let result = match tokio::time::timeout(p.timeout, p.sender.send(sms).instrument(span.clone())).await {
                Ok(r) => r,
                Err(_) => Err(SendError::unavailable(format!("{}: no answer within {} ms", p.name, p.timeout.as_millis()))),
            };
            let label = match &result {
                Ok(_) => "ok",
                Err(SendError::Rejected(_)) => "rejected",
                Err(SendError::Unavailable { .. }) => "unavailable",
            };
            span.record("outcome", label);
            if result.is_err() {
                span.record("otel.status_code", "ERROR");
            }
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
impl MessageSender for RoutedSender {
    async fn send(&self, sms: &Outgoing) -> Result<Accepted, SendError> {
        let (providers, from) = self.plan_for(sms.channel, sms.service.as_deref(), sms.to.as_str());
        if providers.is_empty() {
            // Refused at once: a workflow moves on to its next step.
            return Err(SendError::Rejected(format!("no provider serves the {} channel", sms.channel)));
        }
        let routed = Outgoing { from: sms.from.clone().or(from.map(str::to_string)), ..sms.clone() };
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

    /// The channels some configured provider serves.
    fn channels(&self) -> &[Channel] {
        &self.served
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sms;
    use phonegate_core::ports::NoObserver;
    use std::sync::Mutex;

    /// A provider that answers from a script and records what it was asked.
    struct Scripted {
        answers: Mutex<Vec<Result<Accepted, SendError>>>,
        delay: Duration,
        seen: Mutex<Vec<Outgoing>>,
    }

    #[async_trait]
    impl MessageSender for Scripted {
        async fn send(&self, sms: &Outgoing) -> Result<Accepted, SendError> {
            self.seen.lock().unwrap().push(sms.clone());
            tokio::time::sleep(self.delay).await;
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() {
                Ok(Accepted { provider: String::new(), provider_message_id: Some("x".into()) })
            } else {
                answers.remove(0)
            }
        }
    }

    fn scripted(answers: Vec<Result<Accepted, SendError>>, delay_ms: u64) -> Arc<Scripted> {
        Arc::new(Scripted { answers: Mutex::new(answers), delay: Duration::from_millis(delay_ms), seen: Mutex::new(vec![]) })
    }

    fn provider(name: &str, s: &Arc<Scripted>, timeout_ms: u64, retries: u32) -> Provider {
        Provider { name: name.into(), sender: s.clone(), timeout: Duration::from_millis(timeout_ms), retries, channels: vec![Channel::Sms] }
    }

    fn routing(providers: &[&str]) -> RoutingSettings {
        RoutingSettings {
            default: Routing { providers: providers.iter().map(|p| p.to_string()).collect(), ..Default::default() },
            ..Default::default()
        }
    }

    fn calls(s: &Scripted) -> usize {
        s.seen.lock().unwrap().len()
    }

    #[tokio::test]
    async fn routes_by_longest_prefix_and_service_with_sender_ids() {
        let (a, b, c) = (scripted(vec![], 0), scripted(vec![], 0), scripted(vec![], 0));
        let mut settings = routing(&["a"]);
        settings.default.from = Some("Default".into());
        settings.default.routes = vec![
            Route { prefix: "+49".into(), providers: vec!["b".into()], from: Some("DE".into()) },
            Route { prefix: "+4915".into(), providers: vec!["c".into()], from: None },
        ];
        settings.services.insert("shop".into(), Routing { providers: vec!["c".into()], from: Some("Shop".into()), routes: vec![] });
        let router = RoutedSender::new(
            vec![provider("a", &a, 1000, 0), provider("b", &b, 1000, 0), provider("c", &c, 1000, 0)],
            settings,
            Arc::new(NoObserver),
        )
        .unwrap();
        assert_eq!(router.plan(None, "+4930123"), (vec!["b"], Some("DE")));
        assert_eq!(router.plan(None, "+4915123"), (vec!["c"], Some("Default")));
        assert_eq!(router.plan(None, "+1201555"), (vec!["a"], Some("Default")));
        assert_eq!(router.plan(Some("shop"), "+4930123"), (vec!["c"], Some("Shop")));
        assert_eq!(router.plan(Some("other"), "+4930123"), (vec!["b"], Some("DE")));

        let sent = router.send(&sms("hi")).await.unwrap();
        assert_eq!(sent.provider, "c");
        assert_eq!(c.seen.lock().unwrap()[0].from.as_deref(), Some("Default"));
        assert_eq!((calls(&a), calls(&b)), (0, 0));
    }

    #[tokio::test]
    async fn fails_over_on_timeout_and_unavailability() {
        let slow = scripted(vec![], 500);
        let down = scripted(vec![Err(SendError::unavailable("HTTP 503"))], 0);
        let ok = scripted(vec![], 0);
        let router = RoutedSender::new(
            vec![provider("slow", &slow, 50, 3), provider("down", &down, 1000, 3), provider("ok", &ok, 1000, 0)],
            routing(&["slow", "down", "ok"]),
            Arc::new(NoObserver),
        )
        .unwrap();
        let sent = router.send(&sms("hi")).await.unwrap();
        assert_eq!(sent.provider, "ok");
        // A timeout or a 5xx may have reached the provider: no retry there, only failover.
        assert_eq!((calls(&slow), calls(&down), calls(&ok)), (1, 1, 1));
    }

    #[tokio::test]
    async fn retries_only_what_is_safe_and_stops_on_rejection() {
        let flaky = scripted(vec![Err(SendError::retryable("connect refused")), Err(SendError::retryable("connect refused"))], 0);
        let next = scripted(vec![], 0);
        let router = RoutedSender::new(
            vec![provider("flaky", &flaky, 1000, 2), provider("next", &next, 1000, 0)],
            routing(&["flaky", "next"]),
            Arc::new(NoObserver),
        )
        .unwrap();
        assert_eq!(router.send(&sms("hi")).await.unwrap().provider, "flaky");
        assert_eq!((calls(&flaky), calls(&next)), (3, 0));

        let refusing = scripted(vec![Err(SendError::Rejected("invalid number".into()))], 0);
        let never = scripted(vec![], 0);
        let router = RoutedSender::new(
            vec![provider("r", &refusing, 1000, 2), provider("n", &never, 1000, 0)],
            routing(&["r", "n"]),
            Arc::new(NoObserver),
        )
        .unwrap();
        assert_eq!(router.send(&sms("hi")).await, Err(SendError::Rejected("invalid number".into())));
        assert_eq!((calls(&refusing), calls(&never)), (1, 0));
    }

    #[tokio::test]
    async fn reports_every_failure_when_all_fail() {
        let a = scripted(vec![Err(SendError::unavailable("a: HTTP 500"))], 0);
        let b = scripted(vec![Err(SendError::unavailable("b: HTTP 401"))], 0);
        let router =
            RoutedSender::new(vec![provider("a", &a, 1000, 0), provider("b", &b, 1000, 0)], routing(&["a", "b"]), Arc::new(NoObserver))
                .unwrap();
        let err = router.send(&sms("hi")).await.unwrap_err().to_string();
        assert!(err.contains("a: HTTP 500") && err.contains("b: HTTP 401"), "{err}");
    }

    #[test]
    fn the_router_serves_what_its_providers_serve() {
        let a = scripted(vec![], 0);
        let texting = RoutedSender::new(vec![provider("a", &a, 1, 0)], routing(&["a"]), Arc::new(NoObserver)).unwrap();
        assert_eq!(texting.channels(), [Channel::Sms]);
        let calling = Provider { channels: vec![Channel::Voice, Channel::Email], ..provider("b", &a, 1, 0) };
        let both = RoutedSender::new(vec![provider("a", &a, 1, 0), calling], routing(&["a"]), Arc::new(NoObserver)).unwrap();
        assert_eq!(both.channels(), [Channel::Sms, Channel::Voice, Channel::Email]);
    }

    #[test]
    fn refuses_routing_to_unknown_providers() {
        let a = scripted(vec![], 0);
        let err = RoutedSender::new(vec![provider("a", &a, 1, 0)], routing(&["a", "b"]), Arc::new(NoObserver)).err().unwrap();
        assert!(matches!(&err, BuildError::UnknownProvider { name } if name == "b"), "{err:?}");
        assert_eq!(err.to_string(), "routing names provider `b`, which is not configured");
        let mut bad_prefix = routing(&["a"]);
        bad_prefix.default.routes.push(Route { prefix: "49".into(), providers: vec!["a".into()], from: None });
        let err = RoutedSender::new(vec![provider("a", &a, 1, 0)], bad_prefix, Arc::new(NoObserver)).err().unwrap();
        assert!(matches!(&err, BuildError::BadPrefix { prefix } if prefix == "49"), "{err:?}");
        assert!(err.to_string().starts_with("route prefixes are E.164 prefixes and start with `+`"), "{err}");
        let err = RoutedSender::new(vec![provider("a", &a, 1, 0)], routing(&[]), Arc::new(NoObserver)).err().unwrap();
        assert!(matches!(err, BuildError::NoDefaultProvider), "{err:?}");
        assert_eq!(err.to_string(), "routing.providers must list at least one provider");
    }
}
