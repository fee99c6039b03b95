//! The class view across instances: every instance's pages, votes and cost, summed through
//! the Redis the feed already uses, and the reveal shared by all of them.
//!
//! A class of 300 behind a load balancer lands on several instances, and the instructor's
//! `/class` socket reaches only one. So each instance puts its own share (its counts and its
//! cost per transport, [`Share`]) in one Redis hash, `tickerlab:class:instances`, under its own
//! field, once a second, and reads the others' back. An instance that stops simply stops
//! writing: a share older than [`SHARE_MAX_AGE`] is left out and deleted, and the whole hash
//! expires a minute after the last instance wrote.
//!
//! The reveal is a key, `tickerlab:class:revealed`, holding the reveal's time: the instance
//! whose class view revealed sets it (`SET NX`: the first reveal wins), and every instance
//! looks for it four times a second, then pushes it to its own pages. It expires after
//! [`REVEAL_TTL`], so a class the next day starts blind.
//!
//! What is read back is input like the ticks ([`super::check`]): anyone who can write to this
//! Redis can write there. A share is read only up to [`MAX_SHARE_BYTES`], only from a hash of
//! at most [`MAX_INSTANCES`] fields, must parse into the exact shape (no unknown fields,
//! numbers that fit their types, costs that are finite and plausible) and be recent, or it is
//! left out and counted in the log; only numbers reach the class view.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{Backoff, BackplaneError, client, connect};
use crate::class::{MAX_INTERVALS, Neighbours, Round, Share};
use crate::tick::epoch_ms;

/// The hash holding every instance's share: field = instance id, value = `{"at": epoch ms, "share": Share}` JSON.
pub const INSTANCES_KEY: &str = "tickerlab:class:instances";

/// The key holding the reveal's time (epoch ms), once an instructor revealed.
pub const REVEAL_KEY: &str = "tickerlab:class:revealed";

/// The largest share read back: an honest one is a few hundred bytes.
pub const MAX_SHARE_BYTES: usize = 4096;

/// Most instances counted: a hash with more fields is not read (and the log says why).
pub const MAX_INSTANCES: usize = 64;

/// A share older than this (by its own timestamp) belongs to an instance that stopped.
pub const SHARE_MAX_AGE: Duration = Duration::from_secs(5);

/// How long a reveal stays: a lesson's length, so that the next class starts blind.
pub const REVEAL_TTL: Duration = Duration::from_secs(2 * 3600);

/// How long the instances' hash stays after the last write.
const INSTANCES_TTL: Duration = Duration::from_secs(60);

/// One instance's share as stored: when it was written, and what.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stamped {
    /// The writer's clock (epoch ms).
    at: f64,
    share: Share,
}

/// The class's link to the other instances through Redis.
pub struct Redis {
    client: redis::Client,
    /// This instance's field in [`INSTANCES_KEY`].
    id: String,
    connection: Option<MultiplexedConnection>,
    backoff: Backoff,
    retry_at: Option<Instant>,
    /// The others' shares from the last full exchange, kept for the quick ones between.
    others: Vec<Share>,
}

impl Redis {
    /// A link for the Redis at `url` (connected on first use, and again after a failure).
    pub fn new(url: &str) -> Result<Redis, BackplaneError> {
        Ok(Redis {
            client: client(url)?,
            id: format!("{:016x}", rand::random::<u64>()),
            connection: None,
            backoff: Backoff::new(),
            retry_at: None,
            others: Vec::new(),
        })
    }

    async fn try_exchange(
        &mut self,
        mine: Option<&Share>,
        round: Round,
    ) -> redis::RedisResult<Option<f64>> {
        if self.connection.is_none() {
            self.connection = Some(connect(&self.client).await?);
        }
        let Some(con) = self.connection.as_mut() else {
            return Ok(None);
        };
        let mut pipe = redis::pipe();
        if let Some(at) = round.revealed_at {
            pipe.cmd("SET")
                .arg(REVEAL_KEY)
                .arg(at.to_string())
                .arg("NX")
                .arg("PX")
                .arg(REVEAL_TTL.as_millis() as u64)
                .ignore();
        }
        pipe.cmd("GET").arg(REVEAL_KEY);
        if let Some(share) = mine {
            let stamped = Stamped {
                at: epoch_ms(),
                share: share.clone(),
            };
            let json = serde_json::to_string(&stamped).unwrap_or_default();
            pipe.cmd("HSET")
                .arg(INSTANCES_KEY)
                .arg(&self.id)
                .arg(json)
                .ignore()
                .cmd("PEXPIRE")
                .arg(INSTANCES_KEY)
                .arg(INSTANCES_TTL.as_millis() as u64)
                .ignore()
                .cmd("HLEN")
                .arg(INSTANCES_KEY);
        }
        let (revealed, fields): (Option<Vec<u8>>, Option<usize>) = if mine.is_some() {
            pipe.query_async(con).await?
        } else {
            let (revealed,): (Option<Vec<u8>>,) = pipe.query_async(con).await?;
            (revealed, None)
        };
        if let Some(fields) = fields {
            self.others = if fields > MAX_INSTANCES {
                warn!(
                    fields,
                    max = MAX_INSTANCES,
                    "{INSTANCES_KEY} has too many fields: counting this instance only"
                );
                Vec::new()
            } else {
                let all: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
                    .arg(INSTANCES_KEY)
                    .query_async(con)
                    .await?;
                read_shares(con, &self.id, all).await
            };
        }
        Ok(revealed.as_deref().and_then(reveal_time))
    }
}

/// The shares in `all` but `id`'s own that pass every check; stale ones are deleted.
async fn read_shares(
    con: &mut MultiplexedConnection,
    id: &str,
    all: Vec<(String, Vec<u8>)>,
) -> Vec<Share> {
    let now = epoch_ms();
    let mut shares = Vec::new();
    for (field, bytes) in all {
        if field == id {
            continue;
        }
        match check_share(&bytes, now) {
            Ok(share) => shares.push(share),
            Err(Problem::Stale) => {
                let _: redis::RedisResult<()> = redis::cmd("HDEL")
                    .arg(INSTANCES_KEY)
                    .arg(&field)
                    .query_async(con)
                    .await;
            }
            Err(problem) => {
                debug!(field = %field.chars().take(32).collect::<String>(), ?problem, "class share refused")
            }
        }
    }
    shares
}

impl Neighbours for Redis {
    async fn exchange(&mut self, mine: Option<&Share>, round: Round) -> (Vec<Share>, Option<f64>) {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return (Vec::new(), None);
        }
        match self.try_exchange(mine, round).await {
            Ok(revealed) => {
                self.backoff.reset();
                self.retry_at = None;
                (self.others.clone(), revealed)
            }
            Err(e) => {
                let delay = self.backoff.next_delay();
                warn!(error = %e, retry_in = ?delay, "class view: Redis unreachable, counting this instance only");
                self.connection = None;
                self.others.clear();
                self.retry_at = Some(Instant::now() + delay);
                (Vec::new(), None)
            }
        }
    }
}

/// Why a share read from Redis was left out.
#[derive(Debug, PartialEq)]
enum Problem {
    TooLarge,
    Malformed,
    Stale,
    Implausible,
}

/// A share read from Redis, if it is one: small, exact shape, recent, plausible numbers.
fn check_share(bytes: &[u8], now_ms: f64) -> Result<Share, Problem> {
    if bytes.len() > MAX_SHARE_BYTES {
        return Err(Problem::TooLarge);
    }
    let stamped: Stamped = serde_json::from_slice(bytes).map_err(|_| Problem::Malformed)?;
    let max_age = SHARE_MAX_AGE.as_millis() as f64;
    if !stamped.at.is_finite() || (now_ms - stamped.at).abs() > max_age {
        return Err(Problem::Stale);
    }
    let share = stamped.share;
    if !share.cost.is_plausible() || share.counts.intervals.len() > MAX_INTERVALS {
        return Err(Problem::Implausible);
    }
    Ok(share)
}

/// The reveal time stored under [`REVEAL_KEY`], if it is one: a short decimal number within
/// the last [`REVEAL_TTL`] (and not in the future by more than a minute of clock skew).
fn reveal_time(bytes: &[u8]) -> Option<f64> {
    if bytes.len() > 32 {
        return None;
    }
    let at: f64 = std::str::from_utf8(bytes).ok()?.parse().ok()?;
    let now = epoch_ms();
    let oldest = now - REVEAL_TTL.as_millis() as f64;
    (at.is_finite() && at >= oldest && at <= now + 60_000.0).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::class::Counts;

    #[test]
    fn shares_from_redis_are_checked() {
        let now = epoch_ms();
        let good = serde_json::to_vec(&Stamped {
            at: now,
            share: Share {
                counts: Counts {
                    pages: 3,
                    ..Counts::default()
                },
                ..Share::default()
            },
        })
        .unwrap();
        assert_eq!(check_share(&good, now).unwrap().counts.pages, 3);
        assert_eq!(
            check_share(&good, now + 60_000.0).unwrap_err(),
            Problem::Stale
        );
        assert_eq!(
            check_share(&vec![b' '; 5000], now).unwrap_err(),
            Problem::TooLarge
        );
        let text = String::from_utf8(good.clone()).unwrap();
        let extra = text.replacen("{", "{\"html\":\"<b>hi</b>\",", 1);
        assert_eq!(
            check_share(extra.as_bytes(), now).unwrap_err(),
            Problem::Malformed
        );
        let negative = text.replacen("\"pages\":3", "\"pages\":-3", 1);
        assert_eq!(
            check_share(negative.as_bytes(), now).unwrap_err(),
            Problem::Malformed
        );
        let huge = text.replacen("\"cpu\":0.0", "\"cpu\":1e300", 1);
        assert_eq!(
            check_share(huge.as_bytes(), now).unwrap_err(),
            Problem::Implausible
        );
    }

    #[test]
    fn a_reveal_time_must_be_recent() {
        let now = epoch_ms();
        assert_eq!(reveal_time(now.to_string().as_bytes()), Some(now));
        assert_eq!(reveal_time(b"nan"), None);
        assert_eq!(reveal_time(b"1"), None);
        assert_eq!(reveal_time(&[b'9'; 40]), None);
    }
}
