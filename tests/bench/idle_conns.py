#!/usr/bin/env python3
"""idle_conns.py: memory a server spends per idle keep-alive connection.

  idle_conns.py --port P --path /health --count 2000 --pid MASTER_PID

Opens COUNT connections, sends one complete GET on each (so every
connection has been through a whole request and is now an idle keep-alive
connection, the state thousands of mobile XMPP clients sit in), reads every
answer, waits for the server to settle, and compares the memory of the
server's whole process tree (master and every descendant) before and after:

  RSS  resident pages of each process, summed (shared pages counted in
       every process that maps them);
  PSS  proportional set size from /proc/PID/smaps_rollup (shared pages
       split between the processes sharing them): the fairer sum.

Prints one line for run.sh:
  IDLERESULT conns=N rss_before_kib=.. rss_after_kib=.. pss_before_kib=..
             pss_after_kib=.. rss_per_conn_b=.. pss_per_conn_b=.. closed=..
(per-connection figures in bytes). "closed" counts connections the server
had dropped by the time of the second measurement: it must be 0 for the
figure to mean anything. Kernel socket memory (about as much per socket
for both servers) is in neither figure: this is what the server's own
code costs.
"""

import argparse
import os
import select
import socket
import sys
import time

from proctree import tree


def rollup(pid):
    """(rss_kib, pss_kib) of one process from smaps_rollup."""
    rss = pss = 0
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def measure(pid):
    rss = pss = 0
    procs = tree(pid)
    for p in procs:
        try:
            r, s = rollup(p)
        except OSError:
            continue
        rss += r
        pss += s
    return rss, pss, len(procs)


def request(path, port):
    return ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            "User-Agent: hfs-bench-idle\r\n\r\n" % (path, port)).encode()


def read_response(s):
    """Reads one response with a Content-Length body; returns the status."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        piece = s.recv(65536)
        if not piece:
            raise EOFError("closed before the response head")
        buf += piece
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(rest) < length:
        piece = s.recv(65536)
        if not piece:
            raise EOFError("closed inside the body")
        rest += piece
    return status


def one(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(request(path, port))
    st = read_response(s)
    if st != 200:
        raise RuntimeError("GET %s answered %d" % (path, st))
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--settle", type=float, default=1.0)
    a = ap.parse_args()

    # One request first, closed again: one-off allocations made by the
    # first request (buffers, stdio, lazily loaded pages) are not a
    # per-connection cost.
    one(a.port, a.path).close()
    time.sleep(a.settle)
    rss0, pss0, nproc = measure(a.pid)

    socks = []
    req = request(a.path, a.port)
    # All requests first, then all answers: the server sees a burst, as
    # after a network change when every client reconnects at once.
    for _ in range(a.count):
        s = socket.create_connection(("127.0.0.1", a.port), timeout=30)
        s.sendall(req)
        socks.append(s)
    bad = 0
    for s in socks:
        if read_response(s) != 200:
            bad += 1
    if bad:
        print("idle_conns: %d requests were not answered 200" % bad,
              file=sys.stderr)
        return 1
    time.sleep(a.settle)
    rss1, pss1, _ = measure(a.pid)

    # A connection the server closed is readable (EOF) now. poll, not
    # select: these descriptors are above FD_SETSIZE.
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN)
    closed = len(poller.poll(0))
    for s in socks:
        s.close()

    n = a.count
    print("IDLERESULT conns=%d procs=%d rss_before_kib=%d rss_after_kib=%d "
          "pss_before_kib=%d pss_after_kib=%d rss_per_conn_b=%d "
          "pss_per_conn_b=%d closed=%d"
          % (n, nproc, rss0, rss1, pss0, pss1, (rss1 - rss0) * 1024 // n,
             (pss1 - pss0) * 1024 // n, closed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
