use super::*;
use crate::testing::{basic, client, only_request, sms};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PUBLIC: &str = "https://verify.example.com";

fn settings(server: &MockServer, from: Option<&str>) -> TwilioSettings {
    TwilioSettings {
        account_sid: "AC0123".into(),
        auth_token: Secret::new("token"),
        api_key_sid: None,
        api_key_secret: None,
        from: from.map(str::to_string),
        messaging_service_sid: Some("MG0123".into()),
        base_url: Some(server.uri()),
        voice_from: None,
        voices: BTreeMap::new(),
        whatsapp_from: None,
        whatsapp_content_sid: None,
    }
}

fn twilio(server: &MockServer, from: Option<&str>) -> Twilio {
    Twilio::new("tw".into(), settings(server, from), client(), Some(format!("{PUBLIC}/")))
}

async fn answering_at(resource: &str, status: u16, body: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/AC0123/{resource}.json")))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    server
}

async fn answering(status: u16, body: serde_json::Value) -> MockServer {
    answering_at("Messages", status, body).await
}

/// The form fields of a request, in order.
fn form(r: &wiremock::Request) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(&r.body).unwrap()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {name} in {form:?}"))
}

fn kind(err: &SendError) -> &'static str {
    match err {
        SendError::Rejected(_) => "rejected",
        SendError::Unavailable { retry_safe: true, .. } => "retryable",
        SendError::Unavailable { .. } => "unavailable",
    }
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
    let mut s = settings(&server, None);
    s.api_key_sid = Some("SK0123".into());
    s.api_key_secret = Some(Secret::new("keysecret"));
    let t = Twilio::new("tw".into(), s, client(), Some(PUBLIC.into()));
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
        let body =
            serde_json::json!({ "code": code, "message": "msg", "more_info": "https://www.twilio.com/docs/errors/x", "status": status });
        let server = answering(status, body).await;
        let err = twilio(&server, Some("+15005550006")).send(&sms("x")).await.unwrap_err();
        assert_eq!(kind(&err), expected, "{status}/{code}: {err}");
        assert!(err.to_string().contains(&code.to_string()));
    }
}

#[tokio::test]
async fn an_unreachable_host_is_safe_to_retry_and_leaks_no_credentials() {
    let server = MockServer::start().await;
    let mut s = settings(&server, Some("+1"));
    s.base_url = Some("http://127.0.0.1:9".into());
    match Twilio::new("tw".into(), s, client(), None).send(&sms("x")).await.unwrap_err() {
        SendError::Unavailable { retry_safe, reason } => {
            assert!(retry_safe);
            assert!(!reason.contains("token"));
        }
        other => panic!("{other:?}"),
    }
}

/// A call of a verification, in German, saying "1, 2, 3, 4" twice.
fn call(wait_for_key: bool) -> Outgoing {
    Outgoing {
        channel: Channel::Voice,
        locale: "de".into(),
        code: Some("1234".into()),
        wait_for_key,
        ..sms("Ihr Code lautet: 1, 2, 3, 4. Noch einmal: 1, 2, 3, 4. <&>")
    }
}

#[tokio::test]
async fn a_call_says_the_code_in_its_language_with_the_configured_voice() {
    let server = answering_at("Calls", 201, serde_json::json!({ "sid": "CAabc", "status": "queued" })).await;
    let mut s = settings(&server, Some("MyShop"));
    s.voice_from = Some("+15005550006".into());
    s.voices.insert("de-DE".into(), "Polly.Marlene".into());
    let t = Twilio::new("tw".into(), s, client(), Some(PUBLIC.into()));
    assert_eq!(t.channels(), [Channel::Sms, Channel::Voice]);
    let sent = t.send(&Outgoing { send_digits: Some("ww123#".into()), ..call(false) }).await.unwrap();
    assert_eq!(sent.provider_message_id.as_deref(), Some("CAabc"));
    let r = only_request(&server).await;
    assert_eq!((r.method.as_str(), r.url.path()), ("POST", "/2010-04-01/Accounts/AC0123/Calls.json"));
    assert_eq!(r.headers["authorization"], basic("AC0123", "token").as_str());
    let twiml = "<Response><Say language=\"de-DE\" voice=\"Polly.Marlene\">\
                 Ihr Code lautet: 1, 2, 3, 4. Noch einmal: 1, 2, 3, 4. &lt;&amp;&gt;</Say></Response>";
    let expected: Vec<(String, String)> = [
        ("To", "+4915123456789"),
        ("From", "+15005550006"),
        ("Twiml", twiml),
        ("SendDigits", "ww123#"),
        ("StatusCallback", "https://verify.example.com/webhooks/twilio/call-status"),
        ("StatusCallbackEvent", "completed"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(form(&r), expected);
}

#[tokio::test]
async fn a_call_that_waits_for_a_key_says_only_the_prompt_and_fetches_the_code_on_a_key_press() {
    let server = answering_at("Calls", 201, serde_json::json!({ "sid": "CAkey" })).await;
    let mut t = twilio(&server, Some("+15005550006"));
    t.send(&call(true)).await.unwrap();
    let f = form(&only_request(&server).await);
    // The routed sender wins over the provider's.
    assert_eq!(field(&f, "From"), "+15005550006");
    let twiml = field(&f, "Twiml");
    assert_eq!(
        twiml,
        "<Response><Gather numDigits=\"1\" timeout=\"10\" action=\"https://verify.example.com/webhooks/twilio/call-gather\
         ?verification=VE00000000000000000000000000000001&amp;message=SM00000000000000000000000000000001&amp;language=de-DE\">\
         <Say language=\"de-DE\">Drücken Sie eine beliebige Taste, um Ihren Bestätigungscode zu hören.</Say></Gather></Response>"
    );
    assert!(!twiml.contains("1, 2, 3, 4"), "the code is said only after a key press");

    // A language without a prompt of its own: the prompt in English, the code in its language.
    let server = answering_at("Calls", 201, serde_json::json!({ "sid": "CAkey" })).await;
    t.settings.base_url = Some(server.uri());
    t.send(&Outgoing { locale: "ja".into(), from: Some("+15005550007".into()), ..call(true) }).await.unwrap();
    let f = form(&only_request(&server).await);
    assert_eq!(field(&f, "From"), "+15005550007");
    let twiml = field(&f, "Twiml");
    assert!(twiml.contains("&amp;language=ja-JP\""), "{twiml}");
    assert!(twiml.contains("<Say language=\"en-US\">Press any key to hear your verification code.</Say>"), "{twiml}");

    // Without a public URL, Twilio could not fetch the code: not placed at all.
    let server = answering_at("Calls", 201, serde_json::json!({ "sid": "CAkey" })).await;
    let t = Twilio::new("tw".into(), settings(&server, Some("+15005550006")), client(), None);
    let err = t.send(&call(true)).await.unwrap_err();
    assert_eq!(kind(&err), "unavailable");
    assert!(err.to_string().contains("public_url"), "{err}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_call_in_a_locale_twilio_has_no_voice_for_names_no_language() {
    let server = answering_at("Calls", 201, serde_json::json!({ "sid": "CAx" })).await;
    twilio(&server, Some("+15005550006")).send(&Outgoing { locale: "xx".into(), ..call(false) }).await.unwrap();
    let f = form(&only_request(&server).await);
    assert!(field(&f, "Twiml").starts_with("<Response><Say>Ihr Code"), "{f:?}");
}

#[tokio::test]
async fn call_errors_are_mapped_and_a_call_needs_a_number_to_call_from() {
    let body = serde_json::json!({ "code": 21211, "message": "Invalid 'To' Phone Number", "status": 400 });
    let server = answering_at("Calls", 400, body).await;
    assert_eq!(kind(&twilio(&server, Some("+15005550006")).send(&call(false)).await.unwrap_err()), "rejected");
    let body = serde_json::json!({ "code": 21210, "message": "'From' phone number not verified", "status": 400 });
    let server = answering_at("Calls", 400, body).await;
    assert_eq!(kind(&twilio(&server, Some("+15005550006")).send(&call(false)).await.unwrap_err()), "unavailable");
    let server = answering_at("Calls", 201, serde_json::json!({ "sid": "CAx" })).await;
    let err = twilio(&server, None).send(&call(false)).await.unwrap_err();
    assert_eq!(kind(&err), "unavailable");
    assert!(server.received_requests().await.unwrap().is_empty());
}

fn whatsapp_settings(server: &MockServer) -> TwilioSettings {
    TwilioSettings {
        whatsapp_from: Some("+15005550006".into()),
        whatsapp_content_sid: Some("HX0123456789abcdef0123456789abcdef".into()),
        ..settings(server, Some("MyShop"))
    }
}

fn whatsapp() -> Outgoing {
    Outgoing { channel: Channel::Whatsapp, code: Some("482913".into()), ..sms("Your code is 482913") }
}

#[tokio::test]
async fn whatsapp_sends_the_authentication_template_with_the_code() {
    let server = answering(201, serde_json::json!({ "sid": "SMwa1", "status": "queued" })).await;
    let t = Twilio::new("tw".into(), whatsapp_settings(&server), client(), Some(PUBLIC.into()));
    assert_eq!(t.channels(), [Channel::Sms, Channel::Voice, Channel::Whatsapp]);
    assert_eq!(t.send(&whatsapp()).await.unwrap().provider_message_id.as_deref(), Some("SMwa1"));
    let r = only_request(&server).await;
    assert_eq!((r.method.as_str(), r.url.path()), ("POST", "/2010-04-01/Accounts/AC0123/Messages.json"));
    assert_eq!(r.headers["authorization"], basic("AC0123", "token").as_str());
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        "To=whatsapp%3A%2B4915123456789&From=whatsapp%3A%2B15005550006&ContentSid=HX0123456789abcdef0123456789abcdef\
         &ContentVariables=%7B%221%22%3A%22482913%22%7D\
         &StatusCallback=https%3A%2F%2Fverify.example.com%2Fwebhooks%2Ftwilio%2Fstatus"
    );

    // A WhatsApp route's sender wins, with or without its prefix.
    let server = answering(201, serde_json::json!({ "sid": "SMwa2" })).await;
    let t = Twilio::new("tw".into(), whatsapp_settings(&server), client(), None);
    t.send(&Outgoing { from: Some("whatsapp:+15005550009".into()), ..whatsapp() }).await.unwrap();
    let f = form(&only_request(&server).await);
    assert_eq!(field(&f, "From"), "whatsapp:+15005550009");
    assert!(!f.iter().any(|(k, _)| k == "StatusCallback" || k == "Body"), "{f:?}");
}

#[tokio::test]
async fn a_number_without_whatsapp_is_refused_and_missing_settings_fail_over() {
    for code in [63003, 63024] {
        let body = serde_json::json!({ "code": code, "message": "Invalid message recipient", "status": 400 });
        let server = answering(400, body).await;
        let t = Twilio::new("tw".into(), whatsapp_settings(&server), client(), None);
        let err = t.send(&whatsapp()).await.unwrap_err();
        assert_eq!(kind(&err), "rejected", "{code}");
        assert!(err.to_string().contains(&code.to_string()) && !err.to_string().contains("482913"));
    }
    // No WhatsApp sender: another provider may have one.
    let server = answering(201, serde_json::json!({ "sid": "SMwa" })).await;
    let s = TwilioSettings { whatsapp_from: None, ..whatsapp_settings(&server) };
    let err = Twilio::new("tw".into(), s, client(), None).send(&whatsapp()).await.unwrap_err();
    assert_eq!(kind(&err), "unavailable");
    assert!(err.to_string().contains("whatsapp_from"), "{err}");
    assert!(server.received_requests().await.unwrap().is_empty());
}
