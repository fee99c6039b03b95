//! The connection limit (`--max-connections`): past it every long-lived transport is refused
//! with a `503` that names the limit and carries `Retry-After`, and the clients inside it
//! stream on.

use crate::common;
use common::{
    WS_OPEN, assert_streaming, metric, metrics_text, spawn_app, test_config, wait_for_metric,
};
use common::{app_with_bystander, assert_unharmed, greeted_client};
use tickerlab::Config;

// ---- the connection limit ----------------------------------------------------------------------

#[tokio::test]
async fn past_max_connections_the_handshake_gets_503_and_the_others_stream_on() {
    let config = Config {
        max_connections: 3,
        ..test_config()
    };
    let app = spawn_app(config).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(greeted_client(&app).await);
    }
    let refused = tokio_tungstenite::connect_async(app.ws_url("/ws")).await;
    let response = match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response,
        other => panic!("expected an HTTP refusal, got {other:?}"),
    };
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
    assert!(body.contains("--max-connections"), "{body}");
    for ws in &mut open {
        assert_streaming(ws, 3).await;
    }
    let text = metrics_text(&app).await;
    assert_eq!(
        metric(
            &text,
            "tickerlab_handshakes_refused_total{reason=\"capacity\"}"
        ),
        1
    );
    assert_eq!(metric(&text, WS_OPEN), 3);
    // One leaves: its place is free again.
    let mut leaving = open.pop().unwrap();
    leaving.close(None).await.unwrap();
    wait_for_metric(&app, WS_OPEN, |n| n == 2).await;
    let mut again = greeted_client(&app).await;
    assert_streaming(&mut again, 3).await;
}

#[tokio::test]
async fn every_handshake_refusal_says_what_was_wrong() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let good = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    // (header to change, its new value or None to leave it out, status, words in the body)
    let cases: &[(&str, Option<&str>, u16, &str)] = &[
        ("upgrade", None, 400, "Upgrade: websocket"),
        ("connection", None, 400, "Connection: Upgrade"),
        (
            "sec-websocket-version",
            None,
            426,
            "Sec-WebSocket-Version: 13",
        ),
        ("sec-websocket-key", None, 400, "16 random bytes"),
        (
            "sec-websocket-key",
            Some("dGhlIHNhbXBsZQ=="),
            400,
            "16 random bytes",
        ),
        // The lesson's exercise 4: change the character before `==`.
        (
            "sec-websocket-key",
            Some("dGhlIHNhbXBsZSBub25jZR=="),
            400,
            "A, Q, g or w",
        ),
        (
            "sec-websocket-key",
            Some("dGhlIHNhbXBsZSBub25jZZ=="),
            400,
            "A, Q, g or w",
        ),
    ];
    for &(name, value, status, words) in cases {
        let mut request = reqwest::Client::new().get(app.http("/ws"));
        for (header, good_value) in good {
            match (header == name, value) {
                (false, _) => request = request.header(header, good_value),
                (true, Some(value)) => request = request.header(header, value),
                (true, None) => {}
            }
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{name}: {value:?}");
        let text = response.text().await.unwrap();
        assert!(text.contains(words), "{name}: {value:?} got {text:?}");
    }
    // Every other key of the right shape ending in A, Q, g or w is accepted.
    for last in ["A", "Q", "g", "w"] {
        let key = format!("dGhlIHNhbXBsZSBub25jZ{last}==");
        let mut request = reqwest::Client::new().get(app.http("/ws"));
        for (header, value) in good {
            let value = if header == "sec-websocket-key" {
                key.as_str()
            } else {
                value
            };
            request = request.header(header, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 101, "key {key}");
    }
    assert_unharmed(&app, &mut bystander).await;
}

/// Every long-lived transport refused at `--max-connections` gets the same `503`: JSON naming
/// the limit, and `Retry-After` (event streams and long polls used to lack it).
#[tokio::test]
async fn refusals_at_max_connections_carry_retry_after_on_every_transport() {
    let app = spawn_app(Config {
        tick_ms: 60_000,
        max_connections: 1,
        ..test_config()
    })
    .await;
    let _stream = reqwest::get(app.http("/events")).await.unwrap();
    wait_for_metric(
        &app,
        r#"tickerlab_open_connections{transport="sse"}"#,
        |n| n == 1,
    )
    .await;
    let mut bodies = Vec::new();
    for path in ["/events", "/price/next?after=1"] {
        let refused = reqwest::get(app.http(path)).await.unwrap();
        assert_eq!(refused.status(), 503, "{path}");
        assert_eq!(refused.headers()["retry-after"], "5", "{path}");
        let body: serde_json::Value = refused.json().await.unwrap();
        let error = body["error"].as_str().expect("an error text").to_owned();
        assert!(error.contains("--max-connections"), "{path}: {error}");
        bodies.push(error);
    }
    let refused = tokio_tungstenite::connect_async(app.ws_url("/ws")).await;
    let response = match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response,
        other => panic!("expected an HTTP refusal, got {other:?}"),
    };
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: serde_json::Value =
        serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
    bodies.push(body["error"].as_str().unwrap().to_owned());
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:#?}");
}
