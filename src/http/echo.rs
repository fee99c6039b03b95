//! `GET /echo`: a WebSocket that sends back whatever it receives. Type a message, it comes
//! back: the smallest two-way conversation there is, and the endpoint that conformance
//! suites (Autobahn|Testsuite, `scripts/autobahn.sh`) need to judge a server's framing.
//!
//! It is not a toy beside `/ws`: it is opened by the same `ws::open` (the same frame
//! guard, size and rate limits, heartbeat and client timeout) and writes through the same
//! `ws::Outbox`, so what the suite finds about `/echo` holds for the ticker socket
//! too. Text comes back as text and binary as binary (`/ws` refuses binary; the suite needs
//! it); a ping gets its pong; a close gets a close with the same code.

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode};
use tokio::time::Instant;
use tracing::{Instrument, info_span};

use super::AppState;
use super::ws::{self, Client, Close, Control, Outbox, SessionSettings};
use crate::metrics::Refusal;

/// `GET /echo`: checks the handshake like `/ws` (the same `400`, `403` and `503` refusals),
/// answers `101` and echoes until either side closes.
pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let metrics = &state.metrics;
    if ws::check_handshake(req.headers()).is_err() {
        metrics.refused(Refusal::NotAHandshake);
        return Ok(HttpResponse::BadRequest()
            .content_type("text/plain; charset=utf-8")
            .body(
                "/echo is a WebSocket that sends back every message: open it with a WebSocket \
                 client (Upgrade: websocket, Sec-WebSocket-Version: 13).\n",
            ));
    }
    let ws::Plain {
        response,
        out,
        client,
        settings,
        peer,
        place,
    } = match ws::open_plain(&req, body, &state).await? {
        Ok(opened) => opened,
        Err(refusal) => return Ok(refusal),
    };
    actix_web::rt::spawn(
        async move {
            let _place = place;
            echo(out, client, settings).await;
        }
        .instrument(info_span!("echo", %peer)),
    );
    Ok(response)
}

/// The echo loop: the same shape as the ticker session's, without a feed.
async fn echo(mut out: Outbox, mut client: Client, settings: SessionSettings) {
    let mut heartbeat = ws::heartbeat_timer(settings.heartbeat);
    let mut last_heard = Instant::now();
    let shutdown = out.shutdown.clone();
    let mut stop = std::pin::pin!(shutdown.cancelled());

    let close: Close = loop {
        tokio::select! {
            // The server is shutting down: tell the client it is going away.
            _ = &mut stop => break Close::ours((CloseCode::Away, "server shutting down").into()),

            // Heartbeat: ping, or give up on a peer that has been silent too long.
            _ = heartbeat.tick() => match ws::beat(&mut out, last_heard, settings).await {
                Ok(None) => {}
                Ok(Some(close)) => break close,
                Err(_) => return, // the TCP connection is gone: nobody to close
            },

            // The client sent a message: send it back as it came.
            message = client.stream.recv() => {
                last_heard = Instant::now();
                let message = match ws::received(message, &client, &out.metrics, settings) {
                    Ok(message) => message,
                    Err(Some(close)) => break close,
                    Err(None) => return, // the TCP connection is gone: nobody to close
                };
                let sent = match message {
                    AggregatedMessage::Text(text) => out.send(text).await,
                    AggregatedMessage::Binary(bytes) => out.send_binary(bytes).await,
                    AggregatedMessage::Ping(bytes) => out.control(Control::Pong(&bytes)).await,
                    AggregatedMessage::Pong(_) => Ok(()),
                    AggregatedMessage::Close(reason) => break Close::theirs(reason),
                };
                if sent.is_err() {
                    return;
                }
            }
        }
    };
    ws::finish(out, client, close, settings).await;
}
