//! A PostgreSQL outage seen through a TCP proxy the test cuts: readiness fails and requests get
//! 503 `database_unavailable` (never a wrong answer), and both recover by themselves.
use crate::helpers::{TestApp, eventually, expect_error, fresh_number};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Forwards connections to PostgreSQL until cut; while cut it drops every connection.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    severed: Arc<Notify>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let severed = Arc::new(Notify::new());
        let (flag, notify) = (cut.clone(), severed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                if flag.load(Ordering::SeqCst) {
                    continue;
                }
                let upstream = upstream.clone();
                let notify = notify.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = notify.notified() => {}
                    }
                });
            }
        });
        Proxy { port, cut, severed }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.severed.notify_waiters();
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// SQLite is a local file: there is no connection to lose. So this test is ignored in the SQLite
/// pass (cargo lists it as ignored) and the PostgreSQL pass runs it with `--include-ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "postgres only: runs in the PostgreSQL pass (TEST_POSTGRES_URL set, --include-ignored)"]
async fn a_database_outage_gives_503_and_recovers() {
    assert!(
        phonegate_store::testing::postgres_url().is_some(),
        "this test needs PostgreSQL: set TEST_POSTGRES_URL (scripts/test.sh does in its PostgreSQL pass)"
    );
    let dir = tempfile::tempdir().unwrap();
    let direct = phonegate_store::testing::fresh_database_url(dir.path()).await.unwrap();
    let host_port = direct.split('@').nth(1).unwrap().split('/').next().unwrap().to_string();
    let proxy = Proxy::start(host_port.clone()).await;
    let via_proxy = direct.replacen(&host_port, &format!("127.0.0.1:{}", proxy.port), 1);
    let app = TestApp::spawn_with(|c| c.database_url = via_proxy).await;

    let to = fresh_number();
    let v = app.start(&to).await;
    let id = v["id"].as_str().unwrap().to_string();
    let code = app.code_for(&to).await;

    proxy.cut();
    expect_error(app.client.get(app.url("/readyz")).send().await.unwrap(), 503, "database_unavailable").await;
    expect_error(app.post("/api/verifications", json!({ "to": fresh_number() })).await, 503, "database_unavailable").await;
    expect_error(app.check(&id, &code).await, 503, "database_unavailable").await;

    proxy.restore();
    eventually(|| async { (app.client.get(app.url("/readyz")).send().await.unwrap().status() == 200).then_some(()) }).await;
    let r: Value = app.check(&id, &code).await.json().await.unwrap();
    assert_eq!((r["status"].as_str(), r["valid"].as_bool()), (Some("approved"), Some(true)), "the code still works once, after the outage");
    expect_error(app.check(&id, &code).await, 409, "verification_approved").await;
}
