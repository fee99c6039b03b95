//! A stream that counts the bytes that really cross it. Wrap the client's `TcpStream` in
//! [`Counted`] and every byte the HTTP or WebSocket client reads or writes is counted,
//! handshakes, frame headers, pings and all: what a network capture would show above TCP.
//! Wrap a TLS stream too and the bytes inside TLS are counted apart from those on the wire.
//!
//! The counts are kept in [`Counters`], shared atomics, rather than in the stream: a client
//! such as h2's takes its stream into a connection task of its own, and the counts must still
//! be readable from outside.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `S` with a byte count in each direction.
pub struct Counted<S> {
    inner: S,
    counters: Counters,
}

/// The byte counts of a [`Counted`] stream, readable wherever a clone of them went.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    read: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl Counters {
    /// Bytes received so far.
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Bytes sent so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Bytes received and sent so far.
    pub fn total(&self) -> u64 {
        self.read() + self.written()
    }
}

impl<S> Counted<S> {
    /// Starts counting from zero.
    pub fn new(inner: S) -> Counted<S> {
        Counted {
            inner,
            counters: Counters::default(),
        }
    }

    /// A handle on the counts that stays readable after the stream is moved away.
    pub fn counters(&self) -> Counters {
        self.counters.clone()
    }

    /// Bytes received so far.
    pub fn bytes_read(&self) -> u64 {
        self.counters.read()
    }

    /// Bytes sent so far.
    pub fn bytes_written(&self) -> u64 {
        self.counters.written()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.counters.read.fetch_add(n, Ordering::Relaxed);
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &result {
            self.counters
                .written
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
