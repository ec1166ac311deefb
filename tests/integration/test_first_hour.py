"""A new operator's first hour: configurations that cannot work are caught by
`-t` and by start, with FILE:LINE: group.key, on standard error whatever the
log target; `make install` sets up the account, the secret and the storage;
the README's "Run it for real" works as written.

Every daemon here is started the way an operator starts it (in the
background, as the init script does), so what is checked is the starting
command's exit status and standard error.
"""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import hfs

REPO = hfs.REPO


def run(*args, timeout=20):
    return subprocess.run([hfs.HFS_BIN] + list(args), capture_output=True,
                          text=True, timeout=timeout)


class Case:
    """A config file in a temp dir whose lines are known: lines() returns
    {key: line number} for the keys written."""

    def __init__(self, **over):
        self.tmp = tempfile.mkdtemp(prefix="hfs-first-")
        os.chmod(self.tmp, 0o755)
        self.port = hfs.free_port()
        self.pidfile = os.path.join(self.tmp, "hfs.pid")
        self.conf = os.path.join(self.tmp, "hfs.conf")
        keys = {
            "server.listen": '["127.0.0.1:%d"]' % self.port,
            "server.workers": "1",
            "server.pidfile": '"%s"' % self.pidfile,
            "storage.dir": '"%s"' % os.path.join(self.tmp, "files"),
            "storage.staging": '"%s"' % os.path.join(self.tmp, "staging"),
            "storage.min_free": '"1M"',
            "security.secrets": '["%s"]' % hfs.SECRET,
            "network.networkchangedetection": "false",
            "uploads.shm_name": '"/hfs-first-%d-%d"' % (os.getpid(),
                                                        self.port),
            "logging.target": '"syslog"',
        }
        keys.update(over)
        self.line = {}
        out, n = [], 0
        groups = {}
        for k, v in keys.items():
            groups.setdefault(k.split(".")[0], []).append((k, v))
        for g, kvs in groups.items():
            out.append("%s: {" % g)
            n += 1
            for k, v in kvs:
                out.append("    %s = %s;" % (k.split(".", 1)[1], v))
                n += 1
                self.line[k] = n
            out.append("};")
            n += 1
        with open(self.conf, "w") as f:
            f.write("\n".join(out) + "\n")

    def where(self, key):
        return "%s:%d: %s" % (self.conf, self.line[key], key)

    def start(self):
        """The daemon in the background, as an init script starts it."""
        return run("-c", self.conf)

    def stop(self):
        try:
            pid = int(open(self.pidfile).read())
            os.kill(pid, signal.SIGTERM)
            hfs.wait_for(lambda: not hfs.alive(pid), 10, "daemon exit")
        except (OSError, ValueError):
            pass

    def cleanup(self):
        self.stop()
        try:
            os.unlink("/dev/shm/hfs-first-%d-%d" % (os.getpid(), self.port))
        except OSError:
            pass
        shutil.rmtree(self.tmp, True)


def _refused(case, key, *words):
    """-t and start both fail, naming FILE:LINE: KEY and the words, on
    standard error; nothing is left running or listening."""
    try:
        r = run("-t", "-c", case.conf)
        assert r.returncode == 1, r
        assert case.where(key) in r.stderr, (case.where(key), r)
        for w in words:
            assert w in r.stderr, (w, r)
        t0 = time.monotonic()
        s = case.start()
        assert s.returncode == 1, (s, "start succeeded")
        assert time.monotonic() - t0 < 10
        assert case.where(key) in s.stderr, (case.where(key), s)
        assert not os.path.exists(case.pidfile) or not hfs.alive(
            int(open(case.pidfile).read() or 0))
    finally:
        case.cleanup()


@hfs.timeout(30)
def test_unknown_user_and_group_named_with_line():
    _refused(Case(**{"server.user": '"hfs-no-such-user-q7"'}),
             "server.user", "no such user", "hfs-no-such-user-q7")
    _refused(Case(**{"server.user": '"nobody"',
                     "server.group": '"hfs-no-such-group-q7"'}),
             "server.group", "no such group")


def _unwritable_dir(root):
    """A directory the run user cannot create files in, and the user name
    for server.user (None: we are not root; the dir is read-only to us)."""
    d = os.path.join(root, "locked")
    os.mkdir(d)
    if os.geteuid() == 0:
        # Owned by another account than the run user: start does not hand
        # over a directory someone else owns.
        os.chown(d, pwd.getpwnam("daemon").pw_uid, 0)
        os.chmod(d, 0o755)
        return d, "nobody"
    os.chmod(d, 0o555)
    return d, None


@hfs.timeout(40)
def test_unwritable_storage_and_staging_named_with_line():
    for key in ("storage.dir", "storage.staging"):
        root = tempfile.mkdtemp(prefix="hfs-first-dir-")
        os.chmod(root, 0o755)
        try:
            locked, user = _unwritable_dir(root)
            over = {key: '"%s"' % locked}
            if user:
                over["server.user"] = '"%s"' % user
            _refused(Case(**over), key, locked, "cannot create files",
                     "Permission denied")
        finally:
            shutil.rmtree(root, True)


@hfs.timeout(30)
def test_root_owned_dirs_are_handed_over_not_refused():
    """No false alarm: as root, start gives a root-owned storage directory
    to server.user, so -t accepts it, and start then serves uploads."""
    if os.geteuid() != 0:
        raise hfs.Skip("needs root to drop privileges")
    case = Case(**{"server.user": '"nobody"', "server.group": '"nogroup"'})
    try:
        for d in ("files", "staging"):
            os.mkdir(os.path.join(case.tmp, d), 0o750)
        r = run("-t", "-c", case.conf)
        assert r.returncode == 0, r
        s = case.start()
        assert s.returncode == 0, s
        assert hfs.alive(int(open(case.pidfile).read()))
        nobody = pwd.getpwnam("nobody").pw_uid
        assert os.stat(os.path.join(case.tmp, "files")).st_uid == nobody
        body = b"first hour"
        t = hfs.quote_path("fh/a.txt") + "?v=" + hfs.sign_v1("fh/a.txt",
                                                            len(body))
        r = hfs.raw_request(case.port, hfs.build_request("PUT", t,
                                                         body=body))
        assert r.status == 201, r
    finally:
        case.cleanup()


@hfs.timeout(30)
def test_start_failure_after_daemonizing_on_stderr_with_syslog_target():
    """logging.target = "syslog" (with or without a syslog daemon): a start
    that fails in the background still says why on the starting command's
    standard error and exits 1."""
    case = Case(**{"server.pidfile": '"/nonexistent-hfs-dir/hfs.pid"'})
    try:
        s = case.start()
        assert s.returncode == 1, s
        assert "/nonexistent-hfs-dir/hfs.pid" in s.stderr, s
        assert "No such file or directory" in s.stderr, s
    finally:
        case.cleanup()
    # A port in use (found before daemonizing): on stderr too.
    case = Case()
    busy = None
    try:
        import socket
        busy = socket.socket()
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", case.port))
        busy.listen(1)
        s = case.start()
        assert s.returncode == 1, s
        assert "127.0.0.1:%d" % case.port in s.stderr, s
        assert "Address already in use" in s.stderr, s
    finally:
        if busy:
            busy.close()
        case.cleanup()
    # And a good start returns 0 only once the pidfile names a live master.
    case = Case()
    try:
        s = case.start()
        assert s.returncode == 0, s
        assert hfs.alive(int(open(case.pidfile).read()))
        r = hfs.raw_request(case.port, hfs.build_request("GET", "/health"))
        assert r.status == 200, r
    finally:
        case.cleanup()
