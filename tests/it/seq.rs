//! A `seq` means one price everywhere: whatever a client does
//! (subscribe, unsubscribe, reconnect, resume), no transport sends it a tick twice or a
//! lower seq after a higher one within a run. One hand-written case, then property tests
//! that drive random client actions against a live feed.

use crate::common;
use common::{TestApp, Ws, hello, next_json, send_json, spawn_app, test_config};
use futures_util::StreamExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;
use tickerlab::Config;
use tokio_tungstenite::tungstenite::Message;

const SYMBOLS: [&str; 3] = ["ACME", "GLOBX", "INITECH"];

/// What a client has seen: the last seq of each `(run, symbol)`. `observe` fails the test on
/// a duplicate or backwards tick.
#[derive(Debug, Default)]
struct Seen {
    last: HashMap<(String, String), u64>,
    run: Option<String>,
}

impl Seen {
    fn observe(&mut self, tick: &Value) {
        let run = tick["run"]
            .as_str()
            .expect("every tick has a run")
            .to_owned();
        let symbol = tick["symbol"].as_str().unwrap().to_owned();
        let seq = tick["seq"].as_u64().unwrap();
        self.run = Some(run.clone());
        if let Some(last) = self.last.insert((run, symbol.clone()), seq) {
            assert!(
                seq > last,
                "{symbol}: seq {seq} after {last} in the same run"
            );
        }
    }

    /// What this client holds, in the form `/ws?resume=` takes: `ACME:42,GLOBX:17@RUN`.
    fn resume_id(&self) -> Option<String> {
        let run = self.run.as_ref()?;
        let held: Vec<String> = self
            .last
            .iter()
            .filter(|((r, _), _)| r == run)
            .map(|((_, symbol), seq)| format!("{symbol}:{seq}"))
            .collect();
        Some(format!("{}@{run}", held.join(",")))
    }
}

/// A WebSocket's next message within `within`, or `None` if there was none.
async fn next_within(ws: &mut Ws, within: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(within, ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => panic!("socket ended or failed: {other:?}"),
        }
    }
}

/// `unsubscribe` then `subscribe` within one tick sent the
/// same tick again (`tick ACME 1` twice).
#[tokio::test]
async fn unsubscribe_then_subscribe_within_a_tick_sends_no_tick_twice() {
    let app = spawn_app(Config {
        tick_ms: 60_000,
        ..test_config()
    })
    .await;
    let mut ws = app.ws("/ws?symbols=ACME").await;
    hello(&mut ws).await;
    let first = next_json(&mut ws).await;
    assert_eq!(
        (first["type"].as_str(), first["seq"].as_u64()),
        (Some("tick"), Some(1))
    );
    for (kind, id) in [("unsubscribe", 1), ("subscribe", 2)] {
        send_json(
            &mut ws,
            json!({"type": kind, "symbols": ["ACME"], "id": id}),
        )
        .await;
        let answer = next_json(&mut ws).await;
        assert_eq!(
            (answer["type"].as_str(), answer["id"].as_u64()),
            (Some("subscribed"), Some(id))
        );
    }
    // The next tick is a minute away: anything that arrives now is the same tick again.
    let again = next_within(&mut ws, Duration::from_millis(800)).await;
    assert_eq!(again, None, "ACME 1 was sent twice");

    // Reconnecting with `?resume=` (what the client holds, in the SSE id form) does not
    // send it again either; without it, a new socket starts with the current tick.
    let run = first["run"].as_str().unwrap();
    let mut resumed = app
        .ws(&format!("/ws?symbols=ACME&resume=ACME:1@{run}"))
        .await;
    hello(&mut resumed).await;
    let again = next_within(&mut resumed, Duration::from_millis(800)).await;
    assert_eq!(again, None, "a resumed socket was sent ACME 1 again");
    let mut fresh = app.ws("/ws?symbols=ACME").await;
    hello(&mut fresh).await;
    assert_eq!(next_json(&mut fresh).await["seq"], 1);
}

/// One live app for every generated case: a fast tick, so actions race with ticks.
static APP: LazyLock<(tokio::runtime::Runtime, TestApp)> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(spawn_app(Config {
        tick_ms: 15,
        symbols: SYMBOLS.iter().map(|s| s.to_string()).collect(),
        ..test_config()
    }));
    (runtime, app)
});

/// A client action on a WebSocket.
#[derive(Debug, Clone)]
enum WsAction {
    Subscribe(Vec<&'static str>),
    Unsubscribe(Vec<&'static str>),
    /// Close and open a new socket with `?resume=` what the client holds.
    Resume,
    /// Close and open a new socket without `resume` (a new client: it starts afresh).
    Fresh,
    /// Read whatever arrives for this many milliseconds (0: only what is already there).
    Read(u64),
}

fn some_symbols() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::sample::subsequence(SYMBOLS.to_vec(), 1..=SYMBOLS.len())
}

fn ws_action() -> impl Strategy<Value = WsAction> {
    prop_oneof![
        some_symbols().prop_map(WsAction::Subscribe),
        some_symbols().prop_map(WsAction::Unsubscribe),
        Just(WsAction::Resume),
        Just(WsAction::Fresh),
        (0u64..40).prop_map(WsAction::Read),
    ]
}

async fn read_for(ws: &mut Ws, seen: &mut Seen, millis: u64) {
    let until = tokio::time::Instant::now() + Duration::from_millis(millis.max(1));
    while let Some(message) = next_within(ws, until - tokio::time::Instant::now()).await {
        if message["type"] == "tick" {
            seen.observe(&message);
        }
        if tokio::time::Instant::now() >= until {
            break;
        }
    }
}

async fn run_ws(actions: Vec<WsAction>) {
    let app = &APP.1;
    let open = |resume: Option<String>| async move {
        let query = resume.map_or_else(String::new, |id| format!("&resume={id}"));
        let mut ws = app.ws(&format!("/ws?symbols=ACME{query}")).await;
        hello(&mut ws).await;
        ws
    };
    let mut ws = open(None).await;
    let mut seen = Seen::default();
    for (id, action) in actions.into_iter().enumerate() {
        match action {
            WsAction::Subscribe(symbols) | WsAction::Unsubscribe(symbols) if symbols.is_empty() => {
            }
            WsAction::Subscribe(symbols) => {
                send_json(
                    &mut ws,
                    json!({"type": "subscribe", "symbols": symbols, "id": id}),
                )
                .await
            }
            WsAction::Unsubscribe(symbols) => {
                send_json(
                    &mut ws,
                    json!({"type": "unsubscribe", "symbols": symbols, "id": id}),
                )
                .await
            }
            WsAction::Resume | WsAction::Fresh => {
                read_for(&mut ws, &mut seen, 0).await;
                let _ = ws.close(None).await;
                if matches!(action, WsAction::Fresh) {
                    seen = Seen::default();
                }
                ws = open(seen.resume_id()).await;
                continue;
            }
            WsAction::Read(millis) => read_for(&mut ws, &mut seen, millis).await,
        }
        read_for(&mut ws, &mut seen, 0).await;
    }
    read_for(&mut ws, &mut seen, 30).await;
}

/// An event stream that remembers the id of the last complete event, to resume from it.
struct Stream {
    response: reqwest::Response,
    buffer: String,
    last_id: Option<String>,
}

impl Stream {
    async fn open(app: &TestApp, symbols: &[&str], resume: Option<&str>) -> Stream {
        let url = app.http(&format!("/events?symbols={}", symbols.join(",")));
        let mut request = reqwest::Client::new().get(url);
        if let Some(id) = resume {
            request = request.header("last-event-id", id);
        }
        let response = tokio::time::timeout(common::WAIT, request.send())
            .await
            .expect("connect within the wait")
            .unwrap();
        assert_eq!(response.status(), 200);
        Stream {
            response,
            buffer: String::new(),
            last_id: resume.map(str::to_owned),
        }
    }

    /// Reads for `millis`, checking every complete event; an event cut off by the end of
    /// the read stays in the buffer (a browser would not have dispatched it either).
    async fn read_for(&mut self, seen: &mut Seen, millis: u64) {
        let until = tokio::time::Instant::now() + Duration::from_millis(millis.max(1));
        while let Ok(chunk) = tokio::time::timeout_at(until, self.response.chunk()).await {
            let chunk = chunk.unwrap().expect("the stream stays open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut id = None;
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id: ") {
                        id = Some(value.to_owned());
                    } else if let Some(data) = line.strip_prefix("data: ") {
                        seen.observe(&serde_json::from_str(data).unwrap());
                        self.last_id = id.clone();
                    }
                }
            }
        }
    }
}

/// A client action on an event stream.
#[derive(Debug, Clone)]
enum SseAction {
    /// Drop the connection and reconnect as `EventSource` does, with `Last-Event-ID`.
    Resume,
    /// Drop it and start afresh, without an id (a new client: what it saw starts afresh).
    Fresh,
    /// Read for this many milliseconds.
    Read(u64),
}

fn sse_action() -> impl Strategy<Value = SseAction> {
    prop_oneof![
        2 => Just(SseAction::Resume),
        1 => Just(SseAction::Fresh),
        3 => (0u64..40).prop_map(SseAction::Read),
    ]
}

async fn run_sse(symbols: Vec<&'static str>, actions: Vec<SseAction>) {
    let app = &APP.1;
    let mut seen = Seen::default();
    let mut stream = Stream::open(app, &symbols, None).await;
    for action in actions {
        match action {
            SseAction::Resume => {
                let id = stream.last_id.clone();
                drop(stream);
                stream = Stream::open(app, &symbols, id.as_deref()).await;
            }
            SseAction::Fresh => {
                drop(stream);
                stream = Stream::open(app, &symbols, None).await;
                seen = Seen::default();
            }
            SseAction::Read(millis) => stream.read_for(&mut seen, millis).await,
        }
    }
    stream.read_for(&mut seen, 30).await;
}

proptest! {
    // Each case costs real time on a real server: a few dozen cases, no saved failures.
    #![proptest_config(ProptestConfig {
        cases: 24,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random subscribe, unsubscribe and reconnect (resuming, or afresh) on a WebSocket
    /// against a live 15 ms feed: each symbol's seqs strictly increase, across resumed
    /// connections too.
    #[test]
    fn websocket_clients_never_get_a_tick_twice(actions in proptest::collection::vec(ws_action(), 1..12)) {
        APP.0.block_on(run_ws(actions));
    }

    /// Random reconnects with `Last-Event-ID` (resume) and without (a fresh client) on an
    /// event stream of one to three symbols: across every resumed connection, each symbol's
    /// seqs strictly increase.
    #[test]
    fn event_streams_never_resend_a_tick_on_resume(
        symbols in some_symbols(),
        actions in proptest::collection::vec(sse_action(), 1..12),
    ) {
        APP.0.block_on(run_sse(symbols, actions));
    }
}
