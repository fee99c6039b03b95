//! What a server process holds, read from `/proc` (Linux): its open file descriptors, its
//! TCP connections, its resident memory and its open-file limit. The soaks sample these on
//! the real binary; a number from the kernel cannot be fooled by the server's own counters.

use std::collections::HashSet;

/// How many file descriptors process `pid` has open (`/proc/PID/fd`).
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count()
}

/// The resident memory of process `pid`, in KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The soft open-file limit of process `pid` (`Max open files` in `/proc/PID/limits`), as
/// `ulimit -n` set it.
pub fn open_file_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc/PID/limits");
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("Max open files")
}

/// How many TCP connections process `pid` holds open: its sockets (`socket:[INODE]` in
/// `/proc/PID/fd`) that `/proc/net/tcp` lists in a state other than LISTEN (`0A`).
pub fn connections(pid: u32) -> usize {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let inode = target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?;
            Some(inode.to_owned())
        })
        .collect();
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .map(|table| {
            table
                .lines()
                .skip(1) // the header
                .filter(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    fields.get(3) != Some(&"0A")
                        && fields.get(9).is_some_and(|inode| inodes.contains(*inode))
                })
                .count()
        })
        .sum()
}
