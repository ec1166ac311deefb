"""The IETF resumable-upload draft (draft-ietf-httpbis-resumable-upload)
against the real daemon: a conformance script for the newest draft's
requests over raw sockets (so the 104 interim answers are seen byte for
byte) and curl, the older interop versions deployed clients send, the stock
tus-js-client from npm in its 'ietf-draft-03' and 'ietf-draft-05' modes
(tests/integration/tus/, shared with test_tus.py), and a worker killed with
SIGKILL mid-upload.

The creation URL is the signed PUT URL an XMPP server hands out; the upload
resource is <prefix>.ietf/<id> (docs/protocol.md, "IETF resumable
uploads")."""

import json
import os
import re
import signal
import time

import hfs
from hfs import Daemon, curl
import test_tus

MiB = 1 << 20
LATEST = 8
PARTIAL = ("Content-Type", "application/partial-upload")
PROBLEMS = "https://iana.org/assignments/http-problem-types#"


def iv(v=LATEST):
    return ("Upload-Draft-Interop-Version", str(v))


def done(flag):
    return ("Upload-Complete", "?1" if flag else "?0")


def create(d, path, length=None, body=b"", complete=False, v=LATEST,
           method="POST", headers=()):
    """Creation on a fresh connection: (104 interim answers, final)."""
    hs = [iv(v), done(complete)] + list(headers)
    if length is not None:
        hs.append(("Upload-Length", str(length)))
    size = length if length is not None else len(body)
    r = d.request(method, d.put_target(path, size), hs, body=body,
                  length=True)
    return r.interim, r


def append(d, loc, offset, body, complete, v=LATEST, headers=(),
           ctype=True):
    hs = [iv(v), ("Upload-Offset", str(offset)), done(complete)]
    if ctype:
        hs.append(PARTIAL)
    return d.request("PATCH", loc, hs + list(headers), body=body,
                     length=True)


def head(d, loc, v=LATEST):
    return d.request("HEAD", loc, [iv(v)])


def offset_of(d, loc):
    r = head(d, loc)
    assert r.status == 204, r
    return int(r.header("Upload-Offset"))


def problem(r, kind):
    assert r.header("Content-Type") == "application/problem+json", r
    doc = json.loads(r.body)
    assert doc["type"] == PROBLEMS + kind, doc
    return doc


def idle(d):
    return d.metrics().get("hfs_uploads_in_progress") == 0


def check_104(interim, loc, v=LATEST):
    assert [i.status for i in interim] == [104], interim
    assert interim[0].header("Location") == loc, interim
    assert interim[0].header("Upload-Draft-Interop-Version") == str(v)


def test_ietf_conformance_latest():
    """Every request of the newest draft, in the order a client sends them:
    discovery, careful creation, offset retrieval, appends with the errors
    the draft names, completion, cancellation."""
    with Daemon(**{"storage.max_upload_size": "50M"}) as d:
        r = d.request("OPTIONS", d.put_target("u-ietf1/a.bin", 10))
        assert r.status == 204, r
        assert r.header("Upload-Limit") == "max-size=%d" % (50 * MiB), r

        data = hfs.det_bytes(300000, seed=31)
        path = "u-ietf1/a.bin"
        interim, r = create(d, path, len(data))
        assert r.status == 201, r
        loc = r.header("Location")
        assert re.fullmatch(r"/\.ietf/[0-9a-f]{32}", loc), r
        check_104(interim, loc)
        assert "max-size=%d" % (50 * MiB) in interim[0].header("Upload-Limit")
        assert r.header("Upload-Offset") == "0", r
        assert r.header("Upload-Complete") == "?0", r
        assert r.header("Upload-Draft-Interop-Version") == str(LATEST), r

        h = head(d, loc)
        assert h.status == 204, h
        assert h.header("Upload-Offset") == "0", h
        assert h.header("Upload-Complete") == "?0", h
        assert h.header("Upload-Length") == str(len(data)), h
        assert h.header("Cache-Control") == "no-store", h
        assert re.fullmatch(r"max-size=\d+, max-age=\d+",
                            h.header("Upload-Limit")), h
        g = d.request("GET", loc, [iv()])        # the editor's copy allows it
        assert g.status == 204 and g.header("Upload-Offset") == "0", g
        assert d.request("PUT", loc, [iv(), done(True)],
                         body=b"x").status == 405

        # Mismatching offset: 409, the problem type, and where to resume.
        r = append(d, loc, 5, data[5:10], False)
        assert r.status == 409, r
        assert r.header("Upload-Offset") == "0", r
        assert r.header("Upload-Complete") == "?0", r
        doc = problem(r, "mismatching-upload-offset")
        assert doc["expected-offset"] == 0 and doc["provided-offset"] == 5
        # The media type is mandatory from interop 6 on.
        r = append(d, loc, 0, data[:10], False, ctype=False)
        assert r.status == 415 and "partial-upload" in r.text, r

        r = append(d, loc, 0, data[:100000], False)
        assert r.status == 204, r
        assert r.header("Upload-Offset") == "100000", r
        assert r.header("Upload-Complete") == "?0", r
        # Inconsistent length: a complete request must end at the length.
        r = append(d, loc, 100000, data[100000:200000], True)
        assert r.status == 400, r
        problem(r, "inconsistent-upload-length")
        r = append(d, loc, 100000, data[100000:200000], False,
                   headers=[("Upload-Length", "5")])
        assert r.status == 400, r
        problem(r, "inconsistent-upload-length")
        assert offset_of(d, loc) == 100000
        assert d.get(path).status == 404         # nothing before complete

        r = append(d, loc, 100000, data[100000:], True)
        assert r.status == 201, r
        assert r.header("Upload-Complete") == "?1", r
        assert r.header("Upload-Offset") == str(len(data)), r
        assert d.get(path).body == data
        h = head(d, loc)
        assert h.header("Upload-Complete") == "?1", h
        assert h.header("Upload-Offset") == str(len(data)), h
        # Completed upload: appends are refused with the draft's type.
        r = append(d, loc, len(data), b"x", True)
        assert r.status == 400, r
        problem(r, "completed-upload")

        # Over the limit: 413 naming it.
        r = d.request("POST", d.put_target("u-ietf1/big", 60 * MiB),
                      [iv(), done(False), ("Upload-Length", str(60 * MiB))])
        assert r.status == 413, r
        assert r.header("Upload-Limit") == "max-size=%d" % (50 * MiB), r
        # Cancellation.
        _, r = create(d, "u-ietf1/gone.bin", 1000)
        gone = r.header("Location")
        assert append(d, gone, 0, b"g" * 10, False).status == 204
        r = d.request("DELETE", gone, [iv()])
        assert r.status == 204, r
        assert head(d, gone).status in (404, 410)
        assert append(d, gone, 10, b"g", False).status in (404, 410)
        assert d.get("u-ietf1/gone.bin").status == 404
        assert hfs.regular_files(d.staging) == [], \
            hfs.regular_files(d.staging)


def test_ietf_optimistic_creation_with_curl():
    """What URLSession does: the whole file in one PUT with Upload-Complete:
    ?1. curl shows the 104 before the final answer."""
    with Daemon() as d:
        src, digest = d.make_file(2 * MiB)
        path = "u-ietf2/photo.jpg"
        r = curl("-X", "PUT", "-H", "Upload-Draft-Interop-Version: 6",
                 "-H", "Upload-Complete: ?1", "-H", "Content-Type: image/jpeg",
                 "-H", "Expect:", "--data-binary", "@" + src,
                 d.put_url(path, 2 * MiB))
        assert r.rc == 0 and r.status == 201, r
        assert [b.status for b in r.blocks] == [104, 201], r.blocks
        loc = r.blocks[0].header("Location")
        assert re.fullmatch(r"/\.ietf/[0-9a-f]{32}", loc), r.blocks[0]
        assert r.header("Location") == loc, r
        assert r.header("Upload-Complete") == "?1", r
        assert test_tus._get_sha256(d, path) == digest
        # Expect: 100-continue still gets its 100, then the 104.
        r = curl("-X", "POST", "-H", "Upload-Draft-Interop-Version: 8",
                 "-H", "Upload-Complete: ?1", "-H", "Expect: 100-continue",
                 "--data-binary", "@" + src, d.put_url("u-ietf2/b", 2 * MiB))
        assert r.status == 201, r
        assert [b.status for b in r.blocks] == [100, 104, 201], r.blocks


def test_ietf_interrupted_creation_resumes_from_head():
    """A creation cut mid-body keeps the bytes it delivered; the client,
    which has the upload's URL from the 104, asks HEAD for the offset and
    appends the rest."""
    with Daemon() as d:
        data = hfs.det_bytes(3 * MiB, seed=32)
        path = "u-ietf3/cut.bin"
        sent = 1234567
        with d.conn() as c:
            c.send(hfs.build_request("PUT", d.put_target(path, len(data)), [
                iv(), done(True), ("Content-Length", str(len(data)))]))
            i = c.read_response("PUT", interim=True)
            assert i.status == 104, i
            loc = i.header("Location")
            c.send(data[:sent])
        test_tus.wait_for("the cut creation's commit",
                          lambda: idle(d) and offset_of(d, loc) == sent)
        h = head(d, loc)
        assert h.header("Upload-Complete") == "?0", h
        assert h.header("Upload-Length") == str(len(data)), h
        assert d.get(path).status == 404
        r = append(d, loc, sent, data[sent:], True)
        assert r.status == 201, r
        assert d.get(path).body == data


def test_ietf_interop_versions():
    """Each interop version deployed clients send, with its own spelling;
    unknown versions are refused naming the served ones."""
    with Daemon() as d:
        # Interop 3 (draft -01, iOS 17): Upload-Incomplete, the inverse.
        data = hfs.det_bytes(5000, seed=33)
        r = d.request("POST", d.put_target("u-ietf4/v3.bin", len(data)),
                      [iv(3), ("Upload-Incomplete", "?1"),
                       ("Upload-Length", str(len(data)))], body=data[:2000])
        assert r.status == 201, r
        check_104(r.interim, r.header("Location"), 3)
        assert r.interim[0].header("Upload-Limit") is None, r.interim
        assert r.header("Upload-Incomplete") == "?1", r
        assert r.header("Upload-Complete") is None, r
        loc = r.header("Location")
        h = head(d, loc, 3)
        assert h.header("Upload-Incomplete") == "?1", h
        assert h.header("Upload-Offset") == "2000", h
        r = d.request("PATCH", loc, [iv(3), ("Upload-Offset", "2000"),
                                     ("Upload-Incomplete", "?0")],
                      body=data[2000:])
        assert r.status == 201 and r.header("Upload-Incomplete") == "?0", r
        assert d.get("u-ietf4/v3.bin").body == data
        # Interop 5: no partial-upload type needed, plain-text errors.
        _, r = create(d, "u-ietf4/v5.bin", 10, v=5)
        loc5 = r.header("Location")
        r = append(d, loc5, 3, b"abc", False, v=5, ctype=False)
        assert r.status == 409 and r.header("Upload-Offset") == "0", r
        assert r.header("Content-Type").startswith("text/plain"), r
        assert append(d, loc5, 0, b"0123456789", True, v=5,
                      ctype=False).status == 201
        # Version 6 has no inconsistent-length type yet: text.
        _, r = create(d, "u-ietf4/v6.bin", 10, v=6)
        r = append(d, r.header("Location"), 0, b"abc", True, v=6)
        assert r.status == 400 and "length" in r.text, r
        assert r.header("Content-Type").startswith("text/plain"), r
        for bad, words in (("99", "99 is not supported"),
                           ("2", "2 is not supported"),
                           ("x", "is required")):
            r = d.request("POST", d.put_target("u-ietf4/bad", 1),
                          [("Upload-Draft-Interop-Version", bad), done(True)],
                          body=b"x")
            assert r.status == 400, r
            assert words in r.text and "3, 4, 5, 6, 7, 8" in r.text, r
            assert r.interim == [], r
        r = d.request("PUT", d.put_target("u-ietf4/bad", 1), [done(True)],
                      body=b"x")
        assert r.status == 400 and "is required" in r.text, r
        assert head(d, loc5, 99).status == 400
        # A creation needs the completion flag of its version.
        r = d.request("POST", d.put_target("u-ietf4/bad", 1), [iv()],
                      body=b"x")
        assert r.status == 400 and "Upload-Complete" in r.text, r
        r = d.request("POST", d.put_target("u-ietf4/bad", 1),
                      [iv(3), done(True)], body=b"x")
        assert r.status == 400 and "Upload-Incomplete" in r.text, r
        # The signature still rules creation; the resource needs no URL
        # signature but an id nobody can guess.
        r = d.request("POST", "/u-ietf4/bad?v=00", [iv(), done(True)],
                      body=b"x")
        assert r.status == 403, r
        assert head(d, "/.ietf/" + "0" * 32).status == 404
        assert head(d, "/.ietf/nope").status == 404
        assert hfs.regular_files(d.storage) == sorted(
            ["u-ietf4/v3.bin", "u-ietf4/v5.bin"]), \
            hfs.regular_files(d.storage)


def test_ietf_resume_after_restart():
    """The upload resource survives a daemon restart (manifest recovery),
    like tus and chunked uploads."""
    with Daemon() as d:
        data = hfs.det_bytes(50000, seed=34)
        _, r = create(d, "u-ietf5/restart.bin", len(data),
                      body=data[:20000], headers=[PARTIAL])
        assert r.status == 201 and r.header("Upload-Offset") == "20000", r
        loc = r.header("Location")
        d.stop()
        d.start()
        assert offset_of(d, loc) == 20000
        assert append(d, loc, 20000, data[20000:], True).status == 201
        assert d.get("u-ietf5/restart.bin").body == data


@hfs.timeout(60)
def test_ietf_worker_killed_mid_upload():
    """SIGKILL of the worker writing an append: the replacement worker and
    the shared table know what was made durable (checkpoints every 8 MiB);
    the client resumes from HEAD's offset and the file is whole."""
    with Daemon(**{"server.workers": 2}) as d:
        d.wait_workers(2)
        data = hfs.det_bytes(24 * MiB, seed=35)
        path = "u-ietf6/kill.bin"
        _, r = create(d, path, len(data))
        loc = r.header("Location")
        c = d.conn()
        c.send(hfs.build_request("PATCH", loc, [
            iv(), ("Upload-Offset", "0"), done(True), PARTIAL,
            ("Content-Length", str(len(data)))]))
        sent = 12 * MiB
        for off in range(0, sent, MiB):
            c.send(data[off:off + MiB])
        victim = d.conn_owner(c)
        assert victim is not None
        # The first 8 MiB checkpoint is durable before the kill.
        test_tus.wait_for("a checkpoint", lambda: offset_of(d, loc) >= 8 * MiB)
        os.kill(victim, signal.SIGKILL)
        c.close()
        d.wait_workers(2, exclude=[victim])
        assert d.get(path).status == 404
        deadline = time.monotonic() + 10
        while True:
            r = head(d, loc)
            if r.status == 204:
                break
            assert time.monotonic() < deadline, r
            time.sleep(0.1)
        held = int(r.header("Upload-Offset"))
        assert 8 * MiB <= held <= sent, held
        assert r.header("Upload-Complete") == "?0", r
        for _ in range(50):
            r = append(d, loc, held, data[held:], True)
            if r.status != 503:
                break
            time.sleep(0.1)
        assert r.status == 201, r
        assert d.get(path).body == data


def _client_job(d, path, size, src, protocol, **extra):
    up = {"endpoint": d.put_url(path, size), "file": src, "source": "stream",
          "protocol": protocol, "metadata": {"filename": "f.bin"}}
    up.update(extra)
    return up


@hfs.timeout(120)
def test_ietf_tus_js_client_uploads():
    node = test_tus._node_client()
    with Daemon() as d:
        files = []
        for protocol in ("ietf-draft-03", "ietf-draft-05"):
            for i, (size, chunk, extra) in enumerate([
                    (1000, None, {}),
                    (5 * MiB, MiB, {}),
                    (300000, 65536, {"uploadDataDuringCreation": True})]):
                src, digest = d.make_file(size)
                path = "u-ietf-js/%s-%d.bin" % (protocol, i)
                files.append((path, digest, _client_job(
                    d, path, size, src, protocol, chunkSize=chunk, **extra)))
        res = test_tus._run_client(node, d, {
            "mode": "upload", "uploads": [f[2] for f in files]})
        assert len(res) == len(files), res
        for (path, digest, up), r in zip(files, res):
            assert r["ok"], (path, r)
            assert re.search(r"/\.ietf/[0-9a-f]{32}$", r["url"]), r
            assert test_tus._get_sha256(d, path) == digest, path
            assert all(q[2] in (201, 204) for q in r["requests"]), r
        assert idle(d)


@hfs.timeout(120)
def test_ietf_tus_js_client_abort_and_resume():
    node = test_tus._node_client()
    with Daemon() as d:
        for protocol in ("ietf-draft-03", "ietf-draft-05"):
            size, chunk = 12 * MiB, 4 * MiB
            src, digest = d.make_file(size)
            path = "u-ietf-js-resume/%s.bin" % protocol
            up = _client_job(d, path, size, src, protocol, chunkSize=chunk,
                             bytesPerSecond=16 * MiB,
                             storage=os.path.join(d.files,
                                                  protocol + ".json"))
            r = test_tus._run_client(node, d, {
                "mode": "abort", "upload": up, "abortAfter": int(5.5 * MiB)})
            r = r[0]
            assert r["error"] == "aborted", r
            cut = r["requests"][-1]
            assert cut[0] == "PATCH" and cut[2] is None, r["requests"]
            cut_at = int(cut[1])
            loc = "/" + r["url"].split("/", 3)[3]
            test_tus.wait_for("the cut PATCH's commit",
                              lambda: idle(d) and offset_of(d, loc) > cut_at)
            held = offset_of(d, loc)
            assert d.get(path).status == 404

            up.update(chunkSize=MiB, bytesPerSecond=None)
            r = test_tus._run_client(node, d, {"mode": "resume",
                                               "upload": up})[0]
            assert r["ok"], r
            reqs = r["requests"]
            assert reqs[0][0] == "HEAD" and reqs[0][3] == str(held), reqs
            assert "POST" not in [q[0] for q in reqs], reqs
            assert [q for q in reqs if q[0] == "PATCH"][0][1] == str(held)
            assert test_tus._get_sha256(d, path) == digest


def test_ietf_upload_id_not_in_access_log():
    """The upload resource's id is a capability: the access log keeps only
    its first 12 digits, as for tus."""
    import test_access_log as al
    d, path = al.alog_daemon()
    with d:
        interim, r = create(d, "u-ietf7/a.bin", 3)
        loc = r.header("Location")
        uid = loc.rsplit("/", 1)[1]
        assert append(d, loc, 0, b"abc", True).status == 201
        assert head(d, loc).status == 204
        got = al.lines(path, 3)
        text = al.read(path)
        assert uid not in text, text
        assert al.one(got, "PATCH", "/.ietf/%s..." % uid[:12])["sid"] \
            == uid[:12], got


def test_ietf_no_104_to_http10():
    """RFC 9110: no 1xx to an HTTP/1.0 client; the final answer still
    carries the Location."""
    with Daemon() as d:
        r = d.request("POST", d.put_target("u-ietf8/old.bin", 3),
                      [iv(), done(True)], body=b"abc", version="HTTP/1.0")
        assert r.status == 201 and r.interim == [], r
        assert re.fullmatch(r"/\.ietf/[0-9a-f]{32}", r.header("Location")), r
        assert d.get("u-ietf8/old.bin").body == b"abc"


@hfs.timeout(180)
def test_ietf_in_a_browser():
    """A page on another origin speaks the draft with fetch(): Chromium's
    own preflights must allow the draft's request headers and expose its
    answers (the browser never shows the 104, so the page creates with an
    empty ?0 request and reads the final Location)."""
    import shutil
    import test_browser_cors as bc
    node = bc._node()
    root = os.path.join(hfs.REPO, "build", "browser-ietf-page-%d" % os.getpid())
    os.makedirs(root, exist_ok=True)
    v = {"Upload-Draft-Interop-Version": "6"}
    state = ["Upload-Offset", "Upload-Complete", "Upload-Length",
             "Upload-Limit", "Upload-Draft-Interop-Version"]
    try:
        with bc.PageServer(root) as page:
            origin = "http://127.0.0.1:%d" % page.port
            with Daemon(**{"security.cors_origins": [origin]}) as d:
                steps = [
                    {"name": "create", "method": "POST",
                     "url": d.put_url("u-ietf-cors/a", 10),
                     "headers": dict(v, **{"Upload-Complete": "?0",
                                           "Upload-Length": "10"}),
                     "read": ["Location"] + state,
                     "save": {"loc": "Location"}},
                    {"name": "append", "method": "PATCH", "url": "$loc",
                     "headers": dict(v, **{"Upload-Offset": "0",
                                           "Upload-Complete": "?0",
                                           "Content-Type": PARTIAL[1]}),
                     "body": "hello", "read": state},
                    {"name": "offset", "method": "HEAD", "url": "$loc",
                     "headers": v, "read": state},
                    {"name": "mismatch", "method": "PATCH", "url": "$loc",
                     "headers": dict(v, **{"Upload-Offset": "3",
                                           "Upload-Complete": "?1",
                                           "Content-Type": PARTIAL[1]}),
                     "body": "lo", "read": ["Upload-Offset", "Content-Type"]},
                    {"name": "complete", "method": "PATCH", "url": "$loc",
                     "headers": dict(v, **{"Upload-Offset": "5",
                                           "Upload-Complete": "?1",
                                           "Content-Type": PARTIAL[1]}),
                     "body": "world", "read": state},
                ]
                res = bc._drive(node, d, [{"url": origin + "/index.html",
                                           "base": "http://127.0.0.1:%d/"
                                           % d.port, "steps": steps}])[0]
                r = {s["name"]: s for s in res}
                blocked = [(s["name"], s["error"]) for s in res if s["error"]]
                assert not blocked, "the browser blocked: %r" % blocked
                c = r["create"]
                assert c["status"] == 201, c
                assert c["headers"]["Location"].startswith("/.ietf/"), c
                assert c["headers"]["Upload-Complete"] == "?0", c
                assert c["headers"]["Upload-Limit"], c
                assert c["headers"]["Upload-Draft-Interop-Version"] == "6", c
                a = r["append"]
                assert a["status"] == 204, a
                assert a["headers"]["Upload-Offset"] == "5", a
                o = r["offset"]
                assert o["status"] == 204, o
                assert o["headers"]["Upload-Offset"] == "5", o
                assert o["headers"]["Upload-Length"] == "10", o
                m = r["mismatch"]
                assert m["status"] == 409, m
                assert m["headers"]["Upload-Offset"] == "5", m
                assert m["headers"]["Content-Type"] == \
                    "application/problem+json", m
                assert "mismatching-upload-offset" in m["text"], m
                f = r["complete"]
                assert f["status"] == 201, f
                assert f["headers"]["Upload-Complete"] == "?1", f
                assert d.get("u-ietf-cors/a").body == b"helloworld"
    finally:
        shutil.rmtree(root, ignore_errors=True)
