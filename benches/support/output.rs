//! Where bench results go and how tables are written: a Markdown table for the terminal and
//! the README, the same table as CSV, and everything as JSON, under `target/tickerlab-bench/`.

use std::path::PathBuf;

/// `target/tickerlab-bench/` (or under `$CARGO_TARGET_DIR`), created if needed.
pub fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("tickerlab-bench");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        std::process::exit(1);
    }
    dir
}

/// Writes `contents` to `out_dir()/name` and says where.
pub fn write(name: &str, contents: &str) {
    let path = out_dir().join(name);
    match std::fs::write(&path, contents) {
        Ok(()) => eprintln!("wrote {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

/// A table: one header row and rows of cells, all already formatted.
pub struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// One entry per row.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names and no rows yet.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// GitHub-flavoured Markdown.
    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut out = line(&self.header);
        out += &line(&vec!["---".to_string(); self.header.len()]);
        for row in &self.rows {
            out += &line(row);
        }
        out
    }

    /// RFC 4180 CSV (cells with commas or quotes are quoted).
    pub fn csv(&self) -> String {
        let cell = |c: &String| {
            if c.contains([',', '"', '\n']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.clone()
            }
        };
        let line = |cells: &[String]| cells.iter().map(cell).collect::<Vec<_>>().join(",") + "\n";
        let mut out = line(&self.header);
        for row in &self.rows {
            out += &line(row);
        }
        out
    }
}

/// The machine the figures came from, for the report: cores, CPU model, load.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = num(load_average(), 2);
    format!("{cores} cores, {model}, load average {load} at start")
}

/// The 1-minute load average now (`/proc/loadavg`), NaN when unknown: on a shared machine,
/// how busy the other programs (and the bench's own earlier steps) kept it.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split(' ').next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// A number with a fixed count of decimals, or "-" when there is no value.
pub fn num(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "-".into()
    }
}
