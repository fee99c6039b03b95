//! `GET /price/next?symbol=ACME&after=41`: long polling, the classic trick for pushing over
//! plain HTTP. The client says which `seq` it already has; the server answers at once with
//! the *newest* tick if it is newer than that (latest value wins: the ticks in between are
//! not replayed), and otherwise *holds the request open* until the next tick (or a
//! timeout, answered `204 No Content`), after which the client asks again.
//!
//! An `after` *beyond* the current `seq` comes from an earlier run of the server (it
//! restarted, and counts from 1 again): it is answered at once with the current tick, so
//! the client picks up the new numbering instead of waiting for a `seq` that is far away.
//!
//! Compared with short polling it sees every change at nearly push latency, at the price
//! of one full HTTP request and response per update, and a reconnect gap after each one.
//! A held request costs no busy work: it sleeps on the feed's `watch` channel, which wakes
//! it once when the next snapshot is published.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;

/// The query `GET /price/next` understands.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextQuery {
    /// The symbol to wait for (case-insensitive); the feed's first symbol when absent.
    pub symbol: Option<String>,
    /// The newest `seq` the client already has; absent means "none yet": answer at once.
    pub after: Option<u64>,
}

impl NextQuery {
    /// Parses a raw query string, with an error that says what is expected.
    pub fn parse(query: &str) -> Result<NextQuery, ApiError> {
        super::query::parse(
            query,
            "?symbol=NAME&after=SEQ with SEQ a whole number >= 0 (the newest seq you have)",
        )
    }
}

/// `GET /price/next`: `200` with the newest tick if it is newer than `after` (or if `after`
/// is from an earlier run of the server: beyond the current `seq`), waiting for the next
/// tick if needed; `204` when none came within `--long-poll-secs`.
pub async fn next(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = NextQuery::parse(req.query_string())?;
    let feed = &state.feed;
    let index = super::price::symbol_index(feed, query.symbol.as_deref())?;
    let after = query.after.unwrap_or(0);
    let timeout = Duration::from_secs(state.config.long_poll_secs);

    // A held request occupies a connection like a socket does: it counts against the limit
    // (and in /metrics) while it waits.
    let Ok(_place) = state
        .metrics
        .open_connection(state.config.max_connections, |m| &m.longpoll_open)
    else {
        return Ok(super::error::too_many_connections(
            state.config.max_connections,
        ));
    };
    // Subscribe *before* looking at the latest value, so a tick published in between wakes us.
    let mut snapshots = feed.subscribe();
    let wait = async {
        loop {
            let newest = snapshots.borrow_and_update().ticks[index].clone();
            let seq = newest.tick.seq;
            // seq 0 is a front-end's placeholder (no tick from Redis yet): wait for a real one.
            if seq > after || (seq < after && seq > 0) {
                return Some(newest);
            }
            if snapshots.changed().await.is_err() {
                return None; // the feed stopped
            }
        }
    };
    let newest = tokio::select! {
        newest = tokio::time::timeout(timeout, wait) => newest.ok().flatten(),
        _ = state.shutdown.cancelled() => None,
    };
    Ok(match newest {
        Some(published) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header(header::ContentType::json())
            .body(published.json.into_bytes()),
        None => HttpResponse::NoContent()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
    })
}
