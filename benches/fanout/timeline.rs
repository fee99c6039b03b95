//! A step second by second: the delay of the ticks delivered in each second of the run, from
//! the moment the first client started to connect to the end of the measuring window.
//!
//! A step's p99 over its whole window says how bad the slowest 1% of deliveries was, not
//! *when* they happened: one second in which the server stalled and nine quiet ones can give
//! the same p99 as ten evenly noisy seconds. Cut into seconds, a stall shows where it is:
//! while the clients join, in the seconds after, at a round of heartbeats. The **worst
//! second** is the one with the highest p99.
//!
//! Each second's figures are the same exact nearest-rank percentiles as the step's
//! (`support::stats`), over the ticks that *arrived* in that second, with how many arrived and
//! how many clients were connected at its end.

use serde::Serialize;

use crate::crowd::ClientRecord;
use crate::support::output::{Table, num};
use crate::support::stats::{Summary, summary};

/// One second of a step.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Second {
    /// Where it starts, in seconds since the first client started to connect.
    pub at: u32,
    /// Clients connected (hello received, not left) at its end.
    pub connected: usize,
    /// The delays of the ticks that arrived in it; `count` is the ticks delivered.
    pub delay: Summary,
}

/// A step's seconds, and the moments that divide them into phases.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    /// When the last client got its hello: the join lasted from 0 to here.
    pub joined_at: f64,
    /// When the measuring window started (after the settling time or the transient).
    pub measure_from: f64,
    /// When it ended: the timeline stops here.
    pub measure_to: f64,
    /// Whether the seconds between the join and the measuring window were the recorded
    /// start-up transient (`--transient-secs`) rather than the usual one-second settling.
    pub transient: bool,
    pub seconds: Vec<Second>,
}

impl Timeline {
    /// Cuts every arrival the clients recorded before `measure_to` into whole seconds.
    pub fn new(
        records: &[ClientRecord],
        measure_from: f64,
        measure_to: f64,
        transient: bool,
    ) -> Timeline {
        let count = measure_to.max(0.0).ceil() as usize;
        let mut delays: Vec<Vec<f64>> = vec![Vec::new(); count];
        let arrivals = records.iter().flat_map(|r| &r.arrivals);
        for &(at, delay) in arrivals.filter(|(at, _)| (*at as f64) < measure_to) {
            if let Some(second) = delays.get_mut(at as usize) {
                second.push(delay as f64);
            }
        }
        let seconds = delays
            .iter_mut()
            .enumerate()
            .map(|(at, delays)| Second {
                at: at as u32,
                connected: connected_at(records, (at + 1) as f32),
                delay: summary(delays),
            })
            .collect();
        let joined_at = records
            .iter()
            .filter_map(|r| r.connected_at)
            .fold(0.0, f32::max) as f64;
        Timeline {
            joined_at,
            measure_from,
            measure_to,
            transient,
            seconds,
        }
    }

    /// The second with the highest p99 among those that delivered ticks.
    pub fn worst(&self) -> Option<&Second> {
        self.seconds
            .iter()
            .filter(|s| s.delay.count > 0)
            .max_by(|a, b| a.delay.p99.total_cmp(&b.delay.p99))
    }

    /// What the step was doing when `second` started: `joining` (clients still connecting),
    /// `transient` or `settling` (after the last join, before measuring), `measuring`. So a
    /// second in which the last clients joined is a `joining` one.
    pub fn phase(&self, second: &Second) -> &'static str {
        let start = second.at as f64;
        if start < self.joined_at {
            "joining"
        } else if start < self.measure_from {
            if self.transient {
                "transient"
            } else {
                "settling"
            }
        } else {
            "measuring"
        }
    }
}

/// How many clients were connected at `t` seconds.
fn connected_at(records: &[ClientRecord], t: f32) -> usize {
    records
        .iter()
        .filter(|r| r.connected_at.is_some_and(|at| at <= t) && r.left_at.is_none_or(|at| at > t))
        .count()
}

/// The columns of a second's row, after those that say whose second it is.
pub const SECOND_COLUMNS: [&str; 8] = [
    "second",
    "phase",
    "ticks delivered",
    "connected",
    "delay p50 ms",
    "delay p99 ms",
    "delay p99.9 ms",
    "delay max ms",
];

/// The cells of every second of `timeline`, under [`SECOND_COLUMNS`].
pub fn second_rows(timeline: &Timeline) -> Vec<Vec<String>> {
    timeline
        .seconds
        .iter()
        .map(|s| {
            vec![
                s.at.to_string(),
                timeline.phase(s).into(),
                s.delay.count.to_string(),
                s.connected.to_string(),
                num(s.delay.p50, 2),
                num(s.delay.p99, 2),
                num(s.delay.p999, 2),
                num(s.delay.max, 2),
            ]
        })
        .collect()
}

/// The worst second in a table cell: its p99 (`-` when no second delivered anything).
pub fn worst_p99_cell(timeline: &Timeline) -> String {
    timeline
        .worst()
        .map_or_else(|| "-".into(), |s| num(s.delay.p99, 2))
}

/// Where the worst second was, in a table cell: "s 3 (joining)".
pub fn worst_at_cell(timeline: &Timeline) -> String {
    timeline.worst().map_or_else(
        || "-".into(),
        |s| format!("s {} ({})", s.at, timeline.phase(s)),
    )
}

/// An empty table of seconds, `whose` columns first.
pub fn seconds_table(whose: &[&str]) -> Table {
    let mut columns = whose.to_vec();
    columns.extend(SECOND_COLUMNS);
    Table::new(&columns)
}
