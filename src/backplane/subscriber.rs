//! The front-end side of the backplane (`--redis URL` without `--feed-publisher`): no market
//! here; the ticks come from the publisher through Redis, and this instance fans them out to
//! its own WebSocket and HTTP clients through the same latest-value channel a local feed
//! uses.
//!
//! Each connection to Redis goes through the same three steps:
//!
//! 1. `SUBSCRIBE` to every symbol's channel, and wait for Redis to confirm: from here on no
//!    tick is missed.
//! 2. `MGET` every symbol's latest key, so `GET /price` has an answer at once (after a start,
//!    or after an outage). Ticks published since step 1 are already waiting on the
//!    subscription; those older than the key are dropped by the relay's `seq` rule.
//! 3. Apply ticks as they arrive, several at a time when they arrived together (one tick of
//!    the publisher is one message per symbol, sent in one pipeline).
//!
//! If Redis goes away, the relay keeps its last snapshot: clients keep their last prices
//! (`/healthz` and `hello` say `stale`), and the loop reconnects with backoff and resumes.
//! The received JSON text becomes the shared buffer as is; nothing is serialised here.

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tracing::{info, warn};

use super::{
    Backoff, BackplaneError, PREFIX, REDIS_TIMEOUT, SETTINGS_KEY, client, connect, latest_key,
    settings_json, tick_channel,
};
use crate::feed::{Feed, FeedTask, Relay};
use crate::tick::{RedisLink, Tick};
use crate::wire::Published;

/// The most ticks applied as one snapshot: enough for every symbol of a few ticks, small
/// enough that one busy moment cannot hold the relay's attention for long.
const MAX_BATCH: usize = 64;

/// Starts a front-end's feed: a relay fed by a task that follows the publisher through
/// Redis. Never fails for lack of Redis: a front-end starts stale and connects when it can.
pub fn start(
    url: &str,
    symbols: Vec<String>,
    tick_interval: Duration,
) -> Result<(Feed, FeedTask), BackplaneError> {
    let client = client(url)?;
    let (feed, relay) = Feed::relay(symbols, tick_interval);
    let handle = tokio::spawn(run(client, relay));
    Ok((feed, FeedTask::new(handle)))
}

/// The following task: one connection at a time, reconnecting with backoff.
async fn run(client: redis::Client, mut relay: Relay) {
    let mut backoff = Backoff::new();
    loop {
        let lost = follow(&client, &mut relay, &mut backoff).await;
        relay.feed().set_link(Some(RedisLink::Down));
        warn!(reason = %lost, "Redis link lost: serving the last prices (stale), reconnecting");
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Follows the publisher over one connection until it breaks; returns why it broke.
async fn follow(client: &redis::Client, relay: &mut Relay, backoff: &mut Backoff) -> String {
    let feed = relay.feed().clone();
    let pubsub = match tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub()).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(e)) => return format!("cannot connect: {e}"),
        Err(_) => return "connecting timed out".into(),
    };
    let (mut sink, mut stream) = pubsub.split();

    // 1. Subscribe, and wait for the confirmation.
    let channels: Vec<String> = feed.symbols().iter().map(|s| tick_channel(s)).collect();
    match tokio::time::timeout(REDIS_TIMEOUT, sink.subscribe(&channels)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return format!("SUBSCRIBE failed: {e}"),
        Err(_) => return "SUBSCRIBE timed out".into(),
    }

    // 2. Read the latest ticks (a short-lived second connection: a subscribed connection
    //    may only (un)subscribe and ping).
    let keys: Vec<String> = feed.symbols().iter().map(|s| latest_key(s)).collect();
    let mut con = match connect(client).await {
        Ok(con) => con,
        Err(e) => return format!("cannot connect for MGET: {e}"),
    };
    let latest: Vec<Option<Vec<u8>>> =
        match redis::cmd("MGET").arg(&keys).query_async(&mut con).await {
            Ok(latest) => latest,
            Err(e) => return format!("MGET failed: {e}"),
        };
    let settings: Option<String> = match redis::cmd("GET")
        .arg(SETTINGS_KEY)
        .query_async(&mut con)
        .await
    {
        Ok(settings) => settings,
        Err(e) => return format!("GET {SETTINGS_KEY} failed: {e}"),
    };
    drop(con);
    let ours = settings_json(&feed);
    match settings {
        Some(theirs) if theirs != ours => warn!(
            publisher = %theirs,
            this_instance = %ours,
            "this front-end's --symbols or --tick-ms differ from the publisher's: start every \
             instance with the same ones"
        ),
        None => info!("no publisher has written its settings to Redis yet"),
        Some(_) => {}
    }
    let batch: Vec<(usize, Published)> = latest
        .into_iter()
        .enumerate()
        .filter_map(|(index, bytes)| decode(&feed, index, bytes?))
        .collect();
    relay.publish(batch, false);
    feed.set_link(Some(RedisLink::Connected));
    backoff.reset();
    info!("following the feed publisher through Redis");

    // 3. Apply ticks as they arrive.
    let quiet = feed.stale_after();
    loop {
        match tokio::time::timeout(quiet, stream.next()).await {
            Ok(Some(first)) => {
                let mut batch = Vec::with_capacity(feed.symbols().len());
                batch.extend(decode_message(&feed, &first));
                // Whatever else has already arrived joins this snapshot, so sessions wake
                // once per publisher tick, not once per symbol message.
                while batch.len() < MAX_BATCH {
                    match stream.next().now_or_never() {
                        Some(Some(message)) => batch.extend(decode_message(&feed, &message)),
                        _ => break,
                    }
                }
                if !batch.is_empty() {
                    relay.publish(batch, true);
                }
            }
            Ok(None) => return "connection closed".into(),
            // Quiet for a while: the publisher may have stopped, or the connection may be
            // dead without having said so. A PING tells which.
            Err(_) => match tokio::time::timeout(REDIS_TIMEOUT, sink.ping::<String>()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return format!("PING failed: {e}"),
                Err(_) => return "PING timed out".into(),
            },
        }
    }
}

/// A pub/sub message as `(symbol index, tick)`, or `None` (logged) if it is not a tick of a
/// symbol this instance serves. Anyone with access to Redis can PUBLISH anything, so a
/// message is checked, never trusted.
fn decode_message(feed: &Feed, message: &redis::Msg) -> Option<(usize, Published)> {
    let channel = message.get_channel_name();
    let symbol = channel.strip_prefix(PREFIX)?.strip_prefix(":tick:")?;
    let index = feed.index_of(symbol)?;
    decode(feed, index, message.get_payload_bytes().to_vec())
}

/// The tick in `bytes` if it is a well-formed tick of symbol `index`. The text becomes the
/// shared buffer as received (a `String` turns into a `ByteString` without copying).
fn decode(feed: &Feed, index: usize, bytes: Vec<u8>) -> Option<(usize, Published)> {
    let symbol = feed.symbols().get(index)?;
    let Ok(text) = String::from_utf8(bytes) else {
        warn!(%symbol, "ignoring a message that is not UTF-8");
        return None;
    };
    let tick: Tick = match serde_json::from_str(&text) {
        Ok(tick) => tick,
        Err(e) => {
            warn!(%symbol, error = %e, "ignoring a message that is not a tick");
            return None;
        }
    };
    if &tick.symbol != symbol {
        warn!(%symbol, got = %tick.symbol, "ignoring a tick of another symbol on this channel");
        return None;
    }
    Some((index, Published::new(tick, text.into())))
}
