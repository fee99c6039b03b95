//! The WebSocket clients of a step: connected a hundred at a time, each reading every tick
//! and recording its delay, its `seq` gaps and its bytes while the step is measuring, and the
//! delay of every tick it ever received with the time it came, for the step's timeline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::support::counting::Counted;
use crate::support::tick_fields::{TickFields, now_ms};

/// Clients connecting at the same time; more would only overflow the listen backlog.
pub const CONNECT_CONCURRENCY: usize = 100;
/// How long the clients of a step may take to connect before the step is reported as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);

// Phases a client goes through; it records while `MEASURING`, and apart while `TRANSIENT`
// (the first seconds after the last client joined, when the start-up transient is asked for).
/// Connecting, settling, or done: the client records nothing.
pub const WARMING: u8 = 0;
/// The step's measuring window: the client records.
pub const MEASURING: u8 = 1;
/// The start-up transient: the client records apart.
pub const TRANSIENT: u8 = 2;

/// What one WebSocket client saw while the step was measuring.
#[derive(Default)]
pub struct ClientRecord {
    pub delays: Vec<f32>,
    pub messages: u64,
    pub lost: u64,
    /// Bytes this client received and sent while measuring: frames, headers, pongs.
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Delays and losses while `TRANSIENT`.
    pub transient_delays: Vec<f32>,
    pub transient_lost: u64,
    /// Every tick received but the first, whatever the phase: (seconds since the crowd's
    /// `epoch` it arrived at, its delay in ms). What `timeline` cuts into seconds.
    pub arrivals: Vec<(f32, f32)>,
    /// Seconds since the `epoch` when this client got its hello (`None`: it never did).
    pub connected_at: Option<f32>,
    /// Seconds since the `epoch` when the server closed or broke this connection before the
    /// bench stopped it (`None`: it stayed until the end).
    pub left_at: Option<f32>,
}

/// The clients of one step, connected and reading, and what they share with the bench.
pub struct Crowd {
    pub phase: Arc<AtomicU8>,
    /// When the first client started to connect: time zero of the step's timeline.
    pub epoch: Instant,
    connected: Arc<AtomicUsize>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<ClientRecord>>,
}

impl Crowd {
    /// Starts `n` clients against `addr` and waits until all are connected (or the timeout).
    pub async fn connect(addr: SocketAddr, n: usize) -> Crowd {
        let phase = Arc::new(AtomicU8::new(WARMING));
        let connected = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let epoch = Instant::now();
        let tasks = (0..n)
            .map(|_| {
                let (phase, connected, stop, gate) =
                    (phase.clone(), connected.clone(), stop.clone(), gate.clone());
                tokio::spawn(async move {
                    let ws = {
                        let _permit = gate.acquire().await;
                        match connect(addr).await {
                            Ok(ws) => ws,
                            Err(e) => {
                                eprintln!("client could not connect: {e}");
                                return ClientRecord::default();
                            }
                        }
                    };
                    connected.fetch_add(1, Ordering::Relaxed);
                    let connected_at = epoch.elapsed().as_secs_f32();
                    let mut record = read_ticks(ws, &phase, &stop, epoch).await;
                    record.connected_at = Some(connected_at);
                    record
                })
            })
            .collect();
        let crowd = Crowd {
            phase,
            epoch,
            connected,
            stop,
            tasks,
        };
        wait_connected(&crowd.connected, n, &crowd.tasks).await;
        crowd
    }

    /// How many clients have connected so far.
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Stops every client and collects what they recorded.
    pub async fn finish(self) -> Vec<ClientRecord> {
        self.stop.cancel();
        let mut records = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            records.push(task.await.unwrap_or_default());
        }
        records
    }
}

/// The measuring window of a step: `phase` is `MEASURING` for `secs`, then `WARMING` again.
/// Returns the seconds it really lasted.
pub async fn measure_for(phase: &AtomicU8, secs: f64) -> f64 {
    phase.store(MEASURING, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    phase.store(WARMING, Ordering::Relaxed);
    started.elapsed().as_secs_f64()
}

/// Waits until `n` clients have counted themselves `connected`, or every client task has
/// ended, or [`CONNECT_TIMEOUT`] has passed.
pub async fn wait_connected<T>(connected: &AtomicUsize, n: usize, tasks: &[JoinHandle<T>]) {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    while connected.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        if tasks.iter().all(|t| t.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client's WebSocket, over a stream that counts the bytes crossing it.
type Ws = tokio_tungstenite::WebSocketStream<Counted<TcpStream>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Ws> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tcp = Counted::new(tcp);
    // Small client buffers (tungstenite's defaults are 128 KiB each): ticks are ~100 bytes,
    // and 5000 clients with default buffers would cost this process gigabytes.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let url = format!("ws://{addr}/ws");
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::client_async_with_config(url, tcp, Some(config)),
    )
    .await??;
    // The first message is hello; wait for it so "connected" means "session running".
    match tokio::time::timeout(Duration::from_secs(30), ws.next()).await? {
        Some(Ok(Message::Text(_))) => Ok(ws),
        other => anyhow::bail!("expected hello, got {other:?}"),
    }
}

/// Reads ticks until `stop`, recording delay and `seq` gaps while the step is measuring (and
/// apart while `TRANSIENT`) and every tick's arrival since `epoch`, then closes the WebSocket
/// as a browser leaving a page does.
async fn read_ticks(
    mut ws: Ws,
    phase: &AtomicU8,
    stop: &CancellationToken,
    epoch: Instant,
) -> ClientRecord {
    let mut record = ClientRecord::default();
    let mut last_seq: Option<u64> = None;
    let (mut read, mut written) = (ws.get_ref().bytes_read(), ws.get_ref().bytes_written());
    loop {
        let message = tokio::select! {
            message = ws.next() => message,
            _ = stop.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                break;
            }
        };
        // The bytes that arrived (or left: pongs) since the last message are this one's.
        let wire = ws.get_ref();
        if phase.load(Ordering::Relaxed) == MEASURING {
            record.bytes_read += wire.bytes_read() - read;
            record.bytes_written += wire.bytes_written() - written;
        }
        (read, written) = (wire.bytes_read(), wire.bytes_written());
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => {
                record.left_at = Some(epoch.elapsed().as_secs_f32());
                break;
            }
        };
        let Some(tick) = TickFields::parse(&text) else {
            continue;
        };
        let gap = last_seq.map_or(0, |last| tick.seq.saturating_sub(last + 1));
        let delay = (now_ms() - tick.ts) as f32;
        // Not the first tick: tickerlab sends its current price the moment a client
        // subscribes, made up to a tick earlier, so its age is not a delivery delay. (The
        // floor's first tick is a fresh one; skipped alike, one per client.)
        if last_seq.is_some() {
            record.arrivals.push((epoch.elapsed().as_secs_f32(), delay));
        }
        match phase.load(Ordering::Relaxed) {
            MEASURING => {
                record.delays.push(delay);
                record.messages += 1;
                record.lost += gap;
            }
            TRANSIENT => {
                record.transient_delays.push(delay);
                record.transient_lost += gap;
            }
            _ => {}
        }
        last_seq = Some(tick.seq);
    }
    record
}
