"""hmac-upload (client/c) against the real daemon: every upload is the real
binary's, every check reads the daemon (its files, /metrics, its answers).

"At most one chunk re-sent per interruption" is checked with the daemon's
hfs_bytes_received_total: body bytes it read, whatever it kept.
"""

import os
import re
import signal
import subprocess
import threading
import time

import cutproxy
import hfs
from hfs import Daemon

MiB = 1 << 20
UPLOAD = os.environ.get("HFS_UPLOAD_BIN") or os.path.join(
    os.path.dirname(hfs.HFS_BIN), "hmac-upload")


def _run(*args, timeout=60):
    return subprocess.run([UPLOAD] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout)


def _start(*args):
    return subprocess.Popen([UPLOAD] + [str(a) for a in args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _received(d):
    return d.metrics().get("hfs_bytes_received_total")


def _published(d, path, sha):
    g = d.get(path)
    assert g.status == 200, g
    assert hfs.sha256(g.body) == sha, "published file differs"


def _proxied(url, port_from, port_to):
    return url.replace("127.0.0.1:%d/" % port_from,
                       "127.0.0.1:%d/" % port_to, 1)


@hfs.timeout(30)
def test_normal_upload():
    with Daemon(**{"server.workers": 2}) as d:
        size = 12 * MiB + 12345
        path, sha = d.make_file(size)
        url = d.put_url("cc/normal.bin", size)
        r0 = _received(d)
        p = _run("--chunk-size", "1M", "--parallel", "3", "--sha256", path,
                 url)
        assert p.returncode == 0, p
        assert p.stdout.strip() == url.split("?")[0], p.stdout
        assert p.stderr == "", "not a terminal: nothing on stderr: %r" % (
            p.stderr)
        _published(d, "cc/normal.bin", sha)
        assert _received(d) - r0 == size, "bytes sent twice"
        # Chunked, not one PUT: 13 chunk requests, one 201.
        m = d.metrics()
        assert m.get("hfs_requests_total", method="PUT", status="200") == 12
        assert m.get("hfs_requests_total", method="PUT", status="201") == 1


def _on_tty(*args):
    """Runs hmac-upload with standard error a terminal (a pty): (exit
    status, what the terminal got, standard output)."""
    import pty
    master, slave = pty.openpty()
    proc = subprocess.Popen([UPLOAD] + [str(a) for a in args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=slave)
    os.close(slave)
    text = b""
    try:
        while True:
            try:
                piece = os.read(master, 4096)
            except OSError:             # EIO: the client has exited
                break
            if not piece:
                break
            text += piece
        rc = proc.wait(20)
        out = proc.stdout.read().decode()
    finally:
        os.close(master)
        proc.stdout.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rc, text, out


@hfs.timeout(40)
def test_progress_bar_on_a_terminal_parallel_4():
    """Standard error a terminal: hmac-upload draws a bar from the
    library's progress callback, four chunks at a time. Its percentage
    never goes back and the last frame says 100 % with the size on both
    sides; every byte reached the daemon once. --quiet draws nothing and
    still says what failed."""
    with Daemon(**{"server.workers": 2}) as d:
        size = 8 * MiB
        path, sha = d.make_file(size)
        url = d.put_url("cc/bar.bin", size)
        rc, text, out = _on_tty("-c", "512K", "-p", "4", "--limit-rate",
                                "1M", path, url)
        assert rc == 0, text
        frames = re.findall(rb"\r\[[# ]{30}\] +(\d+)%  ([\d.]+ \w+) / "
                            rb"([\d.]+ \w+)", text)
        assert len(frames) >= 5, text
        pcts = [int(f[0]) for f in frames]
        assert pcts == sorted(pcts), "the bar went back: %r" % pcts
        assert frames[-1] == (b"100", b"8.0 MiB", b"8.0 MiB"), frames[-1]
        assert text.endswith(b"\n"), text[-80:]
        assert out.strip() == url.split("?")[0], out
        _published(d, "cc/bar.bin", sha)
        assert _received(d) == size, "bytes sent twice"
        # --quiet: nothing but errors (not even the URL).
        rc, text, out = _on_tty("-q", "-c", "4M", path,
                                d.put_url("cc/quiet.bin", size))
        assert (rc, text, out) == (0, b"", ""), (rc, text, out)
        _published(d, "cc/quiet.bin", sha)
        # ... but a failure is still said.
        rc, text, out = _on_tty("-q", path, d.put_url("cc/q403.bin", 1))
        assert rc == 3 and b"HTTP 403" in text, (rc, text)
        assert out == ""


@hfs.timeout(40)
def test_cut_connections_complete_byte_identical():
    with Daemon(**{"server.workers": 2}) as d:
        size = 8 * MiB
        path, sha = d.make_file(size)
        url = d.put_url("cc/cut.bin", size)
        # Cuts land every 0.6-2 MiB, chunks are 256 KiB: a client that
        # re-sent what the server holds would exceed a chunk per cut.
        with cutproxy.CutProxy(d.port, 600 << 10, 2 << 20, seed=11,
                               cuts_left=10) as px:
            r0 = _received(d)
            p = _run("-c", "256K", "-p", "2", "--retry-delay", "0.05",
                     "--max-retries", "8", "-v", path,
                     _proxied(url, d.port, px.port))
            cuts = px.cuts
        assert p.returncode == 0, p
        assert cuts >= 2, "proxy cut only %d connections" % cuts
        _published(d, "cc/cut.bin", sha)
        extra = _received(d) - r0 - size
        print("%d cuts, %d bytes re-sent" % (cuts, extra))
        assert extra <= cuts * (256 << 10), (
            "re-sent %d bytes over %d cuts: more than a chunk per cut"
            % (extra, cuts))
        assert "status:" in p.stderr, "no status request after failures"


def _has_connection(pid, port):
    """Whether process `pid` holds an established TCP socket whose local
    port is `port` (an accepted client connection)."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        with open("/proc/%d/net/tcp" % pid) as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return False
    for row in rows:
        col = row.split()
        if col[3] == "01" and int(col[1].split(":")[1], 16) == port \
                and col[9] in inodes:
            return True
    return False


@hfs.timeout(40)
def test_worker_killed_repeatedly():
    with Daemon(**{"server.workers": 2}) as d:
        d.wait_workers(2)
        size = 12 * MiB
        path, sha = d.make_file(size)
        url = d.put_url("cc/kill.bin", size)
        proc = _start("-c", "1M", "-p", "2", "--limit-rate", "2M",
                      "--retry-delay", "0.1", "--max-retries", "8", "-v",
                      path, url)
        killed = []
        try:
            for _ in range(4):
                time.sleep(0.6)
                ws = d.worker_pids()
                if proc.poll() is not None or not ws:
                    break
                # The worker holding the upload is the one with a
                # connection to the client: kill it (else the next one,
                # all of them over the run).
                busy = [w for w in ws if _has_connection(w, d.port)]
                victim = (busy or ws)[len(killed) % len(busy or ws)]
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
                d.wait_workers(2, exclude=killed)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, (proc.returncode, err)
        assert len(killed) >= 3, "the upload ended before the kills"
        assert "status:" in err, "no failure seen by the client:\n" + err
        _published(d, "cc/kill.bin", sha)


def _wait_received(d, at_least, timeout=10):
    return hfs.wait_for(lambda: _received(d) >= at_least, timeout,
                        "%d bytes received" % at_least)


@hfs.timeout(50)
def test_client_killed_and_restarted_resumes():
    with Daemon(**{"server.workers": 2}) as d:
        size = 10 * MiB
        path, sha = d.make_file(size)
        url = d.put_url("cc/restart.bin", size)
        state = os.path.join(d.tmp, "upload.state")
        r0 = _received(d)
        kills = 0
        # SIGKILL, then SIGTERM (which the client handles: it stops within
        # 0.1 s, keeps its state and says so, exit status 128 + 15).
        for stop_at, sig in ((2 * MiB + MiB // 2, signal.SIGKILL),
                             (5 * MiB + MiB // 3, signal.SIGTERM)):
            proc = _start("-c", "1M", "--limit-rate", "3M", "--state", state,
                          "--retry-delay", "0.1", path, url)
            try:
                _wait_received(d, r0 + stop_at)
                assert os.path.exists(state), "no state file while uploading"
                proc.send_signal(sig)
                out, err = proc.communicate(timeout=5)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            if sig == signal.SIGTERM:
                assert proc.returncode == 128 + 15, (proc.returncode, err)
                assert "cancelled" in err and "resume" in err, err
            kills += 1
        sid = open(state).read()
        # The state belongs to this URL: another one is refused, untouched.
        other = d.put_url("cc/other.bin", size)
        p = _run("-c", "1M", "--state", state, path, other)
        assert p.returncode == 6 and "another URL" in p.stderr, p
        assert open(state).read() == sid
        p = _run("-c", "1M", "--state", state, "-v", path, url)
        assert p.returncode == 0, p
        assert "resuming session" in p.stderr, p.stderr
        assert "resumed" in p.stderr, p.stderr
        assert sid.split("session ")[1].split()[0] in p.stderr
        _published(d, "cc/restart.bin", sha)
        assert not os.path.exists(state), "state file left after success"
        extra = _received(d) - r0 - size
        print("%d restarts, %d bytes re-sent" % (kills, extra))
        assert extra <= kills * MiB, (
            "re-sent %d bytes over %d restarts: more than a chunk each"
            % (extra, kills))


@hfs.timeout(20)
def test_403_is_final():
    with Daemon(**{"server.workers": 1}) as d:
        size = 3 * MiB
        path, _ = d.make_file(size)
        url = d.put_url("cc/forbidden.bin", size + 1)   # signed for another size
        t0 = time.monotonic()
        p = _run("-c", "1M", path, url)                 # default 2 s back-off
        took = time.monotonic() - t0
        assert p.returncode == 3, p
        assert "HTTP 403" in p.stderr, p.stderr
        assert took < 1.5, "a 403 was retried (%.1f s)" % took
        m = d.metrics()
        assert m.get("hfs_requests_total", method="PUT") == 1, \
            "the client sent more than one PUT"
        assert d.get("cc/forbidden.bin").status == 404


@hfs.timeout(30)
def test_503_retry_after_is_waited_out():
    """The range is being written by another connection (same session): the
    daemon answers 503 with a Retry-After. The client must wait that long,
    ask for the status, and send only what is still missing."""
    with Daemon(**{"server.workers": 1}) as d:
        size = 2 * MiB
        path, sha = d.make_file(size)
        data = open(path, "rb").read()
        url = d.put_url("cc/busy.bin", size)
        target = d.put_target("cc/busy.bin", size)
        sid = "busy-session-1"
        c = d.conn(timeout=20)
        c.send(hfs.build_request(
            "PUT", target, [("X-Upload-Session-ID", sid),
                            ("Content-Range", "bytes 0-%d/%d" % (MiB - 1,
                                                                 size))],
            length=False)[:-2] + b"Content-Length: %d\r\n\r\n" % MiB)
        c.send(data[:MiB // 2])
        time.sleep(0.3)
        r0 = _received(d)
        t0 = time.monotonic()
        proc = _start("-c", "1M", "--session-id", sid, "-v", path, url)
        try:
            time.sleep(1.0)
            c.send(data[MiB // 2:MiB])
            r = c.read_response("PUT")
            assert r.status == 200, r
            c.close()
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        took = time.monotonic() - t0
        assert proc.returncode == 0, (proc.returncode, err)
        print("client took %.2f s:\n%s" % (took, err))
        m = re.search(r"HTTP 503: .*Retry-After: (\d+)", err)
        assert m, "no 503 with Retry-After: %s" % err
        wait = int(m.group(1))
        assert "in %.2f s (Retry-After)" % wait in err, err
        assert took >= wait, "Retry-After: %d not waited out (%.2f s)" % (
            wait, took)
        _published(d, "cc/busy.bin", sha)
        # The client never re-sent the range the other connection wrote:
        # after the 503 only the second MiB went on the wire.
        client_bytes = _received(d) - r0 - MiB // 2
        assert client_bytes <= MiB + (MiB // 2), client_bytes


@hfs.timeout(30)
def test_get_resumes_a_cut_download():
    with Daemon(**{"server.workers": 1}) as d:
        size = 6 * MiB
        data = hfs.det_bytes(size, seed=5)
        assert d.put("cc/get.bin", data).status == 201
        out = os.path.join(d.tmp, "got.bin")
        part = out + ".part"
        proc = _start("get", "--limit-rate", "1M", "-o", out, d.url(
            "cc/get.bin"))
        try:
            hfs.wait_for(lambda: os.path.exists(part)
                         and os.path.getsize(part) >= MiB + 1, 10,
                         "a partial download")
        finally:
            proc.kill()
            proc.wait()
        have = os.path.getsize(part)
        assert 0 < have < size and not os.path.exists(out)
        p = _run("get", "-v", "-o", out, d.url("cc/get.bin"))
        assert p.returncode == 0, p
        assert "resuming at byte %d" % have in p.stderr, p.stderr
        assert open(out, "rb").read() == data
        assert not os.path.exists(part)
        m = d.metrics()
        assert m.get("hfs_requests_total", method="GET", status="206") == 1


@hfs.timeout(30)
def test_sign_output_is_accepted_for_each_variant():
    with Daemon(**{"server.workers": 1, "server.url_prefix": "/upload/"}) as d:
        sf = os.path.join(d.tmp, "secret")
        with open(sf, "w") as f:
            f.write(hfs.SECRET + "\n")
        size = 2 * MiB + 7
        path, sha = d.make_file(size)
        base = "http://127.0.0.1:%d/upload" % d.port
        # v1 is byte for byte what the harness's independent signer makes.
        p = _run("sign", "--secret-file", sf, "--variant", "v1", "--file",
                 path, "--prefix", "/upload/", base + "/s1/a%20b.bin")
        assert p.returncode == 0, p
        assert p.stdout.strip() == d.put_url("s1/a b.bin", size), p.stdout
        cases = [("v1", []), ("v2", ["--content-type", "text/plain"]),
                 ("v3", []), ("token", ["--user", "alice@example.org"])]
        for v, extra in cases:
            rel = "s-%s/file.bin" % v
            p = _run("sign", "--secret-file", sf, "--variant", v, "--size",
                     size, "--prefix", "/upload/", *extra, base + "/" + rel)
            assert p.returncode == 0, (v, p)
            signed = p.stdout.strip()
            up = ["--content-type", "text/plain"] if v == "v2" else []
            u = _run("-c", "1M", *up, path, signed)
            assert u.returncode == 0, (v, signed, u)
            _published(d, rel, sha)
        # A wrong secret is refused by the daemon: 403, exit 3.
        with open(sf, "w") as f:
            f.write("not-the-secret")
        p = _run("sign", "--secret-file", sf, "--variant", "v3", "--prefix",
                 "/upload/", base + "/s-bad/x.bin")
        u = _run(path, p.stdout.strip())
        assert u.returncode == 3 and "403" in u.stderr, u


@hfs.timeout(60)
def test_link_down_and_up_mid_upload():
    """The network change case of test_netns: the daemon in a namespace
    behind a veth whose client end goes down for 4 s mid-upload (netmon
    pauses uploads); the upload must complete once the link is back."""
    import test_netns as tn
    reason = tn._can_make_namespaces()
    if reason:
        raise hfs.Skip(reason)
    with tn.Netns() as ns, tn.NsDaemon(ns, **tn.NETWORK) as d:
        size = 6 * MiB
        path, sha = d.make_file(size)
        url = d.url("cc/netns.bin", "v=" + hfs.sign_v1("cc/netns.bin", size))
        r0 = _received(d)
        proc = _start("-c", "1M", "--limit-rate", "1M", "--stall-timeout",
                      "2", "--retry-delay", "0.3", "--max-delay", "2",
                      "--max-retries", "12", "-v", path, url)
        try:
            _wait_received(d, r0 + 3 * MiB // 2, timeout=15)
            assert proc.poll() is None, "upload ended before the outage"
            tn._ip("link", "set", ns.peer, "down")
            time.sleep(4)
            tn._ip("link", "set", ns.peer, "up")
            tn._wait_reachable(ns, d)
            out, err = proc.communicate(timeout=45)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, (proc.returncode, err)
        # A 4 s outage is usually bridged by TCP (curl keeps filling the
        # socket buffer, so it sees no stall); when it is not, the client
        # resumes the session. Either way: complete, identical, at most
        # one chunk re-sent.
        print("client %s a failure" % (
            "saw" if "status:" in err else "did not see"))
        _published(d, "cc/netns.bin", sha)
        extra = _received(d) - r0 - size
        print("re-sent %d bytes across the outage" % extra)
        assert extra <= MiB, "more than one chunk re-sent: %d" % extra


@hfs.timeout(30)
def test_sha256_mismatch_is_final():
    """The digest a resumed session announces (from its state file) is not
    the file's: the daemon answers 460 when it assembles the file, the
    client stops with exit status 5 and nothing is published."""
    with Daemon(**{"server.workers": 1}) as d:
        size = 4 * MiB
        path, sha = d.make_file(size)
        url = d.put_url("cc/digest.bin", size)
        state = os.path.join(d.tmp, "digest.state")
        r0 = _received(d)
        proc = _start("-c", "1M", "--limit-rate", "2M", "--sha256",
                      "--state", state, path, url)
        try:
            _wait_received(d, r0 + MiB + MiB // 2)
        finally:
            proc.kill()
            proc.wait()
        text = open(state).read()
        assert "sha256 " + sha in text, text
        with open(state, "w") as f:
            f.write(text.replace(sha, "0" * 64))
        p = _run("-c", "1M", "--sha256", "--state", state, path, url)
        assert p.returncode == 5, p
        assert "460" in p.stderr and "SHA-256" in p.stderr, p.stderr
        assert d.get("cc/digest.bin").status == 404


def _closed_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@hfs.timeout(20)
def test_unreachable_server_gives_up_with_exit_4():
    """Nothing listens: after --max-retries failures in a row (and their
    back-off) hmac-upload gives up with exit status 4 and says why."""
    path, _ = hfs.make_file(1 << 20)
    url = "http://127.0.0.1:%d/cc/x.bin?v=%s" % (_closed_port(), "0" * 64)
    t0 = time.monotonic()
    p = _run("--max-retries", "2", "--retry-delay", "0.2", path, url)
    took = time.monotonic() - t0
    assert p.returncode == 4, p
    assert "gave up after 3 failures in a row" in p.stderr, p.stderr
    assert "connect" in p.stderr.lower(), p.stderr
    # Two back-offs, 0.1-0.2 s and 0.2-0.4 s: waited, but not for long.
    assert 0.3 <= took < 5, took

