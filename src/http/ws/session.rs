//! One WebSocket session: the task that talks with the client while the connection's body
//! ([`super::push`]) writes the ticks.
//!
//! [`run_session`]'s loop waits for whichever comes first: a message from the client (answer
//! it, change the subscription), the heartbeat timer (ping, or give up on a silent peer), the
//! server shutting down or the feed stopping (close with 1001). The loop is an expression
//! whose value is the close reason, so there is exactly one place where a socket is closed:
//! [`finish`], which runs the closing handshake with bounded waits.
//!
//! The session never touches a tick: it is woken by its client and its heartbeat, not by
//! the feed. What it sends (`hello`, answers, pings, pongs, the close frame) goes through
//! [`Outbox`] into actix-ws's queue, which the body drains before it writes any tick; only a
//! heartbeat ping, while ticks flow, is left to the body to send with the next tick (see
//! [`super::body`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError, Session};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::body::Pusher;
use super::body::{Ending, Queued};
use super::guard::{self, Violation, ViolationCell};
use super::messages::{self, Reply};
use crate::class::Pupil;
use crate::config::Config;
use crate::feed::Feed;
use crate::metrics::{ConnectionGuard, Metrics};
use crate::tick::{Heartbeat, ServerMessage};

/// The longest a session waits to queue its close frame before it just drops the socket,
/// and then again for the client's close frame in answer: the closing handshake is bounded,
/// so a client that never answers cannot keep a closing connection.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
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

/// The sending half of a session: actix-ws's queue, for everything but ticks.
pub(crate) struct Outbox {
    session: Session,
    /// Tells the body after each frame queued, so it looks into the queue only then.
    queued: Queued,
    /// Cancelled when the server shuts down.
    pub(crate) shutdown: CancellationToken,
    /// The server's counters.
    pub(crate) metrics: Arc<Metrics>,
    /// How long a send may wait for room in the queue: `--client-timeout-secs`.
    patience: Duration,
}

impl Outbox {
    /// The sending half of `session`; a send that waits longer than `patience` for room
    /// gives the client up.
    pub(crate) fn new(
        session: Session,
        queued: Queued,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
        patience: Duration,
    ) -> Outbox {
        Outbox {
            session,
            queued,
            shutdown,
            metrics,
            patience,
        }
    }

    /// Sends one binary frame (only `/echo` does), under the same rules as [`Outbox::send`].
    pub(crate) async fn send_binary(&mut self, bytes: actix_web::web::Bytes) -> Result<(), Gone> {
        let len = bytes.len();
        unless_shutdown(self.session.binary(bytes), &self.shutdown, self.patience).await?;
        self.queued.note();
        self.metrics.ws_sent(len);
        Ok(())
    }

    /// Queues one text frame. The queue is small and bounded (32 frames), so a client that
    /// does not read makes this wait; the wait ends at shutdown, when the connection is
    /// dropped for not reading (the write timeout of `http::connection`, or the kernel's),
    /// which closes the queue, or after `--client-timeout-secs`: a client that reads only a
    /// trickle keeps the write timeout from firing, and while the session waits here it
    /// checks no other deadline, so the wait itself is bounded. A send that finds room at
    /// once (the normal case) arms no timer.
    pub(crate) async fn send(&mut self, text: bytestring::ByteString) -> Result<(), Gone> {
        let bytes = text.len();
        unless_shutdown(self.session.text(text), &self.shutdown, self.patience).await?;
        self.queued.note();
        self.metrics.ws_sent(bytes);
        Ok(())
    }

    pub(crate) async fn send_json(&mut self, message: ServerMessage) -> Result<(), Gone> {
        self.send(message.to_json().into()).await
    }

    /// Sends `messages` in order.
    pub(crate) async fn send_all(&mut self, messages: Vec<ServerMessage>) -> Result<(), Gone> {
        for message in messages {
            self.send_json(message).await?;
        }
        Ok(())
    }

    /// Sends a ping or a pong under the same rules as [`Outbox::send`]. Control frames share
    /// the bounded queue: a client that floods pings but never reads fills it with pongs, and
    /// an unguarded `pong().await` would then outlive the server's shutdown.
    pub(crate) async fn control(&mut self, control: Control<'_>) -> Result<(), Gone> {
        let sent = match control {
            Control::Ping => {
                unless_shutdown(
                    self.session.ping(super::body::PING_PAYLOAD),
                    &self.shutdown,
                    self.patience,
                )
                .await
            }
            Control::Pong(bytes) => {
                unless_shutdown(self.session.pong(bytes), &self.shutdown, self.patience).await
            }
        };
        if sent.is_ok() {
            self.queued.note();
        }
        sent
    }

    /// Queues the close frame, the last frame of the connection.
    async fn close(self, reason: Option<CloseReason>) -> Result<(), actix_ws::Closed> {
        let closed = self.session.close(reason).await;
        self.queued.note();
        closed
    }
}

/// A control frame the session sends: a heartbeat ping, or the answer to a client's ping.
pub(crate) enum Control<'a> {
    /// The heartbeat.
    Ping,
    /// The answer to the client's ping, with its payload.
    Pong(&'a [u8]),
}

/// Drives one send into the session's queue, unless the server shuts down first or the
/// send waits longer than `patience`. The normal case, a queue with room, completes on the
/// first poll, before any timer is made.
async fn unless_shutdown(
    sending: impl Future<Output = Result<(), actix_ws::Closed>>,
    shutdown: &CancellationToken,
    patience: Duration,
) -> Result<(), Gone> {
    let mut sending = std::pin::pin!(sending);
    if let Some(sent) = futures_util::FutureExt::now_or_never(sending.as_mut()) {
        return sent.map_err(|_| Gone);
    }
    tokio::select! {
        biased;
        sent = &mut sending => sent.map_err(|_| Gone),
        _ = shutdown.cancelled() => Err(Gone),
        _ = tokio::time::sleep(patience) => {
            debug!("a send waited {patience:?} for room: the client is not reading, dropping it");
            Err(Gone)
        }
    }
}

/// The session's heartbeat timer: a tick every `period`, the first at a random point of the
/// first period (but not in its first tenth: a ping at once would be noise), rounded up to
/// the next step of [`PING_GRID`]. A late tick is not caught up with a burst of pings.
///
/// Random, because clients come together: a class opening the page at once, or 5000 bench
/// clients in one second. With the first ping one `period` after each open, all their pings
/// would fall in the same second, every period, for as long as they stay: 5000 pings, and
/// 5000 pongs to read, in the second the ticks also go out (the fan-out bench measured that
/// second's p99 at 1.3x the others'). Spread over the period, each second has its share.
/// Never later than one period and one grid step, so a silent peer is still found within
/// the client timeout (at least two periods).
pub(crate) fn heartbeat_timer(period: Duration) -> tokio::time::Interval {
    let earliest = Instant::now() + period.mul_f64(rand::random_range(0.1..=1.0));
    let mut heartbeat = tokio::time::interval_at(on_ping_grid(earliest), period);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    heartbeat
}

/// What a session without ticks (`/echo`, the class view) does when its heartbeat ticks:
/// `Ok(Some(close))` for a peer silent for the client timeout, else a ping (`Err` when the
/// connection is gone). The ticker session does the same, and more (a client that is behind,
/// the ping count `pong` reports).
pub(crate) async fn beat(
    out: &mut Outbox,
    last_heard: Instant,
    settings: SessionSettings,
) -> Result<Option<Close>, Gone> {
    if last_heard.elapsed() >= settings.client_timeout {
        return Ok(Some(Close::ours(
            (CloseCode::Policy, "no answer to pings").into(),
        )));
    }
    out.control(Control::Ping).await?;
    Ok(None)
}

/// Heartbeat pings are due only on a grid of this step (counted from the first session's
/// start), so that the pings of one step go out in one wake-up of the worker thread. Spread
/// one by one over the period, each ping of 1000 sockets woke its worker by itself, 200
/// times a second, which cost the fan-out bench's quiet step more CPU per tick delivered than
/// the pings themselves. A heartbeat of whole seconds stays on the grid.
const PING_GRID: Duration = Duration::from_millis(100);

/// The first point of the ping grid at or after `at`.
fn on_ping_grid(at: Instant) -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let since = at.saturating_duration_since(origin);
    let steps = since.as_nanos().div_ceil(PING_GRID.as_nanos());
    origin + PING_GRID * u32::try_from(steps).unwrap_or(u32::MAX)
}

/// What a session holds for its client until it ends, however it ends; each is given back
/// when dropped.
pub(crate) struct Held {
    /// The connection's place in the open-connection gauge and under --max-connections.
    pub place: ConnectionGuard,
    /// The page's seat in the class (taken with its first `report`).
    pub pupil: Pupil,
}

/// The per-connection loop: sends the `greeting` (`hello`, and an `error` for unknown symbols
/// in the URL), starts the ticks, then serves the client until the socket is closed, by
/// either side.
///
/// This task lives as long as its connection, so its size is memory per connection: the
/// loop only *waits* inline (for the client, the heartbeat, shutdown, the feed), and does
/// the rare work (answering a message, a ping, the closing handshake) in boxed futures that
/// exist only while it runs. Inline, their state made every idle session ~2 KiB bigger.
pub(crate) async fn run_session(
    mut out: Outbox,
    mut client: Client,
    feed: Feed,
    pusher: Pusher,
    greeting: Vec<ServerMessage>,
    settings: SessionSettings,
    held: Held,
) {
    let Held {
        place: _place,
        mut pupil,
    } = held;
    // `hello` first (boxed, like all the rare work below), then the ticks may flow.
    if Box::pin(out.send_all(greeting)).await.is_err() {
        return;
    }
    pusher.start();
    let mut heartbeat = heartbeat_timer(settings.heartbeat);
    let mut beats = Heartbeat {
        every_secs: settings.heartbeat.as_secs(),
        ..Heartbeat::default()
    };
    let mut last_heard = Instant::now();
    let shutdown = out.shutdown.clone();
    // Made once, not on every pass of the loop: each `cancelled()` call registers with the
    // token's shared waker list.
    let mut stop = std::pin::pin!(shutdown.cancelled());

    let close: Close = loop {
        let message = tokio::select! {
            // The server is shutting down: tell the client it is going away.
            _ = &mut stop => {
                break Close::ours((CloseCode::Away, "server shutting down").into());
            }

            // The feed stopped publishing (seen by the body, which waits on it).
            _ = pusher.feed_stopped() => {
                break Close::ours((CloseCode::Away, "feed stopped").into());
            }

            // Heartbeat: ping, or give up on a peer that has been silent too long.
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= settings.client_timeout {
                    debug!("client silent for {:?}, closing", last_heard.elapsed());
                    break Close::ours((CloseCode::Policy, "no answer to pings").into());
                }
                if let Some(behind) = pusher.behind_for()
                    && behind >= settings.client_timeout
                {
                    // It reads, but too little to ever catch up: there is no room for a close
                    // frame either. Returning drops the connection (and resets the socket).
                    debug!("client behind for {behind:?}, dropping it");
                    return;
                }
                // While ticks flow, the ping rides with the next one (one write, one wake-up);
                // otherwise, or when the last beat's ping found no tick to ride with, it is
                // sent on its own. Counted once, when handed over.
                let owed = pusher.take_back_ping();
                if !owed && pusher.ticks_flowed() {
                    pusher.ping_with_next_tick();
                } else if Box::pin(out.control(Control::Ping)).await.is_err() {
                    return;
                }
                if !owed {
                    beats.pings_sent = beats.pings_sent.saturating_add(1);
                }
                continue;
            }

            // The instructor revealed the blind test: tell this page (if it is on it).
            at = pupil.revealed() => {
                if Box::pin(out.send_json(ServerMessage::Reveal { at })).await.is_err() {
                    return;
                }
                continue;
            }

            // The client sent a frame (or the connection ended).
            message = client.stream.recv() => message,
        };
        last_heard = Instant::now();
        let message = match received(message, &client, &out.metrics, settings) {
            Ok(message) => message,
            Err(Some(close)) => break close,
            Err(None) => return, // the TCP connection is gone: nobody to close
        };
        match Box::pin(answer(
            message, &mut out, &feed, &pusher, &mut beats, &mut pupil,
        ))
        .await
        {
            Ok(None) => {}
            Ok(Some(close)) => break close,
            Err(Gone) => return,
        }
    };
    // No tick may follow the close frame.
    pusher.stop();
    Box::pin(finish(out, client, close, settings)).await;
}

/// Answers one message from the client; `Some(close)` when it ends the session.
async fn answer(
    message: AggregatedMessage,
    out: &mut Outbox,
    feed: &Feed,
    pusher: &Pusher,
    beats: &mut Heartbeat,
    pupil: &mut Pupil,
) -> Result<Option<Close>, Gone> {
    match message {
        AggregatedMessage::Text(text) => {
            // Worked out on a copy and applied once answered: the answer (`subscribed`) goes
            // out before the ticks it announces.
            let mut changed = pusher.subscription().clone();
            let answers = match messages::handle_text(&text, feed, &mut changed, *beats) {
                Reply::Answers(answers) => answers,
                // The client asked us to drop it (the page's "drop connection").
                Reply::Close(reason) => return Ok(Some(Close::ours(reason))),
                Reply::Class(message) => messages::class_answer(message, pupil),
            };
            out.send_all(answers).await?;
            pusher.adopt(&changed);
        }
        AggregatedMessage::Binary(_) => {
            return Ok(Some(Close::ours(
                (
                    CloseCode::Unsupported,
                    "binary frames are not part of this protocol: send JSON text",
                )
                    .into(),
            )));
        }
        AggregatedMessage::Ping(bytes) => out.control(Control::Pong(&bytes)).await?,
        AggregatedMessage::Pong(_) => beats.pongs_received = beats.pongs_received.saturating_add(1),
        // The client started the closing handshake: answer with its own code.
        AggregatedMessage::Close(reason) => return Ok(Some(Close::theirs(reason))),
    }
    Ok(None)
}

/// How a session's loop ended: the close frame to send, and who started the handshake.
#[derive(Debug)]
pub(crate) struct Close {
    reason: Option<CloseReason>,
    /// The client sent its close frame first: ours is the answer, nothing more to wait for.
    answered: bool,
    /// The client broke a rule and may still be sending: let actix drain the connection
    /// briefly, so that a reset does not swallow our close frame (see [`Ending::linger`]).
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
/// [`Ending`]).
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
    let queued = tokio::time::timeout(close_wait, out.close(close.reason)).await;
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
