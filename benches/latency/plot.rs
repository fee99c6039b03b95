//! The SVG: time to see a change and age of the shown price against the polling interval,
//! measured and theory, with the figures of the transports that have no interval (WebSocket,
//! SSE, long polling) as flat lines of their own.

use crate::support::plot::{legend, line_with_points};
use std::path::Path;

use plotters::prelude::*;

use crate::measure::Row;

const TEAL: RGBColor = RGBColor(0, 130, 160);

/// A series: its legend, the figure of a row it plots, its colour.
type Line = (&'static str, fn(&Row) -> f64, RGBColor);

/// `latency.svg`: the figures of polling against its interval, the others as flat lines.
pub fn latency(path: &Path, rows: &[Row], tick: f64) -> Result<(), Box<dyn std::error::Error>> {
    let polls: Vec<&Row> = rows.iter().filter(|r| r.interval_ms.is_some()).collect();
    let push: Vec<&Row> = rows.iter().filter(|r| r.interval_ms.is_none()).collect();
    let x = |r: &Row| r.interval_ms.unwrap_or(0) as f64;
    let x_max = polls.iter().map(|r| x(r)).fold(100.0, f64::max) * 1.05;
    let y_max = rows
        .iter()
        .flat_map(|r| [r.see.p99, r.age_mean, r.theory.age_mean, r.theory.see[2]])
        .filter(|v| v.is_finite())
        .fold(10.0, f64::max)
        * 1.1;

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("tickerlab: polling vs long polling, SSE and WebSocket (tick {tick} ms)"),
            ("sans-serif", 22),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("polling interval (ms)")
        .y_desc("milliseconds")
        .draw()?;

    let series =
        |f: fn(&Row) -> f64| -> Vec<(f64, f64)> { polls.iter().map(|r| (x(r), f(r))).collect() };
    let measured: [Line; 3] = [
        ("polling: time to see a change, p50", |r| r.see.p50, BLUE),
        ("polling: time to see a change, p99", |r| r.see.p99, TEAL),
        ("polling: age of the shown price, mean", |r| r.age_mean, RED),
    ];
    for (label, f, color) in measured {
        line_with_points(&mut chart, series(f), color, label)?;
    }
    let theory: [Line; 3] = [
        ("theory (dashed): T/2", |r| r.theory.see[0], BLUE),
        ("theory (dashed): 0.99 T", |r| r.theory.see[2], TEAL),
        ("theory (dashed): tick/2 + T/2", |r| r.theory.age_mean, RED),
    ];
    for (label, f, color) in theory {
        chart
            .draw_series(DashedLineSeries::new(series(f), 6, 4, color.into()))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    // One style per flat transport, so lines that lie on top of each other (they should:
    // all three are about as fresh) stay tellable apart: solid, dashed, dotted.
    let flat_colors: [(RGBColor, RGBColor); 3] = [
        (GREEN, MAGENTA),
        (RGBColor(230, 140, 0), RGBColor(120, 60, 180)),
        (RGBColor(120, 80, 40), BLACK),
    ];
    for (i, r) in push.iter().enumerate() {
        let (see_color, age_color) = flat_colors[i % flat_colors.len()];
        let name = r.transport.trim_end_matches(" (push)");
        let style = ["solid", "dashed", "dotted"][i % 3];
        let flat: [(String, f64, RGBColor); 2] = [
            (
                format!("{name} ({style}): time to see a change, p99"),
                r.see.p99,
                see_color,
            ),
            (
                format!("{name} ({style}): age of the shown price, mean"),
                r.age_mean,
                age_color,
            ),
        ];
        for (label, y, color) in flat {
            let points = vec![(0.0, y), (x_max, y)];
            let legend =
                move |(x, y): (i32, i32)| PathElement::new(vec![(x, y), (x + 20, y)], color);
            match i % 3 {
                0 => chart
                    .draw_series(LineSeries::new(points, color.stroke_width(3)))?
                    .label(label)
                    .legend(legend),
                1 => chart
                    .draw_series(DashedLineSeries::new(points, 12, 6, color.stroke_width(3)))?
                    .label(label)
                    .legend(legend),
                _ => chart
                    .draw_series(DashedLineSeries::new(points, 3, 5, color.stroke_width(3)))?
                    .label(label)
                    .legend(legend),
            };
        }
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

/// One panel of the round-trip plot.
type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
/// A row's figure for a panel: (measured, theory).
type Figure = fn(&Row) -> (f64, f64);

/// `latency-rtt.svg`: against the round trip, two panels: time to see a change (p50) and
/// the share of changes missed, measured (solid, dots) and theory (dashed), for the push
/// transports, long polling and polling at its shortest interval. Long polling leaving
/// push's line for polling's, once the round trip passes the tick, is the point.
pub fn by_rtt(path: &Path, rows: &[Row], tick: f64) -> Result<(), Box<dyn std::error::Error>> {
    let shortest = rows.iter().filter_map(|r| r.interval_ms).min();
    let names: Vec<String> = {
        let mut names: Vec<String> = Vec::new();
        for r in rows {
            let wanted = r.interval_ms.is_none() || r.interval_ms == shortest;
            if wanted && !names.contains(&r.transport) {
                names.push(r.transport.clone());
            }
        }
        names
    };
    let colors = [
        RGBColor(0, 150, 0),
        RGBColor(120, 60, 180),
        RGBColor(230, 140, 0),
        BLUE,
    ];
    let x = |r: &Row| r.rtt_ms.unwrap_or(0) as f64;
    let x_max = rows.iter().map(x).fold(10.0, f64::max) * 1.05;
    let root = SVGBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("tickerlab: the same transports over a round trip (tick {tick} ms)"),
        ("sans-serif", 22),
    )?;
    let (left, right) = root.split_horizontally(600);
    let panels: [(&Area, &str, Figure); 2] = [
        (&left, "time to see a change, p50 (ms)", |r| {
            (r.see.p50, r.theory.see[0])
        }),
        (&right, "changes missed (%)", |r| {
            (r.missed * 100.0, r.theory.missed * 100.0)
        }),
    ];
    for (area, y_desc, figure) in panels {
        let y_max = rows
            .iter()
            .filter(|r| names.contains(&r.transport))
            .flat_map(|r| {
                let (m, t) = figure(r);
                [m, t]
            })
            .filter(|v| v.is_finite())
            .fold(10.0, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(area)
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("round trip, RTT (ms)")
            .y_desc(y_desc)
            .draw()?;
        for (i, name) in names.iter().enumerate() {
            let color = colors[i % colors.len()];
            let points: Vec<(f64, (f64, f64))> = rows
                .iter()
                .filter(|r| &r.transport == name)
                .map(|r| (x(r), figure(r)))
                .collect();
            let measured: Vec<(f64, f64)> = points.iter().map(|&(x, (m, _))| (x, m)).collect();
            let theory: Vec<(f64, f64)> = points.iter().map(|&(x, (_, t))| (x, t)).collect();
            line_with_points(
                &mut chart,
                measured,
                color,
                format!("{name} (dashed: theory)"),
            )?;
            chart.draw_series(DashedLineSeries::new(theory, 6, 4, color.into()))?;
        }
        legend(&mut chart)?;
    }
    root.present()?;
    Ok(())
}
