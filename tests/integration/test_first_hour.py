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
import stat
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


# ---------------------------------------------------------------- install

INSTALL_USER = os.path.join(REPO, "etc", "install-user.sh")


def _need_root_tools():
    if os.geteuid() != 0:
        raise hfs.Skip("creates a (throwaway) system user: needs root")
    for tool in ("useradd", "userdel", "getent", "start-stop-daemon"):
        if shutil.which(tool) is None:
            raise hfs.Skip("%s is not installed" % tool)


class Throwaway:
    """A unique account name for one test, removed afterwards whatever
    happened (the account is created by the script under test)."""

    def __init__(self):
        self.name = "hfs-it-%d" % os.getpid()

    def remove(self):
        subprocess.run(["userdel", self.name], capture_output=True)
        subprocess.run(["groupdel", self.name], capture_output=True)


def _relocated_sample(root, user, port=None):
    """The shipped sample config with every system path moved under root
    and the account renamed: what the script and the daemon read is
    otherwise exactly what an operator gets."""
    text = open(os.path.join(REPO, "etc", "hmac-file-server.conf")).read()
    for path in ("/etc/hmac-file-server/", "/var/lib/hmac-file-server",
                 "/var/log/hmac-file-server/", "/run/hmac-file-server.pid"):
        text = text.replace('"' + path, '"' + root + path)
    text = text.replace('"hmac-file-server"', '"%s"' % user)
    text = text.replace('shm_name = "/hmac-file-server"',
                        'shm_name = "/hfs-readme-%d"' % os.getpid())
    if port is not None:
        text = text.replace('listen = [ "127.0.0.1:8080" ]',
                            'listen = [ "127.0.0.1:%d" ]' % port)
    return text


def _install_user(conf):
    p = subprocess.run(["sh", INSTALL_USER], env=dict(os.environ, CONF=conf),
                       capture_output=True, text=True, timeout=60)
    return p


@hfs.timeout(60)
def test_install_user_script_idempotent_never_overwrites_secret():
    _need_root_tools()
    acct = Throwaway()
    root = tempfile.mkdtemp(prefix="hfs-instuser-")
    os.chmod(root, 0o755)
    try:
        conf = os.path.join(root, "etc", "hmac-file-server",
                            "hmac-file-server.conf")
        os.makedirs(os.path.dirname(conf))
        with open(conf, "w") as f:
            f.write(_relocated_sample(root, acct.name))
        os.chmod(conf, 0o640)
        p = _install_user(conf)
        assert p.returncode == 0, p
        pw = pwd.getpwnam(acct.name)
        assert pw.pw_shell.endswith(("nologin", "false")), pw
        assert pw.pw_dir == "/nonexistent" and not os.path.exists(pw.pw_dir)
        assert pw.pw_uid < 1000, "not a system account: %r" % (pw,)
        import grp
        gid = grp.getgrnam(acct.name).gr_gid
        secret = os.path.join(root, "etc", "hmac-file-server", "secret")
        st = os.stat(secret)
        assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
        assert (st.st_uid, st.st_gid) == (0, gid), st
        value = open(secret).read()
        assert len(value.strip()) == 64 and int(value, 16) >= 0, value
        assert os.stat(conf).st_gid == gid, "config not readable on reload"
        for d in ("files", "staging"):
            full = os.path.join(root, "var", "lib", "hmac-file-server", d)
            st = os.stat(full)
            assert (st.st_uid, st.st_gid) == (pw.pw_uid, gid), (full, st)
            assert stat.S_IMODE(st.st_mode) == 0o750, oct(st.st_mode)
        # Again: nothing changes, the secret least of all.
        ino = os.stat(secret).st_ino
        p = _install_user(conf)
        assert p.returncode == 0, p
        assert "keeping the existing secret" in p.stdout, p
        assert open(secret).read() == value and os.stat(secret).st_ino == ino
        # An operator's own secret (any mode, any content) is kept too.
        with open(secret, "w") as f:
            f.write("the operator's secret\n")
        os.chmod(secret, 0o600)
        assert _install_user(conf).returncode == 0
        assert open(secret).read() == "the operator's secret\n"
        assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
        # Removed: a new, different random one.
        os.unlink(secret)
        assert _install_user(conf).returncode == 0
        again = open(secret).read()
        assert len(again.strip()) == 64 and again != value
        assert not [n for n in os.listdir(os.path.dirname(secret))
                    if n.startswith(".secret")], "temp file left behind"
        # The daemon accepts the result as it stands.
        r = run("-t", "-c", conf)
        assert r.returncode == 0, r
    finally:
        acct.remove()
        shutil.rmtree(root, True)


def _readme_steps():
    text = open(os.path.join(REPO, "README.md")).read()
    sect = text.split("## Run it for real", 1)[1].split("\n## ", 1)[0]
    return [ln.strip().split("  #")[0].strip() for ln in sect.splitlines()
            if ln.startswith("    ") and ln.strip()]


@hfs.timeout(120)
def test_readme_run_it_for_real():
    """The README's "Run it for real", step by step, on this machine as far
    as that is safe: `make install` into a temporary root (a real one would
    overwrite this machine's /etc), then exactly what `make install` runs
    without DESTDIR (make install-user) against that root's config, with
    the system paths moved under it and a throwaway account name; the
    operator's edit (a free port); -t; the installed init script's start;
    an upload signed with the secret install made; reload; stop."""
    _need_root_tools()
    steps = _readme_steps()
    assert steps == [
        "make && sudo make install PREFIX=/usr/local",
        "sudoedit /etc/hmac-file-server/hmac-file-server.conf",
        "sudo hmac-file-server -t -c /etc/hmac-file-server/hmac-file-server.conf",
        "sudo /etc/init.d/hmac-file-server start",
        "sudo cat /etc/hmac-file-server/secret",
    ], "README changed: update this test to follow it\n%r" % steps
    acct = Throwaway()
    root = tempfile.mkdtemp(prefix="hfs-readme-")
    os.chmod(root, 0o755)
    port = hfs.free_port()
    conf = os.path.join(root, "etc", "hmac-file-server",
                        "hmac-file-server.conf")
    sbin = os.path.join(root, "usr", "local", "sbin", "hmac-file-server")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "DAEMON": sbin, "CONF": conf, "DEFAULTS": "/nonexistent/hfs",
           "STOP_TIMEOUT": "40"}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]

    def init(action):
        p = subprocess.run(["sh", os.path.join(root, "etc", "init.d",
                                               "hmac-file-server"), action],
                           env=env, capture_output=True, text=True,
                           timeout=60, cwd="/")
        return p.returncode, p.stdout + p.stderr

    try:
        # 1. make && sudo make install PREFIX=/usr/local
        args = ["make", "-s", "-C", REPO, "-o", hfs.HFS_BIN, "install",
                "BIN=" + hfs.HFS_BIN, "DESTDIR=" + root, "PREFIX=/usr/local"]
        if "/build/san/" in hfs.HFS_BIN:
            args.append("SAN=1")
        p = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p
        assert "DESTDIR set: not creating" in p.stdout, p
        assert os.path.isfile(os.path.join(
            root, "usr/local/share/hmac-file-server/install-user.sh"))
        with open(conf, "w") as f:
            f.write(_relocated_sample(root, acct.name))
        os.makedirs(os.path.join(root, "run"))
        p = subprocess.run(["make", "-s", "-C", REPO, "install-user"],
                           env=dict(os.environ, CONF=conf),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p
        # 2. sudoedit: the operator picks the listen address.
        text = open(conf).read()
        assert 'listen = [ "127.0.0.1:8080" ]' in text
        with open(conf, "w") as f:
            f.write(text.replace('listen = [ "127.0.0.1:8080" ]',
                                 'listen = [ "127.0.0.1:%d" ]' % port))
        # 3. sudo hmac-file-server -t -c ...
        r = subprocess.run([sbin, "-t", "-c", conf], capture_output=True,
                           text=True, timeout=20)
        assert r.returncode == 0, r
        # 4. sudo /etc/init.d/hmac-file-server start
        rc, out = init("start")
        assert rc == 0, out
        pidfile = os.path.join(root, "run", "hmac-file-server.pid")
        master = int(open(pidfile).read())
        uid = pwd.getpwnam(acct.name).pw_uid
        assert os.stat("/proc/%d" % master).st_uid == uid
        # 5. sudo cat .../secret: what the XMPP server signs with.
        secret = open(os.path.join(root, "etc", "hmac-file-server",
                                   "secret")).read().strip()
        body = b"run it for real\n"
        path = "readme/a.txt"
        t = hfs.quote_path(path) + "?v=" + hfs.sign_v1(path, len(body),
                                                      secret=secret)
        put = hfs.build_request("PUT", t, body=body)
        r = hfs.raw_request(port, put)
        assert r.status == 201, r
        g = hfs.raw_request(port, hfs.build_request("GET", "/readme/a.txt"))
        assert g.status == 200 and g.body == body, g
        stored = os.path.join(root, "var/lib/hmac-file-server/files",
                              "readme", "a.txt")
        assert os.stat(stored).st_uid == uid
        # A reload re-reads config and secret as the unprivileged user.
        rc, out = init("reload")
        assert rc == 0, out
        r = hfs.raw_request(port, hfs.build_request(
            "PUT", t.replace("a.txt", "b.txt").split("?")[0] + "?v=" +
            hfs.sign_v1("readme/b.txt", len(body), secret=secret),
            body=body))
        assert r.status == 201, r
        rc, out = init("stop")
        assert rc == 0, out
        hfs.wait_for(lambda: not hfs.alive(master), 10, "master exit")
    finally:
        try:
            pid = int(open(os.path.join(root, "run",
                                        "hmac-file-server.pid")).read())
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass
        try:
            os.unlink("/dev/shm/hfs-readme-%d" % os.getpid())
        except OSError:
            pass
        acct.remove()
        shutil.rmtree(root, True)
