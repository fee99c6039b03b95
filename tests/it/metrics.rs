//! `GET /metrics` against the real server: the counters move when the things they count
//! happen, and the gauges come back to 0.

use crate::common;
use common::{
    WS_OPEN, hello, metric, metrics_text, next_of_type, spawn_app, test_config, wait_for_metric,
    wait_for_metrics,
};

#[tokio::test]
async fn metrics_is_prometheus_text_and_counts_what_happens() {
    let app = spawn_app(test_config()).await;
    let response = reqwest::get(app.http("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    for line in text.lines() {
        assert!(
            line.starts_with("# HELP ")
                || line.starts_with("# TYPE ")
                || line.starts_with("tickerlab_"),
            "not exposition format: {line}"
        );
    }
    assert_eq!(metric(&text, WS_OPEN), 0);

    // HTTP responses, by route pattern and status.
    reqwest::get(app.http("/price")).await.unwrap();
    reqwest::get(app.http("/price?symbol=NOPE")).await.unwrap();
    reqwest::get(app.http("/no/such/path")).await.unwrap();
    let text = metrics_text(&app).await;
    assert_eq!(
        metric(
            &text,
            "tickerlab_http_responses_total{route=\"/price\",status=\"200\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &text,
            "tickerlab_http_responses_total{route=\"/price\",status=\"404\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &text,
            "tickerlab_http_responses_total{route=\"other\",status=\"404\"}"
        ),
        1
    );

    // WebSockets: the open gauge, messages and bytes sent.
    let sent_before = metric(&text, "tickerlab_ws_messages_sent_total");
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut ws = app.ws("/ws?symbols=ACME,GLOBX").await;
        hello(&mut ws).await;
        next_of_type(&mut ws, "tick").await;
        sockets.push(ws);
    }
    let text = metrics_text(&app).await;
    assert_eq!(metric(&text, WS_OPEN), 3);
    let sent = metric(&text, "tickerlab_ws_messages_sent_total") - sent_before;
    assert!(sent >= 6, "3 hellos and 3 ticks at least: {sent}");
    let bytes = metric(&text, "tickerlab_ws_bytes_sent_total");
    assert!(
        bytes > sent * 50,
        "a tick is more than 50 bytes: {bytes} for {sent}"
    );
    assert_eq!(
        metric(
            &text,
            "tickerlab_http_responses_total{route=\"/ws\",status=\"101\"}"
        ),
        3
    );
    // Serialisations: one per symbol per tick, whatever the number of clients. The page
    // reads the two counters one after the other while the feed ticks on, so wait for a
    // page rendered between two ticks, where the promise is exact.
    let symbols = app.feed.symbols().len() as u64;
    let ticks = wait_for_metrics(&app, "serialisations == ticks x symbols", |text| {
        let ticks = metric(text, "tickerlab_feed_ticks_total");
        let serialisations = metric(text, "tickerlab_feed_serialisations_total");
        (serialisations == ticks * symbols).then_some(ticks)
    })
    .await;
    assert!(ticks > 0);

    for mut ws in sockets {
        ws.close(None).await.unwrap();
    }
    wait_for_metric(&app, WS_OPEN, |n| n == 0).await;
    assert_eq!(
        metric(&metrics_text(&app).await, "tickerlab_ws_send_waiting"),
        0
    );
}

#[tokio::test]
async fn refused_handshakes_are_counted_by_reason() {
    let app = spawn_app(tickerlab::Config {
        max_connections: 1,
        ..test_config()
    })
    .await;
    reqwest::get(app.http("/ws")).await.unwrap(); // not a handshake
    let mut first = app.ws("/ws").await;
    hello(&mut first).await;
    assert!(
        tokio_tungstenite::connect_async(app.ws_url("/ws"))
            .await
            .is_err()
    ); // capacity
    let text = metrics_text(&app).await;
    assert_eq!(
        metric(
            &text,
            "tickerlab_handshakes_refused_total{reason=\"not_a_handshake\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &text,
            "tickerlab_handshakes_refused_total{reason=\"capacity\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &text,
            "tickerlab_handshakes_refused_total{reason=\"origin\"}"
        ),
        0
    );
}
