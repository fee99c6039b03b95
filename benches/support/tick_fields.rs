//! The two fields of a tick message every measurement reads, and the clock they are read
//! against.

use serde::Deserialize;

/// The two fields of a tick every measurement needs. Parsing only these (serde skips the
/// rest) keeps the client's own cost per message small next to the server's.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct TickFields {
    /// Per-symbol sequence number.
    pub seq: u64,
    /// When the server made the price, epoch ms.
    pub ts: f64,
}

impl TickFields {
    /// The fields of a `tick` message, or `None` for any other message (hello, pong...).
    pub fn parse(text: &str) -> Option<TickFields> {
        if !text.starts_with(r#"{"type":"tick""#) {
            return None;
        }
        serde_json::from_str(text).ok()
    }
}

/// Milliseconds since the Unix epoch, the clock `ts` is written in (same machine, same clock).
pub fn now_ms() -> f64 {
    tickerlab::tick::epoch_ms()
}
