//! The **floor**: the least a WebSocket push server can do, written here in ~150 lines of
//! Tokio so the fan-out bench can put tickerlab beside it and say how close to the metal
//! tickerlab is.
//!
//! What a pushed tick costs can be no less than what this server does:
//!
//! 1. **Handshake**: read the HTTP upgrade request up to its blank line, take the
//!    `Sec-WebSocket-Key` header, answer `101 Switching Protocols` with
//!    `Sec-WebSocket-Accept: base64(SHA-1(key + the RFC 6455 GUID))` (tungstenite's
//!    `derive_accept_key`), then one `hello` text frame (the bench's clients wait for one).
//! 2. **Per tick, once**: format the tick JSON (the same fields, shape and size as
//!    tickerlab's `{"type":"tick","symbol":"ACME","price":..,"change":..,"seq":..,"ts":..,
//!    "run":".."}`, so the same clients parse it) and wrap it in **one complete frame**: byte
//!    `0x81` (FIN + opcode 1, text), the payload length (one byte below 126; `126` + 2 bytes
//!    below 64 KiB), then the payload. A server's frames are never masked, so the same bytes
//!    are right for every client. They go into a [`bytes::Bytes`] and through a
//!    `tokio::sync::broadcast` channel: each client gets a reference-counted handle, not a copy.
//! 3. **Per client per tick**: its task wakes on the channel and does one `write_all` of the
//!    shared bytes: one `send` system call, nothing else. No per-client timer, heartbeat,
//!    queue, codec or tracing span.
//!
//! It reads what clients send only to notice that they left: end of stream, an error, or a
//! frame whose first byte says Close (opcode 8), which it answers with an empty Close frame.
//! It does not parse the frames clients send (masking, fragments): the bench's clients send
//! nothing but Close. So it is a floor, not a server to use: no ping/pong, no origin check,
//! no limits, no slow-client policy beyond "a lagging receiver skips ticks" (the broadcast
//! channel's `Lagged`), which the clients see as `seq` gaps.
//!
//! It runs as a child process like the real server (the bench executable with
//! `--floor-child`, see [`super::server::ChildServer::start_floor`]) so that its CPU time and
//! RSS are measured the same way, on a multi-threaded Tokio runtime with one worker per core
//! (tickerlab runs one actix worker per core). With `--pinned` it serves with actix's threading
//! model instead: one single-threaded runtime per core, each socket handed to one of them in
//! turn and kept there ([`pinned_main`]), which is how the bench tells what that model costs
//! apart from everything else tickerlab does. On stdin it answers `stats` with
//! `stats <ticks> <serialisations> <symbols> <open websockets>` and it exits when stdin closes.

use std::io::{self, BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Ticks a connection may fall behind before it skips (as tickerlab, it never queues more).
const BACKLOG: usize = 16;
/// Largest upgrade request accepted.
const MAX_REQUEST: usize = 8 * 1024;

/// The child's side: serve on a free 127.0.0.1 port, print `listening <addr> <pid>`, answer
/// `stats` on stdin, exit when stdin closes.
pub fn child_main(tick_ms: u64, pinned: bool) {
    if pinned {
        return pinned_main(tick_ms);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .enable_all()
        .build()
        .expect("a Tokio runtime for the floor server");
    runtime.block_on(serve(tick_ms));
}

/// The floor with actix's threading model instead of work stealing (`--pinned`):
/// one single-threaded runtime per core, each accepted socket handed to the next one in turn
/// and served there for its life, as actix-server's accept loop hands sockets to its workers.
/// Each worker relays the ticks to its own sockets, as tickerlab's per-worker relay does
/// (`src/feed/local.rs`): one cross-thread wake per worker per tick, then each socket's task
/// woken from its own thread. Beside the work-stealing floor, it tells what the fixed
/// assignment costs.
fn pinned_main(tick_ms: u64) {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the pinned floor's accept runtime");
    let (frames, _) = broadcast::channel::<Bytes>(BACKLOG);
    let open = Arc::new(AtomicU64::new(0));
    let inboxes: Vec<_> = (0..workers)
        .map(|_| {
            let (send, mut receive) = tokio::sync::mpsc::unbounded_channel::<std::net::TcpStream>();
            let (mut ticks, open) = (frames.subscribe(), open.clone());
            std::thread::spawn(move || {
                let worker = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a pinned floor worker");
                let local = tokio::task::LocalSet::new();
                local.block_on(&worker, async move {
                    let (frames, _) = broadcast::channel::<Bytes>(BACKLOG);
                    let relay = frames.clone();
                    tokio::task::spawn_local(async move {
                        loop {
                            match ticks.recv().await {
                                Ok(frame) => {
                                    let _ = relay.send(frame);
                                }
                                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                                Err(broadcast::error::RecvError::Closed) => return,
                            }
                        }
                    });
                    while let Some(stream) = receive.recv().await {
                        let stream = match TcpStream::from_std(stream) {
                            Ok(stream) => stream,
                            Err(error) => {
                                eprintln!("pinned floor: a socket lost: {error}");
                                continue;
                            }
                        };
                        let (frames, open) = (frames.subscribe(), open.clone());
                        tokio::task::spawn_local(async move {
                            open.fetch_add(1, Ordering::Relaxed);
                            let _ = connection(stream, frames, tick_ms).await;
                            open.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                });
            });
            send
        })
        .collect();
    runtime.block_on(serve_with(tick_ms, frames, open, Some(inboxes)));
}

async fn serve(tick_ms: u64) {
    let (frames, _) = broadcast::channel::<Bytes>(BACKLOG);
    serve_with(tick_ms, frames, Arc::new(AtomicU64::new(0)), None).await
}

/// Accepts, ticks and answers `stats`; each socket is served here (work stealing) or, given
/// `inboxes`, handed to the pinned workers in turn.
async fn serve_with(
    tick_ms: u64,
    frames: broadcast::Sender<Bytes>,
    open: Arc<AtomicU64>,
    inboxes: Option<Vec<tokio::sync::mpsc::UnboundedSender<std::net::TcpStream>>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    println!(
        "listening {} {}",
        listener.local_addr().expect("local address"),
        std::process::id()
    );
    let _ = io::stdout().flush();
    let ticks = Arc::new(AtomicU64::new(0));

    let (ticks_seen, open_seen) = (ticks.clone(), open.clone());
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim() == "stats" {
                let ticks = ticks_seen.load(Ordering::Relaxed);
                let open = open_seen.load(Ordering::Relaxed);
                // Serialisations = ticks: one symbol, formatted once per tick.
                println!("stats {ticks} {ticks} 1 {open}");
                let _ = io::stdout().flush();
            }
        }
        // exit() rather than a return from main: the runtime's threads would keep serving.
        std::process::exit(0);
    });

    let publisher = frames.clone();
    tokio::spawn(async move {
        let mut walk = Walk::new();
        let mut interval = tokio::time::interval(Duration::from_millis(tick_ms));
        loop {
            interval.tick().await;
            let frame = text_frame(walk.next_tick().as_bytes());
            ticks.fetch_add(1, Ordering::Relaxed);
            // No receivers is not an error: nobody is connected yet.
            let _ = publisher.send(frame);
        }
    });

    let mut next = 0;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if let Some(inboxes) = &inboxes {
            let handed = stream.into_std().map_err(|e| e.to_string()).and_then(|s| {
                inboxes[next % inboxes.len()]
                    .send(s)
                    .map_err(|e| e.to_string())
            });
            if let Err(error) = handed {
                eprintln!("pinned floor: a socket lost: {error}");
            }
            next += 1;
            continue;
        }
        let (frames, open) = (frames.subscribe(), open.clone());
        tokio::spawn(async move {
            open.fetch_add(1, Ordering::Relaxed);
            let _ = connection(stream, frames, tick_ms).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// One client: handshake, hello, then the shared frame of every tick until it leaves.
async fn connection(
    mut stream: TcpStream,
    mut frames: broadcast::Receiver<Bytes>,
    tick_ms: u64,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let key = read_upgrade_key(&mut stream).await?;
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream.write_all(answer.as_bytes()).await?;
    let hello = format!(
        r#"{{"type":"hello","protocol":1,"symbols":["ACME"],"subscribed":["ACME"],"tick_ms":{tick_ms}}}"#
    );
    stream.write_all(&text_frame(hello.as_bytes())).await?;

    let (mut reader, mut writer) = stream.into_split();
    let mut incoming = [0u8; 512];
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Ok(frame) => writer.write_all(&frame).await?,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            read = reader.read(&mut incoming) => match read {
                Ok(0) | Err(_) => return Ok(()),
                // Opcode 8 is Close: answer it (an empty Close frame) and leave.
                Ok(_) if incoming[0] & 0x0f == 0x8 => {
                    let _ = writer.write_all(&[0x88, 0x00]).await;
                    return Ok(());
                }
                Ok(_) => {}
            },
        }
    }
}

/// Reads the upgrade request up to its blank line and returns its `Sec-WebSocket-Key`.
async fn read_upgrade_key(stream: &mut TcpStream) -> io::Result<String> {
    let mut request = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        if request.len() > MAX_REQUEST {
            return Err(io::Error::other("upgrade request too large"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&request);
    let key = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_owned())
    });
    match key {
        Some(key) => Ok(key),
        None => {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            Err(io::Error::other("not a WebSocket upgrade"))
        }
    }
}

/// One complete, unmasked, final text frame around `payload` (RFC 6455 section 5.2).
pub fn text_frame(payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(payload.len() + 10);
    frame.put_u8(0x81);
    match payload.len() {
        n if n < 126 => frame.put_u8(n as u8),
        n if n <= u16::MAX as usize => {
            frame.put_u8(126);
            frame.put_u16(n as u16);
        }
        n => {
            frame.put_u8(127);
            frame.put_u64(n as u64);
        }
    }
    frame.put_slice(payload);
    frame.freeze()
}

/// A random walk in cents with a tiny xorshift generator: prices that look like tickerlab's
/// (`101.26`, two decimals) so the JSON has the same size.
struct Walk {
    state: u64,
    cents: i64,
    seq: u64,
    run: u64,
}

impl Walk {
    fn new() -> Walk {
        let now_ms = epoch_ms() as u64;
        Walk {
            state: 0x9e37_79b9_7f4a_7c15,
            cents: 10_000,
            seq: 0,
            // The same layout as tickerlab's run id: start time in ms, then 16 random bits.
            run: ((now_ms & 0xffff_ffff_ffff) << 16) | 0x385b,
        }
    }

    /// The next tick's JSON, in tickerlab's field order.
    fn next_tick(&mut self) -> String {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let step = (self.state % 41) as i64 - 20;
        self.cents = (self.cents + step).max(100);
        self.seq += 1;
        let (price, change) = (self.cents as f64 / 100.0, step as f64 / 100.0);
        let ts = epoch_ms();
        format!(
            r#"{{"type":"tick","symbol":"ACME","price":{price:?},"change":{change:?},"seq":{},"ts":{ts:?},"run":"{:016x}"}}"#,
            self.seq, self.run
        )
    }
}

/// Unix epoch milliseconds with a microsecond fraction, as tickerlab writes `ts`.
fn epoch_ms() -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_micros() as f64 / 1000.0
}
