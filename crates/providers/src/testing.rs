//! Test helpers: a message to send and the requests a mock provider received.
use phonegate_core::Recipient;
use phonegate_core::ports::Outgoing;
use std::time::Duration;

pub fn sms(body: &str) -> Outgoing {
    Outgoing {
        verification_id: Some("VE00000000000000000000000000000001".into()),
        ..Outgoing::text("SM00000000000000000000000000000001".into(), Recipient::from_trusted("+4915123456789".into()), body.into())
    }
}

pub fn client() -> reqwest::Client {
    crate::common::client(Duration::from_secs(5)).expect("TLS backend available")
}

pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// The single request the mock received: (method, path, headers, body).
pub async fn only_request(server: &wiremock::MockServer) -> wiremock::Request {
    let mut requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 1, "exactly one request");
    requests.remove(0)
}
