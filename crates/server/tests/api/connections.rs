//! Connection limits: idle, trickling and stalled clients are closed; thousands of idle sockets
//! do not stop the server from answering; oversized headers are refused.
use crate::helpers::{TestApp, fresh_number};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn limited(header_read_secs: u64, idle_secs: u64) -> TestApp {
    TestApp::spawn_with(|c| {
        c.connections.header_read_secs = header_read_secs;
        c.connections.idle_secs = idle_secs;
    })
    .await
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection; returns what it sent and how long that took.
async fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let t = Instant::now();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    // 20 s: far above every limit under test, only stops a broken test from hanging.
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    (String::from_utf8_lossy(&all).into_owned(), t.elapsed())
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let app = limited(30, 2).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    let (_, took) = until_closed(&mut s).await;
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(15), "{took:?}");
}

#[tokio::test]
async fn headers_trickled_a_line_at_a_time_are_cut_off() {
    let app = limited(2, 60).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let trickle = async {
        for i in 0..30 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if s.write_all(format!("X-Slow-{i}: a\r\n").as_bytes()).await.is_err() {
                break;
            }
        }
    };
    let t = Instant::now();
    trickle.await;
    let (_, _) = until_closed(&mut s).await;
    assert!(t.elapsed() < Duration::from_secs(12), "the slow client was held {:?}", t.elapsed());
}

#[tokio::test]
async fn a_stalled_body_is_cut_off() {
    let app = limited(10, 2).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    let head = format!(
        "POST /api/verifications HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"to\":",
        app.secret
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (_, took) = until_closed(&mut s).await;
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(app.query_i64("SELECT count(*) FROM verifications").await, 0);
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let app = TestApp::spawn().await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    let big = "a".repeat(64 * 1024);
    let _ = s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes()).await;
    let (answer, _) = until_closed(&mut s).await;
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn two_thousand_idle_sockets_do_not_stop_the_server_answering() {
    phonegate::listen::raise_file_limit();
    let app = TestApp::spawn().await;
    let mut idle = Vec::new();
    for _ in 0..2000 {
        idle.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    let t = Instant::now();
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(app.post("/api/verifications", json!({ "to": fresh_number() })).await.status(), 201);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    drop(idle);
}
