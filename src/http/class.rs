//! `GET /class?key=KEY`: the instructor's class view, for the projector, and
//! `GET /class/ws?key=KEY`: the WebSocket that keeps it live.
//!
//! The view is itself a WebSocket application: the students' pages send their reports and
//! answers up their own sockets ([`crate::class`]), the server pushes one snapshot of the
//! whole class down this socket whenever it changes (and once a second for the cost), and
//! the instructor's **Reveal** goes up this socket and is pushed down every blind page.
//!
//! Both routes want the class key (`--class-key`, or the random one printed at start-up),
//! compared in constant time; without it they answer `403` and say where the key is. The
//! socket is opened by the same `ws::open` as `/ws` and `/echo`, so it has every
//! bound the others have: the Origin check, a `--max-connections` place, the frame guard
//! (size, reserved bits, `--max-messages-per-sec`), the heartbeat and the client timeout,
//! and the bounded closing handshake.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use actix_ws::{AggregatedMessage, CloseCode};
use askama::Template;
use serde::Deserialize;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span};

use super::AppState;
use super::ws::{self, Client, Close, Control, Outbox, SessionSettings};
use crate::metrics::Refusal;
use crate::tick::{ServerMessage, epoch_ms};

/// The class view's page (`templates/class.html`).
#[derive(Template)]
#[template(path = "class.html")]
struct ClassPage {
    tick_ms: u64,
}

/// The `403` for a missing or wrong key: what is needed and where to find it. It does not
/// say which: a wrong key and no key look the same from outside.
fn forbidden(what: &str) -> HttpResponse {
    HttpResponse::Forbidden()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/plain; charset=utf-8")
        .body(format!(
            "403 Forbidden: {what} needs the class key. Open the /class?key=... URL tickerlab \
             printed when it started, or start it with --class-key KEY and open /class?key=KEY.\n"
        ))
}

/// Whether the request's query carries the class key (`key=...`).
fn has_key(req: &HttpRequest, state: &AppState) -> bool {
    let key = req
        .query_string()
        .split('&')
        .find_map(|pair| pair.strip_prefix("key="))
        .unwrap_or_default();
    state.class.admits(key)
}

/// `GET /class?key=KEY`: the projector page, or `403`.
pub async fn page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if !has_key(&req, &state) {
        return forbidden("the class view");
    }
    let page = ClassPage {
        tick_ms: state.config.tick_ms,
    };
    match page.render() {
        Ok(html) => HttpResponse::Ok()
            // The URL holds the key: keep the page out of caches.
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "class template failed");
            HttpResponse::InternalServerError().body("the class template failed to render")
        }
    }
}

/// What the class view may send: only the reveal.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Command {
    /// Reveal the blind test on every page.
    Reveal {},
}

/// `GET /class/ws?key=KEY`: the class view's socket, or `403` (no key, or a foreign
/// `Origin`), `400` (not a handshake) or `503` (`--max-connections` reached).
pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let metrics = &state.metrics;
    if !has_key(&req, &state) {
        info!(peer = ?req.peer_addr(), "class socket without the class key: refused");
        return Ok(forbidden("the class view's socket"));
    }
    if let Err(problem) = ws::check_handshake(req.headers()) {
        metrics.refused(Refusal::NotAHandshake);
        return Ok(problem.response(&req));
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
    let class = state.class.clone();
    actix_web::rt::spawn(
        async move {
            let _place = place;
            view(out, client, settings, class).await;
        }
        .instrument(info_span!("class", %peer)),
    );
    Ok(response)
}

/// The class view's loop: the same shape as the ticker session's, woken by a new snapshot
/// instead of the feed.
async fn view(
    mut out: Outbox,
    mut client: Client,
    settings: SessionSettings,
    class: std::sync::Arc<crate::class::Class>,
) {
    let mut heartbeat = ws::heartbeat_timer(settings.heartbeat);
    let mut last_heard = Instant::now();
    let shutdown = out.shutdown.clone();
    let mut stop = std::pin::pin!(shutdown.cancelled());
    let mut snapshots = class.view();
    snapshots.mark_changed(); // the current snapshot at once

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

            // A new snapshot of the class: send the newest (older ones are skipped).
            changed = snapshots.changed() => {
                if changed.is_err() {
                    break Close::ours((CloseCode::Away, "server shutting down").into());
                }
                let json = snapshots.borrow_and_update().clone();
                if out.send(json.as_ref().into()).await.is_err() {
                    return;
                }
            }

            // The instructor's page sent something.
            message = client.stream.recv() => {
                last_heard = Instant::now();
                let message = match ws::received(message, &client, &out.metrics, settings) {
                    Ok(message) => message,
                    Err(Some(close)) => break close,
                    Err(None) => return, // the TCP connection is gone: nobody to close
                };
                let sent = match message {
                    AggregatedMessage::Text(text) => match serde_json::from_str::<Command>(&text) {
                        Ok(Command::Reveal {}) => {
                            class.reveal(epoch_ms());
                            Ok(())
                        }
                        Err(_) => out.send_json(ServerMessage::Error {
                            message: "the class view sends only {\"type\":\"reveal\"}".into(),
                            code: "bad_message".into(),
                            id: None,
                            symbols: None,
                        }).await,
                    },
                    AggregatedMessage::Binary(_) => break Close::ours((
                        CloseCode::Unsupported,
                        "binary frames are not part of this protocol: send JSON text",
                    ).into()),
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
