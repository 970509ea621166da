//! Meta's WhatsApp Cloud API (its "Messages" reference and "Copy code authentication templates"
//! guide): `POST {graph}/{phone_number_id}/messages` with `Authorization: Bearer` (a system
//! user's access token), JSON `{messaging_product: "whatsapp", recipient_type: "individual", to,
//! type: "template", template: {name, language: {code}, components}}`. An authentication template's
//! code fills its body parameter and its copy-code button, which Meta creates as a URL button at
//! index 0. `200 {messages: [{id: "wamid…"}]}`; errors `{error: {code, …}}`. Whether the message
//! reached the recipient comes in the status webhook (`/webhooks/whatsapp`, signed with
//! `X-Hub-Signature-256`): a number without WhatsApp is `failed` with error 131026.
use crate::common::{Traced, status_error, transport_error, whatsapp_language};
use crate::secret::Secret;
use async_trait::async_trait;
use phonegate_core::Channel;
use phonegate_core::ports::{Accepted, MessageSender, Outgoing, SendError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The Graph API version used when none is configured.
pub const DEFAULT_API_VERSION: &str = "v23.0";

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WhatsappCloudSettings {
    /// The WhatsApp Business phone number's id (not the number).
    pub phone_number_id: String,
    /// A (system user's) access token with `whatsapp_business_messaging`; or `access_token_file`.
    pub access_token: Secret,
    /// The app's secret: verifies the status webhooks' `X-Hub-Signature-256`.
    pub app_secret: Option<Secret>,
    /// What Meta's webhook verification request must carry as `hub.verify_token`.
    pub verify_token: Option<Secret>,
    /// The name of an approved authentication template with a copy-code button.
    pub template: String,
    /// The languages the template exists in (`["en_US", "de"]`); default: the verification's.
    pub template_languages: Option<Vec<String>>,
    /// Default `https://graph.facebook.com/{api_version}`.
    pub base_url: Option<String>,
    /// Graph API version (default `v23.0`).
    pub api_version: Option<String>,
}

pub struct WhatsappCloud {
    pub(crate) name: String,
    pub(crate) settings: WhatsappCloudSettings,
    pub(crate) client: reqwest::Client,
}

/// Errors about the recipient: undeliverable (not on WhatsApp, an old client… 131026), not in a
/// test number's allowed list (131030), the sender itself (131021).
const REJECTIONS: [i64; 3] = [131021, 131026, 131030];
/// Throttling that sent nothing: API calls (4, 80007), the app's or the pair's rate (130429,
/// 131056).
const THROTTLED: [i64; 4] = [4, 80007, 130429, 131056];

impl WhatsappCloud {
    fn url(&self) -> String {
        let s = &self.settings;
        let base = match &s.base_url {
            Some(base) => base.trim_end_matches('/').to_string(),
            None => {
                let version = s.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
                let version = if version.starts_with('v') { version.to_string() } else { format!("v{version}") };
                format!("https://graph.facebook.com/{version}")
            }
        };
        format!("{base}/{}/messages", s.phone_number_id)
    }
}

#[async_trait]
impl MessageSender for WhatsappCloud {
    async fn send(&self, out: &Outgoing) -> Result<Accepted, SendError> {
        if out.channel != Channel::Whatsapp {
            return Err(SendError::Rejected(format!("{}: serves WhatsApp only", self.name)));
        }
        let code = out.code.as_deref().ok_or_else(|| SendError::Rejected(format!("{}: a WhatsApp template carries a code", self.name)))?;
        let parameter = json!([{ "type": "text", "text": code }]);
        let s = &self.settings;
        let body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": out.to.as_str().trim_start_matches('+'),
            "type": "template",
            "template": {
                "name": s.template,
                "language": { "code": whatsapp_language(&out.locale, s.template_languages.as_deref()) },
                "components": [
                    { "type": "body", "parameters": parameter },
                    { "type": "button", "sub_type": "url", "index": "0", "parameters": parameter },
                ],
            },
        });
        let response = self
            .client
            .post(self.url())
            .bearer_auth(s.access_token.expose())
            .json(&body)
            .traced()
            .send()
            .await
            .map_err(|e| transport_error(&self.name, e))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or_default();
        if status.is_success() {
            let id = answer["messages"][0]["id"].as_str().filter(|i| !i.is_empty() && i.len() <= 200).map(str::to_string);
            return Ok(Accepted { provider: self.name.clone(), provider_message_id: id });
        }
        // The code only: Meta's `message` and `error_data` may echo the request.
        let Some(code) = answer["error"]["code"].as_i64() else { return Err(status_error(&self.name, status, "(WhatsApp Cloud API)")) };
        let detail = format!("WhatsApp error {code}");
        if REJECTIONS.contains(&code) {
            Err(SendError::Rejected(format!("{}: {detail}", self.name)))
        } else if THROTTLED.contains(&code) {
            Err(SendError::retryable(format!("{}: HTTP {} {detail}", self.name, status.as_u16())))
        } else {
            Err(status_error(&self.name, status, &detail))
        }
    }

    fn channels(&self) -> &[Channel] {
        &[Channel::Whatsapp]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{client, only_request, sms};
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn settings(base_url: Option<String>) -> WhatsappCloudSettings {
        WhatsappCloudSettings {
            phone_number_id: "106540352242922".into(),
            access_token: Secret::new("EAAJB-token"),
            app_secret: Some(Secret::new("app-secret")),
            verify_token: None,
            template: "acme_otp".into(),
            template_languages: None,
            base_url,
            api_version: None,
        }
    }

    fn cloud(server: &MockServer) -> WhatsappCloud {
        WhatsappCloud { name: "wa".into(), settings: settings(Some(format!("{}/v23.0", server.uri()))), client: client() }
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
            .and(path("/v23.0/106540352242922/messages"))
            .and(header("authorization", "Bearer EAAJB-token"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        server
    }

    #[tokio::test]
    async fn sends_the_authentication_template_meta_documents() {
        let wamid = "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA";
        let answer = json!({ "messaging_product": "whatsapp", "contacts": [{ "input": "4915123456789", "wa_id": "4915123456789" }], "messages": [{ "id": wamid }] });
        let server = answering(200, answer).await;
        let wa = cloud(&server);
        assert_eq!(wa.channels(), [Channel::Whatsapp]);
        let sent = wa.send(&message("pt-BR")).await.unwrap();
        assert_eq!(sent.provider_message_id.as_deref(), Some(wamid));
        let r = only_request(&server).await;
        assert_eq!(r.headers["content-type"], "application/json");
        let code = json!([{ "type": "text", "text": "482193" }]);
        assert_eq!(
            serde_json::from_slice::<Value>(&r.body).unwrap(),
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "4915123456789",
                "type": "template",
                "template": {
                    "name": "acme_otp",
                    "language": { "code": "pt_BR" },
                    "components": [
                        { "type": "body", "parameters": code },
                        { "type": "button", "sub_type": "url", "index": "0", "parameters": code },
                    ],
                },
            })
        );
    }

    #[test]
    fn the_graph_url_takes_the_version() {
        let wa = |s| WhatsappCloud { name: "wa".into(), settings: s, client: client() };
        assert_eq!(wa(settings(None)).url(), "https://graph.facebook.com/v23.0/106540352242922/messages");
        let s = WhatsappCloudSettings { api_version: Some("21.0".into()), ..settings(None) };
        assert_eq!(wa(s).url(), "https://graph.facebook.com/v21.0/106540352242922/messages");
    }

    #[tokio::test]
    async fn maps_meta_error_codes_without_repeating_the_message() {
        for (status, code, kind) in [
            (400, 131026, "rejected"),
            (400, 131030, "rejected"),
            (400, 132001, "unavailable"),
            (401, 190, "unavailable"),
            (400, 130429, "retryable"),
            (400, 131056, "retryable"),
        ] {
            let problem = json!({ "error": { "message": "(#x) 482193", "type": "OAuthException", "code": code, "fbtrace_id": "Az" } });
            let server = answering(status, problem).await;
            let e = cloud(&server).send(&message("en")).await.unwrap_err();
            let got = match &e {
                SendError::Rejected(_) => "rejected",
                SendError::Unavailable { retry_safe: true, .. } => "retryable",
                SendError::Unavailable { .. } => "unavailable",
            };
            assert_eq!(got, kind, "{code}: {e}");
            assert!(e.to_string().contains(&format!("WhatsApp error {code}")) && !e.to_string().contains("482193"), "{e}");
        }
        let server = answering(500, json!({})).await;
        assert!(matches!(cloud(&server).send(&message("en")).await, Err(SendError::Unavailable { retry_safe: false, .. })));
    }
}
