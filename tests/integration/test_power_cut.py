"""Power-cut torture: the daemon's storage and staging on powerfs
(tests/powerfs), a FUSE filesystem that loses every write and name change
not yet fsynced, as a power cut may.

test_cut_after_ack: each kind of upload (one-shot PUT into new directories,
a plain PUT large enough to be a session, chunked, tus), with a power cut
dropping everything unsynced right after each acknowledgement. Each sync the
publish and commit paths rely on is needed for one of these checks to pass;
`make power-cut-sites` shows it by skipping one at a time
(tests/power_cut_sites.sh, results in docs/recovery.md).

test_power_cut_torture: concurrent plain PUTs, chunked sessions and tus
uploads; at random moments every daemon process is SIGKILLed at once, the
unsynced state is dropped (all of it, or a random part torn at 4 KiB
pages), the filesystem is mounted again and the daemon restarted on what
survived. After each cut, asserted:
  - every upload acknowledged 200/201 is published and byte-identical;
  - every chunk acknowledged 200 is still held (status HEAD), every tus
    offset acknowledged 204 is still reached, every acknowledged creation
    still exists, unless the file is published, whole;
  - every file under storage.dir is one of the uploads, whole (size always,
    SHA-256 for the recent ones and a sample of the older ones);
  - recovery started the daemon, logged no corruption and left no garbage
    in staging (no one-shot file, no session directory that is not
    exactly data + manifest).
Clients resume after each cut (status, then only what is missing) and at
the end every upload finishes; after a clean restart no session is left but
those of tus creations whose 201 was never received.

HFS_POWER_CUTS (default 20 in make check; `make power-cut` runs 250),
HFS_POWER_CUT_SEED, HFS_POWER_CUT_REPORT=<file> (JSON results)."""

import json
import os
import random
import threading
import time
import traceback

import hfs
import powerfs
from powerfs import PowerRig
from test_resume import MiB, chunk_bounds, chunk_head, covers, held_of

CUTS = int(os.environ.get("HFS_POWER_CUTS", "20"))
SEED = int(os.environ.get("HFS_POWER_CUT_SEED", "20261205"))
BUDGET_S = int(os.environ.get("HFS_POWER_CUT_BUDGET", "240"))
BAD_LOG = ("is corrupt", "did not match the data")
TUS = [("Tus-Resumable", "1.0.0")]
KiB = 1024


def need_powerfs():
    why = powerfs.available()
    if why:
        raise hfs.Skip(why)


def bad_log_lines(text):
    return [ln for ln in text.splitlines()
            if any(m in ln for m in hfs.SANITIZER_MARKERS + BAD_LOG)]


# ---------------------------------------------------------------- uploads

class Upload:
    """One file and what the server acknowledged about it."""

    kind = "?"

    def __init__(self, t, n, size):
        self.t = t
        self.path = "pc%d/%s/%d/f%d.bin" % (t.seed, self.kind, n % 7, n)
        self.data = random.Random(t.seed * 1000 + n).randbytes(size)
        self.total = size
        self.sha = hfs.sha256(self.data)
        self.done = False           # published (and the client knows it)
        self.acked_publish = False  # a 200/201/204 said "stored"
        self.need_status = False
        self.published_cut = None   # cut count when it was acknowledged
        self.rng = random.Random(t.seed * 7 + n)

    def published_ok(self, d, what):
        g = d.get(self.path)
        if g.status == 200 and hfs.sha256(g.body) == self.sha:
            return True
        if g.status == 200:
            self.t.fail("%s %s: GET gives %d bytes, not the upload (%d)"
                        % (what, self.path, len(g.body), self.total))
        return False

    def mark_published(self):
        self.done = True
        self.acked_publish = True
        self.published_cut = self.t.cuts

    def verify(self, d):
        """After a cut: what was acknowledged is still there."""
        if self.acked_publish and not self.published_ok(d, "acknowledged"):
            self.t.fail("%s %s: acknowledged as stored, lost after cut %d"
                        % (self.kind, self.path, self.t.cuts))


class Put(Upload):
    kind = "put"

    def step(self, d):
        r = d.put(self.path, self.data)
        if r.status in (200, 201):
            self.mark_published()
        elif r.status == 503:
            time.sleep(0.05)
        else:
            self.t.fail("PUT %s: %r" % (self.path, r))
            self.done = True


class Chunked(Upload):
    kind = "chunked"
    CHUNK = 256 * KiB

    def __init__(self, t, n, size):
        super().__init__(t, n, size)
        self.sid = "pc-%d-%d" % (t.seed, n)
        self.chunks = chunk_bounds(size, self.CHUNK)
        self.acked = set()
        self.held = []

    def status(self, d, what):
        hs = [("X-Upload-Session-ID", self.sid)]
        r = d.request("HEAD", d.put_target(self.path, self.total), hs)
        if r.status == 200:
            held = held_of(r)
            lost = sorted(k for k in self.acked
                          if not covers(held, *self.chunks[k]))
            if lost:
                self.t.fail("%s %s: chunks %s acknowledged, not held (%s)"
                            % (what, self.path, lost,
                               r.header("X-Upload-Ranges")))
            self.held = held
            if held == [(0, self.total)] and self.published_ok(d, what):
                self.done = True
        elif r.status == 404:
            if self.published_ok(d, what):
                self.done = True
            elif self.acked:
                self.t.fail("%s %s: session with acknowledged chunks %s "
                            "is gone" % (what, self.path, sorted(self.acked)))
            self.held = []
        else:
            self.t.fail("%s %s: status %r" % (what, self.path, r))

    def verify(self, d):
        super().verify(d)
        if not self.done:
            self.status(d, "after cut %d" % self.t.cuts)

    def step(self, d):
        if self.need_status:
            self.need_status = False
            self.status(d, "resume")
            return
        missing = [k for k, (a, b) in enumerate(self.chunks)
                   if not covers(self.held, a, b)]
        if not missing:
            # All held but not published: re-sending a chunk finishes it.
            missing = [len(self.chunks) - 1]
        k = self.rng.choice(missing)
        a, b = self.chunks[k]
        target, hs = chunk_head(d, self.path, self.data, a, b, self.sid)
        r = d.put_stream(target, self.data[a:b], hs)
        if r.status == 200:
            self.acked.add(k)
            if r.header("Upload-Offset") is not None:
                self.held = held_of(r)
            if self.held == [(0, self.total)]:
                self.mark_published()   # an answer for a published file
        elif r.status == 201:
            self.acked.add(k)
            self.mark_published()
        elif r.status == 503:
            time.sleep(0.05)
        else:
            self.t.fail("chunk %d of %s: %r" % (k, self.path, r))
            self.need_status = True


class Tus(Upload):
    kind = "tus"
    PIECE = 192 * KiB

    def __init__(self, t, n, size):
        super().__init__(t, n, size)
        self.url = None
        self.off = 0
        self.acked_off = 0

    def head(self, d, what):
        r = d.request("HEAD", self.url, TUS)
        if r.status == 200:
            srv = int(r.header("Upload-Offset"))
            if srv < self.acked_off:
                self.t.fail("%s %s: offset %d acknowledged, now %d"
                            % (what, self.path, self.acked_off, srv))
            self.off = srv
            if srv == self.total and self.published_ok(d, what):
                self.done = True
        elif r.status == 404:
            # A finished upload's session is gone after a restart; the
            # file must then be there. Otherwise the creation was lost.
            if self.published_ok(d, what):
                self.done = True
            else:
                self.t.fail("%s %s: acknowledged tus upload is gone (%d "
                            "bytes acknowledged)" % (what, self.path,
                                                     self.acked_off))
                self.url = None         # start over, to let the run go on
                self.off = self.acked_off = 0
        else:
            self.t.fail("%s %s: HEAD %r" % (what, self.path, r))

    def verify(self, d):
        super().verify(d)
        if not self.done and self.url is not None:
            self.head(d, "after cut %d" % self.t.cuts)

    def step(self, d):
        if self.url is None:
            self.t.count("tus_posts")
            r = d.request("POST", d.put_target(self.path, self.total),
                          TUS + [("Upload-Length", str(self.total)),
                                 ("Content-Length", "0")])
            if r.status == 201:
                self.url = r.header("Location")
                self.off = int(r.header("Upload-Offset"))
                self.t.count("tus_posts_acked")
            elif r.status == 503:
                time.sleep(0.05)
            else:
                self.t.fail("tus POST %s: %r" % (self.path, r))
                self.done = True
            return
        if self.need_status:
            self.need_status = False
            self.head(d, "resume")
            return
        n = min(self.PIECE, self.total - self.off)
        r = d.request("PATCH", self.url,
                      TUS + [("Upload-Offset", str(self.off)),
                             ("Content-Type",
                              "application/offset+octet-stream")],
                      self.data[self.off:self.off + n])
        if r.status == 204:
            self.off = self.acked_off = int(r.header("Upload-Offset"))
            if self.off == self.total:
                self.mark_published()
        elif r.status in (409, 503):
            self.need_status = True
            time.sleep(0.05)
        else:
            self.t.fail("tus PATCH %s at %d: %r" % (self.path, self.off, r))
            self.need_status = True


KINDS = {
    "put": (Put, (3 * KiB, 70 * KiB, 300 * KiB, 700 * KiB)),
    "chunked": (Chunked, (700 * KiB, MiB + 3, 2 * MiB - 5)),
    "tus": (Tus, (400 * KiB + 1, MiB, 1536 * KiB)),
}


# ---------------------------------------------------------------- clients

class Client(threading.Thread):
    def __init__(self, t, kind):
        super().__init__(daemon=True)
        self.t = t
        self.kind = kind
        self.upload = None
        self.quiet = False
        self.parked_gen = -1

    def run(self):
        t = self.t
        while t.gate(self):
            u = self.upload
            if u is None or u.done:
                if t.finishing:
                    self.upload = None
                    with t.cv:
                        self.parked_gen = t.gen     # nothing more to do
                    continue
                u = self.upload = t.new_upload(self.kind)
            try:
                u.step(t.rig.d)
            except (OSError, EOFError, ValueError):
                u.need_status = True
                with t.cv:
                    self.parked_gen = t.gen      # the daemon is down
            except Exception:
                t.fail("client %s: %s" % (self.kind, traceback.format_exc()))
                with t.cv:
                    self.parked_gen = t.gen


class Torture:
    def __init__(self, rig, seed):
        self.rig = rig
        self.seed = seed
        self.rng = random.Random(seed)
        self.cv = threading.Condition()
        self.running = False
        self.stop = False
        self.finishing = False
        self.gen = 0
        self.cuts = 0
        self.n = 0
        self.uploads = []
        self.failures = []
        self.counts = {}
        self.clients = [Client(self, k) for k in
                        ("put", "put", "chunked", "chunked", "tus", "tus")]

    def fail(self, msg):
        with self.cv:
            self.failures.append("cut %d: %s" % (self.cuts, msg))

    def count(self, key, n=1):
        with self.cv:
            self.counts[key] = self.counts.get(key, 0) + n

    def new_upload(self, kind):
        cls, sizes = KINDS[kind]
        with self.cv:
            self.n += 1
            n = self.n
        u = cls(self, n, self.rng.choice(sizes))
        with self.cv:
            self.uploads.append(u)
        return u

    def gate(self, c):
        """Blocks while paused, or after the client met the dead daemon
        until the next generation; False when the test is over."""
        with self.cv:
            c.quiet = True
            self.cv.notify_all()
            while not self.stop and (not self.running
                                     or c.parked_gen == self.gen):
                self.cv.wait(0.2)
            c.quiet = False
            return not self.stop

    def resume(self):
        with self.cv:
            self.gen += 1
            self.running = True
            self.cv.notify_all()

    def pause(self):
        with self.cv:
            self.running = False

    def wait_quiet(self, timeout=30):
        deadline = time.monotonic() + timeout
        with self.cv:
            while not all(c.quiet for c in self.clients):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("clients did not stop")
                self.cv.wait(min(left, 0.2))

    def all_idle(self):
        with self.cv:
            return all(c.upload is None or c.upload.done
                       for c in self.clients)

    # -- the checks after each cut

    def verify(self, log_from, full=False):
        rig, d = self.rig, self.rig.d
        log = d.log()[log_from:]
        for ln in bad_log_lines(log):
            self.fail("log: " + ln)
        if "recovery:" not in log:
            self.fail("no recovery line in the log of the restart")
        for g in rig.staging_garbage():
            self.fail("staging garbage after recovery: " + g)
        by_path = {u.path: u for u in self.uploads}
        recent = {u.path for u in self.uploads
                  if not u.done or u.published_cut is None
                  or u.published_cut >= self.cuts - 2}
        sample = set(self.rng.sample(sorted(by_path), min(8, len(by_path))))
        for u in self.uploads:
            if full or u.path in recent or u.path in sample:
                u.verify(d)
            if u.done:
                u.data = None       # its SHA-256 and size are enough now
        for dirpath, _dirs, files in os.walk(rig.storage):
            for f in files:
                full_path = os.path.join(dirpath, f)
                rel = os.path.relpath(full_path, rig.storage)
                u = by_path.get(rel)
                if u is None:
                    self.fail("unexpected file in storage: " + rel)
                    continue
                size = os.path.getsize(full_path)
                if size != u.total:
                    self.fail("published %s has %d bytes of %d"
                              % (rel, size, u.total))
                elif (full or rel in recent or rel in sample) and \
                        hfs.sha256_file(full_path) != u.sha:
                    self.fail("published %s differs from the upload" % rel)
        self.count("verified_uploads", len(self.uploads))


def pick_p(rng):
    """Half the cuts lose everything unsynced; the others keep a random
    part of it, torn at 4 KiB pages."""
    return 0.0 if rng.random() < 0.5 else round(rng.uniform(0.2, 0.9), 2)


@hfs.timeout(BUDGET_S + 120)
def test_power_cut_torture():
    need_powerfs()
    t0 = time.monotonic()
    with PowerRig() as rig:
        t = Torture(rig, SEED)
        for c in t.clients:
            c.start()
        cut_kinds = {"all": 0, "partial": 0}
        try:
            for i in range(CUTS):
                if time.monotonic() - t0 > BUDGET_S:
                    raise AssertionError("over the time budget after %d of "
                                         "%d cuts" % (i, CUTS))
                t.resume()
                time.sleep(t.rng.uniform(0.05, 0.9))
                t.pause()
                mark = rig.log_mark()
                p = pick_p(t.rng)
                cut_kinds["partial" if p else "all"] += 1
                # Killed first: a client mid-request sees the cut now.
                powerfs.kill_all(rig.d)
                t.wait_quiet()
                rig.fs.cut(p, t.rng.randrange(1 << 30))
                rig.fs.mount()
                powerfs.start_again(rig.d)
                t.cuts += 1
                t.verify(mark)
            # No more cuts: every client finishes its upload.
            t.finishing = True
            t.resume()
            hfs.wait_for(t.all_idle, 90, "the clients to finish")
            t.pause()
            t.wait_quiet()
            for u in t.uploads:
                if not u.done:
                    t.fail("%s %s never finished" % (u.kind, u.path))
            mark = rig.log_mark()
            rig.d.stop()
            rig.d.start()
            t.verify(mark, full=True)
            left = rig.sessions()
            orphans = t.counts.get("tus_posts", 0) - \
                t.counts.get("tus_posts_acked", 0)
            if len(left) > orphans:
                t.fail("%d session(s) left after every upload finished, "
                       "only %d tus creation(s) went unanswered: %s"
                       % (len(left), orphans,
                          [rig.session_header(k) for k in left[:8]]))
        finally:
            with t.cv:
                t.stop = True
                t.cv.notify_all()
        acked = sum(1 for u in t.uploads if u.acked_publish)
        summary = {
            "cuts": t.cuts, "cuts_all_unsynced_lost": cut_kinds["all"],
            "cuts_partial_torn": cut_kinds["partial"],
            "uploads": len(t.uploads),
            "uploads_by_kind": {k: sum(1 for u in t.uploads if u.kind == k)
                                for k in KINDS},
            "acknowledged_published": acked,
            "failures": len(t.failures), "seed": SEED,
            "seconds": round(time.monotonic() - t0, 1),
        }
        print("power-cut torture: " + json.dumps(summary, sort_keys=True))
        if os.environ.get("HFS_POWER_CUT_REPORT"):
            with open(os.environ["HFS_POWER_CUT_REPORT"], "w") as f:
                json.dump(dict(summary, failure_lines=t.failures[:200]), f,
                          indent=1, sort_keys=True)
        assert not t.failures, "%d failure(s):\n  %s" % (
            len(t.failures), "\n  ".join(t.failures[:30]))
        assert t.cuts == CUTS


# ---------------------------------------------------------------- one cut
# after each acknowledgement, everything unsynced lost

def _cut(rig):
    mark = rig.log_mark()
    rig.power_cut(0.0, 1)
    log = rig.d.log()[mark:]
    assert not bad_log_lines(log), bad_log_lines(log)
    assert not rig.staging_garbage(), rig.staging_garbage()


def _assert_published(d, path, data, what):
    g = d.get(path)
    assert g.status == 200 and g.body == data, \
        "%s: GET %s after the cut: %d, %d of %d bytes%s" % (
            what, path, g.status, len(g.body), len(data),
            "" if g.status != 200 or len(g.body) != len(data)
            else " (other bytes)")


@hfs.timeout(180)
def test_cut_after_ack():
    need_powerfs()
    with PowerRig() as rig:
        d = rig.d
        # One-shot PUT into directories that do not exist yet.
        small = hfs.det_bytes(5000, 11)
        assert d.put("new/dirs/small.bin", small).status == 201
        _cut(rig)
        _assert_published(d, "new/dirs/small.bin", small, "one-shot PUT")

        # A plain PUT above resumable_min_size: a session under the hood.
        big = hfs.det_bytes(600 * KiB, 12)
        assert d.put("other/big.bin", big).status == 201
        _cut(rig)
        _assert_published(d, "other/big.bin", big, "session PUT")

        # Chunked: the first chunk's 200, then the 201.
        data = hfs.det_bytes(3 * 256 * KiB, 13)
        chunks = chunk_bounds(len(data), 256 * KiB)
        path, sid = "chunked/c.bin", "pc-ack-1"
        target, hs = chunk_head(d, path, data, *chunks[0], sid)
        assert d.put_stream(target, data[:256 * KiB], hs).status == 200
        _cut(rig)
        r = d.request("HEAD", d.put_target(path, len(data)),
                      [("X-Upload-Session-ID", sid)])
        assert r.status == 200 and covers(held_of(r), *chunks[0]), \
            "chunk 0 acknowledged, after the cut: %r %r" % (
                r, r.header("X-Upload-Ranges"))
        for a, b in chunks[1:]:
            target, hs = chunk_head(d, path, data, a, b, sid)
            r = d.put_stream(target, data[a:b], hs)
        assert r.status == 201, r
        _cut(rig)
        _assert_published(d, path, data, "chunked")

        # tus: the creation's 201, a PATCH's 204, the last PATCH's 204.
        data = hfs.det_bytes(600 * KiB, 14)
        path = "tus/t.bin"
        r = d.request("POST", d.put_target(path, len(data)),
                      TUS + [("Upload-Length", str(len(data))),
                             ("Content-Length", "0")])
        assert r.status == 201, r
        url = r.header("Location")
        _cut(rig)
        r = d.request("HEAD", url, TUS)
        assert r.status == 200, "tus creation acknowledged, then %r" % r
        half = 300 * KiB
        hs = TUS + [("Content-Type", "application/offset+octet-stream")]
        r = d.request("PATCH", url, hs + [("Upload-Offset", "0")],
                      data[:half])
        assert r.status == 204, r
        _cut(rig)
        r = d.request("HEAD", url, TUS)
        assert r.status == 200 and int(r.header("Upload-Offset")) == half, \
            "offset %d acknowledged, then %r" % (half, r)
        r = d.request("PATCH", url, hs + [("Upload-Offset", str(half))],
                      data[half:])
        assert r.status == 204, r
        _cut(rig)
        _assert_published(d, path, data, "tus")
        assert rig.sessions() == [], rig.sessions()


@hfs.timeout(120)
def test_cut_after_ack_batch():
    """storage.sync = "batch" keeps the promise: one-shot PUTs answered by
    group commits (several at once, into directories that do not exist
    yet, some sharing one) are all there after a cut that drops everything
    unsynced."""
    need_powerfs()
    with PowerRig(**{"storage.sync": "batch",
                     "storage.sync_window_ms": 20}) as rig:
        d = rig.d
        files = {"g%d/s%d/f.bin" % (i % 3, i // 2): hfs.det_bytes(
            3000 + 977 * i, 40 + i) for i in range(0, 24, 2)}
        files.update({"g%d/flat%d.bin" % (i % 3, i): hfs.det_bytes(
            5000 + i, 80 + i) for i in range(6)})
        status = {}

        def put(path):
            status[path] = d.put(path, files[path]).status

        ts = [threading.Thread(target=put, args=(p,)) for p in files]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert all(s == 201 for s in status.values()), status
        m = d.metrics()
        assert 0 < m.get("hfs_sync_batches_total") <= len(files), m
        _cut(rig)
        for path, data in files.items():
            _assert_published(d, path, data, "one-shot PUT, batch")
