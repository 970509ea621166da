//! Calls through the Twilio provider end to end: the call Twilio is asked to place, its signed
//! status callback (a call nobody answered moves the workflow on to its next step at once, a
//! forged one changes nothing), and the key press of a call that waits for one (the code is said
//! only to that call, only after a key, only to a signed request).
use crate::helpers::{TestApp, eventually, expect_error, fresh_number, providers};
use phonegate_providers::signature::twilio_signature;
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const PUBLIC: &str = "https://verify.example.com";

/// The app sending everything through a Twilio mock that answers calls with `CAcall1` and
/// messages with `SMtw1`. Keep the mock alive for the whole test (see webhooks.rs).
async fn app_with_twilio() -> (TestApp, MockServer) {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("/Calls.json$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "CAcall1" })))
        .mount(&twilio)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("/Messages.json$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SMtw1" })))
        .mount(&twilio)
        .await;
    let app = TestApp::spawn_with(|c| {
        c.public_url = Some(PUBLIC.into());
        c.providers.insert("tw".into(), providers::twilio(&twilio.uri(), 30_000));
        c.routing.default.providers = vec!["tw".into()];
    })
    .await;
    (app, twilio)
}

fn form(r: &Request) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(&r.body).unwrap()
}

fn field(form: &[(String, String)], name: &str) -> String {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default()
}

/// The requests Twilio got for `resource` (`Calls`, `Messages`), once there are `n`.
async fn requests(twilio: &MockServer, resource: &str, n: usize) -> Vec<Request> {
    eventually(|| async {
        let all = twilio.received_requests().await.unwrap();
        let wanted: Vec<Request> = all.into_iter().filter(|r| r.url.path().ends_with(&format!("/{resource}.json"))).collect();
        (wanted.len() >= n).then_some(wanted)
    })
    .await
}

fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// POSTs `p` to `path_and_query`, signed for the public URL with `token`.
async fn signed(app: &TestApp, path_and_query: &str, p: &[(String, String)], token: &str) -> reqwest::Response {
    let sig = twilio_signature(token, &format!("{PUBLIC}{path_and_query}"), p);
    app.client.post(app.url(path_and_query)).form(p).header("X-Twilio-Signature", sig).send().await.unwrap()
}

async fn detail(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap()
}

/// The digits a call says ("1, 2, 3, 4, 5, 6" twice): the code.
fn spoken_code(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).take(6).collect()
}

#[tokio::test]
async fn a_call_nobody_answers_moves_the_workflow_on_and_a_forged_status_changes_nothing() {
    let (app, twilio) = app_with_twilio().await;
    let to = fresh_number();
    let workflow = json!([{ "channel": "voice", "timeout_secs": 300 }, { "channel": "sms" }]);
    let r = app.post("/api/verifications", json!({ "to": to, "workflow": workflow, "locale": "de" })).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();

    let call = form(&requests(&twilio, "Calls", 1).await[0]);
    assert_eq!((field(&call, "To"), field(&call, "From")), (to.clone(), "+15005550006".into()));
    assert_eq!(field(&call, "StatusCallback"), format!("{PUBLIC}/webhooks/twilio/call-status"));
    assert_eq!(field(&call, "StatusCallbackEvent"), "completed");
    let twiml = field(&call, "Twiml");
    assert!(twiml.starts_with("<Response><Say language=\"de-DE\">Ihr Bestätigungscode"), "{twiml}");
    let code = spoken_code(&twiml);
    let digits: Vec<String> = code.chars().map(String::from).collect();
    assert_eq!(twiml.matches(&digits.join(", ")).count(), 2, "{twiml}");

    let path = "/webhooks/twilio/call-status";
    let no_answer = params(&[("AccountSid", "AC0123"), ("CallSid", "CAcall1"), ("CallStatus", "no-answer")]);
    expect_error(signed(&app, path, &no_answer, "wrong-token").await, 403, "invalid_signature").await;
    let unsigned = app.client.post(app.url(path)).form(&no_answer).send().await.unwrap();
    expect_error(unsigned, 403, "invalid_signature").await;
    let d = detail(&app, &id).await;
    assert_eq!((d["step"].as_u64(), d["steps"][0]["status"].as_str()), (Some(0), Some("sent")), "{d}");
    assert!(twilio.received_requests().await.unwrap().iter().all(|r| !r.url.path().ends_with("/Messages.json")));

    assert_eq!(signed(&app, path, &no_answer, "twilio-token").await.status(), 204);
    // The SMS step starts at once, with the same code.
    let sms = form(&requests(&twilio, "Messages", 1).await[0]);
    assert!(field(&sms, "Body").contains(&code), "{sms:?}");
    let d = eventually(|| async {
        let d = detail(&app, &id).await;
        (d["step"].as_u64() == Some(1)).then_some(d)
    })
    .await;
    assert_eq!(d["steps"][0]["status"], "undelivered", "{d}");
    assert_eq!(d["messages"].as_array().unwrap().iter().find(|m| m["channel"] == "voice").unwrap()["error"], "Twilio call no-answer");
    assert_eq!(app.check(&id, &code).await.json::<Value>().await.unwrap()["status"], "approved");
}

#[tokio::test]
async fn an_answered_call_is_delivered() {
    let (app, twilio) = app_with_twilio().await;
    let r = app.post("/api/verifications", json!({ "to": fresh_number(), "channel": "voice" })).await;
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    requests(&twilio, "Calls", 1).await;
    let completed = params(&[("AccountSid", "AC0123"), ("CallSid", "CAcall1"), ("CallStatus", "completed")]);
    assert_eq!(signed(&app, "/webhooks/twilio/call-status", &completed, "twilio-token").await.status(), 204);
    let d = detail(&app, &id).await;
    assert_eq!(d["messages"][0]["status"], "delivered", "{d}");
    // Progress events were not asked for; one arriving changes nothing.
    let ringing = params(&[("AccountSid", "AC0123"), ("CallSid", "CAcall1"), ("CallStatus", "ringing")]);
    assert_eq!(signed(&app, "/webhooks/twilio/call-status", &ringing, "twilio-token").await.status(), 204);
    assert_eq!(detail(&app, &id).await["messages"][0]["status"], "delivered");
}

#[tokio::test]
async fn a_call_that_waits_for_a_key_says_the_code_only_to_its_signed_key_press() {
    let (app, twilio) = app_with_twilio().await;
    let r = app.post("/api/services", json!({ "name": "keypress", "voice_key_press": true })).await;
    assert_eq!(r.status(), 201);
    let to = fresh_number();
    let r = app.post("/api/verifications", json!({ "to": to, "channel": "voice", "service": "keypress", "locale": "en" })).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let twiml = field(&form(&requests(&twilio, "Calls", 1).await[0]), "Twiml");
    assert!(twiml.contains("<Gather numDigits=\"1\"") && !twiml.contains("code is"), "{twiml}");
    let action = twiml.split("action=\"").nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&");
    let path = action.strip_prefix(PUBLIC).unwrap().to_string();
    assert!(path.starts_with(&format!("/webhooks/twilio/call-gather?verification={id}&message=SM")), "{path}");
    assert!(path.ends_with("&language=en-US"), "{path}");

    let pressed = params(&[("AccountSid", "AC0123"), ("CallSid", "CAcall1"), ("Digits", "5")]);
    expect_error(signed(&app, &path, &pressed, "wrong-token").await, 403, "invalid_signature").await;
    // Another call (a signed request naming this message): hung up on.
    let other = params(&[("AccountSid", "AC0123"), ("CallSid", "CAother"), ("Digits", "5")]);
    let r = signed(&app, &path, &other, "twilio-token").await;
    assert_eq!(r.text().await.unwrap(), "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Hangup/></Response>");
    // No key (the prompt timed out into the action): hung up on.
    let silent = params(&[("AccountSid", "AC0123"), ("CallSid", "CAcall1"), ("Digits", "")]);
    assert!(signed(&app, &path, &silent, "twilio-token").await.text().await.unwrap().ends_with("<Response><Hangup/></Response>"));

    let r = signed(&app, &path, &pressed, "twilio-token").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/xml");
    let said = r.text().await.unwrap();
    assert!(said.contains("<Response><Say language=\"en-US\">Your keypress verification code is: "), "{said}");
    let code = spoken_code(said.split("<Say").nth(1).unwrap());
    let digits: Vec<String> = code.chars().map(String::from).collect();
    assert!(!twiml.contains(&digits.join(", ")), "no code before a key press: {twiml}");
    let r = app.check(&id, &code).await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "approved");
    // Approved: the code is not said again.
    let r = signed(&app, &path, &pressed, "twilio-token").await;
    assert!(r.text().await.unwrap().ends_with("<Response><Hangup/></Response>"));
}

#[tokio::test]
async fn a_services_spoken_name_and_whatsapp_sender_reach_twilio() {
    let (app, twilio) = app_with_twilio().await;
    let bad = app.post("/api/services", json!({ "name": "bad-sender", "whatsapp_from": "Shop" })).await;
    assert!(expect_error(bad, 400, "invalid_parameter").await["message"].as_str().unwrap().contains("whatsapp_from"));
    let bad = app.post("/api/services", json!({ "name": "bad-name", "voice_name": "two\nlines" })).await;
    assert!(expect_error(bad, 400, "invalid_parameter").await["message"].as_str().unwrap().contains("voice_name"));
    let r = app.post("/api/services", json!({ "name": "XJ-9 Shop", "voice_name": "Shop", "whatsapp_from": "+1 500 555 0009" })).await;
    assert_eq!(r.status(), 201);
    let service: Value = app.get("/api/services/XJ-9 Shop").await.json().await.unwrap();
    assert_eq!((service["voice_name"].as_str(), service["whatsapp_from"].as_str()), (Some("Shop"), Some("+15005550009")), "{service}");

    // A call says the spoken name; an SMS keeps the service's name.
    let to = fresh_number();
    let r = app.post("/api/verifications", json!({ "to": to, "service": "XJ-9 Shop", "channel": "voice", "locale": "en" })).await;
    assert_eq!(r.status(), 201);
    let twiml = field(&form(&requests(&twilio, "Calls", 1).await[0]), "Twiml");
    assert!(twiml.contains(">Your Shop verification code is: "), "{twiml}");
    let r = app.post("/api/verifications", json!({ "to": fresh_number(), "service": "XJ-9 Shop", "channel": "sms" })).await;
    assert_eq!(r.status(), 201);
    assert!(field(&form(&requests(&twilio, "Messages", 1).await[0]), "Body").contains("XJ-9 Shop"));

    // WhatsApp goes from the service's sender, as the Content template with the code.
    let r = app.post("/api/verifications", json!({ "to": fresh_number(), "service": "XJ-9 Shop", "channel": "whatsapp" })).await;
    assert_eq!(r.status(), 201);
    let wa = form(&requests(&twilio, "Messages", 2).await[1]);
    assert_eq!(field(&wa, "From"), "whatsapp:+15005550009");
    assert_eq!(field(&wa, "ContentSid"), "HX0123456789abcdef0123456789abcdef");
    let variables: Value = serde_json::from_str(&field(&wa, "ContentVariables")).unwrap();
    assert_eq!(variables["1"].as_str().map(str::len), Some(6), "{variables}");
    assert!(field(&wa, "To").starts_with("whatsapp:+"));

    // Both change with the service, validated as on create.
    let patch = |body: Value| app.client.patch(app.url("/api/services/XJ-9 Shop")).bearer_auth(&app.secret).json(&body).send();
    let r = patch(json!({ "voice_name": "Shoppe", "whatsapp_from": "+15005550010" })).await.unwrap();
    assert_eq!(r.status(), 200);
    let service: Value = r.json().await.unwrap();
    assert_eq!((service["voice_name"].as_str(), service["whatsapp_from"].as_str()), (Some("Shoppe"), Some("+15005550010")));
    let r = patch(json!({ "whatsapp_from": "0800 SHOP" })).await.unwrap();
    assert!(expect_error(r, 400, "invalid_parameter").await["message"].as_str().unwrap().contains("whatsapp_from"));
}
