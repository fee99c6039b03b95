//! The wire tap (`--lab-tap`): what an observer on the path between a browser and the server
//! sees, printed as it crosses the simulated network.
//!
//! Anyone on the network a packet crosses (the café's Wi-Fi, a corporate proxy, an ISP) can
//! read it, and a middlebox can change it. The tap makes that concrete. Over `ws://` it
//! decodes what it sees: the HTTP upgrade request and its `101` answer in plain text, then
//! every WebSocket frame with its header fields (FIN, opcode, the mask bit, the length, the
//! masking key) and its payload, unmasked, because the key travels in the frame for anyone
//! to apply. Masking (RFC 6455 section 5.3) is not secrecy: it stops a client's bytes from
//! looking like HTTP to a confused proxy cache. Over `wss://` the same tap sees TLS records
//! (RFC 8446 section 5.1): a type, a version, a length and ciphertext; the prices are not
//! in it.
//!
//! The tap only watches. It decodes a copy of each chunk the relay forwards, per connection
//! and direction, and keeps at most one unfinished frame header or HTTP head between chunks
//! ([`MAX_PENDING`]); a payload is shown up to [`PREVIEW`] bytes and skipped after that.
//!
//! Nor does it wait for whoever reads its lines. Writing to standard output blocks when the
//! reader stops (a pipe into a paused `less` fills in 64 KiB), and the relay must not block
//! with it. So the relay only queues each line, up to [`MAX_QUEUED`] bytes, and a thread of
//! the tap's own writes them out; lines that find the queue full are dropped, and the next
//! line written says how many.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;

/// The most bytes the tap keeps while it waits for the rest of a head or a frame header.
/// Past it, the tap stops decoding that direction and says so.
pub const MAX_PENDING: usize = 8 * 1024;

/// How much of a payload the tap prints.
pub const PREVIEW: usize = 160;

/// The most bytes of lines waiting for standard output; past it, new lines are dropped.
pub const MAX_QUEUED: usize = 256 * 1024;

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the browser to the server.
    ToServer,
    /// From the server to the browser.
    ToClient,
}

impl Direction {
    fn arrow(self) -> &'static str {
        match self {
            Direction::ToServer => "client -> server",
            Direction::ToClient => "server -> client",
        }
    }
}

/// What the tap expects next on its direction.
#[derive(Debug)]
enum State {
    /// Nothing seen yet: the first byte tells TLS (a handshake record, 0x16) from HTTP.
    Start,
    /// An HTTP/1.1 head, up to its blank line.
    Head,
    /// The rest of an HTTP body of known length.
    Body(u64),
    /// A body of unknown length (chunked, or an event stream): shown as it comes.
    Stream,
    /// WebSocket frames; `skip` payload bytes of the current frame are still to come.
    Frames { skip: u64 },
    /// TLS records; `skip` bytes of the current record are still to come.
    Tls { skip: u64 },
    /// The tap gave up on this direction (a head or header beyond [`MAX_PENDING`]).
    Lost,
}

/// The tap's way to standard output: a bounded queue of lines and the thread that writes
/// them, started by the first line.
struct Printer {
    lines: mpsc::Sender<String>,
    /// Bytes queued and not written yet.
    queued: AtomicUsize,
    /// Lines dropped since the last line written.
    dropped: AtomicU64,
}

impl Printer {
    fn get() -> &'static Printer {
        static PRINTER: OnceLock<Printer> = OnceLock::new();
        PRINTER.get_or_init(|| {
            let (lines, queue) = mpsc::channel::<String>();
            let spawned = std::thread::Builder::new()
                .name("tickerlab-tap".into())
                .spawn(move || {
                    let printer = Printer::get();
                    for line in queue {
                        let dropped = printer.dropped.swap(0, Ordering::Relaxed);
                        let mut out = std::io::stdout().lock();
                        if dropped > 0 {
                            let _ = writeln!(
                                out,
                                "tap: {dropped} lines not shown: standard output was not read \
                                 as fast as the tap wrote"
                            );
                        }
                        // A closed stdout (`| head`) is not an error: the lines go nowhere.
                        let _ = out.write_all(line.as_bytes());
                        drop(out);
                        printer.queued.fetch_sub(line.len(), Ordering::Relaxed);
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "the wire tap's printer did not start; it shows nothing");
            }
            Printer {
                lines,
                queued: AtomicUsize::new(0),
                dropped: AtomicU64::new(0),
            }
        })
    }

    /// Queues `line` for standard output, or drops it (and counts it) when [`MAX_QUEUED`]
    /// bytes are waiting already.
    fn print(&self, line: String) {
        let len = line.len();
        if self.queued.fetch_add(len, Ordering::Relaxed) + len > MAX_QUEUED {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.lines.send(line).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
        }
    }
}

/// One direction of one connection, decoded as it passes.
#[derive(Debug)]
pub struct Tap {
    connection: u64,
    direction: Direction,
    state: State,
    /// Bytes of an unfinished head or frame header.
    pending: Vec<u8>,
    /// The other direction switches to frames after a `101`; this one after it sent the
    /// upgrade request (a request with `Upgrade: websocket`).
    upgrading: bool,
}

impl Tap {
    /// A tap on `direction` of relayed connection number `connection`.
    pub fn new(connection: u64, direction: Direction) -> Tap {
        Tap {
            connection,
            direction,
            state: State::Start,
            pending: Vec::new(),
            upgrading: false,
        }
    }

    /// Decodes `bytes` (the next chunk on this direction) and prints what an observer sees,
    /// one line per thing, to standard output: queued for the tap's printer thread (see the
    /// module's text), so this never blocks.
    pub fn observe(&mut self, bytes: &[u8]) {
        for line in self.decode(bytes) {
            Printer::get().print(format!(
                "tap #{} {}: {line}\n",
                self.connection,
                self.direction.arrow()
            ));
        }
    }

    /// [`Tap::observe`] without the printing: the lines it would print.
    pub fn decode(&mut self, mut bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        while !bytes.is_empty() {
            let used = match self.state {
                State::Start => {
                    self.state = if bytes[0] == 0x16 {
                        lines.push("TLS: what follows is encrypted".into());
                        State::Tls { skip: 0 }
                    } else {
                        State::Head
                    };
                    0
                }
                State::Head => self.head(bytes, &mut lines),
                State::Body(left) => {
                    let n = left.min(bytes.len() as u64);
                    self.state = if n == left {
                        State::Head
                    } else {
                        State::Body(left - n)
                    };
                    n as usize
                }
                State::Stream => {
                    lines.push(format!("body: {}", preview(bytes)));
                    bytes.len()
                }
                State::Frames { skip: 0 } => self.frame(bytes, &mut lines),
                State::Frames { skip } => {
                    let n = skip.min(bytes.len() as u64);
                    self.state = State::Frames { skip: skip - n };
                    n as usize
                }
                State::Tls { skip: 0 } => self.record(bytes, &mut lines),
                State::Tls { skip } => {
                    let n = skip.min(bytes.len() as u64);
                    self.state = State::Tls { skip: skip - n };
                    n as usize
                }
                State::Lost => bytes.len(),
            };
            bytes = &bytes[used..];
        }
        lines
    }

    /// Collects `bytes` into `pending` until `complete` says how long the whole item is;
    /// returns the item and how many of `bytes` it used, or `None` (all of `bytes` used).
    fn gather(
        &mut self,
        bytes: &[u8],
        complete: impl Fn(&[u8]) -> Option<usize>,
        lines: &mut Vec<String>,
    ) -> (Option<Vec<u8>>, usize) {
        let before = self.pending.len();
        self.pending.extend_from_slice(bytes);
        match complete(&self.pending) {
            Some(len) => {
                let item: Vec<u8> = self.pending.drain(..len).collect();
                self.pending.clear();
                (Some(item), len - before)
            }
            None => {
                if self.pending.len() > MAX_PENDING {
                    lines.push(format!(
                        "more than {MAX_PENDING} bytes without an end: not decoded"
                    ));
                    self.state = State::Lost;
                    self.pending = Vec::new();
                }
                (None, bytes.len())
            }
        }
    }

    /// An HTTP/1.1 head: its lines, then what comes after it.
    fn head(&mut self, bytes: &[u8], lines: &mut Vec<String>) -> usize {
        let end = |b: &[u8]| b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
        let (head, used) = self.gather(bytes, end, lines);
        let Some(head) = head else { return used };
        let text = String::from_utf8_lossy(&head);
        let mut length = 0;
        let mut chunked = false;
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            lines.push(format!("http: {line}"));
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
            self.upgrading |= lower.starts_with("upgrade:") && lower.contains("websocket");
        }
        let switching = text.starts_with("HTTP/1.1 101");
        self.state = if switching || (self.upgrading && self.direction == Direction::ToServer) {
            lines.push("websocket: from here on, frames".into());
            State::Frames { skip: 0 }
        } else if chunked || text.contains("text/event-stream") {
            State::Stream
        } else if length > 0 {
            State::Body(length)
        } else {
            State::Head
        };
        used
    }

    /// A WebSocket frame (RFC 6455 section 5.2): its header fields and payload.
    fn frame(&mut self, bytes: &[u8], lines: &mut Vec<String>) -> usize {
        let (frame, used) = self.gather(bytes, frame_length_known, lines);
        let Some(frame) = frame else { return used };
        lines.push(describe_frame(&frame));
        // The payload past the preview passes unread.
        let (header, payload) = frame_header(&frame).expect("a complete header");
        let skip = payload - (frame.len() - header) as u64;
        self.state = State::Frames { skip };
        used
    }

    /// A TLS record header (RFC 8446 section 5.1), and a glimpse of its ciphertext.
    fn record(&mut self, bytes: &[u8], lines: &mut Vec<String>) -> usize {
        let (header, used) = self.gather(bytes, |b| (b.len() >= 5).then_some(5), lines);
        let Some(header) = header else { return used };
        let kind = match header[0] {
            20 => "change_cipher_spec",
            21 => "alert",
            22 => "handshake",
            23 => "application_data",
            _ => "unknown",
        };
        let length = u16::from_be_bytes([header[3], header[4]]);
        let rest = &bytes[used..];
        let glimpse: String = rest.iter().take(12).fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x} ");
            s
        });
        lines.push(format!(
            "tls record: {kind}, version {:02x}{:02x}, {length} bytes: {glimpse}...",
            header[1], header[2]
        ));
        self.state = State::Tls {
            skip: u64::from(length),
        };
        used
    }
}

/// How long the frame at the start of `b` is up to its payload (header, extended length,
/// masking key), with at most [`PREVIEW`] bytes of payload; `None` until that much is there.
fn frame_length_known(b: &[u8]) -> Option<usize> {
    let (header, payload) = frame_header(b)?;
    let wanted = header + usize::try_from(payload).unwrap_or(usize::MAX).min(PREVIEW);
    (b.len() >= wanted).then_some(wanted)
}

/// The header length and payload length of the frame at the start of `b`, once known.
fn frame_header(b: &[u8]) -> Option<(usize, u64)> {
    let second = *b.get(1)?;
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    let (extended, payload) = match second & 0x7f {
        126 => (
            2,
            u64::from(u16::from_be_bytes(b.get(2..4)?.try_into().ok()?)),
        ),
        127 => (8, u64::from_be_bytes(b.get(2..10)?.try_into().ok()?)),
        n => (0, u64::from(n)),
    };
    Some((2 + extended + mask, payload))
}

/// One line for a frame whose header and (up to [`PREVIEW`] bytes of) payload are in `b`.
fn describe_frame(b: &[u8]) -> String {
    let (header, payload) = frame_header(b).expect("a complete header");
    let fin = b[0] >> 7;
    let opcode = match b[0] & 0x0f {
        0 => "continuation",
        1 => "text",
        2 => "binary",
        8 => "close",
        9 => "ping",
        10 => "pong",
        _ => "reserved",
    };
    let masked = b[1] & 0x80 != 0;
    let mut shown: Vec<u8> = b[header..].to_vec();
    let mut line = format!(
        "frame FIN={fin} opcode={opcode} MASK={} length={payload}",
        u8::from(masked)
    );
    if masked {
        let key = &b[header - 4..header];
        let _ = write!(
            line,
            " key={:02x}{:02x}{:02x}{:02x} as sent:",
            key[0], key[1], key[2], key[3]
        );
        // The payload as it crossed the wire, scrambled by the key that travels with it.
        for byte in shown.iter().take(8) {
            let _ = write!(line, " {byte:02x}");
        }
        line.push_str(" ...");
        for (i, byte) in shown.iter_mut().enumerate() {
            *byte ^= key[i % 4];
        }
        line.push_str(" payload (unmasked with that key)");
    } else {
        line.push_str(" payload");
    }
    let _ = write!(line, ": {}", preview(&shown));
    if payload > shown.len() as u64 {
        line.push_str(" ...");
    }
    line
}

/// Up to [`PREVIEW`] bytes as text, with control characters escaped.
fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(PREVIEW)]);
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client text frame of `payload` with key `37 fa 21 3d`.
    fn masked(payload: &[u8]) -> Vec<u8> {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = vec![0x81, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        frame
    }

    #[test]
    fn an_upgrade_then_a_masked_frame_split_across_chunks_is_decoded() {
        let mut tap = Tap::new(1, Direction::ToServer);
        let mut wire = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n".to_vec();
        wire.extend(masked(br#"{"type":"ping"}"#));
        let mut lines = Vec::new();
        for chunk in wire.chunks(7) {
            lines.extend(tap.decode(chunk));
        }
        assert!(
            lines.contains(&"http: GET /ws HTTP/1.1".to_string()),
            "{lines:?}"
        );
        let frame = lines.last().unwrap();
        assert!(
            frame.starts_with(
                "frame FIN=1 opcode=text MASK=1 length=15 key=37fa213d as sent: 4c d8 55 44"
            ),
            "{frame}"
        );
        assert!(frame.ends_with(r#": {"type":"ping"}"#), "{frame}");
    }

    #[test]
    fn server_frames_after_101_are_unmasked_and_long_payloads_are_cut() {
        let mut tap = Tap::new(1, Direction::ToClient);
        let mut wire = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        let payload = vec![b'x'; 300];
        wire.extend([0x81, 126, 1, 44]);
        wire.extend(&payload);
        wire.extend([0x89, 0]);
        let lines = tap.decode(&wire);
        assert!(
            lines.iter().any(|l| l
                .starts_with("frame FIN=1 opcode=text MASK=0 length=300 payload: xxx")
                && l.ends_with(" ...")),
            "{lines:?}"
        );
        assert_eq!(
            lines.last().unwrap(),
            "frame FIN=1 opcode=ping MASK=0 length=0 payload: "
        );
    }

    #[test]
    fn tls_shows_records_not_their_contents() {
        let mut tap = Tap::new(2, Direction::ToClient);
        let mut wire = vec![0x16, 3, 3, 0, 2, 0xaa, 0xbb];
        wire.extend([23, 3, 3, 0, 4, 1, 2, 3, 4]);
        let lines = tap.decode(&wire);
        assert_eq!(lines[0], "TLS: what follows is encrypted");
        assert!(
            lines[1].starts_with("tls record: handshake, version 0303, 2 bytes: aa bb"),
            "{lines:?}"
        );
        assert!(
            lines[2]
                .starts_with("tls record: application_data, version 0303, 4 bytes: 01 02 03 04"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_head_that_never_ends_is_given_up_within_the_bound() {
        let mut tap = Tap::new(3, Direction::ToServer);
        let lines = tap.decode(&vec![b'a'; MAX_PENDING + 10]);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(tap.pending.capacity() == 0 && matches!(tap.state, State::Lost));
    }
}
