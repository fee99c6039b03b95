//! A run: a fresh server, every transport's clients at once against the same feed, and a
//! recorder beside them noting every tick the feed made, the truth the clients are judged
//! against.

use std::collections::BTreeMap;
use std::time::Duration;

use tickerlab::Config;
use tokio::time::Instant;

use crate::cli::Settings;
use crate::measure::{Row, row};
use crate::report;
use crate::support::output;
use crate::support::server::InProcess;
use crate::support::tick_fields::now_ms;
use crate::transport::{Observed, Transport};

/// One run per round trip, one after the other (so they do not compete for the cores),
/// each against a fresh server with the same seed; then one table, CSV, JSON and plot.
pub async fn all(settings: Settings) {
    let machine = output::machine();
    let rtts = settings.rtts();
    let mut rows = Vec::new();
    let mut feed_ticks = Vec::new();
    for &rtt_ms in &rtts {
        let (run_rows, ticks) = once(&settings, rtt_ms, &machine).await;
        rows.extend(run_rows);
        feed_ticks.push(ticks);
    }
    report::report(&settings, &machine, &rows, &feed_ticks).await;
}

/// One run: a fresh server (with the simulated network at `rtt_ms` when given), every
/// transport's clients at once, the rows, and how many ticks the feed made.
async fn once(settings: &Settings, rtt_ms: Option<u64>, machine: &str) -> (Vec<Row>, u64) {
    let Settings {
        secs,
        tick_ms,
        ref intervals,
        pollers,
        ..
    } = *settings;
    let config = Config {
        port: 0,
        tick_ms,
        seed: Some(1),
        lab_rtt_ms: rtt_ms,
        ..Config::default()
    };
    let server = InProcess::start(config);
    // Through the relay when there is one: the same path a browser tab on the lab port takes.
    let addr = server.lab_addr.unwrap_or(server.addr);
    let symbol = server.feed.symbols()[0].clone();
    let mut transports = vec![Transport::WebSocket, Transport::Sse, Transport::LongPoll];
    transports.extend(
        intervals
            .iter()
            .map(|&interval_ms| Transport::Polling { interval_ms }),
    );
    // Warm-up and grace cover the longest polling interval and a few round trips (the
    // handshakes), so every client has shown a price before the window opens and has had
    // its chance to see every tick made in it.
    let longest = intervals.iter().copied().max().unwrap_or(0) as f64;
    let margin = longest + 500.0 + 3.0 * rtt_ms.unwrap_or(0) as f64;
    let start = now_ms();
    let window = (start + margin, start + margin + secs * 1000.0);
    let stop_at = Instant::now() + Duration::from_secs_f64((2.0 * margin + secs * 1000.0) / 1000.0);
    eprintln!(
        "latency bench: tick {tick_ms} ms, RTT {}, {} transports, {secs} s measured ({:.1} s in all), {machine}",
        rtt_ms.map_or("direct".into(), |ms| format!("{ms} ms")),
        transports.len(),
        (2.0 * margin + secs * 1000.0) / 1000.0
    );

    // Every tick the server makes, straight from the feed: the truth the clients are judged
    // against. (A watch channel could skip a value if this task stalled for a whole tick;
    // the clients' own receipts fill any such hole below.)
    let mut feed_rx = server.feed.subscribe();
    let recorder = tokio::spawn(async move {
        let mut made = BTreeMap::new();
        loop {
            {
                let snapshot = feed_rx.borrow_and_update();
                let tick = &snapshot.ticks[0].tick;
                made.insert(tick.seq, tick.ts);
            }
            tokio::select! {
                changed = feed_rx.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep_until(stop_at) => break,
            }
        }
        made
    });
    // One client per push transport and one long poller (every such client sees the same
    // thing), and `pollers` clients per
    // polling interval: each starts at a random phase against the ticks, because a single
    // poller whose interval divides the tick's keeps one fixed phase for the whole run and
    // would measure that phase, not polling.
    let clients: Vec<Vec<_>> = transports
        .iter()
        .map(|&t| {
            let count = if t.interval_ms().is_some() {
                pollers
            } else {
                1
            };
            (0..count)
                .map(|_| tokio::spawn(t.run(addr, symbol.clone(), stop_at)))
                .collect()
        })
        .collect();
    let mut observed: Vec<Vec<Observed>> = Vec::new();
    for row in clients {
        let mut seen = Vec::new();
        for client in row {
            seen.push(client.await.expect("client task"));
        }
        observed.push(seen);
    }
    let mut made = recorder.await.expect("recorder task");
    for seen in observed.iter().flatten() {
        for r in &seen.receipts {
            made.entry(r.seq).or_insert(r.ts);
        }
    }
    let feed_ticks = server.feed.ticks();
    server.stop().await;

    let rows = transports
        .iter()
        .zip(&observed)
        .map(|(&t, seen)| row(t, seen, &made, window, (tick_ms as f64, rtt_ms)))
        .collect();
    (rows, feed_ticks)
}
