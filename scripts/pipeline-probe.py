#!/usr/bin/env python3
"""What pipelining clients that never read cost a tickerlab server, in resident memory.

    python3 scripts/pipeline-probe.py target/debug/tickerlab [CONNECTIONS] [REQUESTS]

Starts the given binary on 127.0.0.1 (a free port, one worker), opens CONNECTIONS
(default 4) connections with a 4 KiB receive buffer, writes REQUESTS (default 7000)
pipelined `GET /price` on each for at most 3 s and never reads an answer, then prints how
much the server's RSS grew. Loopback only, bounded in count and time; the server is killed
at the end.
"""
import re
import socket
import subprocess
import sys
import time

binary = sys.argv[1]
connections = int(sys.argv[2]) if len(sys.argv) > 2 else 4
requests = int(sys.argv[3]) if len(sys.argv) > 3 else 7000
server = subprocess.Popen([binary, "--port", "0", "--workers", "1"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    line = server.stdout.readline()
    while "listening on" not in line:
        line = server.stdout.readline()
    host, port = re.search(r"http://([\d.]+):(\d+)", line).groups()

    def rss_kib():
        for status in open(f"/proc/{server.pid}/status"):
            if status.startswith("VmRSS"):
                return int(status.split()[1])

    time.sleep(0.5)
    before = rss_kib()
    held = []
    payload = b"GET /price HTTP/1.1\r\nHost: x\r\n\r\n" * requests
    for _ in range(connections):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((host, int(port)))
        s.setblocking(False)
        sent, start = 0, time.time()
        while sent < len(payload) and time.time() - start < 3:
            try:
                sent += s.send(payload[sent:])
            except BlockingIOError:
                time.sleep(0.01)
        held.append(s)
    time.sleep(1)
    print(f"{connections} connections x {requests} pipelined requests, never read: "
          f"RSS grew {rss_kib() - before} KiB")
finally:
    server.kill()
