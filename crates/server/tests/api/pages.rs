//! The account pages over plain HTTP (the browser suite in browser-tests/ drives them in
//! Chromium): forms need their CSRF token, redirects stay on phonegate or configured hosts,
//! cookies carry the right flags, and the language follows Accept-Language.
use crate::helpers::{TestApp, fresh_number};
use reqwest::StatusCode;
use serde_json::Value;

/// A browser: its own cookie jar, no automatic redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

/// Signs up through the pages and returns the browser, now signed in, and where it was sent.
async fn sign_up(app: &TestApp, b: &reqwest::Client, username: &str, phone: &str, return_to: &str) -> String {
    let html = b.get(app.url("/signup")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_of(&html);
    let form = [("csrf", csrf.as_str()), ("username", username), ("phone", phone), ("return_to", return_to)];
    let r = b.post(app.url("/signup")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let code_page = location(&r);
    assert!(code_page.starts_with("/login/code?flow=fl"), "{code_page}");
    let code = app.code_after(phone, &[]).await;
    let html = b.get(app.url(&code_page)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"autocomplete="one-time-code""#) && html.contains(r#"inputmode="numeric""#), "{html}");
    let flow = code_page.split("flow=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let form = [("csrf", csrf_of(&html)), ("flow", flow), ("code", code), ("return_to", return_to.to_string())];
    let r = b.post(app.url("/login/code")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set: Vec<String> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let session = set.iter().find(|c| c.contains("phonegate_session=")).expect("a session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"), "{session}");
    location(&r)
}

#[tokio::test]
async fn sign_up_in_the_pages_lands_on_the_account_and_logout_ends_it() {
    let app = TestApp::spawn().await;
    let b = browser();
    let phone = fresh_number();
    assert_eq!(sign_up(&app, &b, "pager", &phone, "").await, "/account");
    let html = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("pager") && html.contains(&phone), "{html}");
    assert!(html.contains("this device"));

    let form = [("csrf", csrf_of(&html))];
    let r = b.post(app.url("/logout")).form(&form).send().await.unwrap();
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, "/login".to_string()));
    let r = b.get(app.url("/account")).send().await.unwrap();
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, "/login".to_string()));
}

#[tokio::test]
async fn forms_without_their_csrf_token_are_refused() {
    let app = TestApp::spawn().await;
    let b = browser();
    let phone = fresh_number();
    // No anti-forgery cookie yet, or a token that is not this browser's.
    let r = b.post(app.url("/login")).form(&[("phone", phone.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    b.get(app.url("/login")).send().await.unwrap();
    let other = browser();
    let foreign = csrf_of(&other.get(app.url("/login")).send().await.unwrap().text().await.unwrap());
    let r = b.post(app.url("/login")).form(&[("csrf", foreign.as_str()), ("phone", phone.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.queued(&phone).await, 0);
}

#[tokio::test]
async fn return_targets_are_our_paths_or_configured_hosts_only() {
    let app = TestApp::spawn_with(|c| c.accounts.return_hosts = vec!["app.example.com".into()]).await;
    let cases = [
        ("/app/", "/app/"),
        ("https://app.example.com/welcome", "https://app.example.com/welcome"),
        ("//evil.example", "/account"),
        ("https:evil.example", "/account"),
        ("https://app.example.com.evil.example/", "/account"),
        ("https://app.example.com@evil.example/", "/account"),
        ("\\\\evil.example", "/account"),
        ("%2F%2Fevil.example", "/account"),
        ("javascript:alert(1)", "/account"),
    ];
    for (i, (asked, landed)) in cases.into_iter().enumerate() {
        let b = browser();
        assert_eq!(sign_up(&app, &b, &format!("ret{i}"), &fresh_number(), asked).await, landed, "{asked}");
    }
}

#[tokio::test]
async fn pages_speak_german_to_german_browsers_and_never_load_anything_external() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/login")).header("accept-language", "de-DE,de;q=0.9,en;q=0.5").send().await.unwrap();
    assert_eq!(r.headers()["content-security-policy"].to_str().unwrap().split(';').next(), Some("default-src 'none'"));
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"<html lang="de">"#) && html.contains("Anmelden"), "{html}");
    for page in ["/login", "/signup"] {
        let html = app.client.get(app.url(page)).send().await.unwrap().text().await.unwrap();
        assert!(html.contains(r#"<html lang="en">"#));
        assert!(!html.contains("http://") && !html.contains("https://"), "{page} refers to another site");
        assert!(html.matches("<label for=").count() >= 2, "{page}: every field has a label");
    }
}

#[tokio::test]
async fn behind_https_the_session_cookie_is_secure_and_host_only() {
    let app = TestApp::spawn_with(|c| c.public_url = Some("https://id.example.com".into())).await;
    let phone = fresh_number();
    let (flow, code) = app.flow_code("/api/auth/signup", serde_json::json!({ "username": "secure", "phone": phone }), &phone).await;
    let r = app.anon_post("/api/auth/verify", serde_json::json!({ "flow_id": flow["flow_id"], "code": code, "session": "cookie" })).await;
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("__Host-phonegate_session=") && set.contains("; Secure") && set.contains("Path=/"), "{set}");
    assert!(!set.contains("Domain"), "{set}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["username"], "secure");
}

/// Logs `phone` in through the pages; returns where the browser was sent.
async fn log_in(app: &TestApp, b: &reqwest::Client, phone: &str, return_to: &str) -> String {
    let html = b.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let before = app.outbox(phone).await;
    let form = [("csrf", csrf_of(&html)), ("phone", phone.to_string()), ("return_to", return_to.to_string())];
    let r = b.post(app.url("/login")).form(&form).send().await.unwrap();
    let code_page = location(&r);
    let code = app.code_after(phone, &before).await;
    let html = b.get(app.url(&code_page)).send().await.unwrap().text().await.unwrap();
    let flow = code_page.split("flow=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let form = [("csrf", csrf_of(&html)), ("flow", flow), ("code", code), ("return_to", return_to.to_string())];
    location(&b.post(app.url("/login/code")).form(&form).send().await.unwrap())
}

#[tokio::test]
async fn the_admin_console_invites_and_lists_for_admins_only() {
    let app = TestApp::spawn().await;
    let (admin_phone, member_phone, invited) = (fresh_number(), fresh_number(), fresh_number());
    app.state.accounts.create_admin(&phonegate_core::Caller::system("tests"), "console", &admin_phone).await.unwrap();

    // Anonymous: to the login page, and back to the console's page after it.
    let b = browser();
    let r = b.get(app.url("/admin/invites")).send().await.unwrap();
    assert_eq!(location(&r), "/login?return_to=/admin/invites");
    assert_eq!(log_in(&app, &b, &admin_phone, "/admin/invites").await, "/admin/invites");
    let html = b.get(app.url("/admin/invites")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Invite a number") && html.contains("Admin console"), "{html}");
    assert!(b.get(app.url("/account")).send().await.unwrap().text().await.unwrap().contains(r#"href="/admin""#));

    let r = b.post(app.url("/admin/invites")).form(&[("csrf", csrf_of(&html)), ("phone", invited.clone())]).send().await.unwrap();
    assert_eq!(location(&r), "/admin/invites?done=invited");
    let html = b.get(app.url("/admin/invites?done=invited")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(&invited) && html.contains(r#"class="status">pending"#) && html.contains("The invite is on its way."), "{html}");
    let html = b.get(app.url("/admin/audit")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<code>invite_created</code>"), "{html}");
    let r = b.post(app.url("/admin/invites")).form(&[("csrf", "forged"), ("phone", fresh_number().as_str())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // A member sees no console.
    let m = browser();
    sign_up(&app, &m, "plainmember", &member_phone, "").await;
    for page in ["/admin/members", "/admin/invites", "/admin/audit", "/admin/dashboard"] {
        assert_eq!(m.get(app.url(page)).send().await.unwrap().status(), StatusCode::FORBIDDEN, "{page}");
    }
    let html = m.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains(r#"href="/admin""#));
    let r = m.post(app.url("/admin/invites")).form(&[("csrf", csrf_of(&html)), ("phone", fresh_number())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Every console action: a member gets 403 and changes nothing; anonymous goes to the login.
    let actions = [
        "/admin/invite-code/rotate".to_string(),
        "/admin/invites/iv0/resend".into(),
        "/admin/invites/iv0/revoke".into(),
        "/admin/members/us0/remove".into(),
        "/admin/members/us0/promote".into(),
        "/admin/members/us0/sessions/se0/revoke".into(),
    ];
    for path in &actions {
        let r = m.post(app.url(path)).form(&[("csrf", csrf_of(&html))]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        let anon = browser();
        let page = anon.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
        let r = anon.post(app.url(path)).form(&[("csrf", csrf_of(&page))]).send().await.unwrap();
        assert!(location(&r).starts_with("/login"), "{path}");
    }
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM invite_codes").await, 0, "nobody rotated the code");

    // The admin's own console: the invite code, replaced; a member's devices; the audit filters.
    let html = b.get(app.url("/admin/invites")).send().await.unwrap().text().await.unwrap();
    let code_before = html.split(r#"id="current-invite-code">"#).nth(1).and_then(|p| p.split('<').next()).unwrap().to_string();
    assert_eq!(code_before.len(), 8, "the console shows the invite code");
    let r = b.post(app.url("/admin/invite-code/rotate")).form(&[("csrf", csrf_of(&html))]).send().await.unwrap();
    assert_eq!(location(&r), "/admin/invites?done=rotated");
    let html = b.get(app.url("/admin/invites?done=rotated")).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains(&code_before) && html.contains("the old one no longer works"));
    let html = b.get(app.url("/admin/members")).send().await.unwrap().text().await.unwrap();
    let member =
        html.split("data-member=\"").filter_map(|p| p.split('"').next()).find(|id| html.contains(&format!("/admin/members/{id}/promote")));
    let member = member.expect("the member's row").to_string();
    let html = b.get(app.url(&format!("/admin/members?member={member}"))).send().await.unwrap().text().await.unwrap();
    let session = html.split("data-session=\"").nth(1).and_then(|p| p.split('"').next()).expect("the member's device").to_string();
    let r = b
        .post(app.url(&format!("/admin/members/{member}/sessions/{session}/revoke")))
        .form(&[("csrf", csrf_of(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), format!("/admin/members?done=signed_out&member={member}#devices"));
    assert_eq!(m.get(app.url("/account")).send().await.unwrap().status(), StatusCode::SEE_OTHER, "the member's device is signed out");
    let html = b.get(app.url("/admin/audit?kind=session_revoked&who=plainmember")).send().await.unwrap().text().await.unwrap();
    assert_eq!(html.matches("<tr data-kind=").count(), 1, "{html}");
    let who = r#"<td data-label="Who">console</td><td data-label="Concerning">plainmember</td>"#;
    assert!(html.contains("an admin ended a member&#39;s session</div></td>") && html.contains(who), "{html}");
    let html = b.get(app.url("/admin/audit?kind=session_revoked&ip=10.9.9.9")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("No events match."));
    let html = b.get(app.url("/admin/audit?kind=invite_created&until=2000-01-01")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("No events match."));
}

#[tokio::test]
async fn the_dashboard_charts_the_days_codes_conversion_and_delivery_for_admins() {
    let app = TestApp::spawn().await;
    let admin_phone = fresh_number();
    app.state.accounts.create_admin(&phonegate_core::Caller::system("tests"), "watcher", &admin_phone).await.unwrap();
    // Traffic: two German numbers (one approved) and a French one, through the native API.
    let (de, fr) = (fresh_number(), "+33612345678".to_string());
    let v = app.start(&de).await;
    let code = app.code_for(&de).await;
    assert_eq!(app.check(v["id"].as_str().unwrap(), &code).await.status(), StatusCode::OK);
    app.start(&fresh_number()).await;
    app.start(&fr).await;

    let b = browser();
    log_in(&app, &b, &admin_phone, "").await;
    let r = b.get(app.url("/admin/dashboard")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("<svg") && html.contains(r#"<title id="chart-title">Codes started and approved per hour</title>"#), "{html}");
    // Both axes labelled with their units, a legend entry for each series.
    for label in
        [">Codes per hour</text>", ">Hour (UTC)</text>", r#"class="bar-started" x="72.0" y="14""#, ">Started</text>", ">Approved</text>"]
    {
        assert!(html.contains(label), "{label}: {html}");
    }
    // The admin's own login is a code too: 4 started, 2 approved.
    assert!(html.contains("4 started, 2 approved (50 %)"), "{html}");
    let row = |name: &str, figures: [u32; 2]| {
        format!(
            r#"<th scope="row" data-label="Country">{name}</th><td data-label="Started" class="num">{}</td><td data-label="Approved" class="num">{}</td>"#,
            figures[0], figures[1]
        )
    };
    assert!(html.contains(&row("DE", [3, 2])) && html.contains(&row("FR", [1, 0])), "{html}");
    assert!(html.contains(r#"<th scope="row" data-label="Provider">outbox</th><td data-label="Sent" class="num">4</td>"#), "{html}");
    assert!(!html.contains("<script"), "server-rendered, no script");

    let m = browser();
    sign_up(&app, &m, "notadmin", &fresh_number(), "").await;
    assert_eq!(m.get(app.url("/admin/dashboard")).send().await.unwrap().status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_invite_link_fills_in_the_sign_up_page_or_says_that_it_ended() {
    let app = TestApp::spawn().await;
    let admin_phone = fresh_number();
    app.state.accounts.create_admin(&phonegate_core::Caller::system("tests"), "inviter", &admin_phone).await.unwrap();
    let admin =
        app.state.accounts.authenticate_bearer(&app.log_in(&admin_phone).await["access_token"].as_str().unwrap().into()).await.unwrap();
    let invited = fresh_number();
    let invite = app.state.accounts.invite(&phonegate_core::Caller::system("tests"), &admin, &invited, None).await.unwrap();
    let app = &app;
    let page =
        |id: String| async move { app.client.get(app.url(&format!("/signup?invite={id}"))).send().await.unwrap().text().await.unwrap() };
    let html = page(invite.id.clone()).await;
    assert!(html.contains(&format!(r#"value="{invited}""#)) && html.contains("You are invited"), "{html}");
    app.state.accounts.revoke_invite(&phonegate_core::Caller::system("tests"), &admin, &invite.id).await.unwrap();
    let html = page(invite.id.clone()).await;
    assert!(html.contains(r#"role="alert""#) && html.contains("This invite has expired, was used or was withdrawn"), "{html}");
    assert!(!html.contains(&invited), "an ended invite fills in nothing");
    let html = page("iv0123".into()).await;
    assert!(!html.contains(r#"role="alert""#) && !html.contains("You are invited"));
}

/// A failure of the server itself (here: a table gone from under it) is never described on a
/// page: the person gets a generic message with the request id, which the log has with the detail.
#[tokio::test]
async fn a_database_failure_shows_a_request_id_never_its_detail() {
    let app = TestApp::spawn().await;
    let b = browser();
    let html = b.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_of(&html);
    phonegate_store::testing::execute(&app.database_url, "DROP TABLE auth_flows").await.unwrap();
    let form = [("csrf", csrf.as_str()), ("phone", "+4915112345670")];
    let r = b.post(app.url("/login")).form(&form).header("x-request-id", "RQpagefailure1").send().await.unwrap();
    let status = r.status();
    let html = r.text().await.unwrap();
    assert!(status.is_server_error() || status.is_client_error(), "{status}");
    assert!(html.contains("Something went wrong on our side") && html.contains("RQpagefailure1"), "{html}");
    for detail in ["auth_flows", "database", "no such", "SQL", "sqlite", "relation", "does not exist"] {
        assert!(!html.to_lowercase().contains(&detail.to_lowercase()), "the page tells `{detail}`: {html}");
    }
}

/// A person who opens the server's address gets a home page: the way in when signed out, their
/// account (and for an admin the console) when signed in, in their language.
#[tokio::test]
async fn the_home_page_leads_in_or_to_the_account() {
    let app = TestApp::spawn().await;
    let b = browser();
    let r = b.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"href="/login""#) && html.contains(r#"href="/signup""#) && html.contains(r#"href="/docs""#), "{html}");
    assert!(!html.contains(r#"href="/account""#) && !html.contains(r#"href="/admin""#), "{html}");
    let german = b.get(app.url("/")).header("accept-language", "de").send().await.unwrap().text().await.unwrap();
    assert!(german.contains("Willkommen") && german.contains(r#"lang="de""#), "{german}");

    sign_up(&app, &b, "homer", &fresh_number(), "").await;
    let html = b.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("homer") && html.contains(r#"href="/account""#), "{html}");
    assert!(!html.contains(r#"href="/admin""#) && !html.contains(r#"href="/login""#), "{html}");
}
