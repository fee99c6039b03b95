//! # `cargo bench --bench hot_path`: the per-tick work, in isolation (criterion)
//!
//! What the server does on every tick, measured without any network:
//!
//! * `market_step`: one step of the seeded random walk for the default four symbols;
//! * `tick_serialise`: one tick to JSON, the feed's only serialisation per symbol per tick;
//! * `publish/borrow`: publishing a snapshot on the `watch` channel and having N subscribers
//!   each take the shared JSON (a reference-count bump, no copy), as the sessions do;
//! * `publish/wake_tasks`: the same with N tasks actually parked on `changed()` and woken, on
//!   a one-thread Tokio runtime: the cost of waking N sessions, per tick.
//!
//! Criterion reports time per iteration with a confidence interval; `throughput` lines give
//! subscribers per second. Run `cargo bench --bench hot_path`, or one group with
//! `cargo bench --bench hot_path -- publish`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tickerlab::feed::Snapshot;
use tickerlab::market::{DEFAULT_SYMBOLS, Market, SymbolSpec};
use tickerlab::tick::{RunId, Tick};
use tickerlab::wire::Published;
use tokio::sync::{Notify, watch};

fn market() -> Market {
    let specs = DEFAULT_SYMBOLS
        .iter()
        .map(|s| SymbolSpec::for_name(s))
        .collect();
    Market::new(specs, 1)
}

fn tick(seq: u64) -> Tick {
    Tick {
        symbol: "ACME".into(),
        price: 101.23,
        change: 0.12,
        seq,
        ts: 1_795_895_822_123.456,
        run: RunId(0x019a_c2f1_e3a7_4c1d),
    }
}

/// A snapshot like the feed publishes: every default symbol, serialised once.
fn snapshot(seq: u64) -> Arc<Snapshot> {
    let ticks = DEFAULT_SYMBOLS
        .iter()
        .map(|s| {
            let tick = Tick {
                symbol: s.to_string(),
                ..tick(seq)
            };
            Published::serialise(tick)
        })
        .collect();
    Arc::new(Snapshot { ticks })
}

fn market_step(c: &mut Criterion) {
    let mut market = market();
    c.bench_function("market_step (4 symbols)", |b| {
        b.iter(|| black_box(market.step()))
    });
}

fn tick_serialise(c: &mut Criterion) {
    let tick = tick(42);
    c.bench_function("tick_serialise", |b| {
        b.iter(|| serde_json::to_string(black_box(&tick)))
    });
}

const SUBSCRIBERS: [usize; 4] = [1, 100, 1000, 10_000];

fn publish_borrow(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish/borrow");
    for n in SUBSCRIBERS {
        let (tx, rx) = watch::channel(snapshot(1));
        let mut receivers: Vec<_> = (0..n).map(|_| rx.clone()).collect();
        let next = snapshot(2);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                tx.send_replace(next.clone());
                for rx in &mut receivers {
                    // What a session does per tick before its socket write: take the newest
                    // snapshot and clone the shared JSON of its symbol.
                    let snapshot = rx.borrow_and_update().clone();
                    black_box(snapshot.ticks[0].json.clone());
                }
            })
        });
    }
    group.finish();
}

fn publish_wake_tasks(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish/wake_tasks");
    group.measurement_time(Duration::from_secs(5));
    for n in SUBSCRIBERS {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let (tx, rx) = watch::channel(snapshot(1));
        let done = Arc::new(AtomicUsize::new(0));
        let all_woken = Arc::new(Notify::new());
        let _guard = runtime.enter();
        for _ in 0..n {
            let (mut rx, done, all_woken) = (rx.clone(), done.clone(), all_woken.clone());
            runtime.spawn(async move {
                while rx.changed().await.is_ok() {
                    let snapshot = rx.borrow_and_update().clone();
                    black_box(snapshot.ticks[0].json.clone());
                    // The last of the n subscribers to run tells the publisher. notify_one
                    // keeps a permit if nobody waits yet, so no wake-up is lost.
                    if done.fetch_add(1, Ordering::AcqRel) + 1 == n {
                        done.store(0, Ordering::Release);
                        all_woken.notify_one();
                    }
                }
            });
        }
        let next = snapshot(2);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    // Let every task park on `changed()` first.
                    tokio::task::yield_now().await;
                    let start = Instant::now();
                    for _ in 0..iters {
                        tx.send_replace(next.clone());
                        all_woken.notified().await;
                    }
                    start.elapsed()
                })
            })
        });
        drop(tx);
    }
    group.finish();
}

criterion_group!(
    hot_path,
    market_step,
    tick_serialise,
    publish_borrow,
    publish_wake_tasks
);
criterion_main!(hot_path);
