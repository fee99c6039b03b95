//! The fan-out steps as a table, and the cells the other tables of steps share with it.

use crate::step::Step;
use crate::support::output::{Table, num};
use crate::timeline::{worst_at_cell, worst_p99_cell};

/// The main table, and whether the targets at 1000 and 5000 clients were met.
pub fn report(steps: &[Step]) {
    print!("{}", ws_table(steps).markdown());
    for (n, tick, p99) in [(1000, 100, 5.0), (5000, 100, 50.0)] {
        if let Some(s) = steps.iter().find(|s| s.clients == n && s.tick_ms == tick) {
            let met = s.delay.p99 <= p99 && s.lost == 0 && s.connected == n;
            println!(
                "\nTarget {n} clients @ {tick} ms: p99 <= {p99} ms and 0 lost: {} (p99 {:.2} ms, lost {}).",
                if met { "met" } else { "MISSED" },
                s.delay.p99,
                s.lost
            );
        }
    }
}

/// The columns of a fan-out step's row after its tick and clients (and, beside the floor,
/// its server), shared by the main table and the floor table. The delays are over the
/// measuring window; the worst second is the second of the whole run (join included) with the
/// highest p99 (see `timeline`).
pub const STEP_COLUMNS: [&str; 15] = [
    "msgs/s (expected)",
    "delay p50 ms",
    "delay p99 ms",
    "delay p99.9 ms",
    "delay max ms",
    "worst second p99 ms",
    "worst second",
    "lost",
    "server CPU % of a core",
    "of which kernel",
    "CPU us / msg",
    "client CPU %",
    "server wait for a core ms/s",
    "server RSS MiB",
    "RSS / conn KiB",
];

/// A step's cells under [`STEP_COLUMNS`].
pub fn step_cells(s: &Step) -> Vec<String> {
    vec![
        format!(
            "{} ({})",
            num(s.msgs_per_sec, 0),
            num(s.expected_msgs_per_sec, 0)
        ),
        num(s.delay.p50, 2),
        num(s.delay.p99, 2),
        num(s.delay.p999, 2),
        num(s.delay.max, 2),
        worst_p99_cell(&s.timeline),
        worst_at_cell(&s.timeline),
        s.lost.to_string(),
        num(s.server_cpu_pct, 1),
        share(s.server_system_share),
        num(s.server_cpu_us_per_msg, 2),
        num(s.client_cpu_pct, 0),
        num(s.server_runq_wait_ms_per_s, 1),
        num(s.rss_kib as f64 / 1024.0, 1),
        num(s.rss_per_conn_kib, 1),
    ]
}

/// The main table: one row per step, with the serialisations per tick per symbol.
pub fn ws_table(steps: &[Step]) -> Table {
    let mut columns = vec!["tick ms", "clients"];
    columns.extend(STEP_COLUMNS);
    columns.push("serialisations / tick / symbol");
    let mut t = Table::new(&columns);
    for s in steps {
        let mut row = vec![s.tick_ms.to_string(), clients_cell(s)];
        row.extend(step_cells(s));
        row.push(num(s.serialisations_per_tick_per_symbol, 3));
        t.rows.push(row);
    }
    t
}

/// The clients cell of a step.
pub fn clients_cell(s: &Step) -> String {
    clients(s.clients, s.connected)
}

/// "N", or "N (M connected)" when not all of them got in.
pub fn clients(n: usize, connected: usize) -> String {
    if n == connected {
        n.to_string()
    } else {
        format!("{n} ({connected} connected)")
    }
}

/// A share as a whole percentage, or "-" when there is no value.
pub fn share(value: f64) -> String {
    if value.is_finite() {
        format!("{:.0}%", value * 100.0)
    } else {
        "-".into()
    }
}
