//! What the Redis hop costs: tick-to-client delay through the backplane against the
//! in-process feed, measured on the same ticks at the same time.
//!
//! ```sh
//! cargo bench --bench backplane                          # needs redis-server on PATH
//! cargo bench --bench backplane -- --ticks 1000 --tick-ms 20
//! BENCH_TICKS=1000 BENCH_TICK_MS=20 cargo bench --bench backplane
//! ```
//!
//! It starts a `redis-server` on a free loopback port, one publisher and two front-ends (all
//! in this process, each with its own HTTP worker), and one WebSocket client on each. Every
//! client records `now - ts` for the same ticks: `ts` is when the publisher made the price,
//! and everything runs on one machine, so the clocks agree. The publisher's own client is the
//! in-process baseline (market -> watch channel -> socket); the front-ends' clients add
//! PUBLISH -> Redis -> SUBSCRIBE -> relay. The difference is the hop.

#[path = "../tests/common/redis_server.rs"]
mod redis_server;
mod support;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use clap::Parser;
use futures_util::StreamExt;
use redis_server::RedisServer;
use support::cli::CargoArgs;
use support::stats::{Summary, summary};
use support::tick_fields::{TickFields, now_ms};
use tickerlab::Config;
use tokio_tungstenite::tungstenite::Message;

/// What the command line (or the environment) asked for. `cargo bench --bench backplane --
/// --help` prints it.
#[derive(Debug, Parser)]
#[command(
    name = "backplane",
    bin_name = "cargo bench --bench backplane --",
    about = "What the Redis hop costs: tick-to-client delay through the backplane against the \
             in-process feed, on the same ticks at the same time (needs redis-server on PATH)."
)]
struct Settings {
    /// Ticks each client records.
    #[arg(long, env = "BENCH_TICKS", default_value_t = 400)]
    ticks: u64,
    /// Milliseconds between two ticks of the feed.
    #[arg(long, env = "BENCH_TICK_MS", default_value_t = 50)]
    tick_ms: u64,
    #[command(flatten)]
    cargo: CargoArgs,
}

fn main() {
    let settings = Settings::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    runtime.block_on(run(settings.ticks, settings.tick_ms));
}

async fn run(ticks: u64, tick_ms: u64) {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let config = |publisher: bool| Config {
        port: 0,
        tick_ms,
        seed: Some(7),
        workers: Some(1),
        redis: Some(redis.url()),
        feed_publisher: publisher,
        ..Config::default()
    };
    let publisher = start(config(true));
    let front_ends = [start(config(false)), start(config(false))];
    // Let the front-ends connect and the feed settle before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let paths = [
        ("in-process (publisher's own client)", publisher),
        ("through Redis (front-end 1)", front_ends[0]),
        ("through Redis (front-end 2)", front_ends[1]),
    ];
    let clients: Vec<_> = paths
        .iter()
        .map(|(_, addr)| tokio::spawn(delays(*addr, ticks)))
        .collect();
    let mut results: Vec<(&str, Summary)> = Vec::new();
    for ((name, _), client) in paths.iter().zip(clients) {
        let mut delays = client.await.expect("client task");
        results.push((*name, summary(&mut delays)));
    }

    println!(
        "\ntick-to-client delay, {ticks} ticks of ACME every {tick_ms} ms, \
         1 publisher + 2 front-ends + redis-server on one machine (`cargo bench --bench backplane`)\n"
    );
    println!(
        "{:<38} {:>5} {:>8} {:>8} {:>8} {:>8}",
        "path", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for (name, d) in &results {
        println!(
            "{:<38} {:>5} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            name, d.count, d.p50, d.p90, d.p99, d.max,
        );
    }
    let base = results[0].1.p50;
    for (name, d) in &results[1..] {
        println!("added by the hop, {name}: p50 {:+.3} ms", d.p50 - base);
    }
    drop(redis);
}

/// Starts one instance in this runtime and returns its address.
fn start(config: Config) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let app = tickerlab::serve(config, listener).expect("serve");
    let addr = app.local_addr();
    tokio::spawn(app.run());
    addr
}

/// Connects to `/ws?symbols=ACME` and records `now - ts` of the next `count` ticks after
/// skipping the first (the snapshot sent on connect, which is old by design).
async fn delays(addr: SocketAddr, count: u64) -> Vec<f64> {
    let url = format!("ws://{addr}/ws?symbols=ACME");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket handshake");
    let mut delays = Vec::with_capacity(count as usize);
    let mut first = true;
    while (delays.len() as u64) < count {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a tick within 10 s")
            .expect("socket open")
            .expect("socket error");
        let Message::Text(text) = message else {
            continue;
        };
        let now = now_ms();
        let Some(tick) = TickFields::parse(&text) else {
            continue; // hello
        };
        if std::mem::take(&mut first) {
            continue;
        }
        delays.push(now - tick.ts);
    }
    delays
}
