//! # `cargo bench --bench fanout`: how far does this server's fan-out go, how close to the metal is it, and is push cheaper than poll?
//!
//! For N WebSocket clients (default 1, 10, 100, 1000, 5000) at a 100 ms and a 10 ms tick,
//! each step starts a **fresh server in a child process** (this executable re-run with
//! `--serve-child`, which calls `tickerlab::serve` like the binary does), connects N clients
//! to `/ws`, lets them settle, then measures for a bounded time:
//!
//! * delivered messages per second (and what N clients x ticks per second would be);
//! * delivery delay, receive time - `ts`, p50 / p99 / max over every message of every client;
//! * ticks lost: `seq` gaps seen by clients that were reading all along;
//! * the server's CPU time (as % of one core, and per message) and resident memory, from
//!   `/proc/<pid>`; RSS per connection is (RSS with N clients - RSS before any) / N. CPU time
//!   is summed from the threads' `schedstat` (nanoseconds): `stat`'s user + system come in
//!   10 ms clock ticks, a handful per short step; the kernel's share is still read from `stat`;
//! * serialisations per tick per symbol, from the feed's own counter (must be 1).
//!
//! The server runs in a process of its own so that its CPU time and memory are its own: the
//! clients' buffers are not counted as the server's. The clients run in this process on a
//! Tokio runtime with two threads; on a two-core machine they compete with the server for the
//! same cores, so the figures are a lower bound on what the server alone could do.
//!
//! **The floor** (`--only floor`): at each (tick, N), right after the tickerlab step, the same
//! clients measure the least a push server can do: `benches/support/floor.rs`, a Tokio server
//! of ~150 lines in a child of its own (`--floor-child`), which per tick builds ONE complete
//! unmasked text frame (`0x81`, length, a tick JSON of tickerlab's shape and size) as shared
//! `Bytes` and writes it to every client with one `write_all` each. Its rows stand beside
//! tickerlab's, with the ratios tickerlab / floor of delay p50 and p99, CPU per message and
//! RSS per connection. What tickerlab spends above the floor is what its per-client tasks,
//! queues, timers, heartbeats, codec and guards cost; what the floor spends is mostly the
//! kernel's (on loopback a `send` also runs the receiver's TCP path).
//!
//! **The start-up transient** (`--transient-secs 10`, `--transient-clients 1000`): the steps
//! at a 100 ms tick with that many clients (tickerlab's and the floor's) record the first
//! seconds after the last client joined apart, and measure the steady state only after them;
//! a table puts the two windows' delays side by side. `--transient-secs 0` skips it (those
//! steps then settle 1 s like the others).
//!
//! Then an **idle** step connects the largest N at a 60 s tick to measure RSS per idle
//! connection, and a **`GET /price`** step runs 64 keep-alive connections requesting as fast
//! as they can: requests per second, latency p50/p99/max.
//!
//! **Push or poll** (`--only pushpoll`, `--pushpoll-clients 1000`): the same delivered rate,
//! one price per client per 100 ms, two ways, each against a fresh server: N clients on `/ws`
//! pushed every tick, then N keep-alive HTTP/1.1 connections each sending `GET /price` once
//! per 100 ms (a `setInterval` poller; client i starts i/N of the interval later, so the
//! requests are spread evenly rather than fired at once) through the bench's own small client
//! (`support::http_client`). For each: prices delivered per second (for polling, a response
//! is a price delivered, new or not: how many carried a new `seq` and how many a repeat is
//! counted too), server CPU in us per price delivered and per new price, bytes on the wire per
//! price (above TCP, both directions, counted by the clients), how old a price is when it
//! arrives, and the ratios poll / push.
//!
//! **Churn** (`--only churn`, `--churn-clients 5000`, `--churn-hold-secs 3`,
//! `--churn-settle-secs 2`): does the server give memory back? For tickerlab and then the
//! floor, a fresh server at a 100 ms tick: RSS before any client, with N clients connected and
//! held, then all clients close, the server's open-WebSocket gauge is awaited down to 0
//! (tickerlab's `tickerlab_open_connections{transport="websocket"}` from `/metrics`, the
//! floor's from its `stats` line) and RSS is read again after the settle time: before / with /
//! after and after / before.
//!
//! Flags (or environment): `--secs 5` (`BENCH_SECS`) measuring time per step, `--clients
//! 1,10,100,1000,5000` (`BENCH_CLIENTS`), `--ticks 100,10` (`BENCH_TICKS`), `--only
//! ws|floor|idle|price|pushpoll|churn` to run one part (all of them by default; `floor` runs
//! the tickerlab steps too, to pair them), and the per-part flags above (each also read from
//! `BENCH_` + its name in capitals, e.g. `BENCH_CHURN_CLIENTS`). Output: Markdown on stdout;
//! `fanout.csv`, `fanout.json`, `fanout.svg`, and `fanout-floor.csv`, `fanout-transient.csv`,
//! `fanout-pushpoll.csv`, `fanout-churn.csv` for the parts that ran, under
//! `target/tickerlab-bench/`.
//!
//! To count instructions rather than time, `BENCH_SERVER_WRAPPER="valgrind --tool=callgrind
//! --callgrind-out-file=/tmp/server.%p.out"` runs every child (tickerlab's and the floor's)
//! under callgrind; run with `--secs 5` and `--secs 10` and divide the difference of the
//! totals by the extra messages (see docs/benchmarks.md).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use support::cli::CargoArgs;
use support::counting::Counted;
use support::http_client::HttpClient;
use support::output::{self, Table, num};
use support::server::{
    ChildServer, Kind, Usage, child_main, process_usage, raise_open_files_limit,
};
use support::stats::{Summary, summary};
use support::tick_fields::{TickFields, now_ms};

/// Clients connecting at the same time; more would only overflow the listen backlog.
const CONNECT_CONCURRENCY: usize = 100;
/// How long the clients of a step may take to connect before the step is reported as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
/// Time after the last client connected before measuring, so start-up work is not counted.
const SETTLE: Duration = Duration::from_secs(1);

/// Phases a client goes through; it records while `MEASURING`, and apart while `TRANSIENT`
/// (the first seconds after the last client joined, when the start-up transient is asked for).
const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const TRANSIENT: u8 = 2;

/// The push-versus-poll and churn steps' tick: a price every 100 ms, polled every 100 ms.
const PUSH_POLL_TICK_MS: u64 = 100;
/// The row label of the bench's own minimal server (see `support::floor`).
const FLOOR: &str = "floor (tokio, frame once)";
const TICKERLAB: &str = "tickerlab";

/// What one WebSocket client saw while the step was measuring.
#[derive(Default)]
struct ClientRecord {
    delays: Vec<f32>,
    messages: u64,
    lost: u64,
    /// Bytes this client received and sent while measuring: frames, headers, pongs.
    bytes_read: u64,
    bytes_written: u64,
    /// Delays and losses while `TRANSIENT`.
    transient_delays: Vec<f32>,
    transient_lost: u64,
}

/// One fan-out step's figures.
#[derive(Debug, Clone, Serialize)]
struct Step {
    /// `tickerlab`, or the floor server.
    server: String,
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
    /// Bytes on the wire (above TCP, both directions, as the clients count them) per message.
    bytes_per_msg: f64,
    /// The start-up transient: delays over the first `transient_secs` after the last client
    /// joined, when asked for (`--transient-secs`); the step's `delay` is the window after.
    transient_secs: f64,
    transient: Option<Summary>,
    transient_lost: u64,
}

/// One polling step's figures: `clients` keep-alive connections, each sending `GET /price`
/// once per tick interval.
#[derive(Debug, Clone, Serialize)]
struct PollStep {
    clients: usize,
    connected: usize,
    interval_ms: u64,
    secs: f64,
    responses: u64,
    responses_per_sec: f64,
    /// Responses whose `seq` was newer than the client's previous one.
    new_prices: u64,
    /// Responses with the same `seq` as the client's previous one: a price polled twice.
    repeats: u64,
    /// `seq`s a client never saw: ticks between two of its responses.
    missed: u64,
    /// Intervals a client skipped because its previous request was still out.
    skipped_polls: u64,
    /// How old the price was when its response arrived (receive time - `ts`).
    age: Summary,
    /// Request to response.
    latency: Summary,
    server_cpu_pct: f64,
    server_system_share: f64,
    server_cpu_us_per_response: f64,
    server_cpu_us_per_new_price: f64,
    client_cpu_pct: f64,
    bytes_per_response: f64,
    bytes_per_new_price: f64,
    errors: u64,
}

/// One churn step: memory before, with and after `clients` WebSockets.
#[derive(Debug, Clone, Serialize)]
struct ChurnStep {
    server: String,
    clients: usize,
    connected: usize,
    hold_secs: f64,
    rss_before_kib: u64,
    rss_with_kib: u64,
    rss_after_kib: u64,
    after_over_before: f64,
    /// From the clients' disconnect to the server's open-WebSocket gauge reading 0 (NaN when
    /// it never did within the timeout).
    secs_to_zero_open: f64,
    open_at_end: u64,
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

/// What the command line (or the environment) asked for. `cargo bench --bench fanout --
/// --help` prints it; the top of this file says what each part measures.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "fanout",
    bin_name = "cargo bench --bench fanout --",
    about = "How far does this server's fan-out go, how close to the metal is it, and is push \
             cheaper than poll? Each step against a fresh server in a child process.",
    after_help = "BENCH_SERVER_WRAPPER=\"valgrind --tool=callgrind ...\" runs every server child \
                  (tickerlab's and the floor's) under that command."
)]
struct Plan {
    /// Seconds measured per step.
    #[arg(long, env = "BENCH_SECS", default_value_t = 5.0)]
    secs: f64,
    /// WebSocket clients per step, comma-separated.
    #[arg(long, env = "BENCH_CLIENTS", value_delimiter = ',', default_values_t = [1, 10, 100, 1000, 5000])]
    clients: Vec<usize>,
    /// Tick intervals in milliseconds, comma-separated: the steps run at each.
    #[arg(long, env = "BENCH_TICKS", value_delimiter = ',', default_values_t = [100, 10])]
    ticks: Vec<u64>,
    /// Run one part only (all of them by default).
    #[arg(long, value_enum)]
    only: Option<Part>,
    /// Seconds after the last client joined recorded apart as the start-up transient, in the
    /// steps at a 100 ms tick with --transient-clients clients (0: none, settle 1 s).
    #[arg(long, env = "BENCH_TRANSIENT_SECS", default_value_t = 10.0)]
    transient_secs: f64,
    /// The clients of the step(s) that get the start-up transient.
    #[arg(long, env = "BENCH_TRANSIENT_CLIENTS", default_value_t = 1000)]
    transient_clients: usize,
    /// Clients of the push-or-poll comparison, on each side.
    #[arg(long, env = "BENCH_PUSHPOLL_CLIENTS", default_value_t = 1000)]
    pushpoll_clients: usize,
    /// Clients the churn step connects, holds and closes.
    #[arg(long, env = "BENCH_CHURN_CLIENTS", default_value_t = 5000)]
    churn_clients: usize,
    /// Seconds the churn step holds its clients connected.
    #[arg(long, env = "BENCH_CHURN_HOLD_SECS", default_value_t = 3.0)]
    churn_hold_secs: f64,
    /// Seconds the churn step waits, once no WebSocket is open, before reading memory again.
    #[arg(long, env = "BENCH_CHURN_SETTLE_SECS", default_value_t = 2.0)]
    churn_settle_secs: f64,
    /// Be the tickerlab server child (the bench starts it; see `support::server`).
    #[arg(long, hide = true, conflicts_with = "floor_child")]
    serve_child: bool,
    /// Be the floor server child (see `support::floor`).
    #[arg(long, hide = true)]
    floor_child: bool,
    /// The server child's tick, milliseconds.
    #[arg(long, hide = true, env = "BENCH_CHILD_TICK_MS", default_value_t = 100)]
    tick_ms: u64,
    /// The tickerlab child's HTTP workers (default: one per core).
    #[arg(long, hide = true)]
    workers: Option<usize>,
    #[command(flatten)]
    cargo: CargoArgs,
    /// The flags given, as a command that repeats this run (filled in by [`Plan::read`]).
    #[arg(skip)]
    command: String,
}

/// The parts of the bench, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    /// The fan-out steps: N WebSocket clients at each tick.
    Ws,
    /// The fan-out steps, each beside the same step against the floor server.
    Floor,
    /// Memory per idle WebSocket.
    Idle,
    /// `GET /price` as fast as 64 connections can ask.
    Price,
    /// Push and poll at the same delivered rate.
    Pushpoll,
    /// Memory before, with and after many WebSockets.
    Churn,
}

impl Plan {
    /// Reads the command line and the environment; stops with clap's message (or the help)
    /// when they do not make a plan.
    fn read() -> Plan {
        let matches = Plan::command().get_matches();
        let mut plan = Plan::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        plan.command = command_line(plan.secs, &matches);
        plan
    }

    /// Whether `part` runs: all of them do unless `--only` names one.
    fn wants(&self, part: Part) -> bool {
        self.only.is_none_or(|only| only == part)
    }

    /// The transient window for a step of `n` clients at a `tick_ms` tick.
    fn transient_for(&self, n: usize, tick_ms: u64) -> f64 {
        if tick_ms == 100 && n == self.transient_clients {
            self.transient_secs
        } else {
            0.0
        }
    }
}

/// The flags that shaped this run, as a command that repeats it: `--secs`, and every other
/// flag given on the command line or through its environment variable.
fn command_line(secs: f64, matches: &ArgMatches) -> String {
    let mut command = format!("cargo bench --bench fanout -- --secs {secs}");
    for id in [
        "clients",
        "ticks",
        "only",
        "transient_secs",
        "transient_clients",
        "pushpoll_clients",
        "churn_clients",
        "churn_hold_secs",
        "churn_settle_secs",
    ] {
        let given = matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        let Some(values) = matches.get_raw(id).filter(|_| given) else {
            continue;
        };
        let values: Vec<_> = values.map(|v| v.to_string_lossy()).collect();
        command += &format!(" --{} {}", id.replace('_', "-"), values.join(","));
    }
    command
}

fn main() {
    let plan = Plan::read();
    if plan.serve_child {
        child_main(plan.tick_ms, plan.workers);
        return;
    }
    if plan.floor_child {
        support::floor::child_main(plan.tick_ms);
        return;
    }
    let (secs, clients, ticks) = (plan.secs, &plan.clients, &plan.ticks);
    let limit = raise_open_files_limit();
    let largest = clients.iter().copied().max().unwrap_or(0);
    let most = [
        largest,
        if plan.wants(Part::Pushpoll) {
            plan.pushpoll_clients
        } else {
            0
        },
        if plan.wants(Part::Churn) {
            plan.churn_clients
        } else {
            0
        },
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    if (most as u64) + 256 > limit {
        eprintln!(
            "open-files limit {limit} is too low for {most} clients: raise the hard limit \
             (ulimit -Hn) or pass --clients (--pushpoll-clients, --churn-clients) with smaller \
             numbers"
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

    // tickerlab and the floor take turns at each (tick, N), so both see the same machine.
    let mut steps = Vec::new();
    let mut floor_steps = Vec::new();
    if plan.wants(Part::Ws) || plan.wants(Part::Floor) {
        for &tick_ms in ticks {
            for &n in clients {
                let transient = plan.transient_for(n, tick_ms);
                let step = runtime.block_on(ws_step(Kind::Tickerlab, n, tick_ms, secs, transient));
                eprintln!("{}", step_line(&step));
                steps.push(step);
                if plan.wants(Part::Floor) {
                    let step = runtime.block_on(ws_step(Kind::Floor, n, tick_ms, secs, transient));
                    eprintln!("{}", step_line(&step));
                    floor_steps.push(step);
                }
            }
        }
    }
    let mut idle = None;
    if plan.wants(Part::Idle) && largest > 0 {
        let step = runtime.block_on(idle_step(largest));
        eprintln!(
            "idle: {} clients connected, {:.1} KiB per connection",
            step.connected, step.rss_per_conn_kib
        );
        idle = Some(step);
    }
    let mut price = None;
    if plan.wants(Part::Price) {
        let step = runtime.block_on(price_step(64, secs));
        eprintln!(
            "GET /price: {:.0} req/s, p99 {:.2} ms",
            step.req_per_sec, step.latency.p99
        );
        price = Some(step);
    }
    let mut pushpoll = None;
    if plan.wants(Part::Pushpoll) {
        let n = plan.pushpoll_clients;
        let push = runtime.block_on(ws_step(Kind::Tickerlab, n, PUSH_POLL_TICK_MS, secs, 0.0));
        eprintln!("push: {}", step_line(&push));
        let poll = runtime.block_on(poll_step(n, PUSH_POLL_TICK_MS, secs));
        eprintln!(
            "poll: {} clients ({} connected): {:.0} responses/s, {:.0} new prices/s, server cpu {:.0}%, {:.2} us/response",
            poll.clients,
            poll.connected,
            poll.responses_per_sec,
            poll.new_prices as f64 / poll.secs,
            poll.server_cpu_pct,
            poll.server_cpu_us_per_response
        );
        pushpoll = Some((push, poll));
    }
    let mut churn = Vec::new();
    if plan.wants(Part::Churn) {
        for kind in [Kind::Tickerlab, Kind::Floor] {
            let step = runtime.block_on(churn_step(kind, &plan));
            eprintln!(
                "churn {}: {} clients, RSS {:.1} -> {:.1} -> {:.1} MiB",
                step.server,
                step.connected,
                step.rss_before_kib as f64 / 1024.0,
                step.rss_with_kib as f64 / 1024.0,
                step.rss_after_kib as f64 / 1024.0
            );
            churn.push(step);
        }
    }
    let results = Results {
        steps,
        floor: floor_steps,
        idle,
        price,
        pushpoll,
        churn,
    };
    report(&machine, &plan, &results);
}

/// Everything one run measured, for the report.
struct Results {
    steps: Vec<Step>,
    floor: Vec<Step>,
    idle: Option<Step>,
    price: Option<PriceStep>,
    pushpoll: Option<(Step, PollStep)>,
    churn: Vec<ChurnStep>,
}

fn step_line(s: &Step) -> String {
    format!(
        "{}: tick {} ms, {} clients ({} connected): {:.0} msg/s, p99 {:.2} ms, lost {}, server cpu {:.0}% (waited {:.0} ms/s for a core), client cpu {:.0}%, rss/conn {:.1} KiB",
        s.server,
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

/// A client's WebSocket, over a stream that counts the bytes crossing it.
type Ws = tokio_tungstenite::WebSocketStream<Counted<TcpStream>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Ws> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tcp = Counted::new(tcp);
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

/// Reads ticks until `stop`, recording delay and `seq` gaps while the step is measuring (and
/// apart while `TRANSIENT`), then closes the WebSocket as a browser leaving a page does.
async fn read_ticks(mut ws: Ws, phase: &AtomicU8, stop: &CancellationToken) -> ClientRecord {
    let mut record = ClientRecord::default();
    let mut last_seq: Option<u64> = None;
    let (mut read, mut written) = (ws.get_ref().bytes_read(), ws.get_ref().bytes_written());
    loop {
        let message = tokio::select! {
            message = ws.next() => message,
            _ = stop.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                break;
            }
        };
        // The bytes that arrived (or left: pongs) since the last message are this one's.
        let wire = ws.get_ref();
        if phase.load(Ordering::Relaxed) == MEASURING {
            record.bytes_read += wire.bytes_read() - read;
            record.bytes_written += wire.bytes_written() - written;
        }
        (read, written) = (wire.bytes_read(), wire.bytes_written());
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break,
        };
        let Some(tick) = TickFields::parse(&text) else {
            continue;
        };
        let gap = last_seq.map_or(0, |last| tick.seq.saturating_sub(last + 1));
        match phase.load(Ordering::Relaxed) {
            MEASURING => {
                record.delays.push((now_ms() - tick.ts) as f32);
                record.messages += 1;
                record.lost += gap;
            }
            TRANSIENT => {
                record.transient_delays.push((now_ms() - tick.ts) as f32);
                record.transient_lost += gap;
            }
            _ => {}
        }
        last_seq = Some(tick.seq);
    }
    record
}

/// One fan-out step: a fresh server of `kind`, `n` clients, `secs` of measuring. With
/// `transient_secs` > 0, the first `transient_secs` after the last client joined are recorded
/// apart (the start-up transient) and measuring starts after them; otherwise after `SETTLE`.
async fn ws_step(kind: Kind, n: usize, tick_ms: u64, secs: f64, transient_secs: f64) -> Step {
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
    crowd.phase.store(MEASURING, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    crowd.phase.store(WARMING, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let counters_end = server.counters().unwrap_or_default();
    let end_usage = server.usage();
    let client_cpu = process_usage(std::process::id()).run_secs - client_start.run_secs;
    let connected = crowd.connected();
    let records = crowd.finish().await;
    server.stop();

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
    }
}

fn label(kind: Kind) -> &'static str {
    match kind {
        Kind::Tickerlab => TICKERLAB,
        Kind::Floor => FLOOR,
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
async fn poll_step(n: usize, interval_ms: u64, secs: f64) -> PollStep {
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
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    while connected.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        if tasks.iter().all(|t| t.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(SETTLE).await;
    let start_usage = server.usage();
    let client_start = process_usage(std::process::id());
    phase.store(MEASURING, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    phase.store(WARMING, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
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

/// How long the churn step waits for the server's open-WebSocket gauge to reach 0.
const CHURN_DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Memory before, with and after many WebSockets: a fresh server of `kind` at a 100 ms tick,
/// `--churn-clients` clients connected and held, all closed, then the gauge of open
/// WebSockets awaited down to 0 and `--churn-settle-secs` more.
async fn churn_step(kind: Kind, plan: &Plan) -> ChurnStep {
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

/// The columns of a fan-out step's row after its tick and clients (and, beside the floor,
/// its server), shared by the main table and the floor table.
const STEP_COLUMNS: [&str; 12] = [
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
];

/// A step's cells under [`STEP_COLUMNS`].
fn step_cells(s: &Step) -> Vec<String> {
    vec![
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
        share(s.server_system_share),
        num(s.server_cpu_us_per_msg, 2),
        num(s.client_cpu_pct, 0),
        num(s.server_runq_wait_ms_per_s, 1),
        num(s.rss_kib as f64 / 1024.0, 1),
        num(s.rss_per_conn_kib, 1),
    ]
}

fn ws_table(steps: &[Step]) -> Table {
    let mut columns = vec!["tick ms", "clients"];
    columns.extend(STEP_COLUMNS);
    columns.push("serialisations / tick / symbol");
    let mut t = Table::new(&columns);
    for s in steps {
        let mut row = vec![s.tick_ms.to_string(), clients_cell(s)];
        row.extend(step_cells(s));
        row.push(num(s.serialisations_per_tick_per_symbol, 3));
        t.rows.push(row);
    }
    t
}

/// tickerlab beside the floor, one pair of rows per (tick, N).
fn floor_table(steps: &[Step], floor: &[Step]) -> Table {
    let mut columns = vec!["tick ms", "clients", "server"];
    columns.extend(STEP_COLUMNS);
    let mut t = Table::new(&columns);
    for f in floor {
        let pair = steps
            .iter()
            .filter(|s| s.clients == f.clients && s.tick_ms == f.tick_ms);
        for s in pair.chain([f]) {
            let mut row = vec![s.tick_ms.to_string(), clients_cell(s), s.server.clone()];
            row.extend(step_cells(s));
            t.rows.push(row);
        }
    }
    t
}

fn clients_cell(s: &Step) -> String {
    clients(s.clients, s.connected)
}

/// "N", or "N (M connected)" when not all of them got in.
fn clients(n: usize, connected: usize) -> String {
    if n == connected {
        n.to_string()
    } else {
        format!("{n} ({connected} connected)")
    }
}

fn share(value: f64) -> String {
    if value.is_finite() {
        format!("{:.0}%", value * 100.0)
    } else {
        "-".into()
    }
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
            if c.connected == c.clients {
                c.clients.to_string()
            } else {
                format!("{} ({} connected)", c.clients, c.connected)
            },
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

fn report(machine: &str, plan: &Plan, results: &Results) {
    let Results {
        steps,
        floor,
        idle,
        price,
        pushpoll,
        churn,
    } = results;
    let command = &plan.command;
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
    if !floor.is_empty() {
        println!(
            "\n### How close to the metal: tickerlab beside `{FLOOR}`\n\n\
             The floor is the bench's own minimal Tokio server (`benches/support/floor.rs`): one \
             complete frame built per tick, one `write_all` of those shared bytes per client.\n"
        );
        print!("{}", floor_table(steps, floor).markdown());
        println!();
        for f in floor.iter() {
            let Some(s) = steps
                .iter()
                .find(|s| s.clients == f.clients && s.tick_ms == f.tick_ms)
            else {
                continue;
            };
            println!(
                "* {} clients @ {} ms: tickerlab / floor: delay p50 {} x ({:.2} / {:.2} ms), \
                 p99 {} x, CPU per message {} x ({:.2} / {:.2} us), RSS per connection {} x.",
                f.clients,
                f.tick_ms,
                num(s.delay.p50 / f.delay.p50, 2),
                s.delay.p50,
                f.delay.p50,
                num(s.delay.p99 / f.delay.p99, 2),
                num(s.server_cpu_us_per_msg / f.server_cpu_us_per_msg, 2),
                s.server_cpu_us_per_msg,
                f.server_cpu_us_per_msg,
                num(s.rss_per_conn_kib / f.rss_per_conn_kib, 2),
            );
        }
    }
    let transients: Vec<&Step> = steps
        .iter()
        .chain(floor.iter())
        .filter(|s| s.transient.is_some())
        .collect();
    if !transients.is_empty() {
        println!(
            "\n### Start-up transient: the first seconds after the last client joined, apart\n"
        );
        let mut t = Table::new(&[
            "server",
            "tick ms",
            "clients",
            "window",
            "messages",
            "delay p50 ms",
            "delay p99 ms",
            "delay max ms",
            "lost",
        ]);
        for s in &transients {
            let Some(tr) = s.transient else { continue };
            for (window, d, lost) in [
                (
                    format!("first {} s after the last join", s.transient_secs),
                    tr,
                    s.transient_lost,
                ),
                (
                    format!("steady: the {:.1} s after", s.secs),
                    s.delay,
                    s.lost,
                ),
            ] {
                t.rows.push(vec![
                    s.server.clone(),
                    s.tick_ms.to_string(),
                    clients_cell(s),
                    window,
                    d.count.to_string(),
                    num(d.p50, 2),
                    num(d.p99, 2),
                    num(d.max, 2),
                    lost.to_string(),
                ]);
            }
        }
        print!("{}", t.markdown());
        output::write("fanout-transient.csv", &t.csv());
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
    if let Some((push, poll)) = pushpoll {
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
    if !churn.is_empty() {
        println!(
            "\n### Churn: does the server give memory back?\n\n\
             Each a fresh server at a {PUSH_POLL_TICK_MS} ms tick: RSS before any client, with the \
             clients connected and held, and {} s after its open-WebSocket gauge read 0 once they \
             had all closed.\n",
            plan.churn_settle_secs
        );
        let t = churn_table(churn);
        print!("{}", t.markdown());
        output::write("fanout-churn.csv", &t.csv());
    }
    output::write("fanout.csv", &ws_table(&all).csv());
    if !floor.is_empty() {
        output::write("fanout-floor.csv", &floor_table(steps, floor).csv());
    }
    let json = serde_json::json!({
        "bench": "fanout",
        "command": command,
        "machine": machine,
        "steps": steps,
        "floor": floor,
        "idle": idle,
        "price": price,
        "push": pushpoll.as_ref().map(|(push, _)| push),
        "poll": pushpoll.as_ref().map(|(_, poll)| poll),
        "churn": churn,
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
    use crate::support::plot::{legend, line_with_points};
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
                line_with_points(&mut chart, points, color, format!("tick {tick} ms"))?;
            }
            legend(&mut chart)?;
        }
        root.present()?;
        Ok(())
    }
}
