"""tus concatenation (docs/protocol.md, "Concatenation"): partial uploads
created and authorised through the file's signed URL, a final upload that
assembles them, and every way a final is refused. The stock tus-js-client
with parallelUploads, aborts and crashes is in test_tus_parallel.py."""

import base64
import hashlib
import os
import re
import time

import hfs
from hfs import Daemon, curl
from test_tus import (OCTET, TUS, _get_sha256, assert_tus_error, create,
                      head, offset_of, patch, sign_v3)


def b64(s):
    return base64.b64encode(str(s).encode()).decode()


def partial(d, target, length, filesize=None, body=b"", meta=None):
    """POST Upload-Concat: partial to the signed URL; filesize: the whole
    file's size, in the metadata (the signature binds it)."""
    pairs = [] if meta is None else [meta]
    if filesize is not None:
        pairs.append("filesize " + b64(filesize))
    hs = [TUS, ("Upload-Concat", "partial"), ("Upload-Length", str(length))]
    if pairs:
        hs.append(("Upload-Metadata", ",".join(pairs)))
    if body:
        hs.append(OCTET)
    return d.request("POST", target, hs, body=body)


def final(d, target, locs, headers=()):
    hs = [TUS, ("Upload-Concat", "final;" + " ".join(locs))] + list(headers)
    return d.request("POST", target, hs)


def final_loc(path, locs):
    """The upload URL a final for these partials gets (tus_concat.c: the
    id derives from the path and the partial ids)."""
    ids = " ".join(loc.rsplit("/", 1)[1] for loc in locs)
    h = hashlib.sha256(b"tus-final\0" + path.encode() + b"\0" + ids.encode())
    return "/.tus/" + h.hexdigest()[:32]


def upload_parts(d, target, data, sizes, filesize=None):
    """Partials of data cut at sizes, each created and PATCHed whole;
    returns their upload URLs (paths)."""
    locs, off = [], 0
    for n in sizes:
        r = partial(d, target, n, filesize)
        assert r.status == 201, r
        loc = r.header("Location")
        if n:
            p = patch(d, loc, 0, data[off:off + n])
            assert p.status == 204 and p.header("Upload-Offset") == str(n), p
        off += n
        locs.append(loc)
    assert off == len(data)
    return locs


def assert_partials_freed(d):
    """Staging holds no upload's bytes any more: a published final and its
    partials keep only their manifests (and empty data files) for the
    minutes a finished upload is kept."""
    for f in hfs.regular_files(d.staging):
        if os.path.basename(f) == "data":
            assert os.path.getsize(os.path.join(d.staging, f)) == 0, f


def test_concatenation_v1_published_once():
    with Daemon() as d:
        r = d.request("OPTIONS", "/")
        assert "concatenation" in r.header("Tus-Extension").split(","), r
        data = hfs.det_bytes(1000001, seed=31)
        path = "u-cat1/whole.bin"
        t = d.put_target(path, len(data))
        # Out of order on purpose: the final's list decides the order.
        sizes = [300000, 300000, 400001]
        locs = upload_parts(d, t, data, sizes, len(data))
        for loc, n in zip(locs, sizes):
            h = head(d, loc)
            assert h.status == 200, h
            assert h.header("Upload-Concat") == "partial", h
            assert h.header("Upload-Offset") == str(n), h
            assert h.header("Upload-Length") == str(n), h
        # A complete partial is never published as the file.
        assert d.get(path).status == 404
        absolute = ["http://127.0.0.1:%d%s" % (d.port, locs[0])] + locs[1:]
        r = final(d, t, absolute,
                  [("Upload-Metadata", "filename " + b64("whole.bin"))])
        assert r.status == 201, r
        floc = r.header("Location")
        assert re.fullmatch(r"/\.tus/[0-9a-f]{32}", floc), r
        assert floc not in locs and floc == final_loc(path, locs)
        assert d.get(path).body == data
        h = head(d, floc)
        assert h.status == 200, h
        assert h.header("Upload-Offset") == h.header("Upload-Length") \
            == str(len(data)), h
        # tus 1.0.0: HEAD of a final names its partials, published or not
        # (the list as the client sent it, paths on this server).
        assert h.header("Upload-Concat") == "final;" + " ".join(locs), h
        # The partials are spent: their bytes are removed; a client whose
        # 201 was lost finds them complete and repeats the final, which
        # answers for the same upload.
        assert_partials_freed(d)
        for loc, n in zip(locs, sizes):
            h = head(d, loc)
            assert h.status == 200 and h.header("Upload-Offset") == str(n), h
            assert h.header("Upload-Concat") == "partial", h
            assert patch(d, loc, 0, data[:10]).status in (409, 413)
        r = final(d, t, absolute)
        assert r.status == 201 and r.header("Location") == floc, r
        assert r.header("Upload-Offset") == str(len(data)), r
        assert d.get(path).body == data


def test_concatenation_with_curl_v3_and_digest():
    """A v3 URL binds no size: partials need no filesize. The whole
    file's SHA-256 (X-Content-SHA256, Repr-Digest) is checked before the
    final is published; a wrong one publishes nothing and drops the
    partials."""
    with Daemon() as d:
        data = hfs.det_bytes(200000, seed=32)
        path = "u-cat2/v3.bin"
        exp = int(time.time()) + 600
        url = d.url(path, "v3=%s&expires=%d" % (sign_v3(path, exp), exp))
        locs = []
        for i, piece in enumerate((data[:123456], data[123456:])):
            f = os.path.join(d.files, "piece%d" % i)
            with open(f, "wb") as fh:
                fh.write(piece)
            r = curl("-X", "POST", "-H", "Tus-Resumable: 1.0.0",
                     "-H", "Upload-Concat: partial",
                     "-H", "Upload-Length: %d" % len(piece),
                     "-H", "Content-Type: application/offset+octet-stream",
                     "--data-binary", "@" + f, url)
            assert r.status == 201, r
            assert r.header("Upload-Offset") == str(len(piece)), r
            locs.append(r.header("Location"))
        wrong = hashlib.sha256(data + b"x").hexdigest()
        r = curl("-X", "POST", "-H", "Tus-Resumable: 1.0.0",
                 "-H", "Upload-Concat: final;" + " ".join(locs),
                 "-H", "X-Content-SHA256: " + wrong, url)
        assert r.status == 460, r
        assert d.get(path).status == 404
        # Those partials made the wrong bytes: they are dropped with the
        # final, which stays refused; the client uploads again.
        for loc in locs:
            assert head(d, loc).status in (404, 410)
        r = final(d, d.target(path, url.split("?", 1)[1]), locs)
        assert_tus_error(r, 410, "upload the file again")
        t = d.target(path, url.split("?", 1)[1])
        locs = upload_parts(d, t, data, [100000, 100000])
        sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
        r = curl("-X", "POST", "-H", "Tus-Resumable: 1.0.0",
                 "-H", "Upload-Concat: final;" + " ".join(locs),
                 "-H", "Repr-Digest: sha-256=:%s:" % sha, url)
        assert r.status == 201, r
        assert d.get(path).body == data
        h = head(d, r.header("Location"))
        assert h.header("Upload-Offset") == str(len(data)), h


def test_partial_checksums():
    """Upload-Checksum works on a partial as on any PATCH: a body that does
    not match is dropped (460), one that does is kept, and the final is
    made of the verified bytes only."""
    with Daemon() as d:
        data = hfs.det_bytes(70000, seed=37)
        path = "u-cat8/a.bin"
        t = d.put_target(path, len(data))
        a = partial(d, t, 30000, len(data)).header("Location")
        b = partial(d, t, 40000, len(data)).header("Location")
        bad = [("Upload-Checksum", "sha256 " + base64.b64encode(
            hashlib.sha256(b"x").digest()).decode())]
        assert patch(d, a, 0, data[:30000], bad).status == 460
        assert offset_of(d, a) == 0
        for loc, piece in ((a, data[:30000]), (b, data[30000:])):
            ck = [("Upload-Checksum", "sha1 " + base64.b64encode(
                hashlib.sha1(piece).digest()).decode())]
            assert patch(d, loc, 0, piece, ck).status == 204
        r = final(d, t, [a, b], [("X-Content-SHA256",
                                  hashlib.sha256(data).hexdigest())])
        assert r.status == 201, r
        assert d.get(path).body == data


def test_partial_authorisation():
    """A partial is authorised by the signed URL of the whole file: with
    a v1/v2/token URL its size (which the MAC binds) comes as metadata
    filesize, and no partial may be longer than it."""
    with Daemon() as d:
        path, size = "u-cat3/a.bin", 5000
        t = d.put_target(path, size)
        r = partial(d, t, 100)
        assert_tus_error(r, 400, "filesize")
        assert_tus_error(partial(d, t, 100, filesize=size + 1), 403,
                         "signature")
        assert_tus_error(partial(d, t, size + 1, filesize=size), 413,
                         "longer than the signed file size")
        assert_tus_error(partial(d, t, 100, filesize="12x"), 400, "filesize")
        assert_tus_error(partial(d, d.target(path, "v=00"), 100, size), 403,
                         "signature")
        r = d.request("POST", t, [TUS, ("Upload-Concat", "partial"),
                                  ("Upload-Defer-Length", "1")])
        assert_tus_error(r, 400, "Upload-Length")
        for bad in ("partial;", "final", "final;", "final;/x/y",
                    "final;/.tus/" + "A" * 32):
            r = d.request("POST", t, [TUS, ("Upload-Concat", bad),
                                      ("Upload-Length", "1")])
            assert_tus_error(r, 400, "Upload-Concat")
        # v2 binds the content type: filetype comes with the partial too.
        t2 = d.put_target(path, size, v=2, content_type="image/png")
        meta = "filetype " + b64("image/png")
        assert partial(d, t2, 10, size, meta=meta).status == 201
        assert_tus_error(partial(d, t2, 10, size), 403, "signature")
        assert d.get(path).status == 404


def test_final_refused():
    """Everything a final can name wrongly: nothing is published, nothing
    of the final is kept, the partials stay usable."""
    with Daemon() as d:
        data = hfs.det_bytes(4000, seed=33)
        path = "u-cat4/a.bin"
        t = d.put_target(path, len(data))
        locs = upload_parts(d, t, data, [1000, 3000], len(data))
        gone = "/.tus/" + "0" * 32
        assert_tus_error(final(d, t, [locs[0], gone]), 400, "no such upload")
        assert_tus_error(final(d, t, [locs[0], locs[0]]), 400, "twice")
        assert_tus_error(final(d, t, locs, [("Upload-Length", "4000")]), 400,
                         "Upload-Length")
        r = d.request("POST", t, [TUS, ("Upload-Concat", "final;"
                                        + " ".join(locs)), OCTET], body=b"x")
        assert_tus_error(r, 400, "no body")
        # Sizes that do not add up to the signed size: the signature says no.
        assert_tus_error(final(d, t, [locs[1]]), 403, "signature")
        assert_tus_error(final(d, t, locs[::-1] + [locs[0]]), 400, "twice")
        # An incomplete partial (no concatenation-unfinished).
        r = partial(d, t, 500, len(data))
        inc = r.header("Location")
        assert patch(d, inc, 0, data[:100]).status == 204
        assert_tus_error(final(d, t, [inc] + locs), 400, "not a complete")
        # No concatenation-unfinished: a final before its partials are
        # complete does not exist at all, so its HEAD finds nothing.
        assert head(d, final_loc(path, [inc] + locs)).status == 404
        # A whole (non-partial) upload is not a partial.
        whole = create(d, path, len(data)).header("Location")
        assert_tus_error(final(d, t, [whole]), 400, "not a complete")
        # Partials of another file: same size signed for another path.
        other = "u-cat4/b.bin"
        to = d.put_target(other, len(data))
        assert_tus_error(final(d, to, locs), 403, "another file")
        assert d.get(other).status == 404
        # Partials of another signed URL of this path (v3, no size bound).
        exp = int(time.time()) + 600
        t3 = d.target(path, "v3=%s&expires=%d" % (sign_v3(path, exp), exp))
        locs3 = upload_parts(d, t3, data, [4000])
        assert_tus_error(final(d, t, locs3), 403, "another signed URL")
        locs3 = upload_parts(d, t3, data[1000:], [3000])
        assert_tus_error(final(d, t, [locs[0], locs3[0]]), 403, "signed URL")
        assert d.get(path).status == 404
        # A final takes no PATCH; the partials were untouched by all this.
        assert offset_of(d, locs[1]) == 3000
        r = final(d, t, locs)
        assert r.status == 201, r
        assert d.get(path).body == data
        # A file is there now: new partials for the path are refused.
        assert_tus_error(partial(d, t, 10, len(data)), 409, "exists")


def test_expired_partial_fails_final():
    """A partial that expires (uploads.sessiontimeout after its last
    activity) makes its final fail cleanly: 410 naming it, nothing
    published, and the client starts again."""
    with Daemon(**{"uploads.sessiontimeout": 2}) as d:
        data = hfs.det_bytes(3000, seed=34)
        path = "u-cat5/a.bin"
        t = d.put_target(path, len(data))
        locs = upload_parts(d, t, data[:1000], [1000], len(data))
        time.sleep(1.5)
        fresh = upload_parts(d, t, data[1000:], [2000], len(data))
        time.sleep(1.0)        # the first is past its Upload-Expires now
        r = final(d, t, locs + fresh)
        # 410 while the expired partial is still in the table; once the
        # janitor has swept it (on a loaded machine it can come first),
        # it is an unknown upload: 400 naming it. Either way nothing is
        # published and the client starts that partial again.
        if r.status == 400:
            assert_tus_error(r, 400, "no such upload")
        else:
            assert_tus_error(r, 410, "expired")
        assert d.get(path).status == 404
        assert head(d, locs[0]).status in (404, 410)
        locs = upload_parts(d, t, data[:1000], [1000], len(data))
        assert final(d, t, locs + fresh).status == 201
        assert d.get(path).body == data


def test_partials_survive_restart_and_final_after():
    """Partials are sessions like any other: kill -9 of the whole daemon,
    then the client resumes them where they were and concatenates."""
    from test_torture import hard_restart
    with Daemon(check_exit=False) as d:
        data = hfs.det_bytes(3 * (1 << 20) + 7, seed=35)
        path = "u-cat6/a.bin"
        t = d.put_target(path, len(data))
        half = len(data) // 2
        r1 = partial(d, t, half, len(data))
        r2 = partial(d, t, len(data) - half, len(data))
        l1, l2 = r1.header("Location"), r2.header("Location")
        assert patch(d, l1, 0, data[:half]).status == 204
        assert patch(d, l2, 0, data[half:half + 1000]).status == 204
        hard_restart(d)
        assert offset_of(d, l1) == half
        assert offset_of(d, l2) == 1000
        h = head(d, l2)
        assert h.header("Upload-Concat") == "partial", h
        assert patch(d, l2, 1000, data[half + 1000:]).status == 204
        r = final(d, t, [l1, l2])
        assert r.status == 201, r
        assert d.get(path).body == data
        # The daemon dies before the client reads its 201: after the
        # restart the partials still answer complete and the repeated
        # final answers for the same, published upload.
        hard_restart(d)
        assert offset_of(d, l1) == half
        assert offset_of(d, l2) == len(data) - half
        r2 = final(d, t, [l1, l2])
        assert r2.status == 201, r2
        assert r2.header("Location") == r.header("Location"), (r, r2)
        assert offset_of(d, r.header("Location")) == len(data)
        assert d.get(path).body == data
        assert_partials_freed(d)


def test_head_of_an_unassembled_final():
    """A final cut before it was assembled (kill -9 of its worker while it
    copies) exists with no bytes: its HEAD answers, as tus 1.0.0 says,
    Upload-Concat: final;<partials> and Upload-Length but no Upload-Offset,
    and the client's repeated final assembles and publishes it. The kill
    lands at a random moment, so it is tried until it hits the copy."""
    import random
    import signal
    with Daemon(check_exit=False, **{"server.workers": 1}) as d:
        data = os.urandom(48 << 20)       # det_bytes is slow at this size
        sizes = [16 << 20, 32 << 20]
        seen = None
        for attempt in range(12):
            path = "u-cat7/a%d.bin" % attempt
            t = d.put_target(path, len(data))
            locs = upload_parts(d, t, data, sizes, len(data))
            worker = d.wait_workers(1)[0]
            c = d.conn()
            c.send(hfs.build_request("POST", t, [TUS, (
                "Upload-Concat", "final;" + " ".join(locs))]))
            time.sleep(random.uniform(0.0, 0.03))
            os.kill(worker, signal.SIGKILL)
            c.close()
            d.wait_workers(1, exclude=[worker])
            floc = final_loc(path, locs)
            h = head(d, floc)
            if h.status == 200 and h.header("Upload-Offset") is None:
                assert h.header("Upload-Length") == str(len(data)), h
                assert h.header("Upload-Concat") == \
                    "final;" + " ".join(locs), h
                seen = (path, t, locs, floc)
                break
        assert seen, "never caught a final before its assembly"
        path, t, locs, floc = seen
        assert d.get(path).status == 404
        r = final(d, t, locs)
        assert r.status == 201 and r.header("Location") == floc, r
        assert _get_sha256(d, path) == hashlib.sha256(data).hexdigest()
        h = head(d, floc)
        assert h.header("Upload-Offset") == str(len(data)), h
