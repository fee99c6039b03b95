//! Security headers, so the browser itself enforces what the page may do.
//!
//! `Content-Security-Policy` and `Referrer-Policy` go on the HTML page only: they govern a
//! document, and on a JSON answer they would be ~275 bytes of dead weight on *every poll*,
//! which would also skew the lesson's byte counts against HTTP. `nosniff` is ~30 bytes and
//! matters for every answer, so every answer gets it.
//!
//! * `Content-Security-Policy`: scripts, styles and images only from this server (no inline
//!   script, no CDN), and network connections (`fetch`, `WebSocket`) only to this server's
//!   own `http(s)://` and `ws(s)://` origins. If someone ever slipped markup into the page, the
//!   browser would still refuse to run it or to send data elsewhere. The page is written
//!   for this policy: plain ES modules from `/static`, no inline `<script>`, `<style>`,
//!   `style=""` or `on...=` attributes.
//! * `X-Content-Type-Options: nosniff`: the browser trusts our `Content-Type` and never
//!   guesses, so a JSON answer cannot be run as a script.
//! * `Referrer-Policy: no-referrer`: following a link from the page tells the other site
//!   nothing about this server's address.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;

/// The middleware: adds `nosniff` to every response, and the page policies to HTML ones (see
/// the module docs).
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Kept (a reference-count bump) so the policy can be built after the answer, and only
    // for an HTML one: a `/price` poll must not pay for formatting a string it never sends.
    let host = req.headers().get(header::HOST).cloned();
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        let policy = content_security_policy(host.as_ref().and_then(|h| h.to_str().ok()));
        if let Ok(policy) = HeaderValue::from_str(&policy) {
            headers.insert(header::CONTENT_SECURITY_POLICY, policy);
        }
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    Ok(res)
}

/// The policy for a page served under `host` (the request's `Host` header).
///
/// `'self'` covers `http(s)://host`; the WebSocket origins are listed too, because older
/// browsers do not count `ws://` as `'self'`. The host comes from the client, so it is
/// inserted only if it is made of host-name characters (a `;` could otherwise add a
/// directive); otherwise the policy falls back to `'self'` alone.
pub fn content_security_policy(host: Option<&str>) -> String {
    let sockets = match host {
        Some(h)
            if !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b)) =>
        {
            format!(" ws://{h} wss://{h}")
        }
        _ => String::new(),
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{sockets}; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_goes_into_connect_src_only_when_it_is_a_host() {
        let p = content_security_policy(Some("127.0.0.1:8080"));
        assert!(p.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"));
        let p = content_security_policy(Some("x; script-src *"));
        assert!(p.contains("connect-src 'self';") && !p.contains('*'), "{p}");
    }
}
