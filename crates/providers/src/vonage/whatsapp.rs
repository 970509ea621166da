//! WhatsApp by the Vonage Messages API (its "Send a WhatsApp Authentication Template" guide):
//! `POST /v1/messages`. An authentication template has a copy-code button, which makes it an
//! interactive template, so it goes as `message_type: "custom"` with WhatsApp's own template
//! object: the code fills the body's parameter and the button's URL parameter. `202
//! {message_uuid}`; whether it reached the recipient comes later in the status webhook
//! (`/webhooks/vonage/message-status`: a number without WhatsApp is `rejected`, error 1300).
use super::Vonage;
use crate::common::{Traced, status_error, transport_error, whatsapp_language};
use phonegate_core::ports::{Accepted, Outgoing, SendError};
use serde_json::{Value, json};

/// Messages API errors about the recipient (its error reference): not a WhatsApp user (1300), a
/// device that cannot take it (1310), blocked or unreachable numbers (1260, 1270, 1280, 1290).
const REJECTIONS: [u64; 6] = [1260, 1270, 1280, 1290, 1300, 1310];

/// The error code of a Messages API problem body: `type` ends in `#1300`, or `title` is the code.
pub fn error_code(problem: &Value) -> Option<u64> {
    problem["type"]
        .as_str()
        .and_then(|t| t.rsplit('#').next())
        .and_then(|c| c.parse().ok())
        .or_else(|| problem["title"].as_u64())
        .or_else(|| problem["title"].as_str().and_then(|t| t.parse().ok()))
        .or_else(|| problem["code"].as_u64())
}

impl Vonage {
    pub(super) async fn whatsapp(&self, out: &Outgoing) -> Result<Accepted, SendError> {
        let s = &self.settings;
        let (Some(from), Some(template)) = (&s.whatsapp_from, &s.whatsapp_template) else {
            return Err(SendError::unavailable(format!("{}: WhatsApp is not configured", self.name)));
        };
        let code = out.code.as_deref().ok_or_else(|| SendError::Rejected(format!("{}: a WhatsApp template carries a code", self.name)))?;
        let parameter = json!([{ "type": "text", "text": code }]);
        let language = whatsapp_language(&out.locale, s.whatsapp_languages.as_deref());
        let mut body = json!({
            "message_type": "custom",
            "channel": "whatsapp",
            "to": out.to.as_str().trim_start_matches('+'),
            "from": from.trim_start_matches('+'),
            "client_ref": out.message_id,
            "custom": {
                "type": "template",
                "template": {
                    "name": template,
                    "language": { "policy": "deterministic", "code": language },
                    "components": [
                        { "type": "body", "parameters": parameter },
                        { "type": "button", "sub_type": "url", "index": "0", "parameters": parameter },
                    ],
                },
            },
        });
        if let Some(url) = self.callback("/webhooks/vonage/message-status") {
            body["webhook_url"] = json!(url);
        }
        let response = self.api_post("/v1/messages")?.json(&body).traced().send().await.map_err(|e| transport_error(&self.name, e))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or_default();
        if status.is_success() {
            let uuid = answer["message_uuid"].as_str().filter(|u| !u.is_empty() && u.len() <= 100).map(str::to_string);
            return Ok(Accepted { provider: self.name.clone(), provider_message_id: uuid });
        }
        // The code only: `detail` may echo the request.
        match error_code(&answer) {
            Some(code) if REJECTIONS.contains(&code) => Err(SendError::Rejected(format!("{}: Messages API error {code}", self.name))),
            Some(code) => Err(status_error(&self.name, status, &format!("Messages API error {code}"))),
            None => Err(status_error(&self.name, status, "(Messages API)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::VonageSettings;
    use super::super::tests::settings;
    use super::*;
    use crate::app_jwt::testing::{PRIVATE_KEY, claims};
    use crate::secret::Secret;
    use crate::testing::{basic, client, only_request, sms};
    use phonegate_core::Channel;
    use phonegate_core::ports::MessageSender;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const UUID: &str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";

    fn whatsapp_settings(server: &MockServer) -> VonageSettings {
        VonageSettings {
            whatsapp_from: Some("+14157386102".into()),
            whatsapp_template: Some("acme_otp".into()),
            api_base_url: Some(server.uri()),
            ..settings()
        }
    }

    fn message(locale: &str) -> Outgoing {
        Outgoing {
            channel: Channel::Whatsapp,
            locale: locale.into(),
            code: Some("482193".into()),
            ..sms("482193 is your verification code.")
        }
    }

    async fn answering(status: u16, body: Value) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        server
    }

    #[tokio::test]
    async fn sends_the_authentication_template_with_the_code_in_body_and_copy_button() {
        let server = answering(202, json!({ "message_uuid": UUID })).await;
        let s = VonageSettings {
            application_id: Some("app-1".into()),
            private_key: Some(Secret::new(PRIVATE_KEY)),
            whatsapp_languages: Some(vec!["en_US".into(), "de".into()]),
            ..whatsapp_settings(&server)
        };
        let v = Vonage::new("vg", s, client(), Some("https://verify.example.com".into())).unwrap();
        assert_eq!(v.channels(), [Channel::Sms, Channel::Voice, Channel::Whatsapp]);
        let sent = v.send(&message("de")).await.unwrap();
        assert_eq!(sent.provider_message_id.as_deref(), Some(UUID));
        let r = only_request(&server).await;
        assert_eq!(claims(&r)["application_id"], "app-1");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let code = json!([{ "type": "text", "text": "482193" }]);
        assert_eq!(
            body,
            json!({
                "message_type": "custom",
                "channel": "whatsapp",
                "to": "4915123456789",
                "from": "14157386102",
                "client_ref": "SM00000000000000000000000000000001",
                "webhook_url": "https://verify.example.com/webhooks/vonage/message-status",
                "custom": { "type": "template", "template": {
                    "name": "acme_otp",
                    "language": { "policy": "deterministic", "code": "de" },
                    "components": [
                        { "type": "body", "parameters": code },
                        { "type": "button", "sub_type": "url", "index": "0", "parameters": code },
                    ],
                } },
            })
        );
    }

    #[tokio::test]
    async fn without_an_application_the_api_key_signs_in() {
        let server = answering(202, json!({ "message_uuid": UUID })).await;
        let v = Vonage::new("vg", whatsapp_settings(&server), client(), None).unwrap();
        assert_eq!(v.channels(), [Channel::Sms, Channel::Whatsapp], "no application: no calls");
        v.send(&message("en-GB")).await.unwrap();
        let r = only_request(&server).await;
        assert_eq!(r.headers["authorization"], basic("abcd1234", "s3cr3t").as_str());
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["custom"]["template"]["language"]["code"], "en_GB");
        assert!(body.get("webhook_url").is_none());
    }

    #[tokio::test]
    async fn a_number_without_whatsapp_is_rejected_and_other_errors_fail_over() {
        for (status, problem, kind) in [
            (
                422,
                json!({ "type": "https://developer.vonage.com/api-errors/messages#1300", "title": "Not part of the provider network", "detail": "482193" }),
                "rejected",
            ),
            (
                422,
                json!({ "type": "https://developer.vonage.com/api-errors/messages#1150", "title": "Invalid params", "detail": "482193" }),
                "unavailable",
            ),
            (401, json!({ "type": "https://developer.vonage.com/api-errors#unauthorized", "title": "Unauthorized" }), "unavailable"),
            (429, json!({ "type": "https://developer.vonage.com/api-errors/messages#1000", "title": "Throttled" }), "retryable"),
        ] {
            let server = answering(status, problem).await;
            let e = Vonage::new("vg", whatsapp_settings(&server), client(), None).unwrap().send(&message("en")).await.unwrap_err();
            let got = match &e {
                SendError::Rejected(_) => "rejected",
                SendError::Unavailable { retry_safe: true, .. } => "retryable",
                SendError::Unavailable { .. } => "unavailable",
            };
            assert_eq!(got, kind, "{status}: {e}");
            assert!(!e.to_string().contains("482193"), "{e}");
        }
    }

    #[test]
    fn reads_the_error_code_of_either_problem_shape() {
        assert_eq!(
            error_code(&json!({ "type": "https://developer.nexmo.com/api-errors/messages-olympus#1300", "title": 1300 })),
            Some(1300)
        );
        assert_eq!(error_code(&json!({ "title": 1310 })), Some(1310));
        assert_eq!(error_code(&json!({ "code": 1300, "reason": "Not part of the provider network" })), Some(1300));
        assert_eq!(error_code(&json!({ "title": "Unauthorized" })), None);
    }
}
