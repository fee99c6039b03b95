//! `GET /ws`: the WebSocket way. One HTTP request asks to *upgrade* the connection; the
//! server answers `101 Switching Protocols`, and from then on the same TCP connection
//! carries WebSocket frames in both directions for as long as both sides want.
//!
//! Each part of a WebSocket's life has a file of its own here:
//!
//! * [`handshake`]: the checks before a socket is opened, and the answer to every way a
//!   handshake can be refused: not a WebSocket request (`400`), wrong version (`426`), a
//!   malformed or too long query (`400` JSON); [`upgrade`] adds a foreign `Origin` (`403`,
//!   see [`super::origin`]) and too many open connections (`503` with `Retry-After`, see
//!   [`super::error::too_many_connections`]).
//! * [`guard`]: a watchman on the raw bytes in front of actix-ws's parser, which refuses a
//!   frame that announces too much (1009), sets a reserved bit or opcode (1002) or comes too
//!   fast (1008, every frame counts) *before* its payload is buffered.
//! * `session`: the task that talks with the client: its messages (`messages`:
//!   subscribe, unsubscribe, ping, drop, and an `error` for anything else), the heartbeat
//!   and the client timeout, binary frames (1003), invalid UTF-8 (1007), and the closing
//!   handshake.
//! * `body`: the outgoing body, which writes the session's frames, then each tick in one
//!   hop (the feed's frame, built once per tick and shared by every socket, written by the
//!   worker's relay straight to a plain TCP socket that keeps up, else by the task that owns
//!   the connection, held back while the client is not reading), and closes
//!   the TCP connection as soon as the session is over, instead of waiting for the client
//!   to hang up.
//!
//! `/echo` ([`super::echo`]) is opened by the same `open`, with everything above but the
//! ticks.

use std::rc::Rc;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev, web};
use tracing::{Instrument, info, info_span};

use super::AppState;
use super::connection::Handles;
use super::origin::{self, Verdict};
use crate::metrics::Refusal;
use crate::subscription::Subscription;
use crate::tick::{Handshake, HandshakeResponse};

pub(crate) mod body;
pub mod guard;
pub mod handshake;
pub(crate) mod messages;
pub(crate) mod session;

pub(crate) use handshake::parse_stream_query;
pub use handshake::{HandshakeProblem, check_handshake};
pub(crate) use session::{
    Client, Close, Control, Outbox, SessionSettings, beat, finish, heartbeat_timer, received,
};

use body::{Ending, Ticks, WsBody};
use guard::{FrameGuard, Limits, ViolationCell};

/// An opened WebSocket: the `101` response to return, and the session's two halves.
pub(crate) struct Opened<W> {
    /// The `101 Switching Protocols` response, whose body carries the server's frames.
    pub response: HttpResponse,
    /// The sending half (frames to the client).
    pub out: Outbox,
    /// The client's messages, read through the frame guard.
    pub stream: actix_ws::AggregatedMessageStream,
    /// Why the guard stopped the stream, when it did.
    pub verdict: ViolationCell,
    /// Dropped or marked done when the session is over: the connection then closes.
    pub ending: Ending,
    /// What the route's `ticks` returned beside the tick writer (`/ws`: the session's handle on it).
    pub writer: W,
}

/// A WebSocket without ticks (`/echo`, `/class/ws`), opened: the `101` to return and what its
/// session loop needs.
pub(crate) struct Plain {
    /// The `101 Switching Protocols` response.
    pub response: HttpResponse,
    /// The sending half.
    pub out: Outbox,
    /// The client's messages.
    pub client: Client,
    /// Heartbeat and client timeout.
    pub settings: SessionSettings,
    /// The client's address, for the session's log span.
    pub peer: String,
    /// Its `--max-connections` place, to hold as long as the session runs.
    pub place: crate::metrics::ConnectionGuard,
}

/// Admits a WebSocket whose handshake its route has checked: its `Origin` must be allowed
/// (`403` otherwise; a request without one, not from a browser page, is let in and logged)
/// and a `--max-connections` place free (`503` otherwise). The place is held until dropped.
pub(crate) fn admit(
    req: &HttpRequest,
    state: &AppState,
) -> Result<crate::metrics::ConnectionGuard, Box<HttpResponse>> {
    let metrics = &state.metrics;
    match origin::check(req, &state.config.allowed_origins) {
        Verdict::Allowed => {}
        Verdict::NoOrigin => info!(
            peer = ?req.peer_addr(),
            "WebSocket handshake without Origin (not from a browser page): allowed"
        ),
        Verdict::Refused(text) => {
            info!(peer = ?req.peer_addr(), "{}", text.lines().next().unwrap_or_default());
            metrics.refused(Refusal::Origin);
            return Err(Box::new(
                HttpResponse::Forbidden()
                    .content_type("text/plain; charset=utf-8")
                    .body(text),
            ));
        }
    }
    metrics
        .open_connection(state.config.max_connections, |m| &m.ws_open)
        .map_err(|_| {
            Box::new(super::error::too_many_connections(
                state.config.max_connections,
            ))
        })
}

/// Opens a WebSocket without ticks whose handshake its route has checked: the same `403`
/// for a foreign `Origin` and `503` past `--max-connections` as `/ws` ([`admit`]), then
/// [`open`].
/// `Ok(Err(answer))` is a refusal to return as it is.
pub(crate) async fn open_plain(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> actix_web::Result<Result<Plain, HttpResponse>> {
    let place = match admit(req, state) {
        Ok(place) => place,
        Err(refusal) => return Ok(Err(*refusal)),
    };
    let Opened {
        response,
        out,
        stream,
        verdict,
        ending,
        writer: (),
    } = open(req, body, state, |_| (None, ())).await?;
    let peer = req
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".into());
    Ok(Ok(Plain {
        response,
        out,
        client: Client {
            stream,
            verdict,
            ending,
        },
        settings: SessionSettings::from(&*state.config),
        peer,
        place,
    }))
}

/// Completes the handshake for `/ws` or `/echo` with the same layers and limits: the frame
/// guard in front of actix-ws's parser (size, reserved bits and rate checked on each header),
/// actix-ws's own limits as a second line, and the body ([`body`]) that closes the
/// connection when the session is over. `ticks` may give the body a tick writer (`/ws`, see
/// [`Ticks`]); it is given the connection's [`Handles`] when the server has them.
pub(crate) async fn open<W>(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    ticks: impl FnOnce(Option<Rc<Handles>>) -> (Option<Ticks>, W),
) -> actix_web::Result<Opened<W>> {
    let config = &state.config;
    let guard = FrameGuard::new(
        body.into_inner(),
        Limits {
            max_frame_bytes: config.max_message_bytes,
            frames_per_sec: config.max_messages_per_sec,
        },
    );
    let verdict = guard.verdict();
    let guarded: std::pin::Pin<Box<dyn futures_util::Stream<Item = _>>> = Box::pin(guard);
    let mut guarded = dev::Payload::Stream { payload: guarded };
    let body = web::Payload::from_request(req, &mut guarded).await?;
    let (response, session, stream) = actix_ws::handle(req, body)?;
    let (response, body) = response.into_parts();
    let connection = req.conn_data::<Rc<Handles>>().cloned();
    if let Some(connection) = &connection {
        connection.backpressure.count_in(state.metrics.clone());
    }
    let (ticks, writer) = ticks(connection.clone());
    let (body, ending, queued) = WsBody::new(body, ticks, connection);
    let out = Outbox::new(
        session,
        queued,
        state.shutdown.clone(),
        state.metrics.clone(),
        std::time::Duration::from_secs(config.client_timeout_secs),
    );
    let stream = stream
        .max_frame_size(config.max_message_bytes)
        .aggregate_continuations()
        .max_continuation_size(config.max_message_bytes);
    Ok(Opened {
        response: response.set_body(body).map_into_boxed_body(),
        out,
        stream,
        verdict,
        ending,
        writer,
    })
}

/// `GET /ws`: checks that the request really asks for a WebSocket, answers `101`, and starts
/// the session. A request that is not a WebSocket handshake gets a `400` (or `426` for a
/// protocol version other than 13) whose text says what was missing and how to try it.
pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let metrics = &state.metrics;
    let (requested, resume) = match parse_stream_query(req.query_string()) {
        Ok(parsed) => parsed,
        Err(e) => {
            metrics.refused(Refusal::NotAHandshake);
            return Err(e.into());
        }
    };
    if let Err(problem) = check_handshake(req.headers()) {
        metrics.refused(Refusal::NotAHandshake);
        return Ok(problem.response(&req));
    }
    let place = match admit(&req, &state) {
        Ok(place) => place,
        Err(refusal) => return Ok(*refusal),
    };
    let feed = &state.feed;
    let (mut subscription, unknown) = match requested {
        Some(names) => Subscription::from_names(feed, &names),
        None => (Subscription::only(0), Vec::new()),
    };
    // A reconnecting client says what it holds, so the current tick is not sent twice.
    let beyond = match &resume {
        Some(id) => subscription.resume(feed, id, feed.run()),
        None => Vec::new(),
    };
    let request = handshake::record_request(&req);
    let Opened {
        mut response,
        out,
        stream,
        verdict,
        ending,
        writer: pusher,
    } = open(&req, body, &state, |connection| {
        let (ticks, pusher) = Ticks::new(feed.clone(), subscription, connection, metrics.clone());
        (Some(ticks), pusher)
    })
    .await?;
    // The security-headers middleware adds this to every answer; set it here already, so the
    // response `hello` reports is the one that goes on the wire (all but actix's `date`).
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    let handshake = Handshake {
        request,
        response: HandshakeResponse {
            status: response.status().as_u16(),
            reason: response
                .status()
                .canonical_reason()
                .unwrap_or_default()
                .to_owned(),
            headers: handshake::wire_response_headers(response.headers()),
        },
    };
    let settings = SessionSettings::from(&*state.config);
    let peer = req
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".into());
    let greeting = messages::greeting(feed, &pusher.subscription(), handshake, &unknown, &beyond);
    let client = Client {
        stream,
        verdict,
        ending,
    };
    let feed = feed.clone();
    let held = session::Held {
        place,
        pupil: state.class.pupil(),
    };
    // Spawned as it is, not inside an `async move` block: a block would keep its own copy
    // of every variable it moves into the call, for the connection's whole life.
    actix_web::rt::spawn(
        session::run_session(out, client, feed, pusher, greeting, settings, held)
            .instrument(info_span!("ws", %peer)),
    );
    Ok(response)
}

#[cfg(test)]
mod proptests;
