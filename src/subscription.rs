//! Which symbols one streaming client receives, and the last `seq` it was sent of each.
//!
//! Every push transport (WebSocket, Server-Sent Events) keeps one of these per client. It is
//! fixed-size on purpose: a bit set over the feed's symbols and an inline array of sequence
//! numbers, so deciding what to send a client on each tick allocates nothing.

use crate::config::MAX_SYMBOLS;
use crate::feed::{Feed, Published, Snapshot};

/// The most symbols one request may list. Longer lists are refused (or cut, for URL
/// parameters), so a client cannot make the server do unbounded work per message.
pub const MAX_SYMBOLS_PER_REQUEST: usize = 64;

/// A client's subscription: a set of the feed's symbols plus what it has been sent.
#[derive(Debug, Clone)]
pub struct Subscription {
    mask: u32,
    last_sent: [u64; MAX_SYMBOLS],
}

impl Subscription {
    /// No symbols at all.
    pub fn empty() -> Subscription {
        Subscription {
            mask: 0,
            last_sent: [0; MAX_SYMBOLS],
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
                Some(i) => {
                    self.mask &= !(1 << i);
                    // Resubscribing starts afresh: ticks missed while unsubscribed were not
                    // skipped for slowness, and there is no backlog to catch up.
                    self.last_sent[i] = 0;
                }
                None => unknown.push(name.clone()),
            }
        }
        unknown
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

    /// The last `seq` of the symbol at `index` this client was sent (0: none yet).
    pub fn last_sent(&self, index: usize) -> u64 {
        self.last_sent.get(index).copied().unwrap_or(0)
    }

    /// Records that the client already holds `seq` of the symbol at `index` (e.g. from an SSE
    /// `Last-Event-ID`), so it is not sent that tick again.
    pub fn mark_sent(&mut self, index: usize, seq: u64) {
        if let Some(slot) = self.last_sent.get_mut(index) {
            *slot = (*slot).max(seq);
        }
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
            .filter_map(move |(i, published)| {
                if self.contains(i) && published.tick.seq > self.last_sent[i] {
                    self.last_sent[i] = published.tick.seq;
                    Some(published)
                } else {
                    None
                }
            })
    }
}
