"""The shared session table as designed (docs/shm.md): the master never
waits on a lock in shared memory, and a segment name is never taken from
a daemon that still uses it.

A stopped lock holder is played by tests/tools/shm_hold.c (build/*/shm_hold):
it attaches to the running daemon's table like a worker, locks entries in
use and stops itself with SIGSTOP while holding them, which is what a
worker hung or stopped in a critical section looks like from outside."""

import os
import signal
import subprocess
import time

import hfs
from hfs import Daemon

TUS = ("Tus-Resumable", "1.0.0")
OCTET = ("Content-Type", "application/offset+octet-stream")
HOLD_BIN = os.path.join(os.path.dirname(hfs.HFS_BIN), "shm_hold")


def _create(d, path, length):
    r = d.request("POST", d.put_target(path, length),
                  [TUS, ("Upload-Length", str(length))])
    assert r.status == 201, r
    return r.header("Location")


def _patch(d, loc, offset, body):
    return d.request("PATCH", loc, [TUS, ("Upload-Offset", str(offset)),
                                    OCTET], body=body, length=True)


def _stopped(pid):
    st = hfs.proc_stat(pid)
    return st is not None and st[0] == "T"


def _hold(d, n):
    """Starts shm_hold on d's table; returns (process, locks held)."""
    if not os.path.exists(HOLD_BIN):
        raise AssertionError("%s not built (make check builds it)" % HOLD_BIN)
    p = subprocess.Popen([HOLD_BIN, d.shm_name, str(n)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = p.stdout.readline().decode()
    assert line.startswith("held "), (line, p.stderr.read())
    hfs.wait_for(lambda: _stopped(p.pid), 5, "shm_hold stopped")
    return p, int(line.split()[1])


def _generation(d):
    return d.metrics().get("hfs_config_generation")


@hfs.timeout(90)
def test_master_reaps_respawns_reloads_past_a_stopped_lock_holder():
    # Per entry the table waits up to its lock timeout (1 s) for a holder:
    # a master that took those locks itself after each reap would stall
    # ~12 s per dead worker here. It must not notice at all.
    with Daemon(**{"server.workers": 2}) as d:
        locs = [_create(d, "u-shm/s%d.bin" % i, 100) for i in range(12)]
        holder, held = _hold(d, 12)
        try:
            assert held == 12, held
            workers = d.wait_workers(2)

            # Reap and respawn: a worker killed, a new one serving at once.
            t0 = time.monotonic()
            os.kill(workers[0], signal.SIGKILL)
            fresh = d.wait_workers(2, exclude=[workers[0]], timeout=4)
            took = time.monotonic() - t0
            assert took < 4, "respawn took %.1f s" % took
            assert d.request("GET", "/health", timeout=3).status == 200

            # Reload: a new generation; the old one exits and is reaped.
            g = _generation(d)
            t0 = time.monotonic()
            os.kill(d.pid, signal.SIGHUP)
            hfs.wait_for(lambda: _generation(d) == g + 1, 5,
                         "reload to generation %d\n%s" % (g + 1, d.log_tail()))
            newer = d.wait_workers(2, exclude=fresh, timeout=8)
            assert time.monotonic() - t0 < 8
            assert d.master_alive()

            # A second reap right after: the master loop is not behind.
            t0 = time.monotonic()
            os.kill(newer[0], signal.SIGKILL)
            d.wait_workers(2, exclude=[newer[0]], timeout=4)
            assert time.monotonic() - t0 < 4

            # Sessions whose locks are free still work meanwhile.
            loc = _create(d, "u-shm/free.bin", 10)
            assert _patch(d, loc, 0, b"0123456789").status == 204
            assert d.get("u-shm/free.bin").body == b"0123456789"
        finally:
            holder.kill()
            holder.wait()
        # The holder died holding 12 locks: each next locker repairs.
        for i, loc in enumerate(locs):
            r = _patch(d, loc, 0, bytes([65 + i]) * 100)
            assert r.status == 204, (i, r)
        assert d.get("u-shm/s3.bin").body == b"D" * 100


@hfs.timeout(60)
def test_dead_workers_lease_released_by_a_worker():
    # What the master no longer does itself still gets done: a PATCH cut
    # by its worker's death leaves a lease; a live worker releases it and
    # the client's retry of the same range goes through long before the
    # lease's deadline.
    with Daemon(**{"server.workers": 2}) as d:
        loc = _create(d, "u-shm/lease.bin", 1 << 20)
        c = d.conn()
        c.send(hfs.build_request("PATCH", loc, [
            TUS, ("Upload-Offset", "0"), OCTET,
            ("Content-Length", str(1 << 20))]))
        c.send(b"x" * 4096)
        victim = d.conn_owner(c)
        time.sleep(0.3)                 # the lease is taken at the head
        os.kill(victim, signal.SIGKILL)
        c.close()
        d.wait_workers(2, exclude=[victim])
        hfs.wait_for(lambda: "held by worker pid %d" % victim in d.log(), 5,
                     "a worker releasing pid %d's session\n%s"
                     % (victim, d.log_tail()))
        r = _patch(d, loc, 0, b"y" * (1 << 20))
        assert r.status == 204, r
        assert d.get("u-shm/lease.bin").body == b"y" * (1 << 20)


@hfs.timeout(60)
def test_second_daemon_on_same_shm_name_refused():
    with Daemon(**{"server.workers": 2}) as d:
        loc = _create(d, "u-shm/first.bin", 20)
        assert _patch(d, loc, 0, b"a" * 10).status == 204
        seg = "/dev/shm" + d.shm_name
        before = os.stat(seg)
        # Its pidfile (relative: in its temp dir, where it is started)
        # is written before the refusal and must not outlive it: an init
        # script would take the pid in it for a running daemon.
        other = Daemon(start=False, **{"uploads.shm_name": d.shm_name,
                                       "server.pidfile": "other.pid"})
        other.shm_name = "/hfs-not-ours-%d" % os.getpid()  # its cleanup
        pidfile = os.path.join(other.tmp, "other.pid")
        try:
            # As an operator starts it: daemonizing, the starting process
            # reports the failure.
            t0 = time.monotonic()
            p = subprocess.run([hfs.HFS_BIN, "-c", other.conf_path],
                               cwd=other.tmp, capture_output=True,
                               timeout=30)
            err = p.stderr.decode()
            assert p.returncode == 1, (p.returncode, err)
            assert "in use by another running hmac-file-server" in err, err
            assert "master pid %d" % d.pid in err, err
            assert d.shm_name in err, err
            assert time.monotonic() - t0 < 5, "refusal took too long"
            assert not os.path.exists(pidfile), "pidfile left by a failed start"
        finally:
            other.cleanup()
        after = os.stat(seg)
        assert (after.st_ino, after.st_size) == (before.st_ino,
                                                 before.st_size)
        # The first daemon's table is untouched: the session goes on.
        assert _patch(d, loc, 10, b"b" * 10).status == 204
        assert d.get("u-shm/first.bin").body == b"a" * 10 + b"b" * 10


@hfs.timeout(60)
def test_stale_segment_of_a_dead_daemon_replaced():
    d = Daemon(check_exit=False)
    try:
        loc = _create(d, "u-shm/stale.bin", 20)
        assert _patch(d, loc, 0, b"c" * 10).status == 204
        os.killpg(d.pid, signal.SIGKILL)    # every process, no cleanup
        d.proc.wait()
        hfs.wait_for(lambda: not d.group_pids(), 5, "processes gone")
        seg = "/dev/shm" + d.shm_name
        assert os.path.exists(seg)
        ino = os.stat(seg).st_ino
        d.stop()
        d.start()
        assert os.stat(seg).st_ino != ino, "stale segment reused"
        # Rebuilt from the manifest: the session resumes where it was.
        assert _patch(d, loc, 10, b"d" * 10).status == 204
        assert d.get("u-shm/stale.bin").body == b"c" * 10 + b"d" * 10
        assert not d.stop()
    finally:
        d.cleanup()
