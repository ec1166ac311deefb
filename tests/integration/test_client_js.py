"""client/js (ResilientUploader) against the real daemon, driven through its
command, client/js/bin/hfs-upload.mjs, run by the real node: a normal
upload, a link that drops (cutproxy), workers killed under it, the client
itself killed and restarted (it resumes from its --state file without
re-sending what the daemon holds), a final 403, and a 503 whose
Retry-After it waits out.

"Re-sent" is measured by the daemon, not the client: hfs_bytes_received_total
counts every body byte that reached it."""

import json
import os
import shutil
import signal
import subprocess
import time

import hfs
from hfs import Daemon
from cutproxy import CutProxy

KiB, MiB = 1 << 10, 1 << 20
CLI = os.path.join(hfs.REPO, "client", "js", "bin", "hfs-upload.mjs")


def _node():
    node = shutil.which("node")
    if node is None:
        raise hfs.Skip("node is needed for client/js")
    return node


def _env():
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def _args(path, url, *extra):
    return [_node(), CLI, path, url, "--seed", "11", *map(str, extra)]


def _run(path, url, *extra, timeout=60):
    p = subprocess.run(_args(path, url, *extra), capture_output=True,
                       timeout=timeout, env=_env())
    out = p.stdout.decode().strip().splitlines()
    res = json.loads(out[-1]) if p.returncode == 0 and out else None
    return p.returncode, res, p.stderr.decode()


def _received(d):
    return d.metrics().get("hfs_bytes_received_total")


def _puts(d, status=None):
    m = d.metrics()
    if status is not None:
        return int(m.get("hfs_requests_total", method="PUT", status=status))
    return int(m.get("hfs_requests_total", method="PUT"))


def _same(d, rel, sha):
    """The published file's SHA-256 is `sha` (streamed: hfs's raw-socket
    reader takes seconds per 10 MiB)."""
    import hashlib
    import urllib.request
    h = hashlib.sha256()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(d.url(rel), timeout=30) as r:
        assert r.status == 200, r.status
        while True:
            piece = r.read(1 << 20)
            if not piece:
                break
            h.update(piece)
    assert h.hexdigest() == sha, "published bytes differ"


def test_normal_upload_with_digest():
    """Parallel chunks, the digest computed and announced; sha256 equal."""
    with Daemon() as d:
        size = 9 * MiB + 123
        path, sha = d.make_file(size)
        url = d.put_url("u-js/a.bin", size)
        rc, res, err = _run(path, url, "--chunk-size", MiB, "--parallel", 3,
                            "--sha256")
        assert rc == 0, err
        assert res["status"] == 201, res
        assert res["url"] == d.url("u-js/a.bin"), res
        _same(d, "u-js/a.bin", sha)
        # Nothing sent twice, nothing refused.
        assert _received(d) == size
        assert _puts(d) == 10 and _puts(d, 201) == 1, d.metrics()


def test_stream_source_with_digest_computed_on_the_way():
    """Standard input (a stream of known size, read once, never rewound)
    in parallel chunks, its digest computed as it is read and announced
    with the last chunk (a wrong one would be 460)."""
    with Daemon() as d:
        size = 7 * MiB + 3
        path, sha = d.make_file(size)
        url = d.put_url("u-js/stdin.bin", size)
        with open(path, "rb") as f:
            p = subprocess.run(_args("-", url, "--stdin-size", size,
                                     "--chunk-size", MiB, "--parallel", 3,
                                     "--sha256"),
                               stdin=f, capture_output=True, timeout=60,
                               env=_env())
        assert p.returncode == 0, p.stderr.decode()
        assert json.loads(p.stdout.decode())["status"] == 201
        _same(d, "u-js/stdin.bin", sha)
        assert _received(d) == size


def test_wrong_digest_is_final():
    """The server's 460 (digest mismatch) ends the upload with its reason;
    nothing is published."""
    with Daemon() as d:
        path, sha = d.make_file(2 * MiB)
        rc, res, err = _run(path, d.put_url("u-js/w.bin", 2 * MiB),
                            "--chunk-size", MiB, "--sha256", "0" * 64,
                            "--retry-delay", 10)
        assert rc == 1 and "460" in err, err
        assert d.get("u-js/w.bin").status == 404


API_DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "client-js", "api.mjs")


def _api(d, **job):
    """ResilientUploader used as a library (client-js/api.mjs): what its
    callbacks reported, and the most requests it had in flight at once."""
    jpath = os.path.join(d.files, "api-%d.json" % time.monotonic_ns())
    with open(jpath, "w") as f:
        json.dump(job, f)
    p = subprocess.run([_node(), API_DRIVER, jpath], capture_output=True,
                       timeout=60, env=_env())
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def _monotone_to(progress, total):
    """onProgress: never backwards (it counts what the server holds), and
    the last call says everything is held."""
    assert progress, "onProgress was never called"
    held = [h for h, t in progress]
    assert all(t == total for h, t in progress), progress[:5]
    assert held == sorted(held), "progress went backwards: %r" % held
    assert held[-1] == total, held[-5:]


def test_api_parallel_4_callbacks():
    """parallel: 4 (the most) as a library: four PUTs are in flight at
    once (after the first chunk, which creates the session, alone); every
    chunk is acknowledged once through onChunk and together they are the
    file, nothing overlapping; onProgress climbs to the size; the daemon
    received each byte once and publishes the same file."""
    with Daemon() as d:
        chunk, size = MiB, 16 * MiB + 7
        path, sha = d.make_file(size)
        r = _api(d, file=path, url=d.put_url("u-js/p4.bin", size),
                 chunkSize=chunk, parallel=4)
        assert r["state"] == "done" and r["result"]["status"] == 201, r
        assert r["maxInFlight"] == 4, r["maxInFlight"]
        _monotone_to(r["progress"], size)
        got = sorted((c["start"], c["end"]) for c in r["chunks"])
        assert all(c.get("error") is None for c in r["chunks"]), r["chunks"]
        assert len(got) == 17, got
        assert got[0][0] == 0 and got[-1][1] == size, got
        assert all(a[1] == b[0] for a, b in zip(got, got[1:])), got
        assert [c["status"] for c in r["chunks"]].count(201) == 1
        _same(d, "u-js/p4.bin", sha)
        assert _received(d) == size
        assert _puts(d) == 17, d.metrics()


def test_api_abort_signal_stops_and_forgets():
    """An AbortSignal aborted mid-upload (from onProgress, at a quarter):
    upload() rejects with an AbortError, requests in flight are cut (the
    daemon receives nothing more), nothing is published, and the storage
    file no longer remembers the session."""
    with Daemon() as d:
        size = 32 * MiB
        path, _ = d.make_file(size)
        state = os.path.join(d.files, "abort-state.json")
        r = _api(d, file=path, url=d.put_url("u-js/abort.bin", size),
                 chunkSize=MiB, parallel=2, storage=state, abortAt=0.25)
        assert r["error"]["name"] == "AbortError", r
        assert r["state"] == "aborted", r
        assert "result" not in r
        assert r["storageLeft"] == [], r["storageLeft"]
        held = r["progress"][-1][0]
        assert size // 4 <= held < size, held
        time.sleep(0.5)             # what was already on its way lands
        before = _received(d)
        time.sleep(1.0)
        assert _received(d) == before < size, (before, size)
        assert d.get("u-js/abort.bin").status == 404


@hfs.timeout(90)
def test_cut_connections_complete_byte_identical():
    """Every connection is reset after 256 KiB..3 MiB: the upload completes,
    byte-identical, and re-sends at most one chunk per cut."""
    with Daemon() as d:
        size = 24 * MiB + 5
        chunk = MiB
        path, sha = d.make_file(size)
        with CutProxy(d.port, 256 * KiB, 3 * MiB, seed=7) as p:
            url = d.put_url("u-js/cut.bin", size).replace(
                ":%d/" % d.port, ":%d/" % p.port)
            rc, res, err = _run(path, url, "--chunk-size", chunk,
                                "--parallel", 2, "--retry-delay", 20,
                                "--max-retry-delay", 200, "--max-retries", 8,
                                "--sha256", "--progress")
            cuts = p.cuts
        assert rc == 0, err
        assert res["status"] in (200, 201), res
        _same(d, "u-js/cut.bin", sha)
        # onProgress counts what the daemon holds: it never goes back, not
        # even across cuts; onChunk reported the cut chunks.
        _monotone_to([tuple(map(int, ln.split()[1:3]))
                      for ln in err.splitlines()
                      if ln.startswith("progress ")], size)
        assert any(ln.startswith("chunk ") for ln in err.splitlines()), err
        assert cuts >= 5, "the proxy cut only %d connections" % cuts
        got = _received(d)
        assert got <= size + cuts * chunk, (got, size, cuts)


@hfs.timeout(90)
def test_workers_killed_repeatedly():
    """kill -9 of a worker while chunks are in flight, five times: the
    client asks what is held and completes byte-identical, having seen
    the failures (more requests than chunks)."""
    with Daemon(**{"server.workers": 2}) as d:
        size = 40 * MiB
        path, sha = d.make_file(size)
        url = d.put_url("u-js/kill.bin", size)
        proc = subprocess.Popen(
            _args(path, url, "--chunk-size", 512 * KiB, "--parallel", 2,
                  "--retry-delay", 50, "--max-retry-delay", 500,
                  "--max-retries", 10, "--progress"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        kills = 0
        errors = []
        marks = [size * k // 7 for k in range(1, 6)]
        for line in proc.stderr:
            ln = line.decode()
            errors.append(ln)
            if ln.startswith("progress ") and marks and \
                    int(ln.split()[1]) >= marks[0]:
                marks.pop(0)
                # One worker at a time (both, over the run): killing all
                # at once only measures the master's crash-loop back-off.
                victims = d.worker_pids()
                if victims:
                    os.kill(victims[kills % len(victims)], signal.SIGKILL)
                    kills += 1
        out = proc.stdout.read().decode()
        assert proc.wait(60) == 0, "".join(errors[-30:])
        assert kills == 5, kills
        res = json.loads(out.strip().splitlines()[-1])
        assert res["status"] in (200, 201), res
        _same(d, "u-js/kill.bin", sha)
        assert d.metrics().get("hfs_worker_restarts_total") >= 5
        assert res["requests"] > size // (512 * KiB) + 1, res


@hfs.timeout(120)
def test_client_killed_and_restarted_resumes_from_state():
    """The client is kill -9'd three times mid-upload and started again with
    the same --state file: same session, and the daemon receives at most
    one chunk more per kill than the file's size."""
    with Daemon() as d:
        size = 24 * MiB
        chunk = MiB
        path, sha = d.make_file(size)
        url = d.put_url("u-js/restart.bin", size)
        state = os.path.join(d.files, "state.json")
        args = _args(path, url, "--chunk-size", chunk, "--state", state,
                     "--retry-delay", 50, "--progress")
        sessions = set()
        for frac in (0.2, 0.45, 0.7):
            proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=_env())
            for line in proc.stderr:
                ln = line.decode()
                if ln.startswith("progress ") and \
                        int(ln.split()[1]) >= size * frac:
                    break
            proc.kill()
            proc.wait(10)
            proc.stdout.close()
            proc.stderr.close()
            with open(state) as f:
                saved = json.load(f)
            assert len(saved) == 1, saved
            sessions.add(next(iter(saved.values()))["sessionId"])
            assert d.get("u-js/restart.bin").status == 404
        rc, res, err = _run(path, url, "--chunk-size", chunk, "--state",
                            state, "--retry-delay", 50)
        assert rc == 0, err
        assert sessions == {res["sessionId"]}, (sessions, res)
        _same(d, "u-js/restart.bin", sha)
        got = _received(d)
        assert got <= size + 3 * chunk, (got, size)
        # Finished: the session is forgotten.
        with open(state) as f:
            assert json.load(f) == {}


def test_403_is_final_and_not_retried():
    """A URL signed for another size: one PUT, 403, the server's reason on
    stderr, exit 1 at once (no back-off)."""
    with Daemon() as d:
        path, _ = d.make_file(3 * MiB)
        url = d.put_url("u-js/bad.bin", 3 * MiB + 1)
        t0 = time.monotonic()
        # A back-off far longer than node's start on a loaded machine.
        rc, res, err = _run(path, url, "--chunk-size", MiB,
                            "--retry-delay", 15000)
        assert rc == 1, err
        assert "403" in err and "signature" in err, err
        assert time.monotonic() - t0 < 12, "it waited a back-off"
        assert _puts(d) == 1 and _puts(d, 403) == 1, d.metrics()
        assert d.get("u-js/bad.bin").status == 404


@hfs.timeout(20)
def test_unreachable_server_gives_up():
    """Nothing listens: after --max-retries failures without progress (and
    their back-off) the client gives up, exit status 1, saying why."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    path, _ = hfs.make_file(MiB)
    t0 = time.monotonic()
    rc, res, err = _run(path, "http://127.0.0.1:%d/u-js/x.bin?v=%s"
                        % (port, "0" * 64), "--max-retries", 2,
                        "--retry-delay", 200)
    took = time.monotonic() - t0
    assert rc == 1 and res is None, (rc, res, err)
    assert "gave up after 2 retries without progress" in err, err
    assert "ECONNREFUSED" in err, err
    # Back-offs of 200-250 and 400-500 ms were waited.
    assert took >= 0.6, took


@hfs.timeout(60)
def test_503_retry_after_is_waited_out():
    """The session table is full (capacity 1, another upload holds the
    slot): the daemon answers 503 + Retry-After. With 2 retries of 10 ms
    the client would give up in a blink; it waits Retry-After instead, and
    completes once the other upload has finished."""
    with Daemon(**{"uploads.session_capacity": 1}) as d:
        other = d.put_target("u-js/other.bin", 10)
        r = d.put_stream(other, b"01234", [("X-Upload-Session-ID", "other"),
                                           ("Content-Range", "bytes 0-4/10")])
        assert r.status == 200, r
        size = 2 * MiB
        path, sha = d.make_file(size)
        url = d.put_url("u-js/wait.bin", size)
        proc = subprocess.Popen(
            _args(path, url, "--chunk-size", MiB, "--retry-delay", 10,
                  "--max-retries", 2),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        t0 = time.monotonic()
        hfs.wait_for(lambda: _puts(d, 503) >= 1, 10, "a 503")
        probe = d.put_stream(
            d.put_target("u-js/wait.bin", size), b"x" * MiB, [("X-Upload-Session-ID", "probe"),
                              ("Content-Range",
                               "bytes 0-%d/%d" % (MiB - 1, size))])
        assert probe.status == 503, probe
        retry_after = int(probe.header("Retry-After"))
        assert retry_after >= 1
        time.sleep(1.0)
        # Still waiting, not failed, after more than 2 quick retries.
        assert proc.poll() is None, proc.communicate()
        r = d.put_stream(other, b"56789", [("X-Upload-Session-ID", "other"),
                                           ("Content-Range", "bytes 5-9/10")])
        assert r.status == 201, r
        out, err = proc.communicate(timeout=40)
        dt = time.monotonic() - t0
        assert proc.returncode == 0, err.decode()
        assert json.loads(out.decode().strip().splitlines()[-1])["status"] \
            == 201
        _same(d, "u-js/wait.bin", sha)
        assert dt >= retry_after - 0.5, dt
        # The client's own 503s: few (one per Retry-After), not a storm.
        assert 1 <= _puts(d, 503) - 1 <= 4, d.metrics()


# ---------------------------------------------------------------- browser

CHROMIUM = "/usr/bin/chromium"
HERE = os.path.dirname(os.path.abspath(__file__))
SDK_DRIVER = os.path.join(HERE, "browser-sdk", "sdk.js")
# playwright-core, locked by browser/ (test_browser_cors.py): one install.
PW_SRC = os.path.join(HERE, "browser")
PW_DIR = os.path.join(hfs.REPO, "build", "browser-cors")
JS_ROOT = os.path.join(hfs.REPO, "client", "js")


StaticServer = hfs.StaticServer   # client/js served as any static server would


def _browser(d, runs):
    if not os.access(CHROMIUM, os.X_OK):
        raise hfs.Skip("no %s (.ci/deps.sh installs it)" % CHROMIUM)
    node = hfs.node_with(PW_SRC, PW_DIR, "playwright-core")
    jpath = os.path.join(d.files, "job-%d.json" % time.monotonic_ns())
    with open(jpath, "w") as f:
        json.dump({"chromium": CHROMIUM, "runs": runs}, f)
    env = _env()
    env["NODE_PATH"] = os.path.join(PW_DIR, "node_modules")
    p = subprocess.run([node, SDK_DRIVER, jpath], capture_output=True,
                       timeout=150, env=env)
    out = p.stdout.decode().strip().splitlines()
    assert out, "driver printed nothing (rc %d):\n%s" % (
        p.returncode, p.stderr.decode()[-2000:])
    res = json.loads(out[-1])
    if "launch_error" in res:
        raise hfs.Skip("chromium cannot start: " + res["launch_error"][:300])
    assert "runs" in res, res
    return res["runs"]


def _page(origin, url, **q):
    from urllib.parse import urlencode
    return "%s/example/index.html?%s" % (origin, urlencode(dict(url=url, **q)))


@hfs.timeout(170)
def test_browser_example_page_cuts_pause_reload():
    """Headless Chromium on the example page, served from another loopback
    origin, the daemon behind cutproxy: (1) an upload with cut connections
    and a pause (nothing moves while paused) completes byte-identical;
    (2) the page is reloaded mid-upload, the same file chosen again: it
    resumes the session from localStorage (its first status already holds
    bytes) and the daemon receives no full re-send; (3) the page opened
    from file:// (origin "null") uploads too."""
    with StaticServer(JS_ROOT) as page:
        origin = "http://127.0.0.1:%d" % page.port
        with Daemon(**{"security.cors_origins": [origin]}) as d:
            chunk = MiB
            size1, size2 = 12 * MiB + 3, 32 * MiB
            f1, sha1 = d.make_file(size1)
            f2, sha2 = d.make_file(size2)
            with CutProxy(d.port, 1 * MiB, 8 * MiB, seed=5) as p:
                via = lambda rel, n: d.put_url(rel, n).replace(
                    ":%d/" % d.port, ":%d/" % p.port)
                q = dict(chunkSize=chunk, retryDelay=20, maxRetries=10,
                         parallel=2)
                runs = _browser(d, [
                    {"url": _page(origin, via("u-br/one.bin", size1),
                                  sha256=1, **q),
                     "file": f1, "pauseAt": 0.3},
                    {"url": _page(origin, via("u-br/two.bin", size2), **q),
                     "file": f2, "reloadAt": 0.35}])
                cuts = p.cuts
            one, two = runs
            assert one["state"]["phase"] == "done", one
            assert one["state"]["result"]["url"] == \
                "http://127.0.0.1:%d/u-br/one.bin" % p.port, one
            assert one["paused"]["before"] == one["paused"]["after"], one
            _same(d, "u-br/one.bin", sha1)
            assert one["leftInStorage"] == 0, one
            assert two["pending"] == 1, two
            assert two["state"]["phase"] == "done", two
            assert two["state"]["firstHeld"] >= 0.3 * size2, two
            _same(d, "u-br/two.bin", sha2)
            assert cuts >= 3, cuts
            got = _received(d)
            # Each cut and the reload re-send at most one chunk each per
            # parallel connection.
            assert got <= size1 + size2 + (cuts + 1) * 2 * chunk, \
                (got, size1 + size2, cuts)
    # (3) the page opened from file:// (origin "null", which
    # security.cors_origins can only allow as "*", the default).
    with Daemon() as d:
        f3, sha3 = d.make_file(3 * MiB + 1)
        three, = _browser(d, [{
            "url": "file://" + _page(JS_ROOT, d.put_url(
                "u-br/three.bin", 3 * MiB + 1), chunkSize=MiB),
            "file": f3}])
        assert three["state"]["phase"] == "done", three
        _same(d, "u-br/three.bin", sha3)


@hfs.timeout(120)
def test_browser_offline_pauses_and_online_resumes():
    """Headless Chromium goes offline mid-upload (playwright's
    context.setOffline: navigator.onLine false, an `offline` event, every
    request fails). The uploader stops sending (the daemon's
    hfs_bytes_received_total stays flat for 2 s) without spending its
    retries (2, of 20 ms: an uploader that kept trying would have given up
    long before), and when the browser is back online it goes on and
    completes byte-identical, the daemon having received at most the
    chunks the `offline` event cut in flight twice."""
    with StaticServer(JS_ROOT) as page:
        origin = "http://127.0.0.1:%d" % page.port
        with Daemon(**{"security.cors_origins": [origin]}) as d:
            chunk, size = MiB, 64 * MiB
            path, sha = d.make_file(size)
            run, = _browser(d, [{
                "url": _page(origin, d.put_url("u-br/off.bin", size),
                             chunkSize=chunk, parallel=2, retryDelay=20,
                             maxRetries=2),
                "file": path, "offlineAt": 0.2, "offlineMs": 2000,
                "metrics": d.url("metrics")}])
            off = run["offline"]
            assert off["onLine"] is False and off["events"] == 1, run
            assert off["held"][0] < size, "done before going offline"
            assert off["phase"] == "running", run
            assert off["held"][0] == off["held"][1], off
            assert off["received"][0] == off["received"][1], \
                "the upload went on sending while offline: %r" % off
            assert run["state"]["phase"] == "done", run
            _same(d, "u-br/off.bin", sha)
            got = _received(d)
            assert got <= size + 2 * chunk, (got, size)
            print("offline at %d of %d bytes held (%d 0.3 s later); %d "
                  "bytes re-sent" % (off["at"], size, off["held"][0],
                                     got - size))


# ---------------------------------------------------------------- netns

@hfs.timeout(90)
def test_link_down_up_mid_upload():
    """The daemon in its own network namespace behind a veth (the machinery
    of test_netns.py); the client's end of the link goes down for 4 s in
    the middle of the upload (requests in flight stall and time out, new
    ones find no route) and comes back: the upload completes
    byte-identical, re-sending at most the chunks in flight."""
    import test_netns as tn
    reason = tn._can_make_namespaces()
    if reason:
        raise hfs.Skip(reason)
    if shutil.which("tc") is None:
        raise hfs.Skip("tc (iproute2) is needed to slow the link")
    with tn.Netns() as ns, tn.NsDaemon(ns, **tn.NETWORK) as d:
        # 80 Mbit/s on the client's end, so the upload is in flight when
        # the link goes away (a veth is otherwise faster than the disk).
        tn._ip("link", "show", ns.peer)
        subprocess.run(["tc", "qdisc", "add", "dev", ns.peer, "root", "tbf",
                        "rate", "80mbit", "burst", "64kb", "latency",
                        "50ms"], check=True, capture_output=True, timeout=20)
        size = 32 * MiB
        chunk = MiB
        path, sha = d.make_file(size)
        url = d.url("u-js/netns.bin", "v=" + hfs.sign_v1("u-js/netns.bin",
                                                          size))
        proc = subprocess.Popen(
            _args(path, url, "--chunk-size", chunk, "--parallel", 2,
                  "--retry-delay", 200, "--max-retry-delay", 1000,
                  "--max-retries", 30, "--timeout", 3000, "--progress"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        lines = []
        held_at_down = None
        for line in proc.stderr:
            ln = line.decode()
            lines.append(ln)
            if held_at_down is None and ln.startswith("progress ") and \
                    int(ln.split()[1]) >= size // 4:
                held_at_down = int(ln.split()[1])
                tn._ip("link", "set", ns.peer, "down")
                time.sleep(4)
                tn._ip("link", "set", ns.peer, "up")
                tn._wait_reachable(ns, d)
        out = proc.stdout.read().decode()
        assert proc.wait(60) == 0, "".join(lines[-30:])
        res = json.loads(out.strip().splitlines()[-1])
        assert held_at_down is not None and held_at_down < size, held_at_down
        assert any(ln.startswith("chunk ") for ln in lines), \
            "the outage did not hit a request:\n" + "".join(lines[-20:])
        assert res["status"] in (200, 201), res
        g = d.get("u-js/netns.bin", method="HEAD")
        assert g.status == 200 and g.header("Content-Length") == str(size)
        got = d.metrics().get("hfs_bytes_received_total")
        assert got <= size + 2 * chunk, (got, size)
        import hashlib
        import urllib.request
        h = hashlib.sha256()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(d.url("u-js/netns.bin"), timeout=30) as r:
            for piece in iter(lambda: r.read(1 << 20), b""):
                h.update(piece)
        assert h.hexdigest() == sha, "published bytes differ"
