//! The ways a client can learn the price, and what a client records while it runs.
//!
//! Each [`Transport`] is one row of the comparison. Its `run` arm starts its client (in
//! `clients.rs` and `sse.rs`); its `theory` arm (in `theory.rs`) says what it should measure.

use std::net::SocketAddr;

use tokio::time::Instant;

use crate::clients::{run_long_poll, run_polling, run_websocket};
use crate::sse::run_sse;
use crate::support::tick_fields::TickFields;

/// One row of the comparison: a way for a client to learn the price. Each has a `run` arm
/// (its client) and a `theory` arm (what it should measure).
#[derive(Debug, Clone, Copy)]
pub enum Transport {
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
pub struct Receipt {
    /// When it arrived, epoch ms.
    pub at: f64,
    pub seq: u64,
    /// When the server made it, epoch ms.
    pub ts: f64,
}

/// Everything one client saw and spent.
#[derive(Debug, Default)]
pub struct Observed {
    /// Ticks received, in arrival order.
    pub receipts: Vec<Receipt>,
    /// Requests sent (polling) or messages received (push).
    pub exchanges: u64,
    /// Message bodies: JSON text of responses or WebSocket messages.
    pub payload_bytes: u64,
    /// Every byte read and written on the socket.
    pub wire_bytes: u64,
    /// Bytes of one typical exchange (a request and its response, or one tick message),
    /// headers and payload apart: the unit the theory multiplies.
    pub unit_header: f64,
    pub unit_payload: f64,
}

impl Transport {
    /// The row's label.
    pub fn name(&self) -> String {
        match self {
            Transport::WebSocket => "WebSocket (push)".into(),
            Transport::Sse => "SSE (push)".into(),
            Transport::LongPoll => "long polling".into(),
            Transport::Polling { interval_ms } => format!("polling every {interval_ms} ms"),
        }
    }

    /// The polling interval, or `None` for transports that learn of a change when it happens
    /// (push, and long polling, whose requests wait for the change).
    pub fn interval_ms(&self) -> Option<u64> {
        match self {
            Transport::WebSocket | Transport::Sse | Transport::LongPoll => None,
            Transport::Polling { interval_ms } => Some(*interval_ms),
        }
    }

    /// Runs this transport's client against `addr` until `stop_at`.
    pub async fn run(self, addr: SocketAddr, symbol: String, stop_at: Instant) -> Observed {
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
}

impl Observed {
    /// Records `tick`, received at `at` (epoch ms).
    pub fn receipt(&mut self, at: f64, tick: TickFields) {
        self.receipts.push(Receipt {
            at,
            seq: tick.seq,
            ts: tick.ts,
        });
    }
}
