//! The simulated network: the same app, the same feed, a round trip you can dial.
//!
//! On loopback a round trip takes about 0.1 ms, which hides what decides the comparison in
//! the real world: a poll costs a round trip, a long poll is blind for one round trip after
//! each answer, and a push costs half of one. With `--lab-rtt-ms 150` the server opens a
//! second listener (the *lab port*) in front of a [`Relay`]: every chunk of bytes a client
//! sends is held for half the round trip before the app sees it, and every chunk the app
//! answers is held for the other half. Two tabs, one per port, then show loopback and a
//! phone-like network side by side on the same prices.
//!
//! ```text
//!  browser ──> lab port ──[relay: hold RTT/2]──> internal listener ──> the same App
//!  browser <── lab port <─[relay: hold RTT/2]─── internal listener <──
//! ```
//!
//! What the relay teaches, and what it leaves out:
//!
//! * It works on bytes, below HTTP and below TLS: `https://` and `wss://` go through it
//!   unchanged, handshakes included, so a TLS handshake costs its real round trips.
//! * Bytes stay in order, as TCP delivers them: with `--lab-jitter-ms` a chunk waits a random
//!   extra delay, but never leaves before the chunk read ahead of it.
//! * A new connection costs its TCP handshake: the kernel completes the real one at once on
//!   loopback, so the relay holds a connection's first bytes from the client one extra
//!   round trip (SYN out, SYN-ACK back) before their half-trip to the app. A request on a
//!   fresh connection takes two round trips, on a kept-alive one, one: keep-alive is worth
//!   seeing.
//! * It does not model bandwidth, loss or TCP's slow start: only delay.
//! * It is bounded like the rest of the server: each direction of a connection holds at most
//!   [`MAX_IN_FLIGHT_BYTES`]. When that is full the relay stops reading, so a client that
//!   stops reading backpressures the app (whose sessions then skip ticks) instead of
//!   growing the relay's memory; a chunk that cannot be delivered within the client timeout
//!   drops the connection.
//!
//! The app learns which network a request came through from the listener that accepted it
//! (the relay connects to an internal listener of its own), never from anything a client
//! sends; see [`Network::of`].

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::HttpRequest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::tap::{Direction, Tap};

/// The most bytes one direction of one relayed connection holds at a time (read, not yet
/// delivered). Like a TCP window, it also caps throughput: at most this much per one-way
/// delay, 64 KiB / 75 ms ≈ 870 KB/s at a 150 ms round trip, plenty for ticks and the page.
pub const MAX_IN_FLIGHT_BYTES: usize = 64 * 1024;

/// The largest chunk the relay reads at once.
const CHUNK_BYTES: usize = 16 * 1024;

/// What a chunk costs the budget besides its bytes (its allocation and queue slot), so that a
/// flood of one-byte chunks is bounded as surely as a few big ones.
const CHUNK_OVERHEAD: usize = 64;

/// The kernel buffers of the relay's own sockets. Left to autotuning, Linux would let them
/// grow to megabytes, hiding a stalled client's backpressure from the app behind them.
const SOCKET_BUFFER_BYTES: u32 = 16 * 1024;

/// The delays the relay applies: a round trip, split evenly between the two directions, and
/// an optional random extra per chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// The round trip every request/response pays at least: half each way.
    pub rtt: Duration,
    /// Up to this much extra delay per chunk and direction, drawn at random.
    pub jitter: Duration,
}

impl Link {
    /// A link with a round trip of `rtt_ms` and up to `jitter_ms` extra per chunk.
    pub fn from_millis(rtt_ms: u64, jitter_ms: u64) -> Link {
        Link {
            rtt: Duration::from_millis(rtt_ms),
            jitter: Duration::from_millis(jitter_ms),
        }
    }

    /// The delay one chunk gets in one direction: half the round trip, plus its jitter.
    fn one_way_delay(&self) -> Duration {
        let extra = if self.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_micros(rand::random_range(0..=self.jitter.as_micros() as u64))
        };
        self.rtt / 2 + extra
    }
}

/// Which network a request came through, for the page's badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Straight to the server: loopback or the real network between browser and server.
    Direct,
    /// Through the relay, with this link's delays added.
    Simulated(Link),
}

/// What the app knows about the lab, shared with the request handlers as `web::Data`.
#[derive(Debug, Clone, Copy)]
pub struct Lab {
    /// The internal listener the relay connects to: a request accepted there came through
    /// the simulated network.
    pub upstream: SocketAddr,
    /// The delays in force.
    pub link: Link,
    /// The port browsers use for the simulated network.
    pub public_port: u16,
    /// The port of the direct listener, the other way to the same app.
    pub direct_port: u16,
}

impl Network {
    /// The network `req` came through: simulated when the listener that accepted its
    /// connection is the relay's internal one. Decided by the server's own socket, so no
    /// header a client sends can change it.
    pub fn of(req: &HttpRequest) -> Network {
        let lab = req.app_data::<actix_web::web::Data<Option<Lab>>>();
        match lab.and_then(|lab| *lab.get_ref()) {
            Some(lab)
                if crate::http::server::Listener::of(req).map(|l| l.addr) == Some(lab.upstream) =>
            {
                Network::Simulated(lab.link)
            }
            _ => Network::Direct,
        }
    }

    /// The port of the same app on the other network, for a link "open the other one", when
    /// the lab is on.
    pub fn other_port(req: &HttpRequest) -> Option<u16> {
        let lab = req.app_data::<actix_web::web::Data<Option<Lab>>>();
        let lab = lab.and_then(|lab| *lab.get_ref())?;
        Some(match Network::of(req) {
            Network::Direct => lab.public_port,
            Network::Simulated(_) => lab.direct_port,
        })
    }

    /// A machine-readable name for the page: `direct` or `simulated`.
    pub fn kind(&self) -> &'static str {
        match self {
            Network::Direct => "direct",
            Network::Simulated(_) => "simulated",
        }
    }

    /// The round trip the relay adds, in milliseconds (0 for direct).
    pub fn rtt_ms(&self) -> u64 {
        match self {
            Network::Direct => 0,
            Network::Simulated(link) => link.rtt.as_millis() as u64,
        }
    }

    /// What the page's badge says, e.g. "simulated, 150 ms round trip".
    pub fn describe(&self) -> String {
        match self {
            Network::Direct => "direct, no added delay".into(),
            Network::Simulated(link) if link.jitter.is_zero() => {
                format!("simulated, {} ms round trip", link.rtt.as_millis())
            }
            Network::Simulated(link) => format!(
                "simulated, {} ms round trip + up to {} ms jitter each way",
                link.rtt.as_millis(),
                link.jitter.as_millis()
            ),
        }
    }
}

/// A running relay: where it accepts connections, and its counters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Relay {
    addr: SocketAddr,
    link: Link,
    counters: Arc<RelayCounters>,
}

/// What the relay holds right now, across all its connections: how tests (and a curious
/// learner) see that its memory is bounded.
#[derive(Debug, Default)]
pub struct RelayCounters {
    /// Connections being relayed.
    pub connections: AtomicUsize,
    /// Bytes read from one side and not yet written to the other.
    pub buffered_bytes: AtomicUsize,
}

impl Relay {
    /// Starts relaying every connection accepted on `listener` to `upstream` as `settings`
    /// say, until `shutdown` is cancelled. Each relayed connection takes one of the server's
    /// `--max-connections` places (`metrics`, transport `lab`) for as long as it lasts; past
    /// the limit a connection is closed at once. Must be called inside a Tokio runtime; the
    /// relay runs on it.
    pub fn start(
        listener: std::net::TcpListener,
        upstream: SocketAddr,
        settings: RelaySettings,
        metrics: Arc<crate::metrics::Metrics>,
        shutdown: CancellationToken,
    ) -> std::io::Result<Relay> {
        let RelaySettings {
            link,
            max_connections,
            stall,
            tap,
        } = settings;
        listener.set_nonblocking(true)?;
        // Accepted sockets inherit it: a client that stops reading fills it quickly.
        socket2::SockRef::from(&listener).set_send_buffer_size(SOCKET_BUFFER_BYTES as usize)?;
        let addr = listener.local_addr()?;
        let listener = TcpListener::from_std(listener)?;
        let counters = Arc::new(RelayCounters::default());
        let accepting = Accepting {
            listener,
            upstream,
            link,
            metrics,
            max_connections,
            stall,
            counters: counters.clone(),
            tap: tap.then_some(0),
        };
        tokio::spawn(accepting.run(shutdown));
        tracing::info!(%addr, %upstream, rtt_ms = link.rtt.as_millis() as u64,
            jitter_ms = link.jitter.as_millis() as u64, "simulated network listening");
        Ok(Relay {
            addr,
            link,
            counters,
        })
    }

    /// The relay's counters: connections and bytes in flight right now.
    pub fn counters(&self) -> &RelayCounters {
        &self.counters
    }

    /// Where browsers connect to go through the simulated network.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The delays in force.
    pub fn link(&self) -> Link {
        self.link
    }
}

/// What the relay is told at start: the delays, the limits and whether to tap.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    /// The delays to add.
    pub link: Link,
    /// `--max-connections`: the places relayed connections share with every long-lived
    /// connection of the app.
    pub max_connections: u64,
    /// A chunk not delivered within this (the client stopped reading) drops its connection.
    pub stall: Duration,
    /// `--lab-tap`: print what an observer on the path sees ([`crate::tap`]).
    pub tap: bool,
}

/// The relay's accept loop and what each connection needs from it.
struct Accepting {
    listener: TcpListener,
    upstream: SocketAddr,
    link: Link,
    /// Where a relayed connection takes its `--max-connections` place.
    metrics: Arc<crate::metrics::Metrics>,
    max_connections: u64,
    stall: Duration,
    counters: Arc<RelayCounters>,
    /// With `--lab-tap`: the number of the last connection tapped.
    tap: Option<u64>,
}

impl Accepting {
    /// Accepts clients until shutdown; each relayed connection is a task of its own.
    async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                // Shutdown: stop accepting; connections already relayed finish on their own.
                _ = shutdown.cancelled() => return,
                // A client connected (or accept failed).
                accepted = self.listener.accept() => accepted,
            };
            self.relay(accepted).await;
        }
    }

    /// Starts relaying one accepted connection, or refuses it when at the limit.
    async fn relay(&mut self, accepted: std::io::Result<(TcpStream, SocketAddr)>) {
        let (client, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // E.g. out of file descriptors: wait a little instead of spinning.
                tracing::warn!(%error, "lab relay: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                return;
            }
        };
        let Ok(place) = self
            .metrics
            .open_connection(self.max_connections, |m| &m.lab_open)
        else {
            tracing::warn!(%peer, "lab relay: at --max-connections, closing the connection");
            return;
        };
        let (upstream, link, stall) = (self.upstream, self.link, self.stall);
        let tap = self.tap.as_mut().map(|last| {
            *last += 1;
            *last
        });
        let counters = self.counters.clone();
        counters.connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let result = relay_connection(client, upstream, link, stall, &counters, tap).await;
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "lab relay: connection ended");
            }
            counters.connections.fetch_sub(1, Ordering::Relaxed);
            drop(place);
        });
    }
}

/// How long a client may keep its side open once the app has closed the connection: the
/// app's close reached it as a FIN, and a client that neither sends nor closes (a silent
/// socket the app answered `408` and gave up) is dropped after this, fd and all.
const LINGER_AFTER_THE_APP: Duration = Duration::from_secs(1);

/// Connects to the app and pumps both directions until both have ended, or either fails.
/// Once the app's side has ended, the client's gets [`LINGER_AFTER_THE_APP`] to end too.
/// With `tap` (the connection's number), both directions are shown as an observer sees them.
async fn relay_connection(
    client: TcpStream,
    upstream: SocketAddr,
    link: Link,
    stall: Duration,
    counters: &Arc<RelayCounters>,
    tap: Option<u64>,
) -> std::io::Result<()> {
    // The client believes it connected at once; in a real network its first bytes could
    // only leave after the handshake's round trip, and arrive half a trip later.
    let first_bytes_not_before = Instant::now() + link.rtt + link.rtt / 2;
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES)?;
    socket.set_send_buffer_size(SOCKET_BUFFER_BYTES)?;
    let server = socket.connect(upstream).await?;
    // The relay decides when bytes leave; Nagle's algorithm must not add delays of its own.
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (from_client, to_client) = client.into_split();
    let (from_server, to_server) = server.into_split();
    let client_to_app = pipe(
        from_client,
        to_server,
        link,
        stall,
        counters,
        first_bytes_not_before,
        tap.map(|n| Tap::new(n, Direction::ToServer)),
    );
    let app_to_client = pipe(
        from_server,
        to_client,
        link,
        stall,
        counters,
        Instant::now(),
        tap.map(|n| Tap::new(n, Direction::ToClient)),
    );
    let (mut client_to_app, mut app_to_client) = (pin!(client_to_app), pin!(app_to_client));
    // An error in either direction (a reset, a stalled client) drops the whole connection.
    tokio::select! {
        ended = &mut client_to_app => {
            ended?;
            app_to_client.await
        }
        ended = &mut app_to_client => {
            ended?;
            match tokio::time::timeout(LINGER_AFTER_THE_APP, client_to_app).await {
                Ok(ended) => ended,
                Err(_) => Ok(()), // the client kept a dead connection open: drop it
            }
        }
    }
}

/// A chunk of bytes on its way, or the end of the stream (empty `bytes`), with the moment it
/// may leave and its share of the direction's budget (returned when it is dropped).
struct Segment {
    bytes: Vec<u8>,
    release_at: Instant,
    _budget: OwnedSemaphorePermit,
    counters: Arc<RelayCounters>,
}

impl Drop for Segment {
    fn drop(&mut self) {
        let n = self.bytes.len();
        self.counters.buffered_bytes.fetch_sub(n, Ordering::Relaxed);
    }
}

/// One direction: read chunks as they come, stamp each with its release time (never before
/// `not_before`), and write each when its time comes. At most [`MAX_IN_FLIGHT_BYTES`] wait
/// in between.
async fn pipe<R, W>(
    reader: R,
    writer: W,
    link: Link,
    stall: Duration,
    counters: &Arc<RelayCounters>,
    not_before: Instant,
    tap: Option<Tap>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let budget = Arc::new(Semaphore::new(MAX_IN_FLIGHT_BYTES));
    // Unbounded in count, bounded by the byte budget: every segment holds its permits.
    let (queue, arrivals) = mpsc::unbounded_channel();
    tokio::try_join!(
        read_side(
            reader,
            queue,
            budget,
            link,
            not_before,
            counters.clone(),
            tap
        ),
        write_side(arrivals, writer, stall)
    )?;
    Ok(())
}

/// Reads chunks while the budget allows, and queues each with its release time.
async fn read_side<R: AsyncRead + Unpin>(
    mut reader: R,
    queue: mpsc::UnboundedSender<Segment>,
    budget: Arc<Semaphore>,
    link: Link,
    not_before: Instant,
    counters: Arc<RelayCounters>,
    mut tap: Option<Tap>,
) -> std::io::Result<()> {
    let mut scratch = vec![0u8; CHUNK_BYTES];
    let mut previous_release = not_before;
    loop {
        // Full budget: wait here without reading, so the sender's TCP window closes.
        let mut permit = budget
            .clone()
            .acquire_many_owned((CHUNK_BYTES + CHUNK_OVERHEAD) as u32)
            .await
            .map_err(std::io::Error::other)?;
        let n = reader.read(&mut scratch).await?;
        if let Some(tap) = &mut tap {
            tap.observe(&scratch[..n]);
        }
        // Keep only what this chunk costs; the rest returns to the budget now.
        drop(permit.split(CHUNK_BYTES - n));
        // In order, as TCP: never released before the chunk read ahead of it.
        let release_at = (Instant::now() + link.one_way_delay()).max(previous_release);
        previous_release = release_at;
        counters.buffered_bytes.fetch_add(n, Ordering::Relaxed);
        let segment = Segment {
            bytes: scratch[..n].to_vec(),
            release_at,
            _budget: permit,
            counters: counters.clone(),
        };
        if queue.send(segment).is_err() || n == 0 {
            // The writer has gone (it failed, and try_join reports why), or this was the end.
            return Ok(());
        }
    }
}

/// Writes each chunk at its release time; the end of the stream becomes a half-close. A
/// chunk that cannot be written within `stall` is an error that drops the connection.
async fn write_side<W: AsyncWrite + Unpin>(
    mut arrivals: mpsc::UnboundedReceiver<Segment>,
    mut writer: W,
    stall: Duration,
) -> std::io::Result<()> {
    while let Some(segment) = arrivals.recv().await {
        tokio::time::sleep_until(segment.release_at).await;
        if segment.bytes.is_empty() {
            return writer.shutdown().await;
        }
        tokio::time::timeout(stall, writer.write_all(&segment.bytes))
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the peer read nothing within the client timeout",
                )
            })??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_way_delay_is_half_the_round_trip_plus_at_most_the_jitter() {
        let steady = Link::from_millis(150, 0);
        assert_eq!(steady.one_way_delay(), Duration::from_millis(75));
        let jittery = Link::from_millis(100, 20);
        for _ in 0..1000 {
            let d = jittery.one_way_delay();
            assert!(
                d >= Duration::from_millis(50) && d <= Duration::from_millis(70),
                "{d:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn chunks_keep_their_order_and_wait_their_delay() {
        let (mut app_side, relay_in) = tokio::io::duplex(1024);
        let (relay_out, mut client_side) = tokio::io::duplex(1024);
        let link = Link::from_millis(100, 40);
        let counters = Arc::new(RelayCounters::default());
        let stall = Duration::from_secs(30);
        let pump = tokio::spawn(async move {
            pipe(
                relay_in,
                relay_out,
                link,
                stall,
                &counters,
                Instant::now(),
                None,
            )
            .await?;
            Ok::<_, std::io::Error>(counters.buffered_bytes.load(Ordering::Relaxed))
        });
        let start = Instant::now();
        for i in 0..50u8 {
            app_side.write_all(&[i]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(app_side);
        let mut received = Vec::new();
        client_side.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, (0..50u8).collect::<Vec<_>>());
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert_eq!(pump.await.unwrap().unwrap(), 0, "every byte delivered");
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_backpressures_the_sender_within_the_budget() {
        let (mut app_side, relay_in) = tokio::io::duplex(1024);
        // The client end is kept but never read.
        let (relay_out, _client_side) = tokio::io::duplex(1024);
        let counters = Arc::new(RelayCounters::default());
        let pump_counters = counters.clone();
        let link = Link::from_millis(0, 0);
        let stall = Duration::from_secs(3600);
        let _pump = tokio::spawn(async move {
            pipe(
                relay_in,
                relay_out,
                link,
                stall,
                &pump_counters,
                Instant::now(),
                None,
            )
            .await
        });
        let chunk = [7u8; 1024];
        let mut written = 0;
        // Write until a write blocks: that is the backpressure reaching the sender.
        while let Ok(result) =
            tokio::time::timeout(Duration::from_millis(300), app_side.write_all(&chunk)).await
        {
            result.unwrap();
            written += chunk.len();
            assert!(written <= 1 << 20, "the sender was never held back");
        }
        let buffered = counters.buffered_bytes.load(Ordering::Relaxed);
        assert!(buffered <= MAX_IN_FLIGHT_BYTES, "{buffered} bytes held");
        // What the sender got rid of: the relay's budget plus the two pipes' own buffers.
        assert!(
            written <= MAX_IN_FLIGHT_BYTES + 3 * 1024,
            "{written} bytes accepted"
        );
    }
}
