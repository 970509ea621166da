//! Connection limits: idle, trickling and stalled clients are closed; thousands of idle sockets
//! do not stop the server from answering; oversized headers are refused.
use crate::helpers::{TestApp, fresh_number};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn limited(header_read_secs: u64, idle_secs: u64) -> TestApp {
    TestApp::spawn_with(|c| {
        c.connections.header_read = Duration::from_secs(header_read_secs);
        c.connections.idle = Duration::from_secs(idle_secs);
    })
    .await
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection; returns what it sent and how long that took.
/// Panics if it is still open after 60 s: far above every limit under test, that only stops a
/// broken test from hanging.
async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) -> (String, Duration) {
    let t = Instant::now();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buf)).await {
            Err(_) => panic!("the connection was still open after {:?}", t.elapsed()),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
    }
    (String::from_utf8_lossy(&all).into_owned(), t.elapsed())
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    // Idle for 2 s closes it; the 120 s header limit, or never, is what closes it without that.
    let app = limited(120, 2).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    let (_, took) = until_closed(&mut s).await;
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(20), "{took:?}");
}

#[tokio::test]
async fn headers_trickled_a_line_at_a_time_are_cut_off() {
    // Every line keeps the connection from being idle (120 s); only the 2 s header limit cuts it.
    let app = limited(2, 120).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    let (mut from_server, mut to_server) = s.split();
    to_server.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // A line every 500 ms for 30 s, fifteen times the limit; writes after the cut fail, unheeded.
    let trickle = async {
        for i in 0..60 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = to_server.write_all(format!("X-Slow-{i}: a\r\n").as_bytes()).await;
        }
    };
    tokio::select! {
        _ = until_closed(&mut from_server) => {}
        () = trickle => panic!("the slow client was held for as long as it trickled"),
    }
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
    // Cut off by the 2 s idle limit: nothing else would ever close it.
    assert!(took < Duration::from_secs(20), "{took:?}");
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
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(app.post("/api/verifications", json!({ "to": fresh_number() })).await.status(), 201);
    // Answered while every idle socket is still open: not once the idle limit (60 s) closed them.
    for (i, socket) in idle.iter().enumerate() {
        match socket.try_read(&mut [0u8; 1]) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("idle socket {i} was closed or answered before the requests were: {other:?}"),
        }
    }
}
