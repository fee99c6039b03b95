//! The hostile clients of the soak's first rows (`docs/robustness.md`), as plain functions over an address, so the
//! single-row tests (`tests/it/hostile/ws.rs`, `tests/it/hostile/http.rs`) and the soak that runs
//! them all at once (`tests/it/hostile/soak.rs`) play exactly the same client:
//!
//! * R1 [`announce_a_gigabyte`]: a WebSocket frame header announcing 1 GiB, then payload;
//! * R2 [`never_reading_ws`]: a WebSocket that never reads;
//! * R3 [`pipeline_and_never_read`]: thousands of pipelined `GET /`, answers never read;
//! * R4 [`never_reading_events`]: an event stream that never reads.
//!
//! Each never-reading client has a 4 KiB receive buffer ([`small_window`]): on loopback the
//! kernel would otherwise absorb megabytes, and the server would never feel the client stop.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use super::raw::{RawWs, request};

/// The receive buffer of a client that never reads.
pub const SMALL_WINDOW: u32 = 4096;

/// R3's requests: 5000 pipelined `GET /`, 135 kB, written without reading a single answer.
pub fn pipelined_requests() -> Vec<u8> {
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(5000)
}

/// A connection whose receive buffer is [`SMALL_WINDOW`]: one that never reads fills it soon.
pub async fn small_window(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(SMALL_WINDOW)?;
    socket.connect(addr).await
}

/// A masked client frame header (FIN and opcode in `first`) with the 64-bit length form
/// announcing `len` bytes, and no payload.
pub fn frame_header(first: u8, len: u64) -> Vec<u8> {
    let mut frame = vec![first, 0x80 | 127];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&[0x37, 0xfa, 0x21, 0x3d]);
    frame
}

/// R1: on an open WebSocket, writes a text frame header announcing 1 GiB, then as much of
/// that payload as the server takes, up to `send` bytes. Returns the payload bytes written.
/// A write that makes no progress for 2 s ends it: the server stopped reading (it closes
/// with 1009 as soon as it has seen the header).
pub async fn announce_a_gigabyte(stream: &mut TcpStream, send: usize) -> usize {
    if stream
        .write_all(&frame_header(0x81, 1 << 30))
        .await
        .is_err()
    {
        return 0;
    }
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < send {
        match tokio::time::timeout(Duration::from_secs(2), stream.write_all(&chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            _ => break,
        }
    }
    sent
}

/// R2: a WebSocket on `path` (e.g. `/ws?symbols=...`, every symbol so the server has plenty
/// to send) over a [`small_window`] connection, never read. The handshake's answer when it is
/// not `101` (e.g. `503` past `--max-connections`) is the error.
pub async fn never_reading_ws(addr: SocketAddr, path: &str) -> Result<TcpStream, String> {
    let stream = small_window(addr).await.map_err(|e| e.to_string())?;
    let ws = RawWs::try_handshake(stream, addr, path).await?;
    Ok(ws.stream)
}

/// R3: writes `requests` on a [`small_window`] connection and never reads the answers. The
/// write stops when the server stops reading; it is given up after `give_up`. Returns the
/// connection, to be held open.
pub async fn pipeline_and_never_read(
    addr: SocketAddr,
    requests: &[u8],
    give_up: Duration,
) -> std::io::Result<TcpStream> {
    let mut stream = small_window(addr).await?;
    let _ = tokio::time::timeout(give_up, stream.write_all(requests)).await;
    Ok(stream)
}

/// R4: asks for `/events?symbols=SYMBOLS` on a [`small_window`] connection, reads the
/// response head and never reads the stream. The head when it is not `200` (e.g. `503` past
/// `--max-connections`) is the error.
pub async fn never_reading_events(addr: SocketAddr, symbols: &str) -> Result<TcpStream, String> {
    let mut stream = small_window(addr).await.map_err(|e| e.to_string())?;
    let head = format!("GET /events?symbols={symbols} HTTP/1.1\r\nHost: x\r\n\r\n");
    let (response, _) = request(&mut stream, &head).await;
    if !response.starts_with("HTTP/1.1 200") {
        return Err(response);
    }
    Ok(stream)
}
