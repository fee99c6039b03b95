//! The connection's socket: options and a last resort that bound what a client that stops
//! reading can hold.
//!
//! A server cannot force a client to read. When one stops, everything the server writes to
//! it piles up: first in the kernel's send buffer, then in actix's 32 KiB write buffer.
//! From then on actix-web's HTTP/1 dispatcher waits for the socket to become writable and
//! nothing else: not the end of the WebSocket session, not a response body's error. The
//! session ends and frees its `--max-connections` place, but the socket, its file descriptor
//! and its buffers stay until the client reads or disconnects. Enough such clients and the
//! server runs out of file descriptors: down for everyone.
//!
//! The kernel can end such a connection on its own (`serve` sets this; see
//! `kernel_write_timeout` in `src/lib.rs`): `TCP_USER_TIMEOUT` (Linux, RFC 5482)
//! is the longest that sent data may stay unacknowledged, and since Linux 5.13 that
//! includes a receiver that keeps its window shut. Past it, the kernel aborts the
//! connection; the dispatcher's next write fails, and actix drops the socket. Set on the
//! listening socket, it is inherited by every accepted connection, so it covers every
//! transport (WebSocket, SSE, long poll, pipelined HTTP) at no cost per connection.
//!
//! The kernel's patience starts only once the client's window is shut, and a client that
//! trickles a byte now and then never shuts it. So a WebSocket session that gives up on its
//! client also ends the connection itself: [`on_connect`] records each accepted socket, and
//! [`Abort::now`] shuts it down with an immediate reset. The dispatcher's pending write then
//! fails, and actix drops the connection and its file descriptor at once.

use std::any::Any;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::ThreadId;
use std::time::Duration;

use actix_web::dev::Extensions;

/// The accepted socket of one connection, as `serve`'s connection wrapper (or [`on_connect`]) records it in the
/// connection's data (`HttpRequest::conn_data`). Only a number: it does not keep the socket open.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSocket {
    fd: RawFd,
    /// The worker thread that runs the connection (and the sessions it spawns).
    thread: ThreadId,
}

impl ConnectionSocket {
    /// The socket `fd`, served on the current (worker) thread.
    pub fn here(fd: RawFd) -> ConnectionSocket {
        ConnectionSocket {
            fd,
            thread: std::thread::current().id(),
        }
    }
}

/// Records each accepted plain-TCP socket for the handlers, for an app served by
/// `HttpServer::on_connect`. `serve` does not need it: its own connection wrapper records
/// every socket, TLS included (`GuardedIo::with_socket` in [`super::connection`]).
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        data.insert(ConnectionSocket::here(tcp.as_raw_fd()));
    }
}

/// The power to end one connection at once, for as long as it is known to be open.
#[derive(Debug)]
pub struct Abort {
    socket: ConnectionSocket,
    /// Cleared when the connection's response body is dropped, which the dispatcher does
    /// before, or together with, closing the socket.
    open: Arc<AtomicBool>,
}

impl Abort {
    /// An abort for `socket`, valid while `open` is set.
    pub fn new(socket: ConnectionSocket, open: Arc<AtomicBool>) -> Abort {
        Abort { socket, open }
    }

    /// Resets the connection now (`SO_LINGER` 0, then `shutdown`): the client gets a reset,
    /// the kernel drops the unsent data, and actix closes the file descriptor on its next
    /// poll. Does nothing once the connection may be closed, or off its worker thread.
    pub fn now(&self) -> bool {
        if !self.open.load(Ordering::Acquire) || std::thread::current().id() != self.socket.thread {
            return false;
        }
        // SAFETY: the descriptor is open. The dispatcher owns both the socket and the response
        // body, and drops the body (clearing `open`) no later than it closes the socket; it runs
        // on this worker thread only, like this session, so it cannot close the socket between
        // the check above and the calls below. So the number still names this connection's
        // socket, not a reused one.
        let fd = unsafe { BorrowedFd::borrow_raw(self.socket.fd) };
        let socket = socket2::SockRef::from(&fd);
        let _ = socket.set_linger(Some(Duration::ZERO));
        socket.shutdown(Shutdown::Both).is_ok()
    }
}
