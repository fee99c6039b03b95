//! The feed: the one task that owns time. Every tick it steps the [`Market`], turns each new
//! price into a [`Tick`], serialises it **once**, and publishes the result to every
//! transport through a latest-value channel.
//!
//! Two decisions shape everything downstream:
//!
//! * **Serialise once, share the bytes.** A tick becomes JSON here, exactly once, wrapped in
//!   a [`Published`] that also builds its SSE and WebSocket forms at most once (the bytes
//!   themselves are [`crate::wire`]'s subject). A thousand WebSocket sessions send the
//!   *same* buffer; `GET /price` answers with the same JSON. [`Feed::serialisations`] and
//!   [`Feed::ws_frames`] count the work so a test can prove it.
//! * **Latest value wins.** A ticker's reader wants the newest price, not a backlog, so the
//!   channel is a [`tokio::sync::watch`], which holds only the newest value. A reader that
//!   falls behind skips straight to the newest snapshot and sees the gap in `seq`; the server
//!   never queues ticks for it. (A `broadcast` channel would queue, then report `Lagged`,
//!   which every reader would have to handle on purpose.)
//!
//! The channel can be fed two ways. By default the ticking task in this process steps the market
//! ([`Feed::start`]). A front-end instance behind a Redis backplane has no market: its
//! [`Relay`] writes the ticks a publisher instance sent through Redis into the same channel
//! ([`Feed::relay`]), serialising each one it adopts just as the ticking task does, so every
//! transport downstream works unchanged.
//!
//! "Latest value wins" is for readers held back by their *client* (a full send queue). A
//! reader that is merely woken a little late (a busy machine delays a task by a few
//! ticks) should not lose ticks: the feed keeps the last [`HISTORY`] snapshots, and such a
//! reader sends the ones it missed from there ([`Feed::recent_frame`]). Memory stays bounded
//! either way: the history is shared by all readers and fixed in length.
//!
//! DESIGN suggests one channel per symbol. Every symbol steps on the same tick, so we
//! publish one [`Snapshot`] of all symbols per tick instead: a session wakes once per tick
//! rather than once per subscribed symbol, subscribing is a flag flip rather than
//! juggling a set of channels, and every reader sees a consistent cross-section.

pub(crate) mod local;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use actix_web::web::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::backplane::check::Rejection;
use crate::market::Market;
use crate::tick::{FeedSource, FeedStatus, RedisLink, RunId, Tick, epoch_ms};
use crate::wire::Published;

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
    ws_frames: AtomicU64,
    /// Worker threads relaying the feed now ([`local::LocalFeed`]).
    relays: AtomicU64,
    /// Tick frames the relays wrote to sockets themselves ([`local::Direct`]).
    relay_writes: AtomicU64,
    /// On a front-end: ticks read from Redis and refused, by [`Rejection`] position.
    rejected: [AtomicU64; Rejection::ALL.len()],
}

/// How the feed's Redis link is doing, written by the backplane tasks, read by `/healthz`
/// and `hello`. Atomics, because a request reads it while a task writes it.
#[derive(Debug)]
struct Health {
    /// 0 without `--redis`, else the [`RedisLink`] (see [`Feed::set_link`] for the codes).
    link: std::sync::atomic::AtomicU8,
    /// The origin of [`Health::last_adopted`]: a *monotonic* clock reading, because the wall
    /// clock can be stepped (NTP, a laptop waking up) and staleness is a duration, not a date.
    started: Instant,
    /// Microseconds after `started` when the relay last *adopted* a live tick (one that
    /// changed what clients see); 0 for never. A tick received but dropped as old does not
    /// count: a front-end that receives only ticks it ignores is frozen, not live.
    last_adopted: AtomicU64,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            link: Default::default(),
            started: Instant::now(),
            last_adopted: AtomicU64::new(0),
        }
    }
}

impl Health {
    /// Records that a live tick was adopted now.
    fn adopted_now(&self) {
        let micros = self.started.elapsed().as_micros().max(1) as u64;
        self.last_adopted.store(micros, Ordering::Relaxed);
    }

    /// How long ago a live tick was last adopted; `None` if never.
    fn since_adopted(&self) -> Option<Duration> {
        match self.last_adopted.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(
                self.started
                    .elapsed()
                    .saturating_sub(Duration::from_micros(micros)),
            ),
        }
    }
}

/// How many past snapshots the feed keeps for readers that woke up late (see the module
/// docs): 256 ticks, 2.5 s at the fastest tick. A fixed number, so memory is bounded.
pub const HISTORY: usize = 256;

struct Shared {
    symbols: Vec<String>,
    tick_interval: Duration,
    latest: watch::Receiver<Arc<Snapshot>>,
    stats: Stats,
    source: FeedSource,
    health: Health,
    /// The last [`HISTORY`] snapshots, oldest first. Written once per tick; read only by a
    /// reader that found a gap, so the lock is off every reader's normal path.
    history: RwLock<VecDeque<Arc<Snapshot>>>,
}

/// A handle to the running feed. Cheap to clone: every clone reads the same channel.
#[derive(Clone)]
pub struct Feed {
    shared: Arc<Shared>,
}

/// The feed's tasks: the ticking task and, with `--redis`, the backplane task that publishes
/// to or subscribes from Redis. Dropping this handle does not stop them; call
/// [`FeedTask::stop`], or [`FeedTask::shutdown`] to also run its farewell.
pub struct FeedTask {
    handles: Vec<JoinHandle<()>>,
    /// What to do once the tasks are stopped on a graceful shutdown, e.g. a Redis publisher
    /// giving its lease back so that a replacement can start at once.
    farewell: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

impl FeedTask {
    /// Stops ticking (and relaying). Readers keep the last snapshot.
    pub fn stop(&self) {
        for handle in &self.handles {
            handle.abort();
        }
    }

    /// Stops the tasks and waits until they have stopped, then runs the farewell set with
    /// [`FeedTask::with_farewell`], if any: the graceful way out, for a server that is
    /// shutting down.
    pub async fn shutdown(mut self) {
        self.stop();
        // `abort` only asks: a task is dropped when the runtime next gets to it, and until
        // then it may still send a Redis publish. The farewell gives the publisher lease
        // back, and a publish after that would claim the free lease again, so it waits
        // until no task is left. (A task's result, cancelled or not, is of no use here.)
        for handle in self.handles.drain(..) {
            let _ = handle.await;
        }
        if let Some(farewell) = self.farewell.take() {
            farewell.await;
        }
    }

    /// A handle on one task.
    pub fn new(handle: JoinHandle<()>) -> FeedTask {
        FeedTask {
            handles: vec![handle],
            farewell: None,
        }
    }

    /// The same tasks, with `farewell` to run after them on [`FeedTask::shutdown`].
    pub fn with_farewell(
        mut self,
        farewell: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> FeedTask {
        self.farewell = Some(Box::pin(farewell));
        self
    }

    /// The same tasks plus `handle`, so that [`FeedTask::stop`] stops it too.
    pub fn with(mut self, handle: JoinHandle<()>) -> FeedTask {
        self.handles.push(handle);
        self
    }
}

/// The writing end of a front-end's feed: what the Redis subscriber uses to publish the
/// ticks it receives, in place of a market. Created by [`Feed::relay`].
///
/// It keeps the feed's promises for ticks it did not make: a tick replaces the current one of
/// its symbol only if its `seq` is newer within the same run, or if it starts a later run
/// (the publisher restarted), so a reader never sees a symbol go back in time or the same
/// tick twice within a run, whatever order Redis and the start-up `GET` deliver them in.
pub struct Relay {
    tx: watch::Sender<Arc<Snapshot>>,
    feed: Feed,
    /// The run this relay follows: the latest it has seen (see [`Relay::publish`]).
    run: RunId,
}

impl Feed {
    /// Publishes the first tick at once (so `GET /price` never has nothing to say), then spawns
    /// the task that publishes one tick every `tick_interval`. Must be called inside a Tokio
    /// runtime.
    pub fn start(market: Market, tick_interval: Duration) -> (Feed, FeedTask) {
        Feed::start_after(market, tick_interval, 0, RunId::new(), None)
    }

    /// [`Feed::start`] for a publisher instance: the first tick gets `seq` `last_seq + 1`
    /// in run `run`, so a publisher that replaces another continues its numbering (in a run
    /// made by [`RunId::continuing`]), and the feed reports the Redis link `link` in its
    /// status.
    pub fn start_after(
        market: Market,
        tick_interval: Duration,
        last_seq: u64,
        run: RunId,
        link: Option<RedisLink>,
    ) -> (Feed, FeedTask) {
        let symbols: Vec<String> = market.specs().map(|s| s.name.clone()).collect();
        let mut ticker = Ticker {
            market,
            seq: last_seq,
            run,
            symbols: symbols.clone(),
        };
        let stats = Stats::default();
        let first = ticker.next_snapshot(&stats);
        let (tx, feed) = Feed::new(symbols, tick_interval, first, stats, FeedSource::Local);
        feed.set_link(link);
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
        (feed, FeedTask::new(handle))
    }

    /// A feed with no market, for a front-end instance: the returned [`Relay`] publishes the
    /// ticks a publisher sent through Redis. Until the first one arrives, every symbol holds a
    /// placeholder with `seq` 0: `GET /price` answers `503` and `/ws` sends nothing for it
    /// (a session only sends a `seq` newer than the last it sent, which starts at 0).
    pub fn relay(symbols: Vec<String>, tick_interval: Duration) -> (Feed, Relay) {
        let placeholder = Snapshot {
            ticks: symbols
                .iter()
                .map(|symbol| {
                    let tick = Tick {
                        symbol: symbol.clone(),
                        price: 0.0,
                        change: 0.0,
                        seq: 0,
                        ts: 0.0,
                        run: RunId::UNKNOWN,
                    };
                    Published::serialise(tick)
                })
                .collect(),
        };
        let (tx, feed) = Feed::new(
            symbols,
            tick_interval,
            placeholder,
            Stats::default(),
            FeedSource::Redis,
        );
        feed.set_link(Some(RedisLink::Down));
        let relay = Relay {
            tx,
            feed: feed.clone(),
            run: RunId::UNKNOWN,
        };
        (feed, relay)
    }

    fn new(
        symbols: Vec<String>,
        tick_interval: Duration,
        first: Snapshot,
        stats: Stats,
        source: FeedSource,
    ) -> (watch::Sender<Arc<Snapshot>>, Feed) {
        let first = Arc::new(first);
        let (tx, rx) = watch::channel(first.clone());
        let feed = Feed {
            shared: Arc::new(Shared {
                symbols,
                tick_interval,
                latest: rx,
                stats,
                source,
                health: Health::default(),
                history: RwLock::new(VecDeque::from([first])),
            }),
        };
        (tx, feed)
    }

    /// Tick `seq` of run `run` of the symbol at `index`, if it is among the last [`HISTORY`]
    /// snapshots: for a reader that woke up after the feed had moved on. A binary search on
    /// the symbol's `(run, seq)`, which never decreases along the history (the relay clears
    /// the history whenever a symbol would move back, see [`Relay::publish`]).
    pub(crate) fn recent<T>(
        &self,
        index: usize,
        run: RunId,
        seq: u64,
        read: impl FnOnce(&Published) -> T,
    ) -> Option<T> {
        let history = self
            .shared
            .history
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        // A symbol's seq never goes down along the history, but a snapshot is not always one
        // seq: a Redis relay publishes one per batch of ticks that arrived together (a new one
        // only when a symbol repeats in the batch), in which a symbol may skip seqs (ticks
        // Redis never delivered) or stay put. So search by the symbol's own seq rather than
        // by position.
        let key =
            |snapshot: &Arc<Snapshot>| snapshot.ticks.get(index).map(|p| (p.tick.run, p.tick.seq));
        let position = history.partition_point(|snapshot| key(snapshot) < Some((run, seq)));
        let published = history.get(position)?.ticks.get(index)?;
        (published.tick.run == run && published.tick.seq == seq).then(|| read(published))
    }

    /// The JSON of a recent tick: what the tests compare (the server sends
    /// [`Feed::recent_frame`]).
    #[cfg(test)]
    fn recent_json(&self, index: usize, run: RunId, seq: u64) -> Option<bytestring::ByteString> {
        self.recent(index, run, seq, |published| published.json.clone())
    }

    /// The WebSocket frame of tick `seq` of run `run` of the symbol at `index`, if it is
    /// among the last [`HISTORY`] snapshots.
    pub fn recent_frame(&self, index: usize, run: RunId, seq: u64) -> Option<Bytes> {
        self.recent(index, run, seq, |published| self.ws_frame(published))
    }

    /// `published` as a complete WebSocket frame, built once per tick whatever the number of
    /// connections (counted: [`Feed::ws_frames`]).
    pub fn ws_frame(&self, published: &Published) -> Bytes {
        published.ws_frame(&self.shared.stats.ws_frames)
    }

    fn forget_history(&self) {
        self.shared
            .history
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
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

    /// Where this feed's prices come from and whether they are current, as `/healthz` and
    /// `hello` report it.
    pub fn status(&self) -> FeedStatus {
        let redis = self.link();
        let stale = match self.shared.source {
            FeedSource::Local => false,
            FeedSource::Redis => {
                let adopted = self.shared.health.since_adopted();
                redis != Some(RedisLink::Connected)
                    || adopted.is_none_or(|since| since > self.stale_after())
            }
        };
        FeedStatus {
            source: self.shared.source,
            stale,
            redis,
            run: self.run(),
            rejected: self.rejected_total(),
        }
    }

    /// The run of the ticks this feed serves (see [`RunId`]): the newest run among its
    /// symbols, [`RunId::UNKNOWN`] on a front-end that has no tick yet.
    pub fn run(&self) -> RunId {
        let latest = self.shared.latest.borrow();
        latest
            .ticks
            .iter()
            .map(|p| p.tick.run)
            .max()
            .unwrap_or_default()
    }

    /// How many ticks this instance may lag behind the one a client last read from: none for
    /// a feed that makes its own ticks (no tick beyond its newest exists), and for a
    /// front-end the ticks of [`Feed::stale_after`] (lagging longer, it calls itself stale).
    /// A resume position further ahead than this was never reached.
    pub fn lag_allowance(&self) -> u64 {
        match self.shared.source {
            FeedSource::Local => 0,
            FeedSource::Redis => {
                let tick = self.shared.tick_interval.as_millis().max(1);
                (self.stale_after().as_millis() / tick) as u64
            }
        }
    }

    /// A front-end calls its prices stale after three tick intervals without adopting a
    /// live tick, measured on the monotonic clock (at least one second, so a busy
    /// machine's scheduling hiccup is not an outage).
    pub fn stale_after(&self) -> Duration {
        (self.shared.tick_interval * 3).max(Duration::from_secs(1))
    }

    fn link(&self) -> Option<RedisLink> {
        match self.shared.health.link.load(Ordering::Relaxed) {
            1 => Some(RedisLink::Connected),
            2 => Some(RedisLink::Down),
            3 => Some(RedisLink::LeaseLost),
            _ => None,
        }
    }

    /// Records the state of the Redis link (the backplane tasks call this).
    pub fn set_link(&self, link: Option<RedisLink>) {
        let code = match link {
            None => 0,
            Some(RedisLink::Connected) => 1,
            Some(RedisLink::Down) => 2,
            Some(RedisLink::LeaseLost) => 3,
        };
        self.shared.health.link.store(code, Ordering::Relaxed);
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

    /// A receiver that wakes when a new snapshot is published *after* this call. Awaiting
    /// `changed()` on it costs nothing while the feed is quiet, however many receivers wait.
    /// (The snapshot current at the call counts as seen: read it with [`Feed::latest`] or
    /// `borrow_and_update()`. Subscribe first, then read, so no tick falls in between.)
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        let mut receiver = self.shared.latest.clone();
        receiver.mark_unchanged();
        receiver
    }

    /// How many ticks the feed has published (the first one included).
    pub fn ticks(&self) -> u64 {
        self.shared.stats.ticks.load(Ordering::Relaxed)
    }

    /// How many times a tick was serialised to JSON: always `ticks() * symbols().len()`,
    /// whatever the number of clients.
    ///
    /// On a front-end ([`Feed::relay`]) the relay serialises each tick it *adopts* (at most
    /// one per symbol per `seq`; a tick dropped as old or refused by the checks costs no
    /// serialisation), so the promise it checks is the same: work per tick, never per
    /// client. There `ticks()` counts the snapshots the relay published (one per batch of
    /// ticks that arrived together, and one more each time a symbol repeats in the batch),
    /// so the two are no longer in proportion.
    pub fn serialisations(&self) -> u64 {
        self.shared.stats.serialisations.load(Ordering::Relaxed)
    }

    /// Counts a tick read from Redis that a front-end refused, and why (the subscriber
    /// calls this; see [`crate::backplane::check`]).
    pub fn count_rejected(&self, why: Rejection) {
        self.shared.stats.rejected[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// How many ticks read from Redis were refused for `why` (always 0 on a local feed).
    pub fn rejected(&self, why: Rejection) -> u64 {
        self.shared.stats.rejected[why as usize].load(Ordering::Relaxed)
    }

    /// How many ticks read from Redis were refused, for any reason.
    pub fn rejected_total(&self) -> u64 {
        Rejection::ALL.iter().map(|why| self.rejected(*why)).sum()
    }

    /// How many worker threads relay the feed to their WebSocket connections now: one per
    /// worker with a `/ws` client, however many clients (see `feed/local.rs`).
    pub fn worker_relays(&self) -> u64 {
        self.shared.stats.relays.load(Ordering::Relaxed)
    }

    /// How many tick frames the workers' relays wrote straight to their WebSockets' sockets,
    /// with no wake-up of the connection's task (see `feed/local.rs`); the others went
    /// through the connection's own task.
    pub fn relay_writes(&self) -> u64 {
        self.shared.stats.relay_writes.load(Ordering::Relaxed)
    }

    /// How many WebSocket frames of ticks were built: at most one per symbol per tick,
    /// whatever the number of WebSocket connections (and none while nobody listens).
    pub fn ws_frames(&self) -> u64 {
        self.shared.stats.ws_frames.load(Ordering::Relaxed)
    }
}

impl Relay {
    /// Publishes the ticks that arrived together (`(symbol index, tick)` pairs) as one new
    /// snapshot, keeping only ticks newer than the current one of their symbol (see
    /// [`Relay`]).
    /// `live` says they came from the pub/sub stream (not the start-up `GET`): only a live
    /// tick that is *adopted* keeps the feed from being stale. Returns how many ticks were
    /// adopted.
    ///
    /// It takes ticks, not text: each adopted tick is serialised here, once, so what clients
    /// receive is this server's JSON whatever bytes came through Redis (a JSON text may hold
    /// a raw line break between its tokens, which would split a Server-Sent Events line).
    pub fn publish(&mut self, batch: Vec<(usize, Tick)>, live: bool) -> usize {
        let stats = &self.feed.shared.stats;
        let health = &self.feed.shared.health;
        // A frozen relay (nothing adopted for a while) accepts an earlier-sorting run too:
        // its publisher restarted with a clock that had stepped back.
        let frozen = health
            .since_adopted()
            .is_none_or(|since| since > self.feed.stale_after());
        let mut ticks = self.tx.borrow().ticks.clone();
        let mut adopted = 0;
        let mut moved_back = false;
        // The symbols whose tick changed since the last snapshot this batch made.
        let mut changed = vec![false; ticks.len()];
        for (index, incoming) in batch {
            if index >= ticks.len() {
                continue;
            }
            if incoming.run > self.run {
                // A later run: the publisher restarted. Its numbering starts afresh (perhaps
                // lower than ours): follow it at once, or this front-end freezes.
                self.run = incoming.run;
            } else if incoming.run < self.run {
                // An earlier run: a straggler, or an old publisher that has lost its lease.
                // Dropped, unless nothing has been adopted for a while: then the publisher
                // restarted with a clock that had stepped back, and its run is the one alive.
                if !(live && frozen) {
                    continue;
                }
                self.run = incoming.run;
            }
            // Same run as the one followed: a later seq, or the first tick of this run for
            // this symbol. Older or equal: a duplicate, or a tick the start-up GET superseded.
            let current = &ticks[index];
            if current.tick.run != incoming.run || incoming.seq > current.tick.seq {
                if changed[index] {
                    // A second tick of this symbol in one batch (Redis delivered a burst):
                    // the first gets a snapshot of its own, so the history holds every tick
                    // and a reader catches up on it instead of losing it.
                    self.snapshot(ticks.clone(), std::mem::take(&mut moved_back));
                    changed.fill(false);
                }
                changed[index] = true;
                let current = &mut ticks[index];
                // Following an earlier run moves each symbol back when it adopts that run's
                // first tick: in this batch or a later one, whatever `self.run` did.
                moved_back |= (incoming.run, incoming.seq) < (current.tick.run, current.tick.seq);
                // The one serialisation of this tick on this front-end.
                *current = Published::serialise(incoming);
                adopted += 1;
            }
        }
        if adopted > 0 && live {
            health.adopted_now();
        }
        if adopted > 0 {
            stats
                .serialisations
                .fetch_add(adopted as u64, Ordering::Relaxed);
        }
        if changed.contains(&true) {
            self.snapshot(ticks, moved_back);
        }
        adopted
    }

    /// Publishes `ticks` as the feed's new snapshot and keeps it in the history.
    fn snapshot(&self, ticks: Vec<Published>, moved_back: bool) {
        if moved_back {
            // `recent` searches the history by each symbol's (run, seq), so that must never
            // decrease along it. A symbol moved back only when the publisher's clock stepped
            // back: rare enough to forget the whole history rather than keep one per symbol.
            self.feed.forget_history();
        }
        self.feed.shared.stats.ticks.fetch_add(1, Ordering::Relaxed);
        let snapshot = Arc::new(Snapshot { ticks });
        self.feed.remember(snapshot.clone());
        self.tx.send_replace(snapshot);
    }

    /// The feed this relay writes to.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }
}

/// The state the ticking task owns: the market, this run's id and the sequence number.
struct Ticker {
    market: Market,
    seq: u64,
    run: RunId,
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
                    run: self.run,
                };
                // The one serialisation of this tick.
                stats.serialisations.fetch_add(1, Ordering::Relaxed);
                Published::serialise(tick)
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
    use bytestring::ByteString;

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
        assert_eq!(feed.serialisations(), 20);
        task.stop();
    }

    /// The farewell (a publisher giving its Redis lease back) runs only once every task has
    /// stopped: a task that still existed could send one more fenced publish after the
    /// lease is deleted, and so claim it again. The task holds a clone of `alive`; once the
    /// task is gone, the farewell sees the only one left.
    #[tokio::test]
    async fn shutdown_runs_the_farewell_only_after_every_task_has_stopped() {
        let alive = Arc::new(());
        let held = alive.clone();
        let handle = tokio::spawn(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await; // the task is now waiting inside its loop
        let seen = Arc::new(AtomicU64::new(0));
        let farewell = {
            let seen = seen.clone();
            async move {
                seen.store(Arc::strong_count(&alive) as u64, Ordering::SeqCst);
            }
        };
        FeedTask::new(handle)
            .with_farewell(farewell)
            .shutdown()
            .await;
        assert_eq!(
            seen.load(Ordering::SeqCst),
            1,
            "the farewell ran while a task still held its state"
        );
    }

    pub(super) fn tick_of(symbol: &str, seq: u64) -> Tick {
        tick_in(RunId::UNKNOWN, symbol, seq)
    }

    fn tick_in(run: RunId, symbol: &str, seq: u64) -> Tick {
        Tick {
            symbol: symbol.into(),
            price: 1.0,
            change: 0.0,
            seq,
            ts: 1.0,
            run,
        }
    }

    #[test]
    fn recent_json_finds_a_tick_by_its_own_seq_in_relay_snapshots() {
        let (feed, mut relay) = Feed::relay(
            vec!["ACME".into(), "GLOBX".into()],
            Duration::from_millis(100),
        );
        // Batches as Redis delivers them: symbols out of step, seqs skipped, one symbol
        // unchanged across snapshots.
        relay.publish(
            vec![(0, tick_of("ACME", 10)), (1, tick_of("GLOBX", 3))],
            true,
        );
        relay.publish(vec![(0, tick_of("ACME", 12))], true);
        relay.publish(vec![(1, tick_of("GLOBX", 4))], true);
        relay.publish(
            vec![(0, tick_of("ACME", 13)), (1, tick_of("GLOBX", 9))],
            true,
        );
        let seq_of = |json: ByteString| serde_json::from_str::<Tick>(&json).unwrap();
        for (index, seq) in [(0, 10), (0, 12), (0, 13), (1, 3), (1, 4), (1, 9)] {
            let tick = seq_of(
                feed.recent_json(index, RunId::UNKNOWN, seq)
                    .expect("in the history"),
            );
            assert_eq!(
                (tick.symbol.as_str(), tick.seq),
                (feed.symbols()[index].as_str(), seq)
            );
        }
        for (index, seq) in [(0, 11), (0, 14), (1, 5), (1, 10), (2, 3)] {
            assert_eq!(
                feed.recent_json(index, RunId::UNKNOWN, seq),
                None,
                "{index} {seq}"
            );
        }
    }

    /// Redis delivered a burst: several ticks of one symbol read in one batch. Each gets a
    /// snapshot of its own in the history, so a reader woken once catches up on all of them
    /// (before, only the newest was kept, and every client of the front-end saw a gap).
    #[test]
    fn a_burst_of_ticks_of_one_symbol_keeps_every_tick_in_the_history() {
        let (feed, mut relay) = Feed::relay(
            vec!["ACME".into(), "GLOBX".into()],
            Duration::from_millis(100),
        );
        relay.publish(
            vec![(0, tick_of("ACME", 1)), (1, tick_of("GLOBX", 1))],
            true,
        );
        let burst = (2..=5).flat_map(|seq| [(0, tick_of("ACME", seq)), (1, tick_of("GLOBX", seq))]);
        assert_eq!(relay.publish(burst.collect(), true), 8);
        for (index, seq) in (0..2).flat_map(|i| (1..=5).map(move |seq| (i, seq))) {
            let json = feed.recent_json(index, RunId::UNKNOWN, seq);
            assert!(
                json.is_some(),
                "symbol {index} seq {seq} is not in the history"
            );
        }
        assert_eq!(feed.latest().ticks[0].tick.seq, 5);
        assert_eq!(feed.latest().ticks[1].tick.seq, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn recent_json_finds_the_local_feeds_recent_ticks() {
        let (feed, task) = Feed::start(market(), Duration::from_millis(100));
        let mut rx = feed.subscribe();
        while rx.borrow_and_update().ticks[0].tick.seq < 5 {
            rx.changed().await.unwrap();
        }
        for seq in 1..=5 {
            let json = feed
                .recent_json(1, feed.run(), seq)
                .expect("in the history");
            assert_eq!(serde_json::from_str::<Tick>(&json).unwrap().seq, seq);
        }
        assert_eq!(feed.recent_json(1, feed.run(), 6), None);
        assert_eq!(feed.recent_json(1, RunId(feed.run().0 + 1), 5), None);
        task.stop();
    }

    #[test]
    fn a_relay_keeps_only_newer_ticks_and_counts_what_it_adopts() {
        let (feed, mut relay) = Feed::relay(
            vec!["ACME".into(), "GLOBX".into()],
            Duration::from_millis(100),
        );
        assert!(feed.latest().ticks.iter().all(|p| p.tick.seq == 0));
        assert!(feed.status().stale, "no Redis yet");
        let mut rx = feed.subscribe();
        rx.borrow_and_update();

        let batch = vec![
            (0, tick_of("ACME", 5)),
            (0, tick_of("ACME", 4)),
            (1, tick_of("GLOBX", 5)),
        ];
        assert_eq!(relay.publish(batch, true), 2);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        // Nothing newer: no snapshot is published, nobody wakes.
        assert_eq!(
            relay.publish(vec![(0, tick_of("ACME", 5)), (9, tick_of("X", 9))], true),
            0
        );
        assert!(!rx.has_changed().unwrap());
        assert_eq!(relay.publish(vec![(0, tick_of("ACME", 6))], true), 1);
        let seqs: Vec<u64> = feed.latest().ticks.iter().map(|p| p.tick.seq).collect();
        assert_eq!(seqs, [6, 5]);
        assert_eq!((feed.serialisations(), feed.ticks()), (3, 2));
        // What clients are sent is the relay's own serialisation of the tick it adopted.
        assert_eq!(
            feed.latest().ticks[0].json,
            serde_json::to_string(&tick_of("ACME", 6)).unwrap()
        );

        feed.set_link(Some(RedisLink::Connected));
        assert!(
            !feed.status().stale,
            "connected, and a live tick just arrived"
        );
        assert_eq!(feed.status().source, FeedSource::Redis);
    }

    /// A publisher and Redis restarted together count from 1 again under a
    /// new run; the front-end adopts the new run at once instead of freezing on its old seq,
    /// and drops stragglers of the old run.
    #[test]
    fn a_relay_adopts_a_later_run_at_once_and_drops_the_earlier_one() {
        let (feed, mut relay) = Feed::relay(
            vec!["ACME".into(), "GLOBX".into()],
            Duration::from_millis(100),
        );
        let (old, new) = (RunId(5 << 16), RunId(9 << 16));
        let both = |run, seq| {
            vec![
                (0, tick_in(run, "ACME", seq)),
                (1, tick_in(run, "GLOBX", seq)),
            ]
        };
        assert_eq!(relay.publish(both(old, 83), true), 2);
        assert_eq!(feed.run(), old);
        assert_eq!(
            relay.publish(both(new, 1), true),
            2,
            "a new run's seq 1 is adopted"
        );
        assert_eq!(feed.run(), new);
        assert_eq!(relay.publish(both(old, 84), true), 0, "the old run is over");
        assert_eq!(relay.publish(both(new, 2), true), 2);
        let seqs: Vec<(RunId, u64)> = feed
            .latest()
            .ticks
            .iter()
            .map(|p| (p.tick.run, p.tick.seq))
            .collect();
        assert_eq!(seqs, [(new, 2), (new, 2)]);
        assert!(feed.recent_json(0, new, 1).is_some());
    }

    /// The history stays searchable for every symbol when the relay goes back to an
    /// earlier run (a publisher restarted with a clock stepped back) while one symbol still
    /// holds the later run: that symbol moves back in a later batch, and its ticks of the
    /// earlier run must be found all the same. (The history is forgotten when it moves back,
    /// so ACME's seq 7, published before that, is gone: a gap, as for any forgotten tick.)
    #[tokio::test(start_paused = true)]
    async fn recent_json_finds_every_tick_after_one_symbol_moves_back_to_an_earlier_run() {
        let (feed, mut relay) = Feed::relay(
            vec!["ACME".into(), "GLOBX".into()],
            Duration::from_millis(100),
        );
        let (earlier, later) = (RunId(5 << 16), RunId(9 << 16));
        let both = |run, seq| {
            vec![
                (0, tick_in(run, "ACME", seq)),
                (1, tick_in(run, "GLOBX", seq)),
            ]
        };
        assert_eq!(relay.publish(both(later, 1), true), 2);
        // Frozen: the relay now accepts the earlier run, and ACME moves back first, alone.
        tokio::time::advance(feed.stale_after() + Duration::from_millis(1)).await;
        assert_eq!(
            relay.publish(vec![(0, tick_in(earlier, "ACME", 7))], true),
            1
        );
        // GLOBX, still on the later run, follows in the next batches.
        assert_eq!(relay.publish(both(earlier, 8), true), 2);
        assert_eq!(relay.publish(both(earlier, 9), true), 2);

        let history = feed.shared.history.read().unwrap().clone();
        for index in 0..2 {
            let keys: Vec<(RunId, u64)> = history
                .iter()
                .map(|s| (s.ticks[index].tick.run, s.ticks[index].tick.seq))
                .collect();
            assert!(
                keys.is_sorted(),
                "symbol {index} out of (run, seq) order in the history: {keys:?}"
            );
        }
        for (index, seq) in [(0, 8), (0, 9), (1, 8), (1, 9)] {
            assert!(
                feed.recent_json(index, earlier, seq).is_some(),
                "symbol {index} seq {seq} of the earlier run is not found"
            );
        }
    }

    /// Stale means "no tick *adopted* for [`Feed::stale_after`]", on the
    /// monotonic clock: ticks that arrive but are all dropped do not make a feed live.
    #[tokio::test(start_paused = true)]
    async fn a_relay_is_stale_when_nothing_was_adopted_lately_even_if_ticks_arrive() {
        let (feed, mut relay) = Feed::relay(vec!["ACME".into()], Duration::from_millis(100));
        feed.set_link(Some(RedisLink::Connected));
        assert!(feed.status().stale, "nothing adopted yet");
        assert_eq!(relay.publish(vec![(0, tick_of("ACME", 7))], true), 1);
        assert!(!feed.status().stale);
        tokio::time::advance(feed.stale_after() + Duration::from_millis(1)).await;
        // Only old ticks keep arriving: received, not adopted.
        assert_eq!(relay.publish(vec![(0, tick_of("ACME", 6))], true), 0);
        assert!(feed.status().stale, "dropped ticks do not count as live");
        // A tick adopted from the start-up GET is not live either.
        assert_eq!(relay.publish(vec![(0, tick_of("ACME", 8))], false), 1);
        assert!(feed.status().stale);
        assert_eq!(relay.publish(vec![(0, tick_of("ACME", 9))], true), 1);
        assert!(!feed.status().stale);
    }
}
