"""SIGHUP reload: a new worker generation on the same sockets, with no
failed request, no leftover worker, and a broken file refused.

What api.md and hmac-file-server(8) promise, checked from outside: HTTP
answers, the master's children in /proc, the log, /metrics.
"""

import http.client
import os
import random
import signal
import socket
import threading
import time

import hfs
from hfs import Daemon


def _write_conf(d, cfg=None, extra=""):
    """Rewrites the daemon's config atomically (a reload must never read a
    half-written file)."""
    text = hfs.config_text(cfg if cfg is not None else d.cfg) + extra
    tmp = d.conf_path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, d.conf_path)
    return text


def _metric(d, name, port=None):
    if port is None:
        return d.metrics().get(name)
    r = hfs.raw_request(port, hfs.build_request("GET", "/metrics"))
    assert r.status == 200, r
    return hfs.parse_metrics(r.text).get(name)


_wait = hfs.wait_for


def _poll_generation(d, port):
    """hfs_config_generation, or 0 while the port cannot answer yet (a new
    port is bound only once the master has handled the SIGHUP).  Failed
    requests are the business of the load test, not of this poll."""
    try:
        return _metric(d, "hfs_config_generation", port)
    except (OSError, EOFError, ValueError):
        return 0


def _hup_and_wait(d, generation, port=None):
    """SIGHUP, then wait until /metrics shows the next generation."""
    os.kill(d.pid, signal.SIGHUP)
    _wait(lambda: _poll_generation(d, port) >= generation + 1,
          10, "config generation %d\n%s" % (generation + 1, d.log_tail()))
    return generation + 1


# ---------------------------------------------------------------- load

class Load:
    """Threads doing signed v1 uploads and downloads, one fresh connection
    per request (as XMPP clients do), recording every deviation."""

    def __init__(self, d, threads=4):
        self.d = d
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures = []
        self.uploaded = {}          # path -> bytes
        self.counts = {"put": 0, "get": 0, "slow": 0}
        self.threads = [threading.Thread(target=self.run, args=(i,),
                                         daemon=True)
                        for i in range(threads)]
        self.threads.append(threading.Thread(target=self.slow, daemon=True))

    def fail(self, what):
        with self.lock:
            self.failures.append("%.3f %s" % (time.monotonic(), what))

    def request(self, method, target, body=None, timeout=20):
        c = http.client.HTTPConnection("127.0.0.1", self.d.port,
                                       timeout=timeout)
        try:
            c.request(method, target, body=body)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def run(self, n):
        rnd = random.Random(n)
        i = 0
        while not self.stop.is_set():
            i += 1
            path = "load-%d-%d/f%d.bin" % (n, i, rnd.randrange(1000))
            data = rnd.randbytes(rnd.choice((0, 1, 900, 20000, 300000)))
            q = "v=" + hfs.sign_v1(path, len(data))
            try:
                st, body = self.request("PUT", hfs.quote_path(path) + "?" + q,
                                        data)
                if st != 201:
                    self.fail("PUT %s: %d %r" % (path, st, body[:100]))
                    continue
                with self.lock:
                    self.uploaded[path] = data
                    self.counts["put"] += 1
                st, body = self.request("GET", hfs.quote_path(path))
                if st != 200 or body != data:
                    self.fail("GET %s: %d, %d bytes (want %d)" % (
                        path, st, len(body), len(data)))
                    continue
                with self.lock:
                    self.counts["get"] += 1
            except (OSError, http.client.HTTPException) as e:
                self.fail("%s: %r" % (path, e))

    def slow(self):
        """Uploads that trickle for ~1.5 s, so reloads land in the middle of
        them: the old worker must finish them, not cut them."""
        i = 0
        while not self.stop.is_set():
            i += 1
            path = "slow-%d/s.bin" % i
            data = hfs.det_bytes(64 * 1024, seed=i)
            try:
                r = self.d.put_stream(self.d.put_target(path, len(data)),
                                      data, piece=4096, pause=0.1)
                if r.status != 201:
                    self.fail("slow PUT %s: %r" % (path, r))
                    continue
                with self.lock:
                    self.uploaded[path] = data
                    self.counts["slow"] += 1
            except (OSError, EOFError, ValueError) as e:
                self.fail("slow PUT %s: %r" % (path, e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads), "load stuck"


@hfs.timeout(60)
def test_reload_under_load_no_failed_request():
    with Daemon(**{"server.workers": 2, "server.shutdown_grace": 10}) as d:
        counts = (2, 3)
        gen = _metric(d, "hfs_config_generation")
        seen = set(d.worker_pids())
        with Load(d) as load:
            time.sleep(0.5)
            for i in range(10):
                want = counts[(i + 1) % 2]
                d.cfg["server"]["workers"] = want
                _write_conf(d)
                before = set(d.worker_pids())
                seen |= before
                gen = _hup_and_wait(d, gen)
                # Let the new generation take traffic while the old drains.
                time.sleep(0.3)
            time.sleep(1.0)
        assert not load.failures, "%d failed request(s) during reloads:\n%s" \
            "\n---- log tail\n%s" % (len(load.failures),
                                     "\n".join(load.failures[:20]),
                                     d.log_tail(40))
        assert load.counts["put"] >= 40 and load.counts["slow"] >= 3, \
            load.counts
        # Every upload, byte for byte, after the dust settled.
        for path, data in load.uploaded.items():
            g = d.get(path)
            assert g.status == 200 and g.body == data, (path, g)
        # Exactly the last generation is left: old workers (which may still
        # be finishing a slow upload) must all have exited.
        want = counts[10 % 2]
        fresh = d.wait_workers(want, exclude=before, timeout=15)
        time.sleep(0.3)
        now = d.worker_pids()
        assert sorted(now) == sorted(fresh) and len(now) == want, \
            "workers %s, want %d new ones\n%s" % (now, want, d.log_tail())
        assert not set(now) & seen, "a worker of an old generation is left"
        m = d.metrics()
        assert m.get("hfs_config_generation") == gen
        assert m.get("hfs_last_reload_success") == 1
        assert m.get("hfs_worker_restarts_total") == 0, d.log_tail()
        bad = [ln for ln in d.log().splitlines()
               if "killed by signal" in ln or "[error]" in ln]
        assert not bad, "\n".join(bad[:20])


@hfs.timeout(30)
def test_connection_made_before_reload_is_served():
    """A client that connected just before the SIGHUP and sends its request
    just after must get an answer: its connection may sit in an old worker
    (accepted, no byte read yet), which has to serve it, not drop it.
    (Closing a keep-alive connection between requests is allowed; closing
    one that never carried a request fails a client that did nothing
    wrong.)"""
    with Daemon(**{"server.workers": 1}) as d:
        gen = _metric(d, "hfs_config_generation")
        old = d.worker_pids()
        conns = [d.conn() for _ in range(3)]
        try:
            # Accepted by the (only) old worker before the signal.
            _wait(lambda: all(d.conn_owner(c, 2) in old for c in conns), 5,
                  "the old worker to accept the connections")
            gen = _hup_and_wait(d, gen)
            data = hfs.det_bytes(2000, seed=5)
            for i, c in enumerate(conns):
                path = "pre-%d/x.bin" % i
                if i == 0:
                    c.send(hfs.build_request("GET", "/health"))
                    want = 200
                else:
                    c.send(hfs.build_request(
                        "PUT", d.put_target(path, len(data)), body=data))
                    want = 201
                try:
                    r = c.read_response("GET" if i == 0 else "PUT")
                except (OSError, EOFError) as e:
                    raise AssertionError(
                        "connection %d, made before the reload, failed: %r"
                        "\n%s" % (i, e, d.log_tail()))
                assert r.status == want, r
        finally:
            for c in conns:
                c.close()
        d.wait_workers(1, exclude=old)
        assert d.get("pre-1/x.bin").status == 200


@hfs.timeout(30)
def test_invalid_config_keeps_old_one():
    with Daemon(**{"server.workers": 2}) as d:
        workers = sorted(d.worker_pids())
        gen = _metric(d, "hfs_config_generation")
        assert _metric(d, "hfs_last_reload_success") == 1
        good = hfs.config_text(d.cfg)

        cases = []
        # An unknown key, and a value out of range, each on a known line.
        bad = dict(d.cfg, server=dict(d.cfg["server"], workerz=2))
        cases.append((bad, "server.workerz", "unknown"))
        bad = dict(d.cfg, server=dict(d.cfg["server"], workers=1000))
        cases.append((bad, "server.workers", "256"))

        for cfg, key, why in cases:
            text = _write_conf(d, cfg)
            leaf = key.split(".")[1]
            line = next(i + 1 for i, ln in enumerate(text.splitlines())
                        if ln.strip().startswith(leaf + " "))
            mark = len(d.log())
            t0 = int(time.time())
            os.kill(d.pid, signal.SIGHUP)
            _wait(lambda: "reload failed" in d.log()[mark:], 5,
                  "the refusal in the log\n" + d.log_tail())
            msg = [ln for ln in d.log()[mark:].splitlines()
                   if "reload failed" in ln][0]
            want = "%s:%d: %s" % (d.conf_path, line, key)
            assert want in msg and why in msg, "log %r lacks %r" % (msg, want)
            m = d.metrics()
            assert m.get("hfs_last_reload_success") == 0, m
            assert m.get("hfs_config_generation") == gen, m
            assert m.get("hfs_last_reload_timestamp_seconds") >= t0, m
            # Still serving, on the same workers, with the old settings.
            time.sleep(0.3)
            assert sorted(d.worker_pids()) == workers
            data = hfs.det_bytes(3000, seed=line)
            path = "inv-%s/x.bin" % leaf
            assert d.put(path, data).status == 201
            assert d.get(path).body == data

        # Fixed again: the next reload succeeds.
        _write_conf(d, None)
        assert hfs.config_text(d.cfg) == good
        gen = _hup_and_wait(d, gen)
        assert _metric(d, "hfs_last_reload_success") == 1
        d.wait_workers(2, exclude=workers)


def _refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@hfs.timeout(30)
def test_listen_port_and_worker_count_change():
    with Daemon(**{"server.workers": 2}) as d:
        old_port = d.port
        old = d.worker_pids()
        assert len(old) == 2
        data = hfs.det_bytes(5000, seed=9)
        assert d.put("port-1/a.bin", data).status == 201
        gen = _metric(d, "hfs_config_generation")

        new_port = hfs.free_port()
        d.cfg["server"]["listen"] = ["127.0.0.1:%d" % new_port]
        d.cfg["server"]["workers"] = 3
        _write_conf(d)
        gen = _hup_and_wait(d, gen, port=new_port)
        r = hfs.raw_request(new_port, hfs.build_request("GET", "/health"))
        assert r.status == 200, r
        fresh = d.wait_workers(3, exclude=old)
        assert len(fresh) == 3
        _wait(lambda: _refused(old_port), 10,
              "the old port %d to refuse connections" % old_port)
        # The files are the same store: readable on the new port.
        g = hfs.raw_request(new_port, hfs.build_request(
            "GET", hfs.quote_path("port-1/a.bin")))
        assert g.status == 200 and g.body == data, g

        # Back to 1 worker on the new port: the count follows again.
        d.cfg["server"]["workers"] = 1
        _write_conf(d)
        _hup_and_wait(d, gen, port=new_port)
        one = d.wait_workers(1, exclude=fresh)
        time.sleep(0.3)
        assert d.worker_pids() == one
        d.port = new_port           # so the harness's stop/logs work on it


@hfs.timeout(30)
def _just_after_second_boundary():
    """Sleep until a fraction of a millisecond past a whole second."""
    while True:
        frac = time.time() % 1.0
        if frac < 0.0005:
            return
        time.sleep(max(0.0, 1.0 - frac - 0.002))
        while time.time() % 1.0 > 0.5:
            pass


def test_metrics_generation_and_timestamp():
    # The reload timestamp must come from the same clock as the test's
    # time.time() (CLOCK_REALTIME), with no tolerance: time(2) reads the
    # kernel's coarse clock, which lags a few ms behind just after a second
    # boundary, so each HUP here is sent right after one.
    with Daemon(**{"server.workers": 1}) as d:
        m = d.metrics()
        g0 = m.get("hfs_config_generation")
        assert g0 >= 1, m
        assert "hfs_last_reload_timestamp_seconds" in m, sorted(m)
        assert m.get("hfs_last_reload_success") == 1
        gen = g0
        for i in range(5):
            _just_after_second_boundary()
            t0 = time.time()
            gen = _hup_and_wait(d, gen)
            t1 = time.time()
            m = d.metrics()
            assert m.get("hfs_config_generation") == g0 + i + 1, m
            ts = m.get("hfs_last_reload_timestamp_seconds")
            assert int(t0) <= ts <= t1, (t0, ts, t1)
            assert m.get("hfs_last_reload_success") == 1
