//! # tickerlab
//!
//! A lab for the question "what is a WebSocket, and why does it exist?". One server runs one
//! random-walk price feed and serves it four ways at once, so they can be compared live
//! and measured:
//!
//! * `GET /price`: HTTP request/response. The client asks; the server answers with the
//!   newest price; to learn of a change the client must ask again (polling).
//! * `GET /price/next`: long polling. The server holds the request until there is a newer
//!   price, then answers; the client asks again at once.
//! * `GET /events`: Server-Sent Events. One HTTP response that never ends, one event per
//!   new price: push over plain HTTP, one way only.
//! * `GET /ws`: a WebSocket. One HTTP request is upgraded to a persistent, two-way
//!   connection, and the server *pushes* every new price the moment it exists.
//!
//! ## The map
//!
//! ```text
//!  market (pure)          feed (one task)                    delivery (many)
//!  random walk per  -->   every tick: step each symbol, -->  GET /price : read latest
//!  symbol, seeded         build Tick, serialise ONCE,        /ws session: await change,
//!  no I/O, no clock       publish to a watch channel                      send shared bytes
//! ```
//!
//! * [`backplane`]: several instances, one feed: the Redis publisher and front-end.
//! * [`market`]: the seeded random walk, pure functions.
//! * [`feed`]: the ticking task and its latest-value channel.
//! * [`tick`]: the wire protocol's message types.
//! * [`wire`]: the bytes a tick is sent as (JSON, SSE event, WebSocket frame), built once
//!   per tick and shared by every client.
//! * [`class`]: the instructor's class view: the pages' reports, the class vote, the reveal,
//!   and the cost per transport.
//! * [`config`]: the one configuration struct.
//! * [`subscription`]: which symbols a push client receives, without per-tick allocation.
//! * [`http`]: one module per route family (page, price, long poll, SSE, ws, metrics).
//! * [`metrics`]: the counters behind `GET /metrics`.
//! * [`tls`]: certificates for `https://` and `wss://` (files or self-signed).
//! * [`tap`]: the wire tap on the simulated network (`--lab-tap`): what an observer on the
//!   path reads of `ws://`, and of `wss://`.
//! * [`lab`]: the simulated network (`--lab-rtt-ms`): the same app behind a relay that
//!   delays every byte by half a round trip each way.
//!
//! [`serve`] starts the whole app over a listener you bind, so a test or a bench runs the
//! real server on `127.0.0.1:0`; `main.rs` only parses flags and calls it.

#![warn(missing_docs)]

pub mod backplane;
pub mod class;
pub mod config;
pub mod feed;
pub mod http;
pub mod lab;
pub mod market;
pub mod memory;
pub mod metrics;
pub mod subscription;
pub mod tap;
pub mod tick;
pub mod tls;
mod wake;
pub mod wire;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use http::server::Site;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use feed::Feed;

use feed::FeedTask;
use market::Market;

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting broke a rule.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// `--redis`: the backplane could not start (bad URL, Redis unreachable for a
    /// publisher, or another publisher already running).
    #[error(transparent)]
    Backplane(#[from] backplane::BackplaneError),
    /// The listener could not be used.
    #[error("cannot serve on the given listener: {0}")]
    Listen(#[from] std::io::Error),
    /// The TLS certificate or key could not be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// `--lab-rtt-ms`: the simulated network's port could not be bound.
    #[error(
        "cannot open the simulated network's port {0}: {1} (choose another with --lab-port, or 0 for any free one)"
    )]
    LabListen(SocketAddr, std::io::Error),
}

/// The kernel send buffer each connection gets, in bytes (Linux doubles it for its own
/// bookkeeping). Left alone, Linux grows a socket's send buffer up to 4 MiB for a client that
/// does not read, so a few thousand stalled clients could pin gigabytes of kernel memory
/// and the server would never notice them. A fixed, modest buffer bounds that, and lets a
/// stalled client's back-pressure reach its session, which then skips ticks ("latest value
/// wins"). Ticks are small; 16 KiB is plenty for them and for the page's assets.
pub const SEND_BUFFER_BYTES: usize = 16 * 1024;

/// How long shutdown waits for in-flight HTTP requests after closing every WebSocket.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running tickerlab: the HTTP server and its feed. Drive it with [`Tickerlab::run`].
pub struct Tickerlab {
    server: Server,
    feed: Feed,
    feed_task: FeedTask,
    addr: SocketAddr,
    stop: Stopper,
    tls: Option<tls::Identity>,
    lab: Option<lab::Relay>,
    class: Arc<class::Class>,
}

/// Stops a running tickerlab gracefully: closes every WebSocket with 1001 (going away),
/// lets in-flight HTTP requests finish, then stops the server. Cheap to clone.
#[derive(Clone)]
pub struct Stopper {
    shutdown: CancellationToken,
    server: ServerHandle,
}

impl Stopper {
    /// Starts the graceful shutdown and waits until the server has stopped.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.server.stop(true).await;
    }
}

/// Starts tickerlab on `listener` (already bound, e.g. to `127.0.0.1:0`): starts the feed,
/// builds the routes and returns the running app. Must be called inside a Tokio runtime (an
/// actix or `#[tokio::main]` one); the HTTP workers get threads of their own.
pub fn serve(config: Config, listener: TcpListener) -> Result<Tickerlab, StartError> {
    config.validate()?;
    // Before anything starts: a bad certificate or key fails here, once, with its reason.
    let identity = tls::identity_for(&config)?;
    let addr = listener.local_addr()?;
    tune_listener(&listener, &config)?;
    let seed = config.seed.unwrap_or_else(rand::random);
    let market = Market::new(config.symbol_specs(), seed);
    let (feed, feed_task) = match &config.redis {
        None => Feed::start(market, config.tick_interval()),
        Some(url) if config.feed_publisher => {
            let describe = format!("http://{addr}");
            backplane::publisher::start(url, market, config.tick_interval(), &describe)?
        }
        Some(url) => {
            backplane::subscriber::start(url, config.symbols.clone(), config.tick_interval())?
        }
    };
    let shutdown = CancellationToken::new();
    let class_key = config.class_key.clone().unwrap_or_else(class::random_key);
    let state = http::AppState {
        feed: feed.clone(),
        config: Arc::new(config.clone()),
        shutdown: shutdown.clone(),
        metrics: Default::default(),
        class: Arc::new(class::Class::new(class_key)),
    };
    memory::spawn_trimmer(state.metrics.clone(), shutdown.clone());
    let class = state.class.clone();
    match &config.redis {
        Some(url) => class::spawn(
            class.clone(),
            state.metrics.clone(),
            backplane::class::Redis::new(url)?,
            shutdown.clone(),
        ),
        None => class::spawn(
            class.clone(),
            state.metrics.clone(),
            class::Alone,
            shutdown.clone(),
        ),
    }
    let metrics = state.metrics.clone();
    let lab = lab_listeners(&config, addr)?;
    let lab_info = actix_web::web::Data::new(lab.as_ref().map(|(_, _, info)| *info));
    let scheme = if identity.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, seed, tick_ms = config.tick_ms, symbols = ?config.symbols, "starting");
    // actix-web's `HttpServer`, taken apart: the same actix-server workers and HTTP/1
    // service it would build, plus `GuardedIo` between each socket and the dispatcher (see
    // `http::connection` for why HttpServer cannot do this).
    let mut builder = actix_server::Server::build()
        // Signals are handled by the caller through `Stopper`, so that WebSockets are closed
        // with 1001 before the server stops, not cut.
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs());
    if let Some(workers) = config.workers {
        builder = builder.workers(workers);
    }
    let site = Site {
        state,
        addr,
        secure: identity.is_some(),
        write_timeout: Duration::from_secs(config.client_timeout_secs),
        shutdown: builder.graceful_shutdown_signal(),
        lab: lab_info.clone(),
        handshakes: Some(Default::default()),
    };
    let site_for_lab = site.clone();
    // The same app either way: TLS only wraps the connection, so every route (the page,
    // /price and the /ws upgrade) is served unchanged over https:// and wss://.
    builder = match &identity {
        Some(identity) => {
            let tls = identity.server_config()?;
            builder.listen("tickerlab-https", listener, move || site.https(tls.clone()))?
        }
        None => builder.listen("tickerlab-http", listener, move || site.http())?,
    };
    // The simulated network's relay connects to a listener of its own, served the same way
    // (TLS included): requests arriving there are known to have crossed the relay, because
    // their connection's local address is that listener's.
    let mut relay_parts = None;
    if let Some((public, upstream, info)) = lab {
        let upstream_site = Site {
            addr: info.upstream,
            // Every connection here comes from the relay, which holds the client's place.
            handshakes: None,
            ..site_for_lab
        };
        builder = match &identity {
            Some(identity) => {
                let tls = identity.server_config()?;
                builder.listen("tickerlab-lab", upstream, move || {
                    upstream_site.https(tls.clone())
                })?
            }
            None => builder.listen("tickerlab-lab", upstream, move || upstream_site.http())?,
        };
        relay_parts = Some((public, info));
    }
    // Before the server runs, so that a relay that cannot start leaves nothing running.
    // (The internal listener is bound already: early connections wait in its backlog.)
    let lab = match relay_parts {
        Some((public, info)) => Some(lab::Relay::start(
            public,
            info.upstream,
            lab::RelaySettings {
                link: info.link,
                max_connections: config.max_connections,
                stall: Duration::from_secs(config.client_timeout_secs),
                tap: config.lab_tap,
            },
            metrics,
            shutdown.clone(),
        )?),
        None => None,
    };
    let server = builder.run();
    let stop = Stopper {
        shutdown,
        server: server.handle(),
    };
    Ok(Tickerlab {
        server,
        feed,
        feed_task,
        addr,
        stop,
        tls: identity,
        lab,
        class,
    })
}

/// The socket options of a listener the app serves, which every socket it accepts inherits
/// (Linux copies them at accept, so no connection costs a system call for them):
///
/// - the send buffer ([`SEND_BUFFER_BYTES`]): what a client that does not read can pin;
/// - `TCP_NODELAY`: every write of the server is a whole message (a frame, a response), to go
///   out at once. With Nagle's algorithm on, a small write while the previous one is still
///   unacknowledged waits for that acknowledgement, which a client may delay by up to 40 ms
///   (a ping right after a tick, then the next tick). actix-http sets it only on connections
///   it accepts itself as bare TCP streams; ours come to it wrapped (`GuardedIo`);
/// - the user timeout ([`kernel_write_timeout`]).
fn tune_listener(listener: &TcpListener, config: &Config) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(listener);
    socket.set_send_buffer_size(SEND_BUFFER_BYTES)?;
    socket.set_tcp_nodelay(true)?;
    kernel_write_timeout(listener, Duration::from_secs(config.client_timeout_secs))
}

/// The kernel's floor under every connection: `TCP_USER_TIMEOUT` (Linux) on the listening
/// socket, which accepted sockets inherit. When data the server sent stays unacknowledged, or
/// the peer's receive window stays shut (a client that never reads), for longer than
/// `timeout`, the kernel aborts the connection: the next read or write fails, the connection's
/// task ends and its file descriptor is closed. This holds for every kind of connection (a
/// page load, pipelined requests, an event stream, a WebSocket) and whatever the framework
/// does or forgets to do in process: a peer that stopped reading cannot hold a socket for
/// longer than `--client-timeout-secs` plus a probe interval. (The WebSocket session has its
/// own, gentler timeout in process; this one is the backstop.)
///
/// A connection with nothing to send is not affected: an idle keep-alive or a quiet long poll
/// is left alone. On other systems this does nothing; the in-process timeouts remain.
fn kernel_write_timeout(listener: &TcpListener, timeout: Duration) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    socket2::SockRef::from(listener).set_tcp_user_timeout(Some(timeout))?;
    #[cfg(not(target_os = "linux"))]
    let _ = (listener, timeout);
    Ok(())
}

/// With `--lab-rtt-ms`: binds the simulated network's public port (on the main listener's
/// address: `--lab-port`, else the next port, or any free one when `--port` is 0) and the
/// internal listener its relay connects to (`127.0.0.1`, any free port).
fn lab_listeners(
    config: &Config,
    addr: SocketAddr,
) -> Result<Option<(TcpListener, TcpListener, lab::Lab)>, StartError> {
    let Some(rtt_ms) = config.lab_rtt_ms else {
        return Ok(None);
    };
    let port = match config.lab_port {
        Some(port) => port,
        None if config.port == 0 => 0,
        None => addr.port().checked_add(1).unwrap_or(0),
    };
    let public_addr = SocketAddr::new(addr.ip(), port);
    let public =
        TcpListener::bind(public_addr).map_err(|e| StartError::LabListen(public_addr, e))?;
    // The same kernel floor under the lab's clients as under the main port's.
    kernel_write_timeout(&public, Duration::from_secs(config.client_timeout_secs))?;
    let upstream = TcpListener::bind(("127.0.0.1", 0))?;
    tune_listener(&upstream, config)?;
    let info = lab::Lab {
        upstream: upstream.local_addr()?,
        link: lab::Link::from_millis(rtt_ms, config.lab_jitter_ms),
        public_port: public.local_addr()?.port(),
        direct_port: addr.port(),
    };
    Ok(Some((public, upstream, info)))
}

impl Tickerlab {
    /// The address the server listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `"https"` when serving TLS, else `"http"`; WebSockets follow: `wss` or `ws`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The certificate and key being served, when TLS is on: its fingerprint, and for a
    /// self-signed one the PEM text to write out for clients to trust.
    pub fn tls(&self) -> Option<&tls::Identity> {
        self.tls.as_ref()
    }

    /// The simulated network's address (`--lab-rtt-ms`): the same app, through the relay.
    pub fn lab_addr(&self) -> Option<SocketAddr> {
        self.lab.as_ref().map(|relay| relay.local_addr())
    }

    /// The simulated network's relay, e.g. to read its counters.
    pub fn lab(&self) -> Option<&lab::Relay> {
        self.lab.as_ref()
    }

    /// The key that opens the class view (`/class?key=...`): `--class-key`, or the random one
    /// made at start-up.
    pub fn class_key(&self) -> &str {
        self.class.key()
    }

    /// The feed, e.g. to read its counters.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// A handle that stops this server gracefully from anywhere.
    pub fn stopper(&self) -> Stopper {
        self.stop.clone()
    }

    /// Serves until stopped (through a [`Stopper`]), then stops the feed (a Redis publisher
    /// also gives its lease back, so that a replacement can start at once).
    pub async fn run(self) -> std::io::Result<()> {
        let result = self.server.await;
        if let Some(relay) = self.lab {
            // The last bytes (WebSocket 1001 closes) are still crossing the relay: give them
            // one trip's time before the runtime, and the relay with it, goes away.
            let link = relay.link();
            tokio::time::sleep(link.rtt / 2 + link.jitter + Duration::from_millis(50)).await;
        }
        self.feed_task.shutdown().await;
        result
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// A socket the app accepts has its listener's options: no Nagle delay, the kernel's write
    /// timeout, and the small send buffer (Linux reports it doubled).
    #[test]
    fn accepted_sockets_inherit_the_listeners_options() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let config = Config {
            client_timeout_secs: 7,
            ..Config::default()
        };
        tune_listener(&listener, &config).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let accepted = socket2::SockRef::from(&accepted);
        assert!(accepted.tcp_nodelay().unwrap(), "TCP_NODELAY");
        assert_eq!(
            accepted.tcp_user_timeout().unwrap(),
            Some(Duration::from_secs(7))
        );
        assert_eq!(accepted.send_buffer_size().unwrap(), 2 * SEND_BUFFER_BYTES);
    }
}
