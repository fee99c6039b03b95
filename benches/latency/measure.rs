//! From records to figures: one client's receipts over the measuring window, then the
//! clients of one transport pooled into its row of the table.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::support::stats::{Summary, summary};
use crate::theory::Theory;
use crate::transport::{Observed, Transport};

/// The measured figures of one transport.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The simulated network's round trip, ms; `None` for a direct run over loopback.
    pub rtt_ms: Option<u64>,
    pub transport: String,
    pub interval_ms: Option<u64>,
    /// Clients pooled in this row (polling clients start at random phases).
    pub clients: usize,
    pub see: Summary,
    pub age_mean: f64,
    pub delay: Summary,
    pub missed: f64,
    /// Ticks the server made in the window.
    pub changes_made: u64,
    pub exchanges_per_change: f64,
    pub header_per_change: f64,
    pub payload_per_change: f64,
    pub theory: Theory,
}

/// One client's figures over the window, before clients of the same row are pooled.
struct Measured {
    see: Vec<f64>,
    delay: Vec<f64>,
    age_mean: f64,
    made_in_window: u64,
    seen_in_window: u64,
    changes_seen: u64,
    exchanges: u64,
    header_bytes: u64,
    payload_bytes: u64,
}

/// Turns one client's records into figures over the window `[w0, w1]` (epoch ms). `made`
/// maps every `seq` the server made to its `ts`.
fn measure(seen: &Observed, made: &BTreeMap<u64, f64>, (w0, w1): (f64, f64)) -> Measured {
    let receipts = &seen.receipts;
    // Time to see a change: for each tick made in the window, the first receipt of it or of
    // a newer one. Receipts arrive in order and `seq` never goes back, so one pass does it.
    let in_window: Vec<(u64, f64)> = made
        .iter()
        .filter(|&(_, &ts)| ts >= w0 && ts <= w1)
        .map(|(&s, &ts)| (s, ts))
        .collect();
    let mut see = Vec::new();
    let mut next = 0;
    for &(seq, ts) in &in_window {
        while next < receipts.len() && receipts[next].seq < seq {
            next += 1;
        }
        if let Some(r) = receipts.get(next) {
            see.push(r.at - ts);
        }
    }
    // Age of the shown price, integrated: between two receipts the client shows the newest
    // tick it holds, whose age grows linearly; the integral of a line is its midpoint value.
    let mut area = 0.0;
    let mut held: Option<f64> = None;
    for (i, r) in receipts.iter().enumerate() {
        let h = held.map_or(r.ts, |h: f64| h.max(r.ts));
        held = Some(h);
        let end = receipts.get(i + 1).map_or(w1, |n| n.at);
        let (a, b) = (r.at.max(w0), end.min(w1));
        if b > a {
            area += (b - a) * ((a + b) / 2.0 - h);
        }
    }
    let delay = receipts
        .iter()
        .filter(|r| r.at >= w0 && r.at <= w1)
        .map(|r| r.at - r.ts)
        .collect();
    // Missed: changes made in the window that the client never held.
    let held_seqs: std::collections::HashSet<u64> = receipts.iter().map(|r| r.seq).collect();
    let seen_in_window = in_window
        .iter()
        .filter(|(s, _)| held_seqs.contains(s))
        .count() as u64;
    Measured {
        see,
        delay,
        age_mean: area / (w1 - w0),
        made_in_window: in_window.len() as u64,
        seen_in_window,
        changes_seen: held_seqs.len() as u64,
        exchanges: seen.exchanges,
        header_bytes: seen.wire_bytes - seen.payload_bytes,
        payload_bytes: seen.payload_bytes,
    }
}

/// Pools the clients of one transport into its table row. Per-change figures are over the
/// whole run (handshakes included, as a user pays them).
pub fn row(
    transport: Transport,
    clients: &[Observed],
    made: &BTreeMap<u64, f64>,
    window: (f64, f64),
    (tick, rtt_ms): (f64, Option<u64>),
) -> Row {
    let measured: Vec<Measured> = clients.iter().map(|c| measure(c, made, window)).collect();
    let n = measured.len().max(1) as f64;
    let sum = |f: fn(&Measured) -> u64| measured.iter().map(f).sum::<u64>() as f64;
    let mut see: Vec<f64> = measured
        .iter()
        .flat_map(|m| m.see.iter().copied())
        .collect();
    let mut delay: Vec<f64> = measured
        .iter()
        .flat_map(|m| m.delay.iter().copied())
        .collect();
    let changes = sum(|m| m.changes_seen).max(1.0);
    let unit_header = clients.iter().map(|c| c.unit_header).sum::<f64>() / n;
    let unit_payload = clients.iter().map(|c| c.unit_payload).sum::<f64>() / n;
    let rtt = rtt_ms.unwrap_or(0) as f64;
    Row {
        rtt_ms,
        transport: transport.name(),
        interval_ms: transport.interval_ms(),
        clients: clients.len(),
        see: summary(&mut see),
        age_mean: measured.iter().map(|m| m.age_mean).sum::<f64>() / n,
        delay: summary(&mut delay),
        missed: 1.0 - sum(|m| m.seen_in_window) / sum(|m| m.made_in_window).max(1.0),
        changes_made: measured.first().map_or(0, |m| m.made_in_window),
        exchanges_per_change: sum(|m| m.exchanges) / changes,
        header_per_change: sum(|m| m.header_bytes) / changes,
        payload_per_change: sum(|m| m.payload_bytes) / changes,
        theory: transport.theory(tick, rtt, unit_header, unit_payload),
    }
}
