//! Twilio Verify's channels on phonegate's: their names (`call` is phonegate's `voice`), what a
//! start says about them (`SendDigits`, the e-mail `ChannelConfiguration`), what a service says
//! about them (`DtmfInputRequired`, `TtsName`, `Whatsapp.From`), and Twilio's error codes for a
//! channel that cannot be used.
use super::{Params, TwilioError};
use axum::http::StatusCode;
use phonegate_core::error::Field;
use phonegate_core::phone::NumberKind;
use phonegate_core::service::{ChannelSettings, Service};
use phonegate_core::{Channel, EmailAddress, PhoneError, VerifyError};

/// Twilio's channel names: `sms`, `call`, `whatsapp`, `email`, and `sna` (Silent Network Auth:
/// phonegate's silent channel).
pub(super) fn parse(name: &str) -> Result<Channel, TwilioError> {
    Ok(match name {
        "sms" => Channel::Sms,
        "call" => Channel::Voice,
        "whatsapp" => Channel::Whatsapp,
        "email" => Channel::Email,
        "sna" => Channel::Silent,
        other => {
            return Err(TwilioError::invalid(format!(
                "Invalid parameter `Channel`: {other} is not supported; use sms, call, whatsapp, email or sna"
            )));
        }
    })
}

/// Twilio's name for a channel.
pub(super) fn name(c: Channel) -> &'static str {
    match c {
        Channel::Voice => "call",
        Channel::Silent => "sna",
        other => other.as_str(),
    }
}

/// A start by `channel` when no provider serves it: Twilio's "configure it first" errors (an
/// e-mail integration, 60217; a delivery channel enabled, 60223).
pub(super) fn unserved(channel: Channel) -> TwilioError {
    match channel {
        Channel::Email => TwilioError::new(
            StatusCode::BAD_REQUEST,
            60217,
            "Invalid Service configuration: add an e-mail provider before using the email channel",
        ),
        other => TwilioError::new(
            StatusCode::BAD_REQUEST,
            60223,
            format!("Delivery channel disabled: no provider is configured for the {} channel", name(other)),
        ),
    }
}

/// A start's refusal in Twilio's words for its channel: a landline by SMS or WhatsApp (60205), a
/// number calls may not go to (premium, shared-cost…: 60605, as Twilio's blocked destinations),
/// an address that is not one for the email channel (60436).
pub(super) fn refusal(e: VerifyError, channel: Channel) -> TwilioError {
    match (&e, channel) {
        (VerifyError::Phone(PhoneError::KindNotAllowed(NumberKind::FixedLine)), Channel::Sms | Channel::Whatsapp) => {
            let what = if channel == Channel::Sms { "SMS" } else { "WhatsApp" };
            TwilioError::new(StatusCode::FORBIDDEN, 60205, format!("{what} is not supported by landline phone number"))
        }
        (VerifyError::Phone(PhoneError::KindNotAllowed(_)), Channel::Voice) => {
            TwilioError::new(StatusCode::FORBIDDEN, 60605, "Verification delivery attempt blocked")
        }
        (VerifyError::InvalidParameter { field: Field::To, .. }, Channel::Email) => {
            TwilioError::new(StatusCode::BAD_REQUEST, 60436, "Recipient invalid or not provided: `To` must be an e-mail address")
        }
        _ => e.into(),
    }
}

/// The Twilio parameter a core field came from, where the names differ.
pub(super) fn param(field: Field) -> &'static str {
    match field {
        Field::VoiceName => "TtsName",
        Field::WhatsappFrom => "Whatsapp.From",
        Field::SendDigits => "SendDigits",
        Field::EmailFrom => "ChannelConfiguration",
        Field::To => "To",
        other => other.as_str(),
    }
}

/// A mailbox `Name <address>`, the name quoted unless it is plain words.
fn mailbox(name: &str, address: &str) -> String {
    let plain = name.chars().all(|c| c.is_alphanumeric() || " !#$%&'*+-/=?^_`{|}~.".contains(c));
    match plain {
        true => format!("{name} <{address}>"),
        false => format!("\"{}\" <{address}>", name.replace('\\', "\\\\").replace('"', "\\\"")),
    }
}

/// What a start says about its channel: the keys a call dials once answered (`SendDigits`) and,
/// for e-mail, the sender of `ChannelConfiguration` (`from`, `from_name`; a name alone goes with
/// the service's address). `substitutions` and `template_id` name SendGrid dynamic templates,
/// which phonegate does not have: its e-mails are its own per-locale text and HTML, so they are
/// accepted and not used.
pub(super) fn start_options(p: &Params, channel: Channel, service: &Service) -> Result<(Option<String>, Option<String>), TwilioError> {
    let send_digits = p.get("SendDigits").filter(|_| channel == Channel::Voice).map(str::to_string);
    let Some(config) = p.get("ChannelConfiguration").filter(|_| channel == Channel::Email) else { return Ok((None, send_digits)) };
    let bad = |why: &str| TwilioError::invalid(format!("Invalid parameter `ChannelConfiguration`: {why}"));
    let config: serde_json::Value = serde_json::from_str(config).map_err(|_| bad("must be a JSON object"))?;
    let config = config.as_object().ok_or_else(|| bad("must be a JSON object"))?;
    let text = |key: &str| match config.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(bad(&format!("{key} must be a string"))),
    };
    let (from, from_name) = (text("from")?, text("from_name")?);
    if let Some(from) = &from {
        EmailAddress::parse(from).map_err(|_| bad("from must be a valid e-mail address"))?;
    }
    if from_name.as_deref().is_some_and(|n| n.chars().count() > 100 || n.chars().any(char::is_control)) {
        return Err(bad("from_name must be at most 100 characters on one line"));
    }
    let service_address = || {
        let own = service.channels.email_from.as_deref()?;
        Some(own.rsplit_once('<').map_or(own, |(_, a)| a.trim_end_matches('>')).trim().to_string())
    };
    let email_from = match (from, from_name) {
        (Some(from), Some(name)) => Some(mailbox(&name, &from)),
        (Some(from), None) => Some(from),
        (None, Some(name)) => service_address().map(|a| mailbox(&name, &a)),
        (None, None) => None,
    };
    Ok((email_from, send_digits))
}

/// A service's channel settings from Twilio's fields: `DtmfInputRequired` (a call waits for a
/// key), `TtsName` (what a call says for the service's name) and `Whatsapp.From` (its WhatsApp
/// sender). `Whatsapp.MsgServiceSid` (a Twilio Messaging Service holding the sender) is checked
/// and not used: the sender is `Whatsapp.From`, else the WhatsApp routing's or the provider's.
pub(super) fn service_settings(p: &Params, key_press: bool) -> Result<ChannelSettings, TwilioError> {
    if let Some(sid) = p.get("Whatsapp.MsgServiceSid")
        && !(sid.len() == 34 && sid.starts_with("MG") && sid[2..].chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(TwilioError::invalid("Invalid parameter `Whatsapp.MsgServiceSid`: must be a Messaging Service SID (MG…)"));
    }
    Ok(ChannelSettings {
        voice_key_press: key_press,
        voice_name: p.get("TtsName").map(str::to_string),
        whatsapp_from: p.get("Whatsapp.From").map(str::to_string),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_mailboxes_are_quoted_unless_plain() {
        assert_eq!(mailbox("Shop Team", "a@b.example"), "Shop Team <a@b.example>");
        assert_eq!(mailbox("Shop (the \"Best\")", "a@b.example"), "\"Shop (the \\\"Best\\\")\" <a@b.example>");
    }

    #[test]
    fn channel_refusals_have_twilios_codes() {
        let landline = || VerifyError::Phone(PhoneError::KindNotAllowed(NumberKind::FixedLine));
        assert_eq!(refusal(landline(), Channel::Sms).code, 60205);
        assert_eq!(refusal(landline(), Channel::Whatsapp).code, 60205);
        assert_eq!(refusal(VerifyError::Phone(PhoneError::KindNotAllowed(NumberKind::PremiumRate)), Channel::Voice).code, 60605);
        assert_eq!(refusal(VerifyError::invalid(Field::To, "x"), Channel::Email).code, 60436);
        assert_eq!(refusal(VerifyError::invalid(Field::To, "x"), Channel::Sms).code, 60200);
        assert_eq!((unserved(Channel::Email).code, unserved(Channel::Whatsapp).code), (60217, 60223));
    }
}
