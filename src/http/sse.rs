//! `GET /events?symbols=ACME,GLOBX`: Server-Sent Events, the browser's built-in one-way push.
//!
//! The response is an ordinary HTTP `200` whose body never ends: `text/event-stream`, one
//! event per tick. The browser's `EventSource` parses it and reconnects by itself when the
//! connection drops, sending the last `id:` it saw as `Last-Event-ID`. tickerlab answers a
//! reconnect with the *current* tick at once (latest value wins): no backlog is replayed,
//! the `seq` gap shows what the outage cost. While connected, the rule is a WebSocket's: a
//! stream whose socket blocked goes on from the newest tick, one that was only woken late (a
//! busy machine) sends the ticks in between from the feed's history.
//!
//! Each event's id is the stream's whole position, `ACME:42,GLOBX:17@RUN` (the last seq
//! sent of every symbol, the event's own first, then the feed's run), not just `ACME:42`:
//! with several symbols, the last event names one symbol only, and a reconnect would resend
//! the others' current ticks, which the client already has. An id of another run (the
//! server restarted) is ignored; the old `ACME:42` form is still accepted. The tick's
//! `data:` frame is still formatted once for every stream; the id line is made per stream
//! and event, and the two are copied into one chunk, so an event costs one HTTP chunk.
//!
//! SSE is push without a new protocol, which is often all a one-way feed needs; what it
//! cannot do is carry messages from the client over the same connection. Compare `ws.rs`.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{Method, Version};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse, http::header, web};
use futures_util::stream;
use tokio::time::Instant;

use super::AppState;
use super::connection::Handles;
use super::origin;
use super::ws::parse_stream_query;
use crate::feed::{Feed, HISTORY, Snapshot};
use crate::metrics::{ConnectionGuard, Refusal};
use crate::subscription::Subscription;
use crate::wire::Published;

/// Sent first: how long the browser should wait before reconnecting (ms), and a comment.
const PREAMBLE: &str = "retry: 1000\n: tickerlab event stream, one event per tick\n\n";

/// The comment sent when a whole heartbeat period passed without a tick. Comments are
/// ignored by `EventSource`; they keep proxies and NAT tables from dropping a quiet stream.
const HEARTBEAT: &str = ": heartbeat\n\n";

/// `GET /events`: a `text/event-stream` of the subscribed symbols' ticks. Unknown symbols are
/// a `404` listing the known ones (an SSE client cannot be told anything after the fact).
pub async fn events(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    let feed = state.feed.clone();
    let (requested, resume) = match parse_stream_query(req.query_string()) {
        Ok(parsed) => parsed,
        Err(error) => return error.error_response(),
    };
    // The same Origin policy as /ws. (Browsers also apply CORS to EventSource, and this
    // server sends no CORS headers, so a foreign page could not read the stream anyway.)
    if let origin::Verdict::Refused(text) = origin::check(&req, &state.config.allowed_origins) {
        state.metrics.refused(Refusal::Origin);
        return HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body(text);
    }
    let mut subscription = match requested {
        None => Subscription::only(0),
        // An event stream cannot subscribe later (it is one-way): one with no symbol would
        // hold a place and never carry an event.
        Some(names) if names.is_empty() => {
            return super::error::ApiError::bad_request(format!(
                "?symbols= names no symbol: an event stream needs at least one of {}",
                feed.symbols().join(", ")
            ))
            .error_response();
        }
        Some(names) => {
            let (subscription, unknown) = Subscription::from_names(&feed, &names);
            if let Some(name) = unknown.first() {
                return super::error::ApiError::unknown_symbol(name, feed.symbols())
                    .error_response();
            }
            subscription
        }
    };
    // Resuming: what the client already holds is not sent again. (Same run, but this
    // instance lags behind the id? Then the stream stays quiet until it catches up.)
    // (`?resume=` does the same for a client that opens a new EventSource itself.)
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok());
    if let Some(id) = last_event_id.or(resume.as_deref()) {
        subscription.resume(&feed, id, feed.run());
    }
    // A stream holds a connection as long as a socket does: it counts against the same limit.
    let Ok(place) = state
        .metrics
        .open_connection(state.config.max_connections, |m| &m.sse_open)
    else {
        return super::error::too_many_connections(state.config.max_connections);
    };
    let heartbeat = Duration::from_secs(state.config.heartbeat_secs);
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Tell reverse proxies such as nginx not to buffer the stream.
        .insert_header(("x-accel-buffering", "no"));
    if req.method() == Method::HEAD {
        // The same answer as GET, without the never-ending body (and without keeping the
        // place: nothing will be streamed).
        drop(place);
        return response.streaming(stream::empty::<Result<Bytes, actix_web::Error>>());
    }
    // HTTP/1.0 has no chunked encoding (RFC 9112 section 7.1 is HTTP/1.1 only): the stream
    // is sent as it is and ends when the connection closes.
    let http10 = req.version() < Version::HTTP_11;
    if http10 {
        response.force_close();
    }
    let writer = req.conn_data::<Rc<Handles>>().cloned();
    let mut response = response.streaming(event_stream(
        feed,
        subscription,
        writer,
        heartbeat,
        state.shutdown.clone(),
        place,
    ));
    if http10 {
        response.head_mut().no_chunking(true);
    }
    response
}

/// The body: the preamble, then the subscribed ticks as they are published, heartbeat
/// comments when idle, and the end of the stream when the server shuts down.
fn event_stream(
    feed: Feed,
    subscription: Subscription,
    writer: Option<Rc<Handles>>,
    heartbeat: Duration,
    shutdown: tokio_util::sync::CancellationToken,
    place: ConnectionGuard,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    let mut snapshots = feed.subscribe();
    let current = snapshots.borrow_and_update().clone();
    let state = EventState {
        snapshots,
        current,
        subscription,
        feed,
        writer,
        catch_up: false,
        heartbeat,
        idle: Box::pin(tokio::time::sleep(heartbeat)),
        last_sent: Instant::now(),
        stop: Box::pin(shutdown.cancelled_owned()),
        started: false,
        place,
    };
    stream::unfold(state, |mut state| async move {
        let chunk = state.next_chunk().await?;
        Some((Ok(chunk), state))
    })
}

struct EventState {
    snapshots: tokio::sync::watch::Receiver<Arc<Snapshot>>,
    /// The snapshot being sent: its subscribed ticks not sent yet are owed to the client.
    current: Arc<Snapshot>,
    subscription: Subscription,
    /// For the ticks a late wake-up skipped: the feed's history.
    feed: Feed,
    /// The connection's write state, when the server has one: a stream whose socket blocked
    /// skips to the newest ticks (latest value wins), one that was only woken late catches
    /// up from the history.
    writer: Option<Rc<Handles>>,
    /// Whether ticks skipped since the last one sent are owed too (from the history); not
    /// for the first snapshot of a stream (no backlog on a reconnect), nor after the socket
    /// blocked.
    catch_up: bool,
    heartbeat: Duration,
    /// Fires when the stream may have been idle for a heartbeat period. It is *not* re-armed
    /// on every tick (that would move it in the timer wheel once per tick per stream): when
    /// it fires, `last_sent` says whether the stream really was idle, and it is re-armed
    /// from there, at most once per heartbeat period.
    idle: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// When the last frame went out: one clock read per frame.
    last_sent: Instant,
    /// Completes when the server shuts down. Made once per stream, not once per wait: each
    /// `cancelled()` call takes the token's shared lock.
    stop: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    started: bool,
    /// This stream's place in the connection count, given back when the stream is dropped.
    place: ConnectionGuard,
}

impl EventState {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if !self.started {
            self.started = true;
            return Some(Bytes::from_static(PREAMBLE.as_bytes()));
        }
        loop {
            if let Some(event) = self.next_event() {
                self.last_sent = Instant::now();
                self.place
                    .metrics()
                    .sse_events_sent
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Some(event);
            }
            // Everything owed is sent: from now on, a late wake-up is caught up.
            self.catch_up = true;
            tokio::select! {
                // The server is shutting down: end the stream (EventSource will retry).
                _ = &mut self.stop => return None,
                // A new snapshot.
                changed = self.snapshots.changed() => {
                    changed.ok()?;
                    self.current = self.snapshots.borrow_and_update().clone();
                    if let Some(writer) = &self.writer
                        && (writer.backpressure.take_blocked() || writer.backpressure.is_blocked())
                    {
                        // The client fell behind: latest value wins.
                        self.catch_up = false;
                    }
                }
                // Maybe idle for a heartbeat period: a comment keeps the connection alive.
                _ = self.idle.as_mut() => {
                    let due = self.last_sent + self.heartbeat;
                    if Instant::now() < due {
                        // A tick went out meanwhile: not idle, look again when it would be.
                        self.idle.as_mut().reset(due);
                    } else {
                        self.last_sent = Instant::now();
                        self.idle.as_mut().reset(self.last_sent + self.heartbeat);
                        return Some(Bytes::from_static(HEARTBEAT.as_bytes()));
                    }
                }
            }
        }
    }

    /// The next event owed from the current snapshot, if any: for each subscribed symbol in
    /// turn, with [`EventState::catch_up`], the tick after the last one sent (from the
    /// feed's history, oldest first, as a WebSocket does when woken late; a gap longer than
    /// the history is skipped in one step), up to the current tick.
    fn next_event(&mut self) -> Option<Bytes> {
        // Disjoint borrows of the fields: no clone of the snapshot's `Arc` per event.
        let Self {
            current,
            subscription,
            feed,
            catch_up,
            ..
        } = self;
        for (i, published) in current.ticks.iter().enumerate() {
            if !subscription.contains(i) {
                continue;
            }
            let (run, seq) = (published.tick.run, published.tick.seq);
            loop {
                let last = subscription.last_sent(i, run);
                if seq <= last {
                    break;
                }
                let gap = seq - last - 1;
                if !*catch_up || last == 0 || gap == 0 || gap > HISTORY as u64 {
                    return event(subscription, current, i, published);
                }
                match feed.recent(i, run, last + 1, |tick| {
                    event(subscription, current, i, tick)
                }) {
                    Some(event) => return event,
                    // Not in the history (a relay may skip seqs): skipped.
                    None => subscription.mark_sent(i, run, last + 1),
                }
            }
        }
        None
    }
}

/// The event for `published`, the tick of the symbol at `i` in `snapshot`, marked as sent in
/// `subscription`; `None` if the stream does not take it.
fn event(
    subscription: &mut Subscription,
    snapshot: &Snapshot,
    i: usize,
    published: &Published,
) -> Option<Bytes> {
    if !subscription.take(i, published) {
        return None;
    }
    let run = published.tick.run;
    if subscription.only_position(i, run) {
        // One symbol held: the same event for every such stream, built once.
        return Some(published.sse_event_alone());
    }
    let id = subscription.resume_id(snapshot, i, run);
    let data = published.sse_frame();
    let mut event = BytesMut::with_capacity(id.len() + 5 + data.len());
    event.extend_from_slice(b"id: ");
    event.extend_from_slice(id.as_bytes());
    event.extend_from_slice(b"\n");
    event.extend_from_slice(&data);
    Some(event.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::tick::{RunId, Tick};
    use futures_util::StreamExt;

    fn tick(seq: u64) -> Tick {
        Tick {
            symbol: "ACME".into(),
            price: 100.0,
            change: 0.0,
            seq,
            ts: 1.0,
            run: RunId::UNKNOWN,
        }
    }

    /// The `seq` of an event chunk.
    fn seq_of(chunk: &Bytes) -> u64 {
        let text = std::str::from_utf8(chunk).unwrap();
        let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        serde_json::from_str::<Tick>(data).unwrap().seq
    }

    /// A stream whose task wakes up only after several ticks went by (a busy machine), its
    /// socket never blocked, sends the ticks in between from the feed's history, oldest
    /// first; the first event of a stream is the current tick only (no backlog).
    #[tokio::test]
    async fn a_stream_woken_late_catches_up_from_the_history() {
        let (feed, mut relay) = Feed::relay(vec!["ACME".into()], Duration::from_millis(100));
        for seq in 1..=3 {
            relay.publish(vec![(0, tick(seq))], true);
        }
        let metrics = std::sync::Arc::new(Metrics::default());
        let place = metrics.open_connection(10, |m| &m.sse_open).unwrap();
        let stream = event_stream(
            feed.clone(),
            Subscription::only(0),
            None,
            Duration::from_secs(60),
            tokio_util::sync::CancellationToken::new(),
            place,
        );
        let mut stream = std::pin::pin!(stream);
        let mut next = async || stream.next().await.unwrap().unwrap();
        assert_eq!(next().await, Bytes::from_static(PREAMBLE.as_bytes()));
        assert_eq!(seq_of(&next().await), 3, "the current tick, no backlog");
        // Five ticks while the stream's task is not polled: all of them, in order.
        for seq in 4..=8 {
            relay.publish(vec![(0, tick(seq))], true);
        }
        let mut seqs = Vec::new();
        for _ in 4..=8 {
            seqs.push(seq_of(&next().await));
        }
        assert_eq!(seqs, [4, 5, 6, 7, 8]);
    }
}
