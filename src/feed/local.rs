//! The feed, relayed once per worker thread.
//!
//! Each tick, if every `/ws` connection waited on the feed's `watch` channel itself, the
//! feed's thread would wake every connection's task across threads: per connection a push
//! onto its worker's shared run queue (a lock), a registration in the channel's waiter list
//! (a lock), and a clone of the snapshot's `Arc`, whose count then bounces between the cores.
//!
//! [`LocalFeed`] makes it one cross-thread wake per worker (see [`crate::wake`]): one small
//! task per worker waits on the channel and, when a snapshot comes, keeps it behind an `Rc`
//! and wakes the connections of its own thread, each a push onto that thread's own run
//! queue. A connection holds a [`LocalReceiver`], which is what it waits on.
//!
//! A connection can do better than be woken: one that registers itself as a [`Direct`] taker
//! is handed each snapshot by the relay in the same turn, and writes what it owes straight to
//! its socket there (`/ws`, see `http::ws::body`), so a tick costs it no wake-up of its task
//! at all; it wakes its own task only when it cannot write now.
//!
//! Nothing else changes: the snapshot is the feed's, so a frame is still built once per
//! symbol per tick and shared by every socket, and "latest value wins" holds (a receiver
//! sees the newest snapshot, and the feed's history covers a reader woken late).

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use super::{Feed, Snapshot};
use crate::wake::{Registration, Waiters};

/// One worker thread's copy of the feed's newest snapshot, and the connections of this
/// thread that wait for the next one.
pub(crate) struct LocalFeed {
    /// The feed relayed: held so that the identity check in [`LocalFeed::for_this_thread`]
    /// can never match a different feed at a reused address.
    feed: Feed,
    /// The newest snapshot this thread has, shared by its connections without atomics.
    current: RefCell<Rc<LocalSnapshot>>,
    /// The feed stopped publishing (its channel closed).
    closed: Cell<bool>,
    /// Who to wake on the next snapshot. Its version counts the snapshots: a receiver has
    /// seen the newest once its `seen` equals it.
    waiters: Waiters,
    /// The receivers that take each snapshot as it comes ([`LocalReceiver::take_directly`]),
    /// in the places they were given; a place given up is `None` until reused.
    direct: RefCell<Vec<Option<Rc<dyn Direct>>>>,
    /// Places in `direct` given up, reused by the next to register.
    direct_free: RefCell<Vec<usize>>,
}

/// A connection that takes each new snapshot from the relay itself, in the relay's turn,
/// instead of having its task woken for it (see the module docs).
///
/// The relay calls it with no other code of the thread running in between, and holds its
/// list of takers while it does: `take` must neither register nor drop a [`LocalReceiver`].
pub(crate) trait Direct {
    /// The relay has a new snapshot: write what it owes the connection now, or wake the task
    /// that will. Returns how many frames it wrote whole.
    fn take(&self, snapshot: &Rc<LocalSnapshot>) -> u64;
    /// The feed stopped: wake the task that will notice it.
    fn wake(&self);
}

thread_local! {
    /// This thread's relays, one per feed (a process normally has one feed). Weak: the
    /// connections own a relay, and it goes when the last of them does.
    static RELAYS: RefCell<Vec<Weak<LocalFeed>>> = const { RefCell::new(Vec::new()) };
}

impl LocalFeed {
    /// This thread's relay of `feed`, started on the first call on a thread: a task on the
    /// thread's own runtime (it must be a `LocalSet`, as every actix worker is).
    pub(crate) fn for_this_thread(feed: &Feed) -> Rc<LocalFeed> {
        RELAYS.with_borrow_mut(|relays| {
            relays.retain(|relay| relay.strong_count() > 0);
            if let Some(relay) = relays
                .iter()
                .filter_map(Weak::upgrade)
                .find(|relay| Arc::ptr_eq(&relay.feed.shared, &feed.shared) && !relay.closed.get())
            {
                return relay;
            }
            // Subscribe first, then read: no snapshot can fall in between.
            let snapshots = feed.subscribe();
            let relay = Rc::new(LocalFeed {
                feed: feed.clone(),
                current: RefCell::new(Rc::new(LocalSnapshot(feed.latest()))),
                closed: Cell::new(false),
                waiters: Waiters::default(),
                direct: RefCell::default(),
                direct_free: RefCell::default(),
            });
            feed.shared.stats.relays.fetch_add(1, Ordering::Relaxed);
            relays.push(Rc::downgrade(&relay));
            tokio::task::spawn_local(relay_task(Rc::downgrade(&relay), snapshots));
            relay
        })
    }

    /// A receiver that has seen the snapshot current now.
    pub(crate) fn receiver(self: &Rc<LocalFeed>) -> LocalReceiver {
        LocalReceiver {
            relay: self.clone(),
            seen: self.waiters.version(),
            registered: None,
            direct: None,
        }
    }

    /// Adopts the feed's new snapshot, hands it to every direct taker and wakes every receiver
    /// waiting for one.
    fn publish(&self, snapshot: Arc<Snapshot>) {
        let current = Rc::new(LocalSnapshot(snapshot));
        *self.current.borrow_mut() = current.clone();
        self.waiters.wake_all();
        let mut written = 0;
        for taker in self.direct.borrow().iter().flatten() {
            written += taker.take(&current);
        }
        // Counted once per snapshot, not per socket: one shared atomic per worker per tick.
        if written > 0 {
            let stats = &self.feed.shared.stats;
            stats.relay_writes.fetch_add(written, Ordering::Relaxed);
        }
    }

    /// The feed stopped: every receiver is told.
    fn close(&self) {
        self.closed.set(true);
        self.waiters.wake_all();
        for taker in self.direct.borrow().iter().flatten() {
            taker.wake();
        }
    }
}

impl Drop for LocalFeed {
    fn drop(&mut self) {
        self.feed
            .shared
            .stats
            .relays
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The feed's snapshot as the connections of one thread share it: behind an `Rc`, whose
/// count only this thread touches, where cloning the `Arc` itself would make every
/// connection of every worker add to and subtract from one shared count each tick.
pub(crate) struct LocalSnapshot(Arc<Snapshot>);

impl std::ops::Deref for LocalSnapshot {
    type Target = Snapshot;

    fn deref(&self) -> &Snapshot {
        &self.0
    }
}

/// Waits on the feed's channel for this thread's relay; ends when the feed stops or when no
/// connection of this thread holds the relay any more.
async fn relay_task(
    relay: Weak<LocalFeed>,
    mut snapshots: tokio::sync::watch::Receiver<Arc<Snapshot>>,
) {
    loop {
        let changed = snapshots.changed().await;
        let Some(relay) = relay.upgrade() else {
            return;
        };
        match changed {
            Ok(()) => relay.publish(snapshots.borrow_and_update().clone()),
            Err(_) => {
                relay.close();
                return;
            }
        }
    }
}

/// One connection's view of its thread's [`LocalFeed`].
pub(crate) struct LocalReceiver {
    relay: Rc<LocalFeed>,
    /// The relay's version when this receiver last took a snapshot.
    seen: u64,
    /// Its place in the relay's list of waiters.
    registered: Registration,
    /// Its place in the relay's list of direct takers, if it is one.
    direct: Option<usize>,
}

impl Drop for LocalReceiver {
    fn drop(&mut self) {
        self.relay.waiters.unregister(&mut self.registered);
        if let Some(place) = self.direct.take() {
            self.relay.direct.borrow_mut()[place] = None;
            self.relay.direct_free.borrow_mut().push(place);
        }
    }
}

/// What a [`LocalReceiver`] found.
pub(crate) enum Change {
    /// A snapshot newer than the last one taken.
    Snapshot(Rc<LocalSnapshot>),
    /// The feed stopped publishing: no snapshot will come.
    Stopped,
}

impl LocalReceiver {
    /// The newest snapshot, taken (seen) now.
    pub(crate) fn newest(&mut self) -> Rc<LocalSnapshot> {
        self.seen = self.relay.waiters.version();
        self.relay.current.borrow().clone()
    }

    /// Whether the relay has a snapshot newer than the last one this receiver took.
    pub(crate) fn is_behind(&self) -> bool {
        self.relay.waiters.version() != self.seen
    }

    /// From now on the relay hands each new snapshot to `taker` ([`Direct`]) instead of
    /// waking this receiver's task: [`LocalReceiver::poll_change`] no longer registers it, so
    /// `taker` wakes it when it needs to run. Until this receiver is dropped; called once.
    pub(crate) fn take_directly(&mut self, taker: Rc<dyn Direct>) {
        debug_assert!(self.direct.is_none(), "a receiver takes directly once");
        self.relay.waiters.unregister(&mut self.registered);
        let mut direct = self.relay.direct.borrow_mut();
        let place = match self.relay.direct_free.borrow_mut().pop() {
            Some(place) => {
                direct[place] = Some(taker);
                place
            }
            None => {
                direct.push(Some(taker));
                direct.len() - 1
            }
        };
        self.direct = Some(place);
    }

    /// A snapshot newer than the last one taken, or `Pending` with the task woken when one
    /// comes (or when the feed stops); a direct taker's task is woken by the taker instead.
    pub(crate) fn poll_change(&mut self, cx: &Context<'_>) -> Poll<Change> {
        if self.relay.closed.get() {
            return Poll::Ready(Change::Stopped);
        }
        if self.relay.waiters.version() != self.seen {
            return Poll::Ready(Change::Snapshot(self.newest()));
        }
        if self.direct.is_none() {
            self.relay.waiters.register(&mut self.registered, cx);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;
    use std::time::Duration;

    use super::*;
    use crate::feed::tests::tick_of;
    use crate::wake::Counting;

    fn seq_of(change: Poll<Change>) -> u64 {
        match change {
            Poll::Ready(Change::Snapshot(snapshot)) => snapshot.ticks[0].tick.seq,
            Poll::Ready(Change::Stopped) => panic!("the feed stopped"),
            Poll::Pending => panic!("no new snapshot"),
        }
    }

    /// A hundred connections on one thread share one relay: one subscription to the feed,
    /// one waker each in its list however often they are polled, one wake each per snapshot.
    /// When the last one goes, so does the relay; when the feed stops, each is told.
    #[tokio::test]
    async fn one_relay_per_thread_wakes_each_receiver_once_per_snapshot() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let (feed, mut relay) =
                    super::super::Feed::relay(vec!["ACME".into()], Duration::from_millis(100));
                relay.publish(vec![(0, tick_of("ACME", 1))], true);
                let mut receivers: Vec<(LocalReceiver, Arc<Counting>)> = (0..100)
                    .map(|_| {
                        let receiver = LocalFeed::for_this_thread(&feed).receiver();
                        (receiver, Arc::new(Counting::default()))
                    })
                    .collect();
                assert_eq!(feed.worker_relays(), 1, "one relay for the thread");
                for (receiver, count) in &mut receivers {
                    let waker = Waker::from(count.clone());
                    for _ in 0..2 {
                        let pending = receiver.poll_change(&Context::from_waker(&waker));
                        assert!(pending.is_pending(), "nothing new yet");
                    }
                }
                let relayed = LocalFeed::for_this_thread(&feed);
                assert_eq!(relayed.waiters.len(), 100, "one waker per receiver");

                for seq in 2..=4 {
                    relay.publish(vec![(0, tick_of("ACME", seq))], true);
                    // The relay task runs on this thread: let it.
                    while relayed.waiters.version() < seq - 1 {
                        tokio::task::yield_now().await;
                    }
                    for (receiver, count) in &mut receivers {
                        assert_eq!(count.0.load(Ordering::SeqCst), (seq - 1) as usize);
                        let waker = Waker::from(count.clone());
                        let cx = Context::from_waker(&waker);
                        assert_eq!(seq_of(receiver.poll_change(&cx)), seq);
                        assert!(receiver.poll_change(&cx).is_pending());
                    }
                }
                assert_eq!(feed.worker_relays(), 1);

                drop(relay);
                while !relayed.closed.get() {
                    tokio::task::yield_now().await;
                }
                let waker = Waker::from(Arc::new(Counting::default()));
                for (receiver, _) in &mut receivers {
                    let stopped = receiver.poll_change(&Context::from_waker(&waker));
                    assert!(matches!(stopped, Poll::Ready(Change::Stopped)));
                }
                drop((receivers, relayed));
                assert_eq!(
                    feed.worker_relays(),
                    0,
                    "the relay went with its last receiver"
                );
            })
            .await;
    }
}
