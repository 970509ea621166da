//! Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`,
//! form-encoded, HTTP Basic with the Account SID and auth token (or an API key SID and secret).
use crate::common::{Traced, status_error, transport_error};
use crate::secret::Secret;
use async_trait::async_trait;
use phonegate_core::ports::{Accepted, MessageSender, Outgoing, SendError};
use serde::{Deserialize, Serialize};

pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    pub account_sid: String,
    /// Authenticates requests unless an API key is given; always signs Twilio's webhooks.
    pub auth_token: Secret,
    pub api_key_sid: Option<String>,
    pub api_key_secret: Option<Secret>,
    /// Default sender number; a route's `from` overrides it.
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub base_url: Option<String>,
}

/// Recipient-level rejections (Twilio error codes): no other provider would do better.
const REJECTIONS: [u64; 8] = [21211, 21214, 21217, 21401, 21407, 21610, 21612, 21614];

pub struct Twilio {
    pub(crate) name: String,
    pub(crate) settings: TwilioSettings,
    pub(crate) client: reqwest::Client,
    pub(crate) status_callback: Option<String>,
}

#[async_trait]
impl MessageSender for Twilio {
    async fn send(&self, sms: &Outgoing) -> Result<Accepted, SendError> {
        let s = &self.settings;
        let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", s.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL), s.account_sid);
        let mut form = vec![("To", sms.to.as_str()), ("Body", sms.body.as_str())];
        match (sms.from.as_deref().or(s.from.as_deref()), s.messaging_service_sid.as_deref()) {
            (Some(from), _) => form.push(("From", from)),
            (None, Some(service)) => form.push(("MessagingServiceSid", service)),
            (None, None) => {
                return Err(SendError::unavailable(format!("{}: neither `from` nor `messaging_service_sid` is configured", self.name)));
            }
        }
        if let Some(callback) = &self.status_callback {
            form.push(("StatusCallback", callback));
        }
        let (user, password) = match (&s.api_key_sid, &s.api_key_secret) {
            (Some(sid), Some(secret)) => (sid.as_str(), secret.expose()),
            _ => (s.account_sid.as_str(), s.auth_token.expose()),
        };
        let response = self
            .client
            .post(url)
            .basic_auth(user, Some(password))
            .form(&form)
            .traced()
            .send()
            .await
            .map_err(|e| transport_error(&self.name, e))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if status.is_success() {
            let sid = body["sid"].as_str().map(str::to_string);
            return Ok(Accepted { provider: self.name.clone(), provider_message_id: sid });
        }
        // The code only: Twilio's `message` may echo the request (the message, so the code).
        let detail = match body["code"].as_u64() {
            Some(code) => format!("Twilio error {code}"),
            None => "no Twilio error code".to_string(),
        };
        match body["code"].as_u64() {
            Some(code) if status.is_client_error() && REJECTIONS.contains(&code) => {
                Err(SendError::Rejected(format!("{}: {detail}", self.name)))
            }
            _ => Err(status_error(&self.name, status, &detail)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{basic, client, only_request, sms};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn twilio(server: &MockServer, from: Option<&str>) -> Twilio {
        Twilio {
            name: "tw".into(),
            settings: TwilioSettings {
                account_sid: "AC0123".into(),
                auth_token: Secret::new("token"),
                api_key_sid: None,
                api_key_secret: None,
                from: from.map(str::to_string),
                messaging_service_sid: Some("MG0123".into()),
                base_url: Some(server.uri()),
            },
            client: client(),
            status_callback: Some("https://verify.example.com/webhooks/twilio/status".into()),
        }
    }

    async fn answering(status: u16, body: serde_json::Value) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/2010-04-01/Accounts/AC0123/Messages.json"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        server
    }

    #[tokio::test]
    async fn sends_the_exact_form_twilio_expects() {
        let server = answering(201, serde_json::json!({ "sid": "SMabc", "status": "queued" })).await;
        let sent = twilio(&server, Some("+15005550006")).send(&sms("Your code: 123456 & more")).await.unwrap();
        assert_eq!(sent, Accepted { provider: "tw".into(), provider_message_id: Some("SMabc".into()) });
        let r = only_request(&server).await;
        assert_eq!(r.method.as_str(), "POST");
        assert_eq!(r.headers["authorization"], basic("AC0123", "token").as_str());
        assert_eq!(r.headers["content-type"], "application/x-www-form-urlencoded");
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            "To=%2B4915123456789&Body=Your+code%3A+123456+%26+more&From=%2B15005550006\
             &StatusCallback=https%3A%2F%2Fverify.example.com%2Fwebhooks%2Ftwilio%2Fstatus"
        );
    }

    #[tokio::test]
    async fn uses_the_messaging_service_and_api_key_when_configured() {
        let server = answering(201, serde_json::json!({ "sid": "SMdef" })).await;
        let mut t = twilio(&server, None);
        t.settings.api_key_sid = Some("SK0123".into());
        t.settings.api_key_secret = Some(Secret::new("keysecret"));
        let long = format!("Código ✓ {}", "x".repeat(400));
        t.send(&sms(&long)).await.unwrap();
        let r = only_request(&server).await;
        assert_eq!(r.headers["authorization"], basic("SK0123", "keysecret").as_str());
        let body = String::from_utf8(r.body).unwrap();
        assert!(body.contains("&MessagingServiceSid=MG0123&"), "{body}");
        assert!(body.contains(&format!("Body=C%C3%B3digo+%E2%9C%93+{}&", "x".repeat(400))), "{body}");
    }

    #[tokio::test]
    async fn maps_documented_errors() {
        let cases = [
            (400, 21211, "rejected"),
            (400, 21610, "rejected"),
            (400, 21614, "rejected"),
            (400, 21606, "unavailable"),
            (401, 20003, "unavailable"),
            (429, 20429, "retryable"),
            (500, 20500, "unavailable"),
        ];
        for (status, code, expected) in cases {
            let body = serde_json::json!({ "code": code, "message": "msg", "more_info": "https://www.twilio.com/docs/errors/x", "status": status });
            let server = answering(status, body).await;
            let err = twilio(&server, Some("+15005550006")).send(&sms("x")).await.unwrap_err();
            let kind = match &err {
                SendError::Rejected(_) => "rejected",
                SendError::Unavailable { retry_safe: true, .. } => "retryable",
                SendError::Unavailable { .. } => "unavailable",
            };
            assert_eq!(kind, expected, "{status}/{code}: {err}");
            assert!(err.to_string().contains(&code.to_string()));
        }
    }

    #[tokio::test]
    async fn an_unreachable_host_is_safe_to_retry_and_leaks_no_credentials() {
        let mut t = twilio(&MockServer::start().await, Some("+1"));
        t.settings.base_url = Some("http://127.0.0.1:9".into());
        match t.send(&sms("x")).await.unwrap_err() {
            SendError::Unavailable { retry_safe, reason } => {
                assert!(retry_safe);
                assert!(!reason.contains("token"));
            }
            other => panic!("{other:?}"),
        }
    }
}
