//! `GET /price` (polling), `/healthz`, unknown paths, and `GET /price/next` (long polling)
//! against the real server.

use crate::common;
use common::{WAIT, spawn_app, test_config, wait_for_metric};
use serde_json::Value;
use tickerlab::Config;

#[tokio::test]
async fn price_returns_the_latest_tick_with_no_store() {
    let started = tickerlab::tick::epoch_ms();
    let app = spawn_app(test_config()).await;
    let response = reqwest::get(app.http("/price?symbol=GLOBX")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["content-type"], "application/json");
    let tick: Value = response.json().await.unwrap();
    let fields: Vec<&str> = tick
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for field in ["type", "symbol", "price", "change", "seq", "ts"] {
        assert!(fields.contains(&field), "missing {field} in {tick}");
    }
    assert_eq!(tick["type"], "tick");
    assert_eq!(tick["symbol"], "GLOBX");
    assert!(tick["seq"].as_u64().unwrap() >= 1);
    let price = tick["price"].as_f64().unwrap();
    assert!(price > 0.0);
    assert_eq!((price * 100.0).round() / 100.0, price, "price is in cents");
    // Epoch ms: made after the app started and before the answer arrived (an order, not a
    // latency, so a slow machine cannot break it).
    let ts = tick["ts"].as_f64().unwrap();
    let answered = tickerlab::tick::epoch_ms();
    assert!(
        started - 1.0 <= ts && ts <= answered + 1.0,
        "ts is epoch ms: {ts}, not within [{started}, {answered}]"
    );
}

#[tokio::test]
async fn price_without_symbol_uses_the_default_and_is_case_insensitive() {
    let app = spawn_app(test_config()).await;
    let tick: Value = reqwest::get(app.http("/price"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tick["symbol"], app.feed.symbols()[0]);
    let tick: Value = reqwest::get(app.http("/price?symbol=umbrl"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tick["symbol"], "UMBRL");
}

#[tokio::test]
async fn unknown_symbol_is_404_json_listing_the_symbols() {
    let app = spawn_app(test_config()).await;
    let response = reqwest::get(app.http("/price?symbol=NOPE")).await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("NOPE"));
    let symbols: Vec<String> = serde_json::from_value(body["symbols"].clone()).unwrap();
    assert_eq!(symbols, app.feed.symbols());
}

#[tokio::test]
async fn malformed_queries_are_400_json() {
    let app = spawn_app(test_config()).await;
    for query in ["?sym=ACME", "?symbol=ACME&symbol=GLOBX", "?symbol="] {
        let response = reqwest::get(app.http(&format!("/price{query}")))
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("symbol"),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn healthz_and_unknown_paths() {
    let app = spawn_app(test_config()).await;
    let health: Value = reqwest::get(app.http("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let response = reqwest::get(app.http("/nothing-here")).await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("/price"));
}

#[tokio::test]
async fn successive_prices_advance_with_the_feed() {
    let app = spawn_app(test_config()).await;
    let first: Value = reqwest::get(app.http("/price"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    common::wait_for_ticks(&app, first["seq"].as_u64().unwrap() + 1).await;
    let later: Value = reqwest::get(app.http("/price"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        later["seq"].as_u64() > first["seq"].as_u64(),
        "{first} then {later}"
    );
}

async fn current_seq(app: &common::TestApp, symbol: &str) -> u64 {
    let tick: Value = reqwest::get(app.http(&format!("/price?symbol={symbol}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tick["seq"].as_u64().unwrap()
}

fn slow_feed(tick_ms: u64) -> Config {
    Config {
        tick_ms,
        ..test_config()
    }
}

#[tokio::test]
async fn answers_at_once_when_the_client_is_behind() {
    // A one-minute tick: if the server waited for the next tick, this test would time out.
    let app = spawn_app(slow_feed(60_000)).await;
    let response = reqwest::get(app.http("/price/next?symbol=GLOBX&after=0"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tick: Value = response.json().await.unwrap();
    assert_eq!(tick["symbol"], "GLOBX");
    assert_eq!(tick["seq"], 1);
    // Without `after` it answers at once too.
    let response = reqwest::get(app.http("/price/next")).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn waits_for_the_next_tick_when_up_to_date() {
    let app = spawn_app(slow_feed(300)).await;
    let seq = current_seq(&app, "ACME").await;
    let response = reqwest::get(app.http(&format!("/price/next?symbol=ACME&after={seq}")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tick: Value = response.json().await.unwrap();
    assert!(tick["seq"].as_u64().unwrap() > seq, "{tick} after {seq}");
}

#[tokio::test]
async fn times_out_with_204() {
    let app = spawn_app(Config {
        long_poll_secs: 1,
        ..slow_feed(60_000)
    })
    .await;
    let response = reqwest::get(app.http("/price/next?symbol=ACME&after=1"))
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_after_is_400_json() {
    let app = spawn_app(test_config()).await;
    for query in ["after=-1", "after=soon", "symbol=ACME&after=1&x=2"] {
        let response = reqwest::get(app.http(&format!("/price/next?{query}")))
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("after=SEQ"),
            "{body}"
        );
    }
    let response = reqwest::get(app.http("/price/next?symbol=NOPE"))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_held_polls_all_complete_on_the_next_tick() {
    // 1000 client sockets and 1000 server sockets live in this one process: lift the soft
    // open-files limit (often 1024) to the hard one.
    raise_open_files_limit();
    // Ticks 5 s apart: the 1000 requests are sent and held well before the next one.
    let app = spawn_app(slow_feed(5_000)).await;
    let seq = current_seq(&app, "ACME").await;
    let client = reqwest::Client::new();
    let url = app.http(&format!("/price/next?symbol=ACME&after={seq}"));
    let polls = (0..1000).map(|_| {
        let request = client.get(&url).send();
        tokio::spawn(async move {
            let response = request.await.expect("long poll");
            assert_eq!(response.status(), 200);
            let tick: Value = response.json().await.unwrap();
            tick["seq"].as_u64().unwrap()
        })
    });
    let polls: Vec<_> = polls.collect();
    // All 1000 are held by the server at once (the gauge proves it), then one tick answers
    // them all.
    common::wait_for_metric(
        &app,
        r#"tickerlab_open_connections{transport="longpoll"}"#,
        |n| n == 1000,
    )
    .await;
    let seqs = futures_util::future::join_all(polls).await;
    assert_eq!(seqs.len(), 1000);
    for got in seqs {
        assert_eq!(got.unwrap(), seq + 1, "every held poll gets the next tick");
    }
}

fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A held poll whose client closed its socket gives its
/// `--max-connections` place back within a second or two, not after `--long-poll-secs`.
#[tokio::test]
async fn a_held_poll_whose_client_has_gone_frees_its_place_promptly() {
    use tokio::io::AsyncWriteExt;
    const GAUGE: &str = "tickerlab_open_connections{transport=\"longpoll\"}";
    let app = spawn_app(Config {
        tick_ms: 60_000,
        long_poll_secs: 120,
        ..test_config()
    })
    .await;
    let seq = current_seq(&app, "ACME").await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let request = format!(
            "GET /price/next?symbol=ACME&after={seq} HTTP/1.1\r\nHost: {}\r\n\r\n",
            app.addr
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        sockets.push(socket);
    }
    wait_for_gauge(&app, GAUGE, 3, common::WAIT).await;
    drop(sockets);
    let closed = std::time::Instant::now();
    wait_for_gauge(&app, GAUGE, 0, common::WAIT).await;
    let freed = closed.elapsed();
    eprintln!("three closed polls freed their places after {freed:?}");
    // "Within a second or two": the budget leaves room for a busy machine, and is far below
    // the 120 s the polls would otherwise hold their places.
    assert!(
        freed < std::time::Duration::from_secs(3),
        "freed after {freed:?}"
    );
}

/// Polls `/metrics` until `series` reads `value`; panics after `within`.
async fn wait_for_gauge(
    app: &common::TestApp,
    series: &str,
    value: u64,
    within: std::time::Duration,
) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let now = common::metric(&common::metrics_text(app).await, series);
        if now == value {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{series} stuck at {now}, wanted {value}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A server that restarted counts `seq` from 1 again, under a new run. A long poll whose
/// `after` is from an earlier run (its `run` differs) is answered at once with the current
/// tick. An `after` beyond the current seq *of the same run* (or with no run) is no restart
/// but a lagging instance, and is held.
#[tokio::test]
async fn a_long_poll_after_a_seq_from_an_earlier_run_is_answered_with_the_current_tick() {
    let app = spawn_app(Config {
        tick_ms: 60_000,
        long_poll_secs: 120,
        ..test_config()
    })
    .await;
    let current: serde_json::Value = reqwest::get(app.http("/price"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = current["run"].as_str().unwrap().to_owned();
    let poll =
        reqwest::get(app.http("/price/next?symbol=ACME&after=999999999&run=0000000000000001"));
    // Far shorter than the next tick (60 s) and the long-poll timeout (120 s): only an
    // immediate answer arrives within it.
    let response = tokio::time::timeout(WAIT, poll)
        .await
        .expect("answered at once, not held")
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tickerlab-run"], run.as_str());
    let tick: serde_json::Value = response.json().await.unwrap();
    assert_eq!(tick["seq"], current["seq"], "{tick}");
    assert_eq!(tick["symbol"], "ACME");
    // The current seq itself is still held: that is what long polling is for. And so is a
    // seq beyond it in the same run, or with no run: a lower seq proves no restart. The
    // server counts a held poll in its gauge; once it shows there, the client must have no
    // answer.
    for query in [
        format!("after={}&run={run}", current["seq"]),
        format!("after=999999999&run={run}"),
        "after=999999999".to_owned(),
    ] {
        let held = tokio::spawn(reqwest::get(app.http(&format!("/price/next?{query}"))));
        wait_for_metric(
            &app,
            r#"tickerlab_open_connections{transport="longpoll"}"#,
            |n| n == 1,
        )
        .await;
        assert!(!held.is_finished(), "a poll with {query} must be held");
        held.abort();
        wait_for_metric(
            &app,
            r#"tickerlab_open_connections{transport="longpoll"}"#,
            |n| n == 0,
        )
        .await;
    }
}

/// The long poll reads its query like every other route: an over-long one is a `400` that
/// says so (it used to be parsed whatever its length).
#[tokio::test]
async fn an_over_long_long_poll_query_is_refused_by_length() {
    let app = spawn_app(test_config()).await;
    let query = format!("symbol=ACME&after=1&x={}", "y".repeat(2000));
    let response = reqwest::get(app.http(&format!("/price/next?{query}")))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("too long") && error.contains("?symbol=NAME&after=SEQ"),
        "{error}"
    );
}
