//! E-mail by SMTP (lettre over rustls): one connection per message, STARTTLS (the default),
//! implicit TLS or none, AUTH PLAIN/LOGIN when a username is set. The message is
//! multipart/alternative: the text part is the message's text, the HTML part the core's
//! (`model::email`: no images, links or remote content); `Message-ID` is `<SM…@sender's domain>`,
//! our message id, and is what the provider answers as its id.
//!
//! Failures by stage: a recipient the server refuses for good (5xx to `RCPT TO`) is `Rejected`;
//! anything else is `Unavailable`, safe to retry only when the server surely took nothing (it
//! answered with a refusal before the end of the message's data). Server replies are not
//! repeated in errors: only their code and the stage.
use crate::secret::Secret;
use async_trait::async_trait;
use lettre::Address;
use lettre::address::Envelope;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use phonegate_core::Channel;
use phonegate_core::ports::{Accepted, MessageSender, Outgoing, SendError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the connection is secured.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded by `STARTTLS`, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No encryption (a relay on the same machine or network only; port 25).
    None,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    /// Default: 587 (`starttls`), 465 (`implicit`), 25 (`none`).
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    /// PEM certificates of a private CA the server's certificate may chain to, besides the
    /// system's trusted roots (the configuration's `ca_file` is read into it).
    pub ca: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The default sender, `Name <address>` or `address`; a service's `email_from` replaces it.
    pub from: String,
}

impl SmtpSettings {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        })
    }
}

pub struct Smtp {
    name: String,
    settings: SmtpSettings,
    from: Mailbox,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    timeout: Duration,
    hello: ClientId,
}

impl Smtp {
    /// Checks the settings (sender, credentials, CA) once, at start-up.
    pub fn new(name: &str, settings: SmtpSettings, timeout: Duration) -> Result<Self, String> {
        let from: Mailbox =
            settings.from.parse().map_err(|_| format!("`from` is not a mailbox (`Name <name@example.com>`): {}", settings.from))?;
        let credentials = match (&settings.username, &settings.password) {
            (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.expose().to_string())),
            (None, None) => None,
            _ => return Err("`username` and `password` (or `password_file`) go together".into()),
        };
        let tls = match settings.tls {
            SmtpTls::None => None,
            _ => {
                let mut params = TlsParameters::builder(settings.host.clone());
                if let Some(pem) = &settings.ca {
                    if !pem.contains("-----BEGIN CERTIFICATE-----") {
                        return Err("`ca_file` holds no PEM certificate".into());
                    }
                    let cert = Certificate::from_pem(pem.as_bytes()).map_err(|_| "`ca_file` holds no PEM certificate".to_string())?;
                    params = params.add_root_certificate(cert);
                }
                Some(params.build_rustls().map_err(|e| format!("cannot set up TLS: {e}"))?)
            }
        };
        Ok(Self { name: name.into(), settings, from, tls, credentials, timeout, hello: ClientId::default() })
    }

    /// The message and its envelope: the service's sender else ours, its `Reply-To`, our id as
    /// the `Message-ID`.
    fn message(&self, m: &Outgoing) -> Result<(Message, String), SendError> {
        let parts = m.email.as_ref().ok_or_else(|| SendError::Rejected(format!("{}: not an e-mail", self.name)))?;
        let address: Address =
            m.to.as_str()
                .parse()
                .map_err(|_| SendError::Rejected(format!("{}: the recipient is not an address lettre takes", self.name)))?;
        // A service's sender was checked when it was saved; one that does not parse is ignored.
        let from = parts.from.as_deref().and_then(|f| f.parse::<Mailbox>().ok()).unwrap_or_else(|| self.from.clone());
        let message_id = format!("<{}@{}>", m.message_id, from.email.domain());
        let mut builder = Message::builder()
            .from(from)
            .to(Mailbox::new(None, address))
            .subject(parts.subject.clone())
            .message_id(Some(message_id.clone()))
            .date_now()
            // RFC 3834: sent by a program, so out-of-office replies stay away.
            .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("Auto-Submitted"), "auto-generated".into()));
        if let Some(reply_to) = parts.reply_to.as_deref().and_then(|r| r.parse::<Mailbox>().ok()) {
            builder = builder.reply_to(reply_to);
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(m.body.clone(), parts.html.clone()))
            .map_err(|e| SendError::Rejected(format!("{}: cannot build the message: {e}", self.name)))?;
        Ok((message, message_id))
    }

    /// One SMTP session: connect (TLS), authenticate, `MAIL`, `RCPT`, `DATA`, the message, `QUIT`.
    async fn deliver(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        let s = &self.settings;
        let implicit = (s.tls == SmtpTls::Implicit).then(|| self.tls.clone()).flatten();
        let mut conn = AsyncSmtpConnection::connect_tokio1((s.host.as_str(), s.port()), Some(self.timeout), &self.hello, implicit, None)
            .await
            .map_err(|e| self.failed(Stage::Connect, &e))?;
        if s.tls == SmtpTls::Starttls {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(SendError::retryable(format!("{}: the server offers no STARTTLS", self.name)));
            }
            let params = self.tls.clone().ok_or_else(|| SendError::unavailable(format!("{}: no TLS parameters", self.name)))?;
            conn.starttls(params, &self.hello).await.map_err(|e| self.failed(Stage::Connect, &e))?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await.map_err(|e| self.failed(Stage::Auth, &e))?;
        }
        let mut options = Vec::new();
        let non_ascii = envelope.from().into_iter().chain(envelope.to()).any(|a| !AsRef::<str>::as_ref(a).is_ascii());
        if non_ascii && conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            options.push(MailParameter::SmtpUtfEight);
        }
        if !raw.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let steps = async {
            conn.command(Mail::new(envelope.from().cloned(), options)).await.map_err(|e| (Stage::Mail, e))?;
            for to in envelope.to() {
                conn.command(Rcpt::new(to.clone(), vec![])).await.map_err(|e| (Stage::Rcpt, e))?;
            }
            conn.command(Data).await.map_err(|e| (Stage::Data, e))?;
            conn.message(raw).await.map_err(|e| (Stage::Message, e))
        };
        let sent = steps.await;
        if let Err((stage, e)) = sent {
            conn.abort().await;
            return Err(self.failed(stage, &e));
        }
        // The message is taken; a failed goodbye changes nothing.
        let _ = conn.quit().await;
        Ok(())
    }

    /// What a failure at `stage` means for routing. Of a server's reply only its code is kept
    /// (a reply may echo what it refused); a failure without one (network, TLS) says its cause.
    fn failed(&self, stage: Stage, e: &lettre::transport::smtp::Error) -> SendError {
        let what = match e.status() {
            Some(code) => format!("SMTP {code}"),
            None if e.is_response() => "an unreadable reply".into(),
            None => e.to_string(),
        };
        let reason = format!("{}: {what} at {}", self.name, stage.as_str());
        match stage {
            Stage::Rcpt if e.is_permanent() => SendError::Rejected(reason),
            // Up to the end of the data the server has taken nothing: asking again sends one
            // message at most. Once the data is sent, a lost reply may hide an accepted message.
            Stage::Message if e.status().is_none() => SendError::unavailable(reason),
            // A server that refused the message for good refuses it again: fail over instead.
            _ if e.is_permanent() => SendError::unavailable(reason),
            _ => SendError::retryable(reason),
        }
    }
}

#[derive(Clone, Copy)]
enum Stage {
    Connect,
    Auth,
    Mail,
    Rcpt,
    Data,
    Message,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Auth => "AUTH",
            Self::Mail => "MAIL FROM",
            Self::Rcpt => "RCPT TO",
            Self::Data => "DATA",
            Self::Message => "end of data",
        }
    }
}

#[async_trait]
impl MessageSender for Smtp {
    async fn send(&self, m: &Outgoing) -> Result<Accepted, SendError> {
        let (message, message_id) = self.message(m)?;
        let raw = message.formatted();
        self.deliver(message.envelope(), &raw).await?;
        Ok(Accepted { provider: self.name.clone(), provider_message_id: Some(message_id) })
    }

    fn channels(&self) -> &[Channel] {
        &[Channel::Email]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonegate_core::Recipient;
    use phonegate_core::model::email::EmailParts;

    fn settings() -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port: None,
            tls: SmtpTls::Starttls,
            ca: None,
            username: Some("u".into()),
            password: Some(Secret::new("p")),
            from: "Shop <no-reply@shop.example>".into(),
        }
    }

    fn mail(from: Option<&str>, reply_to: Option<&str>) -> Outgoing {
        let to = Recipient::Email(phonegate_core::model::recipient::EmailAddress::parse("ann@example.com").unwrap());
        let mut m = Outgoing::text("SMabc".into(), to, "Your code: 123456".into());
        m.channel = Channel::Email;
        m.email = Some(EmailParts {
            subject: "Shop: your verification code".into(),
            html: "<p>123456</p>".into(),
            from: from.map(str::to_string),
            reply_to: reply_to.map(str::to_string),
        });
        m
    }

    #[test]
    fn settings_are_checked_at_start_up() {
        assert_eq!(settings().port(), 587);
        assert_eq!(SmtpSettings { tls: SmtpTls::Implicit, ..settings() }.port(), 465);
        assert!(Smtp::new("m", settings(), Duration::from_secs(1)).is_ok());
        assert!(Smtp::new("m", SmtpSettings { from: "not a mailbox".into(), ..settings() }, Duration::from_secs(1)).is_err());
        assert!(Smtp::new("m", SmtpSettings { password: None, ..settings() }, Duration::from_secs(1)).is_err());
        assert!(Smtp::new("m", SmtpSettings { ca: Some("nonsense".into()), ..settings() }, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn the_sender_is_the_services_else_ours_and_the_id_names_our_message() {
        let smtp = Smtp::new("m", settings(), Duration::from_secs(1)).unwrap();
        let (message, id) = smtp.message(&mail(None, None)).unwrap();
        assert_eq!(id, "<SMabc@shop.example>");
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(raw.contains("From: Shop <no-reply@shop.example>\r\n"), "{raw}");
        assert!(!raw.contains("Reply-To"), "{raw}");
        let (message, id) = smtp.message(&mail(Some("Bank <codes@bank.example>"), Some("help@bank.example"))).unwrap();
        assert_eq!(id, "<SMabc@bank.example>");
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(raw.contains("From: Bank <codes@bank.example>\r\n") && raw.contains("Reply-To: help@bank.example\r\n"), "{raw}");
        assert_eq!(message.envelope().from().unwrap().to_string(), "codes@bank.example");
    }
}
