//! The page in a real headless Chromium against the real server: what a learner sees is what
//! these tests check. Needs `chromium` and `chromedriver` (see tests/common/browser.rs).

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use browser::{Browser, BrowserOptions, target_dir};
use common::{TestApp, spawn_app, test_config};
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
    browser.assert_no_console_errors().await;
    browser.quit().await;
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
    browser.assert_no_console_errors().await;
    browser.quit().await;
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
    browser.click("#pane-http .auto-poll").await;
    browser
        .wait_for(
            "Number(document.getElementById('pane-http').dataset.count) >= 12 && Number(document.getElementById('pane-http').dataset.missed) >= 1",
            "a dozen polls, with a change missed",
        )
        .await;
    browser.click("#pane-http .auto-poll").await;
    let checks = browser.js("return window.tickerlabChecks;").await;
    assert_eq!(checks["broken"], serde_json::json!([]), "{checks}");
    assert!(
        checks["observed"].as_u64().unwrap_or(0) >= 24,
        "too few observations to judge: {checks}"
    );
    browser.assert_no_console_errors().await;
    browser.quit().await;
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
    browser.click("#pane-http .auto-poll").await;
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
    // The scoreboard says the same, and marks the WebSocket row best for missed changes.
    browser
        .wait_for(
            "document.querySelector('#scoreboard tr[data-pane=ws] td:nth-of-type(6)').dataset.best === 'true'",
            "the scoreboard to mark the WebSocket row best for missed changes",
        )
        .await;
    // Marked in words too, in the same redraw that set data-best.
    browser
        .wait_for(
            "document.querySelector('#scoreboard tr[data-pane=ws] td:nth-of-type(6)').textContent.includes('best')",
            "the words '★ best' in the WebSocket row's missed cell",
        )
        .await;
    browser.assert_no_console_errors().await;
    browser.quit().await;
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
    browser.assert_no_console_errors().await;
    browser.quit().await;
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
    browser.assert_no_console_errors().await;
    browser.quit().await;
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
    browser.assert_no_console_errors().await;
    browser.quit().await;
}

#[tokio::test]
async fn every_control_works_without_console_errors_and_a_screenshot_is_saved() {
    let Some((_app, browser)) = page().await else {
        return;
    };
    browser.click("#pane-http .get-price").await;
    browser.click("#pane-http .auto-poll").await;
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
        .js("const e = document.activeElement; return [e.className, getComputedStyle(e).outlineStyle];")
        .await;
    assert_eq!(
        focused,
        serde_json::json!(["get-price", "solid"]),
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
    browser.assert_no_console_errors().await;
    browser.quit().await;
}

/// Not a check but a measurement for the README: the default settings (tick 200 ms, HTTP
/// auto-poll every 1000 ms) for 60 s, then the scoreboard is printed and the page saved as
/// `target/tickerlab-60s.png` and as the README's `docs/screenshot.png`. Run it with
/// `cargo test --test browser -- --ignored --nocapture`.
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
    let results = browser
        .client
        .execute_async(
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
            Vec::new(),
        )
        .await
        .expect("the script ran");
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
    browser.assert_no_console_errors().await;
    browser.quit().await;
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
    browser.assert_no_console_errors().await;
    browser.quit().await;
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
    browser.assert_no_console_errors().await;
    browser.quit().await;
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
    }
    browser.click("#pane-http .auto-poll").await;
    tokio::time::sleep(run).await;
    let rows = browser
        .js("return [...document.querySelectorAll('#scoreboard tr')].map(r => [...r.children].map(c => c.innerText.replace(/\\n/g, ' ')).join(' | '));")
        .await;
    for row in rows.as_array().expect("rows") {
        println!("{}", row.as_str().unwrap_or_default());
    }
    let png = browser.full_page_screenshot(1280).await;
    browser.assert_no_console_errors().await;
    browser.quit().await;
    Some(png)
}

/// Writes a picture the README shows into `docs/`.
fn write_doc(name: &str, png: &[u8]) {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    std::fs::create_dir_all(&docs).expect("create docs/");
    std::fs::write(docs.join(name), png).unwrap_or_else(|e| panic!("write docs/{name}: {e}"));
}
