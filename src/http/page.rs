//! `GET /`: the comparison page, and `GET /static/...`: its scripts and styles.
//!
//! The page is an askama template, checked at compile time: a typo in a variable name is a
//! build error, not a blank spot in a classroom. The static files are compiled into the
//! binary with `include_str!`, so `tickerlab` is one self-contained file that serves the
//! same page from any working directory. They are served byte for byte as they are in
//! the repository: what a learner reads in the browser's DevTools is the code in `static/`.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use askama::Template;

use super::AppState;

/// The page template (`templates/index.html`) and what it needs from the server.
#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    symbols: &'a [String],
    tick_ms: u64,
    version: &'static str,
    /// `/?blind`: the blind test, panes named only A and B until Reveal (static/js/blind.js).
    blind: bool,
    network: NetworkBadge,
}

/// Which network this page was fetched through (see [`crate::lab`]), for its badge.
struct NetworkBadge {
    kind: &'static str,
    rtt_ms: u64,
    label: String,
    other_port: Option<u16>,
}

/// `GET /`: the comparison page for this server's symbols and tick interval; `GET /?blind`:
/// the same page as a blind test. Any other query is ignored: a page link may carry anything.
pub async fn index(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let network = crate::lab::Network::of(&request);
    let page = IndexPage {
        symbols: state.feed.symbols(),
        tick_ms: state.config.tick_ms,
        version: env!("CARGO_PKG_VERSION"),
        blind: asks_for_blind(request.query_string()),
        network: NetworkBadge {
            kind: network.kind(),
            rtt_ms: network.rtt_ms(),
            label: network.describe(),
            other_port: crate::lab::Network::other_port(&request),
        },
    };
    match page.render() {
        Ok(html) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "page template failed");
            HttpResponse::InternalServerError().body("the page template failed to render")
        }
    }
}

/// True when the query has a `blind` parameter (`?blind`, `?blind=1`, `?x=y&blind`).
fn asks_for_blind(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("blind"))
}

/// Every file under `static/`, compiled in: (path below `static/`, contents).
/// A test checks this list against the directory, so a new file cannot be forgotten.
pub const ASSETS: &[(&str, &str)] = &[
    ("style.css", include_str!("../../static/style.css")),
    ("favicon.svg", include_str!("../../static/favicon.svg")),
    ("js/main.js", include_str!("../../static/js/main.js")),
    ("js/pane.js", include_str!("../../static/js/pane.js")),
    (
        "js/http-pane.js",
        include_str!("../../static/js/http-pane.js"),
    ),
    ("js/ws-pane.js", include_str!("../../static/js/ws-pane.js")),
    (
        "js/longpoll-pane.js",
        include_str!("../../static/js/longpoll-pane.js"),
    ),
    (
        "js/sse-pane.js",
        include_str!("../../static/js/sse-pane.js"),
    ),
    ("js/chooser.js", include_str!("../../static/js/chooser.js")),
    ("js/format.js", include_str!("../../static/js/format.js")),
    ("js/stats.js", include_str!("../../static/js/stats.js")),
    ("js/wire.js", include_str!("../../static/js/wire.js")),
    ("js/chart.js", include_str!("../../static/js/chart.js")),
    (
        "js/scoreboard.js",
        include_str!("../../static/js/scoreboard.js"),
    ),
    (
        "js/handshake.js",
        include_str!("../../static/js/handshake.js"),
    ),
    ("js/log.js", include_str!("../../static/js/log.js")),
    ("js/backoff.js", include_str!("../../static/js/backoff.js")),
    ("js/clock.js", include_str!("../../static/js/clock.js")),
    (
        "js/freshness.js",
        include_str!("../../static/js/freshness.js"),
    ),
    ("js/blind.js", include_str!("../../static/js/blind.js")),
    ("js/strip.js", include_str!("../../static/js/strip.js")),
    ("js/network.js", include_str!("../../static/js/network.js")),
    (
        "js/class-link.js",
        include_str!("../../static/js/class-link.js"),
    ),
    (
        "js/class-view.js",
        include_str!("../../static/js/class-view.js"),
    ),
    ("class.css", include_str!("../../static/class.css")),
];

/// `GET /static/{path}`: one compiled-in asset, or `404`.
pub async fn asset(path: web::Path<String>) -> HttpResponse {
    let path = path.into_inner();
    let Some((_, body)) = ASSETS.iter().find(|(p, _)| *p == path) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no such asset: /static/{path}"));
    };
    let content_type = match path.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "text/plain; charset=utf-8",
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type(content_type)
        .body(*body)
}

#[cfg(test)]
mod tests {
    use super::asks_for_blind;

    #[test]
    fn blind_is_a_query_parameter_with_or_without_a_value() {
        assert!(asks_for_blind("blind"));
        assert!(asks_for_blind("blind=1"));
        assert!(asks_for_blind("utm=x&blind"));
        assert!(!asks_for_blind(""));
        assert!(!asks_for_blind("blinds"));
        assert!(!asks_for_blind("x=blind"));
    }
}
