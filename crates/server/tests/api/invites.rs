//! Invite-only groups: only invited numbers join, and nothing tells an uninvited number apart;
//! invites are listed, re-sent, revoked and expire; one invite makes one member, even when two
//! sign-ups race for it; an invitee joins by texting the invite code back through a signed
//! webhook, and nothing unsigned, uninvited or out of date starts anything.
use crate::helpers::{TestApp, expect_error, fresh_number};
use chrono::Duration;
use phonegate_core::Caller;
use phonegate_core::accounts::invites::Registration;
use phonegate_providers::signature::twilio_signature;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn group() -> (TestApp, String, String) {
    let app = TestApp::spawn_with(|c| c.accounts.registration = Registration::InviteOnly).await;
    let phone = fresh_number();
    app.state.accounts.create_admin(&Caller::system("tests"), "admin", &phone).await.unwrap();
    let admin = app.log_in(&phone).await;
    (app, admin["access_token"].as_str().unwrap().to_string(), phone)
}

#[tokio::test]
async fn only_invited_numbers_join_and_the_uninvited_cannot_tell() {
    let (app, admin, _) = group().await;
    let (invited, stranger) = (fresh_number(), fresh_number());
    let r = app.client.post(app.url("/api/admin/invites")).bearer_auth(&admin).json(&json!({ "phone": invited })).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let invite: Value = r.json().await.unwrap();
    assert_eq!(invite["status"], "pending");
    let sms = crate::helpers::eventually(|| async { app.outbox(&invited).await.first().cloned() }).await;
    let body = sms["body"].as_str().unwrap();
    assert!(body.contains(&format!("/signup?invite={}", invite["id"].as_str().unwrap())), "{body}");

    // The stranger's sign-up answers alike, sends nothing, and no code opens it.
    let r = app.anon_post("/api/auth/signup", json!({ "username": "stranger", "phone": stranger })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let decoy: Value = r.json().await.unwrap();
    let before = app.outbox(&invited).await;
    let (flow, code) = app.flow_code("/api/auth/signup", json!({ "username": "friend", "phone": invited }), &invited).await;
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&decoy), keys(&flow));
    assert_eq!(app.queued(&stranger).await, 0);
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": decoy["flow_id"], "code": code })).await;
    expect_error(r, 400, "code_incorrect").await;
    assert!(before.len() < app.outbox(&invited).await.len());

    let joined = app.verify_code(&flow, &code, None).await;
    assert_eq!(joined["user"]["username"], "friend");
    let list: Value = app.client.get(app.url("/api/admin/invites")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["invites"][0]["status"], "used");
}

#[tokio::test]
async fn invites_are_resent_revoked_and_expire() {
    let (app, mut admin, admin_phone) = group().await;
    let phone = fresh_number();
    let call = |method: &str, path: String, token: &str| app.client.request(method.parse().unwrap(), app.url(&path)).bearer_auth(token);
    let invite: Value =
        call("POST", "/api/admin/invites".into(), &admin).json(&json!({ "phone": phone })).send().await.unwrap().json().await.unwrap();
    let id = invite["id"].as_str().unwrap().to_string();
    let r = call("POST", format!("/api/admin/invites/{id}/resend"), &admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    crate::helpers::eventually(|| async { (app.outbox(&phone).await.len() == 2).then_some(()) }).await;
    assert_eq!(call("DELETE", format!("/api/admin/invites/{id}"), &admin).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    expect_error(call("POST", format!("/api/admin/invites/{id}/resend"), &admin).send().await.unwrap(), 409, "invite_not_pending").await;
    expect_error(call("DELETE", "/api/admin/invites/iv0".into(), &admin).send().await.unwrap(), 404, "invite_not_found").await;
    // A revoked invite admits nobody: the sign-up is a decoy, nothing more is sent.
    app.anon_post("/api/auth/signup", json!({ "username": "late", "phone": phone })).await;
    assert_eq!(app.queued(&phone).await, 2);

    // Expiry after 72 hours.
    let other = fresh_number();
    call("POST", "/api/admin/invites".into(), &admin).json(&json!({ "phone": other })).send().await.unwrap();
    app.advance(Duration::hours(73));
    admin = app.log_in(&admin_phone).await["access_token"].as_str().unwrap().to_string();
    let list: Value = call("GET", "/api/admin/invites".into(), &admin).send().await.unwrap().json().await.unwrap();
    let mut statuses: Vec<&str> = list["invites"].as_array().unwrap().iter().map(|i| i["status"].as_str().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, ["expired", "revoked"]);
    let sent = app.queued(&other).await;
    app.anon_post("/api/auth/signup", json!({ "username": "later", "phone": other })).await;
    assert_eq!(app.queued(&other).await, sent, "an expired invite sends nothing");

    // An invite for a member's username must be that member's number.
    let r = call("POST", "/api/admin/invites".into(), &admin)
        .json(&json!({ "phone": fresh_number(), "username": "admin" }))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_parameter").await;
    let r = call("POST", "/api/admin/invites".into(), &admin)
        .json(&json!({ "phone": fresh_number(), "username": "nobody" }))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "member_not_found").await;
}

#[tokio::test]
async fn one_invite_makes_one_member_even_when_sign_ups_race() {
    let (app, admin, _) = group().await;
    let phone = fresh_number();
    app.client.post(app.url("/api/admin/invites")).bearer_auth(&admin).json(&json!({ "phone": phone })).send().await.unwrap();
    let invite_sms = crate::helpers::eventually(|| async { app.outbox(&phone).await.first().cloned() }).await;
    let (first, code) = app.flow_code("/api/auth/signup", json!({ "username": "racer-a", "phone": phone }), &phone).await;
    assert!(!invite_sms["body"].as_str().unwrap().ends_with(&code));
    let r = app.anon_post("/api/auth/signup", json!({ "username": "racer-b", "phone": phone })).await;
    let second: Value = r.json().await.unwrap();
    let verify = |flow: &Value| app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code }));
    let (a, b) = tokio::join!(verify(&first), verify(&second));
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM users").await, 2, "the admin and one member");
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM invites WHERE used_at IS NOT NULL").await, 1);
}

#[tokio::test]
async fn members_and_strangers_cannot_touch_invites() {
    let (app, _, _) = group().await;
    let phone = fresh_number();
    let admin_made = app.state.accounts.create_admin(&Caller::system("tests"), "second", &phone).await.unwrap();
    assert!(admin_made.is_admin());
    // An ordinary member: invited, joined.
    let invited = fresh_number();
    let admin = app.log_in(&phone).await;
    app.client
        .post(app.url("/api/admin/invites"))
        .bearer_auth(admin["access_token"].as_str().unwrap())
        .json(&json!({ "phone": invited }))
        .send()
        .await
        .unwrap();
    crate::helpers::eventually(|| async { app.outbox(&invited).await.first().cloned() }).await;
    let member = app.sign_up("plain", &invited, None).await;
    let token = member["access_token"].as_str().unwrap();
    for (method, path) in [
        ("GET", "/api/admin/invites"),
        ("POST", "/api/admin/invites"),
        ("POST", "/api/admin/invites/iv0/resend"),
        ("DELETE", "/api/admin/invites/iv0"),
    ] {
        let request = app.client.request(method.parse().unwrap(), app.url(path)).json(&json!({ "phone": fresh_number() }));
        expect_error(request.try_clone().unwrap().send().await.unwrap(), 401, "unauthenticated").await;
        expect_error(request.bearer_auth(token).send().await.unwrap(), 403, "forbidden").await;
    }
}

const PUBLIC: &str = "https://group.example.com";

/// A Twilio inbound SMS to the webhook, signed with the account's token when `signed`.
async fn reply(app: &TestApp, from: &str, body: &str, signed: bool) -> reqwest::Response {
    let path = "/webhooks/twilio/sms";
    let p: Vec<(String, String)> = [
        ("AccountSid", "AC0123"),
        ("MessageSid", &format!("SM{}", fresh_number().trim_start_matches('+'))),
        ("From", from),
        ("To", "+15005550006"),
        ("Body", body),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut req = app.client.post(app.url(path)).form(&p);
    if signed {
        req = req.header("X-Twilio-Signature", twilio_signature("twilio-token", &format!("{PUBLIC}{path}"), &p));
    }
    req.send().await.unwrap()
}

/// The SMS bodies Twilio was asked to send to `to`, oldest first.
async fn texts(twilio: &MockServer, to: &str) -> Vec<String> {
    let requests = twilio.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter_map(|r| serde_urlencoded::from_bytes::<Vec<(String, String)>>(&r.body).ok())
        .filter(|p| p.iter().any(|(k, v)| k == "To" && v == to))
        .filter_map(|p| p.into_iter().find(|(k, _)| k == "Body").map(|(_, v)| v))
        .collect()
}

/// Waits until `to` was sent `n` messages, and returns them.
async fn texts_eventually(twilio: &MockServer, to: &str, n: usize) -> Vec<String> {
    crate::helpers::eventually(|| async {
        let t = texts(twilio, to).await;
        (t.len() == n).then_some(t)
    })
    .await
}

#[tokio::test]
async fn an_invitee_joins_by_texting_the_invite_code_back() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SMtw1" }))).mount(&twilio).await;
    let uri = twilio.uri();
    let app = TestApp::spawn_with(|c| {
        c.accounts.registration = Registration::InviteOnly;
        c.public_url = Some(PUBLIC.into());
        c.providers.insert("tw".into(), crate::helpers::providers::twilio(&uri, 30_000));
        c.routing.default.providers = vec!["tw".into()];
    })
    .await;
    let admin_phone = fresh_number();
    app.state.accounts.create_admin(&Caller::system("tests"), "admin", &admin_phone).await.unwrap();
    let flow: Value = app.anon_post("/api/auth/login", json!({ "phone": admin_phone })).await.json().await.unwrap();
    let code: String = texts_eventually(&twilio, &admin_phone, 1).await[0].chars().filter(char::is_ascii_digit).collect();
    let admin = app.verify_code(&flow, &code, None).await["access_token"].as_str().unwrap().to_string();
    let get = |path: &str| app.client.get(app.url(path)).bearer_auth(&admin).send();
    let code: Value = get("/api/admin/invite-code").await.unwrap().json().await.unwrap();
    let invite_code = code["code"].as_str().unwrap().to_string();
    assert_eq!(invite_code.len(), 8);
    let (invited, stranger) = (fresh_number(), fresh_number());
    app.client.post(app.url("/api/admin/invites")).bearer_auth(&admin).json(&json!({ "phone": invited })).send().await.unwrap();
    let sms = texts_eventually(&twilio, &invited, 1).await;
    assert!(sms[0].contains(&invite_code), "the invite carries the code: {sms:?}");

    // Unsigned: refused, nothing sent. A stranger, or the wrong code: the same answer as a join,
    // and nothing sent.
    expect_error(reply(&app, &invited, &invite_code, false).await, 403, "invalid_signature").await;
    let answers = [
        reply(&app, &stranger, &invite_code, true).await,
        reply(&app, &invited, "WRONGCDE", true).await,
        reply(&app, &invited, &format!("join {}-{}", &invite_code[..4].to_lowercase(), &invite_code[4..]), true).await,
    ];
    let mut bodies = Vec::new();
    for r in answers {
        assert_eq!(r.status(), StatusCode::OK);
        bodies.push(r.text().await.unwrap());
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    let sent = texts_eventually(&twilio, &invited, 2).await;
    let code: String = sent[1].chars().filter(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 6, "{sent:?}");
    // The replies have all been answered: the join's code is the one text they queued.
    assert_eq!((app.queued(&invited).await, app.queued(&stranger).await), (2, 0));

    // A stranger who knows the number takes the reply over first and guesses: that ends only the
    // stranger's own attempts, never the reply's.
    let r = app.anon_post("/api/auth/signup", json!({ "username": "intruder", "phone": invited })).await;
    let strangers: Value = r.json().await.unwrap();
    let guess = |flow: &Value, c: String| app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": c }));
    for _ in 0..3 {
        expect_error(guess(&strangers, crate::helpers::wrong(&code)).await, 400, "code_incorrect").await;
    }
    // The sign-up with that number takes the reply's code over too: no new code is sent, and
    // its own attempts are all there.
    let r = app.anon_post("/api/auth/signup", json!({ "username": "replier", "phone": invited })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let flow: Value = r.json().await.unwrap();
    let e = expect_error(guess(&flow, crate::helpers::wrong(&code)).await, 400, "code_incorrect").await;
    assert_eq!(e["attempts_left"], 4);
    assert_eq!(app.queued(&invited).await, 2, "no second code");
    let joined = app.verify_code(&flow, &code, None).await;
    assert_eq!(joined["user"]["username"], "replier");
    let invites: Value = get("/api/admin/invites").await.unwrap().json().await.unwrap();
    assert_eq!(invites["invites"][0]["status"], "used");

    // Rotated: the old code starts nothing, the new one does; invites carry the new one.
    let rotated: Value =
        app.client.post(app.url("/api/admin/invite-code/rotate")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    let new_code = rotated["code"].as_str().unwrap().to_string();
    assert_ne!(new_code, invite_code);
    let next = fresh_number();
    app.client.post(app.url("/api/admin/invites")).bearer_auth(&admin).json(&json!({ "phone": next })).send().await.unwrap();
    assert!(texts_eventually(&twilio, &next, 1).await[0].contains(&new_code));
    assert_eq!(reply(&app, &next, &invite_code, true).await.status(), StatusCode::OK);
    assert_eq!(reply(&app, &next, &new_code, true).await.status(), StatusCode::OK);
    texts_eventually(&twilio, &next, 2).await;
    assert_eq!(app.queued(&next).await, 2, "only the current code started a join");

    // The audit log says what happened, who did it and from where, filtered.
    let log: Value = get("/api/admin/audit?kind=invite_replied").await.unwrap().json().await.unwrap();
    assert_eq!(log["events"].as_array().unwrap().len(), 2, "{log}");
    let log: Value = get("/api/admin/audit?kind=invite_code_rotated").await.unwrap().json().await.unwrap();
    let admin_id = log["events"][0]["actor"].as_str().unwrap().to_string();
    assert!(admin_id.starts_with("us"), "{log}");
    let by_admin: Value = get(&format!("/api/admin/audit?who={admin_id}&kind=invite_created")).await.unwrap().json().await.unwrap();
    assert_eq!(by_admin["events"].as_array().unwrap().len(), 2);
    assert_eq!(by_admin["events"][0]["ip"], "127.0.0.1");
    let nobody: Value = get("/api/admin/audit?who=us_nobody").await.unwrap().json().await.unwrap();
    assert!(nobody["events"].as_array().unwrap().is_empty());
    let future: Value = get("/api/admin/audit?since=2999-01-01T00:00:00Z").await.unwrap().json().await.unwrap();
    assert!(future["events"].as_array().unwrap().is_empty());
    let elsewhere: Value = get("/api/admin/audit?kind=invite_created&ip=10.0.0.1").await.unwrap().json().await.unwrap();
    assert!(elsewhere["events"].as_array().unwrap().is_empty());
}
