//! The page in a real headless Chromium against the real server: what a learner sees is what
//! these tests check. Needs `chromium` and `chromedriver` (see tests/common/browser.rs).

use crate::common;
use browser::{Browser, BrowserOptions, target_dir};
use common::browser;
use common::{TestApp, spawn_app, test_config};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// A slower tick than the other tests use: the page is measured in a browser that shares two
/// cores with the compiler, and 100 ms still gives several prices per second.
const TICK_MS: u64 = 100;

async fn app() -> TestApp {
    spawn_app(tickerlab::Config {
        tick_ms: TICK_MS,
        ..test_config()
    })
    .await
}

/// The server and a browser showing its page, or `None` when browser tests are skipped.
async fn page() -> Option<(TestApp, Browser)> {
    let browser = Browser::launch(BrowserOptions::default()).await?;
    let app = app().await;
    browser.open(&app.http("/")).await;
    Some((app, browser))
}

/// Waits until the server's feed has made the price `seq` of the first symbol.
async fn wait_for_seq(app: &TestApp, seq: u64) {
    let start = std::time::Instant::now();
    while app.feed.latest().ticks[0].tick.seq < seq {
        assert!(start.elapsed() < browser::PAGE_WAIT, "the feed stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn number(browser: &Browser, js: &str) -> f64 {
    browser
        .js(&format!("return Number({js});"))
        .await
        .as_f64()
        .unwrap_or_else(|| panic!("{js} is not a number"))
}

#[tokio::test]
async fn the_websocket_pane_updates_by_itself() {
    let Some((_app, browser)) = page().await else {
        return;
    };
    let mut seqs = BTreeSet::new();
    let start = std::time::Instant::now();
    while seqs.len() < 5 {
        assert!(
            start.elapsed() < browser::PAGE_WAIT,
            "the WebSocket pane showed only {seqs:?}"
        );
        let seq = browser
            .js("return document.getElementById('pane-ws').dataset.seq || null;")
            .await;
        if let Some(seq) = seq.as_str() {
            seqs.insert(seq.parse::<u64>().expect("seq is a number"));
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(browser.text("#pane-ws .ws-state").await, "open");
    let price = browser.text("#pane-ws .q-price").await;
    assert!(price.parse::<f64>().is_ok(), "price shown: {price:?}");
    browser.finish().await;
}

#[tokio::test]
async fn the_http_pane_does_nothing_until_clicked_then_shows_a_newer_price() {
    let Some((app, browser)) = page().await else {
        return;
    };
    // Give the page time to do whatever it would do by itself: the WebSocket pane ticks...
    browser
        .wait_for(
            "Number(document.getElementById('pane-ws').dataset.seen) >= 5",
            "five prices in the WebSocket pane",
        )
        .await;
    // ...while the HTTP pane has made no request and shows no price.
    let requests_made = browser
        .js("return performance.getEntriesByType('resource').filter(e => e.name.includes('/price')).length;")
        .await;
    assert_eq!(requests_made, 0, "GET /price before any click");
    assert_eq!(
        number(
            &browser,
            "document.getElementById('pane-http').dataset.count"
        )
        .await,
        0.0
    );
    assert_eq!(browser.text("#pane-http .q-price").await, "–");
    assert_eq!(browser.text("#pane-http .s-seq").await, "–");

    browser.click("#pane-http .get-price").await;
    let first = browser
        .wait_for(
            "Number(document.getElementById('pane-http').dataset.seq)",
            "a price after the click",
        )
        .await
        .as_f64()
        .unwrap();
    browser
        .wait_for(
            "document.getElementById('pane-http').dataset.count === '1'",
            "one request counted",
        )
        .await;
    assert!(
        browser
            .text("#pane-http .q-price")
            .await
            .parse::<f64>()
            .is_ok()
    );
    // Nothing more happens by itself, while the server makes at least two new prices.
    wait_for_seq(&app, first as u64 + 2).await;
    assert_eq!(app.feed.latest().ticks[0].tick.symbol, "ACME");
    assert_eq!(
        number(&browser, "document.getElementById('pane-http').dataset.seq").await,
        first
    );
    assert_eq!(
        number(
            &browser,
            "document.getElementById('pane-http').dataset.count"
        )
        .await,
        1.0
    );

    browser.click("#pane-http .get-price").await;
    browser
        .wait_for(
            &format!("Number(document.getElementById('pane-http').dataset.seq) > {first}"),
            "a newer price after the second click",
        )
        .await;
    browser
        .wait_for(
            "document.getElementById('pane-http').dataset.count === '2'",
            "two requests counted",
        )
        .await;
    // Two or more prices were made between the clicks: the pane knows it missed some. The
    // pane publishes its counters together with the new seq (PaneView.publish), and the wait
    // is for the very figure asserted, so no redraw can be caught half-way.
    browser
        .wait_for(
            "Number(document.getElementById('pane-http').dataset.missed) >= 1",
            "the missed changes between the two clicks",
        )
        .await;
    // The text on screen is redrawn a few times a second: wait for it to say the same.
    browser
        .wait_for(
            "document.querySelector('#pane-http .s-count').textContent === '2'",
            "the on-screen request count",
        )
        .await;
    browser.finish().await;
}

/// The `data-*` figures a test (or a learner in DevTools) reads are published in one step:
/// whenever a pane's `seq` moves, its `seen` and `missed` have moved with it. For one series
/// of prices, every step from one shown seq to the next is either seen or missed, so between
/// any two observations `seq` and `seen + missed` grow by the same amount. A pane that wrote
/// `seq` at once and its counters at the next redraw (as the page once did) breaks this.
#[tokio::test]
async fn a_panes_published_figures_never_show_it_half_updated() {
    let Some((_app, browser)) = page().await else {
        return;
    };
    // Record every change of the two panes' attributes, with the figures at that moment.
    browser
        .js(r#"
            window.tickerlabChecks = { observed: 0, broken: [] };
            const last = {};
            const check = (pane) => {
              const d = pane.dataset;
              if (d.seq === undefined) return;
              const now = { seq: Number(d.seq), sum: Number(d.seen) + Number(d.missed) };
              const before = last[pane.id];
              last[pane.id] = now;
              window.tickerlabChecks.observed += 1;
              if (before && now.seq - before.seq !== now.sum - before.sum) {
                window.tickerlabChecks.broken.push({ pane: pane.id, before, now });
              }
            };
            for (const id of ['pane-http', 'pane-ws']) {
              const pane = document.getElementById(id);
              new MutationObserver(() => check(pane)).observe(pane, { attributes: true });
              check(pane);
            }
            return true;
        "#)
        .await;
    // Poll faster than the tick sometimes and slower other times: repeats and misses both.
    browser
        .js("const i = document.querySelector('#pane-http .poll-ms'); i.value = '150'; i.dispatchEvent(new Event('change')); return true;")
        .await;
    browser.set_checked("#pane-http .auto-poll", true).await;
    browser
        .wait_for(
            "Number(document.getElementById('pane-http').dataset.count) >= 12 && Number(document.getElementById('pane-http').dataset.missed) >= 1",
            "a dozen polls, with a change missed",
        )
        .await;
    browser.set_checked("#pane-http .auto-poll", false).await;
    let checks = browser.js("return window.tickerlabChecks;").await;
    assert_eq!(checks["broken"], serde_json::json!([]), "{checks}");
    assert!(
        checks["observed"].as_u64().unwrap_or(0) >= 24,
        "too few observations to judge: {checks}"
    );
    browser.finish().await;
}

#[tokio::test]
async fn auto_polling_slower_than_the_tick_misses_changes_push_does_not() {
    let Some((_app, browser)) = page().await else {
        return;
    };
    // Poll every 500 ms while the server ticks every 100 ms.
    browser
        .js("const i = document.querySelector('#pane-http .poll-ms'); i.value = '500'; i.dispatchEvent(new Event('change')); return true;")
        .await;
    browser.set_checked("#pane-http .auto-poll", true).await;
    browser
        .wait_for(
            "Number(document.getElementById('pane-http').dataset.count) >= 4 && Number(document.getElementById('pane-http').dataset.missed) > 0",
            "four polls and missed changes in the HTTP pane",
        )
        .await;
    // Waited for, and read in one script, so the three figures are of the same moment.
    let figures = browser
        .wait_for(
            "(() => { const ws = document.getElementById('pane-ws').dataset; const http = document.getElementById('pane-http').dataset; return Number(ws.seen) > Number(http.seen) && [Number(ws.missed), Number(ws.seen), Number(http.seen)]; })()",
            "the WebSocket pane to have shown more prices than the polling pane",
        )
        .await;
    let [ws_missed, ws_seen, http_seen] = [0, 1, 2].map(|i| figures[i].as_f64().expect("a number"));
    assert_eq!(ws_missed, 0.0, "the WebSocket pane sees every change");
    assert!(ws_seen > http_seen, "push {ws_seen} vs poll {http_seen}");
    // The scoreboard says the same, and marks the WebSocket row best for missed changes,
    // in words too (the same redraw sets data-best and the text).
    browser
        .wait_for(
            "(() => { const td = document.querySelector('#scoreboard tr[data-pane=ws] td[data-column=missed]'); return td.dataset.best === 'true' && td.textContent.includes('★ best'); })()",
            "the scoreboard to mark the WebSocket row '★ best' for missed changes",
        )
        .await;
    browser.finish().await;
}

#[tokio::test]
async fn the_handshake_panel_shows_101_and_an_accept_value_we_recompute() {
    let Some((_app, browser)) = page().await else {
        return;
    };
    browser
        .wait_for(
            "document.getElementById('handshake').dataset.acceptOk",
            "the handshake panel",
        )
        .await;
    let response = browser.text("#handshake .hs-response").await;
    assert!(
        response.starts_with("HTTP/1.1 101 Switching Protocols"),
        "{response}"
    );
    let key = browser.text("#handshake .hs-key").await;
    let expected = derive_accept_key(key.as_bytes());
    assert_eq!(
        browser.text("#handshake .hs-accept-computed").await,
        expected
    );
    assert_eq!(
        browser.text("#handshake .hs-accept-received").await,
        expected
    );
    assert!(
        browser
            .text("#handshake .hs-check")
            .await
            .contains("matches")
    );
    let request = browser.text("#handshake .hs-request").await;
    assert!(
        request.starts_with("GET /ws?symbols=ACME HTTP/1.1"),
        "{request}"
    );
    assert!(
        request.contains(&format!("sec-websocket-key: {key}")),
        "{request}"
    );
    browser.finish().await;
}

#[tokio::test]
async fn the_symbol_picker_subscribes_over_the_same_socket() {
    let Some((_app, browser)) = page().await else {
        return;
    };
    browser
        .wait_for(
            "document.getElementById('pane-ws').dataset.symbol === 'ACME'",
            "ACME in the WebSocket pane",
        )
        .await;
    browser
        .client
        .find(fantoccini::Locator::Css("#pane-ws .symbol"))
        .await
        .expect("symbol picker")
        .select_by_value("GLOBX")
        .await
        .expect("select GLOBX");
    browser
        .wait_for(
            "document.getElementById('pane-ws').dataset.symbol === 'GLOBX'",
            "GLOBX ticks in the WebSocket pane",
        )
        .await;
    assert_eq!(browser.text("#pane-ws .q-symbol").await, "GLOBX");
    assert_eq!(
        number(
            &browser,
            "document.getElementById('pane-ws').dataset.connections"
        )
        .await,
        1.0,
        "the same socket, not a new one"
    );
    browser
        .wait_for(
            "document.querySelector('#pane-ws .status').textContent.includes('subscribed to GLOBX')",
            "the server's subscribed answer",
        )
        .await;
    browser.finish().await;
}

#[tokio::test]
async fn drop_connection_makes_the_server_close_and_the_pane_reconnects() {
    let Some((_app, browser)) = page().await else {
        return;
    };
    browser
        .wait_for(
            "document.getElementById('pane-ws').dataset.state === 'open' && Number(document.getElementById('pane-ws').dataset.seen) >= 2",
            "an open socket",
        )
        .await;
    let before = number(&browser, "document.getElementById('pane-ws').dataset.seq").await;
    browser.click("#pane-ws .drop").await;
    browser
        .wait_for(
            "document.getElementById('pane-ws').dataset.lastClose === '1012'",
            "the server to close with 1012",
        )
        .await;
    browser
        .wait_for(
            "document.getElementById('pane-ws').dataset.connections === '2' && document.getElementById('pane-ws').dataset.state === 'open'",
            "a second connection",
        )
        .await;
    browser
        .wait_for(
            &format!("Number(document.getElementById('pane-ws').dataset.seq) > {before} + 1"),
            "new prices after the reconnect",
        )
        .await;
    browser
        .wait_for(
            "document.querySelector('#pane-ws .status').textContent.startsWith('reconnected')",
            "the pane to say it reconnected",
        )
        .await;
    browser.finish().await;
}

#[tokio::test]
async fn every_control_works_without_console_errors_and_a_screenshot_is_saved() {
    let Some((_app, browser)) = page().await else {
        return;
    };
    browser.click("#pane-http .get-price").await;
    browser.set_checked("#pane-http .auto-poll", true).await;
    browser
        .wait_for(
            "document.getElementById('pane-ws').dataset.state === 'open'",
            "an open socket",
        )
        .await;
    browser.click("#pane-ws .ping").await;
    browser
        .wait_for(
            "/round trip: [0-9.]+ ms/.test(document.querySelector('#pane-ws .rtt').textContent)",
            "the ping's round-trip time",
        )
        .await;
    // Keyboard: Tab reaches the controls, and the focused one is outlined.
    let picker = browser
        .client
        .find(fantoccini::Locator::Css("#pane-http .symbol"))
        .await
        .expect("symbol picker");
    picker
        .send_keys(&char::from(fantoccini::key::Key::Tab).to_string())
        .await
        .expect("press Tab");
    let focused = browser
        .js("const e = document.activeElement; return [e.classList.contains('get-price'), getComputedStyle(e).outlineStyle];")
        .await;
    assert_eq!(
        focused,
        serde_json::json!([true, "solid"]),
        "Tab from the picker reaches Get price, visibly focused"
    );
    browser
        .wait_for(
            "Number(document.getElementById('pane-http').dataset.count) >= 3",
            "a few polls",
        )
        .await;
    let png = browser.full_page_screenshot(1280).await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = target_dir().join("tickerlab-page.png");
    std::fs::write(&path, &png).expect("write the screenshot");
    eprintln!("screenshot: {}", path.display());
    // Phone width: the panes stack and nothing scrolls sideways.
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("resize");
    browser
        .wait_for("window.innerWidth < 500", "the narrow window")
        .await;
    let layout = browser
        .js("const a = document.getElementById('pane-http').getBoundingClientRect(); const b = document.getElementById('pane-ws').getBoundingClientRect(); return [b.top >= a.bottom, document.documentElement.scrollWidth <= window.innerWidth];")
        .await;
    assert_eq!(
        layout,
        serde_json::json!([true, true]),
        "stacked, no sideways scroll"
    );
    browser.finish().await;
}

/// Not a check but a measurement for the README: the default settings (tick 200 ms, HTTP
/// auto-poll every 1000 ms) for 60 s, then the scoreboard is printed and the page saved as
/// `target/tickerlab-60s.png` and as the README's `docs/screenshot.png`. Run it with
/// `cargo test --test it browser:: -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a 60-second measurement, run by hand"]
async fn scoreboard_after_60_seconds_with_default_settings() {
    let png = measure_with_defaults(&[], Duration::from_secs(60)).await;
    if let Some(png) = png {
        std::fs::write(target_dir().join("tickerlab-60s.png"), &png).expect("write the screenshot");
        write_doc("screenshot.png", &png);
    }
}

#[tokio::test]
async fn the_pages_arithmetic_follows_the_rfc_and_the_protocol() {
    let Some((_app, browser)) = page().await else {
        return;
    };
    // The page's own modules, imported in the page, fed known inputs.
    let results = browser.js_async(
            r#"
            const done = arguments[arguments.length - 1];
            Promise.all([
              import('/static/js/wire.js'),
              import('/static/js/stats.js'),
              import('/static/js/backoff.js'),
              import('/static/js/handshake.js'),
            ]).then(async ([wire, stats, backoff, handshake]) => {
              const seq = new stats.SeqTracker();
              for (const s of [4, 5, 5, 8, 9]) seq.observe(s);
              // A restarted server counts from 1 again: a new series, not 9 "repeats".
              const restarted = new stats.SeqTracker();
              const shown = [40, 41, 1, 2, 4].map((s) => restarted.observe(s));
              const window = new stats.SlidingWindow(3);
              for (const v of [100, 1, 2, 3]) window.add(v);
              done({
                headers: [[125, false], [126, false], [65535, false], [65536, false], [10, true], [200, true]]
                  .map(([n, masked]) => wire.frameHeaderBytes(n, masked)),
                utf8: wire.utf8Length('a€'),
                head: wire.httpHeadBytes('HTTP/1.1 200 OK', [['a', 'b']]),
                seq: [seq.seen, seq.missed, seq.seenShare],
                restarted: [shown, restarted.restarts, restarted.missed],
                window: [window.percentile(50), window.max],
                backoff: [backoff.backoffDelay(0, () => 0), backoff.backoffDelay(0, () => 1),
                          backoff.backoffDelay(3, () => 0), backoff.backoffDelay(30, () => 1)],
                accept: (await handshake.deriveAccept('dGhlIHNhbXBsZSBub25jZQ==')).base64,
              });
            }, (error) => done({ error: String(error) }));
            "#,
        )
        .await;
    assert_eq!(
        results,
        serde_json::json!({
            // RFC 6455 5.2: 7-bit, 16-bit and 64-bit lengths; +4 for a client's mask.
            "headers": [2, 4, 4, 10, 6, 8],
            "utf8": 4,
            // "HTTP/1.1 200 OK\r\n" + "a: b\r\n" + "\r\n"
            "head": 25,
            // seen 4, 5, 8, 9 (5 again is no new price); missed 6 and 7.
            "seq": [4, 2, 4.0 / 6.0],
            // 1 after 41: the server restarted; every price of the new run is shown, and
            // only the gap inside the new run (3) counts as missed.
            "restarted": [[true, true, true, true, true], 1, 1],
            "window": [2, 3],
            // half fixed, half random; doubling from 500 ms up to the 15 s cap
            "backoff": [250, 500, 2000, 15000],
            // the RFC's own example
            "accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        })
    );
    browser.finish().await;
}

#[tokio::test]
async fn long_polling_and_sse_panes_join_when_chosen_and_update() {
    let Some((app, browser)) = page().await else {
        return;
    };
    // The lesson's two panes by default; the earlier attempts are hidden and silent.
    let hidden = browser
        .js("return ['pane-longpoll','pane-sse'].map((id) => document.getElementById(id).hidden);")
        .await;
    assert_eq!(hidden, serde_json::json!([true, true]));
    assert_eq!(
        number(
            &browser,
            "document.getElementById('pane-sse').dataset.count || 0"
        )
        .await,
        0.0
    );

    browser.click("#pane-chooser input[value=longpoll]").await;
    browser.click("#pane-chooser input[value=sse]").await;
    // Ticked, they are shown but wait for their own Start / Connect button (as the README
    // says): nothing is requested while the WebSocket pane shows five more prices. Starting
    // would count a request at once, so a started pane could never meet this condition.
    let ws_seen = number(
        &browser,
        "document.getElementById('pane-ws').dataset.seen || 0",
    )
    .await;
    browser
        .wait_for(
            &format!(
                "(() => {{ const lp = document.getElementById('pane-longpoll'); const sse = document.getElementById('pane-sse'); \
                  return !lp.hidden && !sse.hidden && Number(document.getElementById('pane-ws').dataset.seen) >= {} \
                  && lp.dataset.count === '0' && lp.dataset.state === 'stopped' && sse.dataset.count === '0' && sse.dataset.state === 'closed'; }})()",
                ws_seen + 5.0
            ),
            "long polling and SSE shown but not started until their buttons are pressed",
        )
        .await;
    start_pane(&browser, "longpoll").await;
    start_pane(&browser, "sse").await;
    for pane in ["pane-longpoll", "pane-sse"] {
        let first = browser
            .wait_for(
                &format!("document.getElementById('{pane}').dataset.seq"),
                &format!("{pane} shows a price"),
            )
            .await;
        let first: u64 = first.as_str().unwrap().parse().unwrap();
        browser
            .wait_for(
                &format!(
                    "Number(document.getElementById('{pane}').dataset.seq) >= {} ",
                    first + 5
                ),
                &format!("{pane} updates by itself"),
            )
            .await;
    }
    // Both rows are on the scoreboard now (the scoreboard redraws a few times a second).
    browser
        .wait_for(
            "[...document.querySelectorAll('#scoreboard tbody tr')].filter((r) => !r.hidden).length === 4",
            "four rows on the scoreboard",
        )
        .await;
    assert_eq!(browser.text("#pane-sse .sse-state").await, "open");
    // Unticking stops the traffic: the SSE pane's count stays put while the feed makes
    // three more prices (counted by the server, not by a sleep).
    browser.click("#pane-chooser input[value=sse]").await;
    browser
        .wait_for(
            "document.getElementById('pane-sse').dataset.state === 'closed'",
            "SSE closed",
        )
        .await;
    // data-count is published the moment a message is counted, so once the stream is closed
    // it is final: read it, then let the server tick on.
    let count = number(
        &browser,
        "document.getElementById('pane-sse').dataset.count",
    )
    .await;
    let until = app.feed.latest().ticks[0].tick.seq + 3;
    wait_for_seq(&app, until).await;
    assert_eq!(
        number(
            &browser,
            "document.getElementById('pane-sse').dataset.count"
        )
        .await,
        count,
        "no SSE message counted after the pane was hidden"
    );
    // Hiding the WebSocket pane closes its socket too: a hidden pane makes no traffic.
    browser.click("#pane-chooser input[value=ws]").await;
    browser
        .wait_for(
            "document.getElementById('pane-ws').dataset.state === 'closed'",
            "the hidden WebSocket pane closed its socket",
        )
        .await;
    browser.finish().await;
}

#[tokio::test]
async fn over_https_the_page_opens_a_wss_socket_and_says_so() {
    let Some(browser) = Browser::launch(BrowserOptions {
        accept_insecure_certs: true,
        ..BrowserOptions::default()
    })
    .await
    else {
        return;
    };
    let app = spawn_app(tickerlab::Config {
        tick_ms: TICK_MS,
        tls_self_signed: true,
        ..test_config()
    })
    .await;
    browser
        .open(&format!("https://localhost:{}/", app.addr.port()))
        .await;
    browser
        .wait_for(
            "document.getElementById('pane-ws').dataset.state === 'open'",
            "the wss socket opens",
        )
        .await;
    let first = number(
        &browser,
        "document.getElementById('pane-ws').dataset.seq || 0",
    )
    .await;
    browser
        .wait_for(
            &format!(
                "Number(document.getElementById('pane-ws').dataset.seq) >= {}",
                first + 3.0
            ),
            "prices arrive over wss",
        )
        .await;
    assert_eq!(
        browser
            .js("return document.getElementById('pane-ws').dataset.scheme;")
            .await,
        "wss"
    );
    assert!(
        browser
            .text("#pane-ws .ws-url")
            .await
            .contains("wss://localhost:")
    );
    browser
        .wait_for(
            "document.querySelector('#handshake .hs-url').textContent.includes('wss://')",
            "the handshake panel names wss://",
        )
        .await;
    // The accept check ends after an asynchronous SHA-1: wait for its verdict itself.
    browser
        .wait_for(
            "document.getElementById('handshake').dataset.acceptOk === 'true'",
            "the handshake panel to confirm Sec-WebSocket-Accept over wss",
        )
        .await;
    browser.finish().await;
}

#[tokio::test]
#[ignore = "a 30-second measurement, run by hand"]
async fn all_four_panes_after_30_seconds() {
    let png = measure_with_defaults(&["longpoll", "sse"], Duration::from_secs(30)).await;
    if let Some(png) = png {
        write_doc("screenshot-four-panes.png", &png);
    }
}

/// The page on a server with default settings, HTTP auto-polling every second plus the
/// `extra` panes ticked, for `run`; prints the scoreboard and returns a full-page screenshot
/// (`None` when browser tests are skipped).
async fn measure_with_defaults(extra: &[&str], run: Duration) -> Option<Vec<u8>> {
    let browser = Browser::launch(BrowserOptions::default()).await?;
    let app = spawn_app(tickerlab::Config {
        port: 0,
        ..tickerlab::Config::default()
    })
    .await;
    browser.open(&app.http("/")).await;
    for pane in extra {
        browser
            .click(&format!("#pane-chooser input[value={pane}]"))
            .await;
        start_pane(&browser, pane).await;
    }
    browser.set_checked("#pane-http .auto-poll", true).await;
    browser
        .wait_for(
            "Number(document.getElementById('pane-http').dataset.count) >= 1",
            "the HTTP pane to start polling",
        )
        .await;
    tokio::time::sleep(run).await;
    let rows = browser
        .js("return [...document.querySelectorAll('#scoreboard tr')].filter(r => !r.hidden).map(r => [...r.children].map(c => c.innerText.replace(/\\n/g, ' ')).join(' | '));")
        .await;
    for row in rows.as_array().expect("rows") {
        println!("{}", row.as_str().unwrap_or_default());
    }
    let verdict = browser.text("#scoreboard .verdict").await;
    println!("{verdict}");
    let png = browser.full_page_screenshot(1280).await;
    browser.finish().await;
    Some(png)
}

/// Presses a shown pane's own Start (long polling) or Connect (SSE) button, and waits until
/// the scoreboard has taken the pane in (its figures, stars and verdict line are drawn in
/// one step), so a next click does not race that redraw.
async fn start_pane(browser: &Browser, pane: &str) {
    let button = if pane == "longpoll" {
        "start"
    } else {
        "connect"
    };
    browser.click(&format!("#pane-{pane} .{button}")).await;
    browser
        .wait_for(
            &format!("document.querySelector('#scoreboard tr[data-pane={pane}] td[data-column=count]').dataset.value !== ''"),
            &format!("the {pane} pane on the scoreboard"),
        )
        .await;
}

/// Writes a picture the README shows into `docs/`.
fn write_doc(name: &str, png: &[u8]) {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    std::fs::create_dir_all(&docs).expect("create docs/");
    std::fs::write(docs.join(name), png).unwrap_or_else(|e| panic!("write docs/{name}: {e}"));
}

/// The poll interval the scoreboard tests set, and switches auto-poll on.
async fn poll_every(browser: &Browser, ms: u32) {
    browser
        .js(&format!("const i = document.querySelector('#pane-http .poll-ms'); i.value = '{ms}'; i.dispatchEvent(new Event('change')); return true;"))
        .await;
    browser.set_checked("#pane-http .auto-poll", true).await;
}

/// A scoreboard cell as a JavaScript expression: `cell('ws', 'missed')`.
const CELL: &str = "const cell = (pane, column) => document.querySelector(`#scoreboard tr[data-pane=${pane}] td[data-column=${column}]`);";

/// The columns that rank (lower or higher is truly better), and the ones that never do.
const RANKED: &str =
    "['requests-per-price', 'bytes-per-price', 'age-avg', 'change-wait', 'missed', 'seen']";
const CONTEXT: &str = "['count', 'bytes-received', 'bytes-sent', 'delay']";

/// Polling once a second against a 100 ms tick receives fewer bytes than push, because it
/// shows one price in ten: the scoreboard must not reward that. Totals are never starred;
/// per price shown, push wins every ranked column, except requests per price, where each
/// slow poll brought a new price just as each pushed message did: a tie, starred for both.
#[tokio::test]
async fn stars_judge_per_price_so_polling_that_received_fewer_bytes_gets_none() {
    let Some((_app, browser)) = page().await else {
        return;
    };
    poll_every(&browser, 1000).await;
    // One script reads one redraw of the scoreboard: every figure below is of the same moment.
    browser
        .wait_for(
            &format!(
                "(() => {{ {CELL}
                  if (Number(document.getElementById('pane-http').dataset.count) < 4) return false;
                  const fewer = Number(cell('http', 'bytes-received').dataset.value) < Number(cell('ws', 'bytes-received').dataset.value);
                  const totals = {CONTEXT}.every((c) => ['http', 'ws'].every((p) => cell(p, c).dataset.best === undefined && !cell(p, c).textContent.includes('★')));
                  const push = {RANKED}.every((c) => cell('ws', c).dataset.best === 'true' && cell('ws', c).textContent.includes('★ best'));
                  const poll = {RANKED}.filter((c) => c !== 'requests-per-price').every((c) => cell('http', c).dataset.best === undefined);
                  const tie = cell('http', 'requests-per-price').dataset.best === 'true';
                  const verdict = document.querySelector('#scoreboard .verdict').textContent;
                  return fewer && totals && push && poll && tie
                    && document.querySelector('#scoreboard .verdict-lead').textContent === 'Verdict: WebSocket showed fresher prices for fewer bytes each.'
                    && verdict.includes('WebSocket: every price, 1 message and')
                    && /HTTP polling every 1000 ms: 1 price in [0-9]+, 1 request and/.test(verdict);
                }})()"
            ),
            "stars per price for the WebSocket, none for totals, a tie on requests per price, and the verdict",
        )
        .await;
    browser.finish().await;
}

/// Two push panes that both see every price tie, and both get the star. Their messages that
/// carry no price (the socket's hello, SSE's stream head) are not counted as "brought no new
/// price"; and before any Ping the clock line asks for one instead of guessing from hello.
#[tokio::test]
async fn a_tie_is_starred_for_every_tied_pane() {
    let Some((_app, browser)) = page().await else {
        return;
    };
    browser
        .set_checked("#pane-chooser input[value=sse]", true)
        .await;
    // The scoreboard takes the shown pane in with a redraw that moves the page: Connect is
    // pressed after it, or the click can land where the button was.
    browser
        .wait_for(
            "!document.querySelector('#scoreboard tr[data-pane=sse]').hidden",
            "the SSE row on the scoreboard",
        )
        .await;
    start_pane(&browser, "sse").await;
    browser
        .wait_for(
            &format!(
                "(() => {{ {CELL}
                  const ws = document.getElementById('pane-ws').dataset;
                  const sse = document.getElementById('pane-sse').dataset;
                  if (Number(ws.seen) < 10 || Number(sse.seen) < 10) return false;
                  const tied = ['missed', 'seen'].every((c) => ['ws', 'sse'].every((p) => cell(p, c).dataset.best === 'true'));
                  return tied && cell('ws', 'missed').dataset.value === '0' && cell('sse', 'missed').dataset.value === '0'
                    && ws.repeats === '0' && sse.repeats === '0'
                    && document.querySelector('#pane-ws .clock').textContent.includes('press Ping');
                }})()"
            ),
            "the WebSocket and SSE rows both starred for 0 missed and 100 % seen, no repeats",
        )
        .await;
    browser.finish().await;
}

/// The time-averaged age of the shown price against the lesson's theory. Polling every T
/// against a tick τ shows, on average, a price τ/2 + T/2 old (the tick's half, because a
/// poll lands anywhere between two ticks; the interval's half, because the shown price ages
/// until the next poll) plus the request's own delay, and a change waits T/2 (plus that
/// delay) to be seen.
/// Push: τ/2 plus the delivery delay. T = 530 ms is not a multiple of the 100 ms tick, so the
/// polls sweep every phase of it.
///
/// The theory is fed what the page actually did, so it holds on a busy machine too: T is
/// the interval between polls measured over the run (a late timer makes it longer than
/// asked), and each transport's delay is its tick → screen p50 from the scoreboard. For
/// polling that delay already holds the τ/2 (a poll is answered with a tick of average age
/// τ/2, plus the request's own delay), so its theory is T/2 + delay; push's is τ/2 + delay.
/// A change waits T/2 for the next poll, and then the request's own delay (polling's delay
/// less τ/2).
/// Tolerance: 25 % of the theory (at least 60 ms) for polling; for push, 5 ms under to 40 ms
/// over. The tick → screen delay of the prices polling showed stays far below its average
/// age: that figure leaves out the waiting, so it is not ranked.
#[tokio::test]
async fn the_time_averaged_age_matches_the_theory() {
    let Some((_app, browser)) = page().await else {
        return;
    };
    let tick = TICK_MS as f64;
    poll_every(&browser, 530).await;
    let figures = browser
        .wait_for(
            &format!(
                "(() => {{
                  {CELL}
                  const http = document.getElementById('pane-http').dataset;
                  const ws = document.getElementById('pane-ws').dataset;
                  const polls = Number(http.count);
                  if (polls < 1) return false;
                  window.firstPoll ??= {{ at: performance.now(), polls }};
                  if (polls < window.firstPoll.polls + 15) return false;
                  const interval = (performance.now() - window.firstPoll.at) / (polls - window.firstPoll.polls);
                  // The mean delay over the same prices the averaged age covers: the age is
                  // τ/2 (or T/2) plus that mean, however long the delays' tail on a busy
                  // machine (the scoreboard's p50 is over the last 100 only), give or take
                  // the first price's delay spread over the run, hence the same tolerance
                  // for both.
                  const httpDelay = Number(http.delayMean);
                  const wsDelay = Number(ws.delayMean);
                  const pollAge = interval / 2 + httpDelay;
                  const pollWait = interval / 2 + Math.max(httpDelay - {tick} / 2, 0);
                  const within = (theory) => Math.max(theory * 0.25, 60);
                  const pushAge = {tick} / 2 + wsDelay;
                  const ok = Math.abs(Number(http.ageAvg) - pollAge) <= within(pollAge)
                    && Math.abs(Number(http.changeWait) - pollWait) <= within(pollWait)
                    && Math.abs(Number(ws.ageAvg) - pushAge) <= within(pushAge)
                    && httpDelay < Number(http.ageAvg) / 2;
                  return ok && [interval, Number(http.ageAvg), pollAge, Number(http.changeWait), Number(ws.ageAvg), pushAge, httpDelay];
                }})()"
            ),
            "polling's averaged age near τ/2 + T/2 + its delay and change wait near T/2, \
             push's near τ/2 + its delay",
        )
        .await;
    eprintln!(
        "T measured, averaged age and its theory (polling), change wait (polling), averaged \
         age and its theory (push), polling's mean delay: {figures}"
    );
    browser.finish().await;
}

/// The blind test: two panes named only A and B, and no transport named anywhere on the
/// page (headings, controls, log, scoreboard, title) until Reveal; then the names come back
/// beside the letters, with the verdict.
#[tokio::test]
async fn the_blind_test_names_no_transport_until_reveal() {
    let Some(browser) = Browser::launch(BrowserOptions::default()).await else {
        return;
    };
    let app = app().await;
    browser.open(&app.http("/?blind")).await;
    const NAMES: &str = r"/websocket|http|polling|long poll|server-sent|eventsource|socket|\/ws|\/price|\/events|\bsse\b/i";
    browser
        .wait_for(
            &format!(
                "(() => {{
                  const shown = [...document.querySelectorAll('.pane')].filter((p) => !p.hidden);
                  if (shown.length !== 2 || !shown.every((p) => Number(p.dataset.seen) >= 3)) return false;
                  if (!shown.every((p) => p.querySelector('.log').children.length > 0)) return false;
                  const visible = document.title + '\\n' + document.body.innerText;
                  const headings = shown.map((p) => p.querySelector('h2').innerText.trim());
                  const rows = [...document.querySelectorAll('#scoreboard tbody tr')].filter((r) => !r.hidden).map((r) => r.querySelector('th').innerText);
                  return !{NAMES}.test(visible) && headings.join() === 'A,B' && rows.join() === 'A,B';
                }})()"
            ),
            "two panes, A and B, updating, with no transport name visible",
        )
        .await;
    browser.click(".reveal").await;
    browser
        .wait_for(
            "(() => {
              const shown = [...document.querySelectorAll('.pane')].filter((p) => !p.hidden);
              const headings = shown.map((p) => p.querySelector('h2').innerText);
              const http = shown.find((p) => p.querySelector('h2').innerText.includes('HTTP'));
              const verdict = document.querySelector('#scoreboard .verdict');
              return shown.every((p, i) => headings[i].startsWith('AB'[i] + ': '))
                && headings.filter((h) => h.includes('HTTP')).length === 1
                && headings.filter((h) => h.includes('WebSocket')).length === 1
                && verdict?.offsetHeight > 0 && verdict.textContent.includes('WebSocket')
                && /GET \\/price/.test(http.querySelector('.log').innerText);
            })()",
            "Reveal names both panes beside their letters, shows the verdict and the full log",
        )
        .await;
    browser.finish().await;
}

/// Words that name or imply a transport, for the blind test's walk through the document:
/// names and paths, the handshake's lines, the socket protocol's messages, what only one
/// pane counts or has a control for, and the scoreboard's judgement (stars, verdict).
const TRANSPORT_WORDS: &str = r"/socket|\bwss?\b|\bhttps?\b|poll|\bsse\b|\bevents?\b|eventsource|stream|\bpush|upgrad|handshake|switching protocols|\/ws\b|\/price|\/events|\bget\b|subscri|\bping\b|\bpong\b|\bhello\b|connect|\btick\b|\brequests?\b|\bmessages?\b|\bframes?\b|verdict|★ best|data-best/i";

/// Phrases with some of those words that name no transport, taken out before matching: the
/// labels both panes share, the scoreboard's column key, and the feed's interval on <body>.
const NEUTRAL_PHRASES: &str =
    r"/requests or messages|requests \/ frames|requests-per-price|tick → screen|data-tick-ms/gi";

/// The blind test, for someone who opens DevTools' Elements panel: before Reveal, no element
/// of the page (hidden or not, template contents included) names or implies a transport in
/// its tag, attributes or text, after both panes have switched symbol (a socket's
/// `subscribed` answer is a status line only one transport has); the two panes have the same
/// elements; only they are in the page. Reveal then names them beside their letters (the
/// letter that missed more prices is HTTP polling), shows the verdict, the stars, the
/// handshake panel and the status lines held back.
///
/// The walk leaves out only `#blind-intro`, the question, which may name what it asks about.
#[tokio::test]
async fn before_reveal_no_element_of_the_blind_test_names_a_transport_even_hidden() {
    let Some(browser) = Browser::launch(BrowserOptions::default()).await else {
        return;
    };
    let app = app().await;
    browser.open(&app.http("/?blind")).await;
    const SHOWN: &str =
        "const shown = [...document.querySelectorAll('.pane')].filter((p) => !p.hidden);";
    browser
        .wait_for(
            &format!(
                "(() => {{ {SHOWN} return shown.every((p) => Number(p.dataset.seen) >= 2); }})()"
            ),
            "prices in the panes",
        )
        .await;
    browser
        .js("for (const select of document.querySelectorAll('.pane .symbol')) { select.value = 'GLOBX'; select.dispatchEvent(new Event('change')); } return true;")
        .await;
    browser
        .wait_for(
            &format!(
                "(() => {{ {SHOWN} return shown.every((p) => p.dataset.symbol === 'GLOBX' && Number(p.dataset.count) >= 4
                  && p.querySelector('.q-symbol').textContent === 'GLOBX'); }})()"
            ),
            "GLOBX prices in both panes, after a few requests or messages",
        )
        .await;

    let found = browser
        .js(&format!(
            "const words = {TRANSPORT_WORDS}; const neutral = {NEUTRAL_PHRASES};
             const found = [];
             const check = (text, where) => {{
               const match = text.replace(neutral, '').match(words);
               if (match) found.push(`${{where}}: '${{match[0]}}' in ${{text.trim().slice(0, 160)}}`);
             }};
             const name = (el) => el.localName + (el.id ? '#' + el.id : '') + [...el.classList].map((c) => '.' + c).join('');
             const visit = (node, where) => {{
               if (node.nodeType === Node.ELEMENT_NODE) {{
                 if (node.id === 'blind-intro') return;
                 const here = `${{where}} > ${{name(node)}}`;
                 check([node.localName, ...[...node.attributes].map((a) => `${{a.name}}=\"${{a.value}}\"`)].join(' '), here);
                 const children = node.localName === 'template' ? node.content.childNodes : node.childNodes;
                 for (const child of children) visit(child, here);
               }} else if (node.nodeType === Node.TEXT_NODE || node.nodeType === Node.COMMENT_NODE) {{
                 check(node.data, where);
               }}
             }};
             visit(document.documentElement, '');
             return found;"
        ))
        .await;
    let found: Vec<String> = serde_json::from_value(found).expect("a list of findings");
    assert!(
        found.is_empty(),
        "before Reveal, the document names or implies a transport in {} places:\n{}",
        found.len(),
        found.join("\n")
    );

    // Same elements, classes and attribute names in both panes (log lines aside: their
    // number is behaviour, there to be seen); a pane built differently would give itself away.
    let shapes = browser
        .js("const shape = (pane) => [pane, ...pane.querySelectorAll('*')].filter((el) => !el.matches('.log li'))
               .map((el) => `${el.localName}.${[...el.classList].join('.')}[${[...el.attributes].map((a) => a.name).sort().join(' ')}]`);
             return [...document.querySelectorAll('.pane')].map(shape);")
        .await;
    let shapes: Vec<Vec<String>> = serde_json::from_value(shapes).expect("two shapes");
    assert_eq!(
        shapes.len(),
        2,
        "only the two blind panes are in the page, the others removed, not hidden"
    );
    let differ = shapes[0]
        .iter()
        .zip(&shapes[1])
        .find(|(a, b)| a != b)
        .map(|(a, b)| format!("{a} vs {b}"));
    assert!(
        shapes[0].len() == shapes[1].len() && differ.is_none(),
        "panes A and B are built differently: {} vs {} elements, first difference {differ:?}",
        shapes[0].len(),
        shapes[1].len()
    );

    // Polling once a second against a 100 ms tick misses most prices; push misses none.
    let http_letter = browser
        .js("const [a, b] = document.querySelectorAll('.pane');
             return Number(a.dataset.missed) > Number(b.dataset.missed) ? a.dataset.letter : b.dataset.letter;")
        .await;
    let http_letter = http_letter.as_str().expect("a letter").to_owned();
    browser.click(".reveal").await;
    let revealed = browser
        .wait_for(
            &format!(
                "(() => {{
                  const panes = [...document.querySelectorAll('.pane')];
                  const named = (p) => p.querySelector('h2').innerText;
                  const http = panes.find((p) => p.dataset.letter === '{http_letter}');
                  const ws = panes.find((p) => p !== http);
                  const verdict = document.querySelector('#scoreboard .verdict');
                  const wsRow = [...document.querySelectorAll('#scoreboard tbody tr')].find((r) => r.querySelector('th').innerText.includes('WebSocket'));
                  const missedStar = wsRow?.querySelector('td[data-column=missed]');
                  const handshake = document.getElementById('handshake');
                  return named(http).startsWith('{http_letter}: HTTP')
                    && named(ws).startsWith(ws.dataset.letter + ': WebSocket')
                    && verdict?.offsetHeight > 0 && /^Verdict: .*WebSocket/.test(verdict.innerText)
                    && missedStar?.dataset.best === 'true' && missedStar.innerText.includes('★ best')
                    && handshake?.offsetHeight > 0
                    && handshake.querySelector('.hs-request').textContent.startsWith('GET /ws?symbols=')
                    && /GET \\/price/.test(http.querySelector('.log').innerText)
                    && ws.querySelector('.status').textContent.includes('subscribed to GLOBX')
                    && [named(http), named(ws), verdict.innerText.split('\\n')[0]];
                }})()"
            ),
            "Reveal names the panes (the one that missed more is HTTP), with verdict, stars, handshake and status",
        )
        .await;
    eprintln!("revealed: {revealed}");
    browser.finish().await;
}

/// A phone (390 × 844): both shown prices are on the first screen, in the strip under the
/// header, and stay in view while scrolling; the hidden panes leave no trace (no empty rows
/// on the stacked scoreboard, nothing in the strip).
#[tokio::test]
async fn on_a_phone_both_prices_are_on_the_first_screen() {
    let Some((_app, browser)) = page().await else {
        return;
    };
    // Chromium's --window-size stops at 500 px; a resize of the running window goes lower.
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("resize");
    browser
        .wait_for("window.innerWidth <= 400", "the phone-sized window")
        .await;
    // Clicking scrolls the button into view: back to the top, where a visitor starts.
    browser.click("#pane-http .get-price").await;
    browser.js("window.scrollTo(0, 0); return true;").await;
    const BOTH_IN_VIEW: &str = "['http', 'ws'].every((p) => { const item = document.querySelector(`.strip-item[data-pane=${p}]`); const r = item.getBoundingClientRect(); return /^[0-9]+\\.[0-9]{2}$/.test(item.querySelector('.strip-price').textContent) && r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight; })";
    browser
        .wait_for(
            &format!(
                "window.innerWidth <= 400 && window.scrollY === 0 && {BOTH_IN_VIEW}
                  && [...document.querySelectorAll('#scoreboard tr[hidden], .strip-item[hidden]')].length === 4
                  && [...document.querySelectorAll('#scoreboard tr[hidden], .strip-item[hidden]')].every((e) => e.getClientRects().length === 0)
                  && document.documentElement.scrollWidth <= window.innerWidth"
            ),
            "both prices in the first screen, hidden panes leaving no trace",
        )
        .await;
    browser
        .js("window.scrollTo(0, document.getElementById('pane-ws').offsetTop); return true;")
        .await;
    browser
        .wait_for(
            &format!("window.scrollY > 500 && {BOTH_IN_VIEW}"),
            "both prices still in view after scrolling down to the WebSocket pane",
        )
        .await;
    browser.finish().await;
}

/// The figures' arithmetic, fed known inputs in the page: the averaged age (including the
/// lesson's τ/2 + T/2 for a simulated poller), the time to see a change over skipped prices,
/// and the tie rule of the stars.
#[tokio::test]
async fn the_freshness_and_star_arithmetic_follows_the_stated_rules() {
    let Some((_app, browser)) = page().await else {
        return;
    };
    let results = browser.js_async(
            r#"
            const done = arguments[arguments.length - 1];
            Promise.all([import('/static/js/freshness.js'), import('/static/js/scoreboard.js')])
              .then(([f, board]) => {
                const age = new f.AgeAverage();
                age.show(0, 100);     // made at 0, on screen at 100
                age.show(1000, 1100); // from 100 to 1100 the age ran 100 -> 1100: mean 600
                const sawtooth = [age.mean(1100), age.mean(1200)];
                age.stop(1200);
                const stopped = age.mean(5000); // stopped: time after 1200 does not count
                // A poller every 1001 ms against a 100 ms tick, answered at once: its polls
                // land 0, 1, 2, ... 99 ms after a tick, ten times each.
                const poll = new f.AgeAverage();
                for (let t = 0; t <= 1001 * 1000; t += 1001) poll.show(Math.floor(t / 100) * 100, t);
                const wait = new f.ChangeWait();
                wait.show({ seq: 1, ts: 0 }, 10);    // the first price: 10 ms
                wait.show({ seq: 5, ts: 400 }, 450); // 2, 3, 4 skipped: 350 + 250 + 150 + 50
                const low = (tie) => ({ better: 'low', tie });
                done({
                  sawtooth, stopped,
                  poll: Math.round(poll.mean(1001 * 1000)),
                  wait: [wait.changes, wait.mean],
                  stars: [
                    board.starsFor([10, 10.9, 20], low(board.TIES.perPrice)),
                    board.starsFor([0, 0, 3], low(board.TIES.count)),
                    board.starsFor([2, 2.9, 5], low(board.TIES.time)),
                    board.starsFor([1, 0.992, 0.2], { better: 'high', tie: board.TIES.share }),
                    board.starsFor([NaN, 5], low(board.TIES.count)),
                    board.starsFor([1, 2], { better: null }),
                  ],
                });
              }, (error) => done({ error: String(error) }));
            "#,
        )
        .await;
    assert_eq!(
        results,
        serde_json::json!({
            // then 100 ms more of a price 100 -> 200 ms old: (600·1000 + 150·100) / 1100
            "sawtooth": [600, 615000.0 / 1100.0],
            "stopped": 615000.0 / 1100.0,
            // τ/2 + T/2, with the tick's half over the phases 0..99 ms: 49.5 + 500.5
            "poll": 550,
            "wait": [5, 162],
            "stars": [
                [true, true, false],  // within 10 %
                [true, true, false],  // 0 ties only 0
                [true, true, false],  // within 1 ms
                [true, true, false],  // within 1 point
                [false, false],       // nothing to compare with
                [false, false],       // context: never starred
            ],
        })
    );
    browser.finish().await;
}

#[tokio::test]
async fn seq_tracker_starts_a_new_series_on_a_new_run_and_ignores_a_lagging_seq() {
    let Some(browser) = Browser::launch(BrowserOptions::default()).await else {
        return;
    };
    let app = spawn_app(test_config()).await;
    browser.open(&app.http("/")).await;
    let result = browser.js_async(
            r#"
            const done = arguments[arguments.length - 1];
            import('/static/js/stats.js').then((stats) => {
              const t = new stats.SeqTracker();
              // Run a: 40, 41, then 13 from an instance that lags (same run: not shown, not
              // a restart), 42; then run b starts afresh at 1 (a restart), 2, 4.
              const shown = [[40, 'a'], [41, 'a'], [13, 'a'], [42, 'a'], [1, 'b'], [2, 'b'], [4, 'b']]
                .map(([seq, run]) => t.observe(seq, run));
              done({ shown, restarts: t.restarts, missed: t.missed, seen: t.seen });
            }, (error) => done({ error: String(error) }));
            "#,
        )
        .await;
    assert_eq!(
        result,
        serde_json::json!({
            "shown": [true, true, false, true, true, true, true],
            "restarts": 1,
            // 3 is the only gap inside a run; nothing is counted across runs.
            "missed": 1,
            "seen": 6,
        })
    );
}

/// The figures the README's exercise answers quote, measured as a learner would meet them:
/// the real server with the exercise's flags, the page in headless Chromium, the panes the
/// exercise names, then the scoreboard printed. Run it with
/// `cargo test --release --test it browser::exercise_answers -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "four 30-second measurements, run by hand"]
async fn exercise_answers_measured_as_a_learner_meets_them() {
    const RUN: Duration = Duration::from_secs(30);
    // Exercise 1: --tick-ms 50, polling every 1000 ms beside the WebSocket.
    let rows = exercise(50, None, false, &[Setup::Poll(1000)], RUN).await;
    print_rows("exercise 1: --tick-ms 50, HTTP polling every 1000 ms", rows);
    // Exercise 2: the default 200 ms tick, polling every 150 ms.
    let rows = exercise(200, None, false, &[Setup::Poll(150)], RUN).await;
    print_rows("exercise 2: --tick-ms 200, HTTP polling every 150 ms", rows);
    // Exercise 6: --lab-rtt-ms 150 --tick-ms 50, long polling and WebSocket on both tabs;
    // then the lab at 40 ms.
    for (rtt, through_lab) in [(150, false), (150, true), (40, true)] {
        let rows = exercise(50, Some(rtt), through_lab, &[Setup::LongPoll], RUN).await;
        let tab = if through_lab { "simulated" } else { "direct" };
        print_rows(
            &format!("exercise 6: --lab-rtt-ms {rtt} --tick-ms 50, {tab} tab, long polling"),
            rows,
        );
    }
}

/// What an exercise switches on besides the WebSocket pane.
enum Setup {
    /// HTTP auto-poll at this interval.
    Poll(u32),
    /// The long-polling pane, started.
    LongPoll,
}

/// The real server at `tick_ms` (with the lab at `lab_rtt_ms`), the page opened directly or
/// through the lab, `setup` applied, then `run` later the scoreboard's rows; `None` when
/// browser tests are skipped.
async fn exercise(
    tick_ms: u64,
    lab_rtt_ms: Option<u64>,
    through_lab: bool,
    setup: &[Setup],
    run: Duration,
) -> Option<Vec<String>> {
    let browser = Browser::launch(BrowserOptions::default()).await?;
    let config = tickerlab::Config {
        port: 0,
        tick_ms,
        lab_rtt_ms,
        ..tickerlab::Config::default()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let app = tickerlab::serve(config, listener).expect("serve");
    let addr = match through_lab {
        true => app.lab_addr().expect("the lab is on"),
        false => app.local_addr(),
    };
    let stopper = app.stopper();
    tokio::spawn(app.run());
    browser.open(&format!("http://{addr}/")).await;
    for step in setup {
        match step {
            Setup::Poll(ms) => {
                poll_every(&browser, *ms).await;
                browser
                    .wait_for(
                        "Number(document.getElementById('pane-http').dataset.count) >= 1",
                        "the HTTP pane to start polling",
                    )
                    .await;
            }
            Setup::LongPoll => {
                browser.click("#pane-chooser input[value=longpoll]").await;
                start_pane(&browser, "longpoll").await;
            }
        }
    }
    tokio::time::sleep(run).await;
    let rows = browser
        .js("return [...document.querySelectorAll('#scoreboard tr')].filter(r => !r.hidden).map(r => [...r.children].map(c => c.innerText.replace(/\\n/g, ' ')).join(' | '));")
        .await;
    let mut rows: Vec<String> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r.as_str().unwrap_or_default().to_owned())
        .collect();
    rows.push(browser.text("#scoreboard .verdict").await);
    browser.finish().await;
    stopper.stop().await;
    Some(rows)
}

fn print_rows(title: &str, rows: Option<Vec<String>>) {
    println!("{title}");
    for row in rows.unwrap_or_default() {
        println!("  {row}");
    }
}

/// The heartbeat is visible on the page: the browser answers the server's pings by itself,
/// and the pane shows the server's count of them from the next `pong`.
#[tokio::test]
async fn the_websocket_pane_shows_the_heartbeat_the_browser_answered() {
    let Some(browser) = Browser::launch(BrowserOptions::default()).await else {
        return;
    };
    let app = spawn_app(tickerlab::Config {
        tick_ms: TICK_MS,
        heartbeat_secs: 1,
        ..test_config()
    })
    .await;
    browser.open(&app.http("/")).await;
    browser
        .wait_for(
            "document.getElementById('pane-ws').dataset.state === 'open'",
            "an open socket",
        )
        .await;
    // A ping every half second until the server has pinged, and been answered, twice.
    let answered = heartbeat_counts();
    let start = std::time::Instant::now();
    let text = loop {
        browser.click("#pane-ws .ping").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let text = browser.text("#pane-ws .heartbeat").await;
        if answered(&text).is_some_and(|(sent, answered)| sent >= 2 && answered >= 2) {
            break text;
        }
        assert!(
            start.elapsed() < browser::PAGE_WAIT,
            "no heartbeat shown: {text:?}"
        );
    };
    assert!(text.contains("(every 1 s)"), "{text}");
    browser.assert_no_console_errors().await;
    browser.finish().await;
}

/// Reads "pinged this socket N times ... answered M" from the pane's heartbeat line.
fn heartbeat_counts() -> impl Fn(&str) -> Option<(u64, u64)> {
    |text: &str| {
        let number_after = |marker: &str| -> Option<u64> {
            let rest = text.split_once(marker)?.1;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        Some((
            number_after("pinged this socket ")?,
            number_after("answered ")?,
        ))
    }
}
