//! `GET /price`: the request/response way. The client asks, the server answers with the
//! newest tick, the exchange is over. To learn of the next price the client must ask again;
//! whatever changed in between it never sees (the `seq` gap shows how much).
//!
//! The answer is the feed's pre-serialised tick, sent as is: a request costs a lookup and
//! a reference-count bump, never a JSON serialisation.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use crate::feed::Feed;

/// The query `GET /price` understands: `?symbol=ACME`, or nothing for the default symbol.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceQuery {
    /// The symbol to quote (case-insensitive); the feed's first symbol when absent.
    pub symbol: Option<String>,
}

impl PriceQuery {
    /// Parses a raw query string, with an error that says what is expected.
    pub fn parse(query: &str) -> Result<PriceQuery, ApiError> {
        super::query::parse(query, "nothing or ?symbol=NAME")
    }
}

/// `GET /price?symbol=ACME`: `200` with the symbol's newest tick, exactly as `/ws` sends it.
/// `Cache-Control: no-store`, because a cached price is a wrong price.
pub async fn price(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = PriceQuery::parse(req.query_string())?;
    let feed = &state.feed;
    let index = symbol_index(feed, query.symbol.as_deref())?;
    let latest = feed.latest();
    let published = &latest.ticks[index];
    // seq 0 is a front-end's placeholder: no publisher has reached it through Redis yet.
    if published.tick.seq == 0 {
        return Err(ApiError::unavailable(format!(
            "no price for {} yet: this front-end is waiting for the first tick from the \
             publisher through Redis (see GET /healthz)",
            published.tick.symbol
        )));
    }
    let json = published.json.clone();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(header::ContentType::json())
        .body(json.into_bytes()))
}

/// The position of `symbol` (case-insensitive) in the feed; the default symbol for `None`.
/// Unknown names are a `404` listing the known ones; an empty name is a `400`.
pub fn symbol_index(feed: &Feed, symbol: Option<&str>) -> Result<usize, ApiError> {
    match symbol {
        None => Ok(0),
        Some("") => Err(ApiError::bad_request(
            "empty symbol: use ?symbol=NAME or leave it out for the default symbol",
        )),
        Some(s) => feed
            .index_of(&s.to_ascii_uppercase())
            .ok_or_else(|| ApiError::unknown_symbol(s, feed.symbols())),
    }
}

/// `GET /healthz`: `200` while the server runs, with how many ticks the feed has made and
/// where they come from (`feed`: see [`crate::tick::FeedStatus`]). A stale front-end still
/// answers `200`: it is up and serving its last prices; `feed.stale` says they may be old.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "status": "ok",
            "ticks": state.feed.ticks(),
            "feed": state.feed.status(),
        }))
}
