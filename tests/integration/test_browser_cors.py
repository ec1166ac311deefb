"""CORS as a real browser enforces it: headless Chromium (Debian's
/usr/bin/chromium, driven by playwright-core from npm, see browser/) loads a
page from one loopback origin and fetch()es the daemon on another, so the
browser sends its own preflights and blocks whatever the daemon does not
allow or expose. curl cannot show that: it ignores CORS.

The page does what a browser upload client does: tus creation, PATCH
through POST + X-HTTP-Method-Override (for stacks that cannot send PATCH),
status, real PATCH, errors whose headers and text it must read, the
chunked protocol, and a ranged GET. A page on an origin not in
security.cors_origins is refused, which shows the test can see a block."""

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import time

import hfs
from hfs import Daemon

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER_DIR = os.path.join(HERE, "browser")      # cors.js, package*.json
NODE_DIR = os.path.join(hfs.REPO, "build", "browser-cors")   # npm ci here
CHROMIUM = "/usr/bin/chromium"
TUS = "1.0.0"
OCTET = "application/offset+octet-stream"


def _node():
    """node, with the locked playwright-core installed under build/."""
    if not os.access(CHROMIUM, os.X_OK):
        raise hfs.Skip("no %s (.ci/deps.sh installs it)" % CHROMIUM)
    return hfs.node_with(DRIVER_DIR, NODE_DIR, "playwright-core")


class PageServer(hfs.StaticServer):
    """The page's origin: a static server on another loopback port."""

    def __init__(self, root):
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("<!doctype html><title>upload page</title>\n")
        super().__init__(root)


def _drive(node, d, pages):
    jpath = os.path.join(d.files, "job-%d.json" % time.monotonic_ns())
    with open(jpath, "w") as f:
        json.dump({"chromium": CHROMIUM, "pages": pages}, f)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NODE_PATH"] = os.path.join(NODE_DIR, "node_modules")
    p = subprocess.run([node, os.path.join(DRIVER_DIR, "cors.js"), jpath],
                       capture_output=True, timeout=120, env=env)
    out = p.stdout.decode().strip().splitlines()
    assert out, "driver printed nothing (rc %d):\n%s" % (
        p.returncode, p.stderr.decode()[-2000:])
    res = json.loads(out[-1])
    if "launch_error" in res:
        raise hfs.Skip("chromium cannot start: " + res["launch_error"][:300])
    assert "pages" in res, res
    return res["pages"]


def _steps(d, sha):
    tus = {"Tus-Resumable": TUS}
    meta = "filename YS50eHQ=,filetype dGV4dC9wbGFpbg=="
    hello = base64.b64encode(hashlib.sha1(b"hello").digest()).decode()
    return [
        {"name": "create", "method": "POST", "url": d.put_url("u-cors/a", 10),
         "headers": dict(tus, **{"Upload-Length": "10",
                                 "Upload-Metadata": meta}),
         "read": ["Location", "Upload-Offset", "Upload-Expires",
                  "Tus-Resumable"],
         "save": {"loc": "Location"}},
        {"name": "override-patch", "method": "POST", "url": "$loc",
         "headers": dict(tus, **{"X-HTTP-Method-Override": "PATCH",
                                 "Upload-Offset": "0", "Content-Type": OCTET,
                                 "Upload-Checksum": "sha1 " + hello}),
         "body": "hello", "read": ["Upload-Offset", "Upload-Expires"]},
        {"name": "status", "method": "HEAD", "url": "$loc", "headers": tus,
         "read": ["Upload-Offset", "Upload-Length", "Upload-Metadata",
                  "Upload-Expires", "Tus-Resumable"]},
        {"name": "wrong-offset", "method": "PATCH", "url": "$loc",
         "headers": dict(tus, **{"Upload-Offset": "3",
                                 "Content-Type": OCTET}),
         "body": "lo", "read": ["Tus-Resumable", "Content-Type"]},
        {"name": "wrong-version", "method": "PATCH", "url": "$loc",
         "headers": {"Tus-Resumable": "0.2.2", "Upload-Offset": "5",
                     "Content-Type": OCTET},
         "body": "world", "read": ["Tus-Version", "Tus-Resumable"]},
        {"name": "patch", "method": "PATCH", "url": "$loc",
         "headers": dict(tus, **{"Upload-Offset": "5", "Content-Type": OCTET}),
         "body": "world", "read": ["Upload-Offset"]},
        {"name": "ranged-get", "method": "GET", "url": d.url("u-cors/a"),
         "headers": {"Range": "bytes=0-4", "If-None-Match": '"nope"'},
         "read": ["Content-Range", "ETag", "Accept-Ranges"]},
        {"name": "chunk", "method": "PUT", "url": d.put_url("u-cors/b", 10),
         "headers": {"X-Upload-Session-ID": "cors-1",
                     "Content-Range": "bytes 0-4/10", "X-Chunk-Number": "0",
                     "X-Total-Chunks": "2", "X-Total-Size": "10",
                     "X-Content-SHA256": sha},
         "body": "01234", "read": ["Upload-Offset", "X-Upload-Ranges"]},
        {"name": "chunk-status", "method": "HEAD",
         "url": d.put_url("u-cors/b", 10),
         "headers": {"X-Upload-Session-ID": "cors-1"},
         "read": ["Upload-Offset", "Upload-Length", "X-Upload-Ranges"]},
        {"name": "create2", "method": "POST", "url": d.put_url("u-cors/c", 4),
         "headers": dict(tus, **{"Upload-Length": "4"}),
         "save": {"loc2": "Location"}},
        {"name": "override-delete", "method": "POST", "url": "$loc2",
         "headers": dict(tus, **{"X-HTTP-Method-Override": "DELETE"}),
         "read": ["Tus-Resumable"]},
        {"name": "gone", "method": "HEAD", "url": "$loc2", "headers": tus,
         "read": ["Tus-Resumable"]},
    ]


@hfs.timeout(180)
def test_browser_preflight_and_exposed_headers():
    node = _node()
    root = os.path.join(hfs.REPO, "build", "browser-cors-page-%d" % os.getpid())
    os.makedirs(root, exist_ok=True)
    try:
        with PageServer(root) as page:
            origin = "http://127.0.0.1:%d" % page.port
            with Daemon(**{"security.cors_origins": [origin],
                           # the page sends 2 numbered chunks of 5 bytes
                           "uploads.chunksize": 5}) as d:
                _check(node, d, page, origin)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _check(node, d, page, origin):
    sha = hashlib.sha256(b"0123456789").hexdigest()
    base = "http://127.0.0.1:%d/" % d.port
    steps = _steps(d, sha)
    # localhost is another origin than 127.0.0.1: not in cors_origins.
    other = [{"name": "foreign-create", "method": "POST",
              "url": d.put_url("u-cors/x", 10),
              "headers": {"Tus-Resumable": TUS, "Upload-Length": "10"}}]
    good, bad = _drive(node, d, [
        {"url": origin + "/index.html", "base": base, "steps": steps},
        {"url": "http://localhost:%d/index.html" % page.port, "base": base,
         "steps": other}])
    r = {s["name"]: s for s in good}
    blocked = [(s["name"], s["error"]) for s in good if s["error"]]
    assert not blocked, "the browser blocked: %r" % blocked

    c = r["create"]
    assert c["status"] == 201, c
    assert c["headers"]["Location"].startswith("/.tus/"), c
    assert c["headers"]["Upload-Offset"] == "0", c
    assert c["headers"]["Upload-Expires"], c
    assert c["headers"]["Tus-Resumable"] == TUS, c
    o = r["override-patch"]
    assert o["status"] == 204 and o["headers"]["Upload-Offset"] == "5", o
    assert o["headers"]["Upload-Expires"], o
    s = r["status"]
    assert s["status"] == 200, s
    assert s["headers"]["Upload-Offset"] == "5", s
    assert s["headers"]["Upload-Length"] == "10", s
    assert s["headers"]["Upload-Metadata"] == \
        "filename YS50eHQ=,filetype dGV4dC9wbGFpbg==", s
    # Errors: the page reads their status, headers and reason.
    w = r["wrong-offset"]
    assert w["status"] == 409 and "Upload-Offset" in w["text"], w
    assert w["headers"]["Tus-Resumable"] == TUS, w
    assert w["headers"]["Content-Type"].startswith("text/plain"), w
    v = r["wrong-version"]
    assert v["status"] == 412 and v["headers"]["Tus-Version"] == TUS, v
    p = r["patch"]
    assert p["status"] == 204 and p["headers"]["Upload-Offset"] == "10", p
    g = r["ranged-get"]
    assert g["status"] == 206 and g["text"] == "hello", g
    assert g["headers"]["Content-Range"] == "bytes 0-4/10", g
    assert g["headers"]["ETag"] and g["headers"]["Accept-Ranges"], g
    k = r["chunk"]
    assert k["status"] == 200, k
    assert k["headers"]["Upload-Offset"] == "5", k
    assert k["headers"]["X-Upload-Ranges"] == "0-4", k
    ks = r["chunk-status"]
    assert ks["status"] == 200 and ks["headers"]["X-Upload-Ranges"] == \
        "0-4" and ks["headers"]["Upload-Length"] == "10", ks
    assert r["create2"]["status"] == 201, r["create2"]
    assert r["override-delete"]["status"] == 204, r["override-delete"]
    gone = r["gone"]
    assert gone["status"] == 404 and gone["headers"]["Tus-Resumable"] == \
        TUS, gone
    assert d.get("u-cors/a").body == b"helloworld"
    # The browser did preflight (tus headers are not safelisted).
    m = d.metrics()
    assert m.get("hfs_requests_total", method="OPTIONS") >= 3, m
    # And it blocks an origin the daemon does not list: the test would
    # see a block.
    assert len(bad) == 1 and bad[0]["error"] and bad[0]["status"] is None, \
        bad
    assert d.get("u-cors/x").status == 404


# Headers a page cannot set (the browser does) or that are not a request's.
# Referer and User-Agent are only written to the access log, as the browser
# sent them.
FORBIDDEN = {"content-length", "transfer-encoding", "expect", "origin",
             "host", "referer", "user-agent"}
# Response headers a page may read without exposure, or that are the
# browser's business.
SAFELISTED = {"cache-control", "content-language", "content-length",
              "content-type", "expires", "last-modified", "pragma", "date",
              "server", "connection", "vary", "x-content-type-options",
              "content-security-policy"}


def _code_headers(pattern):
    names = set()
    for top in ("worker", "lib"):
        for dirpath, _, files in os.walk(os.path.join(hfs.REPO, top)):
            for f in files:
                if f.endswith(".c"):
                    with open(os.path.join(dirpath, f)) as fh:
                        names |= set(re.findall(pattern, fh.read()))
    return {n.lower() for n in names}


def _list(value):
    return {h.strip().lower() for h in (value or "").split(",") if h.strip()}


def test_lists_cover_every_header_the_code_uses():
    """The preflight allows every request header the code reads
    (http_header_get), and every answer exposes every non-safelisted
    response header it writes (http_head_add): a header added to a
    protocol without adding it to worker/cors.h fails here."""
    read = _code_headers(r'http_header_get\([^,]+,\s*"([^"]+)"') - FORBIDDEN
    written = _code_headers(r'http_head_add\([^,]+,\s*"([^"]+)"')
    written = {h for h in written if not h.startswith("access-control-")}
    assert {"x-http-method-override", "upload-offset", "tus-resumable",
            "x-upload-session-id"} <= read, read
    with Daemon(**{"security.cors_origins": ["https://chat.example"]}) as d:
        r = d.request("OPTIONS", "/", [("Origin", "https://chat.example"),
                                       ("Access-Control-Request-Method",
                                        "PATCH")])
        assert r.status == 204, r
        assert r.header("Access-Control-Allow-Origin") == \
            "https://chat.example", r
        allowed = _list(r.header("Access-Control-Allow-Headers"))
        assert read <= allowed, sorted(read - allowed)
        assert "patch" in _list(r.header("Access-Control-Allow-Methods"))
        # An error answer carries them too.
        r = d.request("PATCH", "/.tus/" + "0" * 32,
                      [("Origin", "https://chat.example"),
                       ("Tus-Resumable", "1.0.0"), ("Upload-Offset", "0")])
        assert r.status in (404, 415), r
        assert r.header("Access-Control-Allow-Origin") == \
            "https://chat.example", r
        exposed = _list(r.header("Access-Control-Expose-Headers"))
        assert written - SAFELISTED <= exposed, \
            sorted(written - SAFELISTED - exposed)
        # An origin not listed gets no CORS answer at all.
        r = d.request("OPTIONS", "/", [("Origin", "https://evil.example")])
        assert r.header("Access-Control-Allow-Origin") is None, r
