//! What a fan-out run prints and writes: a section per part that ran, then the CSV, JSON and
//! SVG files under `target/tickerlab-bench/`, among them every step's seconds
//! (`fanout-seconds.csv`) and their plots (`fanout-seconds-<N>c-<tick>ms.svg`).

use crate::churn::{self, ChurnStep};
use crate::cli::Plan;
use crate::plot;
use crate::price::{self, PriceStep};
use crate::push_poll::{self, PollStep};
use crate::seconds_plot::{self, Panel};
use crate::step::Step;
use crate::step_table::{self, ws_table};
use crate::support::output;
use crate::tail::{self, TailRound};
use crate::timeline::{second_rows, seconds_table};
use crate::{beside_floor, idle, transient};

/// Everything one run measured, for the report.
pub struct Results {
    pub steps: Vec<Step>,
    pub floor: Vec<Step>,
    pub idle: Option<Step>,
    pub price: Option<PriceStep>,
    pub pushpoll: Option<(Step, PollStep)>,
    pub churn: Vec<ChurnStep>,
    pub tail: Vec<TailRound>,
}

/// Prints every part's section and writes the files.
pub fn report(machine: &str, plan: &Plan, results: &Results) {
    let Results {
        steps,
        floor,
        idle,
        price,
        pushpoll,
        churn,
        tail,
    } = results;
    let command = &plan.command;
    println!("\n## Fan-out: N WebSocket clients, server in a child process\n");
    println!("Machine: {machine}. Command: `{command}`.\n");
    let mut all: Vec<Step> = steps.to_vec();
    if !steps.is_empty() {
        step_table::report(steps);
    }
    if !floor.is_empty() {
        beside_floor::report(steps, floor);
    }
    transient::report(steps, floor);
    if let Some(idle) = idle {
        idle::report(idle);
        all.push(idle.clone());
    }
    if let Some(p) = price {
        price::report(p);
    }
    if let Some((push, poll)) = pushpoll {
        push_poll::report(push, poll);
    }
    if !churn.is_empty() {
        churn::report(churn, plan.churn_settle_secs);
    }
    if !tail.is_empty() {
        tail::report(tail, plan.neighbour);
    }
    write_seconds(plan, results);
    output::write("fanout.csv", &ws_table(&all).csv());
    if !floor.is_empty() {
        output::write(
            "fanout-floor.csv",
            &beside_floor::floor_table(steps, floor).csv(),
        );
    }
    let json = serde_json::json!({
        "bench": "fanout",
        "command": command,
        "machine": machine,
        "steps": steps,
        "floor": floor,
        "idle": idle,
        "price": price,
        "push": pushpoll.as_ref().map(|(push, _)| push),
        "poll": pushpoll.as_ref().map(|(_, poll)| poll),
        "churn": churn,
        "tail": tail.iter().map(|r| serde_json::json!({
            "round": r.round,
            "tickerlab": r.tickerlab,
            "floor": r.floor,
        })).collect::<Vec<_>>(),
    });
    output::write(
        "fanout.json",
        &serde_json::to_string_pretty(&json).unwrap_or_default(),
    );
    if !steps.is_empty() {
        let svg = output::out_dir().join("fanout.svg");
        match plot::fanout(&svg, steps) {
            Ok(()) => eprintln!("wrote {}", svg.display()),
            Err(e) => eprintln!("cannot draw {}: {e}", svg.display()),
        }
    }
}

/// Every step's seconds in `fanout-seconds.csv`, and a plot per (tick, clients): the tail's
/// rounds one panel each, or else the fan-out step beside the floor's.
fn write_seconds(plan: &Plan, results: &Results) {
    let mut t = seconds_table(&["server", "tick ms", "clients", "round", "neighbour"]);
    let numbered = results
        .steps
        .iter()
        .chain(&results.floor)
        .map(|s| (None, s))
        .chain(
            results
                .tail
                .iter()
                .flat_map(|r| [(Some(r.round), &r.tickerlab), (Some(r.round), &r.floor)]),
        );
    for (round, s) in numbered {
        for cells in second_rows(&s.timeline) {
            let mut row = vec![
                s.server.clone(),
                s.tick_ms.to_string(),
                s.clients.to_string(),
                round.map_or_else(|| "-".into(), |r: usize| r.to_string()),
                s.neighbour_cpu_pct.is_some().to_string(),
            ];
            row.extend(cells);
            t.rows.push(row);
        }
    }
    if t.rows.is_empty() {
        return;
    }
    output::write("fanout-seconds.csv", &t.csv());
    for panels in seconds_panels(results) {
        let first = panels[0].tickerlab;
        let (n, tick) = (first.clients, first.tick_ms);
        let neighbour = if plan.neighbour { "-neighbour" } else { "" };
        let svg = output::out_dir().join(format!("fanout-seconds-{n}c-{tick}ms{neighbour}.svg"));
        let title = format!(
            "{n} clients, tick {tick} ms, {}: delay second by second",
            if plan.neighbour {
                "a neighbour spinning on one core"
            } else {
                "no neighbour"
            }
        );
        match seconds_plot::seconds(&svg, &title, &panels) {
            Ok(()) => eprintln!("wrote {}", svg.display()),
            Err(e) => eprintln!("cannot draw {}: {e}", svg.display()),
        }
    }
}

/// The panels of each plot of seconds: one plot per (tick, clients).
fn seconds_panels(results: &Results) -> Vec<Vec<Panel<'_>>> {
    let caption = |round: &str, t: &Step, f: Option<&Step>| {
        let floor = f.map_or_else(String::new, |f| {
            format!(", {:.2} at the floor's", f.load_average)
        });
        format!(
            "{round}load average {:.2} at tickerlab's start{floor}; \
             dashed: last client joined, dotted: measuring starts",
            t.load_average
        )
    };
    if !results.tail.is_empty() {
        return tail::scenarios(&results.tail)
            .into_iter()
            .map(|rounds| {
                rounds
                    .into_iter()
                    .map(|r| Panel {
                        caption: caption(
                            &format!("round {}: ", r.round),
                            &r.tickerlab,
                            Some(&r.floor),
                        ),
                        tickerlab: &r.tickerlab,
                        floor: Some(&r.floor),
                    })
                    .collect()
            })
            .collect();
    }
    results
        .steps
        .iter()
        .map(|s| {
            let floor = results
                .floor
                .iter()
                .find(|f| f.clients == s.clients && f.tick_ms == s.tick_ms);
            vec![Panel {
                caption: caption("", s, floor),
                tickerlab: s,
                floor,
            }]
        })
        .collect()
}
