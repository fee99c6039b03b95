//! The Redis channel is input: what a tick read from Redis must be before a front-end
//! adopts it.
//!
//! Anyone who can `PUBLISH` on `tickerlab:tick:ACME` can put any bytes there, and whatever a
//! front-end adopts it shows every client it has, and keeps in its history. So a message is
//! checked like any other input, cheapest rule first, and refused with a [`Rejection`] at the
//! first rule it breaks:
//!
//! 1. **size**: at most [`MAX_TICK_BYTES`], looked at before anything is parsed (a tick is
//!    about 150 bytes; an 8 MiB one would sit in the history and go to every client);
//! 2. **shape**: JSON of a tick (UTF-8, every field of the right type);
//! 3. **symbol**: the tick's symbol is its channel's;
//! 4. **numbers**: `price` finite and above 0, `change` and `ts` finite, `seq` at least 1;
//! 5. **run**: it did not begin in the future (beyond [`CLOCK_SKEW`]): the relay follows the
//!    latest run, so a run from the year 10889 would hide every real one;
//! 6. **seq**: no further ahead than its run can have counted ([`seq_ceiling`]): the relay
//!    keeps only a newer `seq`, so one tick at `seq` 2^64-1 would hold its symbol forever.
//!
//! A tick that passes is *data*: the relay serialises it again
//! ([`crate::wire::Published::serialise`]), so a client only ever receives JSON this server
//! wrote, never bytes from Redis.
//!
//! What the rules cannot do is tell a forged tick that breaks none of them from a real one:
//! a plausible price in the real run is adopted. They bound what one message can do (a
//! `seq` within the ceiling holds its symbol back at most until the real numbering passes
//! it); keeping strangers off the channel is Redis's job (a password, ACLs, a private
//! network).

use std::time::Duration;

use crate::tick::{RunId, Tick};

/// The largest message read as a tick: a real one is about 150 bytes (symbol, price,
/// change, seq, ts, run), so 1 KiB leaves room for a long symbol name and fields a newer
/// publisher may add, and refuses anything that could weigh on memory.
pub const MAX_TICK_BYTES: usize = 1024;

/// How far ahead of this machine's clock another instance's clock may be. A run that
/// began later than now plus this is refused; the `seq` ceiling counts this much time as
/// possibly elapsed. Machines with NTP are within milliseconds of each other.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The `seq` ceiling allows twice the ticks the elapsed time can hold, plus this many: a
/// publisher a little faster than this front-end's `--tick-ms`, or one whose interval
/// timer fired early, is never refused.
pub const SEQ_SLACK: u64 = 1000;

/// Why a tick read from Redis was refused. Each has its own counter in `/metrics`
/// (`tickerlab_backplane_ticks_rejected_total{reason="..."}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Larger than [`MAX_TICK_BYTES`]; not parsed.
    TooLarge,
    /// Not the JSON of a tick.
    Malformed,
    /// A tick of another symbol than its channel's (or on a channel of no symbol served).
    WrongSymbol,
    /// A price, change or timestamp that is not a finite number (or a price of 0 or
    /// less), or `seq` 0.
    BadNumber,
    /// A run that begins in the future, beyond [`CLOCK_SKEW`].
    FutureRun,
    /// A `seq` beyond what its run can have counted ([`seq_ceiling`]).
    SeqAhead,
}

impl Rejection {
    /// Every reason, in the order `/metrics` lists them.
    pub const ALL: [Rejection; 6] = [
        Rejection::TooLarge,
        Rejection::Malformed,
        Rejection::WrongSymbol,
        Rejection::BadNumber,
        Rejection::FutureRun,
        Rejection::SeqAhead,
    ];

    /// The label value in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::TooLarge => "too_large",
            Rejection::Malformed => "malformed",
            Rejection::WrongSymbol => "wrong_symbol",
            Rejection::BadNumber => "bad_number",
            Rejection::FutureRun => "future_run",
            Rejection::SeqAhead => "seq_ahead",
        }
    }

    /// What was wrong, for the log.
    pub fn explain(self) -> &'static str {
        match self {
            Rejection::TooLarge => "larger than a tick can be (1 KiB)",
            Rejection::Malformed => "not the JSON of a tick",
            Rejection::WrongSymbol => "a tick of another symbol than its channel's",
            Rejection::BadNumber => {
                "a price, change or ts that is not a finite number, a price of 0 or less, or seq 0"
            }
            Rejection::FutureRun => "a run that begins in the future",
            Rejection::SeqAhead => "a seq further ahead than its run can have counted",
        }
    }
}

/// The tick in `payload` if it may be adopted as a tick of `symbol`, by the rules of the
/// module documentation; `now_ms` is this machine's clock (Unix epoch ms) and
/// `tick_interval` the feed's, which every instance shares.
pub fn check(
    payload: &[u8],
    symbol: &str,
    now_ms: u64,
    tick_interval: Duration,
) -> Result<Tick, Rejection> {
    if payload.len() > MAX_TICK_BYTES {
        return Err(Rejection::TooLarge);
    }
    let tick: Tick = serde_json::from_slice(payload).map_err(|_| Rejection::Malformed)?;
    if tick.symbol != symbol {
        return Err(Rejection::WrongSymbol);
    }
    let numbers_ok = tick.price.is_finite()
        && tick.price > 0.0
        && tick.change.is_finite()
        && tick.ts.is_finite()
        && tick.seq >= 1;
    if !numbers_ok {
        return Err(Rejection::BadNumber);
    }
    if tick.run.start_ms() > now_ms.saturating_add(CLOCK_SKEW.as_millis() as u64) {
        return Err(Rejection::FutureRun);
    }
    if tick.seq > seq_ceiling(tick.run, now_ms, tick_interval) {
        return Err(Rejection::SeqAhead);
    }
    Ok(tick)
}

/// The highest `seq` run `run` can have reached by `now_ms`: twice the ticks of
/// `tick_interval` that fit between the run's beginning and now (counting [`CLOCK_SKEW`] as
/// possibly elapsed too, for a clock behind the publisher's), plus [`SEQ_SLACK`].
///
/// A run's time is when its *numbering* began, carried over by a replacement publisher
/// ([`RunId::continuing`]), so a numbering that outlives many publishers stays under it.
pub fn seq_ceiling(run: RunId, now_ms: u64, tick_interval: Duration) -> u64 {
    let elapsed_ms = now_ms
        .saturating_add(CLOCK_SKEW.as_millis() as u64)
        .saturating_sub(run.start_ms());
    let interval_ms = (tick_interval.as_millis() as u64).max(1);
    (elapsed_ms / interval_ms)
        .saturating_mul(2)
        .saturating_add(SEQ_SLACK)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_795_895_822_123;
    const TICK: Duration = Duration::from_millis(50);

    /// A run that began `ago` before [`NOW`].
    fn run_begun(ago: Duration) -> RunId {
        RunId(((NOW - ago.as_millis() as u64) << 16) | 0x4c1d)
    }

    fn text(run: RunId, seq: u64) -> String {
        format!(
            r#"{{"type":"tick","symbol":"ACME","price":101.23,"change":0.12,"seq":{seq},"ts":1795895822123.456,"run":"{run}"}}"#
        )
    }

    #[test]
    fn a_real_tick_passes() {
        let run = run_begun(Duration::from_secs(3600));
        let tick = check(text(run, 72_000).as_bytes(), "ACME", NOW, TICK).expect("a real tick");
        assert_eq!((tick.run, tick.seq), (run, 72_000));
    }

    #[test]
    fn each_rule_refuses_with_its_reason() {
        let run = run_begun(Duration::from_secs(10));
        let refused = |payload: &str, symbol: &str| check(payload.as_bytes(), symbol, NOW, TICK);
        let padded = text(run, 5).replace(
            r#""seq""#,
            &format!(r#""pad":"{}","seq""#, "x".repeat(1024)),
        );
        assert_eq!(refused(&padded, "ACME"), Err(Rejection::TooLarge));
        assert_eq!(refused("not json", "ACME"), Err(Rejection::Malformed));
        assert_eq!(
            refused(r#"{"type":"tick","symbol":"ACME"}"#, "ACME"),
            Err(Rejection::Malformed)
        );
        assert_eq!(refused(&text(run, 5), "GLOBX"), Err(Rejection::WrongSymbol));
        for bad in [
            text(run, 5).replace("101.23", "0"),
            text(run, 5).replace("101.23", "-3.5"),
            text(run, 0),
        ] {
            assert_eq!(refused(&bad, "ACME"), Err(Rejection::BadNumber), "{bad}");
        }
        // JSON has no infinity: a number too large for an f64 is not a number at all.
        assert_eq!(
            refused(&text(run, 5).replace("101.23", "1e999"), "ACME"),
            Err(Rejection::Malformed)
        );
        assert_eq!(
            refused(&text(RunId(u64::MAX), 1), "ACME"),
            Err(Rejection::FutureRun)
        );
        assert_eq!(
            refused(&text(run, u64::MAX), "ACME"),
            Err(Rejection::SeqAhead)
        );
    }

    /// Clocks disagree a little: a run that began within [`CLOCK_SKEW`] ahead of this
    /// machine's clock is accepted, and so are its first ticks.
    #[test]
    fn a_publisher_clock_a_little_ahead_is_not_refused() {
        let ahead = RunId(((NOW + 59_000) << 16) | 1);
        assert!(check(text(ahead, 1).as_bytes(), "ACME", NOW, TICK).is_ok());
        let beyond = RunId(((NOW + 61_000) << 16) | 1);
        assert_eq!(
            check(text(beyond, 1).as_bytes(), "ACME", NOW, TICK),
            Err(Rejection::FutureRun)
        );
    }

    #[test]
    fn the_ceiling_is_twice_the_possible_ticks_plus_slack() {
        let skew_ticks = CLOCK_SKEW.as_millis() as u64 / 50;
        let ceiling = |ago| seq_ceiling(run_begun(ago), NOW, TICK);
        assert_eq!(ceiling(Duration::ZERO), 2 * skew_ticks + SEQ_SLACK);
        assert_eq!(
            ceiling(Duration::from_secs(3600)),
            2 * (72_000 + skew_ticks) + SEQ_SLACK
        );
        // A publisher 1.9 times as fast as this front-end for an hour is still followed.
        assert!(ceiling(Duration::from_secs(3600)) >= 72_000 * 19 / 10);
        // No overflow at the extremes.
        assert_eq!(seq_ceiling(RunId(u64::MAX), NOW, TICK), SEQ_SLACK);
        assert!(seq_ceiling(RunId::UNKNOWN, u64::MAX, Duration::ZERO) > 0);
    }
}
