//! Latest value wins: one client stops reading for 2000 ticks (20 s at a 10 ms tick) while
//! 50 others read.
//!
//! What must hold, each checked on numbers the app exposes or the clients saw, never on time:
//! * the 50 readers see every `seq`, no gap, throughout;
//! * the stalled client's connection is held at its bound (`tickerlab_ws_send_waiting` is 1
//!   from halfway through the stall on: its socket takes no more bytes) instead of queueing
//!   the 2000 ticks;
//! * on resuming, the stalled client reads a bounded backlog (what sat in the write buffer
//!   and the socket buffers), then jumps to the newest tick; the seq gaps are the ticks it
//!   skipped, and the server counted them (`tickerlab_ws_ticks_skipped_total`).
//!
//! The stalled client's socket gets a small receive buffer (`SO_RCVBUF`): on loopback the
//! kernel would otherwise absorb megabytes, and the server would never feel the stall.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Ws, hello, metric, metrics_text, next_json, spawn_app, test_config};
use tickerlab::Config;
use tokio::net::TcpSocket;

const READERS: usize = 50;
/// How long the stalled client reads nothing, in ticks of the feed: 20 s at the 10 ms tick.
/// Counted, not timed: a loaded machine's feed ticks less often, and a timed stall would pile
/// up fewer ticks than the bounds asserted below assume. (Well under the 60 s client timeout
/// even at half speed.)
const STALL_TICKS: u64 = 2000;

/// A reader: checks every tick follows the previous one; returns the ticks read as
/// (server timestamp, tick-to-client delay), both in ms.
async fn read_every_tick(mut ws: Ws, stop: Arc<AtomicBool>) -> (u64, Vec<(f64, f64)>) {
    let mut last = None;
    let mut count = 0;
    let mut delays = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let tick = next_json(&mut ws).await;
        assert_eq!(tick["type"], "tick");
        let seq = tick["seq"].as_u64().unwrap();
        if let Some(last) = last {
            assert_eq!(seq, last + 1, "a reading client missed a tick");
        }
        last = Some(seq);
        count += 1;
        let ts = tick["ts"].as_f64().unwrap();
        delays.push((ts, tickerlab::tick::epoch_ms() - ts));
    }
    (count, delays)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_skips_ticks_and_costs_the_others_nothing() {
    let config = Config {
        tick_ms: 10,
        heartbeat_secs: 10,
        client_timeout_secs: 60, // longer than the stall: this client is slow, not dead
        ..test_config()
    };
    let app = spawn_app(config).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let mut ws = app.ws("/ws").await;
        hello(&mut ws).await;
        readers.push(tokio::spawn(read_every_tick(ws, stop.clone())));
    }

    // The client that will stall, on a socket with a small receive buffer.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.addr).await.unwrap();
    let (mut stalled, _) = tokio_tungstenite::client_async(
        app.ws_url("/ws"),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    hello(&mut stalled).await;
    let mut before = 0;
    for _ in 0..20 {
        let tick = next_json(&mut stalled).await;
        before = tick["seq"].as_u64().unwrap();
    }
    let skipped_at_start = metric(
        &metrics_text(&app).await,
        "tickerlab_ws_ticks_skipped_total",
    );

    // Stall: read nothing while the feed makes STALL_TICKS ticks. Sample the gauge every 100.
    let stall_start_ms = tickerlab::tick::epoch_ms();
    let mut waiting_samples = Vec::new();
    for step in 1..=STALL_TICKS / 100 {
        common::wait_for_ticks(&app, before + step * 100).await;
        let text = metrics_text(&app).await;
        waiting_samples.push(metric(&text, "tickerlab_ws_send_waiting"));
    }
    let ticks_at_resume = app.feed.ticks();
    let stall_end_ms = tickerlab::tick::epoch_ms();
    // From halfway through the stall on, the stalled session must be parked at its bound (by
    // then the feed has produced far more than the queue, write buffer and socket buffers
    // hold).
    let halfway = waiting_samples.len() / 2 - 1; // the sample taken at STALL_TICKS / 2
    assert!(
        waiting_samples[halfway..].iter().all(|&n| n == 1),
        "the stalled session waits at its bounded queue: {waiting_samples:?}"
    );

    // Resume: first the backlog that was already queued (ticks older than the newest at the
    // resume), then the newest. Every seq gap the client sees is ticks skipped for it: the
    // jump at the resume and, on a loaded machine, a few earlier ones, where a send waited
    // on the not-yet-parked client long enough to count it as slow.
    let mut backlog = 0u64;
    let mut gaps = 0u64;
    let mut last = before;
    let after_jump = loop {
        let seq = next_json(&mut stalled).await["seq"].as_u64().unwrap();
        assert!(seq > last, "seq {seq} after {last}");
        gaps += seq - last - 1;
        if seq >= ticks_at_resume {
            break seq;
        }
        last = seq;
        backlog += 1;
    };
    let stalled_ticks = ticks_at_resume - before;
    eprintln!(
        "stall: {stalled_ticks} ticks; backlog read on resume: {backlog}; then seq {last} -> \
         {after_jump} (skipped {gaps} in all); waiting gauge samples {waiting_samples:?}"
    );
    assert!(
        backlog < 1000 && backlog < stalled_ticks / 2,
        "what was queued for the stalled client is bounded, then it resumes at the newest \
         tick: {backlog} of {stalled_ticks} ticks read before seq {ticks_at_resume}"
    );
    let skipped = metric(
        &metrics_text(&app).await,
        "tickerlab_ws_ticks_skipped_total",
    ) - skipped_at_start;
    assert!(
        skipped >= gaps,
        "the server counted what it skipped ({skipped} >= {gaps})"
    );
    // After the jump it streams normally again.
    let mut seq = after_jump;
    for _ in 0..20 {
        let next = next_json(&mut stalled).await["seq"].as_u64().unwrap();
        assert!(next > seq);
        seq = next;
    }

    stop.store(true, Ordering::Relaxed);
    let (mut before_stall, mut during_stall) = (Vec::new(), Vec::new());
    for reader in readers {
        let (count, delays) = reader.await.expect("a reader saw a gap");
        assert!(
            count >= stalled_ticks / 2,
            "each reader kept reading ({count})"
        );
        for (ts, delay) in delays {
            if ts < stall_start_ms {
                before_stall.push(delay);
            } else if ts < stall_end_ms {
                during_stall.push(delay);
            }
        }
    }
    // Delay is printed, not asserted: timing belongs in benches/.
    eprintln!(
        "readers' median tick-to-client delay: {:.2} ms before the stall, {:.2} ms during it",
        median(before_stall),
        median(during_stall)
    );
}
