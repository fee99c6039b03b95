//! What a fan-out run prints and writes: a section per part that ran, then the CSV, JSON and
//! SVG files under `target/tickerlab-bench/`.

use crate::churn::{self, ChurnStep};
use crate::cli::Plan;
use crate::plot;
use crate::price::{self, PriceStep};
use crate::push_poll::{self, PollStep};
use crate::step::Step;
use crate::step_table::{self, ws_table};
use crate::support::output;
use crate::{beside_floor, idle, transient};

/// Everything one run measured, for the report.
pub struct Results {
    pub steps: Vec<Step>,
    pub floor: Vec<Step>,
    pub idle: Option<Step>,
    pub price: Option<PriceStep>,
    pub pushpoll: Option<(Step, PollStep)>,
    pub churn: Vec<ChurnStep>,
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
