//! What each transport costs the server: requests or messages per second, bytes per second
//! out and in, from the counters every connection already bumps ([`Metrics`]), over the last
//! [`COST_WINDOW`]. CPU time is the process's: the same threads serve every transport, so it
//! is not split between them (a share "per transport" would be a guess shown as a number).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::metrics::{Metrics, Transport};

/// How far back the cost per transport looks: rates are the change over this window.
pub const COST_WINDOW: Duration = Duration::from_secs(10);

/// What one transport costs the server, per second over [`COST_WINDOW`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// Requests answered (polling, long polling, other) or messages sent and received
    /// (WebSocket), or events sent (SSE), per second.
    pub per_sec: f64,
    /// Bytes written to clients per second.
    pub out_bytes: f64,
    /// Bytes read from clients per second.
    pub in_bytes: f64,
}

/// The server's cost per transport, and its CPU time, per second over [`COST_WINDOW`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// By [`Transport`], in the order of [`Transport::ALL`].
    pub transports: [Rates; Transport::ALL.len()],
    /// CPU seconds per second of the whole process (or processes, summed over instances):
    /// the server's threads serve every transport at once, so this is not split.
    pub cpu: f64,
}

impl Cost {
    /// The sum of several instances' costs.
    pub fn add(&mut self, other: &Cost) {
        for (mine, theirs) in self.transports.iter_mut().zip(&other.transports) {
            mine.per_sec += theirs.per_sec;
            mine.out_bytes += theirs.out_bytes;
            mine.in_bytes += theirs.in_bytes;
        }
        self.cpu += other.cpu;
    }

    /// Whether every number is one a server could have measured (finite, not negative, not
    /// absurd): the test a cost read from Redis must pass.
    pub fn is_plausible(&self) -> bool {
        let plausible = |x: f64| x.is_finite() && (0.0..1e13).contains(&x);
        plausible(self.cpu)
            && self
                .transports
                .iter()
                .all(|r| plausible(r.per_sec) && plausible(r.out_bytes) && plausible(r.in_bytes))
    }
}

/// The readings of the last [`COST_WINDOW`] (and one before it), taken once a second by the
/// class task: the cost is the change from the oldest to the newest.
#[derive(Debug)]
pub struct CostWindow {
    samples: VecDeque<Sample>,
}

impl CostWindow {
    /// A window with one reading, taken now.
    pub fn new(metrics: &Metrics) -> CostWindow {
        CostWindow {
            samples: VecDeque::from([Sample::take(metrics)]),
        }
    }

    /// Takes a reading now, and forgets those older than the window needs.
    pub fn sample(&mut self, metrics: &Metrics) {
        let now = Sample::take(metrics);
        while self.samples.len() > 1 && now.at.duration_since(self.samples[0].at) > COST_WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(now);
    }

    /// The cost per second over the window (zero before the second reading).
    pub fn cost(&self) -> Cost {
        match (self.samples.front(), self.samples.back()) {
            (Some(first), Some(last)) if self.samples.len() > 1 => last.since(first),
            _ => Cost::default(),
        }
    }
}

/// One reading of the counters behind [`Cost`].
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    counts: [[u64; 3]; Transport::ALL.len()],
    cpu: Duration,
}

impl Sample {
    fn take(metrics: &Metrics) -> Sample {
        let mut counts = [[0; 3]; Transport::ALL.len()];
        for (i, t) in Transport::ALL.iter().enumerate() {
            counts[i] = [
                metrics.transport_events(*t),
                metrics.bytes_out[*t as usize].load(Ordering::Relaxed),
                metrics.bytes_in[*t as usize].load(Ordering::Relaxed),
            ];
        }
        Sample {
            at: Instant::now(),
            counts,
            cpu: process_cpu_time(),
        }
    }

    /// The rates from `earlier` to this sample.
    fn since(&self, earlier: &Sample) -> Cost {
        let secs = self.at.duration_since(earlier.at).as_secs_f64().max(0.001);
        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
        let mut cost = Cost {
            cpu: self.cpu.saturating_sub(earlier.cpu).as_secs_f64() / secs,
            ..Cost::default()
        };
        for (i, rates) in cost.transports.iter_mut().enumerate() {
            let (now, then) = (self.counts[i], earlier.counts[i]);
            *rates = Rates {
                per_sec: rate(now[0], then[0]),
                out_bytes: rate(now[1], then[1]),
                in_bytes: rate(now[2], then[2]),
            };
        }
        cost
    }
}

/// The CPU time (user and system) this process has used, all threads together.
#[cfg(unix)]
pub fn process_cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The CPU time this process has used: not measured on this platform.
#[cfg(not(unix))]
pub fn process_cpu_time() -> Duration {
    Duration::ZERO
}
