//! Hostile WebSocket clients: a header announcing a
//! gigabyte, reserved bits, floods of pongs and empty continuations, clients that never read.
//! Each test asserts the outcome (the close code and reason, the server's file descriptors
//! from `/proc/self/fd`, the `/metrics` gauges, RSS growth under a bound) and waits for
//! conditions with a generous deadline instead of sleeping. The server runs in this process,
//! so its sockets are found by their local port in `/proc/net/tcp`.

use crate::common;
use common::process::{ServerProcess, server_sockets};
use common::raw::{PING, RawWs};
use common::{
    TestApp, WAIT, WS_OPEN, assert_streaming, close_of, hello, hostile, metric, metrics_text,
    next_of_type, raw, send_json, spawn_app, test_config, wait_for_metric,
};
use common::{app_with_bystander, assert_unharmed, greeted_client, ten_thousand_symbols};
use futures_util::SinkExt;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use tickerlab::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// How long a condition (a released socket, a freed place) may take before a test fails.
/// Generous: the machine may be busy, and the kernel's own timeout is part of some paths.
const DEADLINE: Duration = Duration::from_secs(40);

/// A raw client that has read its `hello`.
async fn raw_client(app: &TestApp, path: &str) -> RawWs {
    let mut ws = RawWs::connect(app.addr, path).await;
    if path.starts_with("/ws") {
        ws.next_text().await;
    }
    ws
}

/// The server's connected sockets (not its listener) in this process.
fn server_fds(app: &TestApp) -> usize {
    server_sockets(app.addr.port())
}

/// Waits until `ok` holds, panicking with `what` after [`DEADLINE`].
async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < DEADLINE, "still not true: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- R1: a header announcing more than the limit ----------------------------------------------

/// Sends a header announcing 1 GiB, then as much of that payload as the server will take
/// (up to `send` bytes), then returns the close frame's code and reason.
async fn announce_a_gigabyte(app: &TestApp, path: &str, send: usize) -> (u16, String) {
    let mut ws = raw_client(app, path).await;
    hostile::announce_a_gigabyte(&mut ws.stream, send).await;
    ws.until_close().await
}

#[tokio::test]
async fn a_header_announcing_a_gigabyte_closes_1009_naming_the_limit() {
    let app = spawn_app(test_config()).await;
    let mut bystander = app.ws("/ws").await;
    hello(&mut bystander).await;
    let (code, reason) = announce_a_gigabyte(&app, "/ws", 0).await;
    assert_eq!(code, 1009, "{reason}");
    assert_eq!(reason, "message larger than 4096 bytes");
    // Same on /echo: the same guard and limits.
    let (code, reason) = announce_a_gigabyte(&app, "/echo", 0).await;
    assert_eq!(
        (code, reason.as_str()),
        (1009, "message larger than 4096 bytes")
    );
    wait_for_metric(&app, WS_OPEN, |n| n == 1).await;
    assert_streaming(&mut bystander, 5).await;
}

/// Measured on a server process of its own: this test program's memory moves with every
/// other test running beside it.
#[tokio::test]
async fn memory_stays_bounded_while_four_clients_stream_a_gigabyte_payload() {
    let server = ServerProcess::start(&["--tick-ms", "20", "--workers", "2"]).await;
    server.assert_healthy().await; // warm up: the workers' first allocations are not the clients'
    let before = server.rss_kib();
    // Without the frame guard, each of these would pin everything it sent: 4 x 32 MiB here.
    let clients = (0..4).map(|_| async {
        let mut ws = RawWs::connect(server.addr, "/ws").await;
        ws.next_text().await; // hello
        hostile::announce_a_gigabyte(&mut ws.stream, 32 << 20).await;
        ws.until_close().await
    });
    for (code, reason) in futures_util::future::join_all(clients).await {
        assert_eq!(code, 1009, "{reason}");
    }
    let grown = server.rss_kib().saturating_sub(before);
    eprintln!("RSS grew by {grown} KiB for 4 hostile clients");
    assert!(
        grown < 24 << 10,
        "RSS grew by {} MiB: the payload was buffered",
        grown >> 10
    );
    wait_until("the four sockets are released", || {
        server.connections() == 0
    })
    .await;
}

// ---- R5: reserved bits -------------------------------------------------------------------------

#[tokio::test]
async fn a_reserved_bit_closes_1002_naming_the_bit() {
    let app = spawn_app(test_config()).await;
    for (path, first, bit) in [
        ("/ws", 0xc1, "RSV1"),
        ("/ws", 0xa1, "RSV2"),
        ("/echo", 0x91, "RSV3"),
    ] {
        let mut ws = raw_client(&app, path).await;
        // A text frame with one reserved bit set: `send_frame` writes FIN + opcode, so the
        // reserved bit is or-ed into the opcode byte.
        ws.send_frame(true, first & 0x7f, b"{}").await;
        let (code, reason) = ws.until_close().await;
        assert_eq!(code, 1002, "{path} {bit}: {reason}");
        assert!(reason.contains(bit), "{path}: {reason}");
    }
}

// ---- R6: frames that are not messages still count ---------------------------------------------

fn flood_config() -> Config {
    Config {
        max_messages_per_sec: 10,
        ..test_config()
    }
}

#[tokio::test]
async fn a_flood_of_unsolicited_pongs_closes_1008() {
    let app = spawn_app(flood_config()).await;
    let mut ws = raw_client(&app, "/ws").await;
    for _ in 0..100 {
        ws.send_frame(true, raw::PONG, b"").await;
    }
    let (code, reason) = ws.until_close().await;
    assert_eq!(code, 1008, "{reason}");
    assert_eq!(reason, "too many messages: at most 10 per second");
    let text = metrics_text(&app).await;
    assert_eq!(metric(&text, "tickerlab_ws_rate_limited_total"), 1);
}

#[tokio::test]
async fn a_flood_of_empty_continuations_closes_1008() {
    let app = spawn_app(flood_config()).await;
    for path in ["/ws", "/echo"] {
        let mut ws = raw_client(&app, path).await;
        ws.send_frame(false, raw::TEXT, b"{").await;
        for _ in 0..100 {
            ws.send_frame(false, raw::CONTINUATION, b"").await;
        }
        let (code, reason) = ws.until_close().await;
        assert_eq!(code, 1008, "{path}: {reason}");
        assert_eq!(reason, "too many messages: at most 10 per second");
    }
}

// ---- R12: the server closes the TCP connection after the closing handshake -------------------

/// Reads until the server ends the TCP connection, within [`DEADLINE`] as a whole; the bytes
/// read, or `None` on a reset.
async fn until_eof(stream: &mut TcpStream) -> Option<usize> {
    let reading = async {
        let mut total = 0;
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Some(total),
                Ok(n) => total += n,
                Err(_) => return None,
            }
        }
    };
    tokio::time::timeout(DEADLINE, reading)
        .await
        .expect("the server ends the connection")
}

#[tokio::test]
async fn after_the_closing_handshake_the_server_closes_the_connection_first() {
    let app = spawn_app(test_config()).await;
    for path in ["/ws", "/echo"] {
        let mut ws = raw_client(&app, path).await;
        // The server starts the handshake (`drop` on /ws; /echo is asked to close by the
        // client instead, and answers).
        if path == "/ws" {
            ws.send_frame(true, raw::TEXT, br#"{"type":"drop"}"#).await;
            let (code, _) = ws.until_close().await;
            assert_eq!(code, 1012);
            ws.send_frame(true, raw::CLOSE, &1012u16.to_be_bytes())
                .await;
        } else {
            ws.send_frame(true, raw::CLOSE, &1000u16.to_be_bytes())
                .await;
            let (code, _) = ws.until_close().await;
            assert_eq!(code, 1000, "the close code is echoed");
        }
        let answered = Instant::now();
        // The client does not close: the end of the stream can only come from the server.
        assert_eq!(
            until_eof(&mut ws.stream).await,
            Some(0),
            "{path}: a clean FIN"
        );
        // This row's requirement is itself a bound: actix alone lingers 1 s (its
        // client_disconnect_timeout) waiting for the client to hang up first.
        let waited = answered.elapsed();
        assert!(
            waited < Duration::from_millis(700),
            "{path}: the server closed {waited:?} after the handshake, not at once"
        );
        wait_until("the server released the socket", || server_fds(&app) == 0).await;
    }
}

// ---- R2: clients that never read cannot keep their sockets ------------------------------------

/// A WebSocket client with a 4 KiB receive buffer that never reads, subscribed to every
/// symbol so that the server has plenty to send.
async fn never_reading(app: &TestApp) -> TcpStream {
    let symbols = app.feed.symbols().join(",");
    hostile::never_reading_ws(app.addr, &format!("/ws?symbols={symbols}"))
        .await
        .expect("a place for every client")
}

#[tokio::test]
async fn sockets_of_clients_that_never_read_are_released_round_after_round() {
    const CLIENTS: u64 = 20;
    let config = Config {
        max_connections: CLIENTS,
        heartbeat_secs: 1,
        client_timeout_secs: 3,
        tick_ms: 10,
        ..test_config()
    };
    let app = spawn_app(config).await;
    let mut peak = 0;
    for round in 1..=3 {
        let start = Instant::now();
        let mut held = Vec::new();
        for _ in 0..CLIENTS {
            held.push(never_reading(&app).await);
        }
        // Every place is taken: the sessions, and their sockets, exist.
        assert_eq!(metric(&metrics_text(&app).await, WS_OPEN), CLIENTS);
        peak = peak.max(server_fds(&app));
        // While the clients still hold their ends, the server lets go of its own.
        wait_for_places(&app).await;
        wait_until(
            &format!("round {round}: the server released its sockets"),
            || server_fds(&app) == 0,
        )
        .await;
        eprintln!(
            "round {round}: sockets released {:?} after the clients connected",
            start.elapsed()
        );
        drop(held);
    }
    assert!(peak <= CLIENTS as usize + 2, "peak {peak} server sockets");
    // And the server is still there for everyone.
    let health = reqwest::get(app.http("/healthz")).await.expect("/healthz");
    assert_eq!(health.status(), 200);
}

/// The real app, assembled as `serve` assembles it (`Site`, `GuardedIo`), but with neither
/// of the two timers that also end a connection whose client stopped reading: no
/// `TCP_USER_TIMEOUT` on the listener, and a write timeout of an hour. Only a session that
/// gives up on its client can then free the socket. Returns the address and the feed task
/// (kept alive).
async fn spawn_app_without_write_timeouts(
    config: Config,
) -> (std::net::SocketAddr, tickerlab::feed::FeedTask) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("addr");
    // As `serve` does: a small send buffer, so a client that does not read fills actix's
    // write buffer soon and the dispatcher stops polling the response body.
    socket2::SockRef::from(&listener)
        .set_send_buffer_size(tickerlab::SEND_BUFFER_BYTES)
        .expect("SO_SNDBUF");
    let market = tickerlab::market::Market::new(config.symbol_specs(), 7);
    let (feed, task) = tickerlab::Feed::start(market, config.tick_interval());
    let state = tickerlab::http::AppState {
        feed,
        config: std::sync::Arc::new(config),
        shutdown: tokio_util::sync::CancellationToken::new(),
        metrics: Default::default(),
        class: Default::default(),
    };
    let builder = actix_server::Server::build().workers(2).disable_signals();
    let site = tickerlab::http::server::Site {
        state,
        addr,
        secure: false,
        write_timeout: Duration::from_secs(3600),
        shutdown: builder.graceful_shutdown_signal(),
        lab: actix_web::web::Data::new(None),
        handshakes: None,
    };
    let server = builder
        .listen("test", listener, move || site.http())
        .expect("listen")
        .run();
    tokio::spawn(server);
    (addr, task)
}

/// Clients that fill their connection's write buffer with answers and then read nothing:
/// each sends messages whose `error` answers echo a 3.5 KB `id`, more than the kernel's
/// buffers and actix's 32 KiB write buffer hold. The dispatcher then waits for the socket
/// alone and never again asks the response body for more, so the body cannot end the
/// connection; with no write timeout and no kernel timeout, only the session's [`Abort`]
/// frees each socket, once the session has given up on its client.
///
/// [`Abort`]: tickerlab::http::connection::Abort
#[tokio::test]
async fn a_session_that_gives_up_on_a_client_resets_its_socket_itself() {
    const CLIENTS: usize = 20;
    let config = Config {
        heartbeat_secs: 1,
        client_timeout_secs: 3,
        tick_ms: 10,
        max_messages_per_sec: 1000,
        ..test_config()
    };
    let symbols = config.symbols.join(",");
    let (addr, _feed) = spawn_app_without_write_timeouts(config).await;
    let frame = an_answer_of_3_5_kb();
    let start = Instant::now();
    let mut held = Vec::new();
    for _ in 0..CLIENTS {
        let path = format!("/ws?symbols={symbols}");
        let mut stream = hostile::never_reading_ws(addr, &path).await.expect("101");
        // 30 answers of 3.5 KB: about 105 KB queued for a client that reads nothing. The
        // server stops reading once its side is full; that is enough.
        for _ in 0..30 {
            match tokio::time::timeout(Duration::from_millis(500), stream.write_all(&frame)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        held.push(stream);
    }
    // No kernel timeout and no write timeout on these sockets: only the sessions, giving up,
    // can release them.
    wait_until("the sessions reset their sockets", || {
        server_sockets(addr.port()) == 0
    })
    .await;
    eprintln!(
        "sockets reset {:?} after the clients connected",
        start.elapsed()
    );
    // Each client sees a reset, not an orderly close: the unsent answers were discarded.
    for mut stream in held {
        let mut buf = vec![0u8; 64 * 1024];
        let end = tokio::time::timeout(DEADLINE, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) => break Ok(()),
                    Ok(_) => {}
                    Err(e) => break Err(e.kind()),
                }
            }
        })
        .await
        .expect("the connection ends");
        assert_eq!(end, Err(std::io::ErrorKind::ConnectionReset));
    }
}

/// One masked text frame (a 16-bit length) of a message the server answers with an `error`
/// that echoes its 3.5 KB `id`: a client sends a little and is owed a lot.
fn an_answer_of_3_5_kb() -> Vec<u8> {
    let message = json!({"type": "nope", "id": "x".repeat(3500)}).to_string();
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81, 0x80 | 126];
    frame.extend_from_slice(&(message.len() as u16).to_be_bytes());
    frame.extend_from_slice(&mask);
    frame.extend(message.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Waits (up to [`DEADLINE`]) until every WebSocket place is free again.
async fn wait_for_places(app: &TestApp) {
    let start = Instant::now();
    while metric(&metrics_text(app).await, WS_OPEN) != 0 {
        assert!(start.elapsed() < DEADLINE, "places still held");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- /echo: the lesson tool and the suite's endpoint -------------------------------------------

#[tokio::test]
async fn echo_sends_text_back_as_text_and_binary_as_binary() {
    let app = spawn_app(test_config()).await;
    let mut ws = raw_client(&app, "/echo").await;
    ws.send_frame(true, raw::TEXT, "héllo".as_bytes()).await;
    let frame = ws.next_frame().await.expect("open");
    assert_eq!(
        (frame.opcode, frame.payload.as_slice()),
        (raw::TEXT, "héllo".as_bytes())
    );
    ws.send_frame(true, raw::BINARY, &[0, 1, 2, 255]).await;
    let frame = ws.next_frame().await.expect("open");
    assert_eq!(
        (frame.opcode, frame.payload.as_slice()),
        (raw::BINARY, &[0, 1, 2, 255][..])
    );
    // Fragments come back as one message.
    ws.send_frame(false, raw::TEXT, b"frag").await;
    ws.send_frame(true, raw::CONTINUATION, b"ments").await;
    let frame = ws.next_frame().await.expect("open");
    assert_eq!(frame.payload, b"fragments");
    ws.send_frame(true, raw::PING, b"p").await;
    let frame = ws.next_frame().await.expect("open");
    assert_eq!(
        (frame.opcode, frame.payload.as_slice()),
        (raw::PONG, &b"p"[..])
    );
    // Over the limit, the same 1009 as /ws.
    ws.send_frame(true, raw::TEXT, &[b' '; 4097]).await;
    let (code, reason) = ws.until_close().await;
    assert_eq!(
        (code, reason.as_str()),
        (1009, "message larger than 4096 bytes")
    );
}

/// A client that reads, but a trickle (256 bytes every 100 ms against ~50 kB/s of ticks),
/// and pings the server every half second so it never looks silent: each write to it makes a
/// little progress, so no write ever stalls for the client timeout, yet it never catches up.
/// Its session drops it once it has been behind for `--client-timeout-secs`, and a client
/// that reads everything streams on beside it.
#[tokio::test]
async fn a_client_that_reads_a_trickle_is_dropped_once_behind_for_the_client_timeout() {
    let config = Config {
        heartbeat_secs: 1,
        client_timeout_secs: 3,
        tick_ms: 10,
        ..test_config()
    };
    let app = spawn_app(config).await;
    let symbols = app.feed.symbols().join(",");
    let path = format!("/ws?symbols={symbols}");
    // The bystander reads everything, all along, on a task of its own.
    let mut healthy = app.ws("/ws").await;
    hello(&mut healthy).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reading = stop.clone();
    let bystander = tokio::spawn(async move {
        let mut last = None;
        let mut ticks = 0;
        while !reading.load(std::sync::atomic::Ordering::Relaxed) {
            let seq = common::next_of_type(&mut healthy, "tick").await["seq"]
                .as_u64()
                .expect("seq");
            if let Some(last) = last {
                assert_eq!(seq, last + 1, "the bystander missed a tick");
            }
            last = Some(seq);
            ticks += 1;
        }
        ticks
    });
    let stream = hostile::small_window(app.addr).await.expect("connect");
    let mut trickle = RawWs::try_handshake(stream, app.addr, &path)
        .await
        .expect("a place");
    wait_for_metric(&app, WS_OPEN, |n| n == 2).await;

    let start = Instant::now();
    let mut buf = [0u8; 256];
    let mut read = 0usize;
    let mut round = 0u64;
    let dropped = loop {
        assert!(
            start.elapsed() < DEADLINE,
            "a client {read} bytes behind was never dropped"
        );
        round += 1;
        if round.is_multiple_of(5) {
            // A ping: the client is not silent.
            let mut frame = vec![0x89, 0x80 | 4, 0x37, 0xfa, 0x21, 0x3d];
            frame.extend(
                b"ping"
                    .iter()
                    .zip([0x37, 0xfa, 0x21, 0x3d])
                    .map(|(b, m)| b ^ m),
            );
            if tokio::io::AsyncWriteExt::write_all(&mut trickle.stream, &frame)
                .await
                .is_err()
            {
                break start.elapsed();
            }
        }
        match tokio::time::timeout(Duration::from_millis(100), trickle.stream.read(&mut buf)).await
        {
            Ok(Ok(0)) | Ok(Err(_)) => break start.elapsed(),
            Ok(Ok(n)) => read += n,
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "the trickling client was dropped {dropped:?} after it connected, having read {read} bytes"
    );
    // Its place is free; the bystander still has its own and saw every tick.
    wait_for_metric(&app, WS_OPEN, |n| n == 1).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let ticks = bystander.await.expect("the bystander saw every tick");
    assert!(ticks > 0);
}

// ---- frames that break the rules: a close with the RFC 6455 code ------------------------------

#[tokio::test]
async fn ten_thousand_symbols_under_the_default_limit_is_too_big_1009() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = greeted_client(&app).await;
    send_json(&mut ws, ten_thousand_symbols()).await;
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("4096"), "{reason}");
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn a_text_message_over_the_limit_closes_1009() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = greeted_client(&app).await;
    ws.send(Message::text("x".repeat(4097))).await.unwrap();
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(code, 1009);
    assert_eq!(reason, "message larger than 4096 bytes");
    wait_for_metric(&app, WS_OPEN, |n| n == 1).await;
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn a_binary_frame_closes_1003() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = greeted_client(&app).await;
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(code, 1003);
    assert!(reason.contains("send JSON text"), "{reason}");
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_1007() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = RawWs::connect(app.addr, "/ws").await;
    ws.next_text().await; // hello
    ws.send_frame(true, raw::TEXT, &[b'{', 0xff, 0xfe, b'}'])
        .await;
    let (code, reason) = ws.until_close().await;
    assert_eq!(code, 1007);
    assert!(reason.contains("UTF-8"), "{reason}");
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn a_fragmented_message_is_reassembled_and_answered() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = RawWs::connect(app.addr, "/ws").await;
    ws.next_text().await; // hello
    ws.send_frame(false, raw::TEXT, b"{\"type\":\"pi").await;
    ws.send_frame(false, raw::CONTINUATION, b"ng\",\"id\":")
        .await;
    // A control frame may come between fragments (RFC 6455 section 5.4).
    ws.send_frame(true, raw::PING, b"between").await;
    ws.send_frame(true, raw::CONTINUATION, b"77}").await;
    let pong_message = common::within("pong frame and pong message", async {
        let (mut pong_frame, mut pong_message) = (false, None);
        while pong_message.is_none() || !pong_frame {
            let frame = ws.next_frame().await.expect("open");
            match frame.opcode {
                raw::PONG => pong_frame |= frame.payload == b"between",
                raw::TEXT => {
                    let v: Value = serde_json::from_slice(&frame.payload).unwrap();
                    if v["type"] == "pong" {
                        pong_message = Some(v);
                    }
                }
                raw::CLOSE => panic!("closed: {:?}", frame.close()),
                _ => {}
            }
        }
        pong_message
    })
    .await;
    assert_eq!(pong_message.unwrap()["id"], 77);
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn fragments_adding_up_past_the_limit_close_1009() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = RawWs::connect(app.addr, "/ws").await;
    ws.next_text().await; // hello
    let piece = vec![b' '; 1500];
    ws.send_frame(false, raw::TEXT, &piece).await;
    for _ in 0..3 {
        ws.send_frame(false, raw::CONTINUATION, &piece).await;
    }
    let (code, _) = ws.until_close().await;
    assert_eq!(code, 1009);
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn a_flood_of_messages_closes_1008_with_the_limit() {
    let config = Config {
        max_messages_per_sec: 10,
        ..test_config()
    };
    let (app, mut bystander) = app_with_bystander(config).await;
    let mut ws = greeted_client(&app).await;
    // 200 pings at once: far past the burst of 20 a rate of 10/s allows.
    for id in 0..200 {
        ws.feed(Message::text(json!({"type": "ping", "id": id}).to_string()))
            .await
            .unwrap();
    }
    ws.flush().await.unwrap();
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(code, 1008);
    assert_eq!(reason, "too many messages: at most 10 per second");
    let text = metrics_text(&app).await;
    assert_eq!(metric(&text, "tickerlab_ws_rate_limited_total"), 1);
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn a_client_at_the_allowed_rate_is_never_limited() {
    let config = Config {
        max_messages_per_sec: 20,
        ..test_config()
    };
    let app = spawn_app(config).await;
    let mut ws = greeted_client(&app).await;
    // 60 pings at about 16 per second, under the limit of 20: more than the burst allowance
    // of 40, so this passes only if the bucket really refills over time.
    for id in 0..60 {
        send_json(&mut ws, json!({"type": "ping", "id": id})).await;
        assert_eq!(next_of_type(&mut ws, "pong").await["id"], id);
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    }
    assert_eq!(
        metric(&metrics_text(&app).await, "tickerlab_ws_rate_limited_total"),
        0
    );
}

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

/// A client that keeps its answer queue full and reads a trickle: it sends messages whose
/// `error` answers echo a 3.5 KB `id`, faster than it reads them, so the session is nearly
/// always waiting for room to queue an answer, where it checks no deadline. Each send waits
/// at most `--client-timeout-secs`, so the client is dropped all the same, and a bystander
/// that reads everything misses nothing.
#[tokio::test]
async fn a_trickle_reader_with_a_full_answer_queue_is_dropped_while_a_bystander_misses_nothing() {
    let app = spawn_app(Config {
        heartbeat_secs: 1,
        client_timeout_secs: 3,
        tick_ms: 10,
        max_messages_per_sec: 1000,
        ..test_config()
    })
    .await;
    let mut healthy = app.ws("/ws").await;
    hello(&mut healthy).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reading = stop.clone();
    let bystander = tokio::spawn(async move {
        let mut last = None;
        while !reading.load(std::sync::atomic::Ordering::Relaxed) {
            let seq = common::next_of_type(&mut healthy, "tick").await["seq"]
                .as_u64()
                .expect("seq");
            if let Some(last) = last {
                assert_eq!(seq, last + 1, "the bystander missed a tick");
            }
            last = Some(seq);
        }
    });
    let symbols = app.feed.symbols().join(",");
    let stream = hostile::small_window(app.addr).await.expect("connect");
    let mut client = RawWs::try_handshake(stream, app.addr, &format!("/ws?symbols={symbols}"))
        .await
        .expect("a place");
    wait_for_metric(&app, WS_OPEN, |n| n == 2).await;
    // Written as raw bytes, so that a reset shows as an error here rather than a panic.
    let frame = an_answer_of_3_5_kb();

    let start = Instant::now();
    let mut buf = [0u8; 256];
    let dropped = 'client: loop {
        assert!(
            start.elapsed() < DEADLINE,
            "a client with a full answer queue was never dropped"
        );
        // More questions than it reads answers: the queue of 32 stays full.
        for _ in 0..4 {
            match tokio::time::timeout(Duration::from_millis(100), client.stream.write_all(&frame))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break 'client start.elapsed(), // reset: dropped
                Err(_) => break, // the server is not reading either: read a little
            }
        }
        match tokio::time::timeout(Duration::from_millis(100), client.stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break 'client start.elapsed(),
            Ok(Ok(_)) | Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("the client with a full answer queue was dropped {dropped:?} after it connected");
    wait_for_metric(&app, WS_OPEN, |n| n == 1).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    bystander.await.expect("the bystander saw every tick");
}
