//! The lesson never lies: the "try it" commands of the README and of every file in `docs/`
//! run against a live server, every route, flag and message type they name exists, and
//! every relative link and `#anchor` between them resolves.
//!
//! A shell block preceded by a line `<!-- try-it expect='TEXT' -->` is run with `bash` after
//! replacing `127.0.0.1:8080` with the test server's address (and `cargo run --example
//! client --` with the built terminal client); it must exit 0 and print TEXT (so a 404, a
//! wrong accept value or an empty answer fails the lesson, not just a crash). A block marked
//! `<!-- try-it tls expect='TEXT' -->` runs against a server started as
//! `--tls-self-signed --port 8443` would be, with its certificate written where that
//! server writes it.

use crate::common;
use common::example;
use common::{hello, next_of_type, send_json, spawn_app, test_config};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use tickerlab::tick::{ClientMessage, ServerMessage, Tick};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The README and every Markdown file in `docs/`, as (path from the repository root, text).
fn documents() -> Vec<(String, String)> {
    let mut docs: Vec<(String, String)> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("a docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| {
            let name = format!("docs/{}", path.file_name().unwrap().to_string_lossy());
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    docs.sort();
    docs.insert(0, ("README.md".into(), readme()));
    docs
}

/// Every document's text, one after the other.
fn all_text() -> String {
    documents()
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A shell block to run, and what it must print.
struct TryIt {
    script: String,
    expect: String,
    /// Marked `try-it tls`: runs against a `--tls-self-signed --port 8443` server.
    tls: bool,
}

/// The shell blocks marked `<!-- try-it [tls] expect='...' -->`.
fn try_it_blocks(text: &str) -> Vec<TryIt> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim().strip_prefix("<!-- try-it") else {
            continue;
        };
        let (tls, rest) = match rest.trim().strip_prefix("tls") {
            Some(rest) => (true, rest),
            None => (false, rest),
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
        blocks.push(TryIt {
            script: body.join("\n"),
            expect,
            tls,
        });
    }
    blocks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_it_commands_succeed_against_a_live_server() {
    let app = spawn_app(test_config()).await;
    let (tls_port, tls_dir) = start_self_signed_server();
    let client = example::client_binary().display().to_string();
    let blocks: Vec<TryIt> = documents()
        .iter()
        .flat_map(|(_, text)| try_it_blocks(text))
        .collect();
    assert!(
        blocks.len() >= 4,
        "the lesson has try-it boxes, found {}",
        blocks.len()
    );
    assert!(blocks.iter().any(|b| b.tls), "the lesson runs wss:// too");
    for TryIt {
        script: block,
        expect,
        ..
    } in blocks
    {
        let script = block
            .replace("cargo run --example client --", &client)
            .replace("127.0.0.1:8080", &app.addr.to_string())
            .replace("localhost:8080", &app.addr.to_string())
            .replace("localhost:8443", &format!("localhost:{tls_port}"))
            .replace("/tmp/tickerlab-tls-8443", &tls_dir.display().to_string());
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

/// Starts what `tickerlab --tls-self-signed --port 8443` starts, on a free port instead, and
/// writes its certificate where the binary would; returns the port and that directory.
fn start_self_signed_server() -> (u16, std::path::PathBuf) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let app = tickerlab::serve(
        tickerlab::Config {
            tls_self_signed: true,
            ..test_config()
        },
        listener,
    )
    .expect("serve over TLS");
    let port = app.local_addr().port();
    let dir = tickerlab::tls::SelfSigned::default_dir(port);
    match app.tls().expect("TLS is on").origin() {
        tickerlab::tls::Origin::SelfSigned(generated) => {
            generated.write_to(&dir).expect("write cert.pem");
        }
        other => panic!("expected a self-signed certificate, got {other:?}"),
    }
    tokio::spawn(app.run());
    (port, dir)
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
    let routes = routes(&all_text());
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
    // The table of options in docs/cli.md: rows starting with | `--flag`.
    let cli = std::fs::read_to_string(root().join("docs/cli.md")).expect("docs/cli.md");
    let table: BTreeSet<String> = cli
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .flat_map(|l| flags_in(l.split('|').nth(1).unwrap_or_default()))
        .collect();
    assert_eq!(
        table, app_flags,
        "docs/cli.md's option table must match `tickerlab --help`"
    );
    // Flags passed to the app in any document's commands (`cargo run --release -- --flag`)
    // exist. (The terminal client, `cargo run --example client -- ...`, has flags of its own.)
    let text = all_text();
    for line in text
        .lines()
        .filter(|l| l.contains("cargo run") && l.contains(" -- ") && !l.contains("--example"))
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
    let readme = all_text();
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
    let app = spawn_app(tickerlab::Config {
        class_key: Some("docs-class-key".into()),
        ..test_config()
    })
    .await;
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
    // The class view's: a blind-test page's vote is answered, and the reveal pushed.
    send_json(
        &mut ws,
        json!({"type":"report","panes":{"ws":true},"ws_letter":"A"}),
    )
    .await;
    send_json(&mut ws, json!({"type":"vote","answer":"B"})).await;
    seen.insert(
        next_of_type(&mut ws, "voted").await["type"]
            .as_str()
            .unwrap()
            .into(),
    );
    let mut class = app.ws("/class/ws?key=docs-class-key").await;
    send_json(&mut class, json!({"type":"reveal"})).await;
    seen.insert(
        next_of_type(&mut ws, "reveal").await["type"]
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

/// GitHub's anchor for a heading: lower case, spaces to hyphens, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_lowercase().next()?),
            _ => None,
        })
        .collect()
}

/// The anchors of a document's headings (outside code blocks), with GitHub's `-1`, `-2`
/// suffixes for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let base = anchor(line.trim_start_matches('#'));
        let mut name = base.clone();
        let mut n = 0;
        while seen.contains(&name) {
            n += 1;
            name = format!("{base}-{n}");
        }
        seen.insert(name);
    }
    seen
}

/// `](target)` links in a text, outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if in_code {
            continue;
        }
        for (i, _) in line.match_indices("](") {
            let rest = &line[i + 2..];
            if let Some(end) = rest.find(')') {
                found.push(rest[..end].to_owned());
            }
        }
    }
    found
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let docs = documents();
    let mut checked = 0;
    for (name, text) in &docs {
        let dir = Path::new(name).parent().unwrap_or(Path::new(""));
        for link in links(text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = match link.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (link.as_str(), None),
            };
            let target = if file.is_empty() {
                Path::new(name).to_owned()
            } else {
                dir.join(file)
            };
            let path = root().join(&target);
            assert!(
                path.exists(),
                "{name} links to {link}: {} does not exist",
                target.display()
            );
            if let Some(fragment) = fragment {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{name} links to {link}: {e}"));
                assert!(
                    anchors(&text).contains(fragment),
                    "{name} links to {link}: no heading with anchor #{fragment} in {}",
                    target.display()
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} links checked: is the map gone?"
    );
}

#[test]
fn every_docs_file_is_on_the_readmes_map() {
    let readme = readme();
    for (name, _) in documents().iter().skip(1) {
        assert!(
            readme.contains(&format!("]({name})")),
            "the README's map does not link {name}"
        );
    }
}

/// What a line-by-line reading of `text` finds outside fenced code blocks (each line that
/// starts with ``` opens or closes one): ATX headings and table delimiter rows. A writer
/// reads a Markdown file this way; the test below checks that a CommonMark parser agrees.
fn outline_by_lines(text: &str) -> (Vec<String>, usize, Vec<String>) {
    let (mut headings, mut tables, mut problems) = (Vec::new(), 0, Vec::new());
    let mut in_fence = false;
    for (n, line) in text.lines().enumerate() {
        if let Some(after) = line.trim_start().strip_prefix("```") {
            // An opening fence may carry an info string (`sh`); a closing one may not.
            if in_fence && !after.trim().is_empty() {
                problems.push(format!(
                    "line {}: text after a closing fence: {line}",
                    n + 1
                ));
            }
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            headings.push(line[hashes..].trim().to_owned());
        }
        let row = line.trim();
        if row.starts_with('|')
            && row.contains("---")
            && row.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
        {
            tables += 1;
        }
    }
    (headings, tables, problems)
}

/// Every Markdown file renders as written, as a CommonMark renderer (GitHub's included)
/// shows it: parsed with pulldown-cmark, it has every heading and every table a line-by-line
/// reading finds, no code block holds a heading (`## `) or a table row, and no closing fence
/// carries text (which makes it an opening one and swallows what follows as code).
#[test]
fn every_markdown_file_renders_its_headings_and_tables() {
    use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
    for (name, text) in documents() {
        let (headings, tables, mut problems) = outline_by_lines(&text);
        let (mut rendered_headings, mut rendered_tables) = (0, 0);
        let mut code: Option<String> = None;
        for event in Parser::new_ext(&text, Options::ENABLE_TABLES) {
            match event {
                Event::Start(Tag::Heading { .. }) => rendered_headings += 1,
                Event::Start(Tag::Table(_)) => rendered_tables += 1,
                Event::Start(Tag::CodeBlock(_)) => code = Some(String::new()),
                Event::Text(t) if code.is_some() => code.as_mut().unwrap().push_str(&t),
                Event::End(TagEnd::CodeBlock) => {
                    let block = code.take().unwrap_or_default();
                    for line in block.lines() {
                        let row = line.trim();
                        let heading = row.starts_with("## ") || row.starts_with("### ");
                        let table = row.starts_with("|---") || row.starts_with("| ---");
                        if heading || table {
                            problems.push(format!("a code block holds: {line}"));
                        }
                    }
                }
                _ => {}
            }
        }
        if rendered_headings != headings.len() {
            problems.push(format!(
                "{} headings read line by line, {rendered_headings} rendered: {headings:?}",
                headings.len()
            ));
        }
        if rendered_tables != tables {
            problems.push(format!(
                "{tables} tables read line by line, {rendered_tables} rendered"
            ));
        }
        assert!(
            problems.is_empty(),
            "{name} does not render as written:\n{problems:#?}"
        );
    }
}
