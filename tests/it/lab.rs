//! The simulated network (`--lab-rtt-ms`): the same app and feed through a relay that delays
//! every chunk by half the round trip each way.
//!
//! Every assertion is a lower bound or a count: "took at least one round trip", "no seq
//! missing", "some seqs missing", "never more than the cap". A loaded machine only makes
//! things slower, so none of them can fail because the machine is busy; waits have generous
//! deadlines instead of upper bounds.

use crate::common;
use common::browser;
use common::{WAIT, hello, next_json};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tickerlab::lab::{MAX_IN_FLIGHT_BYTES, Relay};
use tickerlab::{Config, Stopper};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// The round trip the tests dial: a phone on a mobile network.
const RTT: Duration = Duration::from_millis(150);

/// A running app with its simulated network.
struct LabApp {
    /// The direct listener.
    addr: SocketAddr,
    /// The simulated network's listener.
    lab: SocketAddr,
    relay: Relay,
    tls_root: Option<CertificateDer<'static>>,
    _stopper: Stopper,
}

/// Starts the real app on 127.0.0.1:0 with the lab at `RTT`, on top of `config`.
async fn spawn_lab_app(config: Config) -> LabApp {
    let config = Config {
        lab_rtt_ms: Some(RTT.as_millis() as u64),
        ..config
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let app = tickerlab::serve(config, listener).expect("serve");
    let lab_app = LabApp {
        addr: app.local_addr(),
        lab: app.lab_addr().expect("the lab is on"),
        relay: app.lab().expect("the lab is on").clone(),
        tls_root: app.tls().map(|identity| identity.certificate().clone()),
        _stopper: app.stopper(),
    };
    tokio::spawn(app.run());
    lab_app
}

/// The tests' usual config: fast ticks, fixed seed, two workers.
fn config() -> Config {
    common::test_config()
}

#[tokio::test]
async fn a_price_through_the_simulated_network_takes_at_least_one_round_trip() {
    let app = spawn_lab_app(config()).await;
    assert_ne!(app.lab, app.addr, "a second listener");
    let client = reqwest::Client::new();
    // Twice on one keep-alive connection: every request/response pays the round trip, and
    // the first one also pays the TCP handshake's.
    for round_trips in [2, 1] {
        let started = Instant::now();
        let response =
            tokio::time::timeout(WAIT, client.get(format!("http://{}/price", app.lab)).send())
                .await
                .expect("answered within the wait")
                .expect("request");
        assert_eq!(response.status(), 200);
        let elapsed = started.elapsed();
        assert!(
            elapsed >= RTT * round_trips,
            "expected at least {round_trips} round trips: took {elapsed:?}, RTT {RTT:?}"
        );
        let tick: serde_json::Value = response.json().await.expect("JSON tick");
        assert_eq!(tick["type"], "tick");
    }
}

#[tokio::test]
async fn the_page_names_the_network_it_came_through() {
    let app = spawn_lab_app(config()).await;
    let page = |addr: SocketAddr| async move {
        let url = format!("http://{addr}/");
        let response = tokio::time::timeout(WAIT, reqwest::get(url))
            .await
            .expect("answered within the wait")
            .expect("request");
        response.text().await.expect("page text")
    };
    let through_lab = page(app.lab).await;
    assert!(
        through_lab.contains(r#"data-network="simulated" data-rtt-ms="150""#),
        "the lab's page says simulated, 150 ms"
    );
    assert!(through_lab.contains("simulated, 150 ms round trip"));
    assert!(through_lab.contains(&format!(r#"data-other-port="{}""#, app.addr.port())));
    let direct = page(app.addr).await;
    assert!(direct.contains(r#"data-network="direct""#));
    assert!(direct.contains(&format!(r#"data-other-port="{}""#, app.lab.port())));
    // A client cannot talk its way onto the other network: the listener decides, not Host.
    let spoofed = reqwest::Client::new()
        .get(format!("http://{}/", app.addr))
        .header("Host", format!("127.0.0.1:{}", app.lab.port()))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("page text");
    assert!(spoofed.contains(r#"data-network="direct""#));
}

/// Long polls `/price/next` through `addr` until the feed has moved `span` seqs past the
/// first answer; returns every seq received.
async fn long_poll_seqs(addr: SocketAddr, span: u64) -> Vec<u64> {
    let client = reqwest::Client::new();
    let mut seqs: Vec<u64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seqs.len() < 2 || seqs[seqs.len() - 1] - seqs[0] < span {
        assert!(
            Instant::now() < deadline,
            "long polling made no progress: {seqs:?}"
        );
        let after = seqs.last().copied().unwrap_or(0);
        let url = format!("http://{addr}/price/next?symbol=ACME&after={after}");
        let response = tokio::time::timeout(WAIT, client.get(url).send())
            .await
            .expect("long poll answered within the wait")
            .expect("long poll");
        if response.status() == 200 {
            let tick: serde_json::Value = response.json().await.expect("JSON tick");
            seqs.push(tick["seq"].as_u64().expect("seq"));
        }
    }
    seqs
}

#[tokio::test]
async fn over_150_ms_a_websocket_sees_every_tick_of_a_50_ms_feed_and_long_polling_misses_some() {
    let app = spawn_lab_app(Config {
        tick_ms: 50,
        ..config()
    })
    .await;
    // The WebSocket: one subscription, and every seq after the first one, none missing.
    let url = format!("ws://{}/ws?symbols=ACME", app.lab);
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake within the wait")
        .expect("handshake");
    hello(&mut ws).await;
    let pushing = async {
        let mut seqs = Vec::new();
        while seqs.len() < 40 {
            let message = next_json(&mut ws).await;
            if message["type"] == "tick" && message["symbol"] == "ACME" {
                seqs.push(message["seq"].as_u64().expect("seq"));
            }
        }
        seqs
    };
    // At the same time, a long poller through the same network.
    let (pushed, polled) = tokio::join!(pushing, long_poll_seqs(app.lab, 40));
    let push_gaps = missed(&pushed);
    assert_eq!(
        push_gaps, 0,
        "push has no blind moment: every tick arrives ({pushed:?})"
    );
    // After each answer the long poller is blind for one round trip (150 ms), in which a
    // 50 ms feed makes about three prices; only the newest is answered.
    let poll_gaps = missed(&polled);
    assert!(
        poll_gaps > 0,
        "long polling over a 150 ms round trip misses prices of a 50 ms feed ({polled:?})"
    );
}

/// How many seqs are missing between consecutive seqs.
fn missed(seqs: &[u64]) -> u64 {
    seqs.windows(2).map(|w| w[1] - w[0] - 1).sum()
}

#[tokio::test]
async fn tls_works_through_the_relay() {
    let app = spawn_lab_app(Config {
        tls_self_signed: true,
        ..config()
    })
    .await;
    let root = app.tls_root.clone().expect("TLS is on");
    let tls_config = common::trusting(root, &[]);
    let tcp = tokio::net::TcpStream::connect(app.lab)
        .await
        .expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    let started = Instant::now();
    let mut tls = tokio::time::timeout(WAIT, TlsConnector::from(tls_config).connect(name, tcp))
        .await
        .expect("TLS handshake within the wait")
        .expect("TLS handshake through the relay");
    // TCP's handshake, then TLS 1.3's one round trip before the client may send a request.
    assert!(
        started.elapsed() >= 2 * RTT,
        "both handshakes crossed the relay"
    );
    tls.write_all(b"GET /price HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("send the request");
    let mut response = Vec::new();
    // No close_notify from the server is fine: what was read is in `response`.
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""type":"tick""#), "{response}");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_backpressured_and_dropped_not_buffered() {
    // The stalled client never answers a ping either, so its session ends after the client
    // timeout whatever else happens: long enough for the relay to fill first, even on a
    // machine so busy that the feed's ticks come late.
    let app = spawn_lab_app(Config {
        tick_ms: 10,
        heartbeat_secs: 5,
        client_timeout_secs: 10,
        ..config()
    })
    .await;
    let counters = app.relay.counters();
    // A WebSocket client with a tiny receive buffer that sends its handshake, then never
    // reads: the feed's frames pile up towards it.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small buffer");
    let mut stalled = socket.connect(app.lab).await.expect("connect");
    let request = format!(
        "GET /ws?symbols=ACME,GLOBX,INITECH,UMBRL HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        app.lab
    );
    stalled
        .write_all(request.as_bytes())
        .await
        .expect("send handshake");
    // Wait until the relay holds a good part of its budget: the pressure reached it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut peak = 0;
    while peak < MAX_IN_FLIGHT_BYTES / 2 {
        assert!(
            Instant::now() < deadline,
            "the relay never filled up (peak {peak} bytes)"
        );
        peak = peak.max(counters.buffered_bytes.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Then it stays within its cap (one connection, two directions) until the stalled
    // connection is dropped, while other clients are served through the same relay.
    let price = tokio::spawn({
        let lab = app.lab;
        async move { reqwest::get(format!("http://{lab}/price")).await }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    while counters.connections.load(Ordering::Relaxed) > 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled connection was never dropped"
        );
        let buffered = counters.buffered_bytes.load(Ordering::Relaxed);
        peak = peak.max(buffered);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("relay peak for the stalled connection: {peak} bytes");
    assert!(
        peak <= 2 * MAX_IN_FLIGHT_BYTES,
        "the relay held {peak} bytes for one connection, over its cap"
    );
    let price = price
        .await
        .expect("task")
        .expect("another client is served");
    assert_eq!(price.status(), 200);
    assert_eq!(counters.buffered_bytes.load(Ordering::Relaxed), 0);
    drop(stalled);
}

#[tokio::test]
async fn the_binary_prints_the_simulated_networks_url_and_serves_there() {
    let (mut child, addr, mut lines) =
        common::start_binary(&["--lab-rtt-ms", "150", "--lab-jitter-ms", "10"]).await;
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a second line within the wait")
        .expect("read stdout")
        .expect("the simulated network's line");
    let lab = line
        .strip_prefix(
            "simulated network (150 ms round trip, up to 10 ms jitter each way) on http://",
        )
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    assert_ne!(lab, addr);
    let started = Instant::now();
    let response = tokio::time::timeout(WAIT, reqwest::get(format!("http://{lab}/healthz")))
        .await
        .expect("answered within the wait")
        .expect("request");
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= RTT);
    let _ = child.kill().await;
}

#[tokio::test]
async fn a_lab_port_that_is_taken_fails_start_up_with_the_reason() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port();
    let config = Config {
        lab_rtt_ms: Some(50),
        lab_port: Some(port),
        ..config()
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let Err(error) = tickerlab::serve(config, listener) else {
        panic!("started on a taken lab port");
    };
    let message = error.to_string();
    assert!(
        message.contains(&port.to_string()) && message.contains("--lab-port"),
        "{message}"
    );
}

#[tokio::test]
async fn a_browser_on_the_lab_port_sees_the_network_named_and_its_protocol() {
    let Some(browser) = browser::Browser::launch(browser::BrowserOptions::default()).await else {
        return;
    };
    let app = spawn_lab_app(Config {
        tick_ms: 100,
        ..config()
    })
    .await;
    browser.open(&format!("http://{}/", app.lab)).await;
    let badge = browser.text("#network").await;
    assert!(badge.contains("simulated, 150 ms round trip"), "{badge:?}");
    let link = browser
        .wait_for(
            "document.querySelector('#network a')?.href",
            "the link to the direct network",
        )
        .await;
    assert_eq!(
        link.as_str(),
        Some(format!("http://127.0.0.1:{}/", app.addr.port()).as_str())
    );
    // One poll from the page, then the badge names the protocol the browser used for it.
    // (Resource Timing records a request once its body has been read.)
    let protocol = protocol_of_one_poll(&browser).await;
    assert_eq!(protocol.as_str(), Some("http/1.1"));
    browser.finish().await;
}

/// Makes one poll from the page, then waits for the network badge to name the protocol the
/// browser used for it. (Resource Timing records a request once its body has been read.)
async fn protocol_of_one_poll(browser: &browser::Browser) -> serde_json::Value {
    browser
        .js("return fetch('/price').then((r) => r.text()).then(() => null);")
        .await;
    browser
        .wait_for(
            "document.getElementById('network').dataset.nextHopProtocol",
            "the protocol of the page's requests",
        )
        .await
}

/// `GET path` over HTTP/2 (with `:authority` `host:PORT`, and `origin` as its `Origin` if
/// any) on a TLS connection to `addr` that offered only ALPN `h2`; returns the negotiated
/// protocol and the response, its body still to be read.
async fn h2_request(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    host: &str,
    path: &str,
    origin: Option<&str>,
) -> (Vec<u8>, http02::Response<h2::RecvStream>) {
    let tls_config = common::trusting(root.clone(), &[b"h2"]);
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    let tls = tokio::time::timeout(WAIT, TlsConnector::from(tls_config).connect(name, tcp))
        .await
        .expect("TLS handshake within the wait")
        .expect("TLS handshake");
    let alpn = tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec();
    let (mut client, connection) = tokio::time::timeout(WAIT, h2::client::handshake(tls))
        .await
        .expect("HTTP/2 handshake within the wait")
        .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let mut request = http02::Request::get(format!("https://{host}:{}{path}", addr.port()));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let (response, _) = client
        .send_request(request.body(()).expect("a request"), true)
        .expect("send the request");
    let response = tokio::time::timeout(WAIT, response)
        .await
        .expect("answered within the wait")
        .expect("response");
    (alpn, response)
}

/// `GET path` over HTTP/2 (see [`h2_request`]); returns the negotiated protocol, the status
/// and the whole body.
async fn h2_get(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    path: &str,
) -> (Vec<u8>, u16, String) {
    let (alpn, response) = h2_request(addr, root, "localhost", path, None).await;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = tokio::time::timeout(WAIT, body.data())
        .await
        .expect("body within the wait")
    {
        let chunk = chunk.expect("body chunk");
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    (alpn, status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Over HTTP/2 a browser names the host in `:authority` and sends no `Host`: the Origin
/// check reads it there, so the page's own event stream is allowed (it was refused with
/// `403`, breaking SSE in the classroom set-up, where browsers use h2), and a foreign
/// origin is still refused.
#[tokio::test]
async fn over_http2_a_same_origin_event_stream_is_allowed_and_a_foreign_one_refused() {
    let app = spawn_lab_app(Config {
        tls_self_signed: true,
        ..config()
    })
    .await;
    let root = app.tls_root.clone().expect("TLS is on");
    // A host name that is not loopback (every loopback origin is allowed anyway), as in a
    // classroom: the page at https://teacher.example:PORT/ asks for its event stream.
    let host = "teacher.example";
    let own = format!("https://{host}:{}", app.addr.port());
    let (alpn, response) =
        h2_request(app.addr, &root, host, "/events?symbols=ACME", Some(&own)).await;
    assert_eq!(alpn, b"h2");
    assert_eq!(response.status(), 200, "{own}");
    let (_, response) = h2_request(
        app.addr,
        &root,
        host,
        "/events?symbols=ACME",
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn with_tls_an_http2_client_gets_a_price_over_h2_directly_and_through_the_relay() {
    let app = spawn_lab_app(Config {
        tls_self_signed: true,
        ..config()
    })
    .await;
    let root = app.tls_root.clone().expect("TLS is on");
    for addr in [app.addr, app.lab] {
        let (alpn, status, body) = h2_get(addr, &root, "/price").await;
        assert_eq!(alpn, b"h2", "ALPN chose HTTP/2 on {addr}");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""type":"tick""#), "{body}");
    }
}

#[tokio::test]
async fn over_https_through_the_relay_a_browser_uses_http2_and_the_page_says_so() {
    let options = browser::BrowserOptions {
        accept_insecure_certs: true,
        ..browser::BrowserOptions::default()
    };
    let Some(browser) = browser::Browser::launch(options).await else {
        return;
    };
    let app = spawn_lab_app(Config {
        tick_ms: 100,
        tls_self_signed: true,
        ..config()
    })
    .await;
    browser
        .open(&format!("https://localhost:{}/", app.lab.port()))
        .await;
    let protocol = protocol_of_one_poll(&browser).await;
    assert_eq!(protocol.as_str(), Some("h2"));
    let badge = browser.text("#network").await;
    assert!(badge.contains("HTTP/1.1 estimates"), "{badge:?}");
    // The WebSocket pane still connects: browsers open wss:// over HTTP/1.1 of its own.
    browser
        .wait_for(
            "document.querySelector('#pane-ws .ws-state')?.textContent === 'open'",
            "the WebSocket to open",
        )
        .await;
    browser.finish().await;
}

/// An HTTP/2 connection may hold at most 100 streams at once: the server advertises
/// `SETTINGS_MAX_CONCURRENT_STREAMS` 100 (h2's own default is no limit, which let one
/// connection open 50 000 streams and hold ~1 GB). h2 enforces what it advertises.
#[tokio::test]
async fn over_http2_the_server_allows_at_most_100_concurrent_streams() {
    let app = spawn_lab_app(Config {
        tls_self_signed: true,
        ..config()
    })
    .await;
    let root = app.tls_root.clone().expect("TLS is on");
    let tls_config = common::trusting(root, &[b"h2"]);
    let tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let tls = TlsConnector::from(tls_config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let (mut client, mut connection) = h2::client::handshake(tls).await.expect("HTTP/2");
    let request = http02::Request::get(format!("https://localhost:{}/price", app.addr.port()))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).expect("send");
    // Drive the connection until the answer: by then the server's SETTINGS are in.
    let response = tokio::time::timeout(WAIT, async {
        tokio::select! {
            response = response => response,
            ended = &mut connection => panic!("the connection ended: {ended:?}"),
        }
    })
    .await
    .expect("answered within the wait")
    .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(connection.max_concurrent_send_streams(), 100);
}

/// Silent connections to the lab port do not keep their relay (and its three file
/// descriptors) forever: the app answers them `408` after 5 s and closes, the relay passes
/// the close on, and a client that neither sends nor closes is dropped a second later.
#[tokio::test]
async fn silent_connections_to_the_lab_port_are_released_after_the_app_gives_up() {
    const SILENT: usize = 20;
    let app = spawn_lab_app(config()).await;
    let mut silent = Vec::new();
    for _ in 0..SILENT {
        silent.push(
            tokio::net::TcpStream::connect(app.lab)
                .await
                .expect("connect"),
        );
    }
    let counters = app.relay.counters();
    common::wait_for("the relay took every silent connection", || async {
        (counters.connections.load(Ordering::Relaxed) == SILENT).then_some(())
    })
    .await;
    // Within the app's request timeout (5 s) plus the linger, with a wide margin: a
    // condition, not a time, is asserted.
    let deadline = Instant::now() + Duration::from_secs(40);
    while counters.connections.load(Ordering::Relaxed) > 0 {
        assert!(
            Instant::now() < deadline,
            "{} silent connections still relayed",
            counters.connections.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(silent);
}

/// The simulated network's address, from the line the binary prints after its URL.
async fn lab_address(lines: &mut common::ChildLines) -> String {
    let line = common::within("the simulated network's line", lines.next_line())
        .await
        .expect("read stdout")
        .expect("the simulated network's line");
    line.rsplit_once("://")
        .map(|(_, addr)| addr.to_owned())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
}

/// Runs the binary with the simulated network and its wire tap (and `extra` flags), opens a
/// WebSocket through the lab port (`wss://` when `root` is given), reads three ticks, and
/// returns the text of the first and every line the tap printed meanwhile.
async fn tapped_ticks(
    extra: &[&str],
    root: Option<CertificateDer<'static>>,
) -> (String, Vec<String>) {
    let mut args = vec!["--lab-rtt-ms", "10", "--lab-tap", "--tick-ms", "100"];
    args.extend_from_slice(extra);
    let (mut child, _addr, mut lines) = common::start_binary(&args).await;
    let lab = lab_address(&mut lines).await;
    // Everything the tap prints, collected as it comes.
    let printed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let collector = printed.clone();
    let reading = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            collector.lock().unwrap().push(line);
        }
    });
    let tcp = tokio::net::TcpStream::connect(&lab).await.expect("connect");
    let texts = match root {
        None => {
            let url = format!("ws://{lab}/ws?symbols=ACME");
            let (ws, _) = tokio_tungstenite::client_async(url, tcp)
                .await
                .expect("101");
            three_ticks(ws).await
        }
        Some(root) => {
            let tls = TlsConnector::from(common::trusting(root, &[]))
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .expect("TLS handshake");
            let url = format!("wss://{lab}/ws?symbols=ACME");
            let (ws, _) = tokio_tungstenite::client_async(url, tls)
                .await
                .expect("101");
            three_ticks(ws).await
        }
    };
    // The tap prints a chunk before the relay forwards it, so by now every tick's line is
    // on its way; wait until the tap has shown the last tick's chunk (a frame or a record).
    common::wait_for("the tap's lines for the ticks", || async {
        let printed = printed.lock().unwrap();
        let server_lines = printed
            .iter()
            .filter(|l| l.contains("server -> client"))
            .count();
        // And the client's message: a frame over ws://, a record over wss://.
        let sent = printed.iter().any(|l| {
            l.contains("client -> server: frame")
                || l.contains("client -> server: tls record: application_data")
        });
        (server_lines >= 4 && sent).then_some(())
    })
    .await;
    let _ = child.kill().await;
    reading.abort();
    let printed = printed.lock().unwrap().clone();
    (texts[0].clone(), printed)
}

/// Sends [`PING`] on `ws`, then returns the text of the first three tick messages.
async fn three_ticks<S>(mut ws: tokio_tungstenite::WebSocketStream<S>) -> Vec<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::text(PING))
        .await
        .expect("send a ping message");
    common::within("three ticks", async {
        let mut ticks = Vec::new();
        while ticks.len() < 3 {
            let message = ws.next().await.expect("open").expect("a message");
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message
                && text.contains(r#""type":"tick""#)
            {
                ticks.push(text.to_string());
            }
        }
        ticks
    })
    .await
}

/// The message each tapped client sends: a text frame, which the client masks.
const PING: &str = r#"{"type":"ping","id":7}"#;

/// `"price":N` as the tick's JSON text has it.
fn price_text(tick: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(tick).expect("JSON");
    let start = tick.find(r#""price":"#).expect("a price");
    let end = tick[start..].find(',').expect("a field after the price");
    assert!(value["price"].is_number());
    tick[start..start + end].to_owned()
}

/// `--lab-tap` over `ws://`: an observer on the path reads the upgrade, every frame's header
/// (the client's with its masking key) and the tick's price in the clear.
#[tokio::test]
async fn the_wire_tap_reads_a_ws_ticks_price_and_the_clients_masking_key() {
    let (tick, printed) = tapped_ticks(&[], None).await;
    let price = price_text(&tick);
    let text = printed.join("\n");
    assert!(
        printed.iter().any(
            |l| l.contains("server -> client: frame FIN=1 opcode=text MASK=0")
                && l.contains(&price)
        ),
        "no tap line shows {price}:\n{text}"
    );
    assert!(
        text.contains("client -> server: http: GET /ws?symbols=ACME HTTP/1.1"),
        "{text}"
    );
    assert!(
        text.contains("server -> client: http: HTTP/1.1 101 Switching Protocols"),
        "{text}"
    );
    // The client's frame: masked, its key and its bytes as sent shown, then unmasked with it.
    assert!(
        printed.iter().any(|l| {
            l.contains("client -> server: frame FIN=1 opcode=text MASK=1")
                && l.contains(" key=")
                && l.contains(" as sent: ")
                && l.ends_with(&format!("(unmasked with that key): {PING}"))
        }),
        "no tap line shows the client's masked frame:\n{text}"
    );
}

/// `--lab-tap` with nobody reading its standard output (a pipe into a paused `less`): the
/// pipe fills at 64 KiB, and a relay that wrote its tap lines itself would block on the next
/// one, with every connection through the simulated network. The tap queues at most
/// `tickerlab::tap::MAX_QUEUED` bytes and drops the rest, so requests through the relay keep
/// being answered and the server's memory stays where it was; once someone reads again, a
/// line says how many were dropped.
///
/// Each request carries a 6 KiB header, which the tap prints whole: 160 of them make about
/// 1 MiB of tap lines, far past the pipe and the queue together.
#[tokio::test]
async fn a_wire_tap_nobody_reads_holds_up_no_request_and_says_what_it_dropped() {
    let (child, _addr, mut lines) = common::start_binary(&["--lab-rtt-ms", "1", "--lab-tap"]).await;
    let pid = child.id().expect("the child's pid");
    let lab = lab_address(&mut lines).await;
    let rss_before = common::process::rss_kib(pid);
    let client = reqwest::Client::new();
    let pad = "a".repeat(6 * 1024);
    for n in 0..160 {
        let response = tokio::time::timeout(
            WAIT,
            client
                .get(format!("http://{lab}/price"))
                .header("x-pad", &pad)
                .send(),
        )
        .await
        .unwrap_or_else(|_| panic!("request {n} through the relay unanswered within {WAIT:?}"))
        .expect("an answer");
        assert_eq!(response.status(), 200, "request {n}");
    }
    let grown = common::process::rss_kib(pid).saturating_sub(rss_before);
    assert!(
        grown < 8 * 1024,
        "the server grew by {grown} KiB while its tap was not read"
    );
    let notice = common::within("the tap's line about the lines it dropped", async {
        loop {
            let line = lines
                .next_line()
                .await
                .expect("read stdout")
                .expect("the server's output goes on");
            if line.starts_with("tap: ") && line.contains("lines not shown") {
                return line;
            }
        }
    })
    .await;
    let dropped: u64 = notice["tap: ".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {notice:?}"));
    assert!(dropped > 0, "{notice}");
}

/// The same over `wss://`: the observer sees TLS records, and the price is in none of them.
#[tokio::test]
async fn the_wire_tap_sees_only_tls_records_for_wss() {
    let files = common::CertificateFiles::new();
    let (tick, printed) = tapped_ticks(&files.args(), Some(files.root.clone())).await;
    let price = price_text(&tick);
    let text = printed.join("\n");
    assert!(text.contains("tls record: application_data"), "{text}");
    assert!(
        !text.contains(&price),
        "the tap shows {price} over wss://:\n{text}"
    );
    assert!(
        !text.contains("GET /ws"),
        "the tap read the upgrade over wss://:\n{text}"
    );
    assert!(
        !text.contains(PING),
        "the tap read the client's message over wss://:\n{text}"
    );
}

/// A relayed connection takes one of `--max-connections` places for as long as it lasts,
/// shared with the app's own long-lived connections: the lab port cannot hold more sockets
/// than the limit says, and once the places are taken through it, the main port's WebSocket
/// handshake gets `503` too. The places come back when the connections close.
///
/// The relayed connections each hold a long poll (a tick a minute, polls held for two), so
/// they keep their places however slowly the test runs: a silent one would be answered
/// `408` by the app after 5 s and let go.
#[tokio::test]
async fn relayed_connections_take_places_of_max_connections() {
    const RELAYED: u64 = 2;
    // Each relayed long poll holds two places: the relay's and the long poll's.
    const MAX: u64 = 2 * RELAYED;
    const LAB: &str = "tickerlab_open_connections{transport=\"lab\"}";
    const LONG_POLLS: &str = "tickerlab_open_connections{transport=\"longpoll\"}";
    let app = spawn_lab_app(Config {
        max_connections: MAX,
        tick_ms: 60_000,
        long_poll_secs: 120,
        ..config()
    })
    .await;
    let metrics = || async {
        reqwest::get(format!("http://{}/metrics", app.addr))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("text")
    };
    let mut held = Vec::new();
    for _ in 0..RELAYED {
        let mut poll = tokio::net::TcpStream::connect(app.lab)
            .await
            .expect("connect");
        poll.write_all(b"GET /price/next?symbol=ACME&after=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("send the long poll");
        held.push(poll);
    }
    common::wait_for("every relayed long poll to hold its places", || async {
        let text = metrics().await;
        (common::metric(&text, LAB) == RELAYED && common::metric(&text, LONG_POLLS) == RELAYED)
            .then_some(())
    })
    .await;
    // One more through the lab: closed at once, without a byte.
    let mut extra = tokio::net::TcpStream::connect(app.lab)
        .await
        .expect("connect");
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(WAIT, extra.read(&mut buf))
        .await
        .expect("closed within the wait");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // And the main port's WebSocket finds no place either.
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.addr)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected 503, got {other:?}"),
    }
    assert_eq!(common::metric(&metrics().await, LAB), RELAYED);
    drop(held);
    common::wait_for("the places to come back", || async {
        (common::metric(&metrics().await, LAB) == 0).then_some(())
    })
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.addr))
        .await
        .expect("a place again");
    hello(&mut ws).await;
}
