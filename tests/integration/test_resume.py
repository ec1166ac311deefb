"""Resumable uploads: the chunked-header protocol (X-Upload-Session-ID +
Content-Range), status by HEAD, and plain PUTs resumed after a cut.

What every test holds the daemon to: the published file is byte-identical
to the source (sha256), chunks may come in any order, on any connection and
any worker, more than once; what the server reports as held (Upload-Offset,
X-Upload-Ranges) is really held; a session belongs to one signed path and
size; nothing is left in storage.staging once a file is complete."""

import os
import random
import signal
import threading
import time

import hfs
from hfs import Daemon, build_request

KiB = 1 << 10
MiB = 1 << 20


# ---------------------------------------------------------------- helpers

def parse_ranges(s):
    """'0-999,2000-2999' (inclusive) -> [(0, 1000), (2000, 3000)]."""
    out = []
    for part in (s or "").split(","):
        part = part.strip()
        if not part:
            continue
        a, b = part.split("-")
        out.append((int(a), int(b) + 1))
    return out


def merge(ranges):
    """Half-open ranges -> sorted, disjoint, adjacent ones joined."""
    out = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def covers(ranges, a, b):
    return any(x <= a and b <= y for x, y in merge(ranges))


def prefix_of(ranges):
    m = merge(ranges)
    return m[0][1] if m and m[0][0] == 0 else 0


def chunk_bounds(total, size):
    return [(a, min(total, a + size)) for a in range(0, total, size)]


def chunk_head(d, path, data, a, b, sid, total=None, sign_total=None,
               extra=()):
    """(target, headers) for [a, b) of `data` under the chunked protocol.
    The URL is v1-signed over `sign_total` (default: the whole file size)."""
    total = len(data) if total is None else total
    st = total if sign_total is None else sign_total
    hs = [("Content-Range", "bytes %d-%d/%d" % (a, b - 1, total))]
    if sid is not None:
        hs.append(("X-Upload-Session-ID", sid))
    return d.put_target(path, st), hs + list(extra)


def chunk_request(d, path, data, a, b, sid, **kw):
    """Request bytes for one chunk (see chunk_head)."""
    target, hs = chunk_head(d, path, data, a, b, sid, **kw)
    return build_request("PUT", target, hs, data[a:b])


def put_chunk(d, path, data, a, b, sid, conn=None, **kw):
    """One chunk, on `conn` (keep-alive) or on a fresh connection (then
    the body stops as soon as an answer comes, like a real client)."""
    if conn is not None:
        conn.send(chunk_request(d, path, data, a, b, sid, **kw))
        return conn.read_response("PUT")
    target, hs = chunk_head(d, path, data, a, b, sid, **kw)
    return d.put_stream(target, data[a:b], hs)


def status(d, path, total, sid=None, sign_total=None):
    """HEAD on the signed upload URL: what the server holds."""
    hs = [("X-Upload-Session-ID", sid)] if sid is not None else []
    st = total if sign_total is None else sign_total
    return d.request("HEAD", d.put_target(path, st), hs)


def held_of(r):
    """Ranges a 200 status/chunk answer says are held."""
    off = int(r.header("Upload-Offset"))
    ln = int(r.header("Upload-Length"))
    if off == ln:
        return [(0, ln)]
    return merge(parse_ranges(r.header("X-Upload-Ranges")))


def assert_held(r, want, total, what):
    assert r.status in (200, 201), "%s: %r" % (what, r)
    want = merge(want)
    assert r.header("Upload-Length") == str(total), \
        "%s: Upload-Length %r, want %d" % (what, r.header("Upload-Length"),
                                           total)
    assert r.header("Upload-Offset") == str(prefix_of(want)), \
        "%s: Upload-Offset %r, want %d (held %r)" % (
            what, r.header("Upload-Offset"), prefix_of(want), want)
    got = merge(parse_ranges(r.header("X-Upload-Ranges")))
    assert got == want, "%s: X-Upload-Ranges %r, want %r" % (
        what, r.header("X-Upload-Ranges"), want)


def assert_published(d, path, sha):
    g = d.get(path)
    assert g.status == 200, "GET %s: %r" % (path, g)
    assert hfs.sha256(g.body) == sha, \
        "GET %s: %d bytes, sha256 differs from the source" % (path,
                                                              len(g.body))


def assert_staging_clean(d, timeout=5.0):
    """No file left under storage.staging (polls: the session directory is
    removed on the sync pool right after publication).  Empty fan-out
    directories are allowed and reported."""
    deadline = time.monotonic() + timeout
    while True:
        files = hfs.regular_files(d.staging)
        if not files or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not files, "staging files left after completion: %r" % files
    dirs = sorted(p for p, k in hfs.tree(d.staging) if k == "d")
    if dirs:
        print("note: empty directories left in staging: %s" % ", ".join(dirs))


poll = hfs.wait_for


def session_data_holds(d, offset, piece):
    """True when some session data file under staging has `piece` at
    `offset` (the staging/<aa>/<key>/data layout of lib/store/manifest.h):
    proof that a request holds its lease and is writing."""
    for rel in hfs.regular_files(d.staging):
        if not rel.endswith("/data"):
            continue
        try:
            with open(os.path.join(d.staging, rel), "rb") as f:
                f.seek(offset)
                if f.read(len(piece)) == piece:
                    return True
        except OSError:
            pass
    return False


def start_raw_put(d, target, total, headers=(), timeout=30):
    """Head of a PUT with Content-Length `total`, body not yet sent."""
    c = d.conn(timeout=timeout)
    c.send(build_request("PUT", target, list(headers) +
                         [("Content-Length", str(total))], b""))
    return c


def spread_conns(d, want_workers, per_worker, tries=20):
    """Keep-alive connections spread over `want_workers` workers (or as many
    as a burst of connects reaches), per_worker each: {pid: [Conn]}.
    Each sends "PUT " first so it is accepted even under TCP_DEFER_ACCEPT;
    the caller sends the rest of the first request line with that in
    mind (see _first)."""
    got = {}
    for _ in range(tries):
        cs = [d.conn(timeout=30) for _ in range(16)]
        for c in cs:
            c.send(b"PUT ")
        for c in cs:
            pid = d.conn_owner(c, 1.0)
            if pid is not None and len(got.setdefault(pid, [])) < per_worker:
                got[pid].append(c)
            else:
                c.close()
        full = [p for p in got if len(got[p]) >= per_worker]
        if len(full) >= want_workers:
            break
    return got


# ---------------------------------------------------------------- tests

@hfs.timeout(60)
def test_chunks_out_of_order():
    # X-Chunk-Number must agree with Content-Range: 0-based, in chunks of
    # uploads.chunksize.
    with Daemon(**{"server.workers": 2, "uploads.chunksize": "1M"}) as d:
        path = "r-order/file.bin"
        data = hfs.det_bytes(5 * MiB + 123, seed=11)
        total, sha = len(data), hfs.sha256(data)
        chunks = chunk_bounds(total, MiB)
        order = list(range(len(chunks)))
        random.Random(1).shuffle(order)
        if order[-1] == len(chunks) - 1:    # the short tail not last
            order.reverse()
        sent = []
        for i, k in enumerate(order):
            a, b = chunks[k]
            extra = [("X-Chunk-Number", str(k)),
                     ("X-Total-Chunks", str(len(chunks)))] if i % 2 else []
            r = put_chunk(d, path, data, a, b, "order-1", extra=extra)
            sent.append((a, b))
            if i < len(order) - 1:
                assert r.status == 200, "chunk %d (%d-%d): %r" % (k, a, b, r)
                assert_held(r, sent, total, "after chunk %d" % k)
                assert d.get(path).status == 404, \
                    "incomplete file visible after chunk %d" % k
            else:
                assert r.status == 201, "last chunk %d: %r" % (k, r)
        assert_published(d, path, sha)
        assert_staging_clean(d)


def _first(c, req):
    """Sends a request on a connection from spread_conns, whose first four
    bytes "PUT " are already on the wire."""
    assert req.startswith(b"PUT ")
    c.send(req[4:])


@hfs.timeout(90)
def test_parallel_chunks_across_workers():
    with Daemon(**{"server.workers": 3}) as d:
        d.wait_workers(3)
        path = "r-par/big.bin"
        data = hfs.det_bytes(16 * MiB + 77, seed=12)
        total, sha = len(data), hfs.sha256(data)
        chunks = chunk_bounds(total, 512 * KiB)
        random.Random(2).shuffle(chunks)
        # The first chunk alone opens the session (concurrent opening is
        # test_concurrent_first_chunks); the rest go in parallel.
        a, b = chunks.pop()
        r = put_chunk(d, path, data, a, b, "par-1")
        assert_held(r, [(a, b)], total, "first chunk")
        conns = spread_conns(d, 2, 2)
        owners = sorted(conns)
        assert len(owners) >= 2, \
            "could not get connections on two workers: %r" % owners
        lock = threading.Lock()
        results, errors, used = [], [], set()

        def client(pid, c):
            fresh = True
            try:
                while True:
                    with lock:
                        if not chunks:
                            return
                        a, b = chunks.pop()
                    req = chunk_request(d, path, data, a, b, "par-1")
                    if fresh:
                        _first(c, req)
                        fresh = False
                    else:
                        c.send(req)
                    r = c.read_response("PUT")
                    if r.status == 503 and r.header("Retry-After"):
                        # Another request is publishing the file right now:
                        # come back later, on a new connection, as clients
                        # do (the answer then compares with the file).
                        with lock:
                            chunks.append((a, b))
                        c.close()
                        time.sleep(min(5.0, float(r.header("Retry-After"))))
                        c = d.conn(timeout=30)
                        continue
                    with lock:
                        results.append(((a, b), r))
                        used.add(pid)
                    if (r.header("Connection") or "").lower() == "close":
                        errors.append("server closed after %r" % r)
                        return
            except Exception as e:          # reported by the main thread
                errors.append("client on worker %d: %r" % (pid, e))
            finally:
                c.close()

        ts = [threading.Thread(target=client, args=(pid, c))
              for pid in owners for c in conns[pid]]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert not errors, errors
        assert len(used) >= 2, "chunks served by only %r" % used
        codes = sorted(r.status for _, r in results)
        assert codes.count(201) == 1 and codes.count(200) == len(codes) - 1, \
            "want exactly one 201 and the rest 200: %r" % [
                (rg, r.status, r.text) for rg, r in results if r.status != 200]
        # Answers to concurrent chunks may be generated in any order, but
        # each one's ranges must include its own chunk.
        for (a, b), r in results:
            if r.status == 200:
                assert covers(held_of(r), a, b), \
                    "answer for %d-%d does not list it: %r" % (a, b, r)
        assert_published(d, path, sha)
        assert_staging_clean(d)


@hfs.timeout(60)
def test_concurrent_first_chunks():
    """Several connections start one new session at the same moment.  Only
    one can create it; the others may be told 503 + Retry-After (and then
    succeed on retry), never an error that loses or corrupts bytes."""
    with Daemon(**{"server.workers": 3}) as d:
        d.wait_workers(3)
        path = "r-open/file.bin"
        data = hfs.det_bytes(6 * MiB, seed=25)
        total, sha = len(data), hfs.sha256(data)
        chunks = chunk_bounds(total, MiB)
        reqs = [chunk_request(d, path, data, a, b, "open-1")
                for a, b in chunks]
        conns = [d.conn(timeout=30) for _ in chunks]
        go = threading.Barrier(len(conns))
        answers = [None] * len(conns)

        def client(i):
            try:
                go.wait(10)
                conns[i].send(reqs[i])
                answers[i] = conns[i].read_response("PUT")
            except Exception as e:
                answers[i] = e
            finally:
                conns[i].close()

        ts = [threading.Thread(target=client, args=(i,))
              for i in range(len(conns))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        busy = []
        for i, r in enumerate(answers):
            assert isinstance(r, hfs.Response), "chunk %d: %r" % (i, r)
            if r.status == 503:
                assert r.header("Retry-After"), r
                busy.append(i)
            else:
                assert r.status in (200, 201), "chunk %d: %r" % (i, r)
        if busy:
            print("note: %d of %d concurrent first chunks got 503 (%s)" % (
                len(busy), len(chunks), answers[busy[0]].text.strip()))
        codes = [r.status for r in answers if r.status != 503]
        for i in busy:
            for _ in range(50):
                r = put_chunk(d, path, data, *chunks[i], "open-1")
                if r.status != 503:
                    break
                time.sleep(0.1)
            assert r.status in (200, 201), "retry of %d: %r" % (i, r)
            codes.append(r.status)
        assert codes.count(201) == 1, codes
        assert_published(d, path, sha)
        assert_staging_clean(d)


@hfs.timeout(60)
def test_duplicate_chunks_idempotent():
    with Daemon(**{"server.workers": 2}) as d:
        path = "r-dup/file.bin"
        data = hfs.det_bytes(3 * MiB + 10, seed=13)
        total, sha = len(data), hfs.sha256(data)
        c0, c1, c2, c3 = chunk_bounds(total, MiB)
        r = put_chunk(d, path, data, *c1, "dup-1")
        assert_held(r, [c1], total, "first chunk")
        r = put_chunk(d, path, data, *c1, "dup-1")
        assert r.status == 200, "repeat of a held chunk: %r" % r
        assert_held(r, [c1], total, "repeat of a held chunk")
        # The body of a repeat is discarded, never written over held bytes.
        junk = bytearray(data)
        junk[c1[0]:c1[1]] = b"\xee" * (c1[1] - c1[0])
        r = put_chunk(d, path, bytes(junk), *c1, "dup-1")
        assert r.status == 409, "repeat with other bytes: %r" % r
        assert "differ" in r.text, r
        assert_held(status(d, path, total, "dup-1"), [c1], total,
                    "after a repeat with other bytes")
        # On one keep-alive connection: a run with repeats in it.
        with d.conn(timeout=30) as c:
            for rg in (c0, c0, c2, c1, c2):
                r = put_chunk(d, path, data, *rg, "dup-1", conn=c)
                assert r.status == 200, "chunk %r on keep-alive: %r" % (rg, r)
            assert_held(r, [c0, c1, c2], total, "after the run")
            r = put_chunk(d, path, data, *c3, "dup-1", conn=c)
            assert r.status == 201, "last chunk: %r" % r
        assert_published(d, path, sha)
        assert_staging_clean(d)
        # A late repeat of a chunk of the finished file (a client that lost
        # the 201) is compared with the published bytes: 200 when they are
        # the same, 409 when not, the file unchanged either way.
        r = put_chunk(d, path, data, *c1, "dup-1")
        assert r.status == 200, "repeat after completion: %r" % r
        r = put_chunk(d, path, bytes(junk), *c1, "dup-1")
        assert r.status == 409, "other bytes after completion: %r" % r
        assert_published(d, path, sha)
        assert_staging_clean(d)


@hfs.timeout(60)
def test_status_then_resume_missing_chunks():
    with Daemon(**{"server.workers": 2}) as d:
        path = "r-status/file.bin"
        data = hfs.det_bytes(8 * MiB - 3, seed=14)
        total, sha = len(data), hfs.sha256(data)
        chunks = chunk_bounds(total, MiB)
        r = status(d, path, total, "st-1")
        assert r.status == 404, "status before any chunk: %r" % r
        r = status(d, path, total)
        assert r.status == 404, "status, no session, no file: %r" % r
        first = [chunks[k] for k in (0, 2, 3, 6)]
        for a, b in first:
            assert put_chunk(d, path, data, a, b, "st-1").status == 200
        r = status(d, path, total, "st-1")
        assert_held(r, first, total, "HEAD status")
        assert r.body == b""
        # The status is per session id: another id on the same URL has none.
        assert status(d, path, total, "st-2").status == 404
        # Resume with exactly what the server says is missing.
        held = held_of(r)
        missing = [(a, b) for a, b in chunks if not covers(held, a, b)]
        assert missing == [chunks[k] for k in (1, 4, 5, 7)], missing
        for i, (a, b) in enumerate(missing):
            r = put_chunk(d, path, data, a, b, "st-1")
            want = 201 if i == len(missing) - 1 else 200
            assert r.status == want, "missing chunk %d-%d: %r" % (a, b, r)
        r = status(d, path, total, "st-1")
        assert r.status == 200, "status after completion: %r" % r
        assert r.header("Upload-Offset") == str(total), r
        assert r.header("X-Upload-Ranges") is None, r
        assert_published(d, path, sha)
        assert_staging_clean(d)


@hfs.timeout(90)
def test_plain_put_cut_then_content_range_resume():
    with Daemon(**{"server.workers": 2}) as d:
        path = "r-cut/a.bin"
        data = hfs.det_bytes(20 * MiB + 5, seed=15)
        total, sha = len(data), hfs.sha256(data)
        target = d.put_target(path, total)
        c = start_raw_put(d, target, total)
        cut = 11 * MiB + 4321
        c.send(data[:cut])
        c.close()                        # a clean close: FIN after the bytes
        # Everything that arrived before a clean close is kept.
        r = poll(lambda: (lambda r: r if r.status == 200 and
                          r.header("Upload-Offset") == str(cut) else None)(
                              status(d, path, total)),
                 what="Upload-Offset == %d after the cut" % cut)
        assert r.header("Upload-Length") == str(total), r
        assert r.header("X-Upload-Ranges") == "0-%d" % (cut - 1), r
        assert d.get(path).status == 404, "cut upload visible"
        off = int(r.header("Upload-Offset"))
        r = d.put_stream(target, data[off:],
                         [("Content-Range", "bytes %d-%d/%d"
                           % (off, total - 1, total))])
        assert r.status == 201, "resume from %d: %r" % (off, r)
        assert_published(d, path, sha)
        assert_staging_clean(d)


@hfs.timeout(90)
def test_plain_put_cut_then_whole_file_again():
    with Daemon(**{"server.workers": 2}) as d:
        path = "r-cut2/b.bin"
        data = hfs.det_bytes(12 * MiB + 999, seed=16)
        total, sha = len(data), hfs.sha256(data)
        target = d.put_target(path, total)
        c = start_raw_put(d, target, total)
        cut = 9 * MiB + 17
        c.send(data[:cut])
        c.close()
        poll(lambda: status(d, path, total).header("Upload-Offset")
             == str(cut), what="Upload-Offset == %d" % cut)
        r = d.put(path, data)
        assert r.status == 201, "whole file again after a cut: %r" % r
        assert_published(d, path, sha)
        assert_staging_clean(d)
        # And once more: the file exists now, identical bytes -> 200.
        assert d.put(path, data).status == 200


@hfs.timeout(90)
def test_plain_put_worker_killed_keeps_what_status_reported():
    """kill -9 of a worker: what a status answer reported held before the
    kill is still held after it. A plain PUT still in its one request is
    not a session (docs/recovery.md, "Deferred create"): its status says
    nothing is held, and after the kill nothing is claimed, so the client
    sends the file again. A cut one is a session: what the status reported
    survives the kill of the worker that kept it, and the rest resumes."""
    with Daemon(**{"server.workers": 2}) as d:
        d.wait_workers(2)
        path = "r-kill/c.bin"
        data = hfs.det_bytes(24 * MiB + 1, seed=17)
        total, sha = len(data), hfs.sha256(data)
        target = d.put_target(path, total)
        c = start_raw_put(d, target, total)
        c.send(data[:18 * MiB])
        victim = d.conn_owner(c)
        assert victim, "no worker holds the upload"
        assert status(d, path, total).status == 404, \
            "an upload in its one request reported as held"
        os.kill(victim, signal.SIGKILL)
        c.close()
        d.wait_workers(2, exclude=[victim])
        assert status(d, path, total).status == 404, \
            "nothing was reported held, yet something is claimed"
        assert d.put(path, data).status == 201
        assert_published(d, path, sha)
        assert_staging_clean(d)

        path = "r-kill/d.bin"
        target = d.put_target(path, total)
        c = start_raw_put(d, target, total)
        cut = 13 * MiB + 5
        c.send(data[:cut])
        victim = d.conn_owner(c)
        c.close()
        r = poll(lambda: (lambda r: r if r.status == 200 and
                          r.header("Upload-Offset") == str(cut)
                          else None)(status(d, path, total)),
                 what="Upload-Offset == %d after the cut" % cut)
        os.kill(victim, signal.SIGKILL)
        d.wait_workers(2, exclude=[victim])
        r = status(d, path, total)
        assert r.status == 200 and r.header("Upload-Offset") == str(cut), \
            "held prefix across kill -9: %r" % r
        r = d.put_stream(target, data[cut:],
                         [("Content-Range", "bytes %d-%d/%d"
                           % (cut, total - 1, total))])
        assert r.status == 201, "resume after the kill: %r" % r
        assert_published(d, path, sha)
        assert_staging_clean(d)


@hfs.timeout(60)
def test_session_bound_to_signed_path_and_size():
    with Daemon(**{"server.workers": 2}) as d:
        pa, pb = "r-bind/a.bin", "r-bind/b.bin"
        da = hfs.det_bytes(2 * MiB + 1, seed=18)
        db = hfs.det_bytes(3 * MiB + 2, seed=19)
        ta, tb = len(da), len(db)
        sid = "shared-id.1"
        a0 = (0, MiB)
        r = put_chunk(d, pa, da, *a0, sid)
        assert_held(r, [a0], ta, "a: first chunk")
        # Same id, another path with its own valid MAC: its own session,
        # which sees nothing of a's bytes.
        b1 = (MiB, 2 * MiB)
        r = put_chunk(d, pb, db, *b1, sid)
        assert_held(r, [b1], tb, "b: same id, other path")
        assert_held(status(d, pa, ta, sid), [a0], ta, "a after b's chunk")
        # Same id and path, another total with a MAC valid for that total:
        # the session is bound to the size it was opened with -> 409.
        other = ta + MiB
        big = da + hfs.det_bytes(MiB, seed=20)
        r = put_chunk(d, pa, big, MiB, 2 * MiB, sid, total=other)
        assert r.status == 409, "other total, valid MAC for it: %r" % r
        assert "size" in r.text, r
        # Another total under the MAC of the session's size: the MAC binds
        # the size in Content-Range -> 403 before any session is touched.
        r = put_chunk(d, pa, big, MiB, 2 * MiB, sid, total=other,
                      sign_total=ta)
        assert r.status == 403, "other total, MAC of the real size: %r" % r
        # Status cannot be read with a MAC over another size, nor none.
        r = status(d, pa, ta, sid, sign_total=other)
        assert r.status == 403, "status with a MAC over another size: %r" % r
        r = d.request("HEAD", d.target(pa), [("X-Upload-Session-ID", sid)])
        assert r.status == 403, "status without a MAC: %r" % r
        assert r.header("Upload-Offset") is None, r
        assert_held(status(d, pa, ta, sid), [a0], ta, "a after the attempts")
        # Both finish independently and correctly.
        assert put_chunk(d, pa, da, MiB, ta, sid).status == 201
        assert put_chunk(d, pb, db, 0, MiB, sid).status == 200
        assert put_chunk(d, pb, db, 2 * MiB, tb, sid).status == 201
        assert_published(d, pa, hfs.sha256(da))
        assert_published(d, pb, hfs.sha256(db))
        assert_staging_clean(d)


@hfs.timeout(60)
def test_session_table_full_503():
    """No room for another session: 503 + Retry-After, and the session that
    holds the room is untouched."""
    with Daemon(**{"server.workers": 1,
                   "uploads.session_capacity": 1}) as d:
        da = hfs.det_bytes(2 * MiB, seed=28)
        db = hfs.det_bytes(2 * MiB, seed=29)
        r = put_chunk(d, "r-full/a.bin", da, 0, MiB, "full-a")
        assert_held(r, [(0, MiB)], len(da), "a: first chunk")
        r = put_chunk(d, "r-full/b.bin", db, 0, MiB, "full-b")
        assert r.status == 503, "a second session in a full table: %r" % r
        assert r.header("Retry-After"), r
        assert status(d, "r-full/b.bin", len(db), "full-b").status == 404
        assert_held(status(d, "r-full/a.bin", len(da), "full-a"), [(0, MiB)],
                    len(da), "a after b was refused")
        r = put_chunk(d, "r-full/a.bin", da, MiB, 2 * MiB, "full-a")
        assert r.status == 201, r
        assert_published(d, "r-full/a.bin", hfs.sha256(da))
        assert_staging_clean(d)


@hfs.timeout(60)
def test_oversize_chunk_413():
    with Daemon(**{"server.workers": 2, "uploads.chunk_max_size": "1M"}) as d:
        path = "r-413/file.bin"
        data = hfs.det_bytes(3 * MiB, seed=21)
        total = len(data)
        hs = [("X-Upload-Session-ID", "big-1"),
              ("Content-Range", "bytes 0-%d/%d" % (MiB, total))]
        r = d.put_stream(d.put_target(path, total), data[:MiB + 1], hs)
        assert r.status == 413, "chunk of 1 MiB + 1 over a 1M limit: %r" % r
        # Refused from the head: 32 MiB is well beyond what loopback
        # socket buffers hold, so a server reading the chunk first is
        # caught.
        big = 32 * MiB
        hs = [("X-Upload-Session-ID", "big-1"),
              ("Content-Range", "bytes 0-%d/%d" % (big - 1, big + MiB))]
        r = d.put_stream(d.put_target(path, big + MiB), b"\0" * big, hs)
        assert r.status == 413, "chunk of 32 MiB over a 1M limit: %r" % r
        assert r.sent < big, "413 came only after the whole chunk"
        assert status(d, path, total, "big-1").status == 404, \
            "a refused chunk opened a session"
        assert hfs.regular_files(d.staging) == []
        for a, b in chunk_bounds(total, MiB):
            r = put_chunk(d, path, data, a, b, "big-1")
            assert r.status in (200, 201), "chunk %d-%d: %r" % (a, b, r)
        assert r.status == 201
        assert_published(d, path, hfs.sha256(data))
        assert_staging_clean(d)


@hfs.timeout(60)
def test_overlap_and_busy_range():
    with Daemon(**{"server.workers": 2}) as d:
        path = "r-ovl/file.bin"
        data = hfs.det_bytes(4 * MiB, seed=22)
        total, sha = len(data), hfs.sha256(data)
        sid = "ovl-1"
        r = put_chunk(d, path, data, MiB, 2 * MiB, sid)
        assert_held(r, [(MiB, 2 * MiB)], total, "first chunk")
        # Overlapping held bytes, but not at its start: refused.
        r = put_chunk(d, path, data, MiB // 2, MiB + MiB // 2, sid)
        assert r.status == 409, "overlap past the start: %r" % r
        assert_held(status(d, path, total, sid), [(MiB, 2 * MiB)], total,
                    "after the 409")
        # Held at its start: only the rest is written.
        r = put_chunk(d, path, data, MiB + MiB // 2, 2 * MiB + MiB // 2, sid)
        assert r.status == 200, "overlap at the start: %r" % r
        assert_held(r, [(MiB, 2 * MiB + MiB // 2)], total, "tail written")
        # A range being written by another request: 503 + Retry-After.
        a, b = 3 * MiB, 4 * MiB
        hs = [("X-Upload-Session-ID", sid),
              ("Content-Range", "bytes %d-%d/%d" % (a, b - 1, total))]
        slow = start_raw_put(d, d.put_target(path, total), b - a, hs)
        slow.send(data[a:a + MiB // 2])
        poll(lambda: session_data_holds(d, a + MiB // 2 - 4096,
                                        data[a + MiB // 2 - 4096:
                                             a + MiB // 2]),
             what="the first writer's bytes in the session data file")
        r = put_chunk(d, path, data, a, b, sid)
        assert r.status == 503, "range leased by another request: %r" % r
        assert r.header("Retry-After"), r
        slow.send(data[a + MiB // 2:b])
        r = slow.read_response("PUT")
        slow.close()
        assert r.status == 200, "the first writer: %r" % r
        assert_held(r, [(MiB, 2 * MiB + MiB // 2), (a, b)], total, "slow")
        for x, y in [(0, MiB), (2 * MiB + MiB // 2, 3 * MiB)]:
            r = put_chunk(d, path, data, x, y, sid)
        assert r.status == 201, r
        assert_published(d, path, sha)
        assert_staging_clean(d)


@hfs.timeout(60)
def test_lease_of_killed_worker_released():
    """A worker dies mid-chunk: a retry of that chunk must not wait for the
    lease's deadline (the master forgets the dead worker's leases)."""
    with Daemon(**{"server.workers": 2}) as d:
        d.wait_workers(2)
        path = "r-lease/file.bin"
        data = hfs.det_bytes(2 * MiB, seed=23)
        total, sha = len(data), hfs.sha256(data)
        sid = "lease-1"
        a, b = 0, MiB
        hs = [("X-Upload-Session-ID", sid),
              ("Content-Range", "bytes %d-%d/%d" % (a, b - 1, total))]
        c = start_raw_put(d, d.put_target(path, total), b - a, hs)
        c.send(data[a:a + MiB // 2])
        poll(lambda: session_data_holds(d, MiB // 2 - 4096,
                                        data[MiB // 2 - 4096:MiB // 2]),
             what="the writer's bytes in the session data file")
        victim = d.conn_owner(c)
        assert victim, "no worker holds the chunk"
        os.kill(victim, signal.SIGKILL)
        c.close()
        t0 = time.monotonic()
        codes = []
        while True:
            r = put_chunk(d, path, data, a, b, sid)
            codes.append(r.status)
            if r.status != 503 or time.monotonic() - t0 > 15:
                break
            time.sleep(0.1)
        assert r.status == 200, "retry after the writer's worker died: %r " \
            "(answers %r over %.1f s)" % (r, codes, time.monotonic() - t0)
        assert put_chunk(d, path, data, MiB, total, sid).status == 201
        assert_published(d, path, sha)
        assert_staging_clean(d)


def _hard_restart(d):
    """kill -9 of the master and all its children, then the same config."""
    os.killpg(d.pid, signal.SIGKILL)
    d.proc.wait(10)
    poll(lambda: not d.group_pids(), what="the process group to die")
    hfs._live.pop(d.pid, None)
    d.logf.close()
    d.start()


@hfs.timeout(90)
def test_sessions_survive_master_kill():
    """kill -9 of the master and every worker: a chunked session and a cut
    plain PUT are still there after a restart, with the same ranges."""
    with Daemon(**{"server.workers": 2}) as d:
        pc, pp = "r-surv/chunked.bin", "r-surv/plain.bin"
        dc = hfs.det_bytes(5 * MiB + 3, seed=26)
        dp = hfs.det_bytes(6 * MiB + 5, seed=27)
        tc, tp = len(dc), len(dp)
        chunks = chunk_bounds(tc, MiB)
        first = [chunks[k] for k in (4, 1, 2, 5)]
        for a, b in first:
            assert put_chunk(d, pc, dc, a, b, "surv-1").status == 200
        cut = 3 * MiB + 11
        c = start_raw_put(d, d.put_target(pp, tp), tp)
        c.send(dp[:cut])
        c.close()
        poll(lambda: status(d, pp, tp).header("Upload-Offset") == str(cut),
             what="Upload-Offset == %d" % cut)
        _hard_restart(d)
        assert_held(status(d, pc, tc, "surv-1"), first, tc,
                    "chunked session after the restart")
        assert_held(status(d, pp, tp), [(0, cut)], tp,
                    "plain PUT after the restart")
        for a, b in (chunks[0], chunks[3]):
            r = put_chunk(d, pc, dc, a, b, "surv-1")
        assert r.status == 201, r
        r = d.put(pp, dp)
        assert r.status == 201, "whole file again after the restart: %r" % r
        assert_published(d, pc, hfs.sha256(dc))
        assert_published(d, pp, hfs.sha256(dp))
        assert_staging_clean(d)


@hfs.timeout(90)
def test_late_chunk_after_completion_and_restart():
    """A client whose 201 was lost retries a chunk after the daemon was
    restarted (the finished session is gone from the table then): the
    answer must not claim an upload in progress, and no new session may be
    left behind in staging."""
    with Daemon(**{"server.workers": 2}) as d:
        path = "r-late/file.bin"
        data = hfs.det_bytes(2 * MiB, seed=24)
        total, sha = len(data), hfs.sha256(data)
        sid = "late-1"
        assert put_chunk(d, path, data, 0, MiB, sid).status == 200
        assert put_chunk(d, path, data, MiB, total, sid).status == 201
        assert_staging_clean(d)
        _hard_restart(d)
        r = put_chunk(d, path, data, MiB, total, sid)
        st = status(d, path, total, sid)
        left = hfs.regular_files(d.staging)
        problems = []
        if r.status not in (200, 201):
            problems.append("late chunk after restart: %r" % r)
        if r.header("X-Upload-Ranges") is not None or \
                st.header("X-Upload-Ranges") is not None:
            problems.append("a published file has an upload in progress "
                            "again: chunk answer %r, status %r" % (r, st))
        if left:
            problems.append("the late chunk left a session in staging: %r"
                            % left)
        assert not problems, "\n  ".join(problems)
        assert_published(d, path, sha)
        assert_staging_clean(d)


@hfs.timeout(60)
def test_small_plain_put_is_one_piece_unless_configured():
    """Below uploads.resumable_min_size a plain PUT is stored in one piece:
    a cut leaves nothing behind (no session to resume). With the limit at
    0 the same cut is resumable."""
    data = hfs.det_bytes(100 * KiB, seed=31)
    total, cut = len(data), 60 * KiB
    for limit, resumable in (("256K", False), (0, True)):
        with Daemon(**{"uploads.resumable_min_size": limit}) as d:
            path = "r-small/%s.bin" % limit
            target = d.put_target(path, total)
            c = start_raw_put(d, target, total)
            c.send(data[:cut])
            c.close()
            if resumable:
                r = poll(lambda: (lambda r: r if r.status == 200 and
                                  r.header("Upload-Offset") == str(cut)
                                  else None)(status(d, path, total)),
                         what="a resumable cut at %d" % cut)
            else:
                time.sleep(0.3)
                r = status(d, path, total)
                assert r.status == 404, "one-piece upload left a session: %r" % r
            r = d.put_stream(target, data)
            assert r.status == 201, r
            assert_published(d, path, hfs.sha256(data))
            assert_staging_clean(d)


@hfs.timeout(60)
def test_expect_100_only_once_the_range_is_accepted():
    """With Expect: 100-continue the client learns of a conflict before it
    sends the chunk: no 100 Continue precedes the 409, while an accepted
    chunk gets its 100 first."""
    with Daemon() as d:
        path = "r-expect/a.bin"
        data = hfs.det_bytes(3 * MiB, seed=33)
        total, sid = len(data), "expect-1"
        assert put_chunk(d, path, data, 2 * MiB, 3 * MiB, sid).status == 200
        for (a, b), want in (((MiB + MiB // 2, 2 * MiB + MiB // 2), 409),
                             ((0, MiB), 100)):
            target, hs = chunk_head(d, path, data, a, b, sid)
            c = start_raw_put(d, target, b - a,
                              [h for h in hs if h[0] != "Content-Length"]
                              + [("Expect", "100-continue")])
            r = c.read_response("PUT", interim=True)
            assert r.status == want, "chunk %d-%d: %r" % (a, b, r)
            if want == 100:
                c.send(data[a:b])
                r = c.read_response("PUT")
                assert r.status == 200, r
            c.close()


# ---------------------------------------------------- announced SHA-256

def _reread(d):
    return d.metrics().get("hfs_digest_reread_bytes_total")


def _sha_hdr(data):
    return [("X-Content-SHA256", hfs.sha256(data))]


@hfs.timeout(90)
def test_announced_digest_hashed_as_chunks_arrive():
    """A chunked upload with X-Content-SHA256 is hashed as its chunks
    arrive, on whichever worker takes each one (the hash in progress lives
    in the session table): publication reads nothing back, and a wrong
    digest is still refused (460, nothing published)."""
    with Daemon(**{"server.workers": 2}) as d:
        d.wait_workers(2)
        conns = spread_conns(d, 2, 1)
        assert len(conns) == 2, "connections on two workers: %r" % conns
        pair = [cs[0] for cs in conns.values()]  # "PUT " already sent
        data = hfs.det_bytes(4 * MiB + 100, seed=41)
        total, path = len(data), "r-digest/good.bin"
        before = _reread(d)
        for i, (a, b) in enumerate(chunk_bounds(total, MiB)):
            req = chunk_request(d, path, data, a, b, "dig-1",
                                extra=_sha_hdr(data))
            c = pair[i % 2]             # alternate the two workers
            c.send(req[4:] if i < 2 else req)
            r = c.read_response("PUT")
            assert r.status == (201 if b == total else 200), \
                "chunk %d-%d: %r" % (a, b, r)
        assert_published(d, path, hfs.sha256(data))
        assert _reread(d) - before == 0, \
            "in-order chunks: publication read bytes back to hash them"

        wrong = hfs.det_bytes(total, seed=42)
        path = "r-digest/wrong.bin"
        for a, b in chunk_bounds(total, MiB):
            r = put_chunk(d, path, data, a, b, "dig-2",
                          extra=_sha_hdr(wrong))
        assert r.status == 460, "wrong digest: %r" % r
        assert d.get(path).status == 404, "a file with the wrong digest"
        assert _reread(d) - before == 0
        for c in pair:
            c.close()


@hfs.timeout(90)
def test_announced_digest_out_of_order_reads_back_the_rest():
    """Chunks out of order: only the part hashed on the way (the chunk
    that continued the hashed prefix) is spared; the rest is read back,
    and the file is checked all the same."""
    with Daemon(**{"server.workers": 2}) as d:
        data = hfs.det_bytes(3 * MiB, seed=43)
        total, path = len(data), "r-digest/order.bin"
        chunks = chunk_bounds(total, MiB)
        before = _reread(d)
        for k in (1, 0, 2):
            a, b = chunks[k]
            r = put_chunk(d, path, data, a, b, "dig-3",
                          extra=_sha_hdr(data))
        assert r.status == 201, r
        assert_published(d, path, hfs.sha256(data))
        # chunk 0 was hashed; 1 arrived before it, 2 after a prefix the
        # table's digest did not reach
        assert _reread(d) - before == 2 * MiB


@hfs.timeout(120)
def test_announced_digest_after_restart_reads_the_file():
    """The hash in progress is not on disk: after kill -9 of the whole
    daemon the session goes on and publication hashes the whole file,
    accepting the right digest and refusing a wrong one."""
    with Daemon(**{"server.workers": 2}) as d:
        data = hfs.det_bytes(3 * MiB + 7, seed=44)
        wrong = hfs.det_bytes(len(data), seed=45)
        total = len(data)
        chunks = chunk_bounds(total, MiB)
        for path, sid, digest in (("r-digest/re-good.bin", "dig-4", data),
                                  ("r-digest/re-bad.bin", "dig-5", wrong)):
            for a, b in chunks[:2]:
                assert put_chunk(d, path, data, a, b, sid,
                                 extra=_sha_hdr(digest)).status == 200
        _hard_restart(d)
        before = _reread(d)
        codes = []
        for path, sid, digest in (("r-digest/re-good.bin", "dig-4", data),
                                  ("r-digest/re-bad.bin", "dig-5", wrong)):
            for a, b in chunks[2:]:
                r = put_chunk(d, path, data, a, b, sid,
                              extra=_sha_hdr(digest))
            codes.append(r.status)
        assert codes == [201, 460], codes
        assert_published(d, "r-digest/re-good.bin", hfs.sha256(data))
        assert d.get("r-digest/re-bad.bin").status == 404
        assert _reread(d) - before == 2 * total


@hfs.timeout(60)
def test_announced_digest_of_a_plain_put():
    """A one-request PUT with X-Content-SHA256 is hashed as it arrives,
    with nothing read back: the right digest stores, a wrong one is 460."""
    with Daemon() as d:
        data = hfs.det_bytes(3 * MiB + 1, seed=46)
        before = _reread(d)
        r = d.put("r-digest/plain.bin", data, headers=_sha_hdr(data))
        assert r.status == 201, r
        assert_published(d, "r-digest/plain.bin", hfs.sha256(data))
        r = d.put("r-digest/plain-bad.bin", data,
                  headers=_sha_hdr(data[1:] + b"x"))
        assert r.status == 460, r
        assert d.get("r-digest/plain-bad.bin").status == 404
        assert _reread(d) - before == 0
