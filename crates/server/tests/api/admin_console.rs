//! The admin console's pages over plain HTTP (browser-tests/admin.test.js drives them in
//! Chromium): a page each for the members, the invites, the audit log and the dashboard, with
//! a navigation that marks the current one; the one-page console's URLs sent on to them; every
//! word German with `Accept-Language: de`; the audit log in pages that neither repeat nor skip
//! an event.
use crate::helpers::{TestApp, fresh_number};
use chrono::Duration;
use phonegate_core::Caller;
use phonegate_core::audit::{AuditKind, AuditQuery};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;

const PAGES: [&str; 5] = ["/admin/members", "/admin/invites", "/admin/apps", "/admin/audit", "/admin/dashboard"];

/// A browser signed in as a new admin, asking for `language`; no automatic redirects.
async fn admin_browser(app: &TestApp, language: &str) -> reqwest::Client {
    let phone = fresh_number();
    app.state.accounts.create_admin(&Caller::system("tests"), "chief", &phone).await.unwrap();
    browser_of(app, &phone, language).await
}

/// A browser signed in with the account of `phone`.
async fn browser_of(app: &TestApp, phone: &str, language: &str) -> reqwest::Client {
    let (flow, code) = app.flow_code("/api/auth/login", json!({ "phone": phone }), phone).await;
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code, "session": "cookie" })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let jar = Arc::new(reqwest::cookie::Jar::default());
    jar.add_cookie_str(&cookie, &app.base.parse().unwrap());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("accept-language", language.parse().unwrap());
    let client = reqwest::Client::builder().cookie_provider(jar).default_headers(headers);
    client.redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn html(b: &reqwest::Client, app: &TestApp, path: &str) -> String {
    let r = b.get(app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.text().await.unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

/// The `href` of the link with `rel="REL"`, unescaped.
fn link(html: &str, rel: &str) -> Option<String> {
    let at = html.find(&format!(r#"" rel="{rel}""#))?;
    let start = html[..at].rfind("href=\"")? + 6;
    Some(html[start..at].replace("&#38;", "&").replace("&amp;", "&"))
}

#[tokio::test]
async fn the_console_is_a_page_each_with_a_navigation_that_marks_the_current_one() {
    let app = TestApp::spawn().await;
    let b = admin_browser(&app, "en").await;
    for page in PAGES {
        let html = html(&b, &app, page).await;
        assert!(html.contains(r#"<nav class="console" aria-label="Admin console">"#), "{page}: {html}");
        for other in PAGES {
            assert!(html.contains(&format!(r#"<a href="{other}""#)), "{page} links to {other}");
        }
        assert_eq!(html.matches(r#"aria-current="page""#).count(), 1, "{page}");
        assert!(html.contains(&format!(r#"<a href="{page}" aria-current="page">"#)), "{page}: {html}");
    }
    // The one-page console's links go on to the page they meant, query and all.
    for (old, new) in [
        ("/admin", "/admin/members"),
        ("/admin?member=us1#devices", "/admin/members?member=us1"),
        ("/admin?done=removed", "/admin/members?done=removed"),
        ("/admin?done=rotated", "/admin/invites?done=rotated"),
        ("/admin?kind=login&who=chief", "/admin/audit?kind=login&who=chief"),
    ] {
        let r = b.get(app.url(old)).send().await.unwrap();
        assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, new.to_string()), "{old}");
    }
    // Signed out, each page sends to the login and back to itself.
    let anonymous = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for page in PAGES {
        assert_eq!(location(&anonymous.get(app.url(page)).send().await.unwrap()), format!("/login?return_to={page}"));
    }
}

#[tokio::test]
async fn the_console_speaks_german_when_the_browser_asks_for_it() {
    let app = TestApp::spawn().await;
    let b = admin_browser(&app, "de-DE,de;q=0.9,en;q=0.5").await;
    // An invite, a replaced invite code and a code sent: something on every page.
    let invites = html(&b, &app, "/admin/invites").await;
    let csrf = invites.split(r#"name="csrf" value=""#).nth(1).and_then(|p| p.split('"').next()).unwrap().to_string();
    let r = b.post(app.url("/admin/invites")).form(&[("csrf", csrf.as_str()), ("phone", &fresh_number())]).send().await.unwrap();
    assert_eq!(location(&r), "/admin/invites?done=invited");
    let r = b.post(app.url("/admin/invite-code/rotate")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(location(&r), "/admin/invites?done=rotated");
    app.start(&fresh_number()).await;

    let expected: [(&str, &[&str]); 4] = [
        ("/admin/members?done=removed", &["Mitglieder", "Zuletzt aktiv", "Aktionen", "Das Mitglied wurde entfernt", "Admin</span>"]),
        (
            "/admin/invites?done=rotated",
            &["Nummer einladen", "Einladung senden", "Gültig bis", ">offen<", "Der Einladungscode wurde ersetzt"],
        ),
        ("/admin/audit", &["Protokoll", "Wann", "Betrifft", "Einladung gesendet", "ein Administrator hat eine Nummer eingeladen"]),
        (
            "/admin/dashboard",
            &["Gestartete und bestätigte Codes pro Stunde", ">Codes pro Stunde<", ">Stunde (UTC)<", ">Gestartet<", ">Bestätigt<"],
        ),
    ];
    // Words of the English console that must not be left over.
    let english = [
        "Members<",
        "Invites<",
        "Audit log",
        "Dashboard",
        "Actions",
        "Last seen",
        "Send invite",
        "Invite code",
        "Valid until",
        ">pending<",
        "When<",
        "Concerning",
        "No events",
        "Started",
        "Approved",
        "per hour",
        "Delivery",
        "an admin ",
    ];
    for (page, words) in expected {
        let html = html(&b, &app, page).await;
        assert!(html.contains(r#"<html lang="de">"#) && html.contains(r#"aria-label="Verwaltung""#), "{page}");
        for word in words {
            assert!(html.contains(word), "{page}: `{word}` in {html}");
        }
        for word in english {
            assert!(!html.contains(word), "{page}: `{word}` left in English: {html}");
        }
    }
    // A member who is no admin is told so in German too.
    let phone = fresh_number();
    app.sign_up("mitglied", &phone, None).await;
    let r = browser_of(&app, &phone, "de").await.get(app.url("/admin/audit")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("Nur Administratoren können die Verwaltung öffnen."));
}

#[tokio::test]
async fn the_audit_log_pages_through_every_event_once_and_back() {
    let app = TestApp::spawn().await;
    let b = admin_browser(&app, "en").await;
    // 120 events of the test, three to a millisecond, and those of the admin's sign-in.
    for i in 0..120 {
        let kind = if i % 2 == 0 { AuditKind::InviteCreated } else { AuditKind::InviteRevoked };
        app.state.core.audit.record(&Caller::system("tests"), kind, Some(&format!("subject-{i:03}")), "paging").await;
        if i % 3 == 2 {
            app.advance(Duration::milliseconds(1));
        }
    }
    let subjects = |html: &str| -> Vec<String> {
        let cells = html.split(r#"<td data-label="Concerning""#).skip(1);
        cells.map(|cell| cell.split('>').nth(1).unwrap().split('<').next().unwrap().to_string()).collect()
    };

    // Older and older: 50, 50, then the rest; each page's rows in order, none twice, none missed.
    let mut pages = vec![html(&b, &app, "/admin/audit").await];
    assert_eq!(link(&pages[0], "prev"), None, "the first page is the newest");
    while let Some(older) = link(pages.last().unwrap(), "next") {
        assert!(older.starts_with("/admin/audit?before="), "{older}");
        pages.push(html(&b, &app, &older).await);
        assert!(pages.len() < 10, "the pages end");
    }
    let seen: Vec<String> = pages.iter().flat_map(|p| subjects(p)).collect();
    let sizes: Vec<usize> = pages.iter().map(|p| subjects(p).len()).collect();
    assert_eq!((sizes.len(), sizes[0], sizes[1]), (3, 50, 50), "{sizes:?}");
    let log = app.state.core.audit.events(&Caller::system("tests"), AuditQuery { limit: 1000, ..Default::default() }).await.unwrap();
    let all: Vec<String> = log.into_iter().map(|e| e.subject.unwrap_or_else(|| "–".into())).collect();
    assert_eq!(seen.iter().filter(|s| s.starts_with("subject-")).count(), 120);
    assert_eq!(seen, all.iter().map(|s| if s.starts_with("us") { "chief".to_string() } else { s.clone() }).collect::<Vec<_>>());

    // Newer and newer from the last page: the same pages again.
    let mut back = vec![pages.last().unwrap().clone()];
    while let Some(newer) = link(back.last().unwrap(), "prev") {
        assert!(newer.starts_with("/admin/audit?after="), "{newer}");
        back.push(html(&b, &app, &newer).await);
        assert!(back.len() < 10, "the pages end");
    }
    back.reverse();
    assert_eq!(back.iter().map(|p| subjects(p)).collect::<Vec<_>>(), pages.iter().map(|p| subjects(p)).collect::<Vec<_>>());
    assert_eq!(link(&pages[1], "first").as_deref(), Some("/admin/audit"));

    // The filters go along: 60 revoked invites, 50 and 10.
    let first = html(&b, &app, "/admin/audit?kind=invite_revoked").await;
    let older = link(&first, "next").expect("a second page");
    assert!(older.starts_with("/admin/audit?kind=invite_revoked&before="), "{older}");
    let second = html(&b, &app, &older).await;
    assert_eq!((subjects(&first).len(), subjects(&second).len(), link(&second, "next")), (50, 10, None));
    assert_eq!(second.matches(r#"<tr data-kind="invite_revoked">"#).count(), 10);

    // A page link that is not one: the newest page, saying so.
    let r = b.get(app.url("/admin/audit?before=yesterday")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    assert!(html.contains("This page link is not valid") && subjects(&html) == subjects(&pages[0]), "{html}");
}

/// The field's value in a page (the first `name="NAME" value="…"`).
fn csrf_of(html: &str) -> String {
    html.split(r#"name="csrf" value=""#).nth(1).and_then(|p| p.split('"').next()).unwrap().to_string()
}

#[tokio::test]
async fn the_apps_page_adds_an_openid_client_shows_its_secret_once_rekeys_and_deletes_it() {
    let app = TestApp::spawn_with(|c| c.public_url = Some("https://id.example".into())).await;
    let b = admin_browser(&app, "en").await;
    let page = html(&b, &app, "/admin/apps").await;
    assert!(page.contains("No apps yet."), "{page}");
    let csrf = csrf_of(&page);
    let form =
        [("csrf", csrf.as_str()), ("name", "Wiki"), ("redirect_uris", "https://wiki.example/cb\n"), ("post_logout_redirect_uris", "")];
    let r = b.post(app.url("/admin/apps")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let made = r.text().await.unwrap();
    let field = |html: &str, id: &str| html.split(&format!(r#"id="{id}">"#)).nth(1).and_then(|p| p.split('<').next()).unwrap().to_string();
    let (client_id, secret) = (field(&made, "client-id"), field(&made, "client-secret"));
    assert!(secret.starts_with("cs_") && made.contains("shown only this once"), "{made}");
    // The secret authenticates the client; the list never shows it again.
    let introspect = |secret: String| {
        let (app, id) = (&app, client_id.clone());
        async move {
            app.client
                .post(app.url("/oauth2/introspect"))
                .basic_auth(id, Some(secret))
                .form(&[("token", "x")])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(introspect(secret.clone()).await, StatusCode::OK);
    let listed = html(&b, &app, "/admin/apps").await;
    assert!(listed.contains(&format!(r#"data-client="{client_id}""#)) && !listed.contains(&secret), "{listed}");
    // A new secret replaces the old one at once.
    let r = b.post(app.url("/admin/apps/secret")).form(&[("csrf", csrf.as_str()), ("client_id", client_id.as_str())]).send().await.unwrap();
    let rekeyed = field(&r.text().await.unwrap(), "client-secret");
    assert_eq!(introspect(secret).await, StatusCode::UNAUTHORIZED);
    assert_eq!(introspect(rekeyed.clone()).await, StatusCode::OK);
    // An unsafe redirect URI is refused with the reason; deleting ends the client.
    let bad = [("csrf", csrf.as_str()), ("name", "Evil"), ("redirect_uris", "http://evil.example/cb")];
    let r = b.post(app.url("/admin/apps")).form(&bad).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = b.post(app.url("/admin/apps/delete")).form(&[("csrf", csrf.as_str()), ("client_id", client_id.as_str())]).send().await.unwrap();
    assert_eq!(location(&r), "/admin/apps?done=app_deleted");
    assert_eq!(introspect(rekeyed).await, StatusCode::UNAUTHORIZED);
    // Without the form's token nothing happens.
    let r = b
        .post(app.url("/admin/apps"))
        .form(&[("csrf", "forged"), ("name", "X"), ("redirect_uris", "https://x.example/cb")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
