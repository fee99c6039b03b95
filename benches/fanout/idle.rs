//! Memory per idle connection: the largest N of clients connected to a server whose feed
//! ticks once a minute.

use std::time::Duration;

use crate::crowd::Crowd;
use crate::step::{SETTLE, Step, TICKERLAB, per_connection};
use crate::support::output::load_average;
use crate::support::server::ChildServer;
use crate::support::stats::summary;
use crate::timeline::Timeline;

/// `n` clients connected to a server whose feed ticks once a minute: the memory an idle
/// connection costs.
pub async fn idle_step(n: usize) -> Step {
    let load_average = load_average();
    let mut server = ChildServer::start(60_000, None).expect("start the server child");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.usage();
    let crowd = Crowd::connect(server.addr, n).await;
    tokio::time::sleep(SETTLE).await;
    let after = server.usage();
    let counters = server.counters().unwrap_or_default();
    let connected = crowd.connected();
    crowd.finish().await;
    server.stop();
    Step {
        server: TICKERLAB.into(),
        tick_ms: 60_000,
        clients: n,
        connected,
        secs: 0.0,
        msgs_per_sec: 0.0,
        expected_msgs_per_sec: 0.0,
        delay: summary(&mut []),
        lost: 0,
        server_cpu_pct: f64::NAN,
        server_system_share: f64::NAN,
        server_cpu_us_per_msg: f64::NAN,
        client_cpu_pct: f64::NAN,
        server_runq_wait_ms_per_s: f64::NAN,
        rss_before_kib: before.rss_kib,
        rss_kib: after.rss_kib,
        rss_per_conn_kib: per_connection(before, after, connected),
        server_threads: after.threads,
        serialisations_per_tick_per_symbol: counters.serialisations as f64
            / (counters.ticks * counters.symbols.max(1)).max(1) as f64,
        bytes_per_msg: f64::NAN,
        transient_secs: 0.0,
        transient: None,
        transient_lost: 0,
        timeline: Timeline::default(),
        load_average,
        neighbour_cpu_pct: None,
    }
}

/// The memory an idle connection may cost, in KiB: the target of `docs/benchmarks.md`.
const IDLE_TARGET_KIB: f64 = 12.0;

/// RSS per idle connection, against [`IDLE_TARGET_KIB`].
pub fn report(idle: &Step) {
    println!(
        "\nIdle connections: {} clients at a 60 s tick: server RSS {:.1} MiB -> {:.1} MiB, \
         {:.1} KiB per idle connection (target <= {IDLE_TARGET_KIB} KiB: {}).",
        idle.connected,
        idle.rss_before_kib as f64 / 1024.0,
        idle.rss_kib as f64 / 1024.0,
        idle.rss_per_conn_kib,
        if idle.rss_per_conn_kib <= IDLE_TARGET_KIB {
            "met"
        } else {
            "MISSED"
        }
    );
}
