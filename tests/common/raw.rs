//! A hand-written WebSocket client over a plain TCP socket, for what a well-behaved client
//! library refuses to do: invalid UTF-8 in a text frame, fragments, never answering pings,
//! half-written HTTP requests. Frames follow RFC 6455 section 5.2; client frames are masked.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::WAIT;

/// Frame opcodes (RFC 6455 section 5.2).
pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// One frame as read from the server.
#[derive(Debug)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// For a close frame: the code and reason.
    pub fn close(&self) -> (u16, String) {
        assert_eq!(self.opcode, CLOSE, "not a close frame: {self:?}");
        if self.payload.len() < 2 {
            return (1005, String::new()); // no status code present
        }
        let code = u16::from_be_bytes([self.payload[0], self.payload[1]]);
        (
            code,
            String::from_utf8_lossy(&self.payload[2..]).into_owned(),
        )
    }
}

/// A raw WebSocket client: the socket after a successful handshake.
pub struct RawWs {
    pub stream: TcpStream,
    buffer: Vec<u8>,
}

/// Sends a request head and reads the response head (up to the blank line). Returns the
/// response head and any bytes that followed it.
pub async fn request(stream: &mut TcpStream, head: &str) -> (String, Vec<u8>) {
    stream
        .write_all(head.as_bytes())
        .await
        .expect("write request");
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end + 4]).into_owned();
            return (head, buffer[end + 4..].to_vec());
        }
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("response head within the wait")
            .expect("read response");
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buffer)
        );
        buffer.extend_from_slice(&chunk[..n]);
    }
}

impl RawWs {
    /// Connects and completes the opening handshake for `path`, asserting `101`.
    pub async fn connect(addr: SocketAddr, path: &str) -> RawWs {
        let stream = TcpStream::connect(addr).await.expect("connect");
        RawWs::handshake(stream, addr, path).await
    }

    /// Completes the opening handshake on an already connected socket.
    pub async fn handshake(stream: TcpStream, addr: SocketAddr, path: &str) -> RawWs {
        RawWs::try_handshake(stream, addr, path)
            .await
            .unwrap_or_else(|response| panic!("{response}"))
    }

    /// Like [`RawWs::handshake`], but a refusal (e.g. `503` past `--max-connections`) is
    /// returned as the response head instead of failing the test.
    pub async fn try_handshake(
        mut stream: TcpStream,
        addr: SocketAddr,
        path: &str,
    ) -> Result<RawWs, String> {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        let (response, rest) = request(&mut stream, &head).await;
        if !response.starts_with("HTTP/1.1 101") {
            return Err(response);
        }
        Ok(RawWs {
            stream,
            buffer: rest,
        })
    }

    /// Writes one masked frame.
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mut frame = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len <= u16::MAX as usize {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await.expect("write frame");
    }

    /// Reads the next frame, or `None` when the server closed the TCP connection.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse(&self.buffer) {
                self.buffer.drain(..used);
                return Some(frame);
            }
            self.read_more(8 * 1024).await?;
        }
    }

    /// Reads once from the socket (waiting for bytes) and returns every frame that is complete
    /// after it: the frames that arrived together. `None` when the server closed the TCP
    /// connection.
    pub async fn frames_of_next_read(&mut self) -> Option<Vec<Frame>> {
        // Large enough that a backlog built up while the test was not scheduled is read whole.
        self.read_more(64 * 1024).await?;
        let mut frames = Vec::new();
        while let Some((frame, used)) = parse(&self.buffer) {
            self.buffer.drain(..used);
            frames.push(frame);
        }
        Some(frames)
    }

    /// One read of up to `max` bytes onto the buffer, waiting (up to [`WAIT`]) for bytes;
    /// `None` when the server closed the TCP connection.
    async fn read_more(&mut self, max: usize) -> Option<()> {
        self.buffer.reserve(max);
        let mut limited = (&mut self.stream).take(max as u64);
        let n = tokio::time::timeout(WAIT, limited.read_buf(&mut self.buffer))
            .await
            .expect("bytes within the wait")
            .ok()?;
        (n > 0).then_some(())
    }

    /// Reads frames until a close frame, answering nothing; returns its code and reason. The
    /// wait is bounded as a whole ([`super::within`]): ticks and pings that keep coming do not
    /// stretch it.
    pub async fn until_close(&mut self) -> (u16, String) {
        super::within("close frame", async {
            loop {
                let frame = self
                    .next_frame()
                    .await
                    .expect("a close frame before the connection ends");
                if frame.opcode == CLOSE {
                    return frame.close();
                }
            }
        })
        .await
    }

    /// Reads frames until a text frame; returns it as JSON. Bounded as a whole, like
    /// [`RawWs::until_close`]: a socket that only pings fails the wait.
    pub async fn next_text(&mut self) -> serde_json::Value {
        super::within("text frame", async {
            loop {
                let frame = self.next_frame().await.expect("connection open");
                match frame.opcode {
                    TEXT => return serde_json::from_slice(&frame.payload).expect("JSON"),
                    CLOSE => panic!("closed: {:?}", frame.close()),
                    _ => continue,
                }
            }
        })
        .await
    }
}

/// One complete server frame at the start of `buffer`, and how many bytes it used.
fn parse(buffer: &[u8]) -> Option<(Frame, usize)> {
    if buffer.len() < 2 {
        return None;
    }
    let opcode = buffer[0] & 0x0f;
    assert_eq!(buffer[1] & 0x80, 0, "server frames are never masked");
    assert_ne!(
        buffer[0] & 0x80,
        0,
        "the server sends every message in one frame (FIN)"
    );
    let (len, start) = match buffer[1] & 0x7f {
        126 if buffer.len() >= 4 => (u16::from_be_bytes([buffer[2], buffer[3]]) as usize, 4),
        127 if buffer.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buffer[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buffer.len() < start + len {
        return None;
    }
    let payload = buffer[start..start + len].to_vec();
    Some((Frame { opcode, payload }, start + len))
}
