//! The `tickerlab` binary as a user runs it: what it prints, and how it fails.

use crate::common;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};

fn tickerlab() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tickerlab"));
    command
        .env_remove("PORT")
        .env_remove("HOST")
        .env("RUST_LOG", "warn");
    command
}

#[test]
fn port_in_use_is_one_clear_line_and_a_nonzero_exit() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = tickerlab().args(["--port", &port]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, no panic: {stderr}");
    assert!(
        lines[0].contains("cannot listen") && lines[0].contains(&port),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn bad_flags_fail_with_the_rule() {
    let output = tickerlab()
        .args(["--port", "0", "--tick-ms", "1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("10 to 60000"), "{stderr}");
}

#[test]
fn prints_the_url_then_serves_and_stops_on_sigterm() {
    let mut child = tickerlab()
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("tickerlab listening on http://127.0.0.1:"),
        "{line}"
    );
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // SIGTERM: a graceful stop with exit code 0.
    let status = common::sigterm_and_wait(&mut child);
    assert!(status.success(), "{status:?}");
}

/// The end of a WebSocket session is not logged as an error (actix-http's dispatcher logs
/// every body that ends with one, and that is how a session's connection is closed), but the
/// dispatcher's own log target stays on: at trace level its other lines come through.
#[test]
fn a_session_end_is_not_an_error_line_and_the_dispatcher_still_logs() {
    let mut child = tickerlab()
        .args(["--port", "0"])
        .env("RUST_LOG", "info,actix_http::h1::dispatcher=trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "no URL line");
        if let Some(addr) = line.trim().strip_prefix("tickerlab listening on http://") {
            break addr.to_owned();
        }
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for _ in 0..3 {
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
                .await
                .unwrap();
            common::hello(&mut ws).await;
            // The closing handshake: the server answers, then closes the TCP connection.
            futures_util::SinkExt::close(&mut ws).await.unwrap();
            while futures_util::StreamExt::next(&mut ws).await.is_some() {}
        }
        // A session ends once the server notices the client is gone; the health check after
        // it is answered after the ends were logged (one worker thread handles both in turn
        // at most a poll later).
        common::wait_for("three sessions ended", || async {
            let text = reqwest::get(format!("http://{addr}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (common::metric(&text, common::WS_OPEN) == 0).then_some(())
        })
        .await;
    });
    common::sigterm_and_wait(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        !stderr.contains("WebSocket session over"),
        "a session's end was logged: {stderr}"
    );
    assert!(
        stderr.contains("actix_http::h1::dispatcher"),
        "the dispatcher's log target is silenced: {stderr}"
    );
}
