//! The page's side of issue 14: `SeqTracker` decides "the server restarted" by a new run id,
//! not by a lower seq, in a real headless Chromium importing the page's own module. Needs
//! `chromium` and `chromedriver` (see tests/common/browser.rs); `TICKERLAB_SKIP_BROWSER=1`
//! skips it.

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::{Browser, BrowserOptions};
use common::{spawn_app, test_config};

#[tokio::test]
async fn seq_tracker_starts_a_new_series_on_a_new_run_and_ignores_a_lagging_seq() {
    let Some(browser) = Browser::launch(BrowserOptions::default()).await else {
        return;
    };
    let app = spawn_app(test_config()).await;
    browser.open(&app.http("/")).await;
    let result = browser.js_async(
            r#"
            const done = arguments[arguments.length - 1];
            import('/static/js/stats.js').then((stats) => {
              const t = new stats.SeqTracker();
              // Run a: 40, 41, then 13 from an instance that lags (same run: not shown, not
              // a restart), 42; then run b starts afresh at 1 (a restart), 2, 4.
              const shown = [[40, 'a'], [41, 'a'], [13, 'a'], [42, 'a'], [1, 'b'], [2, 'b'], [4, 'b']]
                .map(([seq, run]) => t.observe(seq, run));
              done({ shown, restarts: t.restarts, missed: t.missed, seen: t.seen });
            }, (error) => done({ error: String(error) }));
            "#,
        )
        .await;
    assert_eq!(
        result,
        serde_json::json!({
            "shown": [true, true, false, true, true, true, true],
            "restarts": 1,
            // 3 is the only gap inside a run; nothing is counted across runs.
            "missed": 1,
            "seen": 6,
        })
    );
}
