"""Uploads and downloads through the real daemon: the happy paths of api.md."""

import os
import time

import hfs
from hfs import Daemon, curl

MiB = 1 << 20


def _roundtrip_curl(d, path, size):
    src, digest = d.make_file(size)
    r = curl("-T", src, d.put_url(path, size))
    assert r.rc == 0 and r.status == 201, "PUT %d B: %r" % (size, r)
    out = os.path.join(d.files, "got-%d" % size)
    g = curl(d.url(path), out=out)
    assert g.rc == 0 and g.status == 200, "GET %d B: %r" % (size, g)
    assert g.header("Content-Length") == str(size), g
    assert os.path.getsize(out) == size
    assert hfs.sha256_file(out) == digest, "%d B: bytes differ" % size
    os.unlink(src)
    os.unlink(out)


def test_put_get_small_sizes():
    with Daemon() as d:
        for i, size in enumerate((0, 1, MiB)):
            _roundtrip_curl(d, "u-small-%d/file-%d.bin" % (i, size), size)


@hfs.timeout(150)
def test_put_get_100mib():
    with Daemon() as d:
        _roundtrip_curl(d, "u-big/huge.bin", 100 * MiB)


def test_v2_with_content_type():
    with Daemon() as d:
        data = hfs.det_bytes(5000, seed=2)
        src = os.path.join(d.files, "p.png")
        open(src, "wb").write(data)
        r = curl("-T", src, "-H", "Content-Type: image/png",
                 d.put_url("u-v2/pic.png", len(data), v=2,
                           content_type="image/png"))
        assert r.status == 201, r
        g = d.get("u-v2/pic.png")
        assert g.status == 200 and g.body == data, g
        assert g.header("Content-Type", "").split(";")[0] == "image/png", g


def test_head_same_headers_as_get():
    with Daemon() as d:
        data = hfs.det_bytes(12345, seed=3)
        assert d.put("u-head/doc.txt", data).status == 201
        g = d.get("u-head/doc.txt")
        assert g.status == 200 and g.body == data, g
        # Connection: close and read to EOF: nothing may follow the head.
        with d.conn() as c:
            c.send(hfs.build_request("HEAD", d.target("u-head/doc.txt"),
                                     ["Connection: close"]))
            h = c.read_response("HEAD")
            rest = c.read_to_eof(5)
        assert h.status == 200, h
        assert rest == b"", "HEAD sent a body: %r" % rest[:100]
        skip = {"date", "connection", "keep-alive"}
        gh = {k: v for k, v in g.hdict().items() if k not in skip}
        hh = {k: v for k, v in h.hdict().items() if k not in skip}
        assert gh == hh, "GET %r\nHEAD %r" % (gh, hh)
        for k in ("content-length", "content-type", "etag", "last-modified",
                  "accept-ranges", "x-content-type-options"):
            assert k in gh, "GET lacks %s: %r" % (k, g.headers)
        assert gh["content-length"] == "12345"
        assert gh["accept-ranges"] == "bytes"
        assert gh["x-content-type-options"] == "nosniff"


def test_content_type_from_extension():
    want = {
        "a.txt": "text/plain",
        "b.png": "image/png",
        "c.jpg": "image/jpeg",
        "d.jpeg": "image/jpeg",
        "e.gif": "image/gif",
        "f.pdf": "application/pdf",
        "g.mp4": "video/mp4",
        "h.unknownext": "application/octet-stream",
        "noext": "application/octet-stream",
    }
    with Daemon() as d:
        bad = []
        for name, ctype in want.items():
            path = "u-ct/" + name
            assert d.put(path, b"x" * 10).status == 201, name
            got = d.get(path).header("Content-Type", "")
            if got.split(";")[0].strip().lower() != ctype:
                bad.append("%s: %r (want %s)" % (name, got, ctype))
        assert not bad, "; ".join(bad)


def test_health():
    with Daemon() as d:
        r = d.request("GET", "/health")
        assert r.status == 200 and r.body == b"ok\n", r


def _wait_metric(d, name, want, **labels):
    """Counters may be folded in just after the response is sent: poll
    briefly until `want` is reached, then return the value (which must not
    overshoot)."""
    deadline = time.monotonic() + 2
    while True:
        v = d.metrics().get(name, **labels)
        if v >= want or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def test_metrics_count_uploads():
    with Daemon() as d:
        m0 = d.metrics()
        for name in ("hfs_requests_total", "hfs_bytes_received_total",
                     "hfs_bytes_sent_total", "hfs_connections_active",
                     "hfs_uploads_in_progress", "hfs_worker_restarts_total"):
            assert name in m0, "metric %s missing: %r" % (name, list(m0))
        p201 = m0.get("hfs_requests_total", method="PUT", status="201")
        p200 = m0.get("hfs_requests_total", method="PUT", status="200")
        rx0 = m0.get("hfs_bytes_received_total")
        sizes = (100, 2000, 30000)
        for i, n in enumerate(sizes):
            r = d.put("u-m/%d.bin" % i, hfs.det_bytes(n, seed=i))
            assert r.status == 201, r
        r = d.put("u-m/0.bin", hfs.det_bytes(100, seed=0))
        assert r.status == 200, "identical retry: %r" % r
        v = _wait_metric(d, "hfs_requests_total", p201 + 3,
                         method="PUT", status="201")
        assert v == p201 + 3, "PUT 201 went %g -> %g, want +3" % (p201, v)
        v = _wait_metric(d, "hfs_requests_total", p200 + 1,
                         method="PUT", status="200")
        assert v == p200 + 1, "PUT 200 went %g -> %g, want +1" % (p200, v)
        rx = d.metrics().get("hfs_bytes_received_total")
        assert rx - rx0 >= sum(sizes) + 100, (rx0, rx)
        assert d.metrics().get("hfs_uploads_in_progress") == 0


def test_names_with_spaces_and_utf8():
    names = [
        "u-n1/my file.txt",
        "u-n2/\u00fcber gr\u00f6\u00dfe \u65e5\u672c\u8a9e.txt",
        "u-n3/100% real+plus;semi,comma=eq&amp.txt",
        "u-n4/caf\u00e9 \U0001F600.jpg",
    ]
    with Daemon() as d:
        for i, path in enumerate(names):
            data = hfs.det_bytes(777 + i, seed=40 + i)
            src = os.path.join(d.files, "n%d" % i)
            open(src, "wb").write(data)
            r = curl("-T", src, d.put_url(path, len(data)))
            assert r.status == 201, "%s: %r" % (path, r)
            g = curl(d.url(path))
            assert g.status == 200 and g.body == data, "%s: %r" % (path, g)
        # Decoded exactly once: '%25' is a literal '%', so the double-encoded
        # name is a different (missing) file.
        g = d.request("GET", d.target("u-n3/100%25 real+plus;semi,comma="
                                      "eq&amp.txt"))
        assert g.status == 404, g


def test_url_prefix():
    # The prefix is stripped before the MAC: the signed path stays relative.
    with Daemon(**{"server.url_prefix": "/upload/"}) as d:
        data = hfs.det_bytes(999, seed=50)
        t = d.put_target("u-pre/f.bin", len(data))
        assert t.startswith("/upload/u-pre/f.bin?v="), t
        r = d.put_stream(t, data)
        assert r.status == 201, r
        g = d.get("u-pre/f.bin")
        assert g.status == 200 and g.body == data, g
        r = d.request("GET", "/u-pre/f.bin")
        assert r.status == 404, "served outside the prefix: %r" % r
        assert d.request("GET", "/health").status == 200
