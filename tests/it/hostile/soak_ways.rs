//! The hostile soak for every way in besides HTTP/1.1 on the main port, run on demand against
//! the release binary:
//! `cargo build --release && cargo test --release --test it hostile::soak_ways -- --ignored --nocapture`
//! (`HOSTILE_SOAK_SECS=20` for a shorter run).
//!
//! A front-end serving `https://` (where browsers speak HTTP/2) follows a publisher through a
//! real `redis-server`, with the simulated network's port open, under `ulimit -n 512`. Every
//! [`ROUND`] a new batch of each hostile client of issue 24 arrives, and none lets go of
//! anything before the soak ends:
//!
//! * H1 (its item 1, and R3 over HTTP/2): connections that grant no flow-control window and
//!   open 5000 `GET /` streams, never reading;
//! * H2 (item 2, and R4 over HTTP/2): event streams on a connection that grants no window;
//! * H3 (item 3): long polls held on HTTP/2 streams, then the connection closed;
//! * H4 (item 4): header blocks that never end;
//! * H5 (item 5): a flood of PRIORITY frames;
//! * T (item 8): silent TCP connections to the TLS port from another address, 127.0.0.2;
//! * L (item 7): silent TCP connections to the simulated network's port;
//! * F (item 9): forged ticks published on the feed's Redis channel: `seq` 2^64-1, a run
//!   from the future, 64 KiB payloads.
//!
//! R1 and R2 have no HTTP/2 form: the server speaks WebSocket over HTTP/1.1 only (actix has
//! no RFC 8441), so `wss://` clients negotiate HTTP/1.1. Item 6 is played by healthy clients:
//! HTTP/2 event streams whose `Origin` names the `:authority` they were sent to.
//!
//! Meanwhile healthy clients read every tick: WebSockets straight to the server and through
//! the simulated network, and those HTTP/2 event streams; `/healthz` and `/metrics` are asked
//! every [`POLL`] on a new HTTP/2 connection. What must hold, checked on what the clients saw,
//! on `/metrics` and on what the kernel reports for the server process:
//!
//! * every healthy client reads every `seq` of the publisher's run and nothing larger than
//!   [`MAX_MESSAGE`], and is never cut off; every `/healthz` answers `200`;
//! * the server's file descriptors and resident memory stay under [`Bounds`], and the
//!   connections it holds at the end of a round do not grow from round to round;
//! * places come back: the windowless event streams, the abandoned long polls and the silent
//!   lab connections of one round are gone before the next round's arrive (each gauge peaks at
//!   one round's worth plus the healthy clients', and every round's event streams and long
//!   polls all find a place: the client timeout plus 5 s at most for a windowless stream, at
//!   once for an abandoned poll);
//! * every forged tick is refused and counted, in `/metrics` and `/healthz`;
//! * once the clients leave, the server holds no connection but its own to Redis.

use super::h2::{
    TlsStream, get, h2_client, h2_connection, never_ending_header_block, priority_frames,
    zero_window_streams,
};
use super::soak::{
    CLIENT_TIMEOUT_SECS, FD_SLACK, Healthy, MAX_CONNECTIONS, MAX_MESSAGE, OPEN_FILE_LIMIT,
    PER_CONNECTION_KIB, POLL, ROUND, SYMBOLS, TICK_MS, read_every_tick, settle, soak_duration,
};
use crate::common;
use common::process::{ServerProcess, connections, fds, open_file_limit, rss_kib};
use common::redis_server::RedisServer;
use common::{CertificateFiles, WAIT};
use futures_util::FutureExt;
use std::any::Any;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// `--long-poll-secs`: longer than the soak's rounds, so that only the client's leaving can
/// free an abandoned long poll's place within one.
const LONG_POLL_SECS: u64 = 60;
/// `--lab-rtt-ms`: a short round trip, so the lab's healthy clients keep up.
const LAB_RTT_MS: u64 = 10;

/// Hostile clients of one kind in one round, where a kind asks for places (H2, H3, L): with
/// the healthy clients' 12 places, one round's H2 and L fit in `--max-connections` only if
/// the previous round's places came back, and H3's polls only if they came back at once.
const PER_KIND: usize = 20;
/// Silent connections from 127.0.0.2 in one round.
const SILENT_TLS: usize = 50;
/// Healthy WebSockets straight to the server, through the lab, and HTTP/2 event streams.
const HEALTHY_WS: usize = 6;
const HEALTHY_LAB: usize = 2;
const HEALTHY_SSE: usize = 2;
/// A forged payload's size: past the 1 KiB a front-end accepts, small enough that Redis
/// never holds megabytes for the front-end's subscription.
const FORGED_PAYLOAD: usize = 64 * 1024;
/// An `after` no run reaches in a minute: the long poll is held until its client leaves.
const FAR_AHEAD: u64 = 1_000_000_000;

const LONG_POLLS: &str = "tickerlab_open_connections{transport=\"longpoll\"}";
const EVENT_STREAMS: &str = "tickerlab_open_connections{transport=\"sse\"}";
const LAB: &str = "tickerlab_open_connections{transport=\"lab\"}";
const WEBSOCKETS: &str = "tickerlab_open_connections{transport=\"websocket\"}";

/// What the server may hold at any moment: its idle state plus what its limits let the
/// clients take.
struct Bounds {
    fds: usize,
    rss_kib: u64,
}

/// Connections a round opens that hold no place: two H1, one H2 (its streams hold the
/// places), two H4, one H5, and the sampler's. Each is given up within a round (its
/// streams reset after the client timeout, then the idle connection closed); a round's
/// and the previous round's can be open at once.
const PLACELESS_PER_ROUND: usize = 7;
/// What an HTTP/2 connection may cost beyond [`PER_CONNECTION_KIB`], the HTTP/1.1 soak's
/// per-connection allowance: its 128 KiB header list, a 256 KiB read burst, 100 streams'
/// state.
const PER_H2_CONNECTION_KIB: u64 = 1024;

impl Bounds {
    /// A place is at most three descriptors (a lab connection: the client's socket, the
    /// relay's to the app, the app's end of it); the silent TLS connections are at most
    /// [`HANDSHAKES_PER_ADDRESS`](tickerlab::http::server::HANDSHAKES_PER_ADDRESS) at once.
    fn from_idle(fds_idle: usize, rss_idle_kib: u64) -> Bounds {
        use tickerlab::http::server::HANDSHAKES_PER_ADDRESS;
        let placeless = 2 * PLACELESS_PER_ROUND;
        let connections = 3 * MAX_CONNECTIONS as usize + placeless + HANDSHAKES_PER_ADDRESS;
        Bounds {
            fds: fds_idle + connections + FD_SLACK,
            rss_kib: rss_idle_kib
                + connections as u64 * PER_CONNECTION_KIB
                + placeless as u64 * PER_H2_CONNECTION_KIB,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 60 s soak against the release binary; run with --release --ignored"]
async fn every_other_way_in_together_for_a_minute_costs_the_healthy_clients_nothing() {
    if cfg!(debug_assertions) {
        panic!("the hostile soak measures the release binary: cargo test --release --test it");
    }
    let soak = soak_duration();
    let redis = RedisServer::start().expect("redis-server (this soak needs it)");
    let url = redis.url();
    let tick_ms = TICK_MS.to_string();
    let publisher =
        ServerProcess::start(&["--redis", &url, "--feed-publisher", "--tick-ms", &tick_ms]).await;
    let files = CertificateFiles::new();
    let flags = [
        ("--max-connections", MAX_CONNECTIONS),
        ("--client-timeout-secs", CLIENT_TIMEOUT_SECS),
        ("--heartbeat-secs", CLIENT_TIMEOUT_SECS / 2),
        ("--long-poll-secs", LONG_POLL_SECS),
        ("--tick-ms", TICK_MS),
        ("--lab-rtt-ms", LAB_RTT_MS),
        ("--lab-port", 0),
    ]
    .map(|(flag, value)| [flag.to_owned(), value.to_string()]);
    let mut args: Vec<&str> = files.args().to_vec();
    args.extend(["--redis", &url]);
    args.extend(flags.iter().flatten().map(String::as_str));
    let mut server = ServerProcess::start_with_open_file_limit(OPEN_FILE_LIMIT, &args).await;
    let lab = lab_addr(&server.next_line().await);
    let pid = server.pid();
    assert_eq!(open_file_limit(pid), OPEN_FILE_LIMIT, "ulimit -n applied");
    let root = files.root.clone();
    let run = following_run(&server, &root).await;

    let (fds_idle, rss_idle, connections_idle) = (fds(pid), rss_kib(pid), connections(pid));
    let bounds = Bounds::from_idle(fds_idle, rss_idle);
    let cpu_idle = server.cpu_time();

    let start = Instant::now();
    let end = start + soak;
    let mut healthy = Vec::new();
    for _ in 0..HEALTHY_WS {
        let ws = wss(server.addr, server.addr.port(), &root).await;
        healthy.push(("direct WebSocket", tokio::spawn(read_every_tick(ws, end))));
    }
    for _ in 0..HEALTHY_LAB {
        let ws = wss(lab, lab.port(), &root).await;
        healthy.push(("lab WebSocket", tokio::spawn(read_every_tick(ws, end))));
    }
    for _ in 0..HEALTHY_SSE {
        let stream = same_origin_events(&server, &root).await;
        healthy.push((
            "HTTP/2 event stream",
            tokio::spawn(read_events(stream, end)),
        ));
    }
    let samples = tokio::spawn(sample(server.addr, root.clone(), pid, start, end));

    let mut forger = redis
        .connection()
        .expect("a Redis connection to forge with");
    let mut batches = Vec::new();
    let mut held: Vec<Box<dyn Any + Send>> = Vec::new();
    while Instant::now() < end {
        let round_start = Instant::now();
        let (batch, holds) = hostile_round(&server, &root, lab, &mut forger, &run).await;
        batches.push(batch);
        held.extend(holds);
        tokio::time::sleep_until((round_start + ROUND).min(end).into()).await;
    }

    let mut healthy_seen = Vec::new();
    for (who, reader) in healthy {
        healthy_seen.push((who, reader.await.expect("a healthy reader")));
    }
    let samples = samples.await.expect("the sampler");
    let cpu = server.cpu_time() - cpu_idle;
    drop(held);
    let forged: usize = batches.iter().map(|b| b.forged).sum();
    let refused = common::wait_for("every forged tick to be counted", || async {
        let text = get_text(server.addr, &root, "/metrics").await?;
        let refused = rejected_in_all(&text);
        (refused >= forged as u64).then_some(refused)
    })
    .await;
    let health: serde_json::Value = serde_json::from_str(
        &get_text(server.addr, &root, "/healthz")
            .await
            .expect("healthz"),
    )
    .expect("JSON");
    let settled = settle(pid, connections_idle).await;

    let summary = Summary {
        soak,
        bounds,
        fds_idle,
        rss_idle,
        batches,
        samples,
        healthy: healthy_seen,
        cpu,
        forged,
        refused,
        health_rejected: health["feed"]["rejected"].as_u64(),
        settled,
        fds_after: fds(pid),
    };
    eprintln!("{summary}");
    summary.assert_held();
    drop(publisher);
}

/// The simulated network's address, from the line the server prints for it.
fn lab_addr(line: &str) -> SocketAddr {
    line.rsplit_once("://")
        .and_then(|(_, addr)| addr.parse().ok())
        .unwrap_or_else(|| panic!("the simulated network's address in {line:?}"))
}

/// The run the front-end follows, once it follows the publisher.
async fn following_run(server: &ServerProcess, root: &CertificateDer<'static>) -> String {
    common::wait_for("the front-end to follow the publisher", || async {
        let text = get_text(server.addr, root, "/healthz").await?;
        let health: serde_json::Value = serde_json::from_str(&text).ok()?;
        let feed = &health["feed"];
        (feed["source"] == "redis" && feed["stale"] == false)
            .then(|| feed["run"].as_str().map(str::to_owned))
            .flatten()
    })
    .await
}

/// `GET path` over a new HTTP/2 connection: the body, if the answer is a `200`.
async fn get_text(addr: SocketAddr, root: &CertificateDer<'static>, path: &str) -> Option<String> {
    let (mut client, _driving) = h2_client(addr, root.clone(), None).await;
    let response = tokio::time::timeout(WAIT, get(&mut client, addr, path))
        .await
        .ok()?
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = tokio::time::timeout(WAIT, body.data()).await.ok()? {
        let chunk = chunk.ok()?;
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text).ok()
}

// ---- the hostile clients ---------------------------------------------------------------------

/// What one round's hostile clients got.
#[derive(Debug, Default)]
struct Batch {
    /// H1: `GET /` streams sent, over the round's two connections.
    h1_streams: usize,
    /// H2: event streams answered `200` / `503`.
    h2: (usize, usize),
    /// H3: long polls held / answered `503` before their connection closed.
    h3: (usize, usize),
    /// H4: bytes of header blocks sent.
    h4_bytes: usize,
    /// H5: bytes of PRIORITY frames sent.
    h5_bytes: usize,
    /// T: silent connections from 127.0.0.2 that connected.
    silent_tls: usize,
    /// L: silent connections to the lab's port that connected.
    silent_lab: usize,
    /// F: forged ticks published.
    forged: usize,
}

/// Everything a hostile client keeps open until the soak ends.
type Held = Box<dyn Any + Send>;

/// One batch of every kind at once; returns what they got and what they hold.
async fn hostile_round(
    server: &ServerProcess,
    root: &CertificateDer<'static>,
    lab: SocketAddr,
    forger: &mut redis::Connection,
    run: &str,
) -> (Batch, Vec<Held>) {
    let mut held: Vec<Held> = Vec::new();
    // First the long polls, abandoned after half a second: the event streams and lab
    // connections that follow find places only if the polls gave theirs back at once.
    let h3 = abandoned_long_polls(server, root).await;
    let h1 = futures_util::future::join_all(
        (0..2).map(|_| zero_window_streams(server.addr, root.clone(), 5000)),
    );
    let h4 = futures_util::future::join_all((0..2).map(|_| async {
        never_ending_header_block(h2_connection(server.addr, root.clone()).await).await
    }));
    let h5 = async {
        let mut tls = h2_connection(server.addr, root.clone()).await;
        let sent = super::h2::flood(&mut tls, &priority_frames()).await;
        (sent, tls)
    };
    let (h1, h2, h4, h5, silent_tls, silent_lab) = tokio::join!(
        h1,
        windowless_event_streams(server, root),
        h4,
        h5,
        silent(server.addr, Some(Ipv4Addr::new(127, 0, 0, 2)), SILENT_TLS),
        silent(lab, None, PER_KIND),
    );
    let forged = forge(forger, run);
    let mut batch = Batch {
        h2: (h2.0, h2.1),
        h3,
        h5_bytes: h5.0,
        silent_tls: silent_tls.len(),
        silent_lab: silent_lab.len(),
        forged,
        ..Batch::default()
    };
    for (tls, streams) in h1 {
        batch.h1_streams += streams;
        held.push(Box::new(tls));
    }
    for (sent, tls) in h4 {
        batch.h4_bytes += sent;
        held.push(Box::new(tls));
    }
    held.push(Box::new(h5.1));
    held.push(h2.2);
    held.push(Box::new(silent_tls));
    held.push(Box::new(silent_lab));
    (batch, held)
}

/// H2: [`PER_KIND`] event streams on one connection that grants no window: each one the
/// server takes holds a place until the send timeout resets it. Returns how many were
/// answered `200` and `503`, and what to hold (the connection and the open streams).
async fn windowless_event_streams(
    server: &ServerProcess,
    root: &CertificateDer<'static>,
) -> (usize, usize, Held) {
    let (mut client, driving) = h2_client(server.addr, root.clone(), Some(0)).await;
    let path = format!("/events?symbols={SYMBOLS}");
    let requests: Vec<_> = (0..PER_KIND)
        .map(|_| get(&mut client, server.addr, &path))
        .collect();
    let mut streams = Vec::new();
    let (mut taken, mut refused) = (0, 0);
    for request in requests {
        // A response's head is not flow-controlled: it arrives even with no window.
        match tokio::time::timeout(WAIT, request).await {
            Ok(Ok(response)) if response.status() == 200 => {
                taken += 1;
                streams.push(response);
            }
            Ok(Ok(_)) => refused += 1,
            _ => {}
        }
    }
    (taken, refused, Box::new((client, driving, streams)))
}

/// H3: [`PER_KIND`] long polls on one connection, for a time no tick can answer; then the
/// connection is closed, which must give their places back. Returns how many were held and
/// how many refused (`503`) by then.
async fn abandoned_long_polls(
    server: &ServerProcess,
    root: &CertificateDer<'static>,
) -> (usize, usize) {
    let (mut client, driving) = h2_client(server.addr, root.clone(), None).await;
    let path = format!("/price/next?symbol=ACME&after={FAR_AHEAD}");
    let mut polls: Vec<_> = (0..PER_KIND)
        .map(|_| get(&mut client, server.addr, &path))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = polls
        .iter_mut()
        .map(|poll| poll.now_or_never().is_some())
        .filter(|answered| *answered)
        .count();
    driving.abort();
    (PER_KIND - refused, refused)
}

/// `n` TCP connections to `addr` (from `from`, if given) that never send a byte.
async fn silent(addr: SocketAddr, from: Option<Ipv4Addr>, n: usize) -> Vec<TcpStream> {
    let connecting = (0..n).map(|_| async move {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        if let Some(from) = from {
            socket.bind((from, 0).into()).ok()?;
        }
        tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .ok()?
            .ok()
    });
    futures_util::future::join_all(connecting)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// F: on every symbol's channel, a tick of the publisher's run at `seq` 2^64-1, a tick of a
/// run from the year 10889, and a tick padded to [`FORGED_PAYLOAD`]. Returns how many were
/// published.
fn forge(forger: &mut redis::Connection, run: &str) -> usize {
    let future = tickerlab::tick::RunId(u64::MAX);
    let padding = "x".repeat(FORGED_PAYLOAD);
    let mut forged = 0;
    for symbol in SYMBOLS.split(',') {
        let tick = |seq: u64, run: &str, pad: &str| {
            format!(
                r#"{{"type":"tick","symbol":"{symbol}","price":1.0,"change":0.0,"seq":{seq},"ts":1.0,"run":"{run}"{pad}}}"#
            )
        };
        let pad = format!(r#","pad":"{padding}""#);
        for payload in [
            tick(u64::MAX, run, ""),
            tick(1, &future.to_string(), ""),
            tick(2, run, &pad),
        ] {
            let _: i64 = redis::cmd("PUBLISH")
                .arg(tickerlab::backplane::tick_channel(symbol))
                .arg(payload)
                .query(forger)
                .expect("PUBLISH");
            forged += 1;
        }
    }
    forged
}

// ---- the healthy clients ---------------------------------------------------------------------

/// A healthy `wss://` client through `addr` (the server, or the lab's relay to it) for the
/// name `localhost:port`, subscribed to every symbol.
async fn wss(
    addr: SocketAddr,
    port: u16,
    root: &CertificateDer<'static>,
) -> tokio_tungstenite::WebSocketStream<TlsStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let tls = TlsConnector::from(common::trusting(root.clone(), &[]))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let url = format!("wss://localhost:{port}/ws?symbols={SYMBOLS}");
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, tls))
        .await
        .expect("handshake within the wait")
        .expect("a place for a healthy client");
    ws
}

/// A healthy HTTP/2 event stream, sent as a browser on the page would: `Origin` is the
/// `:authority` it asks (HTTP/2 sends no `Host`, and the Origin check reads `:authority`).
async fn same_origin_events(
    server: &ServerProcess,
    root: &CertificateDer<'static>,
) -> (h2::RecvStream, Held) {
    let (mut client, driving) = h2_client(server.addr, root.clone(), None).await;
    let authority = format!("localhost:{}", server.addr.port());
    let request = http02::Request::get(format!("https://{authority}/events?symbols={SYMBOLS}"))
        .header("origin", format!("https://{authority}"))
        .body(())
        .unwrap();
    let response = client.send_request(request, true).expect("send").0;
    let response = tokio::time::timeout(WAIT, response)
        .await
        .expect("answered within the wait")
        .expect("a response");
    assert_eq!(
        response.status(),
        200,
        "a same-origin event stream over HTTP/2"
    );
    (response.into_body(), Box::new((client, driving)))
}

/// A healthy event stream's reader: every event's `data:` until `end`.
async fn read_events((mut body, _held): (h2::RecvStream, Held), end: Instant) -> Healthy {
    let mut seen = Healthy::default();
    let mut buffer = String::new();
    loop {
        let chunk = match tokio::time::timeout_at(end.into(), body.data()).await {
            Err(_) => break,
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(error))) => {
                seen.ended = Some(error.to_string());
                break;
            }
            Ok(None) => {
                seen.ended = Some("the server ended the stream".into());
                break;
            }
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        while let Some((event, rest)) = buffer.split_once("\n\n") {
            for data in event.lines().filter_map(|l| l.strip_prefix("data: ")) {
                seen.saw(data);
            }
            buffer = rest.to_owned();
        }
    }
    seen
}

// ---- the server --------------------------------------------------------------------------------

/// One look at the server: when, its fds, its RSS in KiB, its open places by transport
/// (WebSocket, event stream, long poll, lab), and whether `/healthz` answered `200`.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    fds: usize,
    rss_kib: u64,
    /// TCP connections the server holds.
    connections: usize,
    places: [u64; 4],
    healthy: bool,
}

/// Every [`POLL`] until `end`: the process, and `/healthz` and `/metrics` on a new HTTP/2
/// connection.
async fn sample(
    addr: SocketAddr,
    root: CertificateDer<'static>,
    pid: u32,
    start: Instant,
    end: Instant,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    while Instant::now() < end {
        let (fds, rss_kib, connections) = (fds(pid), rss_kib(pid), connections(pid));
        let healthz = get_text(addr, &root, "/healthz").await;
        let metrics = get_text(addr, &root, "/metrics").await.unwrap_or_default();
        let places = [WEBSOCKETS, EVENT_STREAMS, LONG_POLLS, LAB].map(|s| series(&metrics, s));
        samples.push(Sample {
            at: start.elapsed(),
            fds,
            rss_kib,
            connections,
            places,
            healthy: healthz.is_some(),
        });
        tokio::time::sleep(POLL).await;
    }
    samples
}

/// `series` in a `/metrics` text; 0 if the text is empty (`/metrics` did not answer).
fn series(metrics: &str, series: &str) -> u64 {
    if metrics.is_empty() {
        0
    } else {
        common::metric(metrics, series)
    }
}

/// The sum of `tickerlab_backplane_ticks_rejected_total` over its reasons.
fn rejected_in_all(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| line.starts_with("tickerlab_backplane_ticks_rejected_total{"))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum()
}

// ---- the report --------------------------------------------------------------------------------

struct Summary {
    soak: Duration,
    bounds: Bounds,
    fds_idle: usize,
    rss_idle: u64,
    batches: Vec<Batch>,
    samples: Vec<Sample>,
    healthy: Vec<(&'static str, Healthy)>,
    cpu: Duration,
    forged: usize,
    refused: u64,
    health_rejected: Option<u64>,
    settled: usize,
    fds_after: usize,
}

impl Summary {
    fn peak(&self, of: impl Fn(&Sample) -> u64) -> u64 {
        self.samples.iter().map(of).max().unwrap_or(0)
    }

    /// The connections the server held at the last sample of each round.
    fn round_ends(&self) -> Vec<usize> {
        (0..self.batches.len())
            .filter_map(|i| {
                let end = ROUND * (i as u32 + 1);
                self.samples
                    .iter()
                    .rfind(|s| s.at < end)
                    .map(|s| s.connections)
            })
            .collect()
    }

    fn assert_held(&self) {
        for (i, (who, seen)) in self.healthy.iter().enumerate() {
            seen.assert_held(&format!("healthy {who} {i}"), MAX_MESSAGE);
        }
        let unhealthy = self.samples.iter().filter(|s| !s.healthy).count();
        assert_eq!(unhealthy, 0, "/healthz failed {unhealthy} times");
        let (fds, rss) = (self.peak(|s| s.fds as u64), self.peak(|s| s.rss_kib));
        assert!(
            fds <= self.bounds.fds as u64,
            "{fds} fds, over the bound of {}",
            self.bounds.fds
        );
        assert!(
            rss <= self.bounds.rss_kib,
            "{rss} KiB, over the bound of {}",
            self.bounds.rss_kib
        );
        for (i, batch) in self.batches.iter().enumerate() {
            // Every round finds the places the previous round's clients took: the send
            // timeout reset its event streams, the relay gave up its silent connections.
            assert_eq!(batch.h2, (PER_KIND, 0), "round {}: event streams", i + 1);
            assert_eq!(batch.h3, (PER_KIND, 0), "round {}: long polls", i + 1);
        }
        let round = PER_KIND as u64;
        let sse = self.peak(|s| s.places[1]);
        assert!(
            sse <= round + HEALTHY_SSE as u64,
            "{sse} event streams open at once"
        );
        let polls = self.peak(|s| s.places[2]);
        assert!(polls <= round, "{polls} long polls open at once");
        let lab = self.peak(|s| s.places[3]);
        assert!(
            lab <= round + HEALTHY_LAB as u64,
            "{lab} lab connections open at once"
        );
        // Nothing a round opened outlives the next rounds: the most connections the server
        // held at the end of the last two rounds is the most it held at the end of the first
        // two, give or take a couple whose timeouts fell either side of the sample (rounds
        // alternate by about three). A connection left behind per round adds four.
        let ends = self.round_ends();
        let most = |ends: &[usize]| ends.iter().copied().max().unwrap_or(0);
        let (first, last) = (
            &ends[..ends.len().min(2)],
            &ends[ends.len().saturating_sub(2)..],
        );
        assert!(
            most(last) <= most(first) + 2,
            "connections held at the end of each round grew: {ends:?}"
        );
        assert_eq!(self.refused, self.forged as u64, "forged ticks refused");
        assert_eq!(
            self.health_rejected,
            Some(self.refused),
            "/healthz feed.rejected"
        );
        assert_eq!(
            self.settled, 0,
            "connections left open after the clients left"
        );
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "hostile soak, other ways in: {} s, ulimit -n {OPEN_FILE_LIMIT}, --max-connections \
             {MAX_CONNECTIONS}, --client-timeout-secs {CLIENT_TIMEOUT_SECS}, --long-poll-secs \
             {LONG_POLL_SECS}, --tick-ms {TICK_MS}, --lab-rtt-ms {LAB_RTT_MS}; a batch every {} s",
            self.soak.as_secs(),
            ROUND.as_secs()
        )?;
        writeln!(
            f,
            "| round | H1 streams | H2 (200 / 503) | H3 (held / 503) | H4 KiB | H5 KiB | T | L | F \
             | peak fds | peak RSS KiB | peak places ws / sse / poll / lab | connections at the end |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")?;
        writeln!(
            f,
            "| idle | | | | | | | | | {} | {} | | |",
            self.fds_idle, self.rss_idle
        )?;
        for (i, b) in self.batches.iter().enumerate() {
            let from = ROUND * i as u32;
            let in_round: Vec<&Sample> = self
                .samples
                .iter()
                .filter(|s| s.at >= from && s.at < from + ROUND)
                .collect();
            let peak =
                |of: &dyn Fn(&Sample) -> u64| in_round.iter().map(|s| of(s)).max().unwrap_or(0);
            writeln!(
                f,
                "| {} | {} | {} / {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} / {} | {} |",
                i + 1,
                b.h1_streams,
                b.h2.0,
                b.h2.1,
                b.h3.0,
                b.h3.1,
                b.h4_bytes / 1024,
                b.h5_bytes / 1024,
                b.silent_tls,
                b.silent_lab,
                b.forged,
                peak(&|s| s.fds as u64),
                peak(&|s| s.rss_kib),
                peak(&|s| s.places[0]),
                peak(&|s| s.places[1]),
                peak(&|s| s.places[2]),
                peak(&|s| s.places[3]),
                self.round_ends().get(i).copied().unwrap_or(0),
            )?;
        }
        writeln!(
            f,
            "| bound | | | | | | | | | {} | {} | | |",
            self.bounds.fds, self.bounds.rss_kib
        )?;
        for (who, seen) in &self.healthy {
            writeln!(
                f,
                "healthy {who}: {} ticks, {} gaps, largest message {} B, runs {:?}, cut off: {:?}",
                seen.ticks, seen.gaps, seen.largest, seen.runs, seen.ended
            )?;
        }
        let unhealthy = self.samples.iter().filter(|s| !s.healthy).count();
        writeln!(
            f,
            "/healthz: {} of {} answered 200; server CPU over the soak {:?}",
            self.samples.len() - unhealthy,
            self.samples.len(),
            self.cpu
        )?;
        write!(
            f,
            "forged ticks {} refused {} (/healthz: {:?}); after the clients left: {} connections, {} fds",
            self.forged, self.refused, self.health_rejected, self.settled, self.fds_after
        )
    }
}
