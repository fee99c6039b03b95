//! TLS: the same app over `https://` and `wss://`, driven by real rustls clients that trust
//! only the certificate the test generated; and how bad certificates fail at start-up.

use crate::common;
use common::{TempDir, WAIT, next_json, test_config};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use tickerlab::tls::{Identity, SelfSigned, TlsError};
use tickerlab::{Config, StartError, Stopper, tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::{TlsConnector, rustls};
use tokio_tungstenite::WebSocketStream;

/// A running TLS app and the certificate a client must trust to reach it.
struct TlsApp {
    addr: SocketAddr,
    root: CertificateDer<'static>,
    stopper: Stopper,
    feed: tickerlab::Feed,
}

/// Starts the real app on 127.0.0.1:0 with `config` (which must turn TLS on).
async fn spawn_tls_app(config: Config) -> TlsApp {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = tickerlab::serve(config, listener).expect("serve");
    assert_eq!(app.scheme(), "https");
    let root = app.tls().expect("TLS is on").certificate().clone();
    let tls_app = TlsApp {
        addr: app.local_addr(),
        root,
        stopper: app.stopper(),
        feed: app.feed().clone(),
    };
    tokio::spawn(app.run());
    tls_app
}

/// A test config serving the given PEM files.
fn files_config(cert: PathBuf, key: PathBuf) -> Config {
    Config {
        tls_cert: Some(cert),
        tls_key: Some(key),
        ..test_config()
    }
}

/// A rustls client configuration trusting exactly `roots` (no system roots).
fn client_config(roots: &[CertificateDer<'static>]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth(),
    )
}

/// Opens TCP to `addr` and runs the TLS handshake, checking the certificate for `name`.
async fn tls_connect(
    addr: SocketAddr,
    name: &str,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    tokio::time::timeout(WAIT, TlsConnector::from(config).connect(name, tcp))
        .await
        .expect("TLS handshake timed out")
}

/// `GET path` over HTTPS (HTTP/1.1, `Connection: close`); returns the whole response text.
async fn https_get(
    addr: SocketAddr,
    name: &str,
    root: &CertificateDer<'static>,
    path: &str,
) -> String {
    let mut tls = tls_connect(addr, name, client_config(std::slice::from_ref(root)))
        .await
        .expect("TLS handshake");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // A peer that closes without a TLS close_notify makes read_to_end fail after the data
    // arrived; what was read is still in `response`, and the status line decides the test.
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut response))
        .await
        .expect("response timed out");
    String::from_utf8(response).expect("UTF-8 response")
}

/// The body of an HTTP/1.1 response.
fn body(response: &str) -> &str {
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("")
}

type Wss = WebSocketStream<TlsStream<TcpStream>>;

/// Opens `wss://name:port/path` over a rustls connection trusting `root`.
async fn wss_connect(
    addr: SocketAddr,
    name: &str,
    root: &CertificateDer<'static>,
    path: &str,
) -> Wss {
    let tls = tls_connect(addr, name, client_config(std::slice::from_ref(root)))
        .await
        .expect("TLS handshake");
    let url = format!("wss://{name}:{}{path}", addr.port());
    let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, tls))
        .await
        .expect("WebSocket handshake timed out")
        .expect("WebSocket handshake failed");
    assert_eq!(response.status(), 101);
    ws
}

/// Reads `n` ticks and returns their `seq`s.
async fn tick_seqs(ws: &mut Wss, n: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        let message = next_json(ws).await;
        if message["type"] == "tick" {
            assert_eq!(message["symbol"], "ACME", "{message}");
            seqs.push(message["seq"].as_u64().unwrap());
        }
    }
    seqs
}

fn strictly_increasing(seqs: &[u64]) -> bool {
    seqs.windows(2).all(|w| w[0] < w[1])
}

#[tokio::test]
async fn https_client_gets_price_with_certificate_files() {
    let dir = TempDir::new();
    let generated = tls::self_signed(&[]).unwrap();
    let (cert, key) = generated.write_to(&dir.0).unwrap();
    let app = spawn_tls_app(files_config(cert, key)).await;

    // The certificate names 127.0.0.1 as an IP address, so the client checks it as one.
    let response = https_get(app.addr, "127.0.0.1", &app.root, "/price?symbol=GLOBX").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let tick: Value = serde_json::from_str(body(&response)).expect("a JSON tick");
    assert_eq!(tick["type"], "tick");
    assert_eq!(tick["symbol"], "GLOBX");
    assert!(tick["seq"].as_u64().unwrap() >= 1);
    app.stopper.stop().await;
}

#[tokio::test]
async fn wss_handshake_completes_and_ticks_arrive_with_a_self_signed_certificate() {
    let app = spawn_tls_app(Config {
        tls_self_signed: true,
        ..test_config()
    })
    .await;
    let mut ws = wss_connect(app.addr, "localhost", &app.root, "/ws?symbols=ACME").await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "hello", "{hello}");
    let seqs = tick_seqs(&mut ws, 5).await;
    assert!(strictly_increasing(&seqs), "{seqs:?}");
    // A tick over TLS goes through the TLS session, so through the connection's task: the
    // worker's relay never writes to the socket itself.
    assert_eq!(app.feed.relay_writes(), 0);
    app.stopper.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_refused() {
    let app = spawn_tls_app(Config {
        tls_self_signed: true,
        ..test_config()
    })
    .await;
    // Trusting another certificate is the same as meeting an impostor: the handshake fails
    // before a single HTTP byte is sent.
    let other = Identity::self_signed(tls::self_signed(&[]).unwrap()).unwrap();
    let refused = tls_connect(
        app.addr,
        "localhost",
        client_config(&[other.certificate().clone()]),
    )
    .await;
    let err = refused.expect_err("an untrusted certificate must fail the handshake");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    // A name the certificate does not cover fails too, even with the right root.
    let refused = tls_connect(
        app.addr,
        "example.com",
        client_config(std::slice::from_ref(&app.root)),
    )
    .await;
    let err = refused.expect_err("a wrong name must fail the handshake");
    assert!(err.to_string().contains("not valid for name"), "{err}");
    app.stopper.stop().await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_no_http_and_does_not_disturb_a_wss_client() {
    let app = spawn_tls_app(Config {
        tls_self_signed: true,
        ..test_config()
    })
    .await;
    let mut ws = wss_connect(app.addr, "localhost", &app.root, "/ws?symbols=ACME").await;
    assert_eq!(next_json(&mut ws).await["type"], "hello");
    let before = tick_seqs(&mut ws, 2).await;

    // Plain HTTP where a TLS ClientHello is expected: the server may answer with a TLS
    // alert record (content type 21) and must close; it never speaks HTTP.
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"GET /price HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    // A reset instead of a clean close is fine too: either way the connection is over.
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("the server must close a connection that is not TLS");
    assert!(
        answer.is_empty() || answer[0] == 21,
        "not a TLS alert: {answer:?}"
    );
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/"),
        "plain HTTP was answered: {answer:?}"
    );

    // The wss client kept receiving, in order, and new TLS clients are still served.
    let after = tick_seqs(&mut ws, 3).await;
    let all: Vec<u64> = before.iter().chain(&after).copied().collect();
    assert!(strictly_increasing(&all), "{all:?}");
    let response = https_get(app.addr, "localhost", &app.root, "/healthz").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    app.stopper.stop().await;
}

/// Connections that never send a ClientHello, from one address, take at most that address's
/// share of TLS handshakes (`HANDSHAKES_PER_ADDRESS`): the rest are closed at once and counted
/// in `/metrics`, so actix-tls's places stay free for everyone else, and a client from
/// another address is served while they wait.
#[tokio::test]
async fn silent_connections_from_one_address_hold_at_most_its_share_of_tls_handshakes() {
    use tickerlab::http::server::HANDSHAKES_PER_ADDRESS;
    const SILENT: usize = 200;
    const REFUSED: &str = "tickerlab_handshakes_refused_total{reason=\"tls_per_address\"}";
    let app = spawn_tls_app(Config {
        tls_self_signed: true,
        ..test_config()
    })
    .await;
    let attacker = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let peak = std::cell::Cell::new(0);
    let sample = || {
        let held = common::process::server_sockets_from(app.addr.port(), Some(attacker));
        peak.set(peak.get().max(held));
    };
    // All at once: the share is of handshakes in progress, and each lasts at most 3 s.
    let silent = futures_util::future::join_all((0..SILENT).map(|_| async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((attacker, 0).into()).unwrap();
        socket.connect(app.addr).await.expect("connect")
    }))
    .await;
    // Connections beyond the share are refused (closed before their handshake) and counted.
    // (Not every one of them: on a busy machine, the server may accept some only after the
    // first handshakes timed out and gave their places back.)
    let refused = common::wait_for("the refusals to be counted", || async {
        sample();
        let metrics = https_get(app.addr, "localhost", &app.root, "/metrics").await;
        let refused = common::metric(body(&metrics), REFUSED);
        (refused as usize >= SILENT / 2).then_some(refused)
    })
    .await;
    sample();
    let peak = peak.get();
    assert!(
        peak <= HANDSHAKES_PER_ADDRESS,
        "{peak} silent connections held at once"
    );
    // While the share is still taken, a client from another address is served.
    let response = https_get(app.addr, "localhost", &app.root, "/healthz").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    eprintln!("{refused} silent connections refused, at most {peak} held at once");
    drop(silent);
    app.stopper.stop().await;
}

#[tokio::test]
async fn serve_refuses_missing_files_and_a_mismatched_key_with_the_reason() {
    let dir = TempDir::new();
    let (cert, key) = tls::self_signed(&[]).unwrap().write_to(&dir.0).unwrap();
    let listener = || TcpListener::bind("127.0.0.1:0").unwrap();

    let missing = dir.0.join("nope.pem");
    let err = tickerlab::serve(files_config(missing.clone(), key.clone()), listener())
        .err()
        .expect("a missing certificate must fail");
    assert!(
        matches!(&err, StartError::Tls(TlsError::Read { path, .. }) if path == &missing),
        "{err}"
    );

    let other = dir.0.join("other");
    let (_, other_key) = tls::self_signed(&[]).unwrap().write_to(&other).unwrap();
    let err = tickerlab::serve(files_config(cert, other_key), listener())
        .err()
        .expect("a key of another certificate must fail");
    assert!(
        matches!(err, StartError::Tls(TlsError::KeyMismatch { .. })),
        "{err}"
    );
}

// ---- the binary, as a user runs it ----

fn tickerlab() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tickerlab"));
    for var in ["PORT", "HOST", "TLS_CERT", "TLS_KEY", "TLS_SELF_SIGNED"] {
        command.env_remove(var);
    }
    command.env("RUST_LOG", "warn");
    command
}

/// Runs the binary expecting it to refuse to start; returns its only stderr line.
fn start_failure(args: &[&str]) -> String {
    let output = tickerlab()
        .args(["--port", "0"])
        .args(args)
        .output()
        .unwrap();
    assert!(!output.status.success(), "must exit non-zero");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    lines[0].to_owned()
}

#[test]
fn bad_certificate_flags_fail_with_one_line_and_a_nonzero_exit() {
    let dir = TempDir::new();
    let (cert, key) = tls::self_signed(&[]).unwrap().write_to(&dir.0).unwrap();
    let (_, other_key) = tls::self_signed(&[])
        .unwrap()
        .write_to(&dir.0.join("b"))
        .unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let missing = path(&dir.0.join("missing.pem"));

    let line = start_failure(&["--tls-cert", &missing, "--tls-key", &path(&key)]);
    assert!(
        line.contains("cannot read --tls-cert") && line.contains(&missing),
        "{line}"
    );

    let line = start_failure(&["--tls-cert", &path(&cert), "--tls-key", &missing]);
    assert!(
        line.contains("cannot read --tls-key") && line.contains(&missing),
        "{line}"
    );

    let line = start_failure(&["--tls-cert", &path(&cert), "--tls-key", &path(&other_key)]);
    assert!(
        line.contains("does not belong to the certificate"),
        "{line}"
    );

    // A key file where the certificate should be: read, but no certificate in it.
    let line = start_failure(&["--tls-cert", &path(&key), "--tls-key", &path(&key)]);
    assert!(line.contains("no PEM certificate"), "{line}");

    let line = start_failure(&["--tls-cert", &path(&cert)]);
    assert!(line.contains("needs --tls-key"), "{line}");
}

/// A running binary; its stdout stays open (a closed pipe would make its next print fail).
struct Running {
    child: Child,
    _stdout: BufReader<std::process::ChildStdout>,
}

/// Starts the binary and reads `n` lines of its stdout (its start-up report).
fn start(args: &[&str], n: usize) -> (Running, Vec<String>) {
    let mut child = tickerlab()
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let lines = (0..n)
        .map(|_| {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            line.trim_end().to_owned()
        })
        .collect();
    let running = Running {
        child,
        _stdout: stdout,
    };
    (running, lines)
}

/// SIGTERM, then the exit status and whatever the binary wrote to stderr.
fn stop(running: Running) -> (std::process::ExitStatus, String) {
    let mut child = running.child;
    let status = common::sigterm_and_wait(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

#[test]
fn self_signed_binary_prints_https_url_and_fingerprint_and_writes_a_trustable_certificate() {
    let (child, lines) = start(&["--tls-self-signed"], 3);
    let url = lines[0]
        .strip_prefix("tickerlab listening on https://")
        .unwrap_or_else(|| {
            panic!("first line names the https URL: {lines:?}");
        });
    let addr: SocketAddr = url.parse().unwrap();
    let fingerprint = lines[1]
        .strip_prefix("TLS certificate SHA-256 fingerprint: ")
        .unwrap_or_else(|| panic!("second line is the fingerprint: {lines:?}"))
        .to_owned();
    let dir = SelfSigned::default_dir(addr.port());
    let _cleanup = TempDir(dir.clone());
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    assert!(
        lines[2].contains(cert.to_str().unwrap()) && lines[2].contains("localhost, 127.0.0.1, ::1"),
        "{lines:?}"
    );

    // The files written are the certificate being served: they belong together, their
    // fingerprint is the one printed, and a client trusting the file gets in.
    let written = Identity::from_files(&cert, &key).expect("written PEM files load");
    assert_eq!(written.fingerprint(), fingerprint);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let response = runtime.block_on(https_get(
        addr,
        "localhost",
        written.certificate(),
        "/healthz",
    ));
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let (status, stderr) = stop(child);
    assert!(status.success(), "{status:?} {stderr}");
    assert_eq!(stderr, "", "no warnings for a fresh certificate");
}

#[test]
fn an_expired_certificate_is_a_one_line_warning_and_still_served() {
    let dir = TempDir::new();
    let old = tls::generate(
        vec!["localhost".into()],
        rcgen_date(2000, 1, 1),
        rcgen_date(2001, 2, 3),
    )
    .unwrap();
    let (cert, key) = old.write_to(&dir.0).unwrap();
    let (child, lines) = start(
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        2,
    );
    let addr: SocketAddr = lines[0]
        .strip_prefix("tickerlab listening on https://")
        .unwrap_or_else(|| panic!("{lines:?}"))
        .parse()
        .unwrap();
    // Why the warning matters: even a client that trusts this very certificate refuses it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let refused = runtime.block_on(tls_connect(
        addr,
        "localhost",
        client_config(&[Identity::from_files(&cert, &key)
            .unwrap()
            .certificate()
            .clone()]),
    ));
    let err = refused.expect_err("an expired certificate must fail the handshake");
    assert!(err.to_string().contains("expired"), "{err}");
    let (status, stderr) = stop(child);
    assert!(status.success(), "{status:?}");
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("expired on 2001-02-03"), "{stderr}");
}

/// A UTC midnight, the way `tls::generate` takes dates.
fn rcgen_date(year: i32, month: u8, day: u8) -> time::OffsetDateTime {
    let month = time::Month::try_from(month).unwrap();
    time::Date::from_calendar_date(year, month, day)
        .unwrap()
        .midnight()
        .assume_utc()
}

/// A certificate directory someone else could have made first (here
/// pre-created world-writable, as another user could in the shared temp directory) is
/// refused with one line, left as it was, and nothing is written into it.
#[test]
fn a_precreated_world_writable_certificate_directory_is_refused_with_one_line() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let planted = dir.0.join("cert.pem");
    std::fs::write(&planted, "planted").unwrap();

    // The library refuses it...
    let err = tls::self_signed(&[])
        .unwrap()
        .write_to(&dir.0)
        .expect_err("a 0777 directory must be refused");
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("0777"), "{err}");

    // ...and so does the binary, whose default directory for this port was planted first.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let default = SelfSigned::default_dir(port);
    let _cleanup = TempDir(default.clone());
    std::fs::create_dir_all(&default).unwrap();
    std::fs::set_permissions(&default, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(default.join("cert.pem"), "planted").unwrap();
    let output = tickerlab()
        .args(["--port", &port.to_string(), "--tls-self-signed"])
        .output()
        .unwrap();
    assert!(!output.status.success(), "must exit non-zero");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains(default.to_str().unwrap()) && lines[0].contains("mode is 0777"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).is_empty(),
        "no URL and no `curl --cacert` advice for a refused directory"
    );
    for planted in [&planted, &default.join("cert.pem")] {
        assert_eq!(std::fs::read_to_string(planted).unwrap(), "planted");
    }
    let mode = std::fs::metadata(&default).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o777, "left as it was, not silently fixed");
}

/// A directory owned by another user is refused too (only testable as root, who can give
/// a directory away; skipped otherwise).
#[test]
fn a_certificate_directory_owned_by_another_user_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: cannot make a directory owned by someone else; skipped");
        return;
    }
    let dir = TempDir::new();
    std::os::unix::fs::chown(&dir.0, Some(65534), None).unwrap();
    let err = tls::self_signed(&[])
        .unwrap()
        .write_to(&dir.0)
        .expect_err("another user's directory must be refused");
    assert!(
        err.to_string().contains("belongs to user id 65534"),
        "{err}"
    );
}

/// Over `wss://`, a client that stops reading meets backpressure at the socket, as over
/// `ws://`: tokio-rustls writes each record out before it takes more plaintext, so rustls's
/// own output buffer (64 KiB at most) does not fill behind a blocked socket. The backlog a
/// stalled client reads on resuming is what the socket's buffers held (`ws::a_stall_shorter_
/// than_the_history_skips_to_the_newest_tick` reads about 280 frames over plain TCP), not
/// 64 KiB (some 500 frames) more, and the rest is skipped.
#[tokio::test]
async fn a_stalled_wss_client_is_backpressured_at_the_socket_not_in_rustls() {
    const STALL: u64 = 200;
    let app = spawn_tls_app(Config {
        tls_self_signed: true,
        tick_ms: 10,
        heartbeat_secs: 10,
        client_timeout_secs: 60,
        ..test_config()
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(app.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = TlsConnector::from(client_config(std::slice::from_ref(&app.root)))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let url = format!(
        "wss://localhost:{}/ws?symbols=ACME,GLOBX,INITECH,UMBRL",
        app.addr.port()
    );
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("WebSocket handshake");
    let mut last = std::collections::HashMap::new();
    while last.len() < 4 {
        let tick = next_json(&mut ws).await;
        if tick["type"] == "tick" {
            last.insert(
                tick["symbol"].as_str().unwrap().to_owned(),
                tick["seq"].as_u64().unwrap(),
            );
        }
    }
    let start = *last.values().max().unwrap();
    common::wait_for("the feed to tick through the stall", || async {
        (app.feed.ticks() >= start + STALL).then_some(())
    })
    .await;
    let resumed_at = app.feed.ticks();
    let (mut backlog, mut caught_up) = (0u64, std::collections::HashSet::new());
    while caught_up.len() < 4 {
        let tick = next_json(&mut ws).await;
        if tick["type"] != "tick" {
            continue;
        }
        let seq = tick["seq"].as_u64().unwrap();
        if seq >= resumed_at {
            caught_up.insert(tick["symbol"].as_str().unwrap().to_owned());
        } else {
            backlog += 1;
        }
    }
    eprintln!(
        "wss stall: {} frames made; {backlog} read before the newest",
        STALL * 4
    );
    assert!(
        backlog < 450,
        "{backlog} frames were queued for a stalled wss:// client: more than the socket's \
         buffers and a bounded TLS buffer hold"
    );
}
