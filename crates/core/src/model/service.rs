//! Services (tenants): each has its own code length, code lifetime and message templates.
use crate::code;
use crate::model::ids::new_id;
use crate::model::invalid::{Field, Invalid};
use crate::model::workflow::Workflow;
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

pub const DEFAULT_SERVICE: &str = "phonegate";
pub const DEFAULT_TTL_SECS: i64 = 600;
pub const MIN_TTL_SECS: i64 = 60;
pub const MAX_TTL_SECS: i64 = 24 * 3600;
/// Two concatenated GSM-7 segments; longer texts cost more segments per code sent.
pub const MAX_TEMPLATE_LEN: usize = 320;

/// Characters no name, brand or template may hold: control characters (NUL, BEL…; a template's
/// line breaks excepted) and the invisible bidirectional controls that can make a message read
/// other than it is (U+200E/F, U+202A–U+202E, U+2066–U+2069).
pub fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n') || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub code_length: u8,
    pub code_ttl_secs: i64,
    /// Locale → template overrides.
    pub templates: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    /// Starts may bring their own code (still stored only as a digest, still bound by every
    /// attempt and send budget).
    pub custom_codes: bool,
    /// Starts may be PSD2 payment codes.
    pub psd2: bool,
    /// The channels settings (default workflow, e-mail sender, calls).
    pub channels: ChannelSettings,
    /// The name it is shown as (`{service}`, Twilio's `friendly_name`) where its unique `name`
    /// could not be that: a Twilio service given a FriendlyName another service has.
    pub friendly_name: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A service's channel settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelSettings {
    /// The steps a verification takes when the request names no channel (`auto` keeps those
    /// that fit the number). Default: one SMS.
    pub workflow: Workflow,
    /// `From` of its e-mails (`Name <address>` or an address), else the provider's.
    pub email_from: Option<String>,
    pub email_reply_to: Option<String>,
    /// A call waits for a key press before it speaks the code (answering machines hear nothing).
    pub voice_key_press: bool,
    /// The name a call says instead of the service's, for a name that reads badly aloud
    /// (Twilio `TtsName`); a verification's own brand still wins.
    pub voice_name: Option<String>,
    /// The WhatsApp sender of its messages (`+15005550006`), overriding routing's and the
    /// provider's.
    pub whatsapp_from: Option<String>,
}

/// Whether `v` is one mailbox (`Name <a@b.c>` or `a@b.c`): no list (`,` `;`), no second `<`, no
/// line break.
pub fn is_mailbox(v: &str) -> bool {
    let (name, address) = match v.trim().strip_suffix('>').and_then(|s| s.rsplit_once('<')) {
        Some((name, address)) => (name, address),
        None => ("", v.trim()),
    };
    !name.contains([',', ';', '<', '>', '@'])
        && !v.chars().any(|c| c.is_control())
        && v.chars().count() <= 200
        && crate::model::recipient::EmailAddress::parse(address).is_ok()
}

/// Whether `name` may be said or shown for a service: 1 to 64 printable characters on one line.
pub fn is_display_name(name: &str) -> bool {
    !name.trim().is_empty() && name.chars().count() <= 64 && !name.chars().any(is_unsafe) && !name.contains('\n')
}

impl ChannelSettings {
    /// Checks the e-mail headers a service sets (mailboxes), its spoken name and its WhatsApp
    /// sender (a number, kept in E.164).
    pub fn validate(&mut self) -> Result<(), Invalid> {
        if [&self.email_from, &self.email_reply_to].into_iter().flatten().any(|v| !is_mailbox(v)) {
            return Err(Invalid::new(Field::Email, "email_from and email_reply_to must be an address like Shop <codes@example.com>"));
        }
        if self.voice_name.as_deref().is_some_and(|n| !is_display_name(n)) {
            return Err(Invalid::new(Field::VoiceName, "must be 1 to 64 printable characters"));
        }
        if let Some(from) = &self.whatsapp_from {
            let number = from.trim().strip_prefix("whatsapp:").unwrap_or(from.trim());
            let bad = || Invalid::new(Field::WhatsappFrom, "must be a phone number in E.164 format, like +15005550006");
            if !number.starts_with('+') {
                return Err(bad());
            }
            let parsed = crate::model::phone::PhoneNumber::parse_e164_lenient(number).map_err(|_| bad())?;
            self.whatsapp_from = Some(parsed.as_str().to_string());
        }
        Ok(())
    }
}

/// What a caller may set when creating a service; unset fields take the defaults.
#[derive(Clone, Debug, Default)]
pub struct ServiceSettings {
    pub name: String,
    pub code_length: Option<u8>,
    pub code_ttl_secs: Option<i64>,
    pub templates: BTreeMap<String, String>,
    /// Whether a start may bring its own code (Twilio `CustomCode`, Vonage `pin_code`).
    pub custom_codes: bool,
    /// Whether starts may be payment codes naming an amount and a payee (PSD2).
    pub psd2: bool,
    pub channels: ChannelSettings,
}

impl ServiceSettings {
    pub fn into_service(self, now: DateTime<Utc>) -> Result<Service, Invalid> {
        let name = self.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(is_unsafe) || name.contains('\n') {
            return Err(Invalid::new(Field::Name, "must be 1 to 64 printable characters"));
        }
        let code_length = self.code_length.unwrap_or(code::DEFAULT_LENGTH);
        if !(code::MIN_LENGTH..=code::MAX_LENGTH).contains(&code_length) {
            return Err(Invalid::new(Field::CodeLength, "must be between 4 and 10"));
        }
        let code_ttl_secs = self.code_ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
        if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&code_ttl_secs) {
            return Err(Invalid::new(Field::CodeTtlSecs, "must be between 60 (1 minute) and 86400 (24 hours)"));
        }
        let mut templates = BTreeMap::new();
        for (locale, template) in self.templates {
            let locale = normalize_locale(&locale)?;
            if !template.contains("{code}") || template.chars().count() > MAX_TEMPLATE_LEN || template.chars().any(is_unsafe) {
                return Err(Invalid::new(
                    Field::Templates,
                    format!(
                        "each template must contain {{code}}, be at most {MAX_TEMPLATE_LEN} characters and hold no control or bidirectional-override characters"
                    ),
                ));
            }
            templates.insert(locale, template);
        }
        Ok(Service {
            id: new_id("VA"),
            name,
            code_length,
            code_ttl_secs,
            templates,
            created_at: now,
            custom_codes: self.custom_codes,
            psd2: self.psd2,
            channels: {
                let mut channels = self.channels;
                channels.validate()?;
                channels
            },
            friendly_name: None,
            updated_at: now,
        })
    }
}

/// A request's language tag as the locale its text is kept under (see `locales::normalize`).
pub fn normalize_locale(tag: &str) -> Result<String, Invalid> {
    crate::model::locales::normalize(tag)
}

impl Service {
    pub fn code_ttl(&self) -> Duration {
        Duration::seconds(self.code_ttl_secs)
    }

    /// The template for `locale`: the service's own, else the built-in one, else English.
    pub fn template(&self, locale: &str) -> &str {
        let builtin = crate::model::locales::builtin;
        self.templates
            .get(locale)
            .map(String::as_str)
            .or_else(|| builtin(locale))
            .or_else(|| self.templates.get("en").map(String::as_str))
            .or_else(|| builtin("en"))
            .unwrap_or("Your {service} verification code is: {code}")
    }

    /// The name `{service}` renders to: the friendly name, else the name.
    pub fn shown_name(&self) -> &str {
        self.friendly_name.as_deref().unwrap_or(&self.name)
    }

    pub fn render(&self, locale: &str, code: &str) -> String {
        self.render_as(self.shown_name(), locale, code)
    }

    /// Renders with another name in `{service}` (a per-verification brand).
    pub fn render_as(&self, name: &str, locale: &str, code: &str) -> String {
        self.template(locale).replace("{service}", name).replace("{code}", code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(templates: &[(&str, &str)]) -> Service {
        ServiceSettings {
            name: "Acme".into(),
            templates: templates.iter().map(|(l, t)| (l.to_string(), t.to_string())).collect(),
            ..Default::default()
        }
        .into_service(Utc::now())
        .unwrap()
    }

    #[test]
    fn templates_with_control_or_bidi_characters_or_too_long_are_refused() {
        let settings = |t: String| ServiceSettings { name: "Shop".into(), templates: [("en".to_string(), t)].into(), ..Default::default() };
        for bad in [
            "Code {code}\u{0}".to_string(),
            "Code {code}\u{7}".into(),
            "Code \u{202E}{code}".into(),
            format!("{{code}}{}", "x".repeat(400)),
        ] {
            assert!(settings(bad.clone()).into_service(chrono::Utc::now()).is_err(), "{bad:?}");
        }
        assert!(settings("Your code:\n{code}".into()).into_service(chrono::Utc::now()).is_ok());
        let named = |n: &str| ServiceSettings { name: n.into(), ..Default::default() }.into_service(chrono::Utc::now());
        assert!(named("Shop\u{2066}").is_err() && named("Sh\nop").is_err() && named("Shop").is_ok());
    }

    #[test]
    fn renders_builtin_templates_per_locale_with_fallback_to_english() {
        let s = service(&[]);
        assert_eq!(s.render("en", "123456"), "Your Acme verification code is: 123456");
        assert_eq!(s.render("de", "123456"), "Ihr Acme Bestätigungscode lautet: 123456");
        assert!(s.render("fr", "1").starts_with("Votre code"));
        assert!(s.render("es", "1").starts_with("Tu código"));
        assert_eq!(s.render("ja", "42"), "Acmeの認証コードは 42 です。");
        assert_eq!(s.render("xx", "42"), "Your Acme verification code is: 42");
    }

    #[test]
    fn service_templates_override_builtin_ones() {
        let s = service(&[("en", "{code} is your {service} code"), ("de-DE", "Code: {code}")]);
        assert_eq!(s.render("en", "99"), "99 is your Acme code");
        assert_eq!(s.render("de", "99"), "Code: 99");
        assert_eq!(s.render("it", "99"), "Il tuo codice di verifica Acme è: 99");
        assert_eq!(s.render("xx", "99"), "99 is your Acme code");
    }

    #[test]
    fn settings_are_validated() {
        let bad = |f: fn(&mut ServiceSettings)| {
            let mut s = ServiceSettings { name: "x".into(), ..Default::default() };
            f(&mut s);
            s.into_service(Utc::now()).unwrap_err()
        };
        assert!(matches!(bad(|s| s.code_length = Some(3)), Invalid { field: Field::CodeLength, .. }));
        assert!(matches!(bad(|s| s.code_length = Some(11)), Invalid { field: Field::CodeLength, .. }));
        assert!(matches!(bad(|s| s.code_ttl_secs = Some(59)), Invalid { field: Field::CodeTtlSecs, .. }));
        assert!(matches!(bad(|s| s.code_ttl_secs = Some(86401)), Invalid { .. }));
        assert!(matches!(bad(|s| s.name = " ".into()), Invalid { field: Field::Name, .. }));
        assert!(matches!(
            bad(|s| {
                s.templates.insert("en".into(), "no placeholder".into());
            }),
            Invalid { field: Field::Templates, .. }
        ));
    }

    #[test]
    fn locales_are_normalized_or_refused() {
        assert_eq!(normalize_locale("fr-CA").unwrap(), "fr");
        assert_eq!(normalize_locale("DE").unwrap(), "de");
        assert!(normalize_locale("").is_err());
        assert!(normalize_locale("<script>").is_err());
    }
}
