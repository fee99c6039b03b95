//! The class: what the instructor's view (`/class`, see [`crate::http::class`]) shows of the
//! pages in the room, and the blind test played as one class vote.
//!
//! Every page tells the server, over the WebSocket it already holds, which panes it has
//! switched on (a `report`), and a page at `/?blind` also sends its answer (a `vote`: "A is
//! the WebSocket"). The session that received it keeps the page's seat in [`Class`] through
//! a [`Pupil`], so a page that closes its socket leaves the count at once, however it goes.
//! The instructor's **Reveal** is pushed down to every blind page ([`Round`], a `watch`
//! channel every session waits on), and the class view learns how many were right.
//!
//! What leaves a page for the class view is counts and a letter: a report is a few numbers
//! and booleans, a vote is `A` or `B`, each checked before it is kept. No text a student
//! typed can reach the projector.
//!
//! Twice a second at most, and at least once a second, one task ([`spawn`]) turns the seats
//! and the server's counters into one JSON snapshot ([`View`]), built once for every class
//! socket; with `--redis` it also shares this instance's counts with the others and adds
//! theirs in ([`crate::backplane::class`]).
//!
//! The per-page letters are drawn on each page (static/js/blind.js), so "A" on one laptop
//! may be the WebSocket and on the next the polling pane: a neighbour's answer tells nothing.
//! That is why a page sends which letter its WebSocket pane has along with its report, and
//! why the class view shows *how many were right*, after the reveal only.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, Transport};

pub mod cost;
use crate::tick::{ServerMessage, epoch_ms};
pub use cost::{COST_WINDOW, Cost, CostWindow, Rates};

/// The shortest and longest class key `--class-key` accepts.
pub const KEY_LENGTH: RangeInclusive<usize> = 8..=128;

/// The polling intervals a page may report, the same range its pane accepts
/// (`static/js/http-pane.js`).
pub const POLL_MS: RangeInclusive<u32> = 50..=60_000;

/// How many distinct polling intervals the class view lists; the rest count as "other".
pub const MAX_INTERVALS: usize = 6;

/// A blind-test letter: the pane names a student sees before the reveal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Letter {
    /// Pane A.
    A,
    /// Pane B.
    B,
}

/// The panes a page has switched on, as it reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Panes {
    /// HTTP polling, and its interval in milliseconds; `None` when the page does not poll.
    pub poll_ms: Option<u32>,
    /// Long polling.
    pub longpoll: bool,
    /// Server-Sent Events.
    pub sse: bool,
    /// The WebSocket pane.
    pub ws: bool,
}

/// The state of the class vote, pushed to every session: `revealed_at` is set (the server's
/// epoch ms) once the instructor revealed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Round {
    /// When the reveal happened, on the server's clock; `None` while the test is blind.
    pub revealed_at: Option<f64>,
}

/// One page's seat: what it reported and answered.
#[derive(Debug, Clone, Copy)]
struct Seat {
    panes: Panes,
    /// The letter of this page's WebSocket pane; `Some` only on a blind-test page.
    ws_letter: Option<Letter>,
    answer: Option<Letter>,
}

/// The class of one server: the seats, the vote, the key, and the snapshot class views get.
/// One lives in [`crate::http::AppState`], shared by every worker.
pub struct Class {
    key: String,
    seats: Mutex<Seats>,
    round: watch::Sender<Round>,
    /// Woken when a seat changes, so the class view follows within a moment.
    changed: Notify,
    view: watch::Sender<Arc<str>>,
}

#[derive(Default)]
struct Seats {
    next: u64,
    by_id: HashMap<u64, Seat>,
}

impl std::fmt::Debug for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key: a debug log must not print it.
        f.debug_struct("Class").finish_non_exhaustive()
    }
}

impl Default for Class {
    /// A class with a fresh random key.
    fn default() -> Class {
        Class::new(random_key())
    }
}

impl Class {
    /// A class whose view opens with `key`.
    pub fn new(key: String) -> Class {
        Class {
            key,
            seats: Mutex::default(),
            round: watch::Sender::new(Round::default()),
            changed: Notify::new(),
            view: watch::Sender::new(Arc::from("{\"type\":\"class\",\"pages\":0}")),
        }
    }

    /// The class key (for the start-up message and tests; never logged).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether `given` is the class key, compared in constant time: how long the comparison
    /// takes says nothing about how many leading characters were right.
    pub fn admits(&self, given: &str) -> bool {
        constant_time_eq(given.as_bytes(), self.key.as_bytes())
    }

    /// The vote's state now.
    pub fn round(&self) -> Round {
        *self.round.borrow()
    }

    /// Reveals to every page (the instructor's button; with `--redis`, also another
    /// instance's). Only the first reveal counts: its time is the one pages measure from.
    pub fn reveal(&self, at: f64) -> bool {
        let revealed = self.round.send_if_modified(|round| {
            if round.revealed_at.is_some() {
                return false;
            }
            round.revealed_at = Some(at);
            true
        });
        self.changed.notify_one();
        revealed
    }

    /// A new seat's handle, for one WebSocket session. The page takes its seat with its first
    /// `report`; until then it is not counted.
    pub fn pupil(self: &Arc<Self>) -> Pupil {
        Pupil {
            class: self.clone(),
            seat: None,
            blind: false,
            told: false,
            round: self.round.subscribe(),
        }
    }

    /// The newest snapshot for class views, and a receiver to wait for the next.
    pub fn view(&self) -> watch::Receiver<Arc<str>> {
        self.view.subscribe()
    }

    /// This instance's counts now.
    pub fn counts(&self) -> Counts {
        let seats = self.seats.lock().unwrap_or_else(|e| e.into_inner());
        Counts::of(seats.by_id.values())
    }

    fn seats(&self) -> std::sync::MutexGuard<'_, Seats> {
        self.seats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One session's part in the class: its page's seat (once reported) and the vote's state.
/// Dropped with the session, which gives the seat up.
pub struct Pupil {
    class: Arc<Class>,
    seat: Option<u64>,
    /// The page reported a blind-test letter: it is told of the reveal...
    blind: bool,
    /// ...once.
    told: bool,
    round: watch::Receiver<Round>,
}

/// Why a page's class message was refused: the `error` it gets.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    /// A polling interval outside [`POLL_MS`].
    #[error("poll_ms {0} is out of range: report {min} to {max} ms, or null when not polling", min = POLL_MS.start(), max = POLL_MS.end())]
    PollMs(u32),
    /// A vote from a page that is not on the blind test.
    #[error("only a blind-test page (/?blind) votes: send a report with ws_letter first")]
    NotBlind,
    /// A vote after the reveal.
    #[error("the vote is over: the instructor revealed the answer")]
    Revealed,
    /// A page asked to reveal.
    #[error("only the class view (/class) can reveal")]
    NotTheInstructor,
}

impl Refused {
    /// The `error` message's code.
    pub fn code(&self) -> &'static str {
        match self {
            Refused::PollMs(_) => "bad_report",
            Refused::NotBlind => "not_blind",
            Refused::Revealed => "revealed",
            Refused::NotTheInstructor => "not_allowed",
        }
    }
}

impl Pupil {
    /// The page's report of its panes (and, on a blind-test page, its WebSocket pane's
    /// letter). Takes a seat the first time; answers with `reveal` when the vote is over
    /// already (a page that loaded, or reconnected, after the reveal).
    pub fn report(
        &mut self,
        panes: Panes,
        ws_letter: Option<Letter>,
    ) -> Result<Vec<ServerMessage>, Refused> {
        if let Some(ms) = panes.poll_ms
            && !POLL_MS.contains(&ms)
        {
            return Err(Refused::PollMs(ms));
        }
        {
            let mut seats = self.class.seats();
            let id = *self.seat.get_or_insert_with(|| {
                seats.next += 1;
                seats.next
            });
            let seat = seats.by_id.entry(id).or_insert(Seat {
                panes,
                ws_letter,
                answer: None,
            });
            seat.panes = panes;
            if seat.ws_letter != ws_letter {
                // A page never changes its letters; one that says so has been reloaded.
                seat.answer = None;
            }
            seat.ws_letter = ws_letter;
        }
        self.blind = ws_letter.is_some();
        self.class.changed.notify_one();
        let round = *self.round.borrow_and_update();
        Ok(match (ws_letter, round.revealed_at) {
            (Some(_), Some(at)) if !self.told => {
                self.told = true;
                vec![ServerMessage::Reveal { at }]
            }
            _ => Vec::new(),
        })
    }

    /// The page's answer, replacing its earlier one: one answer per page, changeable until
    /// the reveal.
    pub fn vote(&mut self, answer: Letter) -> Result<ServerMessage, Refused> {
        if self.class.round().revealed_at.is_some() {
            return Err(Refused::Revealed);
        }
        {
            let mut seats = self.class.seats();
            let seat = self
                .seat
                .and_then(|id| seats.by_id.get_mut(&id))
                .filter(|seat| seat.ws_letter.is_some())
                .ok_or(Refused::NotBlind)?;
            seat.answer = Some(answer);
        }
        self.class.changed.notify_one();
        Ok(ServerMessage::Voted { answer })
    }

    /// Resolves with the reveal's time when the instructor reveals, on a blind-test page that
    /// has not been told yet (and counts it told); never otherwise. Cancel-safe: it only
    /// waits and reads until it returns.
    ///
    /// A session waits on this in its loop, so its state is part of every idle session's
    /// memory: a page that is not on the blind test waits on nothing (no bytes), and a blind
    /// one keeps the waiting in a box of its own (one pointer inline).
    pub fn revealed(&mut self) -> impl std::future::Future<Output = f64> + '_ {
        use futures_util::future::Either;
        if !self.blind || self.told {
            return Either::Left(std::future::pending());
        }
        Either::Right(Box::pin(async move {
            loop {
                if let Some(at) = self.round.borrow_and_update().revealed_at {
                    self.told = true;
                    return at;
                }
                if self.round.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }))
    }
}

impl Drop for Pupil {
    fn drop(&mut self) {
        if let Some(id) = self.seat {
            self.class.seats().by_id.remove(&id);
            self.class.changed.notify_one();
        }
    }
}

/// What one instance counts of its pages: how many, which panes, and the vote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Pages that reported.
    pub pages: u32,
    /// Pages polling over HTTP.
    pub http: u32,
    /// The polling intervals in use, `[ms, pages]`, most used first (at most
    /// [`MAX_INTERVALS`]; the rest are in `http` only).
    pub intervals: Vec<(u32, u32)>,
    /// Pages long polling.
    pub longpoll: u32,
    /// Pages with an event stream.
    pub sse: u32,
    /// Pages with the WebSocket pane on.
    pub ws: u32,
    /// Pages on the blind test.
    pub blind: u32,
    /// Blind-test pages that said "A is the WebSocket".
    pub said_a: u32,
    /// Blind-test pages that said "B is the WebSocket".
    pub said_b: u32,
    /// Answers that named the page's WebSocket pane.
    pub right: u32,
}

impl Counts {
    fn of<'a>(seats: impl Iterator<Item = &'a Seat>) -> Counts {
        let mut counts = Counts::default();
        let mut intervals: HashMap<u32, u32> = HashMap::new();
        for seat in seats {
            counts.pages += 1;
            if let Some(ms) = seat.panes.poll_ms {
                counts.http += 1;
                *intervals.entry(ms).or_default() += 1;
            }
            counts.longpoll += u32::from(seat.panes.longpoll);
            counts.sse += u32::from(seat.panes.sse);
            counts.ws += u32::from(seat.panes.ws);
            if let Some(letter) = seat.ws_letter {
                counts.blind += 1;
                match seat.answer {
                    Some(Letter::A) => counts.said_a += 1,
                    Some(Letter::B) => counts.said_b += 1,
                    None => {}
                }
                counts.right += u32::from(seat.answer == Some(letter));
            }
        }
        counts.intervals = top_intervals(intervals);
        counts
    }

    /// The sum of several instances' counts (saturating: the numbers came from Redis).
    pub fn add(&mut self, other: &Counts) {
        let mut intervals: HashMap<u32, u32> = self.intervals.iter().copied().collect();
        for (ms, n) in &other.intervals {
            let entry = intervals.entry(*ms).or_default();
            *entry = entry.saturating_add(*n);
        }
        self.intervals = top_intervals(intervals);
        for (mine, theirs) in [
            (&mut self.pages, other.pages),
            (&mut self.http, other.http),
            (&mut self.longpoll, other.longpoll),
            (&mut self.sse, other.sse),
            (&mut self.ws, other.ws),
            (&mut self.blind, other.blind),
            (&mut self.said_a, other.said_a),
            (&mut self.said_b, other.said_b),
            (&mut self.right, other.right),
        ] {
            *mine = mine.saturating_add(theirs);
        }
    }
}

fn top_intervals(intervals: HashMap<u32, u32>) -> Vec<(u32, u32)> {
    let mut intervals: Vec<(u32, u32)> = intervals.into_iter().collect();
    intervals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    intervals.truncate(MAX_INTERVALS);
    intervals
}

/// One instance's share of the class view: what it sends the others through Redis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share {
    /// Its pages and their votes.
    pub counts: Counts,
    /// Its cost per transport.
    pub cost: Cost,
}

/// The snapshot every class view is sent: `{"type":"class", ...}`.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// Always `"class"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// How many server instances these figures cover (1 without `--redis`).
    pub instances: u32,
    /// Pages, panes and answers, summed over the instances.
    #[serde(flatten)]
    pub counts: Counts,
    /// Blind-test pages that have not answered.
    pub unanswered: u32,
    /// Answers that named the WebSocket pane: only once revealed, so that the projector does
    /// not give the answer away while the class still votes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right_after_reveal: Option<u32>,
    /// When the instructor revealed (server epoch ms), if they have.
    pub revealed_at: Option<f64>,
    /// The cost per transport, named in `transports`' order.
    pub cost: Cost,
    /// The transports' names, in the order of `cost.transports`.
    pub transports: [&'static str; Transport::ALL.len()],
    /// The server's clock when this snapshot was made (epoch ms).
    pub server_ts: f64,
}

impl View {
    /// The snapshot as JSON text, without the shared count of right answers (`right`):
    /// before the reveal it would give the answer away on the projector, and after it,
    /// `right_after_reveal` says it.
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(fields) = value.as_object_mut() {
            fields.remove("right");
        }
        value.to_string()
    }

    /// The snapshot of `share` (this instance's and the others', summed) for `round`.
    pub fn new(share: &Share, instances: u32, round: Round) -> View {
        let counts = share.counts.clone();
        let answered = counts.said_a.saturating_add(counts.said_b);
        View {
            kind: "class",
            instances,
            unanswered: counts.blind.saturating_sub(answered),
            right_after_reveal: round.revealed_at.map(|_| counts.right),
            revealed_at: round.revealed_at,
            counts,
            cost: share.cost,
            transports: Transport::ALL.map(Transport::label),
            server_ts: epoch_ms(),
        }
    }
}

/// How the class task hears from other instances. Four times a second it shares the vote's
/// state (a reveal made here) and learns of a reveal made elsewhere; once a second it also
/// shares this instance's counts and cost (`mine`) and gets the other live instances'.
/// Implemented over Redis by [`crate::backplane::class::Redis`].
pub trait Neighbours: Send + 'static {
    /// Shares `round` (and `mine`, when given); returns the other instances' shares (as of
    /// the last full exchange) and the reveal time any instance recorded.
    fn exchange(
        &mut self,
        mine: Option<&Share>,
        round: Round,
    ) -> impl std::future::Future<Output = (Vec<Share>, Option<f64>)> + Send;
}

/// No other instances: the class is this process's pages.
pub struct Alone;

impl Neighbours for Alone {
    async fn exchange(&mut self, _: Option<&Share>, _: Round) -> (Vec<Share>, Option<f64>) {
        (Vec::new(), None)
    }
}

/// How often the class task looks at the vote across instances (a reveal made on another
/// instance reaches this one's pages within this, plus the other's own wait).
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// Every how many looks the counters are sampled and shares exchanged: once a second.
const SAMPLE_EVERY: u32 = 4;

/// The least time between two snapshots: a burst of votes makes one, not hundreds.
const COALESCE: Duration = Duration::from_millis(150);

/// Starts the class task: samples the counters once a second, rebuilds the class view's
/// snapshot then and shortly after any seat changes, exchanges shares with `neighbours`,
/// and stops with `shutdown`.
pub fn spawn(
    class: Arc<Class>,
    metrics: Arc<Metrics>,
    mut neighbours: impl Neighbours,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut window = CostWindow::new(&metrics);
        let mut every = tokio::time::interval(LOOK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut looks = 0u32;
        let mut others = Vec::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {
                    looks = looks.wrapping_add(1);
                    let full = looks % SAMPLE_EVERY == 1;
                    let mine = full.then(|| {
                        window.sample(&metrics);
                        Share { counts: class.counts(), cost: window.cost() }
                    });
                    let (theirs, revealed) = neighbours.exchange(mine.as_ref(), class.round()).await;
                    if let Some(at) = revealed {
                        class.reveal(at);
                    }
                    if !full {
                        continue;
                    }
                    others = theirs;
                }
                _ = class.changed.notified() => {
                    tokio::time::sleep(COALESCE).await;
                }
            }
            let mut total = Share {
                counts: class.counts(),
                cost: window.cost(),
            };
            for share in &others {
                total.counts.add(&share.counts);
                total.cost.add(&share.cost);
            }
            let view = View::new(&total, 1 + others.len() as u32, class.round());
            class.view.send_replace(Arc::from(view.to_json()));
        }
    });
}

/// A fresh class key: 16 random bytes as 32 hex digits.
pub fn random_key() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only, not on where
/// they differ: every byte pair is compared, and the differences are OR-ed together before
/// anything is decided. (A length mismatch returns at once: the key's length is no secret.)
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_comparison_is_exact() {
        assert!(constant_time_eq(b"abcdef12", b"abcdef12"));
        assert!(!constant_time_eq(b"abcdef12", b"abcdef13"));
        assert!(!constant_time_eq(b"abcdef12", b"abcdef1"));
        assert!(!constant_time_eq(b"", b"x"));
        let class = Class::new("secret-key".into());
        assert!(class.admits("secret-key"));
        assert!(!class.admits("Secret-key"));
        assert_eq!(random_key().len(), 32);
    }

    #[test]
    fn one_answer_per_page_changeable_until_the_reveal() {
        let class = Arc::new(Class::new("k".repeat(8)));
        let mut page = class.pupil();
        assert_eq!(page.vote(Letter::A), Err(Refused::NotBlind));
        let panes = Panes {
            poll_ms: Some(1000),
            ws: true,
            ..Panes::default()
        };
        assert_eq!(page.report(panes, Some(Letter::B)), Ok(Vec::new()));
        page.vote(Letter::A).unwrap();
        page.vote(Letter::B).unwrap();
        let counts = class.counts();
        assert_eq!(
            (
                counts.pages,
                counts.blind,
                counts.said_a,
                counts.said_b,
                counts.right
            ),
            (1, 1, 0, 1, 1)
        );
        assert_eq!(counts.intervals, vec![(1000, 1)]);
        assert!(class.reveal(5.0));
        assert!(!class.reveal(6.0), "only the first reveal counts");
        assert_eq!(page.vote(Letter::A), Err(Refused::Revealed));
        // A page that reports after the reveal is told at once.
        let mut late = class.pupil();
        assert_eq!(
            late.report(panes, Some(Letter::A)),
            Ok(vec![ServerMessage::Reveal { at: 5.0 }])
        );
        // Told once: neither a second report nor the push tells it again.
        assert_eq!(late.report(panes, Some(Letter::A)), Ok(Vec::new()));
        let again = futures_util::FutureExt::now_or_never(late.revealed());
        assert_eq!(again, None, "a page is told of the reveal once");
        drop(page);
        assert_eq!(class.counts().pages, 1);
    }

    #[test]
    fn reports_are_checked() {
        let class = Arc::new(Class::default());
        let mut page = class.pupil();
        let panes = Panes {
            poll_ms: Some(1),
            ..Panes::default()
        };
        assert_eq!(page.report(panes, None), Err(Refused::PollMs(1)));
        assert_eq!(class.counts().pages, 0);
    }

    #[test]
    fn counts_add_up_and_implausible_costs_are_refused() {
        let mut a = Counts {
            pages: 2,
            intervals: vec![(1000, 2)],
            ..Counts::default()
        };
        let b = Counts {
            pages: u32::MAX,
            intervals: vec![(1000, 1), (250, 1)],
            ..Counts::default()
        };
        a.add(&b);
        assert_eq!(a.pages, u32::MAX);
        assert_eq!(a.intervals, vec![(1000, 3), (250, 1)]);
        let mut cost = Cost::default();
        assert!(cost.is_plausible());
        cost.transports[0].per_sec = f64::NAN;
        assert!(!cost.is_plausible());
    }
}
