//! `GET /price/next?symbol=ACME&after=41`: long polling, the classic trick for pushing over
//! plain HTTP. The client says which `seq` it already has; the server answers at once with
//! the *newest* tick if it is newer than that (latest value wins: the ticks in between are
//! not replayed), and otherwise *holds the request open* until the next tick (or a
//! timeout, answered `204 No Content`), after which the client asks again.
//!
//! A `seq` means something only within one run of the feed ([`RunId`]), so the client sends
//! the run of its `after` too: `?symbol=ACME&after=41&run=019ac2f1e3a74c1d` (the `run` of
//! the last tick it got). A *different* run is a restart: the numbering starts afresh, and
//! the current tick is answered at once. The *same* run with an `after` beyond this
//! instance's seq is not a restart but an instance that lags (behind a load balancer, polls
//! go to any instance): the request is held until this instance catches up, or until
//! `--long-poll-secs`. Guessing "restart" from a lower seq made polls that alternated
//! between an up-to-date and a lagging instance answer at once, going backwards, forever.
//! (A client that sends no `run` is held the same way: a lower seq alone proves nothing.)
//! Every answer carries the run in `X-Tickerlab-Run`, the `204` included.
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
use crate::tick::RunId;
use crate::wire::Published;

/// The response header naming the run of the feed that answered (see [`RunId`]).
pub const RUN_HEADER: &str = "x-tickerlab-run";

/// The query `GET /price/next` understands.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextQuery {
    /// The symbol to wait for (case-insensitive); the feed's first symbol when absent.
    pub symbol: Option<String>,
    /// The newest `seq` the client already has; absent means "none yet": answer at once.
    pub after: Option<u64>,
    /// The run that `after` belongs to (the `run` field of the client's last tick).
    pub run: Option<RunId>,
}

impl NextQuery {
    /// Parses a raw query string, with an error that says what is expected.
    pub fn parse(query: &str) -> Result<NextQuery, ApiError> {
        super::query::parse(
            query,
            "?symbol=NAME&after=SEQ&run=RUN with SEQ a whole number >= 0 (the newest seq you \
             have) and RUN the 16 hex digits of its run",
        )
    }
}

/// `GET /price/next`: `200` with the newest tick if it is newer than `after` (or of another
/// run than the client's, see [`answers`]), waiting for the next tick if needed; `204` when
/// none came within `--long-poll-secs`.
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
            if answers(&newest, after, query.run, feed.status().stale) {
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
    let run = newest
        .as_ref()
        .map_or_else(|| feed.run(), |published| published.tick.run);
    let mut response = match newest {
        Some(_) => HttpResponse::Ok(),
        None => HttpResponse::NoContent(),
    };
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if !run.is_unknown() {
        response.insert_header((RUN_HEADER, run.to_string()));
    }
    Ok(match newest {
        Some(published) => response
            .insert_header(header::ContentType::json())
            .body(published.json.into_bytes()),
        None => response.finish(),
    })
}

/// Whether `newest` answers a client that has `after` of run `run`.
///
/// * seq 0 is a front-end's placeholder (no tick from Redis yet): never an answer.
/// * Same run (or none given): only a later seq answers. An `after` beyond ours means this
///   instance lags behind the one that served the client: wait, never go backwards.
/// * The client's run sorts *after* ours and this instance is `stale`: it still serves the
///   previous run (cut off from Redis when the publisher restarted): wait for it to catch
///   up. (Not stale: ours is the live run, its publisher's clock was behind.)
/// * Any other run: the feed restarted since the client's last tick; the current tick of
///   the new run answers at once.
pub fn answers(newest: &Published, after: u64, run: Option<RunId>, stale: bool) -> bool {
    let tick = &newest.tick;
    if tick.seq == 0 {
        return false;
    }
    match run {
        Some(run) if run != tick.run && !run.is_unknown() => run < tick.run || !stale,
        _ => tick.seq > after,
    }
}
