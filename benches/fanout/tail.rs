//! The tail, round after round (`--only tail`): at each tick and number of clients, `--rounds`
//! rounds of tickerlab's fan-out step and the floor's, each against a fresh server, tickerlab
//! first in odd rounds and the floor first in even ones ([`order`]).
//!
//! One run of a step says little about its slowest deliveries: on a shared machine a p99 moves
//! from run to run, and a stall that comes once a minute is in one run and not the next. So
//! the tail part repeats the pair and prints, per round, what the issue asks about: p50, p99
//! and p99.9 over the measuring window, the worst second of the whole run (join included) and
//! where it fell, and the server's CPU time per message delivered in the measuring window,
//! each against the floor's in the same round. With `--neighbour` every step
//! of every round has a process spinning on one core beside it.
//!
//! The join scenario is the same part with many clients (`--clients 5000`): they all start
//! connecting at once (at most [`crate::crowd::CONNECT_CONCURRENCY`] handshakes in flight),
//! and the timeline shows what the clients already connected received meanwhile.

use crate::cli::Plan;
use crate::step::{Step, step_line, ws_step};
use crate::support::output::{self, Table, num};
use crate::support::server::Kind;
use crate::support::stats::median;
use crate::timeline::{worst_at_cell, worst_p99_cell};

/// One round: tickerlab's step and the floor's, one after the other (see [`order`]), and with
/// `--pinned-floor` the pinned floor's.
pub struct TailRound {
    /// 1, 2, ...
    pub round: usize,
    pub tickerlab: Step,
    pub floor: Step,
    pub pinned: Option<Step>,
}

impl TailRound {
    /// The round's steps in the order of its rows: tickerlab, the floor, the pinned floor.
    fn steps(&self) -> impl Iterator<Item = &Step> {
        [
            Some(&self.tickerlab),
            Some(&self.floor),
            self.pinned.as_ref(),
        ]
        .into_iter()
        .flatten()
    }
}

/// Runs every round the plan asks for, at each tick and number of clients.
pub async fn tail_rounds(plan: &Plan) -> Vec<TailRound> {
    let mut rounds = Vec::new();
    for &tick_ms in &plan.ticks {
        for &n in &plan.clients {
            let transient = plan.transient_for(n, tick_ms);
            for round in 1..=plan.rounds {
                let (mut tickerlab, mut floor, mut pinned) = (None, None, None);
                for kind in order(round, plan.pinned_floor) {
                    let step = ws_step(kind, n, tick_ms, plan.secs, transient, plan.neighbour);
                    let step = step.await;
                    eprintln!("round {round}: {}", step_line(&step));
                    match kind {
                        Kind::Tickerlab => tickerlab = Some(step),
                        Kind::Floor => floor = Some(step),
                        Kind::PinnedFloor => pinned = Some(step),
                    }
                }
                rounds.push(TailRound {
                    round,
                    tickerlab: tickerlab.expect("tickerlab's step"),
                    floor: floor.expect("the floor's step"),
                    pinned,
                });
            }
        }
    }
    rounds
}

/// Which server goes first in a round: tickerlab in odd rounds, the floor in even ones. Each
/// step runs against a machine that the step before it has just left (its sockets in
/// TIME_WAIT, its memory freed, the clients' threads warm), so a fixed order would give one
/// server that state every time; alternating gives it to each in turn. With the pinned floor
/// the three take turns: round 1 tickerlab, floor, pinned; round 2 floor, pinned, tickerlab...
pub fn order(round: usize, pinned: bool) -> Vec<Kind> {
    if pinned {
        let mut kinds = vec![Kind::Tickerlab, Kind::Floor, Kind::PinnedFloor];
        kinds.rotate_left((round + 2) % 3);
        return kinds;
    }
    if round % 2 == 1 {
        vec![Kind::Tickerlab, Kind::Floor]
    } else {
        vec![Kind::Floor, Kind::Tickerlab]
    }
}

/// The rounds of each (tick, clients), their ratios to the floor and their seconds.
pub fn report(rounds: &[TailRound], neighbour: bool) {
    let mut all = tail_table();
    for scenario in scenarios(rounds) {
        let first = &scenario[0].tickerlab;
        println!(
            "\n### The tail: {} clients at a {} ms tick, rounds: {}, {}\n",
            first.clients,
            first.tick_ms,
            scenario.len(),
            if neighbour {
                "with a neighbour spinning on one core"
            } else {
                "no neighbour"
            }
        );
        let mut t = tail_table();
        for r in &scenario {
            t.rows.extend(r.steps().map(|s| round_row(r.round, s)));
        }
        print!("{}", t.markdown());
        all.rows.extend(t.rows);
        ratios(&scenario);
        pinned_ratios(&scenario);
        print!("{}", seconds_matrix(&scenario).markdown());
    }
    output::write("fanout-tail.csv", &all.csv());
}

/// The rounds grouped by (tick, clients), in the order they ran.
pub fn scenarios(rounds: &[TailRound]) -> Vec<Vec<&TailRound>> {
    let mut groups: Vec<Vec<&TailRound>> = Vec::new();
    for r in rounds {
        let same = |g: &Vec<&TailRound>| {
            g[0].tickerlab.tick_ms == r.tickerlab.tick_ms
                && g[0].tickerlab.clients == r.tickerlab.clients
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some(group) => group.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups
}

fn tail_table() -> Table {
    Table::new(&[
        "round",
        "server",
        "tick ms",
        "clients",
        "load average",
        "join s",
        "delay p50 ms",
        "delay p99 ms",
        "delay p99.9 ms",
        "delay max ms",
        "worst second p99 ms",
        "worst second",
        "lost",
        "server CPU us / msg",
        "client CPU us / msg",
        "neighbour CPU %",
    ])
}

fn round_row(round: usize, s: &Step) -> Vec<String> {
    vec![
        round.to_string(),
        s.server.clone(),
        s.tick_ms.to_string(),
        crate::step_table::clients_cell(s),
        num(s.load_average, 2),
        num(s.timeline.joined_at, 2),
        num(s.delay.p50, 2),
        num(s.delay.p99, 2),
        num(s.delay.p999, 2),
        num(s.delay.max, 2),
        worst_p99_cell(&s.timeline),
        worst_at_cell(&s.timeline),
        s.lost.to_string(),
        num(s.server_cpu_us_per_msg, 2),
        num(client_cpu_us_per_msg(s), 2),
        s.neighbour_cpu_pct
            .map_or_else(|| "-".into(), |c| num(c, 0)),
    ]
}

/// The bench's own CPU time per message received, in microseconds: the clients' work, the
/// same for either server (read a frame, parse it, record its delay). It is the control of a
/// round: when it differs between the two steps, the machine itself ran at another speed (on
/// a shared virtual machine, the host's other guests), and the server's CPU per message
/// moves with it.
pub fn client_cpu_us_per_msg(s: &Step) -> f64 {
    s.client_cpu_pct * 1e4 / s.msgs_per_sec.max(1.0)
}

/// A figure the ratio lines compare: its name and how to read it from a step.
type Figure = (&'static str, fn(&Step) -> f64);

const P50: Figure = ("p50", |s| s.delay.p50);
const P99: Figure = ("p99", |s| s.delay.p99);
const CPU: Figure = ("CPU / msg", |s| s.server_cpu_us_per_msg);
const CONTROL: Figure = ("client CPU / msg (the control)", client_cpu_us_per_msg);

const FIGURES: [Figure; 6] = [
    P50,
    P99,
    ("p99.9", |s| s.delay.p999),
    ("worst second p99", |s| {
        s.timeline.worst().map_or(f64::NAN, |w| w.delay.p99)
    }),
    CPU,
    CONTROL,
];

/// tickerlab / floor for each figure, per round, then the median of the rounds.
fn ratios(scenario: &[&TailRound]) {
    println!();
    let ratio = |r: &TailRound, f: fn(&Step) -> f64| f(&r.tickerlab) / f(&r.floor);
    for r in scenario {
        let cells: Vec<String> = FIGURES
            .iter()
            .map(|(name, f)| format!("{name} {} x", num(ratio(r, *f), 2)))
            .collect();
        println!(
            "* round {}: tickerlab / floor: {}.",
            r.round,
            cells.join(", ")
        );
    }
    let medians: Vec<String> = FIGURES
        .iter()
        .map(|(name, f)| {
            let of_rounds = scenario.iter().map(|r| ratio(r, *f)).collect();
            format!("{name} {} x", num(median(of_rounds), 2))
        })
        .collect();
    println!(
        "* median of the rounds (the lower middle one when even): {}.\n",
        medians.join(", ")
    );
}

/// The figures the pinned floor is compared on: p50, p99, CPU per message and the control.
const PINNED_FIGURES: [Figure; 4] = [P50, P99, CPU, CONTROL];

/// `a / b` for each of [`PINNED_FIGURES`].
type Ratios = [f64; 4];

/// With the pinned floor: what the fixed assignment of sockets costs the floor (pinned /
/// work-stealing), and tickerlab against a floor that has it too (tickerlab / pinned), per
/// round and the median of the rounds.
fn pinned_ratios(scenario: &[&TailRound]) {
    let of = |a: &Step, b: &Step| -> Ratios { PINNED_FIGURES.map(|(_, f)| f(a) / f(b)) };
    let rounds: Vec<(usize, Ratios, Ratios)> = scenario
        .iter()
        .filter_map(|r| {
            let pinned = r.pinned.as_ref()?;
            Some((r.round, of(pinned, &r.floor), of(&r.tickerlab, pinned)))
        })
        .collect();
    if rounds.is_empty() {
        return;
    }
    for (round, pinned, tickerlab) in &rounds {
        println!(
            "* round {round}: pinned floor / floor: {}; tickerlab / pinned floor: {}.",
            pinned_cells(*pinned),
            pinned_cells(*tickerlab),
        );
    }
    let pinned: Vec<Ratios> = rounds.iter().map(|r| r.1).collect();
    let tickerlab: Vec<Ratios> = rounds.iter().map(|r| r.2).collect();
    println!(
        "* median of the rounds: pinned floor / floor: {}; tickerlab / pinned floor: {}.\n",
        pinned_cells(medians(&pinned)),
        pinned_cells(medians(&tickerlab)),
    );
}

/// The median of each figure over the rounds.
fn medians(rounds: &[Ratios]) -> Ratios {
    std::array::from_fn(|i| median(rounds.iter().map(|r| r[i]).collect()))
}

/// Each ratio as `name ratio x`, joined.
fn pinned_cells(ratios: Ratios) -> String {
    PINNED_FIGURES
        .iter()
        .zip(ratios)
        .map(|((name, _), ratio)| format!("{name} {} x", num(ratio, 2)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each second's p99, one column per round and server: where in the run the tail was.
fn seconds_matrix(scenario: &[&TailRound]) -> Table {
    let mut header = vec!["second".to_string()];
    for r in scenario {
        header.push(format!("round {} tickerlab p99 ms", r.round));
        header.push(format!("round {} floor p99 ms", r.round));
        if r.pinned.is_some() {
            header.push(format!("round {} pinned floor p99 ms", r.round));
        }
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = Table::new(&header);
    let seconds = scenario
        .iter()
        .flat_map(|r| r.steps())
        .map(|s| s.timeline.seconds.len())
        .max()
        .unwrap_or(0);
    for at in 0..seconds {
        let mut row = vec![at.to_string()];
        for s in scenario.iter().flat_map(|r| r.steps()) {
            let second = s.timeline.seconds.get(at).filter(|s| s.delay.count > 0);
            row.push(second.map_or_else(String::new, |s| num(s.delay.p99, 2)));
        }
        t.rows.push(row);
    }
    t
}
