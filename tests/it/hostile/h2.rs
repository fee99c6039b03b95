//! HTTP/2 clients that flood the server with frames that ask for no answer, over TLS (where
//! browsers speak HTTP/2): they cost the server what `H2_READ_BYTES_PER_SEC` lets in, not
//! what the network carries. Measured on the real binary, in CPU time, its own process.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common;
use common::CertificateFiles;
use common::process::ServerProcess;
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// A TLS connection from the test to the server.
pub(super) type TlsStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// How long each flood runs.
pub(super) const FLOOD: Duration = Duration::from_secs(3);

/// What the server may spend on a flood of `FLOOD`. A flood
/// of PRIORITY frames read as fast as they came cost a core (10 CPU-s in 10 s); what the
/// read limit lets in (64 KiB a second, a 256 KiB burst) parses in a few milliseconds.
const CPU_BOUND: Duration = Duration::from_millis(500);

/// The real binary serving `https://` with a certificate the test trusts.
async fn tls_server() -> (ServerProcess, CertificateDer<'static>, CertificateFiles) {
    let files = CertificateFiles::new();
    let server = ServerProcess::start(&files.args()).await;
    (server, files.root.clone(), files)
}

/// A TLS connection to `server` that negotiated HTTP/2 (ALPN `h2`).
pub(super) async fn h2_tls(addr: SocketAddr, root: CertificateDer<'static>) -> TlsStream {
    let config = common::trusting(root, &[b"h2"]);
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls
}

/// [`h2_tls`], after the client preface and an empty SETTINGS frame: ready for raw frames.
pub(super) async fn h2_connection(addr: SocketAddr, root: CertificateDer<'static>) -> TlsStream {
    let mut tls = h2_tls(addr, root).await;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    // SETTINGS, empty: length 0, type 4, no flags, stream 0.
    tls.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    tls
}

/// Writes `chunk` again and again for [`FLOOD`] (a write the server does not take in time
/// just ends the flood early); returns the bytes written.
pub(super) async fn flood(tls: &mut TlsStream, chunk: &[u8]) -> usize {
    let end = Instant::now() + FLOOD;
    let mut sent = 0;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, tls.write_all(chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            _ => break,
        }
    }
    sent
}

/// An HTTP/2 client (the h2 crate) on a new connection to `server`, with `window` as its
/// initial stream window (`None`: h2's default), its connection driven by a task of its own.
pub(super) async fn h2_client(
    addr: SocketAddr,
    root: CertificateDer<'static>,
    window: Option<u32>,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<()>,
) {
    let tls = h2_tls(addr, root).await;
    let mut builder = h2::client::Builder::new();
    if let Some(window) = window {
        builder.initial_window_size(window);
    }
    let (client, connection) = builder.handshake(tls).await.expect("HTTP/2");
    let driving = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, driving)
}

/// `GET path` on `client`: the response, once its head arrives.
pub(super) fn get(
    client: &mut h2::client::SendRequest<bytes::Bytes>,
    addr: SocketAddr,
    path: &str,
) -> h2::client::ResponseFuture {
    let request = http02::Request::get(format!("https://localhost:{}{path}", addr.port()))
        .body(())
        .unwrap();
    client.send_request(request, true).expect("send").0
}

/// `GET path` over a new HTTP/2 connection: the status and the body.
pub(super) async fn get_over_h2(
    addr: SocketAddr,
    root: CertificateDer<'static>,
    path: &str,
) -> (u16, String) {
    let (mut client, _driving) = h2_client(addr, root, None).await;
    let response = tokio::time::timeout(common::WAIT, get(&mut client, addr, path))
        .await
        .expect("answered within the wait")
        .expect("a response");
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = tokio::time::timeout(common::WAIT, body.data())
        .await
        .expect("the body within the wait")
    {
        let chunk = chunk.expect("a chunk");
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    (status, String::from_utf8(text).expect("UTF-8"))
}

/// `GET /healthz` over a new HTTP/2 connection: its status.
async fn healthz_over_h2(addr: SocketAddr, root: CertificateDer<'static>) -> u16 {
    get_over_h2(addr, root, "/healthz").await.0
}

/// Waits (up to [`common::WAIT`]) until `series` in the server's `/metrics` (asked over
/// HTTP/2) satisfies `ok`; returns it.
async fn wait_for_series(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    series: &str,
    ok: impl Fn(u64) -> bool,
) -> u64 {
    let ok = &ok;
    common::wait_for(series, || async move {
        let (_, text) = get_over_h2(addr, root.clone(), "/metrics").await;
        let value = common::metric(&text, series);
        ok(value).then_some(value)
    })
    .await
}

const LONG_POLLS: &str = "tickerlab_open_connections{transport=\"longpoll\"}";
const EVENT_STREAMS: &str = "tickerlab_open_connections{transport=\"sse\"}";

/// Long polls held on HTTP/2 streams free their places as soon as the client abandons them:
/// first by resetting each stream (RST_STREAM), then by closing the whole connection. Each
/// stream's handler runs in a task of its own, which neither used to cancel: the places
/// stayed taken for `--long-poll-secs`.
#[tokio::test]
async fn abandoned_http2_long_polls_give_their_places_back_at_once() {
    const HELD: u64 = 20;
    let files = CertificateFiles::new();
    // A tick a minute and polls held for two: only the client's leaving can end them here.
    let mut args = files.args().to_vec();
    args.extend(["--tick-ms", "60000", "--long-poll-secs", "120"]);
    let server = ServerProcess::start(&args).await;
    let root = files.root.clone();
    for leave in ["reset each stream", "close the connection"] {
        let (mut client, driving) = h2_client(server.addr, root.clone(), None).await;
        let held: Vec<_> = (0..HELD)
            .map(|_| get(&mut client, server.addr, "/price/next?symbol=ACME&after=1"))
            .collect();
        wait_for_series(server.addr, &root, LONG_POLLS, |n| n == HELD).await;
        match leave {
            // Dropping a response before it arrives resets its stream (CANCEL).
            "reset each stream" => drop(held),
            _ => {
                driving.abort();
                drop(held);
                drop(client);
            }
        }
        wait_for_series(server.addr, &root, LONG_POLLS, |n| n == 0).await;
        eprintln!("{leave}: {HELD} long-poll places given back");
    }
    assert_eq!(healthz_over_h2(server.addr, root).await, 200);
}

/// An event stream on an HTTP/2 stream whose client grants it no flow-control window never
/// gets a byte out, and the socket never blocks: after `--client-timeout-secs` the stream
/// is reset and the stream's place is given back.
#[tokio::test]
async fn an_http2_event_stream_with_no_window_is_reset_after_the_client_timeout() {
    const STREAMS: u64 = 10;
    let files = CertificateFiles::new();
    let mut args = files.args().to_vec();
    // Long enough to see all ten open however busy the machine (each is reset this long
    // after it opened), short enough that the reset comes within the wait that follows.
    args.extend(["--client-timeout-secs", "6", "--heartbeat-secs", "3"]);
    let server = ServerProcess::start(&args).await;
    let root = files.root.clone();
    let (mut client, _driving) = h2_client(server.addr, root.clone(), Some(0)).await;
    let streams: Vec<_> = (0..STREAMS)
        .map(|_| get(&mut client, server.addr, "/events?symbols=ACME"))
        .collect();
    wait_for_series(server.addr, &root, EVENT_STREAMS, |n| n == STREAMS).await;
    // Nothing is read and no window granted: only the send timeout can end them.
    wait_for_series(server.addr, &root, EVENT_STREAMS, |n| n == 0).await;
    drop(streams);
    assert_eq!(healthz_over_h2(server.addr, root).await, 200);
}

/// `frame` (a whole HTTP/2 frame) a thousand times over.
pub(super) fn repeated(frame: &[u8]) -> Vec<u8> {
    frame.repeat(1000)
}

#[tokio::test]
async fn a_flood_of_priority_frames_costs_the_server_little_cpu() {
    let (server, root, _dir) = tls_server().await;
    let mut tls = h2_connection(server.addr, root.clone()).await;
    let before = server.cpu_time();
    let sent = flood(&mut tls, &priority_frames()).await;
    let used = server.cpu_time() - before;
    eprintln!("{sent} bytes of PRIORITY frames in {FLOOD:?}: the server used {used:?} of CPU");
    assert!(used < CPU_BOUND, "the server used {used:?} of CPU");
    assert_eq!(healthz_over_h2(server.addr, root).await, 200);
}

#[tokio::test]
async fn a_flood_of_window_updates_costs_the_server_little_cpu() {
    let (server, root, _dir) = tls_server().await;
    let mut tls = h2_connection(server.addr, root.clone()).await;
    // WINDOW_UPDATE on the connection: length 4, type 8, stream 0, increment 1. (Past 2^31-1
    // in total the server may end the connection: a flow-control error, which is fine too.)
    let update = [0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let before = server.cpu_time();
    let sent = flood(&mut tls, &repeated(&update)).await;
    let used = server.cpu_time() - before;
    eprintln!("{sent} bytes of WINDOW_UPDATE frames in {FLOOD:?}: the server used {used:?} of CPU");
    assert!(used < CPU_BOUND, "the server used {used:?} of CPU");
    assert_eq!(healthz_over_h2(server.addr, root).await, 200);
}

/// A request header block for `GET /` on `stream` (HPACK: `:method GET`, `:scheme https`,
/// `:path /` from the static table, `:authority localhost` as a literal), as a HEADERS frame
/// with `flags` (END_STREAM 0x1, END_HEADERS 0x4).
pub(super) fn get_headers(stream: u32, flags: u8) -> Vec<u8> {
    let block = [&[0x82, 0x87, 0x84, 0x41, 9][..], b"localhost"].concat();
    let mut frame = (block.len() as u32).to_be_bytes()[1..].to_vec();
    frame.extend([1, flags]);
    frame.extend((stream & 0x7fff_ffff).to_be_bytes());
    frame.extend(block);
    frame
}

/// A new HTTP/2 connection to `server`: the client preface, a SETTINGS frame that grants
/// every stream a window of 0 (so no response body can ever leave), and as many of `streams`
/// `GET /` streams as the server reads in [`FLOOD`], never reading anything back. Returns the
/// connection, to be held, and how many streams' HEADERS were sent.
pub(super) async fn zero_window_streams(
    addr: SocketAddr,
    root: CertificateDer<'static>,
    streams: u32,
) -> (TlsStream, usize) {
    let mut tls = h2_tls(addr, root).await;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    // SETTINGS: INITIAL_WINDOW_SIZE (0x4) = 0.
    tls.write_all(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0])
        .await
        .unwrap();
    let frames: Vec<u8> = (0..streams)
        .flat_map(|i| get_headers(2 * i + 1, 0x5))
        .collect();
    let end = Instant::now() + FLOOD;
    let mut sent = 0;
    for chunk in frames.chunks(16 * 1024) {
        let Some(left) = end.checked_duration_since(Instant::now()) else {
            break;
        };
        match tokio::time::timeout(left, tls.write_all(chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            _ => break,
        }
    }
    (tls, sent / get_headers(1, 0x5).len())
}

/// [`zero_window_streams`], 50 000 of them on one connection. Before the server capped
/// streams per connection, 50 000 took its memory from 9 MB to 982 MB.
#[tokio::test]
async fn fifty_thousand_zero_window_streams_on_one_connection_cost_little_memory() {
    let (server, root, _files) = tls_server().await;
    let before = server.rss_kib();
    let (_tls, sent) = zero_window_streams(server.addr, root.clone(), 50_000).await;
    // The kernel takes the bytes faster than the server reads them: watch the server's
    // memory for another [`FLOOD`] while it works through what arrived.
    let mut grown = 0;
    let watch_until = Instant::now() + FLOOD;
    while Instant::now() < watch_until {
        grown = grown.max(server.rss_kib().saturating_sub(before));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{sent} streams' HEADERS sent: the server grew by {grown} KiB at most");
    assert!(grown < 32 * 1024, "the server grew by {grown} KiB");
    assert_eq!(healthz_over_h2(server.addr, root).await, 200);
}

/// On `tls`, past the preface: a HEADERS frame without END_HEADERS, then CONTINUATION frames
/// of 16 KiB for [`FLOOD`], never the last one. Returns the bytes sent and the connection.
pub(super) async fn never_ending_header_block(mut tls: TlsStream) -> (usize, TlsStream) {
    // HEADERS on stream 1, END_STREAM but no END_HEADERS.
    if tls.write_all(&get_headers(1, 0x1)).await.is_err() {
        return (0, tls);
    }
    // CONTINUATION (type 9), no flags, stream 1: a literal header, repeated.
    let mut continuation = vec![0, 0x40, 0, 9, 0, 0, 0, 0, 1];
    continuation.extend(std::iter::repeat_n(b'a', 16 * 1024));
    let sent = flood(&mut tls, &continuation).await;
    (sent, tls)
}

/// The PRIORITY frames of [`a_flood_of_priority_frames_costs_the_server_little_cpu`], a
/// thousand of them: stream 1, length 5, type 2, no flags; stream dependency 0, weight 16.
pub(super) fn priority_frames() -> Vec<u8> {
    repeated(&[0, 0, 5, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 16])
}

/// Four connections, each sending a header block that never ends (a HEADERS frame without
/// END_HEADERS, then CONTINUATION frames of 16 KiB, never the last one): the server holds at
/// most its 128 KiB header-list limit of each before it gives the connection up, not the
/// 16 MiB h2 allows by default.
#[tokio::test]
async fn header_blocks_that_never_end_are_bounded() {
    let (server, root, _files) = tls_server().await;
    let before = server.rss_kib();
    let mut floods = Vec::new();
    for _ in 0..4 {
        let tls = h2_connection(server.addr, root.clone()).await;
        floods.push(tokio::spawn(never_ending_header_block(tls)));
    }
    let mut peak = 0;
    let mut held = Vec::new();
    for flood in floods {
        let (sent, tls) = flood.await.expect("the flood ran");
        peak = peak.max(server.rss_kib().saturating_sub(before));
        eprintln!("{sent} bytes of one header block sent");
        held.push(tls);
    }
    eprintln!("4 never-ending header blocks: the server grew by {peak} KiB at most");
    assert!(peak < 8 * 1024, "the server grew by {peak} KiB");
    assert_eq!(healthz_over_h2(server.addr, root).await, 200);
}

/// An HTTP/2 connection with no stream open is closed after the keep-alive period (5 s, as an
/// idle HTTP/1.1 keep-alive connection), even though its client answers every ping: pings
/// check that the peer is alive, not that it uses the connection. Before, such connections
/// stayed open for as long as their clients held them, an fd each and no place counted.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_however_well_it_answers_pings() {
    let (server, root, _files) = tls_server().await;
    // One connection that asked once, and one that never asked anything.
    let (mut used, used_driving) = h2_client(server.addr, root.clone(), None).await;
    let answer = tokio::time::timeout(common::WAIT, get(&mut used, server.addr, "/healthz"))
        .await
        .expect("answered within the wait")
        .expect("a response");
    assert_eq!(answer.status(), 200);
    drop(answer);
    let (_unused, unused_driving) = h2_client(server.addr, root.clone(), None).await;
    // The client's connection task answers pings until the server closes the connection.
    for (which, driving) in [("used", used_driving), ("unused", unused_driving)] {
        tokio::time::timeout(Duration::from_secs(30), driving)
            .await
            .unwrap_or_else(|_| panic!("the {which} idle connection still open after 30 s"))
            .expect("the connection task");
    }
    common::wait_for("the server to hold no connection", || async {
        (server.connections() == 0).then_some(())
    })
    .await;
    assert_eq!(healthz_over_h2(server.addr, root).await, 200);
}
