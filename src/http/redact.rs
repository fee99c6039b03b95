//! What the `hello` handshake echo may show of a client's request headers.
//!
//! The page puts the WebSocket's opening request on screen (often a projector), so echoing
//! every header would show whatever credentials the browser or a proxy attached:
//! `Cookie`, `Authorization`, `Proxy-Authorization`, `X-Api-Key`, a session token under a
//! name nobody can predict. A deny-list would miss the next such name, so this is an
//! allow-list: the headers the lesson talks about are shown as received; every other
//! header is still *named* (the lesson is that a browser sends them) but its value is
//! replaced by `(redacted, N bytes)`. The length stays, so the page's byte counts (what the
//! handshake and a plain `GET` weigh on the wire) remain exact: `static/js/wire.js` reads
//! `N` back instead of the placeholder's own length.

use actix_web::http::header::HeaderMap;

/// Request headers shown with their values: those of the handshake itself (RFC 6455 section
/// 4.1) and the ordinary, credential-free ones every browser sends, which the page uses to
/// estimate what a plain `GET` costs. Names are lower-case, as `HeaderMap` stores them.
pub const SHOWN_REQUEST_HEADERS: &[&str] = &[
    "host",
    "origin",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "pragma",
];

/// The value shown instead of a header that is not on the allow-list: it says that something
/// was there and how long it was, never what it was.
pub fn redacted(value_len: usize) -> String {
    format!("(redacted, {value_len} bytes)")
}

/// The request's headers as name/value pairs in the order received, with every value not in
/// [`SHOWN_REQUEST_HEADERS`] replaced by [`redacted`].
pub fn request_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let name = name.as_str();
            let value = if SHOWN_REQUEST_HEADERS.contains(&name) {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            } else {
                redacted(value.len())
            };
            (name.to_owned(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    #[test]
    fn credentials_are_named_but_never_shown() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "127.0.0.1:8080"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("authorization", "Bearer abc"),
            ("cookie", "session=1"),
            ("x-api-key", "k-123"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let pairs = request_headers(&headers);
        let shown = |n: &str| pairs.iter().find(|(name, _)| name == n).unwrap().1.clone();
        assert_eq!(shown("host"), "127.0.0.1:8080");
        assert_eq!(shown("sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(shown("proxy-authorization"), "(redacted, 14 bytes)");
        assert_eq!(shown("authorization"), "(redacted, 10 bytes)");
        assert_eq!(shown("cookie"), "(redacted, 9 bytes)");
        assert_eq!(shown("x-api-key"), "(redacted, 5 bytes)");
        assert!(!format!("{pairs:?}").contains("c2VjcmV0"));
    }
}
