//! The feed: the one task that owns time. Every tick it steps the [`Market`], turns each new
//! price into a [`Tick`], serialises it **once**, and publishes the result to every
//! transport through a latest-value channel.
//!
//! Two decisions shape everything downstream:
//!
//! * **Serialise once, share the bytes.** A tick becomes JSON here, exactly once, as a
//!   [`ByteString`]: a reference-counted buffer whose `clone()` copies a pointer, not the
//!   text. A thousand WebSocket sessions send the *same* buffer; `GET /price` answers with
//!   it too. [`Feed::serialisations`] counts the work so a test can prove it.
//! * **Latest value wins.** A ticker's reader wants the newest price, not a backlog, so the
//!   channel is a [`tokio::sync::watch`], which holds only the newest value. A reader that
//!   falls behind skips straight to the newest snapshot and sees the gap in `seq`; the server
//!   never queues ticks for it. (A `broadcast` channel would queue, then report `Lagged`,
//!   which every reader would have to handle on purpose.)
//!
//! "Latest value wins" is for readers held back by their *client* (a full send queue). A
//! reader that is merely woken a little late (a busy machine delays a task by a few
//! ticks) should not lose ticks: the feed keeps the last [`HISTORY`] snapshots, and such a
//! reader sends the ones it missed from there ([`Feed::recent_json`]). Memory stays bounded
//! either way: the history is shared by all readers and fixed in length.
//!
//! DESIGN suggests one channel per symbol. Every symbol steps on the same tick, so we
//! publish one [`Snapshot`] of all symbols per tick instead: a session wakes once per tick
//! rather than once per subscribed symbol, subscribing is a flag flip rather than
//! juggling a set of channels, and every reader sees a consistent cross-section.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytestring::ByteString;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::market::Market;
use crate::tick::{Tick, epoch_ms};

/// One symbol's newest tick, both as data and as the JSON text every client is sent.
#[derive(Debug, Clone)]
pub struct Published {
    /// The tick as data, for code that needs a field (e.g. `seq`).
    pub tick: Tick,
    /// The tick serialised once; clone it to send it (a reference-count bump, no copy).
    pub json: ByteString,
}

/// Every symbol's newest tick, as published by one tick of the feed.
#[derive(Debug)]
pub struct Snapshot {
    /// One entry per symbol, in [`Feed::symbols`] order.
    pub ticks: Vec<Published>,
}

/// Counters that let tests and `/metrics` check the feed's promises.
#[derive(Debug, Default)]
struct Stats {
    ticks: AtomicU64,
    serialisations: AtomicU64,
}

/// How many past snapshots the feed keeps for readers that woke up late (see the module
/// docs): 256 ticks, 2.5 s at the fastest tick. A fixed number, so memory is bounded.
pub const HISTORY: usize = 256;

struct Shared {
    symbols: Vec<String>,
    tick_interval: Duration,
    latest: watch::Receiver<Arc<Snapshot>>,
    stats: Stats,
    /// The last [`HISTORY`] snapshots, oldest first. Written once per tick; read only by a
    /// reader that found a gap, so the lock is off every reader's normal path.
    history: RwLock<VecDeque<Arc<Snapshot>>>,
}

/// A handle to the running feed. Cheap to clone: every clone reads the same channel.
#[derive(Clone)]
pub struct Feed {
    shared: Arc<Shared>,
}

/// The feed's ticking task. Dropping this handle does not stop the task; call
/// [`FeedTask::stop`].
pub struct FeedTask {
    handle: JoinHandle<()>,
}

impl FeedTask {
    /// Stops ticking. Readers keep the last snapshot.
    pub fn stop(&self) {
        self.handle.abort();
    }
}

impl Feed {
    /// Publishes the first tick at once (so `GET /price` never has nothing to say), then spawns
    /// the task that publishes one tick every `tick_interval`. Must be called inside a Tokio
    /// runtime.
    pub fn start(market: Market, tick_interval: Duration) -> (Feed, FeedTask) {
        let symbols: Vec<String> = market.specs().map(|s| s.name.clone()).collect();
        let mut ticker = Ticker {
            market,
            seq: 0,
            symbols: symbols.clone(),
        };
        let stats = Stats::default();
        let first = Arc::new(ticker.next_snapshot(&stats));
        let (tx, rx) = watch::channel(first.clone());
        let feed = Feed {
            shared: Arc::new(Shared {
                symbols,
                tick_interval,
                latest: rx,
                stats,
                history: RwLock::new(VecDeque::from([first])),
            }),
        };
        let task_feed = feed.clone();
        let handle = tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick_interval);
            // A late tick is skipped, not bunched up: a ticker that fell behind should not
            // fire a burst of catch-up ticks.
            interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
            interval.tick().await; // the first tick completes at once: that was seq 1
            loop {
                interval.tick().await;
                let snapshot = Arc::new(ticker.next_snapshot(&task_feed.shared.stats));
                task_feed.remember(snapshot.clone());
                tx.send_replace(snapshot);
            }
        });
        (feed, FeedTask { handle })
    }

    /// The symbols this feed publishes, in snapshot order. The first is the default symbol.
    pub fn symbols(&self) -> &[String] {
        &self.shared.symbols
    }

    /// The position of `symbol` in [`Feed::symbols`], if the feed publishes it.
    pub fn index_of(&self, symbol: &str) -> Option<usize> {
        self.shared.symbols.iter().position(|s| s == symbol)
    }

    /// How often the feed ticks.
    pub fn tick_interval(&self) -> Duration {
        self.shared.tick_interval
    }

    /// The newest snapshot of every symbol.
    pub fn latest(&self) -> Arc<Snapshot> {
        self.shared.latest.borrow().clone()
    }

    /// A receiver that wakes when a new snapshot is published. Awaiting `changed()` on it
    /// costs nothing while the feed is quiet, however many receivers wait.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.shared.latest.clone()
    }

    /// The JSON of tick `seq` of the symbol at `index`, if it is among the last [`HISTORY`]
    /// ticks: for a reader that woke up after the feed had moved on.
    pub fn recent_json(&self, index: usize, seq: u64) -> Option<ByteString> {
        let history = self
            .shared
            .history
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let newest = history.back()?.ticks.first()?.tick.seq;
        let back = usize::try_from(newest.checked_sub(seq)?).ok()?;
        let position = history.len().checked_sub(1 + back)?;
        let published = history.get(position)?.ticks.get(index)?;
        (published.tick.seq == seq).then(|| published.json.clone())
    }

    fn remember(&self, snapshot: Arc<Snapshot>) {
        let mut history = self
            .shared
            .history
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(snapshot);
    }

    /// How many ticks the feed has published (the first one included).
    pub fn ticks(&self) -> u64 {
        self.shared.stats.ticks.load(Ordering::Relaxed)
    }

    /// How many times a tick was serialised to JSON: always `ticks() * symbols().len()`,
    /// whatever the number of clients.
    pub fn serialisations(&self) -> u64 {
        self.shared.stats.serialisations.load(Ordering::Relaxed)
    }
}

/// The state the ticking task owns: the market and the sequence number.
struct Ticker {
    market: Market,
    seq: u64,
    symbols: Vec<String>,
}

impl Ticker {
    fn next_snapshot(&mut self, stats: &Stats) -> Snapshot {
        self.seq += 1;
        let ts = epoch_ms();
        let quotes = self.market.step();
        let ticks = quotes
            .into_iter()
            .zip(&self.symbols)
            .map(|(quote, symbol)| {
                let tick = Tick {
                    symbol: symbol.clone(),
                    price: quote.price_cents as f64 / 100.0,
                    change: quote.change_cents as f64 / 100.0,
                    seq: self.seq,
                    ts,
                };
                // The one serialisation of this tick. Serialising a struct of strings and
                // numbers cannot fail.
                let json = serde_json::to_string(&tick).expect("a tick always serialises");
                stats.serialisations.fetch_add(1, Ordering::Relaxed);
                Published {
                    tick,
                    json: json.into(),
                }
            })
            .collect();
        stats.ticks.fetch_add(1, Ordering::Relaxed);
        Snapshot { ticks }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::SymbolSpec;

    fn market() -> Market {
        Market::new(
            vec![SymbolSpec::for_name("ACME"), SymbolSpec::for_name("GLOBX")],
            1,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn publishes_one_snapshot_per_tick_with_consecutive_seq() {
        let (feed, task) = Feed::start(market(), Duration::from_millis(100));
        let mut rx = feed.subscribe();
        assert_eq!(rx.borrow_and_update().ticks[0].tick.seq, 1);
        for expected in 2..=10 {
            rx.changed().await.unwrap();
            let snap = rx.borrow_and_update().clone();
            assert!(snap.ticks.iter().all(|p| p.tick.seq == expected));
            let parsed: Tick = serde_json::from_str(&snap.ticks[1].json).unwrap();
            assert_eq!(parsed, snap.ticks[1].tick);
        }
        assert_eq!(feed.ticks(), 10);
        let third: Tick = serde_json::from_str(&feed.recent_json(1, 3).unwrap()).unwrap();
        assert_eq!((third.symbol.as_str(), third.seq), ("GLOBX", 3));
        assert_eq!(feed.recent_json(0, 11), None);
        assert_eq!(feed.recent_json(0, 0), None);
        assert_eq!(feed.serialisations(), 20);
        task.stop();
    }
}
