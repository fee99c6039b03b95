//! # `cargo bench --bench fanout`: how far does this server's fan-out go?
//!
//! For N WebSocket clients (default 1, 10, 100, 1000, 5000) at a 100 ms and a 10 ms tick,
//! each step starts a **fresh server in a child process** (this executable re-run with
//! `--serve-child`, which calls `tickerlab::serve` like the binary does), connects N clients
//! to `/ws`, lets them settle, then measures for a bounded time:
//!
//! * delivered messages per second (and what N clients x ticks per second would be);
//! * delivery delay, receive time - `ts`, p50 / p99 / max over every message of every client;
//! * ticks lost: `seq` gaps seen by clients that were reading all along;
//! * the server's CPU time (as % of one core) and resident memory, from `/proc/<pid>`; RSS per
//!   connection is (RSS with N clients - RSS before any) / N;
//! * serialisations per tick per symbol, from the feed's own counter (must be 1).
//!
//! The server runs in a process of its own so that its CPU time and memory are its own: the
//! clients' buffers are not counted as the server's. The clients run in this process on a
//! Tokio runtime with two threads; on a two-core machine they compete with the server for the
//! same cores, so the figures are a lower bound on what the server alone could do.
//!
//! Then an **idle** step connects the largest N at a 60 s tick to measure RSS per idle
//! connection, and a **`GET /price`** step runs 64 keep-alive connections requesting as fast
//! as they can: requests per second, latency p50/p99/max.
//!
//! Flags (or environment): `--secs 5` (`BENCH_SECS`) measuring time per step, `--clients
//! 1,10,100,1000,5000` (`BENCH_CLIENTS`), `--ticks 100,10` (`BENCH_TICKS`), `--only ws|idle|price`
//! to run one part. Output: Markdown on stdout; `fanout.csv`, `fanout.json`, `fanout.svg`
//! under `target/tickerlab-bench/`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use support::args::Args;
use support::output::{self, Table, num};
use support::server::{ChildServer, Usage, child_main, process_usage, raise_open_files_limit};
use support::stats::{Summary, TickFields, now_ms, summary};

/// Clients connecting at the same time; more would only overflow the listen backlog.
const CONNECT_CONCURRENCY: usize = 100;
/// How long the clients of a step may take to connect before the step is reported as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
/// Time after the last client connected before measuring, so start-up work is not counted.
const SETTLE: Duration = Duration::from_secs(1);

/// Phases a client goes through; it records only while `MEASURING`.
const WARMING: u8 = 0;
const MEASURING: u8 = 1;

/// What one WebSocket client saw while the step was measuring.
#[derive(Default)]
struct ClientRecord {
    delays: Vec<f32>,
    messages: u64,
    lost: u64,
}

/// One fan-out step's figures.
#[derive(Debug, Clone, Serialize)]
struct Step {
    tick_ms: u64,
    clients: usize,
    connected: usize,
    secs: f64,
    msgs_per_sec: f64,
    expected_msgs_per_sec: f64,
    delay: Summary,
    lost: u64,
    server_cpu_pct: f64,
    /// Share of the server's CPU time spent in the kernel.
    server_system_share: f64,
    server_cpu_us_per_msg: f64,
    /// This process's CPU (the clients), % of one core: near 200% on two cores means the
    /// clients, not the server, were the limit.
    client_cpu_pct: f64,
    /// Milliseconds per second the server's threads were ready but waited for a core.
    server_runq_wait_ms_per_s: f64,
    rss_before_kib: u64,
    rss_kib: u64,
    rss_per_conn_kib: f64,
    server_threads: u64,
    serialisations_per_tick_per_symbol: f64,
}

/// The `GET /price` throughput step's figures.
#[derive(Debug, Clone, Serialize)]
struct PriceStep {
    connections: usize,
    secs: f64,
    requests: u64,
    req_per_sec: f64,
    latency: Summary,
    server_cpu_pct: f64,
    errors: u64,
}

fn main() {
    let args = Args::parse();
    if args.flag("serve-child") {
        let workers = args.value("workers").and_then(|w| w.parse().ok());
        child_main(args.get("tick-ms", "BENCH_CHILD_TICK_MS", 100), workers);
        return;
    }
    let secs: f64 = args.get("secs", "BENCH_SECS", 5.0);
    let clients: Vec<usize> = args
        .list("clients", "BENCH_CLIENTS", &[1, 10, 100, 1000, 5000])
        .into_iter()
        .map(|n| n as usize)
        .collect();
    let ticks = args.list("ticks", "BENCH_TICKS", &[100, 10]);
    let only = args.value("only").map(str::to_owned);
    let limit = raise_open_files_limit();
    let largest = clients.iter().copied().max().unwrap_or(0);
    if (largest as u64) + 256 > limit {
        eprintln!(
            "open-files limit {limit} is too low for {largest} clients: raise the hard limit \
             (ulimit -Hn) or pass --clients with smaller numbers"
        );
        std::process::exit(1);
    }
    let machine = output::machine();
    eprintln!("fanout bench: {machine}, open-files limit {limit}, {secs} s per step");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime for the clients");
    let wants = |part: &str| only.as_deref().is_none_or(|o| o == part);

    let mut steps = Vec::new();
    if wants("ws") {
        for &tick_ms in &ticks {
            for &n in &clients {
                let step = runtime.block_on(ws_step(n, tick_ms, secs));
                eprintln!("{}", step_line(&step));
                steps.push(step);
            }
        }
    }
    let mut idle = None;
    if wants("idle") && largest > 0 {
        let step = runtime.block_on(idle_step(largest));
        eprintln!(
            "idle: {} clients connected, {:.1} KiB per connection",
            step.connected, step.rss_per_conn_kib
        );
        idle = Some(step);
    }
    let mut price = None;
    if wants("price") {
        let step = runtime.block_on(price_step(64, secs));
        eprintln!(
            "GET /price: {:.0} req/s, p99 {:.2} ms",
            step.req_per_sec, step.latency.p99
        );
        price = Some(step);
    }
    report(&machine, secs, &steps, idle.as_ref(), price.as_ref(), &args);
}

fn step_line(s: &Step) -> String {
    format!(
        "tick {} ms, {} clients ({} connected): {:.0} msg/s, p99 {:.2} ms, lost {}, server cpu {:.0}% (waited {:.0} ms/s for a core), client cpu {:.0}%, rss/conn {:.1} KiB",
        s.tick_ms,
        s.clients,
        s.connected,
        s.msgs_per_sec,
        s.delay.p99,
        s.lost,
        s.server_cpu_pct,
        s.server_runq_wait_ms_per_s,
        s.client_cpu_pct,
        s.rss_per_conn_kib
    )
}

/// The clients of one step, connected and reading, and what they share with the bench.
struct Crowd {
    phase: Arc<AtomicU8>,
    connected: Arc<AtomicUsize>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<ClientRecord>>,
}

impl Crowd {
    /// Starts `n` clients against `addr` and waits until all are connected (or the timeout).
    async fn connect(addr: SocketAddr, n: usize) -> Crowd {
        let phase = Arc::new(AtomicU8::new(WARMING));
        let connected = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let tasks = (0..n)
            .map(|_| {
                let (phase, connected, stop, gate) =
                    (phase.clone(), connected.clone(), stop.clone(), gate.clone());
                tokio::spawn(async move {
                    let ws = {
                        let _permit = gate.acquire().await;
                        match connect(addr).await {
                            Ok(ws) => ws,
                            Err(e) => {
                                eprintln!("client could not connect: {e}");
                                return ClientRecord::default();
                            }
                        }
                    };
                    connected.fetch_add(1, Ordering::Relaxed);
                    read_ticks(ws, &phase, &stop).await
                })
            })
            .collect();
        let crowd = Crowd {
            phase,
            connected,
            stop,
            tasks,
        };
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        while crowd.connected() < n && Instant::now() < deadline {
            if crowd.tasks.iter().all(|t| t.is_finished()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        crowd
    }

    fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Stops every client and collects what they recorded.
    async fn finish(self) -> Vec<ClientRecord> {
        self.stop.cancel();
        let mut records = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            records.push(task.await.unwrap_or_default());
        }
        records
    }
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Ws> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    // Small client buffers (tungstenite's defaults are 128 KiB each): ticks are ~100 bytes,
    // and 5000 clients with default buffers would cost this process gigabytes.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let url = format!("ws://{addr}/ws");
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::client_async_with_config(url, tcp, Some(config)),
    )
    .await??;
    // The first message is hello; wait for it so "connected" means "session running".
    match tokio::time::timeout(Duration::from_secs(30), ws.next()).await? {
        Some(Ok(Message::Text(_))) => Ok(ws),
        other => anyhow::bail!("expected hello, got {other:?}"),
    }
}

/// Reads ticks until `stop`, recording delay and `seq` gaps while the step is measuring.
async fn read_ticks(mut ws: Ws, phase: &AtomicU8, stop: &CancellationToken) -> ClientRecord {
    let mut record = ClientRecord::default();
    let mut last_seq: Option<u64> = None;
    loop {
        let message = tokio::select! {
            message = ws.next() => message,
            _ = stop.cancelled() => break,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break,
        };
        let Some(tick) = TickFields::parse(&text) else {
            continue;
        };
        if phase.load(Ordering::Relaxed) == MEASURING {
            record.delays.push((now_ms() - tick.ts) as f32);
            record.messages += 1;
            if let Some(last) = last_seq {
                record.lost += tick.seq.saturating_sub(last + 1);
            }
        }
        last_seq = Some(tick.seq);
    }
    record
}

/// One fan-out step: a fresh server, `n` clients, `secs` of measuring.
async fn ws_step(n: usize, tick_ms: u64, secs: f64) -> Step {
    let mut server = ChildServer::start(tick_ms, None).expect("start the server child");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.usage();
    let crowd = Crowd::connect(server.addr, n).await;
    tokio::time::sleep(SETTLE).await;
    let connected_usage = server.usage();
    let counters_start = server.counters().unwrap_or_default();
    let client_start = process_usage(std::process::id());
    crowd.phase.store(MEASURING, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    crowd.phase.store(WARMING, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let counters_end = server.counters().unwrap_or_default();
    let end_usage = server.usage();
    let client_cpu = process_usage(std::process::id()).cpu_secs - client_start.cpu_secs;
    let connected = crowd.connected();
    let records = crowd.finish().await;
    server.stop();

    let messages: u64 = records.iter().map(|r| r.messages).sum();
    let lost = records.iter().map(|r| r.lost).sum();
    let mut delays: Vec<f64> = records
        .iter()
        .flat_map(|r| r.delays.iter().map(|&d| d as f64))
        .collect();
    let ticks = counters_end.ticks.saturating_sub(counters_start.ticks) as f64;
    let serialisations = counters_end
        .serialisations
        .saturating_sub(counters_start.serialisations) as f64;
    let cpu = end_usage.cpu_secs - connected_usage.cpu_secs;
    Step {
        tick_ms,
        clients: n,
        connected,
        secs: elapsed,
        msgs_per_sec: messages as f64 / elapsed,
        expected_msgs_per_sec: connected as f64 * ticks / elapsed,
        delay: summary(&mut delays),
        lost,
        server_cpu_pct: cpu / elapsed * 100.0,
        server_system_share: (end_usage.system_secs - connected_usage.system_secs) / cpu.max(1e-9),
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
    }
}

fn per_connection(before: Usage, after: Usage, connections: usize) -> f64 {
    (after.rss_kib as f64 - before.rss_kib as f64) / connections.max(1) as f64
}

/// `n` clients connected to a server whose feed ticks once a minute: the memory an idle
/// connection costs.
async fn idle_step(n: usize) -> Step {
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
    }
}

/// `connections` keep-alive connections, each sending `GET /price` as soon as the previous
/// answer arrived, for `secs` after a one-second warm-up.
async fn price_step(connections: usize, secs: f64) -> PriceStep {
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
                let Ok(mut client) =
                    support::http_client::HttpClient::connect(addr, "/price").await
                else {
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
    phase.store(MEASURING, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    phase.store(WARMING, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
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

fn ws_table(steps: &[Step]) -> Table {
    let mut t = Table::new(&[
        "tick ms",
        "clients",
        "msgs/s (expected)",
        "delay p50 ms",
        "delay p99 ms",
        "delay max ms",
        "lost",
        "server CPU % of a core",
        "of which kernel",
        "CPU us / msg",
        "client CPU %",
        "server wait for a core ms/s",
        "server RSS MiB",
        "RSS / conn KiB",
        "serialisations / tick / symbol",
    ]);
    for s in steps {
        let clients = if s.connected == s.clients {
            s.clients.to_string()
        } else {
            format!("{} ({} connected)", s.clients, s.connected)
        };
        t.rows.push(vec![
            s.tick_ms.to_string(),
            clients,
            format!(
                "{} ({})",
                num(s.msgs_per_sec, 0),
                num(s.expected_msgs_per_sec, 0)
            ),
            num(s.delay.p50, 2),
            num(s.delay.p99, 2),
            num(s.delay.max, 2),
            s.lost.to_string(),
            num(s.server_cpu_pct, 1),
            if s.server_system_share.is_finite() {
                format!("{:.0}%", s.server_system_share * 100.0)
            } else {
                "-".into()
            },
            num(s.server_cpu_us_per_msg, 2),
            num(s.client_cpu_pct, 0),
            num(s.server_runq_wait_ms_per_s, 1),
            num(s.rss_kib as f64 / 1024.0, 1),
            num(s.rss_per_conn_kib, 1),
            num(s.serialisations_per_tick_per_symbol, 3),
        ]);
    }
    t
}

fn report(
    machine: &str,
    secs: f64,
    steps: &[Step],
    idle: Option<&Step>,
    price: Option<&PriceStep>,
    args: &Args,
) {
    let command = format!(
        "cargo bench --bench fanout -- --secs {secs}{}{}{}",
        args.value("clients")
            .map_or(String::new(), |c| format!(" --clients {c}")),
        args.value("ticks")
            .map_or(String::new(), |c| format!(" --ticks {c}")),
        args.value("only")
            .map_or(String::new(), |c| format!(" --only {c}")),
    );
    println!("\n## Fan-out: N WebSocket clients, server in a child process\n");
    println!("Machine: {machine}. Command: `{command}`.\n");
    let mut all: Vec<Step> = steps.to_vec();
    if !steps.is_empty() {
        print!("{}", ws_table(steps).markdown());
        for (n, tick, p99) in [(1000, 100, 5.0), (5000, 100, 50.0)] {
            if let Some(s) = steps.iter().find(|s| s.clients == n && s.tick_ms == tick) {
                let met = s.delay.p99 <= p99 && s.lost == 0 && s.connected == n;
                println!(
                    "\nTarget {n} clients @ {tick} ms: p99 <= {p99} ms and 0 lost: {} (p99 {:.2} ms, lost {}).",
                    if met { "met" } else { "MISSED" },
                    s.delay.p99,
                    s.lost
                );
            }
        }
    }
    if let Some(idle) = idle {
        println!(
            "\nIdle connections: {} clients at a 60 s tick: server RSS {:.1} MiB -> {:.1} MiB, \
             {:.1} KiB per idle connection (target <= 64 KiB: {}).",
            idle.connected,
            idle.rss_before_kib as f64 / 1024.0,
            idle.rss_kib as f64 / 1024.0,
            idle.rss_per_conn_kib,
            if idle.rss_per_conn_kib <= 64.0 {
                "met"
            } else {
                "MISSED"
            }
        );
        all.push(idle.clone());
    }
    if let Some(p) = price {
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
    output::write("fanout.csv", &ws_table(&all).csv());
    let json = serde_json::json!({
        "bench": "fanout",
        "command": command,
        "machine": machine,
        "steps": steps,
        "idle": idle,
        "price": price,
    });
    output::write(
        "fanout.json",
        &serde_json::to_string_pretty(&json).unwrap_or_default(),
    );
    if !steps.is_empty() {
        let svg = output::out_dir().join("fanout.svg");
        match plot::fanout(&svg, steps) {
            Ok(()) => eprintln!("wrote {}", svg.display()),
            Err(e) => eprintln!("cannot draw {}: {e}", svg.display()),
        }
    }
}

/// The SVG: delivery delay p99 and server CPU against the number of clients, one line per tick.
mod plot {
    use std::path::Path;

    use plotters::prelude::*;

    use super::Step;

    const COLORS: [RGBColor; 4] = [
        RGBColor(0, 90, 200),
        RGBColor(210, 60, 30),
        RGBColor(0, 140, 70),
        RGBColor(120, 60, 160),
    ];

    /// One chart: its y label, its caption, and the figure it plots.
    struct Panel {
        y_desc: &'static str,
        caption: &'static str,
        figure: fn(&Step) -> f64,
    }

    const PANELS: [Panel; 2] = [
        Panel {
            y_desc: "delivery delay p99 (ms)",
            caption: "delay p99",
            figure: |s| s.delay.p99,
        },
        Panel {
            y_desc: "server CPU (% of one core)",
            caption: "server CPU",
            figure: |s| s.server_cpu_pct,
        },
    ];

    pub fn fanout(path: &Path, steps: &[Step]) -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (1100, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(550);
        let mut ticks: Vec<u64> = steps.iter().map(|s| s.tick_ms).collect();
        ticks.dedup();
        let x_max = steps.iter().map(|s| s.clients).max().unwrap_or(1) as f64 * 2.0;
        for (area, panel) in [left, right].iter().zip(PANELS) {
            let (y_desc, caption, f) = (panel.y_desc, panel.caption, panel.figure);
            let values: Vec<f64> = steps.iter().map(f).filter(|v| v.is_finite()).collect();
            let y_max = values.iter().copied().fold(1.0, f64::max) * 2.0;
            let y_min = values.iter().copied().fold(y_max, f64::min).max(0.01) / 2.0;
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("{caption} vs WebSocket clients"),
                    ("sans-serif", 20),
                )
                .margin(15)
                .x_label_area_size(45)
                .y_label_area_size(65)
                .build_cartesian_2d((0.5..x_max).log_scale(), (y_min..y_max).log_scale())?;
            chart
                .configure_mesh()
                .x_desc("clients")
                .y_desc(y_desc)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .draw()?;
            for (i, tick) in ticks.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let points: Vec<(f64, f64)> = steps
                    .iter()
                    .filter(|s| s.tick_ms == *tick)
                    .map(|s| (s.clients as f64, f(s)))
                    .filter(|(_, y)| y.is_finite() && *y > 0.0)
                    .collect();
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                    .label(format!("tick {tick} ms"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
                chart.draw_series(
                    points
                        .into_iter()
                        .map(move |p| Circle::new(p, 4, color.filled())),
                )?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }
        root.present()?;
        Ok(())
    }
}
