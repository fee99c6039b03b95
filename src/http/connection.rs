//! Socket options that bound what a client that stops reading can hold.
//!
//! A server cannot force a client to read. When one stops, everything the server writes to
//! it piles up: first in the kernel's send buffer, then in actix's 32 KiB write buffer.
//! From then on actix-web's HTTP/1 dispatcher waits for the socket to become writable and
//! nothing else: not the end of the WebSocket session, not a response body's error. The
//! session ends and frees its `--max-connections` place, but the socket, its file descriptor
//! and its buffers stay until the client reads or disconnects. Enough such clients and the
//! server runs out of file descriptors: down for everyone.
//!
//! The kernel can end such a connection on its own: `TCP_USER_TIMEOUT` (Linux, RFC 5482)
//! is the longest that sent data may stay unacknowledged, and since Linux 5.13 that
//! includes a receiver that keeps its window shut. Past it, the kernel aborts the
//! connection; the dispatcher's next write fails, and actix drops the socket. Set on the
//! listening socket, it is inherited by every accepted connection, so it covers every
//! transport (WebSocket, SSE, long poll, pipelined HTTP) at no cost per connection.

use std::net::TcpListener;
use std::time::Duration;

/// Sets `TCP_USER_TIMEOUT` to `client_timeout` on `listener`; accepted sockets inherit it.
///
/// The rule: a connection that cannot move data for `--client-timeout-secs` is dead, the
/// same patience the WebSocket heartbeat has for a silent client. A healthy client that
/// reads, even slowly, acknowledges data and is never affected; a network outage shorter
/// than the timeout is survived. On systems without the option this does nothing.
///
/// `serve` must call it on the listener before handing it to actix.
pub fn limit_unacknowledged(
    listener: &TcpListener,
    client_timeout: Duration,
) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    socket2::SockRef::from(listener).set_tcp_user_timeout(Some(client_timeout))?;
    #[cfg(not(target_os = "linux"))]
    let _ = (listener, client_timeout);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn accepted_sockets_inherit_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        limit_unacknowledged(&listener, Duration::from_secs(7)).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let timeout = socket2::SockRef::from(&accepted)
            .tcp_user_timeout()
            .unwrap();
        assert_eq!(timeout, Some(Duration::from_secs(7)));
    }
}
