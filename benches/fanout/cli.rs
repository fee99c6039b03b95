//! The flags of the fan-out bench, each (but `--only`) with an environment fallback:
//! `cargo bench --bench fanout -- --help` prints them. The server children the bench starts
//! are this same program, run with the hidden `--serve-child` or `--floor-child`.

use clap::builder::FalseyValueParser;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::support::cli::CargoArgs;

/// What the command line (or the environment) asked for. `cargo bench --bench fanout --
/// --help` prints it; the top of this file says what each part measures.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "fanout",
    bin_name = "cargo bench --bench fanout --",
    about = "How far does this server's fan-out go, how close to the metal is it, and is push \
             cheaper than poll? Each step against a fresh server in a child process.",
    after_help = "BENCH_SERVER_WRAPPER=\"valgrind --tool=callgrind ...\" runs every server child \
                  (tickerlab's and the floor's) under that command."
)]
pub struct Plan {
    /// Seconds measured per step.
    #[arg(long, env = "BENCH_SECS", default_value_t = 5.0)]
    pub secs: f64,
    /// WebSocket clients per step, comma-separated.
    #[arg(long, env = "BENCH_CLIENTS", value_delimiter = ',', default_values_t = [1, 10, 100, 1000, 5000])]
    pub clients: Vec<usize>,
    /// Tick intervals in milliseconds, comma-separated: the steps run at each.
    #[arg(long, env = "BENCH_TICKS", value_delimiter = ',', default_values_t = [100, 10])]
    pub ticks: Vec<u64>,
    /// Run one part only (all of them by default, but `tail`, which runs only when named).
    #[arg(long, value_enum)]
    pub only: Option<Part>,
    /// Rounds of the tail part (`--only tail`): in each, tickerlab's step and the floor's (in
    /// turn first) at every tick and number of clients.
    #[arg(long, env = "BENCH_ROUNDS", default_value_t = 3)]
    pub rounds: usize,
    /// A noisy neighbour during every fan-out step, tickerlab's and the floor's alike: a child
    /// process spinning on one core (the last one, pinned with sched_setaffinity) from before
    /// the server starts to the end of the step, and stopping by itself if not stopped.
    #[arg(long, env = "BENCH_NEIGHBOUR", value_parser = FalseyValueParser::new())]
    pub neighbour: bool,
    /// A third step in every tail round: the floor with actix's threading model (one
    /// single-threaded runtime per core, each socket on one of them for its life) beside the
    /// work-stealing floor, which tells what the fixed assignment of sockets alone costs.
    #[arg(long, env = "BENCH_PINNED_FLOOR", value_parser = FalseyValueParser::new())]
    pub pinned_floor: bool,
    /// Cores of their own for each side: every server child (tickerlab's, the floor's) is
    /// pinned to the first half of the cores this bench may use (rounded down), the bench's
    /// clients to the rest, so neither preempts the other, in every part of the run (on 2
    /// cores: the server on one, the clients on the other; tickerlab then runs one worker and
    /// the floors one thread, each sizing itself by the cores it may use).
    #[arg(
        long,
        env = "BENCH_SPLIT_CORES",
        value_parser = FalseyValueParser::new(),
        conflicts_with = "neighbour"
    )]
    pub split_cores: bool,
    /// Seconds after the last client joined recorded apart as the start-up transient, in the
    /// steps at a 100 ms tick with --transient-clients clients (0: none, settle 1 s).
    #[arg(long, env = "BENCH_TRANSIENT_SECS", default_value_t = 10.0)]
    pub transient_secs: f64,
    /// The clients of the step(s) that get the start-up transient.
    #[arg(long, env = "BENCH_TRANSIENT_CLIENTS", default_value_t = 1000)]
    pub transient_clients: usize,
    /// Clients of the push-or-poll comparison, on each side.
    #[arg(long, env = "BENCH_PUSHPOLL_CLIENTS", default_value_t = 1000)]
    pub pushpoll_clients: usize,
    /// Clients the churn step connects, holds and closes.
    #[arg(long, env = "BENCH_CHURN_CLIENTS", default_value_t = 5000)]
    pub churn_clients: usize,
    /// Seconds the churn step holds its clients connected.
    #[arg(long, env = "BENCH_CHURN_HOLD_SECS", default_value_t = 3.0)]
    pub churn_hold_secs: f64,
    /// Seconds the churn step waits, once no WebSocket is open, before reading memory again.
    #[arg(long, env = "BENCH_CHURN_SETTLE_SECS", default_value_t = 2.0)]
    pub churn_settle_secs: f64,
    /// Be the tickerlab server child (the bench starts it; see `support::server`).
    #[arg(long, hide = true, conflicts_with = "floor_child")]
    pub serve_child: bool,
    /// Be the floor server child (see `support::floor`).
    #[arg(long, hide = true)]
    pub floor_child: bool,
    /// The floor child serves with one single-threaded runtime per core (see `support::floor`).
    #[arg(long, hide = true, requires = "floor_child")]
    pub pinned: bool,
    /// Be the noisy neighbour's child (see `support::neighbour`).
    #[arg(long, hide = true)]
    pub neighbour_child: bool,
    /// The neighbour child's bound: it stops by itself after this many seconds.
    #[arg(long, hide = true, default_value_t = 60.0)]
    pub neighbour_secs: f64,
    /// The server child's tick, milliseconds.
    #[arg(long, hide = true, env = "BENCH_CHILD_TICK_MS", default_value_t = 100)]
    pub tick_ms: u64,
    /// tickerlab's HTTP workers (default: one per core it may use): the bench passes it to
    /// every tickerlab child it starts.
    #[arg(long, env = "BENCH_WORKERS")]
    pub workers: Option<usize>,
    /// tickerlab's heartbeat: seconds between the pings it sends every client (default: the
    /// server's own, 5 s). With a long one (1800) no ping falls inside a step, which is how
    /// the tail part tells what the heartbeat costs the tail.
    #[arg(long, env = "BENCH_HEARTBEAT_SECS")]
    pub heartbeat_secs: Option<u64>,
    #[command(flatten)]
    cargo: CargoArgs,
    /// The flags given, as a command that repeats this run (filled in by [`Plan::read`]).
    #[arg(skip)]
    pub command: String,
}

/// The parts of the bench, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// The fan-out steps: N WebSocket clients at each tick.
    Ws,
    /// The fan-out steps, each beside the same step against the floor server.
    Floor,
    /// Memory per idle WebSocket.
    Idle,
    /// `GET /price` as fast as 64 connections can ask.
    Price,
    /// Push and poll at the same delivered rate.
    Pushpoll,
    /// Memory before, with and after many WebSockets.
    Churn,
    /// The tail, round after round: each round tickerlab's step and the floor's, with
    /// p50, p99, p99.9 and the worst second of each, and the ratios to the floor.
    Tail,
}

impl Plan {
    /// Reads the command line and the environment; stops with clap's message (or the help)
    /// when they do not make a plan.
    pub fn read() -> Plan {
        let matches = Plan::command().get_matches();
        let mut plan = Plan::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        plan.command = command_line(plan.secs, &matches);
        plan
    }

    /// Whether `part` runs: all of them do unless `--only` names one, but the tail (its
    /// rounds repeat the fan-out steps, which the full run already has once) only when named.
    pub fn wants(&self, part: Part) -> bool {
        match self.only {
            Some(only) => only == part,
            None => part != Part::Tail,
        }
    }

    /// The transient window for a step of `n` clients at a `tick_ms` tick.
    pub fn transient_for(&self, n: usize, tick_ms: u64) -> f64 {
        if tick_ms == 100 && n == self.transient_clients {
            self.transient_secs
        } else {
            0.0
        }
    }
}

/// The flags that shaped this run, as a command that repeats it: `--secs`, and every other
/// flag given on the command line or through its environment variable.
fn command_line(secs: f64, matches: &ArgMatches) -> String {
    let mut command = format!("cargo bench --bench fanout -- --secs {secs}");
    for id in [
        "clients",
        "ticks",
        "only",
        "transient_secs",
        "transient_clients",
        "pushpoll_clients",
        "churn_clients",
        "churn_hold_secs",
        "churn_settle_secs",
        "rounds",
        "heartbeat_secs",
        "workers",
    ] {
        let given = matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        let Some(values) = matches.get_raw(id).filter(|_| given) else {
            continue;
        };
        let values: Vec<_> = values.map(|v| v.to_string_lossy()).collect();
        command += &format!(" --{} {}", id.replace('_', "-"), values.join(","));
    }
    // Switches: their value is whether they were given, which clap reads from the command
    // line or from their environment variable.
    for id in ["neighbour", "pinned_floor", "split_cores"] {
        if matches.get_flag(id) {
            command += &format!(" --{}", id.replace('_', "-"));
        }
    }
    command
}
