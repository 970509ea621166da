//! Message languages: the built-in verification text of every locale Twilio Verify lists
//! (`messages.tsv`, one `locale<TAB>template` per line), how a requested language tag maps to one
//! of them, and which locale a number's country gets when the request names none
//! (`country_locales.tsv`, `REGION<TAB>locale`). Anything else is English.
use crate::model::invalid::{Field, Invalid};
use std::collections::HashMap;
use std::sync::LazyLock;

fn table(text: &'static str) -> Vec<(&'static str, &'static str)> {
    text.lines().filter_map(|l| l.split_once('\t')).collect()
}

static MESSAGES: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| table(include_str!("messages.tsv")));
static PSD2: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| table(include_str!("psd2_messages.tsv")));
static VOICE: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| table(include_str!("voice_messages.tsv")));
static PROMPTS: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| table(include_str!("voice_prompts.tsv")));
static SUBJECTS: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| table(include_str!("email_subjects.tsv")));
static COUNTRIES: LazyLock<HashMap<&'static str, &'static str>> =
    LazyLock::new(|| table(include_str!("country_locales.tsv")).into_iter().collect());

/// Other names of supported locales (old ISO codes, script subtags, Vonage's region forms).
const ALIASES: [(&str, &str); 9] = [
    ("no", "nb"),
    ("nn", "nb"),
    ("iw", "he"),
    ("in", "id"),
    ("fil", "tl"),
    ("zh-tw", "zh-HK"),
    ("zh-hant", "zh-HK"),
    ("zh-hans", "zh-CN"),
    ("pt-pt", "pt"),
];

/// The built-in text of a locale as `normalize` gives it.
pub fn builtin(locale: &str) -> Option<&'static str> {
    MESSAGES.iter().find(|(l, _)| *l == locale).map(|(_, t)| *t)
}

/// The built-in payment-code text of a locale (with `{amount}` and `{payee}`), else English's.
pub fn psd2(locale: &str) -> &'static str {
    let find = |l: &str| PSD2.iter().find(|(k, _)| *k == l).map(|(_, t)| *t);
    find(locale).or_else(|| find("en")).unwrap_or("Your {service} verification code is: {code}. You are about to send {amount} to {payee}.")
}

/// What a call says (`voice_messages.tsv`): the locale's sentence with the code's digits one by
/// one, said twice, else English's.
pub fn spoken(locale: &str, service: &str, code: &str) -> String {
    let find = |l: &str| VOICE.iter().find(|(k, _)| *k == l).map(|(_, t)| *t);
    let text =
        find(locale).or_else(|| find("en")).unwrap_or("Your {service} verification code is: {code}. Once again, your code is: {code}.");
    let digits: Vec<String> = code.chars().map(String::from).collect();
    text.replace("{service}", service).replace("{code}", &digits.join(", "))
}

/// The locale whose sentence `spoken` says for `locale`: the locale itself when it has a spoken
/// text, else English. A call's voice speaks this language (a French voice must not read English).
pub fn spoken_locale(locale: &str) -> &'static str {
    VOICE.iter().find(|(k, _)| *k == locale).map_or("en", |(k, _)| *k)
}

/// What a call that waits for a key press says first (`voice_prompts.tsv`), in the language
/// `spoken_locale` gives, else English.
pub fn key_prompt(locale: &str) -> &'static str {
    let find = |l: &str| PROMPTS.iter().find(|(k, _)| *k == l).map(|(_, t)| *t);
    find(spoken_locale(locale)).or_else(|| find("en")).unwrap_or("Press any key to hear your verification code.")
}

/// An e-mail's subject in a locale (`email_subjects.tsv`, with `{service}`), else English's.
pub fn email_subject(locale: &str) -> &'static str {
    let find = |l: &str| SUBJECTS.iter().find(|(k, _)| *k == l).map(|(_, t)| *t);
    find(locale).or_else(|| find("en")).unwrap_or("{service}: your verification code")
}

/// Every locale with a built-in text.
pub fn supported() -> impl Iterator<Item = &'static str> {
    MESSAGES.iter().map(|(l, _)| *l)
}

/// A request's language tag (`pt-BR`, `de-de`, `zh_HK`, `fr-CA`) as a supported locale: the
/// whole tag when supported (`pt-BR`), else its language (`de`), else the language as given (an
/// unknown one, which renders in English unless a service has its own text for it).
pub fn normalize(tag: &str) -> Result<String, Invalid> {
    let lang = tag.split(['-', '_']).next().unwrap_or_default();
    let well_formed =
        tag.len() <= 35 && (2..=3).contains(&lang.len()) && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !well_formed {
        return Err(Invalid::new(Field::Locale, "must be a language tag such as en, de or pt-BR"));
    }
    let tag = tag.replace('_', "-").to_ascii_lowercase();
    let lang = lang.to_ascii_lowercase();
    let known =
        |t: &str| ALIASES.iter().find(|(a, _)| *a == t).map(|(_, l)| *l).or_else(|| supported().find(|l| l.eq_ignore_ascii_case(t)));
    Ok(known(&tag).or_else(|| known(&lang)).map_or(lang, str::to_string))
}

/// The locale a number in `region` (ISO 3166 alpha-2) gets by default.
pub fn for_region(region: Option<&str>) -> &'static str {
    region.and_then(|r| COUNTRIES.get(r.to_ascii_uppercase().as_str()).copied()).unwrap_or("en")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_locale_has_a_text_with_both_placeholders_once() {
        let wanted =
            "af ar ca cs da de el en en-GB es et fi fr he hi hr hu id it ja ko ms nb nl pl pt pt-BR ro ru sv th tl tr uk vi zh zh-CN zh-HK";
        assert_eq!(supported().collect::<Vec<_>>().join(" "), wanted);
        for (locale, text) in MESSAGES.iter() {
            assert_eq!(text.matches("{code}").count(), 1, "{locale}");
            assert_eq!(text.matches("{service}").count(), 1, "{locale}");
            assert!(!text.chars().any(crate::model::service::is_unsafe), "{locale}");
        }
        let psd2: Vec<&str> = PSD2.iter().map(|(l, _)| *l).collect();
        assert_eq!(psd2.join(" "), wanted, "a payment text for every locale");
        for (locale, text) in PSD2.iter() {
            for p in ["{code}", "{service}", "{amount}", "{payee}"] {
                assert_eq!(text.matches(p).count(), 1, "{locale}: {p}");
            }
            assert!(!text.chars().any(crate::model::service::is_unsafe), "{locale}");
        }
        for (region, locale) in COUNTRIES.iter() {
            assert!(builtin(locale).is_some(), "{region} → {locale}");
        }
    }

    #[test]
    fn every_locale_has_a_spoken_text_and_an_email_subject_with_the_right_placeholders() {
        let locales: Vec<&str> = supported().collect();
        let voice: Vec<&str> = VOICE.iter().map(|(l, _)| *l).collect();
        assert_eq!(voice, locales, "a spoken text for every locale of messages.tsv, in its order");
        for (locale, text) in VOICE.iter() {
            // The code twice (said, then repeated), the service once.
            assert_eq!(text.matches("{code}").count(), 2, "{locale}");
            assert_eq!(text.matches("{service}").count(), 1, "{locale}");
            assert_eq!(text.matches('{').count(), 3, "{locale}: no other placeholder");
            assert!(!text.chars().any(crate::model::service::is_unsafe), "{locale}");
        }
        let subjects: Vec<&str> = SUBJECTS.iter().map(|(l, _)| *l).collect();
        assert_eq!(subjects, locales, "an e-mail subject for every locale of messages.tsv, in its order");
        for (locale, text) in SUBJECTS.iter() {
            assert_eq!(text.matches("{service}").count(), 1, "{locale}");
            assert_eq!(text.matches('{').count(), 1, "{locale}: no code in a subject");
            assert!(!text.chars().any(|c| c.is_control() || crate::model::service::is_unsafe(c)), "{locale}");
        }
        // Each locale speaks its own words, not English's.
        for locale in locales.iter().filter(|l| !l.starts_with("en")) {
            assert_ne!(spoken(locale, "Shop", "12"), spoken("en", "Shop", "12"), "{locale}");
            assert_ne!(email_subject(locale), email_subject("en"), "{locale}");
        }
        assert_eq!(spoken("ja", "Shop", "12"), "Shopの認証コードは 1, 2 です。もう一度繰り返します。コードは 1, 2 です。");
        assert_eq!(email_subject("fr").replace("{service}", "Shop"), "Shop : votre code de vérification");
    }

    #[test]
    fn tags_map_to_supported_locales() {
        for (tag, locale) in [
            ("pt-BR", "pt-BR"),
            ("pt-br", "pt-BR"),
            ("pt-PT", "pt"),
            ("de-de", "de"),
            ("DE", "de"),
            ("fr-CA", "fr"),
            ("zh_HK", "zh-HK"),
            ("zh-TW", "zh-HK"),
            ("en-gb", "en-GB"),
            ("no", "nb"),
            ("xx-YY", "xx"),
        ] {
            assert_eq!(normalize(tag).unwrap(), locale, "{tag}");
        }
        assert!(normalize("").is_err() && normalize("<script>").is_err());
    }

    #[test]
    fn a_numbers_country_picks_its_language() {
        assert_eq!(for_region(Some("DE")), "de");
        assert_eq!(for_region(Some("BR")), "pt-BR");
        assert_eq!(for_region(Some("US")), "en");
        assert_eq!(for_region(None), "en");
    }

    #[test]
    fn a_call_speaks_the_language_of_its_text() {
        assert_eq!((spoken_locale("de"), spoken_locale("en-GB")), ("de", "en-GB"));
        // Every locale has its spoken text; an unknown one is spoken in English.
        assert_eq!((spoken_locale("fr"), spoken_locale("xx")), ("fr", "en"));
        assert!(key_prompt("de").starts_with("Drücken Sie"));
        assert_eq!(key_prompt("fr"), key_prompt("en"));
        for (locale, _) in PROMPTS.iter() {
            assert!(VOICE.iter().any(|(k, _)| k == locale), "a prompt's locale has a spoken text: {locale}");
        }
    }
}
