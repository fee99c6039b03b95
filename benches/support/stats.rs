//! Percentiles: the one implementation the benches (and the tests) use to sum up samples.
//!
//! A percentile here is the exact **nearest rank** over every stored sample: the p-th
//! percentile of n sorted samples is the one at rank ceil(p/100 * n), the smallest sample
//! with at least p% of them at or below it. So every figure in a table is a delay some
//! client really measured, and a reader can check it by sorting the samples by hand.
//!
//! Why not a histogram (the `hdrhistogram` crate): it buckets values to a chosen number of
//! significant digits so that memory stays fixed however many samples come. The benches
//! keep every sample anyway (a few million at most, tens of MiB), the figures in
//! `docs/benchmarks.md` were computed exactly, and a test taking the median of a handful of
//! values needs no crate. Exact ranks cost one sort per table row, nothing that matters.
//!
//! This file needs nothing but `std` and `serde`, no other bench module, so a test can
//! include it with `#[path = "../../benches/support/stats.rs"]`.

/// Nearest-rank percentile (`p` in 0..=100) of a sorted slice; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The nearest-rank median (p50) of `values`, in any order; NaN when empty. With an even
/// count it is the lower of the two middle values.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 50.0)
}

/// Sorts `values` in place (NaNs last) and sums them up: count, mean, p50, p90, p99, p99.9,
/// max.
pub fn summary(values: &mut [f64]) -> Summary {
    values.sort_by(f64::total_cmp);
    Summary {
        count: values.len(),
        mean: if values.is_empty() {
            f64::NAN
        } else {
            values.iter().sum::<f64>() / values.len() as f64
        },
        p50: percentile(values, 50.0),
        p90: percentile(values, 90.0),
        p99: percentile(values, 99.0),
        p999: percentile(values, 99.9),
        max: values.last().copied().unwrap_or(f64::NAN),
    }
}

/// A distribution in one line.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Summary {
    /// How many values.
    pub count: usize,
    /// Their mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile: one value in a thousand is above it. Over fewer than a thousand
    /// values it is the largest, like `max`.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}
