//! What a start and its service say about the channels reaches the provider: an e-mail's own
//! sender (a later start's replaces it), the keys a call dials, the name a call says, the
//! language a call's text is in, and the service's WhatsApp sender.
use crate::harness::{Core, admin, fresh_number};
use phonegate_core::service::{ChannelSettings, ServiceSettings};
use phonegate_core::{Channel, StartOptions, StartRequest, VerifyError};

async fn service(core: &Core) -> String {
    let channels = ChannelSettings {
        email_from: Some("Shop <codes@shop.example>".into()),
        voice_name: Some("Shop".into()),
        whatsapp_from: Some("+15005550006".into()),
        ..Default::default()
    };
    let settings = ServiceSettings { name: "XJ9-Shop".into(), channels, ..Default::default() };
    core.services.catalog.create_service(&admin(), settings).await.unwrap().id
}

fn start(service: &str, to: &str, channel: Channel, options: StartOptions) -> StartRequest {
    StartRequest { service: Some(service.into()), to: to.into(), channel: Some(channel), locale: Some("en".into()), options }
}

#[tokio::test]
async fn an_email_goes_from_the_starts_sender_else_the_services() {
    let core = Core::new().await;
    let svc = service(&core).await;
    let own = StartOptions { email_from: Some("\"Shop (Codes)\" <otp@shop.example>".into()), ..Default::default() };
    core.verifier.start(&admin(), start(&svc, "ann@example.com", Channel::Email, own)).await.unwrap();
    let first = core.sender.wait_for("ann@example.com", 1).await;
    assert_eq!(first.email.unwrap().from.as_deref(), Some("\"Shop (Codes)\" <otp@shop.example>"));
    // A later start for the pending verification with another sender: this send and the next.
    let other = StartOptions { email_from: Some("codes2@shop.example".into()), ..Default::default() };
    let again = core.verifier.start(&admin(), start(&svc, "ann@example.com", Channel::Email, other)).await.unwrap();
    assert!(again.resent);
    assert_eq!(core.sender.wait_for("ann@example.com", 2).await.email.unwrap().from.as_deref(), Some("codes2@shop.example"));
    core.verifier.start(&admin(), start(&svc, "bob@example.com", Channel::Email, StartOptions::default())).await.unwrap();
    let plain = core.sender.wait_for("bob@example.com", 1).await;
    assert_eq!(plain.email.unwrap().from.as_deref(), Some("Shop <codes@shop.example>"), "the service's sender");

    // One mailbox only, as a service's sender.
    for bad in ["not an address", "a@shop.example, b@shop.example", "Shop, Inc. <a@shop.example>"] {
        let options = StartOptions { email_from: Some(bad.into()), ..Default::default() };
        let err = core.verifier.start(&admin(), start(&svc, "cy@example.com", Channel::Email, options)).await.unwrap_err();
        assert!(matches!(err, VerifyError::InvalidParameter { field: phonegate_core::error::Field::EmailFrom, .. }), "{bad}: {err:?}");
    }
}

#[tokio::test]
async fn a_call_dials_its_digits_and_says_the_spoken_name_in_the_language_of_its_text() {
    let core = Core::new().await;
    let svc = service(&core).await;
    let to = fresh_number();
    let digits = StartOptions { send_digits: Some("ww12#".into()), ..Default::default() };
    let mut req = start(&svc, &to, Channel::Voice, digits);
    req.locale = Some("fr".into());
    core.verifier.start(&admin(), req).await.unwrap();
    let call = core.sender.wait_for(&to, 1).await;
    assert_eq!((call.channel, call.send_digits.as_deref(), call.locale.as_str()), (Channel::Voice, Some("ww12#"), "fr"));
    assert!(call.body.starts_with("Votre code de vérification Shop est : "), "{}", call.body);

    // A language without a spoken text: said in English, and the provider is told so.
    let other = fresh_number();
    let mut req = start(&svc, &other, Channel::Voice, StartOptions::default());
    req.locale = Some("xx".into());
    core.verifier.start(&admin(), req).await.unwrap();
    let call = core.sender.wait_for(&other, 1).await;
    assert_eq!((call.locale.as_str(), call.send_digits.as_deref()), ("en", None));
    assert!(call.body.starts_with("Your Shop verification code is: "), "{}", call.body);

    // An SMS of the same verification says the service's name and dials nothing.
    let again = core.verifier.start(&admin(), start(&svc, &to, Channel::Sms, StartOptions::default())).await.unwrap();
    assert!(again.resent);
    let sms = core.sender.wait_for(&to, 2).await;
    assert!(sms.body.contains("XJ9-Shop") && sms.send_digits.is_none(), "{sms:?}");

    for bad in ["", "12a", &"1".repeat(33)] {
        let options = StartOptions { send_digits: Some(bad.into()), ..Default::default() };
        let err = core.verifier.start(&admin(), start(&svc, &fresh_number(), Channel::Voice, options)).await.unwrap_err();
        assert!(matches!(err, VerifyError::InvalidParameter { field: phonegate_core::error::Field::SendDigits, .. }), "{bad}: {err:?}");
    }
}

#[tokio::test]
async fn whatsapp_goes_from_the_services_sender() {
    let core = Core::new().await;
    let svc = service(&core).await;
    let to = fresh_number();
    core.verifier.start(&admin(), start(&svc, &to, Channel::Whatsapp, StartOptions::default())).await.unwrap();
    let wa = core.sender.wait_for(&to, 1).await;
    assert_eq!((wa.channel, wa.from.as_deref()), (Channel::Whatsapp, Some("+15005550006")));
    assert_eq!(wa.code.as_deref().map(str::len), Some(6));
}
