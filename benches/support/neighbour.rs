//! A **noisy neighbour**: a process that keeps one core busy, so a bench can measure a server
//! on a machine where something else is running too, as it will be in the real world.
//!
//! The neighbour is this same bench executable run with `--neighbour-child`: a child process
//! of its own, so its CPU time is neither the server's nor the clients' and the figures of
//! both stay clean. It pins itself to the last core it is allowed on (`sched_setaffinity`),
//! so it takes one core, not a share of every core, and spins there doing nothing useful.
//!
//! It is bounded twice: it stops when its stdin closes ([`Neighbour::stop`], or this process
//! ending for any reason), and in any case once the time it was given has passed. A bench
//! that hangs or is killed cannot leave it spinning.

use std::io::{self, Read};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::server::process_usage;

/// The burner, running in its child process.
pub struct Neighbour {
    child: Child,
    started: Instant,
}

impl Neighbour {
    /// Starts the burner for at most `bound`: this executable with `--neighbour-child
    /// --neighbour-secs <bound>`.
    pub fn start(bound: Duration) -> io::Result<Neighbour> {
        let child = Command::new(std::env::current_exe()?)
            .args([
                "--neighbour-child",
                "--neighbour-secs",
                &bound.as_secs_f64().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        Ok(Neighbour {
            child,
            started: Instant::now(),
        })
    }

    /// Stops the burner and returns the CPU it used while it ran, in % of one core (near 100
    /// when it had its core to itself).
    pub fn stop(mut self) -> f64 {
        let used = process_usage(self.child.id()).run_secs;
        let lived = self.started.elapsed().as_secs_f64();
        // Closing stdin is the signal to stop; kill() only if it does not within a second.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return used / lived * 100.0;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        used / lived * 100.0
    }
}

/// The child's side: pin to one core and spin until stdin closes or `secs` have passed.
pub fn child_main(secs: f64) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    // Started before pinning: a thread inherits its creator's affinity, and this one only
    // waits, so it need not share the burner's core.
    std::thread::spawn(move || {
        let _ = io::stdin().read_to_end(&mut Vec::new());
        stopped.store(true, Ordering::Relaxed);
    });
    match pin_to_last_core() {
        Some(core) => eprintln!("neighbour: spinning on core {core} for at most {secs:.0} s"),
        None => eprintln!("neighbour: cannot pin to a core, spinning unpinned"),
    }
    let mut spins: u64 = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
}

/// Restricts the calling thread to the last core it may run on; returns that core.
fn pin_to_last_core() -> Option<usize> {
    let core = *super::cores::allowed().ok()?.last()?;
    super::cores::pin(&[core]).ok().map(|()| core)
}
