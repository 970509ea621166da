//! What every HTTP provider shares: the client, transport-error classification, GSM-7 detection,
//! WhatsApp's template language codes.
use phonegate_core::ports::SendError;
use std::time::Duration;

pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("phonegate/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Outgoing requests carry the W3C trace context (`traceparent`, `tracestate`) of the current
/// span, so a provider's or app's own traces join the request's. Only when traces are exported
/// (the server then installs the propagator); otherwise nothing is added.
pub trait Traced {
    fn traced(self) -> Self;
}

impl Traced for reqwest::RequestBuilder {
    fn traced(self) -> Self {
        let span = tracing::Span::current();
        if span.is_disabled() {
            return self;
        }
        let context = tracing_opentelemetry::OpenTelemetrySpanExt::context(&span);
        let mut headers = reqwest::header::HeaderMap::new();
        opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut Headers(&mut headers)));
        self.headers(headers)
    }
}

struct Headers<'a>(&'a mut reqwest::header::HeaderMap);

impl opentelemetry::propagation::Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (reqwest::header::HeaderName::from_bytes(key.as_bytes()), reqwest::header::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

/// Network failures: a failed connection surely sent nothing (safe to retry); a timeout may have
/// reached the provider (fail over instead). URLs are stripped: they may carry tokens.
pub fn transport_error(provider: &str, e: reqwest::Error) -> SendError {
    let connect = e.is_connect();
    let reason = format!("{provider}: {}", e.without_url());
    if connect { SendError::retryable(reason) } else { SendError::unavailable(reason) }
}

/// Classifies an HTTP failure that carried no provider-specific rejection. `detail` is built
/// from known codes only, never from a response's text: a provider may echo the request, with
/// its credentials and the message (the code).
pub fn status_error(provider: &str, status: reqwest::StatusCode, detail: &str) -> SendError {
    let reason = format!("{provider}: HTTP {} {detail}", status.as_u16()).trim_end().to_string();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS { SendError::retryable(reason) } else { SendError::unavailable(reason) }
}

/// True when every character is in the GSM 03.38 default alphabet or its extension table, so
/// the text fits 160-character segments; anything else must go as Unicode (70 per segment).
pub fn is_gsm7(text: &str) -> bool {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXTENSION: &str = "^{}\\[~]|€\u{c}";
    text.chars().all(|c| BASIC.contains(c) || EXTENSION.contains(c))
}

/// The WhatsApp template language (Meta's codes: `en`, `en_GB`, `pt_BR`, `zh_HK`, `fil`…) for a
/// verification's locale. With `available` (the languages the template was created in), a locale
/// it lacks gets the first one of its language (`en_US` for `en-GB`), else the first listed.
pub fn whatsapp_language(locale: &str, available: Option<&[String]>) -> String {
    let wanted = match locale {
        "pt" => "pt_PT".to_string(),
        "tl" => "fil".to_string(),
        "zh" => "zh_CN".to_string(),
        other => other.replace('-', "_"),
    };
    let Some(available) = available.filter(|a| !a.is_empty()) else { return wanted };
    let lang = wanted.split('_').next().unwrap_or_default();
    available
        .iter()
        .find(|a| a.eq_ignore_ascii_case(&wanted))
        .or_else(|| available.iter().find(|a| a.split('_').next().is_some_and(|l| l.eq_ignore_ascii_case(lang))))
        .unwrap_or(&available[0])
        .clone()
}

#[cfg(test)]
mod tests {
    #[test]
    fn whatsapp_template_languages() {
        use super::whatsapp_language as lang;
        assert_eq!(
            (lang("de", None), lang("en-GB", None), lang("pt-BR", None), lang("zh-HK", None)),
            ("de".into(), "en_GB".into(), "pt_BR".into(), "zh_HK".into())
        );
        assert_eq!((lang("pt", None), lang("tl", None), lang("zh", None)), ("pt_PT".into(), "fil".into(), "zh_CN".into()));
        let made = vec!["en_US".to_string(), "de".to_string()];
        assert_eq!(lang("de", Some(&made)), "de");
        assert_eq!(lang("en-GB", Some(&made)), "en_US", "the template's own English");
        assert_eq!(lang("fr", Some(&made)), "en_US", "else its first language");
    }

    #[test]
    fn gsm7_detection() {
        assert!(super::is_gsm7("Your code is 123456 [ok] €"));
        assert!(super::is_gsm7("Ihr Bestätigungscode lautet: 1"));
        assert!(!super::is_gsm7("Código de verificación: 1 — ✓"));
        assert!(!super::is_gsm7("验证码 123456"));
    }
}
