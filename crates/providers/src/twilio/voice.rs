//! Calls: Twilio Programmable Voice, `POST …/Calls.json` with the call's TwiML inline (`Twiml`):
//! a `<Say>` of the text in its language. A call that waits for a key press first says a prompt
//! inside a `<Gather numDigits="1">`; only a key press makes Twilio ask this server (the
//! `action` URL, signed by Twilio) for the TwiML that says the code, so an answering machine
//! hears the prompt and never the code.
use super::{CALL_STATUS_PATH, Twilio};
use phonegate_core::ports::{Accepted, Outgoing, SendError};

/// Where Twilio asks for the code once the callee pressed a key.
pub const GATHER_PATH: &str = "/webhooks/twilio/call-gather";

/// How long the prompt waits for a key after it was said.
const GATHER_TIMEOUT_SECS: &str = "10";

/// phonegate's locales as Twilio's text-to-speech languages; a locale not listed is said without
/// a `language` (the account's default voice).
const LANGUAGES: [(&str, &str); 36] = [
    ("af", "af-ZA"),
    ("ar", "ar-XA"),
    ("ca", "ca-ES"),
    ("cs", "cs-CZ"),
    ("da", "da-DK"),
    ("de", "de-DE"),
    ("el", "el-GR"),
    ("en", "en-US"),
    ("en-GB", "en-GB"),
    ("es", "es-ES"),
    ("fi", "fi-FI"),
    ("fr", "fr-FR"),
    ("he", "he-IL"),
    ("hi", "hi-IN"),
    ("hu", "hu-HU"),
    ("id", "id-ID"),
    ("it", "it-IT"),
    ("ja", "ja-JP"),
    ("ko", "ko-KR"),
    ("ms", "ms-MY"),
    ("nb", "nb-NO"),
    ("nl", "nl-NL"),
    ("pl", "pl-PL"),
    ("pt", "pt-PT"),
    ("pt-BR", "pt-BR"),
    ("ro", "ro-RO"),
    ("ru", "ru-RU"),
    ("sv", "sv-SE"),
    ("th", "th-TH"),
    ("tl", "fil-PH"),
    ("tr", "tr-TR"),
    ("uk", "uk-UA"),
    ("vi", "vi-VN"),
    ("zh", "cmn-CN"),
    ("zh-CN", "cmn-CN"),
    ("zh-HK", "yue-HK"),
];

/// Twilio's language for a phonegate locale, where it has one.
pub(crate) fn language(locale: &str) -> Option<&'static str> {
    LANGUAGES.iter().find(|(l, _)| *l == locale).map(|(_, t)| *t)
}

/// What a call that waits for a key says first (the core's prompt texts), with the locale it is
/// in: the call's where it has one, else English.
fn prompt(locale: &str) -> (&str, &'static str) {
    let text = phonegate_core::locales::key_prompt(locale);
    match text == phonegate_core::locales::key_prompt("en") && !locale.starts_with("en") {
        true => ("en", text),
        false => (locale, text),
    }
}

/// Text and attribute values as XML.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `<Say language="…" voice="…">text</Say>`, each attribute only when given.
fn say_verb(text: &str, language: Option<&str>, voice: Option<&str>) -> String {
    let mut verb = String::from("<Say");
    for (name, value) in [("language", language), ("voice", voice)] {
        if let Some(v) = value {
            verb.push_str(&format!(" {name}=\"{}\"", escape(v)));
        }
    }
    format!("{verb}>{}</Say>", escape(text))
}

/// A TwiML document that says `text` (what the key-press webhook answers with).
pub fn say(text: &str, language: Option<&str>, voice: Option<&str>) -> String {
    format!("<Response>{}</Response>", say_verb(text, language, voice))
}

impl Twilio {
    /// The configured voice for a Twilio language.
    fn voice(&self, language: Option<&str>) -> Option<&str> {
        language.and_then(|l| self.settings.voices.get(l)).map(String::as_str)
    }

    /// The call's TwiML: the text said at once, or a prompt that waits for a key press and then
    /// fetches the text from this server.
    fn twiml(&self, call: &Outgoing) -> Result<String, SendError> {
        let language = language(&call.locale);
        let voice = self.voice(language);
        let Some(verification) = call.verification_id.as_deref().filter(|_| call.wait_for_key) else {
            return Ok(say(&call.body, language, voice));
        };
        let Some(action) = self.callback(GATHER_PATH) else {
            return Err(SendError::unavailable(format!(
                "{}: a call that waits for a key press needs `public_url` (Twilio fetches the code from this server)",
                self.name
            )));
        };
        let mut query = vec![("verification", verification), ("message", call.message_id.as_str())];
        query.extend(language.map(|l| ("language", l)));
        query.extend(voice.map(|v| ("voice", v)));
        let action = reqwest::Url::parse_with_params(&action, &query)
            .map_err(|_| SendError::unavailable(format!("{}: `public_url` is not a URL", self.name)))?;
        let (prompt_locale, prompt) = prompt(&call.locale);
        let prompt_language = self::language(prompt_locale);
        Ok(format!(
            "<Response><Gather numDigits=\"1\" timeout=\"{GATHER_TIMEOUT_SECS}\" action=\"{}\">{}</Gather></Response>",
            escape(action.as_str()),
            say_verb(prompt, prompt_language, self.voice(prompt_language)),
        ))
    }

    /// Places the call; its `CA…` sid is the message's provider id.
    pub(super) async fn call(&self, call: &Outgoing) -> Result<Accepted, SendError> {
        let s = &self.settings;
        let Some(from) = call.from.as_deref().or(s.voice_from.as_deref()).or(s.from.as_deref()) else {
            return Err(SendError::unavailable(format!("{}: neither `voice_from` nor `from` is configured", self.name)));
        };
        let twiml = self.twiml(call)?;
        let mut form = vec![("To", call.to.as_str()), ("From", from), ("Twiml", twiml.as_str())];
        // Dialled once the call is answered (an extension), before the TwiML runs.
        if let Some(digits) = &call.send_digits {
            form.push(("SendDigits", digits));
        }
        let callback = self.callback(CALL_STATUS_PATH);
        if let Some(callback) = &callback {
            // Only the final status (`completed`, `busy`, `no-answer`, `failed`, `canceled`).
            form.extend([("StatusCallback", callback.as_str()), ("StatusCallbackEvent", "completed")]);
        }
        self.create("Calls", &form).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_locale_with_a_text_maps_to_a_twilio_language_or_none() {
        for locale in phonegate_core::locales::supported() {
            if let Some(l) = language(locale) {
                assert!(l.contains('-'), "{locale} → {l}");
            }
        }
        assert_eq!(language("de"), Some("de-DE"));
        assert_eq!(language("pt-BR"), Some("pt-BR"));
        assert_eq!(language("en"), Some("en-US"));
        assert_eq!(language("xx"), None);
    }

    #[test]
    fn say_escapes_text_and_attributes() {
        assert_eq!(
            say("1 < 2 & \"3\"", Some("en-US"), Some("Polly.Joanna")),
            "<Response><Say language=\"en-US\" voice=\"Polly.Joanna\">1 &lt; 2 &amp; &quot;3&quot;</Say></Response>"
        );
        assert_eq!(say("x", None, None), "<Response><Say>x</Say></Response>");
    }
}
