//! The WebSocket, long-polling and polling clients: each runs until the end of the run and
//! records every tick it received and every byte it spent. (The SSE client has a decoder of
//! its own, in `sse.rs`.)

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use crate::support::counting::Counted;
use crate::support::http_client::HttpClient;
use crate::support::tick_fields::{TickFields, now_ms};
use crate::transport::Observed;

/// A WebSocket client: `GET /ws?symbols=S`, then every tick message the server pushes.
pub async fn run_websocket(
    addr: SocketAddr,
    symbol: &str,
    stop_at: Instant,
) -> anyhow::Result<Observed> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let url = format!("ws://{addr}/ws?symbols={symbol}");
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url, Counted::new(tcp), None).await?;
    let mut seen = Observed::default();
    let mut tick_bytes = Vec::new();
    loop {
        let message = tokio::select! {
            message = ws.next() => message,
            _ = tokio::time::sleep_until(stop_at) => break,
        };
        let Some(message) = message else { break };
        if let Message::Text(text) = message? {
            seen.payload_bytes += text.len() as u64;
            seen.exchanges += 1;
            if let Some(tick) = TickFields::parse(&text) {
                seen.receipt(now_ms(), tick);
                tick_bytes.push(text.len() as f64);
            }
        }
    }
    let _ = ws.close(None).await;
    let counted = ws.get_ref();
    seen.wire_bytes = counted.bytes_read() + counted.bytes_written();
    // One tick message: its JSON plus a 2-byte frame header (server frames are unmasked and
    // ticks are shorter than 126 bytes, RFC 6455 section 5.2).
    seen.unit_payload = tick_bytes.iter().sum::<f64>() / tick_bytes.len().max(1) as f64;
    seen.unit_header = 2.0;
    Ok(seen)
}

/// A long-polling client: `GET /price/next?symbol=S&after=<newest seq held>` over one
/// keep-alive connection, the next request sent the moment an answer arrives. A `204` (the
/// server's timeout, nothing new) counts as an exchange that brought no tick.
pub async fn run_long_poll(
    addr: SocketAddr,
    symbol: &str,
    stop_at: Instant,
) -> anyhow::Result<Observed> {
    let mut client = HttpClient::connect(addr, &format!("/price/next?symbol={symbol}")).await?;
    let mut seen = Observed::default();
    let mut units = (0.0, 0.0, 0u32);
    loop {
        let (read, written) = (client.bytes_read(), client.bytes_written());
        let response = tokio::select! {
            response = client.get() => response?,
            _ = tokio::time::sleep_until(stop_at) => break,
        };
        let at = now_ms();
        seen.exchanges += 1;
        seen.payload_bytes += response.body.len() as u64;
        match response.status {
            204 => continue,
            200 => {}
            other => anyhow::bail!("GET /price/next answered {other}"),
        }
        let total = (client.bytes_read() - read + client.bytes_written() - written) as f64;
        units.0 += total - response.body.len() as f64;
        units.1 += response.body.len() as f64;
        units.2 += 1;
        let tick = tick_in(&response.body, "GET /price/next")?;
        seen.receipt(at, tick);
        client.set_path(&format!("/price/next?symbol={symbol}&after={}", tick.seq));
    }
    seen.wire_bytes = client.bytes_read() + client.bytes_written();
    // One exchange: request and response headers, and the tick. The `after=` grows by a
    // digit now and then, so this is the average.
    let n = f64::from(units.2.max(1));
    seen.unit_header = units.0 / n;
    seen.unit_payload = units.1 / n;
    Ok(seen)
}

/// A polling client: `GET /price?symbol=S` every `interval_ms` over one keep-alive
/// connection, starting at a random phase against the ticks.
pub async fn run_polling(
    addr: SocketAddr,
    symbol: &str,
    interval_ms: u64,
    stop_at: Instant,
) -> anyhow::Result<Observed> {
    let mut client = HttpClient::connect(addr, &format!("/price?symbol={symbol}")).await?;
    // Start at a random phase against the feed's ticks, as a real page would.
    let offset = rand::random::<f64>() * interval_ms as f64;
    let mut interval = tokio::time::interval_at(
        Instant::now() + Duration::from_secs_f64(offset / 1000.0),
        Duration::from_millis(interval_ms),
    );
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut seen = Observed::default();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = tokio::time::sleep_until(stop_at) => break,
        }
        let (read, written) = (client.bytes_read(), client.bytes_written());
        let response = client.get().await?;
        let at = now_ms();
        anyhow::ensure!(
            response.status == 200,
            "GET /price answered {}",
            response.status
        );
        seen.exchanges += 1;
        seen.payload_bytes += response.body.len() as u64;
        if seen.unit_payload == 0.0 {
            let total = (client.bytes_read() - read + client.bytes_written() - written) as f64;
            seen.unit_payload = response.body.len() as f64;
            seen.unit_header = total - seen.unit_payload;
        }
        let tick = tick_in(&response.body, "GET /price")?;
        seen.receipt(at, tick);
    }
    seen.wire_bytes = client.bytes_read() + client.bytes_written();
    Ok(seen)
}

/// The tick in the body of an answer to `request`, or an error saying what came instead.
fn tick_in(body: &[u8], request: &str) -> anyhow::Result<TickFields> {
    let text = std::str::from_utf8(body)?;
    TickFields::parse(text)
        .ok_or_else(|| anyhow::anyhow!("{request} answered {text:?}, not a tick"))
}
