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
