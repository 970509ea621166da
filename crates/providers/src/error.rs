//! Why the providers could not be built from their configuration.

/// A provider or routing configuration that cannot work, found when the providers are built (at
/// start-up), never while sending.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A routing list (default, per service or per prefix) names a provider that has no
    /// `[providers.NAME]` table.
    #[error("routing names provider `{name}`, which is not configured")]
    UnknownProvider { name: String },
    /// A prefix route whose prefix is not an E.164 prefix.
    #[error("route prefixes are E.164 prefixes and start with `+` (not `{prefix}`)")]
    BadPrefix { prefix: String },
    /// The default routing lists no provider, so some messages would have nowhere to go.
    #[error("routing.providers must list at least one provider")]
    NoDefaultProvider,
    /// A channel's routing names a provider that does not serve that channel.
    #[error("routing.channels.{channel} names provider `{name}`, which does not serve {channel} (see its `channels`)")]
    ChannelNotServed { name: String, channel: &'static str },
    /// `routing.channels` has a table for something that is not a channel.
    #[error("routing.channels.{channel}: the channels are voice, whatsapp and email (SMS's routing is `[routing]` itself)")]
    UnknownChannel { channel: String },
    /// A provider entry's `channels` names a channel it cannot serve.
    #[error("provider `{name}` cannot serve the {channel} channel (it serves: {serves})")]
    ChannelNotSupported { name: String, channel: String, serves: String },
    /// The dev outbox is read back by its name, so it has exactly one.
    #[error("the dev outbox provider must be named `outbox` (not `{name}`)")]
    OutboxName { name: String },
    /// A provider's settings that cannot work together (a key that is no key, half of a pair).
    #[error("provider `{provider}`: {reason}")]
    Settings { provider: String, reason: String },
    /// An SMTP provider's settings cannot work (its sender, credentials or CA).
    #[error("provider `{name}`: {reason}")]
    Smtp { name: String, reason: String },
    /// The HTTP client of a provider could not be set up (no TLS backend).
    #[error("provider `{provider}`: cannot set up its HTTP client: {source}")]
    HttpClient { provider: String, source: reqwest::Error },
}
