//! The Redis backplane against a real `redis-server`: one publisher, front-ends, real
//! WebSocket and HTTP clients, and Redis killed and restarted under them.
//!
//! Each test starts its own `redis-server` on a free loopback port (no persistence) and stops
//! it when the test ends, pass or fail. Without `redis-server` these tests fail, saying how
//! to install it; `TICKERLAB_SKIP_REDIS=1` skips them on purpose.

use crate::common;
use common::redis_server;
use common::{TestApp, WAIT, Ws, hello, spawn_app, test_config};
use futures_util::StreamExt;
use redis_server::{RedisServer, free_port};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;
use tickerlab::Config;
use tickerlab::tick::Tick;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// How long a recovery (reconnecting after a Redis restart, noticing a stopped publisher)
/// may take on a loaded machine before the test fails.
const RECOVER: Duration = Duration::from_secs(20);

/// Ticks every 50 ms: enough to see many, light on a shared 2-core machine.
fn base_config(url: &str) -> Config {
    Config {
        tick_ms: 50,
        workers: Some(1),
        redis: Some(url.to_owned()),
        ..test_config()
    }
}

fn publisher_config(url: &str) -> Config {
    Config {
        feed_publisher: true,
        ..base_config(url)
    }
}

async fn get(app: &TestApp, path: &str) -> (u16, String) {
    let response = tokio::time::timeout(WAIT, reqwest::get(app.http(path)))
        .await
        .expect("request timed out")
        .expect("request failed");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

async fn health(app: &TestApp) -> Value {
    let (status, body) = get(app, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("healthz is JSON")
}

/// Polls `/healthz` until `feed` satisfies `ok`; fails after [`RECOVER`] naming `what`.
async fn wait_for_feed(app: &TestApp, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + RECOVER;
    loop {
        let health = health(app).await;
        if ok(&health["feed"]) {
            return health;
        }
        assert!(Instant::now() < deadline, "{what}: still {health}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn connected(feed: &Value) -> bool {
    feed["redis"] == "connected" && feed["stale"] == false
}

/// The next tick on the socket as (parsed, raw text), skipping other messages.
async fn next_tick(ws: &mut Ws) -> (Tick, String) {
    let tick = async {
        loop {
            let text = common::next_text(ws).await;
            if let Ok(tick) = serde_json::from_str::<Tick>(&text) {
                return (tick, text);
            }
        }
    };
    common::within("tick", tick).await
}

/// Every tick a socket received, by symbol then seq, raw text kept.
type Received = BTreeMap<String, BTreeMap<u64, String>>;

/// Reads ticks into `received` until every symbol in `symbols` reached `until_seq`; asserts on
/// the way that each symbol's seqs only go up (in order, no duplicates).
async fn collect(ws: &mut Ws, received: &mut Received, symbols: &[&str], until_seq: u64) {
    loop {
        let done = symbols.iter().all(|s| {
            received
                .get(*s)
                .and_then(|m| m.keys().next_back())
                .is_some_and(|seq| *seq >= until_seq)
        });
        if done {
            return;
        }
        let (tick, text) = next_tick(ws).await;
        let by_seq = received.entry(tick.symbol.clone()).or_default();
        if let Some(last) = by_seq.keys().next_back() {
            assert!(
                tick.seq > *last,
                "{}: seq {} after {last}: out of order or repeated",
                tick.symbol,
                tick.seq
            );
        }
        by_seq.insert(tick.seq, text);
    }
}

#[tokio::test]
async fn front_ends_serve_the_publishers_ticks_byte_for_byte() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let publisher = spawn_app(publisher_config(&redis.url())).await;
    let front_ends = [
        spawn_app(base_config(&redis.url())).await,
        spawn_app(base_config(&redis.url())).await,
    ];
    for app in &front_ends {
        wait_for_feed(app, "front-end following the publisher", connected).await;
    }

    // One client on each instance, the publisher's own included.
    let symbols = ["ACME", "GLOBX"];
    let mut sockets = Vec::new();
    for app in [&publisher, &front_ends[0], &front_ends[1]] {
        let mut ws = app.ws("/ws?symbols=ACME,GLOBX").await;
        let hello = hello(&mut ws).await;
        sockets.push((ws, hello));
    }
    assert_eq!(sockets[0].1["feed"]["source"], "local");
    assert_eq!(sockets[0].1["feed"]["redis"], "connected");
    for (_, hello) in &sockets[1..] {
        assert_eq!(hello["feed"]["source"], "redis", "{hello}");
        assert_eq!(hello["feed"]["stale"], false, "{hello}");
    }

    // Same (symbol, seq) means the same bytes everywhere: a front-end serialises the tick it
    // parsed from the publisher's text, and gets the publisher's text back.
    // A reader may skip a tick if it falls behind (latest value wins), so compare what two
    // clients both received, and read on, 30 ticks at a time, until the publisher's client
    // and each front-end's have 15 ticks of each symbol in common.
    let start = publisher.feed.latest().ticks[0].tick.seq;
    let mut until = start;
    let mut received = vec![Received::new(); sockets.len()];
    let deadline = Instant::now() + RECOVER;
    loop {
        until += 30;
        for ((ws, _), received) in sockets.iter_mut().zip(&mut received) {
            collect(ws, received, &symbols, until).await;
        }
        let mut fewest = u64::MAX;
        for symbol in symbols {
            let on = |i: usize| &received[i][symbol];
            for other in 1..3 {
                let mut common = 0;
                for (seq, text) in on(other) {
                    if let Some(expected) = on(0).get(seq) {
                        assert_eq!(text, expected, "{symbol} seq {seq} differs");
                        common += 1;
                    }
                }
                fewest = fewest.min(common);
            }
        }
        if fewest >= 15 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {fewest} ticks of a symbol seen by both the publisher's client and a \
             front-end's, up to seq {until}"
        );
    }

    // Front-ends serialise each tick they adopt, once: at most one per symbol per tick of
    // the publisher, however many clients they have.
    for app in &front_ends {
        let adopted = app.feed.serialisations();
        assert!(adopted > 0);
        assert!(
            adopted <= publisher.feed.serialisations(),
            "a front-end adopted {adopted} texts, more than the publisher made"
        );
    }

    // Stop the publisher: both front-ends keep its last tick, agree on it byte for byte,
    // and say their prices are stale.
    publisher.stopper.stop().await;
    for app in &front_ends {
        wait_for_feed(app, "stale after the publisher stopped", |f| {
            f["stale"] == true && f["redis"] == "connected"
        })
        .await;
    }
    // Each front-end applies the publisher's last ticks in its own time: wait until both
    // serve the same one (a front-end that lost a tick never does, and fails here).
    let front_ends = &front_ends;
    let price = common::wait_for(
        "both front-ends serving the same last tick",
        || async move {
            let (status_a, price_a) = get(&front_ends[0], "/price?symbol=GLOBX").await;
            let (status_b, price_b) = get(&front_ends[1], "/price?symbol=GLOBX").await;
            assert_eq!((status_a, status_b), (200, 200), "{price_a} {price_b}");
            (price_a == price_b).then_some(price_a)
        },
    )
    .await;
    let tick: Tick = serde_json::from_str(&price).expect("a tick");
    assert!(tick.seq >= until);
    assert!(tick.seq <= publisher.feed.latest().ticks[1].tick.seq);
}

#[tokio::test]
async fn a_redis_restart_is_survived_with_stale_prices_then_resumes() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let publisher = spawn_app(publisher_config(&redis.url())).await;
    let front_end = spawn_app(base_config(&redis.url())).await;
    wait_for_feed(&front_end, "front-end following the publisher", connected).await;
    let mut ws = front_end.ws("/ws?symbols=ACME").await;
    hello(&mut ws).await;
    let mut last_seq = 0;
    for _ in 0..5 {
        let (tick, _) = next_tick(&mut ws).await;
        assert!(tick.seq > last_seq);
        last_seq = tick.seq;
    }

    redis.kill();
    wait_for_feed(&front_end, "stale while Redis is down", |f| {
        f["stale"] == true && f["redis"] == "down"
    })
    .await;
    wait_for_feed(&publisher, "publisher noticing Redis is down", |f| {
        f["redis"] == "down" && f["stale"] == false
    })
    .await;
    // Still serving the last tick, over HTTP and to a socket opened during the outage.
    let (status, body) = get(&front_end, "/price?symbol=ACME").await;
    assert_eq!(status, 200, "{body}");
    let held: Tick = serde_json::from_str(&body).expect("a tick");
    assert!(held.seq >= last_seq);
    let mut late = front_end.ws("/ws?symbols=ACME").await;
    let late_hello = hello(&mut late).await;
    assert_eq!(late_hello["feed"]["stale"], true, "{late_hello}");
    let (first, _) = next_tick(&mut late).await;
    assert_eq!(
        first.seq, held.seq,
        "a new socket gets the held tick at once"
    );

    redis.restart();
    wait_for_feed(&front_end, "resuming after Redis restarted", connected).await;
    wait_for_feed(&publisher, "publisher publishing again", |f| {
        f["redis"] == "connected"
    })
    .await;
    // The socket that lived through the outage resumes, seq still only going up.
    let resumed_from = held.seq;
    loop {
        let (tick, _) = next_tick(&mut ws).await;
        assert!(tick.seq > last_seq, "seq {} after {last_seq}", tick.seq);
        last_seq = tick.seq;
        if tick.seq > resumed_from + 3 {
            break;
        }
    }
    let (status, body) = get(&front_end, "/price?symbol=ACME").await;
    assert_eq!(status, 200);
    let now: Tick = serde_json::from_str(&body).expect("a tick");
    assert!(now.seq > resumed_from);
}

#[tokio::test]
async fn a_second_publisher_is_refused_and_a_replacement_continues_seq() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let first = spawn_app(publisher_config(&redis.url())).await;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let refused = tickerlab::serve(publisher_config(&redis.url()), listener)
        .err()
        .expect("a second publisher must not start");
    let message = refused.to_string();
    assert!(
        message.contains("another feed publisher is running"),
        "{message}"
    );
    assert!(message.contains(&first.addr.to_string()), "{message}");
    // The first one carries on.
    let health = health(&first).await;
    assert_eq!(health["feed"]["redis"], "connected", "{health}");

    // A front-end started after the publisher stopped serves its last tick at once (from
    // the latest key) and says it is stale: nothing live is arriving.
    first.stopper.stop().await;
    let front_end = spawn_app(base_config(&redis.url())).await;
    wait_for_feed(&front_end, "connected but stale: no publisher", |f| {
        f["redis"] == "connected" && f["stale"] == true
    })
    .await;
    let (status, body) = get(&front_end, "/price").await;
    assert_eq!(status, 200, "{body}");
    let last: Tick = serde_json::from_str(&body).expect("a tick");
    assert!(last.seq >= 1);

    // Once the stopped publisher's lease expires, a replacement starts and continues the
    // numbering, so the front-end's clients see seq go on rising.
    let mut ws = front_end.ws("/ws?symbols=ACME").await;
    hello(&mut ws).await;
    let (held, _) = next_tick(&mut ws).await;
    assert_eq!(held.seq, last.seq);
    let deadline = Instant::now() + RECOVER;
    let _replacement = loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        match tickerlab::serve(publisher_config(&redis.url()), listener) {
            Ok(app) => {
                let stopper = app.stopper();
                tokio::spawn(app.run());
                break stopper;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "replacement refused: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let (next, _) = next_tick(&mut ws).await;
    assert!(
        next.seq > held.seq,
        "after a publisher change seq went from {} to {}",
        held.seq,
        next.seq
    );
    wait_for_feed(&front_end, "live again", connected).await;
}

#[tokio::test]
async fn a_front_end_keeps_only_well_formed_newer_ticks() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // No publisher: this test plays it by hand, badly, through a plain connection.
    let mut con = redis.connection().expect("connect to redis-server");
    let tick = |seq: u64, symbol: &str| {
        format!(
            r#"{{"type":"tick","symbol":"{symbol}","price":{seq}.5,"change":0.5,"seq":{seq},"ts":1.5}}"#
        )
    };
    let _: () = redis::cmd("SET")
        .arg("tickerlab:latest:ACME")
        .arg(tick(5, "ACME"))
        .query(&mut con)
        .expect("SET");
    let front_end = spawn_app(base_config(&redis.url())).await;
    wait_for_feed(&front_end, "front-end connected", |f| {
        f["redis"] == "connected"
    })
    .await;
    let mut ws = front_end.ws("/ws?symbols=ACME").await;
    hello(&mut ws).await;
    assert_eq!(next_tick(&mut ws).await.0.seq, 5, "the latest key, at once");

    for message in [
        "not json".to_owned(),
        r#"{"type":"tick","symbol":"ACME"}"#.to_owned(),
        tick(9, "GLOBX"), // right shape, wrong channel
        tick(4, "ACME"),  // older than what we have
        tick(7, "ACME"),
        tick(7, "ACME"), // a duplicate
        tick(6, "ACME"), // late
        tick(8, "ACME"),
    ] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("tickerlab:tick:ACME")
            .arg(message)
            .query(&mut con)
            .expect("PUBLISH");
    }
    // Only newer, well-formed ACME ticks get through, in order, once; the last one may
    // arrive with 7 in the same batch, in which case 7 is superseded before it is sent.
    let (tick_a, _) = next_tick(&mut ws).await;
    let seqs = if tick_a.seq == 7 {
        vec![7, next_tick(&mut ws).await.0.seq]
    } else {
        vec![tick_a.seq]
    };
    assert_eq!(seqs.last(), Some(&8), "{seqs:?}");
    assert!(seqs == [7, 8] || seqs == [8], "{seqs:?}");
    let (status, body) = get(&front_end, "/price?symbol=ACME").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        tick(8, "ACME"),
        "re-serialised, which gives the text serde wrote"
    );
    // GLOBX never got a tick: the front-end says so instead of inventing one.
    let (status, body) = get(&front_end, "/price?symbol=GLOBX").await;
    assert_eq!(status, 503, "{body}");
    // Adopted and serialised: 5 (the key), 7 and 8 (or just 8 when they came together).
    let adopted = front_end.feed.serialisations();
    assert!((2..=3).contains(&adopted), "{adopted}");
    // Refused: the two that are not ticks and the one on the wrong channel (older ticks and
    // duplicates are well-formed: the relay drops them, they are not refused).
    let text = common::metrics_text(&front_end).await;
    for (reason, n) in [("malformed", 2), ("wrong_symbol", 1), ("seq_ahead", 0)] {
        assert_eq!(common::metric(&text, &rejected(reason)), n, "{reason}");
    }
    assert_eq!(health(&front_end).await["feed"]["rejected"], 3);
}

#[tokio::test]
async fn without_redis_a_front_end_starts_stale_and_a_publisher_refuses() {
    // Needs no redis-server: nothing listens on this port.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let front_end = spawn_app(base_config(&url)).await;
    let (status, body) = get(&front_end, "/price").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("waiting for the first tick"), "{body}");
    let health = health(&front_end).await;
    assert_eq!(
        health["feed"],
        serde_json::json!({"source": "redis", "stale": true, "redis": "down"})
    );
    let mut ws = front_end.ws("/ws").await;
    let hello = hello(&mut ws).await;
    assert_eq!(hello["feed"]["stale"], true);

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let error = tickerlab::serve(publisher_config(&url), listener)
        .err()
        .expect("a publisher needs Redis at start-up")
        .to_string();
    assert!(error.contains("cannot reach Redis"), "{error}");
}

/// A front-end whose publisher is quiet PINGs Redis every quiet second to tell a stopped
/// publisher from a dead connection, and keeps the connection when the PING is answered.
/// (It used to read the answer, `["pong", ""]` on a subscribed connection, as a string, fail,
/// and reconnect every second, losing whatever was published meanwhile.) Redis's own
/// `CLIENT LIST` shows the subscription's age: it must outlive several quiet seconds.
#[tokio::test]
async fn a_front_end_keeps_its_subscription_through_quiet_seconds() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let front_end = spawn_app(base_config(&redis.url())).await;
    wait_for_feed(&front_end, "connected, no publisher", |f| {
        f["redis"] == "connected" && f["stale"] == true
    })
    .await;
    let quiet = front_end.feed.stale_after();
    let mut con = redis.connection().expect("a Redis connection");
    let deadline = Instant::now() + RECOVER;
    loop {
        let clients: String = redis::cmd("CLIENT")
            .arg("LIST")
            .arg("TYPE")
            .arg("pubsub")
            .query(&mut con)
            .expect("CLIENT LIST");
        let ages: Vec<u64> = clients
            .lines()
            .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("age=")))
            .map(|age| age.parse().expect("age in seconds"))
            .collect();
        assert!(ages.len() <= 1, "several subscribers: {clients}");
        // Redis counts whole seconds on both ends: an age of N may be N - 1 seconds.
        if ages.first().is_some_and(|age| *age > 3 * quiet.as_secs()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the subscription never outlived three quiet intervals: {clients}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = health(&front_end).await;
    assert_eq!(health["feed"]["redis"], "connected", "{health}");
}

// ---- a seq means one price across restarts and instances ----

/// `GET path` as (status, `X-Tickerlab-Run`, body, how long the answer took).
async fn timed_get(app: &TestApp, path: &str) -> (u16, Option<String>, String, Duration) {
    let started = Instant::now();
    let response = tokio::time::timeout(WAIT, reqwest::get(app.http(path)))
        .await
        .expect("request timed out")
        .expect("request failed");
    let status = response.status().as_u16();
    let run = response
        .headers()
        .get("x-tickerlab-run")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.text().await.expect("body");
    (status, run, body, started.elapsed())
}

/// Item 1: a long poller whose requests alternate between an up-to-date front-end and one
/// that lags in the same run (cut off: it holds the ticks it read once) never goes
/// backwards and makes no request loop: the lagging front-end holds the poll instead of
/// answering an older seq at once. (Before: seq 29, 13, 29, 13, ... each within 0.3 ms.)
#[tokio::test]
async fn a_long_poller_alternating_with_a_lagging_front_end_never_goes_backwards() {
    let (Some(redis), Some(cut_off)) = (RedisServer::start(), RedisServer::start()) else {
        return;
    };
    let publisher = spawn_app(publisher_config(&redis.url())).await;
    let current = spawn_app(base_config(&redis.url())).await;
    wait_for_feed(&current, "front-end following the publisher", connected).await;
    // The lagging front-end follows a Redis the publisher does not write to, holding a copy
    // of the publisher's latest ticks: same run, a seq that stays behind.
    let mut source = redis.connection().expect("redis");
    let mut copy = cut_off.connection().expect("second redis");
    let key = tickerlab::backplane::latest_key("ACME");
    let held: String = redis::cmd("GET").arg(&key).query(&mut source).unwrap();
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(&held)
        .query(&mut copy)
        .unwrap();
    let held: Tick = serde_json::from_str(&held).unwrap();
    let lagging = spawn_app(Config {
        long_poll_secs: 1,
        ..base_config(&cut_off.url())
    })
    .await;
    wait_for_feed(&lagging, "the lagging front-end holding its copy", |f| {
        f["redis"] == "connected" && f["run"] == held.run.to_string()
    })
    .await;
    common::wait_for_ticks(&publisher, publisher.feed.ticks() + 3).await;

    // The poller starts where the lagging copy stands, so every answer of the up-to-date
    // front-end is ahead of the copy.
    let (mut after, run) = (held.seq, held.run.to_string());
    for round in 0..3 {
        let query =
            |after: u64, run: &str| format!("/price/next?symbol=ACME&after={after}&run={run}");
        let (status, header, body, _) = timed_get(&current, &query(after, &run)).await;
        assert_eq!(status, 200, "round {round}: {body}");
        let tick: Tick = serde_json::from_str(&body).unwrap();
        assert_eq!(header, Some(tick.run.to_string()));
        assert_eq!(tick.run.to_string(), run, "one run throughout");
        assert!(
            tick.seq > after,
            "round {round}: seq {} after {after}",
            tick.seq
        );
        after = tick.seq;

        let (status, header, body, took) = timed_get(&lagging, &query(after, &run)).await;
        assert_eq!(
            status, 204,
            "round {round}: the lagging front-end answered {body}"
        );
        assert_eq!(
            header,
            Some(run.clone()),
            "a 204 says which run it waited in"
        );
        assert!(
            took >= Duration::from_millis(900),
            "round {round}: held for --long-poll-secs, not answered at once ({took:?})"
        );
    }
}

/// Items 2 and 4: the publisher and Redis restart together. The new publisher counts from 1
/// under a new run; the front-end reports stale while nothing is adopted, then follows the
/// new run within a few ticks (it used to freeze on its old seq and call itself live).
#[tokio::test]
async fn a_front_end_follows_a_new_run_after_publisher_and_redis_restart_together() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let first = spawn_app(publisher_config(&redis.url())).await;
    let front_end = spawn_app(base_config(&redis.url())).await;
    wait_for_feed(&front_end, "front-end following the publisher", connected).await;
    let mut ws = front_end.ws("/ws?symbols=ACME").await;
    let greeting = hello(&mut ws).await;
    let old_run = first.feed.run().to_string();
    assert_eq!(greeting["run"], old_run.as_str(), "{greeting}");
    // Let the old run get well ahead of where a new one starts.
    common::wait_for_ticks(&first, 20).await;
    let before = loop {
        let (tick, _) = next_tick(&mut ws).await;
        if tick.seq >= 10 {
            break tick;
        }
    };

    first.stopper.stop().await;
    redis.restart();
    wait_for_feed(&front_end, "stale while no publisher is running", |f| {
        f["redis"] == "connected" && f["stale"] == true
    })
    .await;

    let second = spawn_app(publisher_config(&redis.url())).await;
    let new_run = second.feed.run().to_string();
    assert_ne!(new_run, old_run);
    let health = wait_for_feed(&front_end, "following the new run", |f| {
        connected(f) && f["run"] == new_run.as_str()
    })
    .await;
    let (status, body) = get(&front_end, "/price?symbol=ACME").await;
    assert_eq!(status, 200);
    let now: Tick = serde_json::from_str(&body).unwrap();
    assert_eq!(now.run.to_string(), new_run, "{health}");
    assert!(
        now.seq < before.seq,
        "the new run counts afresh: {} vs {}",
        now.seq,
        before.seq
    );
    // The socket that lived through it gets the new run's ticks, increasing within it.
    let mut last = 0;
    for _ in 0..3 {
        let (tick, _) = loop {
            let (tick, text) = next_tick(&mut ws).await;
            if tick.run.to_string() == new_run {
                break (tick, text);
            }
            assert_eq!(tick.run.to_string(), old_run);
        };
        assert!(tick.seq > last);
        last = tick.seq;
    }
}

/// Item 5: publishing is fenced by the lease. Once another publisher holds the lease, this
/// one's very next publish writes nothing (the check and the writes are one script), and it
/// says `lease_lost`. (Before, it kept publishing until its next renewal, up to a second.)
#[tokio::test]
async fn a_publisher_that_lost_its_lease_writes_nothing_more() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let publisher = spawn_app(publisher_config(&redis.url())).await;
    wait_for_feed(&publisher, "publishing", |f| f["redis"] == "connected").await;
    let mut con = redis.connection().expect("redis");
    let key = tickerlab::backplane::latest_key("ACME");
    // Another publisher takes over (as if this one had been paused past its lease).
    let () = redis::cmd("SET")
        .arg(tickerlab::backplane::LEASE_KEY)
        .arg("someone else")
        .arg("PX")
        .arg(60_000)
        .query(&mut con)
        .unwrap();
    let at_takeover: String = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
    wait_for_feed(&publisher, "noticing the lease is lost", |f| {
        f["redis"] == "lease_lost"
    })
    .await;
    // Its feed goes on ticking for its own clients; Redis hears none of it.
    common::wait_for_ticks(&publisher, publisher.feed.ticks() + 3).await;
    let now: String = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
    assert_eq!(
        now, at_takeover,
        "a fenced-off publisher overwrote the latest tick"
    );
}

// ---- R13: a publisher gives its Redis lease back on SIGTERM ---------------------------------------

#[tokio::test]
async fn r13_a_publisher_stopped_with_sigterm_releases_its_lease_for_a_replacement() {
    use std::io::BufRead;
    let Some(redis) = redis_server::RedisServer::start() else {
        return;
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tickerlab"))
        .args(["--port", "0", "--tick-ms", "50", "--feed-publisher"])
        .args(["--redis", &redis.url()])
        .env_remove("PORT")
        .env_remove("HOST")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the publisher");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let listening = lines
        .find_map(|line| {
            line.ok()
                .filter(|l| l.starts_with("tickerlab listening on"))
        })
        .expect("the URL line");
    assert!(listening.contains("http://"), "{listening}");
    let mut con = redis.connection().expect("a Redis connection");
    let holder: Option<String> = redis::cmd("GET")
        .arg(tickerlab::backplane::LEASE_KEY)
        .query(&mut con)
        .expect("GET lease");
    assert!(holder.is_some(), "the running publisher holds the lease");

    let status = common::sigterm_and_wait(&mut child);
    assert!(status.success(), "{status:?}");
    // Released on the way out, not left to expire (it would live up to 3 s more).
    let holder: Option<String> = redis::cmd("GET")
        .arg(tickerlab::backplane::LEASE_KEY)
        .query(&mut con)
        .expect("GET lease");
    assert_eq!(holder, None, "the stopped publisher still holds the lease");
    // So a replacement starts at once.
    let replacement = Config {
        redis: Some(redis.url()),
        feed_publisher: true,
        tick_ms: 50,
        ..test_config()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let app = tickerlab::serve(replacement, listener).expect("the replacement starts at once");
    let stopper = app.stopper();
    let run = tokio::spawn(app.run());
    stopper.stop().await;
    run.await.expect("join").expect("run");
}

/// A publisher shut down gracefully in-process gives its lease back only once its forwarding
/// task has stopped, so nothing of it reaches Redis afterwards: the lease stays free (a
/// fenced publish would claim it again, for `LEASE_TTL`) and the latest tick stays as it was,
/// for longer than a lease renewal.
#[tokio::test]
async fn a_publisher_shut_down_gracefully_leaves_the_lease_free_and_publishes_nothing_more() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let app = tickerlab::serve(publisher_config(&redis.url()), listener).expect("serve");
    let publisher = TestApp {
        addr: app.local_addr(),
        feed: app.feed().clone(),
        stopper: app.stopper(),
    };
    let run = tokio::spawn(app.run());
    common::wait_for_ticks(&publisher, 5).await;
    wait_for_feed(&publisher, "publishing", |f| f["redis"] == "connected").await;

    publisher.stopper.stop().await;
    run.await.expect("join").expect("run");
    let mut con = redis.connection().expect("a Redis connection");
    let mut read =
        |key: &str| -> Option<String> { redis::cmd("GET").arg(key).query(&mut con).expect("GET") };
    let lease = tickerlab::backplane::LEASE_KEY;
    let latest = tickerlab::backplane::latest_key("ACME");
    assert_eq!(read(lease), None, "the lease was not released");
    let at_stop = read(&latest);
    assert!(at_stop.is_some(), "the publisher published nothing");
    tokio::time::sleep(tickerlab::backplane::LEASE_RENEW * 2).await;
    assert_eq!(
        read(lease),
        None,
        "the stopped publisher claimed the lease again"
    );
    assert_eq!(
        read(&latest),
        at_stop,
        "the stopped publisher published again"
    );
}

// ---- The channel is input: forged ticks on a front-end's channel ----------------------------
//
// Each test plays someone who can PUBLISH on the channels but is not the publisher: a real
// publisher and front-end run, a client of the front-end reads, and the test publishes a
// forged message with a plain Redis connection. The symbol must keep moving with the
// publisher's ticks, and no client may receive the forgery.

/// The `/metrics` series counting refusals for `reason`.
fn rejected(reason: &str) -> String {
    format!("tickerlab_backplane_ticks_rejected_total{{reason=\"{reason}\"}}")
}

/// Larger than any message the server sends in these tests (a tick is about 150 bytes,
/// `hello` a few hundred): a forged payload that got through would be far larger.
const MAX_MESSAGE: usize = 1024;

/// A publisher, a front-end that follows it, and a Redis connection to forge with.
struct Forgery {
    _redis: RedisServer,
    publisher: TestApp,
    front_end: TestApp,
    con: redis::Connection,
}

impl Forgery {
    async fn start() -> Option<Forgery> {
        let redis = RedisServer::start()?;
        let publisher = spawn_app(publisher_config(&redis.url())).await;
        let front_end = spawn_app(base_config(&redis.url())).await;
        wait_for_feed(&front_end, "front-end following the publisher", connected).await;
        let con = redis.connection().expect("a Redis connection");
        Some(Forgery {
            _redis: redis,
            publisher,
            front_end,
            con,
        })
    }

    /// PUBLISHes `payload` on `symbol`'s channel; asserts the front-end is subscribed.
    fn forge(&mut self, symbol: &str, payload: &str) {
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(tickerlab::backplane::tick_channel(symbol))
            .arg(payload)
            .query(&mut self.con)
            .expect("PUBLISH");
        assert_eq!(receivers, 1, "the front-end is not subscribed");
    }

    /// The publisher's newest seq (every symbol has the same).
    fn publisher_seq(&self) -> u64 {
        self.publisher.feed.latest().ticks[0].tick.seq
    }

    /// A tick's JSON in the publisher's run, as a forger who read the channel would write it.
    fn tick_text(&self, symbol: &str, seq: u64, price: f64) -> String {
        let run = self.publisher.feed.run();
        format!(
            r#"{{"type":"tick","symbol":"{symbol}","price":{price},"change":0.5,"seq":{seq},"ts":1795895822123.456,"run":"{run}"}}"#
        )
    }

    /// Reads `ws`, a client of the front-end, until each of `symbols` has reached the
    /// publisher's newest seq *now* plus 3: whatever was forged before this call was handled
    /// by then, since the front-end reads its subscription in order. On the way, every
    /// message must be small, every tick of the publisher's run and not `forged`, and each
    /// symbol's seq must only go up.
    async fn assert_keeps_moving(
        &self,
        ws: &mut Ws,
        symbols: &[&str],
        forged: impl Fn(&Tick) -> bool,
    ) {
        let until = self.publisher_seq() + 3;
        let run = self.publisher.feed.run();
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        // One deadline for the whole wait: ticks of one symbol must not keep it open for
        // another that stopped.
        let deadline = tokio::time::Instant::now() + WAIT;
        while !symbols
            .iter()
            .all(|s| last.get(*s).is_some_and(|seq| *seq >= until))
        {
            let message = tokio::time::timeout_at(deadline, ws.next())
                .await
                .unwrap_or_else(|_| panic!("not there within {WAIT:?}; seqs so far {last:?}"))
                .expect("socket ended")
                .expect("socket error");
            let Message::Text(text) = message else {
                continue;
            };
            assert!(
                text.len() <= MAX_MESSAGE,
                "a client received a {} byte message: {}...",
                text.len(),
                &text[..200]
            );
            let Ok(tick) = serde_json::from_str::<Tick>(&text) else {
                continue;
            };
            assert!(!forged(&tick), "a forged tick reached a client: {text}");
            assert_eq!(
                tick.run, run,
                "a tick of another run than the publisher's: {text}"
            );
            let seq = last.entry(tick.symbol.clone()).or_default();
            assert!(tick.seq > *seq, "{text} after seq {seq}");
            *seq = tick.seq;
        }
    }

    /// Waits until `/metrics` counts `n` refusals for `reason`, then checks that `/healthz`
    /// reports `total` refusals in all and a live feed of the publisher's run.
    async fn assert_refused(&self, reason: &str, n: u64, total: u64) {
        common::wait_for_metric(&self.front_end, &rejected(reason), |count| count == n).await;
        let health = health(&self.front_end).await;
        assert_eq!(health["feed"]["rejected"], total, "{health}");
        assert_eq!(
            health["feed"]["run"],
            self.publisher.feed.run().to_string(),
            "{health}"
        );
        assert_eq!(health["feed"]["stale"], false, "{health}");
    }
}

/// (a) One tick at `seq` 2^64-1 in the publisher's run used to freeze its symbol for good
/// (the relay keeps only newer seqs, and nothing is newer), `/healthz` still saying all was
/// well. Now it is refused: no run can have counted that far.
#[tokio::test]
async fn a_forged_tick_at_the_highest_seq_is_refused_and_the_symbol_keeps_moving() {
    let Some(mut forgery) = Forgery::start().await else {
        return;
    };
    let mut ws = forgery.front_end.ws("/ws?symbols=ACME").await;
    hello(&mut ws).await;
    let forged = forgery.tick_text("ACME", u64::MAX, 101.0);
    forgery.forge("ACME", &forged);
    forgery
        .assert_keeps_moving(&mut ws, &["ACME"], |t| t.seq == u64::MAX)
        .await;
    forgery.assert_refused("seq_ahead", 1, 1).await;
    // And /price serves the publisher's tick, not the forged one.
    let (status, body) = get(&forgery.front_end, "/price?symbol=ACME").await;
    assert_eq!(status, 200, "{body}");
    let tick: Tick = serde_json::from_str(&body).expect("a tick");
    assert!(tick.seq < u64::MAX && tick.seq >= 1, "{body}");
}

/// (b) A tick of run `ffffffffffffffff` (a start time in the year 10889) used to become the
/// run every symbol followed, the real run's ticks dropped as "earlier"; sent every half
/// second it froze every symbol. Now a run that begins in the future is refused, however
/// often it comes.
#[tokio::test]
async fn ticks_of_a_run_from_the_future_are_refused_however_often_they_come() {
    let Some(mut forgery) = Forgery::start().await else {
        return;
    };
    let symbols = ["ACME", "GLOBX"];
    let mut ws = forgery.front_end.ws("/ws?symbols=ACME,GLOBX").await;
    hello(&mut ws).await;
    let future = tickerlab::tick::RunId(u64::MAX);
    for round in 1..=3 {
        for symbol in symbols {
            let forged = format!(
                r#"{{"type":"tick","symbol":"{symbol}","price":1.0,"change":0.0,"seq":1,"ts":1.0,"run":"{future}"}}"#
            );
            forgery.forge(symbol, &forged);
        }
        // Between rounds, the publisher's ticks keep arriving and being adopted.
        forgery
            .assert_keeps_moving(&mut ws, &symbols, |t| t.run == future)
            .await;
        forgery
            .assert_refused("future_run", 2 * round, 2 * round)
            .await;
    }
}

/// (c) 40 forged 8 MiB ticks used to grow a front-end from 8 to 401 MB: each was adopted,
/// kept in the 256-tick history and sent to every client as an 8 MiB frame. Now a message
/// larger than 1 KiB is refused before it is parsed, so nothing of it is kept or sent.
#[tokio::test]
async fn oversized_ticks_are_refused_unparsed_and_no_client_receives_a_large_message() {
    let Some(mut forgery) = Forgery::start().await else {
        return;
    };
    let mut ws = forgery.front_end.ws("/ws?symbols=ACME").await;
    hello(&mut ws).await;
    // A tick in the publisher's run, newer than the front-end's, padded to 8 MiB with a
    // field serde ignores: well-formed, and adopted if its size were not looked at.
    let padding = "x".repeat(8 << 20);
    let padded = |forgery: &Forgery| {
        forgery
            .tick_text("ACME", forgery.publisher_seq() + 1, 101.0)
            .replace(r#""seq""#, &format!(r#""pad":"{padding}","seq""#))
    };
    let forged = padded(&forgery);
    forgery.forge("ACME", &forged);
    forgery
        .assert_keeps_moving(&mut ws, &["ACME"], |_| false)
        .await;
    // The rest, one at a time: each is read and dropped before the next is sent, so Redis
    // never holds several for the front-end (past 32 MB it would cut the subscriber off).
    for sent in 2..=40 {
        let forged = padded(&forgery);
        forgery.forge("ACME", &forged);
        let feed = &forgery.front_end.feed;
        let deadline = Instant::now() + WAIT;
        while feed.rejected(tickerlab::backplane::check::Rejection::TooLarge) < sent {
            assert!(
                Instant::now() < deadline,
                "forged tick {sent} not refused within {WAIT:?}: feed {:?}",
                feed.status()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    forgery
        .assert_keeps_moving(&mut ws, &["ACME"], |_| false)
        .await;
    forgery.assert_refused("too_large", 40, 40).await;
    assert!(
        forgery
            .front_end
            .feed
            .latest()
            .ticks
            .iter()
            .all(|p| p.json.len() <= MAX_MESSAGE),
        "the front-end holds an oversized tick"
    );
}

/// (d) A tick whose JSON has raw CR LF between its tokens is valid JSON, so the relay
/// adopts it; it used to be sent as received, and the line break split the Server-Sent
/// Events `data:` line (EventSource got `{"type":"tick",` as data and a field named
/// `"symbol"`). Now the front-end serialises what it adopts: the stream carries the
/// server's one-line JSON, whatever Redis delivered. (The forged tick itself breaks no rule,
/// so it is adopted, not refused: only signing could tell it from a real one.)
#[tokio::test]
async fn a_tick_with_raw_line_breaks_reaches_sse_clients_only_as_the_servers_own_json() {
    let Some(mut forgery) = Forgery::start().await else {
        return;
    };
    let response = tokio::time::timeout(
        WAIT,
        reqwest::get(forgery.front_end.http("/events?symbols=ACME")),
    )
    .await
    .expect("no response within the wait")
    .expect("GET /events");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    // Far enough ahead that the publisher has not reached it when it arrives (so it is
    // adopted), near enough that the publisher passes it within a few seconds.
    let seq = forgery.publisher_seq() + 40;
    let forged = forgery
        .tick_text("ACME", seq, 4242.42)
        .replace(',', ",\r\n");
    forgery.forge("ACME", &forged);

    // Reads the stream as EventSource does (a line ends at CR LF, LF or CR; a blank line
    // ends an event) until the publisher's ticks have passed the forged seq.
    let mut text = String::new();
    let mut forged_seen = false;
    let mut last_seq = 0;
    let deadline = Instant::now() + RECOVER;
    while last_seq < seq + 3 {
        assert!(Instant::now() < deadline, "stuck at seq {last_seq}");
        let chunk = tokio::time::timeout(WAIT, body.next())
            .await
            .expect("no event within the wait")
            .expect("the stream ended")
            .expect("stream error");
        text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        assert!(!text.contains('\r'), "a raw CR in the stream: {text:?}");
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            let mut data = Vec::new();
            for line in event.lines() {
                match line.split_once(": ") {
                    Some(("data", value)) => data.push(value.to_owned()),
                    Some(("id" | "retry", _)) => {}
                    _ if line.is_empty() || line.starts_with(':') => {}
                    _ => panic!("a line EventSource would misread: {line:?} in {event:?}"),
                }
            }
            let [json] = &data[..] else {
                assert!(data.is_empty(), "an event of several data lines: {event:?}");
                continue;
            };
            let tick: Tick = serde_json::from_str(json)
                .unwrap_or_else(|e| panic!("data that is not a tick ({e}): {json:?}"));
            assert_eq!(
                json,
                &serde_json::to_string(&tick).unwrap(),
                "not the server's own serialisation"
            );
            forged_seen |= tick.price == 4242.42;
            last_seq = tick.seq;
        }
    }
    assert!(
        forged_seen,
        "the forged tick, valid JSON, was adopted and sent re-serialised"
    );
    assert_eq!(
        health(&forgery.front_end).await["feed"]["rejected"],
        Value::Null
    );
}

/// A publisher that replaces one which ran for hours continues its numbering (so clients
/// that ignore the run never see `seq` go back), in a run that keeps the time the numbering
/// began: a front-end bounds `seq` by that time, and must follow it.
#[tokio::test]
async fn a_replacement_publisher_continuing_a_long_numbering_is_followed() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // What a publisher that began two hours ago at 50 ms ticks left in Redis.
    let two_hours_ago = tickerlab::tick::epoch_ms() as u64 - 2 * 3600 * 1000;
    let old_run = tickerlab::tick::RunId((two_hours_ago << 16) | 0x4c1d);
    let mut con = redis.connection().expect("a Redis connection");
    let () = redis::cmd("SET")
        .arg(tickerlab::backplane::latest_key("ACME"))
        .arg(format!(
            r#"{{"type":"tick","symbol":"ACME","price":101.0,"change":0.5,"seq":140000,"ts":1.0,"run":"{old_run}"}}"#
        ))
        .query(&mut con)
        .expect("SET");
    let publisher = spawn_app(publisher_config(&redis.url())).await;
    let run = publisher.feed.run();
    assert!(run > old_run, "a later run");
    assert!(
        publisher.feed.latest().ticks[0].tick.seq > 140_000,
        "continued"
    );
    let front_end = spawn_app(base_config(&redis.url())).await;
    let health = wait_for_feed(&front_end, "following the replacement", |f| {
        connected(f) && f["run"] == run.to_string()
    })
    .await;
    assert_eq!(health["feed"]["rejected"], Value::Null, "{health}");
    let mut ws = front_end.ws("/ws?symbols=ACME").await;
    hello(&mut ws).await;
    let (tick, _) = next_tick(&mut ws).await;
    assert!(tick.seq > 140_000 && tick.run == run, "{tick:?}");
}
