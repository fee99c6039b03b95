//! Hostile clients against the real server, each bounded in count and time on 127.0.0.1:
//! what they get back, and what they leave the server holding (file descriptors, memory,
//! connection places), never how long anything took.

/// The churn soak, on demand (`--ignored`): a thousand clients connecting and leaving.
mod churn;
/// Hostile HTTP/2 clients over TLS: frame floods.
mod h2;
/// Hostile HTTP clients: pipelining, request-head limits, refusals, HTTP/1.0.
mod http;
/// The connection limit and its refusals.
mod limits;
/// The hostile soak, on demand (`--ignored`): every kind of hostile client at once.
mod soak;
/// The hostile soak of the other ways in, on demand (`--ignored`): HTTP/2, TLS handshakes,
/// the simulated network's port and the Redis channel at once.
mod soak_ways;
/// Hostile WebSocket clients: the frame layer, floods, clients that never read.
mod ws;
