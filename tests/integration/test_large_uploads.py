"""Large plain PUTs: write-back while the body arrives (worker/writeback.h,
docs/performance.md "Large uploads") and resuming a large PUT whose
connection dropped."""

import os

import hfs
from hfs import Daemon, curl
from test_resume import assert_staging_clean, poll, start_raw_put, status

MiB = 1 << 20


def _same(d, rel, sha):
    """GET with curl into a file (a large body read in Python is slow)."""
    out = os.path.join(d.files, "back.bin")
    g = curl(d.url(rel), out=out)
    assert g.status == 200, g
    assert hfs.sha256_file(out) == sha, "%s differs from the source" % rel


@hfs.timeout(180)
def test_large_put_identical_and_written_back():
    """A 96 MiB PUT with curl is stored byte-identical, and the daemon
    started the write-back of its completed 8 MiB stretches while the body
    arrived (hfs_writeback_bytes_total)."""
    size = 96 * MiB + 12345
    with Daemon() as d:
        src, sha = d.make_file(size)
        before = d.metrics().get("hfs_writeback_bytes_total")
        r = curl("-T", src, d.put_url("big/one.bin", size))
        assert r.status == 201, r
        _same(d, "big/one.bin", sha)
        wb = d.metrics().get("hfs_writeback_bytes_total") - before
        # Every whole stretch but the one the body ended in, at least.
        assert wb >= (size // (8 * MiB) - 1) * 8 * MiB, wb
        assert wb <= size, wb
        assert_staging_clean(d)


@hfs.timeout(120)
def test_chunks_written_back_in_session_stretches():
    """Chunks of a resumable session end in their own fdatasync: each
    5 MiB chunk starts the write-back of its completed 1 MiB stretches
    while it arrives (a plain PUT's 8 MiB stretch would never fill)."""
    from test_resume import chunk_bounds, put_chunk
    data = hfs.det_bytes(20 * MiB, seed=62)
    total, path = len(data), "big/chunked.bin"
    with Daemon(**{"server.workers": 1}) as d:
        before = d.metrics().get("hfs_writeback_bytes_total")
        for a, b in chunk_bounds(total, 5 * MiB):
            r = put_chunk(d, path, data, a, b, "wb-1")
            assert r.status == (201 if b == total else 200), r
        _same(d, path, hfs.sha256(data))
        wb = d.metrics().get("hfs_writeback_bytes_total") - before
        # Each chunk started one stretch at least (how many more depends
        # on how the body and the jobs interleave).
        assert wb >= 4 * MiB, wb
        assert wb <= total, wb


@hfs.timeout(180)
def test_large_put_dropped_then_resumed():
    """A 72 MiB PUT whose connection drops after 41 MiB: the status request
    reports what was kept, and a Content-Range PUT of the rest completes
    the file byte-identical."""
    data = hfs.det_bytes(72 * MiB + 3, seed=61)
    total, sha = len(data), hfs.sha256(data)
    path = "big/dropped.bin"
    with Daemon() as d:
        target = d.put_target(path, total)
        c = start_raw_put(d, target, total)
        cut = 41 * MiB + 77
        c.send(data[:cut])
        c.close()
        r = poll(lambda: (lambda r: r if r.status == 200 and
                          r.header("Upload-Offset") == str(cut) else None)(
                              status(d, path, total)),
                 what="Upload-Offset == %d after the drop" % cut,
                 timeout=30)
        assert d.get(path).status == 404, "a dropped upload is visible"
        off = int(r.header("Upload-Offset"))
        r = d.put_stream(target, data[off:],
                         [("Content-Range", "bytes %d-%d/%d"
                           % (off, total - 1, total))], piece=1 << 20,
                         timeout=60)
        assert r.status == 201, "resume from %d: %r" % (off, r)
        _same(d, path, sha)
        assert_staging_clean(d)


def _syncs(d):
    return d.metrics().get("hfs_session_syncs_total")


@hfs.timeout(60)
def test_one_request_put_makes_no_session_syncs():
    """A plain PUT that completes in one request pays for no session: no
    manifest, no session directory, no sync of theirs
    (hfs_session_syncs_total), whether it is above
    uploads.resumable_min_size (1 MiB) or that is 0 (4 KiB). A cut one
    does become a session, and resumes."""
    for limit, size in ((None, MiB + 5), (0, 4096)):
        kw = {} if limit is None else {"uploads.resumable_min_size": limit}
        with Daemon(**kw) as d:
            data = hfs.det_bytes(size, seed=size)
            before = _syncs(d)
            r = d.put("one/%d.bin" % size, data)
            assert r.status == 201, r
            assert _syncs(d) == before, \
                "%d-byte PUT made %d session syncs" % (size,
                                                       _syncs(d) - before)
            assert_staging_clean(d)
    with Daemon() as d:
        data = hfs.det_bytes(MiB + 5, seed=62)
        total, path = len(data), "one/cut.bin"
        c = start_raw_put(d, d.put_target(path, total), total)
        cut = 600 * 1024 + 1
        c.send(data[:cut])
        c.close()
        poll(lambda: status(d, path, total).header("Upload-Offset")
             == str(cut), what="Upload-Offset == %d after the cut" % cut)
        # Created, and the cut's bytes committed: HEADER, three directory
        # syncs, the data and the CHUNK record.
        assert _syncs(d) >= 6, _syncs(d)
        r = d.put(path, data)
        assert r.status == 201, "whole file again after the cut: %r" % r
        g = d.get(path)
        assert g.status == 200 and g.body == data, g
        assert_staging_clean(d)
