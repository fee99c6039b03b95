//! The flags of the latency bench, each with an environment fallback:
//! `cargo bench --bench latency -- --help` prints them.

use clap::Parser;

use crate::support::cli::CargoArgs;

/// What the command line (or the environment) asked for: what each run measures, and the
/// round trips to run it at. `cargo bench --bench latency -- --help` prints it.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "latency",
    bin_name = "cargo bench --bench latency --",
    about = "How much fresher and cheaper is push than polling? One client per transport \
             (WebSocket, SSE, long polling, polling at several intervals) against the same feed."
)]
pub struct Settings {
    /// Seconds measured in each run.
    #[arg(long, env = "BENCH_SECS", default_value_t = 30.0)]
    pub secs: f64,
    /// Milliseconds between two ticks of the feed.
    #[arg(long, env = "BENCH_TICK_MS", default_value_t = 50)]
    pub tick_ms: u64,
    /// Polling periods in milliseconds, comma-separated: one row of polling clients each.
    #[arg(long, env = "BENCH_INTERVALS", value_delimiter = ',', default_values_t = [50, 100, 250, 500, 1000])]
    pub intervals: Vec<u64>,
    /// Polling clients per period, started at random phases and pooled into one row.
    #[arg(long, env = "BENCH_POLLERS", default_value_t = 8)]
    pub pollers: usize,
    /// Round trips in milliseconds, comma-separated: one run per value, every client going
    /// through the app's simulated network (its --lab-rtt-ms). Without it, one run with the
    /// clients connected directly over loopback.
    #[arg(long, env = "BENCH_RTT_MS", value_delimiter = ',')]
    pub rtt_ms: Vec<u64>,
    #[command(flatten)]
    cargo: CargoArgs,
}

impl Settings {
    /// One entry per run: a round trip, or `None` for the direct run.
    pub fn rtts(&self) -> Vec<Option<u64>> {
        if self.rtt_ms.is_empty() {
            vec![None]
        } else {
            self.rtt_ms.iter().copied().map(Some).collect()
        }
    }
}
