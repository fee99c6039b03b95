//! Query strings, read one way by every route that takes one (`/price`, `/price/next`,
//! `/ws`, `/events`): a length limit first, then a parse into the route's own typed struct.
//!
//! The struct says what the route accepts (`#[serde(deny_unknown_fields)]` refuses a typo
//! like `?symbl=ACME` instead of silently ignoring it), and a refusal is a `400` whose text
//! names what was wrong *and* what the route expects, so a person with `curl` can fix it.

use actix_web::web;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The longest query string any route accepts, in bytes. Ours are short
/// (`?symbols=ACME,GLOBX`); a longer one is a mistake or an attack and gets a `400` before
/// any parsing is spent on it.
pub const MAX_QUERY_BYTES: usize = 1024;

/// Parses `query` into `T`. `expected` describes the accepted form for the error text, e.g.
/// `"nothing or ?symbol=NAME"`: every refusal ends with "expected" and that description.
pub fn parse<T: DeserializeOwned>(query: &str, expected: &str) -> Result<T, ApiError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::bad_request(format!(
            "query string too long ({} bytes): at most {MAX_QUERY_BYTES}; expected {expected}",
            query.len()
        )));
    }
    web::Query::<T>::from_query(query)
        .map(web::Query::into_inner)
        .map_err(|e| {
            ApiError::bad_request(format!("malformed query string ({e}): expected {expected}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Q {
        n: Option<u64>,
    }

    #[test]
    fn parses_or_says_what_is_expected() {
        assert_eq!(parse::<Q>("n=3", "?n=N").unwrap().n, Some(3));
        assert_eq!(parse::<Q>("", "?n=N").unwrap().n, None);
        let e = parse::<Q>("n=x", "?n=N").unwrap_err();
        assert!(
            e.error.starts_with("malformed query string") && e.error.ends_with("expected ?n=N")
        );
        let e = parse::<Q>("m=1", "?n=N").unwrap_err();
        assert!(e.error.contains("unknown field"), "{}", e.error);
        let long = format!("n={}", "1".repeat(MAX_QUERY_BYTES));
        let e = parse::<Q>(&long, "?n=N").unwrap_err();
        assert!(
            e.error.contains("too long") && e.error.contains("at most 1024"),
            "{}",
            e.error
        );
    }
}
