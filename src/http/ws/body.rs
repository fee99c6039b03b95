//! The outgoing body of a WebSocket connection: what the connection's HTTP dispatcher
//! writes to the socket, from the `101` response until the TCP connection closes. One body
//! type, [`WsBody`], does three things in a fixed order on every poll: actix-ws's queued
//! frames, then the feed's ticks (`/ws` only), then the end of the connection.
//!
//! ## Ticks in one hop
//!
//! actix-ws hands out two things for an upgraded connection: a `Session`, the sending half,
//! and the response body that the dispatcher writes from. Every `session.text(..)` goes
//! through a channel of 32 messages into that body. For the rare messages (`hello`,
//! answers, pings, the close frame) that is fine. For ticks it would be a relay race, per
//! client per tick: the feed wakes the session task, the session pushes into the channel,
//! the channel wakes the connection's task, the body frames the text. Two tasks, a channel
//! and a frame built per message, where a `GET /price` is answered inline by the
//! connection's own task.
//!
//! So [`WsBody`] wraps the body actix-ws returns and writes the ticks itself. It waits on
//! the feed as relayed on its own worker thread ([`LocalFeed`]: one cross-thread wake per
//! worker per tick, then wakes that stay on the thread), so a tick wakes *one* task per
//! connection, the one that owns the socket, and what it writes is the feed's frame for that tick
//! ([`Feed::ws_frame`]): built once per symbol per tick, shared by every socket. (actix-ws's
//! constructors for `Session` and its body are private, so wrapping its body is the only
//! way to add a source of frames; actix-ws still does the handshake, reads and checks the
//! client's frames and writes the rare replies.)
//!
//! Order is kept simple: the session's frames first, so `hello` and every answer go out
//! before the ticks that follow them, and the session stops the ticks ([`Pusher::stop`])
//! before it queues its close frame: nothing is ever sent after a close.
//!
//! **On plain TCP the relay writes the ticks itself.** Waking the connection's task costs
//! more than the write it is woken for: the task runs actix-server's service future, the
//! dispatcher's turn (timers, read buffer, body, flush) and copies the frame into the
//! dispatcher's write buffer, all for one `send` of shared bytes. So the worker's relay, in
//! its own turn, writes each frame straight to the socket of every connection of its
//! thread that can take it now ([`Direct`], implemented by the state the body and session
//! share): one `send(2)` per frame, non-blocking, from the same [`frame_owed`] the body
//! uses, so no tick goes twice or out of order whoever writes it. It does so only when
//! nothing must go before the tick: ticks flow, no frame of the session's is queued, no
//! ping is due to ride with it, and the dispatcher has nothing unwritten. That last one is
//! known without looking into actix: every turn of its HTTP/1 dispatcher ends by writing
//! out its whole buffer, or by a write that blocked, which the connection's I/O wrapper
//! records ([`Backpressure`](crate::http::connection::Backpressure)); all of it runs on one
//! thread, so nothing runs between that record and the relay's look. Otherwise the relay
//! wakes the body, which writes the tick as below. A frame the socket takes only part of
//! (or none of) is left to the body as its next chunk, before anything else, and the
//! dispatcher writes the rest through Tokio, which then waits for the socket like any other
//! write; so a client that stops reading meets the same backpressure, skip and timeouts as
//! before. Over TLS the bytes must go through the TLS session, so the body writes them all
//! (the connection reports no socket: [`Handles::socket`]).
//!
//! **The heartbeat rides with the ticks.** The session pings its client every heartbeat
//! period. Sent on its own, a ping wakes the connection's task and costs a system call on
//! each side (the client's read, the server's write) just for itself, 200 of each a second
//! for a thousand clients at the default 5 s. While ticks flow, the session instead leaves
//! the ping for the next tick ([`Pusher::ping_with_next_tick`]): the body hands it out right
//! after that tick, and the dispatcher writes both with one system call. A ping left for a
//! tick that does not come (the feed went quiet, the client unsubscribed or stopped
//! reading) is taken back at the next beat and sent on its own ([`Pusher::take_back_ping`]).
//!
//! **Backpressure, not timers.** The dispatcher asks the body for more only while its
//! write buffer has room, and the connection's I/O wrapper
//! ([`Backpressure`](crate::http::connection::Backpressure)) says when the kernel stopped
//! taking bytes. While the socket is blocked the body writes no ticks
//! and parks; when it drains, the client was slow, so the body moves to the feed's newest
//! snapshot, the ticks it missed are skipped and counted (`ws_ticks_skipped`), and it gets
//! the newest ("latest value wins"), however short the stall. A client whose socket stays
//! behind (never fully drained) for `--client-timeout-secs`, even if it reads a trickle, is
//! dropped by its session ([`Pusher::behind_for`]). A connection that was merely *woken*
//! late (a busy machine), whose socket never blocked, gets the ticks it missed from the
//! feed's short history instead ([`Feed::recent_frame`]). A client that never reads again
//! is dropped by the wrapper's write timeout; no timer is armed per send.
//!
//! ## The end of the connection
//!
//! RFC 6455 section 7.1.1: after the closing handshake (each side has sent a close frame),
//! the *server* closes the TCP connection first, so that the client is not the one left
//! holding the TIME_WAIT state. actix-web does not do that by itself: when a WebSocket
//! response body ends, its HTTP/1 dispatcher sees a request body (the client's frames) that
//! never finished, and *lingers*: it reads and discards until the client hangs up or its
//! `client_disconnect_timeout` (1 s) passes. A page waited about that long for its `close`
//! event after "Drop connection".
//!
//! So when the session says it is over ([`Ending::done`], or the [`Ending`] is dropped,
//! however the session ended), the body gives the dispatcher one more turn to flush what is
//! queued (the close frame) and then ends with an error. An error in a response body is how
//! actix-web is told "drop this connection now": the dispatcher stops and the socket (its
//! file descriptor) is closed at once, instead of lingering. actix-http logs that error at
//! ERROR level (target `actix_http::h1::dispatcher`), so the error's text says plainly that
//! this is the normal end of a WebSocket, and the binary's log filter leaves out that one
//! line (`main.rs`).
//!
//! One exception, [`Ending::linger`]: after a frame that broke a rule, the client may still
//! be sending (the payload of a refused frame). Closing then, with unread data, makes the
//! kernel reset the connection, and a reset can overtake our close frame. So that case ends
//! the body normally and lets actix linger: it reads and discards for at most 1 s, then
//! closes.
//!
//! Limit: the dispatcher only asks the body for more while its write buffer is below 32 KiB.
//! A client that stopped reading has a full buffer, so this path never runs for it. A
//! session that gives up on its client (the [`Ending`] is dropped without [`Ending::done`])
//! therefore also asks the connection to end itself
//! ([`Abort`](crate::http::connection::Abort), see [`crate::http::connection`]), and the
//! kernel's `TCP_USER_TIMEOUT` is the floor under both.

use std::cell::{Cell, RefCell, RefMut};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use crate::feed::local::{Change, Direct, LocalFeed, LocalReceiver, LocalSnapshot};
use crate::feed::{Feed, HISTORY};
use crate::http::connection::{Handles, RawSocket};
use crate::metrics::Metrics;
use crate::subscription::Subscription;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::web::Bytes;

/// What the session and the body of one connection share. Both run on the connection's
/// worker thread (actix spawns the session on the same single-threaded runtime), hence `Rc`
/// and cells, no locks; and one allocation, because the body reads it on every tick, and
/// with a thousand connections each separate allocation read per tick is a cache miss.
///
/// For the same reason the fields a tick reads come first (`repr(C)` keeps the order) and fit
/// its first 64 bytes, one or two cache lines, where they were spread over more: the flags,
/// what the relay needs to write the tick itself ([`Direct`]), and the subscription's set and
/// first symbol. The rest (the other symbols, the body's waker, read when a tick goes through
/// the connection's task, the session's waker) is read when the client asks for something
/// or the socket cannot take the tick now. (Aligning it to
/// a line, to make that always one, cost 0.5 KiB per idle connection, for no gain the fan-out
/// bench could see.)
#[derive(Debug)]
#[repr(C)]
struct Shared {
    /// Ticks may flow: set once `hello` is queued, cleared before the close frame.
    live: Cell<bool>,
    /// actix-ws's queue may hold a frame: set by the session each time it queues one
    /// ([`Queued`]), so the body looks into the queue (a channel receive) only then, not on
    /// every tick.
    queued: Cell<bool>,
    /// The session is over ([`Ending`]): the body ends the connection.
    over: Cell<bool>,
    /// The feed stopped publishing: the session closes the socket.
    feed_stopped: Cell<bool>,
    /// Set by [`Ending::linger`]: end normally instead of with an error.
    linger: Cell<bool>,
    /// The body wrote a tick since the session last asked ([`Pusher::ticks_flowed`]).
    wrote_tick: Cell<bool>,
    /// The session's heartbeat left a ping for the next tick to carry
    /// ([`Pusher::ping_with_next_tick`]).
    ping_due: Cell<bool>,
    /// The relay wrote part of a frame (or none of it) and left the rest in `unsent`.
    has_unsent: Cell<bool>,
    /// What the relay needs to write ticks itself ([`Direct`]): set for a `/ws` connection on
    /// plain TCP.
    direct: Option<DirectWriter>,
    /// The symbols this client wants and what it has been sent of each (`/ws`).
    subscription: RefCell<Subscription>,
    /// The body's task (the connection's), woken when the subscription changes, ticks may
    /// start, the session is over, or the relay leaves a tick to it.
    body: RefCell<Option<Waker>>,
    /// The rest of a frame the relay could not write whole: the body's next chunk, before
    /// anything else.
    unsent: RefCell<Option<Bytes>>,
    /// The session's task, woken when the feed stops.
    session: RefCell<Option<Waker>>,
}

/// What the worker's relay needs to write a connection's ticks to its socket in its own turn.
struct DirectWriter {
    /// The connection: its socket, whether it takes bytes, its meter.
    handles: Rc<Handles>,
    metrics: Arc<Metrics>,
    feed: Feed,
}

impl std::fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectWriter")
            .field("handles", &self.handles)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn new(subscription: Subscription) -> Rc<Shared> {
        Shared::with_writer(subscription, None)
    }

    fn with_writer(subscription: Subscription, direct: Option<DirectWriter>) -> Rc<Shared> {
        Rc::new(Shared {
            subscription: RefCell::new(subscription),
            direct,
            has_unsent: Cell::new(false),
            unsent: RefCell::new(None),
            live: Cell::new(false),
            feed_stopped: Cell::new(false),
            // Look into the queue once to begin with: hello may be queued already.
            queued: Cell::new(true),
            over: Cell::new(false),
            linger: Cell::new(false),
            wrote_tick: Cell::new(false),
            ping_due: Cell::new(false),
            body: RefCell::new(None),
            session: RefCell::new(None),
        })
    }

    /// The session is over: the body's task is woken to end the connection.
    fn end(&self) {
        self.over.set(true);
        wake(&self.body);
    }

    /// Whether the session is over; if not, the body's task is woken when it is.
    fn is_over(&self, cx: &Context<'_>) -> bool {
        if self.over.get() {
            return true;
        }
        remember(&self.body, cx.waker());
        false
    }

    /// Whether no tick may go now, whoever writes it: ticks do not flow (yet, or any more), the
    /// socket is blocked, or the connection is being reset. Whatever changes that wakes the
    /// body's task itself ([`Pusher::start`], [`Shared::end`], the socket draining, the abort).
    fn ticks_held(&self, handles: &Handles) -> bool {
        !self.live.get()
            || self.over.get()
            || handles.backpressure.is_blocked()
            || handles.abort.is_requested()
    }

    /// Whether something must be written before the next tick, by the body: a frame of the
    /// session's, a ping to ride with the tick, the rest of a frame, or the skip to the newest
    /// tick after the socket blocked. Otherwise the dispatcher's buffer is empty: each turn of
    /// actix's dispatcher ends by writing out its whole buffer, or blocks.
    fn body_first(&self, handles: &Handles) -> bool {
        self.queued.get()
            || self.ping_due.get()
            || self.has_unsent.get()
            || handles.backpressure.blocked_since_asked()
    }
}

/// The relay's pass over a `/ws` connection (see [`Direct`] and the module docs): the frames
/// the client is owed from the new snapshot are written to the socket at once, with one system
/// call each and no wake-up of the connection's task. When the socket cannot take a frame
/// whole, the rest is left for the body to write first (through the dispatcher, which then
/// waits for the socket as for any write); when anything else must come first, the relay wakes
/// the body's task and leaves the tick to it.
impl Direct for Shared {
    fn take(&self, snapshot: &Rc<LocalSnapshot>) -> u64 {
        let Some(direct) = &self.direct else {
            wake(&self.body);
            return 0;
        };
        if self.ticks_held(&direct.handles) {
            return 0;
        }
        let socket = direct.handles.socket();
        let Some(socket) = socket.filter(|_| !self.body_first(&direct.handles)) else {
            wake(&self.body);
            return 0;
        };
        let mut whole = 0;
        while let Some(frame) =
            frame_owed(snapshot, &self.subscription, &direct.feed, &direct.metrics)
        {
            direct.metrics.ws_sent(payload_len(&frame));
            self.wrote_tick.set(true);
            let written = send_now(socket, &frame).unwrap_or(0);
            direct.handles.wrote_directly(written);
            if written < frame.len() {
                *self.unsent.borrow_mut() = Some(frame.slice(written..));
                self.has_unsent.set(true);
                wake(&self.body);
                return whole;
            }
            whole += 1;
        }
        whole
    }

    fn wake(&self) {
        wake(&self.body);
    }
}

/// Writes `frame` to the socket `fd` without waiting: how many bytes the kernel took.
///
/// The socket is the connection's own, open for as long as its [`Handles`] report it
/// ([`Handles::socket`]); it is non-blocking (Tokio made it so), and `MSG_NOSIGNAL` turns a
/// peer that is gone into an error rather than a `SIGPIPE`. Tokio's readiness for the socket is
/// untouched: a write the kernel refused here is retried by the dispatcher through Tokio,
/// which then waits for the socket to drain.
#[cfg(target_os = "linux")]
fn send_now(fd: RawSocket, frame: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `frame` is valid for `frame.len()` bytes, and `fd` is an open socket (above).
    let sent = unsafe {
        libc::send(
            fd,
            frame.as_ptr().cast(),
            frame.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(sent).map_err(|_| std::io::Error::last_os_error())
}

/// Elsewhere no connection reports a socket ([`Handles::socket`]), so this is never called.
#[cfg(not(target_os = "linux"))]
fn send_now(_fd: RawSocket, _frame: &[u8]) -> std::io::Result<usize> {
    Ok(0)
}

/// Stores `waker` in `slot` unless it already holds one that wakes the same task: the usual
/// case, which then costs no reference-count traffic.
fn remember(slot: &RefCell<Option<Waker>>, waker: &Waker) {
    let mut slot = slot.borrow_mut();
    if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
        *slot = Some(waker.clone());
    }
}

fn wake(slot: &RefCell<Option<Waker>>) {
    if let Some(waker) = slot.borrow().as_ref() {
        waker.wake_by_ref();
    }
}

/// The session's handle on its connection's tick writer. Dropping it stops the ticks.
#[derive(Debug)]
pub(crate) struct Pusher {
    shared: Rc<Shared>,
    /// Whether the socket takes bytes (absent when the server does not wrap connections).
    writer: Option<Rc<Handles>>,
}

impl Pusher {
    /// Ticks may flow from now on: call it once `hello` (and anything that must come before
    /// the first tick) is queued.
    pub(crate) fn start(&self) {
        self.shared.live.set(true);
        wake(&self.shared.body);
    }

    /// No more ticks: call it before queueing the close frame.
    pub(crate) fn stop(&self) {
        self.shared.live.set(false);
    }

    /// The subscription, to read or to work out a change on a copy. Do not hold it across an
    /// `.await`: the body reads it on every poll.
    pub(crate) fn subscription(&self) -> RefMut<'_, Subscription> {
        self.shared.subscription.borrow_mut()
    }

    /// Applies the set of symbols of `changed` (a copy the session edited and answered) and
    /// lets the body send what the client is now owed (the newest tick of a new symbol).
    pub(crate) fn adopt(&self, changed: &Subscription) {
        self.shared.subscription.borrow_mut().adopt_symbols(changed);
        wake(&self.shared.body);
    }

    /// Whether the body wrote a tick since the last call: ticks are flowing to this client,
    /// and the next one will come within a tick interval.
    pub(crate) fn ticks_flowed(&self) -> bool {
        self.shared.wrote_tick.replace(false)
    }

    /// The heartbeat's ping goes out right after the next tick, in the same write: no wake-up
    /// of the connection's task and no system call of its own, on the server or the client,
    /// which reads both frames at once (see the module docs).
    pub(crate) fn ping_with_next_tick(&self) {
        self.shared.ping_due.set(true);
    }

    /// Takes back a ping left for a tick that has not come (the feed went quiet, the client
    /// unsubscribed or stopped reading): `true` if there was one, for the session to send
    /// it itself.
    pub(crate) fn take_back_ping(&self) -> bool {
        self.shared.ping_due.replace(false)
    }

    /// For how long the client has been behind: the socket has not taken everything written
    /// to it since a write first blocked (see
    /// [`Backpressure::behind_for`](crate::http::connection::Backpressure::behind_for)).
    pub(crate) fn behind_for(&self) -> Option<std::time::Duration> {
        self.writer
            .as_ref()
            .and_then(|w| w.backpressure.behind_for())
    }

    /// Resolves when the feed stops publishing (the server is going down without the usual
    /// shutdown signal): the session then says goodbye with 1001.
    pub(crate) fn feed_stopped(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            if self.shared.feed_stopped.get() {
                return Poll::Ready(());
            }
            remember(&self.shared.session, cx.waker());
            Poll::Pending
        })
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The session's note to the body that it queued a frame in actix-ws's queue (see
/// [`Shared::queued`]): [`Queued::note`] after each frame queued, and once more when dropped,
/// as the session's sending half goes with it and the queue ends. The queue itself wakes the
/// connection's task when a frame comes in (its receiver registered that task when the body
/// last found it empty), and the note is set before that task can run: the session queues
/// and notes in one turn of the same thread.
#[derive(Debug)]
pub(crate) struct Queued(Rc<Shared>);

impl Queued {
    /// A frame was just queued: the body looks into the queue on its next poll.
    pub(crate) fn note(&self) {
        self.0.queued.set(true);
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.note();
    }
}

/// The tick writer of a `/ws` connection: the feed's channel, the snapshot being written,
/// and what it shares with the session (see the module docs). What a tick reads comes
/// first (see [`WsBody`]).
#[repr(C)]
pub(crate) struct Ticks {
    /// The snapshot being written: the newest this body has seen.
    current: Rc<LocalSnapshot>,
    /// Whether the socket takes bytes (absent when the server does not wrap connections).
    writer: Option<Rc<Handles>>,
    /// The feed as relayed on this worker thread (see [`LocalFeed`]).
    snapshots: LocalReceiver,
    metrics: Arc<Metrics>,
    shared: Rc<Shared>,
    feed: Feed,
}

impl Ticks {
    /// The ticks for a client subscribed to `subscription`, for [`WsBody::new`], and the
    /// session's [`Pusher`]. Ticks wait for [`Pusher::start`].
    pub(crate) fn new(
        feed: Feed,
        subscription: Subscription,
        writer: Option<Rc<Handles>>,
        metrics: Arc<Metrics>,
    ) -> (Ticks, Pusher) {
        // Subscribe first, then read: no tick can fall in between.
        let mut snapshots = LocalFeed::for_this_thread(&feed).receiver();
        let current = snapshots.newest();
        // On plain TCP the relay writes the ticks itself (see [`Direct`]).
        let direct = writer
            .as_ref()
            .filter(|handles| handles.socket().is_some())
            .map(|handles| DirectWriter {
                handles: handles.clone(),
                metrics: metrics.clone(),
                feed: feed.clone(),
            });
        let shared = Shared::with_writer(subscription, direct);
        if shared.direct.is_some() {
            snapshots.take_directly(shared.clone());
        }
        let pusher = Pusher {
            shared: shared.clone(),
            writer: writer.clone(),
        };
        let ticks = Ticks {
            feed,
            current,
            snapshots,
            shared,
            writer,
            metrics,
        };
        (ticks, pusher)
    }

    /// The client fell behind (a write blocked since the last look): latest value wins. Moves
    /// to the feed's newest snapshot, not the one that was current when the socket blocked,
    /// and skips every subscribed symbol's gap up to it in one step, counted in
    /// `ws_ticks_skipped`. What was already written stays queued for the client (bounded by
    /// the socket's buffers); everything after it starts at the newest tick.
    fn skip_to_newest(&mut self) {
        self.current = self.snapshots.newest();
        let mut subscription = self.shared.subscription.borrow_mut();
        for (i, published) in self.current.ticks.iter().enumerate() {
            if !subscription.contains(i) {
                continue;
            }
            skip_gap(&mut subscription, i, published, 0, &self.metrics);
        }
    }

    /// The next frame this client is owed from the current snapshot, if any: for each
    /// subscribed symbol in turn, the tick after the last one sent (from the history, when
    /// a late wake-up left a gap on a socket that never blocked), up to the current one.
    ///
    /// A gap longer than the feed's history (a long unsubscription, a very late wake-up) is
    /// skipped in one step and counted in `ws_ticks_skipped`; so is a tick the history no
    /// longer holds. (A client that is slow is moved to the newest first: see
    /// [`Ticks::skip_to_newest`].)
    fn next_frame(&self) -> Option<Bytes> {
        frame_owed(
            &self.current,
            &self.shared.subscription,
            &self.feed,
            &self.metrics,
        )
    }

    /// The next tick frame to write, or `Pending` with the task registered where it will be
    /// woken: the feed's channel, the socket draining, or the session.
    fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if !self.shared.live.get() {
            remember(&self.shared.body, cx.waker());
            return Poll::Pending;
        }
        if let Some(writer) = &self.writer
            && writer.backpressure.is_blocked()
        {
            // Hold the ticks: the client is not reading. Woken when the socket drains.
            writer.backpressure.park(cx.waker());
            return Poll::Pending;
        }
        if self
            .writer
            .as_ref()
            .is_some_and(|w| w.backpressure.take_blocked())
        {
            self.skip_to_newest();
        }
        // Owed frames are looked for from the newest snapshot on: the relay may have written
        // this client's ticks up to it while this task slept, and an older snapshot would
        // offer a symbol subscribed since (or a run since replaced) its stale tick. A gap
        // before the newest is filled from the history all the same.
        if self.snapshots.is_behind() {
            self.current = self.snapshots.newest();
        }
        loop {
            if let Some(frame) = self.next_frame() {
                return Poll::Ready(Some(frame));
            }
            match self.snapshots.poll_change(cx) {
                Poll::Ready(Change::Snapshot(newest)) => self.current = newest,
                Poll::Ready(Change::Stopped) => {
                    // The feed is gone: the session closes with 1001.
                    if !self.shared.feed_stopped.replace(true) {
                        wake(&self.shared.session);
                    }
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    remember(&self.shared.body, cx.waker());
                    return Poll::Pending;
                }
            }
        }
    }
}

/// The next frame a client subscribed to `subscription` is owed from `snapshot`, marked sent
/// (see [`Ticks::next_frame`]); the body and the relay's direct writes ([`Direct`]) both take
/// their frames from here, so a tick is never sent twice nor out of order, whoever writes it.
fn frame_owed(
    snapshot: &LocalSnapshot,
    subscription: &RefCell<Subscription>,
    feed: &Feed,
    metrics: &Metrics,
) -> Option<Bytes> {
    let mut subscription = subscription.borrow_mut();
    for (i, published) in snapshot.ticks.iter().enumerate() {
        if !subscription.contains(i) {
            continue;
        }
        let (run, seq) = (published.tick.run, published.tick.seq);
        skip_gap(&mut subscription, i, published, HISTORY as u64, metrics);
        loop {
            let last = subscription.last_sent(i, run);
            if seq <= last {
                break;
            }
            if last == 0 || last + 1 == seq {
                subscription.mark_sent(i, run, seq);
                return Some(feed.ws_frame(published));
            }
            // Caught up one at a time, oldest first (at most `HISTORY`, see above). A tick the
            // history no longer holds (or a relay never had) is skipped and counted.
            subscription.mark_sent(i, run, last + 1);
            match feed.recent_frame(i, run, last + 1) {
                Some(frame) => return Some(frame),
                None => {
                    metrics.ws_ticks_skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    None
}

/// Skips symbol `i`'s gap before `published` in one step when more than `tolerated` ticks
/// are missing: marks the tick before it as sent and counts the gap in `ws_ticks_skipped`.
/// A first send (nothing sent yet in this run) has no gap: the client starts at `published`.
fn skip_gap(
    subscription: &mut Subscription,
    i: usize,
    published: &crate::wire::Published,
    tolerated: u64,
    metrics: &Metrics,
) {
    let (run, seq) = (published.tick.run, published.tick.seq);
    let last = subscription.last_sent(i, run);
    if last != 0 && seq > last.saturating_add(1) {
        let missed = seq - last - 1;
        if missed > tolerated {
            metrics
                .ws_ticks_skipped
                .fetch_add(missed, Ordering::Relaxed);
            subscription.mark_sent(i, run, seq - 1);
        }
    }
}

/// A WebSocket response body: actix-ws's frames, then the feed's ticks (when it has
/// [`Ticks`]), then the end of the connection once the session is over (see the module docs).
///
/// Its fields are in the order a tick reads them (`repr(C)`), so that a tick's poll reads the
/// start of it and not lines all over it: with a thousand connections, none of them is still
/// in the processor's caches from the last tick.
#[repr(C)]
pub(crate) struct WsBody {
    /// What the session shares with the body: whether a frame is queued, whether the session
    /// is over and how the connection should end.
    shared: Rc<Shared>,
    /// `inner` has ended (after the close frame): nothing more comes from it, nor any tick.
    inner_ended: bool,
    /// Set when a chunk was handed out since the last `Pending`: the dispatcher has not yet
    /// had a turn to write it to the socket.
    unflushed: bool,
    /// The tick just handed out carries the heartbeat's ping: it is the next chunk.
    ping_next: bool,
    /// `/ws`'s tick writer; `/echo` has none.
    ticks: Option<Ticks>,
    /// actix-ws's body: hello, answers, pings, pongs, the close frame.
    inner: BoxBody,
}

impl WsBody {
    /// Wraps actix-ws's `inner` body, with `/ws`'s `ticks` if any. Returns the body, the
    /// session's [`Ending`], and the [`Queued`] note its sending half must make after each
    /// frame it queues. With the connection's [`Handles`] (`serve` gives every connection
    /// them), a session that gives up can end its connection even when the dispatcher no
    /// longer polls the body.
    pub(crate) fn new(
        inner: BoxBody,
        ticks: Option<Ticks>,
        connection: Option<Rc<Handles>>,
    ) -> (WsBody, Ending, Queued) {
        let shared = match &ticks {
            Some(ticks) => ticks.shared.clone(),
            None => Shared::new(Subscription::empty()),
        };
        let body = WsBody {
            inner,
            inner_ended: false,
            ticks,
            shared: shared.clone(),
            unflushed: false,
            ping_next: false,
        };
        let ending = Ending {
            shared: shared.clone(),
            graceful: false,
            connection,
        };
        (body, ending, Queued(shared))
    }

    /// The next frame from actix-ws's queue, if it may have one.
    fn poll_queue(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        if self.inner_ended || !self.shared.queued.replace(false) {
            return Poll::Pending;
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(frame)) => {
                // There may be more: look again on the next poll.
                self.shared.queued.set(true);
                Poll::Ready(Some(frame))
            }
            Poll::Ready(None) => {
                self.inner_ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                // Tokio's cooperative budget can make the queue's receiver say `Pending` with
                // frames still in it (it wakes the task to come back later, but registers no
                // wake for the frames). Keep the note, or the next poll would not look again
                // and the frames would wait for the session's next one.
                if !tokio::task::coop::has_budget_remaining() {
                    self.shared.queued.set(true);
                }
                Poll::Pending
            }
        }
    }
}

/// The payload of the server's heartbeat pings.
pub(crate) const PING_PAYLOAD: &[u8] = b"tickerlab";

/// A heartbeat ping as one complete frame, [`PING_PAYLOAD`] after a final ping opcode (`0x89`)
/// and its length: a server's frames are never masked, so the same bytes serve every socket.
const PING_FRAME: &[u8] = b"\x89\x09tickerlab";

/// Payload length of one of our own frames (for the bytes-sent counter): the frame less its
/// 2-, 4- or 10-byte header.
fn payload_len(frame: &[u8]) -> usize {
    let header = match frame.get(1).map(|b| b & 0x7F) {
        Some(126) => 4,
        Some(127) => 10,
        _ => 2,
    };
    frame.len().saturating_sub(header)
}

/// The session's side: tells the body that the session is over. Dropping it says so too,
/// so a session that ends by an early `return` releases its connection all the same; dropped
/// without [`Ending::done`], it means the session gave up on its client, and the connection
/// is reset rather than flushed.
#[derive(Debug)]
pub struct Ending {
    shared: Rc<Shared>,
    graceful: bool,
    /// The connection, to reset when the session gives up on its client.
    connection: Option<Rc<Handles>>,
}

impl Ending {
    /// The closing handshake is over (or was tried): close the connection once the queued
    /// frames are flushed.
    pub fn done(mut self) {
        self.graceful = true;
    }

    /// The client broke a rule and may still be sending (e.g. the payload of a frame that was
    /// refused from its header): end the body normally, so that actix *lingers* (reads and
    /// discards what keeps coming, for at most its `client_disconnect_timeout` of 1 s) before
    /// closing. Closing at once, with unread data, would make the kernel reset the connection
    /// and could drop the close frame still on its way.
    pub fn linger(mut self) {
        self.shared.linger.set(true);
        self.graceful = true;
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        if !self.graceful
            && let Some(connection) = &self.connection
        {
            connection.abort.now();
        }
        // "The session is over", from the session's task to the connection's: both run on
        // the same worker thread, so a cell and the body's waker do, where a cancellation
        // token would take a lock and a registration on every poll of the body (every tick).
        self.shared.end();
    }
}

/// Why a [`WsBody`] ends with an error: not a failure, the end of a WebSocket.
#[derive(thiserror::Error)]
#[error("WebSocket session over: the server closes the TCP connection (RFC 6455 section 7.1.1)")]
pub struct SessionOver;

// actix-http logs a body's error with `{:?}`: make that line say what happened.
impl std::fmt::Debug for SessionOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

type BodyError = Box<dyn std::error::Error>;

impl MessageBody for WsBody {
    type Error = BodyError;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        // The rest of a frame the relay could not write whole comes before anything else: the
        // client has its first bytes already.
        if this.shared.has_unsent.replace(false)
            && let Some(rest) = this.shared.unsent.borrow_mut().take()
        {
            this.unflushed = true;
            return Poll::Ready(Some(Ok(rest)));
        }
        // The heartbeat's ping, the very next chunk after the tick that carries it: the
        // dispatcher writes both with one system call. Before the session's frames, so that
        // a close frame queued in between (while the dispatcher wrote out a full buffer) is
        // still the last frame.
        if std::mem::take(&mut this.ping_next) {
            this.unflushed = true;
            return Poll::Ready(Some(Ok(Bytes::from_static(PING_FRAME))));
        }
        // The session's frames first: they are never overtaken by a tick.
        match this.poll_queue(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.unflushed = true;
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(None) | Poll::Pending => {}
        }
        // Then ticks, until the close frame has gone (the session stops them before it).
        if !this.inner_ended
            && let Some(ticks) = &mut this.ticks
            && let Poll::Ready(Some(frame)) = ticks.poll_tick(cx)
        {
            // (`Ready(None)`: the feed stopped; the session's close frame is still to come.)
            ticks.metrics.ws_sent(payload_len(&frame));
            this.shared.wrote_tick.set(true);
            this.ping_next = this.shared.ping_due.replace(false);
            this.unflushed = true;
            return Poll::Ready(Some(Ok(frame)));
        }
        // Then the end.
        if !this.shared.is_over(cx) {
            this.unflushed = false;
            return Poll::Pending;
        }
        if this.shared.linger.get() {
            // actix flushes, then lingers: the close frame goes out before anything is cut.
            return Poll::Ready(None);
        }
        if std::mem::take(&mut this.unflushed) {
            // The dispatcher writes its buffer to the socket after a `Pending`; come back
            // right after, to end the connection once the close frame is on its way.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Some(Err(Box::new(SessionOver))))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix_web::test::TestRequest;
    use actix_web::{FromRequest, web};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::http::ws::Outbox;

    /// A heartbeat ping left for the next tick is the very next chunk after that tick, even
    /// when the session queued a frame in between (as it can while the dispatcher writes out
    /// a full buffer): a close frame queued then is still the last frame.
    #[actix_web::test]
    async fn a_ping_left_for_a_tick_comes_right_after_it_before_the_sessions_next_frame() {
        let market =
            crate::market::Market::new(vec![crate::market::SymbolSpec::for_name("ACME")], 7);
        let (feed, task) = Feed::start(market, Duration::from_millis(10));
        let metrics = Arc::new(Metrics::default());
        let (ticks, pusher) = Ticks::new(feed, Subscription::only(0), None, metrics);
        let (mut body, _ending, mut out) = body_and_outbox_with(Some(ticks)).await;
        pusher.start();
        pusher.ping_with_next_tick();
        let mut next = async || next_chunk(&mut body).await;
        let tick = next().await;
        assert!(
            tick.starts_with(b"\x81") && tick.windows(13).any(|w| w == b"\"type\":\"tick\""),
            "a tick first: {tick:?}"
        );
        out.send("after".into()).await.expect("queued");
        assert_eq!(next().await, PING_FRAME, "the ping right after its tick");
        assert_eq!(
            next().await,
            &b"\x81\x05after"[..],
            "then the session's frame"
        );
        task.stop();
    }

    /// A symbol subscribed after the body slept through several ticks (as it does while the
    /// relay writes them: see [`Direct`]) starts at its newest tick: the body looks from the
    /// newest snapshot on, not from the one it last saw, which would offer the new symbol's
    /// stale tick and then a replay of the history up to the newest.
    #[actix_web::test]
    async fn a_symbol_adopted_after_the_body_slept_through_ticks_starts_at_its_newest() {
        let specs = ["ACME", "GLOBX"].map(crate::market::SymbolSpec::for_name);
        let market = crate::market::Market::new(specs.to_vec(), 7);
        let (feed, task) = Feed::start(market, Duration::from_millis(10));
        let metrics = Arc::new(Metrics::default());
        let (ticks, pusher) = Ticks::new(feed.clone(), Subscription::only(0), None, metrics);
        let (mut body, _ending, _out) = body_and_outbox_with(Some(ticks)).await;
        pusher.start();
        let mut next = async || {
            let chunk = next_chunk(&mut body).await;
            let json = &chunk[2..]; // a short text frame: 2 bytes of header
            serde_json::from_slice::<serde_json::Value>(json).expect("a tick")
        };
        assert_eq!(next().await["symbol"], "ACME");
        // The body is not polled while the feed makes 20 ticks.
        let slept_from = feed.latest().ticks[1].tick.seq;
        let twenty_ticks = async {
            while feed.latest().ticks[1].tick.seq < slept_from + 20 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), twenty_ticks)
            .await
            .expect("20 ticks within 10 s");
        let mut changed = pusher.subscription().clone();
        changed.change(&feed, &["GLOBX".to_owned()], true);
        let newest = feed.latest().ticks[1].tick.seq;
        pusher.adopt(&changed);
        let first = loop {
            let tick = next().await;
            if tick["symbol"] == "GLOBX" {
                break tick["seq"].as_u64().expect("a seq");
            }
        };
        assert!(
            first >= newest,
            "GLOBX started at {first}, before the newest {newest} when it was subscribed"
        );
        task.stop();
    }

    /// The ping the body writes after a tick is the frame actix-ws writes for the session's
    /// own pings.
    #[test]
    fn the_ping_frame_is_the_one_actix_ws_writes() {
        use actix_http::ws::{Codec, Message};
        use tokio_util::codec::Encoder;
        let mut framed = bytes::BytesMut::new();
        Codec::new()
            .encode(Message::Ping(Bytes::from_static(PING_PAYLOAD)), &mut framed)
            .expect("a ping encodes");
        assert_eq!(&framed[..], PING_FRAME);
    }

    /// What a tick reads of the state the session shares with the body lies in its first 64
    /// bytes: the flags, the relay's writer, and the subscription's borrow flag, set and first
    /// symbol.
    #[test]
    fn what_a_tick_reads_of_the_shared_state_is_in_its_first_64_bytes() {
        use crate::http::connection::tests::end_of;
        let shared = Shared::new(Subscription::only(0));
        let base = Rc::as_ptr(&shared) as usize;
        let subscription = shared.subscription.borrow();
        let value = &*subscription as *const Subscription as usize;
        assert!(
            value - base >= end_of(base, &shared.subscription) - size_of::<Subscription>(),
            "the subscription's borrow flag comes before it"
        );
        // The set (4 bytes, padded to 8) and the first symbol's run and seq: 24 bytes.
        let read_per_tick = [
            ("live", end_of(base, &shared.live)),
            ("queued", end_of(base, &shared.queued)),
            ("over", end_of(base, &shared.over)),
            ("wrote_tick", end_of(base, &shared.wrote_tick)),
            ("ping_due", end_of(base, &shared.ping_due)),
            ("has_unsent", end_of(base, &shared.has_unsent)),
            ("direct", end_of(base, &shared.direct)),
            ("subscription's first symbol", value - base + 24),
        ];
        for (field, end) in read_per_tick {
            assert!(end <= 64, "{field} ends at byte {end}, past the first 64");
        }
    }

    /// Every frame the session queues reaches the body, the last one included, whatever the
    /// number: the body looks into actix-ws's queue (32 frames) only when the session noted a
    /// frame there, and a send that waited for room (the queue full, emptied by the body
    /// meanwhile) must still be noted once its frame is in. The session's `Outbox` is kept
    /// open, so no note comes from its end.
    #[actix_web::test]
    async fn every_frame_the_session_queues_reaches_the_body_past_a_full_queue() {
        for frames in 1..=70 {
            let received = queue_and_read(frames).await;
            let sent: Vec<String> = (0..frames).map(|i| i.to_string()).collect();
            assert_eq!(received, sent, "{frames} frames queued");
        }
    }

    /// A frame queued while the task's cooperative budget is spent still reaches the body:
    /// the queue's receiver says `Pending` then (with the frame in it), and the body must
    /// look again on its next poll rather than wait for another note.
    #[actix_web::test]
    async fn a_frame_the_body_missed_for_want_of_budget_comes_on_the_next_poll() {
        let (mut body, _ending, mut out) = body_and_outbox().await;
        out.send("after the budget".into()).await.expect("queued");
        // Spend the budget on a channel with more in it than one poll may take.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        for _ in 0..1_000 {
            tx.send(()).unwrap();
        }
        std::future::poll_fn(|cx| {
            while rx.poll_recv(cx).is_ready() {}
            assert!(
                !tokio::task::coop::has_budget_remaining(),
                "the channel spent the budget"
            );
            assert!(Pin::new(&mut body).poll_next(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        let next = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx));
        let chunk = tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("the frame came on a later poll")
            .expect("the body goes on")
            .expect("no error");
        assert_eq!(&chunk[..], b"\x81\x10after the budget");
    }

    /// The body's next chunk; panics if none comes within 5 s, or if the body ends or fails.
    async fn next_chunk(body: &mut WsBody) -> Bytes {
        let chunk = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_next(cx));
        tokio::time::timeout(Duration::from_secs(5), chunk)
            .await
            .expect("a chunk within 5 s")
            .expect("the body goes on")
            .expect("no error")
    }

    /// A body over a real actix-ws session, the session's `Ending` (to keep: dropping it ends
    /// the body) and the `Outbox` that queues into it.
    async fn body_and_outbox() -> (WsBody, Ending, Outbox) {
        body_and_outbox_with(None).await
    }

    /// [`body_and_outbox`] with `/ws`'s tick writer.
    async fn body_and_outbox_with(ticks: Option<Ticks>) -> (WsBody, Ending, Outbox) {
        let (req, mut payload) = TestRequest::get()
            .insert_header(("upgrade", "websocket"))
            .insert_header(("connection", "upgrade"))
            .insert_header(("sec-websocket-version", "13"))
            .insert_header(("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="))
            .to_http_parts();
        let payload = web::Payload::from_request(&req, &mut payload)
            .await
            .unwrap();
        let (response, session, _stream) = actix_ws::handle(&req, payload).unwrap();
        let (_, inner) = response.into_parts();
        let (body, ending, queued) = WsBody::new(inner, ticks, None);
        let out = Outbox::new(
            session,
            queued,
            CancellationToken::new(),
            Arc::new(Metrics::default()),
            Duration::from_secs(10),
        );
        (body, ending, out)
    }

    /// Queues `frames` text frames through an `Outbox` on a task of its own and reads them
    /// from the body; panics if they stop coming.
    async fn queue_and_read(frames: usize) -> Vec<String> {
        let (mut body, _ending, mut out) = body_and_outbox().await;
        let sender = actix_web::rt::spawn(async move {
            for i in 0..frames {
                out.send(i.to_string().into()).await.expect("queued");
            }
            out
        });
        let mut received = Vec::new();
        while received.len() < frames {
            let next = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx));
            let chunk = tokio::time::timeout(Duration::from_secs(5), next)
                .await
                .unwrap_or_else(|_| panic!("frame {} of {frames} never came", received.len()))
                .expect("the body goes on")
                .expect("no error");
            // One chunk holds every frame that was queued when the body looked: unmasked
            // text frames of a few bytes (a 2-byte header each).
            let mut rest = &chunk[..];
            while let [0x81, len, tail @ ..] = rest {
                let len = usize::from(*len);
                received.push(String::from_utf8(tail[..len].to_vec()).unwrap());
                rest = &tail[len..];
            }
            assert!(rest.is_empty(), "not a short text frame: {rest:?}");
        }
        let _out = sender.await.unwrap();
        received
    }
}
