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
        let max = super::ws::MAX_QUERY_BYTES;
        if query.len() > max {
            return Err(ApiError::bad_request(format!(
                "query string too long ({} bytes): at most {max}; expected nothing or ?symbol=NAME",
                query.len()
            )));
        }
        web::Query::<PriceQuery>::from_query(query)
            .map(web::Query::into_inner)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "malformed query string ({e}): expected nothing or ?symbol=NAME"
                ))
            })
    }
}

/// `GET /price?symbol=ACME`: `200` with the symbol's newest tick, exactly as `/ws` sends it.
/// `Cache-Control: no-store`, because a cached price is a wrong price.
pub async fn price(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = PriceQuery::parse(req.query_string())?;
    let feed = &state.feed;
    let index = match query.symbol {
        None => 0,
        Some(s) if s.is_empty() => {
            return Err(ApiError::bad_request(
                "empty symbol: use ?symbol=NAME or leave it out for the default symbol",
            ));
        }
        Some(s) => feed
            .index_of(&s.to_ascii_uppercase())
            .ok_or_else(|| ApiError::unknown_symbol(&s, feed.symbols()))?,
    };
    let json = feed.latest().ticks[index].json.clone();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(header::ContentType::json())
        .body(json.into_bytes()))
}

/// `GET /healthz`: `200` while the server runs, with how many ticks the feed has made.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "status": "ok", "ticks": state.feed.ticks() }))
}
