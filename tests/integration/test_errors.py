"""Every error status of api.md, and that a refused or unfinished upload
leaves nothing visible (or anywhere outside storage)."""

import os
import re
import subprocess
import tempfile
import time
import urllib.parse

import hfs
from hfs import Daemon, build_request


def _one_line_reason(r):
    ctype = (r.header("Content-Type") or "").split(";")[0].strip()
    assert ctype == "text/plain", "error body not text/plain: %r" % r
    text = r.text.strip()
    assert text and "\n" not in text, "want a one-line reason: %r" % r
    return text


def test_bad_mac_403():
    with Daemon() as d:
        data = b"payload-403"
        path = "u-bm/f.txt"
        variants = {
            "zeros": "v=" + "0" * 64,
            "other secret": "v=" + hfs.sign_v1(path, len(data), "wrong"),
            "other size": "v=" + hfs.sign_v1(path, len(data) + 1),
            "other path": "v=" + hfs.sign_v1("u-bm/g.txt", len(data)),
            "truncated": "v=" + hfs.sign_v1(path, len(data))[:40],
            "v2 for a v1 message": "v2=" + hfs.sign_v1(path, len(data)),
        }
        for what, q in variants.items():
            r = d.request("PUT", d.target(path, q), [], data)
            assert r.status == 403, "%s: %r" % (what, r)
            _one_line_reason(r)
        assert d.get(path).status == 404


def test_missing_mac_403():
    with Daemon() as d:
        path = "u-mm/f.txt"
        for q in (None, "v=", "x=1", "v=nothex!" + "0" * 56):
            r = d.request("PUT", d.target(path, q), [], b"abc")
            assert r.status == 403, "query %r: %r" % (q, r)
            _one_line_reason(r)
        assert d.get(path).status == 404


def test_v2_content_type_bound_by_mac():
    with Daemon() as d:
        data = b"\x89PNG fake"
        path = "u-v2/x.png"
        t = d.put_target(path, len(data), v=2, content_type="image/png")
        r = d.request("PUT", t, ["Content-Type: text/plain"], data)
        assert r.status == 403, "content type swapped: %r" % r
        r = d.request("PUT", t, [], data)
        assert r.status == 403, "content type dropped: %r" % r
        r = d.request("PUT", t, ["Content-Type: image/png"], data)
        assert r.status == 201, r


def test_size_not_signed_size():
    with Daemon() as d:
        path = "u-sz/f.bin"
        t = d.put_target(path, 100)
        for n in (50, 150):
            r = d.put_stream(t, b"z" * n)
            assert r.status in (400, 403), "%d bytes for 100: %r" % (n, r)
            reason = _one_line_reason(r)
            # v1 carries the size only inside the MAC, so "signature
            # mismatch" is the honest name for it; anything else must name
            # the size or length.
            assert re.search(r"size|length|signature|mac", reason, re.I), \
                "reason does not name the problem: %r" % reason
        assert d.get(path).status == 404


def test_chunked_body_not_signed_size():
    with Daemon() as d:
        path = "u-szc/f.bin"
        t = d.put_target(path, 1000)
        te = ["Transfer-Encoding: chunked"]
        r = d.put_stream(t, hfs.chunked([b"a" * 600, b"b" * 600]), te)
        assert r.status in (400, 403, 413), "1200 bytes for 1000: %r" % r
        r = d.put_stream(t, hfs.chunked([b"a" * 500]), te)
        assert r.status in (400, 403), "500 bytes for 1000: %r" % r
        assert d.get(path).status == 404


def _headers_only(d, target, headers, wait=5.0):
    """Sends only a request head and returns the response that must come
    back without any body bytes being sent."""
    with d.conn(timeout=wait) as c:
        c.send(build_request("PUT", target, headers, length=False))
        return c.read_response("PUT", interim=True)


def test_too_large_413_before_body():
    with Daemon(**{"storage.max_upload_size": "1M"}) as d:
        huge = 10 << 30
        path = "u-big/f.bin"
        t = d.put_target(path, huge)
        r = _headers_only(d, t, ["Content-Length: %d" % huge])
        assert r.status == 413, r
        _one_line_reason(r)
        r = _headers_only(d, t, ["Content-Length: %d" % huge,
                                 "Expect: 100-continue"])
        assert r.status == 413, "want 413 without 100: %r" % r
        # Just over the limit, signed for what is sent.  (Loopback socket
        # buffers swallow 1 MiB at once, so only the head-only requests
        # above prove "before the body".)
        n = (1 << 20) + 1
        r = d.put("u-big/g.bin", b"q" * n)
        assert r.status == 413, r
        # Exactly the limit is fine.
        r = d.put("u-big/h.bin", b"q" * (1 << 20))
        assert r.status == 201, r
        assert d.get(path).status == 404


def test_too_large_413_chunked_stream():
    # v1 hides the signed size inside the MAC, so with chunked the server
    # learns the size only by counting: it must stop once the stream passes
    # max_upload_size.  32 MiB is well beyond what loopback socket buffers
    # hold, so a server that reads everything first is caught.
    with Daemon(**{"storage.max_upload_size": "1M"}) as d:
        size = 32 << 20
        path = "u-bigc/f.bin"
        body = hfs.chunked([b"c" * 65536] * (size // 65536))
        r = d.put_stream(d.put_target(path, size), body,
                         ["Transfer-Encoding: chunked"])
        assert r.status == 413, r
        assert r.sent < len(body), "413 only after the whole body"
        assert d.get(path).status == 404


def test_length_required_411():
    with Daemon() as d:
        path = "u-411/f.bin"
        r = d.request("PUT", d.put_target(path, 10), [], length=False)
        assert r.status == 411, r
        assert d.get(path).status == 404


def test_method_not_allowed_405():
    with Daemon() as d:
        assert d.put("u-405/f.txt", b"hi").status == 201
        for m in ("DELETE", "POST", "PATCH"):
            r = d.request(m, d.target("u-405/f.txt"), ["Content-Length: 0"])
            assert r.status == 405, "%s: %r" % (m, r)
            allow = (r.header("Allow") or "").upper()
            for want in ("GET", "HEAD", "PUT"):
                assert want in allow, "%s: Allow lacks %s: %r" % (m, want, r)
        assert d.get("u-405/f.txt").body == b"hi"


def test_conflict_409_and_idempotent_retry():
    with Daemon() as d:
        path = "u-409/f.bin"
        a = hfs.det_bytes(4096, seed=1)
        b = hfs.det_bytes(4096, seed=2)
        assert d.put(path, a).status == 201
        r = d.put(path, a)
        assert r.status == 200, "identical retry: %r" % r
        r = d.put(path, b)
        assert r.status == 409, "different bytes, same size: %r" % r
        r = d.put(path, b"short")
        assert r.status == 409, "different size: %r" % r
        g = d.get(path)
        assert g.status == 200 and g.body == a, g


HOSTILE = [
    "/%2e%2e/x",
    "/%2E%2E/x",
    "/a/%2e%2e/%2e%2e/etc/passwd",
    "/a/../../etc/passwd",
    "/../x",
    "/a/./b",
    "/a%00b",
    "/a/b%00.txt",
    "/a%2fb/c",
    "/a%2Fb/c",
    "/a//b",
    "/a/b/",
    "/" + "/".join(["abcdefghi"] * 500),     # 5000-byte path
    "/a/" + "n" * 300,                         # component over NAME_MAX
]


def test_hostile_paths_400():
    with Daemon() as d:
        before = hfs.tree(d.tmp, exclude=("daemon.log", "files"))
        passwd = os.stat("/etc/passwd")
        bad = []
        for t in HOSTILE:
            rel = urllib.parse.unquote_to_bytes(t[1:])
            q = "?v=" + hfs.sign_v1(rel, 5)
            try:
                r = d.request("PUT", t + q, [], b"owned")
                if r.status != 400:
                    bad.append("PUT %s -> %d %r" % (t[:60], r.status, r.body))
            except (OSError, EOFError, ValueError) as e:
                bad.append("PUT %s -> no response: %r" % (t[:60], e))
            try:
                r = d.request("GET", t)
                if r.status not in (400, 404) or b"root:" in r.body:
                    bad.append("GET %s -> %d %r" % (t[:60], r.status, r.body))
            except (OSError, EOFError, ValueError) as e:
                bad.append("GET %s -> no response: %r" % (t[:60], e))
        assert d.request("GET", "/health").status == 200
        after = hfs.tree(d.tmp, exclude=("daemon.log", "files"))
        new = sorted(after - before)
        newfiles = [p for p, k in new if k != "d"]
        st = os.stat("/etc/passwd")
        assert (st.st_mtime_ns, st.st_size) == \
            (passwd.st_mtime_ns, passwd.st_size), "/etc/passwd changed"
        assert not bad, "\n".join(bad)
        assert not newfiles, "created: %r" % newfiles


def test_not_found_404():
    with Daemon() as d:
        r = d.get("no-such/file.txt")
        assert r.status == 404, r
        r = d.head("no-such/file.txt")
        assert r.status == 404 and r.body == b"", r


def test_bad_request_400():
    with Daemon() as d:
        # An unknown method may fairly be 501 rather than 400.
        for raw in (b"HELLO\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\r\n\r\n"):
            with d.conn(timeout=5) as c:
                c.send(raw)
                r = c.read_response("GET")
            assert r.status in (400, 501), "%r -> %r" % (raw[:60], r)
        for raw in (b"GET /health HTTP/1.1 trailing\r\nHost: x\r\n\r\n",
                    b"GET /health HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
                    b"PUT /u/f?v=" + hfs.sign_v1("u/f", 10).encode() +
                    b" HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n",
                    b"PUT /u/f?v=" + hfs.sign_v1("u/f", 10).encode() +
                    b" HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
                    b"Content-Length: 20\r\n\r\n" + b"x" * 10):
            with d.conn(timeout=5) as c:
                c.send(raw)
                r = c.read_response("GET")
            assert r.status == 400, "%r -> %r" % (raw[:60], r)
        assert d.get("u/f").status == 404
        assert d.request("GET", "/health").status == 200


def _mount_tmpfs(size):
    m = tempfile.mkdtemp(prefix="hfs-tmpfs-")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size,
                        "tmpfs", m], capture_output=True)
    if p.returncode != 0:
        os.rmdir(m)
        raise hfs.Skip("cannot mount tmpfs: %s" %
                       p.stderr.decode().strip())
    for sub in ("storage", "staging"):
        os.mkdir(os.path.join(m, sub))
    return m


def _umount(m):
    subprocess.run(["umount", "-l", m], capture_output=True)
    try:
        os.rmdir(m)
    except OSError:
        pass


def _storage_overrides(m, min_free):
    return {"storage.dir": os.path.join(m, "storage"),
            "storage.staging": os.path.join(m, "staging"),
            "storage.min_free": min_free}


def test_disk_full_507():
    m = _mount_tmpfs("2M")
    try:
        with Daemon(**_storage_overrides(m, "0")) as d:
            path = "u-full/big.bin"
            r = d.put(path, hfs.det_bytes(4 << 20, seed=9))
            assert r.status == 507, r
            _one_line_reason(r)
            assert d.get(path).status == 404
            left = [os.path.join(s, p) for s in ("storage", "staging")
                    for p in hfs.regular_files(os.path.join(m, s))]
            assert not left, "left behind: %r" % left
            st = os.statvfs(m)
            assert st.f_bfree * st.f_frsize > (1 << 20), \
                "space not given back: %d free" % (st.f_bfree * st.f_frsize)
            # The space came back: a small upload now works.
            r = d.put("u-full/small.bin", b"s" * 10000)
            assert r.status == 201, r
    finally:
        _umount(m)


def test_below_min_free_507():
    m = _mount_tmpfs("2M")
    try:
        with Daemon(**_storage_overrides(m, "4M")) as d:
            path = "u-minfree/f.bin"
            r = d.put(path, b"tiny")
            assert r.status == 507, r
            assert d.get(path).status == 404
            left = [p for s in ("storage", "staging")
                    for p in hfs.regular_files(os.path.join(m, s))]
            assert not left, "left behind: %r" % left
    finally:
        _umount(m)


def test_not_visible_while_uploading():
    with Daemon() as d:
        data = hfs.det_bytes(1 << 20, seed=11)
        half = len(data) // 2
        path = "u-vis/slow.bin"
        with d.conn(timeout=10) as c:
            c.send(build_request("PUT", d.put_target(path, len(data)), [],
                                 length=False)[:-2] +
                   b"Content-Length: %d\r\n\r\n" % len(data))
            c.send(data[:half])
            time.sleep(0.3)
            g = d.get(path)
            assert g.status == 404, "visible mid-upload: %r" % g
            assert d.head(path).status == 404
            m = d.metrics()
            assert m.get("hfs_uploads_in_progress") >= 1, \
                "upload in progress not counted"
            assert m.get("hfs_connections_active") >= 2, \
                "upload connection + this one: %r" % m.get(
                    "hfs_connections_active")
            time.sleep(0.2)
            c.send(data[half:])
            r = c.read_response("PUT")
            assert r.status == 201, r
        g = d.get(path)
        assert g.status == 200 and g.body == data, g
        deadline = time.monotonic() + 2
        while d.metrics().get("hfs_uploads_in_progress") != 0 and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert d.metrics().get("hfs_uploads_in_progress") == 0


def test_cut_upload_not_published():
    with Daemon() as d:
        data = hfs.det_bytes(100000, seed=12)
        path = "u-cut/f.bin"
        c = d.conn()
        c.send(build_request("PUT", d.put_target(path, len(data)), [],
                             length=False)[:-2] +
               b"Content-Length: %d\r\n\r\n" % len(data) + data[:40000])
        time.sleep(0.2)
        c.close()
        time.sleep(0.3)
        assert d.get(path).status == 404
        deadline = time.monotonic() + 2
        while d.metrics().get("hfs_uploads_in_progress") != 0 and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert d.metrics().get("hfs_uploads_in_progress") == 0, \
            "aborted upload still counted"
        assert d.request("GET", "/health").status == 200
        # The whole body afterwards still publishes.
        r = d.put(path, data)
        assert r.status == 201, r
        assert d.get(path).body == data
