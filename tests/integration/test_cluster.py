"""The HA cluster (docs/cluster.md): 3 daemons sharing storage.dir and
storage.staging on one GlusterFS volume, behind HAProxy configured by
etc/haproxy.cfg.example, all on loopback (tests/integration/cluster.py).

Which node served a request is read from each node's own /metrics
(hfs_requests_total by method and status), never guessed from the hash.
"""

import os
import signal
import subprocess
import threading
import time
import traceback

import cluster
import hfs
import test_resume as tr

MiB = 1 << 20
TUS = ("Tus-Resumable", "1.0.0")
OCTET = ("Content-Type", "application/offset+octet-stream")
UPLOAD = os.environ.get("HFS_UPLOAD_BIN") or os.path.join(
    os.path.dirname(hfs.HFS_BIN), "hmac-upload")


def _requests(node, method, status=None):
    labels = {"method": method}
    if status is not None:
        labels["status"] = str(status)
    return node.metrics().get("hfs_requests_total", **labels)


def _counts(c, method, status=None):
    return {n.name: _requests(n, method, status) for n in c.nodes}


def _delta(before, after):
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def _tus_create(front, path, size):
    r = front.request("POST", front.put_target(path, size),
                      [TUS, ("Upload-Length", str(size))])
    assert r.status == 201, r
    loc = r.header("Location")
    assert loc and "/.tus/" in loc, r
    return loc


def _tus_patch(front, loc, offset, body):
    return front.request("PATCH", loc, [TUS, ("Upload-Offset", str(offset)),
                                        OCTET], body=body)


@hfs.timeout(150)
def test_get_from_every_node_and_one_node_per_upload():
    """A file published by any node is served by every node; every request
    of one upload (chunks, tus PATCHes) reaches one node through HAProxy,
    and different uploads are spread over the nodes."""
    with cluster.Cluster(nodes=3) as c:
        files = {}
        # Published directly by each node...
        for n in c.nodes:
            data = hfs.det_bytes(300 * 1024 + n.port % 1000, seed=n.port)
            path = "direct/%s.bin" % n.name
            assert n.put(path, data).status == 201
            files[path] = data
        # ... and through HAProxy, in chunks by the project's C client:
        # one session per file, each on the node its signed path hashes to.
        used = set()
        put0 = _counts(c, "PUT")
        for i in range(6):
            size = 3 * MiB + i
            local, sha = hfs.make_file(size, seed=i)
            p = subprocess.run(
                [UPLOAD, "--chunk-size", "512K", "--parallel", "3",
                 local, c.put_url("chunked/f%d.bin" % i, size)],
                capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, p
            with open(local, "rb") as f:
                files["chunked/f%d.bin" % i] = f.read()
            os.unlink(local)
            put1 = _counts(c, "PUT")
            d = _delta(put0, put1)
            assert len(d) == 1 and sum(d.values()) >= 6, (
                "chunks of one upload on several nodes: %r" % d)
            used |= set(d)
            put0 = put1
        # tus: the creation hashes by the signed path, the resource's
        # requests follow the Location to the node that created it.
        for i in range(4):
            size = 2 * MiB
            data = hfs.det_bytes(size, seed=50 + i)
            post0 = _counts(c, "POST", 201)
            patch0 = _counts(c, "PATCH")
            loc = _tus_create(c, "tus/t%d.bin" % i, size)
            creator = list(_delta(post0, _counts(c, "POST", 201)))
            assert len(creator) == 1, creator
            for off in range(0, size, 512 * 1024):
                r = _tus_patch(c, loc, off, data[off:off + 512 * 1024])
                assert r.status == 204, r
            d = _delta(patch0, _counts(c, "PATCH"))
            assert list(d) == creator, (
                "PATCHes went to %r, created on %r" % (d, creator))
            files["tus/t%d.bin" % i] = data
            used |= set(creator)
        # Every file from every node, and through HAProxy.
        for path, data in sorted(files.items()):
            for n in c.nodes + [c]:
                g = n.get(path)
                assert g.status == 200, (path, getattr(n, "name", "proxy"), g)
                assert g.body == data, (path, getattr(n, "name", "proxy"))
        assert len(used) >= 2, "every upload hashed to one node: %r" % used


@hfs.timeout(150)
def test_dead_node_routes_around():
    """With one node killed (-9, all its processes), HAProxy marks it down
    and every path -- old files and new uploads whose hash pointed at it --
    is served by the others; once restarted it serves again. (With a
    daemon that takes sessions over, test_kill9_mid_upload_every_protocol
    does all this and more: skipped then, to keep the file's time short.)"""
    if cluster.daemon_knows_cluster():
        raise hfs.Skip("covered by test_kill9_mid_upload_every_protocol")
    with cluster.Cluster(nodes=3) as c:
        paths = {"before/f%d.bin" % i: hfs.det_bytes(64 * 1024, seed=i)
                 for i in range(12)}
        for p, data in paths.items():
            assert c.put(p, data).status == 201
        victim = c.nodes[1]
        c.kill9(victim)
        assert c.haproxy.status() == {"node1": "UP", "node2": "DOWN",
                                      "node3": "UP"}
        for i in range(12):
            p = "after/f%d.bin" % i
            paths[p] = hfs.det_bytes(64 * 1024, seed=100 + i)
            r = c.put(p, paths[p])
            assert r.status == 201, (p, r)
        for p, data in paths.items():
            g = c.get(p)
            assert g.status == 200 and g.body == data, (p, g)
        c.restart(victim)
        for p, data in paths.items():
            g = victim.get(p)
            assert g.status == 200 and g.body == data, (p, g)


# ------------------------------------------------------------- failover

CHUNK = MiB


def _try(fn):
    """fn()'s Response, or None when the connection failed (a node killed
    under it, HAProxy's 502 is a Response)."""
    try:
        return fn()
    except (OSError, EOFError, ValueError):
        return None


def _node_of(c, path):
    """The node HAProxy's hash sends path to (a GET answered 404 there)."""
    before = _counts(c, "GET", 404)
    assert c.get(path).status == 404
    d = _delta(before, _counts(c, "GET", 404))
    assert len(d) == 1, d
    return list(d)[0]


def _same_node_paths(c, count, prefix):
    """count upload paths that all hash to one node; (node, paths)."""
    by = {}
    for i in range(40):
        p = "%s/p%d.bin" % (prefix, i)
        by.setdefault(_node_of(c, p), []).append(p)
        for node, ps in by.items():
            if len(ps) >= count:
                return c.node(node), ps[:count]
    raise AssertionError("no node got %d of 40 paths: %r" % (count, by))


def _inode(c, path):
    """The published file's inode, seen through the first node's mount:
    a file published twice (replaced) would have a new one."""
    return os.stat(os.path.join(c.storage, path)).st_ino


class _Client(threading.Thread):
    """A retrying upload client in a thread: every failure (reset, 502,
    503) is retried after a short pause, asking the server for its offset
    first. lost: (acknowledged, what the server then held) whenever the
    server held less than it had acknowledged."""

    def __init__(self, front, path, data, piece=256 * 1024, pause=0.02):
        super().__init__(daemon=True)
        self.front, self.path, self.data = front, path, data
        self.piece, self.pause = piece, pause
        self.acked = 0          # highest offset the server acknowledged
        self.failures = 0
        self.lost = []
        self.error = None
        self.done = False
        # The test holds a client at hold_at bytes until it opens the
        # gate, so that it is surely mid-upload when the node is killed.
        self.hold_at = len(data)
        self.gate = threading.Event()

    waiting = False

    def held(self, off):
        if off >= self.hold_at and not self.gate.is_set():
            self.waiting = True
            assert self.gate.wait(60), "%s: gate never opened" % self.path

    def run(self):
        try:
            self.upload()
            self.done = True
        except BaseException:
            self.error = traceback.format_exc()

    def offset(self):
        """The server's offset (after a failure), retried until known."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = _try(self.status)
            if r is not None and r.status in (200, 204):
                o = int(r.header("Upload-Offset"))
                if o < self.acked:
                    self.lost.append((self.acked, o))
                return o
            if r is not None and r.status == 404 and self.acked == 0:
                return 0
            time.sleep(0.2)
        raise AssertionError("%s: no offset in 60 s (last %r)"
                             % (self.path, r))


class _Tus(_Client):
    """tus as tus-js-client does it: create, PATCH pieces, HEAD the
    resource after a failure and go on from its Upload-Offset."""

    def status(self):
        return self.front.request("HEAD", self.loc, [TUS])

    def upload(self):
        size = len(self.data)
        deadline = time.monotonic() + 60
        while True:
            r = _try(lambda: self.front.request(
                "POST", self.front.put_target(self.path, size),
                [TUS, ("Upload-Length", str(size))]))
            if r is not None and r.status == 201:
                self.loc = r.header("Location")
                break
            assert time.monotonic() < deadline, r
            time.sleep(0.2)
        off = 0
        deadline = time.monotonic() + 90
        while off < size:
            assert time.monotonic() < deadline, "tus upload stuck at %d" % off
            self.held(off)
            r = _try(lambda: _tus_patch(self.front, self.loc, off,
                                        self.data[off:off + self.piece]))
            if r is not None and r.status == 204:
                off = self.acked = int(r.header("Upload-Offset"))
                time.sleep(self.pause)
                continue
            self.failures += 1
            time.sleep(0.2)
            off = self.offset()


class _PlainPut(_Client):
    """One plain PUT, its body paced; after a failure HEAD the signed URL
    for Upload-Offset and send the rest with Content-Range (protocol.md,
    "Resuming a plain PUT"). The server acknowledges nothing before the
    end: the durable offset the test saw is checked instead (durable)."""

    durable = 0

    def status(self):
        return self.front.request(
            "HEAD", self.front.put_target(self.path, len(self.data)))

    def send_from(self, off):
        size = len(self.data)
        hs = [("Content-Length", str(size - off))]
        if off:
            hs.append(("Content-Range", "bytes %d-%d/%d"
                       % (off, size - 1, size)))
        c = self.front.conn(timeout=30)
        try:
            c.send(hfs.build_request("PUT", self.front.put_target(
                self.path, size), hs, b"", length=False))
            for a in range(off, size, self.piece):
                self.held(a)
                if c.readable(0):
                    break
                c.send(self.data[a:a + self.piece])
                time.sleep(self.pause)
            return c.read_response("PUT")
        finally:
            c.close()

    def upload(self):
        off, size = 0, len(self.data)
        deadline = time.monotonic() + 90
        while True:
            r = _try(lambda: self.send_from(off))
            if r is not None and r.status == 201:
                self.acked = size
                return
            self.failures += 1
            assert time.monotonic() < deadline, r
            time.sleep(0.2)
            self.acked = max(self.acked, self.durable)
            off = self.offset()
            if off == size:     # all held: published (the test GETs it)
                return


def _sha_of(url):
    """SHA-256 of a GET with curl (big bodies: hfs.Conn is for small)."""
    p = subprocess.run(["curl", "-sS", "--fail", url], capture_output=True,
                       timeout=60)
    assert p.returncode == 0, (url, p.stderr)
    return hfs.sha256(p.stdout)


def _settled(node, metric, quiet=0.5, timeout=30):
    """Waits until node's counter metric has not moved for `quiet` s."""
    last, since = None, time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        v = node.metrics().get(metric)
        if v != last:
            last, since = v, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return v
        time.sleep(0.05)
    raise AssertionError("%s of %s still moving" % (metric, node.name))


def _received(nodes):
    return sum(n.metrics().get("hfs_bytes_received_total") for n in nodes)


@hfs.timeout(170)
def test_kill9_mid_upload_every_protocol():
    """Chunked (hmac-upload), tus and a plain PUT, all on one node through
    HAProxy; that node is kill -9'ed mid-upload. Each client retries
    through HAProxy, its session goes on on the node the hash now picks,
    from every byte acknowledged before (none lost, none sent again), and
    each file is published once, byte-identical."""
    if not cluster.daemon_knows_cluster():
        raise hfs.Skip("the daemon has no cluster.node_id yet")
    with cluster.Cluster(nodes=3) as c:
        old = {"old/f%d.bin" % i: hfs.det_bytes(50000, seed=i)
               for i in range(6)}
        for p, data in old.items():
            assert c.put(p, data).status == 201
        victim, (pc, pt, pp) = _same_node_paths(c, 3, "kill")
        others = [n for n in c.nodes if n is not victim]
        csize, tsize, psize = 32 * MiB, 12 * MiB, 16 * MiB
        local, _ = hfs.make_file(csize, seed=11)
        tus = _Tus(c, pt, hfs.det_bytes(tsize, seed=12))
        plain = _PlainPut(c, pp, hfs.det_bytes(psize, seed=13))
        tus.hold_at, plain.hold_at = 4 * MiB, 10 * MiB
        chunked = None
        try:
            # The paced clients first, held mid-way; hmac-upload (not
            # paced) last, so that all three are mid-upload at the kill.
            tus.start()
            plain.start()

            hfs.wait_for(lambda: tus.waiting and plain.waiting, 60,
                         "tus and the plain PUT mid-way")
            tus_acked = tus.acked
            # What the plain PUT made durable so far (its first 8 MiB),
            # asked only once its client is idle and the node's session
            # syncs have settled: in a cluster, a status HEAD on the node
            # while its plain PUT is writing can make that PUT fail
            # (docs/cluster.md, "Limits seen, and what they mean").
            _settled(victim, "hfs_session_syncs_total")

            def plain_durable():
                r = _try(lambda: victim.request(
                    "HEAD", victim.put_target(pp, psize)))
                return r is not None and r.status == 200 and int(
                    r.header("Upload-Offset")) >= 8 * MiB and int(
                    r.header("Upload-Offset"))
            plain.durable = hfs.wait_for(plain_durable, 10,
                                         "the plain PUT's first 8 MiB",
                                         interval=0.2)
            chunked = subprocess.Popen(
                [UPLOAD, "--chunk-size", "1M", "--parallel", "2",
                 "--retry-delay", "0.2", "--max-delay", "1",
                 "--max-retries", "50", local, c.put_url(pc, csize)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            hfs.wait_for(lambda: _requests(victim, "PUT", 200) >= 4, 60,
                         "4 acknowledged chunks", interval=0.005)
            chunks_acked = _requests(victim, "PUT", 200)
            got0 = _received(others)
            assert chunked.poll() is None, "chunked upload ended too soon"
            assert not tus.done and not plain.done, "uploads ended too soon"
            c.kill9(victim)
            tus.gate.set()
            plain.gate.set()
            out, err = chunked.communicate(timeout=120)
            assert chunked.returncode == 0, (out, err)
            tus.join(120)
            plain.join(120)
        finally:
            tus.gate.set()
            plain.gate.set()
            if chunked is not None and chunked.poll() is None:
                chunked.kill()
                chunked.wait()
        for cl in (tus, plain):
            assert cl.error is None, cl.error
            # (failures may be 0: a request that finds its node dead before
            # connecting is redispatched by HAProxy, the client never knows)
            assert cl.done, cl.path
            assert not cl.lost, "%s: acknowledged bytes lost: %r" % (
                cl.path, cl.lost)
        # Nothing the server had acknowledged was sent again: the survivors
        # received at most what was not acknowledged, plus what was in
        # flight (2 chunks of hmac-upload, a piece of each other client).
        left = ((csize - chunks_acked * CHUNK) + (tsize - tus_acked) +
                (psize - plain.durable))
        got = _received(others) - got0
        assert got <= left + 3 * MiB, (
            "survivors received %d bytes, %d were not acknowledged"
            % (got, left))
        print("measured: survivors received %.1f MiB after the kill, "
              "%.1f MiB were unacknowledged" % (got / MiB, left / MiB))
        shas = {pc: hfs.sha256_file(local), pt: hfs.sha256(tus.data),
                pp: hfs.sha256(plain.data)}
        os.unlink(local)
        shas.update({p: hfs.sha256(d) for p, d in old.items()})
        for p, sha in shas.items():
            for n in others + [c]:
                assert _sha_of(n.url(p)) == sha, (p, n.port)
        # Restarted, the dead node publishes nothing again: each file is
        # the one inode it was.
        inodes = {p: _inode(c, p) for p in (pc, pt, pp)}
        c.restart(victim)
        assert "stored kill/" not in victim.log().split(
            "recovery:")[-1], victim.log_tail()
        assert {p: _inode(c, p) for p in (pc, pt, pp)} == inodes
        for p in (pc, pt, pp):
            assert _sha_of(victim.url(p)) == shas[p], p


def _chunk(d, path, data, a, b, sid):
    return _try(lambda: tr.put_chunk(d, path, data, a, b, sid))


def _chunk_retried(d, path, data, a, b, sid, tries=25):
    """A chunk sent again after a 502/503/reset, as a client would: the
    first answer that is not one of those."""
    for _ in range(tries):
        r = _chunk(d, path, data, a, b, sid)
        if r is not None and r.status not in (502, 503):
            return r
        time.sleep(0.2)
    raise AssertionError("%s [%d, %d): still %r after %d tries"
                         % (path, a, b, r, tries))


def _tus_retried(front, loc, off, body, tries=25):
    for _ in range(tries):
        r = _try(lambda: _tus_patch(front, loc, off, body))
        if r is not None and r.status not in (502, 503):
            return r
        time.sleep(0.2)
    raise AssertionError("tus PATCH at %d: still %r" % (off, r))


@hfs.timeout(150)
def test_takeover_race_and_restart():
    """Sessions of a node that is killed are taken over; two nodes asked
    for one of them at once: exactly one writes. The dead node restarted
    leaves the sessions to their new owners (no resurrection, no second
    publication) and HAProxy keeps their uploads there."""
    if not cluster.daemon_knows_cluster():
        raise hfs.Skip("the daemon has no cluster.node_id yet")
    with cluster.Cluster(nodes=3) as c:
        x, (pc, pt) = _same_node_paths(c, 2, "move")
        y, z = [n for n in c.nodes if n is not x]
        size = 8 * CHUNK
        cdata = hfs.det_bytes(size, seed=21)
        tdata = hfs.det_bytes(size, seed=22)
        rdata = hfs.det_bytes(size, seed=23)
        # A chunked and a tus upload through HAProxy, half done on x;
        # a third session sent to x directly, for the race.
        for i in range(4):
            r = _chunk(c, pc, cdata, i * CHUNK, (i + 1) * CHUNK, "mv-c")
            assert r is not None and r.status == 200, r
        loc = _tus_create(c, pt, size)
        for off in range(0, 4 * CHUNK, CHUNK):
            assert _tus_patch(c, loc, off, tdata[off:off + CHUNK]).status \
                == 204
        r = _chunk(x, "race/r.bin", rdata, 0, CHUNK, "race")
        assert r is not None and r.status == 200, r
        # While x lives, the others refuse its session: it is x's.
        r = _chunk(y, "race/r.bin", rdata, CHUNK, 2 * CHUNK, "race")
        assert r is not None and r.status == 503, r
        assert x.name.encode() in r.body, r.body
        c.kill9(x)

        # The race: y and z asked for x's session at the same moment.
        barrier = threading.Barrier(2)
        got = {}

        def send(n, a):
            barrier.wait()
            got[n.name] = _chunk(n, "race/r.bin", rdata, a, a + CHUNK,
                                 "race")
        ts = [threading.Thread(target=send, args=(n, a))
              for n, a in ((y, CHUNK), (z, 2 * CHUNK))]
        [t.start() for t in ts]
        [t.join(60) for t in ts]
        status = {k: (v.status if v is not None else None)
                  for k, v in got.items()}
        winners = [k for k, v in status.items() if v == 200]
        assert len(winners) == 1, status
        loser = z if winners[0] == y.name else y
        assert status[loser.name] == 503, status
        winner = c.node(winners[0])
        for i in range(1, 8):
            r = _chunk_retried(winner, "race/r.bin", rdata, i * CHUNK,
                               (i + 1) * CHUNK, "race")
            assert r.status == (201 if i == 7 else 200), (i, r)
        assert _sha_of(loser.url("race/r.bin")) == hfs.sha256(rdata)

        # The uploads go on through HAProxy on another node...
        for i in range(4, 6):
            r = _chunk_retried(c, pc, cdata, i * CHUNK, (i + 1) * CHUNK,
                               "mv-c")
            assert r.status == 200, r
            assert tr.held_of(r) == [(0, (i + 1) * CHUNK)], r
        for off in range(4 * CHUNK, 6 * CHUNK, CHUNK):
            r = _tus_retried(c, loc, off, tdata[off:off + CHUNK])
            assert r.status == 204, r
        # ... and stay there once x is back: x leaves them to their owners.
        c.restart(x)
        after = x.log().split("started 2 worker")[-2]
        assert "owned by other cluster nodes" in after, x.log_tail()
        for i in range(6, 8):
            r = _chunk_retried(c, pc, cdata, i * CHUNK, (i + 1) * CHUNK,
                               "mv-c")
            assert r.status == (201 if i == 7 else 200), (i, r)
        for off in range(6 * CHUNK, size, CHUNK):
            r = _tus_retried(c, loc, off, tdata[off:off + CHUNK])
            assert r.status == 204, r
        for p, data in ((pc, cdata), (pt, tdata), ("race/r.bin", rdata)):
            for n in c.nodes + [c]:
                assert _sha_of(n.url(p)) == hfs.sha256(data), (p, n.port)
            assert ("stored %s " % p) not in x.log(), p


@hfs.timeout(120)
def test_stalled_mount_keeps_its_sessions():
    """A node whose Gluster client stalls (its side of a partition from the
    volume: SIGSTOP of its FUSE process, the bricks still see it alive)
    keeps its sessions' locks: another node asked for one answers 503 and
    writes nothing. When the client runs again, the node's stalled chunk
    completes and the upload finishes there, published once."""
    if not cluster.daemon_knows_cluster():
        raise hfs.Skip("the daemon has no cluster.node_id yet")
    with cluster.Cluster(nodes=3) as c:
        x, y = c.nodes[0], c.nodes[1]
        data = hfs.det_bytes(4 * CHUNK, seed=31)
        path = "stall/s.bin"
        for i in range(2):
            r = _chunk(x, path, data, i * CHUNK, (i + 1) * CHUNK, "stall")
            assert r is not None and r.status == 200, r
        fuse = c.gluster.mount_pid(x.mount)
        got = {}
        os.kill(fuse, signal.SIGSTOP)
        try:
            t = threading.Thread(target=lambda: got.setdefault(
                "x", _chunk(x, path, data, 2 * CHUNK, 3 * CHUNK, "stall")))
            t.start()
            time.sleep(1.0)             # x's worker is now stuck in Gluster
            assert t.is_alive(), got
            r = _chunk(y, path, data, 2 * CHUNK, 3 * CHUNK, "stall")
            assert r is not None and r.status == 503, r
            assert x.name.encode() in r.body, r.body
        finally:
            os.kill(fuse, signal.SIGCONT)
        t.join(60)
        assert got["x"] is not None and got["x"].status == 200, got
        r = _chunk_retried(x, path, data, 3 * CHUNK, 4 * CHUNK, "stall")
        assert r.status == 201, r
        for n in c.nodes:
            assert _sha_of(n.url(path)) == hfs.sha256(data), n.name
        assert ("stored %s " % path) not in y.log()
