//! GET /price, /healthz and unknown paths, against the real server.

mod common;

use common::{spawn_app, test_config};
use serde_json::Value;

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
