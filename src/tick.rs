//! The wire protocol (v1): every message the server and its clients exchange, as serde types.
//!
//! This file *is* the protocol reference in code form; the README's protocol section
//! documents the same shapes for people. The rule that keeps old clients working: the
//! protocol only grows. A new field or a new message type may be added; nothing is renamed
//! or reshaped, and clients ignore fields and types they do not know.
//!
//! Server to client: [`Tick`] (also the body of `GET /price`) and [`ServerMessage`].
//! Client to server: [`ClientMessage`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version announced in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// One new price of one symbol.
///
/// ```json
/// {"type":"tick","symbol":"ACME","price":101.23,"change":0.12,"seq":42,"ts":1795895822123.456}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "tick")]
pub struct Tick {
    /// The symbol this price belongs to.
    pub symbol: String,
    /// The price, rounded to cents.
    pub price: f64,
    /// The difference to the previous tick of the same symbol, in currency units.
    pub change: f64,
    /// Per symbol: 1 for the first price, +1 for every new one. A client that sees seq 7 after
    /// seq 4 missed two price changes.
    pub seq: u64,
    /// When the server made this price: Unix epoch milliseconds with a sub-millisecond
    /// fraction. `now - ts` on the same machine is how old the price is.
    pub ts: f64,
    /// The run of the feed that numbered this tick (added to v1; absent from older servers,
    /// read as [`RunId::UNKNOWN`]). A `seq` is only comparable with seqs of the same run.
    #[serde(default, skip_serializing_if = "RunId::is_unknown")]
    pub run: RunId,
}

/// The identity of one **run** of the feed: one publisher's life, from start to stop.
///
/// `seq` counts within a run. When the feed restarts (the process, or a new publisher behind
/// Redis) a new run begins and its numbering means nothing next to the old one, so a client
/// keeps the run with the seq and decides "the server restarted" by a *different run*,
/// never by a lower seq (a lagging instance behind a load balancer also shows a lower seq,
/// without any restart).
///
/// On the wire it is 16 lower-case hex digits, `"run":"019ac2f1e3a74c1d"`: a string, since a
/// JavaScript number cannot hold 64 bits. The first 12 digits are the time its numbering
/// began (Unix epoch ms), the last 4 random, so a later run sorts after an earlier one.
/// Clients only compare runs for equality; servers use the order to tell a lagging instance
/// (which has not seen the client's run yet) from a restarted one, and a front-end uses the
/// time to bound `seq`: a run cannot have counted further than the ticks since its numbering
/// began ([`crate::backplane::check`]). That is why a publisher that continues another's
/// numbering takes that run's time plus 1 ms ([`RunId::continuing`]), not its own start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RunId(pub u64);

impl RunId {
    /// A tick from a server that predates run ids, or a front-end's placeholder.
    pub const UNKNOWN: RunId = RunId(0);

    /// The largest time a run id can hold: 48 bits of epoch milliseconds (the year 10889).
    const MAX_MS: u64 = 0xffff_ffff_ffff;

    /// A fresh run id for a numbering that starts now: now (epoch ms, 48 bits) followed by
    /// 16 random bits.
    pub fn new() -> RunId {
        RunId::starting_at(epoch_ms() as u64)
    }

    /// A fresh run id for a feed that *continues* `previous`'s numbering (a replacement
    /// publisher): `previous`'s time plus 1 ms, so it sorts after `previous`, and new random
    /// bits. Its time stays when the numbering began, so its `seq` stays within what a
    /// front-end accepts for its time. Continuing [`RunId::UNKNOWN`] starts afresh.
    pub fn continuing(previous: RunId) -> RunId {
        if previous.is_unknown() {
            return RunId::new();
        }
        RunId::starting_at(previous.start_ms() + 1)
    }

    fn starting_at(ms: u64) -> RunId {
        let ms = ms.min(Self::MAX_MS);
        RunId((ms << 16) | u64::from(rand::random::<u16>()))
    }

    /// When this run's numbering began, in Unix epoch milliseconds (0 for
    /// [`RunId::UNKNOWN`]).
    pub fn start_ms(self) -> u64 {
        self.0 >> 16
    }

    /// Whether this is [`RunId::UNKNOWN`].
    pub fn is_unknown(&self) -> bool {
        self.0 == 0
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for RunId {
    type Err = std::num::ParseIntError;
    /// Parses the 16 hex digits of [`RunId`]'s wire form.
    fn from_str(text: &str) -> Result<RunId, Self::Err> {
        u64::from_str_radix(text, 16).map(RunId)
    }
}

impl Serialize for RunId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<RunId, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The `id` a client put on a request, echoed back so it can match answers to questions.
/// Any JSON value is accepted (number or string in practice); absent means `null`.
pub type RequestId = Option<Value>;

/// A message a client sends over the WebSocket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMessage {
    /// Start receiving ticks of these symbols (in addition to the current ones).
    /// `{"type":"subscribe","symbols":["GLOBX"],"id":7}`
    Subscribe {
        /// Symbols to add.
        symbols: Vec<String>,
        /// Echoed in the `subscribed` answer.
        #[serde(default)]
        id: RequestId,
    },
    /// Stop receiving ticks of these symbols.
    /// `{"type":"unsubscribe","symbols":["ACME"],"id":9}`
    Unsubscribe {
        /// Symbols to remove.
        symbols: Vec<String>,
        /// Echoed in the `subscribed` answer.
        #[serde(default)]
        id: RequestId,
    },
    /// Ask for a `pong`, to measure the round trip over the open socket.
    /// `{"type":"ping","id":8,"t":1795895822000.5}`
    Ping {
        /// Echoed in the `pong`.
        #[serde(default)]
        id: RequestId,
        /// The client's clock when it sent the ping (ms), echoed so it can compute the RTT
        /// without remembering anything.
        #[serde(default)]
        t: Option<f64>,
    },
    /// Ask the server to close this socket, as if the connection had failed: the server
    /// answers with close code 1012 ("service restart", i.e. please reconnect). It exists for
    /// the lesson, so a learner can watch a client notice the loss, back off and reconnect.
    /// `{"type":"drop","id":10}`
    Drop {
        /// Echoed in the close reason.
        #[serde(default)]
        id: RequestId,
    },
    /// The page's panes, for the instructor's class view (see [`crate::class`]); a blind-test
    /// page also says which letter its WebSocket pane has. Sent on every `hello` and whenever
    /// a pane is switched. Answered only when the vote is over already (with `reveal`).
    /// `{"type":"report","panes":{"poll_ms":1000,"longpoll":false,"sse":false,"ws":true},"ws_letter":"B"}`
    Report {
        /// Which panes are on.
        #[serde(default)]
        panes: crate::class::Panes,
        /// On a blind-test page: the letter of its WebSocket pane.
        #[serde(default)]
        ws_letter: Option<crate::class::Letter>,
    },
    /// A blind-test page's answer: which letter is the WebSocket. One per page, replaced by
    /// the next until the reveal; answered with `voted`.
    /// `{"type":"vote","answer":"A"}`
    Vote {
        /// `"A"` or `"B"`.
        answer: crate::class::Letter,
    },
    /// Only the class view may reveal: a page that asks gets an `error` (`not_allowed`).
    /// `{"type":"reveal"}`
    Reveal {},
}

/// The HTTP request and response that opened a WebSocket, as the server saw them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handshake {
    /// The client's `GET` with its `Upgrade: websocket` headers.
    pub request: HandshakeRequest,
    /// The server's `101 Switching Protocols` answer.
    pub response: HandshakeResponse,
}

/// The opening request of a WebSocket, as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandshakeRequest {
    /// Always `GET`.
    pub method: String,
    /// Path and query, e.g. `/ws?symbols=ACME`.
    pub path: String,
    /// e.g. `HTTP/1.1`.
    pub version: String,
    /// Header name/value pairs in the order received (names lower-case).
    pub headers: Vec<(String, String)>,
}

/// The server's answer to the opening request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandshakeResponse {
    /// `101`.
    pub status: u16,
    /// `Switching Protocols`.
    pub reason: String,
    /// Header name/value pairs the server sent (names lower-case).
    pub headers: Vec<(String, String)>,
}

/// Where an instance's prices come from, and whether they are current. Sent in `hello` and
/// `GET /healthz` as `"feed":{"source":"redis","stale":false,"redis":"connected"}`.
///
/// With one instance this is always `{"source":"local","stale":false}`. It matters once
/// several instances share one feed through Redis: a front-end that lost Redis keeps serving
/// its last prices, and this is how it says so instead of pretending they are live.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FeedStatus {
    /// `local`: this process runs the market. `redis`: a front-end that receives the ticks
    /// of a publisher instance through Redis.
    pub source: FeedSource,
    /// `true` when the prices this instance serves may be out of date: a front-end that is
    /// cut off from Redis, or that has *adopted* no new tick for three tick intervals (at
    /// least a second, on the monotonic clock): the publisher stopped, or everything it
    /// hears is older than what it holds. Always `false` for a local feed.
    pub stale: bool,
    /// The Redis link, only with `--redis`: `connected` (for a publisher: holding the
    /// publisher lease and publishing), `down` (reconnecting with backoff), or `lease_lost`
    /// (a publisher that found another publisher in charge and stopped publishing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisLink>,
    /// The run of the feed this instance serves (see [`RunId`]): on a front-end, the
    /// publisher's. Absent while unknown.
    #[serde(default, skip_serializing_if = "RunId::is_unknown")]
    pub run: RunId,
    /// On a front-end, how many ticks read from Redis it refused since it started (too
    /// large, malformed, impossible numbers: see [`crate::backplane::check`]); `/metrics`
    /// has them by reason. Absent while 0, and always on a local feed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rejected: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where an instance's prices come from. See [`FeedStatus::source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedSource {
    /// This process runs the market (the default, and the `--feed-publisher`).
    #[default]
    Local,
    /// A front-end fed by a Redis subscription.
    Redis,
}

/// The state of an instance's connection to Redis. See [`FeedStatus::redis`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisLink {
    /// Connected; a publisher also holds the publisher lease.
    Connected,
    /// Not connected: reconnecting with backoff.
    Down,
    /// A publisher whose lease another publisher holds: it no longer publishes.
    LeaseLost,
}

/// The heartbeat of one socket so far, as a `pong` reports it: the server pings every
/// `every_secs` to learn that the client is still there, and the client's WebSocket library
/// answers each ping with a pong. A browser does that by itself, out of sight of JavaScript,
/// so this count is the only way a page can see its own heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// `--heartbeat-secs`: how often the server pings.
    pub every_secs: u64,
    /// Ping frames the server has sent on this socket (the last one possibly still on its
    /// way out with the next tick).
    pub pings_sent: u32,
    /// Pong frames the client has sent on it (answers, and any it sent unasked).
    pub pongs_received: u32,
}

/// A message the server sends over the WebSocket, other than a [`Tick`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    /// The first message on every socket: what this server offers and how the socket was opened.
    Hello {
        /// [`PROTOCOL_VERSION`].
        protocol: u32,
        /// Every symbol the feed publishes.
        symbols: Vec<String>,
        /// The symbols this socket receives ticks of.
        subscribed: Vec<String>,
        /// The feed's tick interval in milliseconds.
        tick_ms: u64,
        /// The server clock when it said hello (epoch ms).
        server_ts: f64,
        /// The opening HTTP exchange.
        handshake: Handshake,
        /// Where this instance's prices come from and whether they are current (added with
        /// the Redis backplane; absent from older servers).
        #[serde(default)]
        feed: FeedStatus,
        /// The run of the feed whose ticks follow (see [`RunId`]); absent from older
        /// servers and on a front-end that has not heard from its publisher yet.
        #[serde(default, skip_serializing_if = "RunId::is_unknown")]
        run: RunId,
    },
    /// The answer to `subscribe` and `unsubscribe`: the socket's whole subscription now.
    Subscribed {
        /// The symbols this socket now receives.
        symbols: Vec<String>,
        /// The `id` of the request this answers.
        id: RequestId,
    },
    /// The answer to `ping`.
    Pong {
        /// The ping's `id`.
        id: RequestId,
        /// The ping's `t`, unchanged.
        t: Option<f64>,
        /// The server clock when it answered (epoch ms).
        server_ts: f64,
        /// The server's heartbeat on this socket so far (added with the page's heartbeat
        /// line; absent from older servers).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heartbeat: Option<Heartbeat>,
    },
    /// Something the client sent could not be used. The socket stays open.
    Error {
        /// What was wrong and what is allowed, for a person to read.
        message: String,
        /// A stable machine-readable reason: `bad_json`, `bad_message`, `unknown_symbol`, or
        /// `bad_resume` (a `?resume=` position beyond the newest tick; the socket starts at it).
        /// (A binary frame is not answered with an `error`: the socket closes with 1003.)
        code: String,
        /// The `id` of the request this answers, when it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: RequestId,
        /// For `unknown_symbol`: the symbols that exist.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        symbols: Option<Vec<String>>,
    },
    /// The answer to `vote`: the page's answer as the server keeps it.
    Voted {
        /// The answer kept.
        answer: crate::class::Letter,
    },
    /// The instructor revealed the blind test: pushed to every blind-test page at once (and
    /// to one that reports after it).
    Reveal {
        /// When the instructor revealed, on the server's clock (epoch ms): a page measures
        /// how long the push took.
        at: f64,
    },
}

impl ServerMessage {
    /// The message as JSON text, ready to send. Server messages other than ticks are rare
    /// (one per client request), so serialising them per client is fine; ticks are not
    /// serialised here but once per tick, by the feed ([`crate::wire::Published::serialise`]).
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every field is a string, number, list or map
        // with string keys.
        serde_json::to_string(self).expect("server messages always serialise")
    }
}

/// The current time as the protocol writes it: Unix epoch milliseconds with a microsecond
/// fraction (`1795895822123.456`). Finer digits would be noise: clocks are not that exact.
pub fn epoch_ms() -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_micros() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_serialises_as_the_protocol_says() {
        let tick = Tick {
            symbol: "ACME".into(),
            price: 101.23,
            change: 0.12,
            seq: 42,
            ts: 1795895822123.456,
            run: RunId(0x019ac2f1e3a74c1d),
        };
        let json = r#"{"type":"tick","symbol":"ACME","price":101.23,"change":0.12,"seq":42,"ts":1795895822123.456,"run":"019ac2f1e3a74c1d"}"#;
        assert_eq!(serde_json::to_string(&tick).unwrap(), json);
        assert_eq!(serde_json::from_str::<Tick>(json).unwrap(), tick);
        // A tick from a server that predates run ids still parses.
        let old = r#"{"type":"tick","symbol":"ACME","price":1.0,"change":0.0,"seq":1,"ts":1.0}"#;
        assert_eq!(
            serde_json::from_str::<Tick>(old).unwrap().run,
            RunId::UNKNOWN
        );
    }

    #[test]
    fn a_later_run_sorts_after_an_earlier_one() {
        let first = RunId::new();
        let text = first.to_string();
        assert_eq!(text.len(), 16);
        assert_eq!(text.parse::<RunId>().unwrap(), first);
        assert!(!first.is_unknown());
        let later = RunId(first.0 + (1000 << 16));
        assert!(later > first && later.to_string() > text);
    }

    /// A replacement publisher's run sorts after the run it continues, and keeps its time
    /// (the time the numbering began), whatever the random bits.
    #[test]
    fn a_continuing_run_sorts_after_its_predecessor_and_keeps_its_time() {
        let previous = RunId(0x019a_c2f1_e3a7_ffff);
        for _ in 0..100 {
            let next = RunId::continuing(previous);
            assert!(next > previous);
            assert_eq!(next.start_ms(), previous.start_ms() + 1);
        }
        assert!(RunId::continuing(RunId::UNKNOWN).start_ms() > 0);
        assert_eq!(RunId(u64::MAX).start_ms(), RunId::MAX_MS);
    }

    #[test]
    fn client_messages_parse() {
        let m: ClientMessage = serde_json::from_str(r#"{"type":"ping","id":8,"t":12.5}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Ping {
                id: Some(8.into()),
                t: Some(12.5)
            }
        );
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"subscribe","symbols":["A"]}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Subscribe {
                symbols: vec!["A".into()],
                id: None
            }
        );
        let m: ClientMessage = serde_json::from_str(r#"{"type":"drop"}"#).unwrap();
        assert_eq!(m, ClientMessage::Drop { id: None });
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance"}"#).is_err());
    }
}
