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
//!
//! Whatever is read from Redis, on the channel or in a latest key, is input: it goes
//! through [`check`] before the relay sees it, and what fails is counted by reason (in
//! `/metrics` and `/healthz`) and logged, at most once every few seconds per reason. The
//! relay is handed parsed ticks, never text: it serialises the ones it adopts itself
//! ([`Relay::publish`]).

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::time::Instant;
use tracing::{info, warn};

use super::check::{Rejection, check};
use super::{
    Backoff, BackplaneError, PREFIX, REDIS_TIMEOUT, SETTINGS_KEY, client, connect, latest_key,
    settings_json, tick_channel,
};
use crate::feed::{Feed, FeedTask, Relay};
use crate::tick::{RedisLink, Tick, epoch_ms};

/// The most messages read into one snapshot: enough for every symbol of a few ticks, small
/// enough that one busy moment cannot hold the relay's attention for long. Messages, not
/// ticks kept: a flood of refused ones must end a batch too.
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
    let mut rejections = RejectionLog::default();
    loop {
        let lost = follow(&client, &mut relay, &mut backoff, &mut rejections).await;
        relay.feed().set_link(Some(RedisLink::Down));
        warn!(reason = %lost, "Redis link lost: serving the last prices (stale), reconnecting");
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Follows the publisher over one connection until it breaks; returns why it broke.
async fn follow(
    client: &redis::Client,
    relay: &mut Relay,
    backoff: &mut Backoff,
    rejections: &mut RejectionLog,
) -> String {
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
    let batch: Vec<(usize, Tick)> = latest
        .into_iter()
        .zip(&keys)
        .enumerate()
        .filter_map(|(index, (bytes, key))| decode(&feed, index, &bytes?, key, rejections))
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
                batch.extend(decode_message(&feed, &first, rejections));
                // Whatever else has already arrived joins this snapshot, so sessions wake
                // once per publisher tick, not once per symbol message.
                for _ in 1..MAX_BATCH {
                    match stream.next().now_or_never() {
                        Some(Some(message)) => {
                            batch.extend(decode_message(&feed, &message, rejections))
                        }
                        _ => break,
                    }
                }
                if !batch.is_empty() {
                    relay.publish(batch, true);
                }
            }
            Ok(None) => return "connection closed".into(),
            // Quiet for a while: the publisher may have stopped, or the connection may be
            // dead without having said so. A PING tells which. Any answer will do: on a
            // subscribed RESP2 connection it is `["pong", ""]`, not `PONG` (read as a
            // `String`, that failed and cut the link after every quiet second).
            Err(_) => {
                match tokio::time::timeout(REDIS_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("PING failed: {e}"),
                    Err(_) => return "PING timed out".into(),
                }
            }
        }
    }
}

/// A pub/sub message as `(symbol index, tick)`, or `None` (counted and logged) if it is not
/// a tick this instance may adopt. Anyone with access to Redis can PUBLISH anything, so a
/// message is checked, never trusted.
fn decode_message(
    feed: &Feed,
    message: &redis::Msg,
    rejections: &mut RejectionLog,
) -> Option<(usize, Tick)> {
    let channel = message.get_channel_name();
    let index = channel
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix(":tick:"))
        .and_then(|symbol| feed.index_of(symbol));
    let Some(index) = index else {
        // Not one of the channels subscribed to: Redis would have to misdeliver.
        rejections.record(feed, Rejection::WrongSymbol, channel);
        return None;
    };
    decode(
        feed,
        index,
        message.get_payload_bytes(),
        channel,
        rejections,
    )
}

/// The tick in `payload`, read from `source` (a channel or a key), if it passes [`check`]
/// as a tick of symbol `index`; otherwise counted and logged.
fn decode(
    feed: &Feed,
    index: usize,
    payload: &[u8],
    source: &str,
    rejections: &mut RejectionLog,
) -> Option<(usize, Tick)> {
    let symbol = feed.symbols().get(index)?;
    match check(payload, symbol, epoch_ms() as u64, feed.tick_interval()) {
        Ok(tick) => Some((index, tick)),
        Err(why) => {
            rejections.record(feed, why, source);
            None
        }
    }
}

/// At most one warning per reason in this long: a flood of forged messages must not turn
/// into a flood of log lines (each refusal is counted all the same).
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Counts refused ticks in the feed's stats (for `/metrics` and `/healthz`) and logs them,
/// rate-limited per reason: the first refusal is logged at once, later ones at most once per
/// [`LOG_EVERY`], saying how many went unlogged in between.
#[derive(Debug, Default)]
struct RejectionLog {
    /// When each reason (by [`Rejection`] position) was last logged.
    logged: [Option<Instant>; Rejection::ALL.len()],
    /// Refusals of each reason since it was last logged.
    unlogged: [u64; Rejection::ALL.len()],
}

impl RejectionLog {
    fn record(&mut self, feed: &Feed, why: Rejection, source: &str) {
        feed.count_rejected(why);
        let i = why as usize;
        if self.logged[i].is_some_and(|at| at.elapsed() < LOG_EVERY) {
            self.unlogged[i] += 1;
            return;
        }
        self.logged[i] = Some(Instant::now());
        let unlogged = std::mem::take(&mut self.unlogged[i]);
        warn!(
            %source,
            reason = why.label(),
            unlogged,
            "refused a tick read from Redis: {} (unlogged: more refusals for this reason \
             since the last line)",
            why.explain()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of refusals is counted in full but logged once per reason per interval.
    #[tokio::test(start_paused = true)]
    async fn refusals_are_all_counted_and_logged_at_most_once_per_interval() {
        let (feed, _relay) = Feed::relay(vec!["ACME".into()], Duration::from_millis(50));
        let mut log = RejectionLog::default();
        for _ in 0..100 {
            log.record(&feed, Rejection::SeqAhead, "tickerlab:tick:ACME");
        }
        log.record(&feed, Rejection::TooLarge, "tickerlab:tick:ACME");
        assert_eq!(feed.rejected(Rejection::SeqAhead), 100);
        assert_eq!(feed.rejected(Rejection::TooLarge), 1);
        assert_eq!(feed.status().rejected, 101);
        let (seq_ahead, too_large) = (Rejection::SeqAhead as usize, Rejection::TooLarge as usize);
        assert_eq!(log.unlogged[seq_ahead], 99, "logged the first only");
        assert_eq!(log.unlogged[too_large], 0);
        tokio::time::advance(LOG_EVERY).await;
        log.record(&feed, Rejection::SeqAhead, "tickerlab:tick:ACME");
        assert_eq!(
            log.unlogged[seq_ahead], 0,
            "logged again, with the 99 unlogged"
        );
    }
}
