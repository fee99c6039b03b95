//! How a WebSocket's TCP connection ends once its session is over.
//!
//! RFC 6455 section 7.1.1: after the closing handshake (each side has sent a close frame),
//! the *server* closes the TCP connection first, so that the client is not the one left
//! holding the TIME_WAIT state. actix-web does not do that by itself: when a WebSocket
//! response body ends, its HTTP/1 dispatcher sees a request body (the client's frames) that
//! never finished, and *lingers*: it reads and discards until the client hangs up or its
//! `client_disconnect_timeout` (1 s) passes. A page waited about that long for its `close`
//! event after "Drop connection".
//!
//! [`ClosingBody`] wraps the response body that actix-ws writes frames into. When the
//! session says it is over ([`Ending::done`], or the [`Ending`] is dropped, however the
//! session ended), the body gives the dispatcher one more turn to flush what is queued (the
//! close frame) and then ends with an error. An error in a response body is how actix-web
//! is told "drop this connection now": the dispatcher stops and the socket (its file
//! descriptor) is closed at once, instead of lingering. actix-http logs that error at ERROR
//! level (target `actix_http::h1::dispatcher`), so the error's text says plainly that this is
//! the normal end of a WebSocket, and the binary's log filter leaves out that one line (`main.rs`).
//!
//! One exception, [`Ending::linger`]: after a frame that broke a rule, the client may still be
//! sending (the payload of a refused frame). Closing then, with unread data, makes the kernel
//! reset the connection, and a reset can overtake our close frame. So that case ends the body
//! normally and lets actix linger: it reads and discards for at most 1 s, then closes.
//!
//! Limit: the dispatcher only asks the body for more while its write buffer is below 32 KiB.
//! A client that stopped reading has a full buffer, so this path never runs for it. A session
//! that gives up on its client (the [`Ending`] is dropped without [`Ending::done`]) therefore
//! also asks the connection to end itself ([`Abort`], see [`crate::http::connection`]), and
//! the kernel's `TCP_USER_TIMEOUT` is the floor under both.

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;

use crate::http::connection::Abort;

/// The session's side: tells the body that the session is over. Dropping it says so too,
/// so a session that ends by an early `return` releases its connection all the same; dropped
/// without [`Ending::done`], it means the session gave up on its client, and the connection
/// is reset rather than flushed.
#[derive(Debug)]
pub struct Ending {
    done: Rc<Done>,
    graceful: bool,
    abort: Option<Rc<Abort>>,
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
        self.done.linger.set(true);
        self.graceful = true;
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        if !self.graceful
            && let Some(abort) = &self.abort
        {
            abort.now();
        }
        self.done.set();
    }
}

/// "The session is over", from the session's task to the connection's: both run on the same
/// worker thread, so a cell and the body's waker do, where a cancellation token would take a
/// lock and a registration on every poll of the body (every tick).
#[derive(Debug, Default)]
struct Done {
    over: Cell<bool>,
    /// Set by [`Ending::linger`]: end normally instead of with an error.
    linger: Cell<bool>,
    body: RefCell<Option<Waker>>,
}

impl Done {
    fn set(&self) {
        self.over.set(true);
        if let Some(waker) = self.body.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Whether the session is over; if not, the body's task is woken when it is.
    fn poll(&self, cx: &Context<'_>) -> bool {
        if self.over.get() {
            return true;
        }
        let mut body = self.body.borrow_mut();
        if !body.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *body = Some(cx.waker().clone());
        }
        false
    }
}

/// Why a [`ClosingBody`] ends: not a failure, the end of a WebSocket.
#[derive(thiserror::Error)]
#[error("WebSocket session over: the server closes the TCP connection (RFC 6455 section 7.1.1)")]
pub struct SessionOver;

// actix-http logs a body's error with `{:?}`: make that line say what happened.
impl std::fmt::Debug for SessionOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A WebSocket response body that ends the connection when the session is over.
pub struct ClosingBody<B> {
    inner: B,
    inner_ended: bool,
    done: Rc<Done>,
    /// Set when a chunk was handed out since the last `Pending`: the dispatcher has not yet
    /// had a turn to write it to the socket.
    unflushed: bool,
}

/// Wraps a WebSocket response body; returns it and the session's [`Ending`] handle. With the
/// connection's [`Abort`] (`serve` gives every connection one), a session that gives up can
/// end its connection even when the dispatcher no longer polls the body.
pub fn closing<B>(inner: B, abort: Option<Rc<Abort>>) -> (ClosingBody<B>, Ending) {
    let done = Rc::new(Done::default());
    let body = ClosingBody {
        inner,
        inner_ended: false,
        done: done.clone(),
        unflushed: false,
    };
    let ending = Ending {
        done,
        graceful: false,
        abort,
    };
    (body, ending)
}

impl<B> MessageBody for ClosingBody<B>
where
    B: MessageBody + Unpin,
    B::Error: Into<Box<dyn std::error::Error>>,
{
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if !this.inner_ended {
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    this.unflushed = true;
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => this.inner_ended = true,
                Poll::Pending => {}
            }
        }
        if !this.done.poll(cx) {
            this.unflushed = false;
            return Poll::Pending;
        }
        if this.done.linger.get() {
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
