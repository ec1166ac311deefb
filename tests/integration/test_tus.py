"""tus 1.0.0 against the real daemon: the protocol with curl and raw
sockets, then the stock tus-js-client from npm (tests/integration/tus/:
the driver script and the lock file; npm ci installs into build/).

The creation URL is the signed PUT URL an XMPP server hands out; the upload
resource is <prefix>.tus/<id> (docs/protocol.md, "tus 1.0")."""

import base64
import email.utils
import hashlib
import hmac
import json
import os
import re
import subprocess
import time

import hfs
from hfs import Daemon, curl

MiB = 1 << 20
TUS = ("Tus-Resumable", "1.0.0")
OCTET = ("Content-Type", "application/offset+octet-stream")
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.join(HERE, "tus")            # client.js, package*.json
NODE_DIR = os.path.join(hfs.REPO, "build", "tus-js-client")   # npm ci here


def sign_v3(path, expires, prefix="/", method="PUT", secret=hfs.SECRET):
    """v3: HEX(HMAC-SHA256(secret, METHOD \\n expires \\n prefix+path))."""
    msg = ("%s\n%d\n%s%s" % (method, expires, prefix, path)).encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def create(d, path, length, headers=(), body=b"", target=None):
    hs = [TUS, ("Upload-Length", str(length))] + list(headers)
    if body:
        hs.append(OCTET)
    return d.request("POST", target or d.put_target(path, length), hs,
                     body=body)


def patch(d, loc, offset, body, headers=(), ctype=True):
    hs = [TUS, ("Upload-Offset", str(offset))] + list(headers)
    if ctype:
        hs.append(OCTET)
    return d.request("PATCH", loc, hs, body=body, length=True)


def head(d, loc, headers=(TUS,)):
    return d.request("HEAD", loc, list(headers))


def offset_of(d, loc):
    r = head(d, loc)
    assert r.status == 200, r
    return int(r.header("Upload-Offset"))


def wait_for(what, fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def idle(d):
    """No tus request in progress: every cut connection was seen."""
    return d.metrics().get("hfs_uploads_in_progress") == 0


def b64digest(algo, data):
    return base64.b64encode(hashlib.new(algo, data).digest()).decode()


def assert_tus_error(r, status, words):
    assert r.status == status, r
    assert r.header("Tus-Resumable") == "1.0.0", r
    assert words in r.text, r


# ---------------------------------------------------------------- protocol

def test_options_discovery():
    with Daemon(**{"storage.max_upload_size": "50M"}) as d:
        for target in ("/", "/.tus/" + "0" * 32, d.put_target("u/x", 1)):
            r = d.request("OPTIONS", target)
            assert r.status == 204, r
            assert r.header("Tus-Resumable") == "1.0.0", r
            assert r.header("Tus-Version") == "1.0.0", r
            ext = set(r.header("Tus-Extension").split(","))
            assert {"creation", "creation-with-upload", "expiration",
                    "checksum", "termination",
                    "creation-defer-length", "concatenation"} <= ext, r
            assert r.header("Tus-Max-Size") == str(50 * MiB), r
            algos = set(r.header("Tus-Checksum-Algorithm").split(","))
            assert {"sha1", "sha256", "md5"} <= algos, r


def test_create_head_patch_get_with_curl():
    with Daemon() as d:
        data = hfs.det_bytes(300000, seed=11)
        path = "u-tus1/photo one.jpg"
        url = d.put_url(path, len(data))
        meta = "filename " + base64.b64encode(b"photo one.jpg").decode()
        r = curl("-X", "POST", "-H", "Tus-Resumable: 1.0.0",
                 "-H", "Upload-Length: %d" % len(data),
                 "-H", "Upload-Metadata: " + meta, url)
        assert r.rc == 0 and r.status == 201, r
        loc = r.header("Location")
        assert re.fullmatch(r"/\.tus/[0-9a-f]{32}", loc), r
        assert r.header("Tus-Resumable") == "1.0.0", r
        # Expiration: idle sessions live uploads.sessiontimeout seconds.
        exp = email.utils.parsedate_to_datetime(r.header("Upload-Expires"))
        assert abs(exp.timestamp() - time.time() - 86400) < 5, r
        res = "http://127.0.0.1:%d%s" % (d.port, loc)

        h = curl("-I", "-H", "Tus-Resumable: 1.0.0", res)
        assert h.status == 200, h
        assert h.header("Upload-Offset") == "0", h
        assert h.header("Upload-Length") == str(len(data)), h
        assert h.header("Upload-Metadata") == meta, h
        assert h.header("Cache-Control") == "no-store", h
        assert h.header("Upload-Expires"), h
        # Not published before the last byte.
        assert d.get(path).status == 404

        cuts = [0, 100000, 200001, len(data)]
        for a, b in zip(cuts, cuts[1:]):
            piece = os.path.join(d.files, "piece")
            with open(piece, "wb") as f:
                f.write(data[a:b])
            p = curl("-X", "PATCH", "-H", "Tus-Resumable: 1.0.0",
                     "-H", "Upload-Offset: %d" % a,
                     "-H", "Content-Type: application/offset+octet-stream",
                     "--data-binary", "@" + piece, res)
            assert p.status == 204, p
            assert p.header("Upload-Offset") == str(b), p
            assert p.header("Upload-Expires"), p
            assert p.header("Tus-Resumable") == "1.0.0", p
        g = d.get(path)
        assert g.status == 200 and g.body == data, g
        h = head(d, loc)
        assert h.status == 200, h
        assert h.header("Upload-Offset") == h.header("Upload-Length") \
            == str(len(data)), h


def test_chunked_patch_and_keepalive():
    with Daemon() as d:
        data = hfs.det_bytes(200000, seed=12)
        r = create(d, "u-tus2/c.bin", len(data))
        assert r.status == 201, r
        loc = r.header("Location")
        with d.conn() as c:
            # Two PATCHes on one connection, the second in chunked coding.
            c.send(hfs.build_request("PATCH", loc, [
                TUS, OCTET, ("Upload-Offset", "0")], data[:70000]))
            r1 = c.read_response("PATCH")
            assert r1.status == 204 and r1.header("Upload-Offset") == \
                "70000", r1
            c.send(hfs.build_request("PATCH", loc, [
                TUS, OCTET, ("Upload-Offset", "70000"),
                ("Transfer-Encoding", "chunked")],
                hfs.chunked([data[70000:150000], data[150000:]]),
                length=False))
            r2 = c.read_response("PATCH")
            assert r2.status == 204, r2
            assert r2.header("Upload-Offset") == str(len(data)), r2
        assert d.get("u-tus2/c.bin").body == data


def test_wrong_offset_409():
    with Daemon() as d:
        data = hfs.det_bytes(5000, seed=13)
        loc = create(d, "u-tus3/a", len(data)).header("Location")
        assert patch(d, loc, 0, data[:1000]).status == 204
        for off in (0, 999, 1001, 4000):
            r = patch(d, loc, off, data[off:off + 10])
            assert_tus_error(r, 409, "Upload-Offset")
        assert offset_of(d, loc) == 1000
        r = patch(d, loc, 1000, data[1000:])
        assert r.status == 204 and r.header("Upload-Offset") == "5000", r
        assert d.get("u-tus3/a").body == data
        # Past the end of a finished upload: still a conflict; an empty
        # PATCH at its end just reports it.
        assert patch(d, loc, 4000, b"x").status == 409
        r = patch(d, loc, 5000, b"")
        assert r.status == 204 and r.header("Upload-Offset") == "5000", r


def test_wrong_content_type_415():
    with Daemon() as d:
        loc = create(d, "u-tus4/a", 100).header("Location")
        r = patch(d, loc, 0, b"x" * 100, ctype=False)
        assert_tus_error(r, 415, "application/offset+octet-stream")
        r = patch(d, loc, 0, b"x" * 100, ctype=False,
                  headers=[("Content-Type", "application/octet-stream")])
        assert r.status == 415, r
        assert offset_of(d, loc) == 0


def test_missing_tus_resumable_412():
    with Daemon() as d:
        loc = create(d, "u-tus5/a", 10).header("Location")
        cases = [
            ("PATCH", loc, [("Upload-Offset", "0"), OCTET], b"0123456789"),
            ("HEAD", loc, [], b""),
            ("DELETE", loc, [], b""),
            ("POST", d.put_target("u-tus5/b", 10),
             [("Tus-Resumable", "1.0"), ("Upload-Length", "10")], b""),
            ("PATCH", loc, [("Tus-Resumable", "0.2.2"),
                            ("Upload-Offset", "0"), OCTET], b"0123456789"),
        ]
        for method, target, hs, body in cases:
            r = d.request(method, target, hs, body=body)
            assert r.status == 412, (method, r)
            assert r.header("Tus-Version") == "1.0.0", r
            assert r.header("Tus-Resumable") == "1.0.0", r
        assert offset_of(d, loc) == 0
        # A POST without Tus-Resumable is not a tus request at all.
        r = d.request("POST", d.put_target("u-tus5/b", 10),
                      [("Upload-Length", "10")])
        assert r.status == 405, r
        assert d.get("u-tus5/b").status == 404


def test_checksums():
    with Daemon() as d:
        data = hfs.det_bytes(30000, seed=14)
        loc = create(d, "u-tus6/a", len(data)).header("Location")
        bad = b64digest("sha1", data[:10000] + b"!")
        r = patch(d, loc, 0, data[:10000],
                  [("Upload-Checksum", "sha1 " + bad)])
        assert_tus_error(r, 460, "Checksum")
        assert offset_of(d, loc) == 0
        r = patch(d, loc, 0, data[:10000],
                  [("Upload-Checksum", "sha1 " + b64digest("sha1",
                                                           data[:10000]))])
        assert r.status == 204 and r.header("Upload-Offset") == "10000", r
        r = patch(d, loc, 10000, data[10000:20000],
                  [("Upload-Checksum", "sha256 " +
                    b64digest("sha256", data[10000:20000]))])
        assert r.status == 204 and r.header("Upload-Offset") == "20000", r
        # Unknown algorithm, malformed digest: 400, nothing stored.
        for v in ("crc99 AAAA", "sha1", "sha1 !!notbase64!!",
                  "sha1 " + b64digest("md5", data[20000:])):
            r = patch(d, loc, 20000, data[20000:], [("Upload-Checksum", v)])
            assert r.status == 400, (v, r)
        assert offset_of(d, loc) == 20000
        r = patch(d, loc, 20000, data[20000:],
                  [("Upload-Checksum", "md5 " + b64digest("md5",
                                                          data[20000:]))])
        assert r.status == 204 and r.header("Upload-Offset") == "30000", r
        assert d.get("u-tus6/a").body == data
        m = d.metrics()
        assert m.get("hfs_requests_total", method="PATCH", status="460") == 1


def test_creation_refusals():
    with Daemon(**{"storage.max_upload_size": "1M"}) as d:
        good = d.put_target("u-tus7/a", 100)
        # A MAC for another size, for another path, or none at all.
        for target in (d.put_target("u-tus7/a", 101),
                       d.put_target("u-tus7/b", 100).replace("/b?", "/a?"),
                       d.target("u-tus7/a")):
            r = create(d, "u-tus7/a", 100, target=target)
            assert_tus_error(r, 403, "")
        assert create(d, "u-tus7/big", MiB + 1).status == 413
        r = d.request("POST", good, [TUS])
        assert_tus_error(r, 400, "Upload-Length")
        r = d.request("POST", good, [TUS, ("Upload-Length", "-1")])
        assert r.status == 400, r
        r = create(d, "u-tus7/a", 100, [("Upload-Metadata", "a b c d")])
        assert r.status == 400, r
        r = create(d, "u-tus7/a", 100,
                   [("Upload-Metadata", "k " + "QUFB" * 1100)])
        assert_tus_error(r, 400, "4096")
        # v1 binds the size: a deferred length cannot be checked.
        r = d.request("POST", good, [TUS, ("Upload-Defer-Length", "1")])
        assert_tus_error(r, 400, "v3")
        # A file already there.
        assert d.put("u-tus7/exists", b"z" * 10).status == 201
        r = create(d, "u-tus7/exists", 10)
        assert_tus_error(r, 409, "exists")
        # Hostile paths never reach the signature check.
        r = d.request("POST", "/u-tus7/%2e%2e/x?v=00", [
            TUS, ("Upload-Length", "1")])
        assert r.status == 400, r
        assert hfs.regular_files(d.storage) == ["u-tus7/exists"]
        assert d.get("u-tus7/a").status == 404


def test_metadata_rules():
    """Upload-Metadata as tus 1.0.0 defines it: unique, non-empty keys
    without spaces or commas, base64 values; anything else is 400 and no
    session is made. A key without a value is allowed."""
    with Daemon() as d:
        bad = [("a YQ==,a YmI=", "repeated"),
               ("filetype dGV4dC9wbGFpbg==,filetype aW1hZ2UvcG5n",
                "repeated"),
               ("a YQ==,,b YmI=", "empty key"),
               (",a YQ==", "empty key"),
               ("a YQ==,", "empty key"),
               ("my key YQ==", "not base64"),
               ("a  YQ==", "not base64"),
               ("filename photo.jpg", "not base64"),
               ("filename cGhvdG8", "not base64"),
               ("a Y=Q=", "not base64")]
        for i, (meta, words) in enumerate(bad):
            r = create(d, "u-tusm/%d" % i, 10, [("Upload-Metadata", meta)])
            assert_tus_error(r, 400, "Upload-Metadata")
            assert words in r.text, (meta, r)
        assert not [p for p in hfs.regular_files(d.staging)
                    if "manifest" in p], hfs.regular_files(d.staging)
        # Valid forms, echoed back exactly as sent.
        good = ["filename cGhvdG8uanBn,filetype aW1hZ2UvanBlZw==",
                "private,filename cGhvdG8uanBn",
                "empty ,a YQ==",
                "a YQ==, b YmI="]
        for i, meta in enumerate(good):
            r = create(d, "u-tusm/ok%d" % i, 10, [("Upload-Metadata", meta)])
            assert r.status == 201, (meta, r)
            h = head(d, r.header("Location"))
            assert h.status == 200 and h.header("Upload-Metadata") == meta, h


def test_upload_concat_on_resource_requests_ignored():
    """Only a creation says what an upload is in a concatenation
    (test_tus_concat.py); tus-js-client sends a partial's Upload-Concat on
    its HEAD, PATCH and DELETE too, where it changes nothing."""
    with Daemon() as d:
        loc = create(d, "u-tusc/a", 10).header("Location")
        uc = ("Upload-Concat", "partial")
        r = d.request("PATCH", loc, [TUS, uc, ("Upload-Offset", "0"), OCTET],
                      body=b"01234", length=True)
        assert r.status == 204 and r.header("Upload-Offset") == "5", r
        r = head(d, loc, [TUS, uc])
        assert r.status == 200 and r.header("Upload-Concat") is None, r
        r = d.request("PATCH", loc, [TUS, ("Upload-Concat", "final;x"),
                                     ("Upload-Offset", "5"), OCTET],
                      body=b"56789", length=True)
        assert r.status == 204, r
        assert d.get("u-tusc/a").body == b"0123456789"
        loc = create(d, "u-tusc/b", 10).header("Location")
        assert d.request("DELETE", loc, [TUS, uc]).status == 204
        assert head(d, loc).status == 404

def test_terminate_and_unknown():
    with Daemon() as d:
        loc = create(d, "u-tus8/a", 1000).header("Location")
        assert patch(d, loc, 0, b"y" * 400).status == 204
        r = d.request("DELETE", loc, [TUS])
        assert r.status == 204, r
        assert r.header("Tus-Resumable") == "1.0.0", r
        assert head(d, loc).status in (404, 410)
        assert patch(d, loc, 400, b"y" * 600).status in (404, 410)
        assert d.request("DELETE", loc, [TUS]).status in (404, 410)
        for bad in ("/.tus/" + "f" * 32, "/.tus/" + "F" * 32,
                    "/.tus/xyz", "/.tus/" + "0" * 33, "/.tus/"):
            r = head(d, bad)
            assert r.status == 404, (bad, r)
            assert r.header("Tus-Resumable") == "1.0.0", r
        for method in ("GET", "PUT", "POST"):
            r = d.request(method, loc)
            assert r.status == 405 and "PATCH" in r.header("Allow"), r
        # The session directory is gone from staging.
        assert not [p for p in hfs.regular_files(d.staging)
                    if "manifest" in p], hfs.regular_files(d.staging)
        # A finished upload is not removed by DELETE.
        data = b"k" * 50
        loc = create(d, "u-tus8/b", 50, body=data).header("Location")
        r = d.request("DELETE", loc, [TUS])
        assert r.status == 409, r
        assert d.get("u-tus8/b").body == data


def test_creation_with_upload():
    with Daemon() as d:
        data = hfs.det_bytes(100000, seed=15)
        r = create(d, "u-tus9/part", len(data), body=data[:60000])
        assert r.status == 201, r
        assert r.header("Upload-Offset") == "60000", r
        loc = r.header("Location")
        assert offset_of(d, loc) == 60000
        assert patch(d, loc, 60000, data[60000:]).status == 204
        assert d.get("u-tus9/part").body == data
        # The whole file in the POST: published before the 201.
        r = create(d, "u-tus9/whole", len(data), body=data,
                   headers=[("Upload-Checksum",
                             "sha1 " + b64digest("sha1", data))])
        assert r.status == 201 and r.header("Upload-Offset") == \
            str(len(data)), r
        assert d.get("u-tus9/whole").body == data
        # A body with the wrong type, or longer than Upload-Length.
        r = d.request("POST", d.put_target("u-tus9/x", 10),
                      [TUS, ("Upload-Length", "10")], body=b"0123456789")
        assert r.status == 415, r
        r = create(d, "u-tus9/y", 10, body=b"01234567890")
        assert r.status == 413, r
        # An empty file is complete at creation.
        r = create(d, "u-tus9/empty", 0)
        assert r.status == 201 and r.header("Upload-Offset") == "0", r
        g = d.get("u-tus9/empty")
        assert g.status == 200 and g.body == b"", g


def test_defer_length_with_v3():
    with Daemon() as d:
        data = hfs.det_bytes(50000, seed=16)
        path = "u-tus10/deferred.bin"
        exp = int(time.time()) + 600
        q = "v3=%s&expires=%d" % (sign_v3(path, exp), exp)
        r = d.request("POST", d.target(path, q),
                      [TUS, ("Upload-Defer-Length", "1")])
        assert r.status == 201, r
        loc = r.header("Location")
        h = head(d, loc)
        assert h.header("Upload-Defer-Length") == "1", h
        assert h.header("Upload-Length") is None, h
        assert patch(d, loc, 0, data[:20000]).status == 204
        # The length arrives with the last PATCH; it cannot shrink below
        # what is held, nor change once set.
        r = patch(d, loc, 20000, data[20000:], [("Upload-Length", "19999")])
        assert r.status in (400, 409, 413), r
        r = patch(d, loc, 20000, data[20000:],
                  [("Upload-Length", str(len(data)))])
        assert r.status == 204 and r.header("Upload-Offset") == \
            str(len(data)), r
        assert d.get(path).body == data
        h = head(d, loc)
        assert h.header("Upload-Length") == str(len(data)), h


def test_v2_binds_filetype_metadata():
    with Daemon() as d:
        data = b"\x89PNG" + hfs.det_bytes(1000, seed=17)
        path = "u-tus11/pic.png"
        t = d.put_target(path, len(data), v=2, content_type="image/png")
        meta = [("Upload-Metadata", "filename cGljLnBuZw==,filetype " +
                 base64.b64encode(b"image/png").decode())]
        assert create(d, path, len(data), target=t).status == 403
        r = create(d, path, len(data), meta, target=t)
        assert r.status == 201, r
        assert patch(d, r.header("Location"), 0, data).status == 204
        assert d.get(path).body == data


def test_cut_patch_keeps_what_arrived():
    with Daemon() as d:
        data = hfs.det_bytes(3 * MiB, seed=18)
        loc = create(d, "u-tus12/cut", len(data)).header("Location")
        sent = 1234567
        with d.conn() as c:
            c.send(hfs.build_request("PATCH", loc, [
                TUS, OCTET, ("Upload-Offset", "0"),
                ("Content-Length", str(len(data)))]) + data[:sent])
        wait_for("the cut body's commit", lambda: offset_of(d, loc) == sent)
        # The same cut under a checksum: nothing can be verified, nothing
        # is kept.
        with d.conn() as c:
            c.send(hfs.build_request("PATCH", loc, [
                TUS, OCTET, ("Upload-Offset", str(sent)),
                ("Upload-Checksum", "sha1 " + b64digest("sha1",
                                                        data[sent:])),
                ("Content-Length", str(len(data) - sent))])
                + data[sent:sent + 500000])
        wait_for("the cut request's end", lambda: idle(d))
        assert offset_of(d, loc) == sent
        r = patch(d, loc, sent, data[sent:])
        assert r.status == 204, r
        assert d.get("u-tus12/cut").body == data
        assert d.metrics().get("hfs_uploads_in_progress") == 0


def test_resume_after_restart():
    with Daemon() as d:
        data = hfs.det_bytes(50000, seed=19)
        meta = ("Upload-Metadata", "filename cmVzdGFydC5iaW4=")
        loc = create(d, "u-tus14/restart.bin", len(data),
                     [meta]).header("Location")
        assert patch(d, loc, 0, data[:20000]).status == 204
        d.stop()
        d.start()
        h = head(d, loc)
        assert h.status == 200, h
        assert h.header("Upload-Offset") == "20000", h
        assert h.header("Upload-Length") == str(len(data)), h
        assert h.header("Upload-Metadata") == meta[1], h
        assert patch(d, loc, 20000, data[20000:]).status == 204
        assert d.get("u-tus14/restart.bin").body == data


def test_head_retries_a_failed_publication():
    with Daemon() as d:
        data = hfs.det_bytes(5000, seed=20)
        loc = create(d, "u-tus15/f", len(data)).header("Location")
        # A symlink where the directory goes: publication refuses it.
        link = os.path.join(d.storage, "u-tus15")
        os.symlink(d.files, link)
        r = patch(d, loc, 0, data)
        assert r.status == 500, r
        os.unlink(link)
        assert d.get("u-tus15/f").status == 404
        # Every byte is held: a client that asks where to resume must
        # not be told "complete" for a file that is not there.
        h = head(d, loc)
        assert h.status == 200, h
        assert h.header("Upload-Offset") == str(len(data)), h
        assert d.get("u-tus15/f").body == data


def _expires(r):
    return email.utils.parsedate_to_datetime(
        r.header("Upload-Expires")).timestamp()


def test_expired_upload_410_on_every_request():
    """Past its Upload-Expires an upload answers 410 to HEAD, PATCH and
    DELETE at once, not only once the janitor (every 30 s) has swept it,
    and it is never published; before, it works."""
    with Daemon(**{"uploads.sessiontimeout": 2}) as d:
        data = hfs.det_bytes(10, seed=22)
        a = create(d, "u-tusx/a", 10).header("Location")
        b = create(d, "u-tusx/b", 10).header("Location")
        r = patch(d, a, 0, data[:4])
        assert r.status == 204, r
        # Alive until its Upload-Expires (at least 1 s from its PATCH).
        h = head(d, a)
        assert h.status == 200 and h.header("Upload-Offset") == "4", h
        expires = max(_expires(r), _expires(h), _expires(head(d, b)))
        assert expires - time.time() <= 2.5, r
        # An upload whose every byte is held but whose publication failed:
        # HEAD would publish it, but not once it has expired. Its last
        # activity is the failed publication.
        c = create(d, "u-tusx2/c", 10).header("Location")
        link = os.path.join(d.storage, "u-tusx2")
        os.symlink(d.files, link)
        assert patch(d, c, 0, data).status == 500
        expires = max(expires, time.time() + 2)
        os.unlink(link)
        wait_for("Upload-Expires", lambda: time.time() > expires + 0.05)
        for loc in (a, b, c):
            r = head(d, loc)
            assert_tus_error(r, 410, "")
        r = patch(d, a, 4, data[4:])
        assert_tus_error(r, 410, "expired")
        r = patch(d, c, 10, b"")
        assert_tus_error(r, 410, "expired")
        r = d.request("POST", a, [TUS, OCTET, ("Upload-Offset", "4"),
                                  ("X-HTTP-Method-Override", "PATCH")],
                      body=data[4:])
        assert_tus_error(r, 410, "expired")
        r = d.request("DELETE", b, [TUS])
        assert_tus_error(r, 410, "expired")
        for path in ("u-tusx/a", "u-tusx2/c"):
            assert d.get(path).status == 404, path
        assert hfs.regular_files(d.storage) == [], \
            hfs.regular_files(d.storage)


def test_method_override_and_cors():
    with Daemon() as d:
        loc = create(d, "u-tus13/a", 4).header("Location")
        r = d.request("POST", loc, [TUS, OCTET, ("Upload-Offset", "0"),
                                    ("X-HTTP-Method-Override", "PATCH")],
                      body=b"abcd")
        assert r.status == 204 and r.header("Upload-Offset") == "4", r
        assert d.get("u-tus13/a").body == b"abcd"
        r = head(d, loc, [TUS, ("Origin", "https://chat.example")])
        assert r.header("Access-Control-Allow-Origin") == "*", r
        assert "Upload-Offset" in r.header("Access-Control-Expose-Headers")


# ---------------------------------------------------------------- tus-js-client

def _node_client():
    """node, with the locked tus-js-client installed under build/."""
    return hfs.node_with(CLIENT_DIR, NODE_DIR, "tus-js-client")


def _run_client(node, d, job):
    jpath = os.path.join(d.files, "job-%d.json" % time.monotonic_ns())
    with open(jpath, "w") as f:
        json.dump(job, f)
    p = subprocess.run([node, os.path.join(CLIENT_DIR, "client.js"), jpath],
                       capture_output=True, timeout=120,
                       env=dict({k: v for k, v in os.environ.items()
                                 if "proxy" not in k.lower()},
                                NODE_PATH=os.path.join(NODE_DIR,
                                                       "node_modules")))
    out = p.stdout.decode().strip().splitlines()
    assert out, "client printed nothing (rc %d):\n%s" % (
        p.returncode, p.stderr.decode()[-2000:])
    return json.loads(out[-1])


def _get_sha256(d, path):
    out = os.path.join(d.files, "got")
    g = curl(d.url(path), out=out)
    assert g.status == 200, g
    digest = hfs.sha256_file(out)
    os.unlink(out)
    return digest


@hfs.timeout(90)
def test_tus_js_client_uploads():
    node = _node_client()
    with Daemon() as d:
        files = []
        for i, (size, source, chunk, extra) in enumerate([
                (1000, "buffer", None, {}),
                (5 * MiB, "stream", None, {}),
                (20 * MiB, "stream", MiB, {}),
                (300000, "buffer", 65536,
                 {"uploadDataDuringCreation": True})]):
            src, digest = d.make_file(size)
            path = "u-js-%d/file %d.bin" % (i, i)
            up = {"endpoint": d.put_url(path, size), "file": src,
                  "source": source, "chunkSize": chunk,
                  "metadata": {"filename": "file %d.bin" % i,
                               "filetype": "application/octet-stream"}}
            up.update(extra)
            files.append((path, size, digest, up))
        exp = int(time.time()) + 600
        src, digest = d.make_file(123457)
        path = "u-js-deferred/d.bin"
        q = "v3=%s&expires=%d" % (sign_v3(path, exp), exp)
        files.append((path, 123457, digest, {
            "endpoint": d.url(path, q), "file": src, "source": "buffer",
            "chunkSize": 50000, "uploadLengthDeferred": True}))
        res = _run_client(node, d, {"mode": "upload",
                                    "uploads": [f[3] for f in files]})
        assert len(res) == len(files), res
        for (path, size, digest, up), r in zip(files, res):
            assert r["ok"], (path, r)
            assert re.search(r"/\.tus/[0-9a-f]{32}$", r["url"]), r
            assert _get_sha256(d, path) == digest, path
            patches = [q for q in r["requests"] if q[0] == "PATCH"]
            assert all(q[2] == 204 for q in patches), r["requests"]
            if up.get("chunkSize") == MiB:
                assert len(patches) == 20, r["requests"]
        assert d.metrics().get("hfs_uploads_in_progress") == 0


@hfs.timeout(90)
def test_tus_js_client_abort_and_resume():
    node = _node_client()
    with Daemon() as d:
        size, chunk = 20 * MiB, 4 * MiB
        src, digest = d.make_file(size)
        path = "u-js-resume/big.bin"
        up = {"endpoint": d.put_url(path, size), "file": src,
              "source": "stream", "chunkSize": chunk,
              "bytesPerSecond": 16 * MiB,
              "storage": os.path.join(d.files, "tus-urls.json"),
              "metadata": {"filename": "big.bin"}}
        r = _run_client(node, d, {"mode": "abort", "upload": up,
                                  "abortAfter": int(6.5 * MiB)})[0]
        assert r["error"] == "aborted", r
        cut = r["requests"][-1]
        assert cut[0] == "PATCH" and cut[2] is None, r["requests"]
        cut_at = int(cut[1])
        loc = "/" + r["url"].split("/", 3)[3]
        # The cut PATCH keeps what arrived, once the server has seen the
        # connection go and committed it (more than 6.5 MiB were sent).
        wait_for("the cut PATCH's commit",
                 lambda: idle(d) and offset_of(d, loc) > cut_at)
        held = offset_of(d, loc)
        assert cut_at < held < cut_at + chunk, (held, r["requests"])
        assert d.get(path).status == 404
        rx0 = d.metrics().get("hfs_bytes_received_total")

        up.update(chunkSize=MiB, bytesPerSecond=None)
        r = _run_client(node, d, {"mode": "resume", "upload": up})[0]
        assert r["ok"], r
        reqs = r["requests"]
        assert reqs[0][0] == "HEAD" and reqs[0][3] == str(held), reqs
        assert "POST" not in [q[0] for q in reqs], reqs
        first = [q for q in reqs if q[0] == "PATCH"][0]
        assert first[1] == str(held), reqs
        rx = d.metrics().get("hfs_bytes_received_total") - rx0
        assert rx == size - held, (rx, size, held)
        assert _get_sha256(d, path) == digest
