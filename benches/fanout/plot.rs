//! The SVG: delivery delay p99 and server CPU against the number of clients, one line per tick.

use crate::support::plot::{legend, line_with_points};
use std::path::Path;

use plotters::prelude::*;

use crate::step::Step;

const COLORS: [RGBColor; 4] = [
    RGBColor(0, 90, 200),
    RGBColor(210, 60, 30),
    RGBColor(0, 140, 70),
    RGBColor(120, 60, 160),
];

/// One chart: its y label, its caption, and the figure it plots.
struct Panel {
    y_desc: &'static str,
    caption: &'static str,
    figure: fn(&Step) -> f64,
}

const PANELS: [Panel; 2] = [
    Panel {
        y_desc: "delivery delay p99 (ms)",
        caption: "delay p99",
        figure: |s| s.delay.p99,
    },
    Panel {
        y_desc: "server CPU (% of one core)",
        caption: "server CPU",
        figure: |s| s.server_cpu_pct,
    },
];

/// `fanout.svg`: two panels, delay p99 and server CPU, each against the number of clients.
pub fn fanout(path: &Path, steps: &[Step]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1100, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);
    let mut ticks: Vec<u64> = steps.iter().map(|s| s.tick_ms).collect();
    ticks.dedup();
    let x_max = steps.iter().map(|s| s.clients).max().unwrap_or(1) as f64 * 2.0;
    for (area, panel) in [left, right].iter().zip(PANELS) {
        let (y_desc, caption, f) = (panel.y_desc, panel.caption, panel.figure);
        let values: Vec<f64> = steps.iter().map(f).filter(|v| v.is_finite()).collect();
        let y_max = values.iter().copied().fold(1.0, f64::max) * 2.0;
        let y_min = values.iter().copied().fold(y_max, f64::min).max(0.01) / 2.0;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{caption} vs WebSocket clients"),
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(65)
            .build_cartesian_2d((0.5..x_max).log_scale(), (y_min..y_max).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("clients")
            .y_desc(y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()?;
        for (i, tick) in ticks.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let points: Vec<(f64, f64)> = steps
                .iter()
                .filter(|s| s.tick_ms == *tick)
                .map(|s| (s.clients as f64, f(s)))
                .filter(|(_, y)| y.is_finite() && *y > 0.0)
                .collect();
            line_with_points(&mut chart, points, color, format!("tick {tick} ms"))?;
        }
        legend(&mut chart)?;
    }
    root.present()?;
    Ok(())
}
