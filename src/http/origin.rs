//! The `Origin` check on the WebSocket handshake (and on `GET /events`, which uses the same
//! rule): the defence against Cross-Site WebSocket Hijacking.
//!
//! A browser lets *any* page open a WebSocket to *any* server, and it sends the user's cookies
//! for that server along. The same-origin policy and CORS, which stop a foreign page from
//! reading `fetch` answers, do not apply to WebSockets at all. So a page on `evil.example`
//! could open `ws://127.0.0.1:8080/ws` from a visitor's browser and read whatever it streams.
//! What the browser *does* do is say who is asking: it puts the page's origin in the `Origin`
//! header, and a page cannot forge it. Checking that header is therefore the server's job,
//! and this module does it.
//!
//! The rule: a handshake is accepted when its `Origin` is
//!
//! * the server's own origin: the same host and port as the request's `Host` header, or its
//!   `:authority` over HTTP/2 (the
//!   page was served by this server), or
//! * a loopback origin (`localhost`, `127.0.0.1`, `[::1]`) on any port: a page the user runs on
//!   their own machine, e.g. a local copy of the page under development, or
//! * one of the `--allowed-origin` values.
//!
//! A request without `Origin` did not come from a browser page (`curl`, a test client, a
//! script): the attack needs a browser, so it is allowed, and logged. Anything else gets
//! `403 Forbidden`.

use actix_web::HttpRequest;
use actix_web::http::header;

/// An origin as a browser sends it: `scheme://host[:port]`, with the port made explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http`, `https`, or whatever the page's scheme was, in lower case.
    pub scheme: String,
    /// The host in lower case; an IPv6 address keeps its brackets.
    pub host: String,
    /// The port, the scheme's default when the origin names none.
    pub port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` (one trailing `/` tolerated). `None` for anything else,
    /// including the `null` origin of sandboxed frames and `file://` pages.
    pub fn parse(text: &str) -> Option<Origin> {
        let (scheme, rest) = text.trim().split_once("://")?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+')
        {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" | "ws" => 80,
            "https" | "wss" => 443,
            _ => 0,
        };
        let (host, port) = split_host_port(rest, default_port)?;
        Some(Origin { scheme, host, port })
    }

    fn is_loopback(&self) -> bool {
        matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "[::1]")
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// `host[:port]` into a lower-case host and a port (`default_port` when absent). `None` when
/// the host is empty, has characters no host name has, or the port is not a number.
fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, after) = authority.split_at(end + 1);
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return None,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    let valid = |b: u8| b.is_ascii_alphanumeric() || b"-.[]:_".contains(&b);
    if host.is_empty() || !host.bytes().all(valid) {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

/// What the check decided about one handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No `Origin` header: not a browser page. Allowed.
    NoOrigin,
    /// An allowed origin.
    Allowed,
    /// Refused; the text says which origin and what is allowed.
    Refused(String),
}

/// Checks the `Origin` of a handshake against the rule in the module documentation.
pub fn check(req: &HttpRequest, allowed: &[String]) -> Verdict {
    let Some(value) = req.headers().get(header::ORIGIN) else {
        return Verdict::NoOrigin;
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    // Say what was refused in the words of the transport the page used.
    let (what, reason) = if req.path() == "/ws" {
        (
            "WebSocket handshake",
            "(Browsers apply no CORS to WebSockets, so this check is what stops other sites \
             from using your browser to connect: Cross-Site WebSocket Hijacking.)",
        )
    } else {
        (
            "Request",
            "(The same rule as for /ws, so no foreign page can hold one of this server's \
             connections from a visitor's browser.)",
        )
    };
    let refuse = |why: &str| {
        Verdict::Refused(format!(
            "{what} refused: Origin {text:?} {why}. This server accepts pages from \
             its own origin, from localhost, and from origins given with --allowed-origin. \
             {reason}\n"
        ))
    };
    let Some(origin) = Origin::parse(&text) else {
        return refuse("is not a scheme://host[:port] origin");
    };
    let secure = super::server::Listener::of(req).is_some_and(|l| l.secure);
    let own_port = if secure { 443 } else { 80 };
    // HTTP/1.1 names the host in `Host`; HTTP/2 in the `:authority` pseudo-header, which
    // arrives as the request URI's authority (and a browser sends no `Host` there).
    let authority = req.uri().authority().map(|a| a.as_str());
    let own = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(authority)
        .and_then(|h| split_host_port(h, own_port));
    let same_host = own.is_some_and(|(host, port)| origin.host == host && origin.port == port);
    let listed = allowed
        .iter()
        .filter_map(|a| Origin::parse(a))
        .any(|a| a == origin);
    if same_host || origin.is_loopback() || listed {
        Verdict::Allowed
    } else {
        refuse("is not allowed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn verdict(origin: Option<&str>, host: &str, allowed: &[&str]) -> Verdict {
        let mut req = TestRequest::get().uri("/ws").insert_header(("host", host));
        if let Some(o) = origin {
            req = req.insert_header(("origin", o));
        }
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        check(&req.to_http_request(), &allowed)
    }

    #[test]
    fn over_http2_the_authority_names_the_own_origin() {
        // An HTTP/2 request: no Host header, the host in the URI's authority (`:authority`).
        let req = TestRequest::get()
            .uri("https://teacher.example:8443/events?symbols=ACME")
            .insert_header(("origin", "http://teacher.example:8443"))
            .to_http_request();
        assert!(req.headers().get(header::HOST).is_none());
        assert_eq!(check(&req, &[]), Verdict::Allowed);
        let foreign = TestRequest::get()
            .uri("https://teacher.example:8443/events?symbols=ACME")
            .insert_header(("origin", "http://evil.example:8443"))
            .to_http_request();
        assert!(matches!(check(&foreign, &[]), Verdict::Refused(_)));
    }

    #[test]
    fn parses_origins_with_default_ports() {
        let o = Origin::parse("HTTPS://Example.org").unwrap();
        assert_eq!(
            (o.scheme.as_str(), o.host.as_str(), o.port),
            ("https", "example.org", 443)
        );
        assert_eq!(Origin::parse("http://[::1]:8080").unwrap().host, "[::1]");
        assert_eq!(Origin::parse("http://a.b:81/").unwrap().port, 81);
        for bad in [
            "null",
            "example.org",
            "http://",
            "http://a b",
            "http://a:x",
            "http://a/b",
        ] {
            assert_eq!(Origin::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn own_origin_loopback_and_listed_are_allowed() {
        assert_eq!(verdict(None, "x:1", &[]), Verdict::NoOrigin);
        assert_eq!(
            verdict(Some("http://lab.school:8080"), "lab.school:8080", &[]),
            Verdict::Allowed
        );
        assert_eq!(
            verdict(Some("http://lab.school"), "lab.school:80", &[]),
            Verdict::Allowed
        );
        assert_eq!(
            verdict(Some("http://localhost:3000"), "lab.school:8080", &[]),
            Verdict::Allowed
        );
        assert_eq!(
            verdict(
                Some("https://docs.example"),
                "lab.school:8080",
                &["https://docs.example"]
            ),
            Verdict::Allowed
        );
    }

    #[test]
    fn other_origins_are_refused_with_the_rule() {
        for origin in ["http://evil.example", "http://lab.school:9999", "null"] {
            match verdict(Some(origin), "lab.school:8080", &["https://docs.example"]) {
                Verdict::Refused(text) => {
                    assert!(
                        text.contains(origin) && text.contains("--allowed-origin"),
                        "{text}"
                    )
                }
                other => panic!("{origin}: {other:?}"),
            }
        }
    }
}
