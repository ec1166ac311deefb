"""Connection floods and hostile HTTP against the real daemon (docs/security.md).

Per-address limits are counted in shared memory across workers; other
addresses are shown unaffected by connecting from 127.0.0.2 (all of
127.0.0.0/8 is loopback). Worker memory is read from /proc/PID/status
(VmRSS) before, during and after a slow-loris flood."""

import os
import socket
import time

import hfs
from hfs import Daemon

MiB = 1 << 20


def conn_from(d, src="127.0.0.1", timeout=10.0):
    """A hfs.Conn to d whose source address is src."""
    c = hfs.Conn.__new__(hfs.Conn)
    c.sock = socket.create_connection(("127.0.0.1", d.port), timeout=timeout,
                                      source_address=(src, 0))
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.buf = b""
    c.port = d.port
    return c


def health_from(d, src):
    with conn_from(d, src) as c:
        c.send(hfs.build_request("GET", "/health"))
        return c.read_response("GET")


def metrics_from(d, src):
    with conn_from(d, src) as c:
        c.send(hfs.build_request("GET", "/metrics"))
        r = c.read_response("GET")
    assert r.status == 200, r
    return hfs.parse_metrics(r.text)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def workers_holding(d, conns):
    return {d.conn_owner(c) for c in conns}


def refused_503(c):
    """The server answers a connection over the limit at once, unasked."""
    r = c.read_response("GET")
    assert r.status == 503, r
    assert r.header("Retry-After"), r
    assert b"max_connections_per_address" in r.body, r.body
    assert c.wait_closed(5), "refused connection left open"


@hfs.timeout(90)
def test_connections_per_address_across_workers():
    with Daemon(**{"server.workers": 2,
                   "server.max_connections_per_address": 4}) as d:
        d.wait_workers(2)
        # Four held connections (partial heads), spread over both workers
        # when the kernel lets us: the limit must hold across them.
        for attempt in range(10):
            held = [conn_from(d) for _ in range(4)]
            for c in held:
                c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            if len(workers_holding(d, held)) == 2:
                break
            if attempt == 9:
                print("note: all four connections landed on one worker")
                break
            for c in held:
                c.close()
            # Closed connections count until their worker has seen them go.
            hfs.wait_for(lambda: health_from(d, "127.0.0.1").status == 200,
                         5, "connections released")
        over = conn_from(d)
        refused_503(over)
        over.close()
        # Everyone else is still served.
        assert health_from(d, "127.0.0.2").status == 200
        m = metrics_from(d, "127.0.0.2")
        assert m.get("hfs_limit_refusals_total",
                     limit="connections_per_address") >= 1
        assert "refusing a connection" in d.log()
        # One closed: its place is free again (after its worker noticed).
        held.pop().close()
        hfs.wait_for(lambda: health_from(d, "127.0.0.1").status == 200, 5,
                     "a connection admitted again")
        for c in held:
            c.close()


@hfs.timeout(60)
def test_uploads_per_address():
    with Daemon(**{"server.workers": 2,
                   "server.max_uploads_per_address": 2}) as d:
        data = hfs.det_bytes(MiB, seed=4)
        slow = []
        for i in range(2):
            c = d.conn()
            c.send(hfs.build_request("PUT", d.put_target("u-lim/%d" % i,
                                                         len(data)),
                                     [("Content-Length", str(len(data)))]))
            c.send(data[:1000])
            slow.append(c)
        time.sleep(0.3)
        r = d.put("u-lim/third", data)
        assert r.status == 503, r
        assert r.header("Retry-After"), r
        assert b"max_uploads_per_address" in r.body, r.body
        # Downloads are not uploads; another address may upload.
        assert d.get("u-lim/none").status == 404
        with conn_from(d, "127.0.0.2") as c:
            c.send(hfs.build_request("PUT", d.put_target("u-lim/other", 5),
                                     body=b"hello"))
            assert c.read_response("PUT").status == 201
        # One finishes: the third goes through.
        slow[0].send(data[1000:])
        assert slow[0].read_response("PUT").status == 201
        r = d.put("u-lim/third", data)
        assert r.status == 201, r
        slow[1].close()
        assert d.metrics().get("hfs_limit_refusals_total",
                               limit="uploads_per_address") >= 1


@hfs.timeout(60)
def test_header_timeout_shorter_than_body_timeout():
    with Daemon(**{"timeouts.headertimeout": "1s",
                   "timeouts.readtimeout": "30s"}) as d:
        # A head trickled a byte at a time is cut at 1 s, not 30 s.
        t0 = time.monotonic()
        c = d.conn()
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
        got = None
        for b in head:
            try:
                c.send(bytes([b]))
            except OSError:
                break
            if c.readable(0.1):
                got = c.read_response("GET")
                break
        if got is None:
            got = c.read_response("GET")
        assert got.status == 408, got
        assert time.monotonic() - t0 < 5
        c.close()
        # A connection that never sends anything is closed as quickly.
        c = d.conn()
        assert c.wait_closed(4), "silent connection kept past headertimeout"
        c.close()
        # A body may go slower than that: it has readtimeout per stall.
        data = b"x" * 3000
        c = d.conn()
        c.send(hfs.build_request("PUT", d.put_target("u-slow/body", 3000),
                                 [("Content-Length", "3000")]))
        for i in range(3):
            time.sleep(0.7)
            c.send(data[i * 1000:(i + 1) * 1000])
        r = c.read_response("PUT")
        c.close()
        assert r.status == 201, r


def _slowloris(d, n):
    """n connections, each a 6 KiB head that never ends."""
    socks = []
    pad = b"X-Pad: " + b"p" * 100 + b"\r\n"
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        s.sendall(b"PUT /u-loris/%d HTTP/1.1\r\nHost: x\r\n" % i
                  + pad * 56)
        socks.append(s)
    return socks


@hfs.timeout(120)
def test_slowloris_memory_returned():
    if "/build/san/" in hfs.HFS_BIN:
        # ASan's allocator keeps freed memory in quarantine and ignores
        # mallopt/malloc_trim: RSS says nothing about glibc's heap there.
        raise hfs.Skip("RSS is measured on the release build")
    n = 500
    with Daemon(**{"server.workers": 1,
                   "server.max_connections_per_address": 2 * n}) as d:
        w = d.wait_workers(1)[0]
        for i in range(20):                 # warm up: steady state
            assert d.put("u-warm/%d" % i, b"w" * 70000).status == 201
            assert d.get("u-warm/%d" % i).status == 200
        time.sleep(1.2)
        before = rss_kib(w)
        socks = _slowloris(d, n)
        hfs.wait_for(lambda: d.metrics().get("hfs_connections_active") >= n,
                     10, "%d connections" % n)
        during = rss_kib(w)
        # The flood ends, but a few of its clients stay (as real ones
        # would): their memory is scattered among the freed.
        stay = socks[::50]
        for s in socks:
            if s not in stay:
                s.close()
        hfs.wait_for(lambda: d.metrics().get("hfs_connections_active")
                     <= len(stay) + 1, 10, "connections closed")
        time.sleep(2.5)                     # a tick or two: trimmed
        after = rss_kib(w)
        print("worker VmRSS KiB: before %d, during %d (+%d), after %d (+%d)"
              " with %d connections left" % (before, during, during - before,
                                             after, after - before,
                                             len(stay)))
        # Each connection's 6 KiB head is resident twice, in its read
        # buffer and in its parser's copy (at least 12 KiB, 6 MiB for 500).
        # Parsers are not cleared when handed out (reused from a cache),
        # so the rest of their 17 KiB is never touched and not counted.
        assert during - before > 5 * 1024, "flood not seen in RSS?"
        assert after - before < 4 * 1024, \
            "RSS not returned after the flood: %d -> %d -> %d KiB" % (
                before, during, after)
        for s in stay:
            s.close()
        assert d.request("GET", "/health").status == 200


def _raw(d, data):
    with d.conn() as c:
        c.send(data)
        r = c.read_response("PUT")
        closed = c.wait_closed(3)
    return r, closed


def test_hostile_http_refused():
    with Daemon() as d:
        t = d.put_target("u-host/a", 5)
        cases = [
            (b"GET /health HTTP/1.1\r\nAccept: */*\r\n\r\n", 400,
             b"missing Host"),
            (b"GET /health HTTP/1.2\r\nHost: x\r\n\r\n", 505, b"HTTP/1.2"),
            (b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505, b"HTTP/2.0"),
            (b"GET /health HTTP/0.9\r\nHost: x\r\n\r\n", 505, b"HTTP/0.9"),
            (("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
              "Transfer-Encoding:\r\n chunked\r\n\r\n"
              "0\r\n\r\n" % t).encode(), 400,
             b"folding in header Transfer-Encoding"),
            (("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\t5\r\n\r\n"
              "hello" % t).encode(), 400, b"folding in header Content-Length"),
        ]
        for raw, status, words in cases:
            r, closed = _raw(d, raw)
            assert r.status == status, (raw, r)
            assert words in r.body, (raw, r.body)
            assert closed, raw
        assert d.get("u-host/a").status == 404
        # HTTP/1.0 needs no Host; HTTP/1.1 with it is served.
        r, _ = _raw(d, b"GET /health HTTP/1.0\r\n\r\n")
        assert r.status == 200, r
        assert d.request("GET", "/health").status == 200
