"""The storage roots under an operator's hands: storage.dir or
storage.staging deleted and re-created (a restore, a remount), deleted for
good, made unwritable, or short of storage.min_free.

What is promised (hmac-file-server(8), operations.md): a re-created directory
is used by the next upload, with or without SIGHUP; an unusable one makes
uploads fail with a 503 naming it before any body byte is read, and makes
/health answer 503 naming it, so monitoring sees it.
"""

import os
import pwd
import shutil
import signal
import socket

import hfs
from hfs import Daemon, build_request

MiB = 1 << 20


def _recreate(path, like=None):
    """Deletes a directory and makes a new one (a new inode) at its path."""
    st = os.stat(like or path)
    shutil.rmtree(path)
    os.mkdir(path, st.st_mode & 0o7777)
    os.chown(path, st.st_uid, st.st_gid)


def _health(d):
    return d.request("GET", "/health")


def _health_is(d, status, words=()):
    r = _health(d)
    return r.status == status and all(w in r.text for w in words) and r


def _put_ok(d, path, data):
    r = d.put(path, data)
    assert r.status == 201, (r, d.log_tail())
    g = hfs.wait_for(lambda: (lambda g: g.status == 200 and g)(d.get(path)),
                     5, "GET %s" % path)
    assert g.body == data


def _expect_put(d, path, size):
    """Head of a signed PUT with Expect: 100-continue, no body sent: the
    first response the server sends (interim or final)."""
    c = d.conn(timeout=5)
    try:
        c.send(build_request("PUT", d.put_target(path, size),
                             [("Content-Length", str(size)),
                              ("Expect", "100-continue")], b""))
        try:
            return c.read_response("PUT", interim=True)
        except socket.timeout:
            raise AssertionError("no answer to the head of PUT %s" % path)
    finally:
        c.close()


def _holds_deleted(pid, path):
    """Does process pid hold a descriptor on a deleted directory `path`?"""
    fds = "/proc/%d/fd" % pid
    for fd in os.listdir(fds):
        try:
            if os.readlink(os.path.join(fds, fd)) == path + " (deleted)":
                return True
        except OSError:
            pass
    return False


# ---------------------------------------------------------------- re-created

def test_recreated_storage_is_used_by_the_next_upload():
    with Daemon(**{"server.workers": 2}) as d:
        _put_ok(d, "h-re/before.txt", b"before")
        _recreate(d.storage)
        # Small (one-shot) and large (resumable session) uploads alike.
        _put_ok(d, "h-re/small.txt", b"after")
        big = hfs.det_bytes(MiB, seed=5)
        _put_ok(d, "h-re/big.bin", big)
        assert os.path.exists(os.path.join(d.storage, "h-re", "big.bin"))
        _recreate(d.staging)
        _put_ok(d, "h-re/small2.txt", b"after staging")
        _put_ok(d, "h-re/big2.bin", big[::-1])
        hfs.wait_for(lambda: _health_is(d, 200, ["ok"]), 5, "/health ok")
        assert "storage.dir %s was replaced" % d.storage in d.log()


def test_recreated_storage_picked_up_by_sighup():
    """The master re-opens both roots on SIGHUP, so the new generation does
    not inherit descriptors of deleted directories."""
    with Daemon(**{"server.workers": 1}) as d:
        _recreate(d.storage)
        _recreate(d.staging)
        assert _holds_deleted(d.pid, d.storage)
        assert _holds_deleted(d.pid, d.staging)
        old = set(d.worker_pids())
        os.kill(d.pid, signal.SIGHUP)
        d.wait_workers(1, exclude=old)
        hfs.wait_for(lambda: not _holds_deleted(d.pid, d.storage)
                     and not _holds_deleted(d.pid, d.staging),
                     5, "master re-opened the storage roots\n" + d.log_tail())
        new = d.worker_pids()
        assert new and not any(_holds_deleted(p, d.storage) for p in new)
        _put_ok(d, "h-hup/a.txt", b"after reload")
        _put_ok(d, "h-hup/b.bin", hfs.det_bytes(600000, seed=6))


# ---------------------------------------------------------------- missing

def test_missing_storage_refused_before_the_body():
    with Daemon(**{"server.workers": 2}) as d:
        shutil.rmtree(d.storage)
        # Expect: 100-continue: the answer is a 503, not an invitation.
        for size in (1000, 5 * MiB):
            r = _expect_put(d, "h-miss/a%d.bin" % size, size)
            assert r.status == 503, r
            assert "storage.dir is missing" in r.text, r
        # Without Expect: answered while most of a large body is unsent.
        data = hfs.det_bytes(64 * MiB, seed=7)
        r = d.put("h-miss/big.bin", data)
        assert r.status == 503 and "storage.dir is missing" in r.text, r
        assert r.sent < len(data) // 2, "sent %d of %d" % (r.sent, len(data))
        r = hfs.wait_for(lambda: _health_is(d, 503, ["storage.dir",
                                                     "missing"]),
                         5, "/health 503")
        assert r.header("Content-Type") == "text/plain", r
        h = d.request("HEAD", "/health")
        assert h.status == 503 and h.body == b"", h
        assert "storage.dir is missing" in d.log()
        # Re-created: usable again without a restart.
        os.mkdir(d.storage)
        hfs.wait_for(lambda: _health_is(d, 200, ["ok"]), 5, "/health ok")
        _put_ok(d, "h-miss/later.txt", b"later")


def test_missing_staging_named():
    with Daemon(**{"server.workers": 1}) as d:
        shutil.rmtree(d.staging)
        r = _expect_put(d, "h-stg/a.bin", 1000)
        assert r.status == 503 and "storage.staging is missing" in r.text, r
        hfs.wait_for(lambda: _health_is(d, 503, ["storage.staging",
                                                 "missing"]),
                     5, "/health 503")
        os.mkdir(d.staging)
        hfs.wait_for(lambda: _health_is(d, 200), 5, "/health ok")
        _put_ok(d, "h-stg/b.txt", b"b")


# ---------------------------------------------------------------- unwritable

def test_unwritable_storage_reported():
    """Root ignores mode bits, so the daemon runs as nobody here (as it does
    in production as its own user) and the directory is given back to
    root."""
    if os.geteuid() != 0:
        raise hfs.Skip("needs root to run the daemon as another user")
    nobody = pwd.getpwnam("nobody")
    root = hfs.scratch_dir()
    os.chmod(root, 0o755)
    base = os.path.join(root, "unwritable")
    os.mkdir(base, 0o755)
    storage = os.path.join(base, "files")
    staging = os.path.join(base, "staging")
    with Daemon(**{"server.user": "nobody", "server.group": "nogroup",
                   "server.workers": 1, "storage.dir": storage,
                   "storage.staging": staging}) as d:
        _put_ok(d, "h-ro/a.txt", b"a")
        os.chown(storage, 0, 0)
        os.chmod(storage, 0o755)
        hfs.wait_for(lambda: _health_is(d, 503, ["storage.dir",
                                                 "not writable"]),
                     5, "/health 503")
        r = _expect_put(d, "h-ro/b.txt", 1)
        assert r.status == 503 and "storage.dir is not writable" in r.text, r
        os.chown(storage, nobody.pw_uid, nobody.pw_gid)
        hfs.wait_for(lambda: _health_is(d, 200), 5, "/health ok")
        _put_ok(d, "h-ro/c.txt", b"c")


# ---------------------------------------------------------------- min_free

def _reload_with(d, **overrides):
    cfg = hfs.apply_overrides(d.cfg, overrides)
    tmp = d.conf_path + ".new"
    with open(tmp, "w") as f:
        f.write(hfs.config_text(cfg))
    os.replace(tmp, d.conf_path)
    old = set(d.worker_pids())
    os.kill(d.pid, signal.SIGHUP)
    d.wait_workers(1, exclude=old)


def test_below_min_free_reported():
    with Daemon(**{"server.workers": 1}) as d:
        free = shutil.disk_usage(d.storage).free
        _reload_with(d, **{"storage.min_free": "%dK" % (free // 1024 * 2)})
        r = hfs.wait_for(lambda: _health_is(d, 503, ["storage.min_free"]),
                         10, "/health 503\n" + d.log_tail())
        assert "storage.dir has" in r.text and "bytes free" in r.text, r
        # Uploads were refused for space already (507), and still are.
        assert d.put("h-free/a.txt", b"a").status == 507
        _reload_with(d, **{"storage.min_free": "1M"})
        hfs.wait_for(lambda: _health_is(d, 200, ["ok"]), 10, "/health ok")
