//! A minimal HTTP/1.1 client for one keep-alive connection, written for measuring: it sends
//! the smallest honest `GET` a polling client sends and splits what comes back into header
//! bytes and payload bytes. It understands exactly what tickerlab answers (a status line,
//! headers, `Content-Length`, a body; or a bodiless `204 No Content`, as a long poll that
//! timed out answers) and refuses anything else with a clear error.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::counting::Counted;

/// One response, split where the wire splits it.
pub struct Response {
    /// e.g. 200.
    pub status: u16,
    /// Status line and headers, including the blank line that ends them.
    pub head_bytes: usize,
    /// The body.
    pub body: Vec<u8>,
}

/// One keep-alive connection that sends the same `GET` again and again (or, for long
/// polling, a `GET` whose path changes with every answer: [`HttpClient::set_path`]).
pub struct HttpClient {
    stream: Counted<TcpStream>,
    addr: SocketAddr,
    request: Vec<u8>,
    buf: Vec<u8>,
}

/// Largest response head we accept; tickerlab's are a few hundred bytes.
const MAX_HEAD: usize = 16 * 1024;

impl HttpClient {
    /// Connects to `addr`; every [`HttpClient::get`] will ask for `path`.
    pub async fn connect(addr: SocketAddr, path: &str) -> io::Result<HttpClient> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut client = HttpClient {
            stream: Counted::new(stream),
            addr,
            request: Vec::new(),
            buf: Vec::with_capacity(1024),
        };
        client.set_path(path);
        Ok(client)
    }

    /// Makes the following [`HttpClient::get`]s ask for `path` (a long poll's `after=SEQ`
    /// changes with every answer).
    pub fn set_path(&mut self, path: &str) {
        // What a browser's fetch() sends, minus cookies and user-agent noise: the request line,
        // Host (required by HTTP/1.1) and an Accept.
        self.request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\r\n",
            self.addr
        )
        .into_bytes();
    }

    /// Bytes sent so far (all of them header bytes: a `GET` has no body).
    pub fn bytes_written(&self) -> u64 {
        self.stream.bytes_written()
    }

    /// Bytes received so far.
    pub fn bytes_read(&self) -> u64 {
        self.stream.bytes_read()
    }

    /// Sends the request and reads one whole response.
    pub async fn get(&mut self) -> io::Result<Response> {
        self.stream.write_all(&self.request).await?;
        let head_bytes = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad("response head larger than 16 KiB"));
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_bytes])
            .map_err(|_| bad("response head is not UTF-8"))?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status code in the response"))?;
        let length = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            // 204 and 304 never have a body, with or without the header (RFC 9110 6.4.1).
            .or(matches!(status, 204 | 304).then_some(0))
            .ok_or_else(|| bad("response without Content-Length"))?;
        while self.buf.len() < head_bytes + length {
            self.fill().await?;
        }
        let body = self.buf[head_bytes..head_bytes + length].to_vec();
        self.buf.drain(..head_bytes + length);
        Ok(Response {
            status,
            head_bytes,
            body,
        })
    }

    async fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}
