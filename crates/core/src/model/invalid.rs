//! A value that breaks its rule: which field, and why. The model's one error; the core reports it
//! as `VerifyError::InvalidParameter`.

/// A field's value breaks its rule (`message` says which, in words a client can act on).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: Field,
    pub message: String,
}

impl Invalid {
    pub fn new(field: Field, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// The parameter a validation error names; serialized to the name clients send it under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Accounts,
    Amount,
    AppHash,
    Brand,
    Channel,
    ClientIp,
    Code,
    CodeLength,
    CodeTtlSecs,
    Country,
    CurrentPassword,
    CustomCode,
    Email,
    EmailFrom,
    Identifier,
    Ip,
    Locale,
    Login,
    MaxAttempts,
    Name,
    NewPassword,
    OidcClient,
    Password,
    Payee,
    Phone,
    PublicKey,
    SendDigits,
    Service,
    Session,
    Silent,
    Secret,
    Sim,
    Templates,
    TimeoutSecs,
    To,
    Ttl,
    Url,
    Username,
    VoiceName,
    WhatsappFrom,
    Workflow,
}

impl Field {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Accounts => "accounts",
            Self::Amount => "amount",
            Self::AppHash => "app_hash",
            Self::Brand => "brand",
            Self::Channel => "channel",
            Self::ClientIp => "client_ip",
            Self::Code => "code",
            Self::CodeLength => "code_length",
            Self::CodeTtlSecs => "code_ttl_secs",
            Self::Country => "country",
            Self::CurrentPassword => "current_password",
            Self::CustomCode => "custom_code",
            Self::Email => "email",
            Self::EmailFrom => "email_from",
            Self::Identifier => "identifier",
            Self::Ip => "ip",
            Self::Locale => "locale",
            Self::Login => "login",
            Self::MaxAttempts => "max_attempts",
            Self::Name => "name",
            Self::NewPassword => "new_password",
            Self::OidcClient => "oidc_client",
            Self::Password => "password",
            Self::Payee => "payee",
            Self::Phone => "phone",
            Self::PublicKey => "public_key",
            Self::SendDigits => "send_digits",
            Self::Service => "service",
            Self::Session => "session",
            Self::Silent => "silent",
            Self::Secret => "secret",
            Self::Sim => "sim",
            Self::Templates => "templates",
            Self::TimeoutSecs => "timeout_secs",
            Self::To => "to",
            Self::Ttl => "ttl",
            Self::Url => "url",
            Self::Username => "username",
            Self::VoiceName => "voice_name",
            Self::WhatsappFrom => "whatsapp_from",
            Self::Workflow => "workflow",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
