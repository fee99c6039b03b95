//! The opening handshake, checked before a socket is opened (RFC 6455 section 4.2.1).
//!
//! A WebSocket starts life as one HTTP/1.1 request: `GET /ws` with `Upgrade: websocket`,
//! `Connection: Upgrade`, `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key` of 16 random
//! bytes in base64. [`check_handshake`] names the first of those that is missing or wrong
//! ([`HandshakeProblem`]), and the answer (`400`, or `426` for another version) says what
//! was wrong and gives a `curl` command that does it right: a browser tab or a plain `curl`
//! that lands here learns what a handshake is.
//!
//! Also here: the query the streaming routes understand (`?symbols=`, `&resume=`), and the
//! handshake as the server saw it (request and `101` response, credentials redacted), which
//! `hello` shows the page.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};

use crate::http::error::ApiError;
use crate::subscription::MAX_SYMBOLS_PER_REQUEST;
use crate::tick::HandshakeRequest;

/// The query `/ws` and `/events` understand: `?symbols=ACME,GLOBX`, or nothing for the
/// default symbol; and `resume=ACME:42,GLOBX:17@RUN`, the position a reconnecting client
/// holds (the SSE id form, see [`crate::subscription::Subscription::resume`]), so nothing it has is sent again.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WsQuery {
    symbols: Option<String>,
    resume: Option<String>,
}

/// `?symbols=ACME,GLOBX` as a list of names; `None` when the parameter is absent. A query
/// that is too long, malformed, or has other parameters is a `400` saying what is expected.
/// (The routes use [`parse_stream_query`], which also reads `resume`.)
#[cfg(test)]
pub(crate) fn parse_symbols_param(query: &str) -> Result<Option<Vec<String>>, ApiError> {
    parse_stream_query(query).map(|(symbols, _)| symbols)
}

/// `?symbols=ACME,GLOBX` as a list of names (`None` when the parameter is absent), and the
/// `resume` position, if any. A query that is too long, malformed, or has other parameters
/// is a `400` saying what is expected.
pub(crate) fn parse_stream_query(
    query: &str,
) -> Result<(Option<Vec<String>>, Option<String>), ApiError> {
    let parsed: WsQuery = crate::http::query::parse(
        query,
        "nothing or ?symbols=NAME,NAME (and &resume=NAME:SEQ,...@RUN to resume)",
    )?;
    let symbols = parsed.symbols.map(|value| {
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .take(MAX_SYMBOLS_PER_REQUEST)
            .map(str::to_owned)
            .collect()
    });
    Ok((symbols, parsed.resume))
}

/// The opening request as the server saw it, for the page's handshake panel. Credentials are
/// redacted: the page's JavaScript must not learn an `HttpOnly` cookie through this echo.
pub(crate) fn record_request(req: &HttpRequest) -> HandshakeRequest {
    HandshakeRequest {
        method: req.method().to_string(),
        path: match req.query_string() {
            "" => req.path().to_owned(),
            q => format!("{}?{q}", req.path()),
        },
        version: format!("{:?}", req.version()),
        // Credentials never reach the page (or the projector): see `super::redact`.
        headers: crate::http::redact::request_headers(req.headers()),
    }
}

/// The `101` response's headers as they go on the wire. actix-http writes
/// `connection: upgrade` itself for an upgrade (it never takes `Connection` from the map), so
/// it is added here, first, where actix puts it; only `date` (added as the response is
/// written) is missing from what `hello` reports.
pub(crate) fn wire_response_headers(headers: &header::HeaderMap) -> Vec<(String, String)> {
    let mut pairs = vec![("connection".to_owned(), "upgrade".to_owned())];
    pairs.extend(
        header_pairs(headers)
            .into_iter()
            .filter(|(name, _)| name != "connection"),
    );
    pairs
}

fn header_pairs(headers: &header::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = match *name {
                header::COOKIE | header::AUTHORIZATION => "(redacted)".to_owned(),
                _ => String::from_utf8_lossy(value.as_bytes()).into_owned(),
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}

/// What is wrong with a request that was meant to open a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeProblem {
    /// No `Upgrade: websocket`: a browser tab or a plain `curl`.
    NotAnUpgrade,
    /// `Upgrade: websocket` without `Connection: Upgrade`.
    NoConnectionUpgrade,
    /// `Sec-WebSocket-Version` missing or not 13, the only version RFC 6455 defines.
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` missing, or not 16 bytes in base64.
    BadKey,
    /// `Sec-WebSocket-Key` of the right shape whose last character before `==` has padding
    /// bits set: no 16 bytes encode to it, so a strict base64 decoder refuses it.
    NonCanonicalKey,
    /// A body (`Transfer-Encoding`, or a `Content-Length` above 0): an opening handshake is
    /// a `GET` with none. Allowed, the bytes after the head would be read as the body and
    /// the connection would then go back to parsing requests, past the bounds a WebSocket
    /// connection is held to.
    HasBody,
}

/// Checks the headers of an opening handshake (RFC 6455 section 4.2.1).
pub fn check_handshake(headers: &header::HeaderMap) -> Result<(), HandshakeProblem> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::UPGRADE, "websocket") {
        return Err(HandshakeProblem::NotAnUpgrade);
    }
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get_all(header::CONTENT_LENGTH)
            .any(|v| v.as_bytes().iter().any(|b| *b != b'0'));
    if has_body {
        return Err(HandshakeProblem::HasBody);
    }
    if !has_token(header::CONNECTION, "upgrade") {
        return Err(HandshakeProblem::NoConnectionUpgrade);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(HandshakeProblem::UnsupportedVersion);
    }
    // A valid key is 16 random bytes in base64: 24 characters ending in "==".
    let key_ok = headers.get(header::SEC_WEBSOCKET_KEY).is_some_and(|k| {
        let k = k.as_bytes();
        k.len() == 24
            && k.ends_with(b"==")
            && k[..22]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
    });
    if !key_ok {
        return Err(HandshakeProblem::BadKey);
    }
    // 16 bytes are 128 bits; 22 base64 characters carry 132, so the last one before `==`
    // holds 2 bits of the key and 4 padding bits that must be zero: it is A, Q, g or w.
    // (actix's own check decodes strictly and would refuse it with an empty 400.)
    if headers
        .get(header::SEC_WEBSOCKET_KEY)
        .is_some_and(|k| !matches!(k.as_bytes()[21], b'A' | b'Q' | b'g' | b'w'))
    {
        return Err(HandshakeProblem::NonCanonicalKey);
    }
    Ok(())
}

impl HandshakeProblem {
    /// The plain-text answer: what was wrong and a command that does it right.
    pub(crate) fn response(self, req: &HttpRequest) -> HttpResponse {
        // The host the client named (`Host`, or HTTP/2's `:authority`), else the address
        // that accepted it: the command below then reaches this server.
        let host = req
            .headers()
            .get(actix_web::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .or_else(|| crate::http::server::Listener::of(req).map(|l| l.addr.to_string()))
            .unwrap_or_else(|| "localhost:8080".to_owned());
        let (status, problem) = match self {
            HandshakeProblem::NotAnUpgrade => (
                StatusCode::BAD_REQUEST,
                "This request did not ask to upgrade to a WebSocket (no `Upgrade: websocket` header).",
            ),
            HandshakeProblem::NoConnectionUpgrade => (
                StatusCode::BAD_REQUEST,
                "The request has `Upgrade: websocket` but not `Connection: Upgrade`.",
            ),
            HandshakeProblem::UnsupportedVersion => (
                StatusCode::UPGRADE_REQUIRED,
                "Only WebSocket version 13 (RFC 6455) is supported: send `Sec-WebSocket-Version: 13`.",
            ),
            HandshakeProblem::BadKey => (
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Key` must be 16 random bytes in base64 (24 characters ending in `==`).",
            ),
            HandshakeProblem::HasBody => (
                StatusCode::BAD_REQUEST,
                "An opening handshake has no body: send it without `Transfer-Encoding` and \
                 without a `Content-Length` above 0.",
            ),
            HandshakeProblem::NonCanonicalKey => (
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Key` is not the base64 of 16 bytes: 16 bytes fill 22 characters \
                 with 4 bits to spare, so the character before `==` must be A, Q, g or w \
                 (those spare bits zero). Make a key with `openssl rand -base64 16`.",
            ),
        };
        let text = format!(
            "{problem}\n\n\
             /ws is tickerlab's WebSocket endpoint: it speaks WebSocket, not plain HTTP, so a \
             browser tab or a plain curl gets this message.\n\
             Open the page at http://{host}/ to watch it live, or try it from a terminal:\n\n\
             \x20 curl -i -N --http1.1 -H 'Connection: Upgrade' -H 'Upgrade: websocket' \\\n\
             \x20      -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \\\n\
             \x20      'http://{host}/ws?symbols=ACME'\n\n\
             (curl prints the 101 Switching Protocols answer, then the frames as raw bytes.)\n"
        );
        let mut response = HttpResponse::build(status);
        response.content_type("text/plain; charset=utf-8");
        if self == HandshakeProblem::UnsupportedVersion {
            response.insert_header((header::SEC_WEBSOCKET_VERSION, "13"));
        }
        response.body(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        map
    }

    const GOOD: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn a_correct_handshake_passes() {
        assert_eq!(check_handshake(&headers(GOOD)), Ok(()));
    }

    #[test]
    fn each_missing_piece_is_named() {
        let without = |name: &str| {
            let pairs: Vec<_> = GOOD.iter().copied().filter(|(k, _)| *k != name).collect();
            check_handshake(&headers(&pairs))
        };
        assert_eq!(without("upgrade"), Err(HandshakeProblem::NotAnUpgrade));
        assert_eq!(
            without("connection"),
            Err(HandshakeProblem::NoConnectionUpgrade)
        );
        assert_eq!(
            without("sec-websocket-version"),
            Err(HandshakeProblem::UnsupportedVersion)
        );
        assert_eq!(without("sec-websocket-key"), Err(HandshakeProblem::BadKey));
    }

    #[test]
    fn a_handshake_with_a_body_is_refused() {
        let with = |name: &'static str, value: &'static str| {
            let mut pairs = GOOD.to_vec();
            pairs.push((name, value));
            check_handshake(&headers(&pairs))
        };
        assert_eq!(
            with("transfer-encoding", "chunked"),
            Err(HandshakeProblem::HasBody)
        );
        assert_eq!(with("content-length", "5"), Err(HandshakeProblem::HasBody));
        assert_eq!(with("content-length", "0"), Ok(()));
    }

    #[test]
    fn symbols_param_is_split_and_trimmed() {
        assert_eq!(
            parse_symbols_param("symbols=ACME,%20globx,,").unwrap(),
            Some(vec!["ACME".to_owned(), "globx".to_owned()])
        );
        assert_eq!(parse_symbols_param("").unwrap(), None);
        assert!(parse_symbols_param("symbol=ACME").is_err());
    }
}
