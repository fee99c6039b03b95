//! A WebSocket client for the terminal: the lesson's sections 5, 6 and 8, where curl cannot go.
//!
//! It opens **one** WebSocket and keeps it open. Every frame the server pushes is printed the
//! moment it arrives, with its arrival time (milliseconds since the connection opened, and the
//! gap since the previous frame) and its size on the wire (payload plus the RFC 6455 frame
//! header). Whatever you type is sent on the *same* connection, and the answers arrive between
//! the ticks: a persistent, two-way connection you can watch.
//!
//! ```text
//! cargo run --example client                                  # ws://127.0.0.1:8080/ws?symbols=ACME
//! cargo run --example client -- ws://127.0.0.1:8080/ws?symbols=GLOBX
//! cargo run --example client -- --cacert /tmp/tickerlab-tls-8080/cert.pem wss://localhost:8080/ws
//! ```
//!
//! Type, one per line: `subscribe GLOBX`, `unsubscribe ACME`, `ping`, `drop` (ask the server
//! to close the socket), any JSON text (sent as it is), `say ANY TEXT` (sent as it is: for
//! `/echo`, which sends every message back), or `quit` (close with 1000).
//!
//! For scripts and tests: `--send LINE` sends LINE once the socket is open (repeatable, in
//! order, 300 ms apart so each answer shows before the next line), `--frames N` closes after
//! N frames received, `--until TEXT` once a received frame has contained TEXT (repeatable:
//! every TEXT must have been seen), and `--secs N` after N seconds (with `--until`, giving up
//! after N seconds is an error). With none of them, it runs until `quit`, Ctrl-C, or the
//! server closes.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// What the command line asked for.
struct Options {
    url: String,
    cacert: Option<String>,
    send: Vec<String>,
    secs: Option<f64>,
    frames: Option<u64>,
    until: Vec<String>,
}

const USAGE: &str = "usage: cargo run --example client -- [--cacert CERT.pem] [--send LINE]... \
[--frames N] [--until TEXT]... [--secs N] [URL]\n  URL defaults to ws://127.0.0.1:8080/ws?symbols=ACME; \
wss:// needs --cacert (the server's --tls-self-signed prints the file)\n\
  Once connected, type one per line (or pass it with --send):\n\
    subscribe GLOBX | unsubscribe ACME   change what /ws pushes (answered with `subscribed`)\n\
    ping                                 ask /ws for a `pong` (its round trip is printed)\n\
    drop                                 ask /ws to close the socket (close code 1012)\n\
    {\"type\":...}                          any JSON text, sent as it is\n\
    say ANY TEXT                         send ANY TEXT as it is, as one text message: for\n\
                                         /echo, which sends every message back\n\
    quit                                 close the socket with 1000 and exit";

/// Whether `url` is the echo socket, which answers every message with itself and knows no
/// commands: the hints then name only what it does.
fn is_echo(url: &str) -> bool {
    url.split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .is_some_and(|path| path.starts_with("/echo"))
}

/// What to type, for the socket at `url`.
fn hint(url: &str) -> &'static str {
    if is_echo(url) {
        "say TEXT (sent back to you) | {json} | quit"
    } else {
        "subscribe GLOBX | unsubscribe ACME | ping | drop | {json} | say TEXT | quit"
    }
}

/// A failed opening handshake, with what the server said: a refusal (`503` past
/// `--max-connections`, `403` for a foreign Origin, `400` for a bad query) carries its
/// reason in the body, and that is what a person needs to read.
fn handshake_failed(e: tokio_tungstenite::tungstenite::Error) -> String {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            format!(
                "WebSocket handshake refused: HTTP {} {}\n{}",
                status.as_u16(),
                status.canonical_reason().unwrap_or_default(),
                body.trim_end()
            )
        }
        e => format!("WebSocket handshake failed: {e}"),
    }
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        url: "ws://127.0.0.1:8080/ws?symbols=ACME".into(),
        cacert: None,
        send: Vec::new(),
        secs: None,
        frames: None,
        until: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--cacert" => options.cacert = Some(value("--cacert")?),
            "--send" => options.send.push(value("--send")?),
            "--until" => options.until.push(value("--until")?),
            "--secs" => {
                let v = value("--secs")?;
                options.secs = Some(v.parse().map_err(|_| format!("--secs {v}: a number"))?);
            }
            "--frames" => {
                let v = value("--frames")?;
                options.frames = Some(v.parse().map_err(|_| format!("--frames {v}: a count"))?);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            url if !url.starts_with("--") => options.url = url.to_owned(),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if let Err(message) = run(options).await {
        eprintln!("client: {message}");
        std::process::exit(1);
    }
}

/// Either kind of socket the client can hold: `ws://` over TCP, `wss://` over TLS over TCP.
type Socket<S> = tokio_tungstenite::WebSocketStream<S>;

async fn run(options: Options) -> Result<(), String> {
    let request = options
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("{}: {e}", options.url))?;
    let uri = request.uri().clone();
    let host = uri.host().ok_or("the URL names no host")?.to_owned();
    let secure = uri.scheme_str() == Some("wss");
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let host_for_tcp = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tcp = TcpStream::connect((host_for_tcp.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let opened = Instant::now();
    if secure {
        let config = tls_config(options.cacert.as_deref())?;
        let name = ServerName::try_from(host_for_tcp.clone())
            .map_err(|e| format!("{host}: not a TLS server name: {e}"))?;
        let tls = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
        println!(
            "TLS: certificate for {host} checked against the CA file; wss:// is the same WebSocket inside this tunnel"
        );
        let (socket, response) = tokio_tungstenite::client_async(request, tls)
            .await
            .map_err(handshake_failed)?;
        print_upgrade(&options.url, &response, opened);
        session(socket, &options, opened).await
    } else {
        if options.cacert.is_some() {
            return Err("--cacert is for wss:// URLs".into());
        }
        let (socket, response) = tokio_tungstenite::client_async(request, tcp)
            .await
            .map_err(handshake_failed)?;
        print_upgrade(&options.url, &response, opened);
        session(socket, &options, opened).await
    }
}

/// A TLS client that trusts exactly the certificates in `cacert` (no system roots: the
/// classroom's self-signed certificate is the point).
fn tls_config(cacert: Option<&str>) -> Result<Arc<ClientConfig>, String> {
    let path = cacert.ok_or(
        "wss:// needs --cacert FILE: the PEM certificate to trust (a server started with \
         --tls-self-signed prints where it wrote cert.pem)",
    )?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| format!("{path}: {e}"))? {
        let cert = cert.map_err(|e| format!("{path}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("{path}: not a usable certificate: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn print_upgrade(
    url: &str,
    response: &tokio_tungstenite::tungstenite::handshake::client::Response,
    opened: Instant,
) {
    println!(
        "{} connected to {url}: HTTP/1.1 {} {}",
        stamp(opened.elapsed()),
        response.status().as_u16(),
        response.status().canonical_reason().unwrap_or_default()
    );
    for (name, value) in response.headers() {
        println!(
            "           {name}: {}",
            value.to_str().unwrap_or("(binary)")
        );
    }
    println!(
        "           from here on, one TCP connection carries frames both ways; type {}",
        hint(url)
    );
}

/// The connection's life: frames in, lines typed (or `--send`) out, until one side closes.
async fn session<S>(mut socket: Socket<S>, options: &Options, opened: Instant) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut typed = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut scripted = options.send.iter();
    let mut next_scripted = tokio::time::interval(Duration::from_millis(300));
    let deadline = options.secs.map(|s| opened + Duration::from_secs_f64(s));
    let mut received = 0u64;
    let mut awaited: Vec<&str> = options.until.iter().map(String::as_str).collect();
    let mut last_arrival = opened;
    let mut next_id = 1u64;
    loop {
        let until_deadline = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // A frame from the server (or the end of the connection).
            frame = socket.next() => {
                let Some(frame) = frame else {
                    println!("{} connection closed", stamp(opened.elapsed()));
                    return Ok(());
                };
                let frame = frame.map_err(|e| format!("connection failed: {e}"))?;
                let now = Instant::now();
                print_received(&frame, now.duration_since(opened), now.duration_since(last_arrival));
                last_arrival = now;
                received += 1;
                if let Message::Close(_) = frame {
                    return Ok(());
                }
                if let Message::Text(text) = &frame {
                    awaited.retain(|wanted| !text.contains(*wanted));
                }
                let awaited_all = !options.until.is_empty() && awaited.is_empty();
                if awaited_all || options.frames.is_some_and(|n| received >= n) {
                    break;
                }
            }
            // A line the learner typed.
            line = typed.next_line(), if stdin_open => {
                match line {
                    Ok(Some(line)) => {
                        if !send_line(&mut socket, line.trim(), &mut next_id, opened, &options.url).await? {
                            break;
                        }
                    }
                    // End of input (a pipe, or Ctrl-D): keep listening.
                    _ => stdin_open = false,
                }
            }
            // The next `--send` line, one every 300 ms so each answer shows before the next.
            _ = next_scripted.tick(), if scripted.len() > 0 => {
                if let Some(line) = scripted.next()
                    && !send_line(&mut socket, line, &mut next_id, opened, &options.url).await?
                {
                    break;
                }
            }
            _ = until_deadline => {
                close(&mut socket, opened).await?;
                if awaited.is_empty() {
                    return Ok(());
                }
                return Err(format!(
                    "gave up after {} s: no frame contained {awaited:?}",
                    options.secs.unwrap_or_default()
                ));
            }
        }
    }
    close(&mut socket, opened).await
}

/// Closes with 1000 and waits (briefly) for the server's close frame.
async fn close<S>(socket: &mut Socket<S>, opened: Instant) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    println!("{} → close 1000 (bye)", stamp(opened.elapsed()));
    socket
        .send(Message::Close(Some(frame)))
        .await
        .map_err(|e| format!("could not send the close frame: {e}"))?;
    let answer = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(frame)) = socket.next().await {
            if let Message::Close(reason) = frame {
                return reason;
            }
        }
        None
    })
    .await;
    if let Ok(Some(reason)) = answer {
        println!(
            "{} ← close {} ({})",
            stamp(opened.elapsed()),
            u16::from(reason.code),
            reason.reason
        );
    }
    Ok(())
}

/// Turns one typed line into a message and sends it. Returns `false` for `quit`.
async fn send_line<S>(
    socket: &mut Socket<S>,
    line: &str,
    next_id: &mut u64,
    opened: Instant,
    url: &str,
) -> Result<bool, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let id = *next_id;
    let mut words = line.split_whitespace();
    let message = match (words.next(), words.collect::<Vec<_>>()) {
        (None, _) => return Ok(true),
        (Some("quit" | "exit"), _) => return Ok(false),
        (Some(kind @ ("subscribe" | "unsubscribe")), symbols) if !symbols.is_empty() => {
            let symbols: Vec<&str> = symbols.iter().flat_map(|s| s.split(',')).collect();
            // Built by hand only to keep "type" first, as the protocol reference writes it.
            format!(
                r#"{{"type":"{kind}","symbols":{},"id":{id}}}"#,
                json!(symbols)
            )
        }
        (Some("ping"), _) => format!(r#"{{"type":"ping","id":{id},"t":{:.3}}}"#, epoch_ms()),
        (Some("drop"), _) => format!(r#"{{"type":"drop","id":{id}}}"#),
        (Some("say"), _) => line.trim_start()["say".len()..].trim_start().to_owned(),
        _ if line.starts_with('{') => line.to_owned(),
        _ => {
            println!("           (not sent) try: {}", hint(url));
            return Ok(true);
        }
    };
    *next_id += 1;
    // A client's frames are masked: 4 more header bytes than the server's.
    let wire = frame_header_bytes(message.len()) + 4 + message.len();
    println!("{} → text {wire:>4} B {message}", stamp(opened.elapsed()));
    socket
        .send(Message::text(message))
        .await
        .map_err(|e| format!("could not send: {e}"))?;
    Ok(true)
}

fn print_received(frame: &Message, since_open: Duration, gap: Duration) {
    let gap = format!("(+{:.0} ms)", gap.as_secs_f64() * 1e3);
    let at = stamp(since_open);
    match frame {
        Message::Text(text) => {
            let wire = frame_header_bytes(text.len()) + text.len();
            let note = match serde_json::from_str::<Value>(text) {
                Ok(v) if v["type"] == "pong" => v["t"]
                    .as_f64()
                    .map(|t| {
                        format!(
                            "   ← round trip {:.1} ms on the open socket",
                            epoch_ms() - t
                        )
                    })
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let shown = if text.len() > 160 {
                format!(
                    "{}… ({} B of JSON)",
                    &text[..(0..=160)
                        .rev()
                        .find(|&i| text.is_char_boundary(i))
                        .unwrap_or(0)],
                    text.len()
                )
            } else {
                text.to_string()
            };
            println!("{at} ← text {wire:>4} B {gap:>10} {shown}{note}");
        }
        Message::Binary(bytes) => println!("{at} ← binary {} B {gap}", bytes.len()),
        Message::Ping(bytes) => println!(
            "{at} ← ping {:>4} B {gap:>10} the server's heartbeat (answered with a pong automatically)",
            2 + bytes.len()
        ),
        Message::Pong(bytes) => println!("{at} ← pong {:>4} B {gap:>10}", 2 + bytes.len()),
        Message::Close(Some(reason)) => println!(
            "{at} ← close {} ({}): the server ends the session",
            u16::from(reason.code),
            reason.reason
        ),
        Message::Close(None) => println!("{at} ← close (no code)"),
        Message::Frame(_) => {}
    }
}

/// RFC 6455 section 5.2: 2 bytes, plus 2 for 126..=65535 bytes of payload, plus 8 beyond.
fn frame_header_bytes(payload: usize) -> usize {
    match payload {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

/// `[  1234.5 ms]`: time since the connection opened.
fn stamp(since_open: Duration) -> String {
    format!("[{:>8.1} ms]", since_open.as_secs_f64() * 1e3)
}

/// Now, in epoch milliseconds like the server's `ts`.
fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or_default()
}
