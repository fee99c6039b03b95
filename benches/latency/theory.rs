//! What theory predicts each transport measures, for a tick interval and a round trip: the
//! figure printed beside every measured one, so a surprise stands out.

use serde::Serialize;

use crate::transport::Transport;

/// The figures theory predicts for one transport (milliseconds, shares, bytes).
#[derive(Debug, Clone, Serialize)]
pub struct Theory {
    /// Time to see a change: p50, p90, p99, max.
    pub see: [f64; 4],
    pub age_mean: f64,
    /// Delivery delay: p50, p99, max.
    pub delay: [f64; 3],
    pub missed: f64,
    pub exchanges_per_change: f64,
    pub header_per_change: f64,
    pub payload_per_change: f64,
}

impl Transport {
    /// What theory predicts for tick interval `tick` and round trip `rtt` (ms), given the
    /// measured size of one exchange.
    pub fn theory(&self, tick: f64, rtt: f64, unit_header: f64, unit_payload: f64) -> Theory {
        // Every answer and every push crosses the network once on its way to the client.
        let transit = rtt / 2.0;
        match *self {
            // Long polling once the round trip reaches the tick: after each answer the next
            // request reaches the server one round trip later, when a newer tick already
            // waits, so it is answered at once. Answers come every RTT, each with the newest
            // price: long polling has become polling every RTT. A change waits 0..RTT for
            // the next answer, plus the transit; 1 - tick/RTT of the changes are never seen.
            Transport::LongPoll if rtt >= tick => Theory {
                see: [rtt * 0.5, rtt * 0.9, rtt * 0.99, rtt].map(|w| w + transit),
                age_mean: tick / 2.0 + transit + rtt / 2.0,
                delay: [tick * 0.5, tick * 0.99, tick].map(|d| d + transit),
                missed: 1.0 - tick / rtt,
                exchanges_per_change: 1.0,
                header_per_change: unit_header,
                payload_per_change: unit_payload,
            },
            // Push: a change is seen as soon as it is delivered (~0 on loopback), the shown
            // price is as old as the time since the last tick (tick/2 on average), nothing
            // is missed, one message per change. Its framing is the unit measured: 2 bytes of
            // WebSocket frame header; for SSE the chunk header and `id:`/`data:` lines.
            // Long polling sees a change as soon as the held request is answered, so the
            // same, with one full HTTP request and response per change. Its catch is the
            // blind moment after each answer, one round trip (well under a millisecond on
            // loopback) until the next request is held again: a tick made then is answered
            // at once when the request arrives, so it is late by that much, and only two
            // ticks inside one blind moment would make a miss.
            // Over a round trip, each of these arrives one transit (RTT/2) later.
            Transport::WebSocket | Transport::Sse | Transport::LongPoll => Theory {
                see: [transit; 4],
                age_mean: tick / 2.0 + transit,
                delay: [transit; 3],
                missed: 0.0,
                exchanges_per_change: 1.0,
                header_per_change: unit_header,
                payload_per_change: unit_payload,
            },
            // Polling every T: a change waits for the next poll, uniformly 0..T; the answer
            // carries a price made 0..tick ago; the shown price is tick/2 + T/2 old on
            // average; a poll sees at most one change, so when T > tick, 1 - tick/T of the
            // changes are never seen; when T < tick, tick/T polls are spent per change.
            // Over a round trip a poll's answer comes RTT later, and a poller that waits for
            // each answer polls again at once when the answer comes after the next beat
            // (tokio's `MissedTickBehavior::Skip` fires a missed beat at once): it really
            // polls every max(T, RTT), i.e. exactly like long polling once RTT > T. (The
            // page's poller, a `setInterval` that skips beats while a request is in flight,
            // waits for the first beat after the answer instead: every (floor(RTT/T) + 1) T.)
            // Its answers then travel RTT/2 to the client.
            Transport::Polling { interval_ms } => {
                let t = (interval_ms as f64).max(rtt);
                let per_change = (tick / t).max(1.0);
                Theory {
                    see: [t * 0.5, t * 0.9, t * 0.99, t].map(|w| w + transit),
                    age_mean: tick / 2.0 + t / 2.0 + transit,
                    delay: [tick * 0.5, tick * 0.99, tick].map(|d| d + transit),
                    missed: (1.0 - tick / t).max(0.0),
                    exchanges_per_change: per_change,
                    header_per_change: unit_header * per_change,
                    payload_per_change: unit_payload * per_change,
                }
            }
        }
    }
}
