//! E-mail through a real SMTP server (aiosmtpd, `support/smtp.rs`): STARTTLS with a certificate
//! of a private CA, AUTH, implicit TLS; the message as a mail reader sees it (multipart/alternative,
//! text and HTML in UTF-8, the headers); refusals by stage; and a verification by e-mail through
//! the HTTP API, from the start to the approving check.
use crate::helpers::TestApp;
use crate::support::smtp::{PASSWORD, SmtpServer, USER};
use phonegate_core::email::render;
use phonegate_core::ports::{NoObserver, Outgoing, SendError};
use phonegate_core::{Channel, EmailAddress, Recipient};
use phonegate_providers::routing::RoutingSettings;
use phonegate_providers::{BuildContext, ProviderKind, ProviderSettings, Secret, SmtpSettings, SmtpTls};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn smtp(server: &SmtpServer, tls: SmtpTls, password: Option<&str>, ca: bool) -> ProviderSettings {
    ProviderSettings {
        kind: ProviderKind::Smtp(SmtpSettings {
            host: "127.0.0.1".into(),
            port: Some(server.port),
            tls,
            ca: ca.then(|| server.ca_pem.clone()),
            username: password.map(|_| USER.into()),
            password: password.map(Secret::new),
            from: "Phonegate Codes <codes@verify.example>".into(),
        }),
        timeout: Duration::from_secs(20),
        retries: 0,
        channels: None,
    }
}

/// Sends one code e-mail to `to` through the provider `settings` builds.
async fn send(settings: ProviderSettings, to: &str, from: Option<&str>, reply_to: Option<&str>) -> Result<Option<String>, SendError> {
    let built = phonegate_providers::build(
        &BTreeMap::from([("mail".to_string(), settings)]),
        &RoutingSettings::default(),
        BuildContext { public_url: None, observer: Arc::new(NoObserver) },
    )
    .expect("the SMTP provider builds");
    let text = "Dein Bestätigungscode für Bücherstube ist: 482913";
    let mut parts = render("de", "Bücherstube", text, "482913");
    parts.from = from.map(str::to_string);
    parts.reply_to = reply_to.map(str::to_string);
    let to = Recipient::Email(EmailAddress::parse(to).unwrap());
    let mut m = Outgoing::text("SMmail0123456789".into(), to, text.into());
    (m.channel, m.locale, m.code, m.email) = (Channel::Email, "de".into(), Some("482913".into()), Some(parts));
    built.sender.send_via("mail", &m).await.map(|a| a.provider_message_id)
}

#[tokio::test]
async fn a_code_goes_over_starttls_with_auth_as_text_and_html_in_utf8() {
    let server = SmtpServer::start("starttls", true).await;
    let id = send(smtp(&server, SmtpTls::Starttls, Some(PASSWORD), true), "ann@example.com", None, None).await.unwrap();
    assert_eq!(id.as_deref(), Some("<SMmail0123456789@verify.example>"));
    let m = &server.messages(1).await[0];
    // The envelope, over a session encrypted by STARTTLS and authenticated.
    assert_eq!((m["mail_from"].as_str(), m["rcpt_tos"].clone()), (Some("codes@verify.example"), json!(["ann@example.com"])));
    assert_eq!((m["tls"].as_bool(), m["starttls"].as_bool()), (Some(true), Some(true)), "{m}");
    assert!(m["tls_version"].as_str().is_some_and(|v| v.starts_with("TLSv1.")), "{m}");
    assert_eq!(m["auth_login"], USER);
    assert!(matches!(m["auth_mechanism"].as_str(), Some("PLAIN" | "LOGIN")), "{m}");
    // The headers as a mail reader decodes them.
    let h = &m["headers"];
    assert_eq!(h["From"], "Phonegate Codes <codes@verify.example>");
    assert_eq!(h["To"], "ann@example.com");
    assert_eq!(h["Subject"], "Bücherstube: Ihr Bestätigungscode");
    assert_eq!(h["Message-ID"], id.unwrap().as_str());
    assert_eq!(h["Auto-Submitted"], "auto-generated");
    assert!(h["Date"].as_str().is_some_and(|d| !d.is_empty()) && h["MIME-Version"] == "1.0", "{h}");
    assert!(h.get("Reply-To").is_none(), "{h}");
    // multipart/alternative: the text, then the HTML, both UTF-8 and both with the code.
    assert_eq!(m["content_type"], "multipart/alternative");
    let parts = m["parts"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = parts.iter().map(|p| (p["content_type"].as_str().unwrap(), p["charset"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("text/plain", "utf-8"), ("text/html", "utf-8")]);
    assert_eq!(parts[0]["content"].as_str().unwrap().trim_end(), "Dein Bestätigungscode für Bücherstube ist: 482913");
    let html = parts[1]["content"].as_str().unwrap();
    assert!(html.contains(">482913</p>") && html.contains("Bücherstube"), "{html}");
    // Nothing remote: no images, links, styles or scripts loaded from anywhere.
    for remote in ["<img", "src=", "href=", "url(", "<script", "<link"] {
        assert!(!html.contains(remote), "{remote} in {html}");
    }
    // The raw message keeps nothing but ASCII (encoded words and transfer encodings).
    assert!(m["data"].as_str().unwrap().is_ascii());
}

#[tokio::test]
async fn a_services_sender_and_reply_to_win_and_implicit_tls_works_too() {
    let server = SmtpServer::start("implicit", true).await;
    let id = send(
        smtp(&server, SmtpTls::Implicit, Some(PASSWORD), true),
        "Jörg@Bücher.example",
        Some("Bücherstube <codes@buecher.example>"),
        Some("Hilfe <hilfe@buecher.example>"),
    )
    .await
    .unwrap();
    assert_eq!(id.as_deref(), Some("<SMmail0123456789@buecher.example>"));
    let m = &server.messages(1).await[0];
    assert_eq!((m["tls"].as_bool(), m["starttls"].as_bool()), (Some(true), Some(false)), "{m}");
    assert_eq!(m["auth_login"], USER);
    assert_eq!(m["mail_from"], "codes@buecher.example");
    // An address with a non-ASCII local part goes as SMTPUTF8, its domain in ASCII.
    assert_eq!(m["rcpt_tos"], json!(["jörg@xn--bcher-kva.example"]));
    assert!(m["mail_options"].as_array().unwrap().iter().any(|o| o == "SMTPUTF8"), "{m}");
    assert_eq!(m["headers"]["From"], "Bücherstube <codes@buecher.example>");
    assert_eq!(m["headers"]["Reply-To"], "Hilfe <hilfe@buecher.example>");
}

#[tokio::test]
async fn refusals_say_what_routing_needs_to_know() {
    let server = SmtpServer::start("starttls", true).await;
    let good = || smtp(&server, SmtpTls::Starttls, Some(PASSWORD), true);
    // A recipient refused for good: rejected (no other provider does better).
    let e = send(good(), "nobody@example.com", None, None).await.unwrap_err();
    assert!(matches!(&e, SendError::Rejected(r) if r.contains("SMTP 550") && r.contains("RCPT TO")), "{e:?}");
    // Refused for now: another try may do, and nothing was taken.
    let e = send(good(), "busy@example.com", None, None).await.unwrap_err();
    assert!(matches!(&e, SendError::Unavailable { retry_safe: true, reason } if reason.contains("SMTP 451")), "{e:?}");
    // A wrong password is the provider's trouble, never the recipient's.
    let e = send(smtp(&server, SmtpTls::Starttls, Some("wrong"), true), "ann@example.com", None, None).await.unwrap_err();
    assert!(matches!(&e, SendError::Unavailable { reason, .. } if reason.contains("AUTH")), "{e:?}");
    assert!(!format!("{e:?}").contains("wrong"), "{e:?}");
    // Without the private CA the server's certificate is not trusted: nothing is sent in clear.
    let e = send(smtp(&server, SmtpTls::Starttls, Some(PASSWORD), false), "ann@example.com", None, None).await.unwrap_err();
    assert!(matches!(&e, SendError::Unavailable { reason, .. } if reason.contains("certificate")), "{e:?}");
    // A server that demands STARTTLS refuses a plain session's mail.
    let e = send(smtp(&server, SmtpTls::None, None, false), "ann@example.com", None, None).await.unwrap_err();
    assert!(matches!(e, SendError::Unavailable { .. }), "{e:?}");
    assert_eq!(server.taken(), 0);
    // Nobody listening: nothing was sent, so another try is safe.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut gone = good();
    if let ProviderKind::Smtp(s) = &mut gone.kind {
        s.port = Some(port);
    }
    let e = send(gone, "ann@example.com", None, None).await.unwrap_err();
    assert!(matches!(e, SendError::Unavailable { retry_safe: true, .. }), "{e:?}");
}

#[tokio::test]
async fn an_address_is_verified_through_the_api_by_a_real_mail() {
    let server = SmtpServer::start("starttls", true).await;
    let app = TestApp::spawn_with(|c| {
        c.providers.insert("mail".into(), smtp(&server, SmtpTls::Starttls, Some(PASSWORD), true));
    })
    .await;
    let r = app.post("/api/verifications", json!({ "to": "ann@example.com", "channel": "email" })).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let id = v["id"].as_str().unwrap();
    let m = &server.messages(1).await[0];
    assert_eq!(m["rcpt_tos"], json!(["ann@example.com"]));
    assert_eq!(m["headers"]["Subject"], "phonegate: your verification code");
    let text = m["parts"][0]["content"].as_str().unwrap();
    let code: String = text.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 6, "{text}");
    assert!(m["parts"][1]["content"].as_str().unwrap().contains(&format!(">{code}</p>")));
    // The message shows the provider and the Message-ID as its id.
    let d: Value = app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap();
    let sent = &d["messages"][0];
    assert_eq!((sent["provider"].as_str(), sent["channel"].as_str()), (Some("mail"), Some("email")), "{d}");
    assert_eq!(sent["provider_message_id"], m["headers"]["Message-ID"]);
    let r: Value = app.check(id, &crate::helpers::wrong(&code)).await.json().await.unwrap();
    assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("pending"), Some(false)));
    let r = app.check(id, &code).await;
    assert_eq!(r.status(), 200);
    let r: Value = r.json().await.unwrap();
    assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("approved"), Some(true)));
    assert_eq!(server.taken(), 1);
}
