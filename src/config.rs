//! Configuration: one typed struct, built once at start-up from command-line flags with
//! environment-variable fallbacks, validated, then passed down. Nothing deeper in the crate
//! reads the environment.
//!
//! Every default is safe for a laptop: the server binds `127.0.0.1`, so it is reachable only
//! from this machine until you pass `--host 0.0.0.0` on purpose (e.g. for a classroom).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::market::{DEFAULT_SYMBOLS, SymbolSpec};

/// Default tick interval in milliseconds: fast enough that polling visibly misses changes,
/// slow enough that a person can read each price.
pub const DEFAULT_TICK_MS: u64 = 200;

/// Everything the server can be told at start-up. `tickerlab --help` prints it.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "tickerlab",
    version,
    about = "See and measure what WebSockets are: one price feed served as HTTP polling and as a WebSocket stream, side by side."
)]
pub struct Config {
    /// Address to listen on. Use 0.0.0.0 to let other machines (a classroom) connect.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// TCP port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Milliseconds between two ticks of the feed (10 to 60000).
    #[arg(long, env = "TICK_MS", default_value_t = DEFAULT_TICK_MS)]
    pub tick_ms: u64,

    /// Seed of the random walk: the same seed replays the same prices. Random when absent.
    #[arg(long, env = "SEED")]
    pub seed: Option<u64>,

    /// Comma-separated symbols to publish; the first is the default symbol. Names from
    /// A-Z, 0-9 and '.', 1 to 8 characters, at most 16 symbols.
    #[arg(long, env = "SYMBOLS", value_delimiter = ',', default_values_t = DEFAULT_SYMBOLS.iter().map(|s| s.to_string()))]
    pub symbols: Vec<String>,

    /// HTTP worker threads, 1 to 1024 (default: one per CPU core).
    #[arg(long, env = "WORKERS")]
    pub workers: Option<usize>,

    /// Largest WebSocket message a client may send, in bytes; larger ones close the socket
    /// with 1009 (message too big).
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = 4096)]
    pub max_message_bytes: usize,

    /// Seconds between the server's WebSocket pings to each client. Should be half (or less)
    /// of --client-timeout-secs, so one lost ping does not drop a healthy client; at most 3600.
    #[arg(long, env = "HEARTBEAT_SECS", default_value_t = 5)]
    pub heartbeat_secs: u64,

    /// Seconds of silence (no frame at all, not even a pong) after which the server closes
    /// a WebSocket as dead; at most 86400 (a day).
    #[arg(long, env = "CLIENT_TIMEOUT_SECS", default_value_t = 30)]
    pub client_timeout_secs: u64,

    /// Seconds a long poll (`GET /price/next`) is held waiting for a new tick before it is
    /// answered `204 No Content` (1 to 120). Below the 30-60 s at which proxies cut idle
    /// requests.
    #[arg(long, env = "LONG_POLL_SECS", default_value_t = 25)]
    pub long_poll_secs: u64,
    /// Serve https:// and wss:// with this PEM certificate chain (server certificate first).
    /// Needs --tls-key.
    #[arg(long, env = "TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, env = "TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Serve https:// and wss:// with a certificate generated at start-up for localhost,
    /// 127.0.0.1 and ::1 (and --host). Prints its SHA-256 fingerprint and where its PEM files
    /// were written.
    #[arg(long, env = "TLS_SELF_SIGNED")]
    pub tls_self_signed: bool,
    /// Share one feed between several instances through Redis, e.g. redis://127.0.0.1:6379.
    /// Without --feed-publisher this instance is a front-end: it runs no market and serves
    /// the ticks the publisher sends through Redis. Every instance needs the same --symbols
    /// and --tick-ms.
    #[arg(long, env = "REDIS_URL", value_name = "URL")]
    pub redis: Option<String>,

    /// With --redis: run the market here and publish every tick to Redis for the front-ends.
    /// Only one publisher may run per Redis; a second one is refused at start-up.
    #[arg(long, env = "FEED_PUBLISHER", requires = "redis")]
    pub feed_publisher: bool,
    /// Another origin (`scheme://host[:port]`) whose pages may open a WebSocket here, besides the
    /// server's own origin and localhost. Repeat the flag (or separate with commas) for more.
    #[arg(
        long = "allowed-origin",
        env = "ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Most long-lived connections (WebSockets) open at once; past it a handshake gets
    /// `503 Service Unavailable` with `Retry-After`. Keep it below the process's open-file
    /// limit (`ulimit -n`), since each connection holds a file descriptor.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: u64,

    /// Most messages per second one WebSocket client may send (bursts of twice as many are
    /// tolerated); a client that keeps sending faster is closed with 1008 (policy violation).
    /// Every frame counts, not only whole messages: each fragment of a fragmented message,
    /// and pings and pongs, cost the server the same work.
    #[arg(long, env = "MAX_MESSAGES_PER_SEC", default_value_t = 20)]
    pub max_messages_per_sec: u32,

    /// Also serve the same app through a simulated network with this round trip, in
    /// milliseconds (0 to 10000): a second listener (see --lab-port) whose relay holds every
    /// chunk of bytes for half the round trip in each direction. Compare two tabs, one per port.
    #[arg(long, env = "LAB_RTT_MS", value_name = "MS")]
    pub lab_rtt_ms: Option<u64>,

    /// With --lab-rtt-ms: up to this many extra milliseconds of random delay per chunk and
    /// direction (0 to 10000). Bytes still arrive in order, as TCP delivers them.
    #[arg(
        long,
        env = "LAB_JITTER_MS",
        value_name = "MS",
        default_value_t = 0,
        requires = "lab_rtt_ms"
    )]
    pub lab_jitter_ms: u64,

    /// With --lab-rtt-ms: the port of the simulated network's listener (default: --port + 1;
    /// any free port when --port is 0).
    #[arg(long, env = "LAB_PORT", requires = "lab_rtt_ms")]
    pub lab_port: Option<u16>,

    /// With --lab-rtt-ms: print what an observer on the simulated network sees, both ways, on
    /// standard output: over ws:// the upgrade and every frame decoded (with its masking key
    /// and payload), over wss:// only TLS records.
    #[arg(long, env = "LAB_TAP", requires = "lab_rtt_ms")]
    pub lab_tap: bool,

    /// The key that opens the instructor's class view, `/class?key=KEY` (8 to 128 characters
    /// from A-Z, a-z, 0-9, '-' and '_'). Without it a random key is made and the full URL
    /// printed at start-up. With --redis, give every instance the same key.
    #[arg(long, env = "CLASS_KEY", value_name = "KEY", hide_env_values = true)]
    pub class_key: Option<String>,
}

/// Why a [`Config`] cannot be used. Each message says what was wrong and what is allowed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// `--tick-ms` outside its range.
    #[error("--tick-ms {0} is out of range: use 10 to 60000 milliseconds")]
    TickMs(u64),
    /// A symbol name that does not follow the rules.
    #[error("--symbols: {0:?} is not a valid symbol: use 1 to 8 characters from A-Z, 0-9 and '.'")]
    SymbolName(String),
    /// No symbols, too many, or the same one twice.
    #[error("--symbols: {0}")]
    SymbolList(&'static str),
    /// Heartbeat settings that would drop healthy clients.
    #[error(
        "--heartbeat-secs ({0}) must be at least 1 and at most half of --client-timeout-secs ({1})"
    )]
    Heartbeat(u64, u64),
    /// A long-poll timeout outside its range.
    #[error("--long-poll-secs {0} is out of range: use 1 to 120 seconds")]
    LongPollSecs(u64),
    /// A message limit too small for the protocol's own messages.
    #[error("--max-message-bytes {0} is too small: use at least 256")]
    MaxMessageBytes(usize),
    /// TLS flags that do not make one choice.
    #[error("{0}")]
    Tls(&'static str),
    /// `--feed-publisher` without `--redis`, or a Redis URL of the wrong kind.
    #[error("{0}")]
    Redis(String),
    /// An `--allowed-origin` that is not `scheme://host[:port]`.
    #[error(
        "--allowed-origin {0:?} is not an origin: write it as a browser sends it, scheme://host[:port] (e.g. https://example.org), without a path"
    )]
    AllowedOrigin(String),
    /// `--workers` 0 (actix would panic) or absurdly many.
    #[error("--workers {0} is out of range: use 1 to 1024 (or leave it out: one per CPU core)")]
    Workers(usize),
    /// A duration so long it is surely a mistake, and could overflow a timer's deadline.
    #[error("{0} {1} is too long: use at most {2} seconds")]
    TooLong(&'static str, u64, u64),
    /// A limit of zero would refuse every client.
    #[error("{0} must be at least 1")]
    ZeroLimit(&'static str),
    /// A `--class-key` that is too short, too long or has characters a URL would mangle.
    #[error(
        "--class-key must be 8 to 128 characters from A-Z, a-z, 0-9, '-' and '_' (it goes in a URL)"
    )]
    ClassKey,
    /// A simulated-network delay outside its range.
    #[error("{0} {1} is out of range: use 0 to {max} milliseconds", max = MAX_LAB_DELAY_MS)]
    LabDelay(&'static str, u64),
}

impl Default for Config {
    /// The same values as running `tickerlab` with no flags and no environment variables.
    fn default() -> Config {
        Config {
            host: "127.0.0.1".into(),
            port: 8080,
            tick_ms: DEFAULT_TICK_MS,
            seed: None,
            symbols: DEFAULT_SYMBOLS.iter().map(|s| s.to_string()).collect(),
            workers: None,
            max_message_bytes: 4096,
            heartbeat_secs: 5,
            client_timeout_secs: 30,
            long_poll_secs: 25,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            redis: None,
            feed_publisher: false,
            allowed_origins: Vec::new(),
            max_connections: 10_000,
            max_messages_per_sec: 20,
            lab_rtt_ms: None,
            lab_jitter_ms: 0,
            lab_port: None,
            lab_tap: false,
            class_key: None,
        }
    }
}

/// The longest `--lab-rtt-ms` and `--lab-jitter-ms`: ten seconds, slower than a satellite
/// link. Longer is surely a typo, and would outlast every client's timeout.
pub const MAX_LAB_DELAY_MS: u64 = 10_000;

/// Most symbols one server publishes: enough for any lesson, few enough that a per-session
/// subscription fits in one machine word.
pub const MAX_SYMBOLS: usize = 16;

/// The most HTTP worker threads `--workers` accepts: far more than any machine has cores.
pub const MAX_WORKERS: usize = 1024;

/// The longest `--heartbeat-secs`: an hour. Longer is surely a typo, and proxies drop idle
/// connections after a minute or so anyway.
pub const MAX_HEARTBEAT_SECS: u64 = 3600;

/// The longest `--client-timeout-secs`: a day. Bounded so a deadline `now + timeout` always
/// fits in a timer's `Instant` (a huge value would overflow it and panic).
pub const MAX_CLIENT_TIMEOUT_SECS: u64 = 86_400;

impl Config {
    /// Checks every rule at once, so a bad flag fails at start-up with a clear message rather
    /// than misbehaving later.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(10..=60_000).contains(&self.tick_ms) {
            return Err(ConfigError::TickMs(self.tick_ms));
        }
        if self.symbols.is_empty() {
            return Err(ConfigError::SymbolList("give at least one symbol"));
        }
        if self.symbols.len() > MAX_SYMBOLS {
            return Err(ConfigError::SymbolList("give at most 16 symbols"));
        }
        if let Some(bad) = self.symbols.iter().find(|s| !SymbolSpec::is_valid_name(s)) {
            return Err(ConfigError::SymbolName(bad.clone()));
        }
        let mut sorted = self.symbols.clone();
        sorted.sort();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(ConfigError::SymbolList("a symbol is listed twice"));
        }
        if let Some(workers) = self.workers
            && !(1..=MAX_WORKERS).contains(&workers)
        {
            return Err(ConfigError::Workers(workers));
        }
        if self.heartbeat_secs > MAX_HEARTBEAT_SECS {
            return Err(ConfigError::TooLong(
                "--heartbeat-secs",
                self.heartbeat_secs,
                MAX_HEARTBEAT_SECS,
            ));
        }
        if self.client_timeout_secs > MAX_CLIENT_TIMEOUT_SECS {
            return Err(ConfigError::TooLong(
                "--client-timeout-secs",
                self.client_timeout_secs,
                MAX_CLIENT_TIMEOUT_SECS,
            ));
        }
        // Checked even though both are bounded above: the rule must not depend on that.
        let twice = self.heartbeat_secs.checked_mul(2);
        if self.heartbeat_secs == 0 || twice.is_none_or(|t| t > self.client_timeout_secs) {
            return Err(ConfigError::Heartbeat(
                self.heartbeat_secs,
                self.client_timeout_secs,
            ));
        }
        if !(1..=120).contains(&self.long_poll_secs) {
            return Err(ConfigError::LongPollSecs(self.long_poll_secs));
        }
        if self.max_message_bytes < 256 {
            return Err(ConfigError::MaxMessageBytes(self.max_message_bytes));
        }
        match (&self.tls_cert, &self.tls_key, self.tls_self_signed) {
            (Some(_), None, _) => {
                return Err(ConfigError::Tls(
                    "--tls-cert needs --tls-key (its private key)",
                ));
            }
            (None, Some(_), _) => {
                return Err(ConfigError::Tls(
                    "--tls-key needs --tls-cert (its certificate)",
                ));
            }
            (Some(_), Some(_), true) => {
                return Err(ConfigError::Tls(
                    "--tls-self-signed cannot be combined with --tls-cert/--tls-key: choose one",
                ));
            }
            _ => {}
        }
        match &self.redis {
            None if self.feed_publisher => {
                return Err(ConfigError::Redis(
                    "--feed-publisher needs --redis URL: it publishes to that Redis".into(),
                ));
            }
            Some(url) if !(url.starts_with("redis://") || url.starts_with("unix://")) => {
                return Err(ConfigError::Redis(format!(
                    "--redis {url:?} is not a Redis URL: use redis://HOST:PORT (e.g. \
                     redis://127.0.0.1:6379) or unix:///path/to/redis.sock"
                )));
            }
            _ => {}
        }
        if let Some(bad) = self
            .allowed_origins
            .iter()
            .find(|o| crate::http::origin::Origin::parse(o).is_none())
        {
            return Err(ConfigError::AllowedOrigin(bad.clone()));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::ZeroLimit("--max-connections"));
        }
        if self.max_messages_per_sec == 0 {
            return Err(ConfigError::ZeroLimit("--max-messages-per-sec"));
        }
        if let Some(key) = &self.class_key
            && !(crate::class::KEY_LENGTH.contains(&key.len())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(ConfigError::ClassKey);
        }
        self.validate_lab()
    }

    /// The simulated network's rules: delays within [`MAX_LAB_DELAY_MS`].
    fn validate_lab(&self) -> Result<(), ConfigError> {
        if let Some(rtt) = self.lab_rtt_ms.filter(|&ms| ms > MAX_LAB_DELAY_MS) {
            return Err(ConfigError::LabDelay("--lab-rtt-ms", rtt));
        }
        if self.lab_jitter_ms > MAX_LAB_DELAY_MS {
            return Err(ConfigError::LabDelay("--lab-jitter-ms", self.lab_jitter_ms));
        }
        Ok(())
    }

    /// The feed's tick interval.
    pub fn tick_interval(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    /// The symbols' random-walk parameters, in `--symbols` order.
    pub fn symbol_specs(&self) -> Vec<SymbolSpec> {
        self.symbols
            .iter()
            .map(|s| SymbolSpec::for_name(s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_matches_the_command_line_defaults() {
        let parsed = Config::try_parse_from(["tickerlab"]).unwrap();
        let default = Config::default();
        // Environment variables could differ on a developer's machine; compare what clap
        // would produce without them where it matters.
        assert_eq!(default.tick_ms, DEFAULT_TICK_MS);
        if std::env::var_os("TICK_MS").is_none() {
            assert_eq!(parsed.tick_ms, default.tick_ms);
        }
        if std::env::var_os("SYMBOLS").is_none() {
            assert_eq!(parsed.symbols, default.symbols);
        }
        assert!(default.validate().is_ok());
    }

    #[test]
    fn symbols_flag_splits_on_commas() {
        let c = Config::try_parse_from(["tickerlab", "--symbols", "ACME,ZZZ"]).unwrap();
        assert_eq!(c.symbols, ["ACME", "ZZZ"]);
    }

    #[test]
    fn bad_values_are_refused_with_the_rule() {
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(bad(|c| c.tick_ms = 5).contains("10 to 60000"));
        assert!(bad(|c| c.symbols = vec!["acme".into()]).contains("A-Z"));
        assert!(bad(|c| c.symbols = vec![]).contains("at least one"));
        assert!(bad(|c| c.symbols = vec!["A".into(), "A".into()]).contains("twice"));
        assert!(bad(|c| c.heartbeat_secs = 20).contains("half"));
        assert!(bad(|c| c.tls_cert = Some("c.pem".into())).contains("needs --tls-key"));
        assert!(bad(|c| c.tls_key = Some("k.pem".into())).contains("needs --tls-cert"));
        assert!(
            bad(|c| {
                c.tls_cert = Some("c.pem".into());
                c.tls_key = Some("k.pem".into());
                c.tls_self_signed = true;
            })
            .contains("choose one")
        );
        assert!(bad(|c| c.feed_publisher = true).contains("needs --redis"));
        assert!(bad(|c| c.redis = Some("localhost:6379".into())).contains("redis://HOST:PORT"));
        assert!(bad(|c| c.allowed_origins = vec!["example.org".into()]).contains("scheme://"));
        assert!(bad(|c| c.max_connections = 0).contains("at least 1"));
    }

    #[test]
    fn workers_and_durations_are_bounded() {
        let check = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().map_err(|e| e.to_string())
        };
        let err = check(|c| c.workers = Some(0)).unwrap_err();
        assert!(
            err.contains("--workers 0") && err.contains("1 to 1024"),
            "{err}"
        );
        assert!(check(|c| c.workers = Some(1025)).is_err());
        assert!(check(|c| c.workers = Some(1)).is_ok());
        assert!(check(|c| c.workers = Some(1024)).is_ok());
        // No overflow in heartbeat * 2: a clear error instead of a panic or a wrap-around.
        let err = check(|c| c.heartbeat_secs = u64::MAX).unwrap_err();
        assert!(
            err.contains("--heartbeat-secs") && err.contains("3600"),
            "{err}"
        );
        let err = check(|c| {
            c.heartbeat_secs = u64::MAX / 2 + 1;
            c.client_timeout_secs = u64::MAX;
        })
        .unwrap_err();
        assert!(err.contains("too long"), "{err}");
        let err = check(|c| c.client_timeout_secs = 86_401).unwrap_err();
        assert!(
            err.contains("--client-timeout-secs") && err.contains("86400"),
            "{err}"
        );
        assert!(
            check(|c| {
                c.heartbeat_secs = 3600;
                c.client_timeout_secs = 86_400;
            })
            .is_ok()
        );
        // Every message is one line, as a start-up error should be.
        assert!(!err.contains('\n'));
    }

    #[test]
    fn lab_flags_parse_and_are_bounded() {
        let c =
            Config::try_parse_from(["tickerlab", "--lab-rtt-ms", "150", "--lab-jitter-ms", "20"])
                .unwrap();
        assert_eq!(
            (c.lab_rtt_ms, c.lab_jitter_ms, c.lab_port),
            (Some(150), 20, None)
        );
        assert!(c.validate().is_ok());
        let too_long = Config {
            lab_rtt_ms: Some(10_001),
            ..Config::default()
        };
        let err = too_long.validate().unwrap_err().to_string();
        assert!(
            err.contains("--lab-rtt-ms") && err.contains("10000"),
            "{err}"
        );
        // Jitter or a lab port without a round trip means nothing: clap refuses it.
        if std::env::var_os("LAB_RTT_MS").is_none() {
            assert!(Config::try_parse_from(["tickerlab", "--lab-jitter-ms", "5"]).is_err());
            assert!(Config::try_parse_from(["tickerlab", "--lab-port", "9000"]).is_err());
        }
    }

    #[test]
    fn redis_flags_parse() {
        let c = Config::try_parse_from(["tickerlab", "--redis", "redis://127.0.0.1:6379"]).unwrap();
        assert_eq!(c.redis.as_deref(), Some("redis://127.0.0.1:6379"));
        assert!(!c.feed_publisher);
        assert!(c.validate().is_ok());
        // clap refuses --feed-publisher alone before validate() sees it.
        if std::env::var_os("REDIS_URL").is_none() {
            assert!(Config::try_parse_from(["tickerlab", "--feed-publisher"]).is_err());
        }
    }
}
