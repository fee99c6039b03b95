//! The two pieces every plot of the benches draws the same way: a measured line with a dot on
//! each point, named in the legend, and the legend itself (upper left, on a light box).

use plotters::coord::ranged1d::Ranged;
use plotters::prelude::*;

/// The result every plot function returns.
pub type Drawn = Result<(), Box<dyn std::error::Error>>;

/// Draws `points` as a line of `color` with a dot on each, named `label` in the legend.
pub fn line_with_points<'a, X>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, impl Ranged<ValueType = f64>>>,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    label: impl Into<String>,
) -> Drawn
where
    X: Ranged<ValueType = f64>,
{
    chart
        .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    chart.draw_series(
        points
            .into_iter()
            .map(move |p| Circle::new(p, 4, color.filled())),
    )?;
    Ok(())
}

/// Draws the legend of the series named so far: upper left, on a light box.
pub fn legend<'a, X, Y>(chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>) -> Drawn
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
