//! The HTTP side: one file per route family, all reading the same [`Feed`].
//!
//! * [`page`]: `GET /` (the comparison page) and `GET /static/...` (its scripts and styles).
//! * [`price`]: `GET /price`, the request/response way to get a price, and `GET /healthz`.
//! * [`longpoll`]: `GET /price/next`, long polling: a request held until the next tick.
//! * [`sse`]: `GET /events`, Server-Sent Events: one response that never ends.
//! * [`ws`]: `GET /ws`, the WebSocket way: one request upgraded to a long-lived socket.
//! * [`class`]: `GET /class?key=KEY`, the instructor's class view, and its socket.
//! * [`connection`]: what one connection may cost (writes that stall, a client that stopped
//!   reading), whatever its client does, and how a WebSocket session ends its connection.
//! * [`echo`]: `GET /echo`, a WebSocket that sends every message back (a lesson tool, and
//!   what the Autobahn conformance suite talks to), through the same frame layer as `/ws`.
//! * [`metrics`]: `GET /metrics`, the server's counters, and the middleware counting responses.
//! * [`origin`]: the `Origin` check on `/ws` and `/events` (Cross-Site WebSocket Hijacking).
//! * [`rate_limit`]: the per-connection token bucket that stops message floods.
//! * [`headers`]: the security headers: `nosniff` on every response, Content-Security-Policy
//!   and Referrer-Policy on the HTML page.
//! * [`redact`]: which request headers the `hello` handshake echo shows, and which it redacts.
//! * [`protocol`]: HTTP's own rules: `HEAD` and `405` with `Allow`, the 32 KiB request-head
//!   limit (`431`), HTTP/1.1 for a WebSocket.
//! * [`query`]: the query-string parser every route shares (length limit, typed, clear `400`).
//! * [`server`]: how a connection reaches the app (TLS, HTTP/1, the guarded I/O).
//! * [`error`]: the JSON error body every route uses.

pub mod class;
pub mod connection;
pub mod echo;
pub mod error;
pub mod headers;
pub mod longpoll;
pub mod metrics;
pub mod origin;
pub mod page;
pub mod price;
pub mod protocol;
pub mod query;
pub mod rate_limit;
pub mod redact;
pub mod server;
pub mod sse;
pub mod ws;

use actix_web::web;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::feed::Feed;

/// What every request handler can reach: the feed and the settings, shared by all workers.
#[derive(Clone)]
pub struct AppState {
    /// The one source of prices.
    pub feed: Feed,
    /// The validated start-up configuration.
    pub config: std::sync::Arc<Config>,
    /// Cancelled when the server shuts down: every WebSocket session then closes with 1001.
    pub shutdown: CancellationToken,
    /// The server's counters, exposed at `GET /metrics`.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// The class: the pages' reports and votes, for the instructor's view (`/class`).
    pub class: std::sync::Arc<crate::class::Class>,
}

/// Registers every route. `serve` calls this; so can a test that builds its own `App`.
///
/// Every route is a `GET` route that also answers `HEAD`; other methods get `405` with
/// `Allow` (see [`protocol`]).
pub fn routes(cfg: &mut web::ServiceConfig) {
    use protocol::get_and_head;
    cfg.service(get_and_head("/", page::index))
        .service(get_and_head("/static/{path:.*}", page::asset))
        .service(get_and_head("/price", price::price))
        .service(get_and_head("/price/next", longpoll::next))
        .service(get_and_head("/events", sse::events))
        .service(get_and_head("/healthz", price::healthz))
        .service(
            get_and_head("/ws", ws::upgrade)
                .wrap(actix_web::middleware::from_fn(protocol::require_http11)),
        )
        .service(
            get_and_head("/echo", echo::upgrade)
                .wrap(actix_web::middleware::from_fn(protocol::require_http11)),
        )
        .service(get_and_head("/metrics", metrics::metrics))
        .service(get_and_head("/class", class::page))
        .service(
            get_and_head("/class/ws", class::upgrade)
                .wrap(actix_web::middleware::from_fn(protocol::require_http11)),
        )
        .default_service(web::to(not_found));
}

/// Any other path: a `404` that names the routes that exist.
async fn not_found(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    error::ApiError::not_found(format!(
        "no route {} {}: try GET /, /price?symbol=NAME, /price/next?symbol=NAME&after=SEQ, \
         /events?symbols=A,B, /ws?symbols=A,B, /echo, /healthz, /metrics or /class?key=KEY",
        req.method(),
        req.path()
    ))
    .error_response()
}
