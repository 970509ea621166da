//! The guarantees under parallel requests against the running server. They come from the
//! database (compare-and-swap, unique index), not from locks in the process.
use crate::helpers::{TestApp, expect_error, fresh_number, wrong};
use futures::future::join_all;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_wrong_checks_consume_at_most_five_attempts() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let id = app.start(&to).await["id"].as_str().unwrap().to_string();
    let code = app.code_for(&to).await;
    let bad = wrong(&code);
    let responses = join_all((0..50).map(|_| app.check(&id, &bad))).await;
    let mut consumed = 0;
    for r in responses {
        match r.status().as_u16() {
            200 => {
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["valid"], false);
                consumed += 1;
            }
            409 => {
                expect_error(r, 409, "verification_max_attempts_reached").await;
            }
            other => panic!("unexpected status {other}: {}", r.text().await.unwrap()),
        }
    }
    assert_eq!(consumed, 5);
    let v: Value = app.get(&format!("/api/verifications/{id}")).await.json().await.unwrap();
    assert_eq!((v["status"].as_str(), v["attempts"].as_u64()), (Some("max_attempts_reached"), Some(5)));
    expect_error(app.check(&id, &code).await, 409, "verification_max_attempts_reached").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_right_checks_approve_exactly_once() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let id = app.start(&to).await["id"].as_str().unwrap().to_string();
    let code = app.code_for(&to).await;
    let responses = join_all((0..20).map(|_| app.check(&id, &code))).await;
    let mut approved = 0;
    for r in responses {
        match r.status().as_u16() {
            200 => {
                let v: Value = r.json().await.unwrap();
                assert_eq!((v["status"].as_str(), v["valid"].as_bool()), (Some("approved"), Some(true)));
                approved += 1;
            }
            _ => {
                expect_error(r, 409, "verification_approved").await;
            }
        }
    }
    assert_eq!(approved, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_starts_for_one_number_share_one_verification_and_the_send_limit() {
    let app = TestApp::spawn().await;
    let to = fresh_number();
    let responses = join_all((0..12).map(|_| app.post("/api/verifications", json!({ "to": to })))).await;
    let mut ids = std::collections::HashSet::new();
    let (mut created, mut limited) = (0, 0);
    for r in responses {
        match r.status().as_u16() {
            201 => {
                let v: Value = r.json().await.unwrap();
                ids.insert(v["id"].as_str().unwrap().to_string());
                created += 1;
            }
            _ => {
                expect_error(r, 429, "max_sends_reached").await;
                limited += 1;
            }
        }
    }
    assert_eq!((ids.len(), created, limited), (1, 5, 7));
    let messages = app.outbox(&to).await;
    assert_eq!(messages.len(), 5);
    assert!(messages.iter().all(|m| m["body"] == messages[0]["body"]), "every send carries the same code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_verifications_for_different_numbers_are_independent() {
    let app = TestApp::spawn().await;
    let numbers: Vec<String> = (0..30).map(|_| fresh_number()).collect();
    let started = join_all(numbers.iter().map(|n| app.start(n))).await;
    let app = &app;
    let checks = join_all(numbers.iter().zip(&started).map(|(n, v)| async move {
        let code = app.code_for(n).await;
        let r: Value = app.check(v["id"].as_str().unwrap(), &code).await.json().await.unwrap();
        r["valid"].as_bool()
    }))
    .await;
    assert!(checks.iter().all(|c| *c == Some(true)));
}
