//! How close to the metal: each fan-out step of tickerlab beside the same step against the
//! floor, the bench's own minimal server (`support::floor`), and their ratios.

use crate::step::{FLOOR, Step};
use crate::step_table::{STEP_COLUMNS, clients_cell, step_cells};
use crate::support::output::{Table, num};

/// tickerlab's steps beside the floor's, and the ratios of each pair.
pub fn report(steps: &[Step], floor: &[Step]) {
    println!(
        "\n### How close to the metal: tickerlab beside `{FLOOR}`\n\n\
         The floor is the bench's own minimal Tokio server (`benches/support/floor.rs`): one \
         complete frame built per tick, one `write_all` of those shared bytes per client.\n"
    );
    print!("{}", floor_table(steps, floor).markdown());
    println!();
    for f in floor.iter() {
        let Some(s) = steps
            .iter()
            .find(|s| s.clients == f.clients && s.tick_ms == f.tick_ms)
        else {
            continue;
        };
        println!(
            "* {} clients @ {} ms: tickerlab / floor: delay p50 {} x ({:.2} / {:.2} ms), \
             p99 {} x, CPU per message {} x ({:.2} / {:.2} us), RSS per connection {} x.",
            f.clients,
            f.tick_ms,
            num(s.delay.p50 / f.delay.p50, 2),
            s.delay.p50,
            f.delay.p50,
            num(s.delay.p99 / f.delay.p99, 2),
            num(s.server_cpu_us_per_msg / f.server_cpu_us_per_msg, 2),
            s.server_cpu_us_per_msg,
            f.server_cpu_us_per_msg,
            num(s.rss_per_conn_kib / f.rss_per_conn_kib, 2),
        );
    }
}

/// tickerlab beside the floor, one pair of rows per (tick, N).
pub fn floor_table(steps: &[Step], floor: &[Step]) -> Table {
    let mut columns = vec!["tick ms", "clients", "server"];
    columns.extend(STEP_COLUMNS);
    let mut t = Table::new(&columns);
    for f in floor {
        let pair = steps
            .iter()
            .filter(|s| s.clients == f.clients && s.tick_ms == f.tick_ms);
        for s in pair.chain([f]) {
            let mut row = vec![s.tick_ms.to_string(), clients_cell(s), s.server.clone()];
            row.extend(step_cells(s));
            t.rows.push(row);
        }
    }
    t
}
