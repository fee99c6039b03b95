//! Which cores a thread may run on (`sched_getaffinity` / `sched_setaffinity`), for the
//! neighbour that spins on one core and for `--split-cores`, which gives the server and the
//! bench's clients cores of their own.
//!
//! A thread inherits its creator's affinity and a process its parent's across `exec`, so
//! pinning the main thread before a runtime starts pins the runtime's threads, and pinning a
//! child between `fork` and `exec` pins every thread the server will start.

use std::io;

/// The cores the calling thread may run on, in order.
pub fn allowed() -> io::Result<Vec<usize>> {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: cpu_set_t is plain bits, valid when zeroed; sched_getaffinity writes at most
    // `size` bytes of it; pid 0 is the calling thread.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        set
    };
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `core` is below CPU_SETSIZE, the set's size in bits.
        .filter(|&core| unsafe { libc::CPU_ISSET(core, &set) })
        .collect())
}

/// Restricts the calling thread (and the threads and processes it starts from now on) to
/// `cores`. Makes no allocation and only one system call, so a child may call it between
/// `fork` and `exec`.
pub fn pin(cores: &[usize]) -> io::Result<()> {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: as in `allowed`; CPU_SET is given cores below CPU_SETSIZE only, and
    // sched_setaffinity reads `size` bytes of the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &core in cores.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(core, &mut set);
        }
        if libc::sched_setaffinity(0, size, &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
