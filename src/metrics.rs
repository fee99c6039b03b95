//! The server's counters, and their Prometheus text exposition for `GET /metrics`.
//!
//! Every promise the robustness lesson makes ("a slow client skips ticks instead of growing
//! memory", "past the limit the handshake is refused", "after the clients leave, nothing is
//! left open") is checked by reading a number here, not by watching a clock.
//!
//! The rules that keep this cheap enough for the per-tick hot path:
//!
//! * every number is a relaxed atomic: a counter only ever goes up, a gauge up and down; no
//!   lock, no allocation when one changes;
//! * the set of series is fixed at compile time (no label maps growing with client input);
//! * text is built only when someone asks for `/metrics`.
//!
//! To add a counter: add an [`AtomicU64`] field (or a [`Gauge`]) to [`Metrics`], bump it where
//! the event happens, and add one line to [`Metrics::render`]. A new long-lived transport
//! (long polling, Server-Sent Events) adds a [`Gauge`] for its open connections and takes a
//! [`ConnectionGuard`] from [`Metrics::open_connection`], so `--max-connections` counts it too.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backplane::check::Rejection;
use crate::feed::Feed;

/// The routes `GET /metrics` reports requests for, by their pattern as registered in
/// [`crate::http::routes`]. A request that matched none (a `404`) counts as `other`. A new
/// route adds its pattern here.
pub const ROUTES: &[&str] = &[
    "/",
    "/static/{path:.*}",
    "/price",
    "/price/next",
    "/events",
    "/healthz",
    "/ws",
    "/metrics",
    "/class",
    "/class/ws",
];

/// Why a long-lived connection was refused; each has its own counter. `NotAHandshake` is
/// WebSocket-only; `Origin` also counts refused event streams, and `Capacity` refused event
/// streams and long polls (the series keeps its historic name, `handshakes_refused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request was not a valid WebSocket handshake (no `Upgrade`, wrong version, bad key).
    NotAHandshake,
    /// The page that opened it came from an origin that is not allowed (`403`).
    Origin,
    /// `--max-connections` were already open (`503`), on any transport.
    Capacity,
    /// A TLS connection from an address that already had its share of handshakes in progress
    /// ([`crate::http::server::HANDSHAKES_PER_ADDRESS`]): closed before its handshake.
    TlsPerAddress,
}

impl Refusal {
    const ALL: [Refusal; 4] = [
        Refusal::NotAHandshake,
        Refusal::Origin,
        Refusal::Capacity,
        Refusal::TlsPerAddress,
    ];

    /// The label value in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NotAHandshake => "not_a_handshake",
            Refusal::Origin => "origin",
            Refusal::Capacity => "capacity",
            Refusal::TlsPerAddress => "tls_per_address",
        }
    }
}

/// The ways a client reaches the server, for the cost of each (the class view, see
/// [`crate::class::Cost`]). A connection's bytes count for the transport of the request it
/// carries (see `http::connection::Meter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `GET /price`: HTTP polling.
    Polling,
    /// `GET /price/next`: long polling.
    LongPoll,
    /// `GET /events`: Server-Sent Events.
    Sse,
    /// `GET /ws`: the WebSocket.
    WebSocket,
    /// Everything else: the page and its assets, `/metrics`, `/echo`, the class view, and
    /// HTTP/2 connections, whose streams mix transports.
    Other,
}

impl Transport {
    /// Every transport, in the order the class view lists them.
    pub const ALL: [Transport; 5] = [
        Transport::Polling,
        Transport::LongPoll,
        Transport::Sse,
        Transport::WebSocket,
        Transport::Other,
    ];

    /// The transport a request for `path` uses.
    pub fn of_path(path: &str) -> Transport {
        match path {
            "/price" => Transport::Polling,
            "/price/next" => Transport::LongPoll,
            "/events" => Transport::Sse,
            "/ws" => Transport::WebSocket,
            _ => Transport::Other,
        }
    }

    /// Its label value in `/metrics`.
    pub fn metric_label(self) -> &'static str {
        match self {
            Transport::Polling => "polling",
            Transport::LongPoll => "longpoll",
            Transport::Sse => "sse",
            Transport::WebSocket => "websocket",
            Transport::Other => "other",
        }
    }

    /// Its name on the class view.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Polling => "HTTP polling",
            Transport::LongPoll => "long polling",
            Transport::Sse => "Server-Sent Events",
            Transport::WebSocket => "WebSocket",
            Transport::Other => "page, assets and other",
        }
    }
}

/// A number that goes up and down, e.g. the open connections of a transport.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts one in the gauge until the returned guard is dropped (e.g. "sessions waiting").
    pub fn hold(&self) -> GaugeHold<'_> {
        self.add(1);
        GaugeHold(self)
    }

    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
}

/// One count in a [`Gauge`], given back when dropped, on every path out of a scope.
#[derive(Debug)]
pub struct GaugeHold<'a>(&'a Gauge);

impl Drop for GaugeHold<'_> {
    fn drop(&mut self) {
        self.0.sub(1);
    }
}

/// Every counter of one running server. One instance lives in
/// [`AppState`](crate::http::AppState), shared by all workers through an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    /// Long-lived connections of any transport, the number `--max-connections` limits.
    live: Gauge,
    /// Open WebSocket sessions.
    pub ws_open: Gauge,
    /// Open Server-Sent Events streams.
    pub sse_open: Gauge,
    /// Long polls held, waiting for the next tick.
    pub longpoll_open: Gauge,
    /// Connections relayed by the simulated network (`--lab-rtt-ms`), each holding a place
    /// of its own besides whatever the app's side of it holds.
    pub lab_open: Gauge,
    /// WebSocket connections whose socket takes no more bytes: the client is not reading as
    /// fast as the feed ticks. Nothing more is queued for them; they skip to the newest tick
    /// once their socket drains.
    pub ws_send_waiting: Gauge,
    /// Text messages written to WebSocket connections (ticks and answers).
    pub ws_messages_sent: AtomicU64,
    /// Bytes of those messages' payloads.
    pub ws_bytes_sent: AtomicU64,
    /// Ticks a session never sent because a newer tick of the same symbol replaced them
    /// while it waited for a slow client ("latest value wins").
    pub ws_ticks_skipped: AtomicU64,
    /// Messages received from WebSocket clients (text, binary, ping).
    pub ws_messages_received: AtomicU64,
    /// Sessions closed for sending faster than `--max-messages-per-sec` (close 1008).
    pub ws_rate_limited: AtomicU64,
    /// Events written to Server-Sent Events streams.
    pub sse_events_sent: AtomicU64,
    /// Bytes written to clients, by [`Transport`] (index: `Transport as usize`).
    pub bytes_out: [AtomicU64; Transport::ALL.len()],
    /// Bytes read from clients, by [`Transport`].
    pub bytes_in: [AtomicU64; Transport::ALL.len()],
    refused: [AtomicU64; Refusal::ALL.len()],
    /// HTTP responses by route (index in [`ROUTES`], last = other) and status code.
    http: Box<[[AtomicU64; STATUS_SLOTS]; ROUTES.len() + 1]>,
}

/// Status codes 100 to 599 each get a counter; a status outside that range counts as 599.
const STATUS_SLOTS: usize = 500;

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            live: Gauge::default(),
            ws_open: Gauge::default(),
            sse_open: Gauge::default(),
            longpoll_open: Gauge::default(),
            lab_open: Gauge::default(),
            ws_send_waiting: Gauge::default(),
            ws_messages_sent: AtomicU64::new(0),
            ws_bytes_sent: AtomicU64::new(0),
            ws_ticks_skipped: AtomicU64::new(0),
            ws_messages_received: AtomicU64::new(0),
            ws_rate_limited: AtomicU64::new(0),
            sse_events_sent: AtomicU64::new(0),
            bytes_out: Default::default(),
            bytes_in: Default::default(),
            refused: Default::default(),
            http: Box::new(std::array::from_fn(|_| {
                std::array::from_fn(|_| AtomicU64::new(0))
            })),
        }
    }
}

/// Holds one long-lived connection's place: while it lives, the connection counts in its
/// transport's gauge and against `--max-connections`; dropping it (however the session
/// ends, even by a panic) gives the place back. This is what lets the soak test expect the
/// gauges back at exactly 0.
#[derive(Debug)]
pub struct ConnectionGuard {
    metrics: std::sync::Arc<Metrics>,
    transport: fn(&Metrics) -> &Gauge,
}

impl ConnectionGuard {
    /// The counters this place is held in.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        (self.transport)(&self.metrics).sub(1);
        self.metrics.live.sub(1);
    }
}

/// The handshake was refused because `--max-connections` connections are open.
#[derive(Debug)]
pub struct AtCapacity;

impl Metrics {
    /// How many long-lived connections (of every transport) are open.
    pub fn live_connections(&self) -> u64 {
        self.live.get()
    }

    /// Takes a place for a new long-lived connection of the transport whose gauge `transport`
    /// selects (e.g. `|m| &m.ws_open`), unless `max` are already open.
    ///
    /// The check and the increment are one atomic step, so two handshakes racing for the
    /// last place cannot both win.
    pub fn open_connection(
        self: &std::sync::Arc<Self>,
        max: u64,
        transport: fn(&Metrics) -> &Gauge,
    ) -> Result<ConnectionGuard, AtCapacity> {
        self.live
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| {
                self.refused(Refusal::Capacity);
                AtCapacity
            })?;
        transport(self).add(1);
        Ok(ConnectionGuard {
            metrics: self.clone(),
            transport,
        })
    }

    /// Counts a refused handshake.
    pub fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// How many handshakes were refused for `why`.
    pub fn refusals(&self, why: Refusal) -> u64 {
        self.refused[why as usize].load(Ordering::Relaxed)
    }

    /// Counts one WebSocket text message of `bytes` bytes written to a connection.
    pub fn ws_sent(&self, bytes: usize) {
        self.ws_messages_sent.fetch_add(1, Ordering::Relaxed);
        self.ws_bytes_sent
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// How many requests (polling, long polling, other), events (SSE) or messages both ways
    /// (WebSocket) `transport` has carried: the "per second" of its cost.
    pub fn transport_events(&self, transport: Transport) -> u64 {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let route = |pattern: &str| {
            ROUTES
                .iter()
                .position(|known| *known == pattern)
                .map_or(0, |row| self.http[row].iter().map(load).sum())
        };
        match transport {
            Transport::Polling => route("/price"),
            Transport::LongPoll => route("/price/next"),
            Transport::Sse => load(&self.sse_events_sent),
            Transport::WebSocket => load(&self.ws_messages_sent) + load(&self.ws_messages_received),
            Transport::Other => {
                let all: u64 = self.http.iter().flatten().map(load).sum();
                all.saturating_sub(route("/price") + route("/price/next"))
            }
        }
    }

    /// Counts bytes a connection carried for `transport`: `read` from the client, `written`
    /// to it.
    pub fn carried(&self, transport: Transport, read: usize, written: usize) {
        if read > 0 {
            self.bytes_in[transport as usize].fetch_add(read as u64, Ordering::Relaxed);
        }
        if written > 0 {
            self.bytes_out[transport as usize].fetch_add(written as u64, Ordering::Relaxed);
        }
    }

    /// Counts one HTTP response. `route` is the matched pattern (`None`: no route matched).
    pub fn http_response(&self, route: Option<&str>, status: u16) {
        let row = route
            .and_then(|r| ROUTES.iter().position(|known| *known == r))
            .unwrap_or(ROUTES.len());
        let slot = usize::from(status.clamp(100, 599) - 100);
        self.http[row][slot].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format (version 0.0.4): `# HELP`, `# TYPE`, then one
    /// `name{labels} value` line per series. The feed keeps its own counters, read here from
    /// `feed`.
    pub fn render(&self, feed: &Feed) -> String {
        let (ticks, serialisations, ws_frames) =
            (feed.ticks(), feed.serialisations(), feed.ws_frames());
        let mut out = String::with_capacity(4096);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, series: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in series {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        metric(
            "tickerlab_open_connections",
            "gauge",
            "Long-lived connections open, by transport.",
            &[
                ("{transport=\"websocket\"}", self.ws_open.get()),
                ("{transport=\"sse\"}", self.sse_open.get()),
                ("{transport=\"longpoll\"}", self.longpoll_open.get()),
                ("{transport=\"lab\"}", self.lab_open.get()),
            ],
        );
        metric(
            "tickerlab_feed_ticks_total",
            "counter",
            "Ticks the feed has published.",
            &[("", ticks)],
        );
        metric(
            "tickerlab_feed_serialisations_total",
            "counter",
            "Ticks serialised to JSON: ticks x symbols (on a Redis front-end: the ticks it adopted), whatever the number of clients.",
            &[("", serialisations)],
        );
        metric(
            "tickerlab_feed_ws_frames_total",
            "counter",
            "Ticks framed for WebSockets: at most ticks x symbols, whatever the number of sockets.",
            &[("", ws_frames)],
        );
        metric(
            "tickerlab_feed_worker_relays",
            "gauge",
            "Worker threads relaying the feed to their WebSocket connections: a tick crosses threads once per worker, not once per socket.",
            &[("", feed.worker_relays())],
        );
        metric(
            "tickerlab_feed_relay_writes_total",
            "counter",
            "Tick frames a worker's relay wrote straight to a WebSocket's socket, with no wake-up of the connection's task (plain TCP, the socket keeping up); the rest went through the connection's task.",
            &[("", feed.relay_writes())],
        );
        metric(
            "tickerlab_ws_messages_sent_total",
            "counter",
            "Text messages written to WebSocket connections (ticks and answers).",
            &[("", load(&self.ws_messages_sent))],
        );
        metric(
            "tickerlab_ws_bytes_sent_total",
            "counter",
            "Payload bytes of those messages.",
            &[("", load(&self.ws_bytes_sent))],
        );
        metric(
            "tickerlab_ws_messages_received_total",
            "counter",
            "Messages received from WebSocket clients (text, binary, ping).",
            &[("", load(&self.ws_messages_received))],
        );
        metric(
            "tickerlab_ws_send_waiting",
            "gauge",
            "WebSocket connections waiting for a slow client to read (nothing more is queued).",
            &[("", self.ws_send_waiting.get())],
        );
        metric(
            "tickerlab_ws_ticks_skipped_total",
            "counter",
            "Ticks not sent to a slow client because a newer one replaced them.",
            &[("", load(&self.ws_ticks_skipped))],
        );
        metric(
            "tickerlab_ws_rate_limited_total",
            "counter",
            "Sessions closed (1008) for sending messages too fast.",
            &[("", load(&self.ws_rate_limited))],
        );
        metric(
            "tickerlab_sse_events_sent_total",
            "counter",
            "Events written to Server-Sent Events streams.",
            &[("", load(&self.sse_events_sent))],
        );
        let bytes: Vec<(String, u64)> = Transport::ALL
            .iter()
            .flat_map(|t| {
                let name = t.metric_label();
                [
                    (
                        format!("{{transport=\"{name}\",direction=\"out\"}}"),
                        load(&self.bytes_out[*t as usize]),
                    ),
                    (
                        format!("{{transport=\"{name}\",direction=\"in\"}}"),
                        load(&self.bytes_in[*t as usize]),
                    ),
                ]
            })
            .collect();
        metric(
            "tickerlab_bytes_total",
            "counter",
            "Bytes written to (out) and read from (in) clients' connections, by the transport of the request each carried (HTTP/2 connections count as other).",
            &as_series(&bytes),
        );
        let refused = by_reason(Refusal::ALL.iter().map(|r| (r.label(), self.refusals(*r))));
        metric(
            "tickerlab_handshakes_refused_total",
            "counter",
            "Connections refused before they opened (WebSocket handshakes; also event streams and long polls for origin and capacity, and TLS connections past their address's share of handshakes), by reason.",
            &as_series(&refused),
        );
        let rejected = by_reason(
            Rejection::ALL
                .iter()
                .map(|r| (r.label(), feed.rejected(*r))),
        );
        metric(
            "tickerlab_backplane_ticks_rejected_total",
            "counter",
            "Ticks read from Redis that a front-end refused (too large, malformed, impossible numbers), by reason.",
            &as_series(&rejected),
        );
        let mut http = Vec::new();
        for (row, counts) in self.http.iter().enumerate() {
            let route = ROUTES.get(row).copied().unwrap_or("other");
            for (slot, count) in counts.iter().enumerate() {
                let n = load(count);
                if n > 0 {
                    let status = slot + 100;
                    http.push((format!("{{route=\"{route}\",status=\"{status}\"}}"), n));
                }
            }
        }
        let http: Vec<(&str, u64)> = http.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        metric(
            "tickerlab_http_responses_total",
            "counter",
            "HTTP responses, by route pattern and status code.",
            &http,
        );
        out
    }
}

/// `{reason="LABEL"}` series of a counter labelled by reason, with their values.
fn by_reason(counts: impl Iterator<Item = (&'static str, u64)>) -> Vec<(String, u64)> {
    counts
        .map(|(label, n)| (format!("{{reason=\"{label}\"}}"), n))
        .collect()
}

/// Series as `render` writes them: labels borrowed.
fn as_series(series: &[(String, u64)]) -> Vec<(&str, u64)> {
    series.iter().map(|(l, v)| (l.as_str(), *v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_connection_limit_is_exact_and_places_come_back() {
        let metrics = Arc::new(Metrics::default());
        let a = metrics.open_connection(2, |m| &m.ws_open).unwrap();
        let _b = metrics.open_connection(2, |m| &m.ws_open).unwrap();
        assert!(metrics.open_connection(2, |m| &m.ws_open).is_err());
        assert_eq!(metrics.refusals(Refusal::Capacity), 1);
        drop(a);
        assert_eq!(metrics.ws_open.get(), 1);
        assert!(metrics.open_connection(2, |m| &m.ws_open).is_ok());
    }

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        metrics.http_response(Some("/price"), 200);
        metrics.http_response(None, 404);
        metrics.ws_sent(10);
        let (feed, _relay) = Feed::relay(vec!["ACME".into()], std::time::Duration::from_secs(1));
        feed.count_rejected(Rejection::SeqAhead);
        let text = metrics.render(&feed);
        assert!(text.contains("# TYPE tickerlab_ws_bytes_sent_total counter\n"));
        assert!(text.contains("tickerlab_ws_bytes_sent_total 10\n"));
        assert!(text.contains("tickerlab_feed_serialisations_total 0\n"));
        assert!(
            text.contains("tickerlab_backplane_ticks_rejected_total{reason=\"seq_ahead\"} 1\n")
        );
        assert!(
            text.contains("tickerlab_backplane_ticks_rejected_total{reason=\"too_large\"} 0\n")
        );
        assert!(
            text.contains("tickerlab_http_responses_total{route=\"/price\",status=\"200\"} 1\n")
        );
        assert!(
            text.contains("tickerlab_http_responses_total{route=\"other\",status=\"404\"} 1\n")
        );
        assert!(text.contains("tickerlab_handshakes_refused_total{reason=\"origin\"} 0\n"));
        metrics.carried(Transport::Polling, 3, 200);
        let text = metrics.render(&feed);
        assert!(
            text.contains("tickerlab_bytes_total{transport=\"polling\",direction=\"out\"} 200\n")
        );
        assert!(text.contains("tickerlab_bytes_total{transport=\"polling\",direction=\"in\"} 3\n"));
    }
}
