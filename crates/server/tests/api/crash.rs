//! Crash safety: the server is killed with SIGKILL again and again while parallel starts and
//! checks are in flight. Whatever it acknowledged must be in the database afterwards, nothing
//! may be approved twice, and no pending verification may be left without its message.
use crate::helpers::{Server, cli_key, eventually, fresh_number};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Seen {
    /// Verifications whose start was answered 201.
    started: Vec<String>,
    /// Approvals answered per verification.
    approvals: HashMap<String, u32>,
}

/// Every test number shares the prefix `+49151`: on a fast machine the clients' hundreds of starts
/// would meet its send budget (and the prefix throttle) and stall the load this test kills into.
const UNBUDGETED: &[(&str, &str)] = &[("PHONEGATE_BUDGETS__SENDS_PER_PREFIX", "[]"), ("PHONEGATE_BUDGETS__SENDS_PER_NUMBER", "[]")];

async fn keyed_server(url: &str) -> (Server, String) {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let secret = cli_key(&url, "crash");
        (Server::spawn(&url, UNBUDGETED), secret)
    })
    .await
    .unwrap()
}

/// One client: start a verification, read its code, check it twice at once; until the server dies.
async fn client(base: String, secret: String, seen: Arc<Mutex<Seen>>) {
    let http = reqwest::Client::new();
    loop {
        let to = fresh_number();
        let Ok(r) = http.post(format!("{base}/api/verifications")).bearer_auth(&secret).json(&json!({ "to": to })).send().await else {
            return;
        };
        if r.status() != 201 {
            continue;
        }
        let Ok(v) = r.json::<Value>().await else { return };
        let id = v["id"].as_str().unwrap().to_string();
        seen.lock().unwrap().started.push(id.clone());
        let outbox = http.get(format!("{base}/api/dev/outbox")).query(&[("to", &to)]).bearer_auth(&secret).send().await;
        let Ok(outbox) = outbox else { return };
        let Ok(outbox) = outbox.json::<Value>().await else { return };
        let Some(body) = outbox["messages"][0]["body"].as_str() else { continue };
        let code = body.rsplit(' ').next().unwrap().to_string();
        let check = || http.post(format!("{base}/api/verifications/{id}/check")).bearer_auth(&secret).json(&json!({ "code": code })).send();
        let (a, b) = tokio::join!(check(), check());
        for r in [a, b] {
            let Ok(r) = r else { return };
            if r.status() == 200 && r.json::<Value>().await.is_ok_and(|c| c["valid"] == true) {
                *seen.lock().unwrap().approvals.entry(id.clone()).or_default() += 1;
            }
        }
    }
}

#[tokio::test]
async fn acknowledged_work_survives_sigkill_and_nothing_is_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let url = phonegate_store::testing::fresh_database_url(dir.path()).await.unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (mut server, secret) = keyed_server(&url).await;
    for round in 0..5u64 {
        let before = seen.lock().unwrap().started.len();
        let clients: Vec<_> = (0..12).map(|_| tokio::spawn(client(server.base.clone(), secret.clone(), seen.clone()))).collect();
        // Once this round's load has reached the server (however fast the machine), and a moment
        // more that differs per round, so the kills land at different points of the work.
        eventually(|| async { (seen.lock().unwrap().started.len() >= before + 4).then_some(()) }).await;
        tokio::time::sleep(Duration::from_millis(70 * round)).await;
        // SIGKILL, with requests in flight.
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        for c in clients {
            c.await.unwrap();
        }
        let u = url.clone();
        server = tokio::task::spawn_blocking(move || Server::spawn(&u, UNBUDGETED)).await.unwrap();
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(seen.started.len() >= 20, "the load reached the server: {} starts", seen.started.len());
    let http = reqwest::Client::new();
    for id in &seen.started {
        let r = http.get(format!("{}/api/verifications/{id}", server.base)).bearer_auth(&secret).send().await.unwrap();
        assert_eq!(r.status(), 200, "acknowledged verification {id} is gone");
    }
    for (id, n) in &seen.approvals {
        assert_eq!(*n, 1, "verification {id} was approved {n} times");
    }
    let orphans = phonegate_store::testing::count(
        &url,
        "SELECT count(*) FROM verifications v WHERE v.status = 'pending' \
         AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.verification_id = v.id)",
    )
    .await
    .unwrap();
    assert_eq!(orphans, 0, "pending verifications without their message");
}
