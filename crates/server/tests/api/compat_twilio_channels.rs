//! Twilio Verify v2's channels over raw HTTP: `call` (with `Locale`, `SendDigits` and the
//! service's `DtmfInputRequired` and `TtsName`), `whatsapp` (the service's `Whatsapp.From`),
//! `email` (`ChannelConfiguration`), a second start by another channel adding an attempt to the
//! same verification, and Twilio's error code for each channel's refusal.
use crate::helpers::{TestApp, fresh_number, providers};
use reqwest::Response;
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn form(app: &TestApp, path: &str, params: &[(&str, &str)]) -> Response {
    app.client.post(app.url(path)).basic_auth(&app.key_id, Some(&app.secret)).form(params).send().await.unwrap()
}

async fn twilio_error(r: Response, status: u16, code: u64) -> Value {
    assert_eq!(r.status().as_u16(), status);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["code"].as_u64(), v["status"].as_u64()), (Some(code), Some(u64::from(status))), "{v}");
    v
}

async fn created(r: Response) -> Value {
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

fn channels_of(v: &Value) -> Vec<&str> {
    v["send_code_attempts"].as_array().unwrap().iter().map(|a| a["channel"].as_str().unwrap()).collect()
}

/// The digits a call says, in order ("1, 2, 3, …" twice): the code.
fn spoken_code(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).take(6).collect()
}

#[tokio::test]
async fn service_channel_fields_are_kept_and_a_call_says_the_tts_name_in_its_locale() {
    let app = TestApp::spawn().await;
    let params = [
        ("FriendlyName", "XJ-9 Shop"),
        ("DtmfInputRequired", "true"),
        ("TtsName", "Shop"),
        ("Whatsapp.From", "+15005550006"),
        ("Whatsapp.MsgServiceSid", "MG0123456789abcdef0123456789abcdef"),
    ];
    let s = created(form(&app, "/v2/Services", &params).await).await;
    assert_eq!((s["dtmf_input_required"].as_bool(), s["tts_name"].as_str()), (Some(true), Some("Shop")), "{s}");
    assert_eq!(s["whatsapp"]["from"], "+15005550006");
    let sid = s["sid"].as_str().unwrap().to_string();
    // The same fields on the native API.
    let native: Value = app.get(&format!("/api/services/{sid}")).await.json().await.unwrap();
    assert_eq!((native["voice_key_press"].as_bool(), native["voice_name"].as_str()), (Some(true), Some("Shop")), "{native}");

    for (field, value) in
        [("TtsName", "two\nlines"), ("Whatsapp.From", "Shop"), ("Whatsapp.MsgServiceSid", "MGxyz"), ("DtmfInputRequired", "maybe")]
    {
        let e = twilio_error(form(&app, "/v2/Services", &[("FriendlyName", "Bad"), (field, value)]).await, 400, 60200).await;
        assert!(e["message"].as_str().unwrap().contains(field), "{field}: {e}");
    }

    // A call in German, saying the TTS name, the code digit by digit, twice.
    let to = fresh_number();
    let path = format!("/v2/Services/{sid}/Verifications");
    let v = created(form(&app, &path, &[("To", &to), ("Channel", "call"), ("Locale", "de"), ("SendDigits", "ww12#")]).await).await;
    assert_eq!((v["channel"].as_str(), v["status"].as_str()), (Some("call"), Some("pending")));
    assert_eq!(channels_of(&v), ["call"]);
    let said = &app.outbox(&to).await[0];
    assert_eq!(said["channel"], "voice");
    let text = said["body"].as_str().unwrap();
    assert!(text.starts_with("Ihr Bestätigungscode für Shop lautet: "), "{text}");
    let code = spoken_code(text);
    let check = form(&app, &format!("/v2/Services/{sid}/VerificationCheck"), &[("To", &to), ("Code", &code)]).await;
    let check: Value = check.json().await.unwrap();
    assert_eq!((check["status"].as_str(), check["channel"].as_str()), (Some("approved"), Some("call")), "{check}");

    let bad = form(&app, &path, &[("To", &fresh_number()), ("Channel", "call"), ("SendDigits", "12ab")]).await;
    assert!(twilio_error(bad, 400, 60200).await["message"].as_str().unwrap().contains("SendDigits"));

    // Twilio's service update changes the channel fields it is given, and only those.
    let r = form(&app, &format!("/v2/Services/{sid}"), &[("TtsName", "Shop Two"), ("DtmfInputRequired", "false")]).await;
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!((updated["dtmf_input_required"].as_bool(), updated["tts_name"].as_str()), (Some(false), Some("Shop Two")), "{updated}");
    assert_eq!(updated["whatsapp"]["from"], "+15005550006");
    let bad = form(&app, &format!("/v2/Services/{sid}"), &[("Whatsapp.From", "nope")]).await;
    assert!(twilio_error(bad, 400, 60200).await["message"].as_str().unwrap().contains("Whatsapp.From"));
}

#[tokio::test]
async fn a_second_start_by_another_channel_is_an_attempt_of_the_same_verification() {
    let app = TestApp::spawn().await;
    let s = created(form(&app, "/v2/Services", &[("FriendlyName", "Attempts")]).await).await;
    let path = format!("/v2/Services/{}/Verifications", s["sid"].as_str().unwrap());
    let to = fresh_number();
    let first = created(form(&app, &path, &[("To", &to), ("Channel", "sms")]).await).await;
    app.advance(chrono::Duration::seconds(5));
    let second = created(form(&app, &path, &[("To", &to), ("Channel", "call")]).await).await;
    assert_eq!(first["sid"], second["sid"]);
    assert_eq!(channels_of(&second), ["sms", "call"]);
    assert_eq!(second["channel"], "call", "the channel of the latest attempt");
    app.advance(chrono::Duration::seconds(5));
    let third = created(form(&app, &path, &[("To", &to), ("Channel", "whatsapp")]).await).await;
    assert_eq!(channels_of(&third), ["sms", "call", "whatsapp"]);
    for a in third["send_code_attempts"].as_array().unwrap() {
        assert!(a["attempt_sid"].as_str().unwrap().starts_with("VL") && a["time"].as_str().unwrap().ends_with('Z'), "{a}");
    }
    let fetched: Value = app
        .client
        .get(app.url(&format!("{path}/{}", first["sid"].as_str().unwrap())))
        .basic_auth(&app.key_id, Some(&app.secret))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((channels_of(&fetched), fetched["channel"].as_str()), (vec!["sms", "call", "whatsapp"], Some("whatsapp")));
    // One code across the three.
    let outbox = app.outbox(&to).await;
    let channels: Vec<&str> = outbox.iter().rev().map(|m| m["channel"].as_str().unwrap()).collect();
    assert_eq!(channels, ["sms", "voice", "whatsapp"]);
    let sms_code: String = outbox.last().unwrap()["body"].as_str().unwrap().chars().filter(char::is_ascii_digit).collect();
    assert_eq!(spoken_code(outbox[1]["body"].as_str().unwrap()), sms_code);
}

#[tokio::test]
async fn an_email_verification_takes_its_channel_configuration_and_checks_by_address() {
    let app = TestApp::spawn().await;
    let s = created(form(&app, "/v2/Services", &[("FriendlyName", "Mail")]).await).await;
    let sid = s["sid"].as_str().unwrap();
    let path = format!("/v2/Services/{sid}/Verifications");
    let config =
        json!({ "from": "codes@mail.example", "from_name": "Mail Codes", "substitutions": { "name": "Ann" }, "template_id": "d-1234" });
    let to = "ann@example.com";
    let v = created(form(&app, &path, &[("To", to), ("Channel", "email"), ("ChannelConfiguration", &config.to_string())]).await).await;
    assert_eq!((v["channel"].as_str(), v["to"].as_str()), (Some("email"), Some(to)));
    assert_eq!(channels_of(&v), ["email"]);
    let mail = &app.outbox(to).await[0];
    assert_eq!(mail["channel"], "email");
    let code: String = mail["body"].as_str().unwrap().chars().filter(char::is_ascii_digit).collect();
    // Fetched and checked by the address, as by a number.
    let fetched = app.client.get(app.url(&format!("{path}/{to}"))).basic_auth(&app.key_id, Some(&app.secret)).send().await.unwrap();
    assert_eq!(fetched.json::<Value>().await.unwrap()["sid"], v["sid"]);
    let check = form(&app, &format!("/v2/Services/{sid}/VerificationCheck"), &[("To", to), ("Code", &code)]).await;
    assert_eq!(check.json::<Value>().await.unwrap()["status"], "approved");

    let bad = [("{\"from\": \"not-an-address\"}", "from"), ("[1, 2]", "JSON object"), ("{\"from_name\": 7}", "from_name")];
    for (config, why) in bad {
        let r = form(&app, &path, &[("To", "bob@example.com"), ("Channel", "email"), ("ChannelConfiguration", config)]).await;
        let e = twilio_error(r, 400, 60200).await;
        assert!(e["message"].as_str().unwrap().contains("ChannelConfiguration") && e["message"].as_str().unwrap().contains(why), "{e}");
    }
    // The native API checks by address too.
    let r = app.post("/api/verifications", json!({ "to": "cy@example.com", "channel": "email" })).await;
    assert_eq!(r.status(), 201);
    let mail = &app.outbox("cy@example.com").await[0];
    let code: String = mail["body"].as_str().unwrap().chars().filter(char::is_ascii_digit).collect();
    let r = app.post("/api/verifications/check", json!({ "to": "cy@example.com", "code": code })).await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "approved");
    // Not an address for the email channel: Twilio's 60436.
    twilio_error(form(&app, &path, &[("To", "no-at-sign"), ("Channel", "email")]).await, 400, 60436).await;
    twilio_error(form(&app, &path, &[("To", &fresh_number()), ("Channel", "email")]).await, 400, 60436).await;
}

#[tokio::test]
async fn channel_refusals_have_twilios_codes() {
    let app = TestApp::spawn().await;
    let s = created(form(&app, "/v2/Services", &[("FriendlyName", "Refusals")]).await).await;
    let path = format!("/v2/Services/{}/Verifications", s["sid"].as_str().unwrap());
    let landline = "+493012345678";
    twilio_error(form(&app, &path, &[("To", landline), ("Channel", "sms")]).await, 403, 60205).await;
    let e = twilio_error(form(&app, &path, &[("To", landline), ("Channel", "whatsapp")]).await, 403, 60205).await;
    assert!(e["message"].as_str().unwrap().starts_with("WhatsApp"), "{e}");
    // A landline takes a call.
    let call = created(form(&app, &path, &[("To", landline), ("Channel", "call")]).await).await;
    assert_eq!(call["channel"], "call");
    // A premium-rate number is never called.
    twilio_error(form(&app, &path, &[("To", "+499001234567"), ("Channel", "call")]).await, 403, 60605).await;
}

/// The app with only a Twilio provider (a mock): no e-mail provider.
async fn app_with_twilio_only() -> (TestApp, MockServer) {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("/Calls.json$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "CAcall1" })))
        .mount(&twilio)
        .await;
    let app = TestApp::spawn_with(|c| {
        c.public_url = Some("https://verify.example.com".into());
        c.providers.insert("tw".into(), providers::twilio(&twilio.uri(), 30_000));
        c.routing.default.providers = vec!["tw".into()];
    })
    .await;
    (app, twilio)
}

#[tokio::test]
async fn the_email_channel_needs_an_email_provider_and_a_call_gets_its_digits_and_language() {
    let (app, twilio) = app_with_twilio_only().await;
    let s = created(form(&app, "/v2/Services", &[("FriendlyName", "NoMail")]).await).await;
    let path = format!("/v2/Services/{}/Verifications", s["sid"].as_str().unwrap());
    let e = twilio_error(form(&app, &path, &[("To", "ann@example.com"), ("Channel", "email")]).await, 400, 60217).await;
    assert!(e["message"].as_str().unwrap().contains("e-mail"), "{e}");

    let to = fresh_number();
    created(form(&app, &path, &[("To", &to), ("Channel", "call"), ("Locale", "en"), ("SendDigits", "w5")]).await).await;
    let requests = twilio.received_requests().await.unwrap();
    let call: Vec<(String, String)> = serde_urlencoded::from_bytes(&requests[0].body).unwrap();
    let field = |name: &str| call.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    assert_eq!((field("To"), field("SendDigits")), (to, "w5".into()));
    assert!(field("Twiml").starts_with("<Response><Say language=\"en-US\">Your NoMail verification code is: "), "{call:?}");
}

#[tokio::test]
async fn a_channel_no_provider_serves_is_a_disabled_channel() {
    let app = TestApp::spawn_with(|c| {
        let mut sms_only = providers::http("http://127.0.0.1:9/send", 1000);
        sms_only.channels = Some(vec!["sms".into()]);
        c.providers.insert("gw".into(), sms_only);
        c.routing.default.providers = vec!["gw".into()];
    })
    .await;
    let s = created(form(&app, "/v2/Services", &[("FriendlyName", "SmsOnly")]).await).await;
    let path = format!("/v2/Services/{}/Verifications", s["sid"].as_str().unwrap());
    for channel in ["call", "whatsapp"] {
        twilio_error(form(&app, &path, &[("To", &fresh_number()), ("Channel", channel)]).await, 400, 60223).await;
    }
}
