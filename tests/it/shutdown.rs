//! Graceful shutdown of the real binary: on SIGTERM or SIGINT (Ctrl-C) every WebSocket gets a
//! close frame with 1001 (going away), an in-flight request (a held long poll) is answered,
//! idle HTTP connections are closed, and the process exits 0.

use crate::common;
use common::{close_of, hello};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn graceful_stop_on(signal: &str) {
    // A slow tick, so a long poll for the tick after the current one stays held.
    let (mut child, addr, mut lines) = common::start_binary(&["--tick-ms", "60000"]).await;
    // Keep reading the output (the log goes to stdout too), so the process never blocks or
    // fails on a full or closed pipe; print it for a failing run.
    let output = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("tickerlab: {line}");
        }
    });

    let mut sockets = Vec::new();
    for _ in 0..5 {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        hello(&mut ws).await;
        sockets.push(ws);
    }
    // A keep-alive HTTP connection that has just been answered.
    let mut keep_alive = TcpStream::connect(&addr).await.unwrap();
    keep_alive
        .write_all(format!("GET /price HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut first = [0u8; 17];
    keep_alive.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK\r\n");

    // An in-flight request: a long poll held for a tick that will not come before the signal
    // (the one after the current tick; a seq beyond the current one would be answered at
    // once, as from an earlier run of the server).
    let current: serde_json::Value = reqwest::get(format!("http://{addr}/price"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seq = current["seq"].as_u64().expect("seq");
    let mut in_flight = TcpStream::connect(&addr).await.unwrap();
    in_flight
        .write_all(
            format!("GET /price/next?after={seq} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    common::wait_until_held(&addr).await;

    let signalled = Instant::now();
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(status.success());
    for ws in &mut sockets {
        let (code, reason) = close_of(ws).await;
        assert_eq!(code, 1001, "{reason}");
        assert_eq!(reason, "server shutting down");
    }
    eprintln!(
        "{signal}: all 5 sockets got 1001 within {:?}",
        signalled.elapsed()
    );

    // The in-flight request is answered (204: no newer price before the server stopped),
    // not cut off.
    let mut answer = Vec::new();
    tokio::time::timeout(common::WAIT, in_flight.read_to_end(&mut answer))
        .await
        .expect("the in-flight request is finished")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 204"),
        "in-flight long poll got {answer:?}"
    );

    // The idle keep-alive connection is closed (end of stream), not left hanging.
    let mut rest = Vec::new();
    tokio::time::timeout(common::WAIT, keep_alive.read_to_end(&mut rest))
        .await
        .expect("the idle connection is closed")
        .ok();

    let status = tokio::time::timeout(common::WAIT, child.wait())
        .await
        .expect("the process exits")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    output.await.unwrap();
    // After the exit nobody listens any more.
    assert!(TcpStream::connect(&addr).await.is_err());
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1001_closes_idle_http_and_exits_0() {
    graceful_stop_on("TERM").await;
}

#[tokio::test]
async fn sigint_closes_sockets_with_1001_closes_idle_http_and_exits_0() {
    graceful_stop_on("INT").await;
}

/// Sends `GET /price` and reads its whole answer, leaving the connection idle; returns the head.
async fn get_price(tcp: &mut TcpStream) -> String {
    let request = "GET /price?symbol=ACME HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let (head, mut body) = common::raw::request(tcp, request).await;
    let length: usize = head
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse()))
        .expect("a Content-Length")
        .expect("a number");
    while body.len() < length {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(common::WAIT, tcp.read(&mut chunk))
            .await
            .expect("the body within the wait")
            .expect("read");
        assert!(n > 0, "closed in the middle of the body");
        body.extend_from_slice(&chunk[..n]);
    }
    head
}

/// A graceful stop closes an idle keep-alive connection at once, not when its keep-alive
/// timer (5 s) fires: each connection's dispatcher waits on actix's graceful-shutdown signal.
#[tokio::test]
async fn a_graceful_stop_closes_an_idle_keep_alive_connection_at_once() {
    let app = common::spawn_app(common::test_config()).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    for _ in 0..2 {
        let head = get_price(&mut tcp).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    let answered = Instant::now();
    let stopper = app.stopper.clone();
    let stopping = tokio::spawn(async move { stopper.stop().await });
    let mut rest = Vec::new();
    tokio::time::timeout(common::WAIT, tcp.read_to_end(&mut rest))
        .await
        .expect("the idle connection is closed")
        .ok();
    let closed_after = answered.elapsed();
    assert!(
        closed_after < std::time::Duration::from_secs(4),
        "the idle connection was closed {closed_after:?} after its last answer: by its \
         keep-alive timer (5 s), not by the shutdown"
    );
    stopping.await.unwrap();
}

/// A graceful stop that finds a keep-alive connection in the middle of a request (a held long
/// poll) answers the request, then closes the connection at once, not when its keep-alive
/// timer (5 s) fires: the dispatcher looks at actix's graceful-shutdown signal whenever it is
/// between responses (with a patched dispatcher that does not look while a response is being
/// sent, see `vendor/README.md`).
#[tokio::test]
async fn a_graceful_stop_closes_a_keep_alive_connection_once_its_held_request_is_answered() {
    // A slow tick, so a long poll for the tick after the current one stays held.
    let config = tickerlab::config::Config {
        tick_ms: 60_000,
        ..common::test_config()
    };
    let app = common::spawn_app(config).await;
    let addr = app.addr.to_string();
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let head = get_price(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seq = app.feed.latest().ticks[0].tick.seq;
    tcp.write_all(
        format!("GET /price/next?symbol=ACME&after={seq} HTTP/1.1\r\nHost: {addr}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    common::wait_until_held(&addr).await;
    let stopper = app.stopper.clone();
    let stopping = tokio::spawn(async move { stopper.stop().await });
    // The held request is answered (204: no newer price before the server stopped) ...
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    let answered = loop {
        let n = tokio::time::timeout(common::WAIT, tcp.read(&mut chunk))
            .await
            .expect("the held request is answered")
            .unwrap();
        assert!(n > 0, "closed before an answer: {answer:?}");
        answer.extend_from_slice(&chunk[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break Instant::now();
        }
    };
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    // ... and then the connection is closed.
    let mut rest = Vec::new();
    tokio::time::timeout(common::WAIT, tcp.read_to_end(&mut rest))
        .await
        .expect("the connection is closed")
        .ok();
    let closed_after = answered.elapsed();
    assert!(
        closed_after < std::time::Duration::from_secs(4),
        "the connection was closed {closed_after:?} after its answer: by its keep-alive timer \
         (5 s), not by the shutdown"
    );
    stopping.await.unwrap();
}
