//! Churn: does the server give memory back? RSS before any client, with many connected and
//! held, and after they all closed and the server counted its open WebSockets down to 0.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::Plan;
use crate::crowd::Crowd;
use crate::push_poll::PUSH_POLL_TICK_MS;
use crate::step::label;
use crate::step_table::clients;
use crate::support::output::{self, Table, num};
use crate::support::server::{ChildServer, Kind};

/// One churn step: memory before, with and after `clients` WebSockets.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnStep {
    pub server: String,
    pub clients: usize,
    pub connected: usize,
    pub hold_secs: f64,
    pub rss_before_kib: u64,
    pub rss_with_kib: u64,
    pub rss_after_kib: u64,
    pub after_over_before: f64,
    /// From the clients' disconnect to the server's open-WebSocket gauge reading 0 (NaN when
    /// it never did within the timeout).
    pub secs_to_zero_open: f64,
    pub open_at_end: u64,
}

/// How long the churn step waits for the server's open-WebSocket gauge to reach 0.
const CHURN_DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Memory before, with and after many WebSockets: a fresh server of `kind` at a 100 ms tick,
/// `--churn-clients` clients connected and held, all closed, then the gauge of open
/// WebSockets awaited down to 0 and `--churn-settle-secs` more.
pub async fn churn_step(kind: Kind, plan: &Plan) -> ChurnStep {
    let mut server =
        ChildServer::start_kind(kind, PUSH_POLL_TICK_MS, None).expect("start the server child");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.usage();
    let crowd = Crowd::connect(server.addr, plan.churn_clients).await;
    tokio::time::sleep(Duration::from_secs_f64(plan.churn_hold_secs)).await;
    let with = server.usage();
    let connected = crowd.connected();
    let left = Instant::now();
    crowd.finish().await;
    let mut open = u64::MAX;
    let mut secs_to_zero = f64::NAN;
    while left.elapsed() < CHURN_DRAIN_TIMEOUT {
        match server.open_websockets() {
            Ok(0) => {
                secs_to_zero = left.elapsed().as_secs_f64();
                open = 0;
                break;
            }
            Ok(n) => open = n,
            Err(e) => eprintln!("churn: cannot read the open-WebSocket gauge: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs_f64(plan.churn_settle_secs)).await;
    let after = server.usage();
    server.stop();
    ChurnStep {
        server: label(kind).into(),
        clients: plan.churn_clients,
        connected,
        hold_secs: plan.churn_hold_secs,
        rss_before_kib: before.rss_kib,
        rss_with_kib: with.rss_kib,
        rss_after_kib: after.rss_kib,
        after_over_before: after.rss_kib as f64 / before.rss_kib.max(1) as f64,
        secs_to_zero_open: secs_to_zero,
        open_at_end: open,
    }
}

/// Each server's memory before, with and after its clients, waited `settle_secs` after 0 open.
pub fn report(churn: &[ChurnStep], settle_secs: f64) {
    println!(
        "\n### Churn: does the server give memory back?\n\n\
         Each a fresh server at a {PUSH_POLL_TICK_MS} ms tick: RSS before any client, with the \
         clients connected and held, and {} s after its open-WebSocket gauge read 0 once they \
         had all closed.\n",
        settle_secs
    );
    let t = churn_table(churn);
    print!("{}", t.markdown());
    output::write("fanout-churn.csv", &t.csv());
}

fn churn_table(churn: &[ChurnStep]) -> Table {
    let mut t = Table::new(&[
        "server",
        "clients",
        "held s",
        "RSS before MiB",
        "RSS with clients MiB",
        "RSS after MiB",
        "after / before",
        "s until 0 open",
    ]);
    for c in churn {
        t.rows.push(vec![
            c.server.clone(),
            clients(c.clients, c.connected),
            num(c.hold_secs, 1),
            num(c.rss_before_kib as f64 / 1024.0, 1),
            num(c.rss_with_kib as f64 / 1024.0, 1),
            num(c.rss_after_kib as f64 / 1024.0, 1),
            num(c.after_over_before, 2),
            if c.open_at_end == 0 {
                num(c.secs_to_zero_open, 1)
            } else {
                format!("never ({} still open)", c.open_at_end)
            },
        ]);
    }
    t
}
