//! Bad input, dead peers, floods and limits against the real server: each case gets its clear,
//! standard answer, and a bystander client connected throughout keeps streaming every tick.

mod common;

use common::raw::{self, RawWs};
use common::{
    TestApp, WS_OPEN, Ws, assert_streaming, close_of, hello, metric, metrics_text, next_of_type,
    send_json, spawn_app, test_config, wait_for_metric,
};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tickerlab::Config;
use tokio_tungstenite::tungstenite::Message;

/// Starts an app and a bystander client that has said hello.
async fn app_with_bystander(config: Config) -> (TestApp, Ws) {
    let app = spawn_app(config).await;
    let mut bystander = app.ws("/ws").await;
    hello(&mut bystander).await;
    (app, bystander)
}

/// After the bad input: the server still answers HTTP and the bystander still gets every tick.
async fn assert_unharmed(app: &TestApp, bystander: &mut Ws) {
    assert_streaming(bystander, 5).await;
    let health = reqwest::get(app.http("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

/// A client that has said hello and is reading ticks of the default symbol.
async fn client(app: &TestApp) -> Ws {
    let mut ws = app.ws("/ws").await;
    hello(&mut ws).await;
    ws
}

// ---- heartbeat -------------------------------------------------------------------------

fn heartbeat_config() -> Config {
    Config {
        heartbeat_secs: 1,
        client_timeout_secs: 3,
        ..test_config()
    }
}

#[tokio::test]
async fn a_peer_that_never_answers_pings_is_closed_as_dead() {
    let (app, mut bystander) = app_with_bystander(heartbeat_config()).await;
    let mut silent = RawWs::connect(app.addr, "/ws").await;
    // Read everything, answer nothing: pings go unanswered.
    let silent = tokio::spawn(async move {
        let mut pings = 0;
        loop {
            let frame = silent
                .next_frame()
                .await
                .expect("server closes with a frame");
            match frame.opcode {
                raw::PING => pings += 1,
                raw::CLOSE => return (pings, frame.close()),
                _ => {}
            }
        }
    });
    // Meanwhile the bystander reads (and so answers pings) and misses nothing.
    while !silent.is_finished() {
        assert_streaming(&mut bystander, 5).await;
    }
    let (pings, close) = silent.await.unwrap();
    assert!(pings >= 2, "pinged before giving up ({pings} pings)");
    assert_eq!(close.0, 1008, "{close:?}");
    assert!(close.1.contains("no answer to pings"), "{close:?}");
    wait_for_metric(&app, WS_OPEN, |n| n == 1).await; // only the bystander is left
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn a_quiet_client_that_answers_pings_stays_connected() {
    let app = spawn_app(heartbeat_config()).await;
    let mut quiet = client(&app).await;
    // tungstenite answers each ping with a pong as it reads. The client sends nothing else
    // for twice the timeout; it must still be streaming.
    let ticks_needed = 2 * 3 * 1000 / 20;
    let mut pings = 0;
    let mut ticks = 0;
    while ticks < ticks_needed {
        match tokio::time::timeout(common::WAIT, futures_util::StreamExt::next(&mut quiet))
            .await
            .expect("message")
            .expect("open")
            .expect("ok")
        {
            Message::Ping(_) => pings += 1,
            Message::Text(_) => ticks += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 3, "the server pinged ({pings})");
    assert_eq!(metric(&metrics_text(&app).await, WS_OPEN), 1);
}

// ---- bad messages: an error answer, the socket stays open ------------------------------------

#[tokio::test]
async fn malformed_json_gets_bad_json_and_the_socket_stays() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = client(&app).await;
    ws.send(Message::text("{\"type\":\"subscribe\","))
        .await
        .unwrap();
    let error = next_of_type(&mut ws, "error").await;
    assert_eq!(error["code"], "bad_json");
    let text = error["message"].as_str().unwrap();
    assert!(
        text.contains("not valid JSON") && text.contains("\"type\":\"subscribe\""),
        "{text}"
    );
    send_json(&mut ws, json!({"type": "ping", "id": 1})).await;
    assert_eq!(next_of_type(&mut ws, "pong").await["id"], 1);
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn an_unknown_type_gets_bad_message_echoing_the_id() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = client(&app).await;
    send_json(&mut ws, json!({"type": "buy", "symbol": "ACME", "id": 42})).await;
    let error = next_of_type(&mut ws, "error").await;
    assert_eq!(error["code"], "bad_message");
    assert_eq!(error["id"], 42);
    let text = error["message"].as_str().unwrap();
    assert!(
        text.contains("buy") && text.contains("unsubscribe"),
        "{text}"
    );
    send_json(&mut ws, json!({"type": "ping", "id": 2})).await;
    assert_eq!(next_of_type(&mut ws, "pong").await["id"], 2);
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn an_unknown_symbol_gets_the_list_of_known_ones() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = client(&app).await;
    send_json(
        &mut ws,
        json!({"type": "subscribe", "symbols": ["NOPE", "GLOBX"], "id": 3}),
    )
    .await;
    let error = next_of_type(&mut ws, "error").await;
    assert_eq!(error["code"], "unknown_symbol");
    assert_eq!(error["symbols"], json!(app.feed.symbols()));
    assert!(error["message"].as_str().unwrap().contains("NOPE"));
    // The known symbol in the same request was still subscribed.
    let subscribed = next_of_type(&mut ws, "subscribed").await;
    assert_eq!(subscribed["symbols"], json!(["ACME", "GLOBX"]));
    assert_unharmed(&app, &mut bystander).await;
}

fn ten_thousand_symbols() -> Value {
    let symbols: Vec<String> = (0..10_000).map(|i| format!("S{i}")).collect();
    json!({"type": "subscribe", "symbols": symbols, "id": 4})
}

#[tokio::test]
async fn a_subscribe_of_ten_thousand_symbols_is_refused_whole() {
    // With a message limit large enough to carry it, the list itself is refused.
    let config = Config {
        max_message_bytes: 200_000,
        ..test_config()
    };
    let (app, mut bystander) = app_with_bystander(config).await;
    let mut ws = client(&app).await;
    send_json(&mut ws, ten_thousand_symbols()).await;
    let error = next_of_type(&mut ws, "error").await;
    assert_eq!(error["code"], "bad_message");
    assert_eq!(error["id"], 4);
    let text = error["message"].as_str().unwrap();
    assert!(
        text.contains("10000") && text.contains("at most 64"),
        "{text}"
    );
    send_json(&mut ws, json!({"type": "ping", "id": 5})).await;
    assert_eq!(next_of_type(&mut ws, "pong").await["id"], 5);
    assert_unharmed(&app, &mut bystander).await;
}

// ---- frames that break the rules: a close with the RFC 6455 code ------------------------------

#[tokio::test]
async fn ten_thousand_symbols_under_the_default_limit_is_too_big_1009() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = client(&app).await;
    send_json(&mut ws, ten_thousand_symbols()).await;
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("4096"), "{reason}");
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn a_text_message_over_the_limit_closes_1009() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = client(&app).await;
    ws.send(Message::text("x".repeat(4097))).await.unwrap();
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(code, 1009);
    assert_eq!(reason, "message larger than 4096 bytes");
    wait_for_metric(&app, WS_OPEN, |n| n == 1).await;
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn a_binary_frame_closes_1003() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = client(&app).await;
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(code, 1003);
    assert!(reason.contains("send JSON text"), "{reason}");
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_1007() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = RawWs::connect(app.addr, "/ws").await;
    ws.next_text().await; // hello
    ws.send_frame(true, raw::TEXT, &[b'{', 0xff, 0xfe, b'}'])
        .await;
    let (code, reason) = ws.until_close().await;
    assert_eq!(code, 1007);
    assert!(reason.contains("UTF-8"), "{reason}");
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn a_fragmented_message_is_reassembled_and_answered() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = RawWs::connect(app.addr, "/ws").await;
    ws.next_text().await; // hello
    ws.send_frame(false, raw::TEXT, b"{\"type\":\"pi").await;
    ws.send_frame(false, raw::CONTINUATION, b"ng\",\"id\":")
        .await;
    // A control frame may come between fragments (RFC 6455 section 5.4).
    ws.send_frame(true, raw::PING, b"between").await;
    ws.send_frame(true, raw::CONTINUATION, b"77}").await;
    let (mut pong_frame, mut pong_message) = (false, None);
    while pong_message.is_none() || !pong_frame {
        let frame = ws.next_frame().await.expect("open");
        match frame.opcode {
            raw::PONG => pong_frame |= frame.payload == b"between",
            raw::TEXT => {
                let v: Value = serde_json::from_slice(&frame.payload).unwrap();
                if v["type"] == "pong" {
                    pong_message = Some(v);
                }
            }
            raw::CLOSE => panic!("closed: {:?}", frame.close()),
            _ => {}
        }
    }
    assert_eq!(pong_message.unwrap()["id"], 77);
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn fragments_adding_up_past_the_limit_close_1009() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let mut ws = RawWs::connect(app.addr, "/ws").await;
    ws.next_text().await; // hello
    let piece = vec![b' '; 1500];
    ws.send_frame(false, raw::TEXT, &piece).await;
    for _ in 0..3 {
        ws.send_frame(false, raw::CONTINUATION, &piece).await;
    }
    let (code, _) = ws.until_close().await;
    assert_eq!(code, 1009);
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn a_flood_of_messages_closes_1008_with_the_limit() {
    let config = Config {
        max_messages_per_sec: 10,
        ..test_config()
    };
    let (app, mut bystander) = app_with_bystander(config).await;
    let mut ws = client(&app).await;
    // 200 pings at once: far past the burst of 20 a rate of 10/s allows.
    for id in 0..200 {
        ws.feed(Message::text(json!({"type": "ping", "id": id}).to_string()))
            .await
            .unwrap();
    }
    ws.flush().await.unwrap();
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(code, 1008);
    assert_eq!(reason, "too many messages: at most 10 per second");
    let text = metrics_text(&app).await;
    assert_eq!(metric(&text, "tickerlab_ws_rate_limited_total"), 1);
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn a_client_at_the_allowed_rate_is_never_limited() {
    let config = Config {
        max_messages_per_sec: 20,
        ..test_config()
    };
    let app = spawn_app(config).await;
    let mut ws = client(&app).await;
    // 60 pings at about 16 per second, under the limit of 20: more than the burst allowance
    // of 40, so this passes only if the bucket really refills over time.
    for id in 0..60 {
        send_json(&mut ws, json!({"type": "ping", "id": id})).await;
        assert_eq!(next_of_type(&mut ws, "pong").await["id"], id);
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    }
    assert_eq!(
        metric(&metrics_text(&app).await, "tickerlab_ws_rate_limited_total"),
        0
    );
}

// ---- handshakes and queries that are refused before a socket exists ---------------------------

async fn raw_http(app: &TestApp, head: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (head, _) = raw::request(&mut stream, head).await;
    head
}

#[tokio::test]
async fn a_wrong_websocket_version_gets_426_naming_13() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let response = reqwest::Client::new()
        .get(app.http("/ws"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "8")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 426);
    assert_eq!(response.headers()["sec-websocket-version"], "13");
    let text = response.text().await.unwrap();
    assert!(text.contains("Sec-WebSocket-Version: 13"), "{text}");
    let metrics = metrics_text(&app).await;
    assert_eq!(
        metric(
            &metrics,
            "tickerlab_handshakes_refused_total{reason=\"not_a_handshake\"}"
        ),
        1
    );
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn a_handshake_without_upgrade_gets_400_with_a_way_to_do_it() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let head = raw_http(
        &app,
        &format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 0\r\n\r\n",
            app.addr
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let response = reqwest::get(app.http("/ws")).await.unwrap();
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("Upgrade: websocket") && text.contains("curl"),
        "{text}"
    );
    assert_unharmed(&app, &mut bystander).await;
}

async fn assert_400_json(app: &TestApp, path: &str, says: &str) {
    let response = reqwest::get(app.http(path)).await.unwrap();
    assert_eq!(response.status(), 400, "{path}");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(says), "{path}: {error}");
}

#[tokio::test]
async fn too_long_query_strings_get_400_json() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let long = "A".repeat(2000);
    assert_400_json(
        &app,
        &format!("/price?symbol={long}"),
        "too long (2007 bytes): at most 1024",
    )
    .await;
    // /ws checks its query before the upgrade, so a browser's handshake gets the JSON too.
    assert_400_json(
        &app,
        &format!("/ws?symbols={long}"),
        "too long (2008 bytes): at most 1024",
    )
    .await;
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn a_request_line_past_the_http_parsers_limit_is_refused_and_the_server_goes_on() {
    // Far past our 1024 bytes and the 32 KiB head limit: refused before any route runs, by
    // our `limit_head` middleware (a 431 JSON) or, past actix's own 128 KiB buffer, by actix
    // (no body). What matters is that it is a refusal, the connection ends, and nothing else
    // is hurt.
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    let long = "A".repeat(100_000);
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!(
        "GET /price?symbol={long} HTTP/1.1\r\nHost: {}\r\n\r\n",
        app.addr
    );
    let _ = stream.write_all(head.as_bytes()).await; // the server may hang up mid-write
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(common::WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the server ends the connection");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "a refusal, not a success: {answer}"
    );
    eprintln!("a 100 kB request line got: {:?}", answer.lines().next());
    assert_unharmed(&app, &mut bystander).await;
}

#[tokio::test]
async fn malformed_query_strings_get_400_json() {
    let (app, mut bystander) = app_with_bystander(test_config()).await;
    assert_400_json(
        &app,
        "/price?symbol=ACME&symbol=GLOBX",
        "expected nothing or ?symbol=NAME",
    )
    .await;
    assert_400_json(&app, "/price?sym=ACME", "expected nothing or ?symbol=NAME").await;
    assert_400_json(
        &app,
        "/ws?symbol=ACME",
        "expected nothing or ?symbols=NAME,NAME",
    )
    .await;
    assert_400_json(
        &app,
        "/ws?symbols=A&symbols=B",
        "expected nothing or ?symbols=NAME,NAME",
    )
    .await;
    assert_unharmed(&app, &mut bystander).await;
}

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
        open.push(client(&app).await);
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
    let mut again = client(&app).await;
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
