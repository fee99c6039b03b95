//! The class view (`/class`): the key, the pages' reports and votes, the reveal pushed to
//! every page, in a real Chromium with WebSocket clients from the test acting as more pages,
//! and across two instances through a real `redis-server`.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tickerlab::Config;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::common::browser::{Browser, BrowserOptions, target_dir};
use crate::common::redis_server::RedisServer;
use crate::common::{
    TestApp, Ws, close_of, hello, next_of_type, send_json, spawn_app, test_config,
};

const KEY: &str = "test-class-key";

/// How long the class view may take to show what the test made happen, on a busy machine.
const SETTLE: Duration = Duration::from_secs(20);

/// The bound on a reveal's push, far above the lesson's promise of a second, so that a test
/// on a machine whose cores are busy with something else checks delivery, not speed
/// (docs/contributing.md): each run prints the delays it measured.
const PUSHED: Duration = Duration::from_secs(5);

fn config() -> Config {
    Config {
        tick_ms: 100,
        class_key: Some(KEY.into()),
        ..test_config()
    }
}

/// The class view's socket, opened with the key.
async fn class_socket(app: &TestApp) -> Ws {
    app.ws(&format!("/class/ws?key={KEY}")).await
}

/// Reads class snapshots until one satisfies `ok`; fails after [`SETTLE`] with the last.
async fn class_until(ws: &mut Ws, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut last = Value::Null;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let next = tokio::time::timeout(remaining, next_of_type(ws, "class")).await;
        match next {
            Ok(view) if ok(&view) => return view,
            Ok(view) => last = view,
            Err(_) => panic!("waited {SETTLE:?} for the class view to show {what}; last: {last:#}"),
        }
    }
}

/// A WebSocket client acting as a page: no ticks (`symbols=` empty, as a page's control
/// socket), past its `hello`.
async fn page(app: &TestApp) -> Ws {
    let mut ws = app.ws("/ws?symbols=").await;
    hello(&mut ws).await;
    ws
}

/// What the test's page number `i` switches on, its blind-test letter, and its answer.
fn pattern(i: usize) -> (Value, Option<&'static str>, Option<&'static str>) {
    let panes = json!({
        "poll_ms": if i.is_multiple_of(2) { Some(500) } else { None },
        "longpoll": i.is_multiple_of(5),
        "sse": i.is_multiple_of(7),
        "ws": true,
    });
    let letter = match i % 4 {
        3 => None,
        n if n % 2 == 0 => Some("A"),
        _ => Some("B"),
    };
    let answer = match (letter, i % 3) {
        (None, _) | (_, 0) => None,
        (_, 1) => Some("A"),
        _ => Some("B"),
    };
    (panes, letter, answer)
}

/// Reports `pattern(i)` and votes: first the other letter, then its answer (a changed mind).
async fn take_part(ws: &mut Ws, i: usize) {
    let (panes, letter, answer) = pattern(i);
    let mut report = json!({"type": "report", "panes": panes});
    if let Some(letter) = letter {
        report["ws_letter"] = json!(letter);
    }
    send_json(ws, report).await;
    if let Some(answer) = answer {
        let other = if answer == "A" { "B" } else { "A" };
        send_json(ws, json!({"type": "vote", "answer": other})).await;
        assert_eq!(next_of_type(ws, "voted").await["answer"], other);
        send_json(ws, json!({"type": "vote", "answer": answer})).await;
        assert_eq!(next_of_type(ws, "voted").await["answer"], answer);
    }
}

/// The class view's expected figures for pages `0..n` of [`pattern`].
fn expected(n: usize) -> HashMap<&'static str, u64> {
    let mut counts: HashMap<&'static str, u64> = HashMap::new();
    for i in 0..n {
        let (panes, letter, answer) = pattern(i);
        *counts.entry("pages").or_default() += 1;
        *counts.entry("http").or_default() += u64::from(!panes["poll_ms"].is_null());
        *counts.entry("longpoll").or_default() += u64::from(panes["longpoll"] == true);
        *counts.entry("sse").or_default() += u64::from(panes["sse"] == true);
        *counts.entry("ws").or_default() += 1;
        if let Some(letter) = letter {
            *counts.entry("blind").or_default() += 1;
            match answer {
                Some("A") => *counts.entry("said_a").or_default() += 1,
                Some(_) => *counts.entry("said_b").or_default() += 1,
                None => *counts.entry("unanswered").or_default() += 1,
            }
            *counts.entry("right").or_default() += u64::from(answer == Some(letter));
        }
    }
    counts
}

fn matches(view: &Value, want: &HashMap<&'static str, u64>) -> bool {
    want.iter()
        .filter(|(k, _)| **k != "right")
        .all(|(k, v)| view[*k].as_u64() == Some(*v))
}

/// The test's pages while they wait for the reveal: each socket read on a task of its own, as
/// a browser reads a page's socket (so each answers the server's pings and is never dropped
/// as silent, however long the test takes to get to the reveal).
struct Listening {
    /// Per page: on the blind test or not, and its task (the reveal's delay, and the socket).
    tasks: Vec<(bool, PageTask)>,
    stop: tokio_util::sync::CancellationToken,
}

/// One page's reading task: the reveal's delay when it was told, and its socket.
type PageTask = tokio::task::JoinHandle<(Option<f64>, Ws)>;

/// How long a page may wait for the reveal, from the moment it starts listening: the whole
/// test, browsers waiting for their turn included.
const WHOLE_TEST: Duration = Duration::from_secs(240);

/// Starts reading every socket until the blind-test pages of [`pattern`] among `sockets`
/// receive `reveal` (the others are not on the test: they are not told, and read on until
/// [`Listening::reveals`] ends).
fn listen(sockets: Vec<Ws>) -> Listening {
    let stop = tokio_util::sync::CancellationToken::new();
    let tasks = sockets
        .into_iter()
        .enumerate()
        .map(|(i, mut ws)| {
            let blind = pattern(i).1.is_some();
            let stop = stop.clone();
            let task = tokio::spawn(async move {
                let reading = async {
                    loop {
                        let message = tokio::select! {
                            _ = stop.cancelled() => return None,
                            message = ws.next() => message,
                        };
                        let Some(Ok(Message::Text(text))) = message else {
                            assert!(
                                matches!(message, Some(Ok(_))),
                                "page {i} lost its socket: {message:?}"
                            );
                            continue;
                        };
                        let value: Value = serde_json::from_str(&text).expect("JSON");
                        if value["type"] == "reveal" {
                            assert!(blind, "page {i} is not on the blind test: {value}");
                            let at = value["at"].as_f64().expect("reveal.at");
                            return Some(tickerlab::tick::epoch_ms() - at);
                        }
                    }
                };
                let delay = tokio::time::timeout(WHOLE_TEST, reading)
                    .await
                    .unwrap_or_else(|_| panic!("page {i} was not told of the reveal"));
                (delay, ws)
            });
            (blind, task)
        })
        .collect();
    Listening { tasks, stop }
}

impl Listening {
    /// Waits until every blind-test page was told of the reveal; the delays from the reveal's
    /// server time to each page reading it (ms, one clock), and the sockets back.
    async fn reveals(self) -> (Vec<f64>, Vec<Ws>) {
        let (blind, others): (Vec<_>, Vec<_>) = self.tasks.into_iter().partition(|(b, _)| *b);
        let (mut delays, mut sockets) = (Vec::new(), Vec::new());
        for (_, task) in blind {
            let (delay, ws) = task.await.expect("a blind page's wait");
            delays.push(delay.expect("told of the reveal"));
            sockets.push(ws);
        }
        self.stop.cancel();
        for (_, task) in others {
            sockets.push(task.await.expect("another page's wait").1);
        }
        (delays, sockets)
    }
}

/// Without the key, or with a wrong one, the page and its socket answer 403 and say where
/// the key is; with it, the page is served and the socket pushes a snapshot at once.
#[tokio::test]
async fn a_missing_or_wrong_key_gets_403_on_the_page_and_the_socket() {
    let app = spawn_app(config()).await;
    for path in [
        "/class",
        "/class?key=",
        "/class?key=test-class-kez",
        "/class?key=test-class-key2",
    ] {
        let response = reqwest::get(app.http(path)).await.unwrap();
        assert_eq!(response.status(), 403, "{path}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains("class key") && body.contains("--class-key"),
            "{body}"
        );
        assert!(!body.contains(KEY), "a 403 never shows the key: {body}");
    }
    let page = reqwest::get(app.http(&format!("/class?key={KEY}")))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(page.text().await.unwrap().contains("class-view.js"));

    for path in ["/class/ws", "/class/ws?key=wrong-key-1"] {
        match tokio_tungstenite::connect_async(app.ws_url(path)).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{path}");
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned();
                assert!(body.contains("class key"), "{body}");
            }
            other => panic!("{path}: expected a 403, got {other:?}"),
        }
    }
    let mut class = class_socket(&app).await;
    let view = next_of_type(&mut class, "class").await;
    assert_eq!(view["pages"], 0, "{view}");
    assert!(view["revealed_at"].is_null(), "{view}");
}

/// A page votes once (its latest answer counts), cannot vote without being on the blind
/// test, cannot reveal, and a page that floods answers is closed like any other flood.
#[tokio::test]
async fn a_page_cannot_vote_twice_reveal_or_flood() {
    let app = spawn_app(config()).await;
    let mut class = class_socket(&app).await;
    let mut student = page(&app).await;
    send_json(&mut student, json!({"type": "vote", "answer": "A"})).await;
    assert_eq!(
        next_of_type(&mut student, "error").await["code"],
        "not_blind"
    );
    send_json(
        &mut student,
        json!({"type": "report", "panes": {"poll_ms": 5}}),
    )
    .await;
    assert_eq!(
        next_of_type(&mut student, "error").await["code"],
        "bad_report"
    );
    send_json(
        &mut student,
        json!({"type": "report", "panes": {"poll_ms": 1000, "ws": true}, "ws_letter": "B"}),
    )
    .await;
    for answer in ["A", "A", "B", "A"] {
        send_json(&mut student, json!({"type": "vote", "answer": answer})).await;
        assert_eq!(next_of_type(&mut student, "voted").await["answer"], answer);
    }
    class_until(&mut class, "one page that said A, once", |v| {
        v["pages"] == 1 && v["said_a"] == 1 && v["said_b"] == 0 && v["unanswered"] == 0
    })
    .await;
    // Free text goes nowhere: an unknown letter is refused, and the page stays counted once.
    send_json(&mut student, json!({"type": "vote", "answer": "<b>C</b>"})).await;
    assert_eq!(
        next_of_type(&mut student, "error").await["code"],
        "bad_message"
    );

    send_json(&mut student, json!({"type": "reveal"})).await;
    let refused = next_of_type(&mut student, "error").await;
    assert_eq!(refused["code"], "not_allowed", "{refused}");
    let view = class_until(&mut class, "the same tally", |v| v["pages"] == 1).await;
    assert!(
        view["revealed_at"].is_null(),
        "a page cannot reveal: {view}"
    );
    assert!(
        view.get("right_after_reveal").is_none() && view.get("right").is_none(),
        "no score before the reveal: {view}"
    );

    // Answers are frames like any other: a flood is closed with 1008.
    let mut flooder = page(&app).await;
    send_json(
        &mut flooder,
        json!({"type": "report", "panes": {"ws": true}, "ws_letter": "A"}),
    )
    .await;
    let vote = Message::text(json!({"type": "vote", "answer": "A"}).to_string());
    for _ in 0..200 {
        if flooder.send(vote.clone()).await.is_err() {
            break;
        }
    }
    let (code, reason) = close_of(&mut flooder).await;
    assert_eq!(code, 1008, "{reason}");
    class_until(
        &mut class,
        "the flooder gone, the student still counted once",
        |v| v["pages"] == 1 && v["said_a"] == 1,
    )
    .await;
}

/// The whole lesson in a real browser: three blind-test pages in Chromium tabs and 200
/// WebSocket clients acting as pages report their panes and vote; the class view (in its own
/// Chromium, at projector size) counts them per transport and tallies the answers; its
/// Reveal reaches every page, and each tab reveals by itself and measures the push on its
/// clock.
#[tokio::test]
async fn the_class_view_counts_tallies_and_reveals_to_every_page() {
    // Both browsers first: the program runs at most two at a time, and the pages below must
    // not wait for a turn once they are connected.
    let Some(students) = Browser::launch(BrowserOptions::default()).await else {
        return;
    };
    let Some(projector) = Browser::launch(BrowserOptions {
        window: (1280, 720),
        ..BrowserOptions::default()
    })
    .await
    else {
        return;
    };
    let app = spawn_app(config()).await;
    const TABS: usize = 3;
    const CLIENTS: usize = 200;
    let mut handles = Vec::new();
    for tab in 0..TABS {
        if tab > 0 {
            let new = students.client.new_window(true).await.expect("new tab");
            students
                .client
                .switch_to_window(new.handle.clone())
                .await
                .expect("switch");
            handles.push(new.handle);
        } else {
            handles.push(students.client.window().await.expect("window"));
        }
        students.open(&app.http("/?blind")).await;
        // Tab 0 says A, tab 1 says B, tab 2 does not answer.
        if let Some(letter) = ["A", "B"].get(tab) {
            students
                .click(&format!(".answer[data-answer={letter}]"))
                .await;
            students
                .wait_for(
                    "document.querySelector('.answer-state').textContent.includes('server has your answer')",
                    "the server's `voted`",
                )
                .await;
        }
    }
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let mut ws = page(&app).await;
        take_part(&mut ws, i).await;
        clients.push(ws);
    }
    let listening = listen(clients);
    let mut want = expected(CLIENTS);
    for key in ["pages", "http", "ws", "blind"] {
        *want.entry(key).or_default() += TABS as u64;
    }
    *want.entry("said_a").or_default() += 1;
    *want.entry("said_b").or_default() += 1;
    *want.entry("unanswered").or_default() += 1;

    projector
        .open(&app.http(&format!("/class?key={KEY}")))
        .await;
    let condition = format!(
        "(() => {{ const d = document.body.dataset; const want = {}; \
           const names = {{ pages: 'pages', http: 'http', longpoll: 'longpoll', sse: 'sse', ws: 'ws', blind: 'blind', said_a: 'saidA', said_b: 'saidB', unanswered: 'unanswered' }}; \
           return Object.entries(want).every(([k, v]) => k === 'right' || Number(d[names[k]]) === v) && d; }})()",
        serde_json::to_string(&want).unwrap()
    );
    projector
        .wait_for(&condition, "the class view's counts to match the pages")
        .await;
    // The 1000 ms polling of the three tabs and the 500 ms of half the clients.
    let intervals = projector.text("#intervals").await;
    assert!(
        intervals.contains("1000 ms: 3") && intervals.contains(&format!("500 ms: {}", CLIENTS / 2)),
        "{intervals}"
    );
    projector
        .wait_for(
            "Number(document.querySelector('#cost tr:nth-child(4) td').textContent) > 0",
            "the WebSocket's messages per second in the cost table",
        )
        .await;
    // A projector's 1280x720 is the page's viewport: the window is sized around it.
    let chrome = projector
        .js("return window.outerHeight - window.innerHeight;")
        .await
        .as_u64()
        .unwrap_or(0);
    projector
        .client
        .set_window_size(1280, 720 + chrome as u32)
        .await
        .expect("resize");
    let fits = projector
        .wait_for(
            "window.innerWidth === 1280 && window.innerHeight === 720 && [document.documentElement.scrollHeight <= window.innerHeight, document.documentElement.scrollWidth <= window.innerWidth,              [...document.querySelectorAll('.class-card')].every((c) => c.scrollHeight <= c.clientHeight && c.scrollWidth <= c.clientWidth)]",
            "the class view laid out at 1280x720",
        )
        .await;
    assert_eq!(
        fits,
        json!([true, true, true]),
        "no scrolling at 1280x720, nothing cut off in a card: {fits}"
    );
    let png = projector.client.screenshot().await.expect("screenshot");
    std::fs::write(target_dir().join("tickerlab-class.png"), &png).expect("save the screenshot");
    if std::env::var("TICKERLAB_WRITE_DOCS").is_ok_and(|v| v == "1") {
        let img = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img");
        std::fs::create_dir_all(&img).expect("docs/img");
        std::fs::write(img.join("class-view.png"), &png).expect("write docs/img/class-view.png");
    }

    projector.click("#reveal").await;
    let (delays, _clients) = listening.reveals().await;
    let mut right = want["right"];
    let mut tab_delays = Vec::new();
    for (tab, handle) in handles.iter().enumerate() {
        students
            .client
            .switch_to_window(handle.clone())
            .await
            .expect("switch");
        let state = students
            .wait_for(
                "document.body.dataset.blind === 'revealed' && document.body.dataset.revealedBy === 'class' && document.body.dataset.revealDelayMs",
                "the tab revealed by the class",
            )
            .await;
        let delay: f64 = state
            .as_str()
            .unwrap_or_default()
            .parse()
            .expect("a delay in ms");
        tab_delays.push(delay);
        // Which letter was the WebSocket here, now that the page says.
        let ws_letter = students
            .js("return [...document.querySelectorAll('.pane')].find((p) => p.querySelector('h2').innerText.includes('WebSocket')).dataset.letter;")
            .await;
        if Some(ws_letter.as_str().unwrap_or_default()) == ["A", "B"].get(tab).copied() {
            right += 1;
        }
        assert!(
            students
                .js("return [...document.querySelectorAll('.answer')].every((b) => b.disabled);")
                .await
                == json!(true),
            "no answer after the reveal"
        );
    }
    let worst = delays.iter().copied().fold(0.0, f64::max);
    println!(
        "reveal: tabs {tab_delays:?} ms (on their clocks); {CLIENTS} clients, slowest {worst:.1} ms"
    );
    // Measured on the pages' clocks from the server's reveal time (one machine: one clock).
    // The promise is "within a second"; the bound is [`PUSHED`], for a busy machine.
    assert!(
        tab_delays
            .iter()
            .chain([&worst])
            .all(|d| *d < PUSHED.as_millis() as f64),
        "the reveal took {tab_delays:?} ms to the tabs, {worst} ms to the slowest client"
    );
    assert!(
        worst < 5000.0,
        "the slowest client saw the reveal after {worst} ms"
    );
    projector
        .wait_for(
            &format!("document.body.dataset.revealed === 'true' && document.body.dataset.right === '{right}'"),
            "the class view to show how many were right",
        )
        .await;
    assert!(
        projector
            .text("#right")
            .await
            .contains(&format!("{right} of"))
    );
    students.finish().await;
    projector.finish().await;
}

/// Two instances behind one Redis: pages on each, the class view on one of them counts
/// both, and its reveal reaches the pages of the other.
#[tokio::test]
async fn with_redis_the_class_spans_two_instances() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let shared = |publisher: bool| Config {
        tick_ms: 50,
        workers: Some(1),
        redis: Some(redis.url()),
        feed_publisher: publisher,
        ..config()
    };
    let first = spawn_app(shared(true)).await;
    let second = spawn_app(shared(false)).await;
    const EACH: usize = 20;
    let mut sockets = Vec::new();
    for i in 0..2 * EACH {
        let app = if i < EACH { &first } else { &second };
        let mut ws = page(app).await;
        take_part(&mut ws, i).await;
        sockets.push(ws);
    }
    let listening = listen(sockets);
    let want = expected(2 * EACH);
    let mut class = class_socket(&second).await;
    let view = class_until(&mut class, "both instances' pages and answers", |v| {
        v["instances"] == 2 && matches(v, &want)
    })
    .await;
    assert!(view.get("right_after_reveal").is_none(), "{view}");
    send_json(&mut class, json!({"type": "reveal"})).await;
    let (delays, _sockets) = listening.reveals().await;
    println!(
        "reveal across two instances: slowest page {:.1} ms",
        delays.iter().copied().fold(0.0, f64::max)
    );
    class_until(&mut class, "how many were right, on both", |v| {
        !v["revealed_at"].is_null() && v["right_after_reveal"].as_u64() == Some(want["right"])
    })
    .await;
}

/// The comparison page (`/`) with its WebSocket pane off still counts: it holds a control
/// socket of its own, subscribed to nothing, and reports long polling and SSE when they run;
/// once the pane is back, the page's one socket is the pane's again.
#[tokio::test]
async fn a_page_without_its_websocket_pane_still_reports_over_one_control_socket() {
    let Some(browser) = Browser::launch(BrowserOptions::default()).await else {
        return;
    };
    let app = spawn_app(config()).await;
    let mut class = class_socket(&app).await;
    browser.open(&app.http("/")).await;
    class_until(&mut class, "the page, with its WebSocket pane", |v| {
        v["pages"] == 1 && v["ws"] == 1 && v["blind"] == 0
    })
    .await;
    // Set, not toggled: a click retried on a busy machine would switch a pane back on.
    let choose = |kind: &str, on: bool| {
        format!(
            "const box = document.querySelector('#pane-chooser input[value={kind}]'); \
             if (box.checked !== {on}) {{ box.checked = {on}; box.dispatchEvent(new Event('change')); }} return true;"
        )
    };
    browser.js(&choose("ws", false)).await;
    browser.js(&choose("longpoll", true)).await;
    browser.js(&choose("sse", true)).await;
    // The scoreboard takes the shown panes in (and lets the hidden one go) with a redraw that
    // moves the page: the buttons are pressed after it, or a click can land where one was.
    browser
        .wait_for(
            "(() => { const row = (p) => document.querySelector(`#scoreboard tr[data-pane=${p}]`); \
             return !row('longpoll').hidden && !row('sse').hidden && row('ws').hidden; })()",
            "the scoreboard with the long-polling and SSE rows, without the WebSocket's",
        )
        .await;
    browser.click("#pane-longpoll .start").await;
    browser
        .wait_for(
            "document.querySelector('#scoreboard tr[data-pane=longpoll] td[data-column=count]').dataset.value !== ''",
            "the long-polling pane's figures on the scoreboard",
        )
        .await;
    browser.click("#pane-sse .connect").await;
    class_until(
        &mut class,
        "long polling and SSE on, the WebSocket pane off",
        |v| v["pages"] == 1 && v["ws"] == 0 && v["longpoll"] == 1 && v["sse"] == 1,
    )
    .await;
    // One WebSocket open for the page (its control socket) and the class view's.
    crate::common::wait_for_metric(&app, crate::common::WS_OPEN, |n| n == 2).await;
    browser.js(&choose("ws", true)).await;
    class_until(&mut class, "the WebSocket pane back", |v| {
        v["pages"] == 1 && v["ws"] == 1
    })
    .await;
    crate::common::wait_for_metric(&app, crate::common::WS_OPEN, |n| n == 2).await;
    browser.finish().await;
}

/// The binary prints the class view's full URL, with a random key, after the URLs scripts
/// read by position; the URL opens the view and the same path without the key does not.
#[tokio::test]
async fn the_binary_prints_the_class_views_url_with_a_random_key() {
    let (_child, addr, mut lines) = crate::common::start_binary(&[]).await;
    let url = crate::common::within("class view's line", async {
        loop {
            let line = lines
                .next_line()
                .await
                .expect("read stdout")
                .expect("the class view's line");
            if let Some(url) = line.strip_prefix("class view (for the instructor's projector): ") {
                break url.to_owned();
            }
        }
    })
    .await;
    let key = url
        .strip_prefix(&format!("http://{addr}/class?key="))
        .unwrap_or_else(|| panic!("the line names this server's /class: {url}"));
    assert_eq!(key.len(), 32, "a random key of 16 bytes in hex: {key}");
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    let other = format!("http://{addr}/class?key={}", "0".repeat(32));
    assert_eq!(reqwest::get(&other).await.unwrap().status(), 403);
}

/// The cost per transport is measured: polling requests show up under polling, with their
/// bytes both ways (in `/metrics` and on the class view), and nothing under long polling.
#[tokio::test]
async fn the_cost_per_transport_counts_each_transports_requests_and_bytes() {
    let app = spawn_app(config()).await;
    let mut class = class_socket(&app).await;
    let client = reqwest::Client::new();
    let mut body_bytes = 0;
    for _ in 0..20 {
        let response = client.get(app.http("/price")).send().await.unwrap();
        body_bytes += response.bytes().await.unwrap().len() as u64;
    }
    let text = crate::common::metrics_text(&app).await;
    let out = crate::common::metric(
        &text,
        "tickerlab_bytes_total{transport=\"polling\",direction=\"out\"}",
    );
    let read = crate::common::metric(
        &text,
        "tickerlab_bytes_total{transport=\"polling\",direction=\"in\"}",
    );
    assert!(
        out > body_bytes,
        "the answers' heads and bodies: {out} > {body_bytes}"
    );
    assert!(read >= 20 * 30, "20 request heads read: {read}");
    let view = class_until(&mut class, "polling's cost", |v| {
        v["cost"]["transports"][0]["per_sec"].as_f64() > Some(0.0)
    })
    .await;
    let polling = &view["cost"]["transports"][0];
    assert!(polling["out_bytes"].as_f64() > Some(0.0), "{view}");
    assert!(polling["in_bytes"].as_f64() > Some(0.0), "{view}");
    assert_eq!(
        view["cost"]["transports"][1]["per_sec"], 0.0,
        "no long polls: {view}"
    );
    assert_eq!(view["transports"][0], "HTTP polling");
    assert!(
        view["cost"]["cpu"].as_f64() > Some(0.0),
        "the process used CPU: {view}"
    );
}
