//! phonegate's providers (SMS, calls, WhatsApp, e-mail by SMTP), each speaking its provider's wire format behind the core's
//! `MessageSender`, combined by `RoutedSender` (routing, failover), plus webhook signatures.
mod app_jwt;
pub mod callbacks;
mod common;
mod error;
pub mod events;
pub mod routing;
pub mod secret;
pub mod signature;
pub mod silent;
mod sipgate;
mod smtp;
#[cfg(test)]
mod testing;
pub mod twilio;
mod vonage;
pub mod vonage_status;
mod webhook;
mod whatsapp_cloud;

use phonegate_core::Channel;
use phonegate_core::ports::{MessageSender, Observer};
use routing::{Provider, RoutedSender, RoutingSettings};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use error::BuildError;
pub use secret::Secret;
pub use signature::VonageSigMethod;
pub use sipgate::SipgateSettings;
pub use smtp::{SmtpSettings, SmtpTls};
pub use twilio::TwilioSettings;
pub use vonage::VonageSettings;
pub use webhook::WebhookSettings;
pub use whatsapp_cloud::WhatsappCloudSettings;

/// One configured provider (a table under `[providers.NAME]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct ProviderSettings {
    #[serde(flatten)]
    pub kind: ProviderKind,
    /// Per-attempt timeout (`timeout = "5s"`, the default).
    #[serde(default = "default_timeout", with = "phonegate_core::duration")]
    pub timeout: Duration,
    /// Extra attempts for failures that surely sent nothing (default 1).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The channels this entry serves (`["sms", "voice"]`); default: every channel its kind can
    /// deliver.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_retries() -> u32 {
    1
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderKind {
    /// The dev outbox: sends nothing; the messages it takes are read back locally. Its name must
    /// be `outbox`.
    Outbox,
    Twilio(TwilioSettings),
    Vonage(VonageSettings),
    Sipgate(SipgateSettings),
    /// The generic HTTP provider.
    Http(WebhookSettings),
    /// Meta's WhatsApp Cloud API (WhatsApp only).
    WhatsappCloud(WhatsappCloudSettings),
    /// E-mail by SMTP.
    Smtp(SmtpSettings),
}

/// Credentials that verify webhooks from Twilio.
#[derive(Clone, Debug)]
pub struct TwilioAccount {
    pub account_sid: String,
    pub auth_token: Secret,
}

/// Credentials that verify webhooks from Vonage.
#[derive(Clone, Debug)]
pub struct VonageAccount {
    pub api_key: String,
    pub signature_secret: Option<Secret>,
    pub signature_method: VonageSigMethod,
}

/// Credentials that verify webhooks from Meta's WhatsApp Cloud API.
#[derive(Clone, Debug)]
pub struct WhatsappCloudAccount {
    pub app_secret: Option<Secret>,
    pub verify_token: Option<Secret>,
}

/// Everything built from the provider configuration.
pub struct Providers {
    pub sender: Arc<RoutedSender>,
    pub twilio: Vec<TwilioAccount>,
    pub vonage: Vec<VonageAccount>,
    pub whatsapp_cloud: Vec<WhatsappCloudAccount>,
    pub has_outbox: bool,
}

pub struct BuildContext {
    /// Public base URL of this server, for status callbacks (`https://verify.example.com`).
    pub public_url: Option<String>,
    pub observer: Arc<dyn Observer>,
}

/// The channels an entry serves: its `channels` (each one its kind can do), else all its kind can.
fn served(name: &str, can: &[Channel], asked: Option<&[String]>) -> Result<Vec<Channel>, BuildError> {
    let Some(asked) = asked else { return Ok(can.to_vec()) };
    asked
        .iter()
        .map(|c| {
            Channel::parse(c).filter(|c| can.contains(c)).ok_or_else(|| BuildError::ChannelNotSupported {
                name: name.into(),
                channel: c.clone(),
                serves: can.iter().map(Channel::as_str).collect::<Vec<_>>().join(", "),
            })
        })
        .collect()
}

/// Builds the providers and the router. With no providers configured, the dev outbox is the
/// only one.
pub fn build(settings: &BTreeMap<String, ProviderSettings>, routing: &RoutingSettings, ctx: BuildContext) -> Result<Providers, BuildError> {
    let mut settings = settings.clone();
    let mut routing = routing.clone();
    if settings.is_empty() {
        settings.insert(
            phonegate_core::outbox::PROVIDER.into(),
            ProviderSettings { kind: ProviderKind::Outbox, timeout: default_timeout(), retries: default_retries(), channels: None },
        );
    }

    let (mut providers, mut twilio, mut vonage, mut has_outbox) = (Vec::new(), Vec::new(), Vec::new(), false);
    let mut whatsapp_cloud = Vec::new();
    for (name, s) in &settings {
        let timeout = s.timeout.max(Duration::from_millis(1));
        let client = common::client(timeout).map_err(|source| BuildError::HttpClient { provider: name.clone(), source })?;
        let sender: Arc<dyn MessageSender> = match &s.kind {
            ProviderKind::Outbox if name != phonegate_core::outbox::PROVIDER => return Err(BuildError::OutboxName { name: name.clone() }),
            ProviderKind::Outbox => {
                has_outbox = true;
                Arc::new(phonegate_core::outbox::OutboxSender)
            }
            ProviderKind::Twilio(t) => {
                twilio.push(TwilioAccount { account_sid: t.account_sid.clone(), auth_token: t.auth_token.clone() });
                Arc::new(twilio::Twilio::new(name.clone(), t.clone(), client, ctx.public_url.clone()))
            }
            ProviderKind::Vonage(v) => {
                vonage.push(VonageAccount {
                    api_key: v.api_key.clone(),
                    signature_secret: v.signature_secret.clone(),
                    signature_method: v.signature_method.unwrap_or(VonageSigMethod::Md5hash),
                });
                Arc::new(vonage::Vonage::new(name, v.clone(), client, ctx.public_url.clone())?)
            }
            ProviderKind::Sipgate(sg) => Arc::new(sipgate::Sipgate { name: name.clone(), settings: sg.clone(), client }),
            ProviderKind::Http(w) => Arc::new(webhook::Webhook { name: name.clone(), settings: w.clone(), client }),
            ProviderKind::WhatsappCloud(w) => {
                whatsapp_cloud.push(WhatsappCloudAccount { app_secret: w.app_secret.clone(), verify_token: w.verify_token.clone() });
                Arc::new(whatsapp_cloud::WhatsappCloud { name: name.clone(), settings: w.clone(), client })
            }
            ProviderKind::Smtp(m) => {
                Arc::new(smtp::Smtp::new(name, m.clone(), timeout).map_err(|reason| BuildError::Smtp { name: name.clone(), reason })?)
            }
        };
        let channels = served(name, sender.channels(), s.channels.as_deref())?;
        providers.push(Provider { name: name.clone(), sender, timeout, retries: s.retries, channels });
    }
    // With one provider that sends SMS and no routing, that one sends them.
    let texting: Vec<&Provider> = providers.iter().filter(|p| p.channels.contains(&Channel::Sms)).collect();
    if routing.default.providers.is_empty() && texting.len() == 1 {
        routing.default.providers = vec![texting[0].name.clone()];
    }
    let sender = Arc::new(RoutedSender::new(providers, routing, ctx.observer)?);
    Ok(Providers { sender, twilio, vonage, whatsapp_cloud, has_outbox })
}
