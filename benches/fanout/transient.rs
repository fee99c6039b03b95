//! The start-up transient: the first seconds after the last client joined, recorded apart
//! (`--transient-secs`) and set beside the steady window after them.

use crate::step::Step;
use crate::step_table::clients_cell;
use crate::support::output::{self, Table, num};

/// The steps that recorded a transient (tickerlab's and the floor's), both windows each.
pub fn report(steps: &[Step], floor: &[Step]) {
    let transients: Vec<&Step> = steps
        .iter()
        .chain(floor.iter())
        .filter(|s| s.transient.is_some())
        .collect();
    if !transients.is_empty() {
        println!(
            "\n### Start-up transient: the first seconds after the last client joined, apart\n"
        );
        let mut t = Table::new(&[
            "server",
            "tick ms",
            "clients",
            "window",
            "messages",
            "delay p50 ms",
            "delay p99 ms",
            "delay p99.9 ms",
            "delay max ms",
            "lost",
        ]);
        for s in &transients {
            let Some(tr) = s.transient else { continue };
            for (window, d, lost) in [
                (
                    format!("first {} s after the last join", s.transient_secs),
                    tr,
                    s.transient_lost,
                ),
                (
                    format!("steady: the {:.1} s after", s.secs),
                    s.delay,
                    s.lost,
                ),
            ] {
                t.rows.push(vec![
                    s.server.clone(),
                    s.tick_ms.to_string(),
                    clients_cell(s),
                    window,
                    d.count.to_string(),
                    num(d.p50, 2),
                    num(d.p99, 2),
                    num(d.p999, 2),
                    num(d.max, 2),
                    lost.to_string(),
                ]);
            }
        }
        print!("{}", t.markdown());
        output::write("fanout-transient.csv", &t.csv());
    }
}
