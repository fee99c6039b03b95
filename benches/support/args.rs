//! The flags a bench understands. `cargo bench --bench latency -- --secs 10` reaches the bench
//! as `latency --bench --secs 10`: cargo adds `--bench`, which we ignore.

use std::collections::HashMap;
use std::str::FromStr;

/// `--name value` pairs and bare `--flag`s from the command line.
pub struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    /// Reads `std::env::args()`. A flag followed by a value that does not start with `--`
    /// takes that value; otherwise it is a bare flag.
    pub fn parse() -> Args {
        let raw: Vec<String> = std::env::args().skip(1).collect();
        let mut values = HashMap::new();
        let mut flags = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            let Some(name) = raw[i].strip_prefix("--") else {
                i += 1;
                continue;
            };
            match raw.get(i + 1) {
                Some(value) if !value.starts_with("--") => {
                    values.insert(name.to_owned(), value.clone());
                    i += 2;
                }
                _ => {
                    flags.push(name.to_owned());
                    i += 1;
                }
            }
        }
        Args { values, flags }
    }

    /// The raw text of `--name value`, else of the environment variable `env`.
    fn raw(&self, name: &str, env: &str) -> Option<String> {
        self.values
            .get(name)
            .cloned()
            .or_else(|| std::env::var(env).ok())
    }

    /// `--name value`, else the environment variable `env`, else `default`. A value that does
    /// not parse stops the bench with a message saying what was expected.
    pub fn get<T: FromStr>(&self, name: &str, env: &str, default: T) -> T {
        let raw = self.raw(name, env);
        match raw {
            None => default,
            Some(raw) => raw.parse().unwrap_or_else(|_| {
                eprintln!("--{name} / {env}: cannot use {raw:?}: expected a number");
                std::process::exit(2)
            }),
        }
    }

    /// A comma-separated list of numbers, e.g. `--clients 1,10,100`.
    pub fn list(&self, name: &str, env: &str, default: &[u64]) -> Vec<u64> {
        let raw = self.raw(name, env);
        match raw {
            None => default.to_vec(),
            Some(raw) => raw
                .split(',')
                .map(|v| {
                    v.trim().parse().unwrap_or_else(|_| {
                        eprintln!("--{name} / {env}: {v:?} is not a number: use e.g. 1,10,100");
                        std::process::exit(2)
                    })
                })
                .collect(),
        }
    }

    /// Whether the bare flag `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    /// The value of `--name`, if given.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}
