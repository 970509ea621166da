//! Wire-compatible adapters for apps written against Twilio Verify v2 and Vonage Verify v1. They
//! translate requests and responses only; every decision is the core's.
pub mod twilio;
pub mod vonage;
pub mod vonage2;

use axum::http::{HeaderMap, Uri, header};

/// The base URL clients reach this server at: `public_url`, else the scheme we serve and the
/// request's Host (HTTP/1.1) or `:authority` (HTTP/2, where it is the URI's authority).
pub fn base_url(public_url: Option<&str>, tls: bool, headers: &HeaderMap, uri: &Uri) -> String {
    match public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| uri.authority().map(|a| a.as_str()))
                .unwrap_or("localhost");
            format!("{}://{host}", if tls { "https" } else { "http" })
        }
    }
}
