//! The arguments cargo hands every bench program, which each bench's own flags take in.
//!
//! `cargo bench --bench latency -- --secs 10` runs the program as `latency --secs 10 --bench`:
//! cargo adds `--bench` (it tells a libtest harness to benchmark rather than test), and
//! `cargo bench NAME` passes `NAME` to every bench program as a filter. A `harness = false`
//! program has neither tests nor filters, but clap refuses any argument it was not told
//! about, so each bench flattens [`CargoArgs`] into its flags and ignores what lands there.

use clap::Args;

/// What cargo adds to a bench program's command line; accepted and ignored.
#[derive(Debug, Clone, Args)]
pub struct CargoArgs {
    /// Added by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
    /// `cargo bench NAME` passes `NAME` to every bench program. These programs run all their
    /// parts whatever it is; their own flags choose the parts.
    #[arg(hide = true)]
    filter: Vec<String>,
}
