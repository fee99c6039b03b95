//! The Origin check on the WebSocket handshake, with real handshakes: the defence against
//! Cross-Site WebSocket Hijacking (browsers apply no CORS to WebSockets).

use crate::common;
use common::{TestApp, hello, metric, metrics_text, spawn_app, test_config};
use tickerlab::Config;
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::Response;

/// Attempts a handshake with the given `Origin` (or none): `Ok` when it opened.
async fn handshake(app: &TestApp, origin: Option<&str>) -> Result<(), Response<Option<Vec<u8>>>> {
    let mut request = app.ws_url("/ws").into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut ws, _)) => {
            hello(&mut ws).await;
            Ok(())
        }
        Err(Error::Http(response)) => Err(*response),
        Err(other) => panic!("handshake failed without an HTTP answer: {other}"),
    }
}

#[tokio::test]
async fn the_servers_own_origin_and_localhost_are_accepted() {
    let app = spawn_app(test_config()).await;
    let own = format!("http://{}", app.addr);
    assert!(handshake(&app, Some(&own)).await.is_ok(), "{own}");
    assert!(handshake(&app, Some("http://localhost:3000")).await.is_ok());
    assert!(handshake(&app, Some("http://127.0.0.1:9")).await.is_ok());
    assert_eq!(
        metric(
            &metrics_text(&app).await,
            "tickerlab_handshakes_refused_total{reason=\"origin\"}"
        ),
        0
    );
}

#[tokio::test]
async fn a_request_without_origin_is_a_non_browser_client_and_is_accepted() {
    let app = spawn_app(test_config()).await;
    assert!(handshake(&app, None).await.is_ok());
}

#[tokio::test]
async fn a_cross_origin_handshake_gets_403_explaining_why() {
    let app = spawn_app(test_config()).await;
    for origin in [
        "https://evil.example",
        "null",
        &format!("http://{}.evil.example", app.addr.ip()),
    ] {
        let response = handshake(&app, Some(origin)).await.expect_err(origin);
        assert_eq!(response.status(), 403, "{origin}");
        let body =
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
        assert!(
            body.contains(origin)
                && body.contains("--allowed-origin")
                && body.contains("Hijacking"),
            "{body}"
        );
    }
    assert_eq!(
        metric(
            &metrics_text(&app).await,
            "tickerlab_handshakes_refused_total{reason=\"origin\"}"
        ),
        3
    );
    // The refusals cost nothing to the allowed: a same-origin socket still opens.
    assert!(
        handshake(&app, Some(&format!("http://{}", app.addr)))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn allowed_origin_adds_an_origin() {
    let config = Config {
        allowed_origins: vec!["https://docs.example".into()],
        ..test_config()
    };
    let app = spawn_app(config).await;
    assert!(handshake(&app, Some("https://docs.example")).await.is_ok());
    // Same host, other scheme means another port (443 vs 80): another origin.
    let refused = handshake(&app, Some("http://docs.example"))
        .await
        .expect_err("http");
    assert_eq!(refused.status(), 403);
}

/// A foreign page's event stream is refused in the words of event streams, not WebSockets.
#[tokio::test]
async fn an_event_stream_origin_refusal_does_not_speak_of_websocket_handshakes() {
    let app = spawn_app(test_config()).await;
    let refused = reqwest::Client::new()
        .get(app.http("/events"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("https://evil.example") && text.contains("--allowed-origin"),
        "{text}"
    );
    assert!(!text.contains("WebSocket handshake"), "{text}");
}
