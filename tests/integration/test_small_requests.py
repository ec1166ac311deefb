"""Small requests, made cheap (issue 12): answers whose heads are built
without printf, the cached Date header, request parsers reused across
requests, prepared HMAC keys, small bodies stored without fallocate.

Everything here is checked from outside, on a real daemon: what the
cheaper paths must still say and store, byte for byte."""

import email.utils
import os
import re
import signal
import socket
import threading
import time

import hfs
from hfs import Daemon, build_request

IMF_FIXDATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
                         r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                         r"\d{4} \d{2}:\d{2}:\d{2} GMT$")


def _date_of(r):
    """The Date header as seconds since the epoch, checking its form."""
    v = r.header("Date")
    assert v is not None, r
    assert IMF_FIXDATE.match(v), v
    return email.utils.parsedate_to_datetime(v).timestamp()


def test_date_header_is_an_imf_fixdate_of_now():
    with Daemon() as d:
        d.put("u-date/a.bin", b"date")
        for target in ("/health", d.target("u-date/a.bin"),
                       d.target("u-date/missing")):
            before = time.time()
            r = d.request("GET", target)
            after = time.time()
            assert r.status in (200, 404), r
            t = _date_of(r)
            # Whole seconds: the header may lag the clock by under one.
            assert int(before) - 1 <= t <= after, (before, t, after)


def test_date_header_moves_on_one_keepalive_connection():
    """The value is cached per worker, refreshed as the clock moves: two
    answers seconds apart on one connection (so one worker) differ by
    about that much."""
    with Daemon() as d, d.conn() as c:
        c.send(build_request("GET", "/health"))
        t1 = _date_of(c.read_response())
        time.sleep(2.2)
        c.send(build_request("GET", "/health"))
        t2 = _date_of(c.read_response())
        assert 1 <= t2 - t1 <= 4, (t1, t2)


def test_file_answer_heads():
    """Every header of a file answer, in full: what the pre-built block
    and the number appends produce."""
    with Daemon() as d:
        data = hfs.det_bytes(4096, seed=12)
        assert d.put("u-head/f.txt", data).status == 201
        r = d.get("u-head/f.txt")
        assert r.status == 200 and r.body == data, r
        h = r.hdict()
        assert h["content-length"] == "4096", h
        assert h["content-type"].startswith("text/plain"), h
        assert h["accept-ranges"] == "bytes", h
        assert h["cache-control"] == "public, max-age=31536000, immutable", h
        assert h["x-content-type-options"] == "nosniff", h
        assert h["content-security-policy"] == (
            "default-src 'none'; style-src 'unsafe-inline'; sandbox"), h
        assert h["server"] == "hmac-file-server", h
        st = os.stat(os.path.join(d.storage, "u-head", "f.txt"))
        ns = st.st_mtime_ns
        assert h["etag"] == '"%x-%x-%x"' % (st.st_ino, st.st_size, ns), h
        assert (email.utils.parsedate_to_datetime(h["last-modified"])
                .timestamp() == int(st.st_mtime)), h
        assert IMF_FIXDATE.match(h["last-modified"]), h

        r = d.get("u-head/f.txt", [("Range", "bytes=100-199")])
        assert r.status == 206 and r.body == data[100:200], r
        assert r.header("Content-Range") == "bytes 100-199/4096", r
        assert r.header("Content-Length") == "100", r
        r = d.get("u-head/f.txt", [("Range", "bytes=5000-")])
        assert r.status == 416, r
        assert r.header("Content-Range") == "bytes */4096", r
        r = d.get("u-head/f.txt", [("If-None-Match", h["etag"])])
        assert r.status == 304 and r.header("ETag") == h["etag"], r
        r = d.head("u-head/f.txt")
        assert r.status == 200 and r.body == b"", r
        assert r.header("Content-Length") == "4096", r


def test_small_bodies_stored_intact():
    """Bodies around the sizes that are stored in one piece (no
    preallocation at or below 64 KiB), each checked byte for byte, on one
    keep-alive connection and on fresh ones."""
    sizes = [0, 1, 100, 4095, 4096, 4097, 65535, 65536, 65537, 200000]
    with Daemon() as d:
        with d.conn() as c:
            for i, n in enumerate(sizes):
                data = hfs.det_bytes(n, seed=100 + i)
                path = "u-small-%d/b.bin" % i
                c.send(build_request("PUT", d.put_target(path, n), [], data))
                r = c.read_response("PUT")
                assert r.status == 201, (n, r)
        for i, n in enumerate(sizes):
            data = hfs.det_bytes(n, seed=100 + i)
            path = "u-small-%d/b.bin" % i
            with open(os.path.join(d.storage, path), "rb") as f:
                assert f.read() == data, n
            st = os.stat(os.path.join(d.storage, path))
            assert st.st_size == n, (n, st.st_size)
            # Not a block more than the bytes need (no preallocation left
            # over), allowing for the filesystem's own rounding.
            assert st.st_blocks * 512 <= max(n, 1) + 2 * 65536, (n, st)
            r = d.get(path)
            assert r.status == 200 and r.body == data, (n, r)
        for i, n in enumerate([3, 4096, 65536]):
            data = hfs.det_bytes(n, seed=300 + i)
            assert d.put("u-fresh-%d/b.bin" % i, data).status == 201
            assert d.get("u-fresh-%d/b.bin" % i).body == data


def test_many_requests_on_one_keepalive_connection():
    """Hundreds of requests on one connection, each with different
    headers: a parser reused between requests (and between connections,
    from the worker's cache) must never show one request's headers or
    target to the next."""
    with Daemon() as d:
        files = {}
        for i in range(4):
            files["u-ka%d/f.bin" % i] = hfs.det_bytes(1000 + i, seed=40 + i)
            assert d.put("u-ka%d/f.bin" % i, files["u-ka%d/f.bin" % i]
                         ).status == 201
        with d.conn() as c:
            for n in range(300):
                path = "u-ka%d/f.bin" % (n % 4)
                hs = [("X-Pad-%d" % n, "p" * (n % 50))]
                if n % 3 == 0:
                    hs.append(("Range", "bytes=0-9"))
                if n % 5 == 0:
                    hs.append(("Origin", "https://x.example"))
                c.send(build_request("GET", d.target(path), hs))
                r = c.read_response()
                if n % 3 == 0:
                    assert r.status == 206 and r.body == files[path][:10], \
                        (n, r)
                else:
                    assert r.status == 200 and r.body == files[path], (n, r)
                # A Range or Origin of an earlier request never leaks
                # into a later answer.
                assert (r.header("Access-Control-Allow-Origin") is not None
                        ) == (n % 5 == 0), (n, r)
        # Connections one after another: parsers come back from the cache.
        for n in range(40):
            r = d.get("u-ka%d/f.bin" % (n % 4))
            assert r.status == 200 and r.body == files["u-ka%d/f.bin"
                                                       % (n % 4)], (n, r)


def test_pipelined_requests_then_a_malformed_one():
    """Good requests in one write, then a malformed one: every good one is
    answered in order, the bad one gets 400 and the connection closes;
    a new connection (maybe handed the same parser) works normally."""
    with Daemon() as d:
        data = hfs.det_bytes(4096, seed=77)
        assert d.put("u-pipe/f.bin", data).status == 201
        good = b"".join(build_request("GET", d.target("u-pipe/f.bin"),
                                      [("X-N", str(i))]) for i in range(20))
        bad = b"GET /x HTTP/1.1\r\nHost: a\r\n folded: line\r\n\r\n"
        with d.conn() as c:
            c.send(good + bad)
            for i in range(20):
                r = c.read_response()
                assert r.status == 200 and r.body == data, (i, r)
            r = c.read_response()
            assert r.status == 400, r
            assert "fold" in r.text or "whitespace" in r.text, r
            assert r.header("Connection") == "close", r
            c.wait_closed()
        with d.conn() as c:
            c.send(b"GARBAGE\r\n\r\n")
            r = c.read_response()
            assert r.status in (400, 501), r
        for _ in range(10):
            with d.conn() as c:
                c.send(build_request("GET", d.target("u-pipe/f.bin")) +
                       build_request("HEAD", d.target("u-pipe/f.bin")))
                r = c.read_response()
                assert r.status == 200 and r.body == data, r
                r = c.read_response("HEAD")
                assert r.status == 200 and r.body == b"", r
                assert r.header("Content-Length") == "4096", r


def test_small_puts_pipelined_on_one_connection():
    """Small uploads back to back on one connection, some pipelined in one
    write: the parser of each starts from nothing (a signature, size or
    content type of the last never applies to the next)."""
    with Daemon() as d:
        bodies = [hfs.det_bytes(n, seed=500 + n) for n in (10, 4096, 77, 0,
                                                            65536, 3)]
        reqs = []
        for i, b in enumerate(bodies):
            path = "u-pp%d/b.bin" % i
            reqs.append(build_request("PUT", d.put_target(path, len(b)),
                                      [], b))
        # A PUT whose signature is for another size: refused, 403.
        bad = build_request("PUT", d.put_target("u-pp-bad/b.bin", 5), [],
                            b"123456")
        with d.conn() as c:
            c.send(reqs[0])
            assert c.read_response("PUT").status == 201
            c.send(b"".join(reqs[1:]))
            for i in range(1, len(reqs)):
                r = c.read_response("PUT")
                assert r.status == 201, (i, r)
            c.send(bad)
            r = c.read_response("PUT")
            assert r.status == 403, r
        for i, b in enumerate(bodies):
            with open(os.path.join(d.storage, "u-pp%d/b.bin" % i), "rb") as f:
                assert f.read() == b, i
        assert not os.path.exists(os.path.join(d.storage, "u-pp-bad"))


def _reload_with_secrets(d, secrets):
    """Rewrites the config with other secrets, SIGHUP, and waits until
    only workers of the new generation are left."""
    old = d.worker_pids()
    d.cfg["security"]["secrets"] = secrets
    tmp = d.conf_path + ".new"
    with open(tmp, "w") as f:
        f.write(hfs.config_text(d.cfg))
    os.replace(tmp, d.conf_path)
    os.kill(d.pid, signal.SIGHUP)
    d.wait_workers(len(old), exclude=old)


def test_signatures_after_sighup_changes_the_secret():
    """Each worker derives the HMAC state of its secrets once: a reload
    with a new secret must make the old one fail and the new one work,
    and a wrong MAC fails before and after."""
    old_secret, new_secret = hfs.SECRET, "rotated-secret-9d2f"
    with Daemon() as d:
        body = b"signed body"
        assert d.put("u-hup-a/1.bin", body).status == 201
        assert d.put("u-hup-a/2.bin", body, secret="wrong").status == 403
        bad = d.put_target("u-hup-a/3.bin", len(body))
        bad = bad[:-1] + ("0" if bad[-1] != "0" else "1")    # one digit off
        assert d.put_stream(bad, body).status == 403

        _reload_with_secrets(d, [new_secret])
        for i in range(4):      # several connections: every new worker
            r = d.put("u-hup-b/old%d.bin" % i, body, secret=old_secret)
            assert r.status == 403, r
            r = d.put("u-hup-b/new%d.bin" % i, body, secret=new_secret)
            assert r.status == 201, r
        assert d.put("u-hup-b/x.bin", body, secret="wrong").status == 403

        # Rotation: both verify while both are configured, in either order.
        _reload_with_secrets(d, [old_secret, new_secret])
        assert d.put("u-hup-c/a.bin", body, secret=old_secret).status == 201
        assert d.put("u-hup-c/b.bin", body, secret=new_secret).status == 201
        assert d.put("u-hup-c/c.bin", body, secret="wrong").status == 403
        for p in ("u-hup-a/1.bin", "u-hup-b/new0.bin", "u-hup-c/a.bin"):
            with open(os.path.join(d.storage, p), "rb") as f:
                assert f.read() == body, p
        assert not os.path.exists(os.path.join(d.storage, "u-hup-b",
                                               "old0.bin"))


def test_requests_in_pieces_and_after_pauses():
    """A worker reads a socket until a read comes back short, then waits
    for epoll: a head and a body sent in pieces with pauses between them,
    a second request long after the first answer, and a request followed
    at once by the client's half-close are all served."""
    with Daemon() as d:
        data = hfs.det_bytes(5000, seed=9)
        t = d.put_target("u-pieces/a.bin", len(data))
        req = build_request("PUT", t, [], data)
        with d.conn() as c:
            for i in range(0, len(req), 700):
                c.send(req[i:i + 700])
                time.sleep(0.02)
            assert c.read_response("PUT").status == 201
            time.sleep(1.5)
            g = build_request("GET", d.target("u-pieces/a.bin"))
            c.send(g[:10])
            time.sleep(0.2)
            c.send(g[10:])
            r = c.read_response()
            assert r.status == 200 and r.body == data, r
        with d.conn() as c:
            c.send(build_request("GET", d.target("u-pieces/a.bin")))
            c.sock.shutdown(socket.SHUT_WR)
            r = c.read_response()
            assert r.status == 200 and r.body == data, r


def _abort_downloads(d, target, seconds, conns=32):
    """conns clients in parallel, each in a loop: GET, read a little,
    reset the connection, for the given seconds."""
    stop = time.monotonic() + seconds
    req = build_request("GET", target)

    def client(seed):
        n = 0
        while time.monotonic() < stop:
            try:
                s = socket.create_connection(("127.0.0.1", d.port), 5)
                s.sendall(req)
                s.recv(1000 + (seed * 7919 + n * 104729) % 300000)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()
            except OSError:
                pass
            n += 1

    ts = [threading.Thread(target=client, args=(i,)) for i in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def test_aborted_download_logged_at_info():
    """Clients that leave in the middle of a download are normal: when the
    worker notices it by a failed send (not every time: often epoll
    reports the reset first, and nothing is logged), the log says so at
    info, never as a warning or an error."""
    with Daemon() as d:
        assert d.put("u-abort/big.bin", hfs.det_bytes(4 << 20, seed=5)
                     ).status == 201
        _abort_downloads(d, d.target("u-abort/big.bin"), 4)
        r = d.request("GET", "/health")
        assert r.status == 200, r
        lines = [ln for ln in d.log().splitlines()
                 if "during the download" in ln or "sending file" in ln]
        print("%d aborted downloads logged" % len(lines))
        assert all("[info]" in ln for ln in lines), lines[:5]
