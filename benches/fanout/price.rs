//! `GET /price` throughput: keep-alive connections each requesting as fast as answers come.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::crowd::{MEASURING, WARMING, measure_for};
use crate::support::http_client::HttpClient;
use crate::support::server::ChildServer;
use crate::support::stats::{Summary, summary};

/// The `GET /price` throughput step's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PriceStep {
    pub connections: usize,
    pub secs: f64,
    pub requests: u64,
    pub req_per_sec: f64,
    pub latency: Summary,
    pub server_cpu_pct: f64,
    pub errors: u64,
}

/// `connections` keep-alive connections, each sending `GET /price` as soon as the previous
/// answer arrived, for `secs` after a one-second warm-up.
pub async fn price_step(connections: usize, secs: f64) -> PriceStep {
    let server = ChildServer::start(100, None).expect("start the server child");
    let addr = server.addr;
    let phase = Arc::new(AtomicU8::new(WARMING));
    let stop = CancellationToken::new();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (phase, stop) = (phase.clone(), stop.clone());
            tokio::spawn(async move {
                let mut latencies: Vec<f32> = Vec::new();
                let mut errors = 0u64;
                let Ok(mut client) = HttpClient::connect(addr, "/price").await else {
                    return (latencies, 1);
                };
                while !stop.is_cancelled() {
                    let sent = Instant::now();
                    match client.get().await {
                        Ok(r) if r.status == 200 => {
                            if phase.load(Ordering::Relaxed) == MEASURING {
                                latencies.push(sent.elapsed().as_secs_f32() * 1000.0);
                            }
                        }
                        _ => {
                            errors += 1;
                            break;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start_usage = server.usage();
    let elapsed = measure_for(&phase, secs).await;
    let end_usage = server.usage();
    stop.cancel();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((l, e)) = task.await {
            latencies.extend(l.into_iter().map(f64::from));
            errors += e;
        }
    }
    server.stop();
    let requests = latencies.len() as u64;
    PriceStep {
        connections,
        secs: elapsed,
        requests,
        req_per_sec: requests as f64 / elapsed,
        latency: summary(&mut latencies),
        server_cpu_pct: (end_usage.cpu_secs - start_usage.cpu_secs) / elapsed * 100.0,
        errors,
    }
}

/// Requests per second and their latency, in one line.
pub fn report(p: &PriceStep) {
    println!(
        "\n`GET /price`, {} keep-alive connections, {:.1} s: {:.0} req/s, latency p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms, server CPU {:.0}% of a core, {} errors.",
        p.connections,
        p.secs,
        p.req_per_sec,
        p.latency.p50,
        p.latency.p99,
        p.latency.max,
        p.server_cpu_pct,
        p.errors
    );
}
