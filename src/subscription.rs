//! Which symbols one streaming client receives, and the last `(run, seq)` it was sent of each.
//!
//! Every push transport (WebSocket, Server-Sent Events) keeps one of these per client. It is
//! fixed-size on purpose: a bit set over the feed's symbols and inline arrays of runs and
//! sequence numbers, so deciding what to send a client on each tick allocates nothing.
//!
//! What it has sent is remembered across unsubscribing and subscribing again: the client
//! still holds that tick, so sending it again would be a duplicate. Only a new run (the feed
//! restarted) starts a symbol afresh.

use std::fmt::Write as _;

use crate::config::MAX_SYMBOLS;
use crate::feed::{Feed, Snapshot};
use crate::tick::RunId;
use crate::wire::Published;

/// The most symbols one request may list. Longer lists are refused (or cut, for URL
/// parameters), so a client cannot make the server do unbounded work per message.
pub const MAX_SYMBOLS_PER_REQUEST: usize = 64;

/// A client's subscription: a set of the feed's symbols plus what it has been sent.
///
/// A WebSocket's body reads it on every tick, for a thousand clients whose state has left
/// the processor's caches since the last tick, so each symbol's run and seq sit side by
/// side, right after the set (`repr(C)` keeps that order): a client of the first symbol
/// touches 24 bytes of it.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct Subscription {
    mask: u32,
    sent: [Sent; MAX_SYMBOLS],
}

/// The last tick of one symbol a client was sent: `seq` of run `run` (0: none of that run).
#[derive(Debug, Clone, Copy)]
struct Sent {
    run: RunId,
    seq: u64,
}

impl Subscription {
    /// No symbols at all.
    pub fn empty() -> Subscription {
        Subscription {
            mask: 0,
            sent: [Sent {
                run: RunId::UNKNOWN,
                seq: 0,
            }; MAX_SYMBOLS],
        }
    }

    /// Only the symbol at `index` in [`Feed::symbols`].
    pub fn only(index: usize) -> Subscription {
        let mut s = Subscription::empty();
        s.mask = 1 << index;
        s
    }

    /// The subscription for a list of names (case-insensitive), and the names that are unknown.
    pub fn from_names(feed: &Feed, names: &[String]) -> (Subscription, Vec<String>) {
        let mut s = Subscription::empty();
        let unknown = s.change(feed, names, true);
        (s, unknown)
    }

    /// Adds (`on`) or removes symbols; returns the names that are not in the feed.
    pub fn change(&mut self, feed: &Feed, names: &[String], on: bool) -> Vec<String> {
        let mut unknown = Vec::new();
        for name in names {
            match feed.index_of(&name.to_ascii_uppercase()) {
                Some(i) if on => self.mask |= 1 << i,
                // What was sent is kept: a client that subscribes again within the same tick
                // already holds that tick and must not get it twice.
                Some(i) => self.mask &= !(1 << i),
                None => unknown.push(name.clone()),
            }
        }
        unknown
    }

    /// Takes `other`'s set of symbols, keeping what this one has sent: the session works out
    /// a change on a copy (to answer it first) and then applies it with this.
    pub fn adopt_symbols(&mut self, other: &Subscription) {
        self.mask = other.mask;
    }

    /// Whether the symbol at `index` is subscribed.
    pub fn contains(&self, index: usize) -> bool {
        self.mask & (1 << index) != 0
    }

    /// The subscribed symbols' names, in feed order.
    pub fn names(&self, feed: &Feed) -> Vec<String> {
        feed.symbols()
            .iter()
            .enumerate()
            .filter(|(i, _)| self.contains(*i))
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// The last `seq` of run `run` of the symbol at `index` this client was sent (0: none
    /// of that run yet).
    pub fn last_sent(&self, index: usize, run: RunId) -> u64 {
        match self.sent.get(index) {
            Some(sent) if sent.run == run => sent.seq,
            _ => 0,
        }
    }

    /// Records that the client already holds `seq` of run `run` of the symbol at `index`
    /// (just sent, or named by an SSE `Last-Event-ID`), so it is not sent that tick again.
    /// Another run replaces what was recorded: the client has moved on to it.
    pub fn mark_sent(&mut self, index: usize, run: RunId, seq: u64) {
        if let Some(sent) = self.sent.get_mut(index) {
            if sent.run != run {
                *sent = Sent { run, seq: 0 };
            }
            sent.seq = sent.seq.max(seq);
        }
    }

    /// Whether the subscribed symbol at `index` should be sent `published` (it is not the
    /// tick it was last sent, nor older within the same run), and if so records it as sent.
    pub fn take(&mut self, index: usize, published: &Published) -> bool {
        let tick = &published.tick;
        if !self.contains(index) || tick.seq <= self.last_sent(index, tick.run) {
            return false;
        }
        self.mark_sent(index, tick.run, tick.seq);
        true
    }

    /// What this client holds, as an SSE event id: `ACME:42,GLOBX:17@RUN`, the `(symbol,
    /// seq)` of every symbol last sent in run `run`, the event's own symbol (at `first`)
    /// first, then `@` and the run. Sent as each event's `id:`, so the `Last-Event-ID` a
    /// browser reconnects with names *every* symbol's position, not just the symbol of the
    /// last event (see [`Subscription::resume`]). A one-symbol stream's ids read as before,
    /// `ACME:42`, plus the run.
    pub fn resume_id(&self, snapshot: &Snapshot, first: usize, run: RunId) -> String {
        let mut id = String::with_capacity(16 * (1 + self.mask.count_ones() as usize) + 17);
        let order = std::iter::once(first).chain((0..snapshot.ticks.len()).filter(|i| *i != first));
        for i in order {
            let seq = self.last_sent(i, run);
            if let (true, Some(published)) = (seq > 0, snapshot.ticks.get(i)) {
                let comma = if id.is_empty() { "" } else { "," };
                let _ = write!(id, "{comma}{}:{seq}", published.tick.symbol);
            }
        }
        let _ = write!(id, "@{run}");
        id
    }

    /// Whether symbol `i` is the only one this client holds a position for in `run`: then its
    /// [`Subscription::resume_id`] is `SYMBOL:SEQ@RUN`, the same for every such client.
    pub fn only_position(&self, i: usize, run: RunId) -> bool {
        (0..MAX_SYMBOLS).all(|j| j == i || self.last_sent(j, run) == 0)
    }

    /// Applies the position a client reconnected with (an SSE `Last-Event-ID`, or `/ws`'s
    /// `?resume=`): what it holds is not sent again. The current form is
    /// [`Subscription::resume_id`]'s; the older `ACME:42` (one symbol, no run) is still
    /// accepted. Returns the positions of the id that this feed can never have reached
    /// (empty for a good id), so that the caller can say so.
    ///
    /// Only a position at or a little beyond the symbol's current seq is recorded: the
    /// client has the current tick (so it is not resent), or this instance lags behind the
    /// one the client came from (so it sends nothing until it catches up; by at most
    /// [`Feed::lag_allowance`] ticks). A position behind it needs nothing recorded: the
    /// current tick is sent as on any connect, with the gap showing what the outage cost, and
    /// no backlog is replayed (a WebSocket session would otherwise fill the gap from the
    /// history). A position further ahead than any instance can be is bad input: it is not
    /// recorded (the client starts at the newest tick) and is returned.
    ///
    /// An id of another run than `current_run` (the feed restarted meanwhile) holds nothing
    /// the client should not get again: ignored. An old-style id has no run, so a seq beyond
    /// the feed's current one is taken as "from before a restart" and ignored too.
    pub fn resume(&mut self, feed: &Feed, id: &str, current_run: RunId) -> Vec<BeyondTheFeed> {
        let Some((list, run)) = id.rsplit_once('@') else {
            if let Some((index, seq)) = symbol_seq(feed, id) {
                let current = &feed.latest().ticks[index].tick;
                if seq == current.seq {
                    self.mark_sent(index, current.run, seq);
                }
            }
            return Vec::new();
        };
        let Ok(run) = run.trim().parse::<RunId>() else {
            return Vec::new();
        };
        if run != current_run {
            return Vec::new();
        }
        let latest = feed.latest();
        let mut beyond = Vec::new();
        for entry in list.split(',').take(MAX_SYMBOLS) {
            if let Some((index, seq)) = symbol_seq(feed, entry) {
                let current = &latest.ticks[index].tick;
                if current.run != run {
                    self.mark_sent(index, run, seq);
                } else if seq > current.seq.saturating_add(feed.lag_allowance()) {
                    beyond.push(BeyondTheFeed {
                        symbol: current.symbol.clone(),
                        seq,
                        newest: current.seq,
                    });
                } else if seq >= current.seq {
                    self.mark_sent(index, run, seq);
                }
            }
        }
        beyond
    }

    /// The subscribed ticks of `snapshot` this client has not been sent yet, marking them
    /// sent. The caller sends each one's shared, pre-serialised bytes: per client and per
    /// tick this copies nothing and allocates nothing.
    pub fn take_new<'s>(
        &'s mut self,
        snapshot: &'s Snapshot,
    ) -> impl Iterator<Item = &'s Published> + 's {
        snapshot
            .ticks
            .iter()
            .enumerate()
            .filter_map(move |(i, published)| self.take(i, published).then_some(published))
    }
}

/// A resume position that no instance of the feed can have reached: `seq` of `symbol` is
/// further ahead of the `newest` tick than any lag explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeyondTheFeed {
    /// The symbol the position names.
    pub symbol: String,
    /// The seq the client claimed to hold.
    pub seq: u64,
    /// The newest seq of that symbol here.
    pub newest: u64,
}

/// `ACME:42` as (symbol index, seq), when it names a symbol of this feed.
fn symbol_seq(feed: &Feed, text: &str) -> Option<(usize, u64)> {
    let (symbol, seq) = text.split_once(':')?;
    Some((feed.index_of(symbol.trim())?, seq.trim().parse().ok()?))
}
