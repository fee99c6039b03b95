//! The error body every HTTP route answers with: JSON that says what was wrong and what is
//! allowed, e.g. `{"error":"unknown symbol \"XYZ\"","symbols":["ACME","GLOBX"]}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, http::header};
use serde::Serialize;

/// A client error with its HTTP status and a message for a person to read.
#[derive(Debug, Serialize, thiserror::Error)]
#[error("{error}")]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    /// What went wrong, and what would have worked.
    pub error: String,
    /// The symbols that exist, when the mistake was about a symbol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbols: Option<Vec<String>>,
}

impl ApiError {
    /// `400 Bad Request`: the request itself was malformed.
    pub fn bad_request(error: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: error.into(),
            symbols: None,
        }
    }

    /// `404 Not Found` for a path no route serves.
    pub fn not_found(error: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error: error.into(),
            symbols: None,
        }
    }

    /// `503 Service Unavailable`: the server is fine but has nothing to answer with yet (a
    /// front-end that has not received its first tick from Redis).
    pub fn unavailable(error: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: error.into(),
            symbols: None,
        }
    }

    /// `405 Method Not Allowed`: the path exists but answers only `allowed` (the caller puts
    /// the same list in the `Allow` header).
    pub fn method_not_allowed(method: &str, path: &str, allowed: &str) -> ApiError {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            error: format!("{method} is not allowed on {path}: use {allowed}"),
            symbols: None,
        }
    }

    /// `431 Request Header Fields Too Large`: the request head is over the server's limit.
    pub fn head_too_large(bytes: usize, limit: usize) -> ApiError {
        ApiError {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            error: format!(
                "the request head is {bytes} bytes: at most {limit} are accepted \
                 (look for an oversized cookie or header)"
            ),
            symbols: None,
        }
    }

    /// `404 Not Found` for a symbol the feed does not publish, listing the ones it does.
    pub fn unknown_symbol(symbol: &str, known: &[String]) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error: format!("unknown symbol {symbol:?}: use one of {}", known.join(", ")),
            symbols: Some(known.to_vec()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(self)
    }
}

/// What a refusal at `--max-connections` puts in `Retry-After`, in seconds: long enough for a
/// few of the open connections to end, short enough that a person retrying is not kept
/// waiting.
pub const RETRY_AFTER_SECS: u32 = 5;

/// The one answer for a long-lived connection (a WebSocket, an event stream, a held long
/// poll) refused because `--max-connections` are open: `503 Service Unavailable` with
/// `Retry-After`, and a JSON body that names the limit. Every transport answers the same,
/// so a client (or a load balancer) handles "server full" one way.
pub fn too_many_connections(max_connections: u64) -> HttpResponse {
    let error = ApiError::unavailable(format!(
        "this server already has {max_connections} open connections, its limit \
         (--max-connections): try again in {RETRY_AFTER_SECS} seconds"
    ));
    let mut response = error.error_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(RETRY_AFTER_SECS),
    );
    response
}
