"""Regression tests for defects found in an adversarial review of the
daemon's core (worker/, master/).  Each test failed when it was written and
passes once its defect is fixed; the docstring names the defect.

Run: python3 tests/integration/runner.py tests/integration/test_review.py
(HFS_BIN=$PWD/build/san/hmac-file-server for the ASan+UBSan build)."""

import os
import signal
import socket
import time

import hfs
from hfs import Daemon, build_request

KiB = 1 << 10
MiB = 1 << 20


_wait = hfs.wait_for


def _chunk(d, path, data, a, b, sid, conn=None):
    hs = [("Content-Range", "bytes %d-%d/%d" % (a, b - 1, len(data))),
          ("X-Upload-Session-ID", sid)]
    req = build_request("PUT", d.put_target(path, len(data)), hs, data[a:b])
    if conn is not None:
        conn.send(req)
        return conn.read_response("PUT")
    with d.conn(timeout=30) as c:
        c.send(req)
        return c.read_response("PUT")


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


# ------------------------------------------------- parser re-entered

def test_chunk_of_finished_session_is_idempotent():
    """upload.c lease_range() -> resume_body() -> conn_resume_body() runs
    process_input() from inside the parser's on_headers_complete when
    sess_open answers synchronously (the session is already DONE in the
    table): http_parser is re-entered on the same bytes and a legitimate
    retry of a chunk (a client that lost its 201) gets
    '400 LF character expected' instead of 200."""
    with Daemon(**{"server.workers": 1}) as d:
        path = "rv-late/file.bin"
        data = hfs.det_bytes(2 * 64 * KiB, seed=5)
        half = len(data) // 2
        assert _chunk(d, path, data, 0, half, "rv-1").status == 200
        r = _chunk(d, path, data, half, len(data), "rv-1")
        assert r.status == 201, r
        r = _chunk(d, path, data, 0, half, "rv-1")
        assert r.status == 200, "retry of a chunk after completion: %r" % r
        # The same on a keep-alive connection, followed by another request:
        # the parser state must survive.
        with d.conn(timeout=30) as c:
            r = _chunk(d, path, data, half, len(data), "rv-1", conn=c)
            assert r.status == 200, "retry on keep-alive: %r" % r
            c.send(build_request("GET", d.target(path)))
            g = c.read_response("GET")
            assert g.status == 200 and g.body == data, g


# ------------------------------------------------- master reload

@hfs.timeout(60)
def test_reload_starts_netmon_when_enabled():
    """master/reload.c computes netmon_changed after `m->conf = next`, so it
    compares the new configuration with itself and is always false: turning
    network.networkchangedetection on (or changing reconnectdelay) by SIGHUP
    never starts (or restarts) netmon."""
    with Daemon(**{"server.workers": 1,
                   "network.networkchangedetection": False}) as d:
        assert not [p for p in d.children() if _comm(p) == "hfs-netmon"]
        cfg = hfs.apply_overrides(d.cfg,
                                  {"network.networkchangedetection": True})
        tmp = d.conf_path + ".new"
        with open(tmp, "w") as f:
            f.write(hfs.config_text(cfg))
        os.replace(tmp, d.conf_path)
        gen = d.metrics().get("hfs_config_generation")
        os.kill(d.pid, signal.SIGHUP)
        _wait(lambda: d.metrics().get("hfs_config_generation") == gen + 1,
              10, "the reload\n" + d.log_tail())
        time.sleep(0.5)
        netmons = [p for p in d.children() if _comm(p) == "hfs-netmon"]
        assert netmons, ("networkchangedetection turned on by reload, but "
                         "no netmon runs\n" + d.log_tail())


# ------------------------------------------------- held is not published

def test_retry_after_failed_publish_is_not_told_success():
    """upload.c lease_range(): when every byte of a session is held but the
    file was never published (its publish failed and left the session
    ACTIVE, or is still running), a retry gets SESS_HELD -> MODE_DISCARD ->
    '200 OK: identical file exists' although nothing is at the path, and
    since no request ever calls sess_finish again the file is never
    published (every later retry gets the same false 200 until the session
    expires)."""
    with Daemon(**{"server.workers": 1}) as d:
        data = hfs.det_bytes(300 * KiB, seed=3)
        path = "rv-pub/a.bin"
        blocker = os.path.join(d.storage, "rv-pub")
        head = build_request("PUT", d.put_target(path, len(data)),
                             [("Content-Length", str(len(data)))], b"",
                             length=False)
        with d.conn(timeout=30) as c:
            c.send(head + data[:-1])
            time.sleep(0.5)            # the session is open and leased
            open(blocker, "w").close()   # publication will fail
            c.send(data[-1:])
            r = c.read_response("PUT")
            assert r.status == 500, "publish under a non-directory: %r" % r
        os.unlink(blocker)
        r = d.put(path, data)
        g = d.get(path)
        assert not (r.status in (200, 201) and g.status != 200), (
            "client told %d (%r) but GET -> %d" % (r.status, r.body, g.status))
        assert r.status == 201 and g.body == data, (r, g)


# ------------------------------------------------- stale method

def test_408_after_head_request_has_its_body():
    """conn.c: c->method is set only in on_head, so when the head of the
    next request on a keep-alive connection times out after a HEAD, the
    408 goes out with 'Content-Length: 57' and no body (conn_respond_text
    drops the body for HEAD): a framing error on the wire."""
    with Daemon(**{"server.workers": 1, "timeouts.readtimeout": 1}) as d:
        assert d.put("rv-408/a.txt", b"hello").status == 201
        with d.conn(timeout=10) as c:
            c.send(build_request("HEAD", d.target("rv-408/a.txt")))
            r = c.read_response("HEAD")
            assert r.status == 200, r
            c.send(b"GET /rv-408/a.txt HTTP/1.1\r\nHost: x\r\n")
            try:
                r = c.read_response("GET")
            except EOFError as e:
                raise AssertionError("408 after a HEAD: body missing (%s)"
                                     % e)
            assert r.status == 408, r
            want = int(r.header("Content-Length"))
            assert len(r.body) == want and want > 0, (
                "408 declares %d body bytes, sent %d" % (want, len(r.body)))
