//! HTTP/2 clients that flood the server with frames that ask for no answer, over TLS (where
//! browsers speak HTTP/2): they cost the server what `H2_READ_BYTES_PER_SEC` lets in, not
//! what the network carries. Measured on the real binary, in CPU time, its own process.

use std::time::{Duration, Instant};

use crate::common;
use common::CertificateFiles;
use common::process::ServerProcess;
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// How long each flood runs.
const FLOOD: Duration = Duration::from_secs(3);

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
async fn h2_tls(
    server: &ServerProcess,
    root: CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let config = common::trusting(root, &[b"h2"]);
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls
}

/// [`h2_tls`], after the client preface and an empty SETTINGS frame: ready for raw frames.
async fn h2_connection(
    server: &ServerProcess,
    root: CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tls = h2_tls(server, root).await;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    // SETTINGS, empty: length 0, type 4, no flags, stream 0.
    tls.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    tls
}

/// Writes `chunk` again and again for [`FLOOD`] (a write the server does not take in time
/// just ends the flood early); returns the bytes written.
async fn flood(
    tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    chunk: &[u8],
) -> usize {
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

/// `GET /healthz` over a new HTTP/2 connection (the h2 crate as the client): its status.
async fn healthz_over_h2(server: &ServerProcess, root: CertificateDer<'static>) -> u16 {
    let tls = h2_tls(server, root).await;
    let (mut client, connection) = h2::client::handshake(tls).await.expect("HTTP/2");
    tokio::spawn(connection);
    let request = http02::Request::get(format!("https://localhost:{}/healthz", server.addr.port()))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).expect("send");
    tokio::time::timeout(common::WAIT, response)
        .await
        .expect("answered within the wait")
        .expect("a response")
        .status()
        .as_u16()
}

/// `frame` (a whole HTTP/2 frame) a thousand times over.
fn repeated(frame: &[u8]) -> Vec<u8> {
    frame.repeat(1000)
}

#[tokio::test]
async fn a_flood_of_priority_frames_costs_the_server_little_cpu() {
    let (server, root, _dir) = tls_server().await;
    let mut tls = h2_connection(&server, root.clone()).await;
    // PRIORITY on stream 1: length 5, type 2, no flags; stream dependency 0, weight 16.
    let priority = [0, 0, 5, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 16];
    let before = server.cpu_time();
    let sent = flood(&mut tls, &repeated(&priority)).await;
    let used = server.cpu_time() - before;
    eprintln!("{sent} bytes of PRIORITY frames in {FLOOD:?}: the server used {used:?} of CPU");
    assert!(used < CPU_BOUND, "the server used {used:?} of CPU");
    assert_eq!(healthz_over_h2(&server, root).await, 200);
}

#[tokio::test]
async fn a_flood_of_window_updates_costs_the_server_little_cpu() {
    let (server, root, _dir) = tls_server().await;
    let mut tls = h2_connection(&server, root.clone()).await;
    // WINDOW_UPDATE on the connection: length 4, type 8, stream 0, increment 1. (Past 2^31-1
    // in total the server may end the connection: a flow-control error, which is fine too.)
    let update = [0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let before = server.cpu_time();
    let sent = flood(&mut tls, &repeated(&update)).await;
    let used = server.cpu_time() - before;
    eprintln!("{sent} bytes of WINDOW_UPDATE frames in {FLOOD:?}: the server used {used:?} of CPU");
    assert!(used < CPU_BOUND, "the server used {used:?} of CPU");
    assert_eq!(healthz_over_h2(&server, root).await, 200);
}
