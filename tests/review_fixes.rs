//! Regression tests for the fixes of the independent review: each test shows one problem the
//! review found is gone, against the real server on 127.0.0.1.

mod common;

use std::time::Duration;

use common::raw::{PING, RawWs};
use common::{WAIT, WS_OPEN, spawn_app, test_config, wait_for_metric};
use tickerlab::Config;
use tokio::io::AsyncWriteExt;

/// A client that never reads but floods pings fills the session's queue with pongs. The
/// session must still give up on it within the client timeout (it used to wait forever for
/// room for the next pong, keeping its connection place).
#[tokio::test]
async fn a_client_that_floods_pings_and_never_reads_is_dropped() {
    let app = spawn_app(Config {
        // No ticks: only pongs can fill the queue, so the pong path is what is tested.
        tick_ms: 60_000,
        heartbeat_secs: 1,
        client_timeout_secs: 2,
        max_messages_per_sec: 1_000_000,
        ..test_config()
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    // A tiny receive window: the server's pongs back up after a few kilobytes.
    socket.set_recv_buffer_size(1024).expect("SO_RCVBUF");
    let stream = socket.connect(app.addr).await.expect("connect");
    let mut ws = RawWs::handshake(stream, app.addr, "/ws").await;
    wait_for_metric(&app, WS_OPEN, |n| n == 1).await;
    // Flood pings (125 bytes, the most a control frame may carry) and never read. The writes
    // block once the server stops reading; they end when it drops the connection.
    let flood = tokio::spawn(async move {
        // A masked ping frame (RFC 6455 5.2) with an all-zero mask, written raw so that a
        // write error (the server dropped us) ends the loop instead of panicking.
        let mut frame = vec![0x80 | PING, 0x80 | 125, 0, 0, 0, 0];
        frame.extend_from_slice(&[b'p'; 125]);
        for _ in 0..2_000_000 {
            match tokio::time::timeout(WAIT * 3, ws.stream.write_all(&frame)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
    });
    // Within the client timeout (plus the wait margin) the place is given back.
    wait_for_metric_within(&app, WS_OPEN, WAIT * 2).await;
    flood.abort();
}

/// [`wait_for_metric`] with a longer limit, for a gauge that must reach 0.
async fn wait_for_metric_within(app: &common::TestApp, series: &str, limit: Duration) {
    let start = std::time::Instant::now();
    loop {
        let value = common::metric(&common::metrics_text(app).await, series);
        if value == 0 {
            return;
        }
        assert!(start.elapsed() < limit, "{series} stuck at {value}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
