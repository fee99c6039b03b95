//! # `cargo bench --bench latency`: how much fresher and cheaper is push than polling?
//!
//! Starts the real app in-process (its own threads), then runs, at the same time and against
//! the same feed, one client per transport: a WebSocket client, a Server-Sent Events client,
//! a long-polling client and HTTP polling clients at several intervals. Every client wraps its TCP stream in a byte counter, records every tick
//! it receives (`seq`, `ts`, when it arrived), and the bench turns those records into:
//!
//! * **time to see a change**: for every tick the server made, how long until the client
//!   held that tick or a newer one;
//! * **age of the shown price**: `now - ts` of the price the client holds, averaged over
//!   time (integrated, not sampled at receipt);
//! * **delivery delay**: receive time - `ts` of each message;
//! * **missed**: the share of price changes the client never held (`seq` gaps);
//! * **per change seen**: requests (or messages) and bytes on the wire, headers and payload
//!   apart.
//!
//! Each figure comes with the line theory predicts, so a surprise stands out.
//!
//! Flags (or environment): `--secs 30` (`BENCH_SECS`) measuring time, `--tick-ms 50`
//! (`BENCH_TICK_MS`), `--intervals 50,100,250,500,1000` (`BENCH_INTERVALS`) polling periods,
//! `--pollers 8` (`BENCH_POLLERS`) polling clients per period, at random phases, pooled.
//! `--rtt-ms 0,50,150` (`BENCH_RTT_MS`) adds a round-trip axis: one run per value, every
//! client going through the app's simulated network (`--lab-rtt-ms`, see `tickerlab::lab`),
//! the same relay a browser tab on the lab port uses; without it the clients connect
//! directly, over loopback.
//! Then, on a TLS server of its own, it measures the header bytes of one poll and one long
//! poll over HTTP/1.1 and over HTTP/2 (HPACK), 50 of each on one connection, counted inside
//! TLS and on the wire.
//! Output: Markdown tables on stdout; `latency.csv`, `latency.json`, `latency.svg` and
//! `latency-tls-headers.json` under `target/tickerlab-bench/`, and with several round trips
//! `latency-rtt.svg`.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use futures_util::StreamExt;
use serde::Serialize;
use tickerlab::Config;
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use support::cli::CargoArgs;
use support::counting::Counted;
use support::http_client::HttpClient;
use support::output::{self, Table, num};
use support::server::InProcess;
use support::stats::{Summary, summary};
use support::tick_fields::{TickFields, now_ms};

/// One row of the comparison: a way for a client to learn the price. Each has a `run` arm
/// (its client) and a `theory` arm (what it should measure).
#[derive(Debug, Clone, Copy)]
enum Transport {
    /// `GET /ws`: the server pushes every tick.
    WebSocket,
    /// `GET /events`: the server pushes every tick as an event of one endless HTTP response.
    Sse,
    /// `GET /price/next?after=SEQ` again and again over one keep-alive connection: the server
    /// holds each request until there is a tick newer than `SEQ`.
    LongPoll,
    /// `GET /price` every `interval_ms` over one keep-alive connection.
    Polling { interval_ms: u64 },
}

/// One tick as a client received it.
#[derive(Debug, Clone, Copy)]
struct Receipt {
    /// When it arrived, epoch ms.
    at: f64,
    seq: u64,
    /// When the server made it, epoch ms.
    ts: f64,
}

/// Everything one client saw and spent.
#[derive(Debug, Default)]
struct Observed {
    /// Ticks received, in arrival order.
    receipts: Vec<Receipt>,
    /// Requests sent (polling) or messages received (push).
    exchanges: u64,
    /// Message bodies: JSON text of responses or WebSocket messages.
    payload_bytes: u64,
    /// Every byte read and written on the socket.
    wire_bytes: u64,
    /// Bytes of one typical exchange (a request and its response, or one tick message),
    /// headers and payload apart: the unit the theory multiplies.
    unit_header: f64,
    unit_payload: f64,
}

impl Transport {
    fn name(&self) -> String {
        match self {
            Transport::WebSocket => "WebSocket (push)".into(),
            Transport::Sse => "SSE (push)".into(),
            Transport::LongPoll => "long polling".into(),
            Transport::Polling { interval_ms } => format!("polling every {interval_ms} ms"),
        }
    }

    /// The polling interval, or `None` for transports that learn of a change when it happens
    /// (push, and long polling, whose requests wait for the change).
    fn interval_ms(&self) -> Option<u64> {
        match self {
            Transport::WebSocket | Transport::Sse | Transport::LongPoll => None,
            Transport::Polling { interval_ms } => Some(*interval_ms),
        }
    }

    /// Runs this transport's client against `addr` until `stop_at`.
    async fn run(self, addr: SocketAddr, symbol: String, stop_at: Instant) -> Observed {
        let result = match self {
            Transport::WebSocket => run_websocket(addr, &symbol, stop_at).await,
            Transport::Sse => run_sse(addr, &symbol, stop_at).await,
            Transport::LongPoll => run_long_poll(addr, &symbol, stop_at).await,
            Transport::Polling { interval_ms } => {
                run_polling(addr, &symbol, interval_ms, stop_at).await
            }
        };
        result.unwrap_or_else(|e| panic!("{} client failed: {e}", self.name()))
    }

    /// What theory predicts for tick interval `tick` and round trip `rtt` (ms), given the
    /// measured size of one exchange.
    fn theory(&self, tick: f64, rtt: f64, unit_header: f64, unit_payload: f64) -> Theory {
        // Every answer and every push crosses the network once on its way to the client.
        let transit = rtt / 2.0;
        match *self {
            // Long polling once the round trip reaches the tick: after each answer the next
            // request reaches the server one round trip later, when a newer tick already
            // waits, so it is answered at once. Answers come every RTT, each with the newest
            // price: long polling has become polling every RTT. A change waits 0..RTT for
            // the next answer, plus the transit; 1 - tick/RTT of the changes are never seen.
            Transport::LongPoll if rtt >= tick => Theory {
                see: [rtt * 0.5, rtt * 0.9, rtt * 0.99, rtt].map(|w| w + transit),
                age_mean: tick / 2.0 + transit + rtt / 2.0,
                delay: [tick * 0.5, tick * 0.99, tick].map(|d| d + transit),
                missed: 1.0 - tick / rtt,
                exchanges_per_change: 1.0,
                header_per_change: unit_header,
                payload_per_change: unit_payload,
            },
            // Push: a change is seen as soon as it is delivered (~0 on loopback), the shown
            // price is as old as the time since the last tick (tick/2 on average), nothing
            // is missed, one message per change. Its framing is the unit measured: 2 bytes of
            // WebSocket frame header; for SSE the chunk header and `id:`/`data:` lines.
            // Long polling sees a change as soon as the held request is answered, so the
            // same, with one full HTTP request and response per change. Its catch is the
            // blind moment after each answer, one round trip (well under a millisecond on
            // loopback) until the next request is held again: a tick made then is answered
            // at once when the request arrives, so it is late by that much, and only two
            // ticks inside one blind moment would make a miss.
            // Over a round trip, each of these arrives one transit (RTT/2) later.
            Transport::WebSocket | Transport::Sse | Transport::LongPoll => Theory {
                see: [transit; 4],
                age_mean: tick / 2.0 + transit,
                delay: [transit; 3],
                missed: 0.0,
                exchanges_per_change: 1.0,
                header_per_change: unit_header,
                payload_per_change: unit_payload,
            },
            // Polling every T: a change waits for the next poll, uniformly 0..T; the answer
            // carries a price made 0..tick ago; the shown price is tick/2 + T/2 old on
            // average; a poll sees at most one change, so when T > tick, 1 - tick/T of the
            // changes are never seen; when T < tick, tick/T polls are spent per change.
            // Over a round trip a poll's answer comes RTT later, and a poller that waits for
            // each answer polls again at once when the answer comes after the next beat
            // (tokio's `MissedTickBehavior::Skip` fires a missed beat at once): it really
            // polls every max(T, RTT), i.e. exactly like long polling once RTT > T. (The
            // page's poller, a `setInterval` that skips beats while a request is in flight,
            // waits for the first beat after the answer instead: every (floor(RTT/T) + 1) T.)
            // Its answers then travel RTT/2 to the client.
            Transport::Polling { interval_ms } => {
                let t = (interval_ms as f64).max(rtt);
                let per_change = (tick / t).max(1.0);
                Theory {
                    see: [t * 0.5, t * 0.9, t * 0.99, t].map(|w| w + transit),
                    age_mean: tick / 2.0 + t / 2.0 + transit,
                    delay: [tick * 0.5, tick * 0.99, tick].map(|d| d + transit),
                    missed: (1.0 - tick / t).max(0.0),
                    exchanges_per_change: per_change,
                    header_per_change: unit_header * per_change,
                    payload_per_change: unit_payload * per_change,
                }
            }
        }
    }
}

/// The figures theory predicts for one transport (milliseconds, shares, bytes).
#[derive(Debug, Clone, Serialize)]
struct Theory {
    /// Time to see a change: p50, p90, p99, max.
    see: [f64; 4],
    age_mean: f64,
    /// Delivery delay: p50, p99, max.
    delay: [f64; 3],
    missed: f64,
    exchanges_per_change: f64,
    header_per_change: f64,
    payload_per_change: f64,
}

/// The measured figures of one transport.
#[derive(Debug, Clone, Serialize)]
struct Row {
    /// The simulated network's round trip, ms; `None` for a direct run over loopback.
    rtt_ms: Option<u64>,
    transport: String,
    interval_ms: Option<u64>,
    /// Clients pooled in this row (polling clients start at random phases).
    clients: usize,
    see: Summary,
    age_mean: f64,
    delay: Summary,
    missed: f64,
    /// Ticks the server made in the window.
    changes_made: u64,
    exchanges_per_change: f64,
    header_per_change: f64,
    payload_per_change: f64,
    theory: Theory,
}

async fn run_websocket(
    addr: SocketAddr,
    symbol: &str,
    stop_at: Instant,
) -> anyhow::Result<Observed> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let url = format!("ws://{addr}/ws?symbols={symbol}");
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url, Counted::new(tcp), None).await?;
    let mut seen = Observed::default();
    let mut tick_bytes = Vec::new();
    loop {
        let message = tokio::select! {
            message = ws.next() => message,
            _ = tokio::time::sleep_until(stop_at) => break,
        };
        let Some(message) = message else { break };
        if let Message::Text(text) = message? {
            seen.payload_bytes += text.len() as u64;
            seen.exchanges += 1;
            if let Some(tick) = TickFields::parse(&text) {
                seen.receipts.push(Receipt {
                    at: now_ms(),
                    seq: tick.seq,
                    ts: tick.ts,
                });
                tick_bytes.push(text.len() as f64);
            }
        }
    }
    let _ = ws.close(None).await;
    let counted = ws.get_ref();
    seen.wire_bytes = counted.bytes_read() + counted.bytes_written();
    // One tick message: its JSON plus a 2-byte frame header (server frames are unmasked and
    // ticks are shorter than 126 bytes, RFC 6455 section 5.2).
    seen.unit_payload = tick_bytes.iter().sum::<f64>() / tick_bytes.len().max(1) as f64;
    seen.unit_header = 2.0;
    Ok(seen)
}

/// A Server-Sent Events client, by hand so every byte is visible: one `GET /events`, then the
/// endless chunked `text/event-stream` body, decoded chunk by chunk and split into events.
/// The response head, chunk framing, `id:`/`data:` prefixes, blank lines and comments are
/// header bytes; the JSON after `data: ` is payload.
async fn run_sse(addr: SocketAddr, symbol: &str, stop_at: Instant) -> anyhow::Result<Observed> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut stream = Counted::new(tcp);
    let request = format!(
        "GET /events?symbols={symbol} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut seen = Observed::default();
    let mut sse = SseDecoder::default();
    let mut chunk = [0u8; 8192];
    loop {
        let n = tokio::select! {
            n = stream.read(&mut chunk) => n?,
            _ = tokio::time::sleep_until(stop_at) => break,
        };
        anyhow::ensure!(n > 0, "the server ended the event stream");
        let at = now_ms();
        for data in sse.feed(&chunk[..n])? {
            seen.exchanges += 1;
            seen.payload_bytes += data.len() as u64;
            if let Some(tick) = TickFields::parse(&data) {
                seen.receipts.push(Receipt {
                    at,
                    seq: tick.seq,
                    ts: tick.ts,
                });
            }
        }
    }
    seen.wire_bytes = stream.bytes_read() + stream.bytes_written();
    // One event: the framing measured per event (chunk header and trailer, `id: ACME:42\n`,
    // `data: `, the newline and the blank line), and its JSON.
    let events = sse.events.max(1) as f64;
    seen.unit_header = sse.framing as f64 / events;
    seen.unit_payload = seen.payload_bytes as f64 / events;
    Ok(seen)
}

/// Decodes an HTTP/1.1 chunked `text/event-stream` response as its bytes arrive.
#[derive(Default)]
struct SseDecoder {
    /// Raw bytes not yet decoded (an incomplete head or chunk).
    raw: Vec<u8>,
    /// Whether the response head (status line and headers) has been read.
    head_done: bool,
    /// Decoded body bytes not yet split into events.
    body: Vec<u8>,
    /// Chunk framing and event framing of the events so far (not the response head, not
    /// comments): the per-event overhead the theory multiplies.
    framing: u64,
    /// Events carrying `data:` so far.
    events: u64,
    /// Chunk framing seen since the last event, charged to the next event.
    chunk_framing: u64,
}

impl SseDecoder {
    /// Takes newly read bytes; returns the `data:` of every event completed by them.
    fn feed(&mut self, bytes: &[u8]) -> anyhow::Result<Vec<String>> {
        self.raw.extend_from_slice(bytes);
        if !self.head_done {
            let Some(end) = find(&self.raw, b"\r\n\r\n") else {
                anyhow::ensure!(self.raw.len() < 16 * 1024, "response head over 16 KiB");
                return Ok(Vec::new());
            };
            let head = String::from_utf8_lossy(&self.raw[..end]).to_ascii_lowercase();
            anyhow::ensure!(
                head.starts_with("http/1.1 200"),
                "GET /events answered {:?}",
                head.lines().next()
            );
            anyhow::ensure!(
                head.contains("transfer-encoding: chunked"),
                "GET /events: expected a chunked body"
            );
            self.raw.drain(..end + 4);
            self.head_done = true;
        }
        // Chunks: `<hex size>\r\n<size bytes>\r\n`.
        while let Some(line_end) = find(&self.raw, b"\r\n") {
            let size_text = std::str::from_utf8(&self.raw[..line_end])?;
            let size_text = size_text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| anyhow::anyhow!("bad chunk size {size_text:?}"))?;
            anyhow::ensure!(size > 0, "the server ended the event stream");
            if self.raw.len() < line_end + 2 + size + 2 {
                break;
            }
            self.body
                .extend_from_slice(&self.raw[line_end + 2..line_end + 2 + size]);
            self.chunk_framing += (line_end + 4) as u64;
            self.raw.drain(..line_end + 2 + size + 2);
        }
        // Events end with a blank line.
        let mut data = Vec::new();
        while let Some(end) = find(&self.body, b"\n\n") {
            let event: Vec<u8> = self.body.drain(..end + 2).collect();
            let text = std::str::from_utf8(&event)?;
            let payload: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if payload.is_empty() {
                continue; // `retry:` or a comment: framing, but not an event's
            }
            let json = payload.join("\n");
            self.events += 1;
            self.framing += (event.len() - json.len()) as u64 + self.chunk_framing;
            self.chunk_framing = 0;
            data.push(json);
        }
        Ok(data)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A long-polling client: `GET /price/next?symbol=S&after=<newest seq held>` over one
/// keep-alive connection, the next request sent the moment an answer arrives. A `204` (the
/// server's timeout, nothing new) counts as an exchange that brought no tick.
async fn run_long_poll(
    addr: SocketAddr,
    symbol: &str,
    stop_at: Instant,
) -> anyhow::Result<Observed> {
    let mut client = HttpClient::connect(addr, &format!("/price/next?symbol={symbol}")).await?;
    let mut seen = Observed::default();
    let mut units = (0.0, 0.0, 0u32);
    loop {
        let (read, written) = (client.bytes_read(), client.bytes_written());
        let response = tokio::select! {
            response = client.get() => response?,
            _ = tokio::time::sleep_until(stop_at) => break,
        };
        let at = now_ms();
        seen.exchanges += 1;
        seen.payload_bytes += response.body.len() as u64;
        match response.status {
            204 => continue,
            200 => {}
            other => anyhow::bail!("GET /price/next answered {other}"),
        }
        let total = (client.bytes_read() - read + client.bytes_written() - written) as f64;
        units.0 += total - response.body.len() as f64;
        units.1 += response.body.len() as f64;
        units.2 += 1;
        let text = std::str::from_utf8(&response.body)?;
        let tick = TickFields::parse(text)
            .ok_or_else(|| anyhow::anyhow!("GET /price/next answered {text:?}, not a tick"))?;
        seen.receipts.push(Receipt {
            at,
            seq: tick.seq,
            ts: tick.ts,
        });
        client.set_path(&format!("/price/next?symbol={symbol}&after={}", tick.seq));
    }
    seen.wire_bytes = client.bytes_read() + client.bytes_written();
    // One exchange: request and response headers, and the tick. The `after=` grows by a
    // digit now and then, so this is the average.
    let n = f64::from(units.2.max(1));
    seen.unit_header = units.0 / n;
    seen.unit_payload = units.1 / n;
    Ok(seen)
}

async fn run_polling(
    addr: SocketAddr,
    symbol: &str,
    interval_ms: u64,
    stop_at: Instant,
) -> anyhow::Result<Observed> {
    let mut client = HttpClient::connect(addr, &format!("/price?symbol={symbol}")).await?;
    // Start at a random phase against the feed's ticks, as a real page would.
    let offset = rand::random::<f64>() * interval_ms as f64;
    let mut interval = tokio::time::interval_at(
        Instant::now() + Duration::from_secs_f64(offset / 1000.0),
        Duration::from_millis(interval_ms),
    );
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut seen = Observed::default();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = tokio::time::sleep_until(stop_at) => break,
        }
        let (read, written) = (client.bytes_read(), client.bytes_written());
        let response = client.get().await?;
        let at = now_ms();
        anyhow::ensure!(
            response.status == 200,
            "GET /price answered {}",
            response.status
        );
        seen.exchanges += 1;
        seen.payload_bytes += response.body.len() as u64;
        if seen.unit_payload == 0.0 {
            let total = (client.bytes_read() - read + client.bytes_written() - written) as f64;
            seen.unit_payload = response.body.len() as f64;
            seen.unit_header = total - seen.unit_payload;
        }
        let text = std::str::from_utf8(&response.body)?;
        let tick = TickFields::parse(text)
            .ok_or_else(|| anyhow::anyhow!("GET /price answered {text:?}, not a tick"))?;
        seen.receipts.push(Receipt {
            at,
            seq: tick.seq,
            ts: tick.ts,
        });
    }
    seen.wire_bytes = client.bytes_read() + client.bytes_written();
    Ok(seen)
}

/// One client's figures over the window, before clients of the same row are pooled.
struct Measured {
    see: Vec<f64>,
    delay: Vec<f64>,
    age_mean: f64,
    made_in_window: u64,
    seen_in_window: u64,
    changes_seen: u64,
    exchanges: u64,
    header_bytes: u64,
    payload_bytes: u64,
}

/// Turns one client's records into figures over the window `[w0, w1]` (epoch ms). `made`
/// maps every `seq` the server made to its `ts`.
fn measure(seen: &Observed, made: &BTreeMap<u64, f64>, (w0, w1): (f64, f64)) -> Measured {
    let receipts = &seen.receipts;
    // Time to see a change: for each tick made in the window, the first receipt of it or of
    // a newer one. Receipts arrive in order and `seq` never goes back, so one pass does it.
    let in_window: Vec<(u64, f64)> = made
        .iter()
        .filter(|&(_, &ts)| ts >= w0 && ts <= w1)
        .map(|(&s, &ts)| (s, ts))
        .collect();
    let mut see = Vec::new();
    let mut next = 0;
    for &(seq, ts) in &in_window {
        while next < receipts.len() && receipts[next].seq < seq {
            next += 1;
        }
        if let Some(r) = receipts.get(next) {
            see.push(r.at - ts);
        }
    }
    // Age of the shown price, integrated: between two receipts the client shows the newest
    // tick it holds, whose age grows linearly; the integral of a line is its midpoint value.
    let mut area = 0.0;
    let mut held: Option<f64> = None;
    for (i, r) in receipts.iter().enumerate() {
        let h = held.map_or(r.ts, |h: f64| h.max(r.ts));
        held = Some(h);
        let end = receipts.get(i + 1).map_or(w1, |n| n.at);
        let (a, b) = (r.at.max(w0), end.min(w1));
        if b > a {
            area += (b - a) * ((a + b) / 2.0 - h);
        }
    }
    let delay = receipts
        .iter()
        .filter(|r| r.at >= w0 && r.at <= w1)
        .map(|r| r.at - r.ts)
        .collect();
    // Missed: changes made in the window that the client never held.
    let held_seqs: std::collections::HashSet<u64> = receipts.iter().map(|r| r.seq).collect();
    let seen_in_window = in_window
        .iter()
        .filter(|(s, _)| held_seqs.contains(s))
        .count() as u64;
    Measured {
        see,
        delay,
        age_mean: area / (w1 - w0),
        made_in_window: in_window.len() as u64,
        seen_in_window,
        changes_seen: held_seqs.len() as u64,
        exchanges: seen.exchanges,
        header_bytes: seen.wire_bytes - seen.payload_bytes,
        payload_bytes: seen.payload_bytes,
    }
}

/// Pools the clients of one transport into its table row. Per-change figures are over the
/// whole run (handshakes included, as a user pays them).
fn row(
    transport: Transport,
    clients: &[Observed],
    made: &BTreeMap<u64, f64>,
    window: (f64, f64),
    (tick, rtt_ms): (f64, Option<u64>),
) -> Row {
    let measured: Vec<Measured> = clients.iter().map(|c| measure(c, made, window)).collect();
    let n = measured.len().max(1) as f64;
    let sum = |f: fn(&Measured) -> u64| measured.iter().map(f).sum::<u64>() as f64;
    let mut see: Vec<f64> = measured
        .iter()
        .flat_map(|m| m.see.iter().copied())
        .collect();
    let mut delay: Vec<f64> = measured
        .iter()
        .flat_map(|m| m.delay.iter().copied())
        .collect();
    let changes = sum(|m| m.changes_seen).max(1.0);
    let unit_header = clients.iter().map(|c| c.unit_header).sum::<f64>() / n;
    let unit_payload = clients.iter().map(|c| c.unit_payload).sum::<f64>() / n;
    let rtt = rtt_ms.unwrap_or(0) as f64;
    Row {
        rtt_ms,
        transport: transport.name(),
        interval_ms: transport.interval_ms(),
        clients: clients.len(),
        see: summary(&mut see),
        age_mean: measured.iter().map(|m| m.age_mean).sum::<f64>() / n,
        delay: summary(&mut delay),
        missed: 1.0 - sum(|m| m.seen_in_window) / sum(|m| m.made_in_window).max(1.0),
        changes_made: measured.first().map_or(0, |m| m.made_in_window),
        exchanges_per_change: sum(|m| m.exchanges) / changes,
        header_per_change: sum(|m| m.header_bytes) / changes,
        payload_per_change: sum(|m| m.payload_bytes) / changes,
        theory: transport.theory(tick, rtt, unit_header, unit_payload),
    }
}

fn table(rows: &[Row]) -> Table {
    let mut t = Table::new(&[
        "RTT ms",
        "transport",
        "see p50 ms",
        "see p90 ms",
        "see p99 ms",
        "see max ms",
        "shown age mean ms",
        "delay p50 ms",
        "delay p99 ms",
        "delay max ms",
        "missed",
        "req or msg / change",
        "header B / change",
        "payload B / change",
    ]);
    // "measured (theory)" in each cell.
    let pair = |m: f64, th: f64, d: usize| format!("{} ({})", num(m, d), num(th, d));
    let pct = |m: f64, th: f64| format!("{:.0}% ({:.0}%)", m * 100.0, th * 100.0);
    for r in rows {
        let th = &r.theory;
        t.rows.push(vec![
            r.rtt_ms.map_or("direct".into(), |ms| ms.to_string()),
            if r.clients > 1 {
                format!("{} (x{})", r.transport, r.clients)
            } else {
                r.transport.clone()
            },
            pair(r.see.p50, th.see[0], 1),
            pair(r.see.p90, th.see[1], 1),
            pair(r.see.p99, th.see[2], 1),
            pair(r.see.max, th.see[3], 1),
            pair(r.age_mean, th.age_mean, 1),
            pair(r.delay.p50, th.delay[0], 2),
            pair(r.delay.p99, th.delay[1], 2),
            pair(r.delay.max, th.delay[2], 2),
            pct(r.missed, th.missed),
            pair(r.exchanges_per_change, th.exchanges_per_change, 2),
            pair(r.header_per_change, th.header_per_change, 0),
            pair(r.payload_per_change, th.payload_per_change, 0),
        ]);
    }
    t
}

/// The same figures as flat CSV columns, measured and theory side by side.
fn csv(rows: &[Row]) -> String {
    let mut t = Table::new(&[
        "rtt_ms",
        "transport",
        "interval_ms",
        "see_p50",
        "see_p90",
        "see_p99",
        "see_max",
        "see_p50_theory",
        "see_p99_theory",
        "age_mean",
        "age_mean_theory",
        "delay_p50",
        "delay_p99",
        "delay_max",
        "delay_p50_theory",
        "missed",
        "missed_theory",
        "exchanges_per_change",
        "exchanges_per_change_theory",
        "header_bytes_per_change",
        "payload_bytes_per_change",
        "header_bytes_per_change_theory",
        "payload_bytes_per_change_theory",
        "changes_made",
    ]);
    for r in rows {
        let f = |v: f64| format!("{v:.3}");
        t.rows.push(vec![
            r.rtt_ms.map_or(String::new(), |ms| ms.to_string()),
            r.transport.clone(),
            r.interval_ms.map_or(String::new(), |i| i.to_string()),
            f(r.see.p50),
            f(r.see.p90),
            f(r.see.p99),
            f(r.see.max),
            f(r.theory.see[0]),
            f(r.theory.see[2]),
            f(r.age_mean),
            f(r.theory.age_mean),
            f(r.delay.p50),
            f(r.delay.p99),
            f(r.delay.max),
            f(r.theory.delay[0]),
            f(r.missed),
            f(r.theory.missed),
            f(r.exchanges_per_change),
            f(r.theory.exchanges_per_change),
            f(r.header_per_change),
            f(r.payload_per_change),
            f(r.theory.header_per_change),
            f(r.theory.payload_per_change),
            r.changes_made.to_string(),
        ]);
    }
    t.csv()
}

fn main() {
    let settings = Settings::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime for the clients");
    runtime.block_on(run(settings));
}

/// What the command line (or the environment) asked for: what each run measures, and the
/// round trips to run it at. `cargo bench --bench latency -- --help` prints it.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "latency",
    bin_name = "cargo bench --bench latency --",
    about = "How much fresher and cheaper is push than polling? One client per transport \
             (WebSocket, SSE, long polling, polling at several intervals) against the same feed."
)]
struct Settings {
    /// Seconds measured in each run.
    #[arg(long, env = "BENCH_SECS", default_value_t = 30.0)]
    secs: f64,
    /// Milliseconds between two ticks of the feed.
    #[arg(long, env = "BENCH_TICK_MS", default_value_t = 50)]
    tick_ms: u64,
    /// Polling periods in milliseconds, comma-separated: one row of polling clients each.
    #[arg(long, env = "BENCH_INTERVALS", value_delimiter = ',', default_values_t = [50, 100, 250, 500, 1000])]
    intervals: Vec<u64>,
    /// Polling clients per period, started at random phases and pooled into one row.
    #[arg(long, env = "BENCH_POLLERS", default_value_t = 8)]
    pollers: usize,
    /// Round trips in milliseconds, comma-separated: one run per value, every client going
    /// through the app's simulated network (its --lab-rtt-ms). Without it, one run with the
    /// clients connected directly over loopback.
    #[arg(long, env = "BENCH_RTT_MS", value_delimiter = ',')]
    rtt_ms: Vec<u64>,
    #[command(flatten)]
    cargo: CargoArgs,
}

impl Settings {
    /// One entry per run: a round trip, or `None` for the direct run.
    fn rtts(&self) -> Vec<Option<u64>> {
        if self.rtt_ms.is_empty() {
            vec![None]
        } else {
            self.rtt_ms.iter().copied().map(Some).collect()
        }
    }
}

/// One run per round trip, one after the other (so they do not compete for the cores),
/// each against a fresh server with the same seed; then one table, CSV, JSON and plot.
async fn run(settings: Settings) {
    let machine = output::machine();
    let rtts = settings.rtts();
    let Settings {
        secs,
        tick_ms,
        ref intervals,
        pollers,
        ..
    } = settings;
    let mut rows = Vec::new();
    let mut feed_ticks = Vec::new();
    for &rtt_ms in &rtts {
        let (run_rows, ticks) = run_once(&settings, rtt_ms, &machine).await;
        rows.extend(run_rows);
        feed_ticks.push(ticks);
    }
    let join = |list: &[u64]| {
        list.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let rtt_list: Vec<u64> = rtts.iter().flatten().copied().collect();
    let mut command = format!(
        "cargo bench --bench latency -- --secs {secs} --tick-ms {tick_ms} --pollers {pollers} --intervals {}",
        join(intervals)
    );
    if !rtt_list.is_empty() {
        command.push_str(&format!(" --rtt-ms {}", join(&rtt_list)));
    }
    let network = if rtt_list.is_empty() {
        "direct (loopback)".to_string()
    } else {
        format!(
            "through the simulated network at RTT {} ms",
            join(&rtt_list)
        )
    };
    println!("\n## Latency: push vs polling, tick {tick_ms} ms, {secs} s measured, {network}\n");
    println!("Machine: {machine}. Command: `{command}`. Feed ticks per run: {feed_ticks:?}.");
    println!("Each cell: measured (theory).\n");
    print!("{}", table(&rows).markdown());
    output::write("latency.csv", &csv(&rows));
    let json = serde_json::json!({
        "bench": "latency",
        "command": command,
        "machine": machine,
        "tick_ms": tick_ms,
        "secs": secs,
        "rtt_ms": rtt_list,
        "rows": rows,
    });
    output::write(
        "latency.json",
        &serde_json::to_string_pretty(&json).unwrap_or_default(),
    );
    // The polling-interval plot is drawn for the first run (loopback, or the first RTT).
    let first_rtt = rtts.first().copied().flatten();
    let first: Vec<Row> = rows
        .iter()
        .filter(|r| r.rtt_ms == first_rtt)
        .cloned()
        .collect();
    let svg = output::out_dir().join("latency.svg");
    match plot::latency(&svg, &first, tick_ms as f64) {
        Ok(()) => eprintln!("wrote {}", svg.display()),
        Err(e) => eprintln!("cannot draw {}: {e}", svg.display()),
    }
    let headers = tls_header_bytes(tick_ms).await;
    if !headers.is_empty() {
        output::write(
            "latency-tls-headers.json",
            &serde_json::to_string_pretty(&headers).unwrap_or_default(),
        );
    }
    if rtt_list.len() > 1 {
        let svg = output::out_dir().join("latency-rtt.svg");
        match plot::by_rtt(&svg, &rows, tick_ms as f64) {
            Ok(()) => eprintln!("wrote {}", svg.display()),
            Err(e) => eprintln!("cannot draw {}: {e}", svg.display()),
        }
    }
}

/// Header bytes per poll and per long poll over TLS, HTTP/1.1 against HTTP/2, on a server of
/// its own (self-signed TLS); printed as a table. Empty when it could not be measured.
async fn tls_header_bytes(tick_ms: u64) -> Vec<tls_headers::Figures> {
    let server = InProcess::start(Config {
        port: 0,
        tick_ms,
        seed: Some(1),
        tls_self_signed: true,
        ..Config::default()
    });
    let symbol = server.feed.symbols()[0].clone();
    let figures = match &server.tls_root {
        Some(root) => tls_headers::measure(server.addr, root, &symbol, 50).await,
        None => Err(anyhow::anyhow!("the server did not start TLS")),
    };
    server.stop().await;
    let figures = match figures {
        Ok(figures) => figures,
        Err(e) => {
            eprintln!("cannot measure header bytes over TLS: {e}");
            return Vec::new();
        }
    };
    let mut t = Table::new(&[
        "request",
        "protocol",
        "header B, 1st request",
        "header B / request after",
        "payload B / request",
        "on the wire B / request (TLS included)",
    ]);
    for f in &figures {
        t.rows.push(vec![
            f.request.to_string(),
            f.protocol.to_string(),
            num(f.first_header_bytes, 0),
            num(f.header_bytes, 1),
            num(f.payload_bytes, 1),
            num(f.wire_bytes, 1),
        ]);
    }
    println!("\n### Header bytes over TLS: HTTP/1.1 vs HTTP/2 (50 requests on one connection)\n");
    print!("{}", t.markdown());
    figures
}

/// One run: a fresh server (with the simulated network at `rtt_ms` when given), every
/// transport's clients at once, the rows, and how many ticks the feed made.
async fn run_once(settings: &Settings, rtt_ms: Option<u64>, machine: &str) -> (Vec<Row>, u64) {
    let Settings {
        secs,
        tick_ms,
        ref intervals,
        pollers,
        ..
    } = *settings;
    let config = Config {
        port: 0,
        tick_ms,
        seed: Some(1),
        lab_rtt_ms: rtt_ms,
        ..Config::default()
    };
    let server = InProcess::start(config);
    // Through the relay when there is one: the same path a browser tab on the lab port takes.
    let addr = server.lab_addr.unwrap_or(server.addr);
    let symbol = server.feed.symbols()[0].clone();
    let mut transports = vec![Transport::WebSocket, Transport::Sse, Transport::LongPoll];
    transports.extend(
        intervals
            .iter()
            .map(|&interval_ms| Transport::Polling { interval_ms }),
    );
    // Warm-up and grace cover the longest polling interval and a few round trips (the
    // handshakes), so every client has shown a price before the window opens and has had
    // its chance to see every tick made in it.
    let longest = intervals.iter().copied().max().unwrap_or(0) as f64;
    let margin = longest + 500.0 + 3.0 * rtt_ms.unwrap_or(0) as f64;
    let start = now_ms();
    let window = (start + margin, start + margin + secs * 1000.0);
    let stop_at = Instant::now() + Duration::from_secs_f64((2.0 * margin + secs * 1000.0) / 1000.0);
    eprintln!(
        "latency bench: tick {tick_ms} ms, RTT {}, {} transports, {secs} s measured ({:.1} s in all), {machine}",
        rtt_ms.map_or("direct".into(), |ms| format!("{ms} ms")),
        transports.len(),
        (2.0 * margin + secs * 1000.0) / 1000.0
    );

    // Every tick the server makes, straight from the feed: the truth the clients are judged
    // against. (A watch channel could skip a value if this task stalled for a whole tick;
    // the clients' own receipts fill any such hole below.)
    let mut feed_rx = server.feed.subscribe();
    let recorder = tokio::spawn(async move {
        let mut made = BTreeMap::new();
        loop {
            {
                let snapshot = feed_rx.borrow_and_update();
                let tick = &snapshot.ticks[0].tick;
                made.insert(tick.seq, tick.ts);
            }
            tokio::select! {
                changed = feed_rx.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep_until(stop_at) => break,
            }
        }
        made
    });
    // One client per push transport and one long poller (every such client sees the same
    // thing), and `pollers` clients per
    // polling interval: each starts at a random phase against the ticks, because a single
    // poller whose interval divides the tick's keeps one fixed phase for the whole run and
    // would measure that phase, not polling.
    let clients: Vec<Vec<_>> = transports
        .iter()
        .map(|&t| {
            let count = if t.interval_ms().is_some() {
                pollers
            } else {
                1
            };
            (0..count)
                .map(|_| tokio::spawn(t.run(addr, symbol.clone(), stop_at)))
                .collect()
        })
        .collect();
    let mut observed: Vec<Vec<Observed>> = Vec::new();
    for row in clients {
        let mut seen = Vec::new();
        for client in row {
            seen.push(client.await.expect("client task"));
        }
        observed.push(seen);
    }
    let mut made = recorder.await.expect("recorder task");
    for seen in observed.iter().flatten() {
        for r in &seen.receipts {
            made.entry(r.seq).or_insert(r.ts);
        }
    }
    let feed_ticks = server.feed.ticks();
    server.stop().await;

    let rows = transports
        .iter()
        .zip(&observed)
        .map(|(&t, seen)| row(t, seen, &made, window, (tick_ms as f64, rtt_ms)))
        .collect();
    (rows, feed_ticks)
}

/// The SVG: time to see a change and age of the shown price against the polling interval,
/// measured and theory, with the figures of the transports that have no interval (WebSocket,
/// SSE, long polling) as flat lines of their own.
mod plot {
    use crate::support::plot::{legend, line_with_points};
    use std::path::Path;

    use plotters::prelude::*;

    use super::Row;

    const TEAL: RGBColor = RGBColor(0, 130, 160);

    /// A series: its legend, the figure of a row it plots, its colour.
    type Line = (&'static str, fn(&Row) -> f64, RGBColor);

    pub fn latency(path: &Path, rows: &[Row], tick: f64) -> Result<(), Box<dyn std::error::Error>> {
        let polls: Vec<&Row> = rows.iter().filter(|r| r.interval_ms.is_some()).collect();
        let push: Vec<&Row> = rows.iter().filter(|r| r.interval_ms.is_none()).collect();
        let x = |r: &Row| r.interval_ms.unwrap_or(0) as f64;
        let x_max = polls.iter().map(|r| x(r)).fold(100.0, f64::max) * 1.05;
        let y_max = rows
            .iter()
            .flat_map(|r| [r.see.p99, r.age_mean, r.theory.age_mean, r.theory.see[2]])
            .filter(|v| v.is_finite())
            .fold(10.0, f64::max)
            * 1.1;

        let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("tickerlab: polling vs long polling, SSE and WebSocket (tick {tick} ms)"),
                ("sans-serif", 22),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("polling interval (ms)")
            .y_desc("milliseconds")
            .draw()?;

        let series = |f: fn(&Row) -> f64| -> Vec<(f64, f64)> {
            polls.iter().map(|r| (x(r), f(r))).collect()
        };
        let measured: [Line; 3] = [
            ("polling: time to see a change, p50", |r| r.see.p50, BLUE),
            ("polling: time to see a change, p99", |r| r.see.p99, TEAL),
            ("polling: age of the shown price, mean", |r| r.age_mean, RED),
        ];
        for (label, f, color) in measured {
            line_with_points(&mut chart, series(f), color, label)?;
        }
        let theory: [Line; 3] = [
            ("theory (dashed): T/2", |r| r.theory.see[0], BLUE),
            ("theory (dashed): 0.99 T", |r| r.theory.see[2], TEAL),
            ("theory (dashed): tick/2 + T/2", |r| r.theory.age_mean, RED),
        ];
        for (label, f, color) in theory {
            chart
                .draw_series(DashedLineSeries::new(series(f), 6, 4, color.into()))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        // One style per flat transport, so lines that lie on top of each other (they should:
        // all three are about as fresh) stay tellable apart: solid, dashed, dotted.
        let flat_colors: [(RGBColor, RGBColor); 3] = [
            (GREEN, MAGENTA),
            (RGBColor(230, 140, 0), RGBColor(120, 60, 180)),
            (RGBColor(120, 80, 40), BLACK),
        ];
        for (i, r) in push.iter().enumerate() {
            let (see_color, age_color) = flat_colors[i % flat_colors.len()];
            let name = r.transport.trim_end_matches(" (push)");
            let style = ["solid", "dashed", "dotted"][i % 3];
            let flat: [(String, f64, RGBColor); 2] = [
                (
                    format!("{name} ({style}): time to see a change, p99"),
                    r.see.p99,
                    see_color,
                ),
                (
                    format!("{name} ({style}): age of the shown price, mean"),
                    r.age_mean,
                    age_color,
                ),
            ];
            for (label, y, color) in flat {
                let points = vec![(0.0, y), (x_max, y)];
                let legend =
                    move |(x, y): (i32, i32)| PathElement::new(vec![(x, y), (x + 20, y)], color);
                match i % 3 {
                    0 => chart
                        .draw_series(LineSeries::new(points, color.stroke_width(3)))?
                        .label(label)
                        .legend(legend),
                    1 => chart
                        .draw_series(DashedLineSeries::new(points, 12, 6, color.stroke_width(3)))?
                        .label(label)
                        .legend(legend),
                    _ => chart
                        .draw_series(DashedLineSeries::new(points, 3, 5, color.stroke_width(3)))?
                        .label(label)
                        .legend(legend),
                };
            }
        }
        legend(&mut chart)?;
        root.present()?;
        Ok(())
    }

    /// One panel of the round-trip plot.
    type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
    /// A row's figure for a panel: (measured, theory).
    type Figure = fn(&Row) -> (f64, f64);

    /// `latency-rtt.svg`: against the round trip, two panels: time to see a change (p50) and
    /// the share of changes missed, measured (solid, dots) and theory (dashed), for the push
    /// transports, long polling and polling at its shortest interval. Long polling leaving
    /// push's line for polling's, once the round trip passes the tick, is the point.
    pub fn by_rtt(path: &Path, rows: &[Row], tick: f64) -> Result<(), Box<dyn std::error::Error>> {
        let shortest = rows.iter().filter_map(|r| r.interval_ms).min();
        let names: Vec<String> = {
            let mut names: Vec<String> = Vec::new();
            for r in rows {
                let wanted = r.interval_ms.is_none() || r.interval_ms == shortest;
                if wanted && !names.contains(&r.transport) {
                    names.push(r.transport.clone());
                }
            }
            names
        };
        let colors = [
            RGBColor(0, 150, 0),
            RGBColor(120, 60, 180),
            RGBColor(230, 140, 0),
            BLUE,
        ];
        let x = |r: &Row| r.rtt_ms.unwrap_or(0) as f64;
        let x_max = rows.iter().map(x).fold(10.0, f64::max) * 1.05;
        let root = SVGBackend::new(path, (1200, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(
            &format!("tickerlab: the same transports over a round trip (tick {tick} ms)"),
            ("sans-serif", 22),
        )?;
        let (left, right) = root.split_horizontally(600);
        let panels: [(&Area, &str, Figure); 2] = [
            (&left, "time to see a change, p50 (ms)", |r| {
                (r.see.p50, r.theory.see[0])
            }),
            (&right, "changes missed (%)", |r| {
                (r.missed * 100.0, r.theory.missed * 100.0)
            }),
        ];
        for (area, y_desc, figure) in panels {
            let y_max = rows
                .iter()
                .filter(|r| names.contains(&r.transport))
                .flat_map(|r| {
                    let (m, t) = figure(r);
                    [m, t]
                })
                .filter(|v| v.is_finite())
                .fold(10.0, f64::max)
                * 1.15;
            let mut chart = ChartBuilder::on(area)
                .margin(20)
                .x_label_area_size(45)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
            chart
                .configure_mesh()
                .x_desc("round trip, RTT (ms)")
                .y_desc(y_desc)
                .draw()?;
            for (i, name) in names.iter().enumerate() {
                let color = colors[i % colors.len()];
                let points: Vec<(f64, (f64, f64))> = rows
                    .iter()
                    .filter(|r| &r.transport == name)
                    .map(|r| (x(r), figure(r)))
                    .collect();
                let measured: Vec<(f64, f64)> = points.iter().map(|&(x, (m, _))| (x, m)).collect();
                let theory: Vec<(f64, f64)> = points.iter().map(|&(x, (_, t))| (x, t)).collect();
                line_with_points(
                    &mut chart,
                    measured,
                    color,
                    format!("{name} (dashed: theory)"),
                )?;
                chart.draw_series(DashedLineSeries::new(theory, 6, 4, color.into()))?;
            }
            legend(&mut chart)?;
        }
        root.present()?;
        Ok(())
    }
}

/// Header bytes per poll over TLS, HTTP/1.1 against HTTP/2: the same `GET` again and again on
/// one connection, with each protocol's bytes counted *inside* TLS (what the protocol sends:
/// head or HEADERS frame, DATA frame headers, SETTINGS, WINDOW_UPDATE...) and on the wire
/// (TLS records included). HTTP/2's HPACK keeps a table of the headers already sent on the
/// connection, so from the second request on, a repeated header costs a byte or two.
mod tls_headers {
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::task::{Context, Poll};

    use serde::Serialize;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
    use tokio::net::TcpStream;
    use tokio_rustls::TlsConnector;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

    /// Byte counters shared with a stream that has been moved into a connection task.
    #[derive(Clone, Default)]
    struct Counters {
        read: Arc<AtomicU64>,
        written: Arc<AtomicU64>,
    }

    impl Counters {
        fn total(&self) -> u64 {
            self.read.load(Ordering::Relaxed) + self.written.load(Ordering::Relaxed)
        }
    }

    /// A stream that counts what crosses it into [`Counters`].
    struct Tap<S> {
        inner: S,
        counters: Counters,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let before = buf.filled().len();
            let result = Pin::new(&mut self.inner).poll_read(cx, buf);
            let n = (buf.filled().len() - before) as u64;
            self.counters.read.fetch_add(n, Ordering::Relaxed);
            result
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let result = Pin::new(&mut self.inner).poll_write(cx, data);
            if let Poll::Ready(Ok(n)) = &result {
                self.counters
                    .written
                    .fetch_add(*n as u64, Ordering::Relaxed);
            }
            result
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// The figures of one protocol and one kind of request, per request.
    #[derive(Debug, Clone, Serialize)]
    pub struct Figures {
        pub protocol: &'static str,
        pub request: &'static str,
        /// Requests measured (after the first, which also pays the connection's set-up).
        pub requests: u64,
        /// The first request: everything inside TLS except the body (the connection's
        /// preface and SETTINGS included for HTTP/2).
        pub first_header_bytes: f64,
        /// Later requests, mean: everything inside TLS except the body.
        pub header_bytes: f64,
        /// Later requests, mean: the body.
        pub payload_bytes: f64,
        /// Later requests, mean: every byte on the TCP connection (TLS records included).
        pub wire_bytes: f64,
    }

    type Tls = Tap<tokio_rustls::client::TlsStream<Tap<TcpStream>>>;

    /// A TLS connection to `addr` offering only `alpn`, with counters inside and outside TLS.
    async fn connect(
        addr: SocketAddr,
        root: &CertificateDer<'static>,
        alpn: &[u8],
    ) -> anyhow::Result<(Tls, Counters, Counters)> {
        let mut roots = RootCertStore::empty();
        roots.add(root.clone())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let wire = Counters::default();
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let tcp = Tap {
            inner: tcp,
            counters: wire.clone(),
        };
        let tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        anyhow::ensure!(
            tls.get_ref().1.alpn_protocol() == Some(alpn),
            "the server did not choose {}",
            String::from_utf8_lossy(alpn)
        );
        let inside = Counters::default();
        let tls = Tap {
            inner: tls,
            counters: inside.clone(),
        };
        Ok((tls, inside, wire))
    }

    /// Sums per request: inside TLS minus the body, the body, on the wire.
    #[derive(Default)]
    struct Sums {
        first: Option<f64>,
        n: u64,
        header: f64,
        payload: f64,
        wire: f64,
    }

    impl Sums {
        fn add(&mut self, inside: u64, body: usize, wire: u64) {
            let header = inside as f64 - body as f64;
            if self.first.is_none() {
                self.first = Some(header);
                return;
            }
            self.n += 1;
            self.header += header;
            self.payload += body as f64;
            self.wire += wire as f64;
        }

        fn figures(&self, protocol: &'static str, request: &'static str) -> Figures {
            let n = self.n.max(1) as f64;
            Figures {
                protocol,
                request,
                requests: self.n,
                first_header_bytes: self.first.unwrap_or(0.0),
                header_bytes: self.header / n,
                payload_bytes: self.payload / n,
                wire_bytes: self.wire / n,
            }
        }
    }

    /// `polls` + 1 polls of `/price` and as many long polls of `/price/next`, over HTTP/1.1
    /// and over HTTP/2, each on one TLS connection.
    pub async fn measure(
        addr: SocketAddr,
        root: &CertificateDer<'static>,
        symbol: &str,
        polls: u64,
    ) -> anyhow::Result<Vec<Figures>> {
        let mut figures = Vec::new();
        for long in [false, true] {
            let request = if long { "long poll" } else { "poll" };
            let h1 = http1(addr, root, symbol, polls, long).await?;
            figures.push(h1.figures("HTTP/1.1", request));
            let h2 = http2(addr, root, symbol, polls, long).await?;
            figures.push(h2.figures("HTTP/2", request));
        }
        Ok(figures)
    }

    fn path(symbol: &str, long: bool, after: u64) -> String {
        if long {
            format!("/price/next?symbol={symbol}&after={after}")
        } else {
            format!("/price?symbol={symbol}")
        }
    }

    /// The seq of a tick's JSON, for the next long poll's `after`.
    fn seq_of(body: &[u8]) -> u64 {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["seq"].as_u64())
            .unwrap_or(0)
    }

    /// Reads from `tls` into `buf` until `done(buf)` says where the wanted part ends.
    async fn read_until(
        tls: &mut Tls,
        buf: &mut Vec<u8>,
        done: impl Fn(&[u8]) -> Option<usize>,
    ) -> anyhow::Result<usize> {
        loop {
            if let Some(end) = done(buf) {
                return Ok(end);
            }
            let mut chunk = [0u8; 4096];
            let n = tls.read(&mut chunk).await?;
            anyhow::ensure!(n > 0, "the server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn http1(
        addr: SocketAddr,
        root: &CertificateDer<'static>,
        symbol: &str,
        polls: u64,
        long: bool,
    ) -> anyhow::Result<Sums> {
        let (mut tls, inside, wire) = connect(addr, root, b"http/1.1").await?;
        let mut sums = Sums::default();
        let mut after = 0;
        let mut buf = Vec::new();
        for _ in 0..=polls {
            let (inside0, wire0) = (inside.total(), wire.total());
            // The same request the plain-TCP bench clients send.
            let request = format!(
                "GET {} HTTP/1.1\r\nHost: localhost:{}\r\nAccept: application/json\r\n\r\n",
                path(symbol, long, after),
                addr.port()
            );
            tls.write_all(request.as_bytes()).await?;
            buf.clear();
            let head_end = read_until(&mut tls, &mut buf, |b| {
                b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
            })
            .await?;
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let end = head_end + length;
            read_until(&mut tls, &mut buf, |b| (b.len() >= end).then_some(end)).await?;
            let body = &buf[head_end..end];
            after = seq_of(body);
            sums.add(inside.total() - inside0, body.len(), wire.total() - wire0);
        }
        Ok(sums)
    }

    async fn http2(
        addr: SocketAddr,
        root: &CertificateDer<'static>,
        symbol: &str,
        polls: u64,
        long: bool,
    ) -> anyhow::Result<Sums> {
        let (tls, inside, wire) = connect(addr, root, b"h2").await?;
        let (client, connection) = h2::client::handshake(tls).await?;
        tokio::spawn(connection);
        let mut client = client.ready().await?;
        let mut sums = Sums::default();
        let mut after = 0;
        for _ in 0..=polls {
            let (inside0, wire0) = (inside.total(), wire.total());
            let url = format!(
                "https://localhost:{}{}",
                addr.port(),
                path(symbol, long, after)
            );
            let request = http02::Request::get(url)
                .header("accept", "application/json")
                .body(())?;
            let (response, _) = client.send_request(request, true)?;
            let response = response.await?;
            anyhow::ensure!(response.status() == 200, "answered {}", response.status());
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk?;
                let _ = body.flow_control().release_capacity(chunk.len());
                bytes.extend_from_slice(&chunk);
            }
            // Any WINDOW_UPDATE the release triggers belongs to this request: give the
            // connection task a moment to write it.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            after = seq_of(&bytes);
            sums.add(inside.total() - inside0, bytes.len(), wire.total() - wire0);
            client = client.ready().await?;
        }
        Ok(sums)
    }
}
