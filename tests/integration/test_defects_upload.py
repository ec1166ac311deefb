"""Upload defects found by stock clients and hostile tests (issue 8, items
1, 2, 3 and 8): v2 with an empty or absent Content-Type, a duplicated
Content-Type, a late chunk after publication, and chunks numbered with
X-Chunk-Number instead of Content-Range.

MACs are computed with Python's hmac (hfs.sign_v1/sign_v2) over the exact
bytes Prosody's mod_http_upload_external signs, never by the daemon."""

import os
import shutil
import subprocess
import urllib.parse

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


PROSODY_MOD = ("/usr/lib/prosody/modules/mod_http_upload_external/"
               "mod_http_upload_external.lua")
SLOT_LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "xmpp", "prosody_slot.lua")


def _prosody_slot(request_xml):
    """The PUT URL Prosody's own mod_http_upload_external code mints for
    this slot request (v2), as target path?query for the daemon."""
    if shutil.which("lua5.4") is None or not os.path.exists(PROSODY_MOD):
        raise hfs.Skip("lua5.4 or prosody-modules not installed")
    out = subprocess.run(["lua5.4", SLOT_LUA, hfs.SECRET, "v2", request_xml],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode()
    u = urllib.parse.urlsplit(out.stdout.decode().strip())
    return u.path + "?" + u.query


def test_v2_slots_minted_by_prosody_code():
    """Slots minted by the real module code, in both namespaces, with the
    type given empty and not given: the PUT a browser then sends verifies;
    one with another type does not."""
    data = b"a file the browser knows no type for"
    n = len(data)
    ns0 = ('<iq xmlns="jabber:client" type="get" id="1"><request '
           'xmlns="urn:xmpp:http:upload:0" filename="blob.hfsx" '
           'size="%d"%s/></iq>')
    legacy = ('<iq xmlns="jabber:client" type="get" id="1"><request '
              'xmlns="urn:xmpp:http:upload"><filename>blob.hfsx</filename>'
              '<size>%d</size>%s</request></iq>')
    cases = [   # slot request, PUT headers that verify, ones that do not
        (ns0 % (n, ' content-type=""'), (["Content-Type:"], []),
         (["Content-Type: application/octet-stream"],)),
        (legacy % (n, "<content-type/>"), (["Content-Type: "], []),
         (["Content-Type: application/octet-stream"],)),
        (ns0 % (n, ""), ([], ["Content-Type: application/octet-stream"]),
         (["Content-Type:"], ["Content-Type: text/plain"])),
        (legacy % (n, ""), ([],), (["Content-Type:"],)),
        (ns0 % (n, ' content-type="text/plain"'),
         (["Content-Type: text/plain"],), ([], ["Content-Type:"])),
    ]
    with Daemon() as d:
        for req, good, bad in cases:
            for hs in bad:
                t = _prosody_slot(req)
                r = d.request("PUT", t, hs, data)
                assert r.status == 403, "%s\n  PUT with %r: %r" % (req, hs, r)
            for hs in good:
                t = _prosody_slot(req)
                r = d.request("PUT", t, hs, data)
                assert r.status == 201, "%s\n  PUT with %r: %r" % (req, hs, r)
                assert d.request("GET", t.split("?")[0]).body == data


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


# ------------------------------------------------------- numbered chunks

def _numbered(d, path, data, n, sid, count=None, body=None, sign_total=None,
              extra=()):
    """Chunk number n (0-based) of the seed protocol: X-Upload-Session-ID,
    X-Chunk-Number, X-Total-Chunks, no Content-Range. body: bytes sent
    (default: nothing; the caller slices)."""
    hs = [("X-Upload-Session-ID", sid), ("X-Chunk-Number", str(n))]
    if count is not None:
        hs.append(("X-Total-Chunks", str(count)))
    hs += list(extra)
    st = len(data) if sign_total is None else sign_total
    return d.put_stream(d.put_target(path, st), body, hs)


def _no_session(d, path, total, sid):
    r = d.request("HEAD", d.put_target(path, total),
                  [("X-Upload-Session-ID", sid)])
    assert r.status == 404, "a refused chunk left a session: %r" % r
    assert d.get(path).status == 404


def test_numbered_chunks_out_of_order_published():
    """A file sent as X-Chunk-Number chunks of uploads.chunksize, out of
    order, without Content-Range: published byte-identical. The size comes
    from X-Total-Size on the first chunk sent, then from the session, and
    the MAC binds it."""
    cs = MiB
    with Daemon(**{"server.workers": 2, "uploads.chunksize": "1M"}) as d:
        path = "num/file.bin"
        data = hfs.det_bytes(4 * cs + 12345, seed=51)
        total, sha = len(data), hfs.sha256(data)
        count = 5
        order = [3, 0, 4, 2, 1]
        for i, n in enumerate(order):
            a, b = n * cs, min(total, (n + 1) * cs)
            extra = [("X-Total-Size", str(total))] if i == 0 else []
            r = _numbered(d, path, data, n, "num-1", count, data[a:b],
                          extra=extra)
            want = 201 if i == len(order) - 1 else 200
            assert r.status == want, "chunk %d (bytes %d-%d): %r" % (
                n, a, b - 1, r)
            assert r.header("Upload-Length") == str(total), r
        g = d.get(path)
        assert g.status == 200 and hfs.sha256(g.body) == sha, \
            "published file differs from the source"
        # a late numbered chunk is compared with the published file
        r = _numbered(d, path, data, 1, "num-1", count, data[cs:2 * cs])
        assert r.status == 200, r
        r = _numbered(d, path, data, 1, "num-1", count, b"\0" * cs)
        assert r.status == 409, r
        assert hfs.sha256(d.get(path).body) == sha

        # Upload-Length instead of X-Total-Size, and the last chunk first,
        # whose own length tells the size
        path = "num/other.bin"
        data = hfs.det_bytes(2 * cs + 1, seed=52)
        r = _numbered(d, path, data, 2, "num-2", 3, data[2 * cs:])
        assert r.status == 200, r
        r = _numbered(d, path, data, 0, "num-2", 3, data[:cs],
                      extra=[("Upload-Length", str(len(data)))])
        assert r.status == 200, r
        r = _numbered(d, path, data, 1, "num-2", None, data[cs:2 * cs])
        assert r.status == 201, r
        assert d.get(path).body == data

        # the size is bound by the MAC: another X-Total-Size is refused
        path = "num/lie.bin"
        data = hfs.det_bytes(3 * cs, seed=53)
        r = _numbered(d, path, data, 0, "num-3", None, data[:cs],
                      extra=[("X-Total-Size", str(3 * cs + 1))])
        assert r.status == 403, "a size the MAC does not bind: %r" % r


def test_numbered_chunk_default_size_one_chunk():
    """With the default uploads.chunksize (5 MiB) a small file is one
    chunk: number 0 of 1, its size its length."""
    with Daemon() as d:
        path = "num1/small.bin"
        data = hfs.det_bytes(300 * KiB, seed=54)
        r = _numbered(d, path, data, 0, "one-1", 1, data)
        assert r.status == 201, r
        assert d.get(path).body == data


def test_numbered_chunk_refusals_400():
    """Every contradiction gets 400 with a reason naming it, and leaves no
    session and no file."""
    cs = MiB
    with Daemon(**{"uploads.chunksize": "1M"}) as d:
        path = "numbad/file.bin"
        data = hfs.det_bytes(3 * cs + 5, seed=55)     # 4 chunks
        total = len(data)
        ts = [("X-Total-Size", str(total))]
        cases = [
            ("length contradicts the range",
             dict(n=0, count=4, body=data[:1000], extra=ts),
             "chunk 0 must be 1048576 bytes (bytes 0-1048575/3145733), "
             "not 1000"),
            ("last chunk too long",
             dict(n=3, count=4, body=data[3 * cs:] + b"x", extra=ts),
             "chunk 3 must be 5 bytes"),
            ("number past the last chunk",
             dict(n=4, count=None, body=data[:5], extra=ts),
             "X-Chunk-Number 4 is past the last chunk (4 chunks"),
            ("X-Total-Chunks inconsistent",
             dict(n=0, count=3, body=data[:cs], extra=ts),
             "X-Total-Chunks 3 does not match the file: 3145733 bytes in "
             "chunks of 1048576 bytes are 4 chunks"),
            ("Content-Range disagrees with the number",
             dict(n=1, count=4, body=data[:cs],
                  extra=[("Content-Range", "bytes 0-%d/%d" % (cs - 1,
                                                              total))]),
             "Content-Range disagrees with X-Chunk-Number 1"),
            ("size unknown",
             dict(n=1, count=4, body=data[cs:2 * cs]),
             "X-Total-Size"),
            ("size headers disagree",
             dict(n=0, count=4, body=data[:cs],
                  extra=ts + [("Upload-Length", str(total + 1))]),
             "X-Total-Size and Upload-Length disagree"),
            ("not a number",
             dict(n="1a", count=4, body=data[cs:2 * cs], extra=ts),
             "X-Chunk-Number must be a decimal number"),
            ("X-Total-Chunks not a number",
             dict(n=1, count="-4", body=data[cs:2 * cs], extra=ts),
             "X-Total-Chunks must be a decimal number"),
        ]
        for what, kw, reason in cases:
            r = _numbered(d, path, data, kw["n"], "bad-1", kw["count"],
                          kw["body"], extra=kw.get("extra", ()))
            assert r.status == 400, "%s: %r" % (what, r)
            assert reason in _reason(r), "%s: reason %r lacks %r" % (
                what, _reason(r), reason)
        _no_session(d, path, total, "bad-1")
        assert not hfs.regular_files(d.staging), hfs.regular_files(d.staging)
