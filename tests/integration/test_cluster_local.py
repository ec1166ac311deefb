"""Cluster ownership without Gluster (docs/cluster.md): two or three
daemons on loopback, each its own node (own port, shm name, node_id),
sharing ONE local storage and staging directory.

What this proves is the daemon's side: one node at a time owns a session
(the other answers 503 naming it), a node killed with -9 mid-upload leaves
its sessions to the next node, which takes them over from the manifest
with every acknowledged range, a restarted node neither resurrects nor
re-publishes what it lost, and every node serves every published file.
tests/integration/test_cluster.py does the same on a real Gluster volume
behind HAProxy."""

import os
import shutil
import signal
import tempfile
import threading
import time
import urllib.parse

import hfs
from hfs import Daemon, build_request
import test_ietf as ti
import test_reload as tr_reload
import test_resume as tr
import test_tus as tt

MiB = 1 << 20


def exited(pid):
    """No thread of pid runs any more (gone, or a zombie with no threads
    left but its leader)."""
    st = hfs.proc_stat(pid)
    if st is None:
        return True
    try:
        return st[0] in ("Z", "X") and \
            os.listdir("/proc/%d/task" % pid) in ([], [str(pid)])
    except OSError:
        return True


class Cluster:
    """Nodes node-a, node-b, ... sharing one storage and staging dir."""

    def __init__(self, n=2, workers=2):
        self.shared = tempfile.mkdtemp(prefix="hfs-it-cluster-")
        self.storage = os.path.join(self.shared, "storage")
        self.staging = os.path.join(self.shared, "staging")
        os.makedirs(self.storage)
        os.makedirs(self.staging)
        self.workers = workers
        self.all = []
        self.nodes = []
        try:
            for i in range(n):
                self.nodes.append(self.start("node-" + "abc"[i]))
        except BaseException:
            self.close()
            raise

    def start(self, node_id):
        d = Daemon(check_exit=False, **{
            "storage.dir": self.storage, "storage.staging": self.staging,
            "cluster.node_id": node_id, "server.workers": self.workers})
        d.node_id = node_id
        self.all.append(d)
        return d

    def kill9(self, d):
        """Every process of the node at once, as a crash would; returns
        once every thread of them is gone (a killed process's group leader
        is a zombie while its other threads still exit, holding its open
        files, hence its locks, a moment longer)."""
        pids = d.group_pids()
        os.killpg(d.pid, signal.SIGKILL)
        d.proc.wait(10)
        hfs.wait_for(lambda: all(exited(p) for p in pids), 10,
                     "node processes gone")
        d.killed = True

    def close(self):
        problems = []
        for d in self.all:
            p = d.stop()
            if p and not getattr(d, "killed", False):
                problems += ["%s: %s" % (d.node_id, x) for x in p]
                print("---- %s log\n%s" % (d.node_id, d.log_tail(60)))
            d.cleanup()
        shutil.rmtree(self.shared, True)
        assert not problems, "; ".join(problems)

    def __enter__(self):
        return self

    def __exit__(self, etype, exc, tb):
        if etype is not None:
            for d in self.all:
                print("---- %s log tail\n%s" % (d.node_id, d.log_tail(30)))
        self.close()
        return False

    def owner_files(self):
        """.owner files left in staging (none once every session ended)."""
        out = []
        for fan in os.listdir(self.staging):
            p = os.path.join(self.staging, fan)
            if len(fan) == 2 and os.path.isdir(p):
                out += [n for n in os.listdir(p) if n.endswith(".owner")]
        return out

    def sessions_on_disk(self):
        """Session directories left in staging."""
        out = []
        for fan in os.listdir(self.staging):
            p = os.path.join(self.staging, fan)
            if len(fan) == 2 and os.path.isdir(p):
                out += [n for n in os.listdir(p)
                        if os.path.isdir(os.path.join(p, n))]
        return out


def held(r):
    return tr.held_of(r)


def chunk(d, path, data, a, b, sid):
    return tr.put_chunk(d, path, data, a, b, sid)


def start_chunk(d, path, data, a, b, sid, send):
    """A chunk request whose body stops after `send` bytes (in flight)."""
    c = d.conn(timeout=15)
    target, hs = tr.chunk_head(d, path, data, a, b, sid)
    req = build_request("PUT", target, hs, data[a:b])
    c.send(req[:len(req) - (b - a) + send])
    return c


def assert_elsewhere(r, owner, what):
    assert r.status == 503, "%s: want 503 from a non-owner, got %r" % (what, r)
    assert r.header("Retry-After"), "%s: 503 without Retry-After" % what
    if r.body:
        assert b"cluster node" in r.body or b"taken over" in r.body, r.body
        if b"owned by" in r.body:
            assert owner.encode() in r.body, r.body


@hfs.timeout(60)
def test_get_from_every_node():
    with Cluster(3) as cl:
        a, b, c = cl.nodes
        small = hfs.det_bytes(3000, seed=1)
        big = hfs.det_bytes(3 * MiB, seed=2)       # a checkpointed session
        assert a.put("every/small.bin", small).status == 201
        assert b.put("every/big.bin", big).status == 201
        for d in cl.nodes:
            assert d.get("every/small.bin").body == small, d.node_id
            g = d.get("every/big.bin")
            assert g.status == 200 and hfs.sha256(g.body) == hfs.sha256(big)
            # Status requests of published or unknown uploads, on a node
            # that never had them: answered, and no owner file left.
            r = tr.status(d, "every/big.bin", len(big))
            assert r.status in (200, 404), r
            r = tr.status(d, "every/none.bin", 10, sid="nobody")
            assert r.status == 404, r
            r = tt.head(d, "/.tus/" + "0" * 32)
            assert r.status == 404, r
        assert cl.sessions_on_disk() == []
        assert cl.owner_files() == []


@hfs.timeout(90)
def test_two_nodes_race_for_one_session():
    """Requests of one chunked session sent to both nodes at once: the
    first to take the owner lock writes, the other answers 503 naming it,
    for the whole session; the file is intact."""
    with Cluster(2) as cl:
        a, b = cl.nodes
        for round_ in range(4):
            path = "race/f%d.bin" % round_
            data = hfs.det_bytes(4 * MiB, seed=10 + round_)
            sid = "race-%d" % round_
            bounds = tr.chunk_bounds(len(data), MiB)
            owner = None
            answers = []
            for i, (lo, hi) in enumerate(bounds):
                res = {}

                def send(d, key):
                    res[key] = chunk(d, path, data, lo, hi, sid)
                ts = [threading.Thread(target=send, args=(d, d.node_id))
                      for d in (a, b)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join(30)
                ok = [k for k, r in res.items() if r.status in (200, 201)]
                owner = owner or (ok[0] if len(ok) == 1 else None)
                assert owner in ok, "chunk %d: %r" % (i, res)
                other = [k for k in res if k != owner][0]
                if res[other].status == 200 and i == len(bounds) - 1:
                    # It came after the owner published (and let go): the
                    # file answers, identical; nothing written again.
                    assert res[owner].status == 201, res
                else:
                    assert_elsewhere(res[other], owner, "chunk %d" % i)
                answers.append(res[owner].status)
            assert answers[-1] == 201, answers
            for d in cl.nodes:
                assert hfs.sha256(d.get(path).body) == hfs.sha256(data)
        assert cl.sessions_on_disk() == []
        assert cl.owner_files() == []


@hfs.timeout(90)
def test_kill9_owner_mid_chunked_upload_other_node_finishes():
    with Cluster(2) as cl:
        a, b = cl.nodes
        path, sid = "kill/chunked.bin", "kill-1"
        data = hfs.det_bytes(8 * MiB, seed=3)
        acked = []
        for lo, hi in tr.chunk_bounds(4 * MiB, MiB):
            r = chunk(a, path, data, lo, hi, sid)
            assert r.status == 200, r
            acked.append((lo, hi))
        inflight = start_chunk(a, path, data, 4 * MiB, 5 * MiB, sid, MiB // 2)
        cl.kill9(a)
        inflight.close()
        st = tr.status(b, path, len(data), sid)
        assert st.status == 200, st
        have = held(st)
        for lo, hi in acked:
            assert tr.covers(have, lo, hi), \
                "acknowledged %d-%d lost in the takeover: %r" % (lo, hi, have)
        last = None
        for lo, hi in tr.chunk_bounds(len(data), MiB):
            if tr.covers(have, lo, hi):
                continue
            last = chunk(b, path, data, lo, hi, sid)
            assert last.status in (200, 201), last
        assert last is not None and last.status == 201, last
        assert hfs.sha256(b.get(path).body) == hfs.sha256(data)
        assert "took over session" in b.log()
        assert cl.sessions_on_disk() == []
        assert cl.owner_files() == []


@hfs.timeout(90)
def test_kill9_owner_mid_tus_upload_other_node_finishes():
    with Cluster(2) as cl:
        a, b = cl.nodes
        data = hfs.det_bytes(6 * MiB, seed=4)
        r = tt.create(a, "kill/tus.bin", len(data))
        assert r.status == 201, r
        loc = urllib.parse.urlsplit(r.header("Location")).path
        acked = 0
        for lo in (0, 2 * MiB):
            r = tt.patch(a, loc, lo, data[lo:lo + 2 * MiB])
            assert r.status == 204, r
            acked = int(r.header("Upload-Offset"))
        assert acked == 4 * MiB
        c = a.conn(timeout=15)
        req = build_request("PATCH", loc, [tt.TUS, tt.OCTET,
                                           ("Upload-Offset", str(acked))],
                            data[acked:])
        c.send(req[:len(req) - len(data) + acked + MiB])
        cl.kill9(a)
        c.close()
        r = tt.head(b, loc)
        assert r.status == 200, r
        off = int(r.header("Upload-Offset"))
        assert acked <= off <= 5 * MiB, \
            "offset %d after the takeover, %d was acknowledged" % (off, acked)
        r = tt.patch(b, loc, off, data[off:])
        assert r.status == 204, r
        assert r.header("Upload-Offset") == str(len(data))
        assert hfs.sha256(b.get("kill/tus.bin").body) == hfs.sha256(data)
        # The restarted owner's view: complete, not resurrected.
        a2 = cl.start("node-a")
        r = tt.head(a2, loc)
        assert r.status in (200, 404), r
        if r.status == 200:
            assert r.header("Upload-Offset") == str(len(data))


@hfs.timeout(120)
def test_restarted_node_does_not_resurrect_or_double_publish():
    with Cluster(2) as cl:
        a, b = cl.nodes
        d1 = hfs.det_bytes(4 * MiB, seed=5)
        d2 = hfs.det_bytes(4 * MiB, seed=6)
        p1, p2 = "restart/kept-by-b.bin", "restart/published-by-b.bin"
        for path, data, sid in ((p1, d1, "r-1"), (p2, d2, "r-2")):
            for lo, hi in tr.chunk_bounds(2 * MiB, MiB):
                assert chunk(a, path, data, lo, hi, sid).status == 200
        cl.kill9(a)
        # b takes both over: finishes p2, keeps p1 open (it owns it now).
        for lo, hi in tr.chunk_bounds(len(d2), MiB):
            r = chunk(b, p2, d2, lo, hi, "r-2")
            assert r.status in (200, 201), r
        assert r.status == 201, r
        r = chunk(b, p1, d1, 2 * MiB, 3 * MiB, "r-1")
        assert r.status == 200, r
        published = os.stat(os.path.join(cl.storage, p2))
        left = cl.sessions_on_disk()
        assert len(left) == 1, left

        # An owner file no session goes with (its node died between
        # removing the session and the file): the restart sweeps it.
        orphan = os.path.join(cl.staging, "ab", "ab" + "0" * 62 + ".owner")
        os.makedirs(os.path.dirname(orphan), exist_ok=True)
        open(orphan, "w").close()
        a2 = cl.start("node-a")
        assert "owned by other cluster nodes" in a2.log(), a2.log_tail()
        assert not os.path.exists(orphan), "orphan owner file kept"
        assert os.path.exists(os.path.join(
            cl.staging, left[0][:2], left[0] + ".owner")), \
            "b's session's owner file swept"
        assert cl.sessions_on_disk() == left, "restart touched b's session"
        # Not resurrected: p1 is b's; a2 says so and writes nothing.
        r = tr.status(a2, p1, len(d1), "r-1")
        assert r.status == 503, r
        r = chunk(a2, p1, d1, 3 * MiB, 4 * MiB, "r-1")
        assert_elsewhere(r, "node-b", "restarted node, b's session")
        # Not published twice: p2 is there once, untouched; a late chunk
        # of it to the restarted node is answered as stored.
        r = chunk(a2, p2, d2, 0, MiB, "r-2")
        assert r.status in (200, 201), r
        again = os.stat(os.path.join(cl.storage, p2))
        assert (again.st_ino, again.st_mtime_ns) == \
            (published.st_ino, published.st_mtime_ns), "p2 published again"
        r = chunk(b, p1, d1, 3 * MiB, 4 * MiB, "r-1")
        assert r.status == 201, r
        for d in (a2, b):
            assert hfs.sha256(d.get(p1).body) == hfs.sha256(d1)
            assert hfs.sha256(d.get(p2).body) == hfs.sha256(d2)
        assert cl.sessions_on_disk() == []


@hfs.timeout(90)
def test_kill9_owner_mid_ietf_upload_other_node_finishes():
    with Cluster(2) as cl:
        a, b = cl.nodes
        data = hfs.det_bytes(3 * MiB, seed=7)
        _, r = ti.create(a, "kill/ietf.bin", len(data), body=data[:MiB],
                         headers=[ti.PARTIAL])
        assert r.status == 201 and r.header("Upload-Offset") == str(MiB), r
        loc = urllib.parse.urlsplit(r.header("Location")).path
        r = ti.append(a, loc, MiB, data[MiB:2 * MiB], False)
        assert r.status == 204, r
        cl.kill9(a)
        r = ti.head(b, loc)
        assert r.status == 204, r
        off = int(r.header("Upload-Offset"))
        assert off == 2 * MiB, "acknowledged 2 MiB, now %d" % off
        r = ti.append(b, loc, off, data[off:], True)
        assert r.status == 201, r
        assert hfs.sha256(b.get("kill/ietf.bin").body) == hfs.sha256(data)


@hfs.timeout(90)
def test_node_id_reload():
    """cluster.node_id is reloadable: after SIGHUP the new workers own
    sessions under the new name, and a session the old workers held
    continues once they are gone."""
    with Cluster(2) as cl:
        a, b = cl.nodes
        data = hfs.det_bytes(3 * MiB, seed=8)
        path, sid = "reload/f.bin", "reload-1"
        assert chunk(a, path, data, 0, MiB, sid).status == 200
        old = a.wait_workers(2)
        gen = a.metrics().get("hfs_config_generation")
        a.cfg["cluster"]["node_id"] = "node-a2"
        tr_reload._write_conf(a)
        tr_reload._hup_and_wait(a, gen)
        a.wait_workers(2, exclude=old)
        assert chunk(a, path, data, MiB, 2 * MiB, sid).status == 200
        r = chunk(b, path, data, 2 * MiB, 3 * MiB, sid)
        assert_elsewhere(r, "node-a2", "after the reload")
        assert chunk(a, path, data, 2 * MiB, 3 * MiB, sid).status == 201
        assert hfs.sha256(b.get(path).body) == hfs.sha256(data)


@hfs.timeout(60)
def test_tus_delete_on_another_node():
    """tus DELETE sent to a node that does not own the upload: 503 while
    the owner lives (nothing removed), taken over and removed once it is
    dead."""
    with Cluster(2) as cl:
        a, b = cl.nodes
        data = hfs.det_bytes(2 * MiB, seed=9)
        r = tt.create(a, "del/tus.bin", len(data))
        assert r.status == 201, r
        loc = urllib.parse.urlsplit(r.header("Location")).path
        assert tt.patch(a, loc, 0, data[:MiB]).status == 204
        r = b.request("DELETE", loc, [tt.TUS])
        assert_elsewhere(r, "node-a", "DELETE on the other node")
        assert len(cl.sessions_on_disk()) == 1
        assert tt.offset_of(a, loc) == MiB
        cl.kill9(a)
        r = b.request("DELETE", loc, [tt.TUS])
        assert r.status == 204, r
        assert cl.sessions_on_disk() == [] and cl.owner_files() == []
        assert tt.head(b, loc).status in (404, 410)


@hfs.timeout(60)
def test_starting_node_leaves_other_nodes_uploads_alone():
    """A node starting sweeps leftover one-shot upload files (small and
    unknown-size uploads) from the staging root; in a cluster that root is
    shared, so it must leave another node's in-flight ones alone."""
    with Cluster(2) as cl:
        a, b = cl.nodes
        data = hfs.det_bytes(100 * 1024, seed=11)     # below resumable_min
        c = a.conn(timeout=15)
        c.send(build_request("PUT", a.put_target("sweep/small.bin",
                                                 len(data)), [], data)
               [:-len(data) // 2])
        hfs.wait_for(lambda: any(n.startswith("up-")
                                 for n in os.listdir(cl.staging)),
                     5, "a one-shot file in staging")
        cl.start("node-c")                 # its start sweeps staging
        c.send(data[len(data) - len(data) // 2:])
        r = c.read_response("PUT")
        c.close()
        assert r.status == 201, r
        assert b.get("sweep/small.bin").body == data


def owner_file(cl):
    names = [os.path.join(cl.staging, f[:2], f) for f in cl.owner_files()]
    assert len(names) == 1, names
    return names[0]


@hfs.timeout(60)
def test_node_that_lost_its_session_acknowledges_nothing():
    """The partition case (docs/cluster.md), without Gluster: node a owns a
    session; its ownership moves behind its back (here the owner file is
    given node-b's token, as b's takeover would write it once Gluster had
    dropped a's lock). a's next commit re-checks, answers 503 with
    Retry-After and acknowledges nothing; b, taking the session over, finds
    only what a had acknowledged before, and finishes it."""
    with Cluster(2, workers=1) as cl:
        a, b = cl.nodes
        path, sid = "moved/f.bin", "moved-1"
        data = hfs.det_bytes(3 * MiB, seed=12)
        assert chunk(a, path, data, 0, MiB, sid).status == 200
        # Half of the next chunk is being written when the session moves.
        c = start_chunk(a, path, data, MiB, 2 * MiB, sid, MiB // 2)
        dpath = os.path.join(os.path.dirname(owner_file(cl)),
                             os.path.basename(owner_file(cl))[:-6], "data")

        def writing():
            with open(dpath, "rb") as f:
                f.seek(MiB)
                return f.read(4096) == data[MiB:MiB + 4096]
        hfs.wait_for(writing, 10, "the chunk's first bytes in the data file")
        with open(owner_file(cl), "w") as f:
            f.write("0123456789abcdef node-b\n")
        c.send(data[MiB + MiB // 2:2 * MiB])
        r = c.read_response("PUT")
        c.close()
        assert r.status == 503, r
        assert r.header("Retry-After"), r
        assert b"node-b" in r.body, r.body
        assert "nothing acknowledged" in a.log()
        st = tr.status(b, path, len(data), sid)
        assert st.status == 200, st
        assert held(st) == [(0, MiB)], \
            "a refused chunk was acknowledged anyway: %r" % held(st)
        assert chunk(b, path, data, MiB, 2 * MiB, sid).status == 200
        assert chunk(b, path, data, 2 * MiB, 3 * MiB, sid).status == 201
        assert hfs.sha256(a.get(path).body) == hfs.sha256(data)
        assert cl.sessions_on_disk() == [] and cl.owner_files() == []


@hfs.timeout(120)
def test_status_head_during_plain_put():
    """Issue 14: status HEADs (signed URL, no session id) every 50 ms while
    a paced 16 MiB plain PUT of the same path streams. On a cluster node
    that PUT is a session (no deferred create), so the HEADs race its
    creation and then find it. The owning node's HEADs must answer what
    one node answers (404 before the session exists, 200 with the offset
    while it lives, 200 complete once published), never 500 or 503, and
    never disturb the writer: the PUT gets 201 and the file is intact.
    The other node's HEADs answer 503 (Retry-After) while node-a owns the
    session, 404 or 200 outside it. It failed when a HEAD that found no
    session yet removed the owner file the starting PUT had just joined:
    the PUT held a dead lock, the next HEAD took the session over and
    replaced the PUT's table entry, and the PUT was answered 500. Rounds:
    the race is at the PUT's start."""
    with Cluster(2, workers=2) as cl:
        a, b = cl.nodes
        for round_ in range(4):
            path = "headput/r%d.bin" % round_
            data = hfs.det_bytes(16 * MiB, seed=40 + round_)
            res = {}
            t = threading.Thread(target=lambda: res.setdefault(
                "put", a.put_stream(a.put_target(path, len(data)), data,
                                    pause=0.01, timeout=60)))
            seen = {"a": [], "b": []}
            seen["a"].append(tr.status(a, path, len(data)))
            t.start()
            i = 0
            while t.is_alive():
                d, name = (a, "a") if i % 3 else (b, "b")
                seen[name].append(tr.status(d, path, len(data)))
                i += 1
                time.sleep(0.05)
            t.join()
            r = res["put"]
            assert r.status == 201, "round %d: PUT got %r; node-a log:\n%s" % (
                round_, r, a.log_tail(20))
            for h in seen["a"]:
                assert h.status in (200, 404), \
                    "round %d: node-a HEAD got %r" % (round_, h)
            for h in seen["b"]:
                assert h.status in (200, 404, 503), \
                    "round %d: node-b HEAD got %r" % (round_, h)
                if h.status == 503:
                    assert_elsewhere(h, "node-a", "node-b HEAD")
            assert hfs.sha256(a.get(path).body) == hfs.sha256(data)
            assert hfs.sha256(b.get(path).body) == hfs.sha256(data)
        assert "took over" not in a.log(), a.log_tail(30)
        assert cl.sessions_on_disk() == [] and cl.owner_files() == []
