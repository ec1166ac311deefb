"""HTTP/1.1 mechanics: keep-alive, pipelining, chunked bodies, Expect,
Range, conditional GET, CORS, Connection: close."""

import os
import subprocess

import hfs
from hfs import Daemon, build_request, curl


def test_keepalive_put_get_head_on_one_socket():
    with Daemon() as d:
        data = hfs.det_bytes(4321, seed=1)
        path = "u-ka/k.bin"
        with d.conn() as c:
            c.send(build_request("PUT", d.put_target(path, len(data)), [],
                                 data))
            r = c.read_response("PUT")
            assert r.status == 201, r
            assert (r.header("Connection") or "").lower() != "close", r
            c.send(build_request("GET", d.target(path)))
            g = c.read_response("GET")
            assert g.status == 200 and g.body == data, g
            c.send(build_request("HEAD", d.target(path)))
            h = c.read_response("HEAD")
            assert h.status == 200, h
            assert h.header("Content-Length") == str(len(data)), h
            c.send(build_request("GET", "/health"))
            r = c.read_response("GET")
            assert r.status == 200 and r.body == b"ok\n", r
            c.send(build_request("GET", d.target("u-ka/missing")))
            r = c.read_response("GET")
            assert r.status == 404, r
            # Still usable after a 404.
            c.send(build_request("GET", d.target(path)))
            g = c.read_response("GET")
            assert g.status == 200 and g.body == data, g


def test_pipelining_in_one_write():
    with Daemon() as d:
        a = hfs.det_bytes(70000, seed=2)
        b = hfs.det_bytes(3000, seed=3)
        assert d.put("u-pl/a.bin", a).status == 201
        assert d.put("u-pl/b.bin", b).status == 201
        with d.conn() as c:
            c.send(build_request("GET", d.target("u-pl/a.bin")) +
                   build_request("HEAD", d.target("u-pl/b.bin")) +
                   build_request("GET", d.target("u-pl/b.bin")) +
                   build_request("GET", "/health"))
            r1 = c.read_response("GET")
            r2 = c.read_response("HEAD")
            r3 = c.read_response("GET")
            r4 = c.read_response("GET")
        assert r1.status == 200 and r1.body == a, r1
        assert r2.status == 200 and r2.header("Content-Length") == "3000", r2
        assert r3.status == 200 and r3.body == b, r3
        assert r4.status == 200 and r4.body == b"ok\n", r4


def test_pipelined_put_then_get():
    with Daemon() as d:
        data = hfs.det_bytes(5000, seed=4)
        path = "u-pp/x.bin"
        with d.conn() as c:
            c.send(build_request("PUT", d.put_target(path, len(data)), [],
                                 data) +
                   build_request("GET", d.target(path)))
            r1 = c.read_response("PUT")
            r2 = c.read_response("GET")
        assert r1.status == 201, r1
        assert r2.status == 200 and r2.body == data, r2


def test_chunked_upload_with_curl():
    with Daemon() as d:
        src, digest = d.make_file(300000)
        path = "u-ch/curl.bin"
        with open(src, "rb") as f:
            r = curl("-H", "Transfer-Encoding: chunked", "-T", "-",
                     d.put_url(path, 300000), stdin=f)
        assert r.status == 201, r
        g = d.get(path)
        assert g.status == 200 and hfs.sha256(g.body) == digest, g


def test_chunked_upload_raw_odd_chunks():
    with Daemon() as d:
        data = hfs.det_bytes(200003, seed=5)
        cuts = [0, 1, 8, 4104, 4105, 70000, 135539, 200003]
        pieces = [data[cuts[i]:cuts[i + 1]] for i in range(len(cuts) - 1)]
        body = hfs.chunked(pieces[:3])[:-5]            # no terminator yet
        body += hfs.chunked(pieces[3:5], ext=b"name=val")[:-5]
        # Upper-case hex sizes are legal too.
        for p in pieces[5:]:
            body += (b"%X\r\n" % len(p)) + p + b"\r\n"
        body += b"0\r\n\r\n"
        path = "u-ch/raw.bin"
        r = d.put_stream(d.put_target(path, len(data)), body,
                         ["Transfer-Encoding: chunked"], piece=3000)
        assert r.status == 201, r
        g = d.get(path)
        assert g.status == 200 and g.body == data, g


def test_expect_100_continue():
    with Daemon() as d:
        data = hfs.det_bytes(50000, seed=6)
        path = "u-ex/e.bin"
        with d.conn(timeout=5) as c:
            c.send(build_request("PUT", d.put_target(path, len(data)),
                                 ["Expect: 100-continue",
                                  "Content-Length: %d" % len(data)]))
            first = c.read_response("PUT", interim=True)
            assert first.status == 100, "want 100 Continue first: %r" % first
            assert first.version == "HTTP/1.1", first
            c.send(data)
            r = c.read_response("PUT")
            assert r.status == 201, r
        assert d.get(path).body == data


def test_expect_with_bad_mac_gets_403_not_100():
    with Daemon() as d:
        path = "u-ex/bad.bin"
        t = d.target(path, "v=" + "0" * 64)
        with d.conn(timeout=5) as c:
            c.send(build_request("PUT", t, ["Expect: 100-continue",
                                            "Content-Length: 50000"]))
            first = c.read_response("PUT", interim=True)
            assert first.status == 403, "want 403 without 100: %r" % first
        assert d.get(path).status == 404


def test_range_requests():
    with Daemon() as d:
        data = hfs.det_bytes(1000, seed=7)
        path = "u-rg/r.bin"
        assert d.put(path, data).status == 201
        cases = [
            ("bytes=0-99", data[0:100], "bytes 0-99/1000"),
            ("bytes=100-", data[100:], "bytes 100-999/1000"),
            ("bytes=-10", data[-10:], "bytes 990-999/1000"),
            ("bytes=990-5000", data[990:], "bytes 990-999/1000"),
            ("bytes=999-999", data[999:], "bytes 999-999/1000"),
        ]
        for spec, want, cr in cases:
            r = d.get(path, ["Range: " + spec])
            assert r.status == 206, "%s: %r" % (spec, r)
            assert r.body == want, "%s: body differs" % spec
            assert r.header("Content-Range") == cr, "%s: %r" % (spec, r)
            assert r.header("Content-Length") == str(len(want)), r
        for spec in ("bytes=1000-", "bytes=5000-6000"):
            r = d.get(path, ["Range: " + spec])
            assert r.status == 416, "%s: %r" % (spec, r)
            assert r.header("Content-Range") == "bytes */1000", r
        # HEAD with a range: same status and headers, no body.
        h = d.head(path, ["Range: bytes=0-99"])
        assert h.status == 206 and h.header("Content-Length") == "100", h


def test_resume_download_with_curl():
    with Daemon() as d:
        src, digest = d.make_file(1 << 20)
        path = "u-rs/big.bin"
        assert curl("-T", src, d.put_url(path, 1 << 20)).status == 201
        out = os.path.join(d.files, "partial")
        with open(src, "rb") as f, open(out, "wb") as o:
            o.write(f.read(300000))
        r = curl("-C", "-", d.url(path), out=out)
        assert r.rc == 0 and r.status == 206, r
        assert r.header("Content-Range") == \
            "bytes 300000-1048575/1048576", r
        assert hfs.sha256_file(out) == digest


def test_if_none_match_304():
    with Daemon() as d:
        data = hfs.det_bytes(2000, seed=8)
        path = "u-inm/c.txt"
        assert d.put(path, data).status == 201
        g = d.get(path)
        etag = g.header("ETag")
        assert g.status == 200 and etag, g
        r = d.get(path, ["If-None-Match: " + etag])
        assert r.status == 304 and r.body == b"", r
        assert r.header("ETag") == etag, r
        r = d.get(path, ['If-None-Match: "not-the-etag"'])
        assert r.status == 200 and r.body == data, r
        r = d.get(path, ['If-None-Match: "x", ' + etag])
        assert r.status == 304, "etag in a list: %r" % r
        # The same bytes at another path may share the ETag, but a changed
        # file must not: a different file keeps returning 200.
        assert d.put("u-inm/other.txt", b"other").status == 201
        r = d.get("u-inm/other.txt", ["If-None-Match: " + etag])
        assert r.status == 200 and r.body == b"other", r


def test_options_cors_preflight_wildcard():
    with Daemon() as d:
        r = d.request("OPTIONS", d.target("u-cors/f.png"), [
            "Origin: https://chat.example.org",
            "Access-Control-Request-Method: PUT",
            "Access-Control-Request-Headers: content-type"])
        assert r.status == 204, r
        assert r.header("Access-Control-Allow-Origin") in (
            "*", "https://chat.example.org"), r
        methods = (r.header("Access-Control-Allow-Methods") or "").upper()
        for m in ("GET", "PUT", "HEAD"):
            assert m in methods, "%s not allowed: %r" % (m, r)
        allow_h = (r.header("Access-Control-Allow-Headers") or "").lower()
        assert "content-type" in allow_h or "*" in allow_h, r
        # CORS headers on an ordinary response with Origin.
        g = d.request("GET", "/health", ["Origin: https://chat.example.org"])
        assert g.status == 200, g
        assert g.header("Access-Control-Allow-Origin") in (
            "*", "https://chat.example.org"), g


def test_cors_restricted_origins():
    with Daemon(**{"security.cors_origins": ["https://good.example"]}) as d:
        r = d.request("OPTIONS", d.target("u-cors/f.png"), [
            "Origin: https://good.example",
            "Access-Control-Request-Method: PUT"])
        assert r.status == 204, r
        assert r.header("Access-Control-Allow-Origin") == \
            "https://good.example", r
        r = d.request("GET", "/health", ["Origin: https://evil.example"])
        assert r.status == 200, r
        acao = r.header("Access-Control-Allow-Origin")
        assert acao is None, "foreign origin allowed: %r" % r


def test_connection_close_honoured():
    with Daemon() as d:
        with d.conn() as c:
            c.send(build_request("GET", "/health", ["Connection: close"]))
            r = c.read_response("GET")
            assert r.status == 200, r
            assert (r.header("Connection") or "").lower() == "close", r
            assert c.wait_closed(3), "server kept the connection open"
        # HTTP/1.0 without keep-alive closes too.
        with d.conn() as c:
            c.send(build_request("GET", "/health", version="HTTP/1.0"))
            r = c.read_response("GET")
            assert r.status == 200 and r.body == b"ok\n", r
            assert c.wait_closed(3), "HTTP/1.0 connection left open"


def test_curl_verbose_keepalive_reuse():
    # Two URLs in one curl invocation must reuse one connection.
    with Daemon() as d:
        assert d.put("u-cv/a", b"aaa").status == 201
        p = subprocess.run(["curl", "-sv", "--noproxy", "*", d.url("u-cv/a"),
                            d.url("u-cv/a")], capture_output=True,
                           timeout=30)
        assert p.stdout == b"aaaaaa", p
        err = p.stderr.decode("utf-8", "replace")
        assert "Re-using existing connection" in err or \
            "Reusing existing" in err, err[-800:]
