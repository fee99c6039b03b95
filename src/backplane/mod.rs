//! The Redis backplane: one feed, many instances. How tickerlab scales out.
//!
//! One process holds every WebSocket it accepted: a socket is a TCP connection, and only the
//! process that owns it can write to it. So when a class of 300 browsers outgrows one
//! process, the answer is not to share sockets but to share the *feed*: one **publisher**
//! instance runs the market and puts every tick on Redis; any number of **front-end**
//! instances subscribe and fan the ticks out to their own sockets. (Socket.IO's Redis
//! adapter and SignalR's backplane are the same idea.)
//!
//! ```text
//!  publisher (--feed-publisher)          Redis                     front-ends (--redis)
//!  market -> feed -> PUBLISH  -->  tickerlab:tick:ACME   -->  SUBSCRIBE -> relay -> watch -> sockets
//!                    SET      -->  tickerlab:latest:ACME -->  GET at (re)connect
//!                    lease    -->  tickerlab:publisher
//!                    SET      -->  tickerlab:settings    -->  GET at (re)connect: same symbols?
//! ```
//!
//! The decisions, and where each is made:
//!
//! * **The wire format is the tick itself.** The publisher publishes each symbol's
//!   pre-serialised JSON, byte for byte what its own clients get.
//! * **The channel is input.** Anyone who can `PUBLISH` can put anything on a channel, so a
//!   front-end checks every tick it reads (size first, then shape, symbol, numbers, and a
//!   `seq` its run can have reached: [`check`]), counts what it refuses, and serialises what
//!   it adopts itself, once per tick: a client receives only JSON its server wrote
//!   ([`subscriber`]).
//! * **One channel per symbol** (`tickerlab:tick:ACME`), so another consumer (a chart
//!   service, `redis-cli SUBSCRIBE tickerlab:tick:ACME`) can take just the symbols it wants.
//!   The publisher sends all symbols of a tick in one pipeline; a front-end applies whatever
//!   arrived together as one snapshot, so its sessions still wake once per tick.
//! * **Latest value in a key** (`tickerlab:latest:ACME`), because pub/sub has no memory: a
//!   front-end that starts, or reconnects after an outage, would otherwise have nothing to
//!   answer `GET /price` with until the next tick.
//! * **Subscribe first, then read the latest**, and keep a tick only if its `seq` is newer
//!   than the one held *in the same run*. Reading first would lose any tick published
//!   between the read and the subscription; subscribing first can only deliver ticks
//!   *older* than the key, and the `seq` rule drops those ([`crate::feed::Relay::publish`]).
//! * **Every tick names its run** ([`crate::tick::RunId`]), the publisher's, so all
//!   front-ends of one publisher report the same run and a restarted publisher (counting
//!   from 1 again, perhaps after Redis lost every key) is followed at once instead of being
//!   ignored as "older".
//! * **Nothing is queued for Redis.** The publisher forwards from the feed's latest-value
//!   channel: while Redis is slow or down, intermediate ticks are skipped (front-ends see a
//!   `seq` gap, as a slow WebSocket client does), never buffered ([`publisher`]).
//! * **One publisher, enforced by a lease.** Two publishers would interleave two different
//!   random walks under the same `seq` numbers, and front-ends would show a mix. The
//!   publisher holds `tickerlab:publisher` (`SET ... PX 3000`, renewed every second): a
//!   second publisher is refused at start-up, and a publisher that finds the lease taken by
//!   another stops publishing and says so in `/healthz`. Every publish is *fenced* by the
//!   lease: one script checks it and writes, so a publisher paused past its lease cannot
//!   slip one last tick in ([`publish_fenced`]).

pub mod check;
pub mod class;
pub mod publisher;
pub mod subscriber;

use std::time::Duration;

/// Every key and channel tickerlab uses starts with this, so it can share a Redis.
pub const PREFIX: &str = "tickerlab";

/// The pub/sub channel of one symbol's ticks: `tickerlab:tick:ACME`.
pub fn tick_channel(symbol: &str) -> String {
    format!("{PREFIX}:tick:{symbol}")
}

/// The key holding one symbol's newest tick: `tickerlab:latest:ACME`.
pub fn latest_key(symbol: &str) -> String {
    format!("{PREFIX}:latest:{symbol}")
}

/// The key holding the publisher's feed settings, `{"symbols":[...],"tick_ms":200}`, so a
/// front-end started with different `--symbols` or `--tick-ms` can say so in its log
/// instead of silently serving `503` for a symbol nobody publishes.
pub const SETTINGS_KEY: &str = "tickerlab:settings";

/// The feed settings every instance of one backplane must share, as the publisher writes
/// them to [`SETTINGS_KEY`].
pub fn settings_json(feed: &crate::feed::Feed) -> String {
    serde_json::json!({
        "symbols": feed.symbols(),
        "tick_ms": feed.tick_interval().as_millis() as u64,
    })
    .to_string()
}

/// The key whose value names the publisher in charge: `tickerlab:publisher`.
pub const LEASE_KEY: &str = "tickerlab:publisher";

/// How long the lease lasts without renewal. A publisher that dies is replaced at most this
/// long after; a live one renews every [`LEASE_RENEW`].
pub const LEASE_TTL: Duration = Duration::from_secs(3);

/// How often the publisher renews its lease: a third of [`LEASE_TTL`], so two missed
/// renewals (a busy machine, a Redis hiccup) do not cost it the lease.
pub const LEASE_RENEW: Duration = Duration::from_secs(1);

/// How long connecting to Redis, or one command, may take before the link counts as down.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the backplane could not start.
#[derive(Debug, thiserror::Error)]
pub enum BackplaneError {
    /// The URL is not one the Redis client understands.
    #[error("--redis {url:?} is not a usable Redis URL: {source}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What the client said.
        source: redis::RedisError,
    },
    /// A publisher must reach Redis at start-up (to claim its lease and continue `seq`).
    #[error(
        "cannot reach Redis at {url} to start publishing: {source} \
         (is redis-server running? try `redis-server --port 6379 --save ''`)"
    )]
    Unreachable {
        /// The URL given.
        url: String,
        /// What the client said.
        source: redis::RedisError,
    },
    /// Another publisher holds the lease.
    #[error(
        "another feed publisher is running ({holder}): only one may publish to a Redis. \
         Start this instance without --feed-publisher to make it a front-end, or stop the \
         other publisher (its lease expires {} s after it stops)",
        LEASE_TTL.as_secs()
    )]
    PublisherTaken {
        /// The lease holder's description of itself.
        holder: String,
    },
}

/// Claims the publisher lease for `id`, or renews it if `id` already holds it, in one atomic
/// step (a Lua script runs without interleaving other commands). Returns the holder after
/// the call: `id` if we hold the lease, someone else's id if not.
///
/// A plain `SET NX` claims but cannot renew safely: "GET, compare, then PEXPIRE" from the
/// client could extend a lease another publisher took in between.
pub fn claim_lease(id: &str) -> redis::Cmd {
    const SCRIPT: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return holder
"#;
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(SCRIPT)
        .arg(1)
        .arg(LEASE_KEY)
        .arg(id)
        .arg(LEASE_TTL.as_millis() as u64);
    cmd
}

/// Publishes one tick of every symbol *only if `id` holds the lease*, in one atomic step:
/// for each symbol, `SET` its latest key and `PUBLISH` the same JSON on its channel. Returns
/// the holder found: `id` when it published, another publisher's id (or an empty string,
/// the lease having expired) when it did not.
///
/// Why a script: checking the lease and then publishing as two commands is a race. A
/// publisher paused past its lease (a stalled VM, a long GC-like stop) whose connection
/// survived would PUBLISH once more after another publisher took over, overwriting the
/// latest keys with its own, older numbering. Redis runs a script without interleaving
/// other commands, so the check and the writes are one step: a fenced-off publisher writes
/// nothing. (A free lease is claimed, as [`claim_lease`] does: that is the publisher
/// resuming after a Redis restart.)
///
/// `ticks` are `(latest key, channel, JSON)`. Keys are passed as `KEYS` (the lease first),
/// channels and texts as `ARGV`, as Redis asks of scripts.
pub fn publish_fenced<'a>(
    id: &str,
    ticks: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> redis::Cmd {
    // Sent with each tick (a few hundred bytes): EVALSHA would save them, at the price of
    // the `script` feature and a reload after every Redis restart.
    const SCRIPT: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif holder ~= ARGV[1] then
  return holder
end
for i = 2, #KEYS do
  local channel, json = ARGV[2 * i - 1], ARGV[2 * i]
  redis.call('SET', KEYS[i], json)
  redis.call('PUBLISH', channel, json)
end
return ARGV[1]
"#;
    let ticks: Vec<(&str, &str, &str)> = ticks.into_iter().collect();
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(SCRIPT).arg(1 + ticks.len()).arg(LEASE_KEY);
    for (key, _, _) in &ticks {
        cmd.arg(*key);
    }
    cmd.arg(id).arg(LEASE_TTL.as_millis() as u64);
    for (_, channel, json) in &ticks {
        cmd.arg(*channel).arg(*json);
    }
    cmd
}

/// Reconnection delays: 100 ms, doubling up to 2 s, each with random jitter so that many
/// front-ends cut off by the same Redis restart do not all reconnect in the same instant.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(2);

    /// A backoff at its first, shortest delay.
    pub fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// Back to the shortest delay: call once a connection works again.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The delay before the next attempt (between half and all of the current step), and
    /// doubles the step.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next.mul_f64(0.5 + rand::random::<f64>() / 2.0);
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

/// A multiplexed async connection whose connect and every command give up after
/// [`REDIS_TIMEOUT`]: a Redis that hangs must look like a Redis that is down, so the caller
/// backs off and retries instead of waiting forever.
pub async fn connect(
    client: &redis::Client,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Opens a Redis client for `url` (no I/O yet).
pub fn client(url: &str) -> Result<redis::Client, BackplaneError> {
    redis::Client::open(url).map_err(|source| BackplaneError::BadUrl {
        url: url.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap_and_resets() {
        let mut b = Backoff::new();
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= Backoff::FIRST);
        assert!(delays.iter().all(|d| *d <= Backoff::MAX));
        assert!(delays[7] >= Backoff::MAX / 2);
        b.reset();
        assert!(b.next_delay() <= Backoff::FIRST);
    }

    #[test]
    fn names_are_namespaced_per_symbol() {
        assert_eq!(tick_channel("ACME"), "tickerlab:tick:ACME");
        assert_eq!(latest_key("ACME"), "tickerlab:latest:ACME");
    }
}
