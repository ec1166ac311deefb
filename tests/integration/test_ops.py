"""Operations: the init scripts driven as an operator would, log reopen after
rotation, `make install`, and the manual pages.

The scripts are run from the source tree with the environment pointing them
at $HFS_BIN and a temporary config (DAEMON, CONF, DEFAULTS=/nonexistent so a
real /etc/default/hmac-file-server cannot leak in).  They daemonize the real
daemon, so everything here is checked through the pidfile and /proc, as an
operator would: never through a Popen handle.
"""

import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import hfs

REPO = hfs.REPO
LSB = os.path.join(REPO, "init.d", "hmac-file-server")
RC = os.path.join(REPO, "init.d", "rc.hmac-file-server")
LOGROTATE = os.path.join(REPO, "etc", "logrotate.hmac-file-server")


# ---------------------------------------------------------------- helpers

_wait = hfs.wait_for


def _children(pid):
    return sorted(p for p in hfs.all_pids()
                  if (hfs.proc_stat(p) or ("X", 0, 0))[1] == pid
                  and hfs.alive(p))


def _workers(pid):
    return [p for p in _children(pid)
            if "netmon" not in hfs.proc_cmd(p).lower()]


def _session(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    return int(s[s.rindex(")") + 2:].split()[3])


class Installed:
    """A daemon config in a temp dir, driven through an init script."""

    def __init__(self, script, workers=2):
        self.script = script
        self.tmp = tempfile.mkdtemp(prefix="hfs-ops-")
        self.port = hfs.free_port()
        self.pidfile = os.path.join(self.tmp, "run", "hfs.pid")
        self.log_path = os.path.join(self.tmp, "log", "hfs.log")
        self.conf = os.path.join(self.tmp, "hfs.conf")
        self.shm = "/hfs-ops-%d-%s" % (os.getpid(),
                                       os.path.basename(self.tmp)[-6:])
        os.makedirs(os.path.dirname(self.pidfile))
        os.makedirs(os.path.dirname(self.log_path))
        self.cfg = {
            "server": {"listen": ["127.0.0.1:%d" % self.port],
                       "workers": workers, "shutdown_grace": 2,
                       "pidfile": self.pidfile},
            "storage": {"dir": os.path.join(self.tmp, "data", "storage"),
                        "staging": os.path.join(self.tmp, "data", "staging"),
                        "min_free": "1M"},
            "security": {"secrets": [hfs.SECRET]},
            "network": {"networkchangedetection": False},
            "uploads": {"shm_name": self.shm},
            "logging": {"target": self.log_path, "level": "info"},
        }
        self.write_conf()
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "DAEMON": hfs.HFS_BIN, "CONF": self.conf,
                    "DEFAULTS": "/nonexistent/hmac-file-server",
                    "SYSTEMCTL_SKIP_REDIRECT": "1",
                    "STOP_TIMEOUT": "15"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                self.env[k] = os.environ[k]

    def write_conf(self, text=None):
        tmp = self.conf + ".new"
        with open(tmp, "w") as f:
            f.write(text if text is not None else hfs.config_text(self.cfg))
        os.replace(tmp, self.conf)

    def run(self, action, timeout=40):
        p = subprocess.run(["sh", self.script, action], env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, cwd="/")
        return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")

    def expect(self, action, rc):
        got, out = self.run(action)
        assert got == rc, "%s %s: exit %d, want %d\n%s\n---- log\n%s" % (
            os.path.basename(self.script), action, got, rc, out,
            self.log_tail())
        return out

    def pid(self):
        with open(self.pidfile) as f:
            return int(f.read().strip())

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log().splitlines()[-n:])

    def get(self, path):
        return hfs.raw_request(self.port, hfs.build_request(
            "GET", hfs.quote_path(path)))

    def put(self, path, data):
        q = "v=" + hfs.sign_v1(path, len(data))
        return hfs.raw_request(self.port, hfs.build_request(
            "PUT", hfs.quote_path(path) + "?" + q, body=data), "PUT")

    def cleanup(self):
        # Whatever the test left running: the whole daemonized session.
        try:
            pid = self.pid()
            if hfs.alive(pid):
                os.killpg(hfs.proc_stat(pid)[2], signal.SIGKILL)
        except (OSError, ValueError, TypeError):
            pass
        try:
            os.unlink("/dev/shm" + self.shm)
        except OSError:
            pass
        shutil.rmtree(self.tmp, True)


def _roundtrip(inst, path, size, seed):
    data = hfs.det_bytes(size, seed=seed)
    r = inst.put(path, data)
    assert r.status == 201, "PUT %s: %r\n%s" % (path, r, inst.log_tail())
    g = inst.get(path)
    assert g.status == 200 and g.body == data, "GET %s: %r" % (path, g)


def _kill_behind_back(inst):
    """kill -9 the master and its workers, as an OOM killer or a careless
    admin would; the pidfile stays behind."""
    master = inst.pid()
    victims = [master] + _children(master)
    for p in victims:
        os.kill(p, signal.SIGKILL)
    _wait(lambda: not any(hfs.alive(p) for p in victims), 10,
          "killed processes to disappear")
    assert os.path.exists(inst.pidfile)


def _lifecycle(inst, full):
    inst.expect("status", 3)
    inst.expect("start", 0)
    master = inst.pid()
    assert hfs.alive(master), "pidfile names a dead process"
    # Daemonized: its own session, not a child of the script.
    assert _session(master) != _session(os.getpid())
    assert os.path.realpath("/proc/%d/exe" % master) == \
        os.path.realpath(hfs.HFS_BIN)
    old = _wait(lambda: (lambda w: w if len(w) == 2 else None)(
        _workers(master)), 10, "2 workers")
    inst.expect("status", 0)
    # A second start is a no-op that succeeds (LSB).
    inst.expect("start", 0)
    assert inst.pid() == master
    _roundtrip(inst, "ops-1/a.bin", 70000, 1)

    inst.expect("reload", 0)
    new = _wait(lambda: (lambda w: w if len(w) == 2 and
                         not set(w) & set(old) else None)(_workers(master)),
                10, "a new generation of workers (old %s)" % old)
    assert inst.pid() == master and hfs.alive(master)
    assert not any(hfs.alive(p) for p in old), "old workers still alive"
    _roundtrip(inst, "ops-2/b.bin", 1234, 2)
    assert inst.get("ops-1/a.bin").status == 200

    if full:
        # A broken file is refused before any signal is sent: same workers,
        # same generation, and the operator sees FILE:LINE: key.
        good = open(inst.conf).read()
        inst.write_conf(good + "server2: { workers = 1; };\n")
        rc, out = inst.run("reload")
        assert rc != 0, "reload of a broken config exited 0\n" + out
        assert inst.conf in out and "server2" in out, out
        time.sleep(0.5)
        assert _workers(master) == new, "workers changed on a refused reload"
        inst.expect("status", 0)
        inst.write_conf(good)

    inst.expect("stop", 0)
    assert not hfs.alive(master), "master alive after stop"
    assert not any(hfs.alive(p) for p in new), "workers alive after stop"
    assert not os.path.exists(inst.pidfile), "pidfile left after stop"
    inst.expect("status", 3)
    inst.expect("stop", 0)          # stopping a stopped service succeeds

    # Killed behind the script's back: dead-with-pidfile, then start works.
    inst.expect("start", 0)
    _kill_behind_back(inst)
    out = inst.expect("status", 1)
    assert "not running" in out, out
    inst.expect("start", 0)
    master2 = inst.pid()
    assert master2 != master and hfs.alive(master2)
    _wait(lambda: len(_workers(master2)) == 2, 10, "2 workers")
    inst.expect("status", 0)
    _roundtrip(inst, "ops-3/c.bin", 999, 3)
    assert inst.get("ops-1/a.bin").status == 200

    if full:
        # restart checks the file first and keeps a working daemon running
        # rather than stopping it for a config that cannot start.
        good = open(inst.conf).read()
        inst.write_conf(good.replace("workers = 2", "workers = 999"))
        rc, out = inst.run("restart")
        assert rc != 0 and "server.workers" in out, (rc, out)
        assert inst.pid() == master2 and hfs.alive(master2)
        inst.write_conf(good)
        inst.expect("restart", 0)
        assert inst.pid() != master2
        inst.expect("status", 0)

    inst.expect("stop", 0)
    inst.expect("status", 3)


# ---------------------------------------------------------------- tests

@hfs.timeout(60)
def test_lsb_init_script_lifecycle():
    if os.geteuid() != 0:
        raise hfs.Skip("the init script is run as root")
    if shutil.which("start-stop-daemon") is None:
        raise hfs.Skip("start-stop-daemon is not installed")
    inst = Installed(LSB)
    try:
        _lifecycle(inst, full=True)
        # A config that cannot start: exit 6 (LSB "not configured"), nothing
        # left running, no pidfile.
        inst.write_conf(open(inst.conf).read() + "bogus = 1;\n")
        rc, out = inst.run("start")
        assert rc == 6, (rc, out)
        assert not os.path.exists(inst.pidfile)
        rc, out = inst.run("configtest")
        assert rc != 0 and "bogus" in out, (rc, out)
        rc, out = inst.run("frobnicate")
        assert rc == 2, (rc, out)
    finally:
        inst.cleanup()


@hfs.timeout(45)
def test_lsb_header_and_syntax():
    text = open(LSB).read()
    m = re.search(r"^### BEGIN INIT INFO\n(.*?)^### END INIT INFO$", text,
                  re.S | re.M)
    assert m, "no LSB header"
    fields = dict(re.findall(r"^# ([A-Z][\w-]+):\s+(.*)$", m.group(1), re.M))
    for k in ("Provides", "Required-Start", "Required-Stop",
              "Default-Start", "Default-Stop", "Short-Description"):
        assert k in fields, "LSB header lacks %s" % k
    assert fields["Provides"] == "hmac-file-server"
    for script in (LSB, RC):
        p = subprocess.run(["sh", "-n", script], capture_output=True)
        assert p.returncode == 0, (script, p.stderr)
        if shutil.which("dash"):
            p = subprocess.run(["dash", "-n", script], capture_output=True)
            assert p.returncode == 0, (script, p.stderr)


@hfs.timeout(60)
def test_bsd_rc_script_lifecycle():
    if os.geteuid() != 0:
        raise hfs.Skip("the rc script is run as root")
    inst = Installed(RC)
    try:
        _lifecycle(inst, full=False)
    finally:
        inst.cleanup()


def _stored_lines(text, name):
    return [ln for ln in text.splitlines() if "stored" in ln and name in ln]


@hfs.timeout(30)
def test_log_reopen_after_rotation():
    logdir = tempfile.mkdtemp(prefix="hfs-ops-log-")
    path = os.path.join(logdir, "hfs.log")
    try:
        with hfs.Daemon(**{"logging.target": path}) as d:
            assert d.put("rot-1/before.txt", b"before").status == 201
            _wait(lambda: _stored_lines(open(path).read(), "before.txt"),
                  5, "the upload to be logged")
            os.rename(path, path + ".1")
            os.kill(d.pid, signal.SIGUSR1)
            _wait(lambda: os.path.exists(path), 5, "a new log file")
            _wait(lambda: "reopen" in open(path).read(), 5,
                  "the master's reopen line in the new file")
            # The master signals the workers right after its own reopen.
            time.sleep(0.3)
            for i in range(4):      # on a fresh connection each: any worker
                assert d.put("rot-2/after-%d.txt" % i, b"after").status == 201
            new = _wait(lambda: (lambda t: t if len(
                _stored_lines(t, "after-")) == 4 else None)(open(path).read()),
                5, "4 upload lines in the new file")
            old = open(path + ".1").read()
            assert _stored_lines(old, "before.txt"), old
            assert not _stored_lines(old, "after-"), \
                "lines after SIGUSR1 went to the rotated file:\n" + old
            assert not _stored_lines(new, "before.txt")
            st = os.stat(path)
            assert stat.S_IMODE(st.st_mode) & 0o007 == 0, oct(st.st_mode)
    finally:
        shutil.rmtree(logdir, True)


@hfs.timeout(40)
def test_logrotate_snippet_rotates_and_reopens():
    """The shipped /etc/logrotate.d entry, pointed at a temp dir, with
    `logrotate -f`: renamed, recreated, daemon writes to the new file."""
    lr = shutil.which("logrotate")
    if lr is None:
        raise hfs.Skip("logrotate is not installed")
    if os.geteuid() != 0:
        raise hfs.Skip("logrotate runs as root")
    logdir = tempfile.mkdtemp(prefix="hfs-ops-lr-")
    path = os.path.join(logdir, "hmac-file-server.log")
    pidfile = os.path.join(logdir, "hfs.pid")
    try:
        snippet = open(LOGROTATE).read()
        assert "/var/log/hmac-file-server/*.log" in snippet
        assert "/run/hmac-file-server.pid" in snippet
        assert "kill -USR1" in snippet
        snippet = (snippet
                   .replace("/var/log/hmac-file-server/*.log",
                            os.path.join(logdir, "*.log"))
                   .replace("/run/hmac-file-server.pid", pidfile)
                   .replace("hmac-file-server adm", "root root"))
        conf = os.path.join(logdir, "logrotate.conf")
        with open(conf, "w") as f:
            f.write(snippet)
        with hfs.Daemon(**{"logging.target": path,
                           "server.pidfile": pidfile}) as d:
            assert d.put("lr-1/one.txt", b"one").status == 201
            _wait(lambda: _stored_lines(open(path).read(), "one.txt"), 5,
                  "the upload to be logged")
            p = subprocess.run([lr, "-f", "-s",
                                os.path.join(logdir, "state"), conf],
                               capture_output=True, timeout=20)
            assert p.returncode == 0, p
            assert os.path.exists(path + ".1"), os.listdir(logdir)
            assert _stored_lines(open(path + ".1").read(), "one.txt")
            _wait(lambda: "reopen" in open(path).read(), 5,
                  "the daemon to reopen its log (postrotate kill -USR1)")
            time.sleep(0.3)
            assert d.put("lr-2/two.txt", b"two").status == 201
            _wait(lambda: _stored_lines(open(path).read(), "two.txt"), 5,
                  "the upload after rotation in the new file")
            assert not _stored_lines(open(path + ".1").read(), "two.txt")
    finally:
        shutil.rmtree(logdir, True)


def _make_install(destdir):
    """`make install` of the binary under test, without rebuilding it: the
    suite runs against $HFS_BIN, whichever build that is."""
    binpath = hfs.HFS_BIN
    args = ["make", "-s", "-C", REPO, "-o", binpath, "install",
            "BIN=" + binpath, "DESTDIR=" + destdir, "PREFIX=/usr/local"]
    if "/build/san/" in binpath:
        args.append("SAN=1")
    p = subprocess.run(args, capture_output=True, timeout=60)
    assert p.returncode == 0, p
    return p


@hfs.timeout(60)
def test_make_install_layout_and_config_kept():
    dest = tempfile.mkdtemp(prefix="hfs-ops-inst-")
    try:
        _make_install(dest)
        want = {
            "usr/local/sbin/hmac-file-server": 0o755,
            "usr/local/share/man/man8/hmac-file-server.8": 0o644,
            "usr/local/share/man/man5/hmac-file-server.conf.5": 0o644,
            "etc/init.d/hmac-file-server": 0o755,
            "etc/rc.d/rc.hmac-file-server": 0o644,
            "lib/systemd/system/hmac-file-server.service": 0o644,
            "etc/hmac-file-server/hmac-file-server.conf": 0o640,
            "usr/local/share/hmac-file-server/install-user.sh": 0o755,
            "usr/local/bin/hmac-upload": 0o755,
            "usr/local/share/man/man1/hmac-upload.1": 0o644,
        }
        for rel, mode in want.items():
            full = os.path.join(dest, rel)
            assert os.path.isfile(full), "not installed: " + rel
            got = stat.S_IMODE(os.stat(full).st_mode)
            assert got == mode, "%s: mode %o, want %o" % (rel, got, mode)
        sbin = os.path.join(dest, "usr/local/sbin/hmac-file-server")
        assert hfs.sha256_file(sbin) == hfs.sha256_file(hfs.HFS_BIN)
        for src, rel in (("init.d/hmac-file-server",
                          "etc/init.d/hmac-file-server"),
                         ("etc/hmac-file-server.service",
                          "lib/systemd/system/hmac-file-server.service"),
                         ("etc/hmac-file-server.conf",
                          "etc/hmac-file-server/hmac-file-server.conf")):
            assert open(os.path.join(REPO, src), "rb").read() == \
                open(os.path.join(dest, rel), "rb").read(), rel
        # Staged: no account, secret or storage made on this machine.
        assert not os.path.exists(os.path.join(
            dest, "etc/hmac-file-server/secret"))
        # Under var/ only the empty, root-owned log directory of the package
        # layout: no storage.
        made = sorted(os.path.relpath(os.path.join(r, n), dest)
                      for r, ds, fs in os.walk(os.path.join(dest, "var"))
                      for n in ds + fs)
        assert made in ([], ["var/log", "var/log/hmac-file-server"]), made
        v = subprocess.run([sbin, "-V"], capture_output=True, text=True)
        assert v.returncode == 0 and "hmac-file-server" in v.stdout, v

        # The operator edits the config; a second install must keep it.
        conf = os.path.join(dest, "etc/hmac-file-server/hmac-file-server.conf")
        with open(conf, "a") as f:
            f.write("# edited by the operator\n")
        edited = open(conf, "rb").read()
        _make_install(dest)
        assert open(conf, "rb").read() == edited, \
            "make install overwrote an edited config"
    finally:
        shutil.rmtree(dest, True)


def test_systemd_unit_consistent():
    text = open(os.path.join(REPO, "etc", "hmac-file-server.service")).read()
    sect = {}
    cur = None
    for ln in text.splitlines():
        ln = ln.strip()
        if not ln or ln.startswith("#"):
            continue
        if ln.startswith("["):
            cur = ln
            continue
        k, _, v = ln.partition("=")
        sect.setdefault(cur, []).append((k, v))
    svc = sect["[Service]"]
    keys = dict(svc)
    assert keys["Type"] in ("forking", "simple", "exec", "notify"), keys
    if keys["Type"] == "forking":
        # PIDFile must be where the shipped config writes it.
        assert keys["PIDFile"] == "/run/hmac-file-server.pid"
        conf = open(os.path.join(REPO, "etc", "hmac-file-server.conf")).read()
        assert re.search(r'^\s*pidfile\s*=\s*"/run/hmac-file-server.pid"',
                         conf, re.M), "sample config pidfile differs"
        assert " -f" not in keys["ExecStart"]
    reloads = [v for k, v in svc if k == "ExecReload"]
    assert any("kill -HUP $MAINPID" in v for v in reloads), reloads
    assert "WantedBy" in dict(sect["[Install]"])
    sda = shutil.which("systemd-analyze")
    if sda:
        d = tempfile.mkdtemp(prefix="hfs-ops-unit-")
        try:
            unit = os.path.join(d, "hmac-file-server.service")
            with open(unit, "w") as f:
                f.write(text.replace("/usr/local/sbin/hmac-file-server",
                                     hfs.HFS_BIN))
            p = subprocess.run([sda, "verify", unit], capture_output=True,
                               text=True, timeout=30)
            # Only the man: links may be missing (not installed here).
            bad = [ln for ln in p.stderr.splitlines()
                   if ln.strip() and "man " not in ln
                   and "Documentation" not in ln]
            assert not bad, p.stderr
        finally:
            shutil.rmtree(d, True)


MAN_PAGES = ("hmac-file-server.8", "hmac-file-server.conf.5")


def test_man_pages_render_without_warnings():
    if shutil.which("groff") is None:
        raise hfs.Skip("groff is not installed")
    for page in MAN_PAGES:
        path = os.path.join(REPO, "docs", page)
        p = subprocess.run(["groff", "-ww", "-man", "-z", path],
                           capture_output=True, text=True)
        assert p.returncode == 0 and p.stderr == "", (page, p.stderr)
        if shutil.which("man"):
            env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
            p = subprocess.run(["man", "-l", path], capture_output=True,
                               text=True, env=env)
            assert p.returncode == 0 and p.stderr == "", (page, p.stderr)
            assert "NAME" in p.stdout and "SEE ALSO" in p.stdout


def _conf_keys():
    """group -> [key] from the key tables of lib/conf/conf.c."""
    src = open(os.path.join(REPO, "lib", "conf", "conf.c")).read()
    out = {}
    for m in re.finditer(r"static const struct key (\w+)_keys\[\] = \{(.*?)\};",
                         src, re.S):
        out[m.group(1)] = re.findall(r'\{\s*"(\w+)",', m.group(2))
    assert len(out) >= 8 and all(out.values()), out
    return out


def test_conf_page_documents_every_key():
    """Every key the loader accepts is documented under its group, with a
    default."""
    if shutil.which("groff") is None:
        raise hfs.Skip("groff is not installed")
    p = subprocess.run(["groff", "-man", "-Tutf8", "-P", "-cbou",
                        os.path.join(REPO, "docs", "hmac-file-server.conf.5")],
                       capture_output=True, text=True,
                       env=dict(os.environ, LC_ALL="C.UTF-8"))
    assert p.returncode == 0, p.stderr
    text = p.stdout.replace("\u2010", "-")
    sections = re.split(r"^GROUP (\w+)\s*$", text, flags=re.M)
    groups = dict(zip(sections[1::2], sections[2::2]))
    missing = []
    for group, keys in _conf_keys().items():
        body = groups.get(group)
        if body is None:
            missing.append("GROUP " + group)
            continue
        for k in keys:
            # "key (type; default X)" or "key, other (...; default X)"
            m = re.search(r"^\s{7}(?:\w+, )?%s(?:, \w+)? \(([^)]*)" % k,
                          body, re.M)
            if not m:
                missing.append("%s.%s" % (group, k))
            elif "default" not in m.group(1):
                missing.append("%s.%s (no default)" % (group, k))
    assert not missing, "undocumented in hmac-file-server.conf(5): %s" % \
        ", ".join(missing)
