//! The fan-out step: a fresh server in a child process, N WebSocket clients, a bounded time
//! of measuring; its figures come from the clients' records, the child's `/proc` files and
//! the feed's own counters, and its timeline from every tick the clients received since the
//! first of them started to connect. The same step measures tickerlab and the floor, each
//! with a noisy neighbour on one core when asked (`--neighbour`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use crate::crowd::{CONNECT_TIMEOUT, Crowd, TRANSIENT, measure_for};
use crate::support::neighbour::Neighbour;
use crate::support::output::{load_average, num};
use crate::support::server::{ChildServer, Kind, Usage, process_usage};
use crate::support::stats::{Summary, summary};
use crate::timeline::Timeline;

/// Time after the last client connected before measuring, so start-up work is not counted.
pub const SETTLE: Duration = Duration::from_secs(1);
/// The row label of the bench's own minimal server (see `support::floor`).
pub const FLOOR: &str = "floor (tokio, frame once)";
/// The row label of the floor served by one single-threaded runtime per core.
pub const PINNED_FLOOR: &str = "floor, pinned (a runtime per core)";
/// The row label of the real app.
pub const TICKERLAB: &str = "tickerlab";

/// One fan-out step's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `tickerlab`, or the floor server.
    pub server: String,
    pub tick_ms: u64,
    pub clients: usize,
    pub connected: usize,
    pub secs: f64,
    pub msgs_per_sec: f64,
    pub expected_msgs_per_sec: f64,
    pub delay: Summary,
    pub lost: u64,
    pub server_cpu_pct: f64,
    /// Share of the server's CPU time spent in the kernel.
    pub server_system_share: f64,
    pub server_cpu_us_per_msg: f64,
    /// This process's CPU (the clients), % of one core: near 200% on two cores means the
    /// clients, not the server, were the limit.
    pub client_cpu_pct: f64,
    /// Milliseconds per second the server's threads were ready but waited for a core.
    pub server_runq_wait_ms_per_s: f64,
    pub rss_before_kib: u64,
    pub rss_kib: u64,
    pub rss_per_conn_kib: f64,
    pub server_threads: u64,
    pub serialisations_per_tick_per_symbol: f64,
    /// Bytes on the wire (above TCP, both directions, as the clients count them) per message.
    pub bytes_per_msg: f64,
    /// The start-up transient: delays over the first `transient_secs` after the last client
    /// joined, when asked for (`--transient-secs`); the step's `delay` is the window after.
    pub transient_secs: f64,
    pub transient: Option<Summary>,
    pub transient_lost: u64,
    /// The run second by second, from the first client's connect to the end of measuring.
    pub timeline: Timeline,
    /// The 1-minute load average when the step started.
    pub load_average: f64,
    /// The noisy neighbour's CPU over the step, % of one core, when `--neighbour` ran one.
    pub neighbour_cpu_pct: Option<f64>,
}

/// One fan-out step: a fresh server of `kind`, `n` clients, `secs` of measuring. With
/// `transient_secs` > 0, the first `transient_secs` after the last client joined are recorded
/// apart (the start-up transient) and measuring starts after them; otherwise after `SETTLE`.
/// With `neighbour`, a CPU burner spins on one core from before the server starts to the end.
pub async fn ws_step(
    kind: Kind,
    n: usize,
    tick_ms: u64,
    secs: f64,
    transient_secs: f64,
    neighbour: bool,
) -> Step {
    let load_average = load_average();
    let neighbour = neighbour.then(|| {
        Neighbour::start(step_bound(secs, transient_secs)).expect("start the neighbour child")
    });
    let mut server = ChildServer::start_kind(kind, tick_ms, None).expect("start the server child");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.usage();
    let crowd = Crowd::connect(server.addr, n).await;
    if transient_secs > 0.0 {
        crowd.phase.store(TRANSIENT, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs_f64(transient_secs)).await;
    } else {
        tokio::time::sleep(SETTLE).await;
    }
    let connected_usage = server.usage();
    let counters_start = server.counters().unwrap_or_default();
    let client_start = process_usage(std::process::id());
    let measure_from = crowd.epoch.elapsed().as_secs_f64();
    let elapsed = measure_for(&crowd.phase, secs).await;
    let counters_end = server.counters().unwrap_or_default();
    let end_usage = server.usage();
    let client_cpu = process_usage(std::process::id()).run_secs - client_start.run_secs;
    let connected = crowd.connected();
    let records = crowd.finish().await;
    server.stop();
    let neighbour_cpu_pct = neighbour.map(Neighbour::stop);
    let timeline = Timeline::new(
        &records,
        measure_from,
        measure_from + elapsed,
        transient_secs > 0.0,
    );

    let messages: u64 = records.iter().map(|r| r.messages).sum();
    let lost = records.iter().map(|r| r.lost).sum();
    let mut delays: Vec<f64> = records
        .iter()
        .flat_map(|r| r.delays.iter().map(|&d| d as f64))
        .collect();
    let mut transient_delays: Vec<f64> = records
        .iter()
        .flat_map(|r| r.transient_delays.iter().map(|&d| d as f64))
        .collect();
    let wire: u64 = records.iter().map(|r| r.bytes_read + r.bytes_written).sum();
    let ticks = counters_end.ticks.saturating_sub(counters_start.ticks) as f64;
    let serialisations = counters_end
        .serialisations
        .saturating_sub(counters_start.serialisations) as f64;
    // Nanosecond CPU time (schedstat): 10 ms clock ticks are too coarse per message.
    let cpu = end_usage.run_secs - connected_usage.run_secs;
    let ticked_cpu = end_usage.cpu_secs - connected_usage.cpu_secs;
    Step {
        server: label(kind).into(),
        tick_ms,
        clients: n,
        connected,
        secs: elapsed,
        msgs_per_sec: messages as f64 / elapsed,
        expected_msgs_per_sec: connected as f64 * ticks / elapsed,
        delay: summary(&mut delays),
        lost,
        server_cpu_pct: cpu / elapsed * 100.0,
        server_system_share: (end_usage.system_secs - connected_usage.system_secs)
            / ticked_cpu.max(1e-9),
        server_cpu_us_per_msg: cpu * 1e6 / (messages.max(1) as f64),
        client_cpu_pct: client_cpu / elapsed * 100.0,
        server_runq_wait_ms_per_s: (end_usage.runq_wait_secs - connected_usage.runq_wait_secs)
            * 1000.0
            / elapsed,
        rss_before_kib: before.rss_kib,
        rss_kib: connected_usage.rss_kib.max(end_usage.rss_kib),
        rss_per_conn_kib: per_connection(before, connected_usage, connected),
        server_threads: end_usage.threads,
        serialisations_per_tick_per_symbol: serialisations
            / (ticks * counters_end.symbols.max(1) as f64).max(1.0),
        bytes_per_msg: wire as f64 / messages.max(1) as f64,
        transient_secs,
        transient: (transient_secs > 0.0).then(|| summary(&mut transient_delays)),
        transient_lost: records.iter().map(|r| r.transient_lost).sum(),
        timeline,
        load_average,
        neighbour_cpu_pct,
    }
}

/// The longest a step may last: the neighbour is told to stop by itself after it, should the
/// bench never get to stop it.
fn step_bound(secs: f64, transient_secs: f64) -> Duration {
    let margin = Duration::from_secs(30);
    CONNECT_TIMEOUT + SETTLE + margin + Duration::from_secs_f64(secs + transient_secs)
}

/// The row label of a server kind.
pub fn label(kind: Kind) -> &'static str {
    match kind {
        Kind::Tickerlab => TICKERLAB,
        Kind::Floor => FLOOR,
        Kind::PinnedFloor => PINNED_FLOOR,
    }
}

/// RSS per connection, KiB: what the server grew by from `before` to `after`, shared out.
pub fn per_connection(before: Usage, after: Usage, connections: usize) -> f64 {
    (after.rss_kib as f64 - before.rss_kib as f64) / connections.max(1) as f64
}

/// The step in one line, for the progress on stderr.
pub fn step_line(s: &Step) -> String {
    let worst = s.timeline.worst();
    let neighbour = s
        .neighbour_cpu_pct
        .map_or_else(String::new, |cpu| format!(", neighbour cpu {cpu:.0}%"));
    format!(
        "{}: tick {} ms, {} clients ({} connected): {:.0} msg/s, p99 {:.2} ms, p99.9 {:.2} ms, worst second p99 {} ms (s {}), lost {}, server cpu {:.0}% (waited {:.0} ms/s for a core), client cpu {:.0}%{neighbour}, rss/conn {:.1} KiB, load {:.2}",
        s.server,
        s.tick_ms,
        s.clients,
        s.connected,
        s.msgs_per_sec,
        s.delay.p99,
        s.delay.p999,
        worst.map_or_else(|| "-".into(), |w| num(w.delay.p99, 2)),
        worst.map_or_else(|| "-".into(), |w| w.at.to_string()),
        s.lost,
        s.server_cpu_pct,
        s.server_runq_wait_ms_per_s,
        s.client_cpu_pct,
        s.rss_per_conn_kib,
        s.load_average,
    )
}
