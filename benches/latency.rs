//! # `cargo bench --bench latency`: how much fresher and cheaper is push than polling?
//!
//! Starts the real app in-process (its own threads), then runs, at the same time and against
//! the same feed, one client per transport: a WebSocket client and HTTP polling clients at
//! several intervals. Every client wraps its TCP stream in a byte counter, records every tick
//! it receives (`seq`, `ts`, when it arrived), and the bench turns those records into:
//!
//! * **time to see a change**: for every tick the server made, how long until the client
//!   held that tick or a newer one;
//! * **age of the shown price**: `now - ts` of the price the client holds, averaged over
//!   time (integrated, not sampled at receipt);
//! * **delivery delay**: receive time - `ts` of each message;
//! * **missed**: the share of price changes the client never held (`seq` gaps);
//! * **per change seen**: requests (or messages) and bytes on the wire, headers and payload
//!   apart.
//!
//! Each figure comes with the line theory predicts, so a surprise stands out.
//!
//! Flags (or environment): `--secs 30` (`BENCH_SECS`) measuring time, `--tick-ms 50`
//! (`BENCH_TICK_MS`), `--intervals 50,100,250,500,1000` (`BENCH_INTERVALS`) polling periods,
//! `--pollers 8` (`BENCH_POLLERS`) polling clients per period, at random phases, pooled.
//! Output: a Markdown table on stdout; `latency.csv`, `latency.json` and `latency.svg` under
//! `target/tickerlab-bench/`.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use tickerlab::Config;
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use support::args::Args;
use support::counting::Counted;
use support::http_client::HttpClient;
use support::output::{self, Table, num};
use support::server::InProcess;
use support::stats::{Summary, TickFields, now_ms, summary};

/// One row of the comparison: a way for a client to learn the price. Long polling and
/// Server-Sent Events join as variants of their own, with a `run` arm and a `theory` arm.
#[derive(Debug, Clone, Copy)]
enum Transport {
    /// `GET /ws`: the server pushes every tick.
    WebSocket,
    /// `GET /price` every `interval_ms` over one keep-alive connection.
    Polling { interval_ms: u64 },
}

/// One tick as a client received it.
#[derive(Debug, Clone, Copy)]
struct Receipt {
    /// When it arrived, epoch ms.
    at: f64,
    seq: u64,
    /// When the server made it, epoch ms.
    ts: f64,
}

/// Everything one client saw and spent.
#[derive(Debug, Default)]
struct Observed {
    /// Ticks received, in arrival order.
    receipts: Vec<Receipt>,
    /// Requests sent (polling) or messages received (push).
    exchanges: u64,
    /// Message bodies: JSON text of responses or WebSocket messages.
    payload_bytes: u64,
    /// Every byte read and written on the socket.
    wire_bytes: u64,
    /// Bytes of one typical exchange (a request and its response, or one tick message),
    /// headers and payload apart: the unit the theory multiplies.
    unit_header: f64,
    unit_payload: f64,
}

impl Transport {
    fn name(&self) -> String {
        match self {
            Transport::WebSocket => "WebSocket (push)".into(),
            Transport::Polling { interval_ms } => format!("polling every {interval_ms} ms"),
        }
    }

    /// The polling interval, or `None` for push transports.
    fn interval_ms(&self) -> Option<u64> {
        match self {
            Transport::WebSocket => None,
            Transport::Polling { interval_ms } => Some(*interval_ms),
        }
    }

    /// Runs this transport's client against `addr` until `stop_at`.
    async fn run(self, addr: SocketAddr, symbol: String, stop_at: Instant) -> Observed {
        let result = match self {
            Transport::WebSocket => run_websocket(addr, &symbol, stop_at).await,
            Transport::Polling { interval_ms } => {
                run_polling(addr, &symbol, interval_ms, stop_at).await
            }
        };
        result.unwrap_or_else(|e| panic!("{} client failed: {e}", self.name()))
    }

    /// What theory predicts for tick interval `tick` (ms), given the measured size of one
    /// exchange.
    fn theory(&self, tick: f64, unit_header: f64, unit_payload: f64) -> Theory {
        match self.interval_ms() {
            // Push: a change is seen as soon as it is delivered (~0 on loopback), the shown
            // price is as old as the time since the last tick (tick/2 on average), nothing
            // is missed, one message of one frame per change.
            None => Theory {
                see: [0.0, 0.0, 0.0, 0.0],
                age_mean: tick / 2.0,
                delay: [0.0, 0.0, 0.0],
                missed: 0.0,
                exchanges_per_change: 1.0,
                header_per_change: unit_header,
                payload_per_change: unit_payload,
            },
            // Polling every T: a change waits for the next poll, uniformly 0..T; the answer
            // carries a price made 0..tick ago; the shown price is tick/2 + T/2 old on
            // average; a poll sees at most one change, so when T > tick, 1 - tick/T of the
            // changes are never seen; when T < tick, tick/T polls are spent per change.
            Some(t) => {
                let t = t as f64;
                let per_change = (tick / t).max(1.0);
                Theory {
                    see: [t * 0.5, t * 0.9, t * 0.99, t],
                    age_mean: tick / 2.0 + t / 2.0,
                    delay: [tick * 0.5, tick * 0.99, tick],
                    missed: (1.0 - tick / t).max(0.0),
                    exchanges_per_change: per_change,
                    header_per_change: unit_header * per_change,
                    payload_per_change: unit_payload * per_change,
                }
            }
        }
    }
}

/// The figures theory predicts for one transport (milliseconds, shares, bytes).
#[derive(Debug, Clone, Serialize)]
struct Theory {
    /// Time to see a change: p50, p90, p99, max.
    see: [f64; 4],
    age_mean: f64,
    /// Delivery delay: p50, p99, max.
    delay: [f64; 3],
    missed: f64,
    exchanges_per_change: f64,
    header_per_change: f64,
    payload_per_change: f64,
}

/// The measured figures of one transport.
#[derive(Debug, Clone, Serialize)]
struct Row {
    transport: String,
    interval_ms: Option<u64>,
    /// Clients pooled in this row (polling clients start at random phases).
    clients: usize,
    see: Summary,
    age_mean: f64,
    delay: Summary,
    missed: f64,
    /// Ticks the server made in the window.
    changes_made: u64,
    exchanges_per_change: f64,
    header_per_change: f64,
    payload_per_change: f64,
    theory: Theory,
}

async fn run_websocket(
    addr: SocketAddr,
    symbol: &str,
    stop_at: Instant,
) -> anyhow::Result<Observed> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let url = format!("ws://{addr}/ws?symbols={symbol}");
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url, Counted::new(tcp), None).await?;
    let mut seen = Observed::default();
    let mut tick_bytes = Vec::new();
    loop {
        let message = tokio::select! {
            message = ws.next() => message,
            _ = tokio::time::sleep_until(stop_at) => break,
        };
        let Some(message) = message else { break };
        if let Message::Text(text) = message? {
            seen.payload_bytes += text.len() as u64;
            seen.exchanges += 1;
            if let Some(tick) = TickFields::parse(&text) {
                seen.receipts.push(Receipt {
                    at: now_ms(),
                    seq: tick.seq,
                    ts: tick.ts,
                });
                tick_bytes.push(text.len() as f64);
            }
        }
    }
    let _ = ws.close(None).await;
    let counted = ws.get_ref();
    seen.wire_bytes = counted.bytes_read() + counted.bytes_written();
    // One tick message: its JSON plus a 2-byte frame header (server frames are unmasked and
    // ticks are shorter than 126 bytes, RFC 6455 section 5.2).
    seen.unit_payload = tick_bytes.iter().sum::<f64>() / tick_bytes.len().max(1) as f64;
    seen.unit_header = 2.0;
    Ok(seen)
}

async fn run_polling(
    addr: SocketAddr,
    symbol: &str,
    interval_ms: u64,
    stop_at: Instant,
) -> anyhow::Result<Observed> {
    let mut client = HttpClient::connect(addr, &format!("/price?symbol={symbol}")).await?;
    // Start at a random phase against the feed's ticks, as a real page would.
    let offset = rand::random::<f64>() * interval_ms as f64;
    let mut interval = tokio::time::interval_at(
        Instant::now() + Duration::from_secs_f64(offset / 1000.0),
        Duration::from_millis(interval_ms),
    );
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut seen = Observed::default();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = tokio::time::sleep_until(stop_at) => break,
        }
        let (read, written) = (client.bytes_read(), client.bytes_written());
        let response = client.get().await?;
        let at = now_ms();
        anyhow::ensure!(
            response.status == 200,
            "GET /price answered {}",
            response.status
        );
        seen.exchanges += 1;
        seen.payload_bytes += response.body.len() as u64;
        if seen.unit_payload == 0.0 {
            let total = (client.bytes_read() - read + client.bytes_written() - written) as f64;
            seen.unit_payload = response.body.len() as f64;
            seen.unit_header = total - seen.unit_payload;
        }
        let text = std::str::from_utf8(&response.body)?;
        let tick = TickFields::parse(text)
            .ok_or_else(|| anyhow::anyhow!("GET /price answered {text:?}, not a tick"))?;
        seen.receipts.push(Receipt {
            at,
            seq: tick.seq,
            ts: tick.ts,
        });
    }
    seen.wire_bytes = client.bytes_read() + client.bytes_written();
    Ok(seen)
}

/// One client's figures over the window, before clients of the same row are pooled.
struct Measured {
    see: Vec<f64>,
    delay: Vec<f64>,
    age_mean: f64,
    made_in_window: u64,
    seen_in_window: u64,
    changes_seen: u64,
    exchanges: u64,
    header_bytes: u64,
    payload_bytes: u64,
}

/// Turns one client's records into figures over the window `[w0, w1]` (epoch ms). `made`
/// maps every `seq` the server made to its `ts`.
fn measure(seen: &Observed, made: &BTreeMap<u64, f64>, (w0, w1): (f64, f64)) -> Measured {
    let receipts = &seen.receipts;
    // Time to see a change: for each tick made in the window, the first receipt of it or of
    // a newer one. Receipts arrive in order and `seq` never goes back, so one pass does it.
    let in_window: Vec<(u64, f64)> = made
        .iter()
        .filter(|&(_, &ts)| ts >= w0 && ts <= w1)
        .map(|(&s, &ts)| (s, ts))
        .collect();
    let mut see = Vec::new();
    let mut next = 0;
    for &(seq, ts) in &in_window {
        while next < receipts.len() && receipts[next].seq < seq {
            next += 1;
        }
        if let Some(r) = receipts.get(next) {
            see.push(r.at - ts);
        }
    }
    // Age of the shown price, integrated: between two receipts the client shows the newest
    // tick it holds, whose age grows linearly; the integral of a line is its midpoint value.
    let mut area = 0.0;
    let mut held: Option<f64> = None;
    for (i, r) in receipts.iter().enumerate() {
        let h = held.map_or(r.ts, |h: f64| h.max(r.ts));
        held = Some(h);
        let end = receipts.get(i + 1).map_or(w1, |n| n.at);
        let (a, b) = (r.at.max(w0), end.min(w1));
        if b > a {
            area += (b - a) * ((a + b) / 2.0 - h);
        }
    }
    let delay = receipts
        .iter()
        .filter(|r| r.at >= w0 && r.at <= w1)
        .map(|r| r.at - r.ts)
        .collect();
    // Missed: changes made in the window that the client never held.
    let held_seqs: std::collections::HashSet<u64> = receipts.iter().map(|r| r.seq).collect();
    let seen_in_window = in_window
        .iter()
        .filter(|(s, _)| held_seqs.contains(s))
        .count() as u64;
    Measured {
        see,
        delay,
        age_mean: area / (w1 - w0),
        made_in_window: in_window.len() as u64,
        seen_in_window,
        changes_seen: held_seqs.len() as u64,
        exchanges: seen.exchanges,
        header_bytes: seen.wire_bytes - seen.payload_bytes,
        payload_bytes: seen.payload_bytes,
    }
}

/// Pools the clients of one transport into its table row. Per-change figures are over the
/// whole run (handshakes included, as a user pays them).
fn row(
    transport: Transport,
    clients: &[Observed],
    made: &BTreeMap<u64, f64>,
    window: (f64, f64),
    tick: f64,
) -> Row {
    let measured: Vec<Measured> = clients.iter().map(|c| measure(c, made, window)).collect();
    let n = measured.len().max(1) as f64;
    let sum = |f: fn(&Measured) -> u64| measured.iter().map(f).sum::<u64>() as f64;
    let mut see: Vec<f64> = measured
        .iter()
        .flat_map(|m| m.see.iter().copied())
        .collect();
    let mut delay: Vec<f64> = measured
        .iter()
        .flat_map(|m| m.delay.iter().copied())
        .collect();
    let changes = sum(|m| m.changes_seen).max(1.0);
    let unit_header = clients.iter().map(|c| c.unit_header).sum::<f64>() / n;
    let unit_payload = clients.iter().map(|c| c.unit_payload).sum::<f64>() / n;
    Row {
        transport: transport.name(),
        interval_ms: transport.interval_ms(),
        clients: clients.len(),
        see: summary(&mut see),
        age_mean: measured.iter().map(|m| m.age_mean).sum::<f64>() / n,
        delay: summary(&mut delay),
        missed: 1.0 - sum(|m| m.seen_in_window) / sum(|m| m.made_in_window).max(1.0),
        changes_made: measured.first().map_or(0, |m| m.made_in_window),
        exchanges_per_change: sum(|m| m.exchanges) / changes,
        header_per_change: sum(|m| m.header_bytes) / changes,
        payload_per_change: sum(|m| m.payload_bytes) / changes,
        theory: transport.theory(tick, unit_header, unit_payload),
    }
}

fn table(rows: &[Row]) -> Table {
    let mut t = Table::new(&[
        "transport",
        "see p50 ms",
        "see p90 ms",
        "see p99 ms",
        "see max ms",
        "shown age mean ms",
        "delay p50 ms",
        "delay p99 ms",
        "delay max ms",
        "missed",
        "req or msg / change",
        "header B / change",
        "payload B / change",
    ]);
    // "measured (theory)" in each cell.
    let pair = |m: f64, th: f64, d: usize| format!("{} ({})", num(m, d), num(th, d));
    let pct = |m: f64, th: f64| format!("{:.0}% ({:.0}%)", m * 100.0, th * 100.0);
    for r in rows {
        let th = &r.theory;
        t.rows.push(vec![
            if r.clients > 1 {
                format!("{} (x{})", r.transport, r.clients)
            } else {
                r.transport.clone()
            },
            pair(r.see.p50, th.see[0], 1),
            pair(r.see.p90, th.see[1], 1),
            pair(r.see.p99, th.see[2], 1),
            pair(r.see.max, th.see[3], 1),
            pair(r.age_mean, th.age_mean, 1),
            pair(r.delay.p50, th.delay[0], 2),
            pair(r.delay.p99, th.delay[1], 2),
            pair(r.delay.max, th.delay[2], 2),
            pct(r.missed, th.missed),
            pair(r.exchanges_per_change, th.exchanges_per_change, 2),
            pair(r.header_per_change, th.header_per_change, 0),
            pair(r.payload_per_change, th.payload_per_change, 0),
        ]);
    }
    t
}

/// The same figures as flat CSV columns, measured and theory side by side.
fn csv(rows: &[Row]) -> String {
    let mut t = Table::new(&[
        "transport",
        "interval_ms",
        "see_p50",
        "see_p90",
        "see_p99",
        "see_max",
        "see_p50_theory",
        "see_p99_theory",
        "age_mean",
        "age_mean_theory",
        "delay_p50",
        "delay_p99",
        "delay_max",
        "delay_p50_theory",
        "missed",
        "missed_theory",
        "exchanges_per_change",
        "exchanges_per_change_theory",
        "header_bytes_per_change",
        "payload_bytes_per_change",
        "header_bytes_per_change_theory",
        "payload_bytes_per_change_theory",
        "changes_made",
    ]);
    for r in rows {
        let f = |v: f64| format!("{v:.3}");
        t.rows.push(vec![
            r.transport.clone(),
            r.interval_ms.map_or(String::new(), |i| i.to_string()),
            f(r.see.p50),
            f(r.see.p90),
            f(r.see.p99),
            f(r.see.max),
            f(r.theory.see[0]),
            f(r.theory.see[2]),
            f(r.age_mean),
            f(r.theory.age_mean),
            f(r.delay.p50),
            f(r.delay.p99),
            f(r.delay.max),
            f(r.theory.delay[0]),
            f(r.missed),
            f(r.theory.missed),
            f(r.exchanges_per_change),
            f(r.theory.exchanges_per_change),
            f(r.header_per_change),
            f(r.payload_per_change),
            f(r.theory.header_per_change),
            f(r.theory.payload_per_change),
            r.changes_made.to_string(),
        ]);
    }
    t.csv()
}

fn main() {
    let args = Args::parse();
    let secs: f64 = args.get("secs", "BENCH_SECS", 30.0);
    let tick_ms: u64 = args.get("tick-ms", "BENCH_TICK_MS", 50);
    let intervals = args.list("intervals", "BENCH_INTERVALS", &[50, 100, 250, 500, 1000]);
    let pollers: usize = args.get("pollers", "BENCH_POLLERS", 8);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime for the clients");
    runtime.block_on(run(secs, tick_ms, intervals, pollers));
}

async fn run(secs: f64, tick_ms: u64, intervals: Vec<u64>, pollers: usize) {
    let machine = output::machine();
    let config = Config {
        port: 0,
        tick_ms,
        seed: Some(1),
        ..Config::default()
    };
    let server = InProcess::start(config);
    let symbol = server.feed.symbols()[0].clone();
    let mut transports = vec![Transport::WebSocket];
    transports.extend(
        intervals
            .iter()
            .map(|&interval_ms| Transport::Polling { interval_ms }),
    );
    // Warm-up and grace cover the longest polling interval, so every client has shown a price
    // before the window opens and has had its chance to see every tick made in it.
    let longest = intervals.iter().copied().max().unwrap_or(0) as f64;
    let margin = longest + 500.0;
    let start = now_ms();
    let window = (start + margin, start + margin + secs * 1000.0);
    let stop_at = Instant::now() + Duration::from_secs_f64((2.0 * margin + secs * 1000.0) / 1000.0);
    eprintln!(
        "latency bench: tick {tick_ms} ms, {} transports, {secs} s measured ({:.1} s in all), {machine}",
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
    // One WebSocket client (every push client sees the same thing), and `pollers` clients per
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
                .map(|_| tokio::spawn(t.run(server.addr, symbol.clone(), stop_at)))
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

    let rows: Vec<Row> = transports
        .iter()
        .zip(&observed)
        .map(|(&t, seen)| row(t, seen, &made, window, tick_ms as f64))
        .collect();
    let command = format!(
        "cargo bench --bench latency -- --secs {secs} --tick-ms {tick_ms} --pollers {pollers} --intervals {}",
        intervals
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    println!("\n## Latency: push vs polling, tick {tick_ms} ms, {secs} s measured\n");
    println!("Machine: {machine}. Command: `{command}`. Feed ticks: {feed_ticks}.");
    println!("Each cell: measured (theory).\n");
    print!("{}", table(&rows).markdown());
    output::write("latency.csv", &csv(&rows));
    let json = serde_json::json!({
        "bench": "latency",
        "command": command,
        "machine": machine,
        "tick_ms": tick_ms,
        "secs": secs,
        "rows": rows,
    });
    output::write(
        "latency.json",
        &serde_json::to_string_pretty(&json).unwrap_or_default(),
    );
    let svg = output::out_dir().join("latency.svg");
    match plot::latency(&svg, &rows, tick_ms as f64) {
        Ok(()) => eprintln!("wrote {}", svg.display()),
        Err(e) => eprintln!("cannot draw {}: {e}", svg.display()),
    }
}

/// The SVG: time to see a change and age of the shown price against the polling interval,
/// measured and theory, with the WebSocket's figures as flat lines.
mod plot {
    use std::path::Path;

    use plotters::prelude::*;

    use super::Row;

    const TEAL: RGBColor = RGBColor(0, 130, 160);

    /// A series: its legend, the figure of a row it plots, its colour.
    type Line = (&'static str, fn(&Row) -> f64, RGBColor);

    pub fn latency(path: &Path, rows: &[Row], tick: f64) -> Result<(), Box<dyn std::error::Error>> {
        let polls: Vec<&Row> = rows.iter().filter(|r| r.interval_ms.is_some()).collect();
        let push = rows.iter().find(|r| r.interval_ms.is_none());
        let x = |r: &Row| r.interval_ms.unwrap_or(0) as f64;
        let x_max = polls.iter().map(|r| x(r)).fold(100.0, f64::max) * 1.05;
        let y_max = rows
            .iter()
            .flat_map(|r| [r.see.p99, r.age_mean, r.theory.age_mean, r.theory.see[2]])
            .filter(|v| v.is_finite())
            .fold(10.0, f64::max)
            * 1.1;

        let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("tickerlab: polling vs WebSocket push (tick {tick} ms)"),
                ("sans-serif", 22),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("polling interval (ms)")
            .y_desc("milliseconds")
            .draw()?;

        let series = |f: fn(&Row) -> f64| -> Vec<(f64, f64)> {
            polls.iter().map(|r| (x(r), f(r))).collect()
        };
        let measured: [Line; 3] = [
            ("polling: time to see a change, p50", |r| r.see.p50, BLUE),
            ("polling: time to see a change, p99", |r| r.see.p99, TEAL),
            ("polling: age of the shown price, mean", |r| r.age_mean, RED),
        ];
        for (label, f, color) in measured {
            chart
                .draw_series(LineSeries::new(series(f), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(
                series(f)
                    .into_iter()
                    .map(move |p| Circle::new(p, 4, color.filled())),
            )?;
        }
        let theory: [Line; 3] = [
            ("theory (dashed): T/2", |r| r.theory.see[0], BLUE),
            ("theory (dashed): 0.99 T", |r| r.theory.see[2], TEAL),
            ("theory (dashed): tick/2 + T/2", |r| r.theory.age_mean, RED),
        ];
        for (label, f, color) in theory {
            chart
                .draw_series(DashedLineSeries::new(series(f), 6, 4, color.into()))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        if let Some(ws) = push {
            let flat: [(&str, f64, RGBColor); 2] = [
                ("WebSocket: time to see a change, p99", ws.see.p99, GREEN),
                (
                    "WebSocket: age of the shown price, mean",
                    ws.age_mean,
                    MAGENTA,
                ),
            ];
            for (label, y, color) in flat {
                chart
                    .draw_series(LineSeries::new(
                        vec![(0.0, y), (x_max, y)],
                        color.stroke_width(3),
                    ))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    }
}
