//! Calls by the Vonage Voice API (its "Create an outbound call" reference and the NCCO
//! reference): `POST /v1/calls` with the application's JWT, JSON
//! `{to: [{type: "phone", number}], from: {type: "phone", number}, ncco, event_url}`, numbers as
//! digits without `+`; `201 {uuid, status: "started", …}`, the `uuid` being the call's id in its
//! events.
//!
//! The NCCO speaks the text (`talk`, in the Vonage voice of the text's language). A call that
//! waits for a key press first says a prompt that a key interrupts (`bargeIn`) and collects one
//! digit (`input`, 10 s): Vonage sends the result to the call's event URL, where phonegate answers
//! a key with no NCCO, so the call goes on to speak the code, and silence (an answering machine)
//! with an NCCO that ends the call (`/webhooks/vonage/call-event`).
use super::Vonage;
use crate::common::{Traced, status_error, transport_error};
use phonegate_core::locales;
use phonegate_core::ports::{Accepted, Outgoing, SendError};
use serde_json::{Value, json};

/// Seconds a call waits for the key press.
const KEY_TIMEOUT_SECS: u32 = 10;

/// Vonage's text-to-speech language (BCP-47, its "Text to Speech" guide) for a locale.
pub fn voice_language(locale: &str) -> &'static str {
    match locale {
        "af" => "af-ZA",
        "ar" => "ar",
        "ca" => "ca-ES",
        "cs" => "cs-CZ",
        "da" => "da-DK",
        "de" => "de-DE",
        "el" => "el-GR",
        "en-GB" => "en-GB",
        "es" => "es-ES",
        "fi" => "fi-FI",
        "fr" => "fr-FR",
        "he" => "he-IL",
        "hi" => "hi-IN",
        "hu" => "hu-HU",
        "id" => "id-ID",
        "it" => "it-IT",
        "ja" => "ja-JP",
        "ko" => "ko-KR",
        "ms" => "ms-MY",
        "nb" => "nb-NO",
        "nl" => "nl-NL",
        "pl" => "pl-PL",
        "pt" => "pt-PT",
        "pt-BR" => "pt-BR",
        "ro" => "ro-RO",
        "ru" => "ru-RU",
        "sv" => "sv-SE",
        "th" => "th-TH",
        "tl" => "fil-PH",
        "tr" => "tr-TR",
        "uk" => "uk-UA",
        "vi" => "vi-VN",
        "zh" | "zh-CN" => "cmn-CN",
        "zh-HK" => "yue-CN",
        _ => "en-US",
    }
}

/// A number as the Voice API takes it: digits only.
fn is_number(s: &str) -> bool {
    let digits = s.trim_start_matches('+');
    !digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit())
}

impl Vonage {
    /// The call's NCCO: an optional prompt and key press, then the text.
    fn ncco(&self, out: &Outgoing, event_url: Option<&str>) -> Value {
        // The text is in `spoken_locale`'s language (English where a locale has no spoken text).
        let language = voice_language(locales::spoken_locale(&out.locale));
        let talk = json!({ "action": "talk", "text": out.body, "language": language });
        if !out.wait_for_key {
            return json!([talk]);
        }
        let prompt = json!({ "action": "talk", "text": locales::key_prompt(&out.locale), "language": language, "bargeIn": true });
        let mut input = json!({ "action": "input", "type": ["dtmf"], "dtmf": { "maxDigits": 1, "timeOut": KEY_TIMEOUT_SECS } });
        if let Some(url) = event_url {
            input["eventUrl"] = json!([url]);
        }
        json!([prompt, input, talk])
    }

    /// Places the call; the call's `uuid` is the message's provider id.
    pub(super) async fn call(&self, out: &Outgoing) -> Result<Accepted, SendError> {
        let s = &self.settings;
        let from = [out.from.as_deref(), s.voice_from.as_deref(), s.from.as_deref()]
            .into_iter()
            .flatten()
            .find(|f| is_number(f))
            .ok_or_else(|| SendError::unavailable(format!("{}: no number to call from (`voice_from`)", self.name)))?;
        let event_url = self.callback("/webhooks/vonage/call-event");
        let mut body = json!({
            "to": [{ "type": "phone", "number": out.to.as_str().trim_start_matches('+') }],
            "from": { "type": "phone", "number": from.trim_start_matches('+') },
            "ncco": self.ncco(out, event_url.as_deref()),
        });
        if let Some(url) = &event_url {
            body["event_url"] = json!([url]);
        }
        let response = self.api_post("/v1/calls")?.json(&body).traced().send().await.map_err(|e| transport_error(&self.name, e))?;
        let status = response.status();
        // Vonage's error bodies are not repeated: `invalid_parameters` may echo the request.
        if !status.is_success() {
            return Err(status_error(&self.name, status, "(Voice API)"));
        }
        let created: Value = response.json().await.unwrap_or_default();
        let uuid = created["uuid"]
            .as_str()
            .filter(|u| !u.is_empty() && u.len() <= 100)
            .ok_or_else(|| SendError::unavailable(format!("{}: the Voice API answered without a call uuid", self.name)))?;
        Ok(Accepted { provider: self.name.clone(), provider_message_id: Some(uuid.to_string()) })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::settings;
    use super::*;
    use crate::app_jwt::testing::{PRIVATE_KEY, claims};
    use crate::secret::Secret;
    use crate::testing::{client, only_request, sms};
    use phonegate_core::Channel;
    use phonegate_core::ports::MessageSender;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const UUID: &str = "63f61863-4a51-4f6b-86e1-46edebcf9356";

    fn vonage(server: &MockServer, public_url: Option<&str>) -> Vonage {
        let s = super::super::VonageSettings {
            application_id: Some("app-1".into()),
            private_key: Some(Secret::new(PRIVATE_KEY)),
            voice_from: Some("+447700900001".into()),
            api_base_url: Some(server.uri()),
            ..settings()
        };
        Vonage::new("vg", s, client(), public_url.map(str::to_string)).unwrap()
    }

    fn call(locale: &str, wait_for_key: bool) -> Outgoing {
        Outgoing {
            channel: Channel::Voice,
            locale: locale.into(),
            code: Some("4821".into()),
            wait_for_key,
            ..sms("Ihr Bestätigungscode für Acme lautet: 4, 8, 2, 1. Noch einmal, Ihr Code lautet: 4, 8, 2, 1.")
        }
    }

    async fn answering(status: u16, body: Value) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/calls"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        server
    }

    #[tokio::test]
    async fn places_a_call_that_speaks_the_text_signed_by_the_application() {
        let server =
            answering(201, json!({ "uuid": UUID, "status": "started", "direction": "outbound", "conversation_uuid": "CON-1" })).await;
        let v = vonage(&server, Some("https://verify.example.com"));
        assert_eq!(v.channels(), [Channel::Sms, Channel::Voice]);
        let sent = v.send(&call("de", false)).await.unwrap();
        assert_eq!(sent.provider_message_id.as_deref(), Some(UUID));
        let r = only_request(&server).await;
        assert_eq!(r.headers["content-type"], "application/json");
        let c = claims(&r);
        assert_eq!(c["application_id"], "app-1");
        assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), crate::app_jwt::JWT_LIFETIME);
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let text = call("de", false).body;
        assert_eq!(
            body,
            json!({
                "to": [{ "type": "phone", "number": "4915123456789" }],
                "from": { "type": "phone", "number": "447700900001" },
                "ncco": [{ "action": "talk", "text": text, "language": "de-DE" }],
                "event_url": ["https://verify.example.com/webhooks/vonage/call-event"],
            })
        );
    }

    #[tokio::test]
    async fn a_call_that_waits_for_a_key_prompts_first_and_a_text_without_a_voice_is_english() {
        let server = answering(201, json!({ "uuid": UUID })).await;
        vonage(&server, Some("https://verify.example.com")).send(&call("de", true)).await.unwrap();
        let body: Value = serde_json::from_slice(&only_request(&server).await.body).unwrap();
        let event = "https://verify.example.com/webhooks/vonage/call-event";
        assert_eq!(
            body["ncco"],
            json!([
                { "action": "talk", "text": locales::key_prompt("de"), "language": "de-DE", "bargeIn": true },
                { "action": "input", "type": ["dtmf"], "dtmf": { "maxDigits": 1, "timeOut": 10 }, "eventUrl": [event] },
                { "action": "talk", "text": call("de", true).body, "language": "de-DE" },
            ])
        );
        // French is spoken in a French voice; a language without a spoken text (`xx`) is the
        // English sentence in an English voice.
        let server = answering(201, json!({ "uuid": UUID })).await;
        vonage(&server, None).send(&call("fr", false)).await.unwrap();
        let body: Value = serde_json::from_slice(&only_request(&server).await.body).unwrap();
        assert_eq!(body["ncco"][0]["language"], "fr-FR");
        let server = answering(201, json!({ "uuid": UUID })).await;
        vonage(&server, None).send(&call("xx", false)).await.unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&only_request(&server).await.body).unwrap()["ncco"][0]["language"], "en-US");
        assert!(body.get("event_url").is_none(), "no public_url, no event URL");
    }

    #[tokio::test]
    async fn the_caller_id_is_a_number_and_errors_do_not_repeat_vonage() {
        // A voice route's `from` wins; an alphanumeric SMS sender is never a caller id.
        let server = answering(201, json!({ "uuid": UUID })).await;
        let routed = Outgoing { from: Some("+447700900999".into()), ..call("en", false) };
        vonage(&server, None).send(&routed).await.unwrap();
        let body: Value = serde_json::from_slice(&only_request(&server).await.body).unwrap();
        assert_eq!(body["from"]["number"], "447700900999");
        let server = MockServer::start().await;
        let mut v = vonage(&server, None);
        v.settings.voice_from = None;
        let e = v.send(&call("en", false)).await.unwrap_err();
        assert!(matches!(&e, SendError::Unavailable { .. }) && e.to_string().contains("voice_from"), "{e}");
        assert!(server.received_requests().await.unwrap().is_empty());

        for (status, kind) in [(400, "unavailable"), (401, "unavailable"), (429, "retryable"), (500, "unavailable")] {
            let server = answering(status, json!({ "title": "Bad Request", "detail": "4915123456789 4, 8, 2, 1" })).await;
            let e = vonage(&server, None).send(&call("en", false)).await.unwrap_err();
            let got = match &e {
                SendError::Rejected(_) => "rejected",
                SendError::Unavailable { retry_safe: true, .. } => "retryable",
                SendError::Unavailable { .. } => "unavailable",
            };
            assert_eq!(got, kind, "{status}: {e}");
            assert!(!e.to_string().contains("4, 8, 2, 1"), "{e}");
        }
        let server = answering(201, json!({ "status": "started" })).await;
        assert!(vonage(&server, None).send(&call("en", false)).await.is_err(), "a call without uuid cannot be followed");
    }
}
