//! A real headless Chromium for the page tests, driven over WebDriver (chromedriver +
//! fantoccini).
//!
//! [`Browser::launch`] starts chromedriver on a free loopback port with a fresh profile
//! directory, opens one session, and returns a guard: when it is dropped (even by a panicking
//! test) the session is ended, chromedriver is killed and any Chromium still running on our
//! profile is killed too, so a failed test leaks no process. One browser runs at a time in a
//! test binary ([`Browser::launch`] holds a lock), which keeps the tests light on a small
//! machine.
//!
//! Chromium and chromedriver are found on `PATH` (`chromium`, `chromedriver`) or through
//! `TICKERLAB_CHROMIUM` / `TICKERLAB_CHROMEDRIVER`. If they are missing the tests fail with
//! the command that installs them; `TICKERLAB_SKIP_BROWSER=1` skips them instead.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long a condition in the page may take before a test fails instead of hanging.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

/// The flags every run uses: headless, and nothing that reaches for the network on its own
/// (the test machines have no outside network; a background fetch would only add noise).
/// Tabs in the background run as in the foreground: a test that opens several pages in tabs
/// (the class view's) stands for several laptops, each showing its page.
const CHROMIUM_FLAGS: &[&str] = &[
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// Every pane's published figures (`data-*`), status line and log head, for a failure message:
/// what the page was doing when a wait gave up.
const PANES_STATE: &str = "return [...document.querySelectorAll('.pane')].map((p) => ({ \
    id: p.id, hidden: p.hidden, data: { ...p.dataset }, \
    status: p.querySelector('.status')?.textContent, \
    log: [...p.querySelectorAll('.log li')].slice(0, 3).map((li) => li.textContent) }));";

/// At most two browsers at a time in the test program: the page tests spend most of their
/// time waiting for ticks, so two overlap well, and more would crowd a 2-core machine.
static BROWSERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// How to start the browser.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// Window size in CSS pixels.
    pub window: (u32, u32),
    /// Accept self-signed TLS certificates (`--ignore-certificate-errors`), for https tests.
    pub accept_insecure_certs: bool,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        BrowserOptions {
            window: (1280, 800),
            accept_insecure_certs: false,
        }
    }
}

/// A running chromedriver + Chromium session. Dropping it cleans everything up.
pub struct Browser {
    pub client: Client,
    driver: Driver,
    /// Every error read from the console so far (chromedriver hands each entry out once).
    errors: std::sync::Mutex<Vec<String>>,
    _turn: tokio::sync::SemaphorePermit<'static>,
}

/// The chromedriver process and our profile directory; killed and removed on drop.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
    session: Option<String>,
}

impl Browser {
    /// Starts a browser, or returns `None` when `TICKERLAB_SKIP_BROWSER=1`.
    /// Panics with installation instructions when Chromium or chromedriver is missing.
    pub async fn launch(options: BrowserOptions) -> Option<Browser> {
        if std::env::var("TICKERLAB_SKIP_BROWSER").is_ok_and(|v| v == "1") {
            eprintln!("TICKERLAB_SKIP_BROWSER=1: skipping a browser test");
            return None;
        }
        let chromium = find_program("TICKERLAB_CHROMIUM", &["chromium", "chromium-browser"]);
        let chromedriver = find_program("TICKERLAB_CHROMEDRIVER", &["chromedriver"]);
        let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
            panic!(
                "the browser tests need Chromium and chromedriver, and did not find them.\n\
                 Install them (Debian/Ubuntu): sudo apt-get install chromium chromium-driver\n\
                 or point TICKERLAB_CHROMIUM and TICKERLAB_CHROMEDRIVER at them,\n\
                 or skip the browser tests explicitly with TICKERLAB_SKIP_BROWSER=1."
            );
        };
        let turn = BROWSERS
            .acquire()
            .await
            .expect("the semaphore is never closed");
        // The port is free when asked for, but the other tests of the program bind and
        // connect meanwhile and may take it first; chromedriver then exits at start-up, and
        // another free port is tried (a few times).
        let mut attempts = 0;
        let mut driver = loop {
            attempts += 1;
            let port = free_port();
            let profile = std::env::temp_dir().join(format!(
                "tickerlab-chromium-{}-{port}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&profile).expect("create a profile directory");
            let log = target_dir().join("chromedriver.log");
            let child = Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("could not start {}: {e}", chromedriver.display()));
            let mut driver = Driver {
                child,
                port,
                profile,
                session: None,
            };
            match driver.wait_until_listening() {
                Ok(()) => break driver,
                Err(why) if attempts < 5 => {
                    eprintln!("chromedriver did not start on port {port}: {why}; another port");
                }
                Err(why) => panic!("chromedriver did not start, five times: {why}"),
            }
        };

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", driver.profile.display()));
        args.push(format!(
            "--window-size={},{}",
            options.window.0, options.window.1
        ));
        if options.accept_insecure_certs {
            args.push("--ignore-certificate-errors".into());
        }
        let capabilities = json!({
            "browserName": "chrome",
            "acceptInsecureCerts": options.accept_insecure_certs,
            "goog:chromeOptions": { "binary": chromium, "args": args },
            // Keep every console message, so a test can fail on any JavaScript error.
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start Chromium: {e} (see {})",
                    target_dir().join("chromedriver.log").display()
                )
            });
        driver.session = client.session_id().await.ok().flatten();
        Some(Browser {
            client,
            driver,
            errors: std::sync::Mutex::new(Vec::new()),
            _turn: turn,
        })
    }

    /// Opens `url` and waits until the page's script has booted (`body[data-ready]`).
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
        self.wait_for("document.body.dataset.ready === 'true'", "the page to boot")
            .await;
    }

    /// Runs `script` (a function body: use `return`) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Runs `script` (a function body) asynchronously in the page: it ends by calling
    /// `arguments[arguments.length - 1]` with its result, which is returned.
    pub async fn js_async(&self, script: &str) -> Value {
        self.client
            .execute_async(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("async script failed: {e}\n{script}"))
    }

    /// Polls the JavaScript expression `condition` until it is truthy; returns its value.
    /// Fails after [`PAGE_WAIT`], saying what it waited for and the page's console errors.
    pub async fn wait_for(&self, condition: &str, what: &str) -> Value {
        let script = format!("return ({condition});");
        let start = Instant::now();
        loop {
            let value = self.js(&script).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            // A page that threw will not get there: say so now rather than at the timeout.
            let errors = self.console_errors().await;
            if !errors.is_empty() || start.elapsed() > PAGE_WAIT {
                let panes = self.js(PANES_STATE).await;
                panic!(
                    "waited {:?} for {what} ({condition}); console errors: {errors:#?}\n\
                     the panes at that moment: {panes:#}",
                    start.elapsed()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sets the checkbox matching a CSS selector to `on` with real clicks, and waits until it
    /// is: it clicks only while the box is the other way, so a click that the driver
    /// reported as failed but that landed (a busy machine) is not undone by a second one.
    pub async fn set_checked(&self, selector: &str, on: bool) {
        let state = format!("return document.querySelector('{selector}').checked;");
        let start = Instant::now();
        while self.js(&state).await != Value::Bool(on) {
            assert!(
                start.elapsed() < PAGE_WAIT,
                "{selector} is still not {}",
                if on { "checked" } else { "unchecked" }
            );
            self.click(selector).await;
            if self.js(&state).await != Value::Bool(on) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Clicks the element matching a CSS selector, once it can take the click: like a
    /// person, it waits (up to [`PAGE_WAIT`]) while the element is covered or not yet
    /// interactable, as it can be for a moment while a busy machine lays the page out again.
    pub async fn click(&self, selector: &str) {
        let start = Instant::now();
        loop {
            let clicked = self
                .client
                .find(Locator::Css(selector))
                .await
                .unwrap_or_else(|e| panic!("no element {selector}: {e}"))
                .click()
                .await;
            match clicked {
                Ok(()) => return,
                Err(e) => {
                    let message = e.to_string();
                    let not_yet = message.contains("click intercepted")
                        || message.contains("not interactable");
                    if !not_yet || start.elapsed() > PAGE_WAIT {
                        panic!("could not click {selector}: {e}");
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The visible text of the element matching a CSS selector.
    pub async fn text(&self, selector: &str) -> String {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no element {selector}: {e}"))
            .text()
            .await
            .expect("element text")
    }

    /// Every console message of level SEVERE so far (JavaScript errors, failed loads,
    /// Content-Security-Policy violations), read from chromedriver's browser log.
    pub async fn console_errors(&self) -> Vec<String> {
        let Some(session) = &self.driver.session else {
            return vec!["no WebDriver session id: cannot read the console".into()];
        };
        let url = format!(
            "http://127.0.0.1:{}/session/{session}/se/log",
            self.driver.port
        );
        let response = reqwest::Client::new()
            .post(url)
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .expect("read the browser log");
        let body: Value = response.json().await.expect("browser log is JSON");
        let entries = body["value"]
            .as_array()
            .unwrap_or_else(|| panic!("unexpected browser log answer: {body}"));
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        errors.extend(
            entries
                .iter()
                .filter(|e| e["level"] == "SEVERE")
                .map(|e| e["message"].as_str().unwrap_or_default().to_owned()),
        );
        errors.clone()
    }

    /// Fails the test if the page logged any error.
    pub async fn assert_no_console_errors(&self) {
        let errors = self.console_errors().await;
        assert!(errors.is_empty(), "console errors: {errors:#?}");
    }

    /// A screenshot of the whole page (the window is made as tall as the document), as PNG.
    pub async fn full_page_screenshot(&self, width: u32) -> Vec<u8> {
        let height = self
            .js("return Math.ceil(document.documentElement.scrollHeight);")
            .await
            .as_u64()
            .unwrap_or(800)
            .clamp(400, 8000) as u32;
        self.client
            .set_window_size(width, height + 200)
            .await
            .expect("resize");
        tokio::time::sleep(Duration::from_millis(500)).await; // let the charts redraw
        self.client.screenshot().await.expect("screenshot")
    }

    /// The end of every page test: fails it if the page logged any error, then quits.
    pub async fn finish(self) {
        self.assert_no_console_errors().await;
        self.quit().await;
    }

    /// Ends the session politely (Chromium exits); drop does the rest.
    pub async fn quit(mut self) {
        let client = self.client.clone();
        if client.close().await.is_ok() {
            self.driver.session = None;
        }
    }
}

impl Driver {
    fn wait_until_listening(&mut self) -> Result<(), String> {
        let start = Instant::now();
        // When something answers on the port that is not chromedriver.
        let mut foreign_since = None;
        loop {
            match self.status() {
                Status::Ready => return Ok(()),
                Status::Nobody => foreign_since = None,
                Status::Foreign => {
                    let since = *foreign_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(3) {
                        return Err("another process answers on its port".into());
                    }
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("it exited ({status})"));
            }
            assert!(
                start.elapsed() < PAGE_WAIT,
                "chromedriver did not listen on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Who answers `GET /status` on the port. Listening is not enough: `free_port` lets its
    /// port go before chromedriver binds it, and a server of a test running beside this one
    /// (they bind `127.0.0.1:0` too) can take it first; chromedriver then fails to bind, and
    /// the new-session request would go to that server.
    fn status(&self) -> Status {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return Status::Nobody;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "GET /status HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return Status::Foreign;
        }
        // chromedriver keeps the connection open after its answer: read until it is whole.
        let mut answer = Vec::new();
        let mut chunk = [0u8; 1024];
        while let Ok(n @ 1..) = stream.read(&mut chunk) {
            answer.extend_from_slice(&chunk[..n]);
            if String::from_utf8_lossy(&answer).contains("\"ready\":true") {
                return Status::Ready;
            }
        }
        Status::Foreign
    }

    /// `DELETE /session/{id}` over a plain blocking socket: drop cannot await.
    fn end_session(&self, session: &str) {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
        }
    }
}

/// What answers on chromedriver's port.
enum Status {
    /// chromedriver, ready for a session.
    Ready,
    /// Nothing listens yet.
    Nobody,
    /// Something that does not answer as chromedriver does (yet).
    Foreign,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.end_session(&session);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill_processes_using(&self.profile);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Kills any process whose command line names our profile directory: a Chromium that outlived
/// its chromedriver. Only ever matches processes this test started (the path is unique).
fn kill_processes_using(profile: &Path) {
    let needle = format!("--user-data-dir={}", profile.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let matches = cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == needle.as_bytes());
        if matches {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

fn find_program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `target/` of this workspace (where screenshots and the chromedriver log go).
pub fn target_dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let _ = std::fs::create_dir_all(&dir);
    dir
}
