//! The integration tests: one program, one module per behaviour, each test against the real
//! server on `127.0.0.1:0` with real clients (WebSocket, HTTP, raw sockets, a headless
//! Chromium, a `redis-server`). One program instead of one per file: the dependencies (actix,
//! reqwest, fantoccini, tungstenite...) are linked once, and `cargo test` after a change in
//! `src/` relinks one binary.
//!
//! `cargo test` runs them all; `cargo test --test it hostile::` runs one module (the filter
//! matches the test's path, `module::test_name`). Tests that run in the same process share it:
//! a test that measures the server's file descriptors counts only the sockets on its own
//! server's port, and one that measures memory measures a server process of its own.

#[path = "../common/mod.rs"]
mod common;

/// The Redis backplane: a publisher, front-ends and a real `redis-server`.
mod backplane;
/// The page in a real headless Chromium.
mod browser;
/// The instructor's class view (`/class`): key, reports, votes, reveal, across instances.
mod class;
/// The `tickerlab` binary as a user starts it.
mod cli;
/// The terminal client (`examples/client.rs`).
mod client;
/// The README and `docs/`: try-it commands, routes, links.
mod docs;
/// Hostile clients: bad frames, bad requests, floods, clients that never read, limits, soaks.
mod hostile;
/// The simulated network (`--lab-rtt-ms`).
mod lab;
/// `GET /metrics`.
mod metrics;
/// The Origin check (Cross-Site WebSocket Hijacking).
mod origin;
/// `GET /` and `/static`: the page and its headers.
mod page;
/// `GET /price`, `/healthz` and long polling (`GET /price/next`).
mod polling;
/// One `seq` means one price, on every transport.
mod seq;
/// Graceful shutdown of the real binary.
mod shutdown;
/// Server-Sent Events (`GET /events`).
mod sse;
/// TLS (`https://`, `wss://`) and HTTP/2.
mod tls;
/// The WebSocket protocol (`GET /ws`).
mod ws;
