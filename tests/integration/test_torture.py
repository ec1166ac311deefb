"""Crash torture: resumable chunked uploads while workers and the master are
SIGKILLed at random moments.

Rounds of: several files uploaded in 1 MiB chunks (chunked-header protocol,
random order, several client threads on keep-alive connections) while
  - a killer thread SIGKILLs the worker serving a random client connection
    at random points of the round's progress (counted in acknowledged
    chunks, so the kills land mid-upload however fast the machine is), and
    once a round the master with all its children, then restarts the
    daemon on the same config and dirs;
  - for some files, the worker that receives the chunk completing the file
    is SIGKILLed a few milliseconds later: in its write, its commit or the
    publication (the windows a random kill rarely hits).
Clients back off, ask the server what it holds (HEAD + X-Upload-Session-ID
-> X-Upload-Ranges) and send only what it does not hold.

Asserted:
  - every file is published and byte-identical (sha256) to its source;
  - what the server reports held never shrinks, across worker and master
    crashes (each report includes every range reported before the request
    was sent), so a chunk acknowledged durable is never needed again;
  - every 200 answer to a chunk lists that chunk as held;
  - no session is lost (after every master restart a status still knows
    each unfinished session that had acknowledged bytes);
  - a session whose bytes are all held gets published, and its status
    says so, without the client re-sending anything (if it is not, the
    test re-sends the last chunk to see whether that finishes it, so the
    checks below still run, and reports both);
  - no staging file outlives completion and a final restart;
  - no sanitizer report and no corrupt or mismatched manifest in the log
    (the log file is appended to by every instance).
Randomness is seeded (HFS_TORTURE_SEED); the interleaving is not, so the
assertions are ones that must hold for every interleaving."""

import os
import random
import signal
import threading
import time
import traceback

import hfs
from hfs import Daemon, build_request
from test_resume import (MiB, chunk_bounds, chunk_request, covers, merge,
                         parse_ranges, poll)

SEED = int(os.environ.get("HFS_TORTURE_SEED", "20261125"))
ROUNDS = 5
SIZES = (8 * MiB + 1, 13 * MiB + 4097, 19 * MiB - 7, 24 * MiB)
CHUNK = MiB
THREADS = 6
WORKERS = 3
WORKER_KILLS = 3         # per round, at random points of progress
FINISH_KILLS = 3         # per round, as a file's last chunk goes out
BUDGET_S = 80            # whole test; the runner's limit is above this
PUBLISH_WAIT_S = 5       # for a fully held session to be published
BAD_LOG = ("is corrupt", "did not match the data")


def _contains(big, small):
    """Every byte of `small` (ranges) is in `big`."""
    return all(covers(big, a, b) for a, b in merge(small))


class Upload:
    def __init__(self, seed, rnd, idx, size):
        self.path = "t%d/r%d-%d.bin" % (seed, rnd, idx)
        self.sid = "tort-%d-%d-%d" % (seed, rnd, idx)
        self.data = hfs.det_bytes(size, seed=seed * 100 + rnd * 10 + idx)
        self.total = size
        self.sha = hfs.sha256(self.data)
        self.chunks = chunk_bounds(size, CHUNK)
        self.known = []          # union of every range reported held
        self.acked = set()       # chunk indexes acknowledged durable
        self.published = None   # what told us it is published
        self.finish_kill = None  # delay (s): kill when the last chunk goes
        self.lock = threading.Lock()

    def snapshot(self):
        with self.lock:
            return list(self.known)

    def report(self, rep, snap, what, failures):
        """A server report of held ranges, for a request sent when `snap`
        was known.  Held ranges only grow: the report must contain snap."""
        if not _contains(rep, snap):
            failures.append("%s %s: held ranges shrank: knew %r before the "
                            "request, server now reports %r" % (
                                self.path, what, snap, rep))
        with self.lock:
            self.known = merge(self.known + rep)

    def mark_published(self, snap, what, failures):
        self.report([(0, self.total)], snap, what, failures)
        with self.lock:
            if self.published is None:
                self.published = what

    def held(self, k):
        a, b = self.chunks[k]
        with self.lock:
            return self.published is not None or covers(self.known, a, b)


class Torture:
    """One round: the uploads, the task queue, the client threads."""

    def __init__(self, d, uploads, rnd, gate):
        self.d = d
        self.uploads = uploads
        self.gate = gate
        self.failures = []
        self.cv = threading.Condition()
        tasks = [(u, k) for u in uploads for k in range(len(u.chunks))]
        random.Random(SEED + rnd).shuffle(tasks)
        self.tasks = tasks
        self.total_tasks = len(tasks)
        self.in_flight = 0
        self.live = set()        # client connections open now
        self.hold = None         # no new request once this many acks...
        self.timers = []         # pending finish-line kills
        self.stats = {"sent": 0, "ok": 0, "conn_errors": 0, "busy": 0,
                      "statuses": 0, "skipped": 0, "finish_kills": 0}
        self.stop = threading.Event()

    # -- the task queue

    def take(self):
        with self.cv:
            while True:
                if self.stop.is_set():
                    return None
                if self.hold is not None and self.stats["ok"] >= self.hold:
                    self.cv.wait(0.5)   # ...until the killer has struck
                    continue
                while self.tasks:
                    u, k = self.tasks.pop()
                    if u.held(k):
                        self.stats["skipped"] += 1
                        continue
                    self.in_flight += 1
                    return u, k
                if self.in_flight == 0:
                    return None
                self.cv.wait(0.5)

    def finish(self, task, requeue):
        with self.cv:
            self.in_flight -= 1
            if requeue:
                self.tasks.insert(0, task)
            self.cv.notify_all()

    def bump(self, key):
        with self.cv:
            self.stats[key] += 1
            self.cv.notify_all()

    def wait_progress(self, ok, timeout):
        """Until `ok` chunks are acknowledged or the round is over."""
        with self.cv:
            return self.cv.wait_for(
                lambda: self.stats["ok"] >= ok or self.stop.is_set()
                or (not self.tasks and self.in_flight == 0), timeout)

    # -- talking to the server

    def connect(self):
        # The gate is closed while the daemon is down: a connect to the
        # (ephemeral-range) test port with no listener can connect the
        # socket to itself and then hold the port the restart needs.
        with self.gate:
            return self.d.conn(timeout=20)

    def status(self, u, rng):
        """HEAD + X-Upload-Session-ID until the server answers; folds the
        report into u.  Returns the response."""
        delay = 0.05
        while not self.stop.is_set():
            snap = u.snapshot()
            try:
                with self.connect() as c:
                    c.send(build_request("HEAD", self.d.put_target(
                        u.path, u.total), [("X-Upload-Session-ID", u.sid)]))
                    r = c.read_response("HEAD")
            except (OSError, EOFError, ValueError):
                time.sleep(delay * (1 + rng.random()))
                delay = min(1.0, delay * 2)
                continue
            if r.status == 503 and r.header("Retry-After"):
                # Being published by another request right now: ask again
                # shortly, as a client does.
                time.sleep(delay * (1 + rng.random()))
                delay = min(1.0, delay * 2)
                continue
            self.bump("statuses")
            self.fold_status(u, r, snap)
            return r
        return None

    def fold_status(self, u, r, snap):
        off, ln = r.header("Upload-Offset"), r.header("Upload-Length")
        ranges = r.header("X-Upload-Ranges")
        if r.status == 200 and off is not None:
            if ln != str(u.total):
                self.failures.append("%s: status with the wrong "
                                     "Upload-Length: %r" % (u.path, r))
            if ranges is None and off == ln:
                u.mark_published(snap, "status (done)", self.failures)
            else:
                u.report(merge(parse_ranges(ranges)), snap, "status",
                         self.failures)
        elif r.status == 200:
            # No session any more (a finished one is dropped at restart):
            # the status request fell through to the published file.
            if r.header("Content-Length") != str(u.total):
                self.failures.append("%s: status fell through to a file "
                                     "of the wrong size: %r" % (u.path, r))
            u.mark_published(snap, "status (file)", self.failures)
        elif r.status == 404:
            if snap:
                self.failures.append(
                    "%s: session lost: status 404 after the server had "
                    "reported %r held" % (u.path, snap))
        else:
            self.failures.append("%s: status: %r" % (u.path, r))

    def send_chunk(self, conn, u, k, snap):
        a, b = u.chunks[k]
        timer = None
        if u.finish_kill is not None and _contains(
                merge(snap + [(a, b)]), [(0, u.total)]):
            # The chunk that completes the file: kill whoever serves it a
            # moment later, somewhere in write, commit or publication.
            victim = self.d.conn_owner(conn, 0.5)
            if victim:
                timer = threading.Timer(u.finish_kill, self.finish_strike,
                                        (victim,))
                self.timers.append(timer)
                u.finish_kill = None
        req = chunk_request(self.d, u.path, u.data, a, b, u.sid)
        if timer:
            timer.start()
        conn.send(req)
        self.bump("sent")
        return conn.read_response("PUT")

    def finish_strike(self, pid):
        # Under the gate: never a pid of a daemon being restarted.
        with self.gate:
            try:
                os.kill(pid, signal.SIGKILL)
                self.bump("finish_kills")
            except (ProcessLookupError, PermissionError):
                pass

    def client(self, idx):
        rng = random.Random(SEED * 31 + idx)
        conn = None
        delay = 0.05
        while True:
            task = self.take()
            if task is None:
                break
            u, k = task
            a, b = u.chunks[k]
            what = "chunk %d-%d" % (a, b - 1)
            snap = u.snapshot()
            try:
                if conn is None:
                    conn = self.connect()
                    self.live.add(conn)
                r = self.send_chunk(conn, u, k, snap)
            except (OSError, EOFError, ValueError):
                # The worker (or the master) died under us.  Back off, then
                # learn what is held before anything is re-sent.
                self.bump("conn_errors")
                if conn:
                    self.live.discard(conn)
                    conn.close()
                conn = None
                time.sleep(delay * (1 + rng.random()))
                delay = min(1.0, delay * 2)
                self.status(u, rng)
                if k in u.acked and not u.held(k):
                    self.failures.append("%s: chunk %d was acknowledged but "
                                         "is not held any more" % (u.path, k))
                self.finish(task, not u.held(k))
                continue
            delay = 0.05
            if (r.header("Connection") or "").lower() == "close":
                self.live.discard(conn)
                conn.close()
                conn = None
            if r.status == 201:
                if r.header("Upload-Offset") != str(u.total):
                    self.failures.append("%s %s: 201 with %r"
                                         % (u.path, what, r))
                u.acked.add(k)
                u.mark_published(snap, what + " (201)", self.failures)
                self.bump("ok")
                self.finish(task, False)
            elif r.status == 200 and r.header("Upload-Offset") is not None:
                off = r.header("Upload-Offset")
                rep = ([(0, u.total)] if off == str(u.total)
                       else merge(parse_ranges(r.header("X-Upload-Ranges"))))
                if not covers(rep, a, b):
                    self.failures.append("%s %s: 200 but not listed held: %r"
                                         % (u.path, what, r))
                u.acked.add(k)
                u.report(rep, snap, what, self.failures)
                self.bump("ok")
                self.finish(task, False)
            elif r.status == 503:
                # Busy: a range still leased, a session being created.
                # Retry-After says 5 s; a test cannot wait that per try.
                self.bump("busy")
                time.sleep(0.1 + 0.2 * rng.random())
                self.finish(task, True)
            else:
                self.failures.append("%s %s: unexpected answer %r"
                                     % (u.path, what, r))
                self.finish(task, False)
        if conn:
            self.live.discard(conn)
            conn.close()


# ---------------------------------------------------------------- killing

def bad_log_lines(d):
    return [ln for ln in d.log().splitlines()
            if any(m in ln for m in hfs.SANITIZER_MARKERS + BAD_LOG)]


def hard_restart(d, tries=50):
    """kill -9 the master and every child, then start the same config
    (the log file is appended to, so its checks cover every instance).

    While the daemon is down its port (picked from the ephemeral range) is
    free, and any process on the machine may get it as the source port of
    an outgoing connection for a moment; a start that meets that is
    retried.  Returns how many starts met a busy port."""
    os.killpg(d.pid, signal.SIGKILL)
    d.proc.wait(10)
    poll(lambda: not d.group_pids(), what="the process group to die")
    hfs._live.pop(d.pid, None)
    d.logf.close()
    for attempt in range(tries):
        try:
            d.start()
            return attempt
        except hfs.DaemonError as e:
            hfs._live.pop(d.pid, None)
            d.logf.close()
            if "Address already in use" not in str(e) or \
                    attempt == tries - 1:
                raise
            time.sleep(0.1)


class Killer:
    def __init__(self, d, t, rnd):
        self.d = d
        self.t = t
        self.rng = random.Random(SEED * 7 + rnd)
        n = t.total_tasks
        points = [("worker", int(n * self.rng.uniform(0.05, 0.9)))
                  for _ in range(WORKER_KILLS)]
        points.append(("master", int(n * self.rng.uniform(0.2, 0.8))))
        self.plan = sorted(points, key=lambda p: p[1])
        for u in self.rng.sample(t.uploads, FINISH_KILLS):
            u.finish_kill = self.rng.uniform(0.005, 0.06)
        self.worker_kills = 0
        self.master_kills = 0
        self.port_busy = 0
        self.error = None

    def busy_worker(self):
        """The worker serving a random client connection (so the kill
        lands on requests in flight), else a random worker."""
        conns = list(self.t.live)
        self.rng.shuffle(conns)
        for c in conns[:3]:
            try:
                pid = self.d.conn_owner(c, 0.2)
            except OSError:
                pid = None
            if pid:
                return pid
        ws = sorted(self.d.worker_pids())
        return self.rng.choice(ws) if ws else None

    def audit(self):
        """Right after a restart: every session with acknowledged bytes is
        still there, with no fewer bytes."""
        for u in self.t.uploads:
            self.t.status(u, self.rng)

    def run(self):
        try:
            for kind, at in self.plan:
                # Requests in flight when the point is reached go on, new
                # ones wait: the kill lands among requests however fast
                # the round runs, and no round ends before its kills.
                with self.t.cv:
                    self.t.hold = at
                self.t.wait_progress(at, BUDGET_S)
                with self.t.cv:
                    over = (self.t.stop.is_set() or
                            (not self.t.tasks and self.t.in_flight == 0))
                if over:
                    return
                self.strike(kind)
                with self.t.cv:
                    self.t.hold = None
                    self.t.cv.notify_all()
        except BaseException:           # reported by the main thread
            self.error = traceback.format_exc()
            self.t.stop.set()
        finally:
            with self.t.cv:
                self.t.hold = None
                self.t.cv.notify_all()

    def strike(self, kind):
        # Land somewhere inside a request, not on its boundary.
        time.sleep(self.rng.uniform(0, 0.03))
        if kind == "master":
            with self.t.gate:
                self.port_busy += hard_restart(self.d)
            self.master_kills += 1
            self.audit()
            return
        victim = self.busy_worker()
        if victim:
            try:
                os.kill(victim, signal.SIGKILL)
                self.worker_kills += 1
            except (ProcessLookupError, PermissionError):
                pass            # gone (and its pid reused) already


def await_publication(t, uploads, rng):
    """A session whose bytes are all held must become a published file
    without the client sending anything again (the server finishes it,
    e.g. after a crash between the last commit and the publication), and
    its status must then say so.  Returns report lines and the uploads
    still unpublished."""
    deadline = time.monotonic() + PUBLISH_WAIT_S
    lines, seen = [], {}
    while time.monotonic() < deadline:
        waiting = [u for u in uploads if u.published is None]
        if not waiting:
            break
        for u in waiting:
            u.last_status = t.status(u, rng)
            if u.published is not None:
                continue
            with t.connect() as c:
                c.send(build_request("HEAD", t.d.target(u.path)))
                g = c.read_response("HEAD")
            # A publication in progress shows both for a moment; one
            # that stays so for a second is a status that lies.
            if g.status != 200:
                seen.pop(u.path, None)
            elif time.monotonic() - seen.setdefault(u.path,
                                                    time.monotonic()) > 1:
                lines.append("%s: published (HEAD of the file: %s bytes) "
                             "but its status still says in progress: %r"
                             % (u.path, g.header("Content-Length"),
                                u.last_status))
                u.mark_published([], "file exists", t.failures)
        time.sleep(0.1)
    return lines, [u for u in uploads if u.published is None]


def nudge(t, u):
    """The fallback a client has when every byte is held and the file is
    not published: send a (held) chunk again, which finishes the session.
    Returns a line for the report."""
    a, b = u.chunks[-1]
    what = ("%s: every byte held but not published %d s later (status %r)"
            % (u.path, PUBLISH_WAIT_S, getattr(u, "last_status", None)))
    r = None
    for _ in range(20):
        try:
            with t.connect() as c:
                c.send(chunk_request(t.d, u.path, u.data, a, b, u.sid))
                r = c.read_response("PUT")
        except (OSError, EOFError, ValueError) as e:
            r = e
        if not (isinstance(r, hfs.Response) and r.status == 503):
            break
        time.sleep(0.2)
    if isinstance(r, hfs.Response) and r.status in (200, 201):
        u.mark_published([], "re-sent chunk (%d)" % r.status, t.failures)
        return what + "; re-sending the last chunk published it (%d)" \
            % r.status
    g = t.d.get(u.path)
    return what + ("; re-sending the last chunk did not help either: %r "
                   "(GET of the file: %d)" % (r, g.status))


# ---------------------------------------------------------------- the test

@hfs.timeout(120)
def test_crash_torture():
    t0 = time.monotonic()
    deadline = t0 + BUDGET_S
    gate = threading.Lock()
    with Daemon(**{"server.workers": WORKERS, "server.shutdown_grace": 2,
                   "uploads.chunk_max_size": "2M"}) as d:
        d.wait_workers(WORKERS)
        totals = {"worker_kills": 0, "finish_kills": 0, "master_kills": 0,
                  "port_busy": 0}
        unpublished = []
        for rnd in range(ROUNDS):
            uploads = [Upload(SEED % 1000, rnd, i, s)
                       for i, s in enumerate(SIZES)]
            t = Torture(d, uploads, rnd, gate)
            killer = Killer(d, t, rnd)
            kt = threading.Thread(target=killer.run, daemon=True)
            cts = [threading.Thread(target=t.client, args=(i,), daemon=True)
                   for i in range(THREADS)]
            kt.start()
            for c in cts:
                c.start()
            for c in cts:
                c.join(max(1.0, deadline - time.monotonic()))
            stuck = [c for c in cts if c.is_alive()]
            t.stop.set()
            with t.cv:
                t.cv.notify_all()
            kt.join(30)
            for tm in t.timers:
                tm.join(30)
            assert killer.error is None, "killer: %s" % killer.error
            assert not stuck, "round %d did not finish within the " \
                "budget: %r" % (rnd, [(u.path, u.known) for u in uploads
                                      if u.published is None])
            t.stop.clear()
            rng = random.Random(SEED + 99 + rnd)
            lines, never = await_publication(t, uploads, rng)
            unpublished += lines + [nudge(t, u) for u in never]
            assert not t.failures, "round %d:\n  %s" % (
                rnd, "\n  ".join(t.failures[:20]))
            totals["worker_kills"] += killer.worker_kills
            totals["finish_kills"] += t.stats["finish_kills"]
            totals["master_kills"] += killer.master_kills
            totals["port_busy"] += killer.port_busy
            print("round %d: %d worker kill(s), %d master kill(s), %d "
                  "not published by the server, %r (%.1fs)" % (
                      rnd, killer.worker_kills, killer.master_kills,
                      len(lines) + len(never), t.stats,
                      time.monotonic() - t0))
            for u in uploads:
                g = d.get(u.path)
                assert g.status == 200, "GET %s (published: %s): %r" % (
                    u.path, u.published, g)
                assert hfs.sha256(g.body) == u.sha, \
                    "%s: published bytes differ from the source" % u.path
            bad = bad_log_lines(d)
            assert not bad, "log:\n  " + "\n  ".join(bad[:20])
        assert totals["master_kills"] >= ROUNDS - 1, totals
        assert totals["worker_kills"] >= ROUNDS, totals
        # Everything is complete: after a restart nothing may remain in
        # staging (finished sessions are removed at publication, or at
        # the latest by recovery).
        problems = list(unpublished)
        before = hfs.regular_files(d.staging)
        if before:
            print("note: before the final restart staging held %d file(s)"
                  % len(before))
        totals["port_busy"] += hard_restart(d)
        files = hfs.regular_files(d.staging)
        if files:
            problems.append("staging files left after every upload ended "
                            "and a restart: %r" % files)
        dirs = sorted(p for p, k in hfs.tree(d.staging) if k == "d")
        if dirs and not files:
            print("note: %d empty fan-out director%s left in staging" % (
                len(dirs), "y" if len(dirs) == 1 else "ies"))
        problems += ["log: " + ln for ln in bad_log_lines(d)[:20]]
        print("torture: %r in %.1fs (seed %d)" % (totals,
                                                  time.monotonic() - t0,
                                                  SEED))
        assert not problems, "\n  ".join(problems)
