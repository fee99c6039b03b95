//! The lesson never lies: the README's "try it" commands run against a live server, and
//! every route, flag and message type it names exists.
//!
//! A shell block preceded by a line `<!-- try-it expect='TEXT' -->` is run with `bash` after
//! replacing `127.0.0.1:8080` with the test server's address; it must exit 0 and print TEXT
//! (so a 404, a wrong accept value or an empty answer fails the lesson, not just a crash).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{hello, next_of_type, send_json, spawn_app, test_config};
use serde_json::{Value, json};
use tickerlab::tick::{ClientMessage, ServerMessage, Tick};

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The shell blocks marked `<!-- try-it expect='...' -->`, with what each must print.
fn try_it_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim().strip_prefix("<!-- try-it") else {
            continue;
        };
        let expect = rest
            .trim()
            .strip_prefix("expect='")
            .and_then(|r| r.strip_suffix("' -->"))
            .unwrap_or_else(|| panic!("a try-it marker names what the block prints: {line}"))
            .to_owned();
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```sh"),
            "try-it must precede a ```sh block, got {fence:?}"
        );
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        blocks.push((body.join("\n"), expect));
    }
    blocks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_it_commands_succeed_against_a_live_server() {
    let app = spawn_app(test_config()).await;
    let blocks = try_it_blocks(&readme());
    assert!(
        blocks.len() >= 4,
        "the lesson has try-it boxes, found {}",
        blocks.len()
    );
    for (block, expect) in blocks {
        let script = block
            .replace("127.0.0.1:8080", &app.addr.to_string())
            .replace("localhost:8080", &app.addr.to_string());
        let output = tokio::task::spawn_blocking(move || {
            Command::new("bash")
                .args(["-c", &script])
                .output()
                .expect("bash runs")
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains(&expect),
            "README try-it block failed (expected {expect:?}):\n{block}\nstatus {:?}\nstdout {stdout}\nstderr {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Every `GET /path` the README names.
fn routes(text: &str) -> BTreeSet<String> {
    text.match_indices("GET /")
        .map(|(i, _)| {
            let rest = &text[i + 4..];
            let end = rest.find(['`', ' ', '?', ')', '|']).unwrap_or(rest.len());
            rest[..end].trim_end_matches("...").to_owned()
        })
        .collect()
}

#[tokio::test]
async fn every_route_the_readme_names_is_served() {
    let app = spawn_app(test_config()).await;
    let routes = routes(&readme());
    for must in ["/", "/price", "/ws", "/healthz"] {
        assert!(routes.contains(must), "README should name GET {must}");
    }
    let client = reqwest::Client::new();
    for route in routes {
        let path = if route.ends_with('/') && route.len() > 1 {
            format!("{route}style.css")
        } else {
            route.clone()
        };
        // `after=0` makes /price/next answer at once; routes that reject the extra
        // parameter answer 400, which is fine: we only look for "no such route". Streaming
        // routes (SSE) are not read past their status line.
        let request = client.get(app.http(&format!("{path}?after=0"))).send();
        let response = tokio::time::timeout(std::time::Duration::from_secs(30), request)
            .await
            .unwrap()
            .unwrap();
        if response.status() != 404 {
            continue;
        }
        let body = response.text().await.unwrap_or_default();
        assert!(
            !body.contains("no route"),
            "README names GET {route}, which is not served"
        );
    }
}

#[test]
fn every_flag_is_documented_and_every_documented_flag_exists() {
    let help = Command::new(env!("CARGO_BIN_EXE_tickerlab"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let flags_in = |text: &str| -> BTreeSet<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("--") && w.len() > 2 && w.as_bytes()[2].is_ascii_lowercase())
            .map(str::to_owned)
            .collect()
    };
    let mut app_flags = flags_in(&help);
    app_flags.remove("--help");
    app_flags.remove("--version");
    let readme = readme();
    // The README's table of options: rows starting with | `--flag`.
    let table: BTreeSet<String> = readme
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .flat_map(|l| flags_in(l.split('|').nth(1).unwrap_or_default()))
        .collect();
    assert_eq!(
        table, app_flags,
        "the README's option table must match `tickerlab --help`"
    );
    // Flags passed to the app in README commands (`cargo run --release -- --flag`) exist.
    for line in readme
        .lines()
        .filter(|l| l.contains("cargo run") && l.contains(" -- "))
    {
        let args = line.split(" -- ").nth(1).unwrap_or_default();
        for flag in flags_in(args) {
            assert!(
                app_flags.contains(&flag),
                "README runs the app with unknown flag {flag}: {line}"
            );
        }
    }
}

#[tokio::test]
async fn every_message_type_the_readme_names_exists() {
    let readme = readme();
    // Every JSON example with a "type" must be a real protocol message.
    let mut client_types = BTreeSet::new();
    for line in readme
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("{\"type\""))
    {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("README JSON example does not parse ({e}): {line}"));
        let kind = value["type"].as_str().unwrap().to_owned();
        let is_client = serde_json::from_value::<ClientMessage>(value.clone()).is_ok();
        let is_server = serde_json::from_value::<ServerMessage>(value.clone()).is_ok()
            || serde_json::from_value::<Tick>(value.clone()).is_ok();
        assert!(
            is_client || is_server,
            "README example is no protocol message: {line}"
        );
        if is_client {
            client_types.insert(kind);
        }
    }
    for kind in ["subscribe", "unsubscribe", "ping"] {
        assert!(
            client_types.contains(kind),
            "README shows no {kind} example"
        );
    }
    // Every type in the "Server to client" table is sent by a live server.
    let app = spawn_app(test_config()).await;
    let mut ws = app.ws("/ws?symbols=ACME").await;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    seen.insert(hello(&mut ws).await["type"].as_str().unwrap().into());
    seen.insert(
        next_of_type(&mut ws, "tick").await["type"]
            .as_str()
            .unwrap()
            .into(),
    );
    send_json(&mut ws, json!({"type":"subscribe","symbols":["GLOBX"]})).await;
    seen.insert(
        next_of_type(&mut ws, "subscribed").await["type"]
            .as_str()
            .unwrap()
            .into(),
    );
    send_json(&mut ws, json!({"type":"ping","id":1})).await;
    seen.insert(
        next_of_type(&mut ws, "pong").await["type"]
            .as_str()
            .unwrap()
            .into(),
    );
    send_json(&mut ws, json!({"type":"nonsense"})).await;
    seen.insert(
        next_of_type(&mut ws, "error").await["type"]
            .as_str()
            .unwrap()
            .into(),
    );
    let section = readme
        .split("**Server to client**")
        .nth(1)
        .and_then(|s| s.split("**Client to server").next())
        .expect("README has the server-to-client table");
    for row in section
        .lines()
        .filter(|l| l.starts_with("| `") && !l.starts_with("| `type`"))
    {
        let kind = row.split('`').nth(1).unwrap();
        assert!(
            seen.contains(kind),
            "README lists server message {kind:?}; a live session sent {seen:?}"
        );
    }
}
