//! Security headers: the browser is told to run only this server's scripts and to connect
//! only to this server, never to sniff content types, and to send no referrer.

mod common;

use common::{spawn_app, test_config};

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
