//! Push or poll, at the same delivered rate: N clients pushed a price every 100 ms on `/ws`
//! (a fan-out step), against N keep-alive connections each sending `GET /price` once per
//! 100 ms, their phases spread evenly over the interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::crowd::{CONNECT_CONCURRENCY, MEASURING, WARMING, measure_for, wait_connected};
use crate::step::{SETTLE, Step};
use crate::step_table::{clients, share};
use crate::support::http_client::HttpClient;
use crate::support::output::{self, Table, num};
use crate::support::server::{ChildServer, process_usage};
use crate::support::stats::{Summary, summary};
use crate::support::tick_fields::{TickFields, now_ms};

/// The push-versus-poll and churn steps' tick: a price every 100 ms, polled every 100 ms.
pub const PUSH_POLL_TICK_MS: u64 = 100;

/// One polling step's figures: `clients` keep-alive connections, each sending `GET /price`
/// once per tick interval.
#[derive(Debug, Clone, Serialize)]
pub struct PollStep {
    pub clients: usize,
    pub connected: usize,
    pub interval_ms: u64,
    pub secs: f64,
    pub responses: u64,
    pub responses_per_sec: f64,
    /// Responses whose `seq` was newer than the client's previous one.
    pub new_prices: u64,
    /// Responses with the same `seq` as the client's previous one: a price polled twice.
    pub repeats: u64,
    /// `seq`s a client never saw: ticks between two of its responses.
    pub missed: u64,
    /// Intervals a client skipped because its previous request was still out.
    pub skipped_polls: u64,
    /// How old the price was when its response arrived (receive time - `ts`).
    pub age: Summary,
    /// Request to response.
    pub latency: Summary,
    pub server_cpu_pct: f64,
    pub server_system_share: f64,
    pub server_cpu_us_per_response: f64,
    pub server_cpu_us_per_new_price: f64,
    pub client_cpu_pct: f64,
    pub bytes_per_response: f64,
    pub bytes_per_new_price: f64,
    pub errors: u64,
}

/// What one polling client saw while the step was measuring.
#[derive(Default)]
struct PollRecord {
    ages: Vec<f32>,
    latencies: Vec<f32>,
    responses: u64,
    new_prices: u64,
    repeats: u64,
    missed: u64,
    skipped_polls: u64,
    bytes: u64,
    errors: u64,
}

/// `n` keep-alive connections each sending `GET /price` once per `interval_ms` (a
/// `setInterval` poller), client `i` offset by `i / n` of the interval so the requests are
/// spread evenly over it, against a fresh server ticking at the same interval.
pub async fn poll_step(n: usize, interval_ms: u64, secs: f64) -> PollStep {
    let server = ChildServer::start(interval_ms, None).expect("start the server child");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let addr = server.addr;
    let phase = Arc::new(AtomicU8::new(WARMING));
    let connected = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let interval = Duration::from_millis(interval_ms);
    let base = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (phase, connected, stop, gate) =
                (phase.clone(), connected.clone(), stop.clone(), gate.clone());
            let offset = interval.mul_f64(i as f64 / n as f64);
            tokio::spawn(async move {
                let mut record = PollRecord::default();
                let client = {
                    let _permit = gate.acquire().await;
                    HttpClient::connect(addr, "/price").await
                };
                let Ok(mut client) = client else {
                    record.errors += 1;
                    return record;
                };
                connected.fetch_add(1, Ordering::Relaxed);
                // The first poll at this client's phase of the interval, from now on.
                let mut first = base + offset;
                while first < tokio::time::Instant::now() {
                    first += interval;
                }
                let mut timer = tokio::time::interval_at(first, interval);
                timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let mut last_seq = 0;
                let mut due = first;
                let mut wire = client.bytes_read() + client.bytes_written();
                loop {
                    let fired = tokio::select! {
                        fired = timer.tick() => fired,
                        _ = stop.cancelled() => break,
                    };
                    let measuring = phase.load(Ordering::Relaxed) == MEASURING;
                    if measuring && fired > due {
                        // Skip keeps the phase: the intervals between were missed polls.
                        record.skipped_polls +=
                            ((fired - due).as_secs_f64() / interval.as_secs_f64()).round() as u64;
                    }
                    due = fired + interval;
                    let sent = Instant::now();
                    let response = match client.get().await {
                        Ok(r) if r.status == 200 => r,
                        _ => {
                            record.errors += 1;
                            break;
                        }
                    };
                    let Some(tick) = std::str::from_utf8(&response.body)
                        .ok()
                        .and_then(TickFields::parse)
                    else {
                        record.errors += 1;
                        break;
                    };
                    let now_wire = client.bytes_read() + client.bytes_written();
                    if measuring {
                        record.responses += 1;
                        record.latencies.push(sent.elapsed().as_secs_f32() * 1000.0);
                        record.ages.push((now_ms() - tick.ts) as f32);
                        record.bytes += now_wire - wire;
                        if tick.seq > last_seq {
                            record.new_prices += 1;
                            if last_seq > 0 {
                                record.missed += tick.seq - last_seq - 1;
                            }
                        } else {
                            record.repeats += 1;
                        }
                    }
                    wire = now_wire;
                    last_seq = last_seq.max(tick.seq);
                }
                record
            })
        })
        .collect();
    wait_connected(&connected, n, &tasks).await;
    tokio::time::sleep(SETTLE).await;
    let start_usage = server.usage();
    let client_start = process_usage(std::process::id());
    let elapsed = measure_for(&phase, secs).await;
    let end_usage = server.usage();
    let client_cpu = process_usage(std::process::id()).run_secs - client_start.run_secs;
    let connected = connected.load(Ordering::Relaxed);
    stop.cancel();
    let mut records = Vec::with_capacity(n);
    for task in tasks {
        records.push(task.await.unwrap_or_default());
    }
    server.stop();

    let sum = |f: fn(&PollRecord) -> u64| records.iter().map(f).sum::<u64>();
    let (responses, new_prices) = (sum(|r| r.responses), sum(|r| r.new_prices));
    let bytes = sum(|r| r.bytes);
    let collect = |f: fn(&PollRecord) -> &Vec<f32>| {
        records
            .iter()
            .flat_map(|r| f(r).iter().map(|&v| v as f64))
            .collect::<Vec<f64>>()
    };
    let (mut ages, mut latencies) = (collect(|r| &r.ages), collect(|r| &r.latencies));
    let cpu = end_usage.run_secs - start_usage.run_secs;
    let ticked_cpu = end_usage.cpu_secs - start_usage.cpu_secs;
    PollStep {
        clients: n,
        connected,
        interval_ms,
        secs: elapsed,
        responses,
        responses_per_sec: responses as f64 / elapsed,
        new_prices,
        repeats: sum(|r| r.repeats),
        missed: sum(|r| r.missed),
        skipped_polls: sum(|r| r.skipped_polls),
        age: summary(&mut ages),
        latency: summary(&mut latencies),
        server_cpu_pct: cpu / elapsed * 100.0,
        server_system_share: (end_usage.system_secs - start_usage.system_secs)
            / ticked_cpu.max(1e-9),
        server_cpu_us_per_response: cpu * 1e6 / responses.max(1) as f64,
        server_cpu_us_per_new_price: cpu * 1e6 / new_prices.max(1) as f64,
        client_cpu_pct: client_cpu / elapsed * 100.0,
        bytes_per_response: bytes as f64 / responses.max(1) as f64,
        bytes_per_new_price: bytes as f64 / new_prices.max(1) as f64,
        errors: sum(|r| r.errors),
    }
}

/// The two side by side, and the ratios poll / push.
pub fn report(push: &Step, poll: &PollStep) {
    println!(
        "\n### Push or poll, at the same delivered rate: one price per client per {} ms\n\n\
         Each a fresh server. Push: {} clients on `/ws`. Poll: {} keep-alive connections, each \
         `GET /price` once per interval, their phases spread evenly over it. A price delivered \
         by polling is a response, new or not; bytes are above TCP, both directions, as the \
         clients count them (handshakes excluded).\n",
        poll.interval_ms, push.clients, poll.clients
    );
    let t = pushpoll_table(push, poll);
    print!("{}", t.markdown());
    output::write("fanout-pushpoll.csv", &t.csv());
    println!(
        "\nPoll / push: CPU per price delivered {} x, per new price {} x; bytes per price \
         delivered {} x. Poll: {} responses, {} new, {} repeats, {} seqs missed, {} polls \
         skipped (previous request still out), {} errors; request latency p50 {:.2} ms, \
         p99 {:.2} ms.",
        num(
            poll.server_cpu_us_per_response / push.server_cpu_us_per_msg,
            2
        ),
        num(
            poll.server_cpu_us_per_new_price / push.server_cpu_us_per_msg,
            2
        ),
        num(poll.bytes_per_response / push.bytes_per_msg, 2),
        poll.responses,
        poll.new_prices,
        poll.repeats,
        poll.missed,
        poll.skipped_polls,
        poll.errors,
        poll.latency.p50,
        poll.latency.p99,
    );
}

/// Push (one WebSocket message per tick) beside poll (one `GET /price` per tick interval).
fn pushpoll_table(push: &Step, poll: &PollStep) -> Table {
    let mut t = Table::new(&[
        "transport",
        "clients",
        "prices delivered / s",
        "responses / s",
        "new prices / s",
        "repeats (same seq)",
        "missed seqs",
        "price age p50 ms",
        "price age p99 ms",
        "server CPU % of a core",
        "of which kernel",
        "CPU us / price delivered",
        "CPU us / new price",
        "bytes / price delivered",
        "client CPU %",
    ]);
    t.rows.push(vec![
        format!("push (/ws, tick {} ms)", push.tick_ms),
        clients(push.clients, push.connected),
        num(push.msgs_per_sec, 0),
        "-".into(),
        num(push.msgs_per_sec, 0),
        "0".into(),
        push.lost.to_string(),
        num(push.delay.p50, 2),
        num(push.delay.p99, 2),
        num(push.server_cpu_pct, 1),
        share(push.server_system_share),
        num(push.server_cpu_us_per_msg, 2),
        num(push.server_cpu_us_per_msg, 2),
        num(push.bytes_per_msg, 0),
        num(push.client_cpu_pct, 0),
    ]);
    t.rows.push(vec![
        format!("poll (GET /price every {} ms)", poll.interval_ms),
        clients(poll.clients, poll.connected),
        num(poll.responses_per_sec, 0),
        num(poll.responses_per_sec, 0),
        num(poll.new_prices as f64 / poll.secs, 0),
        poll.repeats.to_string(),
        poll.missed.to_string(),
        num(poll.age.p50, 2),
        num(poll.age.p99, 2),
        num(poll.server_cpu_pct, 1),
        share(poll.server_system_share),
        num(poll.server_cpu_us_per_response, 2),
        num(poll.server_cpu_us_per_new_price, 2),
        num(poll.bytes_per_response, 0),
        num(poll.client_cpu_pct, 0),
    ]);
    t
}
