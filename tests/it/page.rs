//! GET / and /static: the page and its assets are served, and reference nothing off-site.
//!
//! Security headers: the browser is told to run only this server's scripts and to connect
//! only to this server, never to sniff content types, and to send no referrer.

use crate::common;
use common::{spawn_app, test_config};
use std::path::Path;

/// Every `src="..."`, `href="..."` and JS `import ... from '...'` target in `text`.
fn references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in ["src=\"", "href=\"", "from '", "from \"", "import('"] {
        for (start, _) in text.match_indices(marker) {
            let rest = &text[start + marker.len()..];
            if let Some(end) = rest.find(['"', '\'']) {
                found.push(rest[..end].to_owned());
            }
        }
    }
    found
}

fn is_local(reference: &str) -> bool {
    reference.starts_with('/') && !reference.starts_with("//") || reference.starts_with("./")
}

#[tokio::test]
async fn the_page_is_served_with_the_feed_settings() {
    let app = spawn_app(test_config()).await;
    let response = reqwest::get(app.http("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("data-tick-ms=\"20\""));
    assert!(html.contains("ACME,GLOBX,INITECH,UMBRL"));
    assert!(html.contains("Get price"));
    assert!(html.contains("id=\"pane-http\"") && html.contains("id=\"pane-ws\""));
}

#[tokio::test]
async fn every_reference_is_local_and_served() {
    let app = spawn_app(test_config()).await;
    let client = reqwest::Client::new();
    let html = client
        .get(app.http("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut queue: Vec<(String, String)> = references(&html)
        .into_iter()
        .map(|r| ("/".to_owned(), r))
        .collect();
    let mut fetched = std::collections::HashSet::new();
    assert!(!queue.is_empty());
    while let Some((base, reference)) = queue.pop() {
        assert!(
            is_local(&reference),
            "off-site reference {reference:?} in {base}"
        );
        let path = if let Some(relative) = reference.strip_prefix("./") {
            format!("{}{}", &base[..=base.rfind('/').unwrap()], relative)
        } else {
            reference
        };
        if !fetched.insert(path.clone()) {
            continue;
        }
        let response = client.get(app.http(&path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path} (referenced from {base})");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.text().await.unwrap();
        if path.ends_with(".js") {
            assert!(
                content_type.starts_with("text/javascript"),
                "{path}: {content_type}"
            );
            queue.extend(references(&body).into_iter().map(|r| (path.clone(), r)));
        }
    }
    assert!(
        fetched.iter().any(|p| p.ends_with("ws-pane.js")),
        "{fetched:?}"
    );
}

#[tokio::test]
async fn every_file_in_static_is_compiled_in_and_identical() {
    let app = spawn_app(test_config()).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty());
    for file in files {
        let relative = file
            .strip_prefix(&root)
            .unwrap()
            .to_str()
            .unwrap()
            .replace('\\', "/");
        let response = reqwest::get(app.http(&format!("/static/{relative}")))
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "static/{relative} is not in http::page::ASSETS"
        );
        assert_eq!(
            response.bytes().await.unwrap(),
            std::fs::read(&file).unwrap(),
            "{relative}"
        );
    }
    let missing = reqwest::get(app.http("/static/nope.js")).await.unwrap();
    assert_eq!(missing.status(), 404);
}

/// `/?blind` is the blind test: marked for the page's script, titled without naming a
/// transport, and without what is not in the test (the long polling and SSE panes, the pane
/// chooser), which is left out rather than hidden. (The browser tests check the document.)
#[tokio::test]
async fn the_blind_test_page_is_marked_and_names_no_transport_in_its_title() {
    let app = spawn_app(test_config()).await;
    let blind = reqwest::get(app.http("/?blind")).await.unwrap();
    assert_eq!(blind.status(), 200);
    let html = blind.text().await.unwrap();
    assert!(html.contains("data-blind=\"hidden\""), "{html}");
    let title = &html[html.find("<title>").unwrap()..html.find("</title>").unwrap()];
    assert!(
        !title.contains("WebSocket") && !title.contains("HTTP"),
        "{title}"
    );
    for left_out in ["pane-longpoll", "pane-sse", "pane-chooser"] {
        assert!(!html.contains(left_out), "{left_out} in {html}");
    }
    let plain = reqwest::get(app.http("/?utm=x")).await.unwrap();
    assert!(!plain.text().await.unwrap().contains("data-blind"));
}

#[tokio::test]
async fn the_page_carries_a_strict_content_security_policy() {
    let app = spawn_app(test_config()).await;
    let response = reqwest::get(app.http("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    let directive = |name: &str| -> String {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {csp}"))
            .to_owned()
    };
    assert_eq!(directive("default-src"), "default-src 'self'");
    assert_eq!(directive("script-src"), "script-src 'self'");
    assert_eq!(
        directive("connect-src"),
        format!("connect-src 'self' ws://{0} wss://{0}", app.addr)
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");

    // The policy forbids inline code, so the page must have none for it to work.
    let page = response.text().await.unwrap();
    for inline in [
        "<style",
        " style=",
        " onclick=",
        " onload=",
        " oninput=",
        " onchange=",
    ] {
        assert!(!page.contains(inline), "the page has inline {inline}");
    }
    for script in page.split("<script").skip(1) {
        let tag = &script[..script.find('>').unwrap()];
        assert!(
            tag.contains("src=\"/static/"),
            "inline or foreign script: <script{tag}>"
        );
    }
}

#[tokio::test]
async fn every_answer_carries_nosniff_and_only_the_page_carries_the_page_policies() {
    let app = spawn_app(test_config()).await;
    for path in [
        "/price",
        "/price?symbol=NOPE",
        "/healthz",
        "/metrics",
        "/nowhere",
        "/ws",
    ] {
        let response = reqwest::get(app.http(path)).await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        // A JSON or text answer is no document: a policy there would only add bytes to
        // every poll.
        assert!(!headers.contains_key("content-security-policy"), "{path}");
        assert!(!headers.contains_key("referrer-policy"), "{path}");
    }
}
