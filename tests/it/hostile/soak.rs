//! The hostile soak, run on demand against the release binary:
//! `cargo build --release && cargo test --release --test it hostile::soak -- --ignored --nocapture`
//! (`HOSTILE_SOAK_SECS=20` for a shorter run).
//!
//! The first four rows of `docs/robustness.md`'s hostile table at once, for 60 s, on a server started under `ulimit -n 512`
//! (a small machine's open-file limit), with a new batch of each kind every [`ROUND`]:
//!
//! * R1: WebSockets whose frame header announces 1 GiB, then up to [`R1_PAYLOAD`], then stall;
//! * R2: WebSockets with a 4 KiB receive buffer that never read;
//! * R3: connections pipelining 5000 `GET /` that never read an answer;
//! * R4: event streams (`/events`) that never read.
//!
//! No hostile client lets go of its connection before the soak ends: only the server can
//! release what they hold. Meanwhile [`HEALTHY`] WebSocket clients read every
//! tick and `/healthz` is asked four times a second, each time on a new connection.
//!
//! What must hold, checked on what the clients saw and what the kernel reports for the server
//! process (`/proc/PID`), never on how long anything took:
//!
//! * every healthy client sees every `seq` of every symbol, no gap, and is never closed;
//! * every `/healthz` is answered `200`;
//! * the server's file descriptors and resident memory stay under the bounds that
//!   [`Bounds`] derives from the limits it was started with.
//!
//! The summary it prints is the table in `docs/robustness.md`.

use crate::common;
use common::process::{connections, fds, open_file_limit, rss_kib};
use common::{WAIT, Ws, hello, hostile};
use futures_util::StreamExt;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// The server's open-file limit (`ulimit -n`). Without the fixes of R2 and R4 the clients
/// of a few rounds exhaust it, and then the server cannot accept anyone.
pub(super) const OPEN_FILE_LIMIT: u64 = 512;
/// `--max-connections`: the healthy clients and about two thirds of one round's hostile
/// WebSockets and event streams; the others get `503`, as a crowd past the limit would.
pub(super) const MAX_CONNECTIONS: u64 = 60;
/// `--client-timeout-secs`: how long a client that does not read (or answer pings) may hold
/// its connection before the server gives it up (and the kernel's `TCP_USER_TIMEOUT`).
pub(super) const CLIENT_TIMEOUT_SECS: u64 = 5;
/// `--heartbeat-secs`: half of the client timeout, as the flag's rule says.
const HEARTBEAT_SECS: u64 = 2;
/// `--tick-ms`: 20 ticks a second per symbol; the feed's history of 256 ticks then covers a
/// healthy session that a busy machine wakes up to 12 s late.
pub(super) const TICK_MS: u64 = 50;
/// The symbols every WebSocket and event stream subscribes to: all of them, so that a client
/// that does not read fills its buffers soon.
pub(super) const SYMBOLS: &str = "ACME,GLOBX,INITECH,UMBRL";

/// Hostile clients of each kind in one round.
const PER_KIND: usize = 25;
/// A new batch of hostile clients every round.
pub(super) const ROUND: Duration = Duration::from_secs(10);
/// How much of its announced gigabyte an R1 client sends at most (before the fix, the server
/// buffered all of it).
const R1_PAYLOAD: usize = 4 << 20;
/// Healthy WebSocket clients, connected before the first hostile one and reading throughout.
const HEALTHY: usize = 8;
/// How often `/healthz` is asked, and the server process sampled.
pub(super) const POLL: Duration = Duration::from_millis(250);
/// Larger than any message a healthy client is sent (a tick is about 130 bytes, `hello` a
/// few hundred).
pub(super) const MAX_MESSAGE: usize = 1024;

/// What the server may hold at any moment: its idle state (listener, workers, feed, measured
/// before any client) plus what its limits let the clients take.
struct Bounds {
    fds: usize,
    rss_kib: u64,
}

/// File descriptors beyond the connections counted: a `/healthz` poll in flight, a refused
/// handshake's connection until its client drops it, R1 connections in the second the server
/// lingers after its 1009 close.
pub(super) const FD_SLACK: usize = 16;
/// What one connection may cost in memory, whatever its client does. The guards keep it to
/// buffers of tens of KiB (actix-http's 32 KiB write buffer, reads of 4 KiB, messages of at
/// most 4 KiB, 32 queued ticks); with the allocator's overhead this soak measures under
/// 100 KiB per connection, and allows 256. Before the fixes one R1 client pinned all it sent
/// (4 MiB here), one R3 client 15 to 28 MiB.
pub(super) const PER_CONNECTION_KIB: u64 = 256;

impl Bounds {
    /// Every WebSocket and event stream holds a `--max-connections` place; a pipelining
    /// connection holds none, but it is dropped once its writes stall for the client timeout,
    /// so at most this round's and the previous round's are open.
    fn from_idle(fds_idle: usize, rss_idle_kib: u64) -> Bounds {
        let connections = MAX_CONNECTIONS as usize + 2 * PER_KIND;
        Bounds {
            fds: fds_idle + connections + FD_SLACK,
            rss_kib: rss_idle_kib + connections as u64 * PER_CONNECTION_KIB,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 60 s soak against the release binary; run with --release --ignored"]
async fn r1_to_r4_together_for_a_minute_cost_the_healthy_clients_nothing() {
    if cfg!(debug_assertions) {
        panic!("the hostile soak measures the release binary: cargo test --release --test hostile");
    }
    let soak = soak_duration();
    let args = [
        ("--max-connections", MAX_CONNECTIONS),
        ("--client-timeout-secs", CLIENT_TIMEOUT_SECS),
        ("--heartbeat-secs", HEARTBEAT_SECS),
        ("--tick-ms", TICK_MS),
    ]
    .map(|(flag, value)| [flag.to_owned(), value.to_string()]);
    let args: Vec<&str> = args.iter().flatten().map(String::as_str).collect();
    let (mut child, addr, mut lines) =
        common::start_binary_with_open_file_limit(OPEN_FILE_LIMIT, &args).await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let pid = child.id().expect("the server's pid");
    assert_eq!(open_file_limit(pid), OPEN_FILE_LIMIT, "ulimit -n applied");
    let addr: SocketAddr = addr.parse().expect("the server's address");

    let http = healthz_client();
    assert_eq!(healthz(&http, addr).await, Ok(()), "the server is up");
    let (fds_idle, rss_idle) = (fds(pid), rss_kib(pid));
    let bounds = Bounds::from_idle(fds_idle, rss_idle);

    let start = Instant::now();
    let end = start + soak;
    // The healthy clients take their places before the first hostile client arrives.
    let mut healthy = Vec::new();
    for _ in 0..HEALTHY {
        let ws = connect_healthy(addr).await;
        healthy.push(tokio::spawn(read_every_tick(ws, end)));
    }
    let health = tokio::spawn(poll_healthz(http, addr, end));
    let samples = tokio::spawn(sample(pid, start, end));

    // The hostile rounds. Their clients hold every connection the server gave them until
    // the soak ends.
    let mut batches: Vec<Batch> = Vec::new();
    let mut held: Vec<TcpStream> = Vec::new();
    while Instant::now() < end {
        let round_start = Instant::now();
        let (batch, streams) = hostile_round(addr).await;
        batches.push(batch);
        held.extend(streams);
        tokio::time::sleep_until((round_start + ROUND).min(end).into()).await;
    }

    let mut healthy_seen = Vec::new();
    for reader in healthy {
        healthy_seen.push(reader.await.expect("a healthy reader"));
    }
    let health = health.await.expect("the /healthz poller");
    let samples = samples.await.expect("the sampler");
    drop(held);
    // Everyone gone: the server must end up holding no connection at all.
    let settled = settle(pid, 0).await;

    let summary = Summary {
        soak,
        bounds,
        fds_idle,
        rss_idle,
        batches,
        samples,
        healthy: healthy_seen,
        health,
        settled,
        fds_after: fds(pid),
    };
    eprintln!("{summary}");
    summary.assert_held();
    child.start_kill().expect("stop the server");
}

/// How long the soak runs: 60 s, or `HOSTILE_SOAK_SECS`.
pub(super) fn soak_duration() -> Duration {
    let secs = std::env::var("HOSTILE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

// ---- the hostile clients ---------------------------------------------------------------------

/// What one round's hostile clients got: connections the server took (`101` for a WebSocket,
/// `200` for an event stream) and those it refused (`503` past `--max-connections`); R3 only
/// counts its connections.
#[derive(Debug, Default)]
struct Batch {
    r1: (usize, usize),
    r2: (usize, usize),
    r3: usize,
    r4: (usize, usize),
}

/// Starts [`PER_KIND`] clients of each kind at once; returns what they got and their
/// connections, to be held.
async fn hostile_round(addr: SocketAddr) -> (Batch, Vec<TcpStream>) {
    let ws_path = format!("/ws?symbols={SYMBOLS}");
    let requests = hostile::pipelined_requests();
    let r1 = futures_util::future::join_all((0..PER_KIND).map(|_| async {
        let mut stream = hostile::never_reading_ws(addr, &ws_path).await?;
        hostile::announce_a_gigabyte(&mut stream, R1_PAYLOAD).await;
        Ok::<_, String>(stream)
    }));
    let r2 = futures_util::future::join_all(
        (0..PER_KIND).map(|_| hostile::never_reading_ws(addr, &ws_path)),
    );
    let r3 = futures_util::future::join_all(
        (0..PER_KIND)
            .map(|_| hostile::pipeline_and_never_read(addr, &requests, Duration::from_secs(3))),
    );
    let r4 = futures_util::future::join_all(
        (0..PER_KIND).map(|_| hostile::never_reading_events(addr, SYMBOLS)),
    );
    let (r1, r2, r3, r4) = tokio::join!(r1, r2, r3, r4);
    let mut streams = Vec::new();
    let batch = Batch {
        r1: keep(&mut streams, r1),
        r2: keep(&mut streams, r2),
        r3: keep(&mut streams, r3).0,
        r4: keep(&mut streams, r4),
    };
    (batch, streams)
}

/// Moves the connections the server took into `streams`; returns how many it took and how
/// many it refused.
fn keep<E>(streams: &mut Vec<TcpStream>, results: Vec<Result<TcpStream, E>>) -> (usize, usize) {
    let asked = results.len();
    let before = streams.len();
    streams.extend(results.into_iter().flatten());
    let taken = streams.len() - before;
    (taken, asked - taken)
}

// ---- the healthy clients ---------------------------------------------------------------------

/// What one healthy client saw.
#[derive(Debug, Default)]
pub(super) struct Healthy {
    pub(super) ticks: u64,
    /// Ticks missing between two consecutive ones of a symbol, or seen out of order.
    pub(super) gaps: u64,
    /// Why the socket ended before the soak did, if it did.
    pub(super) ended: Option<String>,
    /// The longest message read, in bytes: a forged payload that got through would show here.
    pub(super) largest: usize,
    /// The runs the ticks came from: one, unless a forged run was adopted.
    pub(super) runs: BTreeSet<String>,
    /// Each symbol's last `seq`.
    last: HashMap<String, u64>,
}

impl Healthy {
    /// Counts one message: a tick's `seq` must follow its symbol's last by one.
    pub(super) fn saw(&mut self, text: &str) {
        self.largest = self.largest.max(text.len());
        let Ok(tick) = serde_json::from_str::<serde_json::Value>(text) else {
            return;
        };
        if tick["type"] != "tick" {
            return;
        }
        let symbol = tick["symbol"].as_str().expect("symbol").to_owned();
        let seq = tick["seq"].as_u64().expect("seq");
        if let Some(run) = tick["run"].as_str() {
            self.runs.insert(run.to_owned());
        }
        if let Some(previous) = self.last.insert(symbol, seq)
            && seq != previous + 1
        {
            self.gaps += seq.saturating_sub(previous + 1).max(1);
        }
        self.ticks += 1;
    }

    /// Panics unless this client read ticks of one run, every `seq`, no message larger than
    /// `largest`, and was never cut off.
    pub(super) fn assert_held(&self, who: &str, largest: usize) {
        assert_eq!(self.ended, None, "{who} was cut off");
        assert_eq!(self.gaps, 0, "{who} lost ticks: {self:?}");
        assert!(self.ticks > 0, "{who} read nothing");
        assert!(
            self.largest <= largest,
            "{who} read a {} byte message",
            self.largest
        );
        assert_eq!(
            self.runs.len(),
            1,
            "{who} read ticks of several runs: {:?}",
            self.runs
        );
    }
}

/// A healthy client's WebSocket, subscribed to every symbol, past its `hello`.
async fn connect_healthy(addr: SocketAddr) -> Ws {
    let url = format!("ws://{addr}/ws?symbols={SYMBOLS}");
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake within the wait")
        .expect("a place for a healthy client");
    hello(&mut ws).await;
    ws
}

/// A healthy client: reads every tick until `end`, checking that each symbol's `seq` goes
/// up by one.
pub(super) async fn read_every_tick<S>(mut ws: WebSocketStream<S>, end: Instant) -> Healthy
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut seen = Healthy::default();
    loop {
        let message = match tokio::time::timeout_at(end.into(), ws.next()).await {
            Err(_) => break, // the soak is over
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => {
                seen.ended = Some(error.to_string());
                break;
            }
            Ok(None) => {
                seen.ended = Some("the server ended the connection".into());
                break;
            }
        };
        let Message::Text(text) = message else {
            continue; // pings are answered by the library
        };
        seen.saw(&text);
    }
    let _ = ws.close(None).await;
    seen
}

/// What the `/healthz` poller got.
#[derive(Debug, Default)]
struct Health {
    asked: u64,
    answered: u64,
    /// The first few failures, for the report.
    failures: Vec<String>,
}

/// A client that opens a new connection for every request: a server out of file
/// descriptors could still answer on an old one, but could not accept a new one.
fn healthz_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(WAIT)
        .build()
        .expect("an HTTP client")
}

async fn healthz(http: &reqwest::Client, addr: SocketAddr) -> Result<(), String> {
    let response = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match response.status().as_u16() {
        200 => Ok(()),
        status => Err(format!("status {status}")),
    }
}

/// Asks `/healthz` every [`POLL`] until `end`.
async fn poll_healthz(http: reqwest::Client, addr: SocketAddr, end: Instant) -> Health {
    let mut health = Health::default();
    while Instant::now() < end {
        health.asked += 1;
        match healthz(&http, addr).await {
            Ok(()) => health.answered += 1,
            Err(error) if health.failures.len() < 5 => health.failures.push(error),
            Err(_) => {}
        }
        tokio::time::sleep(POLL).await;
    }
    health
}

// ---- the server process ----------------------------------------------------------------------

/// One look at the server process: when (since the soak started), its fds, its RSS in KiB.
type Sample = (Duration, usize, u64);

/// Samples the server process every [`POLL`] until `end`.
async fn sample(pid: u32, start: Instant, end: Instant) -> Vec<Sample> {
    let mut samples = Vec::new();
    while Instant::now() < end {
        samples.push((start.elapsed(), fds(pid), rss_kib(pid)));
        tokio::time::sleep(POLL).await;
    }
    samples
}

/// Waits (up to a minute) until the server holds no more than `idle` TCP connections (its
/// own, such as one to Redis); returns how many more it still held.
pub(super) async fn settle(pid: u32, idle: usize) -> usize {
    let start = Instant::now();
    while connections(pid) > idle && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    connections(pid).saturating_sub(idle)
}

// ---- the report --------------------------------------------------------------------------------

/// Everything the soak saw, printed as the table of `docs/robustness.md` and then asserted.
struct Summary {
    soak: Duration,
    bounds: Bounds,
    fds_idle: usize,
    rss_idle: u64,
    batches: Vec<Batch>,
    samples: Vec<Sample>,
    healthy: Vec<Healthy>,
    health: Health,
    settled: usize,
    fds_after: usize,
}

impl Summary {
    fn peak_fds(&self) -> usize {
        self.samples.iter().map(|s| s.1).max().unwrap_or(0)
    }

    fn peak_rss(&self) -> u64 {
        self.samples.iter().map(|s| s.2).max().unwrap_or(0)
    }

    fn assert_held(&self) {
        for (i, seen) in self.healthy.iter().enumerate() {
            seen.assert_held(&format!("healthy client {i}"), MAX_MESSAGE);
        }
        assert_eq!(
            self.health.answered, self.health.asked,
            "/healthz failed: {:?}",
            self.health.failures
        );
        assert!(
            self.peak_fds() <= self.bounds.fds,
            "{} fds, over the bound of {}",
            self.peak_fds(),
            self.bounds.fds
        );
        assert!(
            self.peak_rss() <= self.bounds.rss_kib,
            "{} KiB RSS, over the bound of {} KiB",
            self.peak_rss(),
            self.bounds.rss_kib
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
            "hostile soak: {} s, ulimit -n {OPEN_FILE_LIMIT}, --max-connections {MAX_CONNECTIONS}, \
             --client-timeout-secs {CLIENT_TIMEOUT_SECS}, --tick-ms {TICK_MS}; \
             {PER_KIND} clients of each kind every {} s, all held to the end",
            self.soak.as_secs(),
            ROUND.as_secs(),
        )?;
        writeln!(
            f,
            "| round | R1 1 GiB header (101 / 503) | R2 never-reading ws (101 / 503) | R3 pipeliners | R4 never-reading SSE (200 / 503) | peak fds | peak RSS KiB |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|")?;
        writeln!(
            f,
            "| idle | | | | | {} | {} |",
            self.fds_idle, self.rss_idle
        )?;
        for (i, batch) in self.batches.iter().enumerate() {
            let from = ROUND * i as u32;
            let in_round = self
                .samples
                .iter()
                .filter(|s| s.0 >= from && s.0 < from + ROUND);
            let (fds, rss) = in_round.fold((0, 0), |(f, r), s| (f.max(s.1), r.max(s.2)));
            writeln!(
                f,
                "| {} | {} / {} | {} / {} | {} | {} / {} | {fds} | {rss} |",
                i + 1,
                batch.r1.0,
                batch.r1.1,
                batch.r2.0,
                batch.r2.1,
                batch.r3,
                batch.r4.0,
                batch.r4.1
            )?;
        }
        writeln!(
            f,
            "| bound | | | | | {} | {} |",
            self.bounds.fds, self.bounds.rss_kib
        )?;
        let ticks: Vec<u64> = self.healthy.iter().map(|h| h.ticks).collect();
        let gaps: u64 = self.healthy.iter().map(|h| h.gaps).sum();
        let cut = self.healthy.iter().filter(|h| h.ended.is_some()).count();
        writeln!(
            f,
            "healthy clients: {HEALTHY}, ticks read {ticks:?}, gaps {gaps}, cut off {cut}"
        )?;
        writeln!(
            f,
            "/healthz: {} of {} answered 200 {:?}",
            self.health.answered, self.health.asked, self.health.failures
        )?;
        write!(
            f,
            "peak {} fds (bound {}), peak {} KiB RSS (bound {}); after the clients left: \
             {} connections, {} fds",
            self.peak_fds(),
            self.bounds.fds,
            self.peak_rss(),
            self.bounds.rss_kib,
            self.settled,
            self.fds_after
        )
    }
}
