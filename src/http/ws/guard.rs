//! The frame guard: a watchman on the raw bytes between the TCP connection and actix-ws.
//!
//! actix-ws parses WebSocket frames for us, but it judges a frame only once the *whole*
//! frame is in memory: a header announcing 1 GiB makes it buffer up to 1 GiB before it
//! compares the length with the limit. A WebSocket frame header says everything needed to
//! refuse early (RFC 6455 section 5.2):
//!
//! ```text
//!  byte 0: FIN | RSV1 | RSV2 | RSV3 | opcode (4 bits)
//!  byte 1: MASK | length (7 bits: 0-125, or 126 = 16-bit length follows, 127 = 64-bit)
//!  then:   the extended length (0, 2 or 8 bytes), the masking key (4 bytes, client frames)
//!  then:   the payload, `length` bytes
//! ```
//!
//! [`FrameGuard`] wraps the request's byte stream. As bytes pass through it, it reads each
//! frame *header* (at most 14 bytes, kept aside) and then counts off the payload without
//! looking at it. It stops the stream with a [`Violation`] the moment a header breaks a rule:
//!
//! * a length over `--max-message-bytes` (the session closes with 1009) before a single
//!   payload byte is buffered, so memory per connection stays bounded by the limit;
//! * a reserved bit (RSV1-3) set, when no extension was negotiated (1002, naming the bit), or
//!   a reserved opcode (1002; actix-ws refuses those too, but drops the good frames read
//!   with it, while the guard lets them be answered first);
//! * one frame too many for `--max-messages-per-sec` (1008). *Every* frame counts: a pong
//!   nobody asked for or an empty continuation costs the server as much work as a message.
//!
//! Everything else (opcodes, masking, fragmentation, UTF-8) is still actix-ws's job.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use actix_web::dev;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use actix_ws::{CloseCode, CloseReason};
use futures_util::Stream;
use tokio::time::Instant;

use crate::http::rate_limit::RateLimit;

/// The longest frame header: 2 bytes, an 8-byte length and a 4-byte masking key.
const MAX_HEADER: usize = 14;

/// A rule a client's frame header broke. Each maps to one close frame ([`Violation::close`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Violation {
    /// The header announced a payload longer than the limit.
    #[error("a frame announced {announced} bytes, over the limit of {limit}")]
    TooBig {
        /// The length the header announced.
        announced: u64,
        /// `--max-message-bytes`.
        limit: usize,
    },
    /// RSV1, RSV2 or RSV3 was set, but this server negotiates no extension that defines them.
    #[error("reserved bit {0} set without a negotiated extension")]
    ReservedBit(&'static str),
    /// An opcode RFC 6455 reserves for future use (3-7, 11-15).
    #[error("reserved opcode {0}")]
    ReservedOpcode(u8),
    /// More frames than `--max-messages-per-sec` allows.
    #[error("too many frames: at most {0} per second")]
    TooFast(f64),
}

impl Violation {
    /// The close frame that answers this violation (RFC 6455 section 7.4.1 codes).
    pub fn close(&self) -> CloseReason {
        match self {
            Violation::TooBig { limit, .. } => too_big(*limit),
            Violation::ReservedBit(bit) => (
                CloseCode::Protocol,
                format!("reserved bit {bit} set: no extension was negotiated"),
            )
                .into(),
            Violation::ReservedOpcode(opcode) => (
                CloseCode::Protocol,
                format!("reserved opcode {opcode}: use 0-2 (data) or 8-10 (control)"),
            )
                .into(),
            Violation::TooFast(per_sec) => (
                CloseCode::Policy,
                format!("too many messages: at most {per_sec} per second"),
            )
                .into(),
        }
    }
}

/// The close frame for a message over `--max-message-bytes` (1009, naming the limit).
pub fn too_big(limit: usize) -> CloseReason {
    (
        CloseCode::Size,
        format!("message larger than {limit} bytes"),
    )
        .into()
}

/// Where the guard leaves its verdict for the session: actix-ws turns the stream's error into
/// a generic I/O error, so the session reads *why* here.
pub type ViolationCell = Arc<OnceLock<Violation>>;

/// Where the guard is within the byte stream.
#[derive(Debug)]
enum Position {
    /// Collecting a frame header: the bytes seen so far.
    Header { bytes: [u8; MAX_HEADER], len: usize },
    /// Counting off this many payload bytes of the current frame.
    Payload { remaining: u64 },
    /// A rule was broken; the frames before the bad one were handed on, and the error comes
    /// once actix-ws has had a turn to parse them (`yielded`: that turn was given).
    Failing { yielded: bool },
    /// A rule was broken: the stream has ended.
    Stopped,
}

/// The limits the guard enforces, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `--max-message-bytes`: the largest payload a frame may announce.
    pub max_frame_bytes: usize,
    /// `--max-messages-per-sec`: frames of any kind per second (bursts of twice that).
    pub frames_per_sec: u32,
}

/// The request's byte stream with every frame header checked as it passes.
pub struct FrameGuard {
    inner: dev::Payload,
    position: Position,
    limits: Limits,
    rate: RateLimit,
    verdict: ViolationCell,
}

impl FrameGuard {
    /// Wraps `inner` (the request payload, i.e. the client's WebSocket bytes).
    pub fn new(inner: dev::Payload, limits: Limits) -> FrameGuard {
        FrameGuard {
            inner,
            position: Position::Header {
                bytes: [0; MAX_HEADER],
                len: 0,
            },
            limits,
            rate: RateLimit::new(limits.frames_per_sec),
            verdict: ViolationCell::default(),
        }
    }

    /// Where this guard will record its [`Violation`], if there is one.
    pub fn verdict(&self) -> ViolationCell {
        self.verdict.clone()
    }

    /// Follows the frame structure through one chunk; the first broken rule, if any, with the
    /// number of bytes of `chunk` before the header that broke it (the good frames before it).
    fn inspect(&mut self, chunk: &[u8], now: Instant) -> Result<(), (usize, Violation)> {
        let total = chunk.len();
        let mut chunk = chunk;
        let mut header_start = 0;
        while !chunk.is_empty() {
            match &mut self.position {
                Position::Stopped | Position::Failing { .. } => return Ok(()),
                Position::Payload { remaining } => {
                    let skip = (*remaining).min(chunk.len() as u64);
                    *remaining -= skip;
                    chunk = &chunk[skip as usize..];
                    if *remaining == 0 {
                        self.position = Position::Header {
                            bytes: [0; MAX_HEADER],
                            len: 0,
                        };
                    }
                }
                Position::Header { bytes, len } => {
                    if *len == 0 {
                        header_start = total - chunk.len();
                    }
                    bytes[*len] = chunk[0];
                    *len += 1;
                    chunk = &chunk[1..];
                    if let Some(header) = Header::parse(&bytes[..*len]) {
                        self.check(&header, now).map_err(|v| (header_start, v))?;
                        self.position = match header.payload_len {
                            0 => Position::Header {
                                bytes: [0; MAX_HEADER],
                                len: 0,
                            },
                            remaining => Position::Payload { remaining },
                        };
                    }
                }
            }
        }
        Ok(())
    }

    /// The rules one complete header must obey.
    fn check(&mut self, header: &Header, now: Instant) -> Result<(), Violation> {
        if let Some(bit) = header.reserved_bit() {
            return Err(Violation::ReservedBit(bit));
        }
        let opcode = header.first & 0x0f;
        if matches!(opcode, 3..=7 | 11..=15) {
            return Err(Violation::ReservedOpcode(opcode));
        }
        if header.payload_len > self.limits.max_frame_bytes as u64 {
            return Err(Violation::TooBig {
                announced: header.payload_len,
                limit: self.limits.max_frame_bytes,
            });
        }
        if !self.rate.allow(now) {
            return Err(Violation::TooFast(self.rate.per_sec()));
        }
        Ok(())
    }
}

impl Stream for FrameGuard {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.position {
            Position::Stopped => return Poll::Ready(None),
            Position::Failing { yielded: false } => {
                // actix-ws reads until `Pending` before it parses, and drops what it holds
                // when the stream errors: one `Pending` lets it answer the good frames first.
                this.position = Position::Failing { yielded: true };
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Position::Failing { yielded: true } => {
                this.position = Position::Stopped;
                let text = this
                    .verdict
                    .get()
                    .map(Violation::to_string)
                    .unwrap_or_default();
                return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::other(text)))));
            }
            Position::Header { .. } | Position::Payload { .. } => {}
        }
        let chunk = match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => chunk,
            other => return other,
        };
        match this.inspect(&chunk, Instant::now()) {
            Ok(()) => Poll::Ready(Some(Ok(chunk))),
            Err((good, violation)) => {
                let _ = this.verdict.set(violation);
                // Not one byte of the bad frame goes on; the frames before it do.
                this.position = Position::Failing { yielded: false };
                if good == 0 {
                    Pin::new(this).poll_next(cx)
                } else {
                    Poll::Ready(Some(Ok(chunk.slice(..good))))
                }
            }
        }
    }
}

/// A complete frame header, as far as the guard needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    first: u8,
    payload_len: u64,
}

impl Header {
    /// The header at the start of `bytes` once all of it is there, else `None` (read more).
    fn parse(bytes: &[u8]) -> Option<Header> {
        let (&first, rest) = bytes.split_first()?;
        let (&second, rest) = rest.split_first()?;
        let masked = second & 0x80 != 0;
        let mask_len = if masked { 4 } else { 0 };
        let (payload_len, extended) = match second & 0x7f {
            126 => (
                u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
                2,
            ),
            127 => (u64::from_be_bytes(rest.get(..8)?.try_into().ok()?), 8),
            n => (u64::from(n), 0),
        };
        // Only complete once the masking key is there too.
        (rest.len() >= extended + mask_len).then_some(Header { first, payload_len })
    }

    /// The name of the first reserved bit that is set, if any.
    fn reserved_bit(&self) -> Option<&'static str> {
        [(0x40, "RSV1"), (0x20, "RSV2"), (0x10, "RSV3")]
            .into_iter()
            .find(|(bit, _)| self.first & bit != 0)
            .map(|(_, name)| name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn guard(max: usize, per_sec: u32) -> FrameGuard {
        FrameGuard::new(
            dev::Payload::None,
            Limits {
                max_frame_bytes: max,
                frames_per_sec: per_sec,
            },
        )
    }

    fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![first];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[1, 2, 3, 4]);
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn frames_pass_whole_or_byte_by_byte() {
        let mut stream = masked_frame(0x81, b"hello");
        stream.extend(masked_frame(0x82, &[7; 300]));
        stream.extend(masked_frame(0x8a, b""));
        stream.extend(masked_frame(0x81, &[b'x'; 70_000]));
        let now = Instant::now();
        assert_eq!(guard(100_000, 100).inspect(&stream, now), Ok(()));
        let mut g = guard(100_000, 100);
        for byte in &stream {
            assert_eq!(g.inspect(std::slice::from_ref(byte), now), Ok(()));
        }
        assert!(matches!(g.position, Position::Header { len: 0, .. }));
    }

    #[test]
    fn an_announced_gigabyte_is_refused_from_its_header_alone() {
        // 0x81 0xFF + 64-bit length: the header alone, no payload at all.
        let mut header = vec![0x81, 0xff];
        header.extend_from_slice(&(1u64 << 30).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        let verdict = guard(4096, 100).inspect(&header, Instant::now());
        let too_big = Violation::TooBig {
            announced: 1 << 30,
            limit: 4096,
        };
        assert_eq!(verdict, Err((0, too_big.clone())));
        let close = too_big.close();
        assert_eq!(close.code, CloseCode::Size);
        assert_eq!(
            close.description.as_deref(),
            Some("message larger than 4096 bytes")
        );
        // At the limit is fine; one byte more is not.
        assert_eq!(
            guard(4096, 100).inspect(&masked_frame(0x81, &[b' '; 4096]), Instant::now()),
            Ok(())
        );
        assert!(
            guard(4096, 100)
                .inspect(&masked_frame(0x81, &[b' '; 4097])[..14], Instant::now())
                .is_err()
        );
    }

    #[test]
    fn each_reserved_bit_is_named() {
        for (first, bit) in [(0xc1, "RSV1"), (0xa1, "RSV2"), (0x91, "RSV3")] {
            // After a good frame: the bad one starts where the good one ends.
            let mut bytes = masked_frame(0x81, b"ok");
            let good = bytes.len();
            bytes.extend(masked_frame(first, b"{}"));
            let verdict = guard(4096, 100).inspect(&bytes, Instant::now());
            assert_eq!(verdict, Err((good, Violation::ReservedBit(bit))));
            let close = Violation::ReservedBit(bit).close();
            assert_eq!(close.code, CloseCode::Protocol);
            assert!(close.description.unwrap().contains(bit));
        }
    }

    #[test]
    fn reserved_opcodes_are_refused() {
        for opcode in [3u8, 7, 11, 15] {
            let verdict =
                guard(4096, 100).inspect(&masked_frame(0x80 | opcode, b""), Instant::now());
            assert_eq!(verdict, Err((0, Violation::ReservedOpcode(opcode))));
        }
        assert_eq!(
            Violation::ReservedOpcode(5).close().code,
            CloseCode::Protocol
        );
    }

    #[test]
    fn pongs_and_empty_continuations_count_toward_the_rate() {
        let now = Instant::now();
        let mut g = guard(4096, 10);
        let pong = masked_frame(0x8a, b"");
        let continuation = masked_frame(0x00, b"");
        // A burst of twice the rate passes, the next frame of any kind does not.
        for i in 0..20 {
            let frame = if i % 2 == 0 { &pong } else { &continuation };
            assert_eq!(g.inspect(frame, now), Ok(()), "frame {i}");
        }
        assert_eq!(g.inspect(&pong, now), Err((0, Violation::TooFast(10.0))));
        // Time refills the bucket.
        let mut g = guard(4096, 10);
        for i in 0..100 {
            let at = now + Duration::from_millis(100 * i);
            assert_eq!(g.inspect(&continuation, at), Ok(()));
        }
    }
}
