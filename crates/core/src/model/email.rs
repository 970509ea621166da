//! An e-mail carrying a code: its subject and HTML part, made from the same text as the SMS (the
//! text part) in the verification's language. Plain and self-contained: no image, link or
//! tracking pixel, every inserted value escaped.

/// What an e-mail has besides its text part.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailParts {
    pub subject: String,
    pub html: String,
    /// The service's own sender (`From`) and `Reply-To`, when it names them.
    pub from: Option<String>,
    pub reply_to: Option<String>,
}

impl std::fmt::Debug for EmailParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailParts").field("subject", &self.subject).finish_non_exhaustive()
    }
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The subject and HTML part of a code's e-mail: `text` is the message's text (the service's
/// template with the code in it), `code` the code alone, shown large.
pub fn render(locale: &str, service: &str, text: &str, code: &str) -> EmailParts {
    let subject = crate::model::locales::email_subject(locale).replace("{service}", service);
    let paragraphs: String =
        text.split("\n\n").map(|p| format!("<p style=\"margin:0 0 16px\">{}</p>", escape(p).replace('\n', "<br>"))).collect();
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title></head>\n<body style=\"margin:0;padding:24px;font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1a1a1a\">\
         \n<div style=\"max-width:480px;margin:0 auto\">\n{paragraphs}\n<p style=\"margin:24px 0;font-family:ui-monospace,Menlo,Consolas,monospace;\
         font-size:32px;letter-spacing:6px;font-weight:bold\">{code}</p>\n</div>\n</body></html>\n",
        lang = escape(locale),
        title = escape(&subject),
        code = escape(code),
    );
    EmailParts { subject, html, from: None, reply_to: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_html_part_escapes_what_it_inserts_and_loads_nothing() {
        let p = render("de", "<Shop & Co>", "Dein Code für <Shop & Co> ist: 123456", "123456");
        assert!(p.subject.contains("<Shop & Co>"), "{}", p.subject);
        assert!(p.html.contains("&lt;Shop &amp; Co&gt;") && !p.html.contains("<Shop"));
        assert!(p.html.contains("lang=\"de\"") && p.html.contains(">123456</p>"));
        for remote in ["<img", "src=", "href=", "url("] {
            assert!(!p.html.contains(remote), "{remote}");
        }
    }
}
