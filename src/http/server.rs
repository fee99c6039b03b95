//! How a connection reaches the app: the same layers actix-web's `HttpServer` would stack
//! (a TLS handshake for `https://`, actix-http's HTTP/1 service, the app), with
//! [`GuardedIo`] between the socket and the HTTP dispatcher. `HttpServer` offers no hook to
//! wrap a connection's I/O (its `on_connect` only sees the socket), so `serve` builds the
//! actix-server workers itself and each worker asks a [`Site`] for its service. See
//! [`super::connection`] for what the wrapper bounds, and why.

use actix_http::Protocol;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_service::{
    IntoServiceFactory as _, Service as _, ServiceFactoryExt as _, apply_fn_factory, fn_service,
    map_config,
};
use actix_web::dev::ServiceFactory;
use actix_web::rt::net::TcpStream;
use actix_web::{App, middleware, web};

use super::AppState;
use super::connection::GuardedIo;

/// What each worker needs to build its HTTP service: the shared state and the connection
/// settings. `serve` keeps one and the workers clone it.
#[derive(Clone)]
pub struct Site {
    /// The state every handler reaches.
    pub state: AppState,
    /// The address the server listens on (the local address, and [`Listener`]).
    pub addr: SocketAddr,
    /// Serving TLS (`https://`).
    pub secure: bool,
    /// How long a blocked write may make no progress before the connection is dropped
    /// (`--client-timeout-secs`, see [`GuardedIo`]).
    pub write_timeout: Duration,
    /// Resolves when a graceful shutdown starts: idle keep-alive connections then close.
    pub shutdown: actix_server::GracefulShutdownSignal,
    /// The simulated network, when `--lab-rtt-ms` is on: which listener is the relay's (for
    /// the page's network badge, see [`crate::lab::Network::of`]).
    pub lab: web::Data<Option<crate::lab::Lab>>,
    /// The TLS handshakes in progress, per client address (shared by every worker), to hold
    /// each address to its share ([`HANDSHAKES_PER_ADDRESS`]). `None` where every connection
    /// comes from one trusted address: the simulated network's relay, which bounds its own
    /// connections.
    pub handshakes: Option<Handshakes>,
}

/// How fast an HTTP/2 client may send, on average: 64 KiB a second. Every request here is a
/// `GET`, so a browser sends a few hundred bytes per request and a little flow control;
/// HTTP/2's control frames (PRIORITY, WINDOW_UPDATE, PING, SETTINGS, empty DATA,
/// CONTINUATION) are otherwise free to send as fast as the network goes, and one connection
/// flooding PRIORITY frames kept a core busy. HTTP/1.1 needs no such limit: its requests wait
/// undecoded past 4 in flight, and a WebSocket's frames are rate-limited one by one.
pub const H2_READ_BYTES_PER_SEC: u32 = 64 * 1024;

/// How much an HTTP/2 client may send at once before [`H2_READ_BYTES_PER_SEC`] applies: a
/// page load's worth of requests.
pub const H2_READ_BURST_BYTES: u32 = 256 * 1024;

/// How many TLS handshakes one client address may have in progress at once; its next
/// connection is closed before its handshake. actix-tls runs at most 256 handshakes per
/// worker, each for up to 3 s, and stops accepting while they are all taken: without a share
/// per address, one machine opening silent connections (170 a second was enough) keeps them
/// all busy, and every new `https://` client waits seconds for its turn. A browser opens at
/// most 6 connections to one server at once, and an honest handshake takes milliseconds.
pub const HANDSHAKES_PER_ADDRESS: usize = 16;

/// The TLS handshakes in progress, counted per client address (see
/// [`HANDSHAKES_PER_ADDRESS`]). Cheap to clone; every clone counts the same handshakes.
#[derive(Debug, Clone, Default)]
pub struct Handshakes(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl Handshakes {
    /// A place for one handshake from `ip`, held until the returned guard is dropped; `None`
    /// when `ip` already has [`HANDSHAKES_PER_ADDRESS`] in progress.
    fn enter(&self, ip: IpAddr) -> Option<HandshakeGuard> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= HANDSHAKES_PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(HandshakeGuard {
            handshakes: self.clone(),
            ip,
        })
    }

    /// How many handshakes `ip` has in progress now.
    pub fn in_progress(&self, ip: IpAddr) -> usize {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(&ip).copied().unwrap_or(0)
    }
}

/// One handshake's place in [`Handshakes`], given back on drop (done, failed or timed out).
struct HandshakeGuard {
    handshakes: Handshakes,
    ip: IpAddr,
}

impl Drop for HandshakeGuard {
    fn drop(&mut self) {
        let mut counts = self.handshakes.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// The listener that accepted a connection, in every request's connection data: its address
/// (the main port, or the simulated network's internal one) and whether it serves TLS.
#[derive(Debug, Clone, Copy)]
pub struct Listener {
    /// The listening socket's address.
    pub addr: SocketAddr,
    /// Serving `https://` and `wss://`.
    pub secure: bool,
}

impl Listener {
    /// The listener that accepted `req`'s connection (`None` for an app served another way,
    /// e.g. by `HttpServer`).
    pub fn of(req: &actix_web::HttpRequest) -> Option<Listener> {
        req.conn_data::<Listener>().copied()
    }
}

/// The connection-level errors of one worker's service (a TLS handshake or an HTTP/1
/// dispatch that failed); actix-server logs and drops them.
pub type TlsFailure = actix_tls::accept::TlsError<std::io::Error, actix_http::error::DispatchError>;

impl Site {
    /// For plain `http://`: each accepted socket is wrapped, then served.
    pub fn http(
        &self,
    ) -> impl ServiceFactory<
        TcpStream,
        Config = (),
        Response = (),
        Error = actix_http::error::DispatchError,
        InitError = (),
    > + use<> {
        let write_timeout = self.write_timeout;
        let metrics = self.state.metrics.clone();
        fn_service(move |tcp: TcpStream| {
            let peer = tcp.peer_addr().ok();
            std::future::ready(Ok((
                GuardedIo::new(tcp, |tcp| tcp, write_timeout)
                    .metered(metrics.clone(), false)
                    .writable_directly(),
                Protocol::Http1,
                peer,
            )))
        })
        .and_then(self.service())
    }

    /// For `https://`: the TLS handshake first, then the same as [`Site::http`] on the
    /// decrypted stream. ALPN offers `h2` before `http/1.1`: browsers then fetch the page,
    /// polls, long polls and event streams over HTTP/2. A WebSocket still gets an HTTP/1.1
    /// connection of its own: actix-web does not implement RFC 8441 (WebSockets over HTTP/2's
    /// extended CONNECT), so it never advertises it, and browsers fall back to the HTTP/1.1
    /// upgrade. Plain `http://` stays HTTP/1.1 (no h2c).
    pub fn https(
        &self,
        mut tls: rustls::ServerConfig,
    ) -> impl ServiceFactory<
        TcpStream,
        Config = (),
        Response = (),
        Error = TlsFailure,
        InitError = (),
    > + use<> {
        use actix_tls::accept::TlsError;
        use actix_tls::accept::rustls_0_23::{Acceptor, TlsStream};
        let write_timeout = self.write_timeout;
        let handshakes = self.handshakes.clone();
        let metrics = self.state.metrics.clone();
        let meter_metrics = metrics.clone();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // Each handshake holds a place of its client address's share until it ends.
        let acceptor = Acceptor::new(tls);
        apply_fn_factory::<_, _, _, _, TcpStream, TcpStream, _, _>(acceptor, move |tcp, acceptor| {
            let peer = tcp.peer_addr().ok();
            let place = match &handshakes {
                Some(handshakes) => peer.and_then(|peer| handshakes.enter(peer.ip())).map(Some),
                None => Some(None),
            };
            // Without a place the socket is dropped here: closed before any handshake.
            let handshake = place.is_some().then(|| acceptor.call(tcp));
            if handshake.is_none() {
                metrics.refused(crate::metrics::Refusal::TlsPerAddress);
            }
            async move {
                let Some(handshake) = handshake else {
                    return Err(TlsError::Tls(std::io::Error::other(format!(
                        "{peer:?} has {HANDSHAKES_PER_ADDRESS} TLS handshakes in progress: closed"
                    ))));
                };
                let done = handshake.await;
                drop(place);
                done
            }
        })
            .map_init_err(|_| ())
            .map_err(actix_tls::accept::TlsError::into_service_error)
            .map(move |tls: TlsStream<TcpStream>| {
                let peer = tls.get_ref().0.peer_addr().ok();
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let io = GuardedIo::new(tls, |tls| tls.get_ref().0, write_timeout)
                    .metered(meter_metrics.clone(), h2);
                if h2 {
                    let io = io.with_read_limit(H2_READ_BYTES_PER_SEC, H2_READ_BURST_BYTES);
                    (io, Protocol::Http2, peer)
                } else {
                    (io, Protocol::Http1, peer)
                }
            })
            .and_then(self.service().map_err(actix_tls::accept::TlsError::Service))
    }

    /// The HTTP/1 and HTTP/2 service over a guarded connection: the app. The timeouts are
    /// `HttpServer`'s defaults.
    fn service<T>(
        &self,
    ) -> impl ServiceFactory<
        (GuardedIo<T>, Protocol, Option<SocketAddr>),
        Config = (),
        Response = (),
        Error = actix_http::error::DispatchError,
        InitError = (),
    > + use<T>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
    {
        let state = self.state.clone();
        let app = App::new()
            .app_data(web::Data::new(state))
            .app_data(self.lab.clone())
            // Innermost: a head over the limit is refused before any route runs, and its 431
            // still gets the security headers and is counted.
            .wrap(middleware::from_fn(super::protocol::limit_head))
            .wrap(middleware::from_fn(super::headers::security_headers))
            .wrap(middleware::from_fn(super::metrics::count_responses))
            .configure(super::routes)
            .into_factory()
            .map_err(|e| e.error_response());
        // An `App` is served with an `AppConfig` (TLS or not, the server's host and address),
        // and actix-web has no public constructor for one but its default (plain HTTP on
        // localhost:8080). So the app never reads it: what a handler needs to know about
        // the listener comes from the connection's data instead ([`Listener`]).
        let app = map_config(app, |_| actix_web::dev::AppConfig::default());
        let listener = Listener {
            addr: self.addr,
            secure: self.secure,
        };
        let shutdown = self.shutdown.clone();
        actix_http::HttpService::build()
            .graceful_shutdown_signal(move || {
                let shutdown = shutdown.clone();
                async move { shutdown.notified().await }
            })
            .client_request_timeout(Duration::from_secs(5))
            .client_disconnect_timeout(Duration::from_secs(1))
            // A client that closes its socket sends EOF; by default actix keeps serving the
            // request (the client might have only half-closed, still reading), and a held
            // long poll would keep its --max-connections place until --long-poll-secs.
            // Handlers are not cancelled when a peer goes away; only the connection's end
            // drops them. So: EOF ends the connection, and with it the held request. The
            // cost: a client that half-closes after its request (`nc -N`, some scripts) gets
            // no answer.
            .h1_allow_half_closed(false)
            // The HTTP/2 twin of `GuardedIo`'s write timeout: a client that grants a stream no
            // flow-control window never lets its response out, yet the socket never blocks.
            // The stream is reset, and its handler and body (an event stream's place) go.
            .h2_send_timeout(self.write_timeout)
            .local_addr(self.addr)
            .on_connect_ext(move |io: &GuardedIo<T>, data| {
                data.insert(io.handles());
                data.insert(listener);
            })
            .finish(app)
    }
}
