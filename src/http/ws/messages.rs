//! What the session answers to each client message, and the messages it starts with.
//!
//! A client may send four kinds of JSON text for the feed (DESIGN section 2): `subscribe`
//! and `unsubscribe` (a list of symbols), `ping` (answered with `pong` and the server's
//! clock) and `drop` (the page's "drop connection": closed with 1012); and two for the
//! class view (see [`crate::class`]): `report` (the page's panes) and `vote`. Everything else gets an
//! `error` that says what was wrong and what would have worked, and changes nothing. These
//! are plain functions from a message to the answers: no socket, no await, so the property
//! tests (`proptests.rs`) can throw anything at them.

use actix_ws::{CloseCode, CloseReason};

use crate::class::{Pupil, Refused};
use crate::feed::Feed;
use crate::subscription::{BeyondTheFeed, MAX_SYMBOLS_PER_REQUEST, Subscription};
use crate::tick::{
    ClientMessage, Handshake, Heartbeat, PROTOCOL_VERSION, RequestId, ServerMessage, epoch_ms,
};

/// What the session does about one client text message.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Send these messages back, in order.
    Answers(Vec<ServerMessage>),
    /// Close the socket with this reason (the client asked to be dropped).
    Close(CloseReason),
    /// A message for the class ([`crate::class::Pupil`]): the session's seat answers it.
    Class(ClientMessage),
}

/// Answers one text message, parsed once. A bad message gets an `error` and changes nothing;
/// a `drop` request closes the socket (see [`drop_reason`]).
pub(crate) fn handle_text(
    text: &str,
    feed: &Feed,
    subscription: &mut Subscription,
    heartbeat: Heartbeat,
) -> Reply {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(message) => message,
        Err(e) => return Reply::Answers(vec![bad_message(text, &e)]),
    };
    match message {
        ClientMessage::Drop { id } => return Reply::Close(drop_reason(id)),
        ClientMessage::Report { .. } | ClientMessage::Vote { .. } | ClientMessage::Reveal {} => {
            return Reply::Class(message);
        }
        _ => {}
    }
    Reply::Answers(answer(message, feed, subscription, heartbeat))
}

/// The messages that answer a parsed request other than `drop`.
fn answer(
    message: ClientMessage,
    feed: &Feed,
    subscription: &mut Subscription,
    heartbeat: Heartbeat,
) -> Vec<ServerMessage> {
    match message {
        ClientMessage::Ping { id, t } => vec![ServerMessage::Pong {
            id,
            t,
            server_ts: epoch_ms(),
            heartbeat: Some(heartbeat),
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
        ClientMessage::Drop { .. }
        | ClientMessage::Report { .. }
        | ClientMessage::Vote { .. }
        | ClientMessage::Reveal {} => Vec::new(),
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

/// Answers a class message with the session's seat: the answers, or the `error` that says
/// why it was refused.
pub(crate) fn class_answer(message: ClientMessage, pupil: &mut Pupil) -> Vec<ServerMessage> {
    let answered = match message {
        ClientMessage::Report { panes, ws_letter } => pupil.report(panes, ws_letter),
        ClientMessage::Vote { answer } => pupil.vote(answer).map(|voted| vec![voted]),
        _ => Err(Refused::NotTheInstructor),
    };
    answered.unwrap_or_else(|refused| vec![error(refused.to_string(), refused.code(), None)])
}

pub(crate) fn unknown_symbols(feed: &Feed, unknown: &[String], id: RequestId) -> ServerMessage {
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

/// What a new socket is sent before its first tick: `hello`, then an `error` naming any
/// unknown symbols the URL asked for.
pub(crate) fn greeting(
    feed: &Feed,
    subscription: &Subscription,
    handshake: Handshake,
    unknown: &[String],
    beyond: &[BeyondTheFeed],
) -> Vec<ServerMessage> {
    let mut greeting = vec![hello(feed, subscription, handshake)];
    if !unknown.is_empty() {
        greeting.push(unknown_symbols(feed, unknown, None));
    }
    for position in beyond {
        greeting.push(error(
            format!(
                "resume position {}:{} is beyond this feed's newest tick, {}:{}: a position \
                 must be one this feed sent; starting at the newest tick",
                position.symbol, position.seq, position.symbol, position.newest
            ),
            "bad_resume",
            None,
        ));
    }
    greeting
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
