//! GET /ws against the real server with a real WebSocket client (tokio-tungstenite).
//!
//! Also: the heartbeat, bad messages answered with an `error`, and a slow consumer that
//! skips to the newest tick (latest value wins) while others read on.

use crate::common;
use common::raw::RawWs;
use common::stats::median;
use common::{
    WS_OPEN, Ws, assert_streaming, hello, metric, metrics_text, next_json, next_of_type, raw,
    send_json, spawn_app, test_config, wait_for_metric,
};
use common::{app_with_bystander, assert_unharmed, greeted_client, ten_thousand_symbols};
use futures_util::SinkExt;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tickerlab::Config;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

#[tokio::test]
async fn hello_comes_first_and_records_the_handshake() {
    let app = spawn_app(test_config()).await;
    let mut request = app
        .ws_url("/ws?symbols=ACME")
        .into_client_request()
        .unwrap();
    let key = request.headers()["sec-websocket-key"]
        .to_str()
        .unwrap()
        .to_owned();
    request
        .headers_mut()
        .insert("x-lesson", "handshake".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);

    let hello = hello(&mut ws).await;
    assert_eq!(hello["protocol"], 1);
    assert_eq!(hello["tick_ms"], 20);
    assert_eq!(hello["subscribed"], json!(["ACME"]));
    assert_eq!(hello["symbols"], json!(app.feed.symbols()));
    let handshake = &hello["handshake"];
    assert_eq!(handshake["request"]["method"], "GET");
    assert_eq!(handshake["request"]["path"], "/ws?symbols=ACME");
    let header = |side: &str, name: &str| -> Option<String> {
        handshake[side]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str().unwrap().to_owned())
    };
    assert_eq!(
        header("request", "sec-websocket-key").as_deref(),
        Some(key.as_str())
    );
    // A header the lesson does not need is named, its value redacted.
    assert_eq!(
        header("request", "x-lesson").as_deref(),
        Some("(redacted, 9 bytes)")
    );
    assert_eq!(handshake["response"]["status"], 101);
    // What hello reports is what came over the wire (all but `date`, which actix adds as it
    // writes the response).
    for (name, value) in response.headers() {
        if name == "date" {
            continue;
        }
        assert_eq!(
            header("response", name.as_str()).as_deref(),
            value.to_str().ok(),
            "hello's response headers miss {name}"
        );
    }
    assert_eq!(handshake["response"]["reason"], "Switching Protocols");
    // The accept value the server reports is the RFC 6455 derivation of our key.
    assert_eq!(
        header("response", "sec-websocket-accept").as_deref(),
        Some(derive_accept_key(key.as_bytes()).as_str())
    );
}

#[tokio::test]
async fn streams_every_tick_in_seq_order_per_symbol() {
    let app = spawn_app(test_config()).await;
    let mut ws = app.ws("/ws?symbols=ACME,GLOBX").await;
    hello(&mut ws).await;
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    while counts.values().min().copied().unwrap_or(0) < 20 || counts.len() < 2 {
        let tick = next_json(&mut ws).await;
        assert_eq!(tick["type"], "tick", "{tick}");
        let symbol = tick["symbol"].as_str().unwrap().to_owned();
        assert!(
            symbol == "ACME" || symbol == "GLOBX",
            "unsubscribed {symbol}"
        );
        let seq = tick["seq"].as_u64().unwrap();
        if let Some(previous) = last.insert(symbol.clone(), seq) {
            assert_eq!(seq, previous + 1, "{symbol}: seq {previous} then {seq}");
        }
        *counts.entry(symbol).or_default() += 1;
    }
}

#[tokio::test]
async fn price_and_ws_agree_on_seq_and_price() {
    let app = spawn_app(test_config()).await;
    let mut ws = app.ws("/ws?symbols=INITECH").await;
    hello(&mut ws).await;
    let mut by_seq: HashMap<u64, Value> = HashMap::new();
    let client = reqwest::Client::new();
    let mut matched = std::collections::BTreeSet::new();
    let start = std::time::Instant::now();
    while matched.len() < 5 {
        assert!(
            start.elapsed() < common::WAIT,
            "the socket received only {matched:?} of the polled seqs"
        );
        let polled: Value = client
            .get(app.http("/price?symbol=INITECH"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let seq = polled["seq"].as_u64().unwrap();
        // The socket may be a moment behind the poll: read until it has reached this seq.
        while by_seq.keys().max().is_none_or(|newest| *newest < seq) {
            let tick = next_json(&mut ws).await;
            by_seq.insert(tick["seq"].as_u64().unwrap(), tick);
        }
        // A socket that fell behind may skip a seq (latest value wins); one it did receive
        // must be the very tick the poll got.
        if let Some(tick) = by_seq.get(&seq) {
            assert_eq!(*tick, polled, "same seq must be the same tick everywhere");
            matched.insert(seq);
        }
        // Poll again once the feed has moved on, so the next poll is a newer tick.
        common::wait_for_ticks(&app, seq + 1).await;
    }
}

#[tokio::test]
async fn subscribe_and_unsubscribe_change_what_arrives() {
    let app = spawn_app(test_config()).await;
    let mut ws = app.ws("/ws?symbols=ACME").await;
    hello(&mut ws).await;

    send_json(
        &mut ws,
        json!({"type": "subscribe", "symbols": ["UMBRL"], "id": 7}),
    )
    .await;
    let answer = next_of_type(&mut ws, "subscribed").await;
    assert_eq!(answer["id"], 7);
    assert_eq!(answer["symbols"], json!(["ACME", "UMBRL"]));
    let mut seen = HashMap::<String, usize>::new();
    while seen.len() < 2 {
        let tick = next_of_type(&mut ws, "tick").await;
        *seen
            .entry(tick["symbol"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }

    send_json(
        &mut ws,
        json!({"type": "unsubscribe", "symbols": ["ACME"], "id": "u1"}),
    )
    .await;
    let answer = next_of_type(&mut ws, "subscribed").await;
    assert_eq!(answer["id"], "u1");
    assert_eq!(answer["symbols"], json!(["UMBRL"]));
    for _ in 0..20 {
        let tick = next_of_type(&mut ws, "tick").await;
        assert_eq!(tick["symbol"], "UMBRL", "ACME arrived after unsubscribe");
    }
}

#[tokio::test]
async fn ping_is_answered_with_pong_echoing_id_and_t() {
    let app = spawn_app(test_config()).await;
    let mut ws = app.ws("/ws").await;
    hello(&mut ws).await;
    let before = tickerlab::tick::epoch_ms();
    send_json(&mut ws, json!({"type": "ping", "id": 8, "t": 1234.5})).await;
    let pong = next_of_type(&mut ws, "pong").await;
    assert_eq!(pong["id"], 8);
    assert_eq!(pong["t"], 1234.5);
    let server_ts = pong["server_ts"].as_f64().unwrap();
    assert!(server_ts >= before - 1.0 && server_ts <= tickerlab::tick::epoch_ms() + 1.0);
}

#[tokio::test]
async fn bad_messages_get_an_error_and_the_stream_goes_on() {
    let app = spawn_app(test_config()).await;
    let mut ws = app.ws("/ws?symbols=ACME").await;
    hello(&mut ws).await;
    let cases = [
        ("{not json", "bad_json"),
        (r#"{"type":"dance","id":3}"#, "bad_message"),
        (r#"{"type":"subscribe"}"#, "bad_message"),
        (r#"[1,2,3]"#, "bad_message"),
        (
            r#"{"type":"subscribe","symbols":["NOPE"],"id":4}"#,
            "unknown_symbol",
        ),
    ];
    for (text, code) in cases {
        ws.send_text(text).await;
        let error = next_of_type(&mut ws, "error").await;
        assert_eq!(error["code"], code, "{text}: {error}");
        let message = error["message"].as_str().unwrap();
        assert!(message.len() > 20, "a message a person can use: {message}");
        if code == "unknown_symbol" {
            assert_eq!(error["id"], 4);
            assert!(
                message.contains("NOPE") && message.contains("ACME"),
                "{message}"
            );
            assert_eq!(error["symbols"], json!(app.feed.symbols()));
        }
        if code == "bad_message" && text.contains("dance") {
            assert_eq!(error["id"], 3, "the id is echoed when the JSON parsed");
        }
    }
    // Still streaming, still in order.
    let first = next_of_type(&mut ws, "tick").await["seq"].as_u64().unwrap();
    let second = next_of_type(&mut ws, "tick").await["seq"].as_u64().unwrap();
    assert_eq!(second, first + 1);
}

#[tokio::test]
async fn unknown_symbols_in_the_url_get_an_error_naming_the_known_ones() {
    let app = spawn_app(test_config()).await;
    let mut ws = app.ws("/ws?symbols=ACME,NOPE").await;
    let hello = hello(&mut ws).await;
    assert_eq!(hello["subscribed"], json!(["ACME"]));
    let error = next_json(&mut ws).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "unknown_symbol");
    assert!(error["message"].as_str().unwrap().contains("GLOBX"));
    assert_eq!(next_of_type(&mut ws, "tick").await["symbol"], "ACME");
}

#[tokio::test]
async fn a_plain_get_of_ws_is_400_with_help() {
    let app = spawn_app(test_config()).await;
    let response = reqwest::get(app.http("/ws")).await.unwrap();
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("speaks WebSocket"), "{text}");
    assert!(
        text.contains("Upgrade: websocket"),
        "shows how to try it: {text}"
    );
}

/// Fifty clients on all four symbols, each reading 40 ticks (10 per symbol), so that the
/// feed ticks with 50 readers. Returns every `(symbol, seq)` delivered.
async fn fifty_readers_of_every_symbol(app: &common::TestApp) -> HashSet<(String, u64)> {
    let mut clients = Vec::new();
    for _ in 0..50 {
        let mut ws = app.ws("/ws?symbols=ACME,GLOBX,INITECH,UMBRL").await;
        hello(&mut ws).await;
        clients.push(ws);
    }
    let readers = clients.into_iter().map(|mut ws| {
        tokio::spawn(async move {
            let mut seen = HashSet::new();
            for _ in 0..40 {
                let tick = next_json(&mut ws).await;
                assert_eq!(tick["type"], "tick");
                seen.insert((
                    tick["symbol"].as_str().unwrap().to_owned(),
                    tick["seq"].as_u64().unwrap(),
                ));
            }
            seen
        })
    });
    let mut delivered = HashSet::new();
    for reader in futures_util::future::join_all(readers).await {
        delivered.extend(reader.unwrap());
    }
    delivered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_cost_one_serialisation_per_tick_per_symbol() {
    let app = spawn_app(test_config()).await;
    let symbols = app.feed.symbols().len() as u64;
    fifty_readers_of_every_symbol(&app).await;
    assert!(app.feed.ticks() >= 10);
    // The two counters are two loads, and the feed may tick between them (on a loaded
    // machine it may even be paused between serialising a tick and counting it): wait for a
    // pair read between two ticks, where the promise is exact.
    let feed = &app.feed;
    common::wait_for("serialisations == ticks x symbols", || async move {
        let (serialisations, ticks) = (feed.serialisations(), feed.ticks());
        (serialisations == ticks * symbols).then_some(())
    })
    .await;
}

/// A tick crosses threads once per worker, not once per socket: the sockets of a worker
/// share one relay of the feed, whatever their number, and the relay goes with the last of
/// them.
#[tokio::test]
async fn forty_clients_share_one_feed_relay_per_worker() {
    let app = spawn_app(test_config()).await; // two workers
    let mut clients = Vec::new();
    for _ in 0..40 {
        let mut ws = app.ws("/ws?symbols=ACME").await;
        hello(&mut ws).await;
        clients.push(ws);
    }
    for ws in &mut clients {
        assert_eq!(next_json(ws).await["type"], "tick");
    }
    let relays = metric(&metrics_text(&app).await, "tickerlab_feed_worker_relays");
    assert!(
        (1..=2).contains(&relays),
        "40 sockets on 2 workers: {relays} relays of the feed"
    );
    for mut ws in clients {
        ws.close(None).await.expect("close");
    }
    wait_for_metric(&app, "tickerlab_feed_worker_relays", |n| n == 0).await;
}

/// Ticks to clients that keep up are written by their worker's relay, straight to each socket
/// in the relay's own turn, with no wake-up of the connection's task: of 40 ticks to each of
/// ten clients, at least 370 of the 400 (the first tick goes out through the connection's
/// task, after `hello`) count in `tickerlab_feed_relay_writes_total`. Every
/// client still gets every tick once, in order. (No heartbeat ping falls in the run: a ping
/// rides with a tick through the task.)
#[tokio::test]
async fn ticks_to_clients_that_keep_up_are_written_by_the_relay() {
    const CLIENTS: u64 = 10;
    const TICKS: u64 = 40;
    let app = spawn_app(Config {
        heartbeat_secs: 60,
        client_timeout_secs: 120,
        ..test_config()
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut ws = app.ws("/ws?symbols=ACME").await;
        hello(&mut ws).await;
        clients.push(ws);
    }
    let readers = clients.into_iter().map(|mut ws| async move {
        let mut seqs = Vec::new();
        for _ in 0..TICKS {
            seqs.push(next_json(&mut ws).await["seq"].as_u64().expect("a seq"));
        }
        seqs
    });
    for seqs in futures_util::future::join_all(readers).await {
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "every tick once, in order: {seqs:?}"
        );
    }
    // The relay counts its writes after each pass over its sockets: wait for the count.
    let least = CLIENTS * (TICKS - 3);
    let feed = &app.feed;
    common::wait_for("the relay's writes", || async move {
        (feed.relay_writes() >= least).then_some(())
    })
    .await;
}

/// Each tick's WebSocket frame is built once per symbol and written by
/// every socket, whatever their number. Fifty clients on all four symbols each read 40
/// ticks; a frame built per client would make ~50 times as many frames as ticks.
#[tokio::test]
async fn fifty_clients_cost_one_frame_per_tick_per_symbol() {
    let app = spawn_app(test_config()).await;
    let symbols = app.feed.symbols().len() as u64;
    assert_eq!(
        app.feed.ws_frames(),
        0,
        "nothing is framed while nobody listens"
    );
    let delivered = fifty_readers_of_every_symbol(&app).await;
    // Frames first, ticks second: both only grow, so this order makes the bound exact.
    let frames = app.feed.ws_frames();
    let ticks = app.feed.ticks();
    assert!(
        frames >= delivered.len() as u64,
        "every (symbol, seq) delivered was framed: {frames} frames, {} delivered",
        delivered.len()
    );
    assert!(
        frames <= ticks * symbols,
        "at most one frame per symbol per tick, whatever the number of sockets: {frames} \
         frames for {ticks} ticks x {symbols} symbols, 50 clients x 40 ticks read"
    );
    let text = metrics_text(&app).await;
    assert!(metric(&text, "tickerlab_feed_ws_frames_total") >= frames);
}

trait SendText {
    async fn send_text(&mut self, text: &str);
}

impl SendText for common::Ws {
    async fn send_text(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn drop_makes_the_server_close_with_1012_and_a_new_socket_works() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let app = spawn_app(test_config()).await;
    let mut ws = app.ws("/ws?symbols=ACME").await;
    hello(&mut ws).await;
    next_of_type(&mut ws, "tick").await;
    send_json(&mut ws, json!({"type": "drop", "id": 10})).await;
    let (code, reason) = common::close_of(&mut ws).await;
    assert_eq!(code, u16::from(CloseCode::Restart), "{reason}");
    assert!(reason.contains("id 10"), "{reason}");
    // The drop closed this socket only: a new one is served as usual.
    let mut again = app.ws("/ws?symbols=ACME").await;
    hello(&mut again).await;
    assert_eq!(next_of_type(&mut again, "tick").await["symbol"], "ACME");
}

#[tokio::test]
async fn a_new_socket_starts_at_the_newest_tick_not_a_backlog() {
    let app = spawn_app(test_config()).await;
    // Let the feed run for a while, so there is history a buggy catch-up could replay.
    common::wait_for_ticks(&app, 20).await;
    let newest = polled_seq(&app, "ACME").await;
    assert!(newest > 5);
    let mut ws = app.ws("/ws?symbols=ACME").await;
    hello(&mut ws).await;
    let first = next_of_type(&mut ws, "tick").await;
    assert!(
        first["seq"].as_u64().unwrap() >= newest,
        "first tick {first} is older than the newest {newest}: latest value wins"
    );
}

/// The seq of `symbol`'s newest tick, as `GET /price` answers it.
async fn polled_seq(app: &common::TestApp, symbol: &str) -> u64 {
    let polled: Value = reqwest::get(app.http(&format!("/price?symbol={symbol}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    polled["seq"].as_u64().expect("a seq")
}

/// A symbol subscribed after the relay has written a client's ticks for a while starts at its
/// newest tick, like a new socket, though the connection's task, which sends a new symbol's
/// first tick, slept while the relay wrote the 30 before (no heartbeat ping falls in the
/// run). (The unit test `a_symbol_adopted_after_the_body_slept_through_ticks_starts_at_its_newest`
/// pins the mechanism; here the client's own subscribe frame also wakes the task, as the
/// dispatcher reads it, before the session adopts the symbol.)
#[tokio::test]
async fn a_symbol_subscribed_after_ticks_the_relay_wrote_starts_at_its_newest_tick() {
    let app = spawn_app(Config {
        heartbeat_secs: 60,
        client_timeout_secs: 120,
        ..test_config()
    })
    .await;
    let mut ws = app.ws("/ws?symbols=ACME").await;
    hello(&mut ws).await;
    for _ in 0..30 {
        next_of_type(&mut ws, "tick").await;
    }
    let newest = polled_seq(&app, "GLOBX").await;
    send_json(&mut ws, json!({"type": "subscribe", "symbols": ["GLOBX"]})).await;
    let first = next_seq_of(&mut ws, "GLOBX").await;
    assert!(
        first >= newest,
        "the first GLOBX tick after the subscribe is {first}, older than the newest {newest}"
    );
}

/// A symbol subscribed again after longer than the feed's history (256 ticks) starts at the
/// newest tick, in one step: no replay of stale ticks, and the gap counted as skipped.
///
/// "Newest" is the newest tick relayed to the connection's worker thread: on a busy machine
/// the relay can run a tick or two after the feed published (the session, woken from its
/// own thread, may go first), so the test does not compare with the feed's own count; it
/// checks that the restart jumped past the history, where a replay would start at the tick
/// after the last one sent.
///
/// The gap starts at the last GLOBX tick the server sent before it handled the unsubscribe:
/// on a busy machine more than one arrives after the tick the test first reads, so the test
/// reads on until the unsubscribe's acknowledgement and takes the last GLOBX seq before it.
#[tokio::test]
async fn a_symbol_subscribed_again_after_long_starts_at_the_newest_tick() {
    let app = spawn_app(tickerlab::Config {
        tick_ms: 10,
        ..test_config()
    })
    .await;
    let mut ws = app.ws("/ws").await;
    hello(&mut ws).await;
    send_json(&mut ws, json!({"type": "subscribe", "symbols": ["GLOBX"]})).await;
    let first = next_seq_of(&mut ws, "GLOBX").await;
    send_json(
        &mut ws,
        json!({"type": "unsubscribe", "symbols": ["GLOBX"]}),
    )
    .await;
    let last_sent = common::within("subscribed after the unsubscribe", async {
        let mut last_sent = first;
        loop {
            let message = next_json(&mut ws).await;
            match message["type"].as_str() {
                Some("subscribed") => break last_sent,
                Some("tick") if message["symbol"] == "GLOBX" => {
                    last_sent = message["seq"].as_u64().unwrap();
                }
                _ => {}
            }
        }
    })
    .await;
    common::wait_for_ticks(&app, last_sent + 400).await;
    send_json(&mut ws, json!({"type": "subscribe", "symbols": ["GLOBX"]})).await;
    let again = next_seq_of(&mut ws, "GLOBX").await;
    let history = tickerlab::feed::HISTORY as u64;
    assert!(
        again > last_sent + history,
        "GLOBX restarted at seq {again}, within the history after the last one sent \
         ({last_sent}): a stale replay"
    );
    // Every GLOBX tick after the last one sent and before the one it restarted at was
    // skipped, and counted.
    let gap = again - last_sent - 1;
    common::wait_for_metric(&app, "tickerlab_ws_ticks_skipped_total", |skipped| {
        skipped >= gap
    })
    .await;
}

/// The seq of the next tick of `symbol`, skipping other messages; bounded by the wait.
async fn next_seq_of(ws: &mut common::Ws, symbol: &str) -> u64 {
    let tick = async {
        loop {
            let tick = next_of_type(ws, "tick").await;
            if tick["symbol"] == symbol {
                return tick["seq"].as_u64().expect("a tick's seq");
            }
        }
    };
    common::within(format!("{symbol} tick"), tick).await
}

// ---- heartbeat -------------------------------------------------------------------------

fn heartbeat_config() -> Config {
    Config {
        heartbeat_secs: 1,
        client_timeout_secs: 3,
        ..test_config()
    }
}

#[tokio::test]
async fn a_peer_that_never_answers_pings_is_closed_as_dead() {
    let (app, mut bystander) = app_with_bystander(heartbeat_config()).await;
    let mut silent = RawWs::connect(app.addr, "/ws").await;
    // Read everything, answer nothing: pings go unanswered.
    let silent = tokio::spawn(common::within("close for the silent peer", async move {
        let mut pings = 0;
        loop {
            let frame = silent
                .next_frame()
                .await
                .expect("server closes with a frame");
            match frame.opcode {
                raw::PING => pings += 1,
                raw::CLOSE => return (pings, frame.close()),
                _ => {}
            }
        }
    }));
    // Meanwhile the bystander reads (and so answers pings) and misses nothing.
    while !silent.is_finished() {
        assert_streaming(&mut bystander, 5).await;
    }
    let (pings, close) = silent.await.unwrap();
    assert!(pings >= 2, "pinged before giving up ({pings} pings)");
    assert_eq!(close.0, 1008, "{close:?}");
    assert!(close.1.contains("no answer to pings"), "{close:?}");
    wait_for_metric(&app, WS_OPEN, |n| n == 1).await; // only the bystander is left
    assert_unharmed(&app, &mut bystander).await;
}

/// Sockets opened together are pinged apart: each one's first ping falls at a random point
/// of the first period, so a class that opens the page at once does not get (and answer)
/// every ping in the same moment, every period, while the ticks go out.
#[tokio::test]
async fn sockets_opened_together_get_their_first_pings_spread_over_the_period() {
    let period = std::time::Duration::from_secs(2);
    let app = spawn_app(Config {
        heartbeat_secs: period.as_secs(),
        client_timeout_secs: 30,
        ..test_config()
    })
    .await;
    let opened = std::time::Instant::now();
    let sockets = (0..20).map(|_| RawWs::connect(app.addr, "/ws?symbols=ACME"));
    let sockets = futures_util::future::join_all(sockets).await;
    let joined = opened.elapsed();
    let first_pings = sockets.into_iter().map(|mut socket| {
        tokio::spawn(common::within("first ping", async move {
            loop {
                let frame = socket.next_frame().await.expect("frames until a ping");
                if frame.opcode == raw::PING {
                    return opened.elapsed();
                }
            }
        }))
    });
    let mut first_pings: Vec<_> = futures_util::future::join_all(first_pings)
        .await
        .into_iter()
        .map(|at| at.expect("reader"))
        .collect();
    first_pings.sort();
    let spread = first_pings[19] - first_pings[0];
    // 20 draws over 0.2-2 s: a spread under 0.5 s has a chance of about 1e-9.
    assert!(
        spread >= period / 4,
        "20 sockets opened within {joined:?} had their first pings within {spread:?} of each \
         other: {first_pings:?}"
    );
}

#[tokio::test]
async fn a_quiet_client_that_answers_pings_stays_connected() {
    let app = spawn_app(heartbeat_config()).await;
    let mut quiet = greeted_client(&app).await;
    // tungstenite answers each ping with a pong as it reads. The client sends nothing else
    // for twice the timeout; it must still be streaming.
    let ticks_needed = 2 * 3 * 1000 / 20;
    // Bounded as a whole (about 6 s of ticks, five times that allowed): pings alone, with
    // the ticks stopped, must not keep the loop waiting.
    let (mut pings, mut ticks) = (0, 0);
    let counting = async {
        while ticks < ticks_needed {
            match futures_util::StreamExt::next(&mut quiet)
                .await
                .expect("open")
                .expect("ok")
            {
                Message::Ping(_) => pings += 1,
                Message::Text(_) => ticks += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    tokio::time::timeout(3 * common::WAIT, counting)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{ticks_needed} ticks not there within {:?}",
                3 * common::WAIT
            )
        });
    assert!(pings >= 3, "the server pinged ({pings})");
    assert_eq!(metric(&metrics_text(&app).await, WS_OPEN), 1);
}

/// The heartbeat a browser hides from JavaScript, counted by the server: a `pong` (the answer
/// to the protocol's `ping` message) says how many ping frames the server sent on this socket
/// and how many pongs came back. tungstenite writes its answer to a ping when it next reads
/// (before reading), so once a tick has been read after the last ping seen, the server has
/// every answer before our `ping` message.
#[tokio::test]
async fn a_pong_counts_the_heartbeat_pings_sent_and_answered_on_the_socket() {
    let app = spawn_app(heartbeat_config()).await;
    let mut ws = greeted_client(&app).await;
    let seen = common::within("three pings and a frame after them", async {
        let mut seen = 0;
        loop {
            let message = futures_util::StreamExt::next(&mut ws)
                .await
                .expect("open")
                .expect("ok");
            match message {
                Message::Ping(_) => seen += 1,
                _ if seen >= 3 => break seen,
                _ => {}
            }
        }
    })
    .await;
    send_json(&mut ws, json!({"type": "ping", "id": 7})).await;
    let pong = next_of_type(&mut ws, "pong").await;
    let heartbeat = &pong["heartbeat"];
    assert_eq!(heartbeat["every_secs"], 1, "{pong}");
    assert_eq!(heartbeat["pongs_received"], seen, "{pong}");
    let sent = heartbeat["pings_sent"].as_u64().expect("pings_sent");
    // One more may be on its way to us.
    assert!(sent == seen || sent == seen + 1, "{pong}");
}

/// While ticks flow, a heartbeat ping rides with one: the server writes the tick and the ping
/// together (one wake-up of the connection, one system call), so they arrive together and
/// each ping comes in the same read as the tick before it. Once the client unsubscribes from
/// everything no tick comes, and the pings come on their own, so a client without ticks is
/// still pinged (and one that answers stays).
///
/// The first ping is answered but not judged: it comes at a random point of the first period,
/// possibly before a busy machine has let the connection write any tick, and then it rightly
/// goes alone.
#[tokio::test]
async fn heartbeat_pings_ride_with_ticks_and_come_alone_without_them() {
    let app = spawn_app(heartbeat_config()).await;
    let mut ws = RawWs::connect(app.addr, "/ws?symbols=ACME").await;
    common::within("three pings riding with ticks", async {
        let (mut pings, mut riding) = (0, 0);
        while riding < 3 {
            let frames = ws.frames_of_next_read().await.expect("open");
            for (i, frame) in frames.iter().enumerate() {
                if frame.opcode == raw::PING {
                    ws.send_frame(true, raw::PONG, &frame.payload).await;
                    pings += 1;
                    if pings == 1 {
                        continue;
                    }
                    let before = i.checked_sub(1).map(|i| frames[i].opcode);
                    assert_eq!(
                        before,
                        Some(raw::TEXT),
                        "a ping right after a tick: {frames:?}"
                    );
                    riding += 1;
                }
            }
        }
    })
    .await;
    let unsubscribe = json!({"type": "unsubscribe", "symbols": ["ACME"], "id": "u"});
    ws.send_frame(true, raw::TEXT, unsubscribe.to_string().as_bytes())
        .await;
    // The answer first (ticks already on their way may come before it), then only pings.
    common::within("the answer, then two pings alone", async {
        let mut answered = false;
        let mut alone = 0;
        while alone < 2 {
            let frames = ws.frames_of_next_read().await.expect("open");
            for frame in &frames {
                match frame.opcode {
                    raw::TEXT => {
                        let message: serde_json::Value =
                            serde_json::from_slice(&frame.payload).expect("JSON");
                        if message["type"] == "subscribed" && message["id"] == "u" {
                            answered = true;
                        } else {
                            assert!(!answered, "nothing after the answer but pings: {message}");
                        }
                    }
                    raw::PING => {
                        if answered {
                            alone += 1;
                        }
                        ws.send_frame(true, raw::PONG, &frame.payload).await;
                    }
                    other => panic!("unexpected opcode {other}"),
                }
            }
        }
    })
    .await;
    assert_eq!(metric(&metrics_text(&app).await, WS_OPEN), 1);
}

// ---- bad messages: an error answer, the socket stays open ------------------------------------

#[tokio::test]
async fn malformed_json_gets_bad_json_and_the_socket_stays() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = greeted_client(&app).await;
    ws.send(Message::text("{\"type\":\"subscribe\","))
        .await
        .unwrap();
    let error = next_of_type(&mut ws, "error").await;
    assert_eq!(error["code"], "bad_json");
    let text = error["message"].as_str().unwrap();
    assert!(
        text.contains("not valid JSON") && text.contains("\"type\":\"subscribe\""),
        "{text}"
    );
    send_json(&mut ws, json!({"type": "ping", "id": 1})).await;
    assert_eq!(next_of_type(&mut ws, "pong").await["id"], 1);
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn an_unknown_type_gets_bad_message_echoing_the_id() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = greeted_client(&app).await;
    send_json(&mut ws, json!({"type": "buy", "symbol": "ACME", "id": 42})).await;
    let error = next_of_type(&mut ws, "error").await;
    assert_eq!(error["code"], "bad_message");
    assert_eq!(error["id"], 42);
    let text = error["message"].as_str().unwrap();
    assert!(
        text.contains("buy") && text.contains("unsubscribe"),
        "{text}"
    );
    send_json(&mut ws, json!({"type": "ping", "id": 2})).await;
    assert_eq!(next_of_type(&mut ws, "pong").await["id"], 2);
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn an_unknown_symbol_gets_the_list_of_known_ones() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = greeted_client(&app).await;
    send_json(
        &mut ws,
        json!({"type": "subscribe", "symbols": ["NOPE", "GLOBX"], "id": 3}),
    )
    .await;
    let error = next_of_type(&mut ws, "error").await;
    assert_eq!(error["code"], "unknown_symbol");
    assert_eq!(error["symbols"], json!(app.feed.symbols()));
    assert!(error["message"].as_str().unwrap().contains("NOPE"));
    // The known symbol in the same request was still subscribed.
    let subscribed = next_of_type(&mut ws, "subscribed").await;
    assert_eq!(subscribed["symbols"], json!(["ACME", "GLOBX"]));
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn a_subscribe_of_ten_thousand_symbols_is_refused_whole() {
    // With a message limit large enough to carry it, the list itself is refused.
    let config = Config {
        max_message_bytes: 200_000,
        ..test_config()
    };
    let (app, mut bystander) = app_with_bystander(config).await;
    let mut ws = greeted_client(&app).await;
    send_json(&mut ws, ten_thousand_symbols()).await;
    let error = next_of_type(&mut ws, "error").await;
    assert_eq!(error["code"], "bad_message");
    assert_eq!(error["id"], 4);
    let text = error["message"].as_str().unwrap();
    assert!(
        text.contains("10000") && text.contains("at most 64"),
        "{text}"
    );
    send_json(&mut ws, json!({"type": "ping", "id": 5})).await;
    assert_eq!(next_of_type(&mut ws, "pong").await["id"], 5);
    assert_unharmed(&app, &mut bystander).await;
}

const READERS: usize = 50;
/// How long the stalled client reads nothing, in ticks of the feed: 20 s at the 10 ms tick.
/// Counted, not timed: a loaded machine's feed ticks less often, and a timed stall would pile
/// up fewer ticks than the bounds asserted below assume. (Well under the 60 s client timeout
/// even at half speed.)
const STALL_TICKS: u64 = 2000;

/// A reader: checks every tick follows the previous one; returns the ticks read as
/// (server timestamp, tick-to-client delay), both in ms.
async fn read_every_tick(mut ws: Ws, stop: Arc<AtomicBool>) -> (u64, Vec<(f64, f64)>) {
    let mut last = None;
    let mut count = 0;
    let mut delays = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let tick = next_json(&mut ws).await;
        assert_eq!(tick["type"], "tick");
        let seq = tick["seq"].as_u64().unwrap();
        if let Some(last) = last {
            assert_eq!(seq, last + 1, "a reading client missed a tick");
        }
        last = Some(seq);
        count += 1;
        let ts = tick["ts"].as_f64().unwrap();
        delays.push((ts, tickerlab::tick::epoch_ms() - ts));
    }
    (count, delays)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_skips_ticks_and_costs_the_others_nothing() {
    let config = Config {
        tick_ms: 10,
        heartbeat_secs: 10,
        client_timeout_secs: 60, // longer than the stall: this client is slow, not dead
        ..test_config()
    };
    let app = spawn_app(config).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let mut ws = app.ws("/ws").await;
        hello(&mut ws).await;
        readers.push(tokio::spawn(read_every_tick(ws, stop.clone())));
    }

    // The client that will stall, on a socket with a small receive buffer.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.addr).await.unwrap();
    let (mut stalled, _) = tokio_tungstenite::client_async(
        app.ws_url("/ws"),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    hello(&mut stalled).await;
    let mut before = 0;
    for _ in 0..20 {
        let tick = next_json(&mut stalled).await;
        before = tick["seq"].as_u64().unwrap();
    }
    let skipped_at_start = metric(
        &metrics_text(&app).await,
        "tickerlab_ws_ticks_skipped_total",
    );

    // Stall: read nothing while the feed makes STALL_TICKS ticks. Sample the gauge every 100.
    let stall_start_ms = tickerlab::tick::epoch_ms();
    let mut waiting_samples = Vec::new();
    for step in 1..=STALL_TICKS / 100 {
        common::wait_for_ticks(&app, before + step * 100).await;
        let text = metrics_text(&app).await;
        waiting_samples.push(metric(&text, "tickerlab_ws_send_waiting"));
    }
    let ticks_at_resume = app.feed.ticks();
    let stall_end_ms = tickerlab::tick::epoch_ms();
    // From halfway through the stall on, the stalled session must be parked at its bound (by
    // then the feed has produced far more than the queue, write buffer and socket buffers
    // hold).
    let halfway = waiting_samples.len() / 2 - 1; // the sample taken at STALL_TICKS / 2
    assert!(
        waiting_samples[halfway..].iter().all(|&n| n == 1),
        "the stalled session waits at its bounded queue: {waiting_samples:?}"
    );

    // Resume: first the backlog that was already queued (ticks older than the newest at the
    // resume), then the newest. Every seq gap the client sees is ticks skipped for it: the
    // jump at the resume and, on a loaded machine, a few earlier ones, where a send waited
    // on the not-yet-parked client long enough to count it as slow.
    let mut backlog = 0u64;
    let mut gaps = 0u64;
    let mut last = before;
    let after_jump = loop {
        let seq = next_json(&mut stalled).await["seq"].as_u64().unwrap();
        assert!(seq > last, "seq {seq} after {last}");
        gaps += seq - last - 1;
        if seq >= ticks_at_resume {
            break seq;
        }
        last = seq;
        backlog += 1;
    };
    let stalled_ticks = ticks_at_resume - before;
    eprintln!(
        "stall: {stalled_ticks} ticks; backlog read on resume: {backlog}; then seq {last} -> \
         {after_jump} (skipped {gaps} in all); waiting gauge samples {waiting_samples:?}"
    );
    assert!(
        backlog < 1000 && backlog < stalled_ticks / 2,
        "what was queued for the stalled client is bounded, then it resumes at the newest \
         tick: {backlog} of {stalled_ticks} ticks read before seq {ticks_at_resume}"
    );
    let skipped = metric(
        &metrics_text(&app).await,
        "tickerlab_ws_ticks_skipped_total",
    ) - skipped_at_start;
    assert!(
        skipped >= gaps,
        "the server counted what it skipped ({skipped} >= {gaps})"
    );
    // After the jump it streams normally again.
    let mut seq = after_jump;
    for _ in 0..20 {
        let next = next_json(&mut stalled).await["seq"].as_u64().unwrap();
        assert!(next > seq);
        seq = next;
    }

    stop.store(true, Ordering::Relaxed);
    let (mut before_stall, mut during_stall) = (Vec::new(), Vec::new());
    for reader in readers {
        let (count, delays) = reader.await.expect("a reader saw a gap");
        assert!(
            count >= stalled_ticks / 2,
            "each reader kept reading ({count})"
        );
        for (ts, delay) in delays {
            if ts < stall_start_ms {
                before_stall.push(delay);
            } else if ts < stall_end_ms {
                during_stall.push(delay);
            }
        }
    }
    // Delay is printed, not asserted: timing belongs in benches/.
    eprintln!(
        "readers' median tick-to-client delay: {:.2} ms before the stall, {:.2} ms during it",
        median(before_stall),
        median(during_stall)
    );
}

/// A stall shorter than the feed's history (here 200 ticks of 256) is a slow client too:
/// latest value wins. Once its socket drains, the client gets what was already written
/// (bounded by the socket's buffers), then the newest tick of each symbol, with the gap
/// skipped in one step and counted; the history is for a socket that never blocked but was
/// woken late, not a backlog to replay to a client that did not read.
#[tokio::test]
async fn a_stall_shorter_than_the_history_skips_to_the_newest_tick() {
    const STALL: u64 = 200;
    let app = spawn_app(Config {
        tick_ms: 10,
        heartbeat_secs: 10,
        client_timeout_secs: 60, // longer than the stall: this client is slow, not dead
        ..test_config()
    })
    .await;
    let symbols = app.feed.symbols().len() as u64;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.addr).await.unwrap();
    let (mut stalled, _) = tokio_tungstenite::client_async(
        app.ws_url("/ws?symbols=ACME,GLOBX,INITECH,UMBRL"),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    hello(&mut stalled).await;
    let mut last: HashMap<String, u64> = HashMap::new();
    while last.len() < symbols as usize {
        let tick = next_of_type(&mut stalled, "tick").await;
        last.insert(
            tick["symbol"].as_str().unwrap().into(),
            tick["seq"].as_u64().unwrap(),
        );
    }
    let skipped_at_start = metric(
        &metrics_text(&app).await,
        "tickerlab_ws_ticks_skipped_total",
    );
    // Stall while the feed makes STALL ticks of four symbols: ~80 KB of frames, more than
    // the server's send buffer and this socket's receive buffer hold, so the socket blocks.
    let start = *last.values().max().unwrap();
    common::wait_for_ticks(&app, start + STALL).await;
    common::wait_for_metric(&app, "tickerlab_ws_send_waiting", |n| n == 1).await;
    let resumed_at = app.feed.ticks();

    // Read until every symbol has reached a tick made after the resume.
    let (mut backlog, mut gaps) = (0u64, 0u64);
    let mut caught_up = HashSet::new();
    while caught_up.len() < symbols as usize {
        let tick = next_of_type(&mut stalled, "tick").await;
        let symbol = tick["symbol"].as_str().unwrap().to_owned();
        let seq = tick["seq"].as_u64().unwrap();
        let previous = last.insert(symbol.clone(), seq).unwrap();
        assert!(seq > previous, "{symbol} seq {seq} after {previous}");
        gaps += seq - previous - 1;
        if seq >= resumed_at {
            caught_up.insert(symbol);
        } else {
            backlog += 1;
        }
    }
    let stalled_frames = STALL * symbols;
    eprintln!(
        "stall: {stalled_frames} frames made; {backlog} read before the newest; {gaps} skipped"
    );
    assert!(
        backlog < stalled_frames / 2,
        "the client was replayed {backlog} of the {stalled_frames} frames of its stall: \
         a stall shorter than the history must skip to the newest tick"
    );
    // Every gap it saw was counted by the server.
    common::wait_for_metric(&app, "tickerlab_ws_ticks_skipped_total", |n| {
        n - skipped_at_start >= gaps
    })
    .await;
}

/// A `?resume=` position beyond the newest tick was never sent by this server: the socket
/// says so in an `error` naming the newest seq, then streams from the newest tick. (Taken
/// as a position, it would silence the symbol for good and count a skip per tick.)
#[tokio::test]
async fn a_resume_beyond_the_newest_tick_gets_an_error_and_starts_at_the_newest() {
    let app = spawn_app(test_config()).await;
    common::wait_for_ticks(&app, 3).await;
    let run = app.feed.run();
    let mut ws = app
        .ws(&format!(
            "/ws?symbols=ACME&resume=ACME:18446744073709551615@{run}"
        ))
        .await;
    hello(&mut ws).await;
    let error = next_json(&mut ws).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], "bad_resume", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("ACME:18446744073709551615") && message.contains("newest"),
        "{message}"
    );
    let first = next_of_type(&mut ws, "tick").await["seq"].as_u64().unwrap();
    let second = next_of_type(&mut ws, "tick").await["seq"].as_u64().unwrap();
    assert!(second > first);
    let newest_named: u64 = message
        .rsplit_once("ACME:")
        .and_then(|(_, rest)| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .expect("the message names the newest seq");
    assert!(
        newest_named < first + 1,
        "named {newest_named}, streaming from {first}"
    );
    let skipped = metric(
        &metrics_text(&app).await,
        "tickerlab_ws_ticks_skipped_total",
    );
    assert!(
        skipped < 10,
        "{skipped} ticks counted as skipped for one client"
    );
}
