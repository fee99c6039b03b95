//! A real `redis-server` for tests and benches: started on a free loopback port with no
//! persistence, killed when dropped (pass or fail), so nothing outlives the run.
//! Included with `#[path]` by `tests/it/backplane.rs` and `benches/backplane.rs`.
#![allow(dead_code)] // the benches use a subset

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long redis-server may take to answer after starting.
const READY: Duration = Duration::from_secs(10);

/// A `redis-server` child process on a loopback port, killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts one on a free port, or returns `None` if `TICKERLAB_SKIP_REDIS=1`.
    ///
    /// The port is free when asked for, but other tests of the program bind and connect
    /// meanwhile and may take it before redis-server binds it; redis-server then exits at
    /// once, and another free port is tried (a few times).
    pub fn start() -> Option<RedisServer> {
        if std::env::var("TICKERLAB_SKIP_REDIS").is_ok_and(|v| v == "1") {
            eprintln!("TICKERLAB_SKIP_REDIS=1: skipping a test that needs redis-server");
            return None;
        }
        for _ in 0..5 {
            let mut server = RedisServer {
                child: None,
                port: free_port(),
            };
            if server.spawn_and_wait() {
                return Some(server);
            }
        }
        panic!("redis-server could not listen on any of five free ports");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to its clients, like a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty, and waits until it answers. (If
    /// something took the port meanwhile, it tries again until the deadline.)
    pub fn restart(&mut self) {
        let deadline = std::time::Instant::now() + READY;
        while !self.spawn_and_wait() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server could not listen on port {} again",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts redis-server on this port and waits until it answers: `false` if it exited
    /// first (the port was taken), panics if it neither answers nor exits within [`READY`].
    fn spawn_and_wait(&mut self) -> bool {
        self.kill();
        let spawned = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => panic!(
                "cannot start redis-server ({e}): install it (Debian: apt-get install \
                 redis-server; .ci/run does this) or set TICKERLAB_SKIP_REDIS=1 to skip"
            ),
        };
        self.child = Some(child);
        let deadline = std::time::Instant::now() + READY;
        loop {
            if self.connection().is_some() {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|child| child.try_wait().ok().flatten().is_some());
            if exited {
                self.child = None;
                return false;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not answer on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A plain (blocking) connection, to play a third party that writes to Redis.
    pub fn connection(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut con = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        redis::cmd("PING").query::<String>(&mut con).ok()?;
        Some(con)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nothing listens on (at the moment of asking).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}
