//! Regression tests for the fixes of the independent review: each test shows one problem the
//! review found is gone, against the real server on 127.0.0.1.

mod common;

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
    // Once its queue is full the session gives up within the client timeout, and the place
    // is given back.
    wait_for_metric(&app, WS_OPEN, |n| n == 0).await;
    flood.abort();
}

/// A server that restarted counts `seq` from 1 again, under a new run. A long poll whose
/// `after` is from an earlier run (its `run` differs) is answered at once with the current
/// tick. An `after` beyond the current seq *of the same run* (or with no run) is no restart
/// but a lagging instance, and is held (issue 14, item 1).
#[tokio::test]
async fn a_long_poll_after_a_seq_from_an_earlier_run_is_answered_with_the_current_tick() {
    let app = spawn_app(Config {
        tick_ms: 60_000,
        long_poll_secs: 120,
        ..test_config()
    })
    .await;
    let current: serde_json::Value = reqwest::get(app.http("/price"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = current["run"].as_str().unwrap().to_owned();
    let poll =
        reqwest::get(app.http("/price/next?symbol=ACME&after=999999999&run=0000000000000001"));
    // Far shorter than the next tick (60 s) and the long-poll timeout (120 s): only an
    // immediate answer arrives within it.
    let response = tokio::time::timeout(WAIT, poll)
        .await
        .expect("answered at once, not held")
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tickerlab-run"], run.as_str());
    let tick: serde_json::Value = response.json().await.unwrap();
    assert_eq!(tick["seq"], current["seq"], "{tick}");
    assert_eq!(tick["symbol"], "ACME");
    // The current seq itself is still held: that is what long polling is for. And so is a
    // seq beyond it in the same run, or with no run: a lower seq proves no restart. The
    // server counts a held poll in its gauge; once it shows there, the client must have no
    // answer.
    for query in [
        format!("after={}&run={run}", current["seq"]),
        format!("after=999999999&run={run}"),
        "after=999999999".to_owned(),
    ] {
        let held = tokio::spawn(reqwest::get(app.http(&format!("/price/next?{query}"))));
        wait_for_metric(
            &app,
            r#"tickerlab_open_connections{transport="longpoll"}"#,
            |n| n == 1,
        )
        .await;
        assert!(!held.is_finished(), "a poll with {query} must be held");
        held.abort();
        wait_for_metric(
            &app,
            r#"tickerlab_open_connections{transport="longpoll"}"#,
            |n| n == 0,
        )
        .await;
    }
}

/// The same for Server-Sent Events: a `Last-Event-ID` from an earlier run is ignored and the
/// current tick is sent at once; it used to silence the symbol until the new run caught up.
#[tokio::test]
async fn an_sse_last_event_id_from_an_earlier_run_is_ignored() {
    let app = spawn_app(Config {
        tick_ms: 60_000,
        ..test_config()
    })
    .await;
    let client = reqwest::Client::new();
    let mut response = client
        .get(app.http("/events?symbols=ACME,GLOBX"))
        .header("Last-Event-ID", "ACME:999999999")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    let wanted = [r#""symbol":"ACME","#, r#""symbol":"GLOBX","#];
    while !wanted.iter().all(|w| text.contains(w)) {
        let chunk = tokio::time::timeout(WAIT, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no current tick within the wait; got {text:?}"))
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Every long-lived transport refused at `--max-connections` gets the same `503`: JSON naming
/// the limit, and `Retry-After` (event streams and long polls used to lack it).
#[tokio::test]
async fn refusals_at_max_connections_carry_retry_after_on_every_transport() {
    let app = spawn_app(Config {
        tick_ms: 60_000,
        max_connections: 1,
        ..test_config()
    })
    .await;
    let _stream = reqwest::get(app.http("/events")).await.unwrap();
    wait_for_metric(
        &app,
        r#"tickerlab_open_connections{transport="sse"}"#,
        |n| n == 1,
    )
    .await;
    let mut bodies = Vec::new();
    for path in ["/events", "/price/next?after=1"] {
        let refused = reqwest::get(app.http(path)).await.unwrap();
        assert_eq!(refused.status(), 503, "{path}");
        assert_eq!(refused.headers()["retry-after"], "5", "{path}");
        let body: serde_json::Value = refused.json().await.unwrap();
        let error = body["error"].as_str().expect("an error text").to_owned();
        assert!(error.contains("--max-connections"), "{path}: {error}");
        bodies.push(error);
    }
    let refused = tokio_tungstenite::connect_async(app.ws_url("/ws")).await;
    let response = match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response,
        other => panic!("expected an HTTP refusal, got {other:?}"),
    };
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: serde_json::Value =
        serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
    bodies.push(body["error"].as_str().unwrap().to_owned());
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:#?}");
}

/// A foreign page's event stream is refused in the words of event streams, not WebSockets.
#[tokio::test]
async fn an_event_stream_origin_refusal_does_not_speak_of_websocket_handshakes() {
    let app = spawn_app(test_config()).await;
    let refused = reqwest::Client::new()
        .get(app.http("/events"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("https://evil.example") && text.contains("--allowed-origin"),
        "{text}"
    );
    assert!(!text.contains("WebSocket handshake"), "{text}");
}

/// The long poll reads its query like every other route: an over-long one is a `400` that
/// says so (it used to be parsed whatever its length).
#[tokio::test]
async fn an_over_long_long_poll_query_is_refused_by_length() {
    let app = spawn_app(test_config()).await;
    let query = format!("symbol=ACME&after=1&x={}", "y".repeat(2000));
    let response = reqwest::get(app.http(&format!("/price/next?{query}")))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("too long") && error.contains("?symbol=NAME&after=SEQ"),
        "{error}"
    );
}
