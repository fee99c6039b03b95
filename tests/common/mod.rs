//! Test helpers: start the real app on 127.0.0.1:0 and talk to it with real clients.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tickerlab::{Config, Feed, Stopper};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A WebSocket client connection as the tests use it.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single expected event may take before a test fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running app: where it listens, its feed (for counters), and how to stop it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub feed: Feed,
    pub stopper: Stopper,
}

impl TestApp {
    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub async fn ws(&self, path: &str) -> Ws {
        let (ws, response) =
            tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(self.ws_url(path)))
                .await
                .expect("handshake timed out")
                .expect("handshake failed");
        assert_eq!(response.status(), 101);
        ws
    }
}

/// A configuration for tests: a fast tick, a fixed seed, any free port.
pub fn test_config() -> Config {
    Config {
        port: 0,
        tick_ms: 20,
        seed: Some(7),
        workers: Some(2),
        ..Config::default()
    }
}

/// Starts the real app on 127.0.0.1:0 in this runtime.
pub async fn spawn_app(config: Config) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let app = tickerlab::serve(config, listener).expect("serve");
    let test_app = TestApp {
        addr: app.local_addr(),
        feed: app.feed().clone(),
        stopper: app.stopper(),
    };
    tokio::spawn(app.run());
    test_app
}

/// The next text message as JSON, skipping control frames. Panics after [`WAIT`].
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no message within the wait")
            .expect("socket ended")
            .expect("socket error");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("server sent JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// The next message of the given `type`, skipping others (e.g. ticks while waiting for a pong).
pub async fn next_of_type(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let message = next_json(ws).await;
        if message["type"] == kind {
            return message;
        }
    }
}

/// Sends a JSON value as a text message.
pub async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send");
}

/// Reads `hello`, asserting it comes first.
pub async fn hello(ws: &mut Ws) -> Value {
    let hello = next_json(ws).await;
    assert_eq!(
        hello["type"], "hello",
        "first message must be hello: {hello}"
    );
    hello
}
