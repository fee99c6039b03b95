//! # `cargo bench --bench latency`: how much fresher and cheaper is push than polling?
//!
//! Starts the real app in-process (its own threads), then runs, at the same time and against
//! the same feed, one client per transport: a WebSocket client, a Server-Sent Events client,
//! a long-polling client and HTTP polling clients at several intervals. Every client wraps its TCP stream in a byte counter, records every tick
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
//! `--rtt-ms 0,50,150` (`BENCH_RTT_MS`) adds a round-trip axis: one run per value, every
//! client going through the app's simulated network (`--lab-rtt-ms`, see `tickerlab::lab`),
//! the same relay a browser tab on the lab port uses; without it the clients connect
//! directly, over loopback.
//! Then, on a TLS server of its own, it measures the header bytes of one poll and one long
//! poll over HTTP/1.1 and over HTTP/2 (HPACK), 50 of each on one connection, counted inside
//! TLS and on the wire.
//! Output: Markdown tables on stdout; `latency.csv`, `latency.json`, `latency.svg` and
//! `latency-tls-headers.json` under `target/tickerlab-bench/`, and with several round trips
//! `latency-rtt.svg`.
//!
//! The files, one concern each:
//!
//! * `cli.rs`: the flags ([`cli::Settings`]);
//! * `transport.rs`: the four ways to learn the price, and what a client records;
//! * `clients.rs` and `sse.rs`: the clients, one per transport;
//! * `run.rs`: one run (a fresh server, every client at once), and the runs one per round trip;
//! * `measure.rs`: a client's records into figures, and the clients of a transport into a row;
//! * `theory.rs`: what each transport should measure, the line each figure is read against;
//! * `report.rs`: the table, CSV and JSON; `plot.rs`: the SVGs;
//! * `tls_headers.rs`: header bytes over TLS, HTTP/1.1 against HTTP/2.

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod clients;
mod measure;
mod plot;
mod report;
mod run;
mod sse;
mod theory;
mod tls_headers;
mod transport;

use clap::Parser;

fn main() {
    let settings = cli::Settings::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime for the clients");
    runtime.block_on(run::all(settings));
}
