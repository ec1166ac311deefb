"""Upload defects found by stock clients and hostile tests (issue 8, items
1, 2, 3 and 8): v2 with an empty or absent Content-Type, a duplicated
Content-Type, a late chunk after publication, and chunks numbered with
X-Chunk-Number instead of Content-Range.

MACs are computed with Python's hmac (hfs.sign_v1/sign_v2) over the exact
bytes Prosody's mod_http_upload_external signs, never by the daemon."""

import os
import random

import hfs
from hfs import Daemon, build_request

KiB = 1 << 10
MiB = 1 << 20


def _reason(r):
    return r.text.strip()


# ------------------------------------------------------------ v2 and types

def test_v2_empty_content_type_header():
    """Converse.js asks Prosody for a slot with content-type="", Prosody
    signs path\\0size\\0 (nothing after the second NUL), Chromium PUTs with
    an empty Content-Type header: the upload must be accepted, and only
    for the empty type."""
    with Daemon() as d:
        data = b"bytes of a .hfsx file the browser has no type for"
        for i, header in enumerate(("Content-Type:", "Content-Type: ",
                                    "Content-Type:\t")):
            path = "u-empty-%d/blob.hfsx" % i
            t = d.target(path, "v2=" + hfs.sign_v2(path, len(data), ""))
            r = d.request("PUT", t, [header], data)
            assert r.status == 201, "%r with a v2 MAC over '': %r" % (
                header, r)
            assert d.get(path).body == data
        # the empty header binds the empty string, not the default type
        path = "u-empty-oct/blob.hfsx"
        t = d.target(path, "v2=" + hfs.sign_v2(
            path, len(data), "application/octet-stream"))
        r = d.request("PUT", t, ["Content-Type:"], data)
        assert r.status == 403, "empty header verified as octet-stream: %r" % r
        # and a header naming a type does not verify a MAC over ''
        path = "u-empty-png/blob.hfsx"
        t = d.target(path, "v2=" + hfs.sign_v2(path, len(data), ""))
        r = d.request("PUT", t, ["Content-Type: image/png"], data)
        assert r.status == 403, "a MAC over '' verified image/png: %r" % r
        assert d.get(path).status == 404


def test_v2_absent_content_type_both_prosody_forms():
    """Without a Content-Type header the client gave no type: Prosody may
    have signed its default (slot request without content-type) or the
    empty string (content-type=""). Both verify; a real type does not."""
    with Daemon() as d:
        data = b"no type at all"
        for i, signed in enumerate(("application/octet-stream", "")):
            path = "u-absent-%d/f.bin" % i
            t = d.target(path, "v2=" + hfs.sign_v2(path, len(data), signed))
            r = d.request("PUT", t, [], data)
            assert r.status == 201, "no header, MAC over %r: %r" % (signed, r)
        path = "u-absent-png/f.bin"
        t = d.target(path, "v2=" + hfs.sign_v2(path, len(data), "image/png"))
        r = d.request("PUT", t, [], data)
        assert r.status == 403, "no header verified image/png: %r" % r
        # the size is still bound in both forms
        path = "u-absent-size/f.bin"
        t = d.target(path, "v2=" + hfs.sign_v2(path, len(data) + 1, ""))
        r = d.request("PUT", t, [], data)
        assert r.status == 403, "MAC over another size accepted: %r" % r


def test_duplicate_content_type_400():
    """The first Content-Type was bound by the MAC, a proxy honouring the
    last would see another: two copies are refused, whichever is signed,
    and nothing is stored."""
    with Daemon() as d:
        data = b"\x89PNG not really"
        path = "u-dup/pic.png"
        t = d.put_target(path, len(data), v=2, content_type="image/png")
        for hs in (["Content-Type: image/png", "Content-Type: text/html"],
                   ["Content-Type: text/html", "Content-Type: image/png"],
                   ["Content-Type: image/png", "content-type: image/png"],
                   ["Content-Type: image/png", "Content-Type:"]):
            r = d.request("PUT", t, hs, data)
            assert r.status == 400, "%r: %r" % (hs, r)
            assert "Content-Type" in _reason(r), \
                "reason does not name the header: %r" % r
            assert d.get(path).status == 404, "stored after %r" % hs
        # any request, not only a signed PUT
        r = d.request("GET", d.target(path), ["Content-Type: a/b",
                                              "Content-Type: c/d"])
        assert r.status == 400, r
        # a header the chunked protocol acts on, likewise
        r = d.request("PUT", t, ["Content-Type: image/png",
                                 "X-Upload-Session-ID: a",
                                 "X-Upload-Session-ID: b",
                                 "Content-Range: bytes 0-%d/%d" % (
                                     len(data) - 1, len(data))], data)
        assert r.status == 400 and "X-Upload-Session-ID" in _reason(r), r
        r = d.request("PUT", t, ["Content-Type: image/png"], data)
        assert r.status == 201, r
        assert d.get(path).body == data


# ------------------------------------------------------------ late chunks

def _chunk(d, path, data, a, b, sid, body=None, total=None):
    """One Content-Range chunk [a, b) of `data` (or `body` in its place),
    v1-signed over the whole size."""
    total = len(data) if total is None else total
    hs = [("Content-Range", "bytes %d-%d/%d" % (a, b - 1, total)),
          ("X-Upload-Session-ID", sid)]
    return d.put_stream(d.put_target(path, total),
                        data[a:b] if body is None else body, hs)


def test_late_chunk_after_publication_compared():
    """A chunk re-sent after the file was published (its 201 was lost) is
    compared with the published bytes of its range: identical -> 200,
    different -> 409, like the same chunk before publication; the file
    never changes."""
    with Daemon(**{"server.workers": 2}) as d:
        path = "late/file.bin"
        data = hfs.det_bytes(3 * MiB + 77, seed=41)
        sha = hfs.sha256(data)
        bounds = [(0, MiB), (MiB, 2 * MiB), (2 * MiB, len(data))]
        for a, b in bounds[:-1]:
            r = _chunk(d, path, data, a, b, "late-1")
            assert r.status == 200, r
        r = _chunk(d, path, data, *bounds[-1], "late-1")
        assert r.status == 201, r
        # before publication the same rule held; now against the file
        for a, b in bounds:
            r = _chunk(d, path, data, a, b, "late-1")
            assert r.status == 200, "identical late chunk %d-%d: %r" % (
                a, b, r)
            assert r.header("Upload-Offset") == str(len(data)), r
        for a, b in bounds:
            other = bytearray(data[a:b])
            other[(b - a) // 2] ^= 0x01            # one bit
            r = _chunk(d, path, data, a, b, "late-1", body=bytes(other))
            assert r.status == 409, "different late chunk %d-%d: %r" % (
                a, b, r)
            assert "differ" in _reason(r), r
        # another session ID, a partial range, the same answer
        other = bytearray(data[10:1000])
        other[0] ^= 0xff
        r = _chunk(d, path, data, 10, 1000, "late-2", body=bytes(other))
        assert r.status == 409, r
        r = _chunk(d, path, data, 10, 1000, "late-2")
        assert r.status == 200, r
        g = d.get(path)
        assert g.status == 200 and hfs.sha256(g.body) == sha, \
            "published file changed"
