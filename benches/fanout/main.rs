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
//! * serialisations per tick per symbol, from the feed's own counter (must be 1);
//! * the run **second by second**: every tick a client received since the first client
//!   started to connect, cut into whole seconds (p50 / p99 / p99.9 / max of each, the ticks
//!   delivered in it, the clients connected at its end), and the **worst second**, the one
//!   with the highest p99, join included (`timeline.rs`).
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
//! **The tail** (`--only tail`, `--rounds 3`; only when named): at each tick and N,
//! `--rounds` rounds of tickerlab's step and the floor's (in turn first), printing per round
//! p50, p99, p99.9, the worst second's p99 and where it fell, the ratios to the floor, and
//! each second's p99 side by side (`tail.rs`). `--clients 5000` makes it the join scenario.
//! `--pinned-floor` adds a third step to every round: the floor served the way actix serves,
//! one single-threaded runtime per core with each socket on one of them for its life, whose
//! ratio to the work-stealing floor is what that fixed assignment costs. `--workers`
//! (`BENCH_WORKERS`) sets tickerlab's HTTP workers; `--split-cores` pins the servers to the
//! first half of the cores and the clients to the rest (`support::cores`).
//!
//! **A noisy neighbour** (`--neighbour`): during every fan-out step, tickerlab's and the
//! floor's alike, a child process spins on one core (`support::neighbour`), from before the
//! server starts to the end of the step; it stops by itself if the bench does not stop it.
//!
//! Flags (or environment): `--secs 5` (`BENCH_SECS`) measuring time per step, `--clients
//! 1,10,100,1000,5000` (`BENCH_CLIENTS`), `--ticks 100,10` (`BENCH_TICKS`), `--only
//! ws|floor|idle|price|pushpoll|churn|tail` to run one part (all of them but `tail` by default;
//! `floor` runs the tickerlab steps too, to pair them), and the per-part flags above (each also
//! read from `BENCH_` + its name in capitals, e.g. `BENCH_CHURN_CLIENTS`). Output: Markdown on
//! stdout; `fanout.csv`, `fanout.json`, `fanout.svg`, `fanout-seconds.csv` and a
//! `fanout-seconds-<N>c-<tick>ms.svg` per (tick, N), and `fanout-floor.csv`,
//! `fanout-transient.csv`, `fanout-pushpoll.csv`, `fanout-churn.csv`, `fanout-tail.csv` for
//! the parts that ran, under `target/tickerlab-bench/`.
//!
//! To count instructions rather than time, `BENCH_SERVER_WRAPPER="valgrind --tool=callgrind
//! --callgrind-out-file=/tmp/server.%p.out"` runs every child (tickerlab's and the floor's)
//! under callgrind; run with `--secs 5` and `--secs 10` and divide the difference of the
//! totals by the extra messages (see docs/benchmarks.md).
//!
//! The files, one concern each: `cli.rs` (the flags), `crowd.rs` (the WebSocket clients),
//! `step.rs` (one fan-out step) and `step_table.rs` (its table), `beside_floor.rs`,
//! `transient.rs`, `idle.rs`, `price.rs`, `push_poll.rs`, `churn.rs` and `tail.rs` (a part
//! each, its step and its section of the report), `timeline.rs` (a step second by second),
//! `report.rs` (the sections and the files), `plot.rs` (the SVG against N) and
//! `seconds_plot.rs` (the SVG of the seconds).

#[path = "../support/mod.rs"]
mod support;

mod beside_floor;
mod churn;
mod cli;
mod crowd;
mod idle;
mod plot;
mod price;
mod push_poll;
mod report;
mod seconds_plot;
mod step;
mod step_table;
mod tail;
mod timeline;
mod transient;

use churn::churn_step;
use cli::{Part, Plan};
use idle::idle_step;
use price::price_step;
use push_poll::{PUSH_POLL_TICK_MS, poll_step};
use report::Results;
use step::{step_line, ws_step};
use support::output;
use support::server::{Kind, child_main, raise_open_files_limit};
use tail::tail_rounds;

fn main() {
    let plan = Plan::read();
    if plan.serve_child {
        child_main(plan.tick_ms, plan.workers, plan.heartbeat_secs);
        return;
    }
    if plan.floor_child {
        support::floor::child_main(plan.tick_ms, plan.pinned);
        return;
    }
    if plan.neighbour_child {
        support::neighbour::child_main(plan.neighbour_secs);
        return;
    }
    if let Some(secs) = plan.heartbeat_secs {
        let _ = support::server::CHILD_HEARTBEAT_SECS.set(secs);
    }
    if let Some(workers) = plan.workers {
        let _ = support::server::CHILD_WORKERS.set(workers);
    }
    let limit = raise_open_files_limit();
    let most = most_clients(&plan);
    if (most as u64) + 256 > limit {
        eprintln!(
            "open-files limit {limit} is too low for {most} clients: raise the hard limit \
             (ulimit -Hn) or pass --clients (--pushpoll-clients, --churn-clients) with smaller \
             numbers"
        );
        std::process::exit(1);
    }
    let machine = output::machine();
    eprintln!(
        "fanout bench: {machine}, open-files limit {limit}, {} s per step",
        plan.secs
    );
    let client_threads = if plan.split_cores { split_cores() } else { 2 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .enable_all()
        .build()
        .expect("a Tokio runtime for the clients");
    let results = runtime.block_on(run(&plan));
    report::report(&machine, &plan, &results);
}

/// `--split-cores`: the first half of the cores for the server children, the rest for this
/// process's threads (the clients); returns how many threads the clients get, one per core.
fn split_cores() -> usize {
    let cores = support::cores::allowed().expect("the cores this bench may use");
    if cores.len() < 2 {
        eprintln!("--split-cores needs at least 2 cores, and this bench may use {cores:?}");
        std::process::exit(1);
    }
    let (server, clients) = cores.split_at(cores.len() / 2);
    eprintln!("split cores: servers on {server:?}, clients on {clients:?}");
    let _ = support::server::SERVER_CORES.set(server.to_vec());
    support::cores::pin(clients).expect("pin the clients to their cores");
    clients.len()
}

/// The most clients connected at once by the parts the plan wants: each holds a socket.
fn most_clients(plan: &Plan) -> usize {
    let largest = plan.clients.iter().copied().max().unwrap_or(0);
    let pushpoll = if plan.wants(Part::Pushpoll) {
        plan.pushpoll_clients
    } else {
        0
    };
    let churn = if plan.wants(Part::Churn) {
        plan.churn_clients
    } else {
        0
    };
    largest.max(pushpoll).max(churn)
}

/// Runs every part the plan wants, one after the other, each step against a fresh server.
async fn run(plan: &Plan) -> Results {
    let (secs, clients, ticks) = (plan.secs, &plan.clients, &plan.ticks);
    let neighbour = plan.neighbour;
    let largest = clients.iter().copied().max().unwrap_or(0);
    // tickerlab and the floor take turns at each (tick, N), so both see the same machine.
    let mut steps = Vec::new();
    let mut floor_steps = Vec::new();
    if plan.wants(Part::Ws) || plan.wants(Part::Floor) {
        for &tick_ms in ticks {
            for &n in clients {
                let transient = plan.transient_for(n, tick_ms);
                let step = ws_step(Kind::Tickerlab, n, tick_ms, secs, transient, neighbour).await;
                eprintln!("{}", step_line(&step));
                steps.push(step);
                if plan.wants(Part::Floor) {
                    let step = ws_step(Kind::Floor, n, tick_ms, secs, transient, neighbour).await;
                    eprintln!("{}", step_line(&step));
                    floor_steps.push(step);
                }
            }
        }
    }
    let mut idle = None;
    if plan.wants(Part::Idle) && largest > 0 {
        let step = idle_step(largest).await;
        eprintln!(
            "idle: {} clients connected, {:.1} KiB per connection",
            step.connected, step.rss_per_conn_kib
        );
        idle = Some(step);
    }
    let mut price = None;
    if plan.wants(Part::Price) {
        let step = price_step(64, secs).await;
        eprintln!(
            "GET /price: {:.0} req/s, p99 {:.2} ms",
            step.req_per_sec, step.latency.p99
        );
        price = Some(step);
    }
    let mut pushpoll = None;
    if plan.wants(Part::Pushpoll) {
        let n = plan.pushpoll_clients;
        let push = ws_step(Kind::Tickerlab, n, PUSH_POLL_TICK_MS, secs, 0.0, false).await;
        eprintln!("push: {}", step_line(&push));
        let poll = poll_step(n, PUSH_POLL_TICK_MS, secs).await;
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
            let step = churn_step(kind, plan).await;
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
    let tail = if plan.wants(Part::Tail) {
        tail_rounds(plan).await
    } else {
        Vec::new()
    };
    Results {
        steps,
        floor: floor_steps,
        idle,
        price,
        pushpoll,
        churn,
        tail,
    }
}
