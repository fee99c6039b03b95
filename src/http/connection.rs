//! What one HTTP connection may cost the server, whatever its client does: a wrapper around
//! the connection's I/O ([`GuardedIo`]) that actix-http's HTTP/1 dispatcher reads and writes
//! through.
//!
//! ## Why a wrapper
//!
//! actix-http's HTTP/1 dispatcher owns the connection's buffers, and what a client that
//! stops reading can pin there is bounded in two places. Requests read ahead: the
//! dispatcher itself stops decoding at its pipeline limit (4 requests queued; the copy of
//! actix-http in `vendor/` is patched for it, see `vendor/README.md`), so the rest of a
//! pipelined burst waits undecoded in its read buffer (at most 128 KiB) and then in the
//! kernel. Answers: the dispatcher hands over the next request only once the previous
//! answer is in its write buffer (32 KiB), so a client that does not read its answers stops
//! the reading too. What this wrapper adds is on the write side:
//!
//! * A write that cannot make progress for `--client-timeout-secs` fails, and the dispatcher
//!   drops the connection: its memory, its file descriptor and, for an event stream, its
//!   `--max-connections` place are released. This is the in-process twin of the kernel's
//!   `TCP_USER_TIMEOUT` (see `kernel_write_timeout` in `lib.rs`), and it also works where
//!   that does not exist.
//!
//! The write side also tells the WebSocket's tick writer whether the client is keeping up
//! ([`Backpressure`]): a write the kernel cannot take means the client's receive window and
//! our send buffer are full. That, not a timer per send, is how a slow reader is detected:
//! the writer holds its ticks while the socket is blocked and, once it drains, skips to the
//! newest (see `http::ws::push`).
//!
//! ## Ending a connection whose client stopped reading
//!
//! A server cannot force a client to read. Once one stops, the dispatcher's write buffer is
//! full and the dispatcher waits for the socket to take bytes, and for nothing else: not the
//! end of the WebSocket session, not a response body's error. Three things end such a
//! connection, and each frees its file descriptor:
//!
//! * the kernel: `TCP_USER_TIMEOUT` (set on the listener, inherited by every accepted
//!   socket; see `kernel_write_timeout` in `lib.rs`) aborts a connection whose sent data
//!   stays unacknowledged, a receiver that keeps its window shut included (Linux 5.13+);
//! * this wrapper's write timeout, above, where the kernel's does not apply;
//! * the WebSocket session, when it gives up on its client (behind for the client timeout,
//!   or silent): it calls [`Abort::now`], and the wrapper, which owns the socket, fails the
//!   dispatcher's next read or write with `SO_LINGER` 0 set. The dispatcher drops the
//!   connection, and closing it sends the client a reset and discards the unsent data. A
//!   client that trickles a byte now and then keeps neither timer running, so this is the
//!   one that ends it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::metrics::{Metrics, Transport};

/// Whether the connection's socket is taking bytes: written by its [`GuardedIo`] as writes
/// block and resume, read by a WebSocket's tick writer through the request's connection
/// data. Same thread as the dispatcher, hence `Cell`s.
#[derive(Debug, Default)]
#[repr(C)]
pub struct Backpressure {
    /// When a write first blocked since the output was last completely written out: the
    /// client has been behind since then, even if it reads a little now and then.
    behind_since: Cell<Option<Instant>>,
    /// A write is blocked right now: the kernel's send buffer is full.
    blocked: Cell<bool>,
    /// A write blocked at some point since [`Backpressure::take_blocked`] last asked.
    blocked_since_asked: Cell<bool>,
    /// The tick writer, holding its ticks until the socket drains.
    parked: RefCell<Option<Waker>>,
    /// Counted in `ws_send_waiting` while blocked, once the connection is a WebSocket.
    metrics: RefCell<Option<Arc<Metrics>>>,
}

impl Backpressure {
    /// Whether the socket's last write was blocked and nothing has been written since.
    pub fn is_blocked(&self) -> bool {
        self.blocked.get()
    }

    /// Whether a write blocked since the last call: the client fell behind at some point
    /// (it may have caught up since). Clears the record.
    pub fn take_blocked(&self) -> bool {
        self.blocked_since_asked.replace(false)
    }

    /// Whether a write blocked since [`Backpressure::take_blocked`] last asked, without clearing
    /// the record.
    pub fn blocked_since_asked(&self) -> bool {
        self.blocked_since_asked.get()
    }

    /// Wakes `waker` when the socket takes bytes again.
    pub fn park(&self, waker: &Waker) {
        let mut parked = self.parked.borrow_mut();
        if !parked.as_ref().is_some_and(|p| p.will_wake(waker)) {
            *parked = Some(waker.clone());
        }
    }

    /// For how long the client has been behind: its output not completely written out since
    /// a write first blocked (`None`: it is keeping up). A client that reads a trickle makes
    /// writes progress, so the write timeout never fires for it; this does not reset until
    /// it has read everything.
    pub fn behind_for(&self) -> Option<Duration> {
        self.behind_since.get().map(|since| since.elapsed())
    }

    /// From now on, count this connection in `ws_send_waiting` while its writes are blocked.
    /// (Once: a second call changes nothing.)
    pub fn count_in(&self, metrics: Arc<Metrics>) {
        let mut counted = self.metrics.borrow_mut();
        if counted.is_some() {
            return;
        }
        if self.blocked.get() {
            metrics.ws_send_waiting.add(1);
        }
        *counted = Some(metrics);
    }

    fn blocked(&self) {
        self.blocked_since_asked.set(true);
        if self.behind_since.get().is_none() {
            self.behind_since.set(Some(Instant::now()));
        }
        if !self.blocked.replace(true)
            && let Some(metrics) = &*self.metrics.borrow()
        {
            metrics.ws_send_waiting.add(1);
        }
    }

    /// Everything written out: the client has caught up.
    fn drained(&self) {
        self.behind_since.set(None);
    }

    fn flowing(&self) {
        if self.blocked.replace(false) {
            if let Some(metrics) = &*self.metrics.borrow() {
                metrics.ws_send_waiting.sub(1);
            }
            if let Some(waker) = self.parked.borrow_mut().take() {
                waker.wake();
            }
        }
    }
}

/// A request to end one connection at once, from a WebSocket session that gave up on its
/// client to the connection's [`GuardedIo`] (see the module docs). Reached through the
/// request's connection data; the session and the dispatcher run on the same worker thread.
#[derive(Default)]
#[repr(C)]
pub struct Abort {
    /// The dispatcher's task, as last seen polling the connection.
    dispatcher: Cell<Option<Waker>>,
    requested: Cell<bool>,
}

impl std::fmt::Debug for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Abort")
            .field("requested", &self.requested.get())
            .finish_non_exhaustive()
    }
}

impl Abort {
    /// Whether [`Abort::now`] was called.
    pub fn is_requested(&self) -> bool {
        self.requested.get()
    }

    /// Ends the connection: the dispatcher is woken, its next read or write fails, and the
    /// socket is closed with a reset. Does nothing more once the connection is gone.
    pub fn now(&self) {
        self.requested.set(true);
        if let Some(waker) = self.dispatcher.take() {
            waker.wake();
        }
    }
}

/// What a connection's bytes count for: the transport of the request it carries now, set by
/// the response-counting middleware (`http::metrics::count_responses`) from the request's
/// path, and read by [`GuardedIo`] on every read and write. An HTTP/1.1 connection carries one
/// request at a time, so its bytes belong to that request's transport (a keep-alive's next
/// request head is counted for the one before it, a few hundred bytes). An HTTP/2 connection
/// mixes streams of every kind: it stays [`Transport::Other`].
#[derive(Debug)]
pub struct Meter {
    metrics: Arc<Metrics>,
    transport: Cell<Transport>,
    /// HTTP/2: the transport is not followed.
    fixed: bool,
}

impl Meter {
    /// The connection's bytes count for `transport` from now on (unless it is HTTP/2).
    pub fn carries(&self, transport: Transport) {
        if !self.fixed {
            self.transport.set(transport);
        }
    }

    fn count(&self, read: usize, written: usize) {
        self.metrics.carried(self.transport.get(), read, written);
    }
}

/// What the requests on a connection can reach of it (through the request's connection data,
/// as `Rc<Handles>`): whether its socket takes bytes, the switch that ends it, the meter its
/// bytes count in, and the socket itself for a WebSocket's ticks.
///
/// One allocation for them, because a WebSocket touches them on every tick: its body
/// asks whether the socket is blocked, and the [`GuardedIo`] under it checks the abort
/// switch and counts the bytes of the write. A thousand connections' state does not stay in
/// the processor's caches from one tick to the next, so each separate allocation read per
/// tick is a cache miss per client per tick; together they are one. For the same reason what
/// a tick reads of them through the dispatcher (the abort switch and the dispatcher's waker,
/// the meter, whether and since when the socket is blocked) fits the first 64 bytes, one or
/// two cache lines: `repr(C)` keeps the fields in this order. A tick the worker's relay writes
/// itself reads the socket too, last, in the next line (before it there is no room for it
/// without pushing the backpressure flags out of the first 64 bytes).
#[derive(Debug, Default)]
#[repr(C)]
pub struct Handles {
    /// Ends the connection at once, for a WebSocket session that gives up on its client.
    pub abort: Abort,
    /// Where the connection's bytes are counted, when they are ([`GuardedIo::metered`]).
    pub meter: Option<Meter>,
    /// Whether the socket takes bytes, for a streaming body.
    pub backpressure: Backpressure,
    /// The connection's plain TCP socket, for as long as it is open, when a WebSocket's ticks
    /// may be written to it directly ([`GuardedIo::writable_directly`]).
    socket: Cell<Option<RawSocket>>,
}

/// A socket as the operating system names it.
#[cfg(unix)]
pub type RawSocket = std::os::fd::RawFd;
/// A socket as the operating system names it (never reported here: see [`Handles::socket`]).
#[cfg(not(unix))]
pub type RawSocket = usize;

impl Handles {
    /// The connection's plain TCP socket, while it is open, if writes may go to it past the
    /// dispatcher: only a WebSocket's tick writer does that, and only when the dispatcher
    /// has nothing unwritten (see `http::ws::body`). `None` for TLS (the bytes must go through
    /// the TLS session), once the client ended its side of the connection, and once the
    /// connection's [`GuardedIo`] is gone.
    pub fn socket(&self) -> Option<RawSocket> {
        self.socket.get()
    }

    /// `bytes` were written to [`Handles::socket`] directly: they count as the connection's.
    pub fn wrote_directly(&self, bytes: usize) {
        if bytes > 0
            && let Some(meter) = &self.meter
        {
            meter.count(0, bytes);
        }
    }
}

/// A connection's I/O as the HTTP dispatcher sees it, with the limits described in the
/// module docs: writes that give up after `write_timeout` without progress, the socket's
/// backpressure made visible to a WebSocket's tick writer, and an [`Abort`] for its session.
pub struct GuardedIo<T> {
    io: T,
    /// The TCP socket under `io` (itself, or the one below TLS), for `SO_LINGER`.
    tcp: fn(&T) -> &TcpStream,
    handles: Rc<Handles>,
    write_timeout: Duration,
    /// Set while writes are blocked: when it fires, the connection is given up.
    stalled: Option<Pin<Box<Sleep>>>,
    /// How fast the client may send, when limited ([`GuardedIo::with_read_limit`]).
    read_limit: Option<ReadLimit>,
}

/// A token bucket over the bytes read from a connection: `rate` bytes a second, up to
/// `burst` saved up. A read may overdraw it (it takes what the socket has, up to the
/// reader's buffer); the next read then waits until the balance is positive again.
struct ReadLimit {
    rate: f64,
    burst: f64,
    balance: f64,
    refilled: Instant,
    /// Set while the balance is negative: when it fires, reading resumes.
    waiting: Option<Pin<Box<Sleep>>>,
}

impl ReadLimit {
    /// `Ready` once the balance is positive; otherwise `Pending`, woken when it will be.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * self.rate;
        self.balance = (self.balance + earned).min(self.burst);
        self.refilled = now;
        if self.balance > 0.0 {
            self.waiting = None;
            return Poll::Ready(());
        }
        let until = now + Duration::from_secs_f64(-self.balance / self.rate);
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        waiting.as_mut().reset(until);
        ready!(waiting.as_mut().poll(cx));
        self.waiting = None;
        Poll::Ready(())
    }
}

impl<T> GuardedIo<T> {
    /// Wraps a freshly accepted connection; `tcp` finds its TCP socket (`|tcp| tcp` for plain
    /// TCP, the stream below the TLS session for TLS).
    pub fn new(io: T, tcp: fn(&T) -> &TcpStream, write_timeout: Duration) -> GuardedIo<T> {
        GuardedIo {
            io,
            tcp,
            handles: Rc::default(),
            write_timeout,
            stalled: None,
            read_limit: None,
        }
    }

    /// Counts this connection's bytes in `metrics`, by transport ([`Meter`]); an HTTP/2
    /// connection's (`h2`) all as [`Transport::Other`]. Called as the connection is wrapped,
    /// before its [`Handles`] are handed out.
    pub fn metered(mut self, metrics: Arc<Metrics>, h2: bool) -> GuardedIo<T> {
        let handles =
            Rc::get_mut(&mut self.handles).expect("a connection is metered before it is served");
        handles.meter = Some(Meter {
            metrics,
            transport: Cell::new(Transport::Other),
            fixed: h2,
        });
        self
    }

    /// Lets the client send at most `rate` bytes a second on average, with bursts of up to
    /// `burst`: past that, the connection is not read until the budget refills, so whatever
    /// the client sends (an HTTP/2 frame flood included) costs the server at most that much
    /// parsing.
    pub fn with_read_limit(mut self, rate: u32, burst: u32) -> GuardedIo<T> {
        self.read_limit = Some(ReadLimit {
            rate: f64::from(rate),
            burst: f64::from(burst),
            balance: f64::from(burst),
            refilled: Instant::now(),
            waiting: None,
        });
        self
    }

    /// The connection's [`Handles`], for its requests to reach through the request's
    /// connection data: a WebSocket's tick writer, its session, the byte-counting middleware.
    pub fn handles(&self) -> Rc<Handles> {
        self.handles.clone()
    }

    /// Lets a WebSocket's tick writer write to this plain TCP connection's socket itself
    /// ([`Handles::socket`]), past the dispatcher, when the dispatcher has nothing unwritten.
    /// On Linux only (it needs `MSG_NOSIGNAL`); elsewhere this does nothing and ticks go
    /// through the dispatcher. Called as the connection is wrapped, never for TLS.
    pub fn writable_directly(self) -> GuardedIo<T> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let socket = (self.tcp)(&self.io).as_raw_fd();
            self.handles.socket.set(Some(socket));
        }
        self
    }

    /// Before every read and write: fails once [`Abort::now`] was called, with `SO_LINGER` 0
    /// set so that closing the socket resets it; otherwise remembers who to wake for it.
    fn aborted(&self, cx: &Context<'_>) -> Option<io::Error> {
        let abort = &self.handles.abort;
        if abort.requested.get() {
            // The dispatcher drops the connection on this error; with a zero linger time the
            // kernel then discards the unsent bytes and sends a reset instead of keeping the
            // socket until the client reads them.
            let _ = socket2::SockRef::from((self.tcp)(&self.io)).set_linger(Some(Duration::ZERO));
            return Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the WebSocket session gave up on its client: connection reset",
            ));
        }
        let dispatcher = match abort.dispatcher.take() {
            Some(known) if known.will_wake(cx.waker()) => known,
            _ => cx.waker().clone(),
        };
        abort.dispatcher.set(Some(dispatcher));
        None
    }

    /// Called when a write is blocked: starts the stall timer (once per stall: the timer, not
    /// each write, is what the client's silence costs), or fails once it has fired.
    fn stall<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let timeout = self.write_timeout;
        let handles = &self.handles;
        let timer = self.stalled.get_or_insert_with(|| {
            handles.backpressure.blocked();
            Box::pin(tokio::time::sleep(timeout))
        });
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {timeout:?}: connection dropped"),
        )))
    }
}

impl<T> GuardedIo<T> {
    /// A write made progress: the stall (if any) is over.
    fn progressed(&mut self) {
        if self.stalled.take().is_some() {
            self.handles.backpressure.flowing();
        }
    }
}

impl<T> Drop for GuardedIo<T> {
    fn drop(&mut self) {
        // The socket closes with `io`: nothing may write to it past this point.
        self.handles.socket.set(None);
        // Leave the `ws_send_waiting` gauge on every way out, a write timeout included.
        self.progressed();
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.aborted(cx) {
            return Poll::Ready(Err(e));
        }
        if let Some(limit) = &mut this.read_limit {
            ready!(limit.poll_ready(cx));
        }
        let before = out.filled().len();
        let result = ready!(Pin::new(&mut this.io).poll_read(cx, out));
        let read = out.filled().len() - before;
        if result.is_err() || (read == 0 && out.remaining() > 0) {
            // The client ended its side (or the connection failed): the dispatcher now shuts
            // the connection down without asking the body for more, so nothing may start a
            // frame on the socket past it that the body would have to finish.
            this.handles.socket.set(None);
        }
        result?;
        if let Some(limit) = &mut this.read_limit {
            limit.balance -= read as f64;
        }
        if let Some(meter) = &this.handles.meter {
            meter.count(read, 0);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.aborted(cx) {
            return Poll::Ready(Err(e));
        }
        match Pin::new(&mut this.io).poll_write(cx, bytes) {
            Poll::Pending => this.stall(cx),
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.progressed();
                    if let Some(meter) = &this.handles.meter {
                        meter.count(0, n);
                    }
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.aborted(cx) {
            return Poll::Ready(Err(e));
        }
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => this.stall(cx),
            Poll::Ready(result) => {
                this.progressed();
                // The dispatcher flushes once its whole buffer is written.
                this.handles.backpressure.drained();
                Poll::Ready(result)
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_shutdown(cx) {
            Poll::Pending => this.stall(cx),
            ready => {
                this.progressed();
                ready
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Where `field` ends, in bytes from `base` (the start of the object that holds it), for
    /// the tests that check which fields a tick reads.
    pub(crate) fn end_of<T>(base: usize, field: &T) -> usize {
        field as *const T as usize - base + std::mem::size_of::<T>()
    }

    /// What a tick reads of a connection's [`Handles`] lies in their first 64 bytes: every
    /// field the tick path reads ends within them.
    #[test]
    fn what_a_tick_reads_of_the_handles_is_in_their_first_64_bytes() {
        let handles = Rc::new(Handles::default());
        let base = Rc::as_ptr(&handles) as usize;
        let read_per_tick = [
            ("abort.dispatcher", end_of(base, &handles.abort.dispatcher)),
            ("abort.requested", end_of(base, &handles.abort.requested)),
            ("meter", end_of(base, &handles.meter)),
            (
                "backpressure.behind_since",
                end_of(base, &handles.backpressure.behind_since),
            ),
            (
                "backpressure.blocked",
                end_of(base, &handles.backpressure.blocked),
            ),
            (
                "backpressure.blocked_since_asked",
                end_of(base, &handles.backpressure.blocked_since_asked),
            ),
        ];
        for (field, end) in read_per_tick {
            assert!(end <= 64, "{field} ends at byte {end}, past the first 64");
        }
    }
}
