//! Test helpers: start the real app on 127.0.0.1:0 and talk to it with real clients.

pub mod browser;
pub mod example;
pub mod hostile;
pub mod process;
pub mod raw;
pub mod redis_server;
/// The benches' percentiles, so that a test and a bench sum up samples the same way.
#[allow(dead_code)] // the tests need only the median
#[path = "../../benches/support/stats.rs"]
pub mod stats;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tickerlab::{Config, Feed, Stopper};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A WebSocket client connection as the tests use it.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single expected event may take before a test fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running app: where it listens, its feed (for counters), and how to stop it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub feed: Feed,
    pub stopper: Stopper,
}

impl TestApp {
    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub async fn ws(&self, path: &str) -> Ws {
        let (ws, response) =
            tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(self.ws_url(path)))
                .await
                .expect("handshake timed out")
                .expect("handshake failed");
        assert_eq!(response.status(), 101);
        ws
    }
}

/// A configuration for tests: a fast tick, a fixed seed, any free port.
pub fn test_config() -> Config {
    Config {
        port: 0,
        tick_ms: 20,
        seed: Some(7),
        workers: Some(2),
        ..Config::default()
    }
}

/// Starts the real app on 127.0.0.1:0 in this runtime.
pub async fn spawn_app(config: Config) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let app = tickerlab::serve(config, listener).expect("serve");
    let test_app = TestApp {
        addr: app.local_addr(),
        feed: app.feed().clone(),
        stopper: app.stopper(),
    };
    tokio::spawn(app.run());
    test_app
}

/// The next text message as JSON, skipping control frames, on any stream (plain or TLS).
/// Panics when none came within [`WAIT`], however many pings came meanwhile (the heartbeat
/// pings every 5 s, so a wait per frame would never end on a socket that only pings).
pub async fn next_json<S>(ws: &mut WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    serde_json::from_str(&within("text message", next_text(ws)).await).expect("server sent JSON")
}

/// The next text message, skipping pings and pongs; unbounded (callers bound their wait).
pub async fn next_text<S>(ws: &mut WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = ws
            .next()
            .await
            .expect("socket ended")
            .expect("socket error");
        match message {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// The next message of the given `type`, skipping others (e.g. ticks while waiting for a
/// pong). Panics when none came within [`WAIT`], however many others came meanwhile.
pub async fn next_of_type(ws: &mut Ws, kind: &str) -> Value {
    let found = async {
        loop {
            let message = next_json(ws).await;
            if message["type"] == kind {
                return message;
            }
        }
    };
    within(format!("{kind:?} message"), found).await
}

/// `future`'s output, or a panic saying no `what` came once [`WAIT`] has passed. For a wait
/// for one message among others: bounded as a whole, so a message that never comes fails the
/// test even while others keep coming (a wait per message would then never end).
pub async fn within<T>(
    what: impl std::fmt::Display,
    future: impl std::future::Future<Output = T>,
) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
}

/// Sends a JSON value as a text message.
pub async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send");
}

/// Reads `hello`, asserting it comes first.
pub async fn hello(ws: &mut Ws) -> Value {
    let hello = next_json(ws).await;
    assert_eq!(
        hello["type"], "hello",
        "first message must be hello: {hello}"
    );
    hello
}

/// `GET /metrics` as text.
pub async fn metrics_text(app: &TestApp) -> String {
    let response = reqwest::get(app.http("/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    response.text().await.expect("metrics body")
}

/// The value of one series of `GET /metrics`, e.g. `tickerlab_open_connections{transport="websocket"}`.
/// Panics if the series is missing.
pub fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in /metrics:\n{text}"))
        .parse()
        .expect("a whole number")
}

/// The open WebSocket gauge.
pub const WS_OPEN: &str = "tickerlab_open_connections{transport=\"websocket\"}";

/// Polls `GET /metrics` until `series` satisfies `ok` (the server updates counters when a
/// session ends, a moment after the client sees the close). Panics after [`WAIT`].
pub async fn wait_for_metric(app: &TestApp, series: &str, ok: impl Fn(u64) -> bool) -> u64 {
    let start = std::time::Instant::now();
    loop {
        let value = metric(&metrics_text(app).await, series);
        if ok(value) {
            return value;
        }
        assert!(start.elapsed() < WAIT, "{series} stuck at {value}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `GET /metrics` until `read` finds what it looks for in the page, and returns it: for
/// a condition on several series of one page. Panics naming `what` after [`WAIT`].
pub async fn wait_for_metrics<T>(app: &TestApp, what: &str, read: impl Fn(&str) -> Option<T>) -> T {
    let read = &read;
    wait_for(what, || async move { read(&metrics_text(app).await) }).await
}

/// Reads until the server's close frame, skipping what comes before it; returns its code and
/// reason. Panics when none came within [`WAIT`], however many ticks came meanwhile.
pub async fn close_of(ws: &mut Ws) -> (u16, String) {
    let close = async {
        loop {
            let message = ws
                .next()
                .await
                .expect("socket ended without a close frame")
                .expect("socket error");
            if let Message::Close(frame) = message {
                let frame = frame.expect("a close frame with a code");
                return (u16::from(frame.code), frame.reason.to_string());
            }
        }
    };
    within("close frame", close).await
}

/// Reads `n` ticks and asserts their `seq` are consecutive: a client that is being served
/// normally. Bad-input tests call this on a bystander to show it was not affected.
pub async fn assert_streaming(ws: &mut Ws, n: usize) {
    let mut last: Option<u64> = None;
    for _ in 0..n {
        let tick = next_of_type(ws, "tick").await;
        let seq = tick["seq"].as_u64().expect("seq");
        if let Some(last) = last {
            assert_eq!(seq, last + 1, "bystander missed a tick");
        }
        last = Some(seq);
    }
}

/// Waits until the server at `addr` reports a held long poll in `/metrics` (raw HTTP, so it
/// works against a child process too). Panics after [`WAIT`].
pub async fn wait_until_held(addr: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let start = std::time::Instant::now();
    loop {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(
                format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .expect("write");
        let mut text = String::new();
        stream.read_to_string(&mut text).await.expect("read");
        if text.contains("tickerlab_open_connections{transport=\"longpoll\"} 1\n") {
            return;
        }
        assert!(start.elapsed() < WAIT, "no held long poll in /metrics");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `probe` until it returns `Some`, and returns what it found: the way a test waits for
/// the condition it asserts, instead of sleeping and hoping. On an idle machine it returns
/// at once; a loaded one only makes it wait longer. Panics naming `what` after [`WAIT`].
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(start.elapsed() < WAIT, "waited {WAIT:?} for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the feed has made at least `n` ticks (instead of sleeping and hoping a loaded
/// machine kept up). The feed counts a tick just before it publishes it: in a test on a
/// multi-threaded runtime the newest may reach readers a moment later. Panics after [`WAIT`].
pub async fn wait_for_ticks(app: &TestApp, n: u64) {
    let start = std::time::Instant::now();
    while app.feed.ticks() < n {
        assert!(
            start.elapsed() < WAIT,
            "the feed made only {} ticks",
            app.feed.ticks()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The standard output of a started binary, past its URL line.
pub type ChildLines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// The real `tickerlab` binary, started on 127.0.0.1 port 0 with `args`, as a user would:
/// returns the child (killed if dropped), the address from the URL line it prints, and the
/// rest of its stdout, which the caller keeps reading so the pipe never fills.
pub async fn start_binary(args: &[&str]) -> (tokio::process::Child, String, ChildLines) {
    let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tickerlab"));
    start(command, args).await
}

/// [`start_binary`] with the open-file limit of a small machine (`ulimit -n LIMIT`): a shell
/// sets the limit, then `exec`s the binary, so the child's pid is the server's.
pub async fn start_binary_with_open_file_limit(
    limit: u64,
    args: &[&str],
) -> (tokio::process::Child, String, ChildLines) {
    let mut command = tokio::process::Command::new("sh");
    command.args([
        "-c",
        &format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
        env!("CARGO_BIN_EXE_tickerlab"),
    ]);
    start(command, args).await
}

/// Runs `command` (the binary, or a shell that `exec`s it) with `--port 0` and `args`, and
/// waits for the URL line.
async fn start(
    mut command: tokio::process::Command,
    args: &[&str],
) -> (tokio::process::Child, String, ChildLines) {
    use tokio::io::AsyncBufReadExt;
    let mut child = command
        .args(["--port", "0"])
        .args(args)
        .env_remove("PORT")
        .env_remove("HOST")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the tickerlab binary");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = lines
            .next_line()
            .await
            .expect("read stdout")
            .expect("the URL line");
        let url = line
            .strip_prefix("tickerlab listening on http://")
            .or_else(|| line.strip_prefix("tickerlab listening on https://"));
        if let Some(url) = url {
            break url.to_owned();
        }
    };
    (child, addr, lines)
}

/// Sends SIGTERM to a child started with `std::process::Command` and waits for it to exit.
/// Panics if it is still running after [`WAIT`].
pub fn sigterm_and_wait(child: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        assert!(start.elapsed() < WAIT, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts an app and a bystander client that has said hello: the client whose stream the
/// tests of bad input check is unharmed.
pub async fn app_with_bystander(config: Config) -> (TestApp, Ws) {
    let app = spawn_app(config).await;
    let mut bystander = app.ws("/ws").await;
    hello(&mut bystander).await;
    (app, bystander)
}

/// After bad input: the server still answers HTTP and the bystander still gets every tick.
pub async fn assert_unharmed(app: &TestApp, bystander: &mut Ws) {
    assert_streaming(bystander, 5).await;
    let health = reqwest::get(app.http("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

/// A client that has said hello and is reading ticks of the default symbol.
pub async fn greeted_client(app: &TestApp) -> Ws {
    let mut ws = app.ws("/ws").await;
    hello(&mut ws).await;
    ws
}

/// A `subscribe` of ten thousand made-up symbols: past every limit on one message.
pub fn ten_thousand_symbols() -> Value {
    let symbols: Vec<String> = (0..10_000).map(|i| format!("S{i}")).collect();
    serde_json::json!({"type": "subscribe", "symbols": symbols, "id": 4})
}

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A new, private (`0700`) directory.
    pub fn new() -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("tickerlab-tls-test-{}-{n}", std::process::id()));
        // Private, as `SelfSigned::write_to` requires of a directory that already exists.
        let mut builder = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A rustls client configuration that trusts exactly `root` (no system roots) and offers
/// `alpn` (e.g. `h2`; none for a plain HTTP/1.1 or WebSocket client).
pub fn trusting(
    root: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
    alpn: &[&[u8]],
) -> std::sync::Arc<tokio_rustls::rustls::ClientConfig> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).expect("trust the certificate");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    std::sync::Arc::new(config)
}

/// A certificate and key for the real binary (`--tls-cert`, `--tls-key`), made in a private
/// temporary directory that lives as long as the returned [`TempDir`], and the root a client
/// must trust.
pub struct CertificateFiles {
    /// The directory holding both files, removed when this is dropped.
    _dir: TempDir,
    /// The certificate's path.
    pub cert: String,
    /// The private key's path.
    pub key: String,
    /// What a client trusts to reach the server.
    pub root: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
}

impl CertificateFiles {
    /// A fresh self-signed certificate for localhost and 127.0.0.1.
    pub fn new() -> CertificateFiles {
        let dir = TempDir::new();
        let generated = tickerlab::tls::self_signed(&[]).expect("a certificate");
        let (cert, key) = generated.write_to(&dir.0).expect("write the certificate");
        let root = tickerlab::tls::Identity::from_files(&cert, &key)
            .expect("the files just written")
            .certificate()
            .clone();
        CertificateFiles {
            cert: cert.to_str().expect("a UTF-8 path").to_owned(),
            key: key.to_str().expect("a UTF-8 path").to_owned(),
            _dir: dir,
            root,
        }
    }

    /// The flags that serve them.
    pub fn args(&self) -> [&str; 4] {
        ["--tls-cert", &self.cert, "--tls-key", &self.key]
    }
}
