//! Header bytes per poll over TLS, HTTP/1.1 against HTTP/2: the same `GET` again and again on
//! one connection, with each protocol's bytes counted *inside* TLS (what the protocol sends:
//! head or HEADERS frame, DATA frame headers, SETTINGS, WINDOW_UPDATE...) and on the wire
//! (TLS records included). HTTP/2's HPACK keeps a table of the headers already sent on the
//! connection, so from the second request on, a repeated header costs a byte or two.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;
use tickerlab::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::support::counting::{Counted, Counters};
use crate::support::output::{Table, num};
use crate::support::server::InProcess;

/// The figures of one protocol and one kind of request, per request.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub protocol: &'static str,
    pub request: &'static str,
    /// Requests measured (after the first, which also pays the connection's set-up).
    pub requests: u64,
    /// The first request: everything inside TLS except the body (the connection's
    /// preface and SETTINGS included for HTTP/2).
    pub first_header_bytes: f64,
    /// Later requests, mean: everything inside TLS except the body.
    pub header_bytes: f64,
    /// Later requests, mean: the body.
    pub payload_bytes: f64,
    /// Later requests, mean: every byte on the TCP connection (TLS records included).
    pub wire_bytes: f64,
}

type Tls = Counted<tokio_rustls::client::TlsStream<Counted<TcpStream>>>;

/// A TLS connection to `addr` offering only `alpn`, with counters inside and outside TLS.
async fn connect(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    alpn: &[u8],
) -> anyhow::Result<(Tls, Counters, Counters)> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tcp = Counted::new(tcp);
    let wire = tcp.counters();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    anyhow::ensure!(
        tls.get_ref().1.alpn_protocol() == Some(alpn),
        "the server did not choose {}",
        String::from_utf8_lossy(alpn)
    );
    let tls = Counted::new(tls);
    let inside = tls.counters();
    Ok((tls, inside, wire))
}

/// Sums per request: inside TLS minus the body, the body, on the wire.
#[derive(Default)]
struct Sums {
    first: Option<f64>,
    n: u64,
    header: f64,
    payload: f64,
    wire: f64,
}

impl Sums {
    fn add(&mut self, inside: u64, body: usize, wire: u64) {
        let header = inside as f64 - body as f64;
        if self.first.is_none() {
            self.first = Some(header);
            return;
        }
        self.n += 1;
        self.header += header;
        self.payload += body as f64;
        self.wire += wire as f64;
    }

    fn figures(&self, protocol: &'static str, request: &'static str) -> Figures {
        let n = self.n.max(1) as f64;
        Figures {
            protocol,
            request,
            requests: self.n,
            first_header_bytes: self.first.unwrap_or(0.0),
            header_bytes: self.header / n,
            payload_bytes: self.payload / n,
            wire_bytes: self.wire / n,
        }
    }
}

/// `polls` + 1 polls of `/price` and as many long polls of `/price/next`, over HTTP/1.1
/// and over HTTP/2, each on one TLS connection.
pub async fn measure(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    symbol: &str,
    polls: u64,
) -> anyhow::Result<Vec<Figures>> {
    let mut figures = Vec::new();
    for long in [false, true] {
        let request = if long { "long poll" } else { "poll" };
        let h1 = http1(addr, root, symbol, polls, long).await?;
        figures.push(h1.figures("HTTP/1.1", request));
        let h2 = http2(addr, root, symbol, polls, long).await?;
        figures.push(h2.figures("HTTP/2", request));
    }
    Ok(figures)
}

fn path(symbol: &str, long: bool, after: u64) -> String {
    if long {
        format!("/price/next?symbol={symbol}&after={after}")
    } else {
        format!("/price?symbol={symbol}")
    }
}

/// The seq of a tick's JSON, for the next long poll's `after`.
fn seq_of(body: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["seq"].as_u64())
        .unwrap_or(0)
}

/// Reads from `tls` into `buf` until `done(buf)` says where the wanted part ends.
async fn read_until(
    tls: &mut Tls,
    buf: &mut Vec<u8>,
    done: impl Fn(&[u8]) -> Option<usize>,
) -> anyhow::Result<usize> {
    loop {
        if let Some(end) = done(buf) {
            return Ok(end);
        }
        let mut chunk = [0u8; 4096];
        let n = tls.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn http1(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    symbol: &str,
    polls: u64,
    long: bool,
) -> anyhow::Result<Sums> {
    let (mut tls, inside, wire) = connect(addr, root, b"http/1.1").await?;
    let mut sums = Sums::default();
    let mut after = 0;
    let mut buf = Vec::new();
    for _ in 0..=polls {
        let (inside0, wire0) = (inside.total(), wire.total());
        // The same request the plain-TCP bench clients send.
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: localhost:{}\r\nAccept: application/json\r\n\r\n",
            path(symbol, long, after),
            addr.port()
        );
        tls.write_all(request.as_bytes()).await?;
        buf.clear();
        let head_end = read_until(&mut tls, &mut buf, |b| {
            b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
        })
        .await?;
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let end = head_end + length;
        read_until(&mut tls, &mut buf, |b| (b.len() >= end).then_some(end)).await?;
        let body = &buf[head_end..end];
        after = seq_of(body);
        sums.add(inside.total() - inside0, body.len(), wire.total() - wire0);
    }
    Ok(sums)
}

async fn http2(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    symbol: &str,
    polls: u64,
    long: bool,
) -> anyhow::Result<Sums> {
    let (tls, inside, wire) = connect(addr, root, b"h2").await?;
    let (client, connection) = h2::client::handshake(tls).await?;
    tokio::spawn(connection);
    let mut client = client.ready().await?;
    let mut sums = Sums::default();
    let mut after = 0;
    for _ in 0..=polls {
        let (inside0, wire0) = (inside.total(), wire.total());
        let url = format!(
            "https://localhost:{}{}",
            addr.port(),
            path(symbol, long, after)
        );
        let request = http02::Request::get(url)
            .header("accept", "application/json")
            .body(())?;
        let (response, _) = client.send_request(request, true)?;
        let response = response.await?;
        anyhow::ensure!(response.status() == 200, "answered {}", response.status());
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        // Any WINDOW_UPDATE the release triggers belongs to this request: give the
        // connection task a moment to write it.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        after = seq_of(&bytes);
        sums.add(inside.total() - inside0, bytes.len(), wire.total() - wire0);
        client = client.ready().await?;
    }
    Ok(sums)
}

/// Header bytes per poll and per long poll over TLS, HTTP/1.1 against HTTP/2, on a server of
/// its own (self-signed TLS); printed as a table. Empty when it could not be measured.
pub async fn report(tick_ms: u64) -> Vec<Figures> {
    let server = InProcess::start(Config {
        port: 0,
        tick_ms,
        seed: Some(1),
        tls_self_signed: true,
        ..Config::default()
    });
    let symbol = server.feed.symbols()[0].clone();
    let figures = match &server.tls_root {
        Some(root) => measure(server.addr, root, &symbol, 50).await,
        None => Err(anyhow::anyhow!("the server did not start TLS")),
    };
    server.stop().await;
    let figures = match figures {
        Ok(figures) => figures,
        Err(e) => {
            eprintln!("cannot measure header bytes over TLS: {e}");
            return Vec::new();
        }
    };
    let mut t = Table::new(&[
        "request",
        "protocol",
        "header B, 1st request",
        "header B / request after",
        "payload B / request",
        "on the wire B / request (TLS included)",
    ]);
    for f in &figures {
        t.rows.push(vec![
            f.request.to_string(),
            f.protocol.to_string(),
            num(f.first_header_bytes, 0),
            num(f.header_bytes, 1),
            num(f.payload_bytes, 1),
            num(f.wire_bytes, 1),
        ]);
    }
    println!("\n### Header bytes over TLS: HTTP/1.1 vs HTTP/2 (50 requests on one connection)\n");
    print!("{}", t.markdown());
    figures
}
