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

/// The real `tickerlab` binary as a process of its own, for the tests that measure what the
/// server holds: the test program runs many servers and clients at once, so its own
/// `/proc/self` would count theirs too. Killed when dropped.
pub struct ServerProcess {
    /// Where it listens (127.0.0.1, a port the kernel chose).
    pub addr: std::net::SocketAddr,
    pid: u32,
    _child: tokio::process::Child,
    stdout: super::ChildLines,
}

impl ServerProcess {
    /// Starts the binary with `args` (after `--port 0`) and waits for its URL line.
    pub async fn start(args: &[&str]) -> ServerProcess {
        Self::from_started(super::start_binary(args).await)
    }

    /// [`ServerProcess::start`] under `ulimit -n LIMIT`, a small machine's open-file limit.
    pub async fn start_with_open_file_limit(limit: u64, args: &[&str]) -> ServerProcess {
        Self::from_started(super::start_binary_with_open_file_limit(limit, args).await)
    }

    fn from_started(
        (child, addr, stdout): (tokio::process::Child, String, super::ChildLines),
    ) -> ServerProcess {
        ServerProcess {
            addr: addr.parse().expect("a socket address in the URL line"),
            pid: child.id().expect("the server is running"),
            _child: child,
            stdout,
        }
    }

    /// Its process id, for `/proc/PID`.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The next line it prints after its URL line (the simulated network's, say).
    pub async fn next_line(&mut self) -> String {
        tokio::time::timeout(super::WAIT, self.stdout.next_line())
            .await
            .expect("a line within the wait")
            .expect("read stdout")
            .expect("a line")
    }

    /// Its resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid)
    }

    /// The CPU time it has used so far, user and system (`/proc/PID/stat`, in clock ticks of
    /// 10 ms).
    pub fn cpu_time(&self) -> std::time::Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).expect("stat");
        // After the command name in parentheses: state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("(comm)")
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        std::time::Duration::from_millis(ticks * 10)
    }

    /// The TCP connections it holds open (its listener not counted).
    pub fn connections(&self) -> usize {
        connections(self.pid)
    }

    /// `GET /healthz` answers 200.
    pub async fn assert_healthy(&self) {
        let url = format!("http://{}/healthz", self.addr);
        let response = reqwest::get(url).await.expect("GET /healthz");
        assert_eq!(response.status(), 200);
    }
}

/// The connected sockets of the server listening on `port` in *this* process: the inodes of
/// the `/proc/net/tcp` entries whose local port is the server's, found among `/proc/self/fd`.
/// Counting by port leaves out every other server and client the test program runs meanwhile.
pub fn server_sockets(port: u16) -> usize {
    server_sockets_from(port, None)
}

/// [`server_sockets`], counting only the connections from `peer` when it is given (an IPv4
/// address: a test's hostile clients bind to 127.0.0.2 to be told apart from the others).
pub fn server_sockets_from(port: u16, peer: Option<std::net::Ipv4Addr>) -> usize {
    let port = format!(":{port:04X}");
    // /proc/net/tcp writes an IPv4 address as the hex of its bytes in memory order.
    let peer = peer.map(|ip| format!("{:08X}:", u32::from_le_bytes(ip.octets())));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let inodes: HashSet<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(3) == Some(&"0A");
            let inode = fields.get(9)?;
            let from_peer = peer
                .as_ref()
                .is_none_or(|peer| fields.get(2).is_some_and(|remote| remote.starts_with(peer)));
            (fields.get(1)?.ends_with(&port) && !listening && from_peer)
                .then(|| format!("socket:[{inode}]"))
        })
        .collect();
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|link| link.to_str().is_some_and(|link| inodes.contains(link)))
        .count()
}
