//! No secret or code where it does not belong: every provider's mock answers an error that
//! echoes the whole request (credentials and message, so the code), and neither may reach the
//! API's answer, the stored record, the logs or the metrics.
use crate::helpers::{Server, cli_key, fresh_number};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::method};

/// Answers every request with its own headers and body, inside each provider's error shape.
struct Echo {
    shape: fn(String) -> ResponseTemplate,
}

impl Respond for Echo {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let headers: Vec<String> = r.headers.iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or_default())).collect();
        (self.shape)(format!("{} {}", headers.join("; "), String::from_utf8_lossy(&r.body)))
    }
}

async fn echoing(shape: fn(String) -> ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(Echo { shape }).mount(&server).await;
    server
}

/// The code in the message a provider was asked to send.
fn code_in(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body).to_string();
    let decoded: String = serde_urlencoded::from_str::<Vec<(String, String)>>(&text)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| format!("{k}={v} "))
        .collect();
    let all = format!("{text} {decoded}");
    let digits: Vec<String> = all.split(|c: char| !c.is_ascii_digit()).filter(|d| d.len() == 6).map(str::to_string).collect();
    digits.into_iter().next().expect("a 6-digit code in the request")
}

#[tokio::test]
async fn provider_errors_that_echo_the_request_leak_no_credential_and_no_code() {
    let twilio = echoing(|echo| ResponseTemplate::new(500).set_body_json(json!({ "code": 20500, "message": echo, "status": 500 }))).await;
    let vonage = echoing(|echo| {
        ResponseTemplate::new(200).set_body_json(json!({ "message-count": "1", "messages": [{ "status": "4", "error-text": echo }] }))
    })
    .await;
    let vonage_http = echoing(|echo| ResponseTemplate::new(500).set_body_string(echo)).await;
    let sipgate = echoing(|echo| ResponseTemplate::new(500).set_body_string(echo)).await;
    let gateway = echoing(|echo| ResponseTemplate::new(503).set_body_string(echo)).await;
    let secrets = ["twilio-token-9f8e", "vonage-secret-7d6c", "vonage-http-5b4a", "sipgate-token-3c2b", "gateway-secret-1a0f"];
    let env: Vec<(String, String)> = [
        ("TW__KIND", "twilio".to_string()),
        ("TW__ACCOUNT_SID", "AC0123".into()),
        ("TW__AUTH_TOKEN", secrets[0].into()),
        ("TW__FROM", "\"+15005550006\"".into()),
        ("TW__BASE_URL", twilio.uri()),
        ("VG__KIND", "vonage".into()),
        ("VG__API_KEY", "abcd1234".into()),
        ("VG__API_SECRET", secrets[1].into()),
        ("VG__FROM", "Acme".into()),
        ("VG__BASE_URL", vonage.uri()),
        ("VH__KIND", "vonage".into()),
        ("VH__API_KEY", "efgh5678".into()),
        ("VH__API_SECRET", secrets[2].into()),
        ("VH__FROM", "Acme".into()),
        ("VH__BASE_URL", vonage_http.uri()),
        ("SG__KIND", "sipgate".into()),
        ("SG__TOKEN_ID", "token-id".into()),
        ("SG__TOKEN", secrets[3].into()),
        ("SG__SMS_ID", "s0".into()),
        ("SG__BASE_URL", sipgate.uri()),
        ("GW__KIND", "http".into()),
        ("GW__URL", gateway.uri()),
        ("GW__SECRET", secrets[4].into()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("PHONEGATE_PROVIDERS__{k}"), v))
    .chain([("PHONEGATE_ROUTING__PROVIDERS".to_string(), r#"["vg", "vh", "sg", "gw", "tw"]"#.to_string())])
    .collect();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let secret = cli_key(&db, "echo");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut server = Server::spawn(&db, &env);
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/api/verifications", server.base))
        .bearer_auth(&secret)
        .json(&json!({ "to": fresh_number() }))
        .send()
        .await
        .unwrap();
    let answer = r.text().await.unwrap();
    let started: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(started["error"]["code"], "delivery_failed", "{answer}");
    let id = started["error"]["verification_id"].as_str().unwrap();
    let stored =
        client.get(format!("{}/api/verifications/{id}", server.base)).bearer_auth(&secret).send().await.unwrap().text().await.unwrap();
    let metrics = client.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    let (_, logs) = server.stop();

    let mut code = None;
    for mock in [&twilio, &vonage, &vonage_http, &sipgate, &gateway] {
        let received = mock.received_requests().await.unwrap();
        assert_eq!(received.len(), 1, "every provider was tried once");
        code.get_or_insert_with(|| code_in(&received[0].body));
    }
    let code = code.unwrap();
    for (what, text) in [("the answer", &answer), ("the stored record", &stored), ("the logs", &logs), ("the metrics", &metrics)] {
        for s in secrets.iter().chain([&code.as_str(), &"abcd1234"]) {
            assert!(!text.contains(s), "{what} contains `{s}`: {text}");
        }
    }
    // The reasons still say what happened, from status codes only.
    assert!(stored.contains("Twilio error 20500") && stored.contains("Vonage status 4 (invalid credentials)"), "{stored}");
}
