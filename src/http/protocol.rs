//! HTTP's own rules that the framework leaves to the application: which methods a route
//! answers, how large a request head may be, and which HTTP version a WebSocket needs.
//!
//! * **Methods** (RFC 9110 section 9): every `GET` route also answers `HEAD`, with the same
//!   status and headers and no body; `HEAD` is how `curl -I` and link checkers look at a
//!   resource. Any other method on a path that exists is `405 Method Not Allowed` with an
//!   `Allow` header naming `GET, HEAD`, not a `404`: the path is right, the method is not.
//! * **Request-head size**: actix-http's parser buffers a request head of up to 128 KiB
//!   (`MAX_BUFFER_SIZE` in `actix-http/src/h1/decoder.rs`, not configurable) before it gives
//!   up with its own `431`. [`limit_head`] refuses heads over [`MAX_HEAD_BYTES`] (32 KiB)
//!   itself, with a `431` whose body says why, before any route runs. So what a client can
//!   make the server hold for one head is 128 KiB, and what it can get *answered* is 32 KiB.
//! * **WebSockets need HTTP/1.1** (RFC 6455 section 4.1): an `HTTP/1.0` request has no
//!   upgrade mechanism, so [`require_http11`] answers it `400` with the reason instead of
//!   letting the handshake go ahead.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{RequestHead, ServiceRequest, ServiceResponse};
use actix_web::http::{Version, header};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};

use super::AppState;
use super::error::ApiError;
use crate::metrics::Refusal;

/// The largest request head tickerlab answers, in bytes: request line, headers and the
/// blank line, as counted by [`head_bytes`]. Browsers send well under 8 KiB; 32 KiB leaves
/// room for large cookies without letting a client make every request expensive.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// What the routes of this server answer: every one is a `GET` route.
const ALLOWED: &str = "GET, HEAD";

/// Registers `path` so that `GET` and `HEAD` reach `handler` and every other method gets
/// `405` with `Allow: GET, HEAD` (see the module docs).
pub fn get_and_head<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(method_not_allowed))
}

/// The answer to a method a route does not serve: `405`, `Allow: GET, HEAD`, and a JSON body.
async fn method_not_allowed(req: actix_web::HttpRequest) -> HttpResponse {
    let mut response =
        ApiError::method_not_allowed(req.method().as_str(), req.path(), ALLOWED).error_response();
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(ALLOWED));
    response
}

/// The size of a request head on the wire: `METHOD target HTTP/x.y\r\n`, one
/// `name: value\r\n` per header, and the closing `\r\n`.
pub fn head_bytes(head: &RequestHead) -> usize {
    let target = head.uri.path_and_query().map_or(1, |p| p.as_str().len());
    let request_line = head.method.as_str().len() + 1 + target + 1 + "HTTP/1.1\r\n".len();
    let headers: usize = head
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    request_line + headers + 2
}

/// Middleware: refuses a request whose head is over [`MAX_HEAD_BYTES`] with `431`.
pub async fn limit_head(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let bytes = head_bytes(req.head());
    if bytes > MAX_HEAD_BYTES {
        let response = ApiError::head_too_large(bytes, MAX_HEAD_BYTES).error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Middleware for `/ws`: an `HTTP/1.0` request cannot be upgraded (RFC 6455 requires
/// HTTP/1.1), so it gets `400` with the reason, counted as a refused handshake.
pub async fn require_http11(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if req.version() < Version::HTTP_11 {
        if let Some(state) = req.app_data::<web::Data<AppState>>() {
            state.metrics.refused(Refusal::NotAHandshake);
        }
        let response = ApiError::bad_request(format!(
            "a WebSocket handshake needs HTTP/1.1 (RFC 6455 section 4.1); this request is {:?}",
            req.version()
        ))
        .error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn head_bytes_counts_the_bytes_of_the_head_on_the_wire() {
        let req = TestRequest::get()
            .uri("/price?symbol=ACME")
            .insert_header(("host", "x"))
            .to_http_request();
        let wire = "GET /price?symbol=ACME HTTP/1.1\r\nhost: x\r\n\r\n";
        assert_eq!(head_bytes(req.head()), wire.len());
    }
}
