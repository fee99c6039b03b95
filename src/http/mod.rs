//! The HTTP side: one file per route family, all reading the same [`Feed`].
//!
//! * [`page`]: `GET /` (the comparison page) and `GET /static/...` (its scripts and styles).
//! * [`price`]: `GET /price`, the request/response way to get a price, and `GET /healthz`.
//! * [`longpoll`]: `GET /price/next`, long polling: a request held until the next tick.
//! * [`sse`]: `GET /events`, Server-Sent Events: one response that never ends.
//! * [`ws`]: `GET /ws`, the WebSocket way: one request upgraded to a long-lived socket.
//! * [`echo`]: `GET /echo`, a WebSocket that sends every message back (a lesson tool, and
//!   what the Autobahn conformance suite talks to), through the same frame layer as `/ws`.
//! * [`connection`]: ending connections a client stopped reading: `TCP_USER_TIMEOUT` on the
//!   listener, and the recorded socket a WebSocket session resets when it gives up.
//! * [`metrics`]: `GET /metrics`, the server's counters, and the middleware counting responses.
//! * [`origin`]: the `Origin` check on `/ws` and `/events` (Cross-Site WebSocket Hijacking).
//! * [`rate_limit`]: the per-connection token bucket that stops message floods.
//! * [`headers`]: the security headers: `nosniff` on every response, Content-Security-Policy
//!   and Referrer-Policy on the HTML page.
//! * [`query`]: the query-string parser every route shares (length limit, typed, clear `400`).
//! * [`error`]: the JSON error body every route uses.

pub mod connection;
pub mod echo;
pub mod error;
pub mod headers;
pub mod longpoll;
pub mod metrics;
pub mod origin;
pub mod page;
pub mod price;
pub mod query;
pub mod rate_limit;
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
}

/// Registers every route. `serve` calls this; so can a test that builds its own `App`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(page::index))
        .route("/static/{path:.*}", web::get().to(page::asset))
        .route("/price", web::get().to(price::price))
        .route("/price/next", web::get().to(longpoll::next))
        .route("/events", web::get().to(sse::events))
        .route("/healthz", web::get().to(price::healthz))
        .route("/ws", web::get().to(ws::upgrade))
        .route("/echo", web::get().to(echo::upgrade))
        .route("/metrics", web::get().to(metrics::metrics))
        .default_service(web::to(not_found));
}

/// Any other path: a `404` that names the routes that exist.
async fn not_found(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    error::ApiError::not_found(format!(
        "no route {} {}: try GET /, /price?symbol=NAME, /price/next?symbol=NAME&after=SEQ, \
         /events?symbols=A,B, /ws?symbols=A,B, /echo, /healthz or /metrics",
        req.method(),
        req.path()
    ))
    .error_response()
}
