//! The SVG of a step second by second: each second's delivery delay p99 (and max, thin) over
//! the run, tickerlab's and the floor's in the same panel, one panel per round.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::step::Step;
use crate::support::plot::{Drawn, legend, line_with_points};
use crate::timeline::Timeline;

const TICKERLAB: RGBColor = RGBColor(0, 90, 200);
const FLOOR: RGBColor = RGBColor(210, 60, 30);
const PANEL_HEIGHT: u32 = 360;

/// One panel: its caption, tickerlab's step, and the floor's when it ran.
pub struct Panel<'a> {
    pub caption: String,
    pub tickerlab: &'a Step,
    pub floor: Option<&'a Step>,
}

/// Draws `panels` one under the other under `title`, on a shared time axis.
pub fn seconds(path: &Path, title: &str, panels: &[Panel]) -> Drawn {
    let height = 50 + PANEL_HEIGHT * panels.len().max(1) as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let steps: Vec<&Step> = panels.iter().flat_map(steps_of).collect();
    let x_max = steps
        .iter()
        .map(|s| s.timeline.measure_to)
        .fold(1.0, f64::max)
        .ceil();
    let values: Vec<f64> = steps
        .iter()
        .flat_map(|s| &s.timeline.seconds)
        .flat_map(|s| [s.delay.p99, s.delay.max])
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    // A linear axis from 0: a stall stands out as tall as it was. The top third is left
    // free for the legend.
    let y_max = values.iter().copied().fold(1.0, f64::max) * 1.6;
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (area, panel) in areas.iter().zip(panels) {
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(65)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the first client started to connect")
            .y_desc("delay in that second (ms)")
            .max_light_lines(1)
            .draw()?;
        let servers = [(Some(panel.tickerlab), TICKERLAB), (panel.floor, FLOOR)];
        for (step, color) in servers {
            let Some(step) = step else { continue };
            let name = if color == TICKERLAB {
                "tickerlab"
            } else {
                "floor"
            };
            draw_step(&mut chart, &step.timeline, color, name, y_max)?;
        }
        legend(&mut chart)?;
    }
    root.present()?;
    Ok(())
}

fn steps_of<'a>(panel: &Panel<'a>) -> Vec<&'a Step> {
    [Some(panel.tickerlab), panel.floor]
        .into_iter()
        .flatten()
        .collect()
}

type Chart<'a> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One server's seconds: p99 as a line with points, max as a thin line, and two vertical
/// marks: the last client joined (dashed), measuring starts (dotted).
fn draw_step(
    chart: &mut Chart,
    timeline: &Timeline,
    color: RGBColor,
    name: &str,
    y_max: f64,
) -> Drawn {
    let delivered = timeline.seconds.iter().filter(|s| s.delay.count > 0);
    let points = |figure: fn(&crate::timeline::Second) -> f64| -> Vec<(f64, f64)> {
        delivered
            .clone()
            .map(|s| (s.at as f64 + 0.5, figure(s)))
            .filter(|(_, y)| *y > 0.0)
            .collect()
    };
    line_with_points(chart, points(|s| s.delay.p99), color, format!("{name} p99"))?;
    let thin = color.mix(0.6).stroke_width(1);
    chart
        .draw_series(LineSeries::new(points(|s| s.delay.max), thin))?
        .label(format!("{name} max (thin)"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], thin));
    for (at, dash) in [(timeline.joined_at, 6), (timeline.measure_from, 2)] {
        let mark = vec![(at, 0.0), (at, y_max)];
        chart.draw_series(DashedLineSeries::new(mark, dash, 4, color.stroke_width(1)))?;
    }
    Ok(())
}
