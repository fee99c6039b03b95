//! Giving memory back after a crowd leaves.
//!
//! Every connection allocates its buffers, tasks and channels from the C allocator (glibc's
//! `malloc` on Linux). When 5000 clients leave, all of that is freed, but `free` rarely hands
//! pages back to the kernel: glibc returns memory only from the *top* of each heap, and a
//! heap where one long-lived allocation sits above thousands of freed ones keeps them all.
//! The resident size then stays at its peak for the life of the process, and `top` says the
//! server leaks, when it merely remembers.
//!
//! glibc has the knob for this: `malloc_trim(0)` walks every heap (one per thread that
//! allocated) and releases each free page, in the middle of a heap too (`madvise
//! MADV_DONTNEED`). It costs a walk over the free lists, so [`spawn_trimmer`] calls it only
//! when the number of long-lived connections has fallen well below its recent peak, checked
//! once a second. Other allocators (jemalloc, mimalloc) return memory on their own, with a
//! delay; swapping the allocator would change every allocation's cost to fix this one moment,
//! so the project keeps glibc and asks it to trim. On other platforms this does nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often the trimmer looks at the connection count.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Trim once at least this many long-lived connections have gone since the peak...
const MIN_DEPARTED: u64 = 256;

/// ...and at least half of the peak has gone.
const MIN_DEPARTED_SHARE: f64 = 0.5;

/// Whether a fall from `peak` to `now` connections is worth a trim.
pub fn worth_trimming(peak: u64, now: u64) -> bool {
    let departed = peak.saturating_sub(now);
    departed >= MIN_DEPARTED && departed as f64 >= peak as f64 * MIN_DEPARTED_SHARE
}

/// Starts the task that hands freed memory back to the kernel after many connections have
/// closed (see the module docs). It ends when `shutdown` is cancelled.
pub fn spawn_trimmer(metrics: Arc<Metrics>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(CHECK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut peak = 0;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let now = metrics.live_connections();
            peak = peak.max(now);
            if worth_trimming(peak, now) {
                // On the blocking pool: glibc locks each heap while it walks it, and this
                // runtime's thread also runs the feed.
                let released = tokio::task::spawn_blocking(trim).await.unwrap_or(false);
                tracing::debug!(peak, now, released, "connections left: memory handed back");
                peak = now;
            }
        }
    });
}

/// Asks the allocator to return free pages to the kernel; whether it released any.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() -> bool {
    // SAFETY: malloc_trim takes no pointers and may be called from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Asks the allocator to return free pages to the kernel (nothing to do here).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::worth_trimming;

    #[test]
    fn trims_only_after_a_crowd_has_gone() {
        assert!(!worth_trimming(0, 0));
        assert!(!worth_trimming(200, 0), "a small crowd is not worth a walk");
        assert!(!worth_trimming(5000, 3000), "most are still here");
        assert!(worth_trimming(5000, 2500));
        assert!(worth_trimming(5000, 0));
    }
}
