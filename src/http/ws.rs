//! `GET /ws`: the WebSocket way. One HTTP request asks to *upgrade* the connection; the
//! server answers `101 Switching Protocols`, and from then on the same TCP connection
//! carries WebSocket frames in both directions for as long as both sides want.
//!
//! [`upgrade`] checks the handshake and hands the connection to `run_session`, whose loop
//! waits for whichever comes first: a new tick from the feed (push it), a message from the
//! client (answer it), the heartbeat timer (ping, or give up on a silent peer), or the
//! server shutting down (close with 1001). The loop is an expression whose value is the
//! close reason, so there is exactly one place where a socket is closed.
//!
//! Before a socket is opened, [`upgrade`] answers every way a handshake can be refused:
//! not a WebSocket request (`400`), wrong version (`426`), a malformed or too long query
//! (`400` JSON), a foreign `Origin` (`403`, see [`super::origin`]), or too many open
//! connections (`503` with `Retry-After`, see [`super::error::too_many_connections`]). Once open, a session defends itself: messages
//! over `--max-message-bytes` (1009), binary frames (1003), invalid UTF-8 (1007), reserved
//! bits or opcodes (1002), floods past `--max-messages-per-sec` (1008, every frame counts),
//! and silence past `--client-timeout-secs`.
//!
//! Two layers sit between the TCP connection and actix-ws, shared with `/echo` through
//! `open`: the [`guard`] reads every frame header as the bytes arrive and refuses a frame
//! that announces too much, sets a reserved bit or comes too fast, *before* its payload is
//! buffered; [`closing`] makes the server close the TCP connection as soon as the session is
//! over, instead of waiting for the client to hang up.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError, Session};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span};

use super::AppState;
use super::error::ApiError;
use super::origin::{self, Verdict};
use crate::config::Config;
use crate::feed::{Feed, HISTORY, Snapshot};
use crate::metrics::{Metrics, Refusal};
use crate::subscription::{MAX_SYMBOLS_PER_REQUEST, Subscription};
use crate::tick::{
    ClientMessage, Handshake, HandshakeRequest, HandshakeResponse, PROTOCOL_VERSION, RequestId,
    ServerMessage, epoch_ms,
};

pub mod closing;
pub mod guard;

use closing::Ending;
use guard::{FrameGuard, Limits, Violation, ViolationCell};

/// The longest a session waits to queue its close frame before it just drops the socket,
/// and then again for the client's close frame in answer: the closing handshake is bounded,
/// so a client that never answers cannot keep a closing connection.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// An opened WebSocket: the `101` response to return, and the session's two halves.
pub(crate) struct Opened {
    /// The `101 Switching Protocols` response, whose body carries the server's frames.
    pub response: HttpResponse,
    /// The sending half (frames to the client).
    pub session: Session,
    /// The client's messages, read through the frame guard.
    pub stream: actix_ws::AggregatedMessageStream,
    /// Why the guard stopped the stream, when it did.
    pub verdict: ViolationCell,
    /// Dropped or marked done when the session is over: the connection then closes.
    pub ending: Ending,
}

/// Completes the handshake for `/ws` or `/echo` with the same layers and limits: the frame
/// guard in front of actix-ws's parser (size, reserved bits and rate checked on each header),
/// actix-ws's own limits as a second line, and the body that closes the connection when the
/// session is over.
pub(crate) async fn open(
    req: &HttpRequest,
    body: web::Payload,
    config: &Config,
) -> actix_web::Result<Opened> {
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
    let socket = req
        .conn_data::<crate::http::socket::ConnectionSocket>()
        .copied();
    let (body, ending) = closing::closing(body, socket);
    let stream = stream
        .max_frame_size(config.max_message_bytes)
        .aggregate_continuations()
        .max_continuation_size(config.max_message_bytes);
    Ok(Opened {
        response: response.set_body(body).map_into_boxed_body(),
        session,
        stream,
        verdict,
        ending,
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
    match origin::check(&req, &state.config.allowed_origins) {
        Verdict::Allowed => {}
        Verdict::NoOrigin => info!(
            peer = ?req.peer_addr(),
            "WebSocket handshake without Origin (not from a browser page): allowed"
        ),
        Verdict::Refused(text) => {
            info!(peer = ?req.peer_addr(), "{}", text.lines().next().unwrap_or_default());
            metrics.refused(Refusal::Origin);
            return Ok(HttpResponse::Forbidden()
                .content_type("text/plain; charset=utf-8")
                .body(text));
        }
    }
    let Ok(place) = metrics.open_connection(state.config.max_connections, |m| &m.ws_open) else {
        return Ok(super::error::too_many_connections(
            state.config.max_connections,
        ));
    };
    let feed = &state.feed;
    let (mut subscription, unknown) = match requested {
        Some(names) => Subscription::from_names(feed, &names),
        None => (Subscription::only(0), Vec::new()),
    };
    // A reconnecting client says what it holds, so the current tick is not sent twice.
    if let Some(id) = &resume {
        subscription.resume(feed, id, feed.run());
    }
    let request = record_request(&req);
    let Opened {
        mut response,
        session,
        stream,
        verdict,
        ending,
    } = open(&req, body, &state.config).await?;
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
            headers: wire_response_headers(response.headers()),
        },
    };
    let settings = SessionSettings::from(&*state.config);
    let peer = req
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".into());
    let feed = feed.clone();
    let shutdown = state.shutdown.clone();
    let metrics = metrics.clone();
    actix_web::rt::spawn(
        async move {
            // Held until the session ends, however it ends: the connection's place in the
            // open-connection gauge and under --max-connections.
            let _place = place;
            // Dropped when this task ends, however it ends: the connection then closes.
            let ending = ending;
            let hello = hello(&feed, &subscription, handshake);
            let grace = feed.tick_interval().min(settings.client_timeout);
            let mut out = Outbox::new(session, shutdown, settings, grace, metrics);
            if out.send_json(hello).await.is_err() {
                return;
            }
            if !unknown.is_empty()
                && out
                    .send_json(unknown_symbols(&feed, &unknown, None))
                    .await
                    .is_err()
            {
                return;
            }
            let snapshots = feed.subscribe();
            send_new(&mut subscription, &mut out, &feed, &feed.latest())
                .await
                .ok();
            let client = Client {
                stream,
                verdict,
                ending,
            };
            run_session(out, client, snapshots, feed, subscription, settings).await;
        }
        .instrument(info_span!("ws", %peer)),
    );
    Ok(response)
}

/// Per-session limits, taken from the configuration once per connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionSettings {
    /// How often an idle client is pinged.
    pub heartbeat: Duration,
    /// Silence (or a blocked send) longer than this ends the session.
    pub client_timeout: Duration,
    /// `--max-message-bytes`, for the 1009 close reason.
    pub max_message_bytes: usize,
}

impl From<&Config> for SessionSettings {
    fn from(config: &Config) -> SessionSettings {
        SessionSettings {
            heartbeat: Duration::from_secs(config.heartbeat_secs),
            client_timeout: Duration::from_secs(config.client_timeout_secs),
            max_message_bytes: config.max_message_bytes,
        }
    }
}

/// The receiving half of a session: the client's messages, and how the connection ends.
pub(crate) struct Client {
    /// The client's messages, read through the frame guard.
    pub stream: actix_ws::AggregatedMessageStream,
    /// Why the guard stopped the stream, when it did.
    pub verdict: ViolationCell,
    /// Marked done when the closing handshake is over: the server then closes the TCP
    /// connection.
    pub ending: Ending,
}

/// Why a session ended without a close handshake: the peer vanished or the server is
/// stopping while a send was blocked. Either way there is no one left to send a close to.
#[derive(Debug)]
pub(crate) struct Gone;

/// The sending half of a session, with the rules every send obeys.
pub(crate) struct Outbox {
    session: Session,
    /// Cancelled when the server shuts down.
    pub(crate) shutdown: CancellationToken,
    /// A send that cannot complete for this long means the client stopped reading entirely;
    /// its socket is dropped. (Ticks never queue: a slow reader skips to the newest.)
    timeout: Duration,
    /// How long a send may wait before the client counts as slow: one tick interval. A
    /// session and its connection's writer share one worker thread, so a burst of sends (a
    /// catch-up after a late wake-up) finds the queue full because of *our own* burst, not
    /// because the client is slow; the writer drains it as soon as we yield.
    grace: Duration,
    /// The server's counters.
    pub(crate) metrics: Arc<Metrics>,
    /// Set when a send had to wait for the client (longer than `grace`) since the last
    /// tick: the client is slow,
    /// so missed ticks are skipped rather than caught up.
    waited: bool,
}

impl Outbox {
    /// The sending half of `session`, under the session's limits.
    pub(crate) fn new(
        session: Session,
        shutdown: CancellationToken,
        settings: SessionSettings,
        grace: Duration,
        metrics: Arc<Metrics>,
    ) -> Outbox {
        Outbox {
            session,
            shutdown,
            timeout: settings.client_timeout,
            grace,
            metrics,
            waited: false,
        }
    }

    /// Sends one binary frame (only `/echo` does), under the same rules as [`Outbox::send`].
    pub(crate) async fn send_binary(&mut self, bytes: actix_web::web::Bytes) -> Result<(), Gone> {
        let len = bytes.len();
        let sent = guarded(
            self.session.binary(bytes),
            &self.shutdown,
            (self.timeout, self.grace),
            &self.metrics,
            &mut self.waited,
        )
        .await;
        if sent.is_ok() {
            self.metrics.ws_sent(len);
        }
        sent
    }

    /// Sends one text frame. The session's outgoing queue is small and bounded, so a client
    /// that does not read makes this wait; the wait ends at shutdown or after `timeout`.
    ///
    /// While it waits, the session counts in the `ws_send_waiting` gauge: that is how a test
    /// (or an operator) sees that a slow client is being held at the bound, not queued for.
    pub(crate) async fn send(&mut self, text: bytestring::ByteString) -> Result<(), Gone> {
        let bytes = text.len();
        let sent = guarded(
            self.session.text(text),
            &self.shutdown,
            (self.timeout, self.grace),
            &self.metrics,
            &mut self.waited,
        )
        .await;
        if sent.is_ok() {
            self.metrics.ws_sent(bytes);
        }
        sent
    }

    async fn send_json(&mut self, message: ServerMessage) -> Result<(), Gone> {
        self.send(message.to_json().into()).await
    }

    /// Sends a ping or a pong under the same rules as [`Outbox::send`]. Control frames share
    /// the bounded queue with the ticks: a client that floods pings but never reads fills it
    /// with pongs, and an unguarded `pong().await` would then wait forever, never reaching
    /// the client-timeout check or the shutdown close, and keep its `--max-connections` place.
    pub(crate) async fn control(&mut self, control: Control<'_>) -> Result<(), Gone> {
        let rules = (self.timeout, self.grace);
        match control {
            Control::Ping => {
                let sending = self.session.ping(b"tickerlab");
                guarded(
                    sending,
                    &self.shutdown,
                    rules,
                    &self.metrics,
                    &mut self.waited,
                )
                .await
            }
            Control::Pong(bytes) => {
                let sending = self.session.pong(bytes);
                guarded(
                    sending,
                    &self.shutdown,
                    rules,
                    &self.metrics,
                    &mut self.waited,
                )
                .await
            }
        }
    }
}

/// A control frame the session sends: a heartbeat ping, or the answer to a client's ping.
pub(crate) enum Control<'a> {
    /// The heartbeat.
    Ping,
    /// The answer to the client's ping, with its payload.
    Pong(&'a [u8]),
}

/// Drives one send into the session's queue. The normal case, a queue with room, completes on
/// the first poll and costs no timer. Otherwise the send waits: for up to `grace` it is
/// assumed to be our own burst draining (the writer runs on this thread as soon as we
/// yield); past that, the client is slow (`waited`, and the `ws_send_waiting` gauge). The
/// wait never outlasts `timeout` or shutdown: a peer that stopped reading is `Gone`.
async fn guarded(
    sending: impl Future<Output = Result<(), actix_ws::Closed>>,
    shutdown: &CancellationToken,
    (timeout, grace): (Duration, Duration),
    metrics: &Metrics,
    waited: &mut bool,
) -> Result<(), Gone> {
    let mut sending = std::pin::pin!(sending);
    // Try once without waiting: the normal case, a queue with room, costs no timer.
    let first = std::future::poll_fn(|cx| Poll::Ready(sending.as_mut().poll(cx))).await;
    if let Poll::Ready(sent) = first {
        return sent.map_err(|_| Gone);
    }
    let mut stop = std::pin::pin!(shutdown.cancelled());
    tokio::select! {
        sent = &mut sending => return sent.map_err(|_| Gone),
        _ = &mut stop => return Err(Gone),
        _ = tokio::time::sleep(grace) => {}
    }
    *waited = true;
    let _waiting = metrics.ws_send_waiting.hold();
    tokio::select! {
        sent = &mut sending => sent.map_err(|_| Gone),
        _ = &mut stop => Err(Gone),
        _ = tokio::time::sleep(timeout.saturating_sub(grace)) => Err(Gone),
    }
}

/// Sends every subscribed tick of `snapshot` this socket has not been sent yet, as the
/// shared pre-serialised text. This is the hot path: per client, per tick, it copies no
/// bytes and allocates nothing.
///
/// Latest value wins: a client that reads slowly makes `send` wait; meanwhile the feed
/// moves on and this session is handed only the newest snapshot. The ticks in between
/// are never sent: they are counted in `ws_ticks_skipped`, and the client sees them as a
/// `seq` gap. A session that did *not* wait on its client but was merely woken late
/// (a busy machine) sends the ticks it missed from the feed's short history instead.
async fn send_new(
    subscription: &mut Subscription,
    out: &mut Outbox,
    feed: &Feed,
    snapshot: &Snapshot,
) -> Result<(), Gone> {
    let client_is_slow = std::mem::take(&mut out.waited);
    for (i, published) in snapshot.ticks.iter().enumerate() {
        let (run, seq) = (published.tick.run, published.tick.seq);
        let last = subscription.last_sent(i, run);
        if !subscription.contains(i) || seq <= last {
            continue;
        }
        // A first send (last == 0) has nothing to catch up: the client starts at the newest.
        let missed = if last > 0 { seq - last - 1 } else { 0 };
        if missed > 0 && (client_is_slow || missed > HISTORY as u64) {
            out.metrics
                .ws_ticks_skipped
                .fetch_add(missed, Ordering::Relaxed);
        } else if missed > 0 {
            for missed in last + 1..seq {
                match feed.recent_json(i, run, missed) {
                    Some(json) if !out.waited => out.send(json).await?,
                    _ => {
                        out.metrics.ws_ticks_skipped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        out.send(published.json.clone()).await?;
        subscription.mark_sent(i, run, seq);
    }
    Ok(())
}

/// The session's heartbeat timer: its first tick is one `period` after the session opens (a
/// ping at once would be noise), and a late tick is not caught up with a burst of pings.
pub(super) async fn heartbeat_timer(period: Duration) -> tokio::time::Interval {
    let mut heartbeat = tokio::time::interval(period);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    heartbeat.tick().await; // the first tick is immediate: take it now
    heartbeat
}

/// The per-connection loop. Returns when the socket is closed, by either side.
async fn run_session(
    mut out: Outbox,
    mut client: Client,
    mut snapshots: watch::Receiver<std::sync::Arc<Snapshot>>,
    feed: Feed,
    mut subscription: Subscription,
    settings: SessionSettings,
) {
    let mut heartbeat = heartbeat_timer(settings.heartbeat).await;
    let mut last_heard = Instant::now();
    let shutdown = out.shutdown.clone();
    // Made once, not on every pass of the loop: each `cancelled()` call registers with the
    // token's shared waker list, a lock that every session would take on every tick.
    let mut stop = std::pin::pin!(shutdown.cancelled());

    let close: Close = loop {
        tokio::select! {
            // The server is shutting down: tell the client it is going away.
            _ = &mut stop => {
                break Close::ours((CloseCode::Away, "server shutting down").into());
            }

            // The feed published a new snapshot: push the subscribed ticks.
            changed = snapshots.changed() => {
                if changed.is_err() {
                    break Close::ours((CloseCode::Away, "feed stopped").into());
                }
                // Clone the Arc and release the channel's lock before any await.
                let snapshot = snapshots.borrow_and_update().clone();
                if send_new(&mut subscription, &mut out, &feed, &snapshot).await.is_err() {
                    return;
                }
            }

            // Heartbeat: ping, or give up on a peer that has been silent too long.
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= settings.client_timeout {
                    debug!("client silent for {:?}, closing", last_heard.elapsed());
                    break Close::ours((CloseCode::Policy, "no answer to pings").into());
                }
                if out.control(Control::Ping).await.is_err() {
                    return;
                }
            }

            // The client sent a frame (or the connection ended).
            message = client.stream.recv() => {
                last_heard = Instant::now();
                let message = match received(message, &client, &out.metrics, settings) {
                    Ok(message) => message,
                    Err(Some(close)) => break close,
                    Err(None) => return, // the TCP connection is gone: nobody to close
                };
                match message {
                    AggregatedMessage::Text(text) => {
                        let answers = match handle_text(&text, &feed, &mut subscription) {
                            Reply::Answers(answers) => answers,
                            // The client asked us to drop it (the page's "drop connection").
                            Reply::Close(reason) => break Close::ours(reason),
                        };
                        for answer in answers {
                            if out.send_json(answer).await.is_err() {
                                return;
                            }
                        }
                        if send_new(&mut subscription, &mut out, &feed, &feed.latest()).await.is_err() {
                            return;
                        }
                    }
                    AggregatedMessage::Binary(_) => break Close::ours((
                        CloseCode::Unsupported,
                        "binary frames are not part of this protocol: send JSON text",
                    ).into()),
                    AggregatedMessage::Ping(bytes) => {
                        if out.control(Control::Pong(&bytes)).await.is_err() {
                            return;
                        }
                    }
                    AggregatedMessage::Pong(_) => {}
                    // The client started the closing handshake: answer with its own code.
                    AggregatedMessage::Close(reason) => break Close::theirs(reason),
                }
            }
        }
    };
    finish(out, client, close, settings).await;
}

/// How a session's loop ended: the close frame to send, and who started the handshake.
#[derive(Debug)]
pub(crate) struct Close {
    reason: Option<CloseReason>,
    /// The client sent its close frame first: ours is the answer, nothing more to wait for.
    answered: bool,
    /// The client broke a rule and may still be sending: let actix drain the connection
    /// briefly, so that a reset does not swallow our close frame (see [`closing::Ending::linger`]).
    drain: bool,
}

impl Close {
    /// The server closes, with this reason; the client is expected to answer.
    pub(crate) fn ours(reason: CloseReason) -> Close {
        Close {
            reason: Some(reason),
            answered: false,
            drain: false,
        }
    }

    /// The client closed with `reason`; the server answers with the same code.
    pub(crate) fn theirs(reason: Option<CloseReason>) -> Close {
        Close {
            reason,
            answered: true,
            drain: false,
        }
    }

    /// The client broke a rule and its stream has ended: close with `reason`, expecting no
    /// answer (there is nothing left to read it from).
    pub(crate) fn broken(reason: CloseReason) -> Close {
        Close {
            reason: Some(reason),
            answered: true,
            drain: true,
        }
    }
}

/// One item from the client's stream, as the session sees it: a message, or the close it
/// calls for (`Err(Some)`), or the end of the connection (`Err(None)`). Counts the message.
pub(crate) fn received(
    message: Option<Result<AggregatedMessage, ProtocolError>>,
    client: &Client,
    metrics: &Metrics,
    settings: SessionSettings,
) -> Result<AggregatedMessage, Option<Close>> {
    let error = match message {
        Some(Ok(message)) => {
            if !matches!(
                message,
                AggregatedMessage::Pong(_) | AggregatedMessage::Close(_)
            ) {
                metrics.ws_messages_received.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(message);
        }
        Some(Err(error)) => error,
        None => return Err(None),
    };
    // The guard's verdict first: actix-ws reports it only as a generic I/O error.
    let reason = match client.verdict.get() {
        Some(violation) => {
            if matches!(violation, Violation::TooFast(_)) {
                metrics.ws_rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            violation.close()
        }
        None => protocol_close(&error, settings.max_message_bytes),
    };
    Err(Some(Close::broken(reason)))
}

/// Ends a session: sends the close frame, waits (bounded) for the client's answer when the
/// server started the handshake, then lets the connection close (RFC 6455 section 7.1.1:
/// the server closes the TCP connection first). A client that has no room left for the close
/// frame, or does not answer it in time, is not waited for: its connection is reset (see
/// [`closing::Ending`]).
pub(crate) async fn finish(
    out: Outbox,
    mut client: Client,
    close: Close,
    settings: SessionSettings,
) {
    debug!(reason = ?close.reason, "closing");
    // The close frame waits for room in the queue like any frame: bounded, so a client that
    // stopped reading cannot keep a closing session (and its connection place) forever.
    let close_wait = settings.client_timeout.min(CLOSE_WAIT);
    let queued = tokio::time::timeout(close_wait, out.session.close(close.reason)).await;
    if !matches!(queued, Ok(Ok(()))) {
        // No room for the close frame: the client stopped reading. Dropping `client` resets
        // the connection rather than waiting to flush it.
        return;
    }
    if !close.answered && !close.drain {
        // Frames still in flight are read and dropped until the client's close frame.
        let answer = async {
            while let Some(Ok(message)) = client.stream.recv().await {
                if matches!(message, AggregatedMessage::Close(_)) {
                    return true;
                }
            }
            false
        };
        if !matches!(tokio::time::timeout(close_wait, answer).await, Ok(true)) {
            // No answer: the client stopped reading, or never will. Reset, don't wait.
            return;
        }
    }
    if close.drain {
        client.ending.linger();
    } else {
        client.ending.done();
    }
}

/// The close frame for a frame that broke the rules (RFC 6455 section 7.4.1 codes).
pub(crate) fn protocol_close(error: &ProtocolError, max_bytes: usize) -> CloseReason {
    match error {
        ProtocolError::Overflow => guard::too_big(max_bytes),
        // Fragments that add up past the limit: actix-ws reports this only as an I/O error
        // with this text, so the text is what we can match.
        ProtocolError::Io(e)
            if e.kind() == std::io::ErrorKind::Other
                && e.to_string().contains("maximum continuation size") =>
        {
            guard::too_big(max_bytes)
        }
        ProtocolError::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            (CloseCode::Invalid, "text frames must be valid UTF-8").into()
        }
        other => (CloseCode::Protocol, other.to_string()).into(),
    }
}

/// What the session does about one client text message.
#[derive(Debug)]
enum Reply {
    /// Send these messages back, in order.
    Answers(Vec<ServerMessage>),
    /// Close the socket with this reason (the client asked to be dropped).
    Close(CloseReason),
}

/// Answers one text message, parsed once. A bad message gets an `error` and changes nothing;
/// a `drop` request closes the socket (see [`drop_reason`]).
fn handle_text(text: &str, feed: &Feed, subscription: &mut Subscription) -> Reply {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(message) => message,
        Err(e) => return Reply::Answers(vec![bad_message(text, &e)]),
    };
    if let ClientMessage::Drop { id } = message {
        return Reply::Close(drop_reason(id));
    }
    Reply::Answers(answer(message, feed, subscription))
}

/// The messages that answer a parsed request other than `drop`.
fn answer(
    message: ClientMessage,
    feed: &Feed,
    subscription: &mut Subscription,
) -> Vec<ServerMessage> {
    match message {
        ClientMessage::Ping { id, t } => vec![ServerMessage::Pong {
            id,
            t,
            server_ts: epoch_ms(),
        }],
        ClientMessage::Subscribe { symbols, id } | ClientMessage::Unsubscribe { symbols, id }
            if symbols.len() > MAX_SYMBOLS_PER_REQUEST =>
        {
            vec![error(
                format!(
                    "too many symbols in one request ({}): list at most {MAX_SYMBOLS_PER_REQUEST}",
                    symbols.len()
                ),
                "bad_message",
                id,
            )]
        }
        // Handled by `handle_text` before we get here; nothing to answer.
        ClientMessage::Drop { .. } => Vec::new(),
        ClientMessage::Subscribe { symbols, id } => {
            change_subscription(feed, subscription, &symbols, id, true)
        }
        ClientMessage::Unsubscribe { symbols, id } => {
            change_subscription(feed, subscription, &symbols, id, false)
        }
    }
}

/// The close reason for a `{"type":"drop"}` request.
///
/// The server closes with 1012 ("service restart"): the code a server uses to say "I am
/// going away for a moment, reconnect". The socket really closes, so the client goes through
/// exactly what a real outage would put it through: the close event, backoff, a new
/// handshake, a new `hello`, and a `seq` gap for the ticks it missed meanwhile.
fn drop_reason(id: RequestId) -> CloseReason {
    // A close frame's reason must fit in 123 bytes, so a long client id is cut.
    let id = id.map(|id| id.to_string()).unwrap_or_default();
    let description = match truncate(&id, 32) {
        "" => "dropped at the client's request: reconnect".to_owned(),
        id => format!("dropped at the client's request (id {id}): reconnect"),
    };
    (CloseCode::Restart, description).into()
}

fn change_subscription(
    feed: &Feed,
    subscription: &mut Subscription,
    symbols: &[String],
    id: RequestId,
    on: bool,
) -> Vec<ServerMessage> {
    let unknown = subscription.change(feed, symbols, on);
    let mut answers = Vec::with_capacity(2);
    if !unknown.is_empty() {
        answers.push(unknown_symbols(feed, &unknown, id.clone()));
    }
    answers.push(ServerMessage::Subscribed {
        symbols: subscription.names(feed),
        id,
    });
    answers
}

fn error(message: String, code: &str, id: RequestId) -> ServerMessage {
    ServerMessage::Error {
        message,
        code: code.to_owned(),
        id,
        symbols: None,
    }
}

fn unknown_symbols(feed: &Feed, unknown: &[String], id: RequestId) -> ServerMessage {
    // Quote a few names, not all: the list came from the client and may be long.
    let shown: Vec<&str> = unknown.iter().take(5).map(|s| truncate(s, 16)).collect();
    let more = unknown.len().saturating_sub(shown.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    ServerMessage::Error {
        message: format!(
            "unknown symbol(s) {}{more}: use one of {}",
            shown.join(", "),
            feed.symbols().join(", ")
        ),
        code: "unknown_symbol".into(),
        id,
        symbols: Some(feed.symbols().to_vec()),
    }
}

/// The `error` for text that is not a message we understand, saying what we expected.
fn bad_message(text: &str, e: &serde_json::Error) -> ServerMessage {
    let (code, what) = if e.is_syntax() || e.is_eof() {
        ("bad_json", "not valid JSON")
    } else {
        ("bad_message", "not a message this server understands")
    };
    // Echo the request id when the JSON was fine but the message was not, so the client can
    // tell which of its requests failed.
    let id = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("id").cloned());
    error(
        format!(
            "{what} ({e}): send {{\"type\":\"subscribe\",\"symbols\":[\"ACME\"]}}, \
             {{\"type\":\"unsubscribe\",\"symbols\":[\"ACME\"]}} or {{\"type\":\"ping\",\"id\":1,\"t\":0}}"
        ),
        code,
        id,
    )
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn hello(feed: &Feed, subscription: &Subscription, handshake: Handshake) -> ServerMessage {
    ServerMessage::Hello {
        protocol: PROTOCOL_VERSION,
        symbols: feed.symbols().to_vec(),
        subscribed: subscription.names(feed),
        tick_ms: feed.tick_interval().as_millis() as u64,
        server_ts: epoch_ms(),
        handshake,
        feed: feed.status(),
        run: feed.run(),
    }
}

/// The query `/ws` and `/events` understand: `?symbols=ACME,GLOBX`, or nothing for the
/// default symbol; and `resume=ACME:42,GLOBX:17@RUN`, the position a reconnecting client
/// holds (the SSE id form, see [`Subscription::resume`]), so nothing it has is sent again.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WsQuery {
    symbols: Option<String>,
    resume: Option<String>,
}

/// `?symbols=ACME,GLOBX` as a list of names; `None` when the parameter is absent. A query
/// that is too long, malformed, or has other parameters is a `400` saying what is expected.
/// (The routes use [`parse_stream_query`], which also reads `resume`.)
#[cfg(test)]
pub(crate) fn parse_symbols_param(query: &str) -> Result<Option<Vec<String>>, ApiError> {
    parse_stream_query(query).map(|(symbols, _)| symbols)
}

/// `?symbols=ACME,GLOBX` as a list of names (`None` when the parameter is absent), and the
/// `resume` position, if any. A query that is too long, malformed, or has other parameters
/// is a `400` saying what is expected.
pub(crate) fn parse_stream_query(
    query: &str,
) -> Result<(Option<Vec<String>>, Option<String>), ApiError> {
    let parsed: WsQuery = super::query::parse(
        query,
        "nothing or ?symbols=NAME,NAME (and &resume=NAME:SEQ,...@RUN to resume)",
    )?;
    let symbols = parsed.symbols.map(|value| {
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .take(MAX_SYMBOLS_PER_REQUEST)
            .map(str::to_owned)
            .collect()
    });
    Ok((symbols, parsed.resume))
}

/// The opening request as the server saw it, for the page's handshake panel. Credentials are
/// redacted: the page's JavaScript must not learn an `HttpOnly` cookie through this echo.
fn record_request(req: &HttpRequest) -> HandshakeRequest {
    HandshakeRequest {
        method: req.method().to_string(),
        path: match req.query_string() {
            "" => req.path().to_owned(),
            q => format!("{}?{q}", req.path()),
        },
        version: format!("{:?}", req.version()),
        // Credentials never reach the page (or the projector): see `super::redact`.
        headers: super::redact::request_headers(req.headers()),
    }
}

/// The `101` response's headers as they go on the wire. actix-http writes
/// `connection: upgrade` itself for an upgrade (it never takes `Connection` from the map), so
/// it is added here, first, where actix puts it; only `date` (added as the response is
/// written) is missing from what `hello` reports.
fn wire_response_headers(headers: &header::HeaderMap) -> Vec<(String, String)> {
    let mut pairs = vec![("connection".to_owned(), "upgrade".to_owned())];
    pairs.extend(
        header_pairs(headers)
            .into_iter()
            .filter(|(name, _)| name != "connection"),
    );
    pairs
}

fn header_pairs(headers: &header::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = match *name {
                header::COOKIE | header::AUTHORIZATION => "(redacted)".to_owned(),
                _ => String::from_utf8_lossy(value.as_bytes()).into_owned(),
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}

/// What is wrong with a request that was meant to open a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeProblem {
    /// No `Upgrade: websocket`: a browser tab or a plain `curl`.
    NotAnUpgrade,
    /// `Upgrade: websocket` without `Connection: Upgrade`.
    NoConnectionUpgrade,
    /// `Sec-WebSocket-Version` missing or not 13, the only version RFC 6455 defines.
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` missing, or not 16 bytes in base64.
    BadKey,
    /// `Sec-WebSocket-Key` of the right shape whose last character before `==` has padding
    /// bits set: no 16 bytes encode to it, so a strict base64 decoder refuses it.
    NonCanonicalKey,
}

/// Checks the headers of an opening handshake (RFC 6455 section 4.2.1).
pub fn check_handshake(headers: &header::HeaderMap) -> Result<(), HandshakeProblem> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::UPGRADE, "websocket") {
        return Err(HandshakeProblem::NotAnUpgrade);
    }
    if !has_token(header::CONNECTION, "upgrade") {
        return Err(HandshakeProblem::NoConnectionUpgrade);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(HandshakeProblem::UnsupportedVersion);
    }
    // A valid key is 16 random bytes in base64: 24 characters ending in "==".
    let key_ok = headers.get(header::SEC_WEBSOCKET_KEY).is_some_and(|k| {
        let k = k.as_bytes();
        k.len() == 24
            && k.ends_with(b"==")
            && k[..22]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
    });
    if !key_ok {
        return Err(HandshakeProblem::BadKey);
    }
    // 16 bytes are 128 bits; 22 base64 characters carry 132, so the last one before `==`
    // holds 2 bits of the key and 4 padding bits that must be zero: it is A, Q, g or w.
    // (actix's own check decodes strictly and would refuse it with an empty 400.)
    if headers
        .get(header::SEC_WEBSOCKET_KEY)
        .is_some_and(|k| !matches!(k.as_bytes()[21], b'A' | b'Q' | b'g' | b'w'))
    {
        return Err(HandshakeProblem::NonCanonicalKey);
    }
    Ok(())
}

impl HandshakeProblem {
    /// The plain-text answer: what was wrong and a command that does it right.
    fn response(self, req: &HttpRequest) -> HttpResponse {
        let host = req.connection_info().host().to_owned();
        let (status, problem) = match self {
            HandshakeProblem::NotAnUpgrade => (
                StatusCode::BAD_REQUEST,
                "This request did not ask to upgrade to a WebSocket (no `Upgrade: websocket` header).",
            ),
            HandshakeProblem::NoConnectionUpgrade => (
                StatusCode::BAD_REQUEST,
                "The request has `Upgrade: websocket` but not `Connection: Upgrade`.",
            ),
            HandshakeProblem::UnsupportedVersion => (
                StatusCode::UPGRADE_REQUIRED,
                "Only WebSocket version 13 (RFC 6455) is supported: send `Sec-WebSocket-Version: 13`.",
            ),
            HandshakeProblem::BadKey => (
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Key` must be 16 random bytes in base64 (24 characters ending in `==`).",
            ),
            HandshakeProblem::NonCanonicalKey => (
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Key` is not the base64 of 16 bytes: 16 bytes fill 22 characters \
                 with 4 bits to spare, so the character before `==` must be A, Q, g or w \
                 (those spare bits zero). Make a key with `openssl rand -base64 16`.",
            ),
        };
        let text = format!(
            "{problem}\n\n\
             /ws is tickerlab's WebSocket endpoint: it speaks WebSocket, not plain HTTP, so a \
             browser tab or a plain curl gets this message.\n\
             Open the page at http://{host}/ to watch it live, or try it from a terminal:\n\n\
             \x20 curl -i -N --http1.1 -H 'Connection: Upgrade' -H 'Upgrade: websocket' \\\n\
             \x20      -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \\\n\
             \x20      'http://{host}/ws?symbols=ACME'\n\n\
             (curl prints the 101 Switching Protocols answer, then the frames as raw bytes.)\n"
        );
        let mut response = HttpResponse::build(status);
        response.content_type("text/plain; charset=utf-8");
        if self == HandshakeProblem::UnsupportedVersion {
            response.insert_header((header::SEC_WEBSOCKET_VERSION, "13"));
        }
        response.body(text)
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        map
    }

    const GOOD: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn a_correct_handshake_passes() {
        assert_eq!(check_handshake(&headers(GOOD)), Ok(()));
    }

    #[test]
    fn each_missing_piece_is_named() {
        let without = |name: &str| {
            let pairs: Vec<_> = GOOD.iter().copied().filter(|(k, _)| *k != name).collect();
            check_handshake(&headers(&pairs))
        };
        assert_eq!(without("upgrade"), Err(HandshakeProblem::NotAnUpgrade));
        assert_eq!(
            without("connection"),
            Err(HandshakeProblem::NoConnectionUpgrade)
        );
        assert_eq!(
            without("sec-websocket-version"),
            Err(HandshakeProblem::UnsupportedVersion)
        );
        assert_eq!(without("sec-websocket-key"), Err(HandshakeProblem::BadKey));
    }

    #[test]
    fn symbols_param_is_split_and_trimmed() {
        assert_eq!(
            parse_symbols_param("symbols=ACME,%20globx,,").unwrap(),
            Some(vec!["ACME".to_owned(), "globx".to_owned()])
        );
        assert_eq!(parse_symbols_param("").unwrap(), None);
        assert!(parse_symbols_param("symbol=ACME").is_err());
    }
}
