//! Hostile HTTP clients (issue 13, the HTTP rows) against the real server, in process: each
//! test plays one bad client on raw sockets on 127.0.0.1, bounded in count and time, and
//! asserts the outcome (a status, a header, the file descriptors of this process, its RSS,
//! a `/metrics` gauge), never how long something took. Waits are for a condition, with a
//! generous deadline, so the tests hold on a loaded machine.

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use common::hostile;
use common::{TestApp, WS_OPEN, metric, metrics_text, spawn_app, test_config};
use tickerlab::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a hostile connection may take to be dropped: the client timeout of these tests
/// (2 s) with a wide margin for a machine whose cores are busy.
const DROPPED: Duration = Duration::from_secs(30);

/// A short client timeout, so a connection that stops reading is given up quickly.
fn short_timeout() -> Config {
    Config {
        heartbeat_secs: 1,
        client_timeout_secs: 2,
        ..test_config()
    }
}

/// Open file descriptors of this process (the server runs in it).
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Waits until `ok()` holds; panics with `what` after `deadline`.
async fn wait_until(what: &str, deadline: Duration, mut ok: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !ok().await {
        assert!(start.elapsed() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `request` on a new connection and reads the whole answer (the request should ask
/// for `Connection: close`, or be HTTP/1.0). Returns the head and the body bytes.
async fn exchange(app: &TestApp, request: &[u8]) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let _ = stream.write_all(request).await; // the server may refuse before reading it all
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(common::WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the server ends the answer");
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    (head, answer[end..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn healthz_ok(app: &TestApp) {
    let response = reqwest::get(app.http("/healthz")).await.expect("healthz");
    assert_eq!(response.status(), 200);
}

// ---- R3: pipelining thousands of requests and never reading -----------------------------------

#[tokio::test]
async fn r3_pipelined_requests_never_read_pin_little_memory_and_are_dropped() {
    let app = spawn_app(short_timeout()).await;
    healthz_ok(&app).await; // warm up: the workers' first allocations are not the clients'
    let (fds_before, rss_before) = (fds(), rss_kib());
    const CLIENTS: usize = 8;
    let pipelined = hostile::pipelined_requests();
    let clients = (0..CLIENTS)
        .map(|_| hostile::pipeline_and_never_read(app.addr, &pipelined, Duration::from_secs(3)));
    let streams: Vec<TcpStream> = futures_util::future::join_all(clients)
        .await
        .into_iter()
        .map(|stream| stream.expect("connect"))
        .collect();
    // Before the fix: ~15 MiB per connection (every request of a 128 KiB read queued).
    let grown = rss_kib().saturating_sub(rss_before);
    eprintln!("RSS grew {grown} KiB for {CLIENTS} pipelining clients");
    assert!(
        grown < 16 * 1024,
        "{CLIENTS} never-reading pipelining clients grew RSS by {grown} KiB"
    );
    healthz_ok(&app).await;
    // The server gives them up: only our own ends of the sockets stay open.
    wait_until(
        "the server never dropped the stalled pipelining connections",
        DROPPED,
        async || fds() <= fds_before + CLIENTS,
    )
    .await;
    drop(streams);
    healthz_ok(&app).await;
}

#[tokio::test]
async fn r3_a_client_that_reads_still_gets_every_pipelined_answer_in_order() {
    let app = spawn_app(test_config()).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let mut requests = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(99);
    requests.extend_from_slice(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(&requests).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(common::WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("all answers within the wait")
        .expect("read");
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 99);
    assert!(text.trim_end().ends_with('}') && text.contains("HTTP/1.1 404"));
}

// ---- R4: event streams that never read ----------------------------------------------------------

#[tokio::test]
async fn r4_an_event_stream_that_cannot_write_is_closed_and_its_place_released() {
    let config = Config {
        max_connections: 3,
        ..short_timeout()
    };
    let app = spawn_app(config).await;
    healthz_ok(&app).await;
    let fds_before = fds();
    let mut streams = Vec::new();
    for _ in 0..3 {
        // Every symbol, so the stream fills the buffers quickly.
        let symbols = "ACME,GLOBX,INITECH,UMBRL";
        let stream = hostile::never_reading_events(app.addr, symbols).await;
        streams.push(stream.expect("a place for every stream"));
    }
    let sse = "tickerlab_open_connections{transport=\"sse\"}";
    wait_until("three streams open", common::WAIT, async || {
        metric(&metrics_text(&app).await, sse) == 3
    })
    .await;
    // The places are taken: a WebSocket is refused meanwhile.
    let refused = tokio_tungstenite::connect_async(app.ws_url("/ws")).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 503),
        "{refused:?}"
    );
    // Nobody reads: each stream is given up, its place and its server-side fd released.
    wait_until(
        "the stalled event streams kept their places",
        DROPPED,
        async || metric(&metrics_text(&app).await, sse) == 0,
    )
    .await;
    wait_until(
        "the stalled event streams kept their fds",
        DROPPED,
        async || fds() <= fds_before + streams.len(),
    )
    .await;
    let mut ws = app.ws("/ws").await;
    common::hello(&mut ws).await;
    assert_eq!(metric(&metrics_text(&app).await, WS_OPEN), 1);
}

// ---- R7: HEAD, and 405 with Allow -----------------------------------------------------------

#[tokio::test]
async fn r7_head_answers_like_get_without_a_body() {
    let app = spawn_app(test_config()).await;
    for path in [
        "/healthz",
        "/price",
        "/",
        "/static/js/wire.js",
        "/metrics",
        "/events",
    ] {
        let request = format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (head, body) = exchange(&app, request.as_bytes()).await;
        assert!(head.starts_with("HTTP/1.1 200"), "HEAD {path}: {head}");
        assert!(body.is_empty(), "HEAD {path} sent a body");
        assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
    }
    // The same status as GET when GET would refuse: an unknown symbol is still a 404.
    let (head, body) = exchange(
        &app,
        b"HEAD /price?symbol=NOPE HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(body.is_empty());
    // HEAD /events takes no place: nothing is streamed.
    let text = metrics_text(&app).await;
    assert_eq!(
        metric(&text, "tickerlab_open_connections{transport=\"sse\"}"),
        0
    );
}

#[tokio::test]
async fn r7_other_methods_get_405_with_allow_not_404() {
    let app = spawn_app(test_config()).await;
    for (method, path) in [
        ("POST", "/price"),
        ("DELETE", "/ws"),
        ("PUT", "/"),
        ("OPTIONS", "/events"),
    ] {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let (head, body) = exchange(&app, request.as_bytes()).await;
        assert!(head.starts_with("HTTP/1.1 405"), "{method} {path}: {head}");
        assert_eq!(header(&head, "allow"), Some("GET, HEAD"), "{head}");
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains(method) && body.contains("GET, HEAD"),
            "{body}"
        );
    }
    // A path that does not exist is still a 404, whatever the method.
    let (head, _) = exchange(
        &app,
        b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

// ---- R8 and R9: request-head limits, and nosniff on every refusal ---------------------------------

fn request_with_header_of(bytes: usize) -> Vec<u8> {
    format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "a".repeat(bytes)
    )
    .into_bytes()
}

#[tokio::test]
async fn r8_request_heads_over_32_kib_get_431_and_smaller_ones_are_answered() {
    let app = spawn_app(test_config()).await;
    let (head, _) = exchange(&app, &request_with_header_of(31 * 1024)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "31 KiB header: {head}");
    for size in [33 * 1024, 64 * 1024, 100 * 1024] {
        let (head, body) = exchange(&app, &request_with_header_of(size)).await;
        assert!(head.starts_with("HTTP/1.1 431"), "{size} B header: {head}");
        // Ours: it says why, and carries the security header like every answer of the app.
        assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("at most 32768"), "{body}");
    }
    // Past actix-http's parser buffer (128 KiB) the parser itself refuses: still no 200.
    let (head, _) = exchange(&app, &request_with_header_of(140 * 1024)).await;
    assert!(head.is_empty() || head.starts_with("HTTP/1.1 4"), "{head}");
    eprintln!("a 140 KiB header got: {:?}", head.lines().next());
    healthz_ok(&app).await;
}

#[tokio::test]
async fn r9_actix_own_refusals_carry_nosniff_too() {
    let app = spawn_app(test_config()).await;
    // 400: a request actix-http cannot parse (no route ever sees it).
    let (head, _) = exchange(&app, b"GARBAGE\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(
        header(&head, "x-content-type-options"),
        Some("nosniff"),
        "{head}"
    );
    // 431: a head over the parser's own 128 KiB buffer.
    let (head, _) = exchange(&app, &request_with_header_of(140 * 1024)).await;
    if !head.is_empty() {
        assert!(head.starts_with("HTTP/1.1 431"), "{head}");
        assert_eq!(
            header(&head, "x-content-type-options"),
            Some("nosniff"),
            "{head}"
        );
    }
    // 408: a first request head that never ends (actix-http waits 5 s for it).
    let (head, _) = exchange(&app, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert_eq!(
        header(&head, "x-content-type-options"),
        Some("nosniff"),
        "{head}"
    );
}

// ---- R10: HTTP/1.0 ------------------------------------------------------------------------------

#[tokio::test]
async fn r10_an_http_1_0_websocket_handshake_gets_400_with_the_reason() {
    let app = spawn_app(test_config()).await;
    let (head, body) = exchange(
        &app,
        b"GET /ws HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.0 400"), "{head}");
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("HTTP/1.1") && body.contains("RFC 6455"),
        "{body}"
    );
    let text = metrics_text(&app).await;
    assert_eq!(metric(&text, WS_OPEN), 0);
    assert_eq!(
        metric(
            &text,
            "tickerlab_handshakes_refused_total{reason=\"not_a_handshake\"}"
        ),
        1
    );
}

#[tokio::test]
async fn r10_an_http_1_0_event_stream_is_not_chunked() {
    let app = spawn_app(test_config()).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let (head, mut rest) =
        common::raw::request(&mut stream, "GET /events HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert_eq!(header(&head, "transfer-encoding"), None, "{head}");
    assert_eq!(header(&head, "content-length"), None, "{head}");
    // The body is the event stream itself, no chunk sizes in between.
    while rest.len() < 5 {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(common::WAIT, stream.read(&mut chunk))
            .await
            .expect("the stream's first bytes")
            .expect("read");
        assert!(n > 0, "closed early");
        rest.extend_from_slice(&chunk[..n]);
    }
    assert!(
        rest.starts_with(b"retry"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
}

// ---- R11: the hello handshake echo redacts credentials --------------------------------------------

#[tokio::test]
async fn r11_hello_names_credential_headers_but_never_shows_them() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app(test_config()).await;
    let mut request = app.ws_url("/ws").into_client_request().expect("request");
    let secrets = [
        ("proxy-authorization", "Basic c2VjcmV0LXByb3h5"),
        ("authorization", "Bearer secret-token"),
        ("cookie", "session=secret-cookie"),
        ("x-api-key", "secret-key"),
    ];
    for (name, value) in secrets {
        request
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("handshake");
    let hello = common::hello(&mut ws).await;
    let text = hello.to_string();
    assert!(
        !text.contains("secret"),
        "a credential reached hello: {text}"
    );
    let headers = hello["handshake"]["request"]["headers"]
        .as_array()
        .expect("headers");
    for (name, value) in secrets {
        let shown = headers
            .iter()
            .find(|pair| pair[0] == name)
            .unwrap_or_else(|| panic!("{name} is not named"));
        assert_eq!(shown[1], format!("(redacted, {} bytes)", value.len()));
    }
    // What the lesson needs is still shown as received.
    let key = headers
        .iter()
        .find(|pair| pair[0] == "sec-websocket-key")
        .expect("the key");
    assert_ne!(key[1], "");
    assert!(!key[1].as_str().unwrap_or_default().contains("redacted"));
}

// ---- R13: a publisher gives its Redis lease back on SIGTERM ---------------------------------------

#[tokio::test]
async fn r13_a_publisher_stopped_with_sigterm_releases_its_lease_for_a_replacement() {
    use std::io::BufRead;
    let Some(redis) = redis_server::RedisServer::start() else {
        return;
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tickerlab"))
        .args(["--port", "0", "--tick-ms", "50", "--feed-publisher"])
        .args(["--redis", &redis.url()])
        .env_remove("PORT")
        .env_remove("HOST")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the publisher");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let listening = lines
        .find_map(|line| {
            line.ok()
                .filter(|l| l.starts_with("tickerlab listening on"))
        })
        .expect("the URL line");
    assert!(listening.contains("http://"), "{listening}");
    let mut con = redis.connection().expect("a Redis connection");
    let holder: Option<String> = redis::cmd("GET")
        .arg(tickerlab::backplane::LEASE_KEY)
        .query(&mut con)
        .expect("GET lease");
    assert!(holder.is_some(), "the running publisher holds the lease");

    let status = common::sigterm_and_wait(&mut child);
    assert!(status.success(), "{status:?}");
    // Released on the way out, not left to expire (it would live up to 3 s more).
    let holder: Option<String> = redis::cmd("GET")
        .arg(tickerlab::backplane::LEASE_KEY)
        .query(&mut con)
        .expect("GET lease");
    assert_eq!(holder, None, "the stopped publisher still holds the lease");
    // So a replacement starts at once.
    let replacement = Config {
        redis: Some(redis.url()),
        feed_publisher: true,
        tick_ms: 50,
        ..test_config()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let app = tickerlab::serve(replacement, listener).expect("the replacement starts at once");
    let stopper = app.stopper();
    let run = tokio::spawn(app.run());
    stopper.stop().await;
    run.await.expect("join").expect("run");
}
