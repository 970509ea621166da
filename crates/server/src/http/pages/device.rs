//! The device's own pages under `/silent/` — the check link's answers, the simulator's
//! operator, the providers' callbacks and the fragment relay — rendered from `silent.html`.
//! English, no header links: the device may come from any app's link, mid-way through an
//! operator's redirects. Its only script is this server's `/assets/silent-relay.js`.
use super::texts::{EN, Texts};
use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use phonegate_core::silent::SimOutcome;

/// What a device is told of a failure of the server (its request id follows).
pub const INTERNAL: &str = EN.internal;

/// The relay page's policy: as every page's, plus this server's own scripts.
const RELAY_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The simulated operator's answers, as the developer reads them.
const CHOICES: [(SimOutcome, &str); 5] = [
    (SimOutcome::Match, "The device holds this number's SIM (match)"),
    (SimOutcome::Mismatch, "Another SIM (mismatch)"),
    (SimOutcome::Wifi, "The device is on WiFi"),
    (SimOutcome::NoCoverage, "The operator is not covered"),
    (SimOutcome::Timeout, "The operator does not answer (time-out)"),
];

struct Choice {
    outcome: &'static str,
    href: String,
    label: &'static str,
}

enum DeviceBody<'a> {
    Message(&'a str),
    Simulator(Vec<Choice>),
    Relay,
}

#[derive(Template)]
#[template(path = "silent.html")]
struct DevicePage<'a> {
    t: &'static Texts,
    title: &'a str,
    body: DeviceBody<'a>,
}

/// A page with a title and one sentence (why the link led nowhere, or how the check ended).
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    render(status, &DevicePage { t: &EN, title, body: DeviceBody::Message(text) })
}

/// The simulator's operator: one link per answer, to `target(answer)`.
pub fn simulator(target: impl Fn(SimOutcome) -> String) -> Response {
    let choices = CHOICES.into_iter().map(|(o, label)| Choice { outcome: o.as_str(), href: target(o), label }).collect();
    render(StatusCode::OK, &DevicePage { t: &EN, title: "Simulated operator", body: DeviceBody::Simulator(choices) })
}

/// A page whose script moves the URL's fragment into its query and loads it again.
pub fn relay() -> Response {
    let mut r = render(StatusCode::OK, &DevicePage { t: &EN, title: "Verifying", body: DeviceBody::Relay });
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(RELAY_CSP));
    r
}

fn render(status: StatusCode, page: &DevicePage) -> Response {
    let html = page.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "a device page did not render");
        String::from("<!doctype html><title>phonegate</title><p>Something went wrong.</p>")
    });
    let mut r = (status, Html(html)).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever a page is given is text, never markup (no value a request controls reaches these
    /// pages today; this keeps it harmless if one ever does).
    #[test]
    fn titles_texts_and_links_are_escaped() {
        let hostile = "<script>alert('x')</script> & \"quoted\"";
        let page = DevicePage { t: &EN, title: hostile, body: DeviceBody::Message(hostile) }.render().unwrap();
        assert!(!page.contains("<script>") && !page.contains("\"quoted\""), "{page}");
        assert!(page.contains("&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; &#38; &#34;quoted&#34;"), "{page}");
        let choices = vec![Choice { outcome: "match", href: format!("/x?a=1&b=\"{hostile}"), label: "ok" }];
        let page = DevicePage { t: &EN, title: "t", body: DeviceBody::Simulator(choices) }.render().unwrap();
        assert!(!page.contains("<script>") && page.contains("href=\"/x?a=1&#38;b=&#34;&#60;script&#62;"), "{page}");
    }
}
