//! The terminal client (`examples/client.rs`) against a live server: it holds one socket,
//! prints the pushed ticks, and its `subscribe` and `ping` get their answers on that socket.

use crate::common;
use common::example;
use common::{spawn_app, test_config};
use std::process::{Command, Stdio};

/// Runs the client with `--send` lines until every `until` text has arrived (the client fails
/// if that takes longer than a generous 30 s); returns what it printed.
async fn run_client(url: String, send: &[&str], until: &[&str]) -> String {
    let mut args: Vec<String> = Vec::new();
    for line in send {
        args.extend(["--send".into(), (*line).into()]);
    }
    for text in until {
        args.extend(["--until".into(), (*text).into()]);
    }
    args.extend(["--secs".into(), "30".into(), url]);
    let (ok, stdout, stderr) = run_to_end(args).await;
    assert!(ok, "client failed:\n{stdout}\n{stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_and_ping_are_answered_on_the_one_open_socket() {
    let app = spawn_app(test_config()).await;
    let url = format!("ws://{}/ws?symbols=ACME", app.addr);
    let out = run_client(
        url,
        &["subscribe GLOBX", "ping"],
        &["\"type\":\"pong\"", "\"symbol\":\"GLOBX\""],
    )
    .await;
    let lines: Vec<&str> = out.lines().collect();
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{out}"))
    };
    // One handshake, then frames: hello first, ticks pushed without being asked.
    assert_eq!(
        out.matches("101 Switching Protocols").count(),
        1,
        "one connection:\n{out}"
    );
    assert!(position("\"type\":\"hello\"") > position("101 Switching Protocols"));
    assert!(
        out.contains("← text") && out.contains("\"symbol\":\"ACME\""),
        "{out}"
    );
    // Sent on the same socket, answered on it, and GLOBX's ticks follow the answer.
    let subscribed = position("\"type\":\"subscribed\"");
    assert!(position("→ text") < subscribed, "{out}");
    assert!(
        lines[subscribed..]
            .iter()
            .any(|l| l.contains("\"type\":\"tick\"") && l.contains("\"symbol\":\"GLOBX\"")),
        "GLOBX ticks after the subscription:\n{out}"
    );
    assert!(
        position("\"type\":\"pong\"") == position("round trip"),
        "the pong is shown with its round trip:\n{out}"
    );
    // It closes politely and the server answers the close.
    assert!(out.contains("→ close 1000"), "{out}");
    assert!(out.contains("← close 1000"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_are_printed_with_their_size_on_the_wire() {
    let app = spawn_app(test_config()).await;
    let url = format!("ws://{}/ws?symbols=ACME", app.addr);
    let out = run_client(url, &[], &["\"type\":\"tick\""]).await;
    let tick = out
        .lines()
        .find(|l| l.contains("\"type\":\"tick\""))
        .unwrap_or_else(|| panic!("no tick in:\n{out}"));
    // "← text   93 B ... {json}": the JSON's length plus a 2-byte header (unmasked, < 126 B).
    let size: usize = tick
        .split("← text")
        .nth(1)
        .and_then(|r| r.split(" B").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no size in {tick:?}"));
    let json = &tick[tick.find('{').expect("the JSON")..];
    assert_eq!(size, json.len() + 2, "{tick}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_up_on_an_awaited_text_is_an_error() {
    let app = spawn_app(test_config()).await;
    let url = format!("ws://{}/ws?symbols=ACME", app.addr);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(example::client_binary())
            .args(["--until", "never sent by the server", "--secs", "0.5", &url])
            .stdin(Stdio::null())
            .output()
            .expect("run the client")
    })
    .await
    .expect("the client ran");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("gave up after 0.5 s"), "{stderr}");
}

/// Runs the client with `args` to its end; returns (success, stdout, stderr).
async fn run_to_end(args: Vec<String>) -> (bool, String, String) {
    let output = tokio::task::spawn_blocking(move || {
        Command::new(example::client_binary())
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run the client")
    })
    .await
    .expect("the client ran");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A refused handshake shows the server's reason, not just the status: past
/// `--max-connections` the `503` body says how many connections are open and the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_handshake_prints_the_servers_reason() {
    let app = spawn_app(tickerlab::Config {
        max_connections: 1,
        ..test_config()
    })
    .await;
    let mut holder = app.ws("/ws").await;
    common::hello(&mut holder).await;
    let url = format!("ws://{}/ws?symbols=ACME", app.addr);
    let (ok, _, stderr) = run_to_end(vec!["--secs".into(), "5".into(), url]).await;
    assert!(!ok);
    assert!(stderr.contains("HTTP 503"), "{stderr}");
    assert!(stderr.contains("1 open connections"), "{stderr}");
}

/// On `/echo` the hints name what the echo socket does (`say`), not `/ws`'s commands, and
/// `--help` explains `say`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_echo_the_hints_fit_the_route_and_help_explains_say() {
    let app = spawn_app(test_config()).await;
    let url = format!("ws://{}/echo", app.addr);
    let stdout = run_client(url, &["say hello, echo", "nonsense"], &["hello, echo"]).await;
    let hints: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("type say") || l.contains("(not sent) try:"))
        .collect();
    assert!(!hints.is_empty(), "{stdout}");
    for hint in hints {
        assert!(hint.contains("say TEXT"), "{hint}");
        assert!(!hint.contains("subscribe"), "{hint}");
    }
    let (_, _, help) = run_to_end(vec!["--help".into()]).await;
    assert!(
        help.contains("say ANY TEXT") && help.contains("/echo"),
        "{help}"
    );
}
