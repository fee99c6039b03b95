//! What a latency run prints and writes: one Markdown table with every figure beside its
//! theory, the same as CSV and JSON, and the plots.

use crate::cli::Settings;
use crate::measure::Row;
use crate::plot;
use crate::support::output::{self, Table, num};
use crate::tls_headers;

/// Prints the table of every run, writes it as CSV and JSON, draws the plots, and measures
/// and prints the header bytes over TLS.
pub async fn report(settings: &Settings, machine: &str, rows: &[Row], feed_ticks: &[u64]) {
    let Settings {
        secs,
        tick_ms,
        pollers,
        ..
    } = *settings;
    let rtts = settings.rtts();
    let join = |list: &[u64]| {
        list.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let rtt_list: Vec<u64> = rtts.iter().flatten().copied().collect();
    let mut command = format!(
        "cargo bench --bench latency -- --secs {secs} --tick-ms {tick_ms} --pollers {pollers} --intervals {}",
        join(&settings.intervals)
    );
    if !rtt_list.is_empty() {
        command.push_str(&format!(" --rtt-ms {}", join(&rtt_list)));
    }
    let network = if rtt_list.is_empty() {
        "direct (loopback)".to_string()
    } else {
        format!(
            "through the simulated network at RTT {} ms",
            join(&rtt_list)
        )
    };
    println!("\n## Latency: push vs polling, tick {tick_ms} ms, {secs} s measured, {network}\n");
    println!("Machine: {machine}. Command: `{command}`. Feed ticks per run: {feed_ticks:?}.");
    println!("Each cell: measured (theory).\n");
    print!("{}", table(rows).markdown());
    output::write("latency.csv", &csv(rows));
    let json = serde_json::json!({
        "bench": "latency",
        "command": command,
        "machine": machine,
        "tick_ms": tick_ms,
        "secs": secs,
        "rtt_ms": rtt_list,
        "rows": rows,
    });
    output::write(
        "latency.json",
        &serde_json::to_string_pretty(&json).unwrap_or_default(),
    );
    // The polling-interval plot is drawn for the first run (loopback, or the first RTT).
    let first_rtt = rtts.first().copied().flatten();
    let first: Vec<Row> = rows
        .iter()
        .filter(|r| r.rtt_ms == first_rtt)
        .cloned()
        .collect();
    let svg = output::out_dir().join("latency.svg");
    match plot::latency(&svg, &first, tick_ms as f64) {
        Ok(()) => eprintln!("wrote {}", svg.display()),
        Err(e) => eprintln!("cannot draw {}: {e}", svg.display()),
    }
    let headers = tls_headers::report(tick_ms).await;
    if !headers.is_empty() {
        output::write(
            "latency-tls-headers.json",
            &serde_json::to_string_pretty(&headers).unwrap_or_default(),
        );
    }
    if rtt_list.len() > 1 {
        let svg = output::out_dir().join("latency-rtt.svg");
        match plot::by_rtt(&svg, rows, tick_ms as f64) {
            Ok(()) => eprintln!("wrote {}", svg.display()),
            Err(e) => eprintln!("cannot draw {}: {e}", svg.display()),
        }
    }
}

/// The Markdown table: one row per transport and round trip, each cell "measured (theory)".
fn table(rows: &[Row]) -> Table {
    let mut t = Table::new(&[
        "RTT ms",
        "transport",
        "see p50 ms",
        "see p90 ms",
        "see p99 ms",
        "see max ms",
        "shown age mean ms",
        "delay p50 ms",
        "delay p99 ms",
        "delay max ms",
        "missed",
        "req or msg / change",
        "header B / change",
        "payload B / change",
    ]);
    // "measured (theory)" in each cell.
    let pair = |m: f64, th: f64, d: usize| format!("{} ({})", num(m, d), num(th, d));
    let pct = |m: f64, th: f64| format!("{:.0}% ({:.0}%)", m * 100.0, th * 100.0);
    for r in rows {
        let th = &r.theory;
        t.rows.push(vec![
            r.rtt_ms.map_or("direct".into(), |ms| ms.to_string()),
            if r.clients > 1 {
                format!("{} (x{})", r.transport, r.clients)
            } else {
                r.transport.clone()
            },
            pair(r.see.p50, th.see[0], 1),
            pair(r.see.p90, th.see[1], 1),
            pair(r.see.p99, th.see[2], 1),
            pair(r.see.max, th.see[3], 1),
            pair(r.age_mean, th.age_mean, 1),
            pair(r.delay.p50, th.delay[0], 2),
            pair(r.delay.p99, th.delay[1], 2),
            pair(r.delay.max, th.delay[2], 2),
            pct(r.missed, th.missed),
            pair(r.exchanges_per_change, th.exchanges_per_change, 2),
            pair(r.header_per_change, th.header_per_change, 0),
            pair(r.payload_per_change, th.payload_per_change, 0),
        ]);
    }
    t
}

/// The same figures as flat CSV columns, measured and theory side by side.
fn csv(rows: &[Row]) -> String {
    let mut t = Table::new(&[
        "rtt_ms",
        "transport",
        "interval_ms",
        "see_p50",
        "see_p90",
        "see_p99",
        "see_max",
        "see_p50_theory",
        "see_p99_theory",
        "age_mean",
        "age_mean_theory",
        "delay_p50",
        "delay_p99",
        "delay_max",
        "delay_p50_theory",
        "missed",
        "missed_theory",
        "exchanges_per_change",
        "exchanges_per_change_theory",
        "header_bytes_per_change",
        "payload_bytes_per_change",
        "header_bytes_per_change_theory",
        "payload_bytes_per_change_theory",
        "changes_made",
    ]);
    for r in rows {
        let f = |v: f64| format!("{v:.3}");
        t.rows.push(vec![
            r.rtt_ms.map_or(String::new(), |ms| ms.to_string()),
            r.transport.clone(),
            r.interval_ms.map_or(String::new(), |i| i.to_string()),
            f(r.see.p50),
            f(r.see.p90),
            f(r.see.p99),
            f(r.see.max),
            f(r.theory.see[0]),
            f(r.theory.see[2]),
            f(r.age_mean),
            f(r.theory.age_mean),
            f(r.delay.p50),
            f(r.delay.p99),
            f(r.delay.max),
            f(r.theory.delay[0]),
            f(r.missed),
            f(r.theory.missed),
            f(r.exchanges_per_change),
            f(r.theory.exchanges_per_change),
            f(r.header_per_change),
            f(r.payload_per_change),
            f(r.theory.header_per_change),
            f(r.theory.payload_per_change),
            r.changes_made.to_string(),
        ]);
    }
    t.csv()
}
