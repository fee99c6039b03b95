//! The publisher side of the backplane (`--redis URL --feed-publisher`): this instance runs
//! the market as usual (its own clients are served from its in-process feed, unchanged) and
//! forwards every tick to Redis for the front-ends.
//!
//! Start-up is strict, run time is forgiving. At start-up the publisher must reach Redis:
//! it claims the publisher lease (a second publisher is refused here, with a message saying
//! who holds it) and reads the newest tick so that its ticks continue the numbering
//! front-ends already hold, in a run that keeps the time that numbering began
//! ([`RunId::continuing`]). Once running, a Redis outage costs nothing but the ticks
//! published during it: the forwarder reconnects with backoff, re-claims its lease and
//! republishes the current snapshot, which also restores the `latest` keys a restarted Redis
//! forgot.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::check::{check, seq_ceiling};
use super::{
    Backoff, BackplaneError, LEASE_RENEW, REDIS_TIMEOUT, SETTINGS_KEY, claim_lease, client,
    connect, latest_key, publish_fenced, settings_json, tick_channel,
};
use crate::feed::{Feed, FeedTask, Snapshot};
use crate::market::Market;
use crate::tick::{RedisLink, RunId, epoch_ms};

/// Starts a publisher: claims the lease, continues `seq` from Redis, starts the market's
/// feed and the task that forwards it to Redis. `describe` names this instance in the lease
/// (e.g. its address), so a refused second publisher can say which one is in charge.
///
/// This talks to Redis synchronously (for at most a few seconds) because it runs once,
/// before the server accepts anything, and a publisher that cannot claim its lease must not
/// start at all.
pub fn start(
    url: &str,
    market: Market,
    tick_interval: Duration,
    describe: &str,
) -> Result<(Feed, FeedTask), BackplaneError> {
    let client = client(url)?;
    let unreachable = |source| BackplaneError::Unreachable {
        url: url.to_owned(),
        source,
    };
    let mut con = client
        .get_connection_with_timeout(REDIS_TIMEOUT)
        .map_err(unreachable)?;
    con.set_read_timeout(Some(REDIS_TIMEOUT))
        .map_err(unreachable)?;
    con.set_write_timeout(Some(REDIS_TIMEOUT))
        .map_err(unreachable)?;

    let id = format!(
        "pid {} at {describe}, run {:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let holder: String = claim_lease(&id).query(&mut con).map_err(unreachable)?;
    if holder != id {
        return Err(BackplaneError::PublisherTaken { holder });
    }

    let symbols: Vec<String> = market.specs().map(|s| s.name.clone()).collect();
    let keys: Vec<String> = symbols.iter().map(|s| latest_key(s)).collect();
    let latest: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(&keys)
        .query(&mut con)
        .map_err(unreachable)?;
    let (last_seq, first_run) = numbering(&symbols, &latest, tick_interval);
    info!(%id, last_seq, run = %first_run, "holding the publisher lease; seq continues after {last_seq}");

    let (feed, task) = Feed::start_after(
        market,
        tick_interval,
        last_seq,
        first_run,
        Some(RedisLink::Connected),
    );
    // The first tick goes out before `serve` returns, so the `latest` keys and settings
    // exist as soon as this instance is up, even if it stops before its task first runs.
    let first = redis::cmd("SET")
        .arg(SETTINGS_KEY)
        .arg(settings_json(&feed))
        .query::<()>(&mut con)
        .and_then(|()| fenced(&names(&feed), &feed.latest(), &id).query::<String>(&mut con));
    match first {
        Ok(holder) if holder == id => {}
        Ok(holder) => {
            task.stop();
            return Err(BackplaneError::PublisherTaken { holder });
        }
        Err(source) => {
            task.stop();
            return Err(unreachable(source));
        }
    }
    let handle = tokio::spawn(run(client.clone(), feed.clone(), id.clone()));
    Ok((feed, task.with(handle).with_farewell(release(client, id))))
}

/// Where this publisher's numbering starts, from the `latest` keys read at start-up (one per
/// symbol): after the newest `seq` there, in a run that continues that tick's run, so that
/// clients which ignore the run never see `seq` go back. A key is read as front-ends read
/// it ([`check`]): one they would refuse is not continued from.
///
/// The numbering starts afresh (`seq` 1, a run starting now) when there is nothing to
/// continue (no key, or none that passes the check: a numbering counted at a much faster
/// `--tick-ms` than this one does not), or when continuing would put `seq` beyond what
/// front-ends accept for the new run's time ([`seq_ceiling`]; possible only with keys of
/// several runs). Front-ends follow a new run at once, whatever its `seq`.
fn numbering(
    symbols: &[String],
    latest: &[Option<Vec<u8>>],
    tick_interval: Duration,
) -> (u64, RunId) {
    let now_ms = epoch_ms() as u64;
    let ticks: Vec<_> = symbols
        .iter()
        .zip(latest)
        .filter_map(|(symbol, bytes)| {
            let bytes = bytes.as_deref()?;
            check(bytes, symbol, now_ms, tick_interval)
                .inspect_err(|why| {
                    warn!(%symbol, reason = why.label(), "not continuing from the latest key: {}", why.explain());
                })
                .ok()
        })
        .collect();
    let Some(newest) = ticks.iter().map(|t| t.run).max() else {
        return (0, RunId::new());
    };
    let last_seq = ticks.iter().map(|t| t.seq).max().unwrap_or(0);
    let run = RunId::continuing(newest);
    if last_seq < seq_ceiling(run, now_ms, tick_interval) {
        (last_seq, run)
    } else {
        warn!(
            last_seq,
            "the latest keys' seq is more than front-ends accept for its run: starting the \
             numbering afresh in a new run"
        );
        (0, RunId::new())
    }
}

/// Gives the lease back on a graceful shutdown, if this instance still holds it, so that a
/// replacement publisher is accepted at once instead of being refused until the lease
/// expires ([`LEASE_TTL`](super::LEASE_TTL) later). Best effort and bounded by the Redis
/// timeouts: if Redis cannot be reached, the lease simply expires.
///
/// It runs as the feed's farewell, once the forwarding task has stopped
/// ([`FeedTask::shutdown`]): a fenced publish finds a free lease and claims it, so one sent
/// after the release would hold the lease again for [`LEASE_TTL`](super::LEASE_TTL).
async fn release(client: redis::Client, id: String) {
    let released: redis::RedisResult<u32> = match connect(&client).await {
        Ok(mut con) => release_lease(&id).query_async(&mut con).await,
        Err(e) => Err(e),
    };
    match released {
        Ok(1) => info!("publisher lease released"),
        Ok(_) => info!("publisher lease already gone or taken over: nothing to release"),
        Err(e) => warn!(error = %e, "could not release the publisher lease; it expires by itself"),
    }
}

/// Deletes the lease only if `id` holds it, in one atomic step (like [`claim_lease`]: a
/// `GET` then `DEL` from the client could delete a lease another publisher took in between).
/// Returns 1 if it was deleted.
fn release_lease(id: &str) -> redis::Cmd {
    const SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(SCRIPT).arg(1).arg(super::LEASE_KEY).arg(id);
    cmd
}

/// Why one connection's forwarding ended.
enum Ended {
    /// Redis went away or failed a command: reconnect.
    Redis(redis::RedisError),
    /// Another publisher holds the lease (named here): stop publishing for good.
    LeaseLost(String),
    /// The feed itself stopped (the server is shutting down).
    FeedStopped,
}

impl From<redis::RedisError> for Ended {
    fn from(e: redis::RedisError) -> Ended {
        Ended::Redis(e)
    }
}

/// The forwarding task: one connection at a time, reconnecting with backoff.
async fn run(client: redis::Client, feed: Feed, id: String) {
    let mut snapshots = feed.subscribe();
    let mut backoff = Backoff::new();
    loop {
        match forward(&client, &feed, &mut snapshots, &id, &mut backoff).await {
            Ended::Redis(e) => {
                feed.set_link(Some(RedisLink::Down));
                warn!(error = %e, "Redis link lost; reconnecting (ticks are not queued meanwhile)");
            }
            Ended::LeaseLost(holder) => {
                feed.set_link(Some(RedisLink::LeaseLost));
                error!(
                    %holder,
                    "another publisher took the lease: this instance stops publishing to Redis \
                     (it keeps serving its own clients); restart it without --feed-publisher"
                );
                return;
            }
            Ended::FeedStopped => return,
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Forwards every new snapshot over one connection, renewing the lease between ticks.
async fn forward(
    client: &redis::Client,
    feed: &Feed,
    snapshots: &mut watch::Receiver<std::sync::Arc<Snapshot>>,
    id: &str,
    backoff: &mut Backoff,
) -> Ended {
    let mut con = match connect(client).await {
        Ok(con) => con,
        Err(e) => return e.into(),
    };
    let names = names(feed);
    if let Err(ended) = renew(&mut con, id).await {
        return ended;
    }
    // (Re)state the settings front-ends must share: a restarted Redis forgot them.
    let settings: redis::RedisResult<()> = redis::cmd("SET")
        .arg(SETTINGS_KEY)
        .arg(settings_json(feed))
        .query_async(&mut con)
        .await;
    if let Err(e) = settings {
        return e.into();
    }
    feed.set_link(Some(RedisLink::Connected));
    backoff.reset();
    // Publish what we have at once: after a Redis restart the `latest` keys are gone, and a
    // front-end that reconnects before our next tick would have nothing newer to read.
    let current = snapshots.borrow_and_update().clone();
    if let Err(ended) = publish(&mut con, &names, &current, id).await {
        return ended;
    }
    let mut lease = tokio::time::interval(LEASE_RENEW);
    loop {
        tokio::select! {
            // The feed ticked. The watch channel holds only the newest snapshot, so if the
            // previous PUBLISH was slow we skip to the newest here: nothing queues up.
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return Ended::FeedStopped;
                }
                let snapshot = snapshots.borrow_and_update().clone();
                if let Err(ended) = publish(&mut con, &names, &snapshot, id).await {
                    return ended;
                }
            }
            // Time to renew the lease (and to notice if someone else holds it).
            _ = lease.tick() => {
                if let Err(ended) = renew(&mut con, id).await {
                    return ended;
                }
            }
        }
    }
}

/// Renews (or re-claims, after a Redis restart) the lease for `id`.
async fn renew(con: &mut MultiplexedConnection, id: &str) -> Result<(), Ended> {
    let holder: String = claim_lease(id).query_async(con).await?;
    if holder == id {
        Ok(())
    } else {
        Err(Ended::LeaseLost(holder))
    }
}

/// Each symbol's `(latest key, tick channel)`, in snapshot order.
fn names(feed: &Feed) -> Vec<(String, String)> {
    feed.symbols()
        .iter()
        .map(|s| (latest_key(s), tick_channel(s)))
        .collect()
}

/// One round trip per tick: a script that, if `id` still holds the lease, `SET`s each
/// symbol's latest key and `PUBLISH`es the same bytes on its channel ([`publish_fenced`]).
/// The bytes are the tick's one serialisation.
fn fenced(names: &[(String, String)], snapshot: &Snapshot, id: &str) -> redis::Cmd {
    publish_fenced(
        id,
        names
            .iter()
            .zip(&snapshot.ticks)
            .map(|((key, channel), published)| (key.as_str(), channel.as_str(), &*published.json)),
    )
}

/// Sends [`fenced`] over the forwarding connection; a publish refused because another
/// publisher holds the lease ends forwarding for good.
async fn publish(
    con: &mut MultiplexedConnection,
    names: &[(String, String)],
    snapshot: &Snapshot,
    id: &str,
) -> Result<(), Ended> {
    let holder: String = fenced(names, snapshot, id).query_async(con).await?;
    if holder == id {
        Ok(())
    } else {
        Err(Ended::LeaseLost(holder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(50);

    fn key(run: RunId, seq: u64) -> Option<Vec<u8>> {
        let text = format!(
            r#"{{"type":"tick","symbol":"ACME","price":1.5,"change":0.5,"seq":{seq},"ts":1.5,"run":"{run}"}}"#
        );
        Some(text.into_bytes())
    }

    fn run_begun_ago(ms: u64) -> RunId {
        RunId(((epoch_ms() as u64 - ms) << 16) | 0x4c1d)
    }

    #[test]
    fn a_replacement_continues_the_numbering_in_a_run_that_keeps_its_time() {
        let symbols = ["ACME".to_owned(), "GLOBX".to_owned()];
        let hour_old = run_begun_ago(3_600_000);
        let (last_seq, run) = numbering(&symbols, &[key(hour_old, 72_000), None], TICK);
        assert_eq!(last_seq, 72_000);
        assert!(run > hour_old);
        assert_eq!(run.start_ms(), hour_old.start_ms() + 1);
    }

    #[test]
    fn the_numbering_starts_afresh_when_there_is_nothing_plausible_to_continue() {
        let symbols = ["ACME".to_owned()];
        let fresh =
            |(seq, run): (u64, RunId)| seq == 0 && run.start_ms() + 1000 > epoch_ms() as u64;
        assert!(fresh(numbering(&symbols, &[None], TICK)));
        // A key front-ends would refuse is not continued from: more ticks than its run can
        // have made at this publisher's --tick-ms, a run from the future, not a tick.
        let minute_old = run_begun_ago(60_000);
        let too_far = [key(minute_old, 1_000_000)];
        assert!(fresh(numbering(&symbols, &too_far, TICK)));
        assert!(fresh(numbering(&symbols, &[key(RunId(u64::MAX), 5)], TICK)));
        let not_a_tick = [Some(b"not json".to_vec())];
        assert!(fresh(numbering(&symbols, &not_a_tick, TICK)));
        // Keys of two runs (a symbol another numbering left behind): the newest run cannot
        // have reached the other key's seq.
        let two = ["ACME".to_owned(), "GLOBX".to_owned()];
        let globx = key(run_begun_ago(1000), 5).map(|k| {
            String::from_utf8(k)
                .unwrap()
                .replace("ACME", "GLOBX")
                .into_bytes()
        });
        let latest = [key(run_begun_ago(3_600_000), 72_000), globx];
        assert!(fresh(numbering(&two, &latest, TICK)));
    }
}
