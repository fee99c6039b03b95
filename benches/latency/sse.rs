//! The Server-Sent Events client, by hand so that every byte is visible, and the decoder of
//! the chunked `text/event-stream` body it reads.

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::counting::Counted;
use crate::support::tick_fields::{TickFields, now_ms};
use crate::transport::Observed;

/// A Server-Sent Events client, by hand so every byte is visible: one `GET /events`, then the
/// endless chunked `text/event-stream` body, decoded chunk by chunk and split into events.
/// The response head, chunk framing, `id:`/`data:` prefixes, blank lines and comments are
/// header bytes; the JSON after `data: ` is payload.
pub async fn run_sse(addr: SocketAddr, symbol: &str, stop_at: Instant) -> anyhow::Result<Observed> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut stream = Counted::new(tcp);
    let request = format!(
        "GET /events?symbols={symbol} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut seen = Observed::default();
    let mut sse = SseDecoder::default();
    let mut chunk = [0u8; 8192];
    loop {
        let n = tokio::select! {
            n = stream.read(&mut chunk) => n?,
            _ = tokio::time::sleep_until(stop_at) => break,
        };
        anyhow::ensure!(n > 0, "the server ended the event stream");
        let at = now_ms();
        for data in sse.feed(&chunk[..n])? {
            seen.exchanges += 1;
            seen.payload_bytes += data.len() as u64;
            if let Some(tick) = TickFields::parse(&data) {
                seen.receipt(at, tick);
            }
        }
    }
    seen.wire_bytes = stream.bytes_read() + stream.bytes_written();
    // One event: the framing measured per event (chunk header and trailer, `id: ACME:42\n`,
    // `data: `, the newline and the blank line), and its JSON.
    let events = sse.events.max(1) as f64;
    seen.unit_header = sse.framing as f64 / events;
    seen.unit_payload = seen.payload_bytes as f64 / events;
    Ok(seen)
}

/// Decodes an HTTP/1.1 chunked `text/event-stream` response as its bytes arrive.
#[derive(Default)]
struct SseDecoder {
    /// Raw bytes not yet decoded (an incomplete head or chunk).
    raw: Vec<u8>,
    /// Whether the response head (status line and headers) has been read.
    head_done: bool,
    /// Decoded body bytes not yet split into events.
    body: Vec<u8>,
    /// Chunk framing and event framing of the events so far (not the response head, not
    /// comments): the per-event overhead the theory multiplies.
    framing: u64,
    /// Events carrying `data:` so far.
    events: u64,
    /// Chunk framing seen since the last event, charged to the next event.
    chunk_framing: u64,
}

impl SseDecoder {
    /// Takes newly read bytes; returns the `data:` of every event completed by them.
    fn feed(&mut self, bytes: &[u8]) -> anyhow::Result<Vec<String>> {
        self.raw.extend_from_slice(bytes);
        if !self.head_done {
            let Some(end) = find(&self.raw, b"\r\n\r\n") else {
                anyhow::ensure!(self.raw.len() < 16 * 1024, "response head over 16 KiB");
                return Ok(Vec::new());
            };
            let head = String::from_utf8_lossy(&self.raw[..end]).to_ascii_lowercase();
            anyhow::ensure!(
                head.starts_with("http/1.1 200"),
                "GET /events answered {:?}",
                head.lines().next()
            );
            anyhow::ensure!(
                head.contains("transfer-encoding: chunked"),
                "GET /events: expected a chunked body"
            );
            self.raw.drain(..end + 4);
            self.head_done = true;
        }
        // Chunks: `<hex size>\r\n<size bytes>\r\n`.
        while let Some(line_end) = find(&self.raw, b"\r\n") {
            let size_text = std::str::from_utf8(&self.raw[..line_end])?;
            let size_text = size_text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| anyhow::anyhow!("bad chunk size {size_text:?}"))?;
            anyhow::ensure!(size > 0, "the server ended the event stream");
            if self.raw.len() < line_end + 2 + size + 2 {
                break;
            }
            self.body
                .extend_from_slice(&self.raw[line_end + 2..line_end + 2 + size]);
            self.chunk_framing += (line_end + 4) as u64;
            self.raw.drain(..line_end + 2 + size + 2);
        }
        // Events end with a blank line.
        let mut data = Vec::new();
        while let Some(end) = find(&self.body, b"\n\n") {
            let event: Vec<u8> = self.body.drain(..end + 2).collect();
            let text = std::str::from_utf8(&event)?;
            let payload: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if payload.is_empty() {
                continue; // `retry:` or a comment: framing, but not an event's
            }
            let json = payload.join("\n");
            self.events += 1;
            self.framing += (event.len() - json.len()) as u64 + self.chunk_framing;
            self.chunk_framing = 0;
            data.push(json);
        }
        Ok(data)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
