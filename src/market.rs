//! The market: a pure, seeded random walk of prices, one walk per symbol.
//!
//! This module knows no clock and does no I/O. Given a seed it yields the same prices every
//! time, so it is tested as plain functions and every transport that reads the feed sees the
//! same prices. Time belongs to [`crate::feed`], which calls [`Market::step`] once per tick.
//!
//! Each step multiplies the price by `exp(r)` with `r` drawn from `[-volatility,
//! +volatility]` (a *log return*). A multiplicative step can shrink a price but never make
//! it zero or negative, which an additive step (`price + noise`) would eventually do. A
//! gentle pull towards the start price keeps a demo that runs all day near readable values.

use rand::{RngExt, SeedableRng, rngs::StdRng};

/// How one symbol's price behaves: its name, where it starts and how much it moves per step.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolSpec {
    /// The ticker symbol, e.g. `ACME`: 1 to 8 characters from `A-Z`, `0-9` and `.`.
    pub name: String,
    /// The first price, in currency units (e.g. `101.00`).
    pub start_price: f64,
    /// The largest log return of one step: `0.002` lets one step move the price by at most
    /// about 0.2 %.
    pub volatility: f64,
}

/// The fictional symbols tickerlab knows by name, with their start prices and volatilities.
/// Any other valid name passed to `--symbols` gets parameters derived from its letters.
pub const CATALOGUE: &[(&str, f64, f64)] = &[
    ("ACME", 101.00, 0.0020),
    ("GLOBX", 42.50, 0.0040),
    ("INITECH", 250.00, 0.0010),
    ("UMBRL", 17.25, 0.0060),
    ("HOOLI", 612.80, 0.0015),
];

/// The symbols served when `--symbols` is not given: the first four of [`CATALOGUE`].
pub const DEFAULT_SYMBOLS: &[&str] = &["ACME", "GLOBX", "INITECH", "UMBRL"];

/// How strongly each step pulls the log price back towards the start price. Small enough that
/// a step is still mostly noise, large enough that a demo left running for hours stays near
/// its start price instead of drifting to 0.01 or to millions.
const MEAN_REVERSION: f64 = 0.001;

/// The smallest price shown: one cent. Rounding a tiny positive price could give `0.00`.
const MIN_CENTS: i64 = 1;

impl SymbolSpec {
    /// The parameters for `name`: from [`CATALOGUE`] when it is listed there, otherwise derived
    /// from the name's bytes, so the same name always gets the same start price and volatility.
    pub fn for_name(name: &str) -> SymbolSpec {
        if let Some(&(_, start_price, volatility)) = CATALOGUE.iter().find(|(n, ..)| *n == name) {
            return SymbolSpec {
                name: name.to_owned(),
                start_price,
                volatility,
            };
        }
        // FNV-1a: a tiny, stable hash, so the parameters do not change between Rust versions.
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        SymbolSpec {
            name: name.to_owned(),
            start_price: 10.0 + (hash % 49_000) as f64 / 100.0,
            volatility: 0.001 + ((hash >> 20) % 50) as f64 / 10_000.0,
        }
    }

    /// Whether `name` is a usable ticker symbol: 1 to 8 characters from `A-Z`, `0-9`, `.`.
    pub fn is_valid_name(name: &str) -> bool {
        (1..=8).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.')
    }
}

/// One new price of one symbol, as the market made it: whole cents, no floating-point noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// The new price in cents (`10123` is 101.23). Always at least 1.
    pub price_cents: i64,
    /// The difference to the previous price of the same symbol, in cents.
    pub change_cents: i64,
}

/// One symbol's random walk: its spec, its own random number generator and its exact price.
#[derive(Debug)]
struct Walk {
    spec: SymbolSpec,
    rng: StdRng,
    /// The unrounded price; rounding happens only when a [`Quote`] is made, so rounding errors
    /// never accumulate along the walk.
    price: f64,
    last_cents: i64,
}

impl Walk {
    fn new(spec: SymbolSpec, seed: u64) -> Walk {
        let price = spec.start_price;
        Walk {
            last_cents: to_cents(price),
            rng: StdRng::seed_from_u64(seed),
            price,
            spec,
        }
    }

    fn step(&mut self) -> Quote {
        let vol = self.spec.volatility;
        let noise = self.rng.random_range(-vol..=vol);
        let pull = MEAN_REVERSION * (self.spec.start_price / self.price).ln();
        let log_return = (noise + pull).clamp(-vol, vol);
        self.price *= log_return.exp();
        let cents = to_cents(self.price);
        let quote = Quote {
            price_cents: cents,
            change_cents: cents - self.last_cents,
        };
        self.last_cents = cents;
        quote
    }
}

fn to_cents(price: f64) -> i64 {
    ((price * 100.0).round() as i64).max(MIN_CENTS)
}

/// A set of symbols whose prices move together, one step at a time.
///
/// ```
/// use tickerlab::market::{Market, SymbolSpec};
///
/// let specs = vec![SymbolSpec::for_name("ACME")];
/// let mut a = Market::new(specs.clone(), 7);
/// let mut b = Market::new(specs, 7);
/// assert_eq!(a.step(), b.step()); // same seed, same prices
/// ```
#[derive(Debug)]
pub struct Market {
    walks: Vec<Walk>,
}

impl Market {
    /// A market over `specs` whose walks are all determined by `seed`. Each symbol gets its own
    /// generator (seeded from `seed` and its position), so adding a symbol at the end does not
    /// change the prices of the others.
    pub fn new(specs: Vec<SymbolSpec>, seed: u64) -> Market {
        let walks = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let stream = seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                Walk::new(spec, stream)
            })
            .collect();
        Market { walks }
    }

    /// The symbols, in the order [`Market::step`] returns their quotes.
    pub fn specs(&self) -> impl Iterator<Item = &SymbolSpec> {
        self.walks.iter().map(|w| &w.spec)
    }

    /// Moves every symbol one step and returns the new quotes, one per symbol, in order.
    pub fn step(&mut self) -> Vec<Quote> {
        self.walks.iter_mut().map(Walk::step).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<SymbolSpec> {
        DEFAULT_SYMBOLS
            .iter()
            .map(|n| SymbolSpec::for_name(n))
            .collect()
    }

    #[test]
    fn same_seed_gives_the_same_path() {
        let mut a = Market::new(specs(), 42);
        let mut b = Market::new(specs(), 42);
        for _ in 0..10_000 {
            assert_eq!(a.step(), b.step());
        }
    }

    #[test]
    fn different_seeds_give_different_paths() {
        let mut a = Market::new(specs(), 1);
        let mut b = Market::new(specs(), 2);
        let path_a: Vec<_> = (0..100).map(|_| a.step()).collect();
        let path_b: Vec<_> = (0..100).map(|_| b.step()).collect();
        assert_ne!(path_a, path_b);
    }

    #[test]
    fn prices_stay_positive_over_a_million_steps() {
        // The most volatile spec we can configure, to give a walk every chance to reach 0.
        let wild = SymbolSpec {
            name: "WILD".into(),
            start_price: 0.05,
            volatility: 0.05,
        };
        let mut market = Market::new(vec![wild], 3);
        for _ in 0..1_000_000 {
            let q = market.step()[0];
            assert!(q.price_cents >= 1, "price fell to {}", q.price_cents);
        }
        assert!(market.walks[0].price > 0.0);
    }

    #[test]
    fn steps_stay_within_the_volatility_band() {
        let mut market = Market::new(specs(), 9);
        for _ in 0..100_000 {
            let before: Vec<f64> = market.walks.iter().map(|w| w.price).collect();
            market.step();
            for (walk, old) in market.walks.iter().zip(before) {
                let log_return = (walk.price / old).ln();
                assert!(
                    log_return.abs() <= walk.spec.volatility + 1e-12,
                    "{}: step {log_return} outside ±{}",
                    walk.spec.name,
                    walk.spec.volatility
                );
            }
        }
    }

    #[test]
    fn quotes_are_whole_cents_and_changes_add_up() {
        let mut market = Market::new(specs(), 5);
        let mut last = market.walks[0].last_cents;
        for _ in 0..1000 {
            let q = market.step()[0];
            assert_eq!(q.price_cents - last, q.change_cents);
            last = q.price_cents;
        }
    }

    #[test]
    fn derived_specs_are_stable_and_sane() {
        let a = SymbolSpec::for_name("ZZZ");
        assert_eq!(a, SymbolSpec::for_name("ZZZ"));
        assert!(a.start_price >= 10.0 && a.volatility > 0.0 && a.volatility < 0.01);
        assert!(SymbolSpec::is_valid_name("BRK.B"));
        assert!(!SymbolSpec::is_valid_name("acme"));
        assert!(!SymbolSpec::is_valid_name(""));
        assert!(!SymbolSpec::is_valid_name("TOOLONGNAME"));
    }
}
