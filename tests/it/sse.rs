//! GET /events: Server-Sent Events against the real server, read as a raw byte stream and
//! parsed per the HTML standard's event-stream rules (the browser test uses EventSource).

use crate::common;
use common::{WAIT, spawn_app, test_config};
use futures_util::StreamExt;
use serde_json::Value;
use tickerlab::Config;

/// One parsed block of an event stream: an event (id + data) or a comment.
#[derive(Debug, Default)]
struct Block {
    id: Option<String>,
    data: Option<String>,
    comment: Option<String>,
    retry: Option<u64>,
}

struct EventReader {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl EventReader {
    async fn open(url: &str, last_event_id: Option<&str>) -> EventReader {
        let mut request = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        EventReader {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next block (events are separated by a blank line).
    async fn next(&mut self) -> Block {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                let mut block = Block::default();
                for line in raw.lines() {
                    if let Some(comment) = line.strip_prefix(':') {
                        block.comment = Some(comment.trim().to_owned());
                    } else if let Some((field, value)) = line.split_once(": ") {
                        match field {
                            "id" => block.id = Some(value.to_owned()),
                            "data" => block.data = Some(value.to_owned()),
                            "retry" => block.retry = value.parse().ok(),
                            _ => {}
                        }
                    }
                }
                return block;
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("no data within the wait")
                .expect("stream ended")
                .unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next block with an event (an id and data), skipping comments; bounded as a whole,
    /// so a stream that only sends comments fails the wait.
    async fn next_event(&mut self) -> (String, Value) {
        crate::common::within("event", async {
            loop {
                let block = self.next().await;
                if let (Some(id), Some(data)) = (block.id, block.data) {
                    return (id, serde_json::from_str(&data).unwrap());
                }
            }
        })
        .await
    }
}

#[tokio::test]
async fn streams_ticks_as_events_with_symbol_seq_ids() {
    // SSE is latest value wins too: a stream that fell behind skips to the newest tick, so
    // this asserts order, not consecutive seqs (on a loaded machine a stall is possible).
    let app = spawn_app(Config {
        tick_ms: 50,
        ..test_config()
    })
    .await;
    let mut events = EventReader::open(&app.http("/events?symbols=ACME,GLOBX"), None).await;
    let preamble = events.next().await;
    assert_eq!(preamble.retry, Some(1000));
    let mut last = std::collections::HashMap::new();
    for _ in 0..30 {
        let (id, tick) = events.next_event().await;
        assert_eq!(tick["type"], "tick");
        let symbol = tick["symbol"].as_str().unwrap().to_owned();
        let seq = tick["seq"].as_u64().unwrap();
        // The id is the stream's whole position, this tick first: `ACME:seq,GLOBX:seq@RUN`.
        let run = tick["run"].as_str().unwrap();
        let (list, id_run) = id.rsplit_once('@').unwrap();
        assert_eq!(id_run, run, "{id}");
        assert!(list.starts_with(&format!("{symbol}:{seq}")), "{id}");
        assert!(
            list.split(',').any(|e| e == format!("{symbol}:{seq}")),
            "{id}"
        );
        if let Some(previous) = last.insert(symbol.clone(), seq) {
            assert!(seq > previous, "{symbol}: seq {previous} then {seq}");
        }
    }
    assert_eq!(last.len(), 2);
}

#[tokio::test]
async fn sends_a_heartbeat_comment_when_idle() {
    let app = spawn_app(Config {
        tick_ms: 60_000,
        heartbeat_secs: 1,
        client_timeout_secs: 2,
        ..test_config()
    })
    .await;
    let mut events = EventReader::open(&app.http("/events"), None).await;
    events.next().await; // preamble
    let (_, first) = events.next_event().await;
    assert_eq!(first["seq"], 1, "the current tick at once");
    let block = events.next().await;
    assert_eq!(block.comment.as_deref(), Some("heartbeat"), "{block:?}");
}

#[tokio::test]
async fn last_event_id_resumes_with_the_current_tick_and_no_backlog() {
    let app = spawn_app(Config {
        tick_ms: 100,
        ..test_config()
    })
    .await;
    common::wait_for_ticks(&app, 6).await;
    // A client that last saw seq 1 reconnects: it gets the newest tick, not 2, 3, 4...
    let mut events = EventReader::open(&app.http("/events?symbols=ACME"), Some("ACME:1")).await;
    let (_, tick) = events.next_event().await;
    let seq = tick["seq"].as_u64().unwrap();
    assert!(seq >= 6, "latest value wins, no replay from 2: got {seq}");
    // A client that already holds the newest tick is not sent it twice.
    let held = format!("ACME:{seq}");
    let mut events = EventReader::open(&app.http("/events?symbols=ACME"), Some(&held)).await;
    let (_, tick) = events.next_event().await;
    assert!(tick["seq"].as_u64().unwrap() > seq);
}

#[tokio::test]
async fn unknown_symbols_are_404_json() {
    let app = spawn_app(test_config()).await;
    let response = reqwest::get(app.http("/events?symbols=ACME,NOPE"))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("NOPE"));
}

#[tokio::test]
async fn streams_and_held_polls_count_as_connections_and_respect_the_limits() {
    use common::wait_for_metric;
    let app = spawn_app(Config {
        tick_ms: 60_000,
        // The server notices that an event stream's client left when a write to it fails:
        // with no ticks, a heartbeat. One a second makes that a moment, not 10 s (the
        // default 5 s heartbeat twice) racing the wait's deadline.
        heartbeat_secs: 1,
        client_timeout_secs: 2,
        max_connections: 2,
        long_poll_secs: 3,
        ..test_config()
    })
    .await;
    let sse = r#"tickerlab_open_connections{transport="sse"}"#;
    let longpoll = r#"tickerlab_open_connections{transport="longpoll"}"#;
    let stream = EventReader::open(&app.http("/events"), None).await;
    wait_for_metric(&app, sse, |n| n == 1).await;
    // A long poll that has to wait holds the second place.
    let held = tokio::spawn(reqwest::get(app.http("/price/next?after=1")));
    wait_for_metric(&app, longpoll, |n| n == 1).await;
    // A third long-lived connection of any kind is refused, clearly.
    let refused = reqwest::get(app.http("/events")).await.unwrap();
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--max-connections")
    );
    let refused = reqwest::get(app.http("/price/next?after=1")).await.unwrap();
    assert_eq!(refused.status(), 503);
    // Places are given back when the stream is dropped and when the poll is answered (here:
    // 204 at the long-poll timeout; actix does not cancel a handler whose client left, so a
    // held poll always ends at the next tick or the timeout).
    drop(stream);
    assert_eq!(held.await.unwrap().unwrap().status(), 204);
    wait_for_metric(&app, sse, |n| n == 0).await;
    wait_for_metric(&app, longpoll, |n| n == 0).await;
}

#[tokio::test]
async fn a_cross_origin_event_stream_is_refused() {
    let app = spawn_app(test_config()).await;
    let response = reqwest::Client::new()
        .get(app.http("/events"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let same_origin = reqwest::Client::new()
        .get(app.http("/events"))
        .header("origin", format!("http://{}", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 200);
}

/// A stream of several symbols that reconnects with the `Last-Event-ID` it
/// was given is not sent again the current tick of *another* symbol (it used to resend
/// `ACME:1` to a client resuming from `GLOBX:1`).
#[tokio::test]
async fn resuming_several_symbols_resends_no_symbol_the_client_already_has() {
    let app = spawn_app(Config {
        tick_ms: 60_000,
        ..test_config()
    })
    .await;
    let url = app.http("/events?symbols=ACME,GLOBX");
    let mut events = EventReader::open(&url, None).await;
    let (_, first) = events.next_event().await;
    let (last_id, second) = events.next_event().await;
    assert_eq!(
        (&first["symbol"], &second["symbol"]),
        (&"ACME".into(), &"GLOBX".into())
    );
    drop(events);
    // Reconnect as EventSource does: nothing is due until the next tick (a minute away), so
    // the stream must stay silent; a resent tick would arrive at once.
    let mut response = reqwest::Client::new()
        .get(&url)
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(800), async {
        while let Some(chunk) = response.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(quiet.is_err(), "the stream stays open");
    assert!(
        !text.contains("data:"),
        "resent a tick the client has: {text:?}"
    );
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
    // Bounded as a whole: ACME's ticks alone must not keep the wait for GLOBX's going.
    let reading = async {
        while !wanted.iter().all(|w| text.contains(w)) {
            let chunk = response.chunk().await.unwrap().expect("stream open");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    if tokio::time::timeout(WAIT, reading).await.is_err() {
        panic!("no current tick of each symbol within {WAIT:?}; got {text:?}");
    }
}

/// An event stream is one-way: it cannot subscribe later, so one that names no symbol
/// (`?symbols=`, `?symbols=,,,,`) would hold a place and never carry an event. It is refused
/// with a `400` that names the symbols, and takes no place.
#[tokio::test]
async fn an_event_stream_with_no_symbols_is_refused_with_400() {
    let app = spawn_app(test_config()).await;
    for query in ["?symbols=", "?symbols=,,,,", "?symbols=%20,%20"] {
        let response = reqwest::get(app.http(&format!("/events{query}")))
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("names no symbol") && error.contains("ACME"),
            "{error}"
        );
    }
    let text = common::metrics_text(&app).await;
    assert_eq!(
        common::metric(&text, "tickerlab_open_connections{transport=\"sse\"}"),
        0
    );
}

/// A stream whose client stops reading for a while, so that its socket blocks, skips to the
/// newest ticks once the client reads again (latest value wins, as on a WebSocket): what the
/// buffers held, then a jump, never a replay of the stall. (A stream that was only woken
/// late, its socket never blocked, catches up from the history instead: the unit test
/// `a_stream_woken_late_catches_up_from_the_history` in `src/http/sse.rs`.)
#[tokio::test]
async fn a_stream_whose_socket_blocked_skips_to_the_newest_ticks() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(test_config()).await;
    // A 4 KiB receive buffer: the server's writes block after a few dozen kB.
    let mut stream = common::hostile::small_window(app.addr).await.unwrap();
    stream
        .write_all(b"GET /events?symbols=ACME,GLOBX,INITECH,UMBRL HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // What the buffers can hold before the socket blocks (the 32 KiB kernel send buffer, the
    // client's 4 KiB, actix's 32 KiB write buffer) is about 100 events per symbol. Waiting
    // for 200 more ticks leaves the stream about 100 behind once it blocked: fewer than the
    // feed's history of 256, so only the blocked socket can make it skip them.
    let start = app.feed.latest().ticks[0].tick.seq;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while app.feed.latest().ticks[0].tick.seq < start + 200 {
        assert!(tokio::time::Instant::now() < deadline, "the feed stalled");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut text = String::new();
    let mut buffer = vec![0; 64 * 1024];
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while let Ok(read) = tokio::time::timeout_at(until, stream.read(&mut buffer)).await {
        let n = read.expect("read");
        assert!(n > 0, "the stream ended");
        text.push_str(std::str::from_utf8(&buffer[..n]).expect("UTF-8"));
    }
    let mut last = std::collections::HashMap::new();
    let mut skipped = 0;
    for data in text.lines().filter_map(|line| line.strip_prefix("data: ")) {
        let tick: Value = serde_json::from_str(data).expect("a tick");
        let symbol = tick["symbol"].as_str().unwrap().to_owned();
        let seq = tick["seq"].as_u64().unwrap();
        if let Some(previous) = last.insert(symbol.clone(), seq) {
            assert!(seq > previous, "{symbol}: seq {seq} after {previous}");
            skipped += seq - previous - 1;
        }
    }
    assert_eq!(last.len(), 4, "every symbol streamed: {last:?}");
    // The stall's ticks beyond what the buffers held were skipped, not replayed.
    assert!(skipped >= 4 * 20, "only {skipped} ticks skipped");
    app.stopper.stop().await;
}
