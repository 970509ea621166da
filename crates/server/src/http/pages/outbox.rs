//! The dev outbox's page, on the templates like every other page (who may read it is
//! `http::outbox`'s business).
use super::texts::{Texts, pick};
use askama::Template;
use axum::http::{HeaderMap, header};
use phonegate_core::outbox::OutboxMessage;

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxPage<'a> {
    t: &'a Texts,
    /// The number filtered by, as given.
    to: &'a str,
    messages: &'a [OutboxMessage],
}

/// The page listing `messages` (filtered by `to`), in the reader's language's frame.
pub fn render(headers: &HeaderMap, to: &str, messages: &[OutboxMessage]) -> String {
    let t = pick(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    OutboxPage { t, to, messages }.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the outbox page did not render");
        String::from("<!doctype html><title>phonegate</title><p>Something went wrong.</p>")
    })
}
