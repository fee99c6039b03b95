//! Percentiles and the tick-message fields the benches read.

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

/// Nearest-rank percentile (`p` in 0..=100) of a sorted slice; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sorts in place (NaNs last) and returns p50, p90, p99, max.
pub fn summary(values: &mut [f64]) -> Summary {
    values.sort_by(|a, b| a.total_cmp(b));
    Summary {
        count: values.len(),
        mean: if values.is_empty() {
            f64::NAN
        } else {
            values.iter().sum::<f64>() / values.len() as f64
        },
        p50: percentile(values, 50.0),
        p90: percentile(values, 90.0),
        p99: percentile(values, 99.0),
        max: values.last().copied().unwrap_or(f64::NAN),
    }
}

/// A distribution in one line.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Summary {
    /// How many values.
    pub count: usize,
    /// Their mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// Milliseconds since the Unix epoch, the clock `ts` is written in (same machine, same clock).
pub fn now_ms() -> f64 {
    tickerlab::tick::epoch_ms()
}
