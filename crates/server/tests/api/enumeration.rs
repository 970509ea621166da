//! No account enumeration: for a number (or username) with and without an account, every answer
//! is the same (status, error code, headers, fields), the budgets refuse at the same point, and
//! the work takes the same time (medians of interleaved samples within a stated tolerance).
use crate::helpers::{TestApp, expect_error, fresh_number, wrong};
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Instant;

/// What an answer shows that does not differ per request anyway: status, error code, the
/// names of the body's fields and of the headers (values such as ids and dates differ per flow).
async fn shape(r: reqwest::Response) -> (u16, Value, Vec<String>, Vec<String>) {
    let status = r.status().as_u16();
    let mut headers: Vec<String> = r.headers().keys().map(|k| k.to_string()).collect();
    headers.sort();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let mut fields: Vec<String> = body.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    fields.sort();
    (status, body["error"]["code"].clone(), fields, headers)
}

/// The median of each of two request kinds over `n` interleaved samples, in microseconds.
async fn medians<A, B, FA, FB>(n: usize, mut a: A, mut b: B) -> (u128, u128)
where
    A: FnMut(usize) -> FA,
    B: FnMut(usize) -> FB,
    FA: std::future::Future<Output = StatusCode>,
    FB: std::future::Future<Output = StatusCode>,
{
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for i in 0..n {
        let t = Instant::now();
        assert_eq!(a(i).await, StatusCode::ACCEPTED);
        ta.push(t.elapsed().as_micros());
        let t = Instant::now();
        assert_eq!(b(i).await, StatusCode::ACCEPTED);
        tb.push(t.elapsed().as_micros());
    }
    ta.sort_unstable();
    tb.sort_unstable();
    (ta[n / 2], tb[n / 2])
}

/// Timing comparisons run one at a time (each interleaves its two kinds of request, so load
/// from other tests falls on both alike).
static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The slower median is at most `tolerance` times the faster one. The differences removed here
/// are far outside the tolerances used: hashing a password or not (over 20x), a verification's
/// unit of work or not (1.4x to 1.6x before decoys rehearsed it; about 1.05x after).
fn alike((a, b): (u128, u128), what: &str, tolerance: f64) {
    let ratio = a.max(b) as f64 / a.min(b).max(1) as f64;
    println!("{what}: medians {a} µs and {b} µs, ratio {ratio:.2}");
    assert!(ratio <= tolerance, "{what}: medians {a} µs and {b} µs differ by {ratio:.2}x (tolerance {tolerance}x)");
}

fn unbudgeted(c: &mut phonegate::config::Config) {
    c.budgets.logins_per_ip = vec!["100000/1h".parse().unwrap()];
    c.budgets.starts_per_ip = vec!["100000/1h".parse().unwrap()];
    c.budgets.sends_per_prefix = Vec::new();
    c.budgets.throttle_after = None;
}

#[tokio::test]
async fn a_sign_up_with_a_password_hashes_it_whether_or_not_the_number_has_an_account() {
    let app = TestApp::spawn_with(unbudgeted).await;
    let taken: Vec<String> = (0..15).map(|_| fresh_number()).collect();
    for (i, p) in taken.iter().enumerate() {
        app.sign_up(&format!("holder{i}"), p, None).await;
    }
    let signup = |name: String, phone: String| {
        let body = json!({ "username": name, "phone": phone, "password": "a long enough password" });
        let request = app.client.post(app.url("/api/auth/signup")).json(&body);
        async move { request.send().await.unwrap().status() }
    };
    let _one_at_a_time = TIMING.lock().await;
    let times = medians(15, |i| signup(format!("new{i}"), fresh_number()), |i| signup(format!("again{i}"), taken[i].clone())).await;
    alike(times, "sign-up with a password, new number vs a number with an account", 2.0);
}

#[tokio::test]
async fn a_passwordless_login_takes_the_same_time_with_and_without_an_account() {
    let app = TestApp::spawn_with(unbudgeted).await;
    let n = 200;
    let holders: Vec<String> = (0..3 * n).map(|_| fresh_number()).collect();
    for (i, p) in holders.iter().enumerate() {
        app.state.accounts.create_admin(&phonegate_core::Caller::system("tests"), &format!("holder{i}"), p).await.unwrap();
    }
    let login = |phone: String| {
        let request = app.client.post(app.url("/api/auth/login")).json(&json!({ "phone": phone }));
        async move { request.send().await.unwrap().status() }
    };
    // Up to three rounds of 200 pairs each, on fresh accounts: a moment of load from the other
    // tests running beside this one may tip one round, a difference in the work tips every one.
    let _one_at_a_time = TIMING.lock().await;
    let mut rounds = Vec::new();
    for round in 0..3 {
        let times = medians(n, |i| login(holders[round * n + i].clone()), |_| login(fresh_number())).await;
        let ratio = times.0.max(times.1) as f64 / times.0.min(times.1).max(1) as f64;
        println!("passwordless login, account vs none, round {round}: medians {} µs and {} µs, ratio {ratio:.2}", times.0, times.1);
        if ratio <= 1.3 {
            return;
        }
        rounds.push(times);
    }
    panic!("passwordless login, account vs none: medians differ by more than 1.3x in every round: {rounds:?}");
}

#[tokio::test]
async fn the_same_answers_and_budgets_with_and_without_an_account() {
    // Two servers with the same small budgets: one asked about a number with an account, one
    // about a number without (each address's budgets are its own).
    let config = |c: &mut phonegate::config::Config| {
        c.budgets.checks_per_ip = vec!["3/1h".parse().unwrap()];
        c.budgets.failed_logins_per_account = vec!["100/1h".parse().unwrap()];
    };
    let (real, decoy) = (TestApp::spawn_with(config).await, TestApp::spawn_with(config).await);
    let (with, without) = (fresh_number(), fresh_number());
    real.sign_up("holder", &with, None).await;
    // The sign-up's own send and check fall out of every window first.
    for app in [&real, &decoy] {
        app.advance(Duration::minutes(61));
    }
    let mut answers = Vec::new();
    for (app, phone) in [(&real, &with), (&decoy, &without)] {
        let mut seen = Vec::new();
        let r = app.anon_post("/api/auth/login", json!({ "phone": phone })).await;
        let flow: Value = r.json().await.unwrap();
        // Resends until the number's send budget refuses…
        for _ in 0..6 {
            app.advance(Duration::seconds(31));
            seen.push(shape(app.anon_post("/api/auth/resend", json!({ "flow_id": flow["flow_id"] })).await).await);
        }
        // …and wrong codes until the address's check budget refuses.
        for _ in 0..4 {
            seen.push(shape(app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": "000000" })).await).await);
        }
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1], "a number with an account and one without answer alike");
    assert!(answers[0].iter().any(|a| a.0 == 429 && a.1 == "send_budget_exceeded"), "{:?}", answers[0]);
    assert_eq!(answers[0].last().unwrap().1, "rate_limited", "{:?}", answers[0]);
}

#[tokio::test]
async fn a_taken_username_says_nothing_of_whose_number_is_given() {
    let app = TestApp::spawn().await;
    let phone = fresh_number();
    let holder = app.sign_up("known", &phone, None).await;
    let code = |r: reqwest::Response| async { shape(r).await };
    let own = code(app.anon_post("/api/auth/signup", json!({ "username": "known", "phone": phone })).await).await;
    let other = code(app.anon_post("/api/auth/signup", json!({ "username": "KNOWN", "phone": fresh_number() })).await).await;
    assert_eq!(own, other);
    assert_eq!((own.0, own.1.as_str()), (409, Some("username_taken")));
    // A wrong code on the holder's number still counts like one on any other.
    let (flow, c) = app.flow_code("/api/auth/login", json!({ "phone": phone }), &phone).await;
    let r = app.anon_post("/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": wrong(&c) })).await;
    expect_error(r, 400, "code_incorrect").await;
    assert_eq!(holder["user"]["username"], "known");
}

/// A wrong password costs what the right one does: a code to the account's number. Once the
/// number's send budget is spent, the right and a wrong password get the same refusal, so a
/// spent budget never tells a right password from a wrong one.
#[tokio::test]
async fn right_and_wrong_passwords_meet_the_same_send_budget() {
    let app = TestApp::spawn_with(unbudgeted).await;
    let phone = fresh_number();
    app.sign_up("pw.holder", &phone, Some("the right password")).await;
    app.advance(Duration::minutes(11));
    for _ in 0..5 {
        assert_eq!(app.anon_post("/api/auth/login", json!({ "phone": phone })).await.status(), StatusCode::ACCEPTED);
        app.advance(Duration::seconds(1));
    }
    let login = |password: &str| app.anon_post("/api/auth/login", json!({ "identifier": "pw.holder", "password": password }));
    let right = shape(login("the right password").await).await;
    let wrong = shape(login("a wrong password").await).await;
    assert_eq!(right, wrong);
    assert_eq!((right.0, right.1.as_str()), (429, Some("send_budget_exceeded")));
}

/// The identifier of a password login is a username or an e-mail address and nothing else: the
/// counters of recognised devices and of decoys cannot be named (and so used up) by anyone.
#[tokio::test]
async fn identifiers_that_are_no_username_or_address_are_refused() {
    let app = TestApp::spawn().await;
    for identifier in ["recognised careful", "recognised:careful", "login careful", "+4915112345678", "a b", "x"] {
        let r = app.anon_post("/api/auth/login", json!({ "identifier": identifier, "password": "some password" })).await;
        expect_error(r, 400, "invalid_parameter").await;
    }
    let r = app.anon_post("/api/auth/login", json!({ "identifier": "someone@example.com", "password": "some password" })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}
