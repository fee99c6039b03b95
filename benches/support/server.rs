//! The server under test: always the real app from `tickerlab::serve`, started one of two
//! ways.
//!
//! * [`InProcess`]: in this process, on a thread of its own with its own actix runtime (and
//!   the HTTP workers' threads), so the bench's clients, on another runtime, never share an
//!   event loop with it. Used by the `latency` bench, which reads the feed directly.
//! * [`ChildServer`]: in a child process (this very bench executable, re-run with
//!   `--serve-child`). Used by the `fanout` bench, because only a process of its own has a
//!   CPU time and a resident memory (RSS) that belong to the server alone: in-process, the
//!   5000 clients' buffers would be counted as the server's. The child answers `stats` on its
//!   stdin with the feed's counters, so serialisations per tick are still read from the app.
//!
//! [`ChildServer::start_floor`] starts the bench's own minimal WebSocket server
//! ([`super::floor`], `--floor-child`) the same way, so tickerlab and the floor are measured
//! by the same code: same `/proc` figures, same `stats` line.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use tickerlab::{Config, Feed, Stopper};

/// The real app running on its own threads inside this process.
pub struct InProcess {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    /// The simulated network's port, when the config has `lab_rtt_ms`.
    pub lab_addr: Option<SocketAddr>,
    /// The certificate served, when the config turns TLS on (for clients to trust).
    pub tls_root: Option<rustls::pki_types::CertificateDer<'static>>,
    /// Its feed, for the counters and to record every tick made.
    pub feed: Feed,
    stopper: Stopper,
    thread: std::thread::JoinHandle<()>,
}

impl InProcess {
    /// Starts the app with `config` (its port is ignored: a free one is picked).
    pub fn start(config: Config) -> InProcess {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tickerlab-server".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
                    let app = tickerlab::serve(config, listener).expect("the app starts");
                    let _ = tx.send((
                        app.local_addr(),
                        app.lab_addr(),
                        app.tls().map(|identity| identity.certificate().clone()),
                        app.feed().clone(),
                        app.stopper(),
                    ));
                    let _ = app.run().await;
                })
            })
            .expect("spawn the server thread");
        let (addr, lab_addr, tls_root, feed, stopper) =
            rx.recv().expect("the server reports its address");
        InProcess {
            addr,
            lab_addr,
            tls_root,
            feed,
            stopper,
            thread,
        }
    }

    /// Stops the app gracefully and waits for its thread.
    pub async fn stop(self) {
        self.stopper.stop().await;
        let _ = tokio::task::spawn_blocking(move || self.thread.join()).await;
    }
}

/// The feed's counters as the child reports them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// Ticks published so far.
    pub ticks: u64,
    /// Tick serialisations so far.
    pub serialisations: u64,
    /// Symbols in the feed.
    pub symbols: u64,
    /// Open WebSockets, when the child reports them (the floor does; tickerlab's are read
    /// from `/metrics` by [`ChildServer::open_websockets`]).
    pub open: Option<u64>,
}

/// Which server a [`ChildServer`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The real app, `tickerlab::serve` (`--serve-child`).
    Tickerlab,
    /// The bench's minimal Tokio WebSocket server, [`super::floor`] (`--floor-child`).
    Floor,
    /// The same floor with actix's threading model: a single-threaded runtime per core, each
    /// socket handed to one of them for its life (`--floor-child --pinned`).
    PinnedFloor,
}

/// What the child process has cost so far, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User + system CPU time, seconds, from `/proc/<pid>/stat`: counted in clock ticks
    /// (10 ms), so a few seconds of a lightly loaded server is only a handful of them.
    pub cpu_secs: f64,
    /// The same CPU time to the nanosecond: the sum over the live threads of the time they ran
    /// (`/proc/<pid>/task/*/schedstat`, first field). Threads that already exited are missing,
    /// so only differences between two readings of a long-lived server mean anything; the
    /// per-message figures use it, since clock ticks are too coarse for them.
    pub run_secs: f64,
    /// Of which in the kernel (system calls, and on loopback the TCP receive path too).
    pub system_secs: f64,
    /// Resident memory now, KiB.
    pub rss_kib: u64,
    /// Threads.
    pub threads: u64,
    /// Time the process's threads were ready to run but waited for a core, seconds (summed
    /// over threads, from `/proc/<pid>/task/*/schedstat`): on a shared machine, the delay
    /// other programs caused.
    pub runq_wait_secs: f64,
}

/// With `--split-cores`, the cores every server child is pinned to (from before it runs),
/// set once by the bench's `main` before it starts any.
pub static SERVER_CORES: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();

/// The HTTP workers every tickerlab child started from now on is given (`--workers`), set
/// once by the bench's `main` before it starts any.
pub static CHILD_WORKERS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// The heartbeat every tickerlab child started from now on is given (`--heartbeat-secs`),
/// set once by the bench's `main` before it starts any.
pub static CHILD_HEARTBEAT_SECS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// The real app in a child process: this bench executable run with `--serve-child`.
pub struct ChildServer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The server's process id, as it said it.
    pid: u32,
    /// Which server it is.
    pub kind: Kind,
}

impl ChildServer {
    /// Starts a child serving with a `tick_ms` tick and waits until it listens.
    pub fn start(tick_ms: u64, workers: Option<usize>) -> io::Result<ChildServer> {
        ChildServer::start_kind(Kind::Tickerlab, tick_ms, workers)
    }

    /// Starts the floor server ([`super::floor`]) with a `tick_ms` tick.
    pub fn start_floor(tick_ms: u64) -> io::Result<ChildServer> {
        ChildServer::start_kind(Kind::Floor, tick_ms, None)
    }

    /// Starts a child of `kind` and waits until it listens.
    pub fn start_kind(kind: Kind, tick_ms: u64, workers: Option<usize>) -> io::Result<ChildServer> {
        let exe = std::env::current_exe()?;
        // BENCH_SERVER_WRAPPER runs the child under a profiler, e.g.
        // "valgrind --tool=callgrind --callgrind-out-file=target/tickerlab-bench/server.%p.out".
        let wrapper = std::env::var("BENCH_SERVER_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(words).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        let role = match kind {
            Kind::Tickerlab => "--serve-child",
            Kind::Floor | Kind::PinnedFloor => "--floor-child",
        };
        command.args([role, "--tick-ms", &tick_ms.to_string()]);
        if kind == Kind::PinnedFloor {
            command.arg("--pinned");
        }
        let workers = workers.or_else(|| CHILD_WORKERS.get().copied());
        if let (Kind::Tickerlab, Some(workers)) = (kind, workers) {
            command.args(["--workers", &workers.to_string()]);
        }
        if let (Kind::Tickerlab, Some(secs)) = (kind, CHILD_HEARTBEAT_SECS.get()) {
            command.args(["--heartbeat-secs", &secs.to_string()]);
        }
        if let Some(cores) = SERVER_CORES.get() {
            let cores = cores.clone();
            // SAFETY: the closure runs in the child between fork and exec; `pin` makes one
            // system call and allocates nothing (`cores` was allocated before the fork).
            unsafe {
                command.pre_exec(move || super::cores::pin(&cores));
            }
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let mut words = line.split_whitespace();
        let (addr, pid) = match (words.next(), words.next(), words.next()) {
            (Some("listening"), Some(addr), Some(pid)) => (addr.parse().ok(), pid.parse().ok()),
            _ => (None, None),
        };
        let (Some(addr), Some(pid)) = (addr, pid) else {
            return Err(io::Error::other(format!(
                "child said {line:?}, not its address and process id"
            )));
        };
        Ok(ChildServer {
            child,
            stdin,
            stdout,
            addr,
            pid,
            kind,
        })
    }

    /// The server's process id: the child's own, or under `BENCH_SERVER_WRAPPER` (a
    /// profiler that starts the server as its own child) the server's, so that CPU time and
    /// memory are the server's rather than the profiler's.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Asks the child for the feed's counters.
    pub fn counters(&mut self) -> io::Result<Counters> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("stopped"))?;
        stdin.write_all(b"stats\n")?;
        stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let numbers: Vec<u64> = line
            .trim()
            .strip_prefix("stats ")
            .unwrap_or_default()
            .split(' ')
            .filter_map(|n| n.parse().ok())
            .collect();
        match numbers[..] {
            [ticks, serialisations, symbols] => Ok(Counters {
                ticks,
                serialisations,
                symbols,
                open: None,
            }),
            [ticks, serialisations, symbols, open] => Ok(Counters {
                ticks,
                serialisations,
                symbols,
                open: Some(open),
            }),
            _ => Err(io::Error::other(format!("child said {line:?}"))),
        }
    }

    /// WebSockets the server holds open now: the floor says so on `stats`; tickerlab's gauge
    /// `tickerlab_open_connections{transport="websocket"}` is read from `GET /metrics`.
    pub fn open_websockets(&mut self) -> io::Result<u64> {
        if matches!(self.kind, Kind::Floor | Kind::PinnedFloor) {
            return self
                .counters()?
                .open
                .ok_or_else(|| io::Error::other("the floor did not say"));
        }
        let mut stream = std::net::TcpStream::connect(self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )?;
        let mut text = String::new();
        io::Read::read_to_string(&mut stream, &mut text)?;
        text.lines()
            .find_map(|line| {
                line.strip_prefix("tickerlab_open_connections{transport=\"websocket\"} ")
            })
            .and_then(|value| value.trim().parse().ok())
            .ok_or_else(|| io::Error::other("no websocket gauge in /metrics"))
    }

    /// CPU time and memory so far.
    pub fn usage(&self) -> Usage {
        process_usage(self.pid())
    }

    /// Closes the child's stdin (it then stops gracefully) and waits up to 15 s, then kills it.
    pub fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's side: serve until stdin closes, answering `stats` lines with the counters.
/// `heartbeat_secs` replaces the server's default heartbeat when given.
pub fn child_main(tick_ms: u64, workers: Option<usize>, heartbeat_secs: Option<u64>) {
    actix_web::rt::System::new().block_on(async move {
        let defaults = Config::default();
        let config = Config {
            port: 0,
            tick_ms,
            seed: Some(1),
            workers,
            heartbeat_secs: heartbeat_secs.unwrap_or(defaults.heartbeat_secs),
            // The server wants at least two heartbeats per client timeout.
            client_timeout_secs: defaults
                .client_timeout_secs
                .max(heartbeat_secs.unwrap_or(0).saturating_mul(2)),
            ..defaults
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let app = tickerlab::serve(config, listener).expect("the app starts");
        println!("listening {} {}", app.local_addr(), std::process::id());
        let _ = io::stdout().flush();
        let feed = app.feed().clone();
        let stopper = app.stopper();
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            for line in io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if line.trim() == "stats" {
                    println!(
                        "stats {} {} {}",
                        feed.ticks(),
                        feed.serialisations(),
                        feed.symbols().len()
                    );
                    let _ = io::stdout().flush();
                }
            }
            let _ = closed_tx.send(());
        });
        actix_web::rt::spawn(async move {
            let _ = closed_rx.await;
            stopper.stop().await;
        });
        let _ = app.run().await;
    });
}

/// CPU time (user + system) and RSS of process `pid`, from `/proc/<pid>/stat` and `status`.
pub fn process_usage(pid: u32) -> Usage {
    // SAFETY: sysconf only reads a system constant.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat(5); index 0 here is field 3 (state).
    let cpu_secs = (field(11) + field(12)) as f64 / ticks_per_sec;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let status_kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (run_secs, runq_wait_secs) = schedstat_secs(pid);
    Usage {
        run_secs,
        runq_wait_secs,
        cpu_secs,
        system_secs: field(12) as f64 / ticks_per_sec,
        rss_kib: status_kib("VmRSS:"),
        threads: status_kib("Threads:"),
    }
}

/// The sums over `pid`'s live threads of the time spent running and the time spent runnable
/// but not running (schedstat's first and second fields, nanoseconds), in seconds.
fn schedstat_secs(pid: u32) -> (f64, f64) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0.0, 0.0);
    };
    let (mut running, mut waiting) = (0u64, 0u64);
    for line in tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
    {
        let mut fields = line
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        running += fields.next().unwrap_or(0);
        waiting += fields.next().unwrap_or(0);
    }
    (running as f64 / 1e9, waiting as f64 / 1e9)
}

/// Raises this process's open-files limit to its hard limit (children inherit it), so
/// thousands of sockets fit. Returns the new soft limit.
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}
